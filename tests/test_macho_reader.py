"""The Mach-O reader: the neutral model of real objects, each relocation
kind's explicit addend, and clear errors for malformed or refused inputs.

Real objects are the committed relocation-coverage programs
(tests/data/macho/obj); synthetic ones are written by :func:`macho` below, a
minimal MH_OBJECT writer (header, one LC_SEGMENT_64, LC_SYMTAB, contents,
relocations, nlist_64 entries, string table).
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from kitemu.cli import main as cli_main
from kitemu.errors import KitemuError, ObjectFormatError, UnsupportedRelocation
from kitemu.loader import load_object
from kitemu.loader.macho import read_macho
from kitemu.loader.model import Binding, SectionKind, SymbolPlace, SymbolType
from kitemu.targets import aarch64, x64
from kitemu.targets.base import Formula

OBJ = Path(__file__).resolve().parent / "data" / "macho" / "obj"
X86_64, ARM64 = 0x01000007, 0x0100000C

# ---- a minimal Mach-O writer ----------------------------------------------------------


@dataclass
class Sec:
    seg: str
    sect: str
    data: bytes = b""
    flags: int = 0
    align: int = 0                 # log2
    size: int | None = None        # zero-fill: size without contents
    relocs: list = field(default_factory=list)   # [(r_address, word)]


def rel(address, symnum, pcrel, length, extern, rtype):
    """One relocation_info: (r_address, the packed second word)."""
    return (address, (symnum & 0xFFFFFF) | pcrel << 24 | length << 25 | extern << 27
            | rtype << 28)


N_EXT, N_PEXT, N_UNDF, N_ABS, N_SECT, N_INDR = 0x1, 0x10, 0x0, 0x2, 0xE, 0xA


def sym(name, n_type=N_SECT | N_EXT, n_sect=1, n_value=0, n_desc=0):
    return (name, n_type, n_sect, n_desc, n_value)


@dataclass
class Built:
    data: bytes
    section_header: list[int]      # file offset of each section_64
    section_addr: list[int]
    section_offset: list[int]      # file offset of each section's contents
    reloc_offset: list[int]
    symoff: int
    stroff: int
    symtab_cmd: int


def macho(sections=(), symbols=(), *, cputype=X86_64, filetype=1, flags=0,
          extra_cmds: bytes = b"", extra_ncmds=0) -> Built:
    nsects = len(sections)
    seg_size = 72 + 80 * nsects
    cmds_size = seg_size + 24 + len(extra_cmds)
    off = 32 + cmds_size
    addr = 0
    addrs, offsets, body = [], [], b""
    for s in sections:
        a = 1 << s.align
        addr = (addr + a - 1) & -a
        addrs.append(addr)
        size = len(s.data) if s.size is None else s.size
        if s.size is None:
            offsets.append(off + len(body))
            body += s.data
            body += b"\0" * (-len(body) % 8)
        else:
            offsets.append(0)
        addr += size
    reloc_offsets = []
    for s in sections:
        reloc_offsets.append(off + len(body) if s.relocs else 0)
        for a, w in s.relocs:
            body += struct.pack("<iI", a, w)
    strtab = b"\0"
    names = []
    for name, *_ in symbols:
        names.append(len(strtab) if name else 0)
        if name:
            strtab += name.encode() + b"\0"
    symoff = off + len(body)
    for (name, n_type, n_sect, n_desc, n_value), strx in zip(symbols, names):
        body += struct.pack("<IBBHQ", strx, n_type, n_sect, n_desc, n_value)
    stroff = off + len(body)
    body += strtab
    header = struct.pack("<IiiIIIII", 0xFEEDFACF, cputype, 0, filetype, 2 + extra_ncmds,
                         cmds_size, flags, 0)
    seg = struct.pack("<II16sQQQQiiII", 0x19, seg_size, b"", 0, addr, 32 + cmds_size,
                      len(body), 7, 7, nsects, 0)
    headers = []
    for s, a, o, r in zip(sections, addrs, offsets, reloc_offsets):
        headers.append(32 + len(seg))
        size = len(s.data) if s.size is None else s.size
        seg += struct.pack("<16s16sQQIIIIIIII", s.sect.encode(), s.seg.encode(), a, size, o,
                           s.align, r, len(s.relocs), s.flags, 0, 0, 0)
    symtab_cmd = 32 + len(seg)
    symtab = struct.pack("<IIIIII", 0x2, 24, symoff, len(symbols), stroff, len(strtab))
    data = header + seg + symtab + extra_cmds + body
    return Built(data, headers, addrs, offsets, reloc_offsets, symoff, stroff, symtab_cmd)


TEXT_FLAGS = 0x80000400       # S_ATTR_PURE_INSTRUCTIONS | S_ATTR_SOME_INSTRUCTIONS


def text(data: bytes, relocs=(), **kw) -> Sec:
    return Sec("__TEXT", "__text", data, TEXT_FLAGS, relocs=list(relocs), **kw)


def read(built: Built | bytes, path="t.o"):
    return read_macho(path, built.data if isinstance(built, Built) else built)


def section(obj, name):
    return next(s for s in obj.sections.values() if s.name == name)


def sym_name(obj, index):
    return obj.symbols[index].name


# ---- the model of a real object ---------------------------------------------------------

def x64_main():
    return load_object(str(OBJ / "x64" / "main.o"))


def test_model_of_a_real_object():
    obj = x64_main()
    assert obj.format == "macho" and obj.target == "macho-x64"
    assert obj.tu_name == "main.o"
    assert obj.subsections_via_symbols is True
    S = SectionKind
    # (name, kind, align, raw flags, size), in section-ordinal order
    assert [(s.index, s.name, s.kind, s.align, s.flags, s.size) for s in obj.sections.values()] == [
        (1, "__TEXT,__text", S.TEXT, 16, 0x80000400, obj.sections[1].size),
        (2, "__TEXT,__far", S.TEXT, 1, 0x80000400, 6 + 5 + 4),
        (3, "__TEXT,__const", S.RODATA, 8, 0, 6 * 8 + 4 * 4),
        (4, "__DATA,__const", S.RODATA, 8, 0, 5 * 8 + 2 * 4),
        (5, "__TEXT,__cstring", S.RODATA, 1, 0x2, obj.sections[5].size),   # S_CSTRING_LITERALS
        (6, "__DATA,__nx", S.DATA, 8, 0, 4 * 8),
        (7, "__DATA,__diffs", S.DATA, 1, 0, 4 + 8 + 8 + 4),
        (8, "__DATA,__data", S.DATA, 8, 0, 16),
        (9, "__DATA,__mod_init_func", S.INIT_ARRAY, 8, 0x9, 8),   # S_MOD_INIT_FUNC_POINTERS
        (10, "__DATA,__bss", S.BSS, 16, 0x1, 16),                 # S_ZEROFILL
    ]
    assert obj.sections[10].data is None
    assert obj.sections[5].data.startswith(b"x64 calls: ok\0")
    assert obj.sections[6].data == b"\x5a" * 24 + bytes(8)

    def s(name):
        return next(x for x in obj.symbols if x.name == name)
    B, P = Binding, SymbolPlace
    # section-relative values (n_value is an address in the object)
    assert (s("_main").binding, s("_main").type, s("_main").place, s("_main").section,
            s("_main").value) == (B.GLOBAL, SymbolType.FUNC, P.SECTION, 1, 0)
    assert (s("_main_helper").section, s("_main_helper").value) == (2, 6 + 5)
    assert (s("_far_tramp").binding, s("_far_tramp").value) == (B.LOCAL, 6)
    assert (s("_diff_target").section, s("_diff_target").value, s("_diff_target").type) == \
        (8, 8, SymbolType.OBJECT)
    assert (s("d_pcrel_word").section, s("d_pcrel_word").value) == (3, 6 * 8 + 3 * 4)
    assert (s("_main_bss").binding, s("_main_bss").section, s("_main_bss").value) == (B.LOCAL, 10, 0)
    assert s("_weak_fn").binding is B.WEAK and s("_weak_fn").place is P.SECTION
    common = s("_main_common")
    assert (common.place, common.size, common.value, common.binding) == (P.COMMON, 8, 8, B.GLOBAL)
    assert (s("_maybe_missing").place, s("_maybe_missing").binding) == (P.UNDEF, B.WEAK)
    assert (s("_puts").place, s("_puts").binding) == (P.UNDEF, B.GLOBAL)
    # sizes: the distance to the next symbol of the section
    assert s("_far_tramp").size == 5 and s("_main_helper").size == 4
    assert s("_ctor_ran").size == 8 and s("_diff_target").size == 8
    # one synthetic SECTION symbol per section, after the nlist entries
    tail = obj.symbols[-10:]
    assert [(t.name, t.type, t.section, t.value, t.binding) for t in tail] == \
        [(sec.name, SymbolType.SECTION, sec.index, 0, B.LOCAL) for sec in obj.sections.values()]
    assert [t.index for t in obj.symbols] == list(range(len(obj.symbols)))


# `llvm-objdump --macho -r` of two sections of x64/main.o, as the source
# (tests/data/macho/src/x64/main.s) implies it: each difference is a
# SUBTRACTOR followed by its UNSIGNED (the assembler writes relocations last
# to first); everything in __DATA,__nx and "." in __DATA,__diffs is
# assembler-temporary with no symbol before it, hence non-extern (ordinals
# 6 and 7).
OBJDUMP_X64_MAIN = """\
Relocation information (__DATA,__const) 9 entries
address  pcrel length extern type    scattered symbolnum/value
0000002c False long   True   SUB     False     _main
0000002c False long   False  UNSIGND False     6 (__DATA,__nx)
00000028 False long   False  UNSIGND False     6 (__DATA,__nx)
00000020 False quad   True   SUB     False     _main
00000020 False quad   False  UNSIGND False     6 (__DATA,__nx)
00000018 False quad   True   UNSIGND False     _main_common
00000010 False quad   True   UNSIGND False     _main_bss
00000008 False quad   False  UNSIGND False     6 (__DATA,__nx)
00000000 False quad   False  UNSIGND False     6 (__DATA,__nx)
Relocation information (__DATA,__diffs) 8 entries
address  pcrel length extern type    scattered symbolnum/value
00000014 False long   False  SUB     False     7 (__DATA,__diffs)
00000014 False long   False  UNSIGND False     6 (__DATA,__nx)
0000000c False quad   False  SUB     False     7 (__DATA,__diffs)
0000000c False quad   True   UNSIGND False     _diff_target
00000004 False quad   False  SUB     False     7 (__DATA,__diffs)
00000004 False quad   False  UNSIGND False     6 (__DATA,__nx)
00000000 False long   False  SUB     False     7 (__DATA,__diffs)
00000000 False long   True   UNSIGND False     _diff_target
"""

#: the explicit addends those relocations must get, from the source: L_nx_q
#: is __DATA,__nx + 0x18, L_nx_b + 0; "." is __DATA,__diffs + its offset.
#: (section, offset) -> (symbol, subtrahend or None, addend)
EXPECTED_X64_MAIN = {
    ("__DATA,__const", 0x2C): ("__DATA,__nx", "_main", 0x18),       # .long L_nx_q - _main
    ("__DATA,__const", 0x28): ("__DATA,__nx", None, 0x18),          # .long L_nx_q
    ("__DATA,__const", 0x20): ("__DATA,__nx", "_main", 0x18),       # .quad L_nx_q - _main
    ("__DATA,__const", 0x18): ("_main_common", None, 0),
    ("__DATA,__const", 0x10): ("_main_bss", None, 0),
    ("__DATA,__const", 0x08): ("__DATA,__nx", None, 0x18),          # .quad L_nx_q
    ("__DATA,__const", 0x00): ("__DATA,__nx", None, 0),             # .quad L_nx_b
    ("__DATA,__diffs", 0x14): ("__DATA,__nx", "__DATA,__diffs", 0x18 - 0x14),   # L_nx_q - .
    ("__DATA,__diffs", 0x0C): ("_diff_target", "__DATA,__diffs", -0xC),        # _diff_target - .
    ("__DATA,__diffs", 0x04): ("__DATA,__nx", "__DATA,__diffs", 0x18 - 0x4),    # L_nx_q - .
    ("__DATA,__diffs", 0x00): ("_diff_target", "__DATA,__diffs", 0),            # _diff_target - .
}

_OBJDUMP_TYPES = {"SUB": "X86_64_RELOC_SUBTRACTOR", "UNSIGND": "X86_64_RELOC_UNSIGNED"}


def _parse_objdump(text: str) -> dict[str, list[tuple]]:
    out, current = {}, None
    for line in text.splitlines():
        if line.startswith("Relocation information ("):
            current = out.setdefault(line.split("(")[1].split(")")[0], [])
        elif line[:9].strip() and all(c in "0123456789abcdef" for c in line[:8]):
            f = line.split()
            out_sym = " ".join(f[6:])
            current.append((int(f[0], 16), f[1] == "True", {"long": 2, "quad": 3}[f[2]],
                            f[3] == "True", _OBJDUMP_TYPES[f[4]], out_sym))
    return out


def test_relocations_of_a_real_object_match_objdump():
    obj = x64_main()
    listing = _parse_objdump(OBJDUMP_X64_MAIN)
    for secname, entries in listing.items():
        sec = section(obj, secname)
        got = iter(sec.relocations)
        i = 0
        while i < len(entries):
            address, pcrel, length, extern, rtype, target = entries[i]
            r = next(got)
            assert (r.offset, r.index) == (address, i)
            assert r.spec.fixup.size == 1 << length
            exp_sym, exp_sub, exp_addend = EXPECTED_X64_MAIN[(secname, address)]
            if rtype == "X86_64_RELOC_SUBTRACTOR":
                minuend = entries[i + 1]
                assert r.name == rtype and r.spec.formula is Formula.DELTA
                assert obj.symbols[r.subtrahend].name == (target if extern else target.split()[1][1:-1])
                target, extern = minuend[5], minuend[3]
                assert obj.symbols[r.subtrahend].name == exp_sub
                i += 2
            else:
                assert r.name == rtype and r.subtrahend is None and r.spec.formula is Formula.ABS
                assert exp_sub is None
                i += 1
            s = obj.symbols[r.symbol]
            if extern:
                assert s.name == target and s.type is not SymbolType.SECTION
            else:
                ordinal, name = target.split()
                assert (s.type, s.section, s.name) == (SymbolType.SECTION, int(ordinal), name[1:-1])
            assert s.name == exp_sym
            assert r.addend == exp_addend, (secname, hex(address))
        assert next(got, None) is None


def test_objdump_listing_is_the_tools():
    """The literal listing above is what llvm-objdump prints (when it is
    installed): it describes the committed object, not the reader."""
    if shutil.which("llvm-objdump") is None:
        pytest.skip("llvm-objdump is not installed")
    out = subprocess.run(["llvm-objdump", "--macho", "-r", str(OBJ / "x64" / "main.o")],
                         capture_output=True, text=True, check=True).stdout
    start = out.index("Relocation information (__DATA,__const)")
    end = out.index("Relocation information (__DATA,__mod_init_func)")
    assert out[start:end] == OBJDUMP_X64_MAIN


def _find(obj, secname, name, symbol):
    sec = section(obj, secname)
    hits = [r for r in sec.relocations if r.name == name and sym_name(obj, r.symbol) == symbol]
    assert hits, (name, symbol)
    return sec, hits


def test_x64_implicit_addends_of_real_instructions():
    """The field of an extern pc-relative relocation holds the offset from the
    symbol less the bytes after the field (``movb $1, _x(%rip)`` stores -1);
    the explicit addend counts from the field: ``field - 4``."""
    obj = x64_main()
    cases = [  # (type, symbol, field, addend): from main.s
        ("X86_64_RELOC_SIGNED_1", "_lib_rw_b", -1, -5),     # movb $0x11, _lib_rw_b(%rip)
        ("X86_64_RELOC_SIGNED_2", "_lib_rw_h", -2, -6),     # movw $0x2222, ...
        ("X86_64_RELOC_SIGNED_4", "_lib_rw_w", -4, -8),     # movl $0x44444444, ...
        ("X86_64_RELOC_SIGNED", "_lib_words", 8, 4),        # movl _lib_words+8(%rip)
        ("X86_64_RELOC_BRANCH", "_lib_ret7", 0, -4),        # callq _lib_ret7
        ("X86_64_RELOC_GOT_LOAD", "_lib_data", 0, -4),      # movq _lib_data@GOTPCREL(%rip)
    ]
    for name, symbol, field_value, addend in cases:
        sec, hits = _find(obj, "__TEXT,__text", name, symbol)
        for r in hits:
            assert struct.unpack_from("<i", sec.data, r.offset)[0] == field_value
            assert r.addend == addend
            assert r.spec.formula is (Formula.GOT_PCREL if "GOT" in name else Formula.PCREL)
    assert _find(obj, "__TEXT,__text", "X86_64_RELOC_BRANCH", "_puts")[1][0].spec.branch
    # the same with r_extern=0: against the section, from the object's own
    # addresses (L_nx_b/h/w/q at __DATA,__nx + 0/8/0x10/0x18)
    for name, addend in (("X86_64_RELOC_SIGNED_1", 0 - 5), ("X86_64_RELOC_SIGNED_2", 8 - 6),
                         ("X86_64_RELOC_SIGNED_4", 0x10 - 8)):
        assert [r.addend for r in _find(obj, "__TEXT,__text", name, "__DATA,__nx")[1]] == [addend]
    _, far = _find(obj, "__TEXT,__text", "X86_64_RELOC_BRANCH", "__TEXT,__far")
    assert [r.addend for r in far] == [-4]                  # callq L_far_local (offset 0)
    # X86_64_RELOC_GOT in data: `.long _lib_table@GOTPCREL+4` -> G + 0 - P
    _, got = _find(obj, "__TEXT,__const", "X86_64_RELOC_GOT", "_lib_table")
    assert [(r.addend, r.spec.formula) for r in got] == [(0, Formula.GOT_PCREL)]


def test_arm64_real_object():
    obj = load_object(str(OBJ / "arm64" / "main.o"))
    assert obj.target == "macho-arm64"
    assert section(obj, "__DATA,__const").kind is SectionKind.RODATA
    text_ = section(obj, "__TEXT,__text")
    # ADDEND folded into the relocation that follows it
    _, page = _find(obj, "__TEXT,__text", "ARM64_RELOC_PAGE21", "_lib_big")
    assert sorted(r.addend for r in page) == [0x1008, 0x1FF8]
    _, branch = _find(obj, "__TEXT,__text", "ARM64_RELOC_BRANCH26", "_lib_entries")
    assert sorted(r.addend for r in branch) == [8, 16]
    assert all(r.spec.branch for r in branch)
    # the PAGEOFF12 fixup follows the instruction
    fixups = {r.spec.fixup.name for r in text_.relocations if r.name == "ARM64_RELOC_PAGEOFF12"}
    assert fixups == {"aarch64.AddLo12", "aarch64.Ldst8Lo12", "aarch64.Ldst16Lo12",
                      "aarch64.Ldst32Lo12", "aarch64.Ldst64Lo12", "aarch64.Ldst128Lo12"}
    # POINTER_TO_GOT: addend 0 though llvm-mc leaves -offset in the field
    sec, ptg = _find(obj, "__DATA,__const", "ARM64_RELOC_POINTER_TO_GOT", "_lib_table")
    by_size = {r.spec.fixup.size: r for r in ptg}
    assert by_size[4].spec.formula is Formula.GOT_PCREL and by_size[4].addend == 0
    assert struct.unpack_from("<i", sec.data, by_size[4].offset)[0] == -by_size[4].offset
    assert by_size[8].spec.formula is Formula.GOT_ABS and by_size[8].addend == 0
    # assembler-temporary names that reach the symbol table are locals
    ltmp = [s for s in obj.symbols if s.name.startswith("ltmp")]
    assert ltmp and all(s.binding is Binding.LOCAL for s in ltmp)


@pytest.mark.parametrize("seg,sect,flags,kind", [
    ("__TEXT", "__text", TEXT_FLAGS, SectionKind.TEXT),
    ("__TEXT", "__text", 0, SectionKind.TEXT),
    ("__TEXT", "__StaticInit", 0, SectionKind.TEXT),
    ("__TEXT", "__stubs_like", 0x400, SectionKind.TEXT),   # S_ATTR_SOME_INSTRUCTIONS
    ("__TEXT", "__cstring", 0x2, SectionKind.RODATA),
    ("__TEXT", "__literal4", 0x3, SectionKind.RODATA),
    ("__TEXT", "__literal8", 0x4, SectionKind.RODATA),
    ("__TEXT", "__literal16", 0xE, SectionKind.RODATA),
    ("__TEXT", "__const", 0, SectionKind.RODATA),
    ("__TEXT", "__gcc_except_tab", 0, SectionKind.RODATA),
    ("__DATA", "__const", 0, SectionKind.RODATA),
    ("__DATA_CONST", "__const", 0, SectionKind.RODATA),
    ("__DATA", "__data", 0, SectionKind.DATA),
    ("__DATA", "__mod_init_func", 0x9, SectionKind.INIT_ARRAY),
    ("__DATA", "__mod_term_func", 0xA, SectionKind.FINI_ARRAY),
    ("__DATA", "__bss", 0x1, SectionKind.BSS),
    ("__DATA", "__common", 0x1, SectionKind.BSS),
    ("__DATA", "__huge", 0xC, SectionKind.BSS),           # S_GB_ZEROFILL
    ("__TEXT", "__eh_frame", 0x6800000B, SectionKind.NONALLOC),
    ("__LD", "__compact_unwind", 0x02000000, SectionKind.NONALLOC),
    ("__LD", "__compact_unwind", 0, SectionKind.NONALLOC),
    ("__DWARF", "__debug_info", 0x02000000, SectionKind.NONALLOC),
    ("__DWARF", "__debug_line", 0, SectionKind.NONALLOC),
    ("__TEXT", "__odd_debug", 0x02000000, SectionKind.NONALLOC),   # S_ATTR_DEBUG anywhere
    ("__LLVM", "__bitcode", 0, SectionKind.NONALLOC),
])
def test_section_kinds(seg, sect, flags, kind):
    zerofill = flags & 0xFF in (0x1, 0xC)
    s = Sec(seg, sect, b"" if zerofill else b"\0" * 8, flags, 3, size=8 if zerofill else None)
    obj = read(macho([s]))
    sec = obj.sections[1]
    assert (sec.name, sec.kind, sec.flags, sec.align) == (f"{seg},{sect}", kind, flags, 8)
    assert (sec.data is None) == zerofill


@pytest.mark.parametrize("flags,what", [
    (0x11, "S_THREAD_LOCAL_REGULAR"), (0x12, "S_THREAD_LOCAL_ZEROFILL"),
    (0x13, "S_THREAD_LOCAL_VARIABLES"), (0x14, "S_THREAD_LOCAL_VARIABLE_POINTERS"),
    (0x15, "S_THREAD_LOCAL_INIT_FUNCTION_POINTERS"),
    (0x6, "S_NON_LAZY_SYMBOL_POINTERS"), (0x7, "S_LAZY_SYMBOL_POINTERS"),
    (0x8, "S_SYMBOL_STUBS"), (0x16, "S_INIT_FUNC_OFFSETS"),
])
def test_refused_section_types(flags, what):
    with pytest.raises(ObjectFormatError, match=f"t.o: section __DATA,__x: .*{what}"):
        read(macho([Sec("__DATA", "__x", b"\0" * 8, flags)]))


def test_instructions_in_a_writable_section_are_refused():
    with pytest.raises(ObjectFormatError, match=r"section __DATA,__code: .*W\^X"):
        read(macho([Sec("__DATA", "__code", b"\xc3", TEXT_FLAGS)]))


# ---- symbols ---------------------------------------------------------------------------

def test_symbol_kinds():
    built = macho([text(b"\x90" * 16), Sec("__DATA", "__data", b"\0" * 16, align=3)], [
        sym("_g", N_SECT | N_EXT, 1, 4),
        sym("_hidden", N_SECT | N_EXT | N_PEXT, 1, 8),
        sym("_was_hidden", N_SECT | N_PEXT, 1, 8),
        sym("_weak", N_SECT | N_EXT, 2, 16 + 8, n_desc=0x80),        # N_WEAK_DEF
        sym("_local", N_SECT, 2, 16),
        sym("_undef", N_UNDF | N_EXT),
        sym("_weakref", N_UNDF | N_EXT, 0, n_desc=0x40),              # N_WEAK_REF
        sym("_comm", N_UNDF | N_EXT, 0, 24, n_desc=4 << 8),           # GET_COMM_ALIGN 4
        sym("_comm0", N_UNDF | N_EXT, 0, 12),                         # no alignment given
        sym("_abs", N_ABS | N_EXT, 0, 0x1234),
        ("", 0x64, 0, 0, 0),                                          # N_SO: a directory
        ("/src/dir/", 0x64, 0, 0, 0),
        ("prog.c", 0x64, 0, 0, 0),
        ("ltmp0", N_SECT, 1, 0, 0),
    ])
    obj = read(built, "sym.o")
    by = {s.name: s for s in obj.symbols if s.name}
    B, P = Binding, SymbolPlace
    assert (by["_g"].binding, by["_g"].place, by["_g"].section, by["_g"].value, by["_g"].type,
            by["_g"].visibility) == (B.GLOBAL, P.SECTION, 1, 4, SymbolType.FUNC, "default")
    assert (by["_hidden"].binding, by["_hidden"].visibility) == (B.GLOBAL, "hidden")
    assert (by["_was_hidden"].binding, by["_was_hidden"].visibility) == (B.LOCAL, "hidden")
    # n_value 0x18 is an address: __DATA,__data starts at 0x10
    assert (by["_weak"].binding, by["_weak"].section, by["_weak"].value, by["_weak"].type) == \
        (B.WEAK, 2, 8, SymbolType.OBJECT)
    assert (by["_local"].binding, by["_local"].value) == (B.LOCAL, 0)
    assert (by["_undef"].place, by["_undef"].binding) == (P.UNDEF, B.GLOBAL)
    assert (by["_weakref"].place, by["_weakref"].binding) == (P.UNDEF, B.WEAK)
    assert (by["_comm"].place, by["_comm"].size, by["_comm"].value) == (P.COMMON, 24, 16)
    assert (by["_comm0"].place, by["_comm0"].size, by["_comm0"].value) == (P.COMMON, 12, 4)
    assert (by["_abs"].place, by["_abs"].value) == (P.ABS, 0x1234)
    assert by["ltmp0"].binding is B.LOCAL
    # stabs keep their index as unnamed placeholders; N_SO names the unit
    assert [s.index for s in obj.symbols] == list(range(len(obj.symbols)))
    assert obj.symbols[10].name == "" and obj.symbols[10].place is P.UNDEF
    assert obj.tu_name == "prog.c"
    # sizes: to the next symbol or the section end
    assert by["_g"].size == 4 and by["ltmp0"].size == 4 and by["_hidden"].size == 8
    assert read(macho([text(b"\xc3")], [sym("_f")]), "dir/noso.o").tu_name == "noso.o"


@pytest.mark.parametrize("entry,message", [
    (sym("_i", N_INDR | N_EXT, 0), "indirect symbol .N_INDR."),
    (sym("_p", 0xC | N_EXT, 0), "prebound undefined"),
    (sym("_u", N_UNDF, 0), "is not external"),
    (sym("_x", 0x6 | N_EXT, 0), "invalid type 0x07"),
    (sym("_s", N_SECT | N_EXT, 5), "section ordinal 5, which does not exist"),
    (sym("_o", N_SECT | N_EXT, 1, 0x100), r"address 0x100 lies outside its section __TEXT,__text"),
    (sym("_r", N_SECT | N_EXT, 1, 0, n_desc=0x100), "symbol resolver"),
])
def test_bad_symbols(entry, message):
    with pytest.raises(ObjectFormatError, match=f"^t.o: .*{message}"):
        read(macho([text(b"\xc3" * 4)], [entry]))


def test_bad_string_table_offset():
    built = macho([text(b"\xc3")], [sym("_f")])
    bad = bytearray(built.data)
    struct.pack_into("<I", bad, built.symoff, 0x10000)
    with pytest.raises(ObjectFormatError, match="symbol #0 has string-table offset 0x10000"):
        read(bytes(bad))


def test_symbol_and_string_tables_past_eof():
    built = macho([text(b"\xc3")], [sym("_f")])
    bad = bytearray(built.data)
    struct.pack_into("<I", bad, built.symtab_cmd + 12, 1000)          # nsyms
    with pytest.raises(ObjectFormatError, match="symbol table .* lies outside the file"):
        read(bytes(bad))
    bad = bytearray(built.data)
    struct.pack_into("<I", bad, built.symtab_cmd + 20, 1000)          # strsize
    with pytest.raises(ObjectFormatError, match="string table .* lies outside the file"):
        read(bytes(bad))


# ---- relocations, per kind ------------------------------------------------------------

def one_reloc(cputype, code: bytes, entries, symbols=None, extra_sections=()):
    symbols = symbols if symbols is not None else [sym("_f", N_SECT | N_EXT, 1, 0),
                                                   sym("_ext", N_UNDF | N_EXT, 0)]
    return read(macho([text(code, entries), *extra_sections], symbols, cputype=cputype))


def only(obj):
    (r,) = [r for s in obj.sections.values() for r in s.relocations]
    return r


X_UNSIGNED, X_SIGNED, X_BRANCH, X_GOT_LOAD, X_GOT, X_SUB = 0, 1, 2, 3, 4, 5
X_SIGNED_1, X_SIGNED_2, X_SIGNED_4, X_TLV = 6, 7, 8, 9


@pytest.mark.parametrize("rtype,name,length,field,addend,fixup,formula,branch", [
    (X_UNSIGNED, "X86_64_RELOC_UNSIGNED", 3, 0x10, 0x10, x64.DATA64, Formula.ABS, False),
    (X_UNSIGNED, "X86_64_RELOC_UNSIGNED", 2, -4, -4, x64.DATA32, Formula.ABS, False),
    (X_SIGNED, "X86_64_RELOC_SIGNED", 2, 8, 4, x64.PCREL32, Formula.PCREL, False),
    (X_SIGNED_1, "X86_64_RELOC_SIGNED_1", 2, -1, -5, x64.PCREL32, Formula.PCREL, False),
    (X_SIGNED_2, "X86_64_RELOC_SIGNED_2", 2, -2, -6, x64.PCREL32, Formula.PCREL, False),
    (X_SIGNED_4, "X86_64_RELOC_SIGNED_4", 2, -4, -8, x64.PCREL32, Formula.PCREL, False),
    (X_BRANCH, "X86_64_RELOC_BRANCH", 2, 0, -4, x64.PCREL32, Formula.PCREL, True),
    (X_GOT_LOAD, "X86_64_RELOC_GOT_LOAD", 2, 0, -4, x64.PCREL32, Formula.GOT_PCREL, False),
    (X_GOT, "X86_64_RELOC_GOT", 2, 4, 0, x64.PCREL32, Formula.GOT_PCREL, False),
])
def test_x64_extern_kinds(rtype, name, length, field, addend, fixup, formula, branch):
    size = 1 << length
    code = b"\x90" * 4 + field.to_bytes(size, "little", signed=True) + b"\x90" * 4
    r = only(one_reloc(X86_64, code, [rel(4, 1, int(formula is not Formula.ABS), length, 1, rtype)]))
    assert (r.name, r.type, r.offset, r.symbol, r.addend, r.index) == (name, rtype, 4, 1, addend, 0)
    assert (r.spec.fixup, r.spec.formula, r.spec.branch) == (fixup, formula, branch)


def test_x64_non_extern_kinds():
    """r_extern=0: the field already holds the value in the object's address
    space (text at 0, data at 0x10): A = field + P - S_obj (pc-relative),
    A = field - S_obj (absolute)."""
    data_sec = Sec("__DATA", "__data", b"\0" * 16, align=4)          # at 0x10
    # movb $1, data+4(%rip) at 0: field at 2, instruction ends at 7
    disp = (0x10 + 4) - 7
    code = b"\xc6\x05" + disp.to_bytes(4, "little", signed=True) + b"\x01"
    code += (0x10 + 8).to_bytes(8, "little")                          # .quad data+8 at 7
    obj = one_reloc(X86_64, code, [rel(2, 2, 1, 2, 0, X_SIGNED_1), rel(7, 2, 0, 3, 0, X_UNSIGNED)],
                    extra_sections=[data_sec])
    signed1, absolute = section(obj, "__TEXT,__text").relocations
    data_sym = obj.symbols[signed1.symbol]
    assert (data_sym.type, data_sym.section, data_sym.name) == (SymbolType.SECTION, 2, "__DATA,__data")
    assert signed1.addend == 4 - 5              # data+4, from 1 byte past the field
    assert absolute.symbol == signed1.symbol and absolute.addend == 8


@pytest.mark.parametrize("sub_extern,min_extern,addend", [
    (1, 1, 0x20),                       # field as is
    (1, 0, 0x20 - 0x10),                # minuend __DATA,__data at 0x10 folded in
    (0, 1, 0x20 + 0),                   # subtrahend __TEXT,__text at 0
    (0, 0, 0x20 - 0x10 + 0),
])
@pytest.mark.parametrize("length", [2, 3])
def test_x64_subtractor_pairs(sub_extern, min_extern, addend, length):
    data_sec = Sec("__DATA", "__data", b"\0" * 16, align=4)
    code = b"\x90" * 4 + (0x20).to_bytes(1 << length, "little") + b"\x90" * 4
    sub = rel(4, 0 if sub_extern else 1, 0, length, sub_extern, X_SUB)
    minuend = rel(4, 2 if min_extern else 2, 0, length, min_extern, X_UNSIGNED)
    symbols = [sym("_f", N_SECT | N_EXT, 1, 0), sym("_ext", N_UNDF | N_EXT, 0),
               sym("_d", N_SECT | N_EXT, 2, 0x10)]
    obj = one_reloc(X86_64, code, [sub, minuend], symbols, [data_sec])
    r = only(obj)
    assert (r.name, r.type, r.index, r.spec.formula) == ("X86_64_RELOC_SUBTRACTOR", X_SUB, 0,
                                                         Formula.DELTA)
    assert r.spec.fixup is (x64.DELTA32 if length == 2 else x64.DELTA64)
    assert r.spec.fixup.bounds[0] < 0          # signed, range-checked
    assert sym_name(obj, r.symbol) == ("_d" if min_extern else "__DATA,__data")
    assert sym_name(obj, r.subtrahend) == ("_f" if sub_extern else "__TEXT,__text")
    assert r.addend == addend


A_UNSIGNED, A_SUB, A_BRANCH26, A_PAGE21, A_PAGEOFF12 = 0, 1, 2, 3, 4
A_GOT_PAGE21, A_GOT_PAGEOFF12, A_PTR_GOT, A_TLVP_PAGE21, A_TLVP_PAGEOFF12 = 5, 6, 7, 8, 9
A_ADDEND, A_AUTH = 10, 11

ADRP_X0, ADD_X0, BL, NOP = 0x90000000, 0x91000000, 0x94000000, 0xD503201F


def insns(*words):
    return b"".join(struct.pack("<I", w) for w in words)


@pytest.mark.parametrize("word,fixup", [
    (0x91000000, aarch64.ADD_LO12),        # add x0, x0, #0
    (0x11000000, aarch64.ADD_LO12),        # add w0, w0, #0
    (0x39400001, aarch64.LDST8_LO12),      # ldrb w1, [x0]
    (0x39000001, aarch64.LDST8_LO12),      # strb w1, [x0]
    (0x39800001, aarch64.LDST8_LO12),      # ldrsb x1, [x0]
    (0x79400001, aarch64.LDST16_LO12),     # ldrh w1, [x0]
    (0xB9400001, aarch64.LDST32_LO12),     # ldr w1, [x0]
    (0xB9800001, aarch64.LDST32_LO12),     # ldrsw x1, [x0]
    (0xF9400001, aarch64.LDST64_LO12),     # ldr x1, [x0]
    (0xF9000001, aarch64.LDST64_LO12),     # str x1, [x0]
    (0xF9800000, aarch64.LDST64_LO12),     # prfm pldl1keep, [x0]
    (0x3D400000, aarch64.LDST8_LO12),      # ldr b0, [x0]
    (0x7D400000, aarch64.LDST16_LO12),     # ldr h0, [x0]
    (0xBD400000, aarch64.LDST32_LO12),     # ldr s0, [x0]
    (0xFD400000, aarch64.LDST64_LO12),     # ldr d0, [x0]
    (0x3DC00001, aarch64.LDST128_LO12),    # ldr q1, [x0]
    (0x3D800001, aarch64.LDST128_LO12),    # str q1, [x0]
    (0xD503201F, None),                    # nop
    (0xB1000000, None),                    # adds x0, x0, #0
    (0x91400000, None),                    # add x0, x0, #0, lsl #12
    (0xF8400C01, None),                    # ldr x1, [x0, #0]! (pre-index)
    (0x90000000, None),                    # adrp x0, 0
])
def test_pageoff12_classifier(word, fixup):
    assert aarch64.macho_lo12_fixup(word) is fixup


def test_arm64_addend_pairs():
    """ARM64_RELOC_ADDEND gives its 24-bit signed addend to the next PAGE21 /
    PAGEOFF12 / BRANCH26 (a negative one too, which llvm-mc 14 cannot
    write)."""
    code = insns(ADRP_X0, 0xF9400001, BL, ADRP_X0)
    obj = one_reloc(ARM64, code, [
        rel(0, 0x1008, 0, 2, 0, A_ADDEND), rel(0, 1, 1, 2, 1, A_PAGE21),
        rel(4, 0x1008, 0, 2, 0, A_ADDEND), rel(4, 1, 0, 2, 1, A_PAGEOFF12),
        rel(8, 0xFFFFF8, 0, 2, 0, A_ADDEND), rel(8, 1, 1, 2, 1, A_BRANCH26),
        rel(12, 1, 1, 2, 1, A_PAGE21),
    ])
    page, off, branch, plain = section(obj, "__TEXT,__text").relocations
    assert [(r.name, r.index, r.addend) for r in (page, off, branch, plain)] == [
        ("ARM64_RELOC_PAGE21", 1, 0x1008), ("ARM64_RELOC_PAGEOFF12", 3, 0x1008),
        ("ARM64_RELOC_BRANCH26", 5, -8), ("ARM64_RELOC_PAGE21", 6, 0)]
    assert (page.spec.fixup, page.spec.formula) == (aarch64.ADRP_PAGE21, Formula.PAGE_PCREL)
    assert (off.spec.fixup, off.spec.formula) == (aarch64.LDST64_LO12, Formula.ABS)
    assert (branch.spec.fixup, branch.spec.branch) == (aarch64.BRANCH26, True)


@pytest.mark.parametrize("entries,code,message", [
    ([rel(0, 8, 0, 2, 0, A_ADDEND)], insns(ADRP_X0), "is the last relocation"),
    ([rel(0, 8, 0, 2, 0, A_ADDEND), rel(0, 1, 0, 3, 1, A_UNSIGNED)], insns(0, 0),
     "followed by ARM64_RELOC_UNSIGNED .#1., which takes no addend"),
    ([rel(0, 8, 0, 2, 0, A_ADDEND), rel(0, 1, 1, 2, 1, A_GOT_PAGE21)], insns(ADRP_X0),
     "followed by ARM64_RELOC_GOT_LOAD_PAGE21"),
    ([rel(0, 8, 0, 2, 0, A_ADDEND), rel(4, 1, 1, 2, 1, A_BRANCH26)], insns(BL, BL),
     "at another offset .0x4."),
    ([rel(0, 8, 0, 2, 1, A_ADDEND), rel(0, 1, 1, 2, 1, A_BRANCH26)], insns(BL),
     "must have r_pcrel=0, r_extern=0, r_length=2"),
])
def test_arm64_bad_addend(entries, code, message):
    with pytest.raises(ObjectFormatError,
                       match=f"section __TEXT,__text: relocation #0 ARM64_RELOC_ADDEND .*{message}"):
        one_reloc(ARM64, code, entries)


@pytest.mark.parametrize("rtype,word,pcrel,message", [
    (A_BRANCH26, BL | 4, 1, r"immediate field is 0x10, not 0 .*ARM64_RELOC_ADDEND"),
    (A_PAGE21, ADRP_X0 | (1 << 5), 1, "immediate field is 0x4000, not 0"),
    (A_PAGEOFF12, 0xF9400401, 0, "immediate field is 0x8, not 0"),   # ldr x1, [x0, #8]
    (A_PAGEOFF12, NOP, 0, "instruction 0xd503201f at the place is not an ADD"),
    (A_GOT_PAGEOFF12, ADD_X0, 0, "is not a 64-bit LDR"),
    (A_GOT_PAGEOFF12, 0xB9400001, 0, "is not a 64-bit LDR"),          # ldr w1
    (A_PAGE21, ADRP_X0, 0, "r_pcrel=0 with r_length=2 is not a valid form"),
])
def test_arm64_bad_instruction_relocations(rtype, word, pcrel, message):
    name = aarch64.MACHO_RELOC_NAMES[rtype]
    with pytest.raises(ObjectFormatError,
                       match=f"t.o: section __TEXT,__text: relocation #0 {name} at offset 0x0: "
                             f".*{message}"):
        one_reloc(ARM64, insns(word), [rel(0, 1, pcrel, 2, 1, rtype)])


def test_arm64_data_kinds():
    data = (0x10).to_bytes(8, "little") + (-8 & 0xFFFFFFFF).to_bytes(4, "little") \
        + (-12 & 0xFFFFFFFF).to_bytes(4, "little") + (5).to_bytes(8, "little")
    obj = one_reloc(ARM64, data, [
        rel(0, 1, 0, 3, 1, A_UNSIGNED), rel(8, 1, 0, 2, 1, A_UNSIGNED),
        rel(12, 1, 1, 2, 1, A_PTR_GOT), rel(16, 1, 0, 3, 1, A_PTR_GOT)])
    u64, u32, ptg32, ptg64 = section(obj, "__TEXT,__text").relocations
    assert (u64.spec.fixup, u64.spec.formula, u64.addend) == (aarch64.DATA64, Formula.ABS, 0x10)
    assert (u32.spec.fixup, u32.addend) == (aarch64.DATA32, -8)
    # POINTER_TO_GOT takes no addend from its field
    assert (ptg32.spec.fixup, ptg32.spec.formula, ptg32.addend) == \
        (aarch64.GOT_PREL32, Formula.GOT_PCREL, 0)
    assert (ptg64.spec.fixup, ptg64.spec.formula, ptg64.addend) == \
        (aarch64.DATA64, Formula.GOT_ABS, 0)


def test_arm64_non_extern_unsigned():
    data_sec = Sec("__DATA", "__data", b"\0" * 16, align=4)          # at 0x10
    obj = one_reloc(ARM64, (0x10 + 12).to_bytes(8, "little"), [rel(0, 2, 0, 3, 0, A_UNSIGNED)],
                    extra_sections=[data_sec])
    r = only(obj)
    assert (sym_name(obj, r.symbol), r.addend) == ("__DATA,__data", 12)


@pytest.mark.parametrize("rtype,code", [
    (A_BRANCH26, insns(BL)), (A_PAGE21, insns(ADRP_X0)), (A_PAGEOFF12, insns(ADD_X0)),
    (A_GOT_PAGE21, insns(ADRP_X0)), (A_GOT_PAGEOFF12, insns(0xF9400000)), (A_PTR_GOT, insns(0)),
])
def test_arm64_instruction_relocations_must_be_extern(rtype, code):
    pcrel = int(rtype in (A_BRANCH26, A_PAGE21, A_GOT_PAGE21, A_PTR_GOT))
    with pytest.raises(ObjectFormatError, match=r"must refer to a symbol \(r_extern=1\)"):
        one_reloc(ARM64, code, [rel(0, 1, pcrel, 2, 0, rtype)])


def test_x64_got_must_be_extern():
    with pytest.raises(ObjectFormatError,
                       match=r"relocation #0 X86_64_RELOC_GOT_LOAD .*must refer to a symbol"):
        one_reloc(X86_64, b"\0" * 8, [rel(0, 1, 1, 2, 0, X_GOT_LOAD)])


# ---- refusals and malformed relocations ---------------------------------------------

@pytest.mark.parametrize("cputype,rtype,word,pcrel,length,name,message", [
    (X86_64, X_TLV, 0, 1, 2, "X86_64_RELOC_TLV", "thread-local variables"),
    (ARM64, A_TLVP_PAGE21, ADRP_X0, 1, 2, "ARM64_RELOC_TLVP_LOAD_PAGE21", "thread-local variables"),
    (ARM64, A_TLVP_PAGEOFF12, 0xF9400000, 0, 2, "ARM64_RELOC_TLVP_LOAD_PAGEOFF12",
     "thread-local variables"),
    (ARM64, A_AUTH, 0, 0, 3, "ARM64_RELOC_AUTHENTICATED_POINTER", "arm64e authenticated"),
])
def test_refused_kinds(cputype, rtype, word, pcrel, length, name, message):
    with pytest.raises(UnsupportedRelocation,
                       match=f"^t.o: section __TEXT,__text: relocation #0 {name} at offset 0x0: "
                             f"{message}"):
        one_reloc(cputype, insns(word, 0), [rel(0, 1, pcrel, length, 1, rtype)])


@pytest.mark.parametrize("cputype,rtype,arch", [(X86_64, 10, "x64"), (X86_64, 15, "x64"),
                                                (ARM64, 12, "aarch64"), (ARM64, 15, "aarch64")])
def test_unknown_relocation_type(cputype, rtype, arch):
    with pytest.raises(UnsupportedRelocation) as e:
        one_reloc(cputype, b"\0" * 8, [rel(0, 1, 0, 2, 1, 0), rel(4, 1, 0, 2, 1, rtype)])
    assert str(e.value) == (f"t.o: section __TEXT,__text: relocation #1 at offset 0x4: "
                            f"unsupported relocation type {rtype} for {arch} Mach-O")


def test_scattered_relocation_is_refused():
    with pytest.raises(ObjectFormatError, match=r"relocation #0 .*scattered relocation"):
        one_reloc(X86_64, b"\0" * 8, [(-0x7FFFFFFC, 0)])


@pytest.mark.parametrize("entries,message", [
    ([rel(6, 1, 0, 2, 1, X_UNSIGNED)], r"#0 X86_64_RELOC_UNSIGNED at offset 0x6: patches bytes "
                                       r"0x6..0xa past the section end \(0x8\)"),
    ([rel(0, 99, 1, 2, 1, X_SIGNED)], "#0 X86_64_RELOC_SIGNED .*symbol index 99 is out of range "
                                      r"\(2 symbols\)"),
    ([rel(0, 0, 1, 2, 0, X_SIGNED)], r"section ordinal 0 is out of range \(1..1\)"),
    ([rel(0, 2, 1, 2, 0, X_SIGNED)], r"section ordinal 2 is out of range \(1..1\)"),
    ([rel(0, 1, 1, 3, 1, X_SIGNED)], "r_pcrel=1 with r_length=3 is not a valid form of "
                                     "X86_64_RELOC_SIGNED"),
    ([rel(0, 1, 1, 2, 1, X_UNSIGNED)], "r_pcrel=1 with r_length=2 is not a valid form"),
    ([rel(0, 1, 0, 0, 1, X_UNSIGNED)], "r_pcrel=0 with r_length=0 is not a valid form"),
    ([rel(0, 1, 0, 2, 1, X_BRANCH)], "r_pcrel=0 with r_length=2 is not a valid form"),
    # SUBTRACTOR pairs
    ([rel(0, 1, 0, 2, 1, X_SUB)], "#0 X86_64_RELOC_SUBTRACTOR .*is the last relocation: it must "
                                  "be followed by the X86_64_RELOC_UNSIGNED"),
    ([rel(0, 1, 0, 2, 1, X_SUB), rel(0, 1, 1, 2, 1, X_SIGNED)],
     r"followed by X86_64_RELOC_SIGNED \(#1\), not by the X86_64_RELOC_UNSIGNED"),
    ([rel(0, 1, 0, 2, 1, X_SUB), rel(4, 1, 0, 2, 1, X_UNSIGNED)], "disagree: offset 0x4"),
    ([rel(0, 1, 0, 2, 1, X_SUB), rel(0, 1, 0, 3, 1, X_UNSIGNED)], "disagree: .*r_length 3"),
    ([rel(0, 1, 0, 1, 1, X_SUB), rel(0, 1, 0, 1, 1, X_UNSIGNED)],
     "must have r_pcrel=0 and r_length 2 or 3"),
    ([rel(0, 1, 1, 2, 1, X_SUB), rel(0, 1, 0, 2, 1, X_UNSIGNED)], "must have r_pcrel=0"),
    ([rel(0, 1, 0, 3, 1, X_SUB), rel(0, 7, 0, 3, 1, X_UNSIGNED)],
     "#1 X86_64_RELOC_UNSIGNED .*symbol index 7 is out of range"),
])
def test_malformed_relocations(entries, message):
    if not message.startswith("#"):
        message = r"#\d+ X86_64_RELOC_\w+ at offset 0x[0-9a-f]+: .*" + message
    with pytest.raises(ObjectFormatError, match=f"^t.o: section __TEXT,__text: relocation {message}"):
        one_reloc(X86_64, b"\0" * 8, entries)


def test_relocation_against_a_stab_is_refused():
    symbols = [("prog.c", 0x64, 0, 0, 0), sym("_f", N_SECT | N_EXT, 1, 0)]
    with pytest.raises(ObjectFormatError, match="refers to symbol #0, a debugging .stab. entry"):
        one_reloc(X86_64, b"\0" * 8, [rel(0, 0, 0, 3, 1, X_UNSIGNED)], symbols)


def test_relocation_table_past_eof():
    built = macho([text(b"\0" * 8, [rel(0, 0, 0, 3, 1, X_UNSIGNED)])], [sym("_f")])
    bad = bytearray(built.data)
    struct.pack_into("<I", bad, built.section_header[0] + 60, 10_000)     # nreloc
    with pytest.raises(ObjectFormatError,
                       match="section __TEXT,__text: relocation table .* lies outside the file"):
        read(bytes(bad))


def test_relocations_in_zero_fill_are_refused():
    bss = Sec("__DATA", "__bss", flags=0x1, size=16, relocs=[rel(0, 0, 0, 3, 1, X_UNSIGNED)])
    with pytest.raises(ObjectFormatError, match="section __DATA,__bss: a zero-fill section has 1 "
                                                "relocations"):
        read(macho([bss], [sym("_f")]))


def test_unloaded_sections_relocations_are_skipped():
    """__LD,__compact_unwind's relocations (non-extern, section-relative)
    are never read: kitemu does no unwinding."""
    cu = Sec("__LD", "__compact_unwind", b"\0" * 32, 0x02000000, 3,
             relocs=[rel(0, 1, 0, 3, 0, X_UNSIGNED), rel(0, 99, 0, 3, 1, 15)])
    obj = read(macho([text(b"\xc3"), cu], [sym("_f")]))
    assert obj.sections[2].kind is SectionKind.NONALLOC and not obj.sections[2].relocations


# ---- malformed files ---------------------------------------------------------------------

def good():
    return macho([text(b"\xc3" * 8, [rel(0, 0, 0, 3, 1, X_UNSIGNED)])], [sym("_f")])


@pytest.mark.parametrize("cut", [0, 4, 31, 32, 40, 100, 150])
def test_truncated_file(cut, tmp_path):
    data = good().data
    assert cut < len(data)
    p = tmp_path / "cut.o"
    p.write_bytes(data[:cut])
    if cut < 4:
        with pytest.raises(ObjectFormatError, match="unrecognised file format"):
            load_object(str(p))
        return
    with pytest.raises(ObjectFormatError) as e:
        load_object(str(p))
    assert str(e.value).startswith(f"{p}: ")
    assert "truncated" in str(e.value) or "outside the file" in str(e.value)


def test_truncated_header():
    with pytest.raises(ObjectFormatError, match=r"^t.o: truncated Mach-O header \(20 bytes, need 32\)"):
        read(good().data[:20])


def test_load_command_errors():
    data = good().data
    bad = bytearray(data)
    struct.pack_into("<I", bad, 32 + 4, 4)          # LC_SEGMENT_64 cmdsize 4
    with pytest.raises(ObjectFormatError, match=r"load command #0 \(cmd 0x19\) has cmdsize 4 \(< 8\)"):
        read(bytes(bad))
    bad = bytearray(data)
    struct.pack_into("<I", bad, 32 + 4, 0x10000)    # past the load commands
    with pytest.raises(ObjectFormatError, match="truncated load command #0 .*cmdsize 65536 runs past"):
        read(bytes(bad))
    bad = bytearray(data)
    struct.pack_into("<I", bad, 16, 7)              # ncmds beyond sizeofcmds
    with pytest.raises(ObjectFormatError, match="truncated load command #2"):
        read(bytes(bad))
    bad = bytearray(data)
    struct.pack_into("<I", bad, 20, 0x100000)       # sizeofcmds past EOF
    with pytest.raises(ObjectFormatError, match="truncated load commands"):
        read(bytes(bad))
    bad = bytearray(data)
    struct.pack_into("<I", bad, 32 + 64, 50)        # nsects does not fit cmdsize
    with pytest.raises(ObjectFormatError, match="declares 50 sections, which do not fit"):
        read(bytes(bad))


def test_section_contents_past_eof():
    built = good()
    bad = bytearray(built.data)
    struct.pack_into("<I", bad, built.section_header[0] + 48, 0x100000)   # offset
    with pytest.raises(ObjectFormatError,
                       match=r"^t.o: section __TEXT,__text: section contents .* lie outside the"):
        read(bytes(bad))


def test_section_outside_its_segment():
    built = good()
    bad = bytearray(built.data)
    struct.pack_into("<Q", bad, built.section_header[0] + 40, 0x100000)   # size
    with pytest.raises(ObjectFormatError, match=r"^t.o: section __TEXT,__text: section \[0x0, "
                                                r"0x100000\) lies outside its segment \[0x0, 0x8\)"):
        read(bytes(bad))


def test_alignment_too_large():
    built = good()
    bad = bytearray(built.data)
    struct.pack_into("<I", bad, built.section_header[0] + 52, 40)
    with pytest.raises(ObjectFormatError, match=r"section __TEXT,__text: alignment 2\*\*40 is too"):
        read(bytes(bad))


def test_ignored_and_refused_load_commands():
    build_version = struct.pack("<IIIIII", 0x32, 24, 1, 0x000B0000, 0, 0)
    data_in_code = struct.pack("<IIII", 0x29, 16, 0, 0)
    loh = struct.pack("<IIII", 0x2E, 16, 0, 0)
    dysymtab = struct.pack("<II", 0xB, 80) + bytes(72)
    unknown = struct.pack("<II", 0x7777, 8)
    ok = macho([text(b"\xc3")], [sym("_f")], extra_ncmds=5,
               extra_cmds=build_version + data_in_code + loh + dysymtab + unknown)
    assert read(ok).symbols[0].name == "_f"
    seg32 = struct.pack("<II", 0x1, 56) + bytes(48)
    with pytest.raises(ObjectFormatError, match="32-bit LC_SEGMENT in a 64-bit object"):
        read(macho([text(b"\xc3")], [sym("_f")], extra_ncmds=1, extra_cmds=seg32))
    symtab2 = struct.pack("<IIIIII", 0x2, 24, 0, 0, 0, 0)
    with pytest.raises(ObjectFormatError, match="more than one LC_SYMTAB"):
        read(macho([text(b"\xc3")], [sym("_f")], extra_ncmds=1, extra_cmds=symtab2))


def test_no_symbol_table():
    built = macho([text(b"\xc3")])
    obj = read(built)
    assert [s.type for s in obj.symbols] == [SymbolType.SECTION]


@pytest.mark.parametrize("cputype,message", [
    (7, r"unsupported CPU type 0x7 \(i386\)"),
    (0x0200000C, r"unsupported CPU type 0x200000c \(arm64_32\)"),
    (0x01000012, r"unsupported CPU type 0x1000012 \(powerpc64\)"),
])
def test_wrong_cputype(cputype, message):
    with pytest.raises(ObjectFormatError, match=f"^t.o: {message}; kitemu reads x86_64 and arm64"):
        read(macho([text(b"\xc3")], cputype=cputype))


@pytest.mark.parametrize("filetype,name", [(2, "MH_EXECUTE"), (6, "MH_DYLIB"), (8, "MH_BUNDLE"),
                                           (99, "unknown")])
def test_not_mh_object(filetype, name):
    with pytest.raises(ObjectFormatError,
                       match=f"not a relocatable object .filetype {filetype}: {name}."):
        read(macho([text(b"\xc3")], filetype=filetype))


@pytest.mark.parametrize("head,message", [
    (struct.pack("<I", 0xFEEDFACE), r"32-bit Mach-O file \(MH_MAGIC\)"),
    (struct.pack(">I", 0xFEEDFACE), r"big-endian 32-bit Mach-O file \(MH_CIGAM\)"),
    (struct.pack(">I", 0xFEEDFACF), r"big-endian Mach-O file \(MH_CIGAM_64\)"),
    (struct.pack(">II", 0xCAFEBABE, 2), r"universal \(fat\) Mach-O file; extract one architecture"),
    (struct.pack(">II", 0xCAFEBABF, 2), r"universal \(fat, 64-bit\) Mach-O file"),
])
def test_refused_magics(head, message, tmp_path):
    p = tmp_path / "x.o"
    p.write_bytes(head + bytes(64))
    with pytest.raises(ObjectFormatError, match=f"^{p}: (a )?{message}"):
        load_object(str(p))
    with pytest.raises(ObjectFormatError, match=message):
        read_macho("x.o", head + bytes(64))


def test_java_class_is_not_fat(tmp_path):
    p = tmp_path / "A.class"
    p.write_bytes(struct.pack(">IHH", 0xCAFEBABE, 0, 61) + bytes(32))
    with pytest.raises(ObjectFormatError, match="unrecognised file format"):
        load_object(str(p))


def test_load_object_dispatches_on_magic(tmp_path):
    p = tmp_path / "m.o"
    p.write_bytes(good().data)
    obj = load_object(str(p))
    assert obj.format == "macho" and obj.target == "macho-x64" and obj.path == str(p)
    assert load_object("mem.o", macho([text(insns(0xD65F03C0))], cputype=ARM64).data).target == \
        "macho-arm64"


def test_cli_reports_macho_errors_without_traceback(tmp_path, capsys):
    p = tmp_path / "trunc.o"
    p.write_bytes((OBJ / "x64" / "main.o").read_bytes()[:300])
    assert cli_main(["run", str(p)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("kitemu: error: ") and "trunc.o" in err and "Traceback" not in err


# ---- random corruption never escapes as another exception type -----------------------

@settings(max_examples=150)
@given(st.data())
def test_random_corruption_never_escapes_as_a_traceback(data):
    """Flip bytes anywhere in a real object: reading either works or raises a
    KitemuError naming the file, nothing else."""
    arch = data.draw(st.sampled_from(["x64", "arm64"]))
    name = data.draw(st.sampled_from(["main.o", "lib.o"]))
    buf = bytearray((OBJ / arch / name).read_bytes())
    # bias towards the header, load commands and relocation tables, where a
    # flipped byte changes structure rather than contents
    for _ in range(data.draw(st.integers(1, 8))):
        hi = data.draw(st.sampled_from([len(buf) - 1, 1200]))
        pos = data.draw(st.integers(0, min(hi, len(buf) - 1)))
        buf[pos] = data.draw(st.integers(0, 255))
    try:
        read_macho("fuzz.o", bytes(buf))
    except KitemuError as e:
        assert "fuzz.o" in str(e)
