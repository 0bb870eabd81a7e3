"""Static archives: the reader (GNU, /SYM64/, BSD, Darwin, __.SYMDEF_64, no
symbol table, empty), lazy member selection (transitive pulls, what never
pulls, duplicates, order independence, main inside an archive) and end-to-end
runs. The archives are built by tests/data/archive/build.py from
tests/data/archive/src/*.c (see its README for which member defines what)."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys

import pytest
from hypothesis import given, settings, strategies as st

from kitemu.errors import LinkError, ObjectFormatError
from kitemu.link.inputs import select_inputs
from kitemu.loader import load_inputs, load_object
from kitemu.loader.archive import Archive, read_archive
from kitemu.loader.model import Binding, SectionKind, SymbolType
from kitemu.runtime import JitProcess, run_files
from kitemu.targets import get_target

from helpers import REPO
from objbuild import ObjBuilder

DATA = os.path.join(REPO, "tests", "data", "archive")
TARGETS = ["elf-x64", "macho-arm64"]

#: stdout and exit status of main.o extra.o + libmath.a libfmt.a (any order)
PROGRAM_STDOUT = (b"trace mul = 42\nreport 6*7\nreport: 42\nhook: absent\ncounter: 0\n"
                  b"strlen: 4\nextra: 5\n")
PROGRAM_EXIT = 3


def path(target: str, name: str) -> str:
    return os.path.join(DATA, target, name)


def read(p: str) -> bytes:
    with open(p, "rb") as f:
        return f.read()


def sym(target: str, c_name: str) -> str:
    return get_target(target).symbol(c_name)


def host_names(target: str) -> set[str]:
    return set(JitProcess(target).hostproc.addrs)


def member_paths(target: str, archive: str, *members: str) -> list[str]:
    return [f"{path(target, archive)}({m})" for m in members]


# -- writing archives by hand (corner cases llvm-ar does not produce) ----------

def ar_header(name: bytes, size: int) -> bytes:
    return (name.ljust(16) + b"0".ljust(12) + b"0".ljust(6) + b"0".ljust(6) + b"644".ljust(8)
            + str(size).encode().ljust(10) + b"`\n")


def ar_member(name: bytes, body: bytes) -> bytes:
    return ar_header(name, len(body)) + body + (b"\n" if len(body) & 1 else b"")


def gnu_archive(members: list[tuple[str, bytes]], symbols: dict[str, list[int]] | None) -> bytes:
    """A GNU archive: '/' table (if ``symbols``), '//' for names > 15 bytes."""
    long_tab, names = b"", []
    for name, _ in members:
        if len(name) > 15:
            names.append(b"/%d" % len(long_tab))
            long_tab += name.encode() + b"/\n"
        else:
            names.append(name.encode() + b"/")
    pos = 8
    entries = [(s, mi) for s, mis in (symbols or {}).items() for mi in mis]
    strs = b"".join(s.encode() + b"\0" for s, _ in entries)
    table_size = 4 + 4 * len(entries) + len(strs)
    if symbols is not None:
        pos += 60 + table_size + (table_size & 1)
    long_member = ar_member(b"//", long_tab) if long_tab else b""
    pos += len(long_member)
    offsets = []
    for n, (_, body) in zip(names, members):
        offsets.append(pos)
        pos += 60 + len(body) + (len(body) & 1)
    out = b"!<arch>\n"
    if symbols is not None:
        table = struct.pack(f">I{len(entries)}I", len(entries),
                            *(offsets[mi] for _, mi in entries)) + strs
        out += ar_member(b"/", table)
    out += long_member
    for n, (_, body) in zip(names, members):
        out += ar_member(n, body)
    return out


def bsd_archive(members: list[tuple[str, bytes]], symbols: dict[str, list[int]],
                table_name: bytes = b"__.SYMDEF") -> bytes:
    """A traditional BSD archive: short names space-padded (no '/'), longer
    ones '#1/N'; a 32-bit little-endian ranlib table."""
    def encoded(name: str, body: bytes) -> bytes:
        if len(name) <= 16 and " " not in name:
            return ar_member(name.encode(), body)
        return ar_member(b"#1/%d" % len(name), name.encode() + body)

    entries = [(s, mi) for s, mis in symbols.items() for mi in mis]
    strtab, strx = b"", []
    for s, _ in entries:
        strx.append(len(strtab))
        strtab += s.encode() + b"\0"
    table_size = 4 + 8 * len(entries) + 4 + len(strtab)
    pos = 8 + 60 + table_size + (table_size & 1)
    offsets, body_out = [], b""
    for name, body in members:
        offsets.append(pos + len(body_out))
        body_out += encoded(name, body)
    table = struct.pack("<I", 8 * len(entries))
    for x, (_, mi) in zip(strx, entries):
        table += struct.pack("<II", x, offsets[mi])
    table += struct.pack("<I", len(strtab)) + strtab
    return b"!<arch>\n" + ar_member(table_name, table) + body_out


def elf_bytes(target="elf-x64", name="extra.o") -> bytes:
    return read(path(target, name))


# -- reading each format ----------------------------------------------------------

LIBMATH_MEMBERS = ["mul.o", "add_helper.o", "hook.o", "counter.o", "strlen.o",
                   "unused_member_long_name.o"]


def libmath_index(target: str) -> dict[str, list[int]]:
    return {sym(target, n): [i] for i, n in enumerate(
        ["mul", "add_helper", "optional_hook", "shared_counter", "strlen", "unused_fn"])}


@pytest.mark.parametrize("target,name,table,members,index", [
    # GNU: '/' table, '//' long-name table (unused_member_long_name.o)
    ("elf-x64", "libmath.a", "gnu", LIBMATH_MEMBERS, libmath_index("elf-x64")),
    # BSD: __.SYMDEF, #1/N names
    ("elf-x64", "libfmt.a", "bsd", ["fmt_report.o", "trace.o"],
     {"report": [0], "trace_op": [1]}),
    # GNU /SYM64/; dup_fn is defined by both members
    ("elf-x64", "libdup.a", "gnu64", ["dup1.o", "dup2.o"],
     {"dup_fn": [0, 1], "dup1_extra": [0], "dup2_extra": [1]}),
    # Darwin: __.SYMDEF (sorted by name by llvm-ar), Mach-O names with '_'
    ("macho-arm64", "libmath.a", "bsd", LIBMATH_MEMBERS, libmath_index("macho-arm64")),
    # Darwin: __.SYMDEF_64
    ("macho-arm64", "libfmt.a", "bsd64", ["fmt_report.o", "trace.o"],
     {"_report": [0], "_trace_op": [1]}),
    ("macho-arm64", "libdup.a", "bsd", ["dup1.o", "dup2.o"],
     {"_dup_fn": [0, 1], "_dup1_extra": [0], "_dup2_extra": [1]}),
    # no symbol table: the index comes from the members' own symbols
    ("elf-x64", "libprog.a", None, ["prog_main.o", "greeting.o"],
     {"main": [0], "greeting": [1], "greeting_level": [1]}),
    ("macho-arm64", "libprog.a", None, ["prog_main.o", "greeting.o"],
     {"_main": [0], "_greeting": [1], "_greeting_level": [1]}),
])
def test_read_each_format(target, name, table, members, index):
    p = path(target, name)
    a = read_archive(p)
    assert a.path == p
    assert a.symbol_table == table
    assert [m.name for m in a.members] == members
    assert a.symbol_index == index
    data = read(p)
    for i, m in enumerate(a.members):
        # offset: the member's header (what symbol tables point at)
        assert data[m.offset + 58:m.offset + 60] == b"`\n"
        obj = a.load(i)
        assert obj.path == f"{p}({m.name})"
        assert obj.target == target
        assert a.load(i) is obj          # read once
    assert a.target == target
    assert read_archive(p, data).symbol_index == index    # from bytes, same


@pytest.mark.parametrize("target", TARGETS)
def test_symbol_table_matches_the_members(target):
    """The index written by llvm-ar equals the one kitemu builds from the
    members when the table is removed (global and weak definitions, COMMON
    included: main.o's weak/common handling is a selection rule, not an
    index rule)."""
    a = read_archive(path(target, "libmath.a"))
    stripped = gnu_archive([(m.name, m.data) for m in a.members], None)
    b = read_archive("nosym.a", stripped)
    assert b.symbol_table is None
    assert b.symbol_index == a.symbol_index


def test_weak_and_common_definitions_are_indexed():
    """Built from the members: global, weak (greeting_level in libprog.a)
    and COMMON (main.o's shared_counter) definitions; no locals, no
    undefined names."""
    a = read_archive("x.a", gnu_archive([("extra.o", elf_bytes()),
                                         ("m.o", elf_bytes(name="main.o"))], None))
    assert a.symbol_index == {"extra_value": [0], "main": [1], "shared_counter": [1]}
    weak = read_archive(path("elf-x64", "libprog.a")).load(1)
    assert [s.binding for s in weak.symbols if s.name == "greeting_level"] == [Binding.WEAK]


def test_bsd_short_names_and_sorted_table():
    """Traditional BSD: space-padded short names without '/', a
    '__.SYMDEF SORTED' table; '#1/N' for a name with a space."""
    members = [("extra.o", elf_bytes()), ("with space.o", elf_bytes(name="dup_one.o"))]
    for table in (b"__.SYMDEF", b"__.SYMDEF SORTED"):
        data = bsd_archive(members, {"extra_value": [0], "main": [1]}, table)
        a = read_archive("t.a", data)
        assert a.symbol_table == "bsd"
        assert [m.name for m in a.members] == ["extra.o", "with space.o"]
        assert a.symbol_index == {"extra_value": [0], "main": [1]}
        assert a.members[0].data == elf_bytes()
        assert a.load(1).path == "t.a(with space.o)"


def test_gnu_long_names_by_hand():
    members = [("a_rather_long_member_name.o", elf_bytes()), ("b.o", elf_bytes(name="dup_one.o")),
               ("another_long_member_name.o", elf_bytes(name="dup_both.o"))]
    a = read_archive("g.a", gnu_archive(members, {"extra_value": [0], "main": [1, 2]}))
    assert [m.name for m in a.members] == [n for n, _ in members]
    assert a.symbol_index == {"extra_value": [0], "main": [1, 2]}


@pytest.mark.parametrize("target", TARGETS)
def test_empty_archive(target):
    p = path(target, "empty.a")
    a = read_archive(p)
    assert a.members == [] and a.symbol_index == {} and a.target is None
    # elf-x64: llvm-ar wrote just the magic; macho-arm64: magic + empty __.SYMDEF
    assert (read(p) == b"!<arch>\n") == (target == "elf-x64")
    assert a.symbol_table == (None if target == "elf-x64" else "bsd")
    main = load_object(path(target, "dup_one.o"))
    assert select_inputs([main], [a], {sym(target, "main")}, host_names(target)) == [main]
    assert read_archive("e.a", b"!<arch>\n").members == []


def test_load_inputs_by_content(tmp_path):
    """.a and .o are told apart by their magic, not their names."""
    lib = tmp_path / "weird.o"
    obj = tmp_path / "main.bin"
    shutil.copyfile(path("elf-x64", "libmath.a"), lib)
    shutil.copyfile(path("elf-x64", "main.o"), obj)
    objects, archives = load_inputs([str(lib), str(obj)])
    assert [o.path for o in objects] == [str(obj)]
    assert [a.path for a in archives] == [str(lib)]
    assert isinstance(archives[0], Archive)
    with pytest.raises(ObjectFormatError, match="cannot read"):
        load_inputs([str(tmp_path / "missing.a")])


def test_member_messages_name_the_member():
    """A member that is not a valid object, pulled through the symbol
    table, fails naming lib.a(member)."""
    bad = b"\x7fELF" + b"\0" * 40
    data = gnu_archive([("good.o", elf_bytes()), ("bad.o", bad)], {"extra_value": [0],
                                                                   "broken": [1]})
    a = read_archive("lib.a", data)       # members are read only when pulled
    user = ObjBuilder("elf-x64", "user.o")
    user.undefined("broken")
    with pytest.raises(ObjectFormatError) as e:
        select_inputs([user.build()], [a], set(), set())
    assert str(e.value).startswith("lib.a(bad.o): ")
    # without a symbol table, the index is built at once: the error then
    with pytest.raises(ObjectFormatError) as e:
        read_archive("lib.a", gnu_archive([("good.o", elf_bytes()), ("bad.o", bad)], None))
    assert str(e.value).startswith("lib.a(bad.o): ")


def test_non_object_members_are_skipped_without_a_symbol_table():
    a = read_archive("lib.a", gnu_archive([("README.txt", b"not an object\n"),
                                           ("extra.o", elf_bytes())], None))
    assert a.symbol_index == {"extra_value": [1]}
    assert a.target == "elf-x64"


# -- malformed archives ------------------------------------------------------------

def corrupt_cases():
    """(name, bytes, expected message start, expected text) for each kind of
    damage, on the committed GNU archive libmath.a and BSD libfmt.a."""
    gnu = read(path("elf-x64", "libmath.a"))
    bsd = read(path("elf-x64", "libfmt.a"))
    ga = read_archive("g", gnu)
    ba = read_archive("b", bsd)
    mul = ga.members[0].offset           # header of mul.o
    longm = ga.members[5].offset         # header of unused_member_long_name.o ('/N')
    trace = ba.members[1].offset         # header of trace.o ('#1/N')

    def patch(data, at, new):
        return data[:at] + new + data[at + len(new):]

    first_gnu_offset = 4                 # in '/': count, then the offsets
    sym_body = 8 + 60
    return [
        ("bad magic", b"!<arch?\n" + gnu[8:], "lib.a: ", "bad magic"),
        ("not an archive", b"hello", "lib.a: ", "bad magic"),
        ("thin", b"!<thin>\n" + gnu[8:], "lib.a: ", "thin archive"),
        ("truncated header", gnu[:mul + 30], f"lib.a(member #2 at offset {mul:#x}): ",
         "truncated member header"),
        ("size not decimal", patch(gnu, mul + 48, b"12a4      "), "lib.a(mul.o): ",
         "is not a decimal number"),
        ("size empty", patch(gnu, mul + 48, b"          "), "lib.a(mul.o): ",
         "is not a decimal number"),
        ("size negative", patch(gnu, mul + 48, b"-1        "), "lib.a(mul.o): ",
         "is not a decimal number"),
        ("bad terminator", patch(gnu, mul + 58, b"x\n"), "lib.a(mul.o): ", "bad member header"),
        ("member past EOF", gnu[:-100], "lib.a(unused_member_long_name.o): ",
         "remain in the file"),
        ("size past EOF", patch(gnu, mul + 48, b"999999    "), "lib.a(mul.o): ",
         "remain in the file"),
        ("BSD member past EOF", bsd[:trace + 100], "lib.a(trace.o): ", "remain in the file"),
        ("BSD long name longer than member",
         patch(bsd, trace + 48, b"3         ")[:trace + 63], "lib.a(#1/",
         "longer than the member"),
        ("BSD long name length", patch(bsd, trace, b"#1/x"), "lib.a(#1/x", "not a decimal"),
        ("GNU table offset not at a header",
         patch(gnu, sym_body + first_gnu_offset, struct.pack(">I", mul + 2)), "lib.a(/): ",
         f"points at offset {mul + 2:#x}, which is not the header of a member"),
        ("GNU table offset at the long-name table",
         patch(gnu, sym_body + first_gnu_offset, struct.pack(">I", gnu.index(b"//    "))),
         "lib.a(/): ", "not the header of a member"),
        ("GNU table count too large", patch(gnu, sym_body, struct.pack(">I", 10**6)),
         "lib.a(/): ", "symbol table"),
        ("BSD table offset not at a header",
         patch(bsd, sym_body + 12 + 8, struct.pack("<I", 7)), "lib.a(__.SYMDEF): ",
         "not the header of a member"),
        ("BSD string index", patch(bsd, sym_body + 12 + 4, struct.pack("<I", 10**6)),
         "lib.a(__.SYMDEF): ", "past the end"),
        ("bad long-name reference", patch(gnu, longm, b"/999            "), "lib.a(/999): ",
         "long-name reference past the end"),
        ("long-name reference not a number", patch(gnu, longm, b"/abc            "),
         "lib.a(/abc): ", "bad member name"),
    ]


@pytest.mark.parametrize("name,data,start,text", corrupt_cases(), ids=[c[0] for c in corrupt_cases()])
def test_corrupt_archive(name, data, start, text):
    with pytest.raises(ObjectFormatError) as e:
        read_archive("lib.a", data)
    msg = str(e.value)
    assert msg.startswith(start), msg
    assert text in msg, msg


def test_long_name_reference_without_table():
    body = elf_bytes()
    data = b"!<arch>\n" + ar_member(b"/0", body)
    with pytest.raises(ObjectFormatError, match=r"^lib\.a\(/0\): long-name reference, but no "):
        read_archive("lib.a", data)


def test_symbol_table_must_come_first():
    data = b"!<arch>\n" + ar_member(b"extra.o/", elf_bytes()) + ar_member(b"/", b"\0\0\0\0")
    with pytest.raises(ObjectFormatError, match=r"^lib\.a\(/\): symbol table member .* not the first"):
        read_archive("lib.a", data)


def test_read_archive_missing_file(tmp_path):
    with pytest.raises(ObjectFormatError, match="cannot read"):
        read_archive(str(tmp_path / "nope.a"))


_CORRUPTION_BASES = [("elf-x64", "libmath.a"), ("elf-x64", "libfmt.a"), ("elf-x64", "libdup.a"),
                     ("macho-arm64", "libfmt.a"), ("macho-arm64", "libmath.a")]


@settings(max_examples=300)
@given(base=st.sampled_from(_CORRUPTION_BASES), data=st.data())
def test_corruption_never_escapes(base, data):
    """Random byte changes (biased to the headers and the symbol table) and
    truncations: read_archive returns an Archive or raises ObjectFormatError
    naming the archive, never anything else."""
    raw = bytearray(read(path(*base)))
    headers_end = min(len(raw), 400)
    for _ in range(data.draw(st.integers(1, 4))):
        hi = data.draw(st.sampled_from([headers_end, len(raw)]))
        at = data.draw(st.integers(0, hi - 1))
        raw[at] = data.draw(st.sampled_from([0, 0x20, 0x2F, 0x30, 0x39, 0x0A, 0xFF,
                                             data.draw(st.integers(0, 255))]))
    cut = data.draw(st.integers(0, len(raw)))
    blob = bytes(raw[:cut]) if data.draw(st.booleans()) else bytes(raw)
    try:
        a = read_archive("lib.a", blob)
    except ObjectFormatError as e:
        assert str(e).startswith("lib.a")
    else:
        for mis in a.symbol_index.values():
            assert mis == sorted(mis) and all(0 <= i < len(a.members) for i in mis)


@settings(max_examples=100)
@given(data=st.data())
def test_corruption_without_symbol_table(data):
    """Same for an archive read by loading its members (libprog.a): header
    damage may hand the object readers any bytes."""
    raw = bytearray(read(path("elf-x64", "libprog.a")))
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(raw) - 1))
        raw[at] = data.draw(st.integers(0, 255))
    try:
        read_archive("lib.a", bytes(raw))
    except ObjectFormatError as e:
        assert str(e).startswith("lib.a")


# -- selecting members ----------------------------------------------------------------

def program_inputs(target, archives=("libmath.a", "libfmt.a", "libdup.a", "empty.a"),
                   objects=("main.o", "extra.o")):
    return ([load_object(path(target, o)) for o in objects],
            [read_archive(path(target, a)) for a in archives])


def expected_program_paths(target):
    return ([path(target, "main.o"), path(target, "extra.o")]
            + member_paths(target, "libfmt.a", "fmt_report.o", "trace.o")
            + member_paths(target, "libmath.a", "mul.o", "add_helper.o"))


@pytest.mark.parametrize("target", TARGETS)
def test_transitive_pull_and_members_left_out(target):
    """main needs report (libfmt) -> mul (libmath) -> add_helper (libmath,
    needed only by a member) and trace_op (libfmt, ditto). Left out:
    hook.o (weak reference only), counter.o (main.o has a COMMON),
    strlen.o (a host function), unused_member_long_name.o (nobody needs
    it), libdup.a (nobody needs it)."""
    objects, archives = program_inputs(target)
    chosen = select_inputs(objects, archives, {sym(target, "main")}, host_names(target))
    assert [o.path for o in chosen] == expected_program_paths(target)
    assert chosen[:2] == objects


@pytest.mark.parametrize("target", TARGETS)
def test_what_pulls_when_the_rules_do_not_apply(target):
    """The members left out above are pulled once their reason goes:
    no host names -> strlen.o; a strong reference -> hook.o, counter.o."""
    objects, archives = program_inputs(target)
    chosen = select_inputs(objects, archives, {sym(target, "main")}, set())
    names = {o.path for o in chosen}
    assert f"{path(target, 'libmath.a')}(strlen.o)" in names
    # a strong reference to optional_hook pulls hook.o; one to
    # shared_counter does not while main.o's COMMON defines it
    user = ObjBuilder("elf-x64", "user.o")
    user.undefined(sym(target, "optional_hook"))
    user.undefined(sym(target, "shared_counter"))
    user = user.build()
    chosen = select_inputs(objects + [user], archives, {sym(target, "main")},
                           host_names(target))
    pulled = [o.path for o in chosen[3:]]
    assert pulled == (member_paths(target, "libfmt.a", "fmt_report.o", "trace.o")
                      + member_paths(target, "libmath.a", "mul.o", "add_helper.o", "hook.o"))
    # ... without main.o, it does
    chosen = select_inputs([user], archives, set(), host_names(target))
    assert [o.path for o in chosen[1:]] == member_paths(target, "libmath.a", "hook.o",
                                                        "counter.o")


def test_weak_reference_does_not_pull_but_binds_if_pulled_anyway():
    a = read_archive("lib.a", gnu_archive([("extra.o", elf_bytes())], {"extra_value": [0]}))
    weak = ObjBuilder("elf-x64", "weak.o")
    weak.undefined("extra_value", weak=True)
    w = weak.build()
    assert select_inputs([w], [a]) == [w]
    strong = ObjBuilder("elf-x64", "strong.o")
    strong.undefined("extra_value")
    s = strong.build()
    assert [o.path for o in select_inputs([w, s], [a])] == ["weak.o", "strong.o", "lib.a(extra.o)"]


def test_defined_names_do_not_pull():
    """A name a linked object defines (strong, weak or COMMON) is not
    wanted any more; roots already defined pull nothing."""
    a = read_archive("lib.a", gnu_archive([("extra.o", elf_bytes())], {"extra_value": [0]}))
    for kind in ("strong", "weak", "common"):
        b = ObjBuilder("elf-x64", f"{kind}.o")
        data = b.section(".data", SectionKind.DATA, b"\0" * 4)
        if kind == "common":
            b.common("extra_value", 4, 4)
        else:
            b.symbol("extra_value", data, 0, type=SymbolType.OBJECT,
                     binding=Binding.WEAK if kind == "weak" else Binding.GLOBAL)
        user = ObjBuilder("elf-x64", "user.o")
        user.undefined("extra_value")
        objs = [user.build(), b.build()]
        assert select_inputs(objs, [a], {"extra_value"}) == objs


def test_stale_symbol_table_leaves_the_symbol_undefined():
    """An index entry whose member does not define the name: the member is
    pulled, the name stays undefined and the link reports it."""
    a = read_archive("lib.a", gnu_archive([("extra.o", elf_bytes())], {"ghost": [0]}))
    user = ObjBuilder("elf-x64", "user.o")
    user.undefined("ghost")
    chosen = select_inputs([user.build()], [a])
    assert [o.path for o in chosen] == ["user.o", "lib.a(extra.o)"]


@pytest.mark.parametrize("target", TARGETS)
def test_duplicate_only_one_member_pulled(target):
    """dup1.o and dup2.o both define dup_fn strongly; dup_one.o needs only
    dup_fn: the first member in archive order provides it, no error."""
    objects, archives = program_inputs(target, ("libdup.a",), ("dup_one.o",))
    chosen = select_inputs(objects, archives, {sym(target, "main")}, host_names(target))
    assert [o.path for o in chosen] == [path(target, "dup_one.o")] + \
        member_paths(target, "libdup.a", "dup1.o")
    proc = JitProcess(target)
    proc.link(chosen)
    r = proc.run()
    assert (r.stdout, r.exit_code) == (b"dup_fn: 1\n", 0)


@pytest.mark.parametrize("target", TARGETS)
def test_duplicate_both_members_pulled(target):
    objects, archives = program_inputs(target, ("libdup.a",), ("dup_both.o",))
    chosen = select_inputs(objects, archives, {sym(target, "main")}, host_names(target))
    assert [o.path for o in chosen] == [path(target, "dup_both.o")] + \
        member_paths(target, "libdup.a", "dup1.o", "dup2.o")
    lib = path(target, "libdup.a")
    with pytest.raises(LinkError) as e:
        JitProcess(target).link(chosen)
    assert str(e.value) == (f"duplicate symbol {sym(target, 'dup_fn')!r}: defined in "
                            f"{lib}(dup1.o) and in {lib}(dup2.o)")


@pytest.mark.parametrize("target", TARGETS)
def test_main_inside_the_archive(target):
    """No object on the command line: the entry root pulls prog_main.o,
    which pulls greeting.o (an archive without a symbol table)."""
    _, archives = program_inputs(target, ("libprog.a",), ())
    assert select_inputs([], archives) == []            # no root: nothing
    chosen = select_inputs([], archives, {sym(target, "main")}, host_names(target))
    assert [o.path for o in chosen] == member_paths(target, "libprog.a", "prog_main.o",
                                                    "greeting.o")
    proc = JitProcess(target)
    proc.link(chosen)
    r = proc.run(args=[])
    assert (r.stdout, r.exit_code) == (b"hello from an archive\n", 41)


def test_same_archive_twice_is_one_archive():
    objects, archives = program_inputs("elf-x64")
    again = [read_archive(a.path) for a in archives]
    once = select_inputs(objects, archives, {"main"}, host_names("elf-x64"))
    twice = select_inputs(objects, archives + again + archives, {"main"}, host_names("elf-x64"))
    assert [o.path for o in once] == [o.path for o in twice]
    fake = Archive(archives[0].path, [], {})
    with pytest.raises(LinkError, match="two different archives"):
        select_inputs(objects, archives + [fake], {"main"})


@settings(max_examples=60)
@given(target=st.sampled_from(TARGETS), data=st.data())
def test_selection_is_order_independent(target, data):
    objects, archives = program_inputs(target)
    objects = data.draw(st.permutations(objects))
    archives = data.draw(st.permutations(archives))
    chosen = select_inputs(objects, archives, {sym(target, "main")}, host_names(target))
    assert chosen[:2] == list(objects)                  # command-line order kept
    expected = expected_program_paths(target)
    assert [o.path for o in chosen[2:]] == expected[2:]  # pulled: one order


@settings(max_examples=8)
@given(target=st.sampled_from(TARGETS), data=st.data())
def test_program_output_is_order_independent(target, data):
    names = data.draw(st.permutations(["main.o", "extra.o", "libmath.a", "libfmt.a",
                                       "libdup.a", "empty.a"]))
    r = run_files([path(target, n) for n in names])
    assert (r.stdout, r.exit_code) == (PROGRAM_STDOUT, PROGRAM_EXIT)


# -- end to end ------------------------------------------------------------------------------

@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("strategy", ["mprotect", "dual-map"])
def test_jit_process_with_archives(target, strategy):
    objects, archives = program_inputs(target)
    proc = JitProcess(target, strategy=strategy)
    proc.link(select_inputs(objects, archives, {proc.target.symbol("main")},
                            set(proc.hostproc.addrs)))
    r = proc.run()
    assert (r.stdout, r.exit_code) == (PROGRAM_STDOUT, PROGRAM_EXIT)
    # the image holds the pulled members' functions and none of the others
    assert proc.lookup("add_helper") is not None and proc.lookup("trace_op") is not None
    assert proc.lookup("unused_fn") is None and proc.lookup("dup_fn") is None


@pytest.mark.parametrize("target", TARGETS)
def test_run_files_with_archives(target):
    r = run_files([path(target, n) for n in ("libmath.a", "main.o", "libfmt.a", "extra.o")])
    assert (r.stdout, r.exit_code) == (PROGRAM_STDOUT, PROGRAM_EXIT)
    r = run_files([path(target, "libprog.a")], args=["x", "y"])     # target from the archive
    assert (r.stdout, r.exit_code) == (b"hello from an archive\n", 43)


def test_run_files_undefined_names_the_members():
    """Without libfmt.a, mul.o's trace_op is undefined: the error names the
    member that references it."""
    t = "elf-x64"
    with pytest.raises(LinkError) as e:
        run_files([path(t, "main.o"), path(t, "extra.o"), path(t, "libmath.a")])
    msg = str(e.value)
    assert f"undefined symbol 'report', referenced from {path(t, 'main.o')}" in msg


def test_kitemu_run_cli_with_archives():
    t = "elf-x64"
    r = subprocess.run([sys.executable, "-m", "kitemu.cli", "run", path(t, "libfmt.a"),
                        path(t, "main.o"), path(t, "libmath.a"), path(t, "extra.o")],
                       cwd=REPO, capture_output=True, timeout=300)
    assert (r.stdout, r.returncode) == (PROGRAM_STDOUT, PROGRAM_EXIT), r.stderr.decode()


# -- the committed archives are what build.py makes ------------------------------------------

@pytest.mark.skipif(shutil.which("clang") is None or shutil.which("llvm-ar") is None,
                    reason="clang and llvm-ar are needed to rebuild the archives")
def test_committed_archives_are_up_to_date():
    r = subprocess.run([sys.executable, os.path.join(DATA, "build.py"), "--check"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
