"""Mach-O 64-bit little-endian relocatable objects (MH_OBJECT) -> the neutral model.

The format is read by hand with ``struct`` (the header, load commands,
``section_64`` and ``nlist_64`` entries, ``relocation_info``); every failure
is an :class:`ObjectFormatError` naming the file and, where known, the
section and relocation - never another exception type.

What this reader decides, and why:

* **Sections** are named ``"SEGMENT,section"`` (``__TEXT,__text``), so a
  message is unambiguous (``__TEXT,__const`` and ``__DATA,__const`` are
  different sections). Their model index is the 1-based *section ordinal*
  that non-extern relocations and ``n_sect`` use. Kinds:

  ==========================================================  ==========
  S_ATTR_DEBUG, segment ``__DWARF``, ``__LLVM`` (bitcode)      NONALLOC
  ``__LD,__compact_unwind``                                    NONALLOC
  ``__TEXT,__eh_frame``                                        NONALLOC
  S_ZEROFILL / S_GB_ZEROFILL (``__bss``, ``__common``)         BSS
  S_MOD_INIT_FUNC_POINTERS (``__mod_init_func``)               INIT_ARRAY
  S_MOD_TERM_FUNC_POINTERS (``__mod_term_func``)               FINI_ARRAY
  S_ATTR_PURE/SOME_INSTRUCTIONS, ``__text``, ``__StaticInit``  TEXT
  other ``__TEXT`` (cstring, literals, const...), ``__DATA,__const``,
  segment ``__DATA_CONST``                                     RODATA
  anything else (``__DATA,__data``...)                         DATA
  ==========================================================  ==========

  ``__DWARF,__debug_*`` sections keep their relocations (for
  :mod:`kitemu.loader.dwarf`, which applies them to a host copy; the linker
  never does): one kitemu cannot read is recorded in the section's
  ``debug_problem`` instead of failing the read.
  ``__LD,__compact_unwind`` is the input of ld64's unwind-info table: it is
  not loaded (its relocations are not applied). ``__TEXT,__eh_frame`` is not
  loaded either: llvm-mc resolves some of its fields at assembly time without
  a relocation (on x86-64 an FDE's ``pc_begin`` is a difference computed in
  the object's own address space), because ld64 and JITLink parse the CFI
  records and rebuild those edges themselves; loaded verbatim, its pointers
  would be wrong once kitemu places ``__text`` and ``__eh_frame`` in
  different segments. Its bytes stay in the model, with every section's
  object-space address (``Section.addr``), for :mod:`kitemu.dbg.unwind`,
  which reads the CFI in that address space and maps it to the runtime one.
  Thread-local sections, indirect-symbol sections (stubs, lazy/non-lazy
  pointers, which need LC_DYSYMTAB's indirect symbol table) and
  S_INIT_FUNC_OFFSETS are refused with a clear error.
  ``Section.flags`` is the raw ``flags`` word; alignment is ``2**align``.

* **Symbols** keep their ``nlist_64`` index (relocations use it) and their
  name exactly (``_main``; the target's ``symbol_prefix`` maps C names).
  N_STAB entries become unnamed placeholders (a relocation against one is
  an error). N_EXT -> GLOBAL, N_EXT|N_PEXT (private extern) -> GLOBAL with
  visibility "hidden", N_PEXT without N_EXT (already made local) -> LOCAL;
  N_WEAK_DEF -> a WEAK definition, N_WEAK_REF on an undefined -> a WEAK
  reference; N_SECT values are addresses in the object's single address
  space and become section-relative; N_UNDF with a value is a COMMON of that
  size (alignment ``2**GET_COMM_ALIGN(n_desc)``, natural alignment up to 16
  when that is 0); N_ABS -> ABS. N_INDR, N_PBUD and N_SYMBOL_RESOLVER are
  refused. Assembler-temporary names that reach the table (``ltmp0``,
  ``l_.str``, ``L_str`` in a literal section) are ordinary local symbols.
  Mach-O symbols have no size: a defined symbol's size is the distance to
  the next symbol of its section (for fault reports). One synthetic local
  SECTION symbol per section (value 0, named like the section) is appended
  *after* the ``nlist_64`` entries, so non-extern relocations point at
  "section + addend" like ELF section symbols.

* **MH_SUBSECTIONS_VIA_SYMBOLS** (``.subsections_via_symbols``) lets a
  linker split sections at symbols and dead-strip the pieces. kitemu keeps
  sections whole, which is correct (just no dead-stripping); the flag is
  kept as ``ObjectFile.subsections_via_symbols``.

* **tu_name**: Mach-O objects carry no STT_FILE; an N_SO stab naming the
  source file is used when there is one, else the file's name.

Relocations
-----------

Each ``relocation_info`` is 8 bytes: ``r_address`` (int32, the offset in the
section; a set high bit would mean a *scattered* relocation, which 64-bit
objects never use and which is refused), then ``r_symbolnum:24 r_pcrel:1
r_length:2 r_extern:1 r_type:4``. Mach-O addends are implicit (stored in the
field at the place). The arch module turns a relocation into the model's
explicit-addend form through this protocol (``kitemu.targets.x64`` and
``aarch64`` implement it; the Mach-O type tables and addend rules live
there, written as the Mach-O headers describe them):

* ``macho_reloc_name(type) -> str | None`` (None: unknown type);
* ``macho_unsigned``, ``macho_subtractor``, ``macho_addend`` (type numbers;
  ``macho_addend`` None when the arch has no ADDEND prefix);
* ``macho_reloc(type, pcrel, length, extern, data, off) -> (RelocSpec,
  addend)``: the spec of an unpaired relocation and, for an extern one, its
  explicit addend. It raises NotImplementedError for a refused kind (TLV...)
  and ValueError for a malformed one;
* ``macho_takes_addend(type)``: may an ADDEND precede this type?
* ``macho_delta(length) -> RelocSpec``: the Formula.DELTA spec of a
  SUBTRACTOR/UNSIGNED pair of that r_length.

What this module adds, format-wide:

* **non-extern** relocations (``r_symbolnum`` = section ordinal): the
  assembler has already applied them in the object's own address space,
  where the section lies at its ``addr``. So the field holds the formula's
  value there, and with the section's synthetic symbol (``S_obj`` = the
  section's ``addr``) the explicit addend is ``field - S_obj`` for an
  absolute one (``S + A``) and ``field + P_obj - S_obj`` for a PC-relative
  one (``S + A - P``, ``P_obj`` = the place's address in the object). This
  is right whatever the field counts from (the end of the instruction, 1/2/4
  bytes past the field for X86_64_RELOC_SIGNED_1/2/4), since the assembler
  already accounted for it;
* a **SUBTRACTOR** followed by its UNSIGNED (same place, same r_length)
  becomes ONE relocation ``S + A - T``: symbol = the UNSIGNED's target,
  subtrahend = the SUBTRACTOR's, ``A`` = the field (signed), less the
  minuend section's ``addr`` when the UNSIGNED is non-extern, plus the
  subtrahend section's ``addr`` when the SUBTRACTOR is non-extern (the
  assembler folded those absolute addresses into the field);
* an **ADDEND** (arm64) carries a 24-bit signed addend in ``r_symbolnum``
  for the next relocation, which must be a kind that takes one, at the same
  place; the pair becomes one relocation.

A model relocation's ``index`` is the position of its first table entry
other than an ADDEND (the SUBTRACTOR of a pair), so messages say
"relocation #N" as ``llvm-objdump --macho -r`` would count (from the top).
"""

