"""The Windows ``VirtualAlloc`` / ``VirtualProtect`` model of the
``virtualprotect`` strategy: address-space *reservations* in allocation
granularity units (64 KiB), pages *committed* inside them.

How ExecMem's bump allocation maps onto reservations (docs/EXECMEM.md has
the long form):

* nothing is reserved up front. A commit draws pages from the end of the
  current reservation (``ExecMem.next`` onwards). When it needs more than the
  current reservation has left, **one** new reservation is made right at the
  current reservation's end (which is allocation-granularity aligned),
  covering the shortfall rounded up to the granularity (64 KiB, or the page
  size when pages are larger). Reservations are therefore contiguous, each
  with a granularity-aligned base and size, and commit results stay
  contiguous and page-aligned, exactly what the linker's layout plan assumes.
* a chunk can straddle a reservation boundary. Windows refuses a
  ``VirtualAlloc(MEM_COMMIT)`` or ``VirtualProtect`` range that spans two
  allocations, so kitemu issues one call per reservation the chunk touches
  (:meth:`Reservations.pieces`).
* a reservation is a ``PAGE_NOACCESS`` mapping (unicorn: mapped with no
  permission), and its uncommitted tail stays that way. ``free`` releases
  whole reservations (``VirtualFree(MEM_RELEASE)``).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from .perm import Perm

#: ``SYSTEM_INFO.dwAllocationGranularity`` on every Windows release so far
ALLOCATION_GRANULARITY = 0x10000

#: kitemu permission -> the Windows page protection constant
PAGE_PROTECTION = {
    Perm.NONE: "PAGE_NOACCESS",
    Perm.R: "PAGE_READONLY",
    Perm.R | Perm.W: "PAGE_READWRITE",
    Perm.X: "PAGE_EXECUTE",
    Perm.R | Perm.X: "PAGE_EXECUTE_READ",
    Perm.R | Perm.W | Perm.X: "PAGE_EXECUTE_READWRITE",   # never granted (W^X)
}


def page_protection(perm: Perm) -> str | None:
    """The ``PAGE_*`` constant for ``perm``. Write-only has none (Windows
    write access implies read), so it is None."""
    if perm & Perm.W and perm & Perm.X:
        return "PAGE_EXECUTE_READWRITE"
    return PAGE_PROTECTION.get(perm)


@dataclass(frozen=True)
class Reservation:
    """One ``VirtualAlloc(MEM_RESERVE)``: ``[base, base + size)``."""

    base: int
    size: int

    @property
    def end(self) -> int:
        return self.base + self.size


class Reservations:
    """The reservations of one region, in address order, contiguous from the
    region base."""

    def __init__(self, region_base: int, granularity: int):
        self.region_base = region_base
        self.granularity = granularity
        self.list: list[Reservation] = []
        self._bases: list[int] = []

    @property
    def end(self) -> int:
        """The first address after the last reservation (the region base
        when nothing is reserved yet)."""
        return self.list[-1].end if self.list else self.region_base

    def needed(self, end: int) -> Reservation | None:
        """The reservation to make so that ``[.., end)`` is reserved, or
        None when it already is."""
        top = self.end
        if end <= top:
            return None
        size = (end - top + self.granularity - 1) & -self.granularity
        return Reservation(top, size)

    def add(self, r: Reservation) -> None:
        assert r.base == self.end and r.base % self.granularity == 0 and r.size % self.granularity == 0
        self.list.append(r)
        self._bases.append(r.base)

    def pieces(self, addr: int, size: int) -> list[tuple[int, int]]:
        """``[addr, addr + size)`` split at reservation boundaries: the
        ranges one ``VirtualAlloc``/``VirtualProtect`` call each may cover."""
        out = []
        pos, end = addr, addr + size
        i = max(bisect.bisect_right(self._bases, addr) - 1, 0)
        while pos < end:
            if i >= len(self.list) or pos < self.list[i].base:
                raise AssertionError(f"{pos:#x} is not reserved")
            r = self.list[i]
            stop = min(end, r.end)
            if stop > pos:
                out.append((pos, stop - pos))
                pos = stop
            i += 1
        return out

    def clear(self) -> None:
        self.list.clear()
        self._bases.clear()
