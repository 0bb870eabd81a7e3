"""DWARF debug info of a *linked* object: line table, functions, DIEs.

The debugger (``break file.c:42``), the inspector (``addr_to_sym`` with
file:line) and hot reload (ABI signatures from ``DW_TAG_subprogram``) need
the DWARF of an object as it runs at the addresses the JIT linker gave it.

Why we relocate the debug sections ourselves
--------------------------------------------
In a relocatable object, DWARF is not self-contained: every address in it
(``DW_AT_low_pc``, ``.debug_addr`` entries, ``DW_LNE_set_address``) and, on
ELF, every reference from one debug section into another (``DW_AT_stmt_list``,
``DW_FORM_strp``, ``.debug_str_offsets`` entries) is a relocation the
assembler left for the static linker. kitemu's linker never places debug
sections (their kind is not loaded), so nothing ever applies those
relocations. Asking pyelftools to relocate is no answer either: it applies
ELF relocations only, in the object's own address space (sections at 0),
knows only some relocation types per arch (not the RISC-V ADD/SUB pairs that
clang emits for address advances in ``.debug_line``) and knows nothing of
Mach-O.

So :class:`DebugInfo` does what LLVM's RuntimeDyld does to make a JIT'd
object's debug info usable: it copies each DWARF section into a host
``bytearray`` and applies that section's relocations with the *same* fixup
machinery the linker uses (``rel.spec.fixup.encode``), evaluated with the
runtime addresses of the linked image:

* ``S`` of a symbol in a loaded section is its runtime address
  (``section_address(section) + value``); of a symbol in a debug section it is
  its offset in that section (a debug section lies at 0: references between
  debug sections are section offsets); of an absolute symbol its value; of an
  undefined or common one whatever ``symbol_address`` says;
* ``ABS`` is ``S + A``; ``ADD``/``SUB`` (RISC-V) read-modify-write the field
  (``V + S + A`` / ``V - (S + A)``), so ADD/SUB pairs compose to a label
  difference exactly as in the linker; ``DELTA`` (Mach-O SUBTRACTOR pairs)
  is ``S + A - T``; nothing else belongs in a debug section.

The readers keep debug sections' relocations in the neutral model (already
decoded by each target's own ELF and Mach-O relocation tables), so this
works the same for ELF and Mach-O. The relocated bytes then go to
pyelftools' :class:`DWARFInfo` through in-memory section descriptors, with
no relocation left for it to do. DWARF 4 and 5 are handled (clang 14
defaults to 5 on Linux, 4 on Darwin).

Failure is never fatal: an object without DWARF, a debug relocation the
reader could not read (``Section.debug_problem``), a fixup that does not fit
or malformed DWARF make :attr:`DebugInfo.available` False with a
:attr:`DebugInfo.reason`; the queries then answer None / ``[]``.

Everything is lazy and built once per :class:`DebugInfo`: section addresses
are captured when it is made, relocation and parsing happen on the first
query, the sorted row table on the first line query, the function list on
the first function query.
"""

from __future__ import annotations

import bisect
import inspect
import io
import posixpath
from dataclasses import dataclass
from typing import Callable

from elftools.common.exceptions import DWARFError, ELFError
from elftools.construct.core import ConstructError
from elftools.dwarf.dwarfinfo import DebugSectionDescriptor, DWARFInfo, DwarfConfig

from ..errors import KitemuError
from ..targets.base import Formula
from .guard import PARSE_ERRORS
from .model import ObjectFile, Section, SymbolPlace

#: DWARF sections without which nothing reliable can be said: a relocation
#: problem in one of these makes the whole object's debug info unavailable.
#: Others (``debug_frame``, ``debug_aranges``, the pubnames...) are left out
#: of the DWARFInfo instead, with a note in :attr:`DebugInfo.warnings`.
ESSENTIAL = ("debug_info", "debug_abbrev", "debug_str", "debug_line", "debug_line_str",
             "debug_addr", "debug_str_offsets", "debug_rnglists", "debug_ranges",
             "debug_loclists", "debug_loc", "debug_types")

#: pyelftools' ``machine_arch`` names (used only to name registers)
_MACHINE_ARCH = {"x64": "x64", "aarch64": "AArch64", "rv64": "RISC-V"}

