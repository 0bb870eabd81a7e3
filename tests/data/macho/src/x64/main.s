# kitemu Mach-O relocation-coverage program, x86-64, object 1 of 2: the checks.
#
# _main returns 0 when every check passed, else the number of the first
# failing check (kept in %r12d while the check runs). After each group a
# line is printed with puts (one with printf). Each check reaches its value
# *through* the relocated field and compares it with the same value reached
# another way. Targets are in lib.s (another object) or in this object's
# other sections. %r13 holds &_lib_data from check 6 on.
#
# Extern relocations name a symbol; non-extern ones (r_extern=0) name a
# section ordinal: llvm-mc writes those for references to an assembler-
# temporary label (L...) with no non-temporary symbol before it in its
# section - the L_nx_* labels of __DATA,__nx, L_far_local at the start of
# __TEXT,__far, and "." at the start of __DATA,__diffs.

        .section __TEXT,__text,regular,pure_instructions
        .globl  _main
        .p2align 4
_main:
        pushq   %rbx
        pushq   %r12
        pushq   %r13                    # %rsp is 16-byte aligned from here

# ---- group 1: calls -------------------------------------------------------
        movl    $1, %r12d               # X86_64_RELOC_BRANCH (extern) into lib.s
        callq   _lib_ret7
        cmpl    $7, %eax
        jne     Lfail

        movl    $2, %r12d               # BRANCH to __TEXT,__far of this object,
        callq   _far_tramp              # whose jmp (BRANCH) tail-calls _lib_ret9
        cmpl    $9, %eax
        jne     Lfail

        movl    $3, %r12d               # BRANCH, non-extern (section __TEXT,__far)
        callq   L_far_local
        cmpl    $11, %eax
        jne     Lfail

        movl    $4, %r12d               # X86_64_RELOC_GOT: call *GOT
        callq   *_lib_ret7@GOTPCREL(%rip)
        cmpl    $7, %eax
        jne     Lfail

        movl    $5, %r12d               # lib.s calls back into __TEXT,__far:
        movl    $5, %edi                # _main_helper(5) + 1 = 16
        callq   _lib_call_back
        cmpl    $16, %eax
        jne     Lfail

        leaq    L_msg_calls(%rip), %rdi
        callq   _puts                   # BRANCH to a host function (stub)

