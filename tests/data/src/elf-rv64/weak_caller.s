# kitemu far-call test (tests/test_far_calls.py), RV64: a call to an
# undefined weak function. It resolves to address 0, far beyond `jal`'s
# +-1 MiB from the image, so the R_RISCV_JAL gets a stub whose cell is 0;
# the call is guarded and never taken. main returns 7.
        .weak   maybe_fn
        .text
        .globl  main
        .type   main, @function
main:
        addi    sp, sp, -16
        sd      ra, 8(sp)
        li      a1, 7
        lla     a0, maybe_fn            # 0 when it is not defined
        beqz    a0, 1f
        jal     ra, maybe_fn            # R_RISCV_JAL to a weak undefined
        li      a1, 99
1:      mv      a0, a1
        ld      ra, 8(sp)
        addi    sp, sp, 16
        ret
        .size   main, .-main
