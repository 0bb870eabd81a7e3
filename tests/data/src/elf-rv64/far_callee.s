# kitemu far-call test (tests/test_far_calls.py), RV64: the far callee.
        .text
        .globl  far_callee
        .type   far_callee, @function
far_callee:                             # returns 41; main adds 1
        li      a0, 41
        ret
        .size   far_callee, .-far_callee
