"""Breakpoints and resumable calls: a call stops before the instruction at a
breakpoint, registers and memory can be read and changed (code through the
exec-memory API), and the call resumes to its original return.

Every program here is hand-assembled (keystone for x86-64 and AArch64,
kitemu's own RISC-V encoders plus a few compressed ones) so that the
addresses the breakpoints go on are known exactly:

    f(n, k):  acc = 1; do { acc += k; } while (--n); return acc + TAIL_IMM
    g(p, v):  *p = v; return v

On rv64, f's entry and loop body are 2-byte compressed instructions and its
tail a 4-byte instruction at an address that is 2 mod 4.
"""

import time

import pytest
from keystone import KS_ARCH_ARM64, KS_ARCH_X86, KS_MODE_64, KS_MODE_LITTLE_ENDIAN, Ks
from unicorn import UC_HOOK_CODE

from kitemu.errors import KitemuError
from kitemu.loader.model import SectionKind
from kitemu.runtime import JitProcess
from kitemu.targets import get_target, rv64

from objbuild import ObjBuilder

TARGETS = ["elf-x64", "elf-aarch64", "elf-rv64", "macho-x64", "macho-arm64"]
TAIL_IMM = 0x11
PATCHED_IMM = 0x22


def x64(asm: str) -> bytes:
    return bytes(Ks(KS_ARCH_X86, KS_MODE_64).asm(asm)[0]) if asm else b""


def a64(asm: str) -> bytes:
    return bytes(Ks(KS_ARCH_ARM64, KS_MODE_LITTLE_ENDIAN).asm(asm)[0]) if asm else b""


# RVC encoders kitemu does not need itself
def c_li(rd: int, imm: int) -> bytes:
    return rv64.cinsn(0x4001 | rd << 7 | (imm & 0x1F) << 2 | ((imm >> 5) & 1) << 12)


def c_add(rd: int, rs2: int) -> bytes:
    return rv64.cinsn(0x9002 | rd << 7 | rs2 << 2)


def c_mv(rd: int, rs2: int) -> bytes:
    return rv64.cinsn(0x8002 | rd << 7 | rs2 << 2)


A0, A1, A2 = 10, 11, 12


def program(arch: str, tail_imm: int = TAIL_IMM):
    """(code of f, code of g, offsets in f: {"entry", "body", "tail"},
    register holding acc in the loop, tail instruction encoder)."""
    if arch == "x64":
        f_head = x64("mov eax, 1")
        f_body = x64("add rax, rsi")
        # jnz back to the body: assembled at its own offset
        jnz = bytes(Ks(KS_ARCH_X86, KS_MODE_64).asm("dec rdi; jnz %d" % len(f_head),
                                                    len(f_head) + len(f_body))[0])
        tail = lambda imm: x64(f"add rax, {imm}")         # noqa: E731  (4 bytes: imm8)
        f = f_head + f_body + jnz
        offs = {"entry": 0, "body": len(f_head), "tail": len(f)}
        f += tail(tail_imm) + x64("ret")
        g = x64("mov qword ptr [rdi], rsi; mov rax, rsi; ret")
        return f, g, offs, "rax", tail
    if arch == "aarch64":
        tail = lambda imm: a64(f"add x0, x9, #{imm}")     # noqa: E731
        # (keystone branch targets are absolute, from origin 0: b.ne to +4)
        f = a64("mov x9, #1; add x9, x9, x1; subs x0, x0, #1; b.ne #4") + tail(tail_imm) + a64("ret")
        g = a64("str x1, [x0]; mov x0, x1; ret")
        return f, g, {"entry": 0, "body": 4, "tail": 16}, "x9", tail
    tail = lambda imm: rv64.insn(rv64.addi(A0, A2, imm))  # noqa: E731
    f = (c_li(A2, 1)                                      # +0  (2 bytes)
         + c_add(A2, A1)                                  # +2  (2 bytes) loop body
         + rv64.insn(rv64.addi(A0, A0, -1))               # +4
         + rv64.cinsn(rv64.c_bnez(A0, -6))                # +8  -> +2
         + tail(tail_imm)                                 # +10 (4 bytes at 2 mod 4)
         + rv64.insn(rv64.RET))                           # +14
    g = rv64.insn(rv64.sd(A1, A0, 0)) + c_mv(A0, A1) + rv64.insn(rv64.RET)
    return f, g, {"entry": 0, "body": 2, "tail": 10}, "a2", tail


