"""Backtraces (kitemu.dbg.unwind) on every target, -O0 and -O2.

* a call chain main -> a -> b -> c (noinline) stopped inside c, at c's
  first instruction (no frame yet) and in the host ``strlen`` c calls:
  c, b, a, main with the line of each call site, down to the return
  sentinel; each frame unwound the expected way: DWARF CFI where the object
  has it (ELF, Mach-O x86-64 ``.debug_frame`` with -g; ``.eh_frame`` /
  ``__TEXT,__eh_frame`` with unwind tables), frame records on Darwin arm64
  and for ELF code without CFI, the link register for a leaf without a frame;
* CFI and frame records agree where both exist (-O0 keeps frame pointers);
* stable entries and hot reload: a frame in ``value$body$0`` keeps
  generation 0 and its file:line after ``value`` is reloaded; a stop on an
  entry unwinds as a leaf into the new body;
* code without CFI or frame pointer stops the walk with a reason rather
  than guessing.
"""

from __future__ import annotations

import shutil

import pytest

from kitemu.dbg.unwind import backtrace
from kitemu.errors import KitemuError
from kitemu.session import INDIRECT_EXPORTED_FUNCS, Session
from kitemu.targets import TARGETS

pytestmark = pytest.mark.skipif(shutil.which("clang") is None, reason="needs clang")

ALL = sorted(TARGETS)
ELF = [t for t in ALL if t.startswith("elf-")]
OPTS = ["-O0", "-O2"]

CHAIN = """\
#include <kitlibc.h>
char msg[] = "hello";
__attribute__((noinline)) int c(int x) {
    int n = strlen(msg);          /* C_CALL */
    return n + x * 3;
}
__attribute__((noinline)) int b(int x) {
    int r = c(x + 1);             /* B_CALL */
    return r + 1;
}
__attribute__((noinline)) int a(int x) {
    int r = b(x * 2);             /* A_CALL */
    return r - 2;
}
int main(void) {
    int r = a(5);                 /* MAIN_CALL */
    return r + 7;
}
"""
CHAIN_RESULT = 5 + (5 * 2 + 1) * 3 + 1 - 2 + 7

RELOAD = """\
#include <kitlibc.h>
char msg[] = "hello";
__attribute__((noinline)) int leaf(int x) {
    return (int)strlen(msg) + x;  /* LEAF */
}
__attribute__((noinline)) int value(int x) {
    int r = leaf(x);              /* VALUE_CALL */
    return r * 2;
}
int main(void) {
    int r = value(3);             /* MAIN_CALL */
    return r + 1;
}
"""
VALUE_V2 = """\
int leaf(int x);
int value(int x) {
    return leaf(x) * 100;         /* V2_CALL */
}
"""


def line_of(text: str, marker: str) -> int:
    return next(i for i, ln in enumerate(text.splitlines(), 1) if f"/* {marker} */" in ln)


@pytest.fixture
def src(tmp_path):
    def write(name: str, text: str):
        p = tmp_path / name
        p.write_text(text)
        return p
    return write


def cfi_table(target: str) -> str | None:
    """Where -g code's CFI comes from on each target (None: no CFI)."""
    if target == "macho-arm64":
        return None                # compact unwind only: frame records
    return "__DWARF,__debug_frame" if target.startswith("macho") else ".debug_frame"


def call_site(s: Session, callee: str, caller: str) -> int:
    """The address of the call instruction from ``caller`` to ``callee``."""
    lo = s.lookup(caller)
    hi = lo + s.image.published[s.symbol_name(caller)].size
    for r in s.sites(callee):
        if lo <= r.place < hi:
            return r.place - 1 if s.target.arch.name == "x64" else r.place
    raise AssertionError(f"no call from {caller} to {callee}")


def stop(s: Session, addr: int, fn: str = "main"):
    proc = s.proc
    proc.machine.add_breakpoint(addr)
    out = proc.start_call(s.lookup(fn), [])
    assert out.stopped and out.pc == addr, out
    proc.machine.remove_breakpoint(addr)
    return proc


def finish(s: Session, expect: int) -> None:
    out = s.proc.resume()
    assert out.returned and out.value == expect


