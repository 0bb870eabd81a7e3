/* patch.c - the hot patcher: set_answer(v) rewrites the immediate of
 * answer()'s `movl $imm32, %eax` in place.
 *
 * The code lives in dual-mapped JIT memory: an RX view at its address, where
 * it runs, and an RW alias of the same pages RW_ALIAS_OFFSET bytes higher
 * (kitemu's dual-map puts it at +2^36, kitemu.execmem.ALIAS_OFFSET).  Code
 * may only be written through the alias.
 *
 * The buggy build writes through the RX view (delta 0): a store to a mapped
 * r-x page -> SIGBUS BUS_ADRERR on macOS, SIGSEGV SEGV_ACCERR on Linux.
 * -DFIXED writes through the RW alias.  The address comes from
 * `leaq _answer+1(%rip)` (X86_64_RELOC_SIGNED against _answer + 1).
 */
#define RW_ALIAS_OFFSET 0x1000000000L

void set_answer(int value) {
#ifdef FIXED
    long delta = RW_ALIAS_OFFSET; /* write through the RW alias */
#else
    long delta = 0; /* BUG: writes through the RX view */
#endif
    __asm__ volatile("leaq _answer+1(%%rip), %%rax\n\t"
                     "movl %0, (%%rax,%1)"
                     :
                     : "r"(value), "r"(delta)
                     : "rax", "memory");
}
