# kitemu relocation-coverage program, RV64GC, object 1 of 2: the checks.
#
# Assembled with -mattr=+m,+a,+f,+d,+c,+relax: calls and address pairs carry
# R_RISCV_RELAX, `.p2align` in code carries R_RISCV_ALIGN and label
# differences become ADD*/SUB* pairs (linker relaxation could move labels).
# kitemu never relaxes, so all of them must come out exactly as assembled.
#
# main returns 0 when every check passed, else the number of the first
# failing check (kept in s1 while the check runs). After each group a line
# is printed with puts. Each check reaches its value *through* the
# relocated field and compares it with the same value reached another way.
# s2 holds &lib_data (read from an R_RISCV_64 word) from check 10 on; s3
# collects bits set by code in .text.far.
#
# The image is placed below 2 GiB (kitemu's default base), so the absolute
# medlow forms (R_RISCV_HI20/LO12_*, R_RISCV_32) can hold its addresses.

        .macro  CHECK n
        li      s1, \n
        .endm
        # continue when \a == \b, else fail with the current check number
        # (beq reaches only +-4 KiB: the long way to .Lfail is a jal)
        .macro  EXPECT_EQ a, b
        beq     \a, \b, .Lok\@
        j       .Lfail
.Lok\@:
        .endm
        .macro  PUTS msg
        lla     a0, \msg
        call    puts
        .endm

        .text
        .globl  main
        .type   main, @function
main:
        addi    sp, sp, -48
        sd      ra, 40(sp)
        sd      s1, 32(sp)
        sd      s2, 24(sp)
        sd      s3, 16(sp)

# ---- group 1: calls, jumps and branches ------------------------------------
        CHECK   1                       # R_RISCV_CALL (+ RELAX) into lib.s
        call    lib_ret7
        li      t0, 7
        EXPECT_EQ a0, t0

        CHECK   2                       # R_RISCV_CALL_PLT into lib.s
        call    lib_ret7@plt
        li      t0, 7
        EXPECT_EQ a0, t0

        CHECK   3                       # CALL to .text.far, whose `tail`
        call    far_tramp               # (CALL via t1) jumps into lib.s
        li      t0, 9
        EXPECT_EQ a0, t0

        CHECK   4                       # R_RISCV_JAL into lib.s
        jal     ra, lib_ret11
        li      t0, 11
        EXPECT_EQ a0, t0

        CHECK   5                       # lib.s calls back into .text.far:
        li      a0, 5                   # main_helper(5) + 1 = 16
        call    lib_call_back
        li      t0, 16
        EXPECT_EQ a0, t0

        # Code in .text.far sets a bit in s3 and comes back; the first
        # instruction at each landing label adds 0x100 (a landing one
        # instruction late is caught) and the check number is compared (a
        # landing in the wrong place is).
        CHECK   6                       # R_RISCV_BRANCH out to .text.far,
        li      s3, 0                   # which comes back with BRANCH
        beq     zero, zero, far_branch
        j       .Lfail
.Lback_branch:
        addi    s3, s3, 0x100
        li      t0, 6
        EXPECT_EQ s1, t0
        li      t0, 0x101
        EXPECT_EQ s3, t0
        jal     zero, far_jal           # R_RISCV_JAL (a plain `j`) out and
.Lback_jal:                             # back
        addi    s3, s3, 0x200
        li      t0, 6
        EXPECT_EQ s1, t0
        li      t0, 0x303
        EXPECT_EQ s3, t0

        CHECK   7                       # R_RISCV_RVC_BRANCH, RVC_JUMP inside
        li      a0, 0                   # .text (relaxation keeps them
        c.beqz  a0, .Lrvc1              # relocations)
        j       .Lfail
.Lrvc1:
        c.j     .Lrvc2
        j       .Lfail
.Lrvc2:
        li      a0, 1
        c.bnez  a0, .Lrvc3
        j       .Lfail
.Lrvc3:

        CHECK   8                       # RVC_BRANCH across sections
        li      a0, 0
        call    rvc_probe_branch
        li      t0, 42
        EXPECT_EQ a0, t0

        CHECK   9                       # RVC_JUMP across sections
        call    rvc_probe_jump
        li      t0, 43
        EXPECT_EQ a0, t0

        PUTS    msg_branch

# ---- group 2: addresses -------------------------------------------------------
        CHECK   10                      # PCREL_HI20 + PCREL_LO12_I (ld) of an
.Lpc_ptr:                               # R_RISCV_64 word, vs `lla`
        auipc   t0, %pcrel_hi(ptr_lib_data)
        ld      s2, %pcrel_lo(.Lpc_ptr)(t0)
        lla     a0, lib_data            # PCREL_HI20 + PCREL_LO12_I (addi)
        EXPECT_EQ a0, s2

        CHECK   11                      # PCREL pair with an addend: load
.Lpc_hi8:
        auipc   t0, %pcrel_hi(lib_data + 8)
        ld      a0, %pcrel_lo(.Lpc_hi8)(t0)
        li      t0, 0x99aabbccddeeff00
        EXPECT_EQ a0, t0

        CHECK   12                      # R_RISCV_PCREL_LO12_S (sd, sw)
