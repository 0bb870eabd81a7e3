"""ExecMem: one reserved region, chunks committed from it bump-style, W^X
enforced by kitemu, and a translation-cache flush after every code write and
every code permission change. docs/EXECMEM.md is the contract.
"""

from __future__ import annotations

import bisect
import enum
import weakref
from dataclasses import dataclass
from typing import Protocol

from ..errors import ConfigError, ExecMemError, WXViolation
from .perm import RW, RX, Perm
from .windows import ALLOCATION_GRANULARITY, Reservation, Reservations, page_protection

#: where the RW alias of a dual-mapped code chunk lives, relative to it
ALIAS_OFFSET = 1 << 36


class Strategy(enum.Enum):
    MPROTECT = "mprotect"
    DUAL_MAP = "dual-map"
    JIT_TOGGLE = "jit-toggle"
    VIRTUAL_PROTECT = "virtualprotect"


STRATEGIES = {s.value: s for s in Strategy}


def parse_strategy(name: str | Strategy | None) -> Strategy:
    if isinstance(name, Strategy):
        return name
    if not name:
        raise ConfigError("no exec-memory strategy configured (choose one of: "
                          + ", ".join(STRATEGIES) + ")")
    try:
        return STRATEGIES[name]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown exec-memory strategy {name!r}; known: "
                          + ", ".join(STRATEGIES)) from None


def check_page_size(page_size: int | None, backend_granule: int = 4096) -> int:
    """A host adapter's page size must be reported, a power of two, and a
    multiple of what the backend can map."""
    if not page_size:
        raise ConfigError("the host adapter reported page size 0; a page size must be "
                          "given explicitly (4096, 16384 or 65536)")
    if page_size & (page_size - 1) or page_size < 4096:
        raise ConfigError(f"page size {page_size} is not a power of two >= 4096")
    if page_size % backend_granule:
        raise ConfigError(f"page size {page_size} is not a multiple of the backend's "
                          f"{backend_granule}-byte mapping granule")
    return page_size


class MemoryBackend(Protocol):
    """What a backend (unicorn, native) offers the allocator."""

    def map(self, addr: int, size: int, perm: Perm) -> None: ...
    def map_aliased(self, views: list[tuple[int, Perm]], size: int) -> None: ...
    def protect(self, addr: int, size: int, perm: Perm) -> None: ...
    def unmap(self, addr: int, size: int) -> None: ...
    def write_raw(self, addr: int, data: bytes) -> None: ...
    def read(self, addr: int, size: int) -> bytes: ...
    def flush_code(self, addr: int, size: int) -> None: ...


@dataclass
class Chunk:
    addr: int
    size: int
    kind: str            # "code" | "data"
    perm: Perm           # permission of the view at ``addr``
    alias: int | None    # RW alias address (dual-map code chunks)

    @property
    def end(self) -> int:
        return self.addr + self.size


class JitThread:
    """The single thread of one backend as ``pthread_jit_write_protect_np``
    sees it. Its write mode covers every MAP_JIT (jit-toggle) code chunk of
    every region on that backend at once, as on macOS, where the toggle is
    per thread and process-wide over JIT memory."""

    def __init__(self) -> None:
        self.write_mode = False
        self._regions: list[weakref.ref] = []

    def register(self, mem: ExecMem) -> None:
        self._regions.append(weakref.ref(mem))

    def regions(self) -> list[ExecMem]:
        live = [(ref, ref()) for ref in self._regions]
        live = [(ref, m) for ref, m in live if m is not None and not m.freed]
        self._regions = [ref for ref, _ in live]
        return [m for _, m in live]


_JIT_THREADS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def jit_thread(backend) -> JitThread:
    """The emulated thread of ``backend`` (one per backend object)."""
    try:
        thread = _JIT_THREADS.get(backend)
        if thread is None:
            thread = _JIT_THREADS[backend] = JitThread()
        return thread
    except TypeError:            # not weakly referenceable: a thread of its own
        return JitThread()


