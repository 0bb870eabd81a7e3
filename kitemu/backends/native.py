"""The native backend: the same link, run on the real CPU of an x86-64 Linux host.

What this module guarantees:

* :class:`NativeMachine` offers :class:`~kitemu.execmem.ExecMem` the memory
  primitives of :class:`~kitemu.backends.unicorn.UnicornMachine` with real
  memory: ``mmap(MAP_FIXED_NOREPLACE)`` at exactly the addresses ExecMem asks
  for (refused with an :class:`~kitemu.errors.ExecMemError` when the kernel
  cannot give that address), ``mprotect``, ``munmap``, and dual mapping as one
  ``memfd`` mapped twice (``MAP_SHARED``: RX view + RW alias). The MMU enforces
  W^X on top of ExecMem's own checks. ``read``/``write_raw`` are checked against
  the machine's own map table: touching memory the machine does not know is a
  :class:`~kitemu.backends.unicorn.GuestMemoryFault`, never a crash of the
  harness. ``flush_code`` is a no-op: x86 keeps instruction fetch coherent with
  data writes (also through an alias mapping of the same physical pages), and
  no guest thread runs while the linker writes code.
* Host functions are ctypes callbacks running the *same* Python bodies as the
  emulator (``kitemu.hostlib.REGISTRY``). Every callback has one prototype,
  6 integer + 8 double + :data:`STACK_WORDS` integer parameters: under the SysV
  x86-64 ABI a (variadic or not) caller puts its arguments exactly where a
  callee with that prototype reads them (rdi..r9, xmm0..7, then the stack words
  in order), so :class:`NativeCallArgs` gives the bodies what
  :class:`~kitemu.hostlib.callconv.CallArgs` gives them in the emulator.
* Every guest call runs on a fresh *worker thread*; the calling thread waits.
  ``exit()``/``abort()`` or a bad pointer inside a host function cannot unwind
  through the guest's native frames, so the callback records the outcome, wakes
  the caller and *parks* its thread forever: ``JitProcess.call`` then returns
  exactly as in the emulator and ``JitProcess.run`` (reused unchanged) runs the
  atexit handlers and ``.fini_array`` - on top of the parked frames, as a real
  ``exit()`` does.
* A fault in guest code (SIGSEGV, SIGBUS, SIGILL, SIGTRAP, SIGFPE) runs a small
  machine-code signal handler (no Python in signal context) that writes a
  record (signal, si_code, address, pc, sp, page-fault error code) to a pipe
  and parks the faulting thread; the caller turns it into the same
  :class:`~kitemu.faults.FaultReport` the emulator gives, with the real signal
  and si_code. A fault anywhere else (the harness itself) kills the process.
* Breakpoints and resumable calls with the emulator's API
  (``machine.add_breakpoint``/``remove_breakpoint``/``breakpoints``,
  ``start_call``/``resume``/``abandon``, ``machine.reg``/``set_reg`` while
  stopped, hence ``JitProcess.run(on_breakpoint=)``): a breakpoint is an
  ``int3`` written through ``ExecMem.patch``; a resumable call's SIGTRAP
  makes the handler wait for the controller and return with the context it
  rewrote (RIP rewound to the breakpoint; resuming runs the original
  instruction under EFLAGS.TF and writes the int3 back on the single-step
  trap). Host functions (ctypes trampolines) take no breakpoint.
* :func:`run_native` does all of it in a forked child, so a crash never
  reaches the caller: the child streams stdout/stderr/J-stages through a pipe,
  and the parent builds the :class:`~kitemu.runtime.RunResult` (also when the
  child dies: signal N -> exit code 128+N).
"""

from __future__ import annotations

import bisect
import ctypes
import dataclasses
import errno
import faulthandler
import gc
import os
import pickle
import platform
import select
import signal
import struct
import sys
import threading
import time
import traceback
from ctypes import c_double, c_int, c_int64, c_long, c_size_t, c_uint64, c_ulong, c_void_p
from dataclasses import dataclass
from types import SimpleNamespace

from ..errors import ConfigError, ExecMemError, KitemuError, WXViolation
from ..execmem import RW, Perm
from ..faults import SIGNALS, FaultReport, describe_fault
from ..hostlib import GuestExit, HostProcess
from ..hostlib.callconv import bits_to_double, double_to_bits
from ..runtime import (DEFAULT_BASE, DEFAULT_CAPACITY, HEAP_BASE, HEAP_LIMIT, STACK_SIZE,
                       STACK_TOP, CallOutcome, JitProcess, RunResult, _StoppedCall)
from ..targets.base import VarargRule
from .unicorn import CpuFault, GuestMemoryFault

#: targets whose code the native backend can run on an x86-64 Linux host
NATIVE_TARGETS = ("elf-x64", "macho-x64")
#: stack words (beyond 6 integer + 8 double registers) every host callback receives
STACK_WORDS = 16
#: each worker thread's stack: the emulator's 8 MiB for the guest + 1 MiB for
#: the Python bodies of host functions running on top of it
WORKER_STACK = STACK_SIZE + (1 << 20)
#: the signal a timed-out call's worker receives (its handler records the pc
#: and parks the thread)
TIMEOUT_SIGNAL = 12                     # SIGUSR2 (Linux numbering: this backend runs on Linux only)
#: the parent kills a child that has not answered this many seconds after a
#: call's own time limit ran out
WATCHDOG_GRACE = 5.0

M64 = (1 << 64) - 1
PROT_NONE, PROT_READ, PROT_WRITE, PROT_EXEC = 0, 1, 2, 4
MAP_SHARED, MAP_PRIVATE, MAP_ANONYMOUS = 0x01, 0x02, 0x20
MAP_FIXED_NOREPLACE = 0x100000          # Linux >= 4.17
MFD_CLOEXEC = 1
SA_SIGINFO, SA_ONSTACK = 0x4, 0x08000000
SS_DISABLE = 2
# Linux x86-64 signal numbers (spelled out: the module must import on any host)
SIGILL, SIGTRAP, SIGBUS, SIGFPE, SIGKILL, SIGSEGV = 4, 5, 7, 8, 9, 11
_FAULT_SIGNALS = (SIGSEGV, SIGBUS, SIGILL, SIGTRAP, SIGFPE)


def native_host_problem() -> str | None:
    """Why this host cannot run x86-64 code natively, or None."""
    machine = platform.machine().lower()
    if machine not in ("x86_64", "amd64"):
        return f"the native backend needs an x86-64 host; this one is {platform.machine() or '?'}"
    if not sys.platform.startswith("linux"):
        return f"the native backend needs Linux (mmap/memfd/signals); this host is {sys.platform}"
    return None


def check_native(target: str) -> None:
    """ConfigError unless ``target``'s code can run natively here."""
    if target not in NATIVE_TARGETS:
        raise ConfigError(f"the native backend runs x86-64 code only: target {target!r} cannot run "
                          f"natively (native targets: {', '.join(NATIVE_TARGETS)}); use the "
                          "emulator")
    problem = native_host_problem()
    if problem:
        raise ConfigError(problem + f"; target {target} can only be emulated here")


# -- libc ---------------------------------------------------------------------------
_LIBC = None


def _libc():
    global _LIBC
    if _LIBC is None:
        lib = ctypes.CDLL(None, use_errno=True)
        lib.mmap.restype = c_void_p
        lib.mmap.argtypes = [c_void_p, c_size_t, c_int, c_int, c_int, c_long]
        lib.mprotect.restype = c_int
        lib.mprotect.argtypes = [c_void_p, c_size_t, c_int]
        lib.munmap.restype = c_int
        lib.munmap.argtypes = [c_void_p, c_size_t]
        lib.ftruncate.restype = c_int
        lib.ftruncate.argtypes = [c_int, c_long]
        lib.syscall.restype = c_long
        lib.strnlen.restype = c_size_t
        lib.strnlen.argtypes = [c_void_p, c_size_t]
        lib.sigaction.restype = c_int
        lib.sigaction.argtypes = [c_int, c_void_p, c_void_p]
        lib.sigaltstack.restype = c_int
        lib.sigaltstack.argtypes = [c_void_p, c_void_p]
        lib.pthread_self.restype = c_ulong
        lib.pthread_getattr_np.argtypes = [c_ulong, c_void_p]
        lib.pthread_attr_getstack.argtypes = [c_void_p, c_void_p, c_void_p]
        lib.pthread_attr_destroy.argtypes = [c_void_p]
        _LIBC = lib
    return _LIBC


def _prot(perm: Perm) -> int:
    p = PROT_NONE
    if perm & Perm.R:
        p |= PROT_READ
    if perm & Perm.W:
        p |= PROT_WRITE
    if perm & Perm.X:
        p |= PROT_EXEC
    return p


def _oserror(what: str) -> str:
    e = ctypes.get_errno()
    return f"{what}: {os.strerror(e)} ({errno.errorcode.get(e, e)})"


def proc_maps(pid: int | str = "self") -> list[tuple[int, int, str, str]]:
    """``/proc/PID/maps`` as (start, end, perms like ``r-xp``, name)."""
    out = []
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            parts = line.split(None, 5)
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            out.append((lo, hi, parts[1], parts[5].strip() if len(parts) > 5 else ""))
    return out


def _maps_owner(addr: int, size: int) -> str:
    for lo, hi, perms, name in proc_maps():
        if lo < addr + size and addr < hi:
            return f"{lo:#x}-{hi:#x} {perms} {name or '[anonymous]'}"
    return "?"


class NativeMemoryFault(GuestMemoryFault):
    """A host-side access outside the machine's own map table (``kind``
    "unmapped") or against a mapping's permission (``kind`` "protection")."""

    def __init__(self, addr: int, size: int, access: str, detail: str, kind: str):
        super().__init__(addr, size, access, detail)
        self.kind = kind


@dataclass
class _Region:
    start: int
    end: int
    perm: Perm
    kind: str          # "anon" | "shared" (one view of a memfd) | "thread-stack"


