"""Host adapters: how a stop is delivered to a debugger on each host.

The debugger core sees *what happened* (a breakpoint hit, a single step
done, a fault of some kind and access at some address, an exit); a host
adapter turns it into what the host's debugging interface would hand over:

* :class:`PosixAdapter` - a signal with its ``siginfo``: breakpoints and
  steps are ``SIGTRAP`` (``TRAP_BRKPT`` / ``TRAP_TRACE``), faults the signal
  and ``si_code`` of the host model (Linux or macOS, per arch: see
  :func:`kitemu.faults.signal_for`), with ``si_addr``; the context is the
  register file.
* :class:`WindowsAdapter` - a vectored exception: ``EXCEPTION_BREAKPOINT``
  (0x80000003), ``EXCEPTION_SINGLE_STEP`` (0x80000004),
  ``EXCEPTION_ACCESS_VIOLATION`` (0xC0000005) with ``ExceptionInformation[0]``
  0 read / 1 write / 8 execute (DEP) and ``[1]`` the address,
  ``EXCEPTION_ILLEGAL_INSTRUCTION`` (0xC000001D),
  ``EXCEPTION_DATATYPE_MISALIGNMENT`` (0x80000002); the context is a
  CONTEXT-like record (``Rip``/``Rsp``/... on x64, ``Pc``/``Sp``/``X0``.. on
  ARM64), read and written by name, as ``GetThreadContext`` /
  ``SetThreadContext`` would.

Both are selectable per debugger session and report the same stops; the
debugger's scenarios run under each (tests/test_dbg.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..faults import SIGNALS


@dataclass
class HostEvent:
    """What the host's debugging interface reports for one stop."""
    host: str                  # "posix" | "windows"
    code: str                  # SIGTRAP / EXCEPTION_BREAKPOINT / ...
    detail: str                # si_code / exception information
    address: int | None
    text: str                  # the line a debugger prints
    info: dict = field(default_factory=dict)


class PosixAdapter:
    name = "posix"

    def breakpoint(self, pc: int) -> HostEvent:
        return HostEvent("posix", "SIGTRAP", "TRAP_BRKPT", pc,
                         f"SIGTRAP (TRAP_BRKPT) at {pc:#x}", {"signo": SIGNALS["SIGTRAP"]})

    def step(self, pc: int) -> HostEvent:
        return HostEvent("posix", "SIGTRAP", "TRAP_TRACE", pc,
                         f"SIGTRAP (TRAP_TRACE) at {pc:#x}", {"signo": SIGNALS["SIGTRAP"]})

    def fault(self, report) -> HostEvent:
        addr = report.address if report.address is not None else report.pc
        return HostEvent("posix", report.signal, report.si_code, addr,
                         f"Program received signal {report.signal} ({report.si_code}), "
                         f"si_addr {addr:#x}", {"signo": SIGNALS.get(report.signal)})


#: Windows exception codes (winnt.h)
EXCEPTION_CODES = {
    "EXCEPTION_BREAKPOINT": 0x80000003,
    "EXCEPTION_SINGLE_STEP": 0x80000004,
    "EXCEPTION_DATATYPE_MISALIGNMENT": 0x80000002,
    "EXCEPTION_ACCESS_VIOLATION": 0xC0000005,
    "EXCEPTION_ILLEGAL_INSTRUCTION": 0xC000001D,
    "EXCEPTION_INT_DIVIDE_BY_ZERO": 0xC0000094,
}
_ACCESS_FLAG = {"read": 0, "write": 1, "execute": 8}


class WindowsAdapter:
    name = "windows"

    def _event(self, name: str, address: int | None, info: list[int] | None = None) -> HostEvent:
        code = EXCEPTION_CODES[name]
        extra = f", ExceptionInformation {[hex(i) for i in info]}" if info else ""
        at = f" at {address:#x}" if address is not None else ""
        return HostEvent("windows", name, f"{code:#010x}", address,
                         f"Exception {code:#010x} {name}{at}{extra}",
                         {"ExceptionCode": code, "ExceptionInformation": info or []})

    def breakpoint(self, pc: int) -> HostEvent:
        return self._event("EXCEPTION_BREAKPOINT", pc)

    def step(self, pc: int) -> HostEvent:
        return self._event("EXCEPTION_SINGLE_STEP", pc)

    def fault(self, report) -> HostEvent:
        if report.kind in ("unmapped", "protection"):
            addr = report.address if report.address is not None else report.pc
            flag = _ACCESS_FLAG.get(report.access or "read", 0)
            return self._event("EXCEPTION_ACCESS_VIOLATION", report.pc, [flag, addr])
        if report.kind == "illegal-instruction":
            return self._event("EXCEPTION_ILLEGAL_INSTRUCTION", report.pc)
        if report.si_code == "BUS_ADRALN":
            return self._event("EXCEPTION_DATATYPE_MISALIGNMENT", report.pc)
        if report.signal == "SIGTRAP":
            return self._event("EXCEPTION_BREAKPOINT", report.pc)
        return self._event("EXCEPTION_ILLEGAL_INSTRUCTION", report.pc)


ADAPTERS = {"posix": PosixAdapter, "windows": WindowsAdapter}


def make_adapter(name: str):
    from ..errors import ConfigError
    try:
        return ADAPTERS[name]()
    except KeyError:
        raise ConfigError(f"unknown host adapter {name!r}; known: {', '.join(ADAPTERS)}") from None


def _windows_name(arch: str, name: str) -> str:
    if arch == "x64":
        return "EFlags" if name == "eflags" else name.capitalize()
    if arch == "aarch64":
        special = {"x29": "Fp", "x30": "Lr", "sp": "Sp", "pc": "Pc", "nzcv": "Cpsr"}
        return special.get(name, name.upper())
    return name.capitalize()


def read_context(adapter, regs) -> dict[str, int]:
    """The stopped thread's context as the host hands it over: POSIX
    ``mcontext`` register names, or a Windows ``CONTEXT`` record's fields
    (``GetThreadContext``)."""
    snap = regs.snapshot()
    if adapter.name == "windows":
        return {_windows_name(regs.arch, n): v for n, v in snap.items()}
    return snap


def write_context(adapter, regs, context: dict[str, int]) -> None:
    """Write registers back from a context record (``SetThreadContext``)."""
    names = {(_windows_name(regs.arch, n) if adapter.name == "windows" else n): n
             for n in regs.names()}
    for field_name, value in context.items():
        if field_name not in names:
            from ..errors import ConfigError
            raise ConfigError(f"{adapter.name} context has no field {field_name!r}")
        regs[names[field_name]] = value
