"""The emulated backend: one unicorn CPU + address space per machine.

What this module guarantees:

* memory primitives for :class:`~kitemu.execmem.ExecMem` (map, aliased map
  through ``mem_map_ptr``, protect, raw write, read) and a translation-cache
  flush (``ctl_remove_cache``) after every write into code;
* calls into guest code that stop when the callee returns to a sentinel
  address (unicorn's ``until``), with no per-instruction hook on the run path;
* hooks on exact address ranges only (host functions, breakpoints);
* breakpoints that stop *before* their instruction and can be resumed
  (:meth:`UnicornMachine.add_breakpoint`, :meth:`UnicornMachine.run_until`,
  :meth:`UnicornMachine.resume`);
* faults captured as data (:class:`CpuFault`), never as exceptions escaping to
  the user.

Breakpoints, as measured on unicorn 2.1.4 (x86-64, AArch64, RISC-V 64):

* a breakpoint is one ``UC_HOOK_CODE`` hook bounded to exactly its address
  (``begin == end == addr``). Unicorn decides at *translation* time which
  instructions call a code hook, so code translated before the hook was
  added never calls it: adding (and removing) a breakpoint drops the
  translation of that address (``ctl_remove_cache(addr, addr + 1)``). Nothing
  else is flushed, and no hook runs on any other instruction.
* ``emu_stop()`` inside a code hook stops before the hooked instruction is
  executed, on all three architectures, with the PC register equal to the
  hooked address (also for 2-byte compressed RISC-V instructions, and
  whether the instruction starts a translated block or sits inside one).
  So a breakpoint needs no trap instruction and no PC fix-up (unlike rv64
  ``ebreak``, whose exception path leaves the PC advanced by 4).
* ``emu_start`` at a hooked address calls the hook first: resuming from a
  breakpoint would hit it again at once. :meth:`UnicornMachine.run_until`
  therefore takes the address to pass over once (``skip_breakpoint``): the
  hook sees it as the run's first instruction and lets it execute; the next
  arrival there (a loop, a later call) stops again.
* hooks at one address run in the order they were added. Host functions are
  a range hook; a breakpoint on a host function must stop *before* the
  host function runs (and run it once, on resume), so range hooks check the
  breakpoint set and breakpoint hooks are kept after every range hook.
"""

from __future__ import annotations

import ctypes
import mmap
from dataclasses import dataclass

import unicorn
from unicorn import (UC_HOOK_CODE, UC_HOOK_INTR, UC_HOOK_MEM_INVALID, UC_PROT_EXEC,
                     UC_PROT_READ, UC_PROT_WRITE, Uc, UcError)

from ..errors import ConfigError, ExecMemError
from ..execmem import Perm
from ..targets.base import Arch

_ACCESS = {
    unicorn.UC_MEM_READ_UNMAPPED: ("read", "unmapped"),
    unicorn.UC_MEM_WRITE_UNMAPPED: ("write", "unmapped"),
    unicorn.UC_MEM_FETCH_UNMAPPED: ("execute", "unmapped"),
    unicorn.UC_MEM_READ_PROT: ("read", "protection"),
    unicorn.UC_MEM_WRITE_PROT: ("write", "protection"),
    unicorn.UC_MEM_FETCH_PROT: ("execute", "protection"),
}


def uc_perm(perm: Perm) -> int:
    p = 0
    if perm & Perm.R:
        p |= UC_PROT_READ
    if perm & Perm.W:
        p |= UC_PROT_WRITE
    if perm & Perm.X:
        p |= UC_PROT_EXEC
    return p


class GuestMemoryFault(Exception):
    """Host-side access to guest memory that is not mapped (e.g. a host
    function given a bad pointer). Host functions turn it into a fault
    report, as a real libc would crash inside ``strlen``."""

    def __init__(self, addr: int, size: int, access: str, detail: str):
        super().__init__(f"{access} of {size} bytes at {addr:#x}: {detail}")
        self.addr = addr
        self.size = size
        self.access = access


@dataclass
class CpuFault:
    """What the CPU reported when guest code stopped abnormally."""

    kind: str              # "unmapped" | "protection" | "illegal-instruction" | "exception" | "timeout"
    access: str | None     # "read" | "write" | "execute" | None
    address: int | None    # faulting data/fetch address, when known
    pc: int
    detail: str
    intno: int | None = None


#: CPU exception number a trap instruction (int3 / brk / ebreak) raises, as
#: unicorn reports it: a breakpoint hit seen by a caller that cannot resume
#: (:meth:`UnicornMachine.run`) is reported like that trap, SIGTRAP
TRAP_INTNO = {"x64": 3, "aarch64": 7, "rv64": 3}


