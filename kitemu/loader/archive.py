"""Static archives (``ar``, ``!<arch>\\n``) -> :class:`Archive`.

An archive is the magic followed by members, each a 60-byte header::

    name[16] date[12] uid[6] gid[6] mode[8] size[10] "`\\n"

then ``size`` bytes of contents and one ``\\n`` of padding when ``size`` is
odd. Only ``name`` and ``size`` (decimal ASCII, left-justified, padded with
spaces) matter here. Two families spell names and symbol tables
differently:

* **GNU / System V** (``llvm-ar --format=gnu``, GNU ar): names end in ``/``
  (``foo.o/``); longer names live in the long-name table member ``//`` (each
  entry ``name/\\n``) and the header holds ``/N``, the entry's offset in that
  table. The symbol table is the first member, named ``/``: a big-endian
  32-bit count, that many 32-bit member-header offsets, then as many
  NUL-terminated names. ``/SYM64/`` is the same with 64-bit count and
  offsets (archives past 4 GiB, or ``SYM64_THRESHOLD`` with llvm-ar).
* **BSD / Darwin** (``--format=bsd``, ``--format=darwin``, Apple's
  ``libtool``/``ranlib``): a name longer than 16 bytes, or containing a
  space, is written ``#1/N`` and its N bytes (NUL-padded) open the
  member's contents. The symbol table is the first member, ``__.SYMDEF`` or
  ``__.SYMDEF SORTED``: a 32-bit byte count of the ranlib array, the array
  of ``{ran_strx, ran_off}`` (string-table offset of the name, member-header
  offset), a 32-bit string-table size and the string table, all
  little-endian. ``__.SYMDEF_64`` / ``__.SYMDEF_64 SORTED`` use 64-bit
  fields throughout.

Thin archives (``!<thin>\\n``: members are paths to files outside the
archive) are refused by name. An archive without a symbol table (``ar
rcS``, ``llvm-ar --format=... S``) gets its index built from each object
member's own symbol table (defined global and weak symbols, COMMON
included, as ``ar`` writes them), like lld does; members that are not
ELF or Mach-O objects are skipped then.

Every malformed input raises :class:`~kitemu.errors.ObjectFormatError`
naming the archive and the member: ``lib.a(foo.o): ...``, or ``lib.a(member
#3 at offset 0x1a4)`` when the header is too broken to name it. Members are
read with :func:`kitemu.loader.load_object` under the name
``lib.a(foo.o)``, so every later message (relocations, duplicate symbols,
undefined references) names the member the same way.

Symbol names in a table are bytes; they are decoded as the object readers
decode names so that the index matches the objects: GNU tables (ELF
members; pyelftools decodes latin-1) as latin-1, BSD/Darwin tables (Mach-O
members; the Mach-O reader decodes UTF-8) as UTF-8, falling back to latin-1.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field

from ..errors import ObjectFormatError
from .elf import is_elf
from .macho import is_macho, macho_refusal
from .guard import parse_guarded, read_input
from .model import Binding, ObjectFile

AR_MAGIC = b"!<arch>\n"
THIN_MAGIC = b"!<thin>\n"
HEADER_SIZE = 60
FMAG = b"`\n"

#: symbol-table member names -> table layout
_GNU_TABLES = {b"/": "gnu", b"/SYM64/": "gnu64"}
_BSD_TABLES = {b"__.SYMDEF": "bsd", b"__.SYMDEF SORTED": "bsd",
               b"__.SYMDEF_64": "bsd64", b"__.SYMDEF_64 SORTED": "bsd64"}
_LONG_NAMES = b"//"

_DECIMAL = re.compile(rb"[0-9]+ *")
_GNU_LONG_REF = re.compile(rb"/([0-9]+) *")


def is_archive(data: bytes) -> bool:
    """A regular or thin ``ar`` archive (thin ones are refused when read)."""
    return data[:8] in (AR_MAGIC, THIN_MAGIC)


@dataclass
class Member:
    """One member of an archive (the symbol table and the long-name table
    are not members)."""
    name: str
    offset: int          # offset of the member's header in the archive
    data: bytes          # the contents (without a BSD ``#1/N`` name)


@dataclass
class Archive:
    path: str
    members: list[Member]
    #: symbol -> indices in ``members`` of the members defining it, in
    #: archive order
    symbol_index: dict[str, list[int]]
    #: the symbol table's layout: "gnu", "gnu64", "bsd", "bsd64"; None when
    #: the archive has none (the index was built from the members)
    symbol_table: str | None = None
    _loaded: dict[int, ObjectFile] = field(default_factory=dict, repr=False, compare=False)

    def member_path(self, index: int) -> str:
        """How messages name a member: ``lib.a(foo.o)``."""
        return f"{self.path}({self.members[index].name})"

    def load(self, index: int) -> ObjectFile:
        """Read member ``index`` as an object (once; later calls return the
        same :class:`ObjectFile`)."""
        obj = self._loaded.get(index)
        if obj is None:
            from . import load_object
            obj = load_object(self.member_path(index), self.members[index].data)
            self._loaded[index] = obj
        return obj

    @property
    def target(self) -> str | None:
        """The target of the first object member (None if there is none)."""
        for i, m in enumerate(self.members):
            if _is_object(m.data):
                return self.load(i).target
        return None


def read_archive(path: str, data: bytes | None = None) -> Archive:
    """Read a static archive: its members and its symbol index."""
    if data is None:
        data = read_input(path)
    # every check is explicit; the guard only makes sure no input ends in a
    # traceback
    return parse_guarded(path, "corrupt archive", lambda: _Reader(path, data).read())


def _is_object(data: bytes) -> bool:
    return is_elf(data) or is_macho(data) or macho_refusal(data) is not None


def _show(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


@dataclass
class _Raw:
    """A member as read: header offset, name, contents."""
    offset: int
    name_field: bytes    # the 16-byte name field, trailing spaces removed
    name: bytes | None   # the member's name; None for the GNU special members
    data: bytes


class _Reader:
    def __init__(self, path: str, data: bytes):
        self.path = path
        self.data = data

    def fail(self, where: str | None, msg: str):
        raise ObjectFormatError(f"{self.path}({where})" if where else self.path, msg)

    def read(self) -> Archive:
        data = self.data
        if data[:8] == THIN_MAGIC:
            self.fail(None, "thin archive (!<thin>): its members are files outside the archive, "
                            "which kitemu does not read; build a regular archive (llvm-ar rcs "
                            "without --thin)")
        if data[:8] != AR_MAGIC:
            self.fail(None, f"not an archive (bad magic {data[:8]!r}, expected {AR_MAGIC!r})")
        table_kind = table_raw = None
        members: list[Member] = []
        for n, raw in enumerate(self._members()):
            if raw.name is None:
                kind = _GNU_TABLES.get(raw.name_field)
                if kind is None:
                    continue            # the long-name table, already used by _members
            else:
                kind = _BSD_TABLES.get(raw.name)
            if kind is not None:
                if n != 0:
                    self.fail(_show(raw.name or raw.name_field),
                              f"symbol table member at offset {raw.offset:#x} is not the "
                              "first member of the archive")
                table_kind, table_raw = kind, raw
                continue
            members.append(Member(_show(raw.name), raw.offset, raw.data))
        archive = Archive(self.path, members, {}, table_kind)
        if table_kind is not None:
            archive.symbol_index = self._symbol_table(table_kind, table_raw, members)
        else:
            archive.symbol_index = self._build_index(archive)
        return archive

    # -- headers and names -----------------------------------------------------
    def _members(self):
        """Yield every member, special ones included, names resolved."""
        data, total = self.data, len(self.data)
        pos = len(AR_MAGIC)
        n = 0
        long_names: bytes | None = None
        while pos < total:
            where = f"member #{n} at offset {pos:#x}"
            hdr = data[pos:pos + HEADER_SIZE]
            if len(hdr) < HEADER_SIZE:
                if hdr == b"\n" and pos + 1 == total:
                    break     # a stray padding byte at the very end
                self.fail(where, f"truncated member header ({len(hdr)} of {HEADER_SIZE} bytes "
                                 "before the end of the file)")
            name_field = hdr[:16].rstrip(b" ")
            start = pos + HEADER_SIZE
            # the member's name, as far as it can be known before its size
            # is checked: messages about the header then name the member
            name: bytes | None = None
            bsd_len = None
            if name_field.startswith(b"#1/"):
                if not _DECIMAL.fullmatch(hdr[3:16]):
                    self.fail(_show(name_field) or where,
                              f"BSD long name length {hdr[3:16].decode('latin-1')!r} is not a "
                              "decimal number")
                bsd_len = int(hdr[3:16])
                if start + bsd_len <= total:      # else: named by its header field
                    name = data[start:start + bsd_len].rstrip(b"\0")
            elif name_field in _GNU_TABLES or name_field == _LONG_NAMES:
                pass          # special member
            elif name_field.startswith(b"/"):
                if not _GNU_LONG_REF.fullmatch(hdr[:16]):
                    self.fail(_show(name_field), f"bad member name {name_field.decode('latin-1')!r} "
                                                 "(a name starting with '/' must be '/', '//', "
                                                 "'/SYM64/' or '/N')")
                name = self._long_name(name_field, long_names)
            else:
                name = name_field[:-1] if name_field.endswith(b"/") else name_field
            label = _show(name) if name else (_show(name_field) or where)
            if hdr[58:60] != FMAG:
                self.fail(label, f"bad member header at offset {pos:#x}: it ends in "
                                 f"{hdr[58:60]!r}, not {FMAG!r}")
            size_field = hdr[48:58]
            if not _DECIMAL.fullmatch(size_field):
                self.fail(label, f"member header at offset {pos:#x}: size field "
                                 f"{size_field.decode('latin-1')!r} is not a decimal number")
            size = int(size_field)
            if start + size > total:
                self.fail(label, f"member at offset {pos:#x} claims {size} bytes, but only "
                                 f"{total - start} remain in the file (truncated?)")
            body = data[start:start + size]
            if bsd_len is not None:
                if bsd_len > size:
                    self.fail(_show(name_field), f"BSD long name of {bsd_len} bytes is longer "
                                                 f"than the member ({size} bytes)")
                body = body[bsd_len:]
            if name is not None and not name:
                self.fail(where, "empty member name")
            if name_field == _LONG_NAMES:
                if long_names is not None:
                    self.fail("//", f"a second long-name table at offset {pos:#x}")
                long_names = body
            yield _Raw(pos, name_field, name, body)
            pos = start + size + (size & 1)
            n += 1

    def _long_name(self, name_field: bytes, long_names: bytes | None) -> bytes:
        """Resolve a GNU ``/N`` reference into the long-name table."""
        label = _show(name_field)
        if long_names is None:
            self.fail(label, "long-name reference, but no long-name table ('//' member) "
                             "precedes it")
        n = int(name_field[1:])
        if n >= len(long_names):
            self.fail(label, f"long-name reference past the end of the {len(long_names)}-byte "
                             "long-name table")
        end = long_names.find(b"\n", n)
        if end < 0:
            self.fail(label, f"long-name table entry at offset {n} is not terminated by '\\n'")
        name = long_names[n:end]
        if name.endswith(b"/"):
            name = name[:-1]
        if not name or b"\0" in name:
            self.fail(label, f"long-name table entry at offset {n} is empty or malformed")
        return name

    # -- the symbol table -------------------------------------------------------
    def _symbol_table(self, kind: str, raw: _Raw, members: list[Member]) -> dict[str, list[int]]:
        where = _show(raw.name if raw.name is not None else raw.name_field)
        body = raw.data
        entries: list[tuple[bytes, int]] = []     # (name, member-header offset)

        def bad(msg):
            self.fail(where, f"symbol table: {msg}")

        if kind in ("gnu", "gnu64"):
            w = 4 if kind == "gnu" else 8
            fmt = ">I" if w == 4 else ">Q"
            if len(body) < w:
                bad(f"{len(body)} bytes, too short for the {w}-byte symbol count")
            count, = struct.unpack_from(fmt, body, 0)
            if w + count * w > len(body):
                bad(f"{count} symbols need {w + count * w} bytes of offsets, the table has "
                    f"{len(body)}")
            offsets = struct.unpack_from(f">{count}{fmt[1]}", body, w)
            pos = w + count * w
            for i, off in enumerate(offsets):
                end = body.find(b"\0", pos)
                if end < 0:
                    bad(f"{count} symbols but only {i} NUL-terminated names")
                entries.append((body[pos:end], off))
                pos = end + 1
        else:
            w = 4 if kind == "bsd" else 8
            fmt = "<I" if w == 4 else "<Q"
            if len(body) < w:
                bad(f"{len(body)} bytes, too short for the ranlib array size")
            ranlib_size, = struct.unpack_from(fmt, body, 0)
            if ranlib_size % (2 * w):
                bad(f"ranlib array size {ranlib_size} is not a multiple of {2 * w}")
            if w + ranlib_size + w > len(body):
                bad(f"ranlib array of {ranlib_size} bytes and the string-table size do not "
                    f"fit in the {len(body)}-byte table")
            n = ranlib_size // (2 * w)
            pairs = struct.unpack_from(f"<{2 * n}{fmt[1]}", body, w)
            str_size, = struct.unpack_from(fmt, body, w + ranlib_size)
            str_start = w + ranlib_size + w
            if str_start + str_size > len(body):
                bad(f"string table of {str_size} bytes does not fit in the {len(body)}-byte "
                    "table")
            strtab = body[str_start:str_start + str_size]
            for i in range(n):
                strx, off = pairs[2 * i], pairs[2 * i + 1]
                if strx >= len(strtab):
                    bad(f"entry #{i}: name offset {strx} is past the end of the "
                        f"{len(strtab)}-byte string table")
                end = strtab.find(b"\0", strx)
                entries.append((strtab[strx:end if end >= 0 else len(strtab)], off))

        by_offset = {m.offset: i for i, m in enumerate(members)}
        index: dict[str, list[int]] = {}
        for raw_name, off in entries:
            name = self._symbol_name(raw_name, kind)
            if not name:
                bad(f"empty symbol name (member offset {off:#x})")
            mi = by_offset.get(off)
            if mi is None:
                bad(f"symbol {name!r} points at offset {off:#x}, which is not the header of a "
                    "member")
            lst = index.setdefault(name, [])
            if mi not in lst:
                lst.append(mi)
        for lst in index.values():
            lst.sort()
        return index

    @staticmethod
    def _symbol_name(raw: bytes, kind: str) -> str:
        if kind.startswith("bsd"):
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError:
                pass
        return raw.decode("latin-1")

    # -- no symbol table: read the members ----------------------------------------
    @staticmethod
    def _build_index(archive: Archive) -> dict[str, list[int]]:
        index: dict[str, list[int]] = {}
        for i, m in enumerate(archive.members):
            if not _is_object(m.data):
                continue    # not an object (a text file, bitcode...): defines nothing
            for sym in archive.load(i).symbols:
                if sym.binding is Binding.LOCAL or not sym.defined or not sym.name:
                    continue
                lst = index.setdefault(sym.name, [])
                if i not in lst:
                    lst.append(i)
        return index