def check_chain(bt, src_path, funcs, first_line=None):
    """The frames are ``funcs`` (innermost first); every caller's line is
    its call site; the walk reached the sentinel; stack pointers chain."""
    assert bt.complete, bt.render()
    assert bt.functions == funcs, bt.render()
    calls = {"b": "B_CALL", "a": "A_CALL", "main": "MAIN_CALL", "c": "C_CALL"}
    text = src_path.read_text()
    for f in bt:
        assert f.generation in (0, None)
        if f.index == 0:
            if first_line is not None:
                assert f.line == first_line, bt.render()
            continue
        assert f.file == str(src_path) and f.line == line_of(text, calls[f.function]), bt.render()
    for inner, outer in zip(bt, bt[1:]):
        assert inner.cfa == outer.sp, bt.render()
        assert outer.sp >= inner.sp


# -- the three-deep chain -------------------------------------------------------------
@pytest.mark.parametrize("opt", OPTS)
@pytest.mark.parametrize("target", ALL)
def test_chain_stopped_inside_c(target, opt, src):
    path = src("chain.c", CHAIN)
    with Session(target, opt=opt, cflags=["-g"]) as s:
        s.append(path)
        proc = stop(s, call_site(s, "strlen", "c"))
        bt = backtrace(proc)
        check_chain(bt, path, ["c", "b", "a", "main"], line_of(CHAIN, "C_CALL"))
        table = cfi_table(target)
        if table is None:
            assert [f.how for f in bt] == ["frame-record"] * 4
        else:
            assert [f.how for f in bt] == ["cfi"] * 4
            assert {f.table for f in bt} == {table}
        assert bt[0].pc == proc.machine.reg(s.target.callconv.pc)
        assert "c+" in bt.render() and "chain.c" in bt.render()
        finish(s, CHAIN_RESULT)


@pytest.mark.parametrize("opt", OPTS)
@pytest.mark.parametrize("target", ALL)
def test_leaf_at_first_instruction(target, opt, src):
    """Stopped before c's prologue: no frame yet; the return address is in
    the link register (x30, ra) or at [rsp]."""
    path = src("chain.c", CHAIN)
    with Session(target, opt=opt, cflags=["-g"]) as s:
        s.append(path)
        proc = stop(s, s.lookup("c"))
        bt = backtrace(proc)
        check_chain(bt, path, ["c", "b", "a", "main"])
        assert bt[0].offset == 0
        if cfi_table(target) is None:
            assert [f.how for f in bt] == ["link-register"] + ["frame-record"] * 3
        else:
            assert [f.how for f in bt] == ["cfi"] * 4
        # the leaf's CFA is the caller's sp: nothing pushed yet (x86-64: the
        # return address)
        pushed = 8 if s.target.arch.name == "x64" else 0
        assert bt[0].cfa == bt[0].sp + pushed
        finish(s, CHAIN_RESULT)


@pytest.mark.parametrize("opt", OPTS)
@pytest.mark.parametrize("target", ALL)
def test_host_function_frame(target, opt, src):
    """A breakpoint on the host strlen (reached through its canonical
    stub): the host frame unwinds as a leaf into c at the call's line."""
    path = src("chain.c", CHAIN)
    with Session(target, opt=opt, cflags=["-g"]) as s:
        s.append(path)
        host = s.proc.machine.hostproc.addrs[s.symbol_name("strlen")]
        proc = stop(s, host)
        bt = backtrace(proc)
        check_chain(bt, path, ["strlen", "c", "b", "a", "main"])
        h = bt[0]
        assert (h.how, h.pc, h.generation, h.file, h.symbol) == \
            ("host", host, None, None, s.symbol_name("strlen"))
        rest = "frame-record" if cfi_table(target) is None else "cfi"
        assert [f.how for f in bt[1:]] == [rest] * 4
        finish(s, CHAIN_RESULT)


@pytest.mark.parametrize("target", [t for t in ALL if cfi_table(t)])
def test_cfi_and_frame_records_agree(target, src):
    """-O0 keeps frame pointers: walking the frame-record chain instead of
    the CFI finds the same frames, return addresses and CFAs."""
    path = src("chain.c", CHAIN)
    with Session(target, opt="-O0", cflags=["-g"]) as s:
        s.append(path)
        for where in (call_site(s, "strlen", "c"), s.lookup("c")):
            proc = stop(s, where)
            with_cfi, without = backtrace(proc), backtrace(proc, cfi=False)
            assert {f.how for f in with_cfi} == {"cfi"}
            assert {f.how for f in without} <= {"frame-record", "link-register"}
            assert [(f.pc, f.function, f.cfa, f.line) for f in with_cfi] == \
                [(f.pc, f.function, f.cfa, f.line) for f in without]
            finish(s, CHAIN_RESULT)


