"""Breakpoints and resumable calls on the native backend: the API of the
emulated ones (tests/test_breakpoints.py) - machine.add_breakpoint /
remove_breakpoint / breakpoints, proc.start_call / resume / abandon /
stopped / stopped_at, machine.reg / set_reg while stopped - with an int3 in
real code, a signal handler that waits for the controller, and a single
step to re-arm.

Guest code runs in this process's threads, so every test body runs in a
forked child (run_isolated): a bug kills the child, not pytest. An
AssertionError raised in the child is re-raised here.

The programs are those of tests/test_breakpoints.py (x86-64):

    f(n, k):  acc = 1; do { acc += k; } while (--n); return acc + TAIL_IMM
    g(p, v):  *p = v; return v
"""

import ctypes
import shutil
import threading
import time

import pytest
import unicorn.x86_const as x86

from kitemu.backends.native import NativeProcess, native_host_problem, run_isolated
from kitemu.errors import KitemuError
from kitemu.loader.model import Binding, SectionKind, SymbolType

from objbuild import ObjBuilder
from test_breakpoints import PATCHED_IMM, TAIL_IMM, expect, program, x64

pytestmark = pytest.mark.skipif(native_host_problem() is not None,
                                reason=f"native backend: {native_host_problem()}")

RIP, RSP, RBP, RAX, RDI, RSI = (x86.UC_X86_REG_RIP, x86.UC_X86_REG_RSP, x86.UC_X86_REG_RBP,
                                x86.UC_X86_REG_RAX, x86.UC_X86_REG_RDI, x86.UC_X86_REG_RSI)
CALLCONV_REGS = ("rip", "rsp", "rdi", "rsi", "rdx", "rcx", "r8", "r9", "rax", "rbp")
#: assembled extra functions: sum of 8 integer arguments (2 on the stack),
#: a double sum, an exit(3) through the host, a literal int3, the flags as
#: pushf saw them, a pushf/popf pair
EXTRA = {
    "sum8": "mov rax, rdi; add rax, rsi; add rax, rdx; add rax, rcx; add rax, r8; add rax, r9;"
            "add rax, qword ptr [rsp + 8]; add rax, qword ptr [rsp + 16]; ret",
    "fsum": "addsd xmm0, xmm1; ret",
    "trap": "nop; int3; ret",
    "flags": "pushfq; pop rax; ret",
    "popf": "pushfq; popfq; mov eax, 7; ret",
}


def isolated(fn):
    """Run the decorated test body in a forked child."""
    def test(*args, **kw):
        return run_isolated(fn, *args, **kw)
    test.__name__ = fn.__name__
    test.__doc__ = fn.__doc__
    return test


def raw_byte(addr: int) -> int:
    """The byte really in memory (machine.read shows breakpoints' originals)."""
    return ctypes.c_ubyte.from_address(addr).value


class Prog:
    def __init__(self, strategy: str = "mprotect"):
        f, g, offs, _, tail = program("x64")
        b = ObjBuilder("elf-x64", "bp.o")
        code = f + bytes(-len(f) % 16)
        places = {"f": 0, "g": len(code)}
        code += g + bytes(-len(g) % 16)
        for name, asm in EXTRA.items():
            places[name] = len(code)
            body = x64(asm)
            code += body + bytes(-len(body) % 16)
        places["do_exit"] = len(code)
        code += x64("push rbx; mov edi, 3") + b"\xe8\0\0\0\0" + x64("pop rbx; ret")
        code += bytes(-len(code) % 16)
        # spin_host: for (;;) strlen(code) - nearly all its time in a host body
        places["spin_host"] = len(code)
        code += x64("push rax; lea rdi, [rip - 7]") + b"\xe8\0\0\0\0" + b"\xeb\xf2"
        text = b.section(".text", SectionKind.TEXT, code, align=16)
        for name, off in places.items():
            b.symbol(name, text, off, binding=Binding.GLOBAL, type=SymbolType.FUNC)
        b.undefined("exit")
        b.reloc(text, places["do_exit"] + 7, "R_X86_64_PLT32", "exit", -4)
        b.undefined("strlen")
        b.reloc(text, places["spin_host"] + 9, "R_X86_64_PLT32", "strlen", -4)
        self.proc = proc = NativeProcess("elf-x64", strategy=strategy)
        proc.link([b.build()])
        for name in places:
            setattr(self, name, proc.lookup(name))
        self.at = {k: self.f + v for k, v in offs.items()}
        self.tail = tail
        self.m = proc.machine


