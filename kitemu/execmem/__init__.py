"""The executable-memory allocator: one reserved region, pages committed from
it, and W^X as a rule kitemu enforces itself.

Contract (docs/ARCHITECTURE.md has the long form):

* ``reserve``: a contiguous ``[base, base + capacity)`` range is claimed for
  one image. Nothing is mapped until it is committed.
* ``commit(size, kind)`` hands out page-aligned chunks bump-style, in
  address order. ``kind`` is ``"code"`` or ``"data"``.
* No page is ever writable and executable at the same time, at any address.
  Host-side writes (the linker's) are checked by kitemu, because unicorn's
  ``mem_write`` ignores protection.
* After every write into code the backend's translation cache for the range
  is flushed (unicorn would otherwise keep executing the old bytes).

Two strategies for code chunks:

``mprotect``  (Linux, BSDs) - the chunk is mapped RW while the linker writes
              it, then flipped to RX. Writing it again means flipping back.
``dual-map``  (Apple ``MAP_JIT`` with two views, or a memfd mapped twice) - the
              same pages are mapped twice: an RX view at the chunk's address,
              where code runs, and an RW alias at ``address + alias_offset``
              where the linker writes. Neither view ever changes permission.
``jit-toggle`` (Apple silicon ``MAP_JIT`` + ``pthread_jit_write_protect_np``) -
              one view; the *thread* is either in write mode (every JIT code
              page is RW for it) or in execute mode (every JIT page RX). The
              toggle is per thread and covers all JIT memory at once:
              committing or reopening code switches to write mode, finalizing
              switches back. Executing JIT code while in write mode faults
              (on macOS: SIGBUS).
"""

from __future__ import annotations

import bisect
import enum
from dataclasses import dataclass
from typing import Protocol

from ..errors import ConfigError, ExecMemError, WXViolation


class Perm(enum.IntFlag):
    NONE = 0
    R = 1
    W = 2
    X = 4

    def __str__(self) -> str:
        return "".join(c if self & f else "-" for c, f in (("r", Perm.R), ("w", Perm.W), ("x", Perm.X)))


#: where the RW alias of a dual-mapped code chunk lives, relative to it
ALIAS_OFFSET = 1 << 36

RW = Perm.R | Perm.W
RX = Perm.R | Perm.X
RO = Perm.R


class Strategy(enum.Enum):
    MPROTECT = "mprotect"
    DUAL_MAP = "dual-map"
    JIT_TOGGLE = "jit-toggle"


STRATEGIES = {s.value: s for s in Strategy}


def parse_strategy(name: str | Strategy | None) -> Strategy:
    if isinstance(name, Strategy):
        return name
    if not name:
        raise ConfigError("no exec-memory strategy configured (choose one of: "
                          + ", ".join(STRATEGIES) + ")")
    try:
        return STRATEGIES[name]
    except KeyError:
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