class NativeMachine:
    """Real memory of this process, with a map table of what kitemu mapped."""

    def __init__(self):
        self.libc = _libc()
        self.granule = os.sysconf("SC_PAGE_SIZE")
        self._regions: list[_Region] = []
        self._starts: list[int] = []
        #: set by NativeProcess (the ``proc`` object the host bodies see)
        self.hostproc = None
        #: the process's exec memory (set by NativeProcess): breakpoints are
        #: written through its W^X-respecting ``patch``
        self.execmem = None
        #: breakpoint address -> the instruction byte its int3 covers (None:
        #: the memory was unmapped under it; the breakpoint is dormant)
        self._bps: dict[int, int | None] = {}
        #: breakpoints whose original byte is in memory for a moment (the
        #: single step of a resume)
        self._disarmed: set[int] = set()
        #: views of one memfd (map_aliased): (view addresses, size)
        self._alias_groups: list[tuple[tuple[int, ...], int]] = []
        #: the ucontext_t of the stopped call (NativeProcess.start_call), whose
        #: registers reg()/set_reg() read and write
        self.context: Context | None = None

    # -- the map table -----------------------------------------------------
    def _index(self, addr: int) -> int:
        i = bisect.bisect_right(self._starts, addr) - 1
        if i >= 0 and addr < self._regions[i].end:
            return i
        return -1

    def _add(self, region: _Region) -> None:
        i = bisect.bisect_left(self._starts, region.start)
        self._regions.insert(i, region)
        self._starts.insert(i, region.start)

    def _overlapping(self, addr: int, size: int) -> list[_Region]:
        return [r for r in self._regions if r.start < addr + size and addr < r.end]

    def _split_at(self, addr: int) -> None:
        i = self._index(addr)
        if i >= 0 and self._regions[i].start < addr:
            r = self._regions[i]
            tail = _Region(addr, r.end, r.perm, r.kind)
            r.end = addr
            self._regions.insert(i + 1, tail)
            self._starts.insert(i + 1, addr)

    def _carve(self, addr: int, size: int) -> list[_Region]:
        """The table entries exactly covering ``[addr, addr+size)`` (split
        at both ends); error if part of the range is not in the table."""
        pos = addr
        while pos < addr + size:
            i = self._index(pos)
            if i < 0:
                raise ExecMemError(f"{addr:#x}..{addr + size:#x}: {pos:#x} is not mapped by "
                                   "this machine")
            pos = self._regions[i].end
        self._split_at(addr)
        self._split_at(addr + size)
        return [r for r in self._regions if addr <= r.start and r.end <= addr + size]

    def _forget(self, regions: list[_Region]) -> None:
        for r in regions:
            i = self._regions.index(r)
            del self._regions[i]
            del self._starts[i]

    def check(self, addr: int, size: int, need: Perm, access: str) -> None:
        """Raise :class:`NativeMemoryFault` unless every byte of the range is
        in the table with permission ``need``."""
        pos, end = addr, addr + size
        if addr < 0 or end > M64:
            raise NativeMemoryFault(addr, size, access, "address out of range", "unmapped")
        while pos < end:
            i = self._index(pos)
            if i < 0:
                raise NativeMemoryFault(addr, size, access, f"{pos:#x} is not mapped", "unmapped")
            r = self._regions[i]
            if not r.perm & need:
                raise NativeMemoryFault(addr, size, access,
                                        f"the page at {pos:#x} is {r.perm}", "protection")
            pos = r.end

    # -- memory primitives (MemoryBackend) ------------------------------------
    def _mmap_fixed(self, addr: int, size: int, prot: int, flags: int, fd: int = -1) -> None:
        got = self.libc.mmap(addr, size, prot, flags | MAP_FIXED_NOREPLACE, fd, 0)
        if got is None or got == M64:       # MAP_FAILED
            e = ctypes.get_errno()
            why = (f"the range is already in use in this process ({_maps_owner(addr, size)})"
                   if e == errno.EEXIST else os.strerror(e))
            raise ExecMemError(f"cannot map {size:#x} bytes at {addr:#x} natively: {why}; "
                               "choose another --base")
        if got != addr:
            # a kernel older than 4.17 ignores MAP_FIXED_NOREPLACE and takes
            # the address as a hint
            self.libc.munmap(got, size)
            raise ExecMemError(f"cannot map {size:#x} bytes at {addr:#x} natively: the kernel "
                               f"placed the mapping at {got:#x} instead (MAP_FIXED_NOREPLACE "
                               "needs Linux 4.17)")

    def map(self, addr: int, size: int, perm: Perm) -> None:
        if self._overlapping(addr, size):
            raise ExecMemError(f"cannot map {size:#x} bytes at {addr:#x}: already mapped")
        if perm & Perm.W and perm & Perm.X:
            raise WXViolation(f"refused to map {addr:#x}..{addr + size:#x} writable and "
                              "executable at once (W^X)")
        self._mmap_fixed(addr, size, _prot(perm), MAP_PRIVATE | MAP_ANONYMOUS)
        self._add(_Region(addr, addr + size, perm, "anon"))

    def map_aliased(self, views: list[tuple[int, Perm]], size: int) -> None:
        """One memfd mapped once per view (``MAP_SHARED``): the dual mapping."""
        for addr, perm in views:
            if self._overlapping(addr, size):
                raise ExecMemError(f"cannot map aliased view at {addr:#x}: already mapped")
            if perm & Perm.W and perm & Perm.X:
                raise WXViolation(f"refused to map the view at {addr:#x} writable and "
                                  "executable at once (W^X)")
        fd = os.memfd_create("kitemu-jit", MFD_CLOEXEC)
        done: list[int] = []
        try:
            os.ftruncate(fd, size)
            for addr, perm in views:
                self._mmap_fixed(addr, size, _prot(perm), MAP_SHARED, fd)
                done.append(addr)
        except BaseException:
            for addr in done:
                self.libc.munmap(addr, size)
            raise
        finally:
            os.close(fd)           # the mappings keep the memory
        for addr, perm in views:
            self._add(_Region(addr, addr + size, perm, "shared"))
        self._alias_groups.append((tuple(a for a, _ in views), size))

    def protect(self, addr: int, size: int, perm: Perm) -> None:
        if perm & Perm.W and perm & Perm.X:
            raise WXViolation(f"refused to make {addr:#x}..{addr + size:#x} writable and "
                              "executable at once (W^X)")
        regions = self._carve(addr, size)
        if self.libc.mprotect(addr, size, _prot(perm)) != 0:
            raise ExecMemError(_oserror(f"mprotect({addr:#x}, {size:#x}, {perm})"))
        for r in regions:
            r.perm = perm

    def unmap(self, addr: int, size: int) -> None:
        regions = self._carve(addr, size)
        if self.libc.munmap(addr, size) != 0:
            raise ExecMemError(_oserror(f"munmap({addr:#x}, {size:#x})"))
        self._forget(regions)
        end = addr + size
        self._alias_groups = [(views, n) for views, n in self._alias_groups
                              if not any(v < end and addr < v + n for v in views)]
        for bp in self._bps:
            if addr <= bp < end:
                self._bps[bp] = None          # dormant: its memory is gone
                self._disarmed.discard(bp)

    def write_raw(self, addr: int, data: bytes) -> None:
        n = len(data)
        if n:
            self.check(addr, n, Perm.W, "write")
            if self._bps:
                data = self._under_breakpoints(addr, data)
            ctypes.memmove(addr, bytes(data), n)

    def read(self, addr: int, size: int) -> bytes:
        if size <= 0:
            return b""
        self.check(addr, size, Perm.R, "read")
        data = ctypes.string_at(addr, size)
        if self._bps:
            shown = None
            for at, bp in self._bp_views():
                saved = self._bps[bp]
                if addr <= at < addr + size and saved is not None and bp not in self._disarmed:
                    shown = shown or bytearray(data)
                    shown[at - addr] = saved
            if shown is not None:
                data = bytes(shown)
        return data

    def flush_code(self, addr: int, size: int) -> None:
        """Nothing to do: x86 instruction fetch is coherent with stores
        (through any virtual alias of the same page as well); the first
        instruction after a write runs on a freshly started worker thread,
        or on a stopped call's thread after its return from the signal
        handler (an ``iret``: serializing)."""

    def regions(self) -> list[tuple[int, int, Perm]]:
        """(begin, end_inclusive, perm) of what this machine mapped, as
        UnicornMachine.regions() reports them."""
        return [(r.start, r.end - 1, r.perm) for r in self._regions if r.kind != "thread-stack"]

    def read_cstring(self, addr: int, limit: int | None = None) -> bytes:
        out = bytearray()
        pos = addr
        while limit is None or len(out) < limit:
            i = self._index(pos)
            if i < 0 or not self._regions[i].perm & Perm.R:
                self.check(pos, 1, Perm.R, "read")      # raises, naming why
            n = self._regions[i].end - pos
            if limit is not None:
                n = min(n, limit - len(out))
            k = self.libc.strnlen(pos, n)
            out += ctypes.string_at(pos, k)
            if k < n:
                break
            pos += n
        return bytes(out)

    # -- breakpoints ---------------------------------------------------------------
    #
    # A breakpoint is an int3 over the first byte of its instruction. The
    # byte it covers is kept in self._bps, and every write into memory goes
    # through write_raw, which keeps the two consistent: a write that covers
    # a breakpoint's byte - at its address, or at the same offset of an
    # alias view of its memfd (dual-map writes go through the RW alias) -
    # updates the saved byte and leaves int3 in memory. So a reload or
    # ExecMem.patch writing over or next to a breakpoint neither loses nor
    # duplicates it, and removing the breakpoint restores what was written
    # last. read() shows the saved bytes (as the emulator, which writes no
    # trap, would); the guest itself sees the int3. A breakpoint whose
    # memory is unmapped stays in the set, dormant (no byte, never re-armed
    # by later writes there), until removed.

    @property
    def breakpoints(self) -> set[int]:
        """The breakpoint addresses (a copy)."""
        return set(self._bps)

    def add_breakpoint(self, addr: int) -> None:
        """Stop a resumable call (NativeProcess.start_call) before the
        instruction at ``addr`` executes: an int3 written over its first
        byte through the exec memory's patch (mprotect flip or the RW
        alias). ``addr`` must be committed code of the image (host functions
        are ctypes trampolines: they take no breakpoint natively). Adding one
        twice changes nothing."""
        if addr in self._bps:
            return
        mem = self.execmem
        chunk = mem.chunk_at(addr) if mem is not None else None
        if chunk is None or chunk.kind != "code":
            raise KitemuError(f"cannot set a breakpoint at {addr:#x}: natively a breakpoint is an "
                              "int3 written into the image's code, and this address is not "
                              "committed code of the image (host functions, data and foreign "
                              "memory take none)")
        start = self._instruction_around(addr)
        if start is not None:
            raise KitemuError(f"cannot set a breakpoint at {addr:#x}: it is inside the instruction "
                              f"at {start:#x} (natively the int3 would overwrite one of its "
                              "bytes); a breakpoint must be at the first byte of an instruction")
        self._bps[addr] = ctypes.string_at(addr, 1)[0]
        try:
            self._rewrite(addr)               # write_raw turns it into int3
        except BaseException:
            del self._bps[addr]
            raise

    def _instruction_around(self, addr: int) -> int | None:
        """The start of the instruction ``addr`` lies strictly inside, found
        by decoding from the nearest code symbol of the image at or before
        it (one whose size, if it has one, covers ``addr``; in the same code
        chunk); None if ``addr`` starts an instruction or this cannot be
        told (no such symbol, bytes capstone cannot decode)."""
        image = getattr(getattr(self.hostproc, "controller", None), "image", None)
        chunk = self.execmem.chunk_at(addr)
        best = None
        for sym in getattr(image, "symbols", None) or ():
            if sym.kind in ("func", "ifunc", "stub", "notype") and \
                    chunk.addr <= sym.addr <= addr and (sym.size == 0 or addr < sym.addr + sym.size) \
                    and (best is None or sym.addr > best.addr):
                best = sym
        if best is None or best.addr == addr:
            return None
        import capstone
        md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
        try:
            code = self.read(best.addr, min(addr + 15, chunk.end) - best.addr)
        except GuestMemoryFault:
            return None
        for pos, size, _, _ in md.disasm_lite(code, best.addr):
            if pos >= addr:
                return None
            if addr < pos + size:
                return pos
        return None

    def remove_breakpoint(self, addr: int) -> None:
        """Delete the breakpoint at ``addr`` (KeyError if there is none) and
        put the instruction's byte back."""
        saved = self._bps.pop(addr)
        disarmed = addr in self._disarmed
        self._disarmed.discard(addr)
        if saved is not None and not disarmed:
            self.execmem.patch([(addr, bytes([saved]))])

    def armed(self, addr: int) -> bool:
        """An int3 of a breakpoint is in memory at ``addr``."""
        return self._bps.get(addr) is not None and addr not in self._disarmed

    def disarm(self, addr: int) -> None:
        """Put the original byte back for a moment (a resume's single step)."""
        if self.armed(addr):
            self._disarmed.add(addr)
            self._rewrite(addr)

    def rearm(self, addr: int) -> None:
        """Undo :meth:`disarm` (nothing if the breakpoint went meanwhile)."""
        if addr in self._disarmed:
            self._disarmed.discard(addr)
            if self._bps.get(addr) is not None:
                self._rewrite(addr)

    def _rewrite(self, addr: int) -> None:
        """Write the saved byte of breakpoint ``addr`` through the exec
        memory: write_raw leaves int3 there unless it is disarmed."""
        self.execmem.patch([(addr, bytes([self._bps[addr]]))])

    def _bp_views(self):
        """(address, breakpoint): every address whose byte is a
        breakpoint's byte (the breakpoint's own, and its alias views)."""
        for bp in self._bps:
            yield bp, bp
            for views, size in self._alias_groups:
                for v in views:
                    if v <= bp < v + size:
                        for w in views:
                            if w != v:
                                yield w + (bp - v), bp
                        break

    def _under_breakpoints(self, addr: int, data: bytes) -> bytes:
        n = len(data)
        out = None
        for at, bp in self._bp_views():
            if addr <= at < addr + n and self._bps[bp] is not None:
                out = out or bytearray(data)
                self._bps[bp] = out[at - addr]
                if bp not in self._disarmed:
                    out[at - addr] = INT3
        return data if out is None else bytes(out)

    # -- registers (of a stopped call) -----------------------------------------------
    def _stopped_context(self) -> Context:
        if self.context is None:
            raise KitemuError("natively, registers can be read and written only while a call "
                              "is stopped at a breakpoint (NativeProcess.start_call)")
        return self.context

    def reg(self, reg_id: int) -> int:
        return self._stopped_context().get(reg_id)

    def set_reg(self, reg_id: int, value: int) -> None:
        self._stopped_context().set(reg_id, value)

    # -- threads ---------------------------------------------------------------
    def add_thread_stack(self) -> _Region:
        """Enter the calling thread's stack in the table (RW): host functions
        read and write the guest's stack buffers through it."""
        lib = self.libc
        attr = ctypes.create_string_buffer(128)       # pthread_attr_t is 56 bytes
        if lib.pthread_getattr_np(lib.pthread_self(), attr) != 0:
            raise ExecMemError("pthread_getattr_np failed")
        lo, size = c_void_p(), c_size_t()
        lib.pthread_attr_getstack(attr, ctypes.byref(lo), ctypes.byref(size))
        lib.pthread_attr_destroy(attr)
        region = _Region(lo.value, lo.value + size.value, RW, "thread-stack")
        self._add(region)
        return region

    def remove_region(self, region: _Region) -> None:
        if region in self._regions:
            self._forget([region])


