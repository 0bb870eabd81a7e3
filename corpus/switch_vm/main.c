/* switch_vm: a small stack machine whose dispatch is a dense switch
 * (18 consecutive cases: clang emits a jump table at -O0 and -O2). */
#include <kitlibc.h>

enum op {
    OP_HALT, OP_PUSH, OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_MOD, OP_DUP, OP_SWAP,
    OP_DROP, OP_JMP, OP_JZ, OP_PRINT, OP_LOAD, OP_STORE, OP_NEG, OP_LT, OP_EMIT,
    OP_COUNT
};

struct vm {
    int stack[32];
    int sp;
    int regs[4];
    long steps;
};

/* Names of the opcodes (a second switch; at -O2 clang may turn it into a
 * table of string pointers). */
static const char *op_name(int op)
{
    switch (op) {
    case OP_HALT: return "halt";
    case OP_PUSH: return "push";
    case OP_ADD: return "add";
    case OP_SUB: return "sub";
    case OP_MUL: return "mul";
    case OP_DIV: return "div";
    case OP_MOD: return "mod";
    case OP_DUP: return "dup";
    case OP_SWAP: return "swap";
    case OP_DROP: return "drop";
    case OP_JMP: return "jmp";
    case OP_JZ: return "jz";
    case OP_PRINT: return "print";
    case OP_LOAD: return "load";
    case OP_STORE: return "store";
    case OP_NEG: return "neg";
    case OP_LT: return "lt";
    case OP_EMIT: return "emit";
    default: return "???";
    }
}

static int has_operand(int op)
{
    return op == OP_PUSH || op == OP_JMP || op == OP_JZ || op == OP_LOAD ||
           op == OP_STORE;
}

static void push(struct vm *m, int v) { m->stack[m->sp++] = v; }
static int pop(struct vm *m) { return m->stack[--m->sp]; }

static int run(struct vm *m, const int *code)
{
    int pc = 0;
    int a, b;
    for (;;) {
        int op = code[pc++];
        m->steps++;
        switch (op) {
        case OP_HALT:
            return m->sp ? pop(m) : 0;
        case OP_PUSH:
            push(m, code[pc++]);
            break;
        case OP_ADD:
            b = pop(m); a = pop(m); push(m, a + b);
            break;
        case OP_SUB:
            b = pop(m); a = pop(m); push(m, a - b);
            break;
        case OP_MUL:
            b = pop(m); a = pop(m); push(m, a * b);
            break;
        case OP_DIV:
            b = pop(m); a = pop(m); push(m, a / b);
            break;
        case OP_MOD:
            b = pop(m); a = pop(m); push(m, a % b);
            break;
        case OP_DUP:
            a = pop(m); push(m, a); push(m, a);
            break;
        case OP_SWAP:
            b = pop(m); a = pop(m); push(m, b); push(m, a);
            break;
        case OP_DROP:
            (void)pop(m);
            break;
        case OP_JMP:
            pc = code[pc];
            break;
        case OP_JZ:
            a = pop(m);
            pc = a == 0 ? code[pc] : pc + 1;
            break;
        case OP_PRINT:
            printf("%d\n", pop(m));
            break;
        case OP_LOAD:
            push(m, m->regs[code[pc++]]);
            break;
        case OP_STORE:
            m->regs[code[pc++]] = pop(m);
            break;
        case OP_NEG:
            push(m, -pop(m));
            break;
        case OP_LT:
            b = pop(m); a = pop(m); push(m, a < b);
            break;
        case OP_EMIT:
            putchar(pop(m));
            break;
        default:
            printf("bad opcode %d at %d\n", op, pc - 1);
            return -1;
        }
    }
}

/* factorial(10) with a loop over registers */
static const int prog_fact[] = {
    OP_PUSH, 10, OP_STORE, 0, OP_PUSH, 1, OP_STORE, 1,
    /* 8: loop */
    OP_LOAD, 0, OP_JZ, 30,
    OP_LOAD, 1, OP_LOAD, 0, OP_MUL, OP_STORE, 1,
    OP_LOAD, 0, OP_PUSH, 1, OP_SUB, OP_STORE, 0,
    OP_JMP, 8, OP_HALT, OP_HALT,
    /* 30: end */
    OP_LOAD, 1, OP_DUP, OP_PRINT, OP_HALT,
};

/* sum of 1..100, then "5 4 3 2 1 " spelled with EMIT */
static const int prog_loop[] = {
    OP_PUSH, 0, OP_STORE, 0,            /* r0 = 0 (sum) */
    OP_PUSH, 1, OP_STORE, 1,            /* r1 = 1 (i) */
    /* 8: while (i < 101) */
    OP_LOAD, 1, OP_PUSH, 101, OP_LT, OP_JZ, 31,
    OP_LOAD, 0, OP_LOAD, 1, OP_ADD, OP_STORE, 0,
    OP_LOAD, 1, OP_PUSH, 1, OP_ADD, OP_STORE, 1,
    OP_JMP, 8,
    /* 31: print the sum, r2 = 5 */
    OP_LOAD, 0, OP_PRINT,
    OP_PUSH, 5, OP_STORE, 2,
    /* 38: while (r2 != 0) */
    OP_LOAD, 2, OP_JZ, 60,
    OP_LOAD, 2, OP_PUSH, '0', OP_ADD, OP_EMIT, OP_PUSH, ' ', OP_EMIT,
    OP_LOAD, 2, OP_PUSH, 1, OP_SUB, OP_STORE, 2, OP_JMP, 38,
    /* 60 */
    OP_PUSH, '\n', OP_EMIT, OP_PUSH, 0, OP_HALT,
};

/* arithmetic with negative numbers: C truncating division */
static const int prog_arith[] = {
    OP_PUSH, 7, OP_PUSH, 20, OP_SUB, OP_DUP, OP_PRINT,     /* -13 */
    OP_DUP, OP_PUSH, 3, OP_DIV, OP_PRINT,                  /* -4 */
    OP_DUP, OP_PUSH, 5, OP_MOD, OP_PRINT,                  /* -3 */
    OP_NEG, OP_PUSH, 4, OP_SWAP, OP_MOD, OP_PRINT,         /* 4 % 13 = 4 */
    OP_PUSH, 6, OP_PUSH, 9, OP_DROP, OP_PUSH, 7, OP_MUL,   /* 42 */
    OP_HALT,
};

static void disassemble(const char *title, const int *code, int n)
{
    int pc = 0;
    printf("%s:", title);
    while (pc < n) {
        int op = code[pc++];
        if (has_operand(op))
            printf(" %s(%d)", op_name(op), code[pc++]);
        else
            printf(" %s", op_name(op));
    }
    putchar('\n');
}

int main(void)
{
    static const int *const progs[] = { prog_fact, prog_loop, prog_arith };
    static const char *const names[] = { "fact", "loop", "arith" };
    int i, result;

    disassemble("arith", prog_arith, (int)(sizeof prog_arith / sizeof prog_arith[0]));
    for (i = 0; i < 3; i++) {
        struct vm m;
        memset(&m, 0, sizeof m);
        printf("== %s\n", names[i]);
        result = run(&m, progs[i]);
        printf("result %d after %ld steps, regs %d %d %d\n", result, m.steps,
               m.regs[0], m.regs[1], m.regs[2]);
    }
    {
        static const int bad[] = { OP_PUSH, 1, OP_COUNT + 3 };
        struct vm m;
        memset(&m, 0, sizeof m);
        printf("bad program -> %d\n", run(&m, bad));
    }
    printf("%s %s %s\n", op_name(OP_EMIT), op_name(OP_HALT), op_name(99));
    return 0;
}
