// kitemu relocation-coverage program, AArch64, object 1 of 2: the checks.
//
// main returns 0 when every check passed, else the number of the first
// failing check (kept in w19 while the check runs). After each group a line
// is printed with puts. Each check reaches its value *through* the
// relocated field and compares it with the same value reached another way.
// Targets are in lib.s (another object) or in this object's other sections.
// x20 holds &lib_data (read from an R_AARCH64_ABS64 word) from check 8 on;
// x21 collects bits set by code in .text.far.

        .text
        .globl  main
        .type   main, %function
main:
        stp     x29, x30, [sp, #-48]!
        mov     x29, sp
        stp     x19, x20, [sp, #16]
        stp     x21, x22, [sp, #32]

// ---- group 1: branches ----------------------------------------------------
        mov     w19, #1                 // R_AARCH64_CALL26 into lib.s
        bl      lib_ret7
        cmp     w0, #7
        b.ne    .Lfail

        mov     w19, #2                 // CALL26 to .text.far, whose JUMP26
        bl      far_tramp               // tail-calls lib_ret9
        cmp     w0, #9
        b.ne    .Lfail

        mov     w19, #3                 // lib.s calls back into .text.far:
        mov     w0, #5                  // main_helper(5) + 1 = 16
        bl      lib_call_back
        cmp     w0, #16
        b.ne    .Lfail

        // Checks 4..7 leave main for .text.far and come back. Code there
        // sets a bit in x21; the first instruction at each landing label
        // adds 0x100 (so a landing one instruction late is caught) and the
        // check number is compared (so a landing in the wrong place is).
        mov     w19, #4                 // R_AARCH64_JUMP26 out and back
        mov     x21, #0
        b       far_jump_out
.Lback_jump26:
        add     x21, x21, #0x100
        cmp     w19, #4
        b.ne    .Lfail
        cmp     x21, #0x101
        b.ne    .Lfail

        mov     w19, #5                 // R_AARCH64_CONDBR19 (b.cond) out,
        mov     x21, #0                 // CONDBR19 (b.cond) back
        cmp     x21, #0
        b.eq    far_condbr
        b       .Lfail
.Lback_condbr:
        add     x21, x21, #0x100
        cmp     w19, #5
        b.ne    .Lfail
        cmp     x21, #0x102
        b.ne    .Lfail

        mov     w19, #6                 // CONDBR19 (cbz) out, (cbnz) back
        mov     x21, #0
        cbz     x21, far_cbz
        b       .Lfail
.Lback_cbz:
        add     x21, x21, #0x100
        cmp     w19, #6
        b.ne    .Lfail
        cmp     x21, #0x104
        b.ne    .Lfail

        mov     w19, #7                 // R_AARCH64_TSTBR14 (tbnz, tbz) out
        mov     x0, #8                  // and (tbnz) back
        mov     x21, #0
        tbnz    x0, #3, far_tbnz
        b       .Lfail
.Lback_tbnz:
        add     x21, x21, #0x100
        tbz     x0, #2, far_tbz
        b       .Lfail
.Lback_tbz:
        add     x21, x21, #0x200
        cmp     w19, #7
        b.ne    .Lfail
        cmp     x21, #0x318
        b.ne    .Lfail

        adrp    x0, msg_branch
        add     x0, x0, :lo12:msg_branch
        bl      puts                    // CALL26 to a host function

// ---- group 2: PC-relative addresses and literal loads --------------------
        mov     w19, #8                 // R_AARCH64_ADR_PREL_LO21 vs an ABS64
        adrp    x1, ptr_lib_data        // word loaded with ADR_PREL_PG_HI21 +
        ldr     x20, [x1, :lo12:ptr_lib_data]   // LDST64_ABS_LO12_NC
        adr     x0, lib_data
        cmp     x0, x20
        b.ne    .Lfail

        mov     w19, #9                 // ADR_PREL_PG_HI21 + ADD_ABS_LO12_NC
        adrp    x0, lib_data + 8
        add     x0, x0, :lo12:lib_data + 8
        add     x1, x20, #8
        cmp     x0, x1
        b.ne    .Lfail

        mov     w19, #10                // R_AARCH64_ADR_PREL_PG_HI21_NC
        adrp    x0, :pg_hi21_nc:lib_data
        add     x0, x0, :lo12:lib_data
        cmp     x0, x20
        b.ne    .Lfail

        mov     w19, #11                // R_AARCH64_LD_PREL_LO19 (ldr literal)
        ldr     x0, lib_data
        ldr     x1, =0x1122334455667788
        cmp     x0, x1
        b.ne    .Lfail
        ldr     w0, lib_words + 4
        cmp     w0, #0x0b1
        b.ne    .Lfail

        adrp    x0, msg_pcrel
        add     x0, x0, :lo12:msg_pcrel
        bl      puts

// ---- group 3: load/store low 12 bits, scaled ------------------------------
        mov     w19, #12                // R_AARCH64_LDST8_ABS_LO12_NC
        adrp    x0, lib_bytes + 3
        ldrb    w1, [x0, :lo12:lib_bytes + 3]
        cmp     w1, #0x13
        b.ne    .Lfail

        mov     w19, #13                // R_AARCH64_LDST16_ABS_LO12_NC
        adrp    x0, lib_halves + 4
        ldrh    w1, [x0, :lo12:lib_halves + 4]
        cmp     w1, #0x0a2
        b.ne    .Lfail

        mov     w19, #14                // R_AARCH64_LDST32_ABS_LO12_NC
        adrp    x0, lib_words + 8
        ldr     w1, [x0, :lo12:lib_words + 8]
        cmp     w1, #0x0b2
        b.ne    .Lfail

        mov     w19, #15                // R_AARCH64_LDST64_ABS_LO12_NC
        adrp    x0, lib_quads + 16
        ldr     x1, [x0, :lo12:lib_quads + 16]
        ldr     x2, =0x0c0c0c0c0c0c0c02
        cmp     x1, x2
        b.ne    .Lfail

        mov     w19, #16                // R_AARCH64_LDST128_ABS_LO12_NC
        adrp    x0, lib_oct + 16
        ldr     q0, [x0, :lo12:lib_oct + 16]
        fmov    x1, d0
        mov     x2, v0.d[1]
        ldr     x3, =0x0d0d0d0d0d0d0d02
        cmp     x1, x3
        b.ne    .Lfail
        ldr     x3, =0x0d0d0d0d0d0d0d03
        cmp     x2, x3
        b.ne    .Lfail

        mov     w19, #17                // the same five kinds on stores
        adrp    x0, lib_rw
        str     q0, [x0, :lo12:lib_rw]          // LDST128
        str     x20, [x0, :lo12:lib_rw + 16]    // LDST64
        mov     w1, #0x5678
        str     w1, [x0, :lo12:lib_rw + 24]     // LDST32
        mov     w1, #0x1234
        strh    w1, [x0, :lo12:lib_rw + 28]     // LDST16
        mov     w1, #0x99
        strb    w1, [x0, :lo12:lib_rw + 31]     // LDST8
        adr     x4, lib_rw                      // read it all back
        ldp     x1, x2, [x4]
        ldr     x3, =0x0d0d0d0d0d0d0d02
        cmp     x1, x3
        b.ne    .Lfail
        ldr     x3, =0x0d0d0d0d0d0d0d03
        cmp     x2, x3
        b.ne    .Lfail
        ldp     x1, x2, [x4, #16]
        cmp     x1, x20
        b.ne    .Lfail
        ldr     x3, =0x9900123400005678
        cmp     x2, x3
        b.ne    .Lfail

        adrp    x0, msg_ldst
        add     x0, x0, :lo12:msg_ldst
        bl      puts

// ---- group 4: MOVZ/MOVK absolute groups -----------------------------------
        mov     w19, #18                // G3, G2_NC, G1_NC, G0_NC
        movz    x0, #:abs_g3:lib_data
        movk    x0, #:abs_g2_nc:lib_data
        movk    x0, #:abs_g1_nc:lib_data
        movk    x0, #:abs_g0_nc:lib_data
        cmp     x0, x20
        b.ne    .Lfail
        ldr     x1, [x0]                // and load through it
        ldr     x2, =0x1122334455667788
        cmp     x1, x2
        b.ne    .Lfail

        mov     w19, #19                // checked R_AARCH64_MOVW_UABS_G2
        movz    x0, #:abs_g2:lib_data + 8
        movk    x0, #:abs_g1_nc:lib_data + 8
        movk    x0, #:abs_g0_nc:lib_data + 8
        ldr     x1, [x0]
        ldr     x2, =0x99aabbccddeeff00
        cmp     x1, x2
        b.ne    .Lfail

        mov     w19, #20                // checked R_AARCH64_MOVW_UABS_G1
        movz    x0, #:abs_g1:lib_data
        movk    x0, #:abs_g0_nc:lib_data
        cmp     x0, x20
        b.ne    .Lfail

        mov     w19, #21                // checked R_AARCH64_MOVW_UABS_G0
        movz    x0, #:abs_g0:K16
        mov     x1, #0xbeef
        cmp     x0, x1
        b.ne    .Lfail

        adrp    x0, msg_movw
        add     x0, x0, :lo12:msg_movw
        bl      puts

// ---- group 5: data words --------------------------------------------------
        mov     w19, #22                // R_AARCH64_ABS64 with addend 8
        adrp    x0, ptr_quads1
        ldr     x0, [x0, :lo12:ptr_quads1]
        ldr     x1, [x0]
        ldr     x2, =0x0c0c0c0c0c0c0c01
        cmp     x1, x2
        b.ne    .Lfail

        mov     w19, #23                // R_AARCH64_ABS32
        adrp    x0, d_abs32
        ldr     w0, [x0, :lo12:d_abs32]
        cmp     x0, x20
        b.ne    .Lfail

        mov     w19, #24                // R_AARCH64_ABS16
        adrp    x0, d_abs16
        ldrh    w0, [x0, :lo12:d_abs16]
        mov     w1, #0xbef0
        cmp     w0, w1
        b.ne    .Lfail

        mov     w19, #25                // R_AARCH64_PREL64
        adr     x0, d_prel64
        ldr     x1, [x0]
        add     x0, x0, x1
        cmp     x0, x20
        b.ne    .Lfail

        mov     w19, #26                // R_AARCH64_PREL32 with addend 8
        adr     x0, d_prel32
        ldrsw   x1, [x0]
        add     x0, x0, x1
        add     x1, x20, #8
        cmp     x0, x1
        b.ne    .Lfail

        mov     w19, #27                // R_AARCH64_PREL16
        adr     x0, d_prel16
        ldrsh   x1, [x0]
        add     x0, x0, x1
        adr     x1, lib_near
        cmp     x0, x1
        b.ne    .Lfail
        ldr     x0, [x0]
        ldr     x1, =0x5a5a5a5a5a5a5a5a
        cmp     x0, x1
        b.ne    .Lfail

        mov     w19, #28                // R_AARCH64_PLT32: call through it
        adr     x0, d_plt32
        ldrsw   x1, [x0]
        add     x0, x0, x1
        blr     x0
        cmp     w0, #7
        b.ne    .Lfail

        adrp    x0, msg_data
        add     x0, x0, :lo12:msg_data
        bl      puts

// ---- group 6: GOT ----------------------------------------------------------
        mov     w19, #29                // ADR_GOT_PAGE + LD64_GOT_LO12_NC
        adrp    x0, :got:lib_data
        ldr     x0, [x0, :got_lo12:lib_data]
        cmp     x0, x20
        b.ne    .Lfail

        mov     w19, #30                // one canonical address for a host
        adrp    x22, :got:puts          // function: GOT entry,
        ldr     x22, [x22, :got_lo12:puts]
        adrp    x1, puts                // ADRP + ADD,
        add     x1, x1, :lo12:puts
        cmp     x22, x1
        b.ne    .Lfail
        adr     x1, puts                // ADR
        cmp     x22, x1
        b.ne    .Lfail
        adrp    x1, ptr_puts            // and ABS64 agree
        ldr     x1, [x1, :lo12:ptr_puts]
        cmp     x22, x1
        b.ne    .Lfail

        adrp    x0, msg_got
        add     x0, x0, :lo12:msg_got
        blr     x22                     // puts through its GOT entry

        mov     w0, #0
.Lret:
        ldp     x21, x22, [sp, #32]
        ldp     x19, x20, [sp, #16]
        ldp     x29, x30, [sp], #48
        ret
.Lfail:
        mov     w0, w19
        b       .Lret
        .ltorg
        .size   main, .-main

// ---- a second text section ----------------------------------------------
        .section .text.far,"ax",%progbits
        .type   far_tramp, %function
far_tramp:
        b       lib_ret9                // R_AARCH64_JUMP26 into lib.s
        .size   far_tramp, .-far_tramp

far_jump_out:
        orr     x21, x21, #1
        b       .Lback_jump26           // JUMP26 back into .text
far_condbr:
        orr     x21, x21, #2
        cmp     x21, #2
        b.eq    .Lback_condbr           // CONDBR19 back into .text
        b       .Lfail
far_cbz:
        orr     x21, x21, #4
        cbnz    x21, .Lback_cbz         // CONDBR19 (cbnz) back
        b       .Lfail
far_tbnz:
        orr     x21, x21, #8
        tbnz    x21, #3, .Lback_tbnz    // TSTBR14 back
        b       .Lfail
far_tbz:
        orr     x21, x21, #16
        b       .Lback_tbz              // JUMP26 back

        .globl  main_helper
        .type   main_helper, %function
main_helper:                            // 3 * x
        add     w0, w0, w0, lsl #1
        ret
        .size   main_helper, .-main_helper

// ---- read-only data ----------------------------------------------------------
        .section .rodata,"a",%progbits
        .p2align 3
ptr_lib_data:
        .reloc  ., R_AARCH64_NONE, lib_ret9     // must change nothing
        .xword  lib_data                // R_AARCH64_ABS64
ptr_quads1:
        .xword  lib_quads + 8           // ABS64, addend 8
ptr_puts:
        .xword  puts                    // ABS64 against a host function
d_prel64:
        .xword  lib_data - .            // R_AARCH64_PREL64
d_prel32:
        .word   lib_data + 8 - .        // R_AARCH64_PREL32, addend 8
d_abs32:
        .word   lib_data                // R_AARCH64_ABS32
d_plt32:
        .word   lib_ret7@PLT - .        // R_AARCH64_PLT32
d_abs16:
        .hword  K16 + 1                 // R_AARCH64_ABS16

msg_branch:
        .asciz  "aarch64 branches: ok"
msg_pcrel:
        .asciz  "aarch64 pc-relative addresses: ok"
msg_ldst:
        .asciz  "aarch64 load/store lo12: ok"
msg_movw:
        .asciz  "aarch64 movz/movk groups: ok"
msg_data:
        .asciz  "aarch64 data words: ok"
msg_got:
        .asciz  "aarch64 got: ok"

// ---- writable data ---------------------------------------------------------
        .data
        .p2align 1
d_prel16:
        .hword  lib_near - .            // R_AARCH64_PREL16