# -- the fault trap ------------------------------------------------------------------
# The SA_SIGINFO handler: x86-64 assembly, assembled with keystone when the
# trap is installed (the control page's address is an immediate). Raw
# syscalls only (async-signal-safe), no stack beyond its own 120-byte frame
# (on the thread's alternate signal stack). CTL points at 8 words: [0] the
# thread id allowed to park (the current guest worker; 0 while it runs Python),
# [8] fd of the in-child record pipe, [16] the timeout signal, [24] fd of the
# pipe to the parent (-1: none), [32] the thread id whose SIGTRAPs are
# resumable stops (a start_call()/resume() worker; 0: none), [40] and [48]
# start and size of the guest code (the exec-memory region of the process
# whose call runs).
#
#   record (96 bytes, _RECORD) on the stack: "KITM", sig, si_code, si_addr,
#     rip, rsp, err, trapno, CTL[0], gettid(), ucontext_t *, gate address (0)
#   if sig == SIGTRAP and tid == CTL[0] == CTL[4] and si_code in (SI_KERNEL:
#   int3, TRAP_TRACE: single step):                  ; a resumable stop
#       gate = 0; record.gate = &gate; write(CTL[8], record)
#       while gate == 0: futex(&gate, FUTEX_WAIT_PRIVATE, 0)
#       return            ; with the context the controller may have rewritten
#   write(CTL[8], record); write(CTL[24], record)    ; a fault
#   if tid == record's CTL[0] and (sig != CTL[16] or rip in the guest code or in
#   this page): loop { pause() }                     ; park the guest thread
#   if sig == CTL[16]: return                         ; timeout probe of Python code
#   rt_sigaction(sig, SIG_DFL); tgkill(getpid(), tid, sig); return   ; die by it
#
# The controller (NativeProcess) answers a resumable stop by reading and
# writing registers in the ucontext (NativeMachine.reg/set_reg) and then
# setting the gate to 1 and waking it (FaultTrap.wake). A gate nobody sets
# parks its thread for good, blocked in the kernel (abandon() instead points
# the context at _ABANDON_ASM, which unwinds the thread).
#
# The time-limit signal parks only a thread interrupted in guest code or in
# this page (entry trampoline, handler): one interrupted elsewhere may be
# in Python or ctypes, holding the GIL, and parking it would stop every
# other thread of the process; the handler returns instead and the
# controller (NativeProcess._stop_worker) has the thread park itself at the
# next host-function boundary, or signals it again.
_HANDLER_ASM = """
    push rbx
    push r12
    push r13
    push r14
    sub rsp, 120
    mov rbx, rdi                         # signal number
    movabs r12, {ctl:#x}
    mov r13, rdx                         # ucontext_t *
    mov eax, 0x4d54494b                  # "KITM"
    mov qword ptr [rsp], rax
    mov qword ptr [rsp + 8], rbx
    movsxd rax, dword ptr [rsi + 8]      # si_code
    mov qword ptr [rsp + 16], rax
    mov rax, qword ptr [rsi + 16]        # si_addr
    mov qword ptr [rsp + 24], rax
    mov rax, qword ptr [r13 + 168]       # gregs[REG_RIP]
    mov qword ptr [rsp + 32], rax
    mov rax, qword ptr [r13 + 160]       # gregs[REG_RSP]
    mov qword ptr [rsp + 40], rax
    mov rax, qword ptr [r13 + 192]       # gregs[REG_ERR]
    mov qword ptr [rsp + 48], rax
    mov rax, qword ptr [r13 + 200]       # gregs[REG_TRAPNO]
    mov qword ptr [rsp + 56], rax
    mov rax, qword ptr [r12]             # CTL[0]
    mov qword ptr [rsp + 64], rax
    mov eax, 186                         # gettid
    syscall
    mov r14, rax
    mov qword ptr [rsp + 72], rax
    mov qword ptr [rsp + 80], r13
    xor eax, eax
    mov qword ptr [rsp + 88], rax        # gate address: none
    mov qword ptr [rsp + 96], rax        # the gate
    cmp rbx, 5                           # SIGTRAP
    jne fault
    cmp r14, qword ptr [r12]
    jne fault
    cmp r14, qword ptr [r12 + 32]
    jne fault
    mov rax, qword ptr [rsp + 16]
    cmp rax, 0x80                        # SI_KERNEL: int3
    je stop
    cmp rax, 2                           # TRAP_TRACE: single step
    jne fault
stop:
    lea rax, [rsp + 96]
    mov qword ptr [rsp + 88], rax
    mov edi, dword ptr [r12 + 8]
    mov rsi, rsp
    mov edx, 96
    mov eax, 1                           # write
    syscall
wait:
    mov eax, dword ptr [rsp + 96]
    test eax, eax
    jnz done
    lea rdi, [rsp + 96]
    mov esi, 128                         # FUTEX_WAIT_PRIVATE
    xor edx, edx
    xor r10d, r10d
    mov eax, 202                         # futex
    syscall
    jmp wait
fault:
    mov edi, dword ptr [r12 + 8]
    mov rsi, rsp
    mov edx, 96
    mov eax, 1                           # write
    syscall
    mov edi, dword ptr [r12 + 24]
    mov rsi, rsp
    mov edx, 96
    mov eax, 1                           # write
    syscall
    cmp r14, qword ptr [rsp + 64]        # CTL[0] as recorded: the record tells
    jne not_guest                        # what the handler decided
    cmp rbx, qword ptr [r12 + 16]        # the time-limit signal: only where
    jne park                             # no GIL can be held
    mov rax, qword ptr [rsp + 32]
    sub rax, qword ptr [r12 + 40]
    cmp rax, qword ptr [r12 + 48]
    jb park                              # guest code
    mov rax, qword ptr [rsp + 32]
    movabs rcx, {code:#x}
    sub rax, rcx
    cmp rax, {page:#x}
    jb park                              # entry trampoline, handler
    jmp done
park:
    mov eax, 34                          # pause
    syscall
    jmp park
not_guest:
    cmp rbx, qword ptr [r12 + 16]
    je done
    xor eax, eax                         # struct sigaction {{SIG_DFL}}
    mov qword ptr [rsp], rax
    mov qword ptr [rsp + 8], rax
    mov qword ptr [rsp + 16], rax
    mov qword ptr [rsp + 24], rax
    mov edi, ebx
    mov rsi, rsp
    xor edx, edx
    mov r10d, 8
    mov eax, 13                          # rt_sigaction
    syscall
    mov eax, 39                          # getpid
    syscall
    mov edi, eax
    mov esi, r14d
    mov edx, ebx
    mov eax, 234                         # tgkill
    syscall
done:
    add rsp, 120
    pop r14
    pop r13
    pop r12
    pop rbx
    ret
"""

# The entry of a resumable call: ``void entry(struct block *)``, called by
# ctypes on the worker thread. The block (_Block) holds the callee, its
# arguments and room for the results; the entry keeps the callee-saved
# registers, MXCSR and the x87 control word, stores its stack pointer in the
# block (the top of the call's guest frames, and where abandon() unwinds
# to), pushes the stack words, loads rdi..r9, xmm0..7 and al, calls, and
# stores rax and xmm0.
_ENTRY_ASM = """
    push rbp
    push rbx
    push r12
    push r13
    push r14
    push r15
    sub rsp, 8
    stmxcsr dword ptr [rsp]
    fnstcw word ptr [rsp + 4]
    mov rbx, rdi
    mov qword ptr [rbx + 8], rsp
    mov rcx, qword ptr [rbx + 16]        # stack words
    test cl, 1
    jz even
    sub rsp, 8                           # 16-byte aligned at the call
even:
    lea rsi, [rbx + 160]
push_word:
    test rcx, rcx
    jz pushed
    dec rcx
    push qword ptr [rsi + rcx*8]
    jmp push_word
pushed:
    movsd xmm0, qword ptr [rbx + 80]
    movsd xmm1, qword ptr [rbx + 88]
    movsd xmm2, qword ptr [rbx + 96]
    movsd xmm3, qword ptr [rbx + 104]
    movsd xmm4, qword ptr [rbx + 112]
    movsd xmm5, qword ptr [rbx + 120]
    movsd xmm6, qword ptr [rbx + 128]
    movsd xmm7, qword ptr [rbx + 136]
    mov rdi, qword ptr [rbx + 32]
    mov rsi, qword ptr [rbx + 40]
    mov rdx, qword ptr [rbx + 48]
    mov rcx, qword ptr [rbx + 56]
    mov r8, qword ptr [rbx + 64]
    mov r9, qword ptr [rbx + 72]
    mov eax, dword ptr [rbx + 24]        # vector registers used (variadic callees)
    call qword ptr [rbx]
    mov qword ptr [rbx + 144], rax
    movsd qword ptr [rbx + 152], xmm0
    mov rsp, qword ptr [rbx + 8]
""" + (_EPILOGUE := """
    ldmxcsr dword ptr [rsp]
    fldcw word ptr [rsp + 4]
    add rsp, 8
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbx
    pop rbp
    ret
""")
# Where abandon() sends a stopped thread (rsp = the block's saved rsp): the
# guest frames are dropped, the x87 state reset, and the entry returns to
# ctypes as if the callee had returned.
_ABANDON_ASM = "    fninit\n" + _EPILOGUE
_ENTRY_AT, _ABANDON_AT = 0x400, 0x600

