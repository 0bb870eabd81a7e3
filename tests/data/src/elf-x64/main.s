# kitemu relocation-coverage program, x86-64, object 1 of 2: the checks.
#
# main returns 0 when every check passed, else the number of the first
# failing check (kept in %r12d while the check runs). After each group a
# line is printed with puts. Each check reaches its value *through* the
# relocated field and compares it with the same value reached another way.
# Targets are in lib.s (another object) or in this object's other sections.

        .text
        .globl  main
        .type   main, @function
main:
        pushq   %rbx
        pushq   %r12
        pushq   %r13                    # %rsp is 16-byte aligned from here

# ---- group 1: calls and jumps -------------------------------------------
        movl    $1, %r12d               # R_X86_64_PLT32: call into lib.s
        call    lib_ret7@PLT
        cmpl    $7, %eax
        jne     .Lfail

        movl    $2, %r12d               # PLT32 call to .text.far, whose
        call    far_tramp               # PLT32 jmp tail-calls lib_ret9
        cmpl    $9, %eax
        jne     .Lfail

        movl    $3, %r12d               # R_X86_64_GOTPCRELX: call *GOT
        call    *lib_ret7@GOTPCREL(%rip)
        cmpl    $7, %eax
        jne     .Lfail

        movl    $4, %r12d               # lib.s calls back into .text.far:
        movl    $5, %edi                # main_helper(5) + 1 = 16
        call    lib_call_back@PLT
        cmpl    $16, %eax
        jne     .Lfail

        leaq    msg_calls(%rip), %rdi   # R_X86_64_PC32 (.rodata section)
        call    puts@PLT                # PLT32 to a host function

# ---- group 2: PC-relative data references --------------------------------
        movl    $5, %r12d               # R_X86_64_PC32 (lea) vs R_X86_64_64
        leaq    lib_data(%rip), %r13    # %r13 = &lib_data from here on
        movq    ptr_lib_data(%rip), %rax
        cmpq    %rax, %r13
        jne     .Lfail

        movl    $6, %r12d               # PC32 load of a value in lib.s
        movl    lib_word(%rip), %eax
        cmpl    $0x12345678, %eax
        jne     .Lfail

        movl    $7, %r12d               # R_X86_64_PC64 data word
        leaq    d_pc64(%rip), %rax
        addq    (%rax), %rax
        cmpq    %rax, %r13
        jne     .Lfail

        movl    $8, %r12d               # PC32 data word with addend 8
        leaq    d_pc32(%rip), %rax
        movslq  (%rax), %rcx
        addq    %rcx, %rax
        leaq    8(%r13), %rcx
        cmpq    %rcx, %rax
        jne     .Lfail

        movl    $9, %r12d               # R_X86_64_PC16 data word
        leaq    d_pc16(%rip), %rax
        movswq  (%rax), %rcx
        addq    %rcx, %rax
        leaq    lib_near(%rip), %rcx
        cmpq    %rcx, %rax
        jne     .Lfail

        movl    $10, %r12d              # R_X86_64_PC8 data byte
        leaq    d_pc8(%rip), %rax
        movsbq  (%rax), %rcx
        addq    %rcx, %rax
        leaq    lib_near(%rip), %rcx
        cmpq    %rcx, %rax
        jne     .Lfail
        movq    (%rax), %rax            # ... and it really is lib_near
        movabsq $0x5a5a5a5a5a5a5a5a, %rcx
        cmpq    %rcx, %rax
        jne     .Lfail

        leaq    msg_pcrel(%rip), %rdi
        call    puts@PLT

# ---- group 3: absolute references ----------------------------------------
        movl    $11, %r12d              # R_X86_64_64 with addend 16
        movq    ptr_table2(%rip), %rax
        movq    (%rax), %rax
        movabsq $0x0303030303030303, %rcx
        cmpq    %rcx, %rax
        jne     .Lfail

        movl    $12, %r12d              # R_X86_64_32: imm32, zero-extended
        movl    $lib_data, %eax
        cmpq    %rax, %r13
        jne     .Lfail
        movl    d_abs32(%rip), %eax     # ... and a .long lib_word
        movl    (%rax), %eax
        cmpl    $0x12345678, %eax
        jne     .Lfail

        movl    $13, %r12d              # R_X86_64_32S: imm32, sign-extended
        movq    $lib_data, %rax
        cmpq    %rax, %r13
        jne     .Lfail
        movl    $2, %ecx                # ... and a disp32 of an indexed load
        movq    lib_table(,%rcx,8), %rax
        movabsq $0x0303030303030303, %rcx
        cmpq    %rcx, %rax
        jne     .Lfail

        movl    $14, %r12d              # R_X86_64_16: imm16 and .short
        xorl    %eax, %eax
        movw    $K16, %ax
        cmpl    $0xbeef, %eax
        jne     .Lfail
        movzwl  d_abs16(%rip), %eax
        cmpl    $0xbef0, %eax
        jne     .Lfail

        movl    $15, %r12d              # R_X86_64_8: imm8 and .byte
        xorl    %eax, %eax
        movb    $K8, %al
        cmpl    $0xa5, %eax
        jne     .Lfail
        movzbl  d_abs8(%rip), %eax
        cmpl    $0xa7, %eax
        jne     .Lfail

        leaq    msg_abs(%rip), %rdi
        call    puts@PLT

