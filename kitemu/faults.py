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
from dataclasses import dataclass

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

    @property
    def exit_code(self) -> int:
        return 128 + SIGNALS[self.signal]

    def summary(self) -> str:
        return f"{self.signal} ({self.si_code}) at pc {self.pc:#x}"

    def render(self) -> str:
        what = {"unmapped": "access to unmapped memory",
                "protection": "access violating page permissions",
                "illegal-instruction": "illegal instruction",
                "exception": "CPU exception", "timeout": "time limit"}.get(self.kind, self.kind)
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
            text += f"; that address was {verb} {rec.describe()}"
        return text + "."


def signal_for(fault, arch_name: str, host_os: str) -> tuple[str, str]:
    if fault.kind == "unmapped":
        return "SIGSEGV", "SEGV_MAPERR"
    if fault.kind == "protection":
        if host_os == "macos":
            # xnu: EXC_BAD_ACCESS with KERN_PROTECTION_FAILURE -> SIGBUS
            return "SIGBUS", "BUS_ADRERR"
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
        if image is not None:
            for s in image.symbols:
                if s.kind in ("section", "file"):
                    continue
                entries.append((s.addr, s.size, s.name, s.local))
        for name, a in (host_addrs or {}).items():
            entries.append((a, 16, f"{name} (host)", False))
        # globals before locals at equal addresses, sized before unsized
        entries.sort(key=lambda e: (e[0], e[3], -e[1]))
        self.entries = entries
        self.addrs = [e[0] for e in entries]

    def lookup(self, addr: int) -> str | None:
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
    relocation = None
    if proc.image is not None:
        index = proc.image.reloc_index
        relocation = index.about(fault.address) or index.about(fault.pc)
    return FaultReport(signal, code, fault.kind, fault.access, fault.address, fault.pc,
                       sym.lookup(fault.pc) or "??",
                       sym.lookup(fault.address) if fault.address is not None else None,
                       proc.target.name, proc.host.os, getattr(proc, "stage", ""), relocation)