from __future__ import annotations

import os
import struct

from ..errors import ObjectFormatError, UnsupportedRelocation
from ..targets import MACHO_CPU_TO_TARGET, get_target
from ..targets.base import Formula, sign_extend
from .guard import PARSE_ERRORS, parse_guarded, read_input
from .model import (Binding, ObjectFile, Relocation, Section, SectionKind,
                    Symbol, SymbolPlace, SymbolType)

# -- <mach-o/loader.h>, <mach-o/fat.h> ------------------------------------------
MH_MAGIC_64 = 0xFEEDFACF
MH_MAGIC_64_BYTES = struct.pack("<I", MH_MAGIC_64)         # cf fa ed fe
_REFUSED_MAGICS = {
    struct.pack("<I", 0xFEEDFACE): "a 32-bit Mach-O file (MH_MAGIC); kitemu reads 64-bit "
                                   "objects (MH_MAGIC_64) only",
    struct.pack(">I", 0xFEEDFACE): "a big-endian 32-bit Mach-O file (MH_CIGAM); kitemu reads "
                                   "64-bit little-endian objects only",
    struct.pack(">I", 0xFEEDFACF): "a big-endian Mach-O file (MH_CIGAM_64); kitemu reads "
                                   "little-endian objects only",
    struct.pack(">I", 0xCAFEBABE): "a universal (fat) Mach-O file; extract one architecture "
                                   "first (lipo -thin ARCH)",
    struct.pack(">I", 0xCAFEBABF): "a universal (fat, 64-bit) Mach-O file; extract one "
                                   "architecture first (lipo -thin ARCH)",
    struct.pack("<I", 0xCAFEBABE): "a byte-swapped universal (fat) Mach-O file; extract one "
                                   "architecture first (lipo -thin ARCH)",
}
_FILETYPES = {1: "MH_OBJECT", 2: "MH_EXECUTE", 3: "MH_FVMLIB", 4: "MH_CORE", 5: "MH_PRELOAD",
              6: "MH_DYLIB", 7: "MH_DYLINKER", 8: "MH_BUNDLE", 9: "MH_DYLIB_STUB", 10: "MH_DSYM",
              11: "MH_KEXT_BUNDLE", 12: "MH_FILESET"}