# ---- group 4: GOT -----------------------------------------------------------
        movl    $16, %r12d              # R_X86_64_REX_GOTPCRELX (movq)
        movq    lib_data@GOTPCREL(%rip), %rax
        cmpq    %rax, %r13
        jne     .Lfail

        movl    $17, %r12d              # R_X86_64_GOTPCRELX (movl, no REX)
        movl    lib_data@GOTPCREL(%rip), %eax
        cmpl    %eax, %r13d
        jne     .Lfail

        movl    $18, %r12d              # R_X86_64_GOTPCREL (movq to %xmm0)
        movq    lib_data@GOTPCREL(%rip), %xmm0
        movq    %xmm0, %rax
        cmpq    %rax, %r13
        jne     .Lfail

        movl    $19, %r12d              # GOTPCREL data word: G + A - P
        leaq    d_gotpcrel(%rip), %rax
        movslq  (%rax), %rcx
        addq    %rcx, %rax              # the GOT entry of lib_table
        movq    (%rax), %rax
        leaq    lib_table(%rip), %rcx
        cmpq    %rcx, %rax
        jne     .Lfail

        movl    $20, %r12d              # one canonical address for a host
        movq    puts@GOTPCREL(%rip), %rax       # function: GOT entry,
        leaq    puts(%rip), %rcx                # PC32,
        cmpq    %rcx, %rax
        jne     .Lfail
        movq    ptr_puts(%rip), %rcx            # and R_X86_64_64 agree
        cmpq    %rcx, %rax
        jne     .Lfail

        leaq    msg_got(%rip), %rdi
        call    *puts@GOTPCREL(%rip)    # GOTPCRELX call of a host function

        xorl    %eax, %eax
.Lret:
        popq    %r13
        popq    %r12
        popq    %rbx
        ret
.Lfail:
        movl    %r12d, %eax
        jmp     .Lret
        .size   main, .-main

# ---- a second text section ------------------------------------------------
        .section .text.far,"ax",@progbits
        .type   far_tramp, @function
far_tramp:
        jmp     lib_ret9                # R_X86_64_PLT32 on a jmp
        .size   far_tramp, .-far_tramp

        .globl  main_helper
        .type   main_helper, @function
main_helper:                            # 3 * x
        leal    (%rdi,%rdi,2), %eax
        ret
        .size   main_helper, .-main_helper

# ---- read-only data ------------------------------------------------------
        .section .rodata,"a",@progbits
        .p2align 3
ptr_lib_data:
        .reloc  ., R_X86_64_NONE, lib_ret9      # must change nothing
        .quad   lib_data                # R_X86_64_64
ptr_table2:
        .quad   lib_table + 16          # R_X86_64_64, addend 16
ptr_puts:
        .quad   puts                    # R_X86_64_64 against a host function
d_pc64:
        .quad   lib_data - .            # R_X86_64_PC64
d_pc32:
        .long   lib_data + 8 - .        # R_X86_64_PC32, addend 8
d_abs32:
        .long   lib_word                # R_X86_64_32
d_gotpcrel:
        .long   lib_table@GOTPCREL      # R_X86_64_GOTPCREL in data
d_abs16:
        .short  K16 + 1                 # R_X86_64_16
d_abs8:
        .byte   K8 + 2                  # R_X86_64_8

msg_calls:
        .asciz  "x64 calls: ok"
msg_pcrel:
        .asciz  "x64 pc-relative data: ok"
msg_abs:
        .asciz  "x64 absolute data: ok"
msg_got:
        .asciz  "x64 got: ok"

# ---- writable data -------------------------------------------------------
        .data
        .p2align 1
d_pc16:
        .short  lib_near - .            # R_X86_64_PC16

# The last data section of this object: the first data section of lib.s
# (which starts with lib_near) follows it within a few bytes.
        .section .data.pc8,"aw",@progbits
d_pc8:
        .byte   lib_near - .            # R_X86_64_PC8