.Lpc_st:
        auipc   t0, %pcrel_hi(lib_rw)
        sd      s2, %pcrel_lo(.Lpc_st)(t0)
        li      a1, 0x76543210
.Lpc_st8:
        auipc   t0, %pcrel_hi(lib_rw + 8)
        sw      a1, %pcrel_lo(.Lpc_st8)(t0)
        lla     t1, lib_rw
        ld      a0, 0(t1)
        EXPECT_EQ a0, s2
        lw      a0, 8(t1)
        EXPECT_EQ a0, a1

        CHECK   13                      # R_RISCV_HI20 + R_RISCV_LO12_I
        lui     a0, %hi(lib_data)       # (addi, ld)
        addi    a0, a0, %lo(lib_data)
        EXPECT_EQ a0, s2
        lui     a0, %hi(lib_quads + 16)
        ld      a0, %lo(lib_quads + 16)(a0)
        li      t0, 0x0c0c0c0c0c0c0c02
        EXPECT_EQ a0, t0

        CHECK   14                      # R_RISCV_LO12_S (sd)
        lui     t0, %hi(lib_rw + 16)
        sd      s2, %lo(lib_rw + 16)(t0)
        lla     t1, lib_rw
        ld      a0, 16(t1)
        EXPECT_EQ a0, s2

        CHECK   15                      # R_RISCV_GOT_HI20 + PCREL_LO12_I
.Lgot_data:
        auipc   a0, %got_pcrel_hi(lib_data)
        ld      a0, %pcrel_lo(.Lgot_data)(a0)
        EXPECT_EQ a0, s2

        CHECK   16                      # one canonical address for a host
.Lgot_puts:                             # function: GOT entry,
        auipc   s3, %got_pcrel_hi(puts)
        ld      s3, %pcrel_lo(.Lgot_puts)(s3)
        lla     a0, puts                # PCREL_HI20,
        EXPECT_EQ a0, s3
        ld      a0, ptr_puts            # and R_RISCV_64 agree
        EXPECT_EQ a0, s3
        lla     a0, msg_addr
        jalr    ra, 0(s3)               # puts through its GOT entry

# ---- group 3: data words --------------------------------------------------
        CHECK   17                      # R_RISCV_64 with addend 8
        ld      a0, ptr_quads1
        ld      a0, 0(a0)
        li      t0, 0x0c0c0c0c0c0c0c01
        EXPECT_EQ a0, t0

        CHECK   18                      # R_RISCV_32
        lwu     a0, d_abs32
        EXPECT_EQ a0, s2

        CHECK   19                      # R_RISCV_32_PCREL, addend 8
        lla     a0, d_pcrel32
        lw      a1, 0(a0)
        add     a0, a0, a1
        addi    t0, s2, 8
        EXPECT_EQ a0, t0

        CHECK   20                      # ADD8/SUB8 .. ADD64/SUB64: a span of
        lla     a0, .Lspan_a            # .text holding calls (RELAX) and a
        lla     a1, .Lspan_b            # .p2align (ALIGN)
        sub     s3, a1, a0
        lbu     a0, d_span8
        EXPECT_EQ a0, s3
        lhu     a0, d_span16
        EXPECT_EQ a0, s3
        lwu     a0, d_span32
        EXPECT_EQ a0, s3
        ld      a0, d_span64
        EXPECT_EQ a0, s3

        CHECK   21                      # ADD64/SUB64 and ADD32/SUB32 across
        lla     a0, main                # objects: lib_data - main
        sub     s3, s2, a0
        ld      a0, d_diff64
        EXPECT_EQ a0, s3
        lw      a0, d_diff32
        sext.w  t0, s3
        EXPECT_EQ a0, t0

        CHECK   22                      # SET6/SUB6: low 6 bits only, the
        lla     a0, set_a               # opcode bits 7:6 of the byte stay
        lla     a1, set_b
        sub     s3, a1, a0
        andi    t1, s3, 63
        lbu     a0, d_set6
        ori     t0, t1, 0x40
        EXPECT_EQ a0, t0
        lbu     a0, d_set6_c0
        ori     t0, t1, 0xc0
        EXPECT_EQ a0, t0

        CHECK   23                      # SET8/SUB8, SET16/SUB16, SET32/SUB32
        lbu     a0, d_set8
        andi    t0, s3, 0xff
        EXPECT_EQ a0, t0
        lhu     a0, d_set16
        EXPECT_EQ a0, s3
        lwu     a0, d_set32
        EXPECT_EQ a0, s3

        CHECK   24                      # SET32 alone: an absolute address
        lwu     a0, d_set32_abs
        EXPECT_EQ a0, s2

        PUTS    msg_data

# A span of code for the label-difference checks: it is executed (the
# .p2align padding is NOPs kitemu keeps) and its length is measured.
.Lspan_a:
        CHECK   25
        call    lib_ret9
        li      t0, 9
        EXPECT_EQ a0, t0
        .p2align 4                      # R_RISCV_ALIGN
        call    lib_ret7
        li      t0, 7
        EXPECT_EQ a0, t0
