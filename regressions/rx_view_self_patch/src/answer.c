/* answer.c - answer() is `movl $1, %eax; retq`, written in asm so that its
 * 32-bit immediate has a known place: answer+1.  Nothing calls it before
 * it is patched (a real JIT would also have to invalidate the instruction
 * cache; kitemu's emulator does not see writes made through an alias). */
__asm__(".text\n"
        ".globl _answer\n"
        ".p2align 4\n"
        "_answer:\n"
        "    movl $1, %eax\n" /* b8 01 00 00 00 */
        "    retq\n");