@dataclass
class Stop:
    """Why :meth:`UnicornMachine.run_until` returned.

    ``reason`` is one of

    * ``"returned"``: the PC reached ``until`` (the callee returned);
    * ``"breakpoint"``: a breakpoint hook stopped the machine; ``pc`` is the
      breakpoint's address and its instruction has not been executed;
    * ``"fault"``: the CPU faulted (``fault`` says how);
    * ``"timeout"``: the time limit ran out (``fault`` is a ``"timeout"``
      :class:`CpuFault`, as :meth:`UnicornMachine.run` always reported it);
    * ``"host-stop"``: a hook called :meth:`UnicornMachine.stop` (a host
      function's ``exit``/``abort``, or one that faulted on a bad pointer);
    * ``"interrupted"``: unicorn returned for none of these reasons.
    """

    reason: str
    pc: int
    fault: CpuFault | None = None

    @property
    def breakpoint(self) -> int | None:
        """The breakpoint's address when one stopped the run, else None."""
        return self.pc if self.reason == "breakpoint" else None


class UnicornMachine:
    """A CPU of one architecture with its own address space."""

    def __init__(self, arch: Arch, page_size: int):
        self.arch = arch
        self.uc = Uc(arch.uc_arch, arch.uc_mode)
        if arch.fixed_uc_page_size is None:
            # must precede every mapping (unicorn aarch64 defaults to 1 KiB pages)
            self.uc.ctl_set_page_size(page_size)
            self.granule = page_size
        else:
            self.granule = arch.fixed_uc_page_size
        self._buffers: dict[int, mmap.mmap] = {}
        self._last_invalid: tuple[str, str, int] | None = None
        self._intno: int | None = None
        self._stopped = False
        #: every hook this machine holds: handle -> (type, begin, end).
        #: ``begin > end`` is unicorn's "everywhere": only the two event
        #: hooks below (invalid memory access, CPU exception) are global;
        #: every UC_HOOK_CODE hook is bounded (host area, breakpoints)
        self.hooks: dict[int, tuple[int, int, int]] = {}
        #: breakpoint address -> its hook handle
        self._bp_hooks: dict[int, int] = {}
        #: set by the breakpoint hook that stopped the current run
        self._bp_hit: int | None = None
        #: the breakpoint the current run passes over once (a resume)
        self._skip_bp: int | None = None
        #: why the last run stopped (:class:`Stop`), None before any run
        self.last_stop: Stop | None = None
        self._hook_add(UC_HOOK_MEM_INVALID, self._on_invalid)
        self._hook_add(UC_HOOK_INTR, self._on_intr)
        self._enable_fpu()

    def _enable_fpu(self) -> None:
        if self.arch.name == "rv64":
            from unicorn.riscv_const import UC_RISCV_REG_MSTATUS
            # mstatus.FS = Dirty: floating-point instructions are legal
            self.uc.reg_write(UC_RISCV_REG_MSTATUS, self.uc.reg_read(UC_RISCV_REG_MSTATUS) | 0x6000)
        elif self.arch.name == "aarch64":
            from unicorn.arm64_const import UC_ARM64_REG_CPACR_EL1
            self.uc.reg_write(UC_ARM64_REG_CPACR_EL1, self.uc.reg_read(UC_ARM64_REG_CPACR_EL1) | (3 << 20))

    # -- memory primitives (MemoryBackend) --------------------------------
    def map(self, addr: int, size: int, perm: Perm) -> None:
        try:
            self.uc.mem_map(addr, size, uc_perm(perm))
        except UcError as e:
            raise ExecMemError(f"cannot map {size:#x} bytes at {addr:#x}: {e}") from None

    def map_aliased(self, views: list[tuple[int, Perm]], size: int) -> None:
        """Map one host buffer at several guest addresses (dual mapping)."""
        buf = mmap.mmap(-1, size)
        ptr = ctypes.addressof(ctypes.c_char.from_buffer(buf))
        try:
            for addr, perm in views:
                self.uc.mem_map_ptr(addr, size, uc_perm(perm), ptr)
                self._buffers[addr] = buf
        except UcError as e:
            raise ExecMemError(f"cannot map aliased view at {addr:#x}: {e}") from None

    def protect(self, addr: int, size: int, perm: Perm) -> None:
        self.uc.mem_protect(addr, size, uc_perm(perm))
        # unicorn keeps executing blocks it translated while the page was
        # executable: drop them, so losing X takes effect at once
        self.uc.ctl_remove_cache(addr, addr + size)
        # and its TLB keeps letting reads through on a page that lost read
        # permission (found by the exec-memory audit): flush it too
        self.uc.ctl(unicorn.UC_CTL_TLB_FLUSH, unicorn.UC_CTL_IO_WRITE)

    def unmap(self, addr: int, size: int) -> None:
        self.uc.mem_unmap(addr, size)
        self._buffers.pop(addr, None)

    def write_raw(self, addr: int, data: bytes) -> None:
        try:
            self.uc.mem_write(addr, bytes(data))
        except UcError as e:
            raise GuestMemoryFault(addr, len(data), "write", str(e)) from None

    def read(self, addr: int, size: int) -> bytes:
        try:
            return bytes(self.uc.mem_read(addr, size))
        except UcError as e:
            raise GuestMemoryFault(addr, size, "read", str(e)) from None

    def flush_code(self, addr: int, size: int) -> None:
        self.uc.ctl_remove_cache(addr, addr + size)

    def regions(self) -> list[tuple[int, int, Perm]]:
        """(begin, end_inclusive, perm) as unicorn itself reports them."""
        out = []
        for begin, end, p in self.uc.mem_regions():
            perm = Perm.NONE
            if p & UC_PROT_READ:
                perm |= Perm.R
            if p & UC_PROT_WRITE:
                perm |= Perm.W
            if p & UC_PROT_EXEC:
                perm |= Perm.X
            out.append((begin, end, perm))
        return out

    def read_cstring(self, addr: int, limit: int | None = None) -> bytes:
        out = bytearray()
        while limit is None or len(out) < limit:
            n = 256 - (addr % 256)
            if limit is not None:
                n = min(n, limit - len(out))
            chunk = self.read(addr, n)
            nul = chunk.find(b"\0")
            if nul >= 0:
                out += chunk[:nul]
                break
            out += chunk
            addr += n
        return bytes(out)

    # -- registers ------------------------------------------------------------
    def reg(self, reg_id: int) -> int:
        return self.uc.reg_read(reg_id)

    def set_reg(self, reg_id: int, value: int) -> None:
        self.uc.reg_write(reg_id, value)

    # -- hooks ----------------------------------------------------------------
    def _hook_add(self, htype: int, callback, begin: int = 1, end: int = 0) -> int:
        handle = self.uc.hook_add(htype, callback, begin=begin, end=end)
        self.hooks[handle] = (htype, begin, end)
        return handle

    def _hook_del(self, handle: int) -> None:
        self.uc.hook_del(handle)
        del self.hooks[handle]

    def hook_range(self, begin: int, end: int, callback) -> None:
        """Call ``callback(machine, address)`` before executing any
        instruction in ``[begin, end)``; nothing runs elsewhere. An
        instruction there that is also a breakpoint runs ``callback`` only
        when it really executes (when the run passes the breakpoint)."""
        def cb(uc, address, size, user):
            if address in self._bp_hooks and self._skip_bp != address:
                return          # the breakpoint hook (after this one) stops here
            callback(self, address)
        self._hook_add(UC_HOOK_CODE, cb, begin=begin, end=end - 1)
        self.uc.ctl_remove_cache(begin, end)   # hooks apply to already-translated code too
        # keep breakpoint hooks after range hooks (see the module docstring)
        for addr in [a for a in self._bp_hooks if begin <= a < end]:
            self.remove_breakpoint(addr)
            self.add_breakpoint(addr)

    # -- breakpoints ------------------------------------------------------------
    @property
    def breakpoints(self) -> set[int]:
        """The breakpoint addresses (a copy)."""
        return set(self._bp_hooks)

    def add_breakpoint(self, addr: int) -> None:
        """Stop any run before the instruction at ``addr`` executes (the PC
        then equals ``addr``). One code hook bounded to exactly ``addr``;
        the translation holding ``addr`` is dropped so that code which ran
        already calls the hook too. Adding one twice changes nothing."""
        if addr in self._bp_hooks:
            return
        self._bp_hooks[addr] = self._hook_add(UC_HOOK_CODE, self._on_breakpoint,
                                              begin=addr, end=addr)
        self.uc.ctl_remove_cache(addr, addr + 1)

    def remove_breakpoint(self, addr: int) -> None:
        """Delete the breakpoint at ``addr`` (KeyError if there is none) and
        drop the translation that calls its hook."""
        handle = self._bp_hooks.pop(addr)
        self._hook_del(handle)
        self.uc.ctl_remove_cache(addr, addr + 1)

    def _on_breakpoint(self, uc, address, size, user):
        if self._skip_bp == address:
            self._skip_bp = None         # resuming from here: execute it, once
            return
        self._skip_bp = None
        self._bp_hit = address
        uc.emu_stop()                    # before the instruction (module docstring)

    def stop(self) -> None:
        """Stop the current run from inside a hook (exit, abort)."""
        self._stopped = True
        self.uc.emu_stop()

    def _on_invalid(self, uc, access, address, size, value, user):
        self._last_invalid = (*_ACCESS.get(access, ("access", "unmapped")), address)
        return False

    def _on_intr(self, uc, intno, user):
        self._intno = intno
        uc.emu_stop()

    # -- running --------------------------------------------------------------
    def run(self, begin: int, until: int, timeout_us: int = 0) -> CpuFault | None:
        """Execute from ``begin`` until the PC reaches ``until`` (or a host
        function stops the machine). Returns a fault, or None.

        The interface of callers that cannot resume: None means "returned
        or stopped by a host function" (they look at the host process to
        tell which). A breakpoint hit is a :class:`CpuFault` of kind
        ``"breakpoint"`` carrying the arch's trap exception number (what an
        ``int3``/``brk``/``ebreak`` would raise: SIGTRAP), never None and
        never a timeout. :meth:`run_until` says why the run stopped;
        :attr:`last_stop` keeps it for both."""
        stop = self.run_until(begin, until, timeout_us)
        if stop.reason == "breakpoint":
            return CpuFault("breakpoint", None, None, stop.pc, f"breakpoint at {stop.pc:#x}",
                            TRAP_INTNO.get(self.arch.name))
        return stop.fault

    def resume(self, until: int, timeout_us: int = 0) -> Stop:
        """Continue from the current PC until ``until``. When the last run
        stopped at a breakpoint and the PC is still there, that breakpoint
        is passed over once; a PC moved elsewhere (even onto another
        breakpoint) runs as :meth:`run_until` does, stopping at once on a
        breakpoint there."""
        pc = self.uc.reg_read(self.arch.callconv.pc)
        last = self.last_stop
        skip = last.pc if last is not None and last.reason == "breakpoint" and last.pc == pc else None
        return self.run_until(pc, until, timeout_us, skip_breakpoint=skip)

    def run_until(self, begin: int, until: int, timeout_us: int = 0,
                  skip_breakpoint: int | None = None) -> Stop:
        """Execute from ``begin`` until the PC reaches ``until``, a
        breakpoint, a fault, the time limit or a host-function stop, and say
        which (:class:`Stop`, also kept in :attr:`last_stop`).

        ``skip_breakpoint``: when it equals ``begin`` and is a breakpoint,
        that breakpoint lets its instruction execute this once (resuming
        from it); later arrivals there in the same run stop as usual. A
        fresh call pass None, so a breakpoint on the callee's first
        instruction hits. After a ``"breakpoint"`` stop every register and
        all memory are as they were before that instruction: read, change,
        then run again from the PC with ``skip_breakpoint=pc``."""
        self._last_invalid = None
        self._intno = None
        self._stopped = False
        self._bp_hit = None
        self._skip_bp = (skip_breakpoint if skip_breakpoint == begin
                         and skip_breakpoint in self._bp_hooks else None)
        stop = self._run(begin, until, timeout_us)
        self._skip_bp = None
        self.last_stop = stop
        return stop

    def _run(self, begin: int, until: int, timeout_us: int) -> Stop:
        pc_reg = self.arch.callconv.pc
        try:
            self.uc.emu_start(begin, until, timeout=timeout_us)
        except UcError as e:
            # a fault on a no-access page leaves a TLB entry that lets the
            # next read through (unicorn 2.1.4): start clean next time
            self.uc.ctl(unicorn.UC_CTL_TLB_FLUSH, unicorn.UC_CTL_IO_WRITE)
            pc = self.uc.reg_read(pc_reg)
            if self._last_invalid:
                access, kind, address = self._last_invalid
                return Stop("fault", pc, CpuFault(kind, access, address, pc, str(e)))
            if e.errno == unicorn.UC_ERR_INSN_INVALID:
                return Stop("fault", pc, CpuFault("illegal-instruction", None, None, pc, str(e)))
            return Stop("fault", pc, CpuFault("exception", None, None, pc, str(e), self._intno))
        pc = self.uc.reg_read(pc_reg)
        if self._intno is not None:
            return Stop("fault", pc, CpuFault("exception", None, None, pc,
                                              f"CPU exception {self._intno}", self._intno))
        if self._bp_hit is not None:
            return Stop("breakpoint", self._bp_hit)
        if self._stopped:
            return Stop("host-stop", pc)
        if pc == until:
            return Stop("returned", pc)
        if timeout_us:
            return Stop("timeout", pc, CpuFault("timeout", None, None, pc,
                                                f"time limit of {timeout_us / 1e6:g} s reached"))
        return Stop("interrupted", pc)

    # -- register context (calls made while another is stopped) -----------------
    def save_context(self):
        """The CPU registers, to give back with :meth:`restore_context`."""
        return self.uc.context_save()

    def restore_context(self, context) -> None:
        self.uc.context_restore(context)


def make_machine(arch: Arch, page_size: int) -> UnicornMachine:
    if not page_size:
        raise ConfigError("page size 0: the host adapter must report a page size")
    return UnicornMachine(arch, page_size)