# magic, pad, sig, code, addr, rip, rsp, err, trapno, parkable, tid, ucontext, gate
_RECORD = struct.Struct("<4sI11Q")
_MAGIC = b"KITM"
SI_KERNEL, TRAP_TRACE = 0x80, 2
FUTEX_WAKE_PRIVATE = 129
SYS_FUTEX = 202
EFLAGS_TF, EFLAGS_DF = 0x100, 0x400
INT3 = 0xCC


def _assemble(text: str) -> bytes:
    from keystone import KS_ARCH_X86, KS_MODE_64, Ks
    code, _ = Ks(KS_ARCH_X86, KS_MODE_64).asm(text)
    return bytes(code)


class _Block(ctypes.Structure):
    """What the entry (_ENTRY_ASM) reads and writes; stack words follow."""

    _fields_ = [("fn", c_uint64), ("saved_rsp", c_uint64), ("nstack", c_uint64),
                ("nvec", c_uint64), ("gp", c_uint64 * 6), ("fp", c_uint64 * 8),
                ("ret_int", c_uint64), ("ret_fp", c_uint64)]


assert ctypes.sizeof(_Block) == 160


class _Sigaction(ctypes.Structure):
    _fields_ = [("sa_sigaction", c_void_p), ("sa_mask", c_ulong * 16), ("sa_flags", c_int),
                ("sa_restorer", c_void_p)]


class _StackT(ctypes.Structure):
    _fields_ = [("ss_sp", c_void_p), ("ss_flags", c_int), ("ss_size", c_size_t)]


@dataclass
class SignalRecord:
    """What the handler saw: the kernel's siginfo and the interrupted context.
    ``gate`` is nonzero when the thread waits for the controller (a
    resumable stop); ``context`` is the ``ucontext_t`` it will return with."""

    sig: int
    code: int
    addr: int
    pc: int
    sp: int
    err: int
    trapno: int
    parkable: int
    tid: int
    context: int = 0
    gate: int = 0

    @classmethod
    def parse(cls, raw: bytes) -> "SignalRecord | None":
        if len(raw) != _RECORD.size:
            return None
        (magic, _, sig, code, addr, rip, rsp, err, trapno, parkable, tid, context,
         gate) = _RECORD.unpack(raw)
        if magic != _MAGIC:
            return None
        code = code - (1 << 64) if code >> 63 else code
        return cls(sig, code, addr, rip, rsp, err, trapno, parkable, tid, context, gate)


# ucontext_t (x86-64 Linux): uc_mcontext.gregs at +40, 8 bytes each, in
# this order; uc_mcontext.fpregs (fxsave layout, xmm0 at +160) at +224
_GREGS_AT, _FPREGS_PTR_AT, _XMM_AT = 40, 224, 160
_GREG_NAMES = ("R8", "R9", "R10", "R11", "R12", "R13", "R14", "R15", "RDI", "RSI", "RBP",
               "RBX", "RDX", "RAX", "RCX", "RSP", "RIP", "EFLAGS")


def _greg_index() -> dict[int, int]:
    import unicorn.x86_const as x86
    return {getattr(x86, f"UC_X86_REG_{n}"): i for i, n in enumerate(_GREG_NAMES)}


def _xmm_index() -> dict[int, int]:
    import unicorn.x86_const as x86
    return {getattr(x86, f"UC_X86_REG_XMM{i}"): i for i in range(16)}


class Context:
    """The registers of a thread stopped in the handler: its ``ucontext_t``,
    read and written in place (the handler returns with them)."""

    GREGS = _greg_index()
    XMMS = _xmm_index()

    def __init__(self, address: int):
        self.address = address
        self.gregs = (c_uint64 * 23).from_address(address + _GREGS_AT)

    def _xmm(self, i: int):
        fp = c_uint64.from_address(self.address + _FPREGS_PTR_AT).value
        return (c_uint64 * 2).from_address(fp + _XMM_AT + 16 * i)

    def get(self, reg_id: int) -> int:
        i = self.GREGS.get(reg_id)
        if i is not None:
            return self.gregs[i]
        i = self.XMMS.get(reg_id)
        if i is not None:
            lo, hi = self._xmm(i)
            return lo | hi << 64
        raise KitemuError(f"register {reg_id} cannot be read natively (general-purpose "
                          "registers, rip, eflags and xmm0-15 can)")

    def set(self, reg_id: int, value: int) -> None:
        i = self.GREGS.get(reg_id)
        if i is not None:
            self.gregs[i] = value & M64
            return
        i = self.XMMS.get(reg_id)
        if i is not None:
            x = self._xmm(i)
            x[0], x[1] = value & M64, (value >> 64) & M64
            return
        raise KitemuError(f"register {reg_id} cannot be written natively (general-purpose "
                          "registers, rip, eflags and xmm0-15 can)")

    @property
    def rip(self) -> int:
        return self.gregs[16]

    @rip.setter
    def rip(self, value: int) -> None:
        self.gregs[16] = value

    @property
    def rsp(self) -> int:
        return self.gregs[15]

    @rsp.setter
    def rsp(self, value: int) -> None:
        self.gregs[15] = value

    @property
    def eflags(self) -> int:
        return self.gregs[17]

    @eflags.setter
    def eflags(self, value: int) -> None:
        self.gregs[17] = value