# ---- group 2: rip-relative data: SIGNED, SIGNED_1/2/4 -------------------------
        movl    $6, %r12d               # X86_64_RELOC_SIGNED (lea) vs UNSIGNED
        leaq    _lib_data(%rip), %r13
        movq    ptr_lib_data(%rip), %rax
        cmpq    %rax, %r13
        jne     Lfail

        movl    $7, %r12d               # SIGNED load of a value in lib.s
        movl    _lib_word(%rip), %eax
        cmpl    $0x12345678, %eax
        jne     Lfail

        movl    $8, %r12d               # SIGNED with an addend (field holds 8)
        movl    _lib_words+8(%rip), %eax
        cmpl    $0xb2, %eax
        jne     Lfail

        # SIGNED_1/2/4: a 1/2/4-byte immediate follows the displacement, so
        # it counts from 1/2/4 bytes past the end of the field. Each target
        # is one 8-byte slot filled with 0xa5 in lib.s; a displacement off by
        # one byte writes into the wrong bytes and the whole slot is compared.
        movl    $9, %r12d               # X86_64_RELOC_SIGNED_1 (extern)
        movb    $0x11, _lib_rw_b(%rip)
        movq    ptr_lib_rw(%rip), %rbx  # %rbx = &_lib_rw_b (UNSIGNED)
        movq    (%rbx), %rax
        movabsq $0xa5a5a5a5a5a5a511, %rcx
        cmpq    %rcx, %rax
        jne     Lfail

        movl    $10, %r12d              # X86_64_RELOC_SIGNED_2 (extern)
        movw    $0x2222, _lib_rw_h(%rip)
        movq    8(%rbx), %rax
        movabsq $0xa5a5a5a5a5a52222, %rcx
        cmpq    %rcx, %rax
        jne     Lfail

        movl    $11, %r12d              # X86_64_RELOC_SIGNED_4 (extern)
        movl    $0x44444444, _lib_rw_w(%rip)
        movq    16(%rbx), %rax
        movabsq $0xa5a5a5a544444444, %rcx
        cmpq    %rcx, %rax
        jne     Lfail

        movl    $12, %r12d              # SIGNED_1, non-extern (__DATA,__nx)
        movb    $0x11, L_nx_b(%rip)
        movq    ptr_nx(%rip), %rbx      # %rbx = &L_nx_b (UNSIGNED, non-extern)
        movq    (%rbx), %rax
        movabsq $0x5a5a5a5a5a5a5a11, %rcx
        cmpq    %rcx, %rax
        jne     Lfail

        movl    $13, %r12d              # SIGNED_2, non-extern
        movw    $0x2222, L_nx_h(%rip)
        movq    8(%rbx), %rax
        movabsq $0x5a5a5a5a5a5a2222, %rcx
        cmpq    %rcx, %rax
        jne     Lfail

        movl    $14, %r12d              # SIGNED_4, non-extern
        movl    $0x44444444, L_nx_w(%rip)
        movq    16(%rbx), %rax
        movabsq $0x5a5a5a5a44444444, %rcx
        cmpq    %rcx, %rax
        jne     Lfail

        movl    $15, %r12d              # SIGNED, non-extern, vs UNSIGNED
        leaq    L_nx_q(%rip), %rax      # non-extern words (8 and 4 bytes)
        leaq    24(%rbx), %rcx
        cmpq    %rcx, %rax
        jne     Lfail
        movq    ptr_nx_q(%rip), %rcx
        cmpq    %rcx, %rax
        jne     Lfail
        movl    d_nx_q32(%rip), %ecx
        cmpq    %rcx, %rax
        jne     Lfail
        movl    $L_nx_q, %ecx           # UNSIGNED (4 bytes), non-extern, in code
        cmpq    %rcx, %rax
        jne     Lfail

        movl    $16, %r12d              # SIGNED_4 into zero-fill (__DATA,__bss)
        movq    $0x7777, _main_bss+8(%rip)      # (addend: plain SIGNED)
        movq    $0x6666, _main_bss(%rip)        # SIGNED_4
        movq    ptr_bss(%rip), %rax
        cmpq    $0x6666, (%rax)
        jne     Lfail
        cmpq    $0x7777, 8(%rax)
        jne     Lfail

        leaq    L_msg_rip(%rip), %rdi
        callq   _puts

# ---- group 3: absolute: UNSIGNED ---------------------------------------------
        movl    $17, %r12d              # UNSIGNED (8 bytes) with addend 16
        movq    ptr_table2(%rip), %rax
        movq    (%rax), %rax
        movabsq $0x0303030303030303, %rcx
        cmpq    %rcx, %rax
        jne     Lfail

        movl    $18, %r12d              # UNSIGNED (4 bytes): imm32 and .long
        movl    $_lib_data, %eax
        cmpq    %rax, %r13
        jne     Lfail
        movl    d_abs32(%rip), %eax
        movl    (%rax), %eax
        cmpl    $0x12345678, %eax
        jne     Lfail

        movl    $19, %r12d              # UNSIGNED against an absolute symbol
        movq    d_abs_sym(%rip), %rax
        movabsq $0x123456789a, %rcx
        cmpq    %rcx, %rax
        jne     Lfail

        leaq    L_msg_abs(%rip), %rdi
        callq   _puts

# ---- group 4: GOT -------------------------------------------------------------
        movl    $20, %r12d              # X86_64_RELOC_GOT_LOAD (movq)
        movq    _lib_data@GOTPCREL(%rip), %rax
        cmpq    %rax, %r13
        jne     Lfail

        movl    $21, %r12d              # X86_64_RELOC_GOT (movl, pushq)
        movl    _lib_data@GOTPCREL(%rip), %eax
        cmpl    %eax, %r13d
        jne     Lfail
        pushq   _lib_data@GOTPCREL(%rip)
        popq    %rax
        cmpq    %rax, %r13
        jne     Lfail

        movl    $22, %r12d              # GOT in data: .long _x@GOTPCREL+4 = G - P
        leaq    d_gotpcrel(%rip), %rax
        movslq  (%rax), %rcx
        addq    %rcx, %rax              # the GOT entry of _lib_table
        movq    (%rax), %rax
        leaq    _lib_table(%rip), %rcx
        cmpq    %rcx, %rax
        jne     Lfail

        movl    $23, %r12d              # one canonical address for a host
        movq    _puts@GOTPCREL(%rip), %rax      # function: GOT entry,
        leaq    _puts(%rip), %rcx               # SIGNED,
        cmpq    %rcx, %rax
        jne     Lfail
        movq    ptr_puts(%rip), %rcx            # and UNSIGNED agree
        cmpq    %rcx, %rax
        jne     Lfail

        leaq    L_msg_got(%rip), %rdi
        callq   *_puts@GOTPCREL(%rip)   # GOT call of a host function