# -- stopping and resuming ---------------------------------------------------------------
@isolated
def test_stop_at_entry_shows_the_arguments_and_resumes_to_the_return_value():
    p = Prog()
    proc, m = p.proc, p.m
    m.add_breakpoint(p.f)
    assert m.breakpoints == {p.f}
    assert raw_byte(p.f) == 0xCC and m.read(p.f, 1) == b"\xb8"     # mov eax, 1
    out = proc.start_call(p.f, [4, 5])
    assert out.status == "breakpoint" and out.stopped and out.pc == p.f
    assert proc.stopped and proc.stopped_at == p.f
    assert m.reg(RIP) == p.f                       # before the instruction, not after the int3
    assert (m.reg(RDI), m.reg(RSI)) == (4, 5)
    regs = {n: m.reg(getattr(x86, f"UC_X86_REG_{n.upper()}")) for n in CALLCONV_REGS}
    sp = regs["rsp"]
    assert sp % 16 == 8                            # just after a call
    assert sp < proc.stack_top_of_call() and proc.stack_top_of_call() - sp < 256
    # the return address is the entry trampoline's, outside the image
    ret = int.from_bytes(m.read(sp, 8), "little")
    assert proc.trap.code <= ret < proc.trap.code + 4096
    out = proc.resume()
    assert out.returned and out.value == expect(4, 5) and not proc.stopped
    assert raw_byte(p.f) == 0xCC                   # still armed
    # the next call stops at it again
    out = proc.start_call(p.f, [2, 7])
    assert out.stopped and out.pc == p.f
    assert proc.resume().value == expect(2, 7)
    # no breakpoint: start_call just returns
    m.remove_breakpoint(p.f)
    assert raw_byte(p.f) == 0xB8
    out = proc.start_call(p.f, [3, 3])
    assert out.returned and out.value == expect(3, 3)


@isolated
def test_breakpoint_in_a_loop_hits_every_iteration():
    p = Prog()
    proc, m = p.proc, p.m
    m.add_breakpoint(p.at["body"])
    n, k = 5, 3
    out = proc.start_call(p.f, [n, k])
    accs = []
    while out.stopped:
        assert out.pc == p.at["body"] == m.reg(RIP)
        accs.append(m.reg(RAX))          # the loop's add has not run yet
        out = proc.resume()
    assert accs == [1 + i * k for i in range(n)]
    assert out.returned and out.value == expect(n, k)


@pytest.mark.parametrize("strategy", ["mprotect", "dual-map", "jit-toggle"])
def test_removing_the_breakpoint_lets_the_call_finish(strategy):
    run_isolated(_removing_the_breakpoint_lets_the_call_finish, strategy)


def _removing_the_breakpoint_lets_the_call_finish(strategy):
    p = Prog(strategy)
    proc, m = p.proc, p.m
    m.add_breakpoint(p.at["body"])
    out = proc.start_call(p.f, [6, 2])
    assert out.stopped
    assert proc.resume().stopped                      # second iteration
    m.remove_breakpoint(p.at["body"])
    assert m.breakpoints == set() and raw_byte(p.at["body"]) == 0x48
    out = proc.resume()
    assert out.returned and out.value == expect(6, 2)
    with pytest.raises(KeyError):
        m.remove_breakpoint(p.at["body"])
    assert proc.call(p.f, [6, 2]) == (expect(6, 2), None)


