# kitemu relocation-coverage program, RV64GC, object 2 of 2: targets.
#
# Everything main.s checks lives here, in another object, so that no
# reference can be resolved by the assembler. See tests/data/README.md.

        .text
        .globl  lib_ret7
        .type   lib_ret7, @function
lib_ret7:
        li      a0, 7
        ret
        .size   lib_ret7, .-lib_ret7

        .globl  lib_ret9
        .type   lib_ret9, @function
lib_ret9:
        li      a0, 9
        ret
        .size   lib_ret9, .-lib_ret9

        .globl  lib_ret11
        .type   lib_ret11, @function
lib_ret11:
        li      a0, 11
        ret
        .size   lib_ret11, .-lib_ret11

# lib_call_back(x) = main_helper(x) + 1: a call back into main.s's second
# text section (R_RISCV_CALL_PLT, object 2 -> object 1).
        .globl  lib_call_back
        .type   lib_call_back, @function
lib_call_back:
        addi    sp, sp, -16
        sd      ra, 8(sp)
        call    main_helper@plt
        addi    a0, a0, 1
        ld      ra, 8(sp)
        addi    sp, sp, 16
        ret
        .size   lib_call_back, .-lib_call_back

        .section .rodata,"a",@progbits
        .p2align 4
        .globl  lib_data
        .type   lib_data, @object
lib_data:
        .dword  0x1122334455667788
        .dword  0x99aabbccddeeff00
        .size   lib_data, 16

        .p2align 2
        .globl  lib_words
lib_words:
        .word   0x0b0, 0x0b1, 0x0b2, 0x0b3

        .p2align 3
        .globl  lib_quads
lib_quads:
        .dword  0x0c0c0c0c0c0c0c00, 0x0c0c0c0c0c0c0c01, 0x0c0c0c0c0c0c0c02

        .data
        .p2align 3
        .globl  lib_rw                  # 32 writable bytes
lib_rw:
        .zero   32
