"""ELF64 little-endian relocatable objects (ET_REL) -> the neutral model.

pyelftools parses headers, sections and symbols; relocation tables are
unpacked raw with ``struct.iter_unpack`` (about 50x faster than pyelftools'
``iter_relocations`` on large objects). Every failure becomes an
:class:`ObjectFormatError` that names the file and, where known, the section
and relocation.

Relocations of unloaded sections are skipped, except those of DWARF
sections (``.debug_*``), which :mod:`kitemu.loader.dwarf` applies to a host
copy (the linker never does); one kitemu cannot read is recorded in the
section's ``debug_problem`` instead of failing the read.
"""

from __future__ import annotations

import io
import os
import struct

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from ..errors import ObjectFormatError, UnsupportedRelocation
from ..targets import ELF_MACHINE_TO_TARGET, get_target
from .guard import PARSE_ERRORS, parse_guarded, read_input
from .model import (Binding, ObjectFile, Relocation, Section, SectionKind,
                    Symbol, SymbolPlace, SymbolType)

SHF_WRITE, SHF_ALLOC, SHF_EXECINSTR, SHF_TLS, SHF_COMPRESSED = 0x1, 0x2, 0x4, 0x400, 0x800

_BINDINGS = {"STB_LOCAL": Binding.LOCAL, "STB_GLOBAL": Binding.GLOBAL,
             "STB_WEAK": Binding.WEAK, "STB_GNU_UNIQUE": Binding.GLOBAL}
_TYPES = {"STT_NOTYPE": SymbolType.NOTYPE, "STT_FUNC": SymbolType.FUNC,
          "STT_OBJECT": SymbolType.OBJECT, "STT_GNU_IFUNC": SymbolType.IFUNC,
          "STT_LOOS": SymbolType.IFUNC, "STT_SECTION": SymbolType.SECTION,
          "STT_FILE": SymbolType.FILE, "STT_TLS": SymbolType.TLS,
          "STT_COMMON": SymbolType.OBJECT}

ELF_MAGIC = b"\x7fELF"


def is_elf(data: bytes) -> bool:
    return data[:4] == ELF_MAGIC


def read_elf(path: str, data: bytes | None = None) -> ObjectFile:
    """Read one ELF relocatable object."""
    if data is None:
        data = read_input(path)
    return parse_guarded(path, "truncated or corrupt ELF object",
                         lambda: _Reader(path, data).read(), (ELFError,))