# ---- group 5: differences: SUBTRACTOR + UNSIGNED ------------------------------
        # (llvm-mc accepts no undefined symbol in a difference on x86-64:
        # the minuends are this object's, in other sections.)
        movl    $24, %r12d              # 8 bytes, both extern: _diff_target - _main
        leaq    _main(%rip), %rbx
        leaq    _diff_target(%rip), %rsi
        movq    d_diff64(%rip), %rax
        addq    %rbx, %rax
        cmpq    %rax, %rsi
        jne     Lfail
        movq    (%rax), %rax            # ... and it really is _diff_target
        cmpq    $0xd1ff, %rax
        jne     Lfail

        movl    $25, %r12d              # 4 bytes, both extern
        movslq  d_diff32(%rip), %rax
        addq    %rbx, %rax
        cmpq    %rax, %rsi
        jne     Lfail

        movl    $26, %r12d              # _diff_target - . (subtrahend: d_pcrel_word)
        leaq    d_pcrel_word(%rip), %rax
        movslq  (%rax), %rcx
        addq    %rcx, %rax
        cmpq    %rax, %rsi
        jne     Lfail

        movl    $27, %r12d              # minuend non-extern: L_nx_q - _main
        movq    d_nx_minus_main(%rip), %rax
        addq    %rbx, %rax
        leaq    L_nx_q(%rip), %rcx
        cmpq    %rcx, %rax
        jne     Lfail

        movl    $28, %r12d              # subtrahend non-extern: _diff_target - .
        leaq    L_diffs(%rip), %rax     # at the start of __DATA,__diffs,
        movslq  (%rax), %rcx            # and L_nx_q - . (both non-extern)
        addq    %rax, %rcx
        cmpq    %rcx, %rsi
        jne     Lfail
        movq    4(%rax), %rcx
        leaq    4(%rax,%rcx), %rcx
        leaq    L_nx_q(%rip), %rdx
        cmpq    %rcx, %rdx
        jne     Lfail
        movq    12(%rax), %rcx          # _diff_target - . (8 bytes)
        leaq    12(%rax,%rcx), %rcx
        cmpq    %rcx, %rsi
        jne     Lfail
        movslq  20(%rax), %rcx          # L_nx_q - . (4 bytes)
        leaq    20(%rax,%rcx), %rcx
        cmpq    %rcx, %rdx
        jne     Lfail
        movslq  d_nx_minus_main32(%rip), %rcx   # L_nx_q - _main (4 bytes)
        addq    %rbx, %rcx
        cmpq    %rcx, %rdx
        jne     Lfail

        leaq    L_fmt_diff(%rip), %rdi  # printf: a variadic host call
        movl    $5, %esi
        xorl    %eax, %eax
        callq   _printf

# ---- group 6: symbols -----------------------------------------------------------
        movl    $29, %r12d              # a private extern (N_PEXT) of lib.s
        callq   _lib_hidden
        cmpl    $29, %eax
        jne     Lfail

        movl    $30, %r12d              # weak definition here, strong in lib.s
        callq   _weak_fn
        cmpl    $2, %eax
        jne     Lfail

        movl    $31, %r12d              # weak reference, undefined: address 0
        movq    _maybe_missing@GOTPCREL(%rip), %rax
        testq   %rax, %rax
        jne     Lfail

        movl    $32, %r12d              # the constructor (__mod_init_func) ran
        cmpl    $0xc0, _ctor_ran(%rip)
        jne     Lfail

        movl    $33, %r12d              # a common symbol (N_UNDF with a size)
        movq    $0x3333, _main_common(%rip)
        movq    ptr_common(%rip), %rax
        cmpq    $0x3333, (%rax)
        jne     Lfail

        leaq    L_msg_sym(%rip), %rdi
        callq   _puts

        xorl    %eax, %eax
Lret:
        popq    %r13
        popq    %r12
        popq    %rbx
        retq