def reg_id(proc, name: str) -> int:
    import unicorn.arm64_const as arm64
    import unicorn.riscv_const as riscv
    import unicorn.x86_const as x86
    mod = {"x64": (x86, "UC_X86_REG_"), "aarch64": (arm64, "UC_ARM64_REG_"),
           "rv64": (riscv, "UC_RISCV_REG_")}[proc.arch.name]
    return getattr(mod[0], mod[1] + name.upper())


class Prog:
    def __init__(self, target: str, **kw):
        t = get_target(target)
        f, g, offs, acc, tail = program(t.arch.name)
        b = ObjBuilder(target, "bp.o")
        text = b.section(".text", SectionKind.TEXT, f + bytes(-len(f) % 16) + g, align=16)
        b.symbol(t.symbol("f"), text, 0, size=len(f))
        b.symbol(t.symbol("g"), text, len(f) + (-len(f) % 16), size=len(g))
        self.proc = proc = JitProcess(target, **kw)
        proc.link([b.build()])
        self.f, self.g = proc.lookup("f"), proc.lookup("g")
        self.at = {k: self.f + v for k, v in offs.items()}
        self.acc = reg_id(proc, acc)
        self.tail = tail
        cc = proc.target.callconv
        self.arg0, self.arg1, self.pc = cc.int_args[0], cc.int_args[1], cc.pc
        self.m = proc.machine


def expect(n: int, k: int, imm: int = TAIL_IMM) -> int:
    return 1 + n * k + imm


def assert_only_exact_hooks(m):
    """No per-instruction hook: every code hook is bounded (the host area)
    and each breakpoint is a hook on exactly its address; unicorn holds no
    hook the machine did not record."""
    code = {h: (b, e) for h, (t, b, e) in m.hooks.items() if t == UC_HOOK_CODE}
    assert all(b <= e for b, e in code.values())
    bps = {m._bp_hooks[a]: a for a in m.breakpoints}
    for h, a in bps.items():
        assert code[h] == (a, a)
    others = [b for h, (b, e) in code.items() if h not in bps]
    assert others == [m.hostproc.base]          # the host-function area only
    held = getattr(m.uc, "_callbacks", None)
    if held is not None:
        assert set(held) == set(m.hooks)


@pytest.mark.parametrize("target", TARGETS)
def test_stop_at_entry_shows_arguments_and_resumes_to_the_return_value(target):
    p = Prog(target)
    proc, m = p.proc, p.m
    m.add_breakpoint(p.f)
    assert m.breakpoints == {p.f}
    assert_only_exact_hooks(m)
    out = proc.start_call(p.f, [4, 5])
    assert out.status == "breakpoint" and out.stopped and out.pc == p.f
    assert proc.stopped and proc.stopped_at == p.f
    assert m.reg(p.pc) == p.f
    assert (m.reg(p.arg0), m.reg(p.arg1)) == (4, 5)
    out = proc.resume()
    assert out.returned and out.value == expect(4, 5) and not proc.stopped
    # the breakpoint is still there: the next call stops at it again
    out = proc.start_call(p.f, [2, 7])
    assert out.stopped and out.pc == p.f
    assert proc.resume().value == expect(2, 7)


@pytest.mark.parametrize("target", TARGETS)
def test_breakpoint_in_a_loop_hits_every_iteration(target):
    p = Prog(target)
    proc, m = p.proc, p.m
    m.add_breakpoint(p.at["body"])
    n, k = 5, 3
    out = proc.start_call(p.f, [n, k])
    accs = []
    while out.stopped:
        assert out.pc == p.at["body"] == m.reg(p.pc)
        accs.append(m.reg(p.acc))      # the loop's add has not run yet
        out = proc.resume()
    assert accs == [1 + i * k for i in range(n)]
    assert out.returned and out.value == expect(n, k)