class _Reader:
    def __init__(self, path: str, data: bytes):
        self.path = path
        self.data = data

    def fail(self, msg, **kw):
        raise ObjectFormatError(self.path, msg, **kw)

    def read(self) -> ObjectFile:
        data = self.data
        if not is_elf(data):
            self.fail("not an ELF file (bad magic)")
        if len(data) < 64:
            self.fail(f"truncated ELF header ({len(data)} bytes, need 64)")
        if data[4] != 2:
            self.fail("only ELFCLASS64 objects are supported")
        if data[5] != 1:
            self.fail("only little-endian objects are supported")
        elf = ELFFile(io.BytesIO(data))
        if elf["e_type"] != "ET_REL":
            self.fail(f"not a relocatable object (e_type {elf['e_type']}); kitemu links .o files")
        machine = elf["e_machine"]
        target_name = ELF_MACHINE_TO_TARGET.get(machine)
        if target_name is None:
            self.fail(f"unsupported machine {machine}")
        self.arch = get_target(target_name).arch
        shoff, shnum, shentsize = elf["e_shoff"], elf["e_shnum"], elf["e_shentsize"]
        if shentsize != 64 or shoff + shnum * shentsize > len(data):
            self.fail("section header table lies outside the file (truncated?)")

        self.elf = elf
        raw_sections = [elf.get_section(i) for i in range(elf.num_sections())]
        for i, s in enumerate(raw_sections):
            if s["sh_type"] != "SHT_NOBITS" and s["sh_offset"] + s["sh_size"] > len(data):
                self.fail("section contents lie outside the file (truncated?)", section=s.name or f"#{i}")

        sections: dict[int, Section] = {}
        for i, s in enumerate(raw_sections):
            sec = self._section(i, s)
            if sec is not None:
                sections[i] = sec
        symbols = self._symbols(raw_sections, sections)
        for s in raw_sections:
            if s["sh_type"] == "SHT_REL":
                target = sections.get(s["sh_info"])
                if target is not None and target.dwarf_name is not None:
                    target.debug_problem = (f"{self.path}: section {s.name}: SHT_REL relocations "
                                            "(implicit addends) are not supported")
                    continue
                self.fail("SHT_REL relocations (implicit addends) are not supported; "
                          "expected SHT_RELA", section=s.name)
            if s["sh_type"] == "SHT_RELA":
                self._relocations(s, raw_sections, sections, symbols)
        tu = next((sym.name for sym in symbols if sym.type is SymbolType.FILE and sym.name),
                  os.path.basename(self.path))
        return ObjectFile(self.path, "elf", target_name, sections, symbols, tu)

    def _section(self, index, s) -> Section | None:
        stype, flags = s["sh_type"], s["sh_flags"]
        if index == 0 or stype in ("SHT_NULL", "SHT_SYMTAB", "SHT_STRTAB", "SHT_RELA",
                                   "SHT_REL", "SHT_GROUP", "SHT_SYMTAB_SHNDX"):
            return None
        if not flags & SHF_ALLOC:
            kind = SectionKind.NONALLOC
        elif flags & SHF_TLS:
            self.fail("thread-local storage is not supported", section=s.name)
        elif stype == "SHT_INIT_ARRAY":
            kind = SectionKind.INIT_ARRAY
        elif stype == "SHT_FINI_ARRAY":
            kind = SectionKind.FINI_ARRAY
        elif stype == "SHT_PREINIT_ARRAY":
            kind = SectionKind.PREINIT_ARRAY
        elif stype == "SHT_NOBITS":
            kind = SectionKind.BSS
        elif flags & SHF_EXECINSTR:
            if flags & SHF_WRITE:
                self.fail("section is both writable and executable (W^X)", section=s.name)
            kind = SectionKind.TEXT
        elif flags & SHF_WRITE:
            kind = SectionKind.DATA
        else:
            kind = SectionKind.RODATA
        align = max(1, s["sh_addralign"])
        if align & (align - 1):
            self.fail(f"alignment {align} is not a power of two", section=s.name)
        data = None if kind is SectionKind.BSS else s.data()
        size = s["sh_size"]
        if flags & SHF_COMPRESSED and kind is SectionKind.NONALLOC:
            size = len(data)    # pyelftools inflates (clang -gz): relocations patch that
        return Section(index, s.name, kind, align, size, data, flags=flags)

    def _symbols(self, raw_sections, sections) -> list[Symbol]:
        symtab = next((s for s in raw_sections if s["sh_type"] == "SHT_SYMTAB"), None)
        if symtab is None:
            return []
        if symtab["sh_entsize"] != 24:
            self.fail(f"bad symbol entry size {symtab['sh_entsize']}", section=symtab.name)
        out = []
        for i, sym in enumerate(symtab.iter_symbols()):
            info = sym["st_info"]
            shndx = sym["st_shndx"]
            stype = _TYPES.get(info["type"], SymbolType.NOTYPE)
            section = None
            if shndx == "SHN_UNDEF":
                place = SymbolPlace.UNDEF
            elif shndx == "SHN_ABS":
                place = SymbolPlace.ABS
            elif shndx == "SHN_COMMON":
                place = SymbolPlace.COMMON
            elif isinstance(shndx, int):
                place = SymbolPlace.SECTION
                section = shndx
                if not 0 < shndx < len(raw_sections):
                    self.fail(f"symbol {sym.name or i!r} refers to section index {shndx}, "
                              f"which does not exist", section=symtab.name)
            else:
                self.fail(f"symbol {sym.name!r} has unsupported section index {shndx}",
                          section=symtab.name)
            if stype is SymbolType.SECTION and section is not None and not sym.name:
                name = raw_sections[section].name
            else:
                name = sym.name
            out.append(Symbol(i, name, _BINDINGS.get(info["bind"], Binding.GLOBAL), stype,
                              place, section, sym["st_value"], sym["st_size"],
                              sym["st_other"]["visibility"].replace("STV_", "").lower()))
        return out

    def _relocations(self, rs, raw_sections, sections, symbols):
        target_index = rs["sh_info"]
        if not 0 < target_index < len(raw_sections):
            self.fail(f"relocation section applies to section index {target_index}, "
                      "which does not exist", section=rs.name)
        sec = sections.get(target_index)
        if sec is None:
            return
        if sec.kind is SectionKind.NONALLOC:
            if sec.dwarf_name is None:
                return  # notes, comments: never relocated
            # DWARF: kept for kitemu.loader.dwarf (the linker never applies
            # them); a relocation kitemu cannot read costs line info only
            try:
                self._relocation_entries(rs, sec, symbols)
            except (ObjectFormatError,) + PARSE_ERRORS as e:
                sec.relocations = []
                sec.debug_problem = str(e)
            return
        self._relocation_entries(rs, sec, symbols)

    def _relocation_entries(self, rs, sec, symbols):
        if rs["sh_entsize"] != 24 or rs["sh_size"] % 24:
            self.fail(f"bad relocation entry size {rs['sh_entsize']}", section=rs.name)
        raw = self.data[rs["sh_offset"]:rs["sh_offset"] + rs["sh_size"]]
        relocs = self.arch.elf_relocs
        for n, (offset, info, addend) in enumerate(struct.iter_unpack("<QQq", raw)):
            rtype, symidx = info & 0xFFFFFFFF, info >> 32
            spec = relocs.get(rtype)
            if spec is None:
                raise UnsupportedRelocation(
                    self.path, f"unsupported relocation type {rtype} for {self.arch.name}",
                    section=sec.name, relocation=f"#{n} at offset {offset:#x}")
            if symidx >= len(symbols):
                self.fail(f"symbol index {symidx} is out of range ({len(symbols)} symbols)",
                          section=sec.name, relocation=f"#{n} {spec.name} at offset {offset:#x}")
            size = spec.fixup.size if spec.fixup else 0
            if offset + size > sec.size:
                self.fail(f"patches bytes {offset:#x}..{offset + size:#x} past the section end "
                          f"({sec.size:#x})", section=sec.name,
                          relocation=f"#{n} {spec.name} at offset {offset:#x}")
            sec.relocations.append(Relocation(offset, rtype, spec, symidx, addend, n))
