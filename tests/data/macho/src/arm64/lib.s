// kitemu Mach-O relocation-coverage program, arm64, object 2 of 2: targets.
//
// Everything main.s checks lives here, in another object, so that no
// reference can be resolved by the assembler. See tests/data/macho/README.md.

        .section __TEXT,__text,regular,pure_instructions
        .p2align 2
        .globl  _lib_ret7
_lib_ret7:
        mov     w0, #7
        ret

        .globl  _lib_ret9
_lib_ret9:
        mov     w0, #9
        ret

// _lib_entries + 8*k returns k + 1: targets of bl with an ADDEND
        .globl  _lib_entries
_lib_entries:
        mov     w0, #1
        ret
        mov     w0, #2
        ret
        mov     w0, #3
        ret

// _lib_call_back(x) = _main_helper(x) + 1: a call back into main.s's second
// text section (BRANCH26, object 2 -> object 1).
        .globl  _lib_call_back
_lib_call_back:
        stp     x29, x30, [sp, #-16]!
        bl      _main_helper
        add     w0, w0, #1
        ldp     x29, x30, [sp], #16
        ret

        .globl  _lib_hidden
        .private_extern _lib_hidden
_lib_hidden:                            // N_EXT|N_PEXT: global to the link
        mov     w0, #26
        ret

        .globl  _weak_fn
_weak_fn:                               // beats main.s's weak definition
        mov     w0, #2
        ret

        .section __TEXT,__const
        .p2align 4
        .globl  _lib_data
_lib_data:
        .quad   0x1122334455667788
        .quad   0x99aabbccddeeff00

        .globl  _lib_word
_lib_word:
        .long   0x12345678

        .globl  _lib_bytes
_lib_bytes:
        .byte   0x10, 0x11, 0x12, 0x13

        .p2align 1
        .globl  _lib_halves
_lib_halves:
        .short  0xa0, 0xa1, 0xa2

        .p2align 2
        .globl  _lib_words
_lib_words:
        .long   0xb0, 0xb1, 0xb2, -2

        .p2align 3
        .globl  _lib_quads
_lib_quads:
        .quad   0x0c0c0c0c0c0c0c00
        .quad   0x0c0c0c0c0c0c0c01
        .quad   0x0c0c0c0c0c0c0c02

        .p2align 4
        .globl  _lib_oct
_lib_oct:
        .quad   0x0d0d0d0d0d0d0d00, 0x0d0d0d0d0d0d0d01
        .quad   0x0d0d0d0d0d0d0d02, 0x0d0d0d0d0d0d0d03

        .p2align 3
        .globl  _lib_table
_lib_table:
        .quad   0x0101010101010101
        .quad   0x0202020202020202
        .quad   0x0303030303030303

// 8 KiB with markers at +0x1008 (an addend that crosses a 4 KiB page) and
// +0x1ff8, 8 bytes before _lib_big_end.
        .p2align 3
        .globl  _lib_big
_lib_big:
        .space  0x1008
        .quad   0x0b16b16b16b16b16
        .space  0x1000 - 24
        .quad   0x0e0d0e0d0e0d0e0d
        .globl  _lib_big_end
_lib_big_end:
        .quad   0

        .section __DATA,__data
        .p2align 4
        .globl  _lib_rw
_lib_rw:
        .space  32

        .globl  _lib_abs
        _lib_abs = 0x123456789a

        .subsections_via_symbols
