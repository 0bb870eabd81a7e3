// kitemu relocation-coverage program, AArch64, object 2 of 2: targets.
//
// Everything main.s checks lives here, in another object, so that no
// reference can be resolved by the assembler. See tests/data/README.md.

        .text
        .globl  lib_ret7
        .type   lib_ret7, %function
lib_ret7:
        mov     w0, #7
        ret
        .size   lib_ret7, .-lib_ret7

        .globl  lib_ret9
        .type   lib_ret9, %function
lib_ret9:
        mov     w0, #9
        ret
        .size   lib_ret9, .-lib_ret9

// lib_call_back(x) = main_helper(x) + 1: a call back into main.s's second
// text section (R_AARCH64_CALL26, object 2 -> object 1).
        .globl  lib_call_back
        .type   lib_call_back, %function
lib_call_back:
        stp     x29, x30, [sp, #-16]!
        mov     x29, sp
        bl      main_helper
        add     w0, w0, #1
        ldp     x29, x30, [sp], #16
        ret
        .size   lib_call_back, .-lib_call_back

        .section .rodata,"a",%progbits
        .p2align 4
        .globl  lib_data
        .type   lib_data, %object
lib_data:
        .xword  0x1122334455667788
        .xword  0x99aabbccddeeff00
        .size   lib_data, 16

        .globl  lib_bytes
lib_bytes:
        .byte   0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17

        .p2align 1
        .globl  lib_halves
lib_halves:
        .hword  0x0a0, 0x0a1, 0x0a2, 0x0a3

        .p2align 2
        .globl  lib_words
lib_words:
        .word   0x0b0, 0x0b1, 0x0b2, 0x0b3

        .p2align 3
        .globl  lib_quads
lib_quads:
        .xword  0x0c0c0c0c0c0c0c00, 0x0c0c0c0c0c0c0c01, 0x0c0c0c0c0c0c0c02

        .p2align 4
        .globl  lib_oct
lib_oct:
        .xword  0x0d0d0d0d0d0d0d00, 0x0d0d0d0d0d0d0d01
        .xword  0x0d0d0d0d0d0d0d02, 0x0d0d0d0d0d0d0d03

        .data
        .p2align 4
        .globl  lib_near
lib_near:
        .xword  0x5a5a5a5a5a5a5a5a
        .xword  0
        .globl  lib_rw                  // 32 writable bytes, 16-aligned
lib_rw:
        .zero   32

// Absolute symbol small enough for a 16-bit field (an address of the image
// never is).
        .globl  K16
        K16 = 0xbeef
