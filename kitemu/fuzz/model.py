"""A *relocation case*: input objects described as plain data.

A case is what the fuzzer generates, checks, shrinks and writes to a replay
file: one or more objects (sections with their bytes, symbols, relocations)
plus the image base and capacity the link uses. It serialises to JSON
(``to_json``/``from_json``) and turns into kitemu's neutral object model
(``to_objects``), so the same case can be linked by kitemu, written as a
real ELF object (:mod:`kitemu.fuzz.elfwriter`) for ld.lld, or replayed
later on another machine.

Relocation kinds are named by *label* (:func:`catalogue`): the ELF type
name for ELF targets (``R_AARCH64_CALL26``); for Mach-O targets the type
name, qualified by the fixup where one type maps onto several fields
(``ARM64_RELOC_PAGEOFF12:Ldst64Lo12``, ``X86_64_RELOC_UNSIGNED:Data32``).
The Mach-O reader is not under test here: Mach-O cases use the arch's
Mach-O relocation specs through the model directly.
"""

from __future__ import annotations

import functools
import json
from dataclasses import asdict, dataclass, field

from ..loader.model import (Binding, ObjectFile, Relocation, Section, SectionKind, Symbol,
                            SymbolPlace, SymbolType)
from ..targets import get_target
from ..targets.base import RelocSpec

#: every target the fuzzer knows
FUZZ_TARGETS = ("elf-x64", "elf-aarch64", "elf-rv64", "macho-x64", "macho-arm64")

REPLAY_VERSION = 1


@dataclass(frozen=True)
class Kind:
    """One relocation kind of one target."""

    label: str
    rtype: int            # the format's type number
    spec: RelocSpec

    @property
    def fixup(self):
        return self.spec.fixup

    @property
    def size(self) -> int:
        return self.spec.fixup.size if self.spec.fixup else 0


def _short(fixup) -> str:
    return fixup.name.split(".", 1)[-1] if fixup else "none"


@functools.lru_cache(maxsize=None)
def catalogue(target: str) -> dict[str, Kind]:
    """label -> Kind for every relocation kind of ``target``, in a stable order."""
    t = get_target(target)
    arch = t.arch
    out: dict[str, Kind] = {}
    if t.format == "elf":
        for rtype, spec in arch.elf_relocs.items():
            out.setdefault(spec.name, Kind(spec.name, rtype, spec))
        return out
    mod = __import__(f"kitemu.targets.{t.arch_module}", fromlist=["MACHO_RELOCS"])
    specs: list[tuple[int, RelocSpec]] = [(k[0], s) for k, s in mod.MACHO_RELOCS.items()]
    if hasattr(mod, "MACHO_PAGEOFF12"):
        specs += [(mod.ARM64_RELOC_PAGEOFF12, s) for s in mod.MACHO_PAGEOFF12.values()]
        specs += [(mod.ARM64_RELOC_GOT_LOAD_PAGEOFF12, mod.MACHO_GOT_PAGEOFF12)]
    specs += [(arch.macho_subtractor, s) for s in mod.MACHO_DELTA.values()]
    names = [s.name for _, s in specs]
    for rtype, spec in specs:
        label = spec.name if names.count(spec.name) == 1 else f"{spec.name}:{_short(spec.fixup)}"
        out[label] = Kind(label, rtype, spec)
    return out


def kind_of(target: str, label: str) -> Kind:
    try:
        return catalogue(target)[label]
    except KeyError:
        raise ValueError(f"unknown relocation kind {label!r} for {target}") from None


# ---------------------------------------------------------------------------
# The case model


@dataclass
class CaseReloc:
    offset: int
    label: str
    symbol: int               # index into the object's symbols
    addend: int = 0
    subtrahend: int | None = None    # Formula.DELTA (Mach-O SUBTRACTOR pairs)


@dataclass
class CaseSection:
    index: int
    name: str
    kind: str                 # SectionKind value
    align: int
    size: int
    data: bytes | None        # None: zero-fill (BSS)
    relocs: list[CaseReloc] = field(default_factory=list)


@dataclass
class CaseSymbol:
    name: str
    binding: str = "global"   # Binding value
    type: str = "notype"      # SymbolType value
    place: str = "section"    # SymbolPlace value
    section: int | None = None
    value: int = 0
    size: int = 0