@isolated
def test_registers_can_be_changed_while_stopped_and_the_pc_moved():
    p = Prog()
    proc, m = p.proc, p.m
    m.add_breakpoint(p.f)
    m.add_breakpoint(p.at["tail"])
    with pytest.raises(KitemuError, match="only while a call is stopped"):
        m.reg(RIP)
    assert proc.start_call(p.f, [2, 2]).pc == p.f
    # a PC moved onto another breakpoint stops there at once
    m.set_reg(RIP, p.at["tail"])
    m.set_reg(RAX, 100)
    out = proc.resume()
    assert out.stopped and out.pc == p.at["tail"] and m.reg(RAX) == 100
    assert proc.resume().value == 100 + TAIL_IMM
    # arguments changed at the entry
    out = proc.start_call(p.f, [2, 2])
    m.set_reg(RSI, 10)
    m.remove_breakpoint(p.at["tail"])
    assert proc.resume().value == expect(2, 10)


@isolated
def test_stack_and_floating_point_arguments_and_results():
    p = Prog()
    proc, m = p.proc, p.m
    m.add_breakpoint(p.sum8)
    m.add_breakpoint(p.fsum)
    out = proc.start_call(p.sum8, [1, 2, 3, 4, 5, 6, 70, 800])
    assert out.stopped
    sp = m.reg(RSP)
    assert m.read(sp + 8, 16) == (70).to_bytes(8, "little") + (800).to_bytes(8, "little")
    assert proc.resume().value == 1 + 2 + 3 + 4 + 5 + 6 + 70 + 800
    out = proc.start_call(p.fsum, [1.25, 2.5], returns="double")
    assert out.stopped
    assert m.reg(x86.UC_X86_REG_XMM1) & (2**64 - 1) == 0x4004000000000000      # 2.5
    out = proc.resume()
    assert out.returned and out.value == 3.75


# -- code written while a breakpoint is set --------------------------------------------------
@pytest.mark.parametrize("strategy", ["mprotect", "dual-map"])
def test_patching_code_while_stopped_keeps_the_breakpoints(strategy):
    run_isolated(_patching_code_while_stopped, strategy)


def _patching_code_while_stopped(strategy):
    p = Prog(strategy)
    proc, m = p.proc, p.m
    m.add_breakpoint(p.at["body"])
    out = proc.start_call(p.f, [3, 4])
    assert out.stopped
    proc.mem.patch([(p.at["tail"], p.tail(PATCHED_IMM))])
    out = proc.resume()                       # the body's breakpoint again
    assert out.stopped and out.pc == p.at["body"]
    m.remove_breakpoint(p.at["body"])
    out = proc.resume()
    assert out.returned and out.value == expect(3, 4, PATCHED_IMM)
    # patching the instruction the call is stopped *at*, over its
    # breakpoint: the int3 stays, the saved byte is the new one, and the
    # new instruction is what runs on resume
    tail = p.at["tail"]
    m.add_breakpoint(tail)
    assert proc.start_call(p.f, [1, 1]).pc == tail
    new = p.tail(0x33)
    proc.mem.patch([(tail - 2, m.read(tail - 2, 2) + new)])       # a write across it
    assert raw_byte(tail) == 0xCC and m.read(tail, len(new)) == new
    assert m.breakpoints == {tail}
    assert proc.resume().value == expect(1, 1, 0x33)
    # and another call stops there again; removing restores the new byte
    assert proc.start_call(p.f, [1, 1]).pc == tail
    m.remove_breakpoint(tail)
    assert raw_byte(tail) == new[0]
    assert proc.resume().value == expect(1, 1, 0x33)
    if strategy == "dual-map":
        chunk = proc.mem.chunk_at(tail)
        assert raw_byte(chunk.alias + (tail - chunk.addr)) == new[0]


