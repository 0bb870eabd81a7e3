"""The executable-memory allocator: one reserved region, pages committed from
it, and W^X as a rule kitemu enforces itself.

Contract (docs/EXECMEM.md has the long form, per strategy and phase):

* ``reserve``: a contiguous ``[base, base + capacity)`` range is claimed for
  one image (constructing an :class:`ExecMem`). Nothing is mapped until it
  is committed.
* ``commit(size, kind)`` hands out page-aligned chunks bump-style, in
  address order, contiguous. ``kind`` is ``"code"`` or ``"data"``.
* No page is ever writable and executable at the same time, at any address.
  Host-side writes (the linker's) are checked by kitemu, because unicorn's
  ``mem_write`` ignores protection; a refused write changes nothing.
* After every write into code and every permission change of code the
  backend's translation cache for the range is flushed (unicorn would
  otherwise keep executing the old bytes).

Strategies for code chunks:

``mprotect``   (Linux, BSDs) - the chunk is mapped RW while the linker writes
               it, then flipped to RX. Writing it again means flipping back.
``dual-map``   (Apple ``MAP_JIT`` with two views, or a memfd mapped twice) - the
               same pages are mapped twice: an RX view at the chunk's address,
               where code runs, and an RW alias at ``address + alias_offset``
               where the linker writes. Neither view ever changes permission.
``jit-toggle`` (Apple silicon ``MAP_JIT`` + ``pthread_jit_write_protect_np``) -
               one view; the *thread* is either in write mode (every JIT code
               page is RW for it) or in execute mode (every JIT page RX). The
               toggle is per thread and covers all JIT memory at once (every
               jit-toggle region on the same backend): committing or
               reopening code switches to write mode, finalizing switches
               back. Executing JIT code while in write mode faults (on macOS:
               SIGBUS).
``virtualprotect`` (Windows ``VirtualAlloc`` + ``VirtualProtect``) - address
               space is reserved in 64 KiB allocation-granularity units
               (``MEM_RESERVE``, no access), pages are committed inside the
               reservations ``PAGE_READWRITE`` and flipped per page with
               ``VirtualProtect`` to ``PAGE_EXECUTE_READ`` (never
               ``PAGE_EXECUTE_READWRITE``), then ``FlushInstructionCache``.
               See :mod:`kitemu.execmem.windows` for how bump allocation maps
               onto reservations.
"""

from ..errors import WXViolation
from .core import (ALIAS_OFFSET, STRATEGIES, Chunk, ExecMem, JitThread, MemoryBackend, Strategy,
                   check_page_size, jit_thread, parse_strategy)
from .perm import RO, RW, RX, Perm
from .windows import ALLOCATION_GRANULARITY, PAGE_PROTECTION, Reservation, page_protection

__all__ = [
    "ALIAS_OFFSET", "ALLOCATION_GRANULARITY", "Chunk", "ExecMem", "JitThread", "MemoryBackend",
    "PAGE_PROTECTION", "Perm", "RO", "RW", "RX", "Reservation", "STRATEGIES", "Strategy",
    "WXViolation", "check_page_size", "jit_thread", "page_protection", "parse_strategy",
]