class ExecMem:
    """One reserved region of a backend's address space."""

    def __init__(self, backend: MemoryBackend, strategy: Strategy | str | None,
                 page_size: int | None, base: int, capacity: int,
                 alias_offset: int = ALIAS_OFFSET, granule: int = 4096):
        self.strategy = parse_strategy(strategy)
        self.page_size = check_page_size(page_size, granule)
        if base % self.page_size:
            raise ConfigError(f"region base {base:#x} is not aligned to the page size {self.page_size:#x}")
        if capacity <= 0 or capacity % self.page_size:
            raise ConfigError(f"region capacity {capacity:#x} is not a positive multiple of the page size")
        self.backend = backend
        self.base = base
        self.capacity = capacity
        self.alias_offset = alias_offset
        self.next = base
        self.chunks: list[Chunk] = []
        self._starts: list[int] = []
        self.freed = False
        #: jit-toggle: is the (single emulated) thread in write mode?
        self.jit_write_mode = False

    # -- allocation -------------------------------------------------------
    def round_up(self, n: int) -> int:
        return (n + self.page_size - 1) & -self.page_size

    @property
    def used(self) -> int:
        return self.next - self.base

    def commit(self, size: int, kind: str) -> Chunk:
        """Map ``size`` bytes (rounded to pages) writable for the linker."""
        if kind not in ("code", "data"):
            raise ValueError(kind)
        self._alive()
        size = self.round_up(max(size, 1))
        if self.next + size > self.base + self.capacity:
            raise ExecMemError(
                f"exec memory region out of capacity: need {size:#x} more bytes for {kind}, "
                f"{self.base + self.capacity - self.next:#x} of {self.capacity:#x} left")
        addr = self.next
        if kind == "code" and self.strategy is Strategy.DUAL_MAP:
            alias = addr + self.alias_offset
            self.backend.map_aliased([(addr, RX), (alias, RW)], size)
            chunk = Chunk(addr, size, kind, RX, alias)
        elif kind == "code" and self.strategy is Strategy.JIT_TOGGLE:
            self.set_jit_write_mode(True)       # the JIT is about to write code
            self.backend.map(addr, size, RW)
            chunk = Chunk(addr, size, kind, RW, None)
        else:
            self.backend.map(addr, size, RW)
            chunk = Chunk(addr, size, kind, RW, None)
        self.next += size
        self._starts.append(addr)
        self.chunks.append(chunk)
        return chunk

    def chunk_at(self, addr: int) -> Chunk | None:
        i = bisect.bisect_right(self._starts, addr) - 1
        if i >= 0 and addr < self.chunks[i].end:
            return self.chunks[i]
        return None

    # -- writes -----------------------------------------------------------
    def write(self, addr: int, data: bytes) -> None:
        """A host-side write, checked against the current permissions."""
        self._alive()
        end = addr + len(data)
        pos = addr
        while pos < end:
            chunk = self.chunk_at(pos)
            if chunk is None:
                raise ExecMemError(f"write of {len(data)} bytes at {addr:#x}: "
                                   f"{pos:#x} is not committed memory of this region")
            piece = data[pos - addr:min(end, chunk.end) - addr]
            if chunk.alias is not None:
                self.backend.write_raw(chunk.alias + (pos - chunk.addr), piece)
            elif chunk.perm & Perm.W:
                self.backend.write_raw(pos, piece)
            else:
                raise WXViolation(
                    f"refused host-side write of {len(data)} bytes at {addr:#x}: the {chunk.kind} "
                    f"page at {pos & -self.page_size:#x} is {chunk.perm} (W^X: code is written "
                    "only while not executable)")
            if chunk.kind == "code":
                self.backend.flush_code(pos, len(piece))
            pos += len(piece)

    def read(self, addr: int, size: int) -> bytes:
        return self.backend.read(addr, size)

    # -- permissions ------------------------------------------------------
    def protect(self, chunk: Chunk, perm: Perm) -> None:
        """Change a chunk's permission; W together with X is refused."""
        self._alive()
        if perm & Perm.W and perm & Perm.X:
            raise WXViolation(f"refused to make {chunk.addr:#x}..{chunk.end:#x} writable and "
                              "executable at once (W^X)")
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
        self.backend.protect(chunk.addr, chunk.size, perm)
        chunk.perm = perm

    def set_jit_write_mode(self, enabled: bool) -> None:
        """jit-toggle: ``pthread_jit_write_protect_np(!enabled)`` - every
        JIT code chunk becomes RW (write mode) or RX (execute mode)."""
        if self.strategy is not Strategy.JIT_TOGGLE:
            raise ExecMemError(f"the {self.strategy.value} strategy has no per-thread JIT write toggle")
        perm = RW if enabled else RX
        for c in self.chunks:
            if c.kind == "code" and c.perm != perm:
                self.backend.protect(c.addr, c.size, perm)
                c.perm = perm
        self.jit_write_mode = enabled

    def make_executable(self, chunk: Chunk) -> None:
        self.protect(chunk, RX)

    def make_writable(self, chunk: Chunk) -> None:
        """Open a code chunk for writing again (mprotect: flip to RW;
        dual-map: nothing to do, the alias is always writable)."""
        if chunk.alias is None:
            self.protect(chunk, RW)

    # -- lifetime ---------------------------------------------------------
    def free(self) -> None:
        if self.freed:
            return
        for c in self.chunks:
            self.backend.unmap(c.addr, c.size)
            if c.alias is not None:
                self.backend.unmap(c.alias, c.size)
            if c.kind == "code":
                self.backend.flush_code(c.addr, c.size)
        self.chunks.clear()
        self._starts.clear()
        self.next = self.base
        self.freed = True

    def _alive(self):
        if self.freed:
            raise ExecMemError("exec memory region was already freed")