#: attribute forms whose value is an address (any other DW_AT_high_pc form
#: is an offset from DW_AT_low_pc)
_ADDRESS_FORMS = frozenset({"DW_FORM_addr", "DW_FORM_addrx", "DW_FORM_addrx1",
                            "DW_FORM_addrx2", "DW_FORM_addrx3", "DW_FORM_addrx4",
                            "DW_FORM_GNU_addr_index"})

#: what malformed DWARF can make pyelftools raise
_DWARF_ERRORS = PARSE_ERRORS + (KitemuError, EOFError, ArithmeticError, RuntimeError, ELFError,
                                DWARFError, ConstructError)


@dataclass(frozen=True)
class LineInfo:
    """A line-table row: the source position of an address."""

    file: str      # the path as the line table spells it, joined to its directory
    line: int
    column: int

    @property
    def basename(self) -> str:
        return posixpath.basename(self.file)

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class FunctionInfo:
    """A ``DW_TAG_subprogram`` with code, at its runtime address."""

    name: str
    low_pc: int
    high_pc: int              # one past the last byte
    decl_file: str | None
    decl_line: int | None
    cu_name: str
    die_offset: int           # in .debug_info, for DWARFInfo.get_DIE_from_refaddr

    def __contains__(self, addr: int) -> bool:
        return self.low_pc <= addr < self.high_pc


class _Unusable(Exception):
    """The object's DWARF cannot be used; the message says why."""