# -- faults, exits, time limits --------------------------------------------------------------
@isolated
def test_fault_after_a_resume_is_reported_normally():
    p = Prog()
    proc, m = p.proc, p.m
    buf = m.hostproc.heap.malloc(16)
    m.add_breakpoint(p.g)
    out = proc.start_call(p.g, [buf, 42])
    assert out.stopped and m.reg(RDI) == buf and m.reg(RSI) == 42
    assert proc.resume().value == 42
    assert int.from_bytes(m.read(buf, 8), "little") == 42
    assert proc.start_call(p.g, [buf, 43]).stopped
    m.set_reg(RDI, 8)                         # the store now writes to page 0
    out = proc.resume()
    assert out.faulted and not proc.stopped
    f = out.fault
    assert (f.signal, f.si_code, f.access, f.address) == ("SIGSEGV", "SEGV_MAPERR", "write", 8)
    assert f.pc == p.g and f.pc_symbol == "g"
    assert raw_byte(p.g) == 0xCC                 # re-armed although the step faulted
    m.remove_breakpoint(p.g)
    # the process is usable afterwards
    assert proc.call(p.f, [2, 2]) == (expect(2, 2), None)
    # a literal int3 that is no breakpoint is a SIGTRAP fault, not a stop
    out = proc.start_call(p.trap, [])
    assert out.faulted and out.fault.signal == "SIGTRAP" and out.fault.si_code == "SI_KERNEL"
    assert not proc.stopped


@isolated
def test_plain_call_reports_a_breakpoint_as_sigtrap():
    p = Prog()
    proc, m = p.proc, p.m
    m.add_breakpoint(p.at["body"])
    value, fault = proc.call(p.f, [2, 2], timeout=5)
    assert fault is not None and fault.kind == "breakpoint"
    assert (fault.signal, fault.si_code) == ("SIGTRAP", "TRAP_BRKPT")
    assert fault.pc == p.at["body"] and not proc.stopped
    m.remove_breakpoint(p.at["body"])
    assert proc.call(p.f, [2, 2]) == (expect(2, 2), None)


@isolated
def test_exit_while_resumed_is_reported_as_exited():
    p = Prog()
    proc, m = p.proc, p.m
    with pytest.raises(KitemuError, match="host functions"):
        m.add_breakpoint(m.hostproc.addrs["exit"])      # a ctypes trampoline
    m.add_breakpoint(p.do_exit)
    out = proc.start_call(p.do_exit, [])
    assert out.stopped
    out = proc.resume()
    assert out.exited and out.exit.status == 3 and not proc.stopped


@isolated
def test_time_limit_holds_across_resumes():
    """A spinning loop with a breakpoint stops on every arrival; the time
    limit counts guest time only and still ends the call once the
    breakpoint is gone."""
    p = Prog()
    proc, m = p.proc, p.m
    proc.mem.patch([(p.f, b"\xeb\xfe")])        # jmp .
    m.add_breakpoint(p.f)
    out = proc.start_call(p.f, [1, 1], timeout=0.3)
    for _ in range(3):
        assert out.stopped and out.pc == p.f
        out = proc.resume()
    time.sleep(0.4)                            # not counted
    m.remove_breakpoint(p.f)
    started = time.monotonic()
    out = proc.resume()
    assert out.faulted and out.fault.kind == "timeout" and out.fault.signal == "SIGKILL"
    assert out.fault.pc == p.f and 0.2 < time.monotonic() - started < 5


# -- other calls while stopped, abandon ------------------------------------------------------
@isolated
def test_calls_made_while_stopped_leave_the_stopped_call_intact():
    p = Prog()
    proc, m = p.proc, p.m
    m.add_breakpoint(p.at["body"])
    assert proc.start_call(p.f, [4, 10]).stopped
    assert proc.resume().stopped
    acc, sp = m.reg(RAX), m.reg(RSP)
    with pytest.raises(KitemuError, match="resume\\(\\) or abandon\\(\\)"):
        proc.start_call(p.f, [1, 1])
    # a plain call meanwhile cannot stop: the breakpoint is a SIGTRAP for it
    _, fault = proc.call(p.f, [1, 1])
    assert fault.kind == "breakpoint"
    m.remove_breakpoint(p.at["body"])
    assert proc.call(p.f, [7, 7]) == (expect(7, 7), None)      # on a thread of its own
    assert proc.stopped and (m.reg(RIP), m.reg(RAX), m.reg(RSP)) == (p.at["body"], acc, sp)
    out = proc.resume()
    assert out.returned and out.value == expect(4, 10)