MH_OBJECT = 1
MH_SUBSECTIONS_VIA_SYMBOLS = 0x2000
CPU_TYPE_NAMES = {0x01000007: "x86_64", 0x0100000C: "arm64", 0x0200000C: "arm64_32",
                  7: "i386", 12: "arm", 18: "powerpc", 0x01000012: "powerpc64"}

LC_SEGMENT = 0x1
LC_SYMTAB = 0x2
LC_SEGMENT_64 = 0x19
#: load commands an object may carry that kitemu deliberately ignores: they
#: inform tools other than a static linker of objects (or a linker that
#: builds an image for an OS; kitemu builds none). Unknown commands are
#: ignored too, once their cmdsize has been checked.
IGNORED_COMMANDS = {
    0xB: "LC_DYSYMTAB",                    # symbol table partitions; indirect symbols are refused
    0x1B: "LC_UUID",
    0x24: "LC_VERSION_MIN_MACOSX",         # minimum OS: kitemu models no OS version
    0x25: "LC_VERSION_MIN_IPHONEOS",
    0x2F: "LC_VERSION_MIN_TVOS",
    0x30: "LC_VERSION_MIN_WATCHOS",
    0x32: "LC_BUILD_VERSION",
    0x29: "LC_DATA_IN_CODE",               # data ranges in code: for disassemblers
    0x2D: "LC_LINKER_OPTION",              # auto-linking (-lSystem...): host functions stand in
    0x2E: "LC_LINKER_OPTIMIZATION_HINT",   # ADRP/LDR relaxation hints: kitemu never relaxes
    0x31: "LC_NOTE",
}
_HEADER = struct.Struct("<IiiIIIII")          # mach_header_64
_LOAD_COMMAND = struct.Struct("<II")
_SEGMENT_64 = struct.Struct("<II16sQQQQiiII")  # segment_command_64
_SECTION_64 = struct.Struct("<16s16sQQIIIIIIII")
_SYMTAB = struct.Struct("<IIIIII")            # symtab_command
_NLIST_64 = struct.Struct("<IBBHQ")
_RELOC = struct.Struct("<iI")

# section types (flags & SECTION_TYPE) and attributes
SECTION_TYPE = 0xFF
S_REGULAR, S_ZEROFILL, S_CSTRING_LITERALS = 0x0, 0x1, 0x2
S_NON_LAZY_SYMBOL_POINTERS, S_LAZY_SYMBOL_POINTERS, S_SYMBOL_STUBS = 0x6, 0x7, 0x8
S_MOD_INIT_FUNC_POINTERS, S_MOD_TERM_FUNC_POINTERS = 0x9, 0xA
S_GB_ZEROFILL = 0xC
S_LAZY_DYLIB_SYMBOL_POINTERS = 0x10
S_THREAD_LOCAL_TYPES = {0x11: "S_THREAD_LOCAL_REGULAR", 0x12: "S_THREAD_LOCAL_ZEROFILL",
                        0x13: "S_THREAD_LOCAL_VARIABLES",
                        0x14: "S_THREAD_LOCAL_VARIABLE_POINTERS",
                        0x15: "S_THREAD_LOCAL_INIT_FUNCTION_POINTERS"}
S_INIT_FUNC_OFFSETS = 0x16
S_ATTR_PURE_INSTRUCTIONS = 0x80000000
S_ATTR_DEBUG = 0x02000000
S_ATTR_SOME_INSTRUCTIONS = 0x00000400
_INDIRECT_TYPES = {S_NON_LAZY_SYMBOL_POINTERS: "S_NON_LAZY_SYMBOL_POINTERS",
                   S_LAZY_SYMBOL_POINTERS: "S_LAZY_SYMBOL_POINTERS",
                   S_SYMBOL_STUBS: "S_SYMBOL_STUBS",
                   S_LAZY_DYLIB_SYMBOL_POINTERS: "S_LAZY_DYLIB_SYMBOL_POINTERS"}
_MAX_ALIGN_LOG2 = 20

# <mach-o/nlist.h>
N_STAB, N_PEXT, N_TYPE, N_EXT = 0xE0, 0x10, 0x0E, 0x01
N_UNDF, N_ABS, N_INDR, N_PBUD, N_SECT = 0x0, 0x2, 0xA, 0xC, 0xE
N_SO = 0x64
N_WEAK_REF, N_WEAK_DEF, N_SYMBOL_RESOLVER = 0x40, 0x80, 0x100


def get_comm_align(n_desc: int) -> int:
    """GET_COMM_ALIGN: log2 of a common symbol's alignment, in n_desc."""
    return (n_desc >> 8) & 0x0F