@pytest.mark.parametrize("target", TARGETS)
def test_breakpoint_added_after_the_code_ran_still_hits(target):
    p = Prog(target)
    proc, m = p.proc, p.m
    assert proc.call(p.f, [3, 3]) == (expect(3, 3), None)     # translated now
    for where in ("body", "tail"):                              # inside its block
        m.add_breakpoint(p.at[where])
        out = proc.start_call(p.f, [3, 3])
        assert out.stopped and out.pc == p.at[where]
        m.remove_breakpoint(p.at[where])
        assert m.breakpoints == set()
        out = proc.resume()
        assert out.returned and out.value == expect(3, 3)
    assert_only_exact_hooks(m)


@pytest.mark.parametrize("target", TARGETS)
def test_removing_the_breakpoint_lets_the_call_finish(target):
    p = Prog(target)
    proc, m = p.proc, p.m
    m.add_breakpoint(p.at["body"])
    out = proc.start_call(p.f, [6, 2])
    assert out.stopped
    assert proc.resume().stopped                      # second iteration
    m.remove_breakpoint(p.at["body"])
    out = proc.resume()
    assert out.returned and out.value == expect(6, 2)
    with pytest.raises(KeyError):
        m.remove_breakpoint(p.at["body"])
    assert proc.call(p.f, [6, 2]) == (expect(6, 2), None)


@pytest.mark.parametrize("target,strategy", [(t, s) for t in TARGETS
                                             for s in ("mprotect", "dual-map")])
def test_patching_code_while_stopped_takes_effect_on_resume(target, strategy):
    """The tail was translated by an earlier call; a patch made while the
    call is stopped (ExecMem.patch: W^X flip or RW alias, then flush) must
    be what runs on resume, not the stale translation."""
    p = Prog(target, strategy=strategy)
    proc, m = p.proc, p.m
    for _ in range(2):
        assert proc.call(p.f, [3, 4]) == (expect(3, 4), None)
    m.add_breakpoint(p.at["body"])
    out = proc.start_call(p.f, [3, 4])
    assert out.stopped
    proc.mem.patch([(p.at["tail"], p.tail(PATCHED_IMM))])
    out = proc.resume()                       # the body's breakpoint again
    assert out.stopped and out.pc == p.at["body"]
    m.remove_breakpoint(p.at["body"])
    out = proc.resume()
    assert out.returned and out.value == expect(3, 4, PATCHED_IMM)
    # patching the instruction the call is stopped *at* works too
    m.add_breakpoint(p.at["tail"])
    assert proc.start_call(p.f, [1, 1]).pc == p.at["tail"]
    proc.mem.patch([(p.at["tail"], p.tail(0x33))])
    assert proc.resume().value == expect(1, 1, 0x33)


@pytest.mark.parametrize("target", TARGETS)
def test_fault_after_a_resume_is_reported_normally(target):
    p = Prog(target)
    proc, m = p.proc, p.m
    buf = m.hostproc.heap.malloc(16)
    m.add_breakpoint(p.g)
    out = proc.start_call(p.g, [buf, 42])
    assert out.stopped and m.reg(p.arg0) == buf and m.reg(p.arg1) == 42
    assert proc.resume().value == 42
    assert int.from_bytes(m.read(buf, 8), "little") == 42
    assert proc.start_call(p.g, [buf, 43]).stopped
    m.set_reg(p.arg0, 8)                      # the store now writes to page 0
    out = proc.resume()
    assert out.faulted and not proc.stopped
    f = out.fault
    code = "SEGV_ACCERR" if target == "macho-arm64" else "SEGV_MAPERR"   # xnu arm64 sendsig
    assert (f.signal, f.si_code, f.access, f.address) == ("SIGSEGV", code, "write", 8)
    assert f.pc == p.g and f.pc_symbol == get_target(target).symbol("g")
    # the process is usable afterwards
    assert proc.call(p.f, [2, 2]) == (expect(2, 2), None)