@pytest.mark.parametrize("target", ELF + ["macho-x64"])
def test_eh_frame(target, src):
    """With unwind tables: ELF .eh_frame is read from the image (rodata,
    relocated by the linker), Mach-O x86-64 __TEXT,__eh_frame from the
    object in its own address space, mapped to the runtime one."""
    path = src("chain.c", CHAIN)
    with Session(target, opt="-O2", cflags=["-g", "-fasynchronous-unwind-tables"]) as s:
        s.append(path)
        expect = ".eh_frame" if target.startswith("elf") else "__TEXT,__eh_frame"
        for where, funcs in ((call_site(s, "strlen", "c"), ["c", "b", "a", "main"]),
                             (s.proc.machine.hostproc.addrs[s.symbol_name("strlen")],
                              ["strlen", "c", "b", "a", "main"])):
            proc = stop(s, where)
            bt = backtrace(proc)
            check_chain(bt, path, funcs)
            cfi = [f for f in bt if f.how == "cfi"]
            assert len(cfi) == 4 and {f.table for f in cfi} == {expect}, bt.render()
            finish(s, CHAIN_RESULT)


@pytest.mark.parametrize("target,opt,cflags", [
    ("elf-x64", "-O0", []), ("elf-aarch64", "-O0", []), ("elf-rv64", "-O0", []),
    ("elf-aarch64", "-O2", []),
    ("elf-rv64", "-O2", ["-fno-omit-frame-pointer"]),
    ("elf-x64", "-O2", ["-fno-omit-frame-pointer"]),
])
def test_frame_records_without_cfi(target, opt, cflags, src):
    """No -g, no unwind tables: frame records (x86-64 rbp, AArch64 x29,
    RISC-V s0 with -fno-omit-frame-pointer); function names and
    generations still come from the image."""
    with Session(target, opt=opt, cflags=cflags) as s:
        s.append(src("chain.c", CHAIN))
        proc = stop(s, call_site(s, "strlen", "c"))
        bt = backtrace(proc)
        assert bt.complete and bt.functions == ["c", "b", "a", "main"], bt.render()
        assert {f.how for f in bt} == {"frame-record"}
        assert all(f.generation == 0 and f.file is None for f in bt)
        finish(s, CHAIN_RESULT)
        proc = stop(s, s.lookup("c"))
        bt = backtrace(proc)
        assert bt.functions == ["c", "b", "a", "main"], bt.render()
        assert [f.how for f in bt] == ["link-register"] + ["frame-record"] * 3
        finish(s, CHAIN_RESULT)


@pytest.mark.parametrize("target", ["elf-x64", "elf-rv64"])
def test_no_cfi_no_frame_pointer_stops(target, src):
    """-O2 without CFI omits the frame pointer on x86-64 and RISC-V: the walk
    stops with a reason instead of following garbage."""
    with Session(target, opt="-O2") as s:
        s.append(src("chain.c", CHAIN))
        proc = stop(s, s.proc.machine.hostproc.addrs[s.symbol_name("strlen")])
        bt = backtrace(proc)
        assert not bt.complete and bt.reason
        assert bt.functions[:2] == ["strlen", "c"]
        assert "backtrace stopped" in bt.render()
        finish(s, CHAIN_RESULT)