class ExecMem:
    """One reserved region of a backend's address space."""

    def __init__(self, backend: MemoryBackend, strategy: Strategy | str | None,
                 page_size: int | None, base: int, capacity: int,
                 alias_offset: int = ALIAS_OFFSET, granule: int = 4096,
                 allocation_granularity: int | None = None):
        self.strategy = parse_strategy(strategy)
        self.page_size = check_page_size(page_size, granule)
        #: the unit of address-space reservation: the page, except for
        #: virtualprotect (Windows: 64 KiB, or the page when larger)
        self.granularity = self.page_size
        what = "page size"
        if self.strategy is Strategy.VIRTUAL_PROTECT:
            g = allocation_granularity or ALLOCATION_GRANULARITY
            if g & (g - 1):
                raise ConfigError(f"allocation granularity {g:#x} is not a power of two")
            self.granularity = max(g, self.page_size)
            what = "allocation granularity"
        elif allocation_granularity is not None:
            raise ConfigError(f"an allocation granularity applies to the virtualprotect strategy "
                              f"only, not {self.strategy.value}")
        if base % self.granularity:
            raise ConfigError(f"region base {base:#x} is not aligned to the {what} {self.granularity:#x}")
        if capacity <= 0 or capacity % self.granularity:
            raise ConfigError(f"region capacity {capacity:#x} is not a positive multiple of the {what} "
                              f"{self.granularity:#x}")
        self.backend = backend
        self.base = base
        self.capacity = capacity
        self.alias_offset = alias_offset
        self.next = base
        #: end of what ``commit`` may hand out (``reserve_top`` lowers it)
        self.limit = base + capacity
        self.chunks: list[Chunk] = []
        self._starts: list[int] = []
        self.freed = False
        self._reservations = Reservations(base, self.granularity)
        self._thread: JitThread | None = None
        if self.strategy is Strategy.JIT_TOGGLE:
            self._thread = jit_thread(backend)
            self._thread.register(self)

    # -- allocation -------------------------------------------------------
    def round_up(self, n: int) -> int:
        return (n + self.page_size - 1) & -self.page_size

    @property
    def used(self) -> int:
        return self.next - self.base

    @property
    def reservations(self) -> list[Reservation]:
        """virtualprotect: the ``VirtualAlloc(MEM_RESERVE)`` ranges made so
        far, contiguous from ``base``; empty under the other strategies."""
        return list(self._reservations.list)

    def commit(self, size: int, kind: str) -> Chunk:
        """Map ``size`` bytes (rounded to pages) writable for the linker."""
        if kind not in ("code", "data"):
            raise ValueError(kind)
        self._alive()
        size = self.round_up(max(size, 1))
        if self.next + size > self.limit:
            raise ExecMemError(
                f"exec memory region out of capacity: need {size:#x} more bytes for {kind}, "
                f"{self.limit - self.next:#x} of {self.capacity:#x} left")
        addr = self.next
        if kind == "code" and self.strategy is Strategy.DUAL_MAP:
            alias = addr + self.alias_offset
            self.backend.map_aliased([(addr, RX), (alias, RW)], size)
            chunk = Chunk(addr, size, kind, RX, alias)
        elif self.strategy is Strategy.VIRTUAL_PROTECT:
            self._vp_commit(addr, size, kind)
            chunk = Chunk(addr, size, kind, RW, None)
        else:
            self.backend.map(addr, size, RW)
            chunk = Chunk(addr, size, kind, RW, None)
        self.next += size
        self._starts.append(addr)
        self.chunks.append(chunk)
        if kind == "code" and self.strategy is Strategy.JIT_TOGGLE:
            # the JIT is about to write code: the thread enters write mode,
            # every other JIT code chunk becomes RW with this one
            self.set_jit_write_mode(True)
        return chunk

    @property
    def left(self) -> int:
        """Bytes ``commit`` can still hand out."""
        return self.limit - self.next

    def reserve_top(self, size: int) -> int:
        """Take ``size`` bytes (rounded to the reservation granularity) off
        the top of the region, never to be committed: a guard range whose
        addresses fault when used. Returns its start."""
        self._alive()
        size = -(-size // self.granularity) * self.granularity
        if self.limit - size < self.next:
            raise ExecMemError(f"exec memory region out of capacity: no room left for a "
                               f"{size:#x}-byte guard range at the top of the region")
        self.limit -= size
        return self.limit

    def _vp_commit(self, addr: int, size: int, kind: str) -> None:
        """``VirtualAlloc(MEM_RESERVE, PAGE_NOACCESS)`` when the current
        reservation runs out, then ``VirtualAlloc(MEM_COMMIT,
        PAGE_READWRITE)`` once per reservation the pages lie in."""
        res = self._reservations
        new = res.needed(addr + size)
        if new is not None:
            self.backend.map(new.base, new.size, Perm.NONE)
            res.add(new)
        for a, n in res.pieces(addr, size):
            self.backend.protect(a, n, RW)
        if kind == "code":
            # a permission change of code: drop translations of the range
            self.backend.flush_code(addr, size)

    def chunk_at(self, addr: int) -> Chunk | None:
        i = bisect.bisect_right(self._starts, addr) - 1
        if i >= 0 and addr < self.chunks[i].end:
            return self.chunks[i]
        return None

    # -- writes -----------------------------------------------------------
    def write(self, addr: int, data: bytes) -> None:
        """A host-side write, checked against the current permissions.

        The whole range is checked before any byte is written: a refused
        write changes nothing."""
        self._alive()
        end = addr + len(data)
        plan: list[tuple[Chunk, int, int]] = []
        pos = addr
        while pos < end:
            chunk = self.chunk_at(pos)
            if chunk is None:
                raise ExecMemError(f"write of {len(data)} bytes at {addr:#x}: "
                                   f"{pos:#x} is not committed memory of this region")
            if chunk.alias is None and not chunk.perm & Perm.W:
                raise WXViolation(
                    f"refused host-side write of {len(data)} bytes at {addr:#x}: the {chunk.kind} "
                    f"page at {pos & -self.page_size:#x} is {chunk.perm}{self._perm_name(chunk.perm)} "
                    "(W^X: code is written only while not executable)")
            stop = min(end, chunk.end)
            plan.append((chunk, pos, stop))
            pos = stop
        for chunk, pos, stop in plan:
            piece = data[pos - addr:stop - addr]
            if chunk.alias is not None:
                self.backend.write_raw(chunk.alias + (pos - chunk.addr), piece)
            else:
                self.backend.write_raw(pos, piece)
            if chunk.kind == "code":
                # FlushInstructionCache / sys_icache_invalidate: the
                # emulator drops translated blocks of the range
                self.backend.flush_code(pos, len(piece))

    def read(self, addr: int, size: int) -> bytes:
        return self.backend.read(addr, size)

    def patch(self, writes: list[tuple[int, bytes]]) -> None:
        """Write into committed memory whatever its current permission, as a
        JIT patches code and data it already published (staged relocations,
        hot-reload slots, breakpoints): each chunk touched is opened the
        strategy's way (mprotect/virtualprotect: flip to RW, never W and X
        at once; dual-map: through the RW alias; jit-toggle: the thread's
        write mode), written, and given its permission back; code is
        flushed. Every address is checked before anything changes."""
        self._alive()
        by_chunk: dict[int, tuple[Chunk, list[tuple[int, bytes]]]] = {}
        for addr, data in writes:
            pos, end = addr, addr + len(data)
            while pos < end:
                chunk = self.chunk_at(pos)
                if chunk is None:
                    raise ExecMemError(f"patch of {len(data)} bytes at {addr:#x}: {pos:#x} is "
                                       "not committed memory of this region")
                stop = min(end, chunk.end)
                by_chunk.setdefault(chunk.addr, (chunk, []))[1].append(
                    (pos, data[pos - addr:stop - addr]))
                pos = stop
        for chunk, pieces in by_chunk.values():
            opened = None
            if chunk.alias is None and not chunk.perm & Perm.W:
                if chunk.kind == "code" and self.strategy is Strategy.JIT_TOGGLE:
                    opened = ("toggle", self.jit_write_mode)
                    self.set_jit_write_mode(True)
                else:
                    opened = ("perm", chunk.perm)
                    self.protect(chunk, RW)
            for pos, piece in pieces:
                self.write(pos, piece)
            if opened is not None:
                how, old = opened
                if how == "toggle":
                    self.set_jit_write_mode(old)
                else:
                    self.protect(chunk, old)

    # -- permissions ------------------------------------------------------
    def protect(self, chunk: Chunk, perm: Perm) -> None:
        """Change a chunk's permission; W together with X is refused."""
        self._alive()
        self._own(chunk)
        perm = Perm(perm)
        if perm & Perm.W and perm & Perm.X:
            raise WXViolation(f"refused to make {chunk.addr:#x}..{chunk.end:#x} writable and "
                              f"executable at once{self._perm_name(perm)} (W^X)")
        if chunk.alias is not None:
            if perm != RX:
                raise WXViolation(f"dual-mapped code at {chunk.addr:#x} is RX forever; write "
                                  "through its RW alias instead of changing its permission")
            return
        if chunk.kind == "code" and self.strategy is Strategy.JIT_TOGGLE:
            if perm not in (RX, RW):
                raise WXViolation(f"MAP_JIT code at {chunk.addr:#x} is either RW or RX for a thread")
            self.set_jit_write_mode(perm == RW)
            return
        if perm & Perm.X and chunk.kind != "code":
            raise WXViolation(f"refused to make data at {chunk.addr:#x} executable")
        if self.strategy is Strategy.VIRTUAL_PROTECT:
            if page_protection(perm) is None:
                raise ExecMemError(f"no Windows page protection is {perm} at {chunk.addr:#x}: "
                                   "write access implies read (PAGE_READWRITE)")
            # VirtualProtect cannot span two allocations: one call per reservation
            for a, n in self._reservations.pieces(chunk.addr, chunk.size):
                self.backend.protect(a, n, perm)
        else:
            self.backend.protect(chunk.addr, chunk.size, perm)
        chunk.perm = perm
        if chunk.kind == "code":
            # translated blocks survive permission changes in the emulator
            self.backend.flush_code(chunk.addr, chunk.size)

    @property
    def jit_write_mode(self) -> bool:
        """jit-toggle: is the (single emulated) thread in write mode?"""
        return self._thread is not None and self._thread.write_mode

    def set_jit_write_mode(self, enabled: bool) -> None:
        """jit-toggle: ``pthread_jit_write_protect_np(!enabled)`` - every
        JIT code chunk on this backend, of every region, becomes RW (write
        mode) or RX (execute mode)."""
        self._alive()
        if self._thread is None:
            raise ExecMemError(f"the {self.strategy.value} strategy has no per-thread JIT write toggle")
        perm = RW if enabled else RX
        for mem in self._thread.regions():
            for c in mem.chunks:
                if c.kind == "code" and c.perm != perm:
                    mem.backend.protect(c.addr, c.size, perm)
                    c.perm = perm
                    mem.backend.flush_code(c.addr, c.size)
        self._thread.write_mode = bool(enabled)

    def make_executable(self, chunk: Chunk) -> None:
        """Finalize code: RX (virtualprotect: ``VirtualProtect(
        PAGE_EXECUTE_READ)`` then ``FlushInstructionCache``)."""
        self.protect(chunk, RX)

    def make_writable(self, chunk: Chunk) -> None:
        """Open a code chunk for writing again (mprotect/virtualprotect:
        flip to RW; jit-toggle: the thread enters write mode; dual-map:
        nothing to do, the alias is always writable)."""
        if chunk.alias is None:
            self.protect(chunk, RW)

    # -- lifetime ---------------------------------------------------------
    def free(self) -> None:
        if self.freed:
            return
        if self.strategy is Strategy.VIRTUAL_PROTECT:
            for r in self._reservations.list:         # VirtualFree(MEM_RELEASE)
                self.backend.unmap(r.base, r.size)
        else:
            for c in self.chunks:
                self.backend.unmap(c.addr, c.size)
                if c.alias is not None:
                    self.backend.unmap(c.alias, c.size)
        for c in self.chunks:
            if c.kind == "code":
                self.backend.flush_code(c.addr, c.size)
        self.chunks.clear()
        self._starts.clear()
        self._reservations.clear()
        self.next = self.base
        self.limit = self.base + self.capacity
        self.freed = True

    # -- helpers ----------------------------------------------------------
    def _alive(self):
        if self.freed:
            raise ExecMemError("exec memory region was already freed")

    def _own(self, chunk: Chunk) -> None:
        if self.chunk_at(chunk.addr) is not chunk:
            raise ExecMemError(f"{chunk.kind} chunk {chunk.addr:#x}..{chunk.end:#x} is not a "
                               "committed chunk of this region")

    def _perm_name(self, perm: Perm) -> str:
        if self.strategy is Strategy.VIRTUAL_PROTECT:
            name = page_protection(perm)
            if name:
                return f" ({name})"
        return ""