.Lspan_b:

        li      a0, 0
.Lret:
        ld      ra, 40(sp)
        ld      s1, 32(sp)
        ld      s2, 24(sp)
        ld      s3, 16(sp)
        addi    sp, sp, 48
        ret
.Lfail:
        mv      a0, s1
        j       .Lret
        .size   main, .-main

# ---- a second text section ----------------------------------------------
        .section .text.far,"ax",@progbits
        .type   far_tramp, @function
far_tramp:
        tail    lib_ret9                # R_RISCV_CALL via t1
        .size   far_tramp, .-far_tramp

far_branch:
        ori     s3, s3, 1
        bne     s3, zero, .Lback_branch # R_RISCV_BRANCH back into .text
        j       .Lfail
far_jal:
        ori     s3, s3, 2
        j       .Lback_jal              # R_RISCV_JAL back into .text

        .globl  main_helper
        .type   main_helper, @function
main_helper:                            # 3 * x
        slli    t0, a0, 1
        add     a0, a0, t0
        ret
        .size   main_helper, .-main_helper

# ---- compressed branches across sections ------------------------------------
# llvm-mc 14 turns a c.beqz/c.j whose target is in another section into
# the 4-byte form, so these two are spelled as the raw RVC instruction plus
# a .reloc. The two sections are small and adjacent, within c.beqz's
# +-256 bytes.
        .section .text.rvc,"ax",@progbits
        .p2align 1
rvc_probe_branch:                       # a0 == 0: returns 42 via rvc_land
        .reloc  ., R_RISCV_RVC_BRANCH, rvc_land
        .half   0xc101                  # c.beqz a0, <rvc_land>
        li      a0, 1
        ret
rvc_probe_jump:                         # returns 43 via rvc_land2
        .reloc  ., R_RISCV_RVC_JUMP, rvc_land2
        .half   0xa001                  # c.j <rvc_land2>
        li      a0, 1
        ret

        .section .text.rvc_land,"ax",@progbits
        .p2align 1
rvc_land:
        li      a0, 42
        ret
rvc_land2:
        li      a0, 43
        ret

# ---- read-only data ----------------------------------------------------------
        .section .rodata,"a",@progbits
        .p2align 3
ptr_lib_data:
        .reloc  ., R_RISCV_NONE, lib_ret9       # must change nothing
        .dword  lib_data                # R_RISCV_64
ptr_quads1:
        .dword  lib_quads + 8           # R_RISCV_64, addend 8
ptr_puts:
        .dword  puts                    # R_RISCV_64 against a host function
d_span64:
        .dword  .Lspan_b - .Lspan_a     # ADD64/SUB64
d_diff64:
        .dword  lib_data - main         # ADD64/SUB64 across objects
d_span32:
        .word   .Lspan_b - .Lspan_a     # ADD32/SUB32
d_diff32:
        .word   lib_data - main         # ADD32/SUB32 across objects
d_abs32:
        .word   lib_data                # R_RISCV_32
d_pcrel32:
        .reloc  ., R_RISCV_32_PCREL, lib_data + 8
        .word   0
d_set32:
        .reloc  ., R_RISCV_SET32, set_b
        .reloc  ., R_RISCV_SUB32, set_a
        .word   0
d_set32_abs:
        .reloc  ., R_RISCV_SET32, lib_data
        .word   0
d_span16:
        .half   .Lspan_b - .Lspan_a     # ADD16/SUB16
d_set16:
        .reloc  ., R_RISCV_SET16, set_b
        .reloc  ., R_RISCV_SUB16, set_a
        .half   0
d_span8:
        .byte   .Lspan_b - .Lspan_a     # ADD8/SUB8
d_set8:
        .reloc  ., R_RISCV_SET8, set_b
        .reloc  ., R_RISCV_SUB8, set_a
        .byte   0
# DW_CFA_advance_loc style bytes: opcode in bits 7:6, delta in bits 5:0.
d_set6:
        .reloc  ., R_RISCV_SET6, set_b
        .reloc  ., R_RISCV_SUB6, set_a
        .byte   0x40
d_set6_c0:
        .reloc  ., R_RISCV_SET6, set_b
        .reloc  ., R_RISCV_SUB6, set_a
        .byte   0xc0

msg_branch:
        .asciz  "rv64 calls and branches: ok"
msg_addr:
        .asciz  "rv64 addresses: ok"
msg_data:
        .asciz  "rv64 data words: ok"

# Labels for SET*/SUB*: set_b - set_a = 0x95. The section is 128-aligned
# and bit 6 of set_b's offset is clear, so a SET6 that wrote 7 bits would
# clear the 0x40 opcode bit (and one that wrote 8 would clear 0x80).
        .section .rodata.set,"a",@progbits
        .p2align 7
        .zero   4
set_a:
        .zero   0x95
set_b:
        .byte   0