class FaultTrap:
    """The process's handler for guest faults and breakpoint stops (one per
    process), and the entry of resumable calls."""

    _instance: "FaultTrap | None" = None

    @classmethod
    def install(cls, parent_fd: int = -1) -> "FaultTrap":
        if cls._instance is None or cls._instance.pid != os.getpid():
            cls._instance = cls(parent_fd)
        return cls._instance

    def __init__(self, parent_fd: int):
        lib = _libc()
        self.pid = os.getpid()
        self.r, self.w = os.pipe()
        page = os.sysconf("SC_PAGE_SIZE")
        ctl = lib.mmap(None, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        code = lib.mmap(None, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        if ctl in (None, M64) or code in (None, M64):
            raise ExecMemError(_oserror("cannot map the fault handler"))
        self.ctl = (c_int64 * 8).from_address(ctl)
        self.ctl[0] = 0
        self.ctl[1] = self.w
        self.ctl[2] = TIMEOUT_SIGNAL
        self.ctl[3] = parent_fd
        self.ctl[4] = self.ctl[5] = self.ctl[6] = 0
        self.page = page
        handler = _assemble(_HANDLER_ASM.format(ctl=ctl, code=code, page=page))
        entry, abandon = _assemble(_ENTRY_ASM), _assemble(_ABANDON_ASM)
        assert len(handler) <= _ENTRY_AT and len(entry) <= _ABANDON_AT - _ENTRY_AT
        ctypes.memmove(code, handler, len(handler))
        ctypes.memmove(code + _ENTRY_AT, entry, len(entry))
        ctypes.memmove(code + _ABANDON_AT, abandon, len(abandon))
        if lib.mprotect(code, page, PROT_READ | PROT_EXEC) != 0:     # W^X here too
            raise ExecMemError(_oserror("mprotect of the fault handler"))
        self.code = code
        #: ``entry(block address)``: runs a resumable call (_ENTRY_ASM)
        self.entry = ctypes.CFUNCTYPE(None, c_void_p)(code + _ENTRY_AT)
        #: where abandon() points a stopped thread (_ABANDON_ASM)
        self.abandon_pc = code + _ABANDON_AT
        if faulthandler.is_enabled():
            faulthandler.disable()    # pytest's: it would print a Python traceback
        act = _Sigaction()
        act.sa_sigaction = code
        act.sa_flags = SA_SIGINFO | SA_ONSTACK
        for sig in (*_FAULT_SIGNALS, TIMEOUT_SIGNAL):
            if lib.sigaction(sig, ctypes.byref(act), None) != 0:
                raise ExecMemError(_oserror(f"sigaction({signal_name(sig)})"))
        self._altstacks: list = []

    @property
    def parkable(self) -> int:
        return self.ctl[0]

    @parkable.setter
    def parkable(self, tid: int) -> None:
        self.ctl[0] = tid

    def set_guest_code(self, start: int, size: int) -> None:
        """Where guest code runs (a time-limit signal parks a thread there)."""
        self.ctl[5], self.ctl[6] = start, size

    def parks_at(self, pc: int) -> bool:
        """A time-limit signal at ``pc`` parks the thread (see the handler)."""
        return 0 <= pc - self.ctl[5] < self.ctl[6] or 0 <= pc - self.code < self.page

    @property
    def resumable(self) -> int:
        """The thread whose breakpoint and single-step traps wait for the
        controller instead of parking (0: none)."""
        return self.ctl[4]

    @resumable.setter
    def resumable(self, tid: int) -> None:
        self.ctl[4] = tid

    def enter_thread(self):
        """Give the calling thread an alternate signal stack, so that a guest
        stack overflow is reported too. Returns it (for leave_thread)."""
        size = 64 << 10
        buf = ctypes.create_string_buffer(size)
        ss = _StackT(ctypes.addressof(buf), 0, size)
        _libc().sigaltstack(ctypes.byref(ss), None)
        self._altstacks.append(buf)       # parked threads keep theirs forever
        return buf

    def leave_thread(self, buf) -> None:
        """The calling thread's guest work is over (it is not in the handler):
        its alternate signal stack is switched off and freed."""
        ss = _StackT(None, SS_DISABLE, 0)
        if _libc().sigaltstack(ctypes.byref(ss), None) == 0:
            self._altstacks.remove(buf)

    def read_record(self) -> SignalRecord | None:
        return SignalRecord.parse(os.read(self.r, _RECORD.size))

    def wake(self, gate: int) -> None:
        """Let a thread waiting at a resumable stop return from the handler."""
        ctypes.c_int32.from_address(gate).value = 1
        _libc().syscall(c_long(SYS_FUTEX), c_void_p(gate), c_long(FUTEX_WAKE_PRIVATE), c_long(1),
                        c_void_p(0), c_void_p(0), c_long(0))


_SI_CODES = {
    SIGSEGV: {1: "SEGV_MAPERR", 2: "SEGV_ACCERR", 3: "SEGV_BNDERR", 4: "SEGV_PKUERR"},
    SIGBUS: {1: "BUS_ADRALN", 2: "BUS_ADRERR", 3: "BUS_OBJERR"},
    SIGILL: {1: "ILL_ILLOPC", 2: "ILL_ILLOPN", 3: "ILL_ILLADR", 4: "ILL_ILLTRP",
                    5: "ILL_PRVOPC", 6: "ILL_PRVREG", 7: "ILL_COPROC", 8: "ILL_BADSTK"},
    SIGFPE: {1: "FPE_INTDIV", 2: "FPE_INTOVF", 3: "FPE_FLTDIV", 4: "FPE_FLTOVF",
                    5: "FPE_FLTUND", 6: "FPE_FLTRES", 7: "FPE_FLTINV", 8: "FPE_FLTSUB"},
    SIGTRAP: {1: "TRAP_BRKPT", 2: "TRAP_TRACE", 3: "TRAP_BRANCH", 4: "TRAP_HWBKPT"},
}
_GENERIC_CODES = {0: "SI_USER", 0x80: "SI_KERNEL", -6: "SI_TKILL"}


def signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"SIG{sig}"


def si_code_name(sig: int, code: int) -> str:
    return _SI_CODES.get(sig, {}).get(code) or _GENERIC_CODES.get(code) or f"si_code {code}"


def cpu_fault_from_record(rec: SignalRecord) -> CpuFault:
    """The record in the emulator's terms (kind, access, address)."""
    access = None
    if rec.trapno == 14:                        # #PF: the error code tells the access
        access = "execute" if rec.err & 0x10 else "write" if rec.err & 0x2 else "read"
    detail = f"{signal_name(rec.sig)} {si_code_name(rec.sig, rec.code)} (native)"
    if rec.sig == SIGSEGV and rec.code in (1, 2, 3, 4):
        kind = "unmapped" if rec.code == 1 else "protection"
        return CpuFault(kind, access, rec.addr, rec.pc, detail)
    if rec.sig == SIGILL:
        return CpuFault("illegal-instruction", None, None, rec.pc, detail)
    if rec.sig == SIGBUS:
        return CpuFault("exception", access, rec.addr, rec.pc, detail, rec.trapno)
    # #GP (SI_KERNEL: non-canonical address...), #BP, #DE...
    return CpuFault("exception", None, None, rec.pc, detail, rec.trapno)


@dataclass
class NativeFaultReport(FaultReport):
    """A FaultReport with the signal the kernel really delivered (which may
    be one the emulator never reports, e.g. SIGFPE)."""

    @property
    def exit_code(self) -> int:
        if self.signal in SIGNALS:
            return 128 + SIGNALS[self.signal]
        try:
            return 128 + int(signal.Signals[self.signal])
        except KeyError:
            return 128 + 9

    @classmethod
    def of(cls, report: FaultReport, **changes) -> "NativeFaultReport":
        values = {f.name: getattr(report, f.name) for f in dataclasses.fields(FaultReport)}
        values.update(changes)
        return cls(**values)


# -- host functions ----------------------------------------------------------------------
_PROTOS: dict = {}


def _callback_proto(restype):
    if restype not in _PROTOS:
        _PROTOS[restype] = ctypes.CFUNCTYPE(restype, *([c_uint64] * 6), *([c_double] * 8),
                                            *([c_uint64] * STACK_WORDS))
    return _PROTOS[restype]


def _guest_proto(restype, argtypes: tuple):
    key = (restype, argtypes)
    if key not in _PROTOS:
        _PROTOS[key] = ctypes.CFUNCTYPE(restype, *argtypes)
    return _PROTOS[key]


class NativeCallArgs:
    """:class:`~kitemu.hostlib.callconv.CallArgs` over a callback's raw
    parameters: 6 integer registers, 8 xmm registers, then stack words."""

    __slots__ = ("m", "raw", "gp", "fp", "stack", "variadic", "name")

    def __init__(self, machine, raw: tuple, name: str = "?"):
        self.m = machine
        self.raw = raw
        self.gp = self.fp = self.stack = 0
        self.variadic = False
        self.name = name

    def start_varargs(self) -> "NativeCallArgs":
        # SysV x86-64: unnamed arguments are classified like named ones
        self.variadic = True
        return self

    def _stack_word(self) -> int:
        if self.stack >= STACK_WORDS:
            raise KitemuError(f"host function {self.name}: more than {STACK_WORDS} stack arguments "
                              "(raise kitemu.backends.native.STACK_WORDS)")
        v = self.raw[14 + self.stack]
        self.stack += 1
        return v

    def next_int(self) -> int:
        if self.gp < 6:
            v = self.raw[self.gp]
            self.gp += 1
            return v
        return self._stack_word()

    def next_double(self) -> float:
        if self.fp < 8:
            v = self.raw[6 + self.fp]
            self.fp += 1
            return v
        return bits_to_double(self._stack_word())

    def read_cstring(self, addr: int, limit: int | None = None) -> bytes:
        return self.m.read_cstring(addr, limit)


class NativeHostProcess(HostProcess):
    """The ``proc`` the host bodies see, natively: same interface as
    :class:`~kitemu.hostlib.HostProcess` (stdout, heap over real mmap'd
    pages, va_list readers over real memory, atexit list, exit), host
    functions at ctypes callback addresses instead of a hooked host area."""

    def __init__(self, machine: NativeMachine, target, heap_base: int, heap_limit: int,
                 names: list[str] | None = None, stdout_sink=None, stderr_sink=None):
        # the shared state, but no hooked host area: callbacks instead
        self._init_state(machine, target, heap_base, heap_limit, names, stdout_sink, stderr_sink)
        if self.cc.vararg_rule is not VarargRule.LIKE_NAMED:
            raise ConfigError(f"{target.name}: the native backend reads variadic arguments "
                              "the SysV x86-64 way only")
        #: the NativeProcess that owns the worker threads (set by it)
        self.controller = None
        #: every callback object stays referenced as long as this process lives
        self.callbacks: list = []
        self.addrs: dict[str, int] = {}
        self.by_addr = {}
        for f in self.functions:
            cb = _callback_proto(c_double if f.returns == "double" else c_uint64)(self._wrap(f))
            addr = ctypes.cast(cb, c_void_p).value
            self.callbacks.append(cb)
            self.addrs[target.symbol(f.name)] = addr
            self.by_addr[addr] = f
        self.base = min(self.by_addr)
        self.end = max(self.by_addr) + 16

    def _wrap(self, fn):
        body, returns, name = fn.body, fn.returns, fn.name

        def callback(*raw):
            ctl = self.controller
            trap = ctl.trap
            ctl.park_if_given_up(name)      # the caller stopped waiting: never run on
            parkable = trap.parkable
            trap.parkable = 0               # Python runs: a fault now is the harness's
            self.calls += 1
            try:
                result = body(self, NativeCallArgs(self.m, raw, name))
            except GuestExit as e:
                self.exit = e
                ctl.park("exit")
            except GuestMemoryFault as e:
                # the C library would have crashed inside this function
                self.fault = CpuFault(getattr(e, "kind", "unmapped"), e.access, e.addr,
                                      self.addrs[self.target.symbol(name)],
                                      f"host function {name}: {e}")
                ctl.park("host-fault")
            except BaseException as e:     # a bug: reported by the caller of call()
                ctl.park("error", e)
            ctl.park_if_given_up(name)      # before touching the trap's words again
            trap.parkable = parkable
            ctl.park_if_given_up(name)      # the time-limit signal came in between
            if returns == "double":
                return float(result)
            if returns == "void":
                return 0
            return (result or 0) & M64

        return callback


# -- the process --------------------------------------------------------------------------
class NativeProcess(JitProcess):
    """A :class:`~kitemu.runtime.JitProcess` whose guest code runs on this
    CPU. ``link``, ``run`` (constructors, entry, atexit, destructors, exit
    handling, ``on_breakpoint``) and fault description are JitProcess's
    own; this class only provides the machine, the host functions, ``call``,
    the resumable calls (``start_call``/``resume``/``abandon``) and the argv
    area.

    Works in the current process (it installs the process's SIGSEGV,
    SIGBUS, SIGILL, SIGTRAP, SIGFPE and SIGUSR2 handlers; a guest crash parks
    the faulting thread and is reported), but :func:`run_native` runs it in
    a forked child, which is what callers should use."""

    def __init__(self, target, strategy: str | None = None, page_size: int | None = None,
                 base: int = DEFAULT_BASE, capacity: int = DEFAULT_CAPACITY, stdout_sink=None,
                 stderr_sink=None, channel=None, parent_fault_fd: int = -1,
                 harden: bool = False):
        name = target if isinstance(target, str) else target.name
        check_native(name)
        machine = NativeMachine()
        # the host really is Linux: faults are reported as Linux reports them
        super().__init__(target, strategy=strategy, page_size=page_size, base=base,
                         capacity=capacity, machine=machine, host_os="linux")
        self.trap = FaultTrap.install(parent_fault_fd)
        self.channel = channel
        self.hostproc = NativeHostProcess(machine, self.target, HEAP_BASE, HEAP_LIMIT,
                                          stdout_sink=stdout_sink, stderr_sink=stderr_sink)
        self.hostproc.controller = self
        machine.hostproc = self.hostproc
        machine.execmem = self.mem
        #: ranges of ctypes trampoline pages flipped from RWX to R-X (``harden``:
        #: only in a process that creates no ctypes callback afterwards, e.g.
        #: run_native's child)
        self.hardened = harden_callbacks(self.hostproc.callbacks) if harden else []
        if threading.stack_size() < WORKER_STACK:
            threading.stack_size(WORKER_STACK)
        self._done_r, self._done_w = os.pipe()
        self._done_lock = threading.Lock()
        self._outcomes: dict[int, tuple] = {}
        self._call_id = 0
        #: worker thread (threading ident) -> the call it runs
        self._thread_calls: dict[int, int] = {}
        #: calls whose caller stopped waiting (time limit): their worker must
        #: park, never return into the guest; -> where it parked itself
        self._given_up: set[int] = set()
        self._parked_in: dict[int, int] = {}
        #: the resumable call stopped at a breakpoint (with _stopped_call)
        self._pending: _ResumableCall | None = None
        self._argv_area: tuple[int, int] | None = None
        self.calls_made = 0

    # -- argv -------------------------------------------------------------------
    def lay_out_argv(self, argv: list[bytes]) -> tuple[int, int]:
        """argv at the top of the emulator's stack area (same addresses as
        in the emulator), in a mapping of its own."""
        need = sum(len(s) + 1 for s in argv) + 8 * (len(argv) + 1) + 256
        size = max(0x10000, (need + 0xFFFF) & ~0xFFFF)
        if self._argv_area is None or self._argv_area[1] < size:
            if self._argv_area is not None:
                self.machine.unmap(STACK_TOP - self._argv_area[1], self._argv_area[1])
            self.machine.map(STACK_TOP - size, size, RW)
            self._argv_area = (STACK_TOP - size, size)
        return super().lay_out_argv(argv)

    # -- calling ------------------------------------------------------------------
    def call(self, addr: int, args=(), sp: int | None = None, returns: str = "int",
             timeout: float | None = None):
        """Call guest function ``addr`` natively (``sp`` is ignored: the
        guest runs on its worker thread's stack). Same contract as
        JitProcess.call: ``(return value, FaultReport | None)``."""
        timeout = self.timeout if timeout is None else timeout
        restype = c_double if returns == "double" else c_uint64
        types = tuple(c_double if isinstance(a, float) else c_uint64 for a in args)
        values = [a if isinstance(a, float) else a & M64 for a in args]
        fnptr = _guest_proto(restype, types)(addr)
        hp = self.hostproc
        hp.fault = None
        self._call_id += 1
        call_id = self._call_id
        self.calls_made += 1
        worker = threading.Thread(target=self._worker, args=(call_id, fnptr, values),
                                  name=f"kitemu-guest-{call_id}", daemon=True)
        self._send(b"C", struct.pack("<d", timeout or 0.0))
        worker.start()
        try:
            outcome = self._wait(call_id, worker, timeout)
        finally:
            self._send(b"D", b"")
        kind = outcome[0]
        if kind == "return":
            return outcome[1], None
        if kind == "exit":
            return 0, None
        if kind == "host-fault":
            return 0, NativeFaultReport.of(describe_fault(hp.fault, self))
        if kind == "signal":
            return 0, self._signal_report(outcome[1])
        if kind == "timeout":
            return 0, NativeFaultReport.of(describe_fault(outcome[1], self))
        raise outcome[1]            # "error": a host body raised

    def _signal_report(self, rec: SignalRecord) -> NativeFaultReport:
        """The report of a fault the handler recorded. An int3 of one of our
        breakpoints hit by a call that cannot stop is reported as the
        emulator reports it: a "breakpoint" fault at the breakpoint's
        address (SIGTRAP TRAP_BRKPT), not after the int3."""
        if rec.sig == SIGTRAP and rec.code == SI_KERNEL and self.machine.armed(rec.pc - 1):
            bp = rec.pc - 1
            return NativeFaultReport.of(describe_fault(
                CpuFault("breakpoint", None, None, bp, f"breakpoint at {bp:#x}", 3), self))
        report = describe_fault(cpu_fault_from_record(rec), self)
        return NativeFaultReport.of(report, signal=signal_name(rec.sig),
                                    si_code=si_code_name(rec.sig, rec.code))

    def _worker(self, call_id: int, fnptr, values) -> None:
        trap = self.trap
        stack = self.machine.add_thread_stack()
        altstack = trap.enter_thread()
        tid = threading.get_native_id()
        self._thread_calls[threading.get_ident()] = call_id
        try:
            trap.set_guest_code(self.mem.base, self.mem.capacity)
            trap.parkable = tid
            ret = fnptr(*values)
            self._release(tid)
        except BaseException as e:      # ctypes itself failed
            self._release(tid)
            self._thread_calls.pop(threading.get_ident(), None)
            trap.leave_thread(altstack)
            self._finish(call_id, ("error", e))
            return
        self._thread_calls.pop(threading.get_ident(), None)
        self.machine.remove_region(stack)
        trap.leave_thread(altstack)
        self._finish(call_id, ("return", ret))

    def _release(self, tid: int) -> None:
        """A worker is done with guest code: clear the trap's words that
        still name it (a later call may own them already)."""
        trap = self.trap
        if trap.parkable == tid:
            trap.parkable = 0
        if trap.resumable == tid:
            trap.resumable = 0

    def _finish(self, call_id: int, outcome: tuple) -> None:
        self._outcomes[call_id] = outcome
        with self._done_lock:
            if self._done_w >= 0:         # not freed meanwhile
                os.write(self._done_w, struct.pack("<Q", call_id))

    def park(self, kind: str, payload=None):
        """Called by a host callback that must not return into the guest:
        report ``kind`` to the waiting caller, then block this thread forever
        (its guest frames stay as they are, as under a real ``exit()``)."""
        self.park_if_given_up(None)
        self.trap.parkable = 0
        if self.trap.resumable == threading.get_native_id():
            self.trap.resumable = 0
        self._finish(self._thread_calls.get(threading.get_ident(), self._call_id), (kind, payload))
        forever = threading.Event()
        while True:
            forever.wait()

    def park_if_given_up(self, host_function: str | None) -> None:
        """Called by a worker in a host body: if its call's caller gave up
        on it (time limit), block this thread for good without touching
        the trap's words, which belong to later calls now."""
        call_id = self._thread_calls.get(threading.get_ident())
        if call_id is None or call_id not in self._given_up:
            return
        hp = self.hostproc
        self._parked_in[call_id] = (hp.addrs.get(self.target.symbol(host_function), 0)
                                    if host_function else 0)
        forever = threading.Event()
        while True:
            forever.wait()

    def _wait(self, call_id: int, worker: threading.Thread, timeout: float | None) -> tuple:
        deadline = time.monotonic() + timeout if timeout else None
        trap = self.trap
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([self._done_r, trap.r], [], [], left)
            if self._done_r in ready:
                (done_id,) = struct.unpack("<Q", os.read(self._done_r, 8))
                if done_id == call_id:
                    return self._outcomes.pop(call_id)
                continue                  # a late word from an earlier, timed-out call
            if trap.r in ready:
                rec = trap.read_record()
                if rec is not None and rec.sig != TIMEOUT_SIGNAL:
                    return ("signal", rec)
                continue
            # out of time: stop the worker where it is and learn its pc
            return ("timeout", self._stop_worker(call_id, worker, timeout))

    def _stop_worker(self, call_id: int, worker: threading.Thread, timeout: float) -> CpuFault:
        """Park the worker of a call whose time is up, and learn its pc. The
        time-limit signal parks a thread only in guest code (see the
        handler); elsewhere (a host body, ctypes) the thread parks itself
        at the next host-function boundary, or a later signal finds it back
        in the guest."""
        self._given_up.add(call_id)               # before the signal: see park_if_given_up
        trap, tid = self.trap, worker.native_id
        pc = first = None
        end = time.monotonic() + 2.0
        while pc is None and time.monotonic() < end:
            if call_id in self._parked_in:
                pc = self._parked_in[call_id]
                break
            if not worker.is_alive():
                break
            try:
                signal.pthread_kill(worker.ident, TIMEOUT_SIGNAL)
            except (ProcessLookupError, OSError):
                break
            round_end = min(end, time.monotonic() + 0.05)
            while pc is None:
                left = round_end - time.monotonic()
                if left <= 0 or not select.select([trap.r], [], [], left)[0]:
                    break
                rec = trap.read_record()
                if rec is not None and rec.sig == TIMEOUT_SIGNAL and rec.tid == tid:
                    first = rec.pc if first is None else first
                    if rec.parkable == tid and trap.parks_at(rec.pc):
                        pc = rec.pc
        if pc is None:
            pc = self._parked_in.get(call_id, first or 0)
        return CpuFault("timeout", None, None, pc, f"time limit of {timeout:g} s reached")

    # -- resumable calls ------------------------------------------------------------
    #
    # start_call() runs the callee on a worker thread through the entry
    # trampoline (FaultTrap.entry) with that thread marked resumable. An int3
    # of a breakpoint makes the handler record the stop (with the address of
    # its ucontext_t and of a futex gate on its own frame) and wait at the
    # gate: the guest thread is blocked in the kernel while the controller
    # (this thread) reads and writes registers through the ucontext
    # (machine.reg/set_reg: RIP was rewound to the breakpoint), memory and
    # code, appends, reloads, and makes other calls (each on a thread of
    # its own). resume() re-arms the classic way: the original byte back
    # (machine.disarm), EFLAGS.TF set, gate opened; the instruction runs and
    # the single-step trap stops the thread again at once; the controller
    # writes the int3 back (machine.rearm), clears TF and opens the gate
    # again, and waits for what comes next. abandon() points the stopped
    # context at the entry's epilogue with the stack pointer it saved:
    # the guest frames are dropped, the worker thread returns to ctypes and
    # ends. Limits: one call stopped at a time (as emulated); the stepped
    # instruction runs with TF set (a pushf there gets the guest's flags
    # back on the stack after the step); a plain call() made while
    # stopped cannot stop (a breakpoint is a SIGTRAP fault for it, as in
    # the emulator).

    def start_call(self, addr: int, args=(), sp: int | None = None, returns: str = "int",
                   timeout: float | None = None) -> CallOutcome:
        """JitProcess.start_call natively: call ``addr`` as :meth:`call`
        does (``sp`` is ignored), stopping at breakpoints
        (``machine.add_breakpoint``) before their instruction; see
        :class:`~kitemu.runtime.CallOutcome`. ``timeout`` bounds the guest
        time summed over the resumes."""
        if self._stopped_call is not None:
            raise KitemuError(f"a call is stopped at {self._stopped_call.pc:#x}: "
                              "resume() or abandon() it before starting another")
        self._ended_call = None
        timeout = self.timeout if timeout is None else timeout
        block = _block_for(addr, args)
        self._call_id += 1
        self.calls_made += 1
        call = _ResumableCall(self._call_id, block, returns)
        call.worker = threading.Thread(target=self._resumable_worker, args=(call,),
                                       name=f"kitemu-guest-{call.id}", daemon=True)
        self.machine.hostproc.fault = None
        started = time.monotonic()
        call.worker.start()
        return self._await(call, timeout or None, started)

    def resume(self) -> CallOutcome:
        """Continue the stopped call from its PC (``machine.reg``: it may
        have been changed). At the breakpoint it stopped at, that
        instruction runs first and the breakpoint stays armed; a PC moved
        onto another breakpoint stops there at once. After a debugger
        motion ended the call (JitProcess.stopped_ended), returns how it
        ended."""
        pending, call = self._stopped_call, self._pending
        if pending is None or call is None:
            ended, self._ended_call = self._ended_call, None
            if ended is not None:
                return ended                  # a debugger motion ended it (stopped_ended)
            raise KitemuError("no call is stopped: nothing to resume")
        self._stopped_call = self._pending = None
        if self._stage != pending.stage:
            self.stage = pending.stage
        m = self.machine
        ctx = m.context
        m.context = None
        pc = ctx.rip
        if pending.budget is not None and pending.budget <= 0:
            # no guest time left: the call ends here, its thread is unwound
            self._unwind(call, ctx)
            fault = CpuFault("timeout", None, None, pc, "time limit reached")
            return CallOutcome("faulted", pc=pc,
                               fault=NativeFaultReport.of(describe_fault(fault, self)))
        if pc == pending.pc and m.armed(pc):
            m.disarm(pc)
            call.guest_tf = ctx.eflags & EFLAGS_TF
            call.step_pushes_flags = _pushes_flags(m, pc)
            ctx.eflags |= EFLAGS_TF
            call.stepping = pc
        m.hostproc.fault = None
        started = time.monotonic()
        self._open_gate(call)
        return self._await(call, pending.budget, started)

    def abandon(self) -> bool:
        """Drop the stopped call: its guest frames are discarded (the worker
        thread is unwound to the entry trampoline, returns to ctypes and
        ends; its stack leaves the map table). Returns whether a call was
        stopped."""
        call = self._pending
        dropped = self._stopped_call is not None
        self._stopped_call = self._pending = None
        self._ended_call = None
        if call is None:
            return dropped
        m = self.machine
        ctx = m.context
        m.context = None
        self._unwind(call, ctx)
        return dropped

    def _unwind(self, call: "_ResumableCall", ctx: "Context") -> None:
        """Send the thread stopped at ``call``'s gate (context ``ctx``) to
        the entry's epilogue and wait until it has ended."""
        ctx.rsp = call.block.saved_rsp
        ctx.rip = self.trap.abandon_pc
        ctx.eflags &= ~(EFLAGS_TF | EFLAGS_DF)
        trap = self.trap
        trap.parkable = trap.resumable = 0           # only the entry's epilogue runs
        trap.wake(call.gate)
        # wait for the worker's last word, so that nothing runs behind the
        # caller's back afterwards (it removes its stack from the map table)
        end = time.monotonic() + 5.0
        while time.monotonic() < end:
            ready, _, _ = select.select([self._done_r], [], [], end - time.monotonic())
            if not ready:
                break
            (done_id,) = struct.unpack("<Q", os.read(self._done_r, 8))
            if done_id == call.id:
                self._outcomes.pop(done_id, None)
                break

    def stack_top_of_call(self) -> int | None:
        """The top of the stopped call's guest frames (what the entry
        trampoline's stack pointer was when it called the callee); None when
        no call is stopped."""
        return self._pending.block.saved_rsp if self._pending is not None else None

    def free(self) -> None:
        """Abandon a stopped call, free the exec memory, unmap the heap and
        argv pages and close the completion pipe: another NativeProcess of
        this OS process can then use the same addresses. (Threads parked
        by faults, exits and time limits stay blocked; a late word from one
        is dropped.)"""
        if self._pending is not None:
            self.abandon()
        super().free()
        m = self.machine
        for r in [r for r in m._regions if r.kind != "thread-stack"]:
            m.unmap(r.start, r.end - r.start)
        self._argv_area = None
        with self._done_lock:
            if self._done_w >= 0:
                os.close(self._done_r)
                os.close(self._done_w)
                self._done_r = self._done_w = -1

    def _open_gate(self, call: "_ResumableCall") -> None:
        trap = self.trap
        trap.parkable = trap.resumable = call.tid
        trap.wake(call.gate)

    def _resumable_worker(self, call: "_ResumableCall") -> None:
        trap = self.trap
        stack = self.machine.add_thread_stack()
        altstack = trap.enter_thread()
        call.tid = threading.get_native_id()
        self._thread_calls[threading.get_ident()] = call.id
        try:
            trap.set_guest_code(self.mem.base, self.mem.capacity)
            trap.parkable = trap.resumable = call.tid
            trap.entry(ctypes.addressof(call.block))
            outcome = ("return", None)
        except BaseException as e:      # ctypes itself failed
            outcome = ("error", e)
        self._release(call.tid)
        self._thread_calls.pop(threading.get_ident(), None)
        self.machine.remove_region(stack)
        trap.leave_thread(altstack)
        self._finish(call.id, outcome)

    def _await(self, call: "_ResumableCall", budget: float | None,
               started: float) -> CallOutcome:
        self._send(b"C", struct.pack("<d", budget or 0.0))
        try:
            outcome = self._wait_resumable(call, budget, started)
        finally:
            self._send(b"D", b"")
            if call.stepping is not None:      # the step ended some other way
                self.machine.rearm(call.stepping)
                call.stepping = None
        kind = outcome[0]
        hp = self.machine.hostproc
        if kind not in ("breakpoint", "return"):
            # its thread is parked (fault, exit, time limit): no more stops
            if self.trap.resumable == call.tid:
                self.trap.resumable = 0
        if kind == "breakpoint":
            left = None if budget is None else budget - (time.monotonic() - started)
            self._stopped_call = _StoppedCall(call.returns, left, outcome[1], self._stage)
            self._pending = call
            return CallOutcome("breakpoint", pc=outcome[1])
        if kind == "return":
            if call.returns == "double":
                return CallOutcome("returned", bits_to_double(call.block.ret_fp))
            return CallOutcome("returned", call.block.ret_int)
        if kind == "exit":
            return CallOutcome("exited", exit=hp.exit)
        if kind == "host-fault":
            report = NativeFaultReport.of(describe_fault(hp.fault, self))
            return CallOutcome("faulted", pc=report.pc, fault=report)
        if kind == "signal":
            report = self._signal_report(outcome[1])
            return CallOutcome("faulted", pc=report.pc, fault=report)
        if kind == "timeout":
            report = NativeFaultReport.of(describe_fault(outcome[1], self))
            return CallOutcome("faulted", pc=report.pc, fault=report)
        raise outcome[1]            # "error": a host body raised

    def _wait_resumable(self, call: "_ResumableCall", budget: float | None,
                        started: float) -> tuple:
        deadline = None if budget is None else started + budget
        trap, m = self.trap, self.machine
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([self._done_r, trap.r], [], [], left)
            if self._done_r in ready:
                (done_id,) = struct.unpack("<Q", os.read(self._done_r, 8))
                if done_id == call.id:
                    return self._outcomes.pop(done_id)
                continue                  # a late word from an earlier call
            if trap.r in ready:
                rec = trap.read_record()
                if rec is None or rec.sig == TIMEOUT_SIGNAL:
                    continue
                if rec.gate and rec.tid == call.tid:
                    ctx = Context(rec.context)
                    if rec.code == TRAP_TRACE and call.stepping is not None:
                        # the instruction under the breakpoint ran: re-arm
                        m.rearm(call.stepping)
                        call.stepping = None
                        if not call.guest_tf:
                            ctx.eflags &= ~EFLAGS_TF
                            if call.step_pushes_flags:
                                # a pushf saved the step's TF: the guest's
                                # flags had none (a later popf would trace)
                                _clear_pushed_tf(m, ctx.rsp)
                        trap.wake(rec.gate)
                        continue
                    if rec.code == SI_KERNEL and m.armed(rec.pc - 1):
                        ctx.rip = rec.pc - 1      # before the instruction, as emulated
                        call.gate = rec.gate
                        m.context = ctx
                        return ("breakpoint", rec.pc - 1)
                    # an int3 that is no breakpoint, or a trace trap nobody
                    # asked for: a fault; the thread stays at its gate
                return ("signal", rec)
            return ("timeout", self._stop_worker(call.id, call.worker, budget))

    def _send(self, tag: bytes, payload: bytes) -> None:
        if self.channel is not None:
            self.channel.send(tag, payload)


@dataclass
class _ResumableCall:
    """A call started by NativeProcess.start_call."""

    id: int
    block: _Block
    returns: str
    worker: threading.Thread | None = None
    #: the worker's kernel thread id (set by the worker before the callee runs)
    tid: int = 0
    #: the gate its handler waits at while it is stopped
    gate: int = 0
    #: the breakpoint whose byte is out of memory during a resume's single step
    stepping: int | None = None
    #: the guest's own EFLAGS.TF when the step began (kept after it)
    guest_tf: int = 0
    #: the stepped instruction is a pushf (it pushes the step's TF)
    step_pushes_flags: bool = False


#: legacy prefixes an x86 instruction may start with
_X86_PREFIXES = frozenset((0x26, 0x2E, 0x36, 0x3E, 0x64, 0x65, 0x66, 0x67, 0xF0, 0xF2, 0xF3))


def _pushes_flags(m: NativeMachine, pc: int) -> bool:
    """The instruction at ``pc`` is ``pushf`` (9C, after any prefixes; 66 9C
    pushes 16 bits, TF included)."""
    for i in range(15):
        try:
            b = m.read(pc + i, 1)[0]
        except GuestMemoryFault:
            return False
        if b in _X86_PREFIXES or 0x40 <= b <= 0x4F:
            continue
        return b == 0x9C
    return False


def _clear_pushed_tf(m: NativeMachine, sp: int) -> None:
    """Clear EFLAGS.TF (bit 8) in the flags a pushf stored at ``sp``."""
    try:
        (b,) = m.read(sp + 1, 1)
        m.write_raw(sp + 1, bytes([b & ~(EFLAGS_TF >> 8)]))
    except GuestMemoryFault:
        pass


def _block_for(addr: int, args) -> _Block:
    """The entry's block for calling ``addr`` with ``args`` the SysV way:
    integers in rdi..r9, doubles in xmm0..7, the rest on the stack in order."""
    gp, fp, stack = [], [], []
    for a in args:
        if isinstance(a, float):
            (fp if len(fp) < 8 else stack).append(double_to_bits(a))
        else:
            (gp if len(gp) < 6 else stack).append(a & M64)
    cls = type("_BlockN", (ctypes.Structure,),
               {"_fields_": [("head", _Block), ("stack", c_uint64 * max(1, len(stack)))]})
    whole = cls()
    block = whole.head                   # shares whole's memory and keeps it alive
    block.fn, block.nstack, block.nvec = addr, len(stack), len(fp)
    for i, v in enumerate(gp):
        block.gp[i] = v
    for i, v in enumerate(fp):
        block.fp[i] = v
    for i, v in enumerate(stack):
        whole.stack[i] = v
    return block


def harden_callbacks(callbacks) -> list[tuple[int, int]]:
    """Flip the pages holding ctypes callback trampolines from RWX (CPython's
    own closure allocator maps them so) to R-X: after this the process has
    no writable+executable page of ours. Nothing may allocate or free a
    ctypes callback afterwards (the allocator would write into the page), so
    call this only in a process that creates all its callbacks first.
    Returns the ranges flipped."""
    addrs = sorted(ctypes.cast(cb, c_void_p).value for cb in callbacks)
    flipped = []
    lib = _libc()
    for lo, hi, perms, _ in proc_maps():
        if perms.startswith("rwx") and any(lo <= a < hi for a in addrs):
            if lib.mprotect(lo, hi - lo, PROT_READ | PROT_EXEC) != 0:
                raise ExecMemError(_oserror(f"mprotect of the callback page {lo:#x}"))
            flipped.append((lo, hi))
    return flipped


# -- the forked child ---------------------------------------------------------------------
class _Channel:
    """Framed messages (tag byte, u32 length, payload) over a pipe."""

    HEADER = struct.Struct("<cI")

    def __init__(self, fd: int):
        self.fd = fd
        self.lock = threading.Lock()

    def send(self, tag: bytes, payload: bytes) -> None:
        data = memoryview(self.HEADER.pack(tag, len(payload)) + payload)
        with self.lock:
            while data:
                data = data[os.write(self.fd, data):]


def _read_messages(buf: bytearray):
    h = _Channel.HEADER
    while len(buf) >= h.size:
        tag, n = h.unpack_from(buf)
        if len(buf) < h.size + n:
            return
        payload = bytes(buf[h.size:h.size + n])
        del buf[:h.size + n]
        yield tag, payload


def _child_setup() -> None:
    """First thing in a forked child: never touch the parent's objects."""
    gc.freeze()               # garbage inherited from the parent is never collected here
    if faulthandler.is_enabled():
        faulthandler.disable()    # pytest's: it would print a Python traceback on a crash
    signal.signal(signal.SIGINT, signal.SIG_IGN)    # the parent handles ^C and kills us
    try:
        import resource
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))   # a crash leaves no core file
    except (ImportError, ValueError, OSError):
        pass
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    os.close(devnull)