class DebugInfo:
    """DWARF of one linked object. Build it with :meth:`from_object` (or
    :meth:`from_image`); every query is cheap after the first."""

    def __init__(self, obj: ObjectFile, section_addrs: dict[int, int | None],
                 symbol_address: Callable[[int], int | None] | None):
        self.obj = obj
        self._section_addrs = section_addrs
        self._symbol_address = symbol_address
        #: notes that did not make the debug info unavailable (a non-essential
        #: section left out, a relocation whose symbol had no address)
        self.warnings: list[str] = []
        self._loaded = False
        self._dwarf: DWARFInfo | None = None
        self._reason = ""
        self._unresolved = False
        self._rows = None
        self._line_index = None
        self._functions: list[FunctionInfo] | None = None
        self._function_starts: list[int] | None = None
        self._file_tables: dict[int, list[str | None]] = {}

    # -- construction -----------------------------------------------------------------
    @classmethod
    def from_object(cls, obj: ObjectFile, section_address: Callable[[int], int | None],
                    symbol_address: Callable[[int], int | None] | None = None) -> DebugInfo:
        """Debug info of ``obj`` as linked: ``section_address(section_index)``
        is the runtime address of one of its loaded sections (None if not
        placed); ``symbol_address(symbol_index)`` that of an undefined or
        common symbol (None if unknown). Section addresses are read now;
        nothing else happens until the first query."""
        addrs = {i: section_address(i) for i, sec in obj.sections.items() if sec.kind.loaded}
        return cls(obj, addrs, symbol_address)

    @classmethod
    def from_image(cls, obj: ObjectFile, image, obj_index: int) -> DebugInfo:
        """Debug info of input ``obj_index`` of a linked image
        (:class:`kitemu.link.linker.LinkedImage`): section addresses from
        ``image.section_addrs``, undefined and common symbols from
        ``image.globals``."""
        def symbol_address(si: int) -> int | None:
            sym = obj.symbols[si]
            return image.globals.get(sym.name) if sym.name else None
        return cls.from_object(obj, lambda si: image.section_addrs.get((obj_index, si)),
                               symbol_address)

    # -- availability -----------------------------------------------------------------
    @property
    def available(self) -> bool:
        self._load()
        return self._dwarf is not None

    @property
    def reason(self) -> str:
        """Why :attr:`available` is False ("" when it is True)."""
        self._load()
        return self._reason

    @property
    def dwarfinfo(self) -> DWARFInfo | None:
        """The pyelftools DWARFInfo over the relocated sections (DIEs, CFI...),
        or None when not :attr:`available`."""
        self._load()
        return self._dwarf

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        try:
            self._dwarf = self._build()
        except _Unusable as e:
            self._reason = str(e)
        except _DWARF_ERRORS as e:
            self._reason = f"{self.obj.path}: malformed DWARF ({type(e).__name__}: {e})"

    def _build(self) -> DWARFInfo:
        obj = self.obj
        debug: dict[str, Section] = {}
        for sec in obj.sections.values():
            name = sec.dwarf_name
            if name is not None and name not in debug:
                debug[name] = sec
        if "debug_info" not in debug:
            raise _Unusable(f"{obj.path}: no DWARF debug info (no debug_info section; "
                            "built without -g?)")
        described: dict[str, DebugSectionDescriptor] = {}
        for name, sec in debug.items():
            try:
                if sec.debug_problem is not None:
                    raise _Unusable(f"its relocations could not be read: {sec.debug_problem}")
                data = self._relocated(sec)
            except _Unusable as e:
                if name in ESSENTIAL:
                    raise
                self.warnings.append(f"{obj.path}: section {sec.name} left out: {e}")
                continue
            described[name] = DebugSectionDescriptor(io.BytesIO(bytes(data)), "." + name, 0,
                                                     len(data), 0)
        arch = _arch_of(obj)
        config = DwarfConfig(little_endian=True,
                             machine_arch=_MACHINE_ARCH.get(arch.name, arch.name),
                             default_address_size=arch.pointer_size)
        kwargs = {p: described.get(p[:-len("_sec")]) for p in _DWARFINFO_SECTIONS}
        dwarf = DWARFInfo(config=config, **kwargs)
        # parse the unit headers now, so that a malformed one is reported here
        if not any(True for _ in dwarf.iter_CUs()):
            raise _Unusable(f"{obj.path}: the debug_info section holds no compilation unit")
        return dwarf

    # -- relocation -------------------------------------------------------------------
    def _relocated(self, sec: Section) -> bytearray:
        """``sec``'s bytes with its relocations applied for the runtime
        addresses, through the target's own fixups."""
        obj = self.obj
        buf = bytearray(sec.data or b"")
        for rel in sec.relocations:
            spec = rel.spec
            f = spec.formula
            if f is Formula.NONE or spec.fixup is None:
                continue
            S = self._symbol_value(rel.symbol, sec, rel)
            if f is Formula.ABS:
                value = S + rel.addend
            elif f is Formula.ADD:
                value = spec.fixup.decode(buf, rel.offset) + S + rel.addend
            elif f is Formula.SUB:
                value = spec.fixup.decode(buf, rel.offset) - (S + rel.addend)
            elif f is Formula.DELTA and rel.subtrahend is not None:
                value = S + rel.addend - self._symbol_value(rel.subtrahend, sec, rel)
            else:
                raise _Unusable(f"{obj.describe_reloc(sec, rel)}: formula {f.value} has no "
                                "meaning in a debug section")
            try:
                spec.fixup.encode(buf, rel.offset, value)
            except KitemuError as e:    # FixupRangeError
                raise _Unusable(f"{obj.describe_reloc(sec, rel)}: cannot be applied: {e}") \
                    from None
        return buf

    def _symbol_value(self, index: int, sec: Section, rel) -> int:
        obj = self.obj
        if not 0 <= index < len(obj.symbols):
            raise _Unusable(f"{obj.describe_reloc(sec, rel)}: symbol #{index} does not exist")
        sym = obj.symbols[index]
        place = sym.place
        if place is SymbolPlace.SECTION:
            target = obj.sections.get(sym.section)
            if target is not None and not target.kind.loaded:
                return sym.value              # a debug section lies at 0: an offset
            base = self._section_addrs.get(sym.section)
            if base is not None:
                return base + sym.value
        elif place is SymbolPlace.ABS:
            return sym.value
        elif index == 0 and not sym.name:
            return 0                          # ELF: no symbol, S = 0
        elif self._symbol_address is not None:
            addr = self._symbol_address(index)
            if addr is not None:
                return addr
        # lld's choice for a discarded target: the tombstone 0
        self._unresolved = True
        self.warnings.append(f"{obj.describe_reloc(sec, rel)}: the symbol has no runtime "
                             "address; 0 used")
        return 0

    # -- line table -------------------------------------------------------------------
    def _file_table(self, cu, lineprog) -> list[str | None]:
        """File number -> path, for ``cu``'s line program (DWARF 5 numbers
        files from 0, earlier versions from 1; directory 0 is the
        compilation directory in both). A relative directory or file name
        is relative to the compilation directory (DWARF 5 6.2.4 items 20
        and 21; DWARF 4 6.2.4 items 11 and 12): ``clang -Iinc -c src/x.c``
        writes ``inc`` and ``src``, which are joined to it, so one source
        file has one (normalized) path whatever the DWARF version."""
        table = self._file_tables.get(cu.cu_offset)
        if table is not None:
            return table
        header = lineprog.header
        version = header["version"]
        dirs = [_text(d) for d in header["include_directory"]]
        top = cu.get_top_DIE()
        comp_dir = _text(top.attributes["DW_AT_comp_dir"].value) \
            if "DW_AT_comp_dir" in top.attributes else ""
        if version >= 5 and dirs:
            comp_dir = posixpath.join(comp_dir, dirs[0])     # dirs[0] *is* the comp dir
        table = [] if version >= 5 else [None]
        for entry in header["file_entry"]:
            name = _text(entry.name)
            di = entry.dir_index if isinstance(entry.dir_index, int) else 0
            # directory 0 is the compilation directory; DWARF 4 does not list it
            i = di if version >= 5 else di - 1
            d = dirs[i] if di and i < len(dirs) else ""
            table.append(posixpath.normpath(posixpath.join(comp_dir, d, name)))
        self._file_tables[cu.cu_offset] = table
        return table

    def _row_table(self):
        """Sorted ``(starts, ends, infos, stmt_rows)``: ``[starts[i], ends[i])``
        maps to ``infos[i]``; ``stmt_rows`` are the is_stmt rows
        ``(path, line, address)``."""
        if self._rows is not None:
            return self._rows
        spans: list[tuple[int, int, LineInfo]] = []
        stmt_rows: list[tuple[str, int, int]] = []
        dwarf = self.dwarfinfo
        if dwarf is not None:
            try:
                for cu in dwarf.iter_CUs():
                    lineprog = dwarf.line_program_for_CU(cu)
                    if lineprog is None:
                        continue
                    files = self._file_table(cu, lineprog)
                    self._sequences(lineprog, files, spans, stmt_rows)
            except _DWARF_ERRORS as e:
                self.warnings.append(f"{self.obj.path}: line table: malformed DWARF "
                                     f"({type(e).__name__}: {e}); rows after it are missing")
        spans.sort(key=lambda s: s[0])
        self._rows = ([s[0] for s in spans], [s[1] for s in spans], [s[2] for s in spans],
                      stmt_rows)
        return self._rows

    def _sequences(self, lineprog, files, spans, stmt_rows) -> None:
        rows: list = []      # (address, file, line, column, is_stmt) of the open sequence
        for entry in lineprog.get_entries():
            st = entry.state
            if st is None:
                continue
            if not st.end_sequence:
                rows.append((st.address, st.file, st.line, st.column, st.is_stmt))
                continue
            end = st.address
            if rows and not (self._unresolved and rows[0][0] == 0):
                for i, (addr, fno, line, col, stmt) in enumerate(rows):
                    nxt = rows[i + 1][0] if i + 1 < len(rows) else end
                    path = files[fno] if 0 <= fno < len(files) else None
                    path = path or f"<file #{fno}>"
                    if nxt > addr:     # of rows at one address, the last one wins
                        spans.append((addr, nxt, LineInfo(path, line, col)))
                    # a row at (or past) the end_sequence address describes no
                    # code of this sequence: its address is the next sequence's
                    if stmt and line and addr < end:
                        stmt_rows.append((path, line, addr))
            rows = []

    def line_for(self, addr: int) -> LineInfo | None:
        """The source position of the instruction at ``addr``, or None."""
        starts, ends, infos, _ = self._row_table()
        i = bisect.bisect_right(starts, addr) - 1
        if i >= 0 and addr < ends[i]:
            return infos[i]
        return None

    def line_addresses(self, file: str, line: int) -> list[int]:
        """Addresses of the is_stmt rows of ``file``:``line`` (sorted, no
        duplicates). ``file`` is a base name (``x.c``), a trailing part of the
        path (``src/x.c``) or the whole path."""
        if self._line_index is None:
            index: dict[tuple[str, int], list[tuple[str, int]]] = {}
            for path, ln, addr in self._row_table()[3]:
                index.setdefault((posixpath.basename(path), ln), []).append((path, addr))
            self._line_index = index
        found = {addr for path, addr in self._line_index.get((posixpath.basename(file), line), ())
                 if _same_file(path, file)}
        return sorted(found)

    # -- functions --------------------------------------------------------------------
    def functions(self) -> list[FunctionInfo]:
        """Every ``DW_TAG_subprogram`` with code (static ones too), sorted by
        address. A subprogram described only by ``DW_AT_ranges`` (a function
        split in pieces, which clang does not do for C at these settings) is
        not listed."""
        if self._functions is not None:
            return self._functions
        out: list[FunctionInfo] = []
        dwarf = self.dwarfinfo
        if dwarf is not None:
            try:
                for cu in dwarf.iter_CUs():
                    self._cu_functions(dwarf, cu, out)
            except _DWARF_ERRORS as e:
                self.warnings.append(f"{self.obj.path}: debug_info: malformed DWARF "
                                     f"({type(e).__name__}: {e}); functions after it are missing")
        out.sort(key=lambda f: (f.low_pc, f.high_pc))
        self._functions = out
        self._function_starts = [f.low_pc for f in out]
        return out

    def _cu_functions(self, dwarf, cu, out) -> None:
        top = cu.get_top_DIE()
        cu_name = _text(top.attributes["DW_AT_name"].value) if "DW_AT_name" in top.attributes \
            else ""
        files = None
        for die in cu.iter_DIEs():
            if die.tag != "DW_TAG_subprogram":
                continue
            attrs = die.attributes
            low = attrs.get("DW_AT_low_pc")
            if low is None:
                continue
            low_pc = low.value
            if self._unresolved and low_pc == 0:
                continue
            high = attrs.get("DW_AT_high_pc")
            if high is None:
                high_pc = low_pc
            elif high.form in _ADDRESS_FORMS:
                high_pc = high.value
            else:
                high_pc = low_pc + high.value
            name, decl_file, decl_line = self._describe(die)
            path = None
            if decl_file is not None:
                if files is None:
                    try:
                        lineprog = dwarf.line_program_for_CU(cu)
                        files = self._file_table(cu, lineprog) if lineprog is not None else []
                    except _DWARF_ERRORS as e:     # functions without their file names
                        files = []
                        self.warnings.append(f"{self.obj.path}: file names of {cu_name}: "
                                             f"malformed line table ({type(e).__name__}: {e})")
                path = files[decl_file] if 0 <= decl_file < len(files) else None
            out.append(FunctionInfo(name, low_pc, high_pc, path, decl_line, cu_name,
                                    die.offset))

    @staticmethod
    def _describe(die) -> tuple[str, int | None, int | None]:
        """(name, decl_file number, decl_line), following DW_AT_abstract_origin
        and DW_AT_specification (an out-of-line copy of an inlined function
        names itself through its abstract origin)."""
        name = None
        decl_file = decl_line = None
        start = die
        for _ in range(8):
            attrs = die.attributes
            if name is None and "DW_AT_name" in attrs:
                name = _text(attrs["DW_AT_name"].value)
            if decl_file is None and "DW_AT_decl_file" in attrs:
                decl_file = attrs["DW_AT_decl_file"].value
            if decl_line is None and "DW_AT_decl_line" in attrs:
                decl_line = attrs["DW_AT_decl_line"].value
            ref = next((a for a in ("DW_AT_abstract_origin", "DW_AT_specification")
                        if a in attrs), None)
            if ref is None or (name is not None and decl_line is not None):
                break
            die = die.get_DIE_from_attribute(ref)
        return name or f"<subprogram at {start.offset:#x}>", decl_file, decl_line

    def function_at(self, addr: int) -> FunctionInfo | None:
        """The function whose code holds ``addr``, or None."""
        funcs = self.functions()
        i = bisect.bisect_right(self._function_starts, addr) - 1
        # C functions do not nest, but empty and overlapping (identical-code)
        # entries may sit just before the one that holds addr
        for f in funcs[max(0, i - 7):i + 1][::-1]:
            if addr in f:
                return f
        return None


def _arch_of(obj: ObjectFile):
    from ..targets import get_target
    return get_target(obj.target).arch


def _same_file(path: str, query: str) -> bool:
    """Does line-table ``path`` answer ``query`` (whose base name it has)?
    A bare name matches any directory; a relative path matches a trailing
    part of the path; an absolute one the whole path."""
    if "/" not in query or path == query:
        return True
    q, p = posixpath.normpath(query), posixpath.normpath(path)
    return p == q or (not posixpath.isabs(q) and p.endswith("/" + q))


def _text(value) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


#: the section keyword arguments of this pyelftools' DWARFInfo
_DWARFINFO_SECTIONS = tuple(p for p in inspect.signature(DWARFInfo.__init__).parameters
                            if p.endswith("_sec"))