@pytest.mark.parametrize("target", TARGETS)
def test_plain_call_reports_a_breakpoint_as_sigtrap(target):
    """call() cannot stop: a breakpoint ends it with SIGTRAP, neither a
    return value nor a timeout, and leaves no stopped call behind."""
    p = Prog(target)
    proc, m = p.proc, p.m
    m.add_breakpoint(p.at["body"])
    value, fault = proc.call(p.f, [2, 2], timeout=5)
    assert fault is not None and fault.kind == "breakpoint"
    assert (fault.signal, fault.si_code) == ("SIGTRAP", "TRAP_BRKPT")
    assert fault.pc == p.at["body"] and not proc.stopped
    assert m.last_stop.reason == "breakpoint" and m.last_stop.breakpoint == p.at["body"]
    m.remove_breakpoint(p.at["body"])
    assert proc.call(p.f, [2, 2]) == (expect(2, 2), None)
    assert m.last_stop.reason == "returned"


@pytest.mark.parametrize("target", TARGETS)
def test_calls_made_while_stopped_leave_the_stopped_call_intact(target):
    p = Prog(target)
    proc, m = p.proc, p.m
    m.add_breakpoint(p.at["body"])
    assert proc.start_call(p.f, [4, 10]).stopped
    assert proc.resume().stopped
    acc = m.reg(p.acc)
    with pytest.raises(KitemuError):
        proc.start_call(p.f, [1, 1])
    m.remove_breakpoint(p.at["body"])
    assert proc.call(p.f, [7, 7]) == (expect(7, 7), None)   # runs below the stopped frame
    assert proc.stopped and m.reg(p.pc) == p.at["body"] and m.reg(p.acc) == acc
    out = proc.resume()
    assert out.returned and out.value == expect(4, 10)


@pytest.mark.parametrize("target", TARGETS)
def test_breakpoint_on_a_host_function(target):
    """A breakpoint on a host function stops before it runs; on resume it
    runs exactly once."""
    p = Prog(target)
    proc, m = p.proc, p.m
    puts = m.hostproc.addrs[get_target(target).symbol("puts")]
    s = m.hostproc.heap.malloc(16)
    m.write_raw(s, b"hi\0")
    m.add_breakpoint(puts)
    assert_only_exact_hooks(m)
    out = proc.start_call(puts, [s])
    assert out.stopped and out.pc == puts and m.reg(p.arg0) == s
    assert bytes(m.hostproc.stdout) == b""
    out = proc.resume()
    assert out.returned and bytes(m.hostproc.stdout) == b"hi\n"


def test_exit_while_resumed_is_reported_as_exited():
    p = Prog("elf-x64")
    proc, m = p.proc, p.m
    exit_addr = m.hostproc.addrs["exit"]
    m.add_breakpoint(exit_addr)
    out = proc.start_call(exit_addr, [3])
    assert out.stopped
    out = proc.resume()
    assert out.exited and out.exit.status == 3 and not proc.stopped


@pytest.mark.parametrize("page_size", [4096, 16384, 65536])
def test_aarch64_page_size_does_not_matter(page_size):
    p = Prog("elf-aarch64", page_size=page_size)
    proc, m = p.proc, p.m
    assert proc.call(p.f, [3, 3]) == (expect(3, 3), None)
    m.add_breakpoint(p.at["body"])
    hits = 0
    out = proc.start_call(p.f, [3, 3])
    while out.stopped:
        hits += 1
        out = proc.resume()
    assert hits == 3 and out.value == expect(3, 3)


