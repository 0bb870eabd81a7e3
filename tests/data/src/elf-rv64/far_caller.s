# kitemu far-call test (tests/test_far_calls.py), RV64: the caller.
# Linked as [far_caller.o, <padding object of a few MiB>, far_callee.o], so
# far_callee lies beyond `jal`'s +-1 MiB and the linker must route the
# R_RISCV_JAL through a range-extension stub ("far_callee@island").
        .text
        .globl  main
        .type   main, @function
main:
        addi    sp, sp, -16
        sd      ra, 8(sp)
        jal     ra, far_callee          # R_RISCV_JAL
        addi    a0, a0, 1
        ld      ra, 8(sp)
        addi    sp, sp, 16
        ret
        .size   main, .-main