@isolated
def test_resume_needs_a_stopped_call_and_abandon_ends_the_thread():
    p = Prog()
    proc, m = p.proc, p.m
    with pytest.raises(KitemuError, match="nothing to resume"):
        proc.resume()
    assert proc.abandon() is False
    m.add_breakpoint(p.at["body"])
    threads, regions = threading.active_count(), len(m._regions)
    for _ in range(5):
        assert proc.start_call(p.f, [3, 3]).stopped
        assert proc.resume().stopped
        assert proc.abandon() is True
        assert not proc.stopped and proc.stopped_at is None
    # every abandoned worker returned through the entry trampoline and ended
    deadline = time.monotonic() + 5
    while threading.active_count() > threads and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threading.active_count() == threads and len(m._regions) == regions
    assert raw_byte(p.at["body"]) == 0xCC
    out = proc.start_call(p.f, [2, 3])
    assert out.pc == p.at["body"]
    m.remove_breakpoint(p.at["body"])
    assert proc.resume().value == expect(2, 3)


# -- JitProcess.run(on_breakpoint=) and hot reload ------------------------------------------
needs_clang = pytest.mark.skipif(shutil.which("clang") is None, reason="needs clang")

NOINLINE = "__attribute__((noinline))"
NESTED = f"""
{NOINLINE} int inner(int x) {{ return x * 2; }}
{NOINLINE} int value(int x) {{ return inner(x) + 1; }}
int call_value(int x) {{ return value(x) + 0; }}
"""
VALUE_V2 = "int inner(int);\nint value(int x) { return inner(x) + 1000; }\n"


@needs_clang
def test_frame_stopped_in_the_old_body_returns_through_it(tmp_path):
    (tmp_path / "nested.c").write_text(NESTED)
    (tmp_path / "v2.c").write_text(VALUE_V2)
    run_isolated(_frame_stopped_in_the_old_body, str(tmp_path))


def _frame_stopped_in_the_old_body(d):
    from kitemu.session import INDIRECT_EXPORTED_FUNCS, Session
    s = Session("elf-x64", backend="native", indirect=INDIRECT_EXPORTED_FUNCS, cflags=["-g"])
    try:
        s.append(f"{d}/nested.c")
        inner = s.reloadable("inner").active.addr
        m = s.proc.machine
        m.add_breakpoint(inner)
        out = s.proc.start_call(s.lookup("call_value"), [5])
        assert out.stopped and out.pc == inner
        gen = s.reload_function("value", f"{d}/v2.c")
        assert gen == 1
        assert s.body_state("value", 0) == "replaced"
        assert not s.can_reclaim("value", 0)       # a return address points into body 0
        assert not s.can_reclaim("value", 1)       # the active body
        s.retire("value", 0)
        assert s.body_state("value", 0) == "retired"
        m.remove_breakpoint(inner)
        assert s.call("call_value", 7) == 1014     # a new call meanwhile: the new body
        out = s.proc.resume()
        assert out.returned and out.value == 11    # finished in the old body
        assert s.can_reclaim("value", 0) and s.body_state("value", 0) == "reclaimable"
        assert s.call("call_value", 5) == 1010     # new calls: the new body
    finally:
        s.free()


GAME = f"""
int printf(const char *, ...);
{NOINLINE} int score(int round) {{ return round * 10; }}
int main(void) {{
    int total = 0;
    for (int round = 1; round <= 4; round++) {{
        int s = score(round);
        printf("round %d: %d\\n", round, s);
        total += s;
    }}
    return total & 0x7f;
}}
"""


