"""The neutral object model every reader produces and the linker consumes.

Readers know formats; this model knows neither ELF nor Mach-O. A relocation
carries its format's type number and name (for messages) and the target's
:class:`~kitemu.targets.base.RelocSpec` (for applying it).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from ..targets.base import RelocSpec


class SectionKind(enum.Enum):
    TEXT = "text"                # allocated, executable
    RODATA = "rodata"            # allocated, read-only data
    DATA = "data"                # allocated, writable, with contents
    BSS = "bss"                  # allocated, writable, zero-filled (no contents)
    INIT_ARRAY = "init_array"    # pointers to constructors, run before the entry
    FINI_ARRAY = "fini_array"    # pointers to destructors, run after it
    PREINIT_ARRAY = "preinit_array"
    NONALLOC = "nonalloc"        # debug info, notes, comments: not loaded
    #   (DWARF sections keep their relocations for kitemu.loader.dwarf, which
    #   applies them to a host copy; the linker ignores unloaded sections)

    @property
    def loaded(self) -> bool:
        return self is not SectionKind.NONALLOC

    @property
    def writable(self) -> bool:
        return self in (SectionKind.DATA, SectionKind.BSS, SectionKind.INIT_ARRAY,
                        SectionKind.FINI_ARRAY, SectionKind.PREINIT_ARRAY)


#: Mach-O section names are at most 16 bytes: the long DWARF names are cut
_MACHO_DWARF_NAMES = {"__debug_str_offs": "debug_str_offsets"}


def dwarf_section_name(name: str) -> str | None:
    """``debug_info`` for ELF ``.debug_info`` and Mach-O ``__DWARF,__debug_info``
    (any DWARF section: ``debug_line``, ``debug_str_offsets``...); None for
    any other section name. Compressed ``.zdebug_*`` sections are not DWARF
    kitemu reads."""
    if name.startswith(".debug_"):
        return name[1:]
    if name.startswith("__DWARF,__debug_"):
        sect = name[len("__DWARF,"):]
        return _MACHO_DWARF_NAMES.get(sect, sect[2:])
    return None


class Binding(enum.Enum):
    LOCAL = "local"
    GLOBAL = "global"
    WEAK = "weak"


class SymbolType(enum.Enum):
    NOTYPE = "notype"
    FUNC = "func"
    OBJECT = "object"
    IFUNC = "ifunc"      # STT_GNU_IFUNC: value is the resolver
    SECTION = "section"
    FILE = "file"
    TLS = "tls"


class SymbolPlace(enum.Enum):
    UNDEF = "undef"
    SECTION = "section"  # defined at section + value
    ABS = "abs"          # absolute value
    COMMON = "common"    # tentative definition: value is the alignment


@dataclass
class Relocation:
    offset: int          # offset in the section being patched
    type: int            # format's relocation type number
    spec: RelocSpec
    symbol: int          # index in ObjectFile.symbols
    addend: int
    index: int = 0       # position in its relocation table (for messages)
    #: Formula.DELTA only: index of the symbol whose address is subtracted
    subtrahend: int | None = None

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass
class Section:
    index: int
    name: str
    kind: SectionKind
    align: int
    size: int
    data: bytes | None   # None for BSS
    relocations: list[Relocation] = field(default_factory=list)
    #: the format's raw section flags (ELF ``sh_flags``), for inspection;
    #: the linker decides from ``kind`` alone
    flags: int = 0
    #: DWARF sections only (kind NONALLOC, relocations kept for
    #: :mod:`kitemu.loader.dwarf`): why the reader could not read this
    #: section's relocations (it then keeps none). The linker never looks at
    #: it: a broken debug section costs line info, never the link.
    debug_problem: str | None = None
    #: the section's address in the object's own address space (Mach-O
    #: ``section_64.addr``; 0 on ELF, where every section starts at 0): an
    #: unwinder reading ``__TEXT,__eh_frame``, whose PC-relative fields the
    #: assembler resolved in that address space, needs it
    addr: int = 0

    @property
    def executable(self) -> bool:
        return self.kind is SectionKind.TEXT

    @property
    def dwarf_name(self) -> str | None:
        """The format-neutral DWARF name of a debug section (``debug_info``,
        ``debug_str_offsets``...), or None."""
        return dwarf_section_name(self.name) if self.kind is SectionKind.NONALLOC else None

    @property
    def writable(self) -> bool:
        return self.kind.writable


@dataclass
class Symbol:
    index: int
    name: str
    binding: Binding
    type: SymbolType
    place: SymbolPlace
    section: int | None  # section index when place is SECTION
    value: int
    size: int
    visibility: str = "default"

    @property
    def defined(self) -> bool:
        return self.place is not SymbolPlace.UNDEF


@dataclass
class ObjectFile:
    path: str
    format: str          # "elf" | "macho"
    target: str          # target registry name, e.g. "elf-x64"
    sections: dict[int, Section]
    symbols: list[Symbol]
    tu_name: str
    #: Mach-O MH_SUBSECTIONS_VIA_SYMBOLS: sections may be split at symbols
    #: (for dead stripping); kitemu keeps sections whole, which is correct
    subsections_via_symbols: bool = False

    def describe_reloc(self, sec: Section, rel: Relocation) -> str:
        """The phrase every relocation error uses to name its relocation."""
        sym = self.symbols[rel.symbol] if rel.symbol < len(self.symbols) else None
        target = sym.name if sym and sym.name else (
            f"section {self.sections[sym.section].name}" if sym and sym.section in self.sections
            else f"symbol #{rel.symbol}")
        sign = "+" if rel.addend >= 0 else "-"
        if rel.subtrahend is not None and rel.subtrahend < len(self.symbols):
            target += f" - {self.symbols[rel.subtrahend].name or f'symbol #{rel.subtrahend}'}"
        return (f"{self.path}: section {sec.name}: relocation #{rel.index} {rel.name} "
                f"at offset {rel.offset:#x} against {target} {sign} {abs(rel.addend):#x}")
