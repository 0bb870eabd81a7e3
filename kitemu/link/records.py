"""Durable link records: what each link stage did, and every applied fixup.

Two uses today:

* **J-stage markers** (roadmap §3.4): a link records its stages in order
  (reserve, copy, fixup groups per fixup kind, stubs/GOT, finalize perms, and
  at run time ifunc/init/entry/fini). A crash names the stage it happened in
  instead of a bare "Segmentation fault".
* **Relocation records**: every applied fixup (apply id, input, section,
  offset, kind, target symbol, addend, value written, place and target
  addresses). A fault report names the relocation that *wrote* the faulting
  address (the PC or data address lies inside a patched field) or that
  *produced* it (its target address ``S + A`` equals the faulting address).
  :class:`RelocIndex` is the patch-site index built on these records.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class RelocRecord:
    apply_id: int
    input: str            # object file path
    section: str
    offset: int           # in the input section
    kind: str             # relocation type name, e.g. R_AARCH64_CALL26
    fixup: str            # arch fixup kind, e.g. aarch64.Branch26
    symbol: str           # target symbol name (or section+offset)
    addend: int
    value: int            # the formula's value, as encoded
    place: int            # address of the patched field
    size: int             # bytes written at ``place``
    target: int | None    # S + A (the address the relocation points at), if any
    via: str = ""         # "stub", "island", "got" when not direct
    generation: int = 0

    def describe(self) -> str:
        sign = "+" if self.addend >= 0 else "-"
        via = f" via {self.via}" if self.via else ""
        return (f"{self.input}: section {self.section}: relocation {self.kind} at offset "
                f"{self.offset:#x} against {self.symbol} {sign} {abs(self.addend):#x}{via} "
                f"(apply #{self.apply_id}, wrote {self.value:#x} at {self.place:#x})")


@dataclass
class Stage:
    name: str
    detail: str = ""
    seconds: float | None = 0.0    # None: a group within the previous stage
    count: int = 0

    def render(self) -> str:
        count = f" [{self.count}]" if self.count else ""
        detail = f": {self.detail}" if self.detail else ""
        took = "" if self.seconds is None else f" ({self.seconds * 1e3:.2f} ms)"
        return f"J-stage {self.name}{count}{detail}{took}"


@dataclass
class StageLog:
    stages: list[Stage] = field(default_factory=list)
    _t0: float = field(default_factory=time.perf_counter)

    def mark(self, name: str, detail: str = "", count: int = 0) -> Stage:
        """A stage that just ended (its time runs from the previous mark)."""
        now = time.perf_counter()
        st = Stage(name, detail, now - self._t0, count)
        self._t0 = now
        self.stages.append(st)
        return st

    def group(self, name: str, count: int) -> Stage:
        """An untimed part of the previous stage (e.g. one fixup kind)."""
        st = Stage(name, "", None, count)
        self.stages.append(st)
        return st

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.stages]

    def render(self) -> str:
        return "\n".join(s.render() for s in self.stages)


class RelocIndex:
    """Every applied fixup of an image, indexed; grows with each append at a
    cost proportional to the records added, whatever the image's size.

    The patch-site index of the roadmap (§1.8) is three of its maps:
    ``by_symbol`` (target symbol -> apply ids), ``by_input`` (owning input
    -> apply ids) and ``by_section`` ((input, written section) -> apply
    ids). Apply ids are dense: ``records[i].apply_id == i``. A site
    re-applied later (a staged relocation) has several records; the last
    one wrote the bytes that are there now."""

    #: granularity of the place index: a field is listed under every bucket
    #: it touches, so ``wrote`` looks at one bucket
    BUCKET = 64

    def __init__(self, records: list[RelocRecord] = ()):
        self.records: list[RelocRecord] = []
        self.by_symbol: dict[str, list[int]] = {}
        self.by_input: dict[str, list[int]] = {}
        self.by_section: dict[tuple[str, str], list[int]] = {}
        self._by_bucket: dict[int, list[RelocRecord]] = {}
        self._by_target: dict[int, list[RelocRecord]] = {}
        self.add(records)

    def add(self, records: list[RelocRecord]) -> None:
        for r in records:
            if r.apply_id != len(self.records):
                raise AssertionError(f"apply id {r.apply_id} out of sequence "
                                     f"(expected {len(self.records)})")
            self.records.append(r)
            i = r.apply_id
            self.by_symbol.setdefault(r.symbol, []).append(i)
            self.by_input.setdefault(r.input, []).append(i)
            self.by_section.setdefault((r.input, r.section), []).append(i)
            for b in range(r.place // self.BUCKET, (r.place + max(r.size, 1) - 1) // self.BUCKET + 1):
                self._by_bucket.setdefault(b, []).append(r)
            if r.target is not None:
                self._by_target.setdefault(r.target, []).append(r)

    def sites(self, symbol: str) -> list[RelocRecord]:
        """The records of every fixup against ``symbol``, in apply order."""
        return [self.records[i] for i in self.by_symbol.get(symbol, ())]

    def wrote(self, addr: int) -> RelocRecord | None:
        """The last record whose patched bytes contain ``addr``."""
        best = None
        for r in self._by_bucket.get(addr // self.BUCKET, ()):
            if r.place <= addr < r.place + max(r.size, 1):
                if best is None or r.apply_id > best.apply_id:
                    best = r
        return best

    def produced(self, addr: int) -> RelocRecord | None:
        """The last record whose target address is ``addr``."""
        rs = self._by_target.get(addr)
        return max(rs, key=lambda r: r.apply_id) if rs else None

    def about(self, addr: int | None) -> tuple[str, RelocRecord] | None:
        if addr is None:
            return None
        r = self.wrote(addr)
        if r is not None:
            return "wrote", r
        r = self.produced(addr)
        if r is not None:
            return "produced", r
        return None