def _die_like(result: RunResult) -> None:
    """End the child the way the program ended: by its signal, or with its
    exit status."""
    if result.signal:
        try:
            sig = signal.Signals[result.signal]
            if sig != SIGKILL:
                signal.signal(sig, signal.SIG_DFL)
            os.kill(os.getpid(), sig)
            time.sleep(1)
        except (KeyError, OSError, ValueError):
            pass
    os._exit(result.exit_code & 0xFF)


def _rwx_ranges() -> set[tuple[int, int]]:
    return {(lo, hi) for lo, hi, perms, _ in proc_maps() if perms.startswith("rwx")}


def _child_run(chan: _Channel, parent_fault_fd: int, objects, target, entry, args, strategy,
               base, capacity, page_size, timeout, program_name) -> None:
    inherited_rwx = _rwx_ranges()       # e.g. unicorn's translation buffers in the parent
    t0 = time.perf_counter()
    proc = NativeProcess(target, strategy=strategy, page_size=page_size, base=base,
                         capacity=capacity, stdout_sink=lambda d: chan.send(b"O", d),
                         stderr_sink=lambda d: chan.send(b"E", d), channel=chan,
                         parent_fault_fd=parent_fault_fd, harden=True)
    proc.on_stage = lambda name: chan.send(b"S", name.encode())
    proc.link(objects)
    t_link = time.perf_counter()
    image = proc.image
    maps = proc_maps()
    new_rwx = [f"{lo:#x}-{hi:#x} {p} {n}" for lo, hi, p, n in maps
               if p.startswith("rwx") and (lo, hi) not in inherited_rwx]
    spans = [(proc.mem.base, proc.mem.base + proc.mem.capacity)]
    if proc.mem.strategy.value == "dual-map":
        spans.append((spans[0][0] + proc.mem.alias_offset, spans[0][1] + proc.mem.alias_offset))
    in_region = [(lo, hi, p, n) for lo, hi, p, n in maps
                 if any(lo < b and a < hi for a, b in spans)]
    chan.send(b"L", pickle.dumps({
        "symbols": image.symbols, "host_addrs": dict(proc.hostproc.addrs),
        "stages": [st.render() for st in image.stages.stages],
        "pid": os.getpid()}))
    result = proc.run(entry, list(args), program_name=program_name, timeout=timeout)
    t_run = time.perf_counter()
    result.stats.update({
        "backend": "native", "pid": os.getpid(), "strategy": proc.mem.strategy.value,
        "link_seconds": t_link - t0, "run_seconds": t_run - t_link,
        "guest_calls": proc.calls_made,
        "maps_after_link": in_region, "new_rwx_mappings": new_rwx,
        "hardened_callback_pages": proc.hardened,
        "regions_after_link": proc.machine.regions(),
        "callback_addrs": dict(proc.hostproc.addrs),
    })
    result.stdout = result.stderr = b""        # already streamed
    chan.send(b"R", pickle.dumps(result))
    _die_like(result)