Lfail:
        movl    %r12d, %eax
        jmp     Lret

        .globl  _weak_fn
        .weak_definition _weak_fn
_weak_fn:                               # lib.s's strong one wins: 2
        movl    $1, %eax
        retq

_ctor:                                  # run before _main
        movl    $0xc0, _ctor_ran(%rip)
        retq

# ---- a second text section ------------------------------------------------------
        .section __TEXT,__far,regular,pure_instructions
L_far_local:                            # no symbol before it: calls to it are
        movl    $11, %eax               # non-extern (section ordinal 2)
        retq
_far_tramp:
        jmp     _lib_ret9               # BRANCH on a jmp

        .globl  _main_helper
_main_helper:                           # 3 * x
        leal    (%rdi,%rdi,2), %eax
        retq

# ---- read-only data --------------------------------------------------------------
        .section __TEXT,__const
        .p2align 3
ptr_lib_data:
        .quad   _lib_data               # UNSIGNED, 8 bytes
ptr_table2:
        .quad   _lib_table + 16         # UNSIGNED, addend 16
ptr_puts:
        .quad   _puts                   # UNSIGNED against a host function
ptr_lib_rw:
        .quad   _lib_rw_b
d_abs_sym:
        .quad   _lib_abs                # UNSIGNED against an N_ABS symbol
d_diff64:
        .quad   _diff_target - _main    # SUBTRACTOR + UNSIGNED, 8 bytes
d_diff32:
        .long   _diff_target - _main    # SUBTRACTOR + UNSIGNED, 4 bytes
d_abs32:
        .long   _lib_word               # UNSIGNED, 4 bytes
d_gotpcrel:
        .long   _lib_table@GOTPCREL+4   # X86_64_RELOC_GOT in data
d_pcrel_word:
        .long   _diff_target - .        # SUBTRACTOR d_pcrel_word + UNSIGNED

        .section __DATA,__const         # read-only after relocation
        .p2align 3
ptr_nx:
        .quad   L_nx_b                  # UNSIGNED, non-extern
ptr_nx_q:
        .quad   L_nx_q                  # UNSIGNED, non-extern
ptr_bss:
        .quad   _main_bss               # UNSIGNED against zero-fill
ptr_common:
        .quad   _main_common            # UNSIGNED against a common symbol
d_nx_minus_main:
        .quad   L_nx_q - _main          # SUBTRACTOR + UNSIGNED (non-extern)
d_nx_q32:
        .long   L_nx_q                  # UNSIGNED, 4 bytes, non-extern
d_nx_minus_main32:
        .long   L_nx_q - _main          # SUBTRACTOR + UNSIGNED (non-extern), 4 bytes

        .section __TEXT,__cstring,cstring_literals
L_msg_calls:
        .asciz  "x64 calls: ok"
L_msg_rip:
        .asciz  "x64 rip-relative data: ok"
L_msg_abs:
        .asciz  "x64 absolute data: ok"
L_msg_got:
        .asciz  "x64 got: ok"
L_fmt_diff:
        .asciz  "x64 differences: %d ok\n"
L_msg_sym:
        .asciz  "x64 symbols: ok"

# ---- writable data ----------------------------------------------------------------
# Only assembler-temporary labels: every reference to them is non-extern.
        .section __DATA,__nx
        .p2align 3
L_nx_b: .quad   0x5a5a5a5a5a5a5a5a
L_nx_h: .quad   0x5a5a5a5a5a5a5a5a
L_nx_w: .quad   0x5a5a5a5a5a5a5a5a
L_nx_q: .quad   0

# "." at the start of this section has no symbol before it: the
# SUBTRACTOR of "_lib_data - ." is non-extern (section ordinal).
        .section __DATA,__diffs
L_diffs:
        .long   _diff_target - .        # minuend extern, subtrahend section
        .quad   L_nx_q - .              # both sections
        .quad   _diff_target - .
        .long   L_nx_q - .

        .section __DATA,__data
        .globl  _ctor_ran
        .p2align 2
_ctor_ran:
        .long   0
        .p2align 3
        .globl  _diff_target
_diff_target:                           # the minuend of the differences
        .quad   0xd1ff

        .section __DATA,__mod_init_func,mod_init_funcs
        .p2align 3
        .quad   _ctor

        .zerofill __DATA,__bss,_main_bss,16,4
        .comm   _main_common,8,3

        .weak_reference _maybe_missing
        .subsections_via_symbols