def is_macho(data: bytes) -> bool:
    """A 64-bit little-endian Mach-O file (what this reader reads)."""
    return data[:4] == MH_MAGIC_64_BYTES


def macho_refusal(data: bytes) -> str | None:
    """Why a Mach-O file kitemu does not read is refused (32-bit,
    big-endian, fat), or None if ``data`` is none of those."""
    reason = _REFUSED_MAGICS.get(data[:4])
    if reason and data[:4] in (b"\xca\xfe\xba\xbe", b"\xbe\xba\xfe\xca") and len(data) >= 8:
        # 0xcafebabe also starts Java class files, whose next word is the
        # class-file version (major >= 45); a fat header's is the (small)
        # number of architectures. file(1) draws the line at 20 too.
        n = int.from_bytes(data[4:8], "big" if data[0] == 0xCA else "little")
        if n >= 20:
            return None
    return reason


def read_macho(path: str, data: bytes | None = None) -> ObjectFile:
    """Read one Mach-O relocatable object."""
    if data is None:
        data = read_input(path)
    return parse_guarded(path, "truncated or corrupt Mach-O object",
                         lambda: _Reader(path, data).read())


class _Raw:
    """One section_64 as found in the file."""

    __slots__ = ("ordinal", "segname", "sectname", "name", "addr", "size", "offset",
                 "align", "reloff", "nreloc", "flags")

    def __init__(self, ordinal, fields):
        sect, seg, self.addr, self.size, self.offset, self.align, self.reloff, \
            self.nreloc, self.flags = fields[:9]
        self.ordinal = ordinal
        self.sectname = _cstr(sect)
        self.segname = _cstr(seg)
        self.name = f"{self.segname},{self.sectname}"


def _cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("latin-1")


