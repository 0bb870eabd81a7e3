"""Single-step (kitemu.dbg.step): one instruction of a stopped call, in place
or displaced to the scratch page, leaves exactly the same registers and
memory either way, with the expected PC; a breakpoint on the stepped
instruction stays set through a displaced step; exclusive / LR-SC
instructions fall back in place, saying why.

Code is hand-assembled (keystone for x86-64, encoded words for AArch64,
kitemu's RISC-V encoders plus a few compressed ones) into a *bench*: one
linked object whose 32 KiB code section is filled with traps and holds the
stepped instruction in its middle (``at``, a breakpoint: each step starts
from a call stopped there), next to a 4 KiB data page. Branch targets lie in
the code section, literals and RIP-relative operands in the data page.

The property test generates instructions of every class with random
registers, flags and memory (taken and not-taken branches, random
offsets/immediates in range) and compares the two mechanisms on all GPRs, PC,
flags/NZCV (plus the vector registers literal loads may write) and on the
stack page and the data page.
"""

import random

import pytest
from hypothesis import given, strategies as st
from keystone import KS_ARCH_X86, KS_MODE_64, Ks
from unicorn import UC_HOOK_CODE

from kitemu.dbg.step import StepError, Stepper
from kitemu.errors import KitemuError
from kitemu.loader.model import SectionKind, SymbolType
from kitemu.runtime import SENTINEL, STACK_TOP, STEP_SCRATCH, JitProcess
from kitemu.targets import get_target, rv64

from objbuild import ObjBuilder

CODE_SIZE = 0x8000
STACK_PAGE = STACK_TOP - 0x1000
MASK = (1 << 64) - 1
ARCH_TARGET = {"x64": "elf-x64", "aarch64": "elf-aarch64", "rv64": "elf-rv64"}

_KS = Ks(KS_ARCH_X86, KS_MODE_64)


def x64(asm: str, at: int = 0) -> bytes:
    return bytes(_KS.asm(asm, at)[0])


def a64w(word: int) -> bytes:
    return (word & 0xFFFFFFFF).to_bytes(4, "little")


def rvw(word: int) -> bytes:
    return rv64.insn(word)


def rvc(half: int) -> bytes:
    return rv64.cinsn(half)


def c_jr(rs1: int) -> int:
    return 0x8002 | rs1 << 7


def c_jalr(rs1: int) -> int:
    return 0x9002 | rs1 << 7


def rv_branch(f3: int, rs1: int, rs2: int, off: int) -> int:
    return rv64.b_type(rv64.OP_BRANCH, f3, rs1, rs2, off)


def rv_add(rd: int, rs1: int, rs2: int) -> int:
    return 0x33 | rd << 7 | rs1 << 15 | rs2 << 20


# AArch64 encoders (fields as the Arm ARM lays them out)
def a_b(off, link=False):
    return (0x94000000 if link else 0x14000000) | ((off >> 2) & 0x3FFFFFF)


def a_bcond(cond, off):
    return 0x54000000 | ((off >> 2) & 0x7FFFF) << 5 | cond


def a_cbz(rt, off, nz=False, sf=1):
    return sf << 31 | 0x34000000 | nz << 24 | ((off >> 2) & 0x7FFFF) << 5 | rt


def a_tbz(rt, bit, off, nz=False):
    return (bit >> 5) << 31 | 0x36000000 | nz << 24 | (bit & 31) << 19 | ((off >> 2) & 0x3FFF) << 5 | rt


def a_adr(rd, imm, page=False):
    return page << 31 | (imm & 3) << 29 | 0x10000000 | ((imm >> 2) & 0x7FFFF) << 5 | rd


def a_ldr_lit(opc, simd, rt, off):
    return opc << 30 | simd << 26 | 0x18000000 | ((off >> 2) & 0x7FFFF) << 5 | rt


def a_breg(opc, rn):
    return 0xD61F0000 | opc << 21 | rn << 5


def a_adds(rd, rn, rm):
    return 0xAB000000 | rm << 16 | rn << 5 | rd


# ---------------------------------------------------------------------------------------------
# the bench

def _uc_regs(arch: str) -> dict[str, int]:
    import unicorn.arm64_const as A
    import unicorn.riscv_const as R
    import unicorn.x86_const as X
    if arch == "x64":
        names = ["rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp"] + \
            [f"r{i}" for i in range(8, 16)] + ["rip", "rflags", "xmm0", "xmm1"]
        return {n: getattr(X, "UC_X86_REG_" + n.upper()) for n in names}
    if arch == "aarch64":
        names = [f"x{i}" for i in range(31)] + ["sp", "pc", "nzcv"] + [f"q{i}" for i in range(32)]
        return {n: getattr(A, "UC_ARM64_REG_" + n.upper()) for n in names}
    names = [f"x{i}" for i in range(1, 32)] + ["pc"]
    return {n: getattr(R, "UC_RISCV_REG_" + n.upper()) for n in names}


