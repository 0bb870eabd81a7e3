// kitemu far-call test (tests/test_far_calls.py), AArch64: a call to an
// undefined weak function. It resolves to address 0, 256 MiB below the
// image (kitemu's default base), beyond `bl`'s +-128 MiB, so the
// R_AARCH64_CALL26 gets a stub whose cell is 0; the call is guarded and
// never taken. main returns 7.
        .weak   maybe_fn
        .text
        .globl  main
        .type   main, %function
main:
        stp     x29, x30, [sp, #-16]!
        mov     x29, sp
        mov     w1, #7
        adrp    x0, :got:maybe_fn       // 0 when it is not defined
        ldr     x0, [x0, :got_lo12:maybe_fn]
        cbz     x0, 1f
        bl      maybe_fn                // R_AARCH64_CALL26 to a weak undefined
        mov     w1, #99
1:      mov     w0, w1
        ldp     x29, x30, [sp], #16
        ret
        .size   main, .-main