class _Reader:
    def __init__(self, path: str, data: bytes):
        self.path = path
        self.data = data

    def fail(self, msg, **kw):
        raise ObjectFormatError(self.path, msg, **kw)

    # -- header and load commands --------------------------------------------------
    def read(self) -> ObjectFile:
        data = self.data
        if not is_macho(data):
            reason = macho_refusal(data)
            self.fail(reason or "not a Mach-O file (bad magic)")
        if len(data) < _HEADER.size:
            self.fail(f"truncated Mach-O header ({len(data)} bytes, need {_HEADER.size})")
        _, cputype, cpusubtype, filetype, ncmds, sizeofcmds, flags, _ = \
            _HEADER.unpack_from(data, 0)
        target_name = MACHO_CPU_TO_TARGET.get(cputype & 0xFFFFFFFF)
        if target_name is None:
            name = CPU_TYPE_NAMES.get(cputype & 0xFFFFFFFF, "unknown")
            self.fail(f"unsupported CPU type {cputype & 0xFFFFFFFF:#x} ({name}); kitemu reads "
                      "x86_64 and arm64 Mach-O objects")
        if filetype != MH_OBJECT:
            self.fail(f"not a relocatable object (filetype {filetype}: "
                      f"{_FILETYPES.get(filetype, 'unknown')}); kitemu links MH_OBJECT .o files")
        self.target_name = target_name
        self.arch = get_target(target_name).arch
        if not hasattr(self.arch, "macho_reloc"):
            self.fail(f"the {self.arch.name} architecture has no Mach-O relocation support")
        cmds_end = _HEADER.size + sizeofcmds
        if cmds_end > len(data):
            self.fail(f"truncated load commands (sizeofcmds {sizeofcmds} runs past the end of "
                      f"the {len(data)}-byte file)")
        raw_sections: list[_Raw] = []
        symtab = None
        off = _HEADER.size
        for i in range(ncmds):
            if off + _LOAD_COMMAND.size > cmds_end:
                self.fail(f"truncated load command #{i}: it starts at offset {off:#x}, past the "
                          f"end of the load commands ({cmds_end:#x})")
            cmd, cmdsize = _LOAD_COMMAND.unpack_from(data, off)
            if cmdsize < _LOAD_COMMAND.size:
                self.fail(f"load command #{i} (cmd {cmd:#x}) has cmdsize {cmdsize} (< 8)")
            if off + cmdsize > cmds_end:
                self.fail(f"truncated load command #{i} (cmd {cmd:#x}): cmdsize {cmdsize} runs "
                          f"past the end of the load commands ({cmds_end:#x})")
            if cmd == LC_SEGMENT_64:
                raw_sections += self._segment(i, off, cmdsize, len(raw_sections))
            elif cmd == LC_SYMTAB:
                if cmdsize < _SYMTAB.size:
                    self.fail(f"LC_SYMTAB (load command #{i}) has cmdsize {cmdsize}, "
                              f"need {_SYMTAB.size}")
                if symtab is not None:
                    self.fail("more than one LC_SYMTAB")
                symtab = _SYMTAB.unpack_from(data, off)[2:]
            elif cmd == LC_SEGMENT:
                self.fail(f"load command #{i} is a 32-bit LC_SEGMENT in a 64-bit object")
            # IGNORED_COMMANDS, and any other command (LC_UUID-like notes a
            # newer toolchain may add), carry nothing a link of objects needs
            off += cmdsize

        sections: dict[int, Section] = {}
        for raw in raw_sections:
            sections[raw.ordinal] = self._section(raw)
        self.raw_sections = {r.ordinal: r for r in raw_sections}
        symbols, so_names = self._symbols(symtab, sections)
        for raw in raw_sections:
            self._relocations(raw, sections[raw.ordinal], symbols)
        tu = next((n for n in reversed(so_names) if not n.endswith("/")),
                  os.path.basename(self.path))
        return ObjectFile(self.path, "macho", target_name, sections, symbols, tu,
                          subsections_via_symbols=bool(flags & MH_SUBSECTIONS_VIA_SYMBOLS))

    def _segment(self, i: int, off: int, cmdsize: int, first: int) -> list[_Raw]:
        if cmdsize < _SEGMENT_64.size:
            self.fail(f"LC_SEGMENT_64 (load command #{i}) has cmdsize {cmdsize}, "
                      f"need {_SEGMENT_64.size}")
        seg = _SEGMENT_64.unpack_from(self.data, off)
        vmaddr, vmsize, nsects = seg[3], seg[4], seg[9]
        if _SEGMENT_64.size + nsects * _SECTION_64.size > cmdsize:
            self.fail(f"LC_SEGMENT_64 (load command #{i}) declares {nsects} sections, which do "
                      f"not fit in its cmdsize {cmdsize}")
        out = []
        for k in range(nsects):
            at = off + _SEGMENT_64.size + k * _SECTION_64.size
            fields = _SECTION_64.unpack_from(self.data, at)
            raw = _Raw(first + k + 1, fields)
            # an object's one segment spans all its sections (ld64 checks the same)
            if raw.addr < vmaddr or raw.addr + raw.size > vmaddr + vmsize:
                self.fail(f"section [{raw.addr:#x}, {raw.addr + raw.size:#x}) lies outside its "
                          f"segment [{vmaddr:#x}, {vmaddr + vmsize:#x})", section=raw.name)
            out.append(raw)
        return out

    # -- sections ------------------------------------------------------------------
    def _kind(self, raw: _Raw) -> SectionKind:
        seg, sect, flags = raw.segname, raw.sectname, raw.flags
        stype = flags & SECTION_TYPE
        if flags & S_ATTR_DEBUG or seg in ("__DWARF", "__LLVM"):
            return SectionKind.NONALLOC
        if (seg, sect) in (("__LD", "__compact_unwind"), ("__TEXT", "__eh_frame")):
            return SectionKind.NONALLOC    # see the module docstring
        if stype in S_THREAD_LOCAL_TYPES:
            self.fail(f"thread-local storage ({S_THREAD_LOCAL_TYPES[stype]}) is not supported",
                      section=raw.name)
        if stype in _INDIRECT_TYPES:
            self.fail(f"indirect-symbol sections ({_INDIRECT_TYPES[stype]}) are not supported "
                      "(they need LC_DYSYMTAB's indirect symbol table)", section=raw.name)
        if stype == S_INIT_FUNC_OFFSETS:
            self.fail("initializer offsets (S_INIT_FUNC_OFFSETS) are not supported",
                      section=raw.name)
        if stype in (S_ZEROFILL, S_GB_ZEROFILL):
            return SectionKind.BSS
        if stype == S_MOD_INIT_FUNC_POINTERS:
            return SectionKind.INIT_ARRAY
        if stype == S_MOD_TERM_FUNC_POINTERS:
            return SectionKind.FINI_ARRAY
        readonly = seg in ("__TEXT", "__DATA_CONST") or (seg, sect) == ("__DATA", "__const")
        if flags & (S_ATTR_PURE_INSTRUCTIONS | S_ATTR_SOME_INSTRUCTIONS) or \
                (seg, sect) in (("__TEXT", "__text"), ("__TEXT", "__StaticInit")):
            if not readonly:
                self.fail("section holds instructions but is in a writable segment (W^X)",
                          section=raw.name)
            return SectionKind.TEXT
        return SectionKind.RODATA if readonly else SectionKind.DATA

    def _section(self, raw: _Raw) -> Section:
        kind = self._kind(raw)
        if raw.align > _MAX_ALIGN_LOG2:
            self.fail(f"alignment 2**{raw.align} is too large (at most 2**{_MAX_ALIGN_LOG2})",
                      section=raw.name)
        if kind is SectionKind.BSS:
            data = None
        else:
            if raw.offset + raw.size > len(self.data):
                self.fail(f"section contents ({raw.size:#x} bytes at file offset {raw.offset:#x}) "
                          f"lie outside the {len(self.data):#x}-byte file (truncated?)",
                          section=raw.name)
            data = self.data[raw.offset:raw.offset + raw.size]
        return Section(raw.ordinal, raw.name, kind, 1 << raw.align, raw.size, data,
                       flags=raw.flags, addr=raw.addr)

    # -- symbols -------------------------------------------------------------------
    def _symbols(self, symtab, sections) -> tuple[list[Symbol], list[str]]:
        data = self.data
        symbols: list[Symbol] = []
        so_names: list[str] = []
        self.stabs: set[int] = set()
        if symtab is not None:
            symoff, nsyms, stroff, strsize = symtab
            if symoff + nsyms * _NLIST_64.size > len(data):
                self.fail(f"symbol table ({nsyms} entries at file offset {symoff:#x}) lies "
                          "outside the file (truncated?)")
            if stroff + strsize > len(data):
                self.fail(f"string table ({strsize} bytes at file offset {stroff:#x}) lies "
                          "outside the file (truncated?)")
            strtab = data[stroff:stroff + strsize]
            for i in range(nsyms):
                symbols.append(self._symbol(i, _NLIST_64.unpack_from(data, symoff + i * 16),
                                            strtab, sections, so_names))
        self.nsyms = len(symbols)
        self._size_symbols(symbols, sections)
        # one synthetic SECTION symbol per section, after the nlist entries
        self.section_symbol = {}
        for ordinal, sec in sections.items():
            self.section_symbol[ordinal] = len(symbols)
            symbols.append(Symbol(len(symbols), sec.name, Binding.LOCAL, SymbolType.SECTION,
                                  SymbolPlace.SECTION, ordinal, 0, sec.size))
        return symbols, so_names

    def _symbol(self, i, entry, strtab, sections, so_names) -> Symbol:
        n_strx, n_type, n_sect, n_desc, n_value = entry
        if n_strx and n_strx >= len(strtab):
            self.fail(f"symbol #{i} has string-table offset {n_strx:#x}, past the end of the "
                      f"{len(strtab)}-byte string table")
        end = strtab.find(b"\0", n_strx)
        raw_name = strtab[n_strx:end if end >= 0 else len(strtab)]
        try:
            name = raw_name.decode("utf-8")
        except UnicodeDecodeError:
            self.fail(f"symbol #{i} has a name that is not valid UTF-8: {raw_name!r}")
        if n_type & N_STAB:
            # debugging entry: kept as a placeholder so indices stay stable
            self.stabs.add(i)
            if n_type == N_SO and name:
                so_names.append(name)
            return Symbol(i, "", Binding.LOCAL, SymbolType.NOTYPE, SymbolPlace.UNDEF,
                          None, 0, 0)
        label = repr(name) if name else f"#{i}"
        ext, pext, ntype = n_type & N_EXT, n_type & N_PEXT, n_type & N_TYPE
        binding = Binding.GLOBAL if ext else Binding.LOCAL
        visibility = "hidden" if pext else "default"
        if ntype == N_SECT:
            sec = sections.get(n_sect)
            if sec is None:
                self.fail(f"symbol {label} refers to section ordinal {n_sect}, which does not "
                          f"exist ({len(sections)} sections)")
            raw = self.raw_sections[n_sect]
            value = n_value - raw.addr
            if not 0 <= value <= raw.size:
                self.fail(f"symbol {label} at address {n_value:#x} lies outside its section "
                          f"{sec.name} [{raw.addr:#x}, {raw.addr + raw.size:#x}]")
            if n_desc & N_SYMBOL_RESOLVER:    # (a common's n_desc holds its alignment there)
                self.fail(f"symbol {label} is a symbol resolver (N_SYMBOL_RESOLVER), "
                          "which is not supported")
            if ext and n_desc & N_WEAK_DEF:
                binding = Binding.WEAK
            stype = SymbolType.FUNC if sec.kind is SectionKind.TEXT else SymbolType.OBJECT
            return Symbol(i, name, binding, stype, SymbolPlace.SECTION, n_sect, value, 0,
                          visibility)
        if ntype == N_UNDF:
            if not ext:
                self.fail(f"undefined symbol {label} is not external (N_EXT clear)")
            if n_value:
                p2 = get_comm_align(n_desc)
                align = 1 << p2 if p2 else min(16, n_value & -n_value)
                return Symbol(i, name, binding, SymbolType.OBJECT, SymbolPlace.COMMON, None,
                              align, n_value, visibility)
            if n_desc & N_WEAK_REF:
                binding = Binding.WEAK
            return Symbol(i, name, binding, SymbolType.NOTYPE, SymbolPlace.UNDEF, None, 0, 0,
                          visibility)
        if ntype == N_ABS:
            return Symbol(i, name, binding, SymbolType.NOTYPE, SymbolPlace.ABS, None, n_value, 0,
                          visibility)
        if ntype == N_INDR:
            self.fail(f"symbol {label} is an indirect symbol (N_INDR), which is not supported")
        if ntype == N_PBUD:
            self.fail(f"symbol {label} is a prebound undefined symbol (N_PBUD), which only "
                      "linked images carry")
        self.fail(f"symbol {label} has an invalid type {n_type:#04x}")

    @staticmethod
    def _size_symbols(symbols, sections) -> None:
        """Mach-O has no symbol sizes: each defined symbol extends to the next
        symbol of its section, or to the section's end."""
        by_section: dict[int, list[Symbol]] = {}
        for s in symbols:
            if s.place is SymbolPlace.SECTION:
                by_section.setdefault(s.section, []).append(s)
        for ordinal, syms in by_section.items():
            starts = sorted({s.value for s in syms})
            end = sections[ordinal].size
            nxt = {a: b for a, b in zip(starts, starts[1:] + [end])}
            for s in syms:
                s.size = nxt[s.value] - s.value

    # -- relocations ---------------------------------------------------------------
    def _relocations(self, raw: _Raw, sec: Section, symbols: list[Symbol]) -> None:
        if not raw.nreloc:
            return
        if sec.kind is SectionKind.NONALLOC:
            if sec.dwarf_name is None:
                return   # unloaded sections' relocations are never applied
            # __DWARF,__debug_*: kept for kitemu.loader.dwarf (the linker never
            # applies them); a relocation kitemu cannot read costs line info only
            try:
                self._relocation_entries(raw, sec, symbols)
            except (ObjectFormatError,) + PARSE_ERRORS as e:
                sec.relocations = []
                sec.debug_problem = str(e)
            return
        self._relocation_entries(raw, sec, symbols)

    def _relocation_entries(self, raw: _Raw, sec: Section, symbols: list[Symbol]) -> None:
        if sec.kind is SectionKind.BSS:
            self.fail(f"a zero-fill section has {raw.nreloc} relocations", section=sec.name)
        if raw.reloff + raw.nreloc * _RELOC.size > len(self.data):
            self.fail(f"relocation table ({raw.nreloc} entries at file offset {raw.reloff:#x}) "
                      "lies outside the file (truncated?)", section=sec.name)
        entries = []
        for n in range(raw.nreloc):
            address, word = _RELOC.unpack_from(self.data, raw.reloff + n * _RELOC.size)
            if address < 0:
                self.fail("is a scattered relocation (r_address has its high bit set); "
                          "64-bit objects never use them", section=sec.name,
                          relocation=f"#{n} (word {address & 0xFFFFFFFF:#010x})")
            entries.append((n, address, word & 0xFFFFFF, (word >> 24) & 1, (word >> 25) & 3,
                            (word >> 27) & 1, word >> 28))
        arch = self.arch
        i = 0
        while i < len(entries):
            n, address, symnum, pcrel, length, extern, rtype = entries[i]
            name = self._name(sec, entries[i])
            where = f"#{n} {name} at offset {address:#x}"
            if rtype == arch.macho_addend:
                addend = self._addend_prefix(sec, entries, i, where)
                i += 1
                n, address, symnum, pcrel, length, extern, rtype = entries[i]
                where = f"#{n} {self._name(sec, entries[i])} at offset {address:#x}"
                sec.relocations.append(self._plain(sec, entries[i], where, addend))
                i += 1
            elif rtype == arch.macho_subtractor:
                sec.relocations.append(self._pair(sec, entries, i, where))
                i += 2
            else:
                sec.relocations.append(self._plain(sec, entries[i], where, 0))
                i += 1

    def _name(self, sec, entry) -> str:
        n, address, _, _, _, _, rtype = entry
        name = self.arch.macho_reloc_name(rtype)
        if name is None:
            raise UnsupportedRelocation(
                self.path, f"unsupported relocation type {rtype} for {self.arch.name} Mach-O",
                section=sec.name, relocation=f"#{n} at offset {address:#x}")
        return name

    def _field(self, sec, address, size, where) -> None:
        if address + size > sec.size:
            self.fail(f"patches bytes {address:#x}..{address + size:#x} past the section end "
                      f"({sec.size:#x})", section=sec.name, relocation=where)

    def _target(self, sec, symnum: int, extern: int, where: str) -> tuple[int, int]:
        """(model symbol index, its address in the object's address space -
        0 for a symbol, which extern relocations never need)."""
        if extern:
            if symnum >= self.nsyms:
                self.fail(f"symbol index {symnum} is out of range ({self.nsyms} symbols)",
                          section=sec.name, relocation=where)
            if symnum in self.stabs:
                self.fail(f"refers to symbol #{symnum}, a debugging (stab) entry",
                          section=sec.name, relocation=where)
            return symnum, 0
        if symnum not in self.section_symbol:
            self.fail(f"section ordinal {symnum} is out of range (1..{len(self.section_symbol)})",
                      section=sec.name, relocation=where)
        return self.section_symbol[symnum], self.raw_sections[symnum].addr

    def _addend_prefix(self, sec, entries, i, where) -> int:
        """An ADDEND: validate it and its successor; return the addend."""
        n, address, symnum, pcrel, length, extern, rtype = entries[i]
        if pcrel or extern or length != 2:
            self.fail(f"must have r_pcrel=0, r_extern=0, r_length=2 (has {pcrel}, {extern}, "
                      f"{length})", section=sec.name, relocation=where)
        if i + 1 >= len(entries):
            self.fail("is the last relocation: it must be followed by the relocation it "
                      "gives an addend to", section=sec.name, relocation=where)
        nxt = entries[i + 1]
        nxt_name = self._name(sec, nxt)
        if not self.arch.macho_takes_addend(nxt[6]):
            self.fail(f"is followed by {nxt_name} (#{nxt[0]}), which takes no addend "
                      "(expected a PAGE21, PAGEOFF12 or BRANCH26)", section=sec.name,
                      relocation=where)
        if nxt[1] != address:
            self.fail(f"is followed by {nxt_name} at another offset ({nxt[1]:#x})",
                      section=sec.name, relocation=where)
        return sign_extend(symnum, 24)

    def _plain(self, sec, entry, where: str, extra: int) -> Relocation:
        n, address, symnum, pcrel, length, extern, rtype = entry
        self._field(sec, address, 1 << length, where)
        try:
            spec, addend = self.arch.macho_reloc(rtype, pcrel, length, bool(extern),
                                                 sec.data, address)
        except NotImplementedError as e:
            raise UnsupportedRelocation(self.path, str(e), section=sec.name,
                                        relocation=where) from None
        except ValueError as e:
            self.fail(str(e), section=sec.name, relocation=where)
        self._field(sec, address, spec.fixup.size, where)
        sym, s_obj = self._target(sec, symnum, extern, where)
        if not extern:
            # the assembler applied it in the object's address space: the
            # field holds the formula's value there
            field = spec.fixup.decode(sec.data, address)
            if spec.formula is Formula.ABS:
                addend = field - s_obj
            elif spec.formula is Formula.PCREL:
                addend = field + self.raw_sections[sec.index].addr + address - s_obj
            else:
                self.fail("must refer to a symbol (r_extern=1), not to a section",
                          section=sec.name, relocation=where)
        return Relocation(address, rtype, spec, sym, addend + extra, n)

    def _pair(self, sec, entries, i, where) -> Relocation:
        """SUBTRACTOR + UNSIGNED -> one ``S + A - T`` relocation."""
        arch = self.arch
        n, address, symnum, pcrel, length, extern, rtype = entries[i]
        unsigned = arch.macho_reloc_name(arch.macho_unsigned)
        spec = arch.macho_delta(length)
        if pcrel or spec is None:
            self.fail(f"must have r_pcrel=0 and r_length 2 or 3 (has r_pcrel={pcrel}, "
                      f"r_length={length})", section=sec.name, relocation=where)
        if i + 1 >= len(entries):
            self.fail(f"is the last relocation: it must be followed by the {unsigned} it pairs "
                      "with", section=sec.name, relocation=where)
        nxt = entries[i + 1]
        m_n, m_address, m_symnum, m_pcrel, m_length, m_extern, m_rtype = nxt
        if m_rtype != arch.macho_unsigned:
            self.fail(f"is followed by {self._name(sec, nxt)} (#{m_n}), not by the {unsigned} it "
                      "pairs with", section=sec.name, relocation=where)
        if (m_address, m_length, m_pcrel) != (address, length, 0):
            self.fail(f"and its {unsigned} (#{m_n}) disagree: offset {m_address:#x} r_length "
                      f"{m_length} r_pcrel {m_pcrel}, expected offset {address:#x} r_length "
                      f"{length} r_pcrel 0", section=sec.name, relocation=where)
        self._field(sec, address, spec.fixup.size, where)
        subtrahend, t_obj = self._target(sec, symnum, extern, where)
        minuend, s_obj = self._target(sec, m_symnum, m_extern,
                                      f"#{m_n} {unsigned} at offset {address:#x}")
        field = spec.fixup.decode(sec.data, address)
        return Relocation(address, rtype, spec, minuend, field - s_obj + t_obj, n,
                          subtrahend=subtrahend)