@pytest.mark.parametrize("target", ["elf-x64", "elf-aarch64", "elf-rv64"])
def test_time_limit_holds_across_resumes(target):
    """A spinning loop with a breakpoint stops on every arrival; the time
    limit counts guest time only (not time spent stopped) and still ends
    the call once the breakpoint is gone."""
    p = Prog(target)
    proc, m = p.proc, p.m
    spin = {"x64": b"\xeb\xfe", "aarch64": (0x14000000).to_bytes(4, "little"),
            "rv64": (0x0000006F).to_bytes(4, "little")}[proc.arch.name]
    proc.mem.patch([(p.f, spin)])
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
    assert out.fault.pc == p.f and time.monotonic() - started < 5


def test_resume_needs_a_stopped_call_and_abandon_drops_it():
    p = Prog("elf-rv64")
    proc, m = p.proc, p.m
    with pytest.raises(KitemuError):
        proc.resume()
    assert proc.abandon() is False
    m.add_breakpoint(p.at["tail"])
    assert proc.start_call(p.f, [2, 2]).stopped
    assert proc.abandon() is True
    assert not proc.stopped
    assert proc.start_call(p.f, [2, 3]).pc == p.at["tail"]
    assert proc.resume().value == expect(2, 3)


def test_moving_the_pc_onto_another_breakpoint_stops_there_at_once():
    """Only the breakpoint the call stopped at is passed over on resume; a
    PC set by the caller onto a breakpoint stops there immediately."""
    p = Prog("elf-aarch64")
    proc, m = p.proc, p.m
    m.add_breakpoint(p.f)
    m.add_breakpoint(p.at["tail"])
    assert proc.start_call(p.f, [2, 2]).pc == p.f
    m.set_reg(p.pc, p.at["tail"])
    m.set_reg(p.acc, 100)
    out = proc.resume()
    assert out.stopped and out.pc == p.at["tail"]
    assert proc.resume().value == 100 + TAIL_IMM


@pytest.mark.parametrize("target", ["elf-x64", "elf-aarch64", "elf-rv64"])
def test_machine_resume_passes_the_breakpoint_once(target):
    """The backend on its own: run_until / resume and their Stop reasons."""
    from kitemu.runtime import SENTINEL
    p = Prog(target)
    proc, m = p.proc, p.m
    proc._enter([3, 2], None)
    m.add_breakpoint(p.at["body"])
    stops = [m.run_until(p.f, SENTINEL)]
    while stops[-1].reason == "breakpoint":
        stops.append(m.resume(SENTINEL))
    assert [s.breakpoint for s in stops] == [p.at["body"]] * 3 + [None]
    assert stops[-1].reason == "returned" and m.reg(proc.target.callconv.int_ret) == expect(3, 2)


def test_range_hook_added_after_a_breakpoint_still_yields_to_it():
    """Hooks at one address run in the order added; the machine keeps
    breakpoint hooks after range hooks, so a range callback on a breakpoint
    address runs only when the instruction really executes."""
    from kitemu.backends.unicorn import UnicornMachine
    from kitemu.execmem import RW, RX
    arch = get_target("elf-x64").arch
    m = UnicornMachine(arch, 4096)
    m.map(0x10000, 0x1000, RX)
    m.map(0x20000, 0x1000, RW)
    m.write_raw(0x10000, x64("nop; nop; nop; nop") + b"\xc3")
    m.write_raw(0x20000, (0x30000).to_bytes(8, "little"))
    m.set_reg(arch.callconv.sp, 0x20000)
    m.add_breakpoint(0x10002)
    seen = []
    m.hook_range(0x10000, 0x10004, lambda machine, addr: seen.append(addr))
    code_hooks = [(b, e) for t, b, e in m.hooks.values() if t == UC_HOOK_CODE]
    assert code_hooks == [(0x10000, 0x10003), (0x10002, 0x10002)]   # breakpoint last
    stop = m.run_until(0x10000, 0x30000)
    assert stop.reason == "breakpoint" and stop.pc == 0x10002 and seen == [0x10000, 0x10001]
    stop = m.resume(0x30000)
    assert stop.reason == "returned" and seen == [0x10000, 0x10001, 0x10002, 0x10003]