def _send_error(chan: _Channel, e: BaseException) -> None:
    if isinstance(e, KitemuError):
        try:            # the error itself, attributes and all, when it survives pickling
            raw = pickle.dumps(e.with_traceback(None))
            if str(pickle.loads(raw)) == str(e):
                chan.send(b"X", raw)
                return
        except Exception:
            pass
        payload = ("kitemu", type(e).__module__, type(e).__qualname__, str(e))
    else:
        payload = ("internal", "", "", "".join(traceback.format_exception(e)))
    chan.send(b"X", pickle.dumps(payload))


def _rebuild_error(payload) -> BaseException:
    kind, module, qualname, text = payload
    if kind != "kitemu":
        return RuntimeError(f"the native child failed:\n{text}")
    try:
        cls = getattr(sys.modules[module], qualname)
        if not (isinstance(cls, type) and issubclass(cls, KitemuError)):
            raise TypeError
    except (KeyError, AttributeError, TypeError):
        cls = KitemuError
    err = cls.__new__(cls)
    Exception.__init__(err, text)     # whatever cls.__init__ wants, str(err) is the message
    return err


@dataclass
class _ChildState:
    stdout: bytearray
    stderr: bytearray
    stage: str = "link"
    result: RunResult | None = None
    error: BaseException | None = None
    linked: dict | None = None
    call_timeout: float = 0.0
    call_started: float | None = None


