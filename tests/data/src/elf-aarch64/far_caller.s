// kitemu far-call test (tests/test_far_calls.py), AArch64: the caller.
// Linked as [far_caller.o, <padding object of ~130 MiB>, far_callee.o], so
// far_callee lies beyond `bl`'s +-128 MiB and the linker must route the
// R_AARCH64_CALL26 through a range-extension stub ("far_callee@island").
        .text
        .globl  main
        .type   main, %function
main:
        stp     x29, x30, [sp, #-16]!
        mov     x29, sp
        bl      far_callee              // R_AARCH64_CALL26
        add     w0, w0, #1
        ldp     x29, x30, [sp], #16
        ret
        .size   main, .-main
