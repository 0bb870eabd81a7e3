# kitemu far-call test (tests/test_far_calls.py), x86-64: a call to an
# undefined weak function. It resolves to address 0; with the image placed
# high (base 0x7f0000000000) that is beyond a rel32's +-2 GiB, so the
# R_X86_64_PLT32 of the call gets a stub whose cell is 0; the call is
# guarded and never taken. main returns 7.
        .weak   maybe_fn
        .text
        .globl  main
        .type   main, @function
main:
        subq    $8, %rsp
        movl    $7, %edx
        movq    maybe_fn@GOTPCREL(%rip), %rax   # 0 when it is not defined
        testq   %rax, %rax
        jz      1f
        call    maybe_fn@PLT            # R_X86_64_PLT32 to a weak undefined
        movl    $99, %edx
1:      movl    %edx, %eax
        addq    $8, %rsp
        ret
        .size   main, .-main
