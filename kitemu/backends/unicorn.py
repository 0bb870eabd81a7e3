"""The emulated backend: one unicorn CPU + address space per machine.

What this module guarantees:

* memory primitives for :class:`~kitemu.execmem.ExecMem` (map, aliased map
  through ``mem_map_ptr``, protect, raw write, read) and a translation-cache
  flush (``ctl_remove_cache``) after every write into code;
* calls into guest code that stop when the callee returns to a sentinel
  address (unicorn's ``until``), with no per-instruction hook on the run path;
* hooks on exact address ranges only (host functions);
* faults captured as data (:class:`CpuFault`), never as exceptions escaping to
  the user.
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
        self.uc.hook_add(UC_HOOK_MEM_INVALID, self._on_invalid)
        self.uc.hook_add(UC_HOOK_INTR, self._on_intr)
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
    def hook_range(self, begin: int, end: int, callback) -> None:
        """Call ``callback(machine, address)`` before executing any
        instruction in ``[begin, end)``; nothing runs elsewhere."""
        def cb(uc, address, size, user):
            callback(self, address)
        self.uc.hook_add(UC_HOOK_CODE, cb, begin=begin, end=end - 1)
        self.uc.ctl_remove_cache(begin, end)   # hooks apply to already-translated code too

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
        function stops the machine). Returns a fault, or None."""
        self._last_invalid = None
        self._intno = None
        self._stopped = False
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
                return CpuFault(kind, access, address, pc, str(e))
            if e.errno == unicorn.UC_ERR_INSN_INVALID:
                return CpuFault("illegal-instruction", None, None, pc, str(e))
            if e.errno == unicorn.UC_ERR_EXCEPTION:
                return CpuFault("exception", None, None, pc, str(e), self._intno)
            return CpuFault("exception", None, None, pc, str(e), self._intno)
        pc = self.uc.reg_read(pc_reg)
        if self._intno is not None:
            return CpuFault("exception", None, None, pc, f"CPU exception {self._intno}", self._intno)
        if timeout_us and pc != until and not self._stopped:
            return CpuFault("timeout", None, None, pc,
                            f"time limit of {timeout_us / 1e6:g} s reached")
        return None


def make_machine(arch: Arch, page_size: int) -> UnicornMachine:
    if not page_size:
        raise ConfigError("page size 0: the host adapter must report a page size")
    return UnicornMachine(arch, page_size)
