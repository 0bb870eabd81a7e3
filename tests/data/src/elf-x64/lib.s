# kitemu relocation-coverage program, x86-64, object 2 of 2: targets.
#
# Everything main.s checks lives here, in another object, so that no
# reference can be resolved by the assembler. See tests/data/README.md.

        .text
        .globl  lib_ret7
        .type   lib_ret7, @function
lib_ret7:
        movl    $7, %eax
        ret
        .size   lib_ret7, .-lib_ret7

        .globl  lib_ret9
        .type   lib_ret9, @function
lib_ret9:
        movl    $9, %eax
        ret
        .size   lib_ret9, .-lib_ret9

# lib_call_back(x) = main_helper(x) + 1: a call back into main.s's second
# text section (R_X86_64_PLT32, object 2 -> object 1).
        .globl  lib_call_back
        .type   lib_call_back, @function
lib_call_back:
        subq    $8, %rsp
        call    main_helper@PLT
        addl    $1, %eax
        addq    $8, %rsp
        ret
        .size   lib_call_back, .-lib_call_back

        .section .rodata,"a",@progbits
        .p2align 4
        .globl  lib_data
        .type   lib_data, @object
lib_data:
        .quad   0x1122334455667788
        .quad   0x99aabbccddeeff00
        .size   lib_data, 16

        .globl  lib_word
        .type   lib_word, @object
lib_word:
        .long   0x12345678
        .size   lib_word, 4

        .p2align 3
        .globl  lib_table
        .type   lib_table, @object
lib_table:
        .quad   0x0101010101010101
        .quad   0x0202020202020202
        .quad   0x0303030303030303
        .size   lib_table, 24

# lib_near must stay the first thing in this object's first data section:
# main.s's .data.pc8 (the last data section of the first object) holds a
# one-byte PC-relative reference to it (R_X86_64_PC8, +-128 bytes).
        .data
        .p2align 3
        .globl  lib_near
        .type   lib_near, @object
lib_near:
        .quad   0x5a5a5a5a5a5a5a5a
        .size   lib_near, 8

# Absolute symbols small enough for 16- and 8-bit fields (an address of
# the image never is).
        .globl  K16
        .globl  K8
        K16 = 0xbeef
        K8 = 0xa5