@needs_clang
def test_run_with_on_breakpoint_reloads_while_stopped(tmp_path):
    """JitProcess.run(on_breakpoint=), unchanged, on the native process:
    what ``kitemu reload --break score --hit 2`` does."""
    (tmp_path / "game.c").write_text(GAME)
    (tmp_path / "score2.c").write_text("int score(int round) { return round * 1000; }\n")
    out, status, hits = run_isolated(_run_with_on_breakpoint, str(tmp_path))
    assert out == b"round 1: 10\nround 2: 20\nround 3: 3000\nround 4: 4000\n"
    assert status == (10 + 20 + 3000 + 4000) & 0x7f
    assert hits == 2


def _run_with_on_breakpoint(d):
    from kitemu.session import INDIRECT_EXPORTED_FUNCS, Session
    s = Session("elf-x64", backend="native", indirect=INDIRECT_EXPORTED_FUNCS, cflags=["-g"])
    try:
        s.append(f"{d}/game.c")
        where = s.reloadable("score").active.addr
        s.proc.machine.add_breakpoint(where)
        hits = 0

        def on_breakpoint(proc, pc):
            nonlocal hits
            hits += 1
            assert pc == where and proc.machine.reg(RIP) == where
            assert proc.machine.reg(RDI) == hits          # score(round)
            if hits == 2:
                s.reload_function("score", f"{d}/score2.c")
                proc.machine.remove_breakpoint(where)

        result = s.proc.run("main", [], timeout=30, on_breakpoint=on_breakpoint)
        assert result.fault is None, result.message
        return result.stdout, result.exit_code, hits
    finally:
        s.free()


# -- review fixes --------------------------------------------------------------------------
@isolated
def test_pushf_under_a_breakpoint_does_not_save_the_trap_flag():
    """The instruction under a breakpoint runs with EFLAGS.TF set (the
    re-arm's single step): a pushf there must push the guest's flags, or a
    later popf turns single-stepping on for good (a SIGTRAP TRAP_TRACE
    fault)."""
    p = Prog()
    proc, m = p.proc, p.m
    m.add_breakpoint(p.flags)
    m.add_breakpoint(p.popf)
    assert proc.start_call(p.flags, []).stopped
    out = proc.resume()
    assert out.returned and out.value & 0x100 == 0          # TF
    assert proc.start_call(p.popf, []).stopped
    out = proc.resume()
    assert out.returned and out.value == 7, out.fault and out.fault.render()
    assert raw_byte(p.flags) == raw_byte(p.popf) == 0xCC



@isolated
def test_breakpoint_inside_an_instruction_is_refused():
    """An int3 over an operand byte would silently change the instruction
    (mov eax, 1 -> mov eax, 0xcc): natively a breakpoint must start an
    instruction."""
    p = Prog()
    proc, m = p.proc, p.m
    for inside in (p.f + 1, p.f + 4, p.at["tail"] + 3):
        with pytest.raises(KitemuError, match="inside the instruction"):
            m.add_breakpoint(inside)
    assert m.breakpoints == set() and raw_byte(p.f + 1) == 0x01
    assert proc.call(p.f, [2, 3]) == (expect(2, 3), None)
    for start in (p.f, p.at["body"], p.at["tail"], p.at["tail"] + 4):     # tail + 4: ret
        m.add_breakpoint(start)
    assert m.breakpoints == {p.f, p.at["body"], p.at["tail"], p.at["tail"] + 4}


@isolated
def test_resume_after_a_motion_ended_the_call_returns_its_outcome():
    """JitProcess.stopped_ended (a debugger step that ran the call to its
    end): the next resume() returns that outcome, as emulated, so that
    run(on_breakpoint=) carries on; start_call and abandon forget it."""
    p = Prog()
    proc, m = p.proc, p.m
    m.add_breakpoint(p.g)
    assert proc.start_call(p.g, [8, 1]).stopped                 # *8 = 1: page 0
    m.remove_breakpoint(p.g)
    ended = proc.resume()
    assert ended.faulted
    proc.stopped_ended(ended)
    assert proc.resume() is ended
    with pytest.raises(KitemuError, match="nothing to resume"):
        proc.resume()
    for forget in ("start_call", "abandon"):
        proc.stopped_ended(ended)
        if forget == "start_call":
            assert proc.start_call(p.f, [1, 1]).returned
        else:
            assert proc.abandon() is False
        with pytest.raises(KitemuError, match="nothing to resume"):
            proc.resume()