@dataclass
class CaseObject:
    path: str
    sections: list[CaseSection]
    symbols: list[CaseSymbol]     # symbols[0] is the null symbol

    def section(self, index: int) -> CaseSection:
        return next(s for s in self.sections if s.index == index)


@dataclass
class RelocCase:
    target: str
    base: int
    capacity: int
    objects: list[CaseObject]
    #: what the generator meant (primary kind, distance class, wanted
    #: value...): informational, never used by the checks
    note: dict = field(default_factory=dict)

    # -- iteration helpers --------------------------------------------------
    def relocations(self):
        """(object index, section, relocation index, CaseReloc) of every relocation."""
        for oi, obj in enumerate(self.objects):
            for sec in obj.sections:
                for ri, rel in enumerate(sec.relocs):
                    yield oi, sec, ri, rel

    def kinds(self) -> set[str]:
        return {rel.label for _, _, _, rel in self.relocations()}

    # -- kitemu's model -------------------------------------------------------
    def to_objects(self) -> list[ObjectFile]:
        t = get_target(self.target)
        cat = catalogue(self.target)
        out = []
        for obj in self.objects:
            syms = []
            for i, s in enumerate(obj.symbols):
                syms.append(Symbol(i, s.name, Binding(s.binding), SymbolType(s.type),
                                   SymbolPlace(s.place), s.section, s.value, s.size))
            sections = {}
            for sec in obj.sections:
                relocs = []
                for ri, r in enumerate(sec.relocs):
                    k = cat[r.label]
                    relocs.append(Relocation(r.offset, k.rtype, k.spec, r.symbol, r.addend, ri,
                                             r.subtrahend))
                sections[sec.index] = Section(sec.index, sec.name, SectionKind(sec.kind), sec.align,
                                              sec.size, None if sec.data is None else bytes(sec.data),
                                              relocs)
            out.append(ObjectFile(obj.path, t.format, self.target, sections, syms, obj.path))
        return out

    # -- JSON -----------------------------------------------------------------
    def to_dict(self) -> dict:
        d = asdict(self)
        for obj in d["objects"]:
            for sec in obj["sections"]:
                if sec["data"] is not None:
                    sec["data"] = bytes(sec["data"]).hex()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "RelocCase":
        objects = []
        for o in d["objects"]:
            secs = [CaseSection(s["index"], s["name"], s["kind"], s["align"], s["size"],
                                None if s["data"] is None else bytes.fromhex(s["data"]),
                                [CaseReloc(**r) for r in s["relocs"]]) for s in o["sections"]]
            objects.append(CaseObject(o["path"], secs, [CaseSymbol(**y) for y in o["symbols"]]))
        return cls(d["target"], d["base"], d["capacity"], objects, dict(d.get("note", {})))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_json(cls, text: str) -> "RelocCase":
        return cls.from_dict(json.loads(text))

    def describe(self) -> str:
        """A short human-readable listing of the case."""
        lines = [f"{self.target} base {self.base:#x} capacity {self.capacity:#x}"]
        for obj in self.objects:
            lines.append(f"  {obj.path}:")
            for sec in obj.sections:
                lines.append(f"    [{sec.index}] {sec.name} {sec.kind} align {sec.align} "
                             f"size {sec.size:#x}")
                for ri, r in enumerate(sec.relocs):
                    sym = obj.symbols[r.symbol].name if r.symbol < len(obj.symbols) else "?"
                    sub = f" - {obj.symbols[r.subtrahend].name}" if r.subtrahend is not None else ""
                    lines.append(f"      #{ri} {r.label} @ {r.offset:#x} -> {sym or '#' + str(r.symbol)}"
                                 f"{sub} {r.addend:+#x}")
            for i, s in enumerate(obj.symbols[1:], 1):
                where = f"[{s.section}]+{s.value:#x}" if s.place == "section" else \
                    (f"= {s.value:#x}" if s.place == "abs" else s.place)
                lines.append(f"    sym {i} {s.name} {s.binding} {where}")
        return "\n".join(lines)


def null_symbol() -> CaseSymbol:
    return CaseSymbol("", "local", "notype", "undef", None, 0, 0)
