# kitemu Mach-O relocation-coverage program, x86-64, object 2 of 2: targets.
#
# Everything main.s checks lives here, in another object, so that no
# reference can be resolved by the assembler. See tests/data/macho/README.md.

        .section __TEXT,__text,regular,pure_instructions
        .globl  _lib_ret7
_lib_ret7:
        movl    $7, %eax
        retq

        .globl  _lib_ret9
_lib_ret9:
        movl    $9, %eax
        retq

# _lib_call_back(x) = _main_helper(x) + 1: a call back into main.s's second
# text section (BRANCH, object 2 -> object 1).
        .globl  _lib_call_back
_lib_call_back:
        subq    $8, %rsp
        callq   _main_helper
        addl    $1, %eax
        addq    $8, %rsp
        retq

        .globl  _lib_hidden
        .private_extern _lib_hidden
_lib_hidden:                            # N_EXT|N_PEXT: global to the link
        movl    $29, %eax
        retq

        .globl  _weak_fn
_weak_fn:                               # beats main.s's weak definition
        movl    $2, %eax
        retq

        .section __TEXT,__const
        .p2align 4
        .globl  _lib_data
_lib_data:
        .quad   0x1122334455667788
        .quad   0x99aabbccddeeff00

        .globl  _lib_word
_lib_word:
        .long   0x12345678

        .globl  _lib_words
_lib_words:
        .long   0xb0, 0xb1, 0xb2

        .p2align 3
        .globl  _lib_table
_lib_table:
        .quad   0x0101010101010101
        .quad   0x0202020202020202
        .quad   0x0303030303030303

# Three 8-byte slots written through SIGNED_1/2/4 displacements.
        .section __DATA,__data
        .p2align 3
        .globl  _lib_rw_b, _lib_rw_h, _lib_rw_w
_lib_rw_b:
        .quad   0xa5a5a5a5a5a5a5a5
_lib_rw_h:
        .quad   0xa5a5a5a5a5a5a5a5
_lib_rw_w:
        .quad   0xa5a5a5a5a5a5a5a5

        .globl  _lib_abs
        _lib_abs = 0x123456789a

        .subsections_via_symbols