@isolated
def test_resume_with_the_time_limit_spent_ends_the_stopped_thread():
    """A stop reached with no guest time left: resume() reports the time
    limit (as emulated) and the worker is unwound, not left blocked at its
    gate for the life of the process."""
    p = Prog()
    proc, m = p.proc, p.m
    m.add_breakpoint(p.at["body"])
    threads, regions = threading.active_count(), len(m._regions)
    assert proc.start_call(p.f, [3, 3], timeout=30).stopped
    proc._stopped_call.budget = 0.0                 # as if the guest had used it all
    out = proc.resume()
    assert out.faulted and out.fault.kind == "timeout" and out.pc == p.at["body"]
    assert not proc.stopped
    deadline = time.monotonic() + 5
    while threading.active_count() > threads and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threading.active_count() == threads and len(m._regions) == regions
    assert proc.start_call(p.f, [2, 3]).stopped
    m.remove_breakpoint(p.at["body"])
    assert proc.resume().value == expect(2, 3)


@isolated
def test_calls_do_not_leak_their_alternate_signal_stacks():
    """Each call's worker gets a 64 KiB alternate signal stack; a worker
    that ends gives it back (only parked threads keep theirs)."""
    p = Prog()
    proc, m = p.proc, p.m
    before = len(proc.trap._altstacks)
    for i in range(20):
        assert proc.call(p.f, [2, i]) == (expect(2, i), None)
    m.add_breakpoint(p.f)
    for i in range(5):
        assert proc.start_call(p.f, [2, i]).stopped
        assert proc.resume().value == expect(2, i)
    assert proc.start_call(p.f, [1, 1]).stopped
    proc.abandon()
    assert len(proc.trap._altstacks) == before


@pytest.mark.parametrize("resumable", [False, True])
def test_time_limit_hit_inside_a_host_function_stops_the_worker(resumable):
    run_isolated(_time_limit_inside_a_host_function, resumable, timeout=40)


def _time_limit_inside_a_host_function(resumable):
    """The time-limit signal usually lands while the worker runs a host
    body (Python, with the thread not parkable, or ctypes holding the GIL).
    The worker must neither return into the guest and run on behind the
    caller's back (calling host bodies that rewrite the trap's control
    words of later calls, so that their faults kill the process) nor be
    parked while it holds the GIL (every other thread then waits)."""
    p = Prog()
    proc, m = p.proc, p.m
    hp = m.hostproc
    m.add_breakpoint(p.at["body"])
    for i in range(8):
        if resumable:
            out = proc.start_call(p.spin_host, [], timeout=0.1)
            assert out.faulted and out.fault.kind == "timeout"
        else:
            _, fault = proc.call(p.spin_host, [], timeout=0.1)
            assert fault is not None and fault.kind == "timeout"
        n = hp.calls
        time.sleep(0.05)
        assert hp.calls == n, f"{i}: the timed-out worker still runs ({hp.calls - n} host calls)"
        assert proc.call(p.g, [hp.heap.malloc(8), i]) == (i, None)
        out = proc.start_call(p.f, [2, i])                 # a stop, and on to the return
        assert out.stopped and out.pc == p.at["body"]
        while out.stopped:
            out = proc.resume()
        assert out.returned and out.value == expect(2, i)
        m.add_breakpoint(p.g)                             # a stop, then a fault in its step
        assert proc.start_call(p.g, [8, i]).stopped
        out = proc.resume()
        assert out.faulted and out.fault.signal == "SIGSEGV" and out.fault.address == 8
        m.remove_breakpoint(p.g)
