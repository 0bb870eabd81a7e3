"""Faults as the simulated host would report them.

The CPU reports *what* happened (unmapped fetch, write to a protected page,
an exception number); the host model decides *which signal* a real process
would have received. Linux (ARCHITECTURE.md, "Faults as real hosts report
them"):

* unmapped address                 -> SIGSEGV, SEGV_MAPERR
* mapped, wrong permission         -> SIGSEGV, SEGV_ACCERR
* misaligned exclusive/atomic      -> SIGBUS,  BUS_ADRALN (aarch64, rv64)
* undefined instruction            -> SIGILL
* breakpoint instruction           -> SIGTRAP

macOS (xnu ``ux_exception``) differs for permission faults: a mapped page
with the wrong permission (a write to RX, executing a MAP_JIT page while it
is writable) is EXC_BAD_ACCESS/KERN_PROTECTION_FAILURE -> SIGBUS
(BUS_ADRERR), "Bus error"; unmapped stays SIGSEGV.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

SIGNALS = {"SIGILL": 4, "SIGTRAP": 5, "SIGABRT": 6, "SIGBUS": 7, "SIGKILL": 9, "SIGSEGV": 11}
SIGNAL_TEXT = {"SIGSEGV": "Segmentation fault", "SIGBUS": "Bus error",
               "SIGILL": "Illegal instruction", "SIGTRAP": "Trace/breakpoint trap",
               "SIGABRT": "Aborted", "SIGKILL": "Killed (time limit)"}

# CPU exception numbers as unicorn reports them through UC_HOOK_INTR
_AARCH64_EXC = {1: ("SIGILL", "ILL_ILLOPC"), 7: ("SIGTRAP", "TRAP_BRKPT"),
                4: ("SIGBUS", "BUS_ADRALN")}
_RV64_EXC = {2: ("SIGILL", "ILL_ILLOPC"), 3: ("SIGTRAP", "TRAP_BRKPT"),
             0: ("SIGBUS", "BUS_ADRALN"), 4: ("SIGBUS", "BUS_ADRALN"), 6: ("SIGBUS", "BUS_ADRALN")}
_X64_EXC = {3: ("SIGTRAP", "TRAP_BRKPT"), 6: ("SIGILL", "ILL_ILLOPN"),
            13: ("SIGSEGV", "SEGV_ACCERR"), 17: ("SIGBUS", "BUS_ADRALN")}
_EXC = {"aarch64": _AARCH64_EXC, "rv64": _RV64_EXC, "x64": _X64_EXC}


@dataclass
class FaultReport:
    signal: str
    si_code: str
    kind: str
    access: str | None
    address: int | None
    pc: int
    pc_symbol: str
    address_symbol: str | None
    target: str
    host_os: str
    stage: str = ""
    #: ("wrote" | "produced", record): the relocation that patched the
    #: faulting address, or whose target it is
    relocation: tuple | None = None
    #: generation of the code the fault happened in (0: the first link;
    #: each append or reload adds one)
    generation: int = 0
    #: capstone lines around the PC, the faulting instruction marked ``=>``
    #: (empty when the PC's bytes cannot be read)
    disassembly: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 128 + SIGNALS[self.signal]

    def relocation_subject(self) -> str:
        """What :attr:`relocation` is about: ``"address"`` (it wrote or
        produced the faulting address) or ``"pc"`` (no relocation did; this
        one wrote or produced the faulting pc, e.g. the call that led to the
        faulting function)."""
        how, rec = self.relocation

        def about(addr: int | None) -> bool:
            if addr is None:
                return False
            if how == "wrote":
                return rec.place <= addr < rec.place + max(rec.size, 1)
            return rec.target == addr

        return "pc" if about(self.pc) and not about(self.address) else "address"

    def summary(self) -> str:
        return f"{self.signal} ({self.si_code}) at pc {self.pc:#x}"

    def render(self, verbose: bool = False) -> str:
        """The one-paragraph report; ``verbose`` adds lines after it: the
        generation and the disassembly around the PC."""
        what = {"unmapped": "access to unmapped memory",
                "protection": "access violating page permissions",
                "illegal-instruction": "illegal instruction",
                "exception": "CPU exception", "timeout": "time limit"}.get(self.kind, self.kind)
        if self.kind == "exception" and self.si_code == "BUS_ADRALN":
            what = "misaligned access (alignment fault)"
        access = f" ({self.access})" if self.access else ""
        text = (f"{SIGNAL_TEXT.get(self.signal, self.signal)}: {self.signal} {self.si_code} on "
                f"{self.target} ({self.host_os} host model): {what}{access}")
        if self.address is not None:
            text += f" at address {self.address:#x}"
            if self.address_symbol:
                text += f" <{self.address_symbol}>"
        text += f"; pc {self.pc:#x} <{self.pc_symbol}>"
        if self.stage:
            text += f"; J-stage {self.stage}"
        if self.relocation:
            how, rec = self.relocation
            verb = "last written by" if how == "wrote" else "produced by"
            subject = "that address" if self.relocation_subject() == "address" else "the pc"
            text += f"; {subject} was {verb} {rec.describe()}"
        text += "."
        if not verbose:
            return text
        lines = [text, f"  generation {self.generation}"]
        if self.disassembly:
            lines.append(f"  disassembly around pc {self.pc:#x}:")
            lines += [f"    {line}" for line in self.disassembly]
        return "\n".join(lines)


def signal_for(fault, arch_name: str, host_os: str) -> tuple[str, str]:
    """(signal, si_code) as the host would deliver them.

    macOS differs by architecture, because xnu's ``sendsig`` fills si_code
    per arch: on x86-64 (bsd/dev/i386/unix_signal.c) SIGBUS is always
    BUS_ADRERR and SIGSEGV is MAPERR/ACCERR by the Mach error; on arm64
    (bsd/dev/arm/unix_signal.c) SIGBUS is always BUS_ADRALN, SIGSEGV always
    SEGV_ACCERR and SIGILL always ILL_ILLTRP, whatever the cause. Which
    signal it is comes from ux_exception: a permission failure on mapped
    memory is SIGBUS, an unmapped address SIGSEGV."""
    sig, code = _linux_signal(fault, arch_name)
    if host_os != "macos" or fault.kind == "timeout":
        return sig, code
    if fault.kind == "protection":
        sig = "SIGBUS"            # xnu: EXC_BAD_ACCESS / KERN_PROTECTION_FAILURE
    if arch_name == "aarch64":
        code = {"SIGBUS": "BUS_ADRALN", "SIGSEGV": "SEGV_ACCERR",
                "SIGILL": "ILL_ILLTRP"}.get(sig, code)
    elif arch_name == "x64" and sig == "SIGBUS":
        code = "BUS_ADRERR"
    # (no macOS runs on RISC-V: an rv64 target under the macOS model keeps
    # Linux's si_codes, with macOS's choice of signal)
    return sig, code


def _linux_signal(fault, arch_name: str) -> tuple[str, str]:
    if fault.kind == "unmapped":
        return "SIGSEGV", "SEGV_MAPERR"
    if fault.kind == "protection":
        return "SIGSEGV", "SEGV_ACCERR"
    if fault.kind == "illegal-instruction":
        return "SIGILL", "ILL_ILLOPC"
    if fault.kind == "timeout":
        return "SIGKILL", "TIMEOUT"     # what a harness's time limit does to a process
    return _EXC.get(arch_name, {}).get(fault.intno, ("SIGILL", f"EXCEPTION_{fault.intno}"))


class Symbolizer:
    """Address -> ``symbol+offset`` over an image and the host functions."""

    def __init__(self, image, host_addrs: dict[str, int] | None = None):
        entries = []
        #: pending names' guard addresses (append-only images)
        self.describe_guard = getattr(image, "describe_guard", None)
        macho = getattr(getattr(image, "target", None), "format", None) == "macho"
        if image is not None:
            for s in image.symbols:
                if s.kind in ("section", "file"):
                    continue
                # names of a place only when nothing else names it: assembler
                # temporaries (Mach-O ``ltmp0``, ``l_.str``: C names there
                # always start with ``_``) and IFUNC symbols (their value is
                # the resolver, which has a name of its own)
                temp = s.name.startswith(".L") or (macho and s.name[:1] in ("l", "L")) \
                    or s.kind == "ifunc"
                entries.append((s.addr, s.size, s.name, s.local, temp))
        for name, a in (host_addrs or {}).items():
            entries.append((a, 16, f"{name} (host)", False, False))
        # at equal addresses the preferred name comes *last* (lookup walks
        # backwards): non-temporary over temporary, global over local,
        # sized over unsized
        entries.sort(key=lambda e: (e[0], not e[4], not e[3], e[1] > 0))
        self.entries = [e[:4] for e in entries]
        self.addrs = [e[0] for e in entries]

    def lookup(self, addr: int) -> str | None:
        guard = self.describe_guard(addr) if self.describe_guard else None
        if guard is not None:
            return guard
        i = bisect.bisect_right(self.addrs, addr) - 1
        best = None
        while i >= 0:
            a, size, name, _ = self.entries[i]
            if addr < a + max(size, 1):
                best = (a, name)
                break
            if best is None and addr - a < 0x10000 and size == 0:
                best = (a, name)
            if addr - a > 0x100000:
                break
            i -= 1
        if best is None:
            return None
        a, name = best
        return name if addr == a else f"{name}+{addr - a:#x}"


def describe_fault(fault, proc) -> FaultReport:
    signal, code = signal_for(fault, proc.arch.name, proc.host.os)
    sym = Symbolizer(proc.image, proc.machine.hostproc.addrs)
    pc, address, access = fault.pc, fault.address, fault.access
    if fault.kind == "exception" and fault.intno is not None and proc.arch.name == "rv64":
        # unicorn's RISC-V UC_HOOK_INTR path advances the PC by 4 (to resume
        # after an ecall) before anyone reads it: the faulting instruction
        # (AMO, LR/SC, ecall: all 4 bytes long) is the one before
        pc -= 4
    if code == "BUS_ADRALN" and address is None:
        # the CPU exception carries no address (unicorn sets neither FAR_EL1
        # nor mtval): take it from the faulting instruction's operands
        address, access = _alignment_address(proc, pc) or (None, access)
    relocation = None
    if proc.image is not None:
        index = proc.image.reloc_index
        relocation = (index.about(address) or _x64_pcrel_produced(proc, index, address)
                      or index.about(pc))
        if relocation and relocation[0] == "produced" and relocation[1].target is not None:
            relocation = "produced", _nearest_before(index, relocation[1], pc)
    return FaultReport(signal, code, fault.kind, access, address, pc,
                       sym.lookup(pc) or "??",
                       sym.lookup(address) if address is not None else None,
                       proc.target.name, proc.host.os, getattr(proc, "stage", ""), relocation,
                       _generation_at(proc, pc), disassemble_around(proc, pc, sym))


def _generation_at(proc, pc: int) -> int:
    """The generation that placed the code at ``pc`` (the innermost symbol
    containing it), else the image's current one; an IFUNC resolver that
    faults during the first link runs code of generation 0."""
    image = getattr(proc, "image", None)
    best = None
    for s in getattr(image, "symbols", ()):
        if s.addr <= pc < s.addr + max(s.size, 1) and (best is None or s.addr >= best.addr):
            best = s
    if best is not None and hasattr(best, "generation"):
        return best.generation
    return max(getattr(proc, "generation", 0), 0)


def _nearest_before(index, rec, pc: int):
    """Of the records with ``rec``'s target, the one that formed the
    address for the faulting instruction: the nearest patched place before
    the PC (within 4 KiB), else ``rec`` (the last applied)."""
    near = [r for r in index.records if r.target == rec.target and 0 <= pc - r.place < 4096]
    return max(near, key=lambda r: (r.place, r.apply_id)) if near else rec


def _x64_pcrel_produced(proc, index, address: int | None):
    """x86-64 PC-relative references (``lea sym+k(%rip)``): the record's
    ``S + A`` carries the -4 bias (and -1/-2/-4 more when an immediate
    follows the field), so the address the instruction forms is
    ``place + 4 + imm + value``. Match that instead."""
    if address is None or proc.arch.name != "x64":
        return None
    for imm in (0, 1, 2, 4):
        r = index.produced(address - 4 - imm)
        if r is not None and r.fixup == "x64.PCRel32" and r.place + 4 + imm + r.value == address:
            return "produced", r
    return None


# -- the faulting instruction --------------------------------------------------------

def _read_code(proc, addr: int, size: int) -> bytes | None:
    read = getattr(getattr(proc, "machine", None), "read", None)
    if read is None:
        return None
    try:
        return bytes(read(addr, size))
    except Exception:           # unmapped, or a backend that cannot read there
        return None


def _read_span(proc, lo: int, hi: int, pc: int) -> tuple[int, bytes]:
    """The readable bytes of ``[lo, hi)`` around ``pc``: all of them if
    they are mapped, else the run of readable 256-byte pieces holding
    ``pc``. Returns (start address, bytes)."""
    data = _read_code(proc, lo, hi - lo)
    if data is not None:
        return lo, data
    pieces: list[tuple[int, bytes | None]] = []
    a = lo
    while a < hi:
        n = min(256 - a % 256, hi - a)
        pieces.append((a, _read_code(proc, a, n)))
        a += n
    at = next((k for k, (a, p) in enumerate(pieces) if p and a <= pc < a + len(p)), None)
    if at is None:
        return pc, b""
    first = last = at
    while first > 0 and pieces[first - 1][1]:
        first -= 1
    while last + 1 < len(pieces) and pieces[last + 1][1]:
        last += 1
    return pieces[first][0], b"".join(p for _, p in pieces[first:last + 1])


def disassemble_around(proc, pc: int, sym: Symbolizer | None = None, before: int = 4,
                       after: int = 3) -> list[str]:
    """Capstone lines around ``pc`` (see :func:`_disassemble`); never raises."""
    try:
        return _disassemble(proc, pc, sym, before, after)
    except Exception as e:          # a report must never fail because of its extras
        return [f"(no disassembly: {e})"]


def _disassemble(proc, pc: int, sym: Symbolizer | None, before: int, after: int) -> list[str]:
    """Capstone lines for a few instructions before and after ``pc``, the
    instruction at ``pc`` marked ``=>``. Variable-length code (x86-64,
    RISC-V with compressed instructions) is decoded from the enclosing
    symbol's start when it is close, else from the nearest earlier offset
    whose decoding lands exactly on ``pc``."""
    import capstone
    arch = proc.arch
    md = capstone.Cs(arch.cs_arch, arch.cs_mode)
    fixed = 4 if arch.name == "aarch64" else None
    window = 16 * (before + 1)
    start = pc - (fixed * before if fixed else window)
    if fixed is None and sym is not None:
        name = sym.lookup(pc)
        if name is not None:
            head, _, tail = name.rpartition("+0x")
            off = int(tail, 16) if head else 0
            if off <= 512:
                start = pc - off
    lo, data = _read_span(proc, start, pc + 16 * (after + 1), pc)
    if not data or not lo <= pc < lo + len(data):
        return [f"(no instruction bytes can be read at pc {pc:#x})"]

    def decode(begin: int):
        return list(md.disasm(data[begin - lo:], begin))

    insns = None
    if fixed:
        begin = lo + ((pc - lo) % fixed)
        insns = decode(begin)
    else:
        candidates = [start] if start >= lo else []
        candidates += [pc - k for k in range(min(window, pc - lo), 0, -1)]
        for begin in candidates + [pc]:
            if begin < lo:
                continue
            got = decode(begin)
            if any(i.address == pc for i in got):
                insns = got
                break
    if not insns:
        return [f"(cannot decode the instruction at pc {pc:#x})"]
    at = next((k for k, i in enumerate(insns) if i.address == pc), None)
    if at is None:
        return [f"(cannot decode the instruction at pc {pc:#x})"]
    rows = []
    for i in insns[max(0, at - before):at + after + 1]:
        where = sym.lookup(i.address) if sym is not None else None
        where = f" <{where}>" if where else ""
        rows.append(("=>" if i.address == pc else "  ", f"{i.address:#x}{where}:",
                     i.bytes.hex(), f"{i.mnemonic} {i.op_str}".rstrip()))
    w1 = max(len(r[1]) for r in rows)
    w2 = max(len(r[2]) for r in rows)
    return [f"{m} {a:<{w1}}  {b:<{w2}}  {t}" for m, a, b, t in rows]


def _alignment_address(proc, pc: int) -> tuple[int, str] | None:
    """(effective address, access) of the memory instruction at ``pc``
    that raised an alignment fault: AArch64 loads/stores (exclusive ones
    included), RISC-V LR/SC/AMO."""
    try:
        raw = _read_code(proc, pc, 4)
        if raw is None or len(raw) < 4:
            return None
        reg = proc.machine.reg
        if proc.arch.name == "rv64":
            word = int.from_bytes(raw, "little")
            if word & 0x7F != 0x2F:           # the AMO major opcode: LR, SC, AMO*
                return None
            from unicorn.riscv_const import UC_RISCV_REG_X0
            rs1 = (word >> 15) & 31
            return reg(UC_RISCV_REG_X0 + rs1), "read" if word >> 27 == 0b00010 else "write"
        if proc.arch.name == "aarch64":
            import capstone
            from capstone.arm64 import ARM64_OP_MEM
            from unicorn import arm64_const
            md = capstone.Cs(proc.arch.cs_arch, proc.arch.cs_mode)
            md.detail = True
            insn = next(md.disasm(raw, pc), None)
            if insn is None:
                return None

            def value(reg_id: int) -> int:
                name = md.reg_name(reg_id)
                name = {"fp": "x29", "lr": "x30", "xzr": "xzr", "wzr": "wzr"}.get(name, name)
                if name in ("xzr", "wzr"):
                    return 0
                uc_id = getattr(arm64_const, f"UC_ARM64_REG_{name.upper()}")
                return reg(uc_id)

            for op in insn.operands:
                if op.type == ARM64_OP_MEM:
                    addr = value(op.mem.base) + op.mem.disp
                    if op.mem.index:
                        addr += value(op.mem.index) << (op.shift.value or 0)
                    access = "write" if insn.mnemonic.startswith(("st", "swp", "cas")) else "read"
                    return addr & ((1 << 64) - 1), access
    except Exception:
        return None
    return None