class Bench:
    def __init__(self, target: str, **kw):
        t = get_target(target)
        self.arch = t.arch.name
        fill = {"x64": b"\xcc", "aarch64": t.arch.trap, "rv64": rvc(rv64.C_EBREAK)}[self.arch]
        b = ObjBuilder(target, "step.o")
        text = b.section(".text", SectionKind.TEXT, fill * (CODE_SIZE // len(fill)), align=4096)
        data = b.section(".data", SectionKind.DATA, bytes(4096), align=4096)
        b.symbol(t.symbol("code"), text, 0, size=CODE_SIZE)
        b.symbol(t.symbol("data"), data, 0, type=SymbolType.OBJECT, size=4096)
        self.proc = proc = JitProcess(target, **kw)
        # a step whose successors miss where the instruction went runs on: a
        # time-limit fault then fails the comparison instead of hanging
        proc.timeout = 10.0
        proc.link([b.build()])
        self.m = proc.machine
        self.code, self.data = proc.lookup("code"), proc.lookup("data")
        self.at = self.code + CODE_SIZE // 2
        self.fill = fill
        self.regs = _uc_regs(self.arch)
        self.m.add_breakpoint(self.at)
        self.stepper = Stepper(proc)
        self._placed = None

    def place(self, insn: bytes) -> None:
        if insn != self._placed:
            pad = self.fill * (32 // len(self.fill))
            self.proc.mem.patch([(self.at - 16, pad[:16] + insn + pad[:16])])
            self._placed = insn

    def step(self, insn: bytes, regs: dict, mem: dict, displaced: bool):
        proc, m = self.proc, self.m
        proc.abandon()
        self.place(insn)
        out = proc.start_call(self.at)
        assert out.stopped and out.pc == self.at
        for name, value in regs.items():
            m.set_reg(self.regs[name], value & MASK if name not in ("xmm0", "xmm1") else value)
        for addr, data in mem.items():
            m.write_raw(addr, bytes(data))
        r = self.stepper.step(displaced=displaced)
        state = {n: m.reg(i) for n, i in self.regs.items()}
        memory = {a: m.read(a, len(d)) for a, d in mem.items()}
        return r, state, memory

    def compare(self, insn: bytes, regs: dict, mem: dict, expect_mode: str = "displaced"):
        """Step both ways from the same state; they must agree exactly."""
        mem = {STACK_PAGE: mem.get(STACK_PAGE, bytes(4096)),
               self.data: mem.get(self.data, bytes(4096)), **mem}
        r0, s0, m0 = self.step(insn, regs, mem, displaced=False)
        r1, s1, m1 = self.step(insn, regs, mem, displaced=True)
        assert r0.mode == "in-place" and r1.mode == expect_mode, (r1.mode, r1.reason, r1.insn)
        assert r1.kind == r0.kind and r1.size == r0.size
        assert summary(r1) == summary(r0), (r0.insn, summary(r0), summary(r1))
        diff = {n: (hex(s0[n]), hex(s1[n])) for n in s0 if s0[n] != s1[n]}
        assert not diff, (r0.insn, r0.kind, diff)
        for a in m0:
            assert m0[a] == m1[a], (r0.insn, hex(a), _first_diff(m0[a], m1[a]))
        # the breakpoint the steps started from is still the only one, and the
        # steps left no hook behind
        assert self.m.breakpoints == {self.at}
        assert_only_exact_hooks(self.m)
        return r0, s0, m0


def summary(r):
    f = r.fault
    return (r.status, r.pc, r.value,
            None if f is None else (f.signal, f.si_code, f.kind, f.access, f.address, f.pc))


def _first_diff(a: bytes, b: bytes):
    i = next(i for i in range(len(a)) if a[i] != b[i])
    return i, a[i:i + 8].hex(), b[i:i + 8].hex()


def assert_only_exact_hooks(m):
    code = {h: (b, e) for h, (t, b, e) in m.hooks.items() if t == UC_HOOK_CODE}
    bps = {m._bp_hooks[a]: a for a in m.breakpoints}
    for h, a in bps.items():
        assert code[h] == (a, a)
    assert [b for h, (b, e) in code.items() if h not in bps] == [m.hostproc.base]


_BENCHES: dict = {}


def bench(target: str, **kw) -> Bench:
    key = (target, tuple(sorted(kw.items())))
    if key not in _BENCHES:
        _BENCHES[key] = Bench(target, **kw)
    return _BENCHES[key]


def word(v: int) -> bytes:
    return (v & MASK).to_bytes(8, "little")


def with_words(page: bytes, base: int, words: dict) -> bytes:
    buf = bytearray(page)
    for addr, v in words.items():
        buf[addr - base:addr - base + 8] = word(v)
    return bytes(buf)


# ---------------------------------------------------------------------------------------------
# concrete cases: each class of the issue, per arch

X64_SP = STACK_PAGE + 0x800
DATA_WORD = 0x1122334455667788


def x64_cases(b: Bench):
    at, data = b.at, b.data
    base = {"rsp": X64_SP, "rax": 0x1111, "rcx": 3, "rdx": 0x2222, "rflags": 0x2}
    cell = data + 0x100
    dpage = with_words(bytes(4096), data, {data + 0x40: DATA_WORD, cell: at + 0x123})

    def rip(asm_tmpl, target, extra=0):
        probe = x64(asm_tmpl.format(d=0x12345678), at)
        d = target - (at + len(probe))
        return x64(asm_tmpl.format(d=f"{d:#x}" if d >= 0 else f"-{-d:#x}").replace("+ -", "- "), at)

    load = rip("mov rax, qword ptr [rip + {d}]", data + 0x40)
    store = rip("mov qword ptr [rip + {d}], rdx", data + 0x48)
    lea = rip("lea rbx, [rip + {d}]", data + 0x77)
    addimm = rip("add dword ptr [rip + {d}], 0x1234567", data + 0x40)
    callm = rip("call qword ptr [rip + {d}]", cell)
    # a 0x66 prefix or VEX.pp=01 (capstone 5 then says disp_size 2)
    movdqa = rip("movdqa xmm0, xmmword ptr [rip + {d}]", data + 0x40)
    cmpw = rip("cmp word ptr [rip + {d}], 0x7788", data + 0x40)
    vmov = rip("vmovdqa xmm1, xmmword ptr [rip + {d}]", data + 0x40)
    stk = with_words(bytes(4096), STACK_PAGE, {X64_SP: at - 0x40, X64_SP + 16: 0xAB})
    return [
        # (name, code, registers, memory, expected kind, expected pc, checks)
        ("rip load", load, base, {data: dpage}, "rip-relative", at + len(load),
         {"rax": DATA_WORD}),
        ("rip store", store, base, {data: dpage}, "rip-relative", at + len(store), {}),
        ("rip lea", lea, base, {}, "rip-relative", at + len(lea), {"rbx": data + 0x77}),
        ("rip add imm32", addimm, base, {data: dpage}, "rip-relative", at + len(addimm), {}),
        ("rip movdqa (0x66)", movdqa, base, {data: dpage}, "rip-relative", at + len(movdqa),
         {"xmm0": DATA_WORD}),
        ("rip cmp word imm16 (0x66)", cmpw, {**base, "rflags": 0x2}, {data: dpage},
         "rip-relative", at + len(cmpw), {"rflags": 0x46}),
        ("rip vmovdqa (VEX)", vmov, base, {data: dpage}, "rip-relative", at + len(vmov),
         {"xmm1": DATA_WORD}),
        ("jmp short", x64(f"jmp {at + 0x40:#x}", at), base, {}, "jmp", at + 0x40, {}),
        ("jmp near back", x64(f"jmp {at - 0x2000:#x}", at), base, {}, "jmp", at - 0x2000, {}),
        ("jne taken", x64(f"jne {at - 0x10:#x}", at), base, {}, "jcc", at - 0x10, {}),
        ("je not taken", x64(f"je {at + 0x3000:#x}", at), base, {}, "jcc", at + 6, {}),
        ("loop", x64(f"loop {at + 0x20:#x}", at), base, {}, "jcc", at + 0x20, {"rcx": 2}),
        ("jrcxz not taken", x64(f"jrcxz {at + 0x20:#x}", at), base, {}, "jcc", at + 2, {}),
        ("call rel32", x64(f"call {at + 0x1000:#x}", at), base, {}, "call", at + 0x1000,
         {"rsp": X64_SP - 8}),
        ("ret", x64("ret"), base, {STACK_PAGE: stk}, "ret", at - 0x40, {"rsp": X64_SP + 8}),
        ("ret imm16", x64("ret 8"), base, {STACK_PAGE: stk}, "ret", at - 0x40,
         {"rsp": X64_SP + 16}),
        ("jmp reg", x64("jmp rdx"), {**base, "rdx": at + 0x99}, {}, "indirect-jmp",
         at + 0x99, {}),
        ("call [rip]", callm, base, {data: dpage}, "indirect-call", at + 0x123,
         {"rsp": X64_SP - 8}),
        ("call reg", x64("call rax"), {**base, "rax": at - 0x7}, {}, "indirect-call",
         at - 0x7, {"rsp": X64_SP - 8}),
        ("plain", x64("imul rax, rdx"), base, {}, "plain", at + 4, {"rax": 0x1111 * 0x2222}),
        ("rep stosb", x64("rep stosb"), {**base, "rdi": data + 8, "rcx": 5}, {}, "plain",
         at + 2, {"rcx": 0, "rdi": data + 13}),
    ]


def aarch64_cases(b: Bench):
    at, data = b.at, b.data
    dpage = with_words(bytes(4096), data, {data + 0x40: DATA_WORD, data + 0x48: -5})
    base = {"x0": 0, "x1": 5, "x2": 1 << 40, "x9": at + 0x88, "x30": at - 0x100,
            "sp": STACK_PAGE + 0x800, "nzcv": 0x6 << 28}          # Z and C set
    lit = data + 0x40 - at
    return [
        ("b", a64w(a_b(0x1000)), base, {}, "b", at + 0x1000, {}),
        ("bl back", a64w(a_b(-0x2000, link=True)), base, {}, "bl", at - 0x2000, {"x30": at + 4}),
        ("b.eq taken", a64w(a_bcond(0, -0x40)), base, {}, "b.cond", at - 0x40, {}),
        ("b.ne not taken", a64w(a_bcond(1, -0x40)), base, {}, "b.cond", at + 4, {}),
        ("cbz taken", a64w(a_cbz(0, 0x80)), base, {}, "cbz", at + 0x80, {}),
        ("cbnz w not taken", a64w(a_cbz(0, 0x80, nz=True, sf=0)), base, {}, "cbz", at + 4, {}),
        ("tbz not taken", a64w(a_tbz(2, 40, 0x100)), base, {}, "tbz", at + 4, {}),
        ("tbnz taken", a64w(a_tbz(2, 40, -0x100, nz=True)), base, {}, "tbz", at - 0x100, {}),
        ("adr", a64w(a_adr(3, -12345)), base, {}, "adr", at + 4, {"x3": at - 12345}),
        ("adrp", a64w(a_adr(4, 0x12345, page=True)), base, {}, "adrp", at + 4,
         {"x4": (at & ~0xFFF) + (0x12345 << 12)}),
        ("ldr x literal", a64w(a_ldr_lit(1, 0, 5, lit)), base, {data: dpage}, "ldr-literal",
         at + 4, {"x5": DATA_WORD}),
        ("ldr w literal", a64w(a_ldr_lit(0, 0, 6, lit)), base, {data: dpage}, "ldr-literal",
         at + 4, {"x6": DATA_WORD & 0xFFFFFFFF}),
        ("ldrsw literal", a64w(a_ldr_lit(2, 0, 7, lit + 8)), base, {data: dpage}, "ldr-literal",
         at + 4, {"x7": MASK - 4}),
        ("ldr d literal", a64w(a_ldr_lit(1, 1, 1, lit)), base, {data: dpage}, "ldr-literal",
         at + 4, {"q1": DATA_WORD}),
        ("prfm literal", a64w(a_ldr_lit(3, 0, 0, lit)), base, {data: dpage}, "ldr-literal",
         at + 4, {}),
        ("br", a64w(a_breg(0, 9)), base, {}, "br", at + 0x88, {}),
        ("blr x30", a64w(a_breg(1, 30)), base, {}, "blr", at - 0x100, {"x30": at + 4}),
        ("ret", a64w(a_breg(2, 30)), base, {}, "ret", at - 0x100, {}),
        ("plain", a64w(a_adds(0, 1, 2)), base, {}, "plain", at + 4, {"x0": 5 + (1 << 40)}),
    ]


def rv64_cases(b: Bench):
    at = b.at
    A0, A1, A2, T0, S0, S1 = 10, 11, 12, 5, 8, 9
    base = {"x2": STACK_PAGE + 0x800, "x10": 7, "x11": 7, "x12": -3, "x8": 0, "x9": 1,
            "x5": at + 0x222, "x1": at - 0x30}
    return [
        ("auipc", rvw(rv64.auipc(A0, 0xFFFFF)), base, {}, "auipc", at + 4, {"x10": at - 0x1000}),
        ("jal", rvw(rv64.jal(1, -0x800)), base, {}, "jal", at - 0x800, {"x1": at + 4}),
        ("jal x0", rvw(rv64.jal(0, 0x1000)), base, {}, "jal", at + 0x1000, {}),
        ("jalr", rvw(rv64.jalr(A0, T0, -2)), base, {}, "jalr", at + 0x220, {"x10": at + 4}),
        ("ret", rvw(rv64.RET), base, {}, "jalr", at - 0x30, {}),
        ("beq taken", rvw(rv_branch(0, A0, A1, 0x100)), base, {}, "branch", at + 0x100, {}),
        ("bne not taken", rvw(rv_branch(1, A0, A1, 0x100)), base, {}, "branch", at + 4, {}),
        ("blt taken", rvw(rv_branch(4, A2, A0, -0x20)), base, {}, "branch", at - 0x20, {}),
        ("bgeu taken", rvw(rv_branch(7, A2, A0, 0x800)), base, {}, "branch", at + 0x800, {}),
        ("c.j", rvc(rv64.c_j(-0x400)), base, {}, "c.j", at - 0x400, {}),
        ("c.beqz taken", rvc(rv64.c_beqz(S0, 0x40)), base, {}, "c.beqz", at + 0x40, {}),
        ("c.bnez not taken", rvc(rv64.c_bnez(S0, 0x40)), base, {}, "c.beqz", at + 2, {}),
        ("c.bnez taken", rvc(rv64.c_bnez(S1, -0x40)), base, {}, "c.beqz", at - 0x40, {}),
        ("c.jr", rvc(c_jr(T0)), base, {}, "c.jr", at + 0x222, {}),
        ("c.jalr", rvc(c_jalr(T0)), base, {}, "c.jalr", at + 0x222, {"x1": at + 2}),
        ("plain", rvw(rv_add(A0, A1, A2)), base, {}, "plain", at + 4, {"x10": 4}),
    ]


CASES = {"x64": x64_cases, "aarch64": aarch64_cases, "rv64": rv64_cases}
CASE_NAMES = [(arch, name) for arch, fn in CASES.items()
              for name, *_ in fn(type("B", (), {"at": 0x10000, "data": 0x20000})())]


@pytest.mark.parametrize("arch,name", CASE_NAMES)
def test_each_class_steps_the_same_both_ways(arch, name):
    b = bench(ARCH_TARGET[arch])
    case = next(c for c in CASES[arch](b) if c[0] == name)
    _, code, regs, mem, kind, pc, checks = case
    r, state, _ = b.compare(code, regs, mem)
    assert r.status == "stopped" and r.kind == kind and r.pc == pc, (r.kind, hex(r.pc or 0))
    assert state["rip" if arch == "x64" else "pc"] == pc and b.proc.stopped_at == pc
    for reg, value in checks.items():
        assert state[reg] & MASK == value & MASK, (reg, hex(state[reg]))
    if arch == "x64" and kind.endswith("call"):
        assert b.m.read(state["rsp"], 8) == word(b.at + len(code))   # the ORIGINAL return


def test_x64_rip_relative_out_of_the_scratch_page_reach_uses_a_free_register():
    """An image 64 GiB up: a disp32 from the scratch page cannot reach it,
    so the operand is rebased on a register the instruction does not use,
    which is given back afterwards."""
    b = bench("elf-x64", base=0x10_0000_0000)
    assert abs(b.data - STEP_SCRATCH) > 1 << 32
    at, data = b.at, b.data
    dpage = with_words(bytes(4096), data, {data + 8: DATA_WORD, data + 16: at + 0x50})
    regs = {"rsp": X64_SP, "rax": 0xA, "rcx": 0xC, "rdx": 0xD, "rbx": 0xB, "rsi": 0x5,
            "rdi": 0x7, "rbp": 0xBB}
    for asm, target, check in [
            ("mov rax, qword ptr [rip + {d}]", data + 8, {"rax": DATA_WORD}),
            ("xchg qword ptr [rip + {d}], rcx", data + 8, {"rcx": DATA_WORD}),
            ("cmpxchg qword ptr [rip + {d}], r9", data + 8, {"rax": DATA_WORD}),
            ("mov r8, qword ptr [rip + {d}]", data + 8, {"r8": DATA_WORD}),
            ("call qword ptr [rip + {d}]", data + 16, {"rip": at + 0x50}),
            # reads eax/edx (the lengths) though capstone lists neither: the
            # operand must not be rebased on rax or rdx
            ("pcmpestrm xmm1, xmmword ptr [rip + {d}], 0x40", data + 8, {}),
            # VEX vmovupd xmm1, [rip]: 2-byte (C5, no B bit) and 3-byte with
            # VEX.B set (C4 C1: inverted B = 0), ignored by RIP-relative
            # addressing, cleared for the base
            (b"\xc5\xf9\x10\x0d", data + 8, {"xmm1": DATA_WORD | (at + 0x50) << 64}),
            (b"\xc4\xc1\x79\x10\x0d", data + 8, {"xmm1": DATA_WORD | (at + 0x50) << 64}),
            # REX.B set: ignored by RIP-relative addressing, cleared for the base
            (b"\x49\x8b\x05", data + 8, {"rax": DATA_WORD})]:
        if isinstance(asm, bytes):
            code = asm + (target - at - len(asm) - 4).to_bytes(4, "little", signed=True)
        else:
            probe = x64(asm.format(d=0), at)
            code = x64(asm.format(d=target - at - len(probe)), at)
            assert len(code) == len(probe)
        r, state, mem = b.compare(code, regs, {data: dpage})
        for reg, value in check.items():
            assert state[reg] == value, (asm, reg)
        # rax.. rbp hold their values unless the instruction wrote them
        assert all(state[n] == v for n, v in regs.items() if n not in check and n != "rsp")


# ---------------------------------------------------------------------------------------------
# whole programs: breakpoints, returns, host functions, faults, fall-backs

TARGETS = ["elf-x64", "elf-aarch64", "elf-rv64", "macho-x64", "macho-arm64"]


def loop_program(arch: str):
    """f(n, k): acc = 1; do acc += k; while (--n); return acc -- the code,
    the loop body's offset, and how many instructions run before the loop
    and after it."""
    if arch == "x64":
        head, body = x64("mov eax, 1"), x64("add rax, rsi")
        jnz = x64(f"dec rdi; jnz {len(head)}", len(head) + len(body))
        return head + body + jnz + x64("ret"), len(head), 1, 1
    if arch == "aarch64":
        code = (a64w(0xAA0003E9)        # mov x9, x0
                + a64w(0xD2800020)      # mov x0, #1
                + a64w(0x8B010000)      # add x0, x0, x1      <- body (+8)
                + a64w(0xF1000529)      # subs x9, x9, #1
                + a64w(a_bcond(1, -8))  # b.ne body
                + a64w(0xD65F03C0))     # ret
        return code, 8, 2, 1
    A0, A1, A2 = 10, 11, 12
    code = (rvw(rv64.addi(A2, 0, 1))                  # +0
            + rvc(0x9002 | A2 << 7 | A1 << 2)         # +4  c.add a2, a1   <- body
            + rvw(rv64.addi(A0, A0, -1))              # +6
            + rvc(rv64.c_bnez(A0, -6))                # +10 -> +4
            + rvc(0x8002 | A0 << 7 | A2 << 2)         # +12 c.mv a0, a2
            + rvw(rv64.RET))                          # +14
    return code, 4, 1, 2


def loop_proc(target: str, **kw):
    """(process, f, f's loop body, instructions f(n, k) executes)"""
    t = get_target(target)
    code, body, head, tail = loop_program(t.arch.name)
    b = ObjBuilder(target, "loop.o")
    text = b.section(".text", SectionKind.TEXT, code)
    b.symbol(t.symbol("f"), text, 0, size=len(code))
    b.symbol(t.symbol("main"), text, 0, size=len(code))
    proc = JitProcess(target, **kw)
    proc.link([b.build()])
    f = proc.lookup("f")
    return proc, f, f + body, lambda n: head + 3 * n + tail


@pytest.mark.parametrize("target", TARGETS)
def test_a_breakpoint_stays_set_across_displaced_steps(target):
    proc, f, body, _ = loop_proc(target)
    m = proc.machine
    m.add_breakpoint(body)
    st_ = Stepper(proc)
    out = proc.start_call(f, [3, 4])
    hits = 0
    while out.stopped:
        assert out.pc == body
        hits += 1
        r = st_.step()                       # the body's add, displaced, breakpoint kept
        assert r.mode == "displaced" and r.stopped and r.from_pc == body
        assert m.breakpoints == {body} and r.pc != body
        assert_only_exact_hooks(m)
        out = proc.resume()                  # on to the next iteration's breakpoint
    assert hits == 3 and out.returned and out.value == 1 + 3 * 4


@pytest.mark.parametrize("displaced", [True, False])
@pytest.mark.parametrize("target", TARGETS)
def test_stepping_a_whole_call_to_its_return(target, displaced):
    proc, f, body, count = loop_proc(target)
    m = proc.machine
    m.add_breakpoint(f)
    st_ = Stepper(proc)
    assert proc.start_call(f, [2, 5]).stopped
    steps, pcs = 0, []
    while True:
        r = st_.step(displaced=displaced)
        steps += 1
        if not r.stopped:
            break
        pcs.append(r.pc)
        assert proc.stopped and proc.stopped_at == r.pc == m.reg(proc.target.callconv.pc)
    assert steps == count(2)
    assert pcs.count(body) == 2
    assert r.returned and r.value == 1 + 2 * 5 and not proc.stopped
    # the step ended the call: the next resume() says how, once
    again = proc.resume()
    assert again.returned and again.value == 1 + 2 * 5
    with pytest.raises(KitemuError):
        proc.resume()
    assert m.breakpoints == {f}


@pytest.mark.parametrize("target", ["elf-x64", "elf-aarch64", "elf-rv64"])
def test_stepping_into_a_host_function_through_its_stub(target):
    """call puts -> canonical stub -> the host function (always in place:
    its body runs from the host-area hook, once) -> back after the call."""
    t = get_target(target)
    arch = t.arch.name
    b = ObjBuilder(target, "hi.o")
    if arch == "x64":
        code = x64("push rax; call 0x1000; pop rcx; ret")
        reloc = (2, "R_X86_64_PLT32", -4)
    elif arch == "aarch64":
        code = (a64w(0xA9BF7BFD)           # stp x29, x30, [sp, #-16]!
                + a64w(a_b(0, link=True))  # bl puts
                + a64w(0xA8C17BFD)         # ldp x29, x30, [sp], #16
                + a64w(0xD65F03C0))
        reloc = (4, "R_AARCH64_CALL26", 0)
    else:
        code = (rvw(rv64.addi(2, 2, -16)) + rvw(rv64.sd(1, 2, 8))
                + rvw(rv64.auipc(1, 0)) + rvw(rv64.jalr(1, 1, 0))
                + rvw(rv64.ld(1, 2, 8)) + rvw(rv64.addi(2, 2, 16)) + rvw(rv64.RET))
        reloc = (8, "R_RISCV_CALL_PLT", 0)
    text = b.section(".text", SectionKind.TEXT, code)
    b.symbol(t.symbol("f"), text, 0, size=len(code))
    b.undefined(t.symbol("puts"))
    b.reloc(text, reloc[0], reloc[1], t.symbol("puts"), reloc[2])
    proc = JitProcess(target)
    proc.link([b.build()])
    m = proc.machine
    puts = m.hostproc.addrs[t.symbol("puts")]
    f = proc.lookup("f")
    s = m.hostproc.heap.malloc(16)
    m.write_raw(s, b"hi\0")
    m.add_breakpoint(f)
    st_ = Stepper(proc)
    assert proc.start_call(f, [s]).stopped
    trail = []
    while True:
        r = st_.step()
        if not r.stopped:
            break
        trail.append((r.from_pc, r.mode, r.reason))
        if r.pc == puts:
            assert bytes(m.hostproc.stdout) == b""          # stopped before its body
    host = [t for t in trail if t[0] == puts]
    assert len(host) == 1 and host[0][1] == "in-place" and "host function" in host[0][2]
    assert all(mode == "displaced" for pc, mode, _ in trail if pc != puts)
    assert r.returned and bytes(m.hostproc.stdout) == b"hi\n"


FAULTING = {
    # (code at `at`, registers): a load from unmapped memory / a jump there
    "x64": lambda b: (x64(f"mov rax, qword ptr [rip + {-0x100_0000:#x}]".replace("+ -", "- "),
                          b.at), {"rsp": X64_SP}),
    "aarch64": lambda b: (a64w(a_ldr_lit(1, 0, 3, -0x80000)), {"sp": STACK_PAGE + 0x800}),
    "rv64": lambda b: (rvw(rv64.ld(10, 11, 0)), {"x11": 8, "x2": STACK_PAGE + 0x800}),
}


@pytest.mark.parametrize("arch", ["x64", "aarch64", "rv64"])
def test_a_fault_in_a_displaced_step_is_reported_at_the_instruction(arch):
    b = bench(ARCH_TARGET[arch])
    code, regs = FAULTING[arch](b)
    r, state, _ = b.compare(code, regs, {})
    assert r.faulted and r.fault.pc == b.at and r.fault.signal == "SIGSEGV"
    assert r.fault.access == "read" and not b.proc.stopped
    again = b.proc.resume()
    assert again.faulted and again.fault.pc == b.at
    # a jump to unmapped memory faults at the target, after the jump
    if arch == "x64":
        code, regs = x64("call rbx"), {"rbx": 0x1230, "rsp": X64_SP}
    elif arch == "aarch64":
        code, regs = a64w(a_breg(1, 3)), {"x3": 0x1230}
    else:
        code, regs = rvw(rv64.jalr(1, 5, 0)), {"x5": 0x1230}
    r, state, _ = b.compare(code, regs, {})
    assert r.faulted and r.fault.pc == 0x1230 and r.fault.access == "execute"


def test_a_rep_string_instruction_faulting_midway_keeps_its_progress():
    """rep stosb running off the data page faults after some iterations:
    rcx/rdi have moved on and the bytes are written (the fault is precise
    per iteration, not per instruction) -- displaced exactly as in place."""
    b = bench("elf-x64")
    end = b.data + 4096                               # the page after is unmapped
    regs = {"rsp": X64_SP, "rax": 0x41, "rdi": end - 8, "rcx": 100, "rflags": 0x2}
    r, state, mem = b.compare(x64("rep stosb"), regs, {})
    assert r.faulted and r.fault.pc == b.at and r.fault.address == end
    assert (state["rcx"], state["rdi"]) == (92, end) and state["rip"] == b.at
    assert mem[b.data][-8:] == b"A" * 8


def test_exclusive_loads_and_stores_fall_back_in_place():
    """ldaxr/add/stlxr/cbnz: the exclusive ones run in place (said so),
    the store-exclusive still succeeds, the others are displaced."""
    b = bench("elf-aarch64")
    proc, m = b.proc, b.m
    prog = [0xC85FFC01,                 # ldaxr x1, [x0]
            0x91000421,                 # add x1, x1, #1
            0xC802FC01,                 # stlxr w2, x1, [x0]
            a_cbz(2, -12, nz=True, sf=0)]   # cbnz w2, retry
    code = b"".join(a64w(w) for w in prog)
    proc.abandon()
    b.place(code)
    m.write_raw(b.data, word(41))
    assert proc.start_call(b.at, [b.data]).stopped
    st_ = b.stepper
    modes = []
    for _ in range(4):
        r = st_.step()
        modes.append((r.kind, r.mode))
        if r.kind == "exclusive":
            assert "exclusive" in r.reason
        else:
            assert r.reason is None
    assert modes == [("exclusive", "in-place"), ("plain", "displaced"),
                     ("exclusive", "in-place"), ("cbz", "displaced")]
    x2 = m.reg(_uc_regs("aarch64")["x2"])
    assert x2 == 0 and m.read(b.data, 8) == word(42)
    assert r.pc == b.at + 16
    b._placed = None


def test_lr_sc_fall_back_in_place():
    b = bench("elf-rv64")
    proc, m = b.proc, b.m
    A0, A1, A2 = 10, 11, 12
    lr = 0b00010 << 27 | A0 << 15 | 3 << 12 | A1 << 7 | 0x2F          # lr.d a1, (a0)
    sc = 0b00011 << 27 | A1 << 20 | A0 << 15 | 3 << 12 | A2 << 7 | 0x2F  # sc.d a2, a1, (a0)
    code = rvw(lr) + rvc(0x0585) + rvw(sc) + rvw(rv_branch(1, A2, 0, -10))  # c.addi a1, 1
    proc.abandon()
    b.place(code)
    m.write_raw(b.data, word(41))
    assert proc.start_call(b.at, [b.data]).stopped
    got = []
    for _ in range(4):
        r = b.stepper.step()
        got.append((r.kind, r.mode, r.reason is not None and "LR/SC" in r.reason))
    assert got == [("lr/sc", "in-place", True), ("plain", "displaced", False),
                   ("lr/sc", "in-place", True), ("branch", "displaced", False)]
    assert m.reg(_uc_regs("rv64")["x12"]) == 0 and m.read(b.data, 8) == word(42)
    b._placed = None


def test_far_transfers_cannot_be_stepped_and_a_step_needs_a_stopped_call():
    b = bench("elf-x64")
    b.proc.abandon()
    with pytest.raises(KitemuError, match="no call is stopped"):
        b.stepper.step()
    b.place(b"\x48\xff\x28")                         # rex.w ljmp [rax]
    assert b.proc.start_call(b.at).stopped
    with pytest.raises(StepError, match="far transfer"):
        b.stepper.step()
    assert b.proc.stopped and b.proc.stopped_at == b.at


def test_run_on_breakpoint_can_step_past_the_return():
    """A debugger stepping inside run(on_breakpoint=): the step that returns
    ends the call, and run() carries on with its value (the next resume()
    returns the outcome of that step)."""
    proc, f, body, _ = loop_proc("elf-rv64")
    m = proc.machine
    m.add_breakpoint(body)
    st_ = Stepper(proc)
    seen = []

    def on_bp(p, pc):
        seen.append((pc, m.reg(proc.target.callconv.int_args[1])))
        m.remove_breakpoint(body)
        while st_.step().stopped:
            pass

    res = proc.run(on_breakpoint=on_bp)                 # main = f(argc = 1, argv)
    assert [pc for pc, _ in seen] == [body] and res.fault is None
    assert res.exit_code == (1 + seen[0][1]) & 0xFF


# ---------------------------------------------------------------------------------------------
# the property: generated instructions of every class, random state

def rand_page(seed: int) -> bytes:
    return random.Random(seed).randbytes(4096)


@st.composite
def x64_example(draw, b: Bench, kind: str):
    at, data = b.at, b.data
    gprs = ["rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp"] + [f"r{i}" for i in range(8, 16)]
    regs = {n: draw(st.integers(0, MASK)) for n in gprs}
    regs["rsp"] = STACK_PAGE + 0x800 + 8 * draw(st.integers(-64, 64))
    flags = draw(st.lists(st.sampled_from([0x1, 0x4, 0x10, 0x40, 0x80, 0x400, 0x800]),
                          unique=True))
    regs["rflags"] = 0x2 | sum(flags)
    regs["xmm0"] = regs["xmm1"] = 0
    stack = rand_page(draw(st.integers(0, 1 << 30)))
    dpage = rand_page(draw(st.integers(0, 1 << 30)))
    r = draw(st.sampled_from(gprs))
    r2 = draw(st.sampled_from(gprs))
    code_target = at + draw(st.one_of(st.integers(-120, 120), st.integers(-0x3000, 0x3000)))
    expect = None
    plant = {}
    if kind == "rip":
        tmpl = draw(st.sampled_from([
            "mov {r}, qword ptr [rip + {d}]", "mov qword ptr [rip + {d}], {r}",
            "lea {r}, [rip + {d}]", "add dword ptr [rip + {d}], {i}",
            "cmp byte ptr [rip + {d}], {i8}", "movzx {r32}, word ptr [rip + {d}]",
            "push qword ptr [rip + {d}]", "imul {r}, qword ptr [rip + {d}], {i}",
            "movsd xmm1, qword ptr [rip + {d}]", "xchg qword ptr [rip + {d}], {r}",
            "inc qword ptr [rip + {d}]", "sub {r}, qword ptr [rip + {d}]",
            "movupd xmm1, xmmword ptr [rip + {d}]", "cmp word ptr [rip + {d}], {i16}",
            "vmovupd xmm1, xmmword ptr [rip + {d}]"]))
        # mostly the data page; sometimes unmapped memory (a fault inside the copy)
        target = draw(st.sampled_from([data, data, data, at - 0x100_0000])) + \
            draw(st.integers(0, 4096 - 16))
        fill = dict(r=r, r32=_r32(r), i=draw(st.integers(-(1 << 31), (1 << 31) - 1)),
                    i8=draw(st.integers(-128, 127)), i16=draw(st.integers(-(1 << 15), (1 << 15) - 1)))
        probe = x64(tmpl.format(d=0x12345678, **fill), at)
        d = target - at - len(probe)
        code = x64(tmpl.format(d=d, **fill).replace("+ -", "- "), at)
        assert len(code) == len(probe)
        expect = {at + len(code)}
    elif kind == "rel":
        mnem = draw(st.sampled_from(["jmp"] + ["j" + c for c in (
            "o no b ae e ne be a s ns p np l ge le g").split()]))
        code = x64(f"{mnem} {code_target:#x}", at)
        expect = {code_target} | ({at + len(code)} if mnem != "jmp" else set())
    elif kind == "loop":
        mnem = draw(st.sampled_from(["loop", "loope", "loopne", "jrcxz", "jecxz"]))
        code_target = at + draw(st.integers(-100, 100))
        regs["rcx"] = draw(st.sampled_from([0, 1, 2, 1 << 32, MASK, regs["rcx"]]))
        code = x64(f"{mnem} {code_target:#x}", at)
        expect = {code_target, at + len(code)}
    elif kind == "call":
        code = x64(f"call {code_target:#x}", at)
        expect = {code_target}
    elif kind == "ret":
        imm = draw(st.sampled_from([None, 0, 8, 0x18]))
        code = x64("ret" if imm is None else f"ret {imm}")
        dest = draw(st.sampled_from([code_target, SENTINEL, 0x1000]))
        plant[regs["rsp"]] = dest
        expect = {dest}
    elif kind == "indirect":
        form = draw(st.sampled_from(["jmp {r}", "call {r}", "jmp qword ptr [{r} + {o}]",
                                     "call qword ptr [{r} + {o}]",
                                     "call qword ptr [rip + {d}]", "jmp qword ptr [rip + {d}]"]))
        dest = draw(st.sampled_from([code_target, code_target, 0x1000]))
        if "rip" in form:
            cell = data + 8 * draw(st.integers(0, 500))
            probe = x64(form.format(d=0x12345678), at)
            code = x64(form.format(d=cell - at - len(probe)).replace("+ -", "- "), at)
            plant[cell] = dest
        elif "[" in form:
            o = 8 * draw(st.integers(-16, 16))
            cell = data + 2048 + o
            regs[r] = data + 2048
            code = x64(form.format(r=r, o=o).replace("+ -", "- "), at)
            plant[cell] = dest
        else:
            regs[r] = dest
            code = x64(form.format(r=r), at)
        expect = {dest}
    else:
        form = draw(st.sampled_from(["add {r}, {r2}", "imul {r}, {r2}", "xchg {r}, {r2}",
                                     "rep stosb", "shl {r}, cl", "adc {r}, {r2}"]))
        if form == "rep stosb":
            regs["rdi"] = data + 2048
            regs["rcx"] = draw(st.integers(0, 64))
        code = x64(form.format(r=r, r2=r2), at)
        expect = {at + len(code)}
    stack_page = with_words(stack, STACK_PAGE, {a: v for a, v in plant.items()
                                                if STACK_PAGE <= a < STACK_TOP})
    data_page = with_words(dpage, data, {a: v for a, v in plant.items() if data <= a < data + 4096})
    return code, regs, {STACK_PAGE: stack_page, data: data_page}, expect


def _r32(r: str) -> str:
    return {"rax": "eax", "rbx": "ebx", "rcx": "ecx", "rdx": "edx", "rsi": "esi", "rdi": "edi",
            "rbp": "ebp"}.get(r, r + "d")


@st.composite
def aarch64_example(draw, b: Bench, kind: str):
    at, data = b.at, b.data
    regs = {f"x{i}": draw(st.integers(0, MASK)) for i in range(31)}
    regs["sp"] = STACK_PAGE + 0x800
    regs["nzcv"] = draw(st.integers(0, 15)) << 28
    for i in range(32):
        regs[f"q{i}"] = 0
    off = 4 * draw(st.integers(-0xC00, 0xC00))
    target = at + off
    rt = draw(st.one_of(st.just(31), st.integers(0, 31)))
    if kind in ("b", "bl"):
        w, expect = a_b(off, link=kind == "bl"), {target}
    elif kind == "bcond":
        w, expect = a_bcond(draw(st.integers(0, 15)), off), {target, at + 4}
    elif kind == "cbz":
        if rt != 31 and draw(st.booleans()):
            regs[f"x{rt}"] = draw(st.sampled_from([0, 1 << 32, 1 << 63]))
        w = a_cbz(rt, off, nz=draw(st.booleans()), sf=draw(st.integers(0, 1)))
        expect = {target, at + 4}
    elif kind == "tbz":
        w = a_tbz(rt, draw(st.integers(0, 63)), off, nz=draw(st.booleans()))
        expect = {target, at + 4}
    elif kind in ("adr", "adrp"):
        w = a_adr(rt, draw(st.integers(-(1 << 20), (1 << 20) - 1)), page=kind == "adrp")
        expect = {at + 4}
    elif kind == "ldr":
        opc, simd = draw(st.sampled_from([(0, 0), (1, 0), (2, 0), (3, 0), (0, 1), (1, 1), (2, 1)]))
        lit = draw(st.sampled_from([data, data, data, at - 0x80000])) + \
            4 * draw(st.integers(0, 1000)) - at
        w, expect = a_ldr_lit(opc, simd, rt, lit), {at + 4}
    elif kind in ("br", "blr", "ret"):
        rn = draw(st.integers(0, 30))
        dest = draw(st.sampled_from([target, target, SENTINEL, 0x1000]))
        regs[f"x{rn}"] = dest
        w, expect = a_breg({"br": 0, "blr": 1, "ret": 2}[kind], rn), {dest}
    else:
        w = a_adds(rt, draw(st.integers(0, 31)), draw(st.integers(0, 31)))
        expect = {at + 4}
    mem = {STACK_PAGE: rand_page(draw(st.integers(0, 1 << 30))),
           data: rand_page(draw(st.integers(0, 1 << 30)))}
    return a64w(w), regs, mem, expect


@st.composite
def rv64_example(draw, b: Bench, kind: str):
    at = b.at
    regs = {f"x{i}": draw(st.integers(0, MASK)) for i in range(1, 32)}
    regs["x2"] = STACK_PAGE + 0x800
    rd = draw(st.integers(0, 31))
    rs1 = draw(st.integers(0, 31))
    dest = draw(st.sampled_from([at + 2 * draw(st.integers(-0x1800, 0x1800)), SENTINEL, 0x1000]))
    if kind == "auipc":
        code, expect = rvw(rv64.auipc(rd, draw(st.integers(0, (1 << 20) - 1)))), {at + 4}
    elif kind == "jal":
        off = 2 * draw(st.integers(-0x1800, 0x1800))
        code, expect = rvw(rv64.jal(rd, off)), {at + off}
    elif kind == "jalr":
        imm = draw(st.integers(-2048, 2047))
        if rs1:
            regs[f"x{rs1}"] = dest - imm
        code = rvw(rv64.jalr(rd, rs1, imm))
        expect = {((regs.get(f"x{rs1}", 0) if rs1 else 0) + imm) & MASK & ~1}
    elif kind == "branch":
        rs2 = draw(st.integers(0, 31))
        if rs1 and rs2 and draw(st.booleans()):
            regs[f"x{rs2}"] = regs[f"x{rs1}"]
        off = 2 * draw(st.integers(-2048, 2047))
        code = rvw(rv_branch(draw(st.sampled_from([0, 1, 4, 5, 6, 7])), rs1, rs2, off))
        expect = {at + off, at + 4}
    elif kind == "c.j":
        off = 2 * draw(st.integers(-1024, 1023))
        code, expect = rvc(rv64.c_j(off)), {at + off}
    elif kind == "c.beqz":
        r = draw(st.integers(8, 15))
        if draw(st.booleans()):
            regs[f"x{r}"] = 0
        off = 2 * draw(st.integers(-128, 127))
        enc = rv64.c_beqz if draw(st.booleans()) else rv64.c_bnez
        code, expect = rvc(enc(r, off)), {at + off, at + 2}
    elif kind in ("c.jr", "c.jalr"):
        r = draw(st.integers(1, 31))
        regs[f"x{r}"] = dest
        code = rvc(c_jr(r) if kind == "c.jr" else c_jalr(r))
        expect = {dest & ~1}
    elif draw(st.booleans()):
        code, expect = rvw(rv_add(rd, rs1, draw(st.integers(0, 31)))), {at + 4}
    else:                               # a load: from the data page, or a fault
        imm = draw(st.integers(-2048, 2047))
        if rs1 and draw(st.booleans()):
            regs[f"x{rs1}"] = b.data + 2048 - imm + draw(st.integers(-2040, 2040))
        code, expect = rvw(rv64.ld(rd, rs1, imm)), {at + 4}
    mem = {STACK_PAGE: rand_page(draw(st.integers(0, 1 << 30))),
           b.data: rand_page(draw(st.integers(0, 1 << 30)))}
    return code, regs, mem, expect


EXAMPLES = {"x64": x64_example, "aarch64": aarch64_example, "rv64": rv64_example}
CLASSES = {
    "x64": ["rip", "rel", "loop", "call", "ret", "indirect", "plain"],
    "aarch64": ["b", "bl", "bcond", "cbz", "tbz", "adr", "adrp", "ldr", "br", "blr", "ret",
                "plain"],
    "rv64": ["auipc", "jal", "jalr", "branch", "c.j", "c.beqz", "c.jr", "c.jalr", "plain"],
}
PROPERTY_RUNS = ([(ARCH_TARGET[a], None, k) for a in CLASSES for k in CLASSES[a]]
                 + [("elf-x64", 0x10_0000_0000, k) for k in ("rip", "indirect")])


def check_example(b: Bench, example) -> str:
    """Both mechanisms agree, and went where the generator says the
    instruction goes; returns "taken" / "fall-through" / how it ended."""
    code, regs, mem, expect = example
    r, state, _ = b.compare(code, regs, mem)
    fall = b.at + r.size
    if r.stopped:
        assert r.pc in expect, (r.insn, hex(r.pc), [hex(e) for e in expect])
        return "fall-through" if r.pc == fall else "taken"
    if r.returned:
        assert SENTINEL in expect
        return "taken"
    assert r.faulted, (r.insn, r.status)
    f = r.fault
    # only the faults the generators plant: the instruction's own data access
    # (unmapped literal / operand), or a branch to an unmapped target. A trap
    # of the code fill means both mechanisms missed the real successor.
    assert (f.pc == b.at and f.access in ("read", "write")) or \
        (f.access == "execute" and f.pc in expect), (r.insn, f.render())
    return "fault"


#: the classes whose examples must include both ways of the branch
CONDITIONAL = {"rel", "loop", "bcond", "cbz", "tbz", "branch", "c.beqz"}


@pytest.mark.parametrize("target,base,kind", PROPERTY_RUNS)
def test_property_displaced_equals_in_place(target, base, kind):
    """Examples per class: the hypothesis profile's (ci: 60; KITEMU_PROFILE=full: 2000)."""
    b = bench(target, **({} if base is None else {"base": base}))
    seen = set()

    @given(EXAMPLES[b.arch](b, kind))
    def prop(example):
        seen.add(check_example(b, example))

    prop()
    if kind in CONDITIONAL:
        assert {"taken", "fall-through"} <= seen, seen