# -- stable entries and hot reload ----------------------------------------------------
@pytest.mark.parametrize("opt", OPTS)
@pytest.mark.parametrize("target", ALL)
def test_frames_across_a_reload(target, opt, src):
    prog, v2 = src("prog.c", RELOAD), src("value_v2.c", VALUE_V2)
    with Session(target, opt=opt, cflags=["-g"], indirect=INDIRECT_EXPORTED_FUNCS) as s:
        s.append(prog)
        leaf = s.reloadable("leaf")
        proc = stop(s, leaf.active.addr)
        before = backtrace(proc)
        assert before.functions == ["leaf$body$0", "value$body$0", "main$body$0"], \
            before.render()
        s.reload_function("value", v2)
        assert s.generation == 1
        bt = backtrace(proc)
        assert bt.complete and bt.functions == before.functions
        assert [(f.pc, f.generation, f.file, f.line) for f in bt] == \
            [(f.pc, f.generation, f.file, f.line) for f in before]
        value = bt[1]
        assert (value.generation, value.file, value.line) == \
            (0, str(prog), line_of(RELOAD, "VALUE_CALL"))
        assert bt[2].line == line_of(RELOAD, "MAIN_CALL")
        expect = "frame-record" if cfi_table(target) is None else "cfi"
        assert [f.how for f in bt[1:]] == [expect] * 2
        finish(s, (3 + 5) * 2 + 1)               # the stopped call ends in body 0

        # a stop on leaf's stable entry: one indirect jump, a leaf; its
        # caller is the new body of value (generation 1, value_v2.c)
        proc = stop(s, leaf.entry)
        bt = backtrace(proc)
        assert bt.complete and bt.functions == ["leaf", "value$body$1", "main$body$0"], \
            bt.render()
        assert bt[0].how == "entry" and bt[0].offset == 0
        assert (bt[1].generation, bt[1].file, bt[1].line) == \
            (1, str(v2), line_of(VALUE_V2, "V2_CALL"))
        assert (bt[2].generation, bt[2].file) == (0, str(prog))
        finish(s, (3 + 5) * 100 + 1)


# -- the API ------------------------------------------------------------------------
def test_registers_given_and_no_stopped_call(src):
    path = src("chain.c", CHAIN)
    with Session("elf-aarch64", opt="-O0", cflags=["-g"]) as s:
        s.append(path)
        with pytest.raises(KitemuError, match="no call is stopped"):
            backtrace(s.proc)
        proc = stop(s, s.proc.machine.hostproc.addrs["strlen"])
        bt = backtrace(proc)
        # start the walk from frame #1's registers (a host leaf changes none
        # but pc and sp)
        again = backtrace(proc, regs={"pc": bt[1].pc, "sp": bt[1].sp})
        assert again.functions == bt.functions[1:]
        assert [f.cfa for f in again] == [f.cfa for f in bt[1:]]
        assert len(backtrace(proc, limit=2)) == 2 and not backtrace(proc, limit=2).complete
        with pytest.raises(KitemuError, match="unknown register"):
            backtrace(proc, regs={"eax": 1})
        finish(s, CHAIN_RESULT)


def test_unreadable_memory_stops_the_walk_with_a_reason(src):
    """A frame pointer or stack pointer into unmapped memory ends the walk
    (complete False, a reason naming the address), never an exception; so
    does a register value that is not an integer (KitemuError)."""
    path = src("chain.c", CHAIN)
    for target in ("elf-x64", "elf-aarch64", "elf-rv64"):
        with Session(target, opt="-O0", cflags=["-g"]) as s:
            s.append(path)
            proc = stop(s, call_site(s, "strlen", "c"))
            bt = backtrace(proc, regs={"fp": 0x7FF0, "sp": 0x7000})
            assert not bt.complete and "0x7f" in bt.reason and "not readable" in bt.reason
            assert bt.functions == ["c"]
            link = {"elf-aarch64": {"lr": 0x10}, "elf-rv64": {"ra": 0x10}}.get(target, {})
            bt = backtrace(proc, regs={"pc": s.lookup("c"), "sp": 0x10, **link})
            assert not bt.complete and bt.reason, bt.render()
            with pytest.raises(KitemuError, match="not an integer"):
                backtrace(proc, regs={"sp": "0x1000"})
            finish(s, CHAIN_RESULT)


