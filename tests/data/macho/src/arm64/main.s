// kitemu Mach-O relocation-coverage program, arm64, object 1 of 2: the checks.
//
// _main returns 0 when every check passed, else the number of the first
// failing check (kept in w19 while the check runs). After each group a line
// is printed with puts (one with printf). Each check reaches its value
// *through* the relocated field and compares it with the same value reached
// another way. Targets are in lib.s (another object) or in this object's
// other sections. x20 holds &_lib_data (read from an UNSIGNED word) from
// check 6 on.
//
// llvm-mc writes every arm64 relocation of a loaded section extern: a
// reference to an assembler-temporary label becomes "section-start symbol
// (ltmpN) or preceding symbol + ARM64_RELOC_ADDEND". The addends below
// (_sym@PAGE+16, bl _sym+8, negative ones) all travel in ADDEND.

        .section __TEXT,__text,regular,pure_instructions
        .globl  _main
        .p2align 2
_main:
        stp     x29, x30, [sp, #-48]!
        mov     x29, sp
        stp     x19, x20, [sp, #16]
        stp     x21, x22, [sp, #32]

// ---- group 1: branches --------------------------------------------------------
        mov     w19, #1                 // ARM64_RELOC_BRANCH26 (bl) into lib.s
        bl      _lib_ret7
        cmp     w0, #7
        b.ne    Lfail

        mov     w19, #2                 // BRANCH26 to __TEXT,__far, whose b
        bl      _far_tramp              // (BRANCH26) tail-calls _lib_ret9
        cmp     w0, #9
        b.ne    Lfail

        mov     w19, #3                 // lib.s calls back into __TEXT,__far:
        mov     w0, #5                  // _main_helper(5) + 1 = 16
        bl      _lib_call_back
        cmp     w0, #16
        b.ne    Lfail

        mov     w19, #4                 // ADDEND + BRANCH26: _lib_entries is a
        bl      _lib_entries + 8        // table of 8-byte functions returning
        cmp     w0, #2                  // 1, 2, 3
        b.ne    Lfail
        bl      _lib_entries + 16
        cmp     w0, #3
        b.ne    Lfail

        mov     w19, #5                 // b out to __TEXT,__far and back to a
        mov     x21, #0                 // temporary label (BRANCH26 against
        b       _far_jump_out           // _main + ADDEND)
Lback:
        add     x21, x21, #0x100        // a landing one instruction late is caught
        cmp     x21, #0x101
        b.ne    Lfail

        adrp    x0, L_msg_branch@PAGE
        add     x0, x0, L_msg_branch@PAGEOFF
        bl      _puts                   // BRANCH26 to a host function (stub)

// ---- group 2: page addresses ---------------------------------------------------
        mov     w19, #6                 // PAGE21 + PAGEOFF12 (add) vs UNSIGNED,
        adrp    x1, ptr_lib_data@PAGE   // itself loaded with PAGEOFF12 (ldr x)
        ldr     x20, [x1, ptr_lib_data@PAGEOFF]
        adrp    x0, _lib_data@PAGE
        add     x0, x0, _lib_data@PAGEOFF
        cmp     x0, x20
        b.ne    Lfail

        mov     w19, #7                 // ADDEND on PAGE21 and PAGEOFF12
        adrp    x0, _lib_data@PAGE + 8
        add     x0, x0, _lib_data@PAGEOFF + 8
        add     x1, x20, #8
        cmp     x0, x1
        b.ne    Lfail

        mov     w19, #8                 // an addend that crosses pages:
        adrp    x0, _lib_big@PAGE + 0x1008      // Page(S + A), not Page(S) + A
        add     x0, x0, _lib_big@PAGEOFF + 0x1008
        ldr     x1, [x0]
        ldr     x2, =0x0b16b16b16b16b16
        cmp     x1, x2
        b.ne    Lfail
        adrp    x3, ptr_lib_big@PAGE
        ldr     x3, [x3, ptr_lib_big@PAGEOFF]
        add     x3, x3, #0x1000
        add     x3, x3, #8
        cmp     x0, x3
        b.ne    Lfail

        mov     w19, #9                 // ADDEND on a load (llvm-mc 14 encodes a
        adrp    x0, _lib_big@PAGE + 0x1ff8      // negative ADDEND wrongly: it spills
        ldr     x1, [x0, _lib_big@PAGEOFF + 0x1ff8]     // into r_type; see README)
        ldr     x2, =0x0e0d0e0d0e0d0e0d
        cmp     x1, x2
        b.ne    Lfail

        adrp    x0, L_msg_page@PAGE
        add     x0, x0, L_msg_page@PAGEOFF
        bl      _puts

// ---- group 3: PAGEOFF12 on loads and stores of every size -----------------------
        mov     w19, #10                // ldrb: scale 1
        adrp    x0, _lib_bytes@PAGE + 3
        ldrb    w1, [x0, _lib_bytes@PAGEOFF + 3]
        cmp     w1, #0x13
        b.ne    Lfail

        mov     w19, #11                // ldrh: scale 2
        adrp    x0, _lib_halves@PAGE + 4
        ldrh    w1, [x0, _lib_halves@PAGEOFF + 4]
        cmp     w1, #0xa2
        b.ne    Lfail

        mov     w19, #12                // ldr w: scale 4 (and ldrsw, ldr s)
        adrp    x0, _lib_words@PAGE + 8
        ldr     w1, [x0, _lib_words@PAGEOFF + 8]
        cmp     w1, #0xb2
        b.ne    Lfail
        adrp    x0, _lib_words@PAGE + 12
        ldrsw   x1, [x0, _lib_words@PAGEOFF + 12]
        cmn     x1, #2                  // -2
        b.ne    Lfail
        adrp    x0, _lib_words@PAGE + 4
        ldr     s0, [x0, _lib_words@PAGEOFF + 4]
        fmov    w1, s0
        cmp     w1, #0xb1
        b.ne    Lfail

        mov     w19, #13                // ldr x: scale 8 (and ldr d)
        adrp    x0, _lib_quads@PAGE + 16
        ldr     x1, [x0, _lib_quads@PAGEOFF + 16]
        ldr     x2, =0x0c0c0c0c0c0c0c02
        cmp     x1, x2
        b.ne    Lfail
        adrp    x0, _lib_quads@PAGE + 8
        ldr     d0, [x0, _lib_quads@PAGEOFF + 8]
        fmov    x1, d0
        ldr     x2, =0x0c0c0c0c0c0c0c01
        cmp     x1, x2
        b.ne    Lfail

        mov     w19, #14                // ldr q: scale 16
        adrp    x0, _lib_oct@PAGE + 16
        ldr     q0, [x0, _lib_oct@PAGEOFF + 16]
        fmov    x1, d0
        mov     x2, v0.d[1]
        ldr     x3, =0x0d0d0d0d0d0d0d02
        cmp     x1, x3
        b.ne    Lfail
        ldr     x3, =0x0d0d0d0d0d0d0d03
        cmp     x2, x3
        b.ne    Lfail

        mov     w19, #15                // the same five sizes on stores
        adrp    x0, _lib_rw@PAGE
        str     q0, [x0, _lib_rw@PAGEOFF]               // scale 16
        adrp    x0, _lib_rw@PAGE + 16
        str     x20, [x0, _lib_rw@PAGEOFF + 16]         // scale 8
        mov     w1, #0x5678
        adrp    x0, _lib_rw@PAGE + 24
        str     w1, [x0, _lib_rw@PAGEOFF + 24]          // scale 4
        mov     w1, #0x1234
        adrp    x0, _lib_rw@PAGE + 28
        strh    w1, [x0, _lib_rw@PAGEOFF + 28]          // scale 2
        mov     w1, #0x99
        adrp    x0, _lib_rw@PAGE + 31
        strb    w1, [x0, _lib_rw@PAGEOFF + 31]          // scale 1
        adrp    x4, ptr_lib_rw@PAGE                     // read it all back
        ldr     x4, [x4, ptr_lib_rw@PAGEOFF]
        ldp     x1, x2, [x4]
        ldr     x3, =0x0d0d0d0d0d0d0d02
        cmp     x1, x3
        b.ne    Lfail
        ldr     x3, =0x0d0d0d0d0d0d0d03
        cmp     x2, x3
        b.ne    Lfail
        ldp     x1, x2, [x4, #16]
        cmp     x1, x20
        b.ne    Lfail
        ldr     x3, =0x9900123400005678
        cmp     x2, x3
        b.ne    Lfail

        adrp    x0, L_msg_ldst@PAGE
        add     x0, x0, L_msg_ldst@PAGEOFF
        bl      _puts

// ---- group 4: data words: UNSIGNED, SUBTRACTOR + UNSIGNED ---------------------
        mov     w19, #16                // UNSIGNED (8 bytes) with addend 8
        adrp    x0, ptr_quads1@PAGE
        ldr     x0, [x0, ptr_quads1@PAGEOFF]
        ldr     x1, [x0]
        ldr     x2, =0x0c0c0c0c0c0c0c01
        cmp     x1, x2
        b.ne    Lfail

        mov     w19, #17                // UNSIGNED (4 bytes)
        adrp    x0, d_abs32@PAGE
        ldr     w0, [x0, d_abs32@PAGEOFF]
        cmp     x0, x20
        b.ne    Lfail

        mov     w19, #18                // UNSIGNED against an N_ABS symbol
        adrp    x0, d_abs_sym@PAGE
        ldr     x0, [x0, d_abs_sym@PAGEOFF]
        ldr     x1, =0x123456789a
        cmp     x0, x1
        b.ne    Lfail

        mov     w19, #19                // SUBTRACTOR pairs, 8 and 4 bytes:
        adrp    x21, _main@PAGE         // _lib_data - _main
        add     x21, x21, _main@PAGEOFF
        adrp    x0, d_diff64@PAGE
        ldr     x0, [x0, d_diff64@PAGEOFF]
        add     x0, x0, x21
        cmp     x0, x20
        b.ne    Lfail
        adrp    x0, d_diff32@PAGE
        ldrsw   x0, [x0, d_diff32@PAGEOFF]
        add     x0, x0, x21
        cmp     x0, x20
        b.ne    Lfail

        mov     w19, #20                // _lib_word - . (subtrahend d_pcrel_word)
        adrp    x0, d_pcrel_word@PAGE
        add     x0, x0, d_pcrel_word@PAGEOFF
        ldrsw   x1, [x0]
        add     x0, x0, x1
        ldr     w0, [x0]
        ldr     w1, =0x12345678
        cmp     w0, w1
        b.ne    Lfail

        mov     w19, #21                // a minuend that is a temporary label
        adrp    x0, d_tmp_minus_main@PAGE       // (ltmpN + offset): L_rw_mid - _main
        ldr     x0, [x0, d_tmp_minus_main@PAGEOFF]
        add     x0, x0, x21
        ldr     x2, [x0]
        ldr     x1, =0x3131313131313131
        cmp     x2, x1
        b.ne    Lfail
        adrp    x1, d_tmp_minus_main32@PAGE     // ... 4 bytes
        ldrsw   x1, [x1, d_tmp_minus_main32@PAGEOFF]
        add     x1, x1, x21
        cmp     x1, x0
        b.ne    Lfail

        adrp    x0, L_msg_data@PAGE
        add     x0, x0, L_msg_data@PAGEOFF
        bl      _puts

// ---- group 5: GOT ----------------------------------------------------------------
        mov     w19, #22                // GOT_LOAD_PAGE21 + GOT_LOAD_PAGEOFF12
        adrp    x0, _lib_data@GOTPAGE
        ldr     x0, [x0, _lib_data@GOTPAGEOFF]
        cmp     x0, x20
        b.ne    Lfail

        mov     w19, #23                // POINTER_TO_GOT, pc-relative (4 bytes):
        adrp    x0, d_ptr_got32@PAGE    // .long _lib_table@GOT - .
        add     x0, x0, d_ptr_got32@PAGEOFF
        ldrsw   x1, [x0]
        add     x0, x0, x1              // the GOT entry of _lib_table
        ldr     x0, [x0]
        adrp    x1, ptr_lib_table@PAGE
        ldr     x1, [x1, ptr_lib_table@PAGEOFF]
        cmp     x0, x1
        b.ne    Lfail

        mov     w19, #24                // POINTER_TO_GOT, absolute (8 bytes):
        adrp    x0, d_ptr_got64@PAGE    // .quad _lib_table@GOT
        ldr     x0, [x0, d_ptr_got64@PAGEOFF]
        ldr     x0, [x0]
        cmp     x0, x1
        b.ne    Lfail

        mov     w19, #25                // one canonical address for a host
        adrp    x16, _puts@GOTPAGE      // function: GOT entry,
        ldr     x16, [x16, _puts@GOTPAGEOFF]
        adrp    x1, _puts@PAGE          // PAGE21 + PAGEOFF12,
        add     x1, x1, _puts@PAGEOFF
        cmp     x16, x1
        b.ne    Lfail
        adrp    x1, ptr_puts@PAGE       // and UNSIGNED agree
        ldr     x1, [x1, ptr_puts@PAGEOFF]
        cmp     x16, x1
        b.ne    Lfail

        adrp    x0, L_msg_got@PAGE
        add     x0, x0, L_msg_got@PAGEOFF
        blr     x16                     // puts, through its GOT entry

        sub     sp, sp, #16             // printf: a variadic host call; Apple
        mov     x8, #5                  // arm64 passes the variadic argument
        str     x8, [sp]                // on the stack
        adrp    x0, L_fmt_diff@PAGE
        add     x0, x0, L_fmt_diff@PAGEOFF
        bl      _printf
        add     sp, sp, #16

// ---- group 6: symbols --------------------------------------------------------------
        mov     w19, #26                // a private extern (N_PEXT) of lib.s
        bl      _lib_hidden
        cmp     w0, #26
        b.ne    Lfail

        mov     w19, #27                // weak definition here, strong in lib.s
        bl      _weak_fn
        cmp     w0, #2
        b.ne    Lfail

        mov     w19, #28                // weak reference, undefined: address 0
        adrp    x0, _maybe_missing@GOTPAGE
        ldr     x0, [x0, _maybe_missing@GOTPAGEOFF]
        cbnz    x0, Lfail

        mov     w19, #29                // the constructor (__mod_init_func) ran
        adrp    x0, _ctor_ran@PAGE
        add     x0, x0, _ctor_ran@PAGEOFF
        ldr     w1, [x0]
        cmp     w1, #0xc0
        b.ne    Lfail
        adrp    x1, d_ctor_ran32@PAGE   // and a 4-byte UNSIGNED of this object
        ldr     w1, [x1, d_ctor_ran32@PAGEOFF]
        cmp     x1, x0
        b.ne    Lfail

        mov     w19, #30                // a common symbol and zero-fill
        mov     x1, #0x3333
        adrp    x0, _main_common@PAGE
        str     x1, [x0, _main_common@PAGEOFF]
        adrp    x0, ptr_common@PAGE
        ldr     x0, [x0, ptr_common@PAGEOFF]
        ldr     x0, [x0]
        cmp     x0, x1
        b.ne    Lfail
        mov     x1, #0x6666
        adrp    x0, _main_bss@PAGE + 8
        str     x1, [x0, _main_bss@PAGEOFF + 8]
        adrp    x0, ptr_bss@PAGE
        ldr     x0, [x0, ptr_bss@PAGEOFF]
        ldr     x0, [x0, #8]
        cmp     x0, x1
        b.ne    Lfail

        adrp    x0, L_msg_sym@PAGE
        add     x0, x0, L_msg_sym@PAGEOFF
        bl      _puts

        mov     w0, #0
Lret:
        ldp     x21, x22, [sp, #32]
        ldp     x19, x20, [sp, #16]
        ldp     x29, x30, [sp], #48
        ret
Lfail:
        mov     w0, w19
        b       Lret
        .ltorg

        .globl  _weak_fn
        .weak_definition _weak_fn
_weak_fn:                               // lib.s's strong one wins: 2
        mov     w0, #1
        ret

_ctor:                                  // run before _main
        mov     w1, #0xc0
        adrp    x0, _ctor_ran@PAGE
        str     w1, [x0, _ctor_ran@PAGEOFF]
        ret

// ---- a second text section ----------------------------------------------------------
        .section __TEXT,__far,regular,pure_instructions
        .p2align 2
_far_tramp:
        b       _lib_ret9               // BRANCH26 on a b

_far_jump_out:
        add     x21, x21, #1
        b       Lback                   // back to a temporary label in _main

        .globl  _main_helper
_main_helper:                           // 3 * x
        add     w0, w0, w0, lsl #1
        ret

// ---- read-only data ------------------------------------------------------------------
        .section __TEXT,__const
        .p2align 3
ptr_lib_data:
        .quad   _lib_data               // UNSIGNED, 8 bytes
ptr_quads1:
        .quad   _lib_quads + 8          // UNSIGNED, addend 8
ptr_puts:
        .quad   _puts                   // UNSIGNED against a host function
ptr_lib_big:
        .quad   _lib_big
ptr_lib_rw:
        .quad   _lib_rw
ptr_lib_table:
        .quad   _lib_table
d_abs_sym:
        .quad   _lib_abs                // UNSIGNED against an N_ABS symbol
d_diff64:
        .quad   _lib_data - _main       // SUBTRACTOR + UNSIGNED, 8 bytes
d_tmp_minus_main:
        .quad   L_rw_mid - _main        // minuend: ltmpN + offset
d_diff32:
        .long   _lib_data - _main       // SUBTRACTOR + UNSIGNED, 4 bytes
d_abs32:
        .long   _lib_data               // UNSIGNED, 4 bytes
d_tmp_minus_main32:
        .long   L_rw_mid - _main        // SUBTRACTOR + UNSIGNED, 4 bytes
d_pcrel_word:
        .long   _lib_word - .           // SUBTRACTOR d_pcrel_word + UNSIGNED

// read-only after relocation
        .section __DATA,__const
        .p2align 3
ptr_bss:
        .quad   _main_bss               // UNSIGNED against zero-fill
ptr_common:
        .quad   _main_common            // UNSIGNED against a common symbol
d_ptr_got64:
        .quad   _lib_table@GOT          // POINTER_TO_GOT, r_pcrel=0, 8 bytes
d_ptr_got32:
        .long   _lib_table@GOT - .      // POINTER_TO_GOT, r_pcrel=1, 4 bytes
d_ctor_ran32:
        .long   _ctor_ran               // UNSIGNED, 4 bytes, this object's

        .section __TEXT,__cstring,cstring_literals
L_msg_branch:
        .asciz  "arm64 branches: ok"
L_msg_page:
        .asciz  "arm64 page addresses: ok"
L_msg_ldst:
        .asciz  "arm64 load/store pageoff12: ok"
L_msg_data:
        .asciz  "arm64 data words: ok"
L_msg_got:
        .asciz  "arm64 got: ok"
L_fmt_diff:
        .asciz  "arm64 printf: %d ok\n"
L_msg_sym:
        .asciz  "arm64 symbols: ok"

// ---- writable data -------------------------------------------------------------------
        .section __DATA,__data
        .p2align 3
L_rw_start:
        .quad   0
L_rw_mid:
        .quad   0x3131313131313131
        .globl  _ctor_ran
        .p2align 2
_ctor_ran:
        .long   0

        .section __DATA,__mod_init_func,mod_init_funcs
        .p2align 3
        .quad   _ctor

        .zerofill __DATA,__bss,_main_bss,16,4
        .comm   _main_common,8,3

        .weak_reference _maybe_missing
        .subsections_via_symbols