def run_native(objects, target: str | None = "elf-x64", entry: str = "main", args=(),
               strategy: str | None = "mprotect", base: int = DEFAULT_BASE,
               capacity: int = DEFAULT_CAPACITY, timeout: float | None = None, *,
               page_size: int | None = None, program_name: str = "a.out", stdout_sink=None,
               trace=None) -> RunResult:
    """Link ``objects`` (ObjectFiles or paths) and run ``entry(argc, argv)``
    natively, in a forked child. Same result as ``JitProcess.run``: stdout,
    stderr, exit code, FaultReport (with the real signal and si_code) for a
    crash. ``timeout`` bounds each guest call, as in the emulator (a timeout
    fault, SIGKILL, exit 137); a child that stops answering is killed by the
    parent. ``stdout_sink(bytes)`` receives output as it is written;
    ``trace(line)`` the link's J-stages and each run-time stage, as
    ``runtime.run_files`` does. ``target=None``: the first object's. Bad
    input raises the same KitemuError as the emulator."""
    from ..loader import load_object
    from ..loader.model import ObjectFile
    if target is not None:
        check_native(target)
    objs = [o if isinstance(o, ObjectFile) else load_object(os.fspath(o)) for o in objects]
    if not objs:
        raise ConfigError("no input files")
    target = target or objs[0].target
    check_native(target)
    msg_r, msg_w = os.pipe()
    fault_r, fault_w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:                                              # the child
        chan = _Channel(msg_w)
        try:
            os.close(msg_r)
            os.close(fault_r)
            _child_setup()
            _child_run(chan, fault_w, objs, target, entry, args, strategy, base, capacity,
                       page_size, timeout, program_name)
        except BaseException as e:
            try:
                _send_error(chan, e)
            except BaseException:
                pass
        finally:
            os._exit(70)
    os.close(msg_w)
    os.close(fault_w)
    try:
        st = _ChildState(bytearray(), bytearray())
        killed = _collect(pid, msg_r, st, stdout_sink, trace)
        _, status = os.waitpid(pid, 0)
        pid = None
        record = _leftover_record(fault_r)
    finally:
        os.close(msg_r)
        os.close(fault_r)
        if pid is not None:                   # interrupted: leave nothing behind
            try:
                os.kill(pid, SIGKILL)
                os.waitpid(pid, 0)
            except OSError:
                pass
    return _result(st, status, killed, record, target)


def _collect(pid: int, fd: int, st: _ChildState, stdout_sink, trace) -> str | None:
    """Read the child's messages until it closes the pipe; kill it if a
    call overruns its time limit by WATCHDOG_GRACE. Returns why it was
    killed, if it was."""
    buf = bytearray()
    killed = None
    while True:
        wait = None
        if st.call_started is not None and st.call_timeout and killed is None:
            wait = max(0.0, st.call_started + st.call_timeout + WATCHDOG_GRACE - time.monotonic())
        ready, _, _ = select.select([fd], [], [], wait)
        if not ready:
            killed = (f"time limit of {st.call_timeout:g} s reached and the child did not "
                      "answer: killed by the harness")
            os.kill(pid, SIGKILL)
            continue
        data = os.read(fd, 1 << 16)
        if not data:
            return killed
        buf += data
        for tag, payload in _read_messages(buf):
            if tag == b"O":
                st.stdout += payload
                if stdout_sink is not None:
                    stdout_sink(payload)
            elif tag == b"E":
                st.stderr += payload
            elif tag == b"S":
                st.stage = payload.decode()
                if trace is not None:
                    trace(f"J-stage {st.stage}")
            elif tag == b"C":
                (st.call_timeout,) = struct.unpack("<d", payload)
                st.call_started = time.monotonic()
            elif tag == b"D":
                st.call_started = None
            elif tag == b"L":
                st.linked = pickle.loads(payload)
                if trace is not None:
                    for line in st.linked["stages"]:
                        trace(line)
            elif tag == b"R":
                st.result = pickle.loads(payload)
            elif tag == b"X":
                err = pickle.loads(payload)
                st.error = _rebuild_error(err) if isinstance(err, tuple) else err


def _leftover_record(fd: int) -> SignalRecord | None:
    """The handler's copy of a record the child had no time to act on."""
    rec = None
    while select.select([fd], [], [], 0)[0]:
        raw = os.read(fd, _RECORD.size)
        if not raw:
            break
        r = SignalRecord.parse(raw)
        if r is not None and r.sig != TIMEOUT_SIGNAL:
            rec = r
    return rec


def _status_text(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by {signal_name(os.WTERMSIG(status))}"
    return f"exited with status {os.WEXITSTATUS(status)}"


def _result(st: _ChildState, status: int, killed: str | None, record: SignalRecord | None,
            target: str) -> RunResult:
    if st.error is not None:
        raise st.error
    if st.result is not None:
        r = st.result
        r.stdout, r.stderr = bytes(st.stdout), bytes(st.stderr)
        r.stats["child_status"] = _status_text(status)
        return r
    out, err = bytes(st.stdout), bytes(st.stderr)
    stats = {"backend": "native", "child_status": _status_text(status)}
    if killed is not None:
        fault = _parent_report(st, target, CpuFault("timeout", None, None, 0, killed),
                               "SIGKILL", "TIMEOUT")
        return RunResult(out, err, 128 + SIGKILL, fault, "SIGKILL", killed, stats)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if record is not None and record.sig == sig:
            # a fault outside guest code (in the harness or a host body)
            fault = _parent_report(st, target, cpu_fault_from_record(record),
                                   signal_name(sig), si_code_name(sig, record.code))
            return RunResult(out, err, fault.exit_code, fault, fault.signal,
                             fault.render() + " (outside guest code: the native child died)",
                             stats)
        name = signal_name(sig)
        return RunResult(out, err, 128 + sig, None, name,
                         f"the native child was killed by {name} in J-stage {st.stage}", stats)
    raise KitemuError(f"the native child {_status_text(status)} without a result "
                      f"(J-stage {st.stage})")


def _parent_report(st: _ChildState, target: str, fault: CpuFault, sig: str,
                   code: str) -> NativeFaultReport:
    """A fault report built by the parent from what the child sent before it
    died (symbols; no relocation records)."""
    from ..targets import get_target
    t = get_target(target)
    linked = st.linked or {}
    image = SimpleNamespace(symbols=linked.get("symbols", []),
                            reloc_index=SimpleNamespace(about=lambda addr: None)) \
        if linked else None
    proc = SimpleNamespace(arch=t.arch, host=SimpleNamespace(os="linux"), image=image,
                           machine=SimpleNamespace(hostproc=SimpleNamespace(
                               addrs=linked.get("host_addrs", {}))),
                           target=t, stage=st.stage)
    report = describe_fault(fault, proc)
    return NativeFaultReport.of(report, signal=sig, si_code=code)


# -- running a function in isolation (tests, tools) -------------------------------------------
class ChildCrashed(KitemuError):
    """The isolated function's process died by a signal."""

    def __init__(self, sig: int, record: SignalRecord | None = None):
        self.signal = signal_name(sig)
        self.record = record
        where = f" at pc {record.pc:#x}, address {record.addr:#x}" if record else ""
        super().__init__(f"the isolated child was killed by {self.signal}{where}")


def run_isolated(fn, *args, timeout: float = 60.0):
    """Run ``fn(*args)`` in a forked child and return its (picklable) result,
    re-raising its exception; a child killed by a signal raises
    :class:`ChildCrashed`. For code that touches real memory and may crash."""
    msg_r, msg_w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        chan = _Channel(msg_w)
        try:
            os.close(msg_r)
            _child_setup()
            value = fn(*args)
            chan.send(b"R", pickle.dumps(value))
        except BaseException as e:
            try:
                raw = pickle.dumps(e.with_traceback(None))
                pickle.loads(raw)
                chan.send(b"X", raw)
            except BaseException:
                _send_error(chan, e)
        finally:
            os._exit(0)
    os.close(msg_w)
    buf = bytearray()
    messages = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            ready, _, _ = select.select([msg_r], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                os.kill(pid, SIGKILL)
                os.waitpid(pid, 0)
                pid = None
                raise ChildCrashed(SIGKILL)
            data = os.read(msg_r, 1 << 16)
            if not data:
                break
            buf += data
            messages += list(_read_messages(buf))
        _, status = os.waitpid(pid, 0)
        pid = None
    finally:
        os.close(msg_r)
        if pid is not None:
            try:
                os.kill(pid, SIGKILL)
                os.waitpid(pid, 0)
            except OSError:
                pass
    for tag, payload in messages:
        if tag == b"R":
            return pickle.loads(payload)
        if tag == b"X":
            err = pickle.loads(payload)
            raise _rebuild_error(err) if isinstance(err, tuple) else err
    if os.WIFSIGNALED(status):
        raise ChildCrashed(os.WTERMSIG(status))
    raise KitemuError(f"the isolated child {_status_text(status)} without a result")