# hand-written CFI (x86-64 .eh_frame): opcodes clang's C output never uses
HAND_CFI = r"""
#include <kitlibc.h>
char msg[] = "hello";
int before(int x) { return x * 2; }
int victim(int x) { return x + 1; }
void tramp(void);
void sfcfa(void);
void argsz(void);
void rrs(int);
__asm__(
    ".text\n"
    /* a signal frame whose 'interrupted' pc is victim's first instruction */
    ".globl tramp\n.type tramp,@function\ntramp:\n"
    "  .cfi_startproc\n  .cfi_signal_frame\n"
    "  leaq victim(%rip), %rax\n"                   /* 7 bytes */
    "  pushq %rax\n"                                /* tramp+7; stop at tramp+8 */
    "  nop\n  popq %rax\n  ret\n  .cfi_endproc\n.size tramp, .-tramp\n"
    /* DW_CFA_def_cfa_sf rsp, -2: CFA = rsp + (-2 * data_alignment -8) = rsp + 16 */
    ".globl sfcfa\n.type sfcfa,@function\nsfcfa:\n"
    "  .cfi_startproc\n  pushq %rbp\n"
    "  .cfi_escape 0x12, 0x07, 0x7e\n  .cfi_offset %rbp, -16\n"
    "  nop\n"                                       /* stop at sfcfa+1 */
    "  popq %rbp\n  .cfi_def_cfa_offset 8\n  ret\n  .cfi_endproc\n.size sfcfa, .-sfcfa\n"
    /* DW_CFA_GNU_args_size 0 (says nothing about the CFA) */
    ".globl argsz\n.type argsz,@function\nargsz:\n"
    "  .cfi_startproc\n  subq $8, %rsp\n  .cfi_def_cfa_offset 16\n"
    "  .cfi_escape 0x2e, 0x00\n"
    "  nop\n"                                       /* stop at argsz+4 */
    "  addq $8, %rsp\n  .cfi_def_cfa_offset 8\n  ret\n  .cfi_endproc\n.size argsz, .-argsz\n"
    /* an early-return epilogue: remember_state / restore / restore_state */
    ".globl rrs\n.type rrs,@function\nrrs:\n"
    "  .cfi_startproc\n  pushq %rbx\n  .cfi_def_cfa_offset 16\n  .cfi_offset %rbx, -16\n"
    "  testl %edi, %edi\n  jne 1f\n"
    "  .cfi_remember_state\n  popq %rbx\n  .cfi_def_cfa_offset 8\n  .cfi_restore %rbx\n"
    "  ret\n"
    "  .cfi_restore_state\n"
    "1:\n  nop\n"                                   /* stop at the nop */
    "  popq %rbx\n  .cfi_def_cfa_offset 8\n  ret\n  .cfi_endproc\n.size rrs, .-rrs\n"
);
int main(void) {
    tramp();
    sfcfa();
    argsz();
    rrs(1);
    return victim(before(3));
}
"""


def test_hand_written_cfi(src):
    """.eh_frame rows this module builds itself: DW_CFA_def_cfa_sf scaled by
    the data alignment factor, DW_CFA_GNU_args_size ignored,
    remember/restore_state around an early epilogue, and a signal frame
    ('S'): its caller's pc is the interrupted instruction, looked up at pc
    (here the first instruction of victim; pc - 1 would be in before)."""
    path = src("hand.c", HAND_CFI)
    with Session("elf-x64", opt="-O0", cflags=["-g", "-fasynchronous-unwind-tables"]) as s:
        s.append(path)
        code = s.proc.machine.read(s.lookup("rrs"), 16)
        nop = s.lookup("rrs") + code.index(b"\xc3") + 1        # after the early ret
        stops = [("tramp", s.lookup("tramp") + 8, ["tramp", "victim", "main"]),
                 ("sfcfa", s.lookup("sfcfa") + 1, ["sfcfa", "main"]),
                 ("argsz", s.lookup("argsz") + 4, ["argsz", "main"]),
                 ("rrs", nop, ["rrs", "main"])]
        for name, where, funcs in stops:
            proc = stop(s, where)
            bt = backtrace(proc)
            assert bt.complete and bt.functions == funcs, (name, bt.render())
            assert bt[0].how == "cfi" and bt[0].table == ".eh_frame", (name, bt.render())
            if name == "tramp":
                assert bt[1].pc == s.lookup("victim") and bt[1].offset == 0
                call = next(i for i, ln in enumerate(HAND_CFI.splitlines(), 1)
                            if ln.strip() == "tramp();")
                assert bt[1].how == "cfi" and bt[2].line == call, bt.render()
            else:
                assert bt[0].cfa == bt[1].sp == proc.machine.reg(
                    s.target.callconv.sp) + 16, (name, bt.render())
            finish(s, 7)
