"""Page permissions as kitemu spells them (the host's ``PROT_*`` /
``PAGE_*`` / unicorn's ``UC_PROT_*`` are derived from these)."""

from __future__ import annotations

import enum


class Perm(enum.IntFlag):
    NONE = 0
    R = 1
    W = 2
    X = 4

    def __str__(self) -> str:
        return "".join(c if self & f else "-" for c, f in (("r", Perm.R), ("w", Perm.W), ("x", Perm.X)))


RW = Perm.R | Perm.W
RX = Perm.R | Perm.X
RO = Perm.R
