"""kitemu.loader.dwarf: DWARF of linked objects, on every target.

Small C programs are built with clang -g at test time (DWARF 5 on ELF and 4
on Mach-O by default, plus the other version, -ffunction-sections, -gz,
-O2 and the RISC-V relaxation variants), linked with JitProcess, and the debug info
is queried at the runtime addresses: function entries name the line of the
function's opening brace, is_stmt addresses of a line map back to it, the
function list carries the linked addresses, and the whole row table agrees
with llvm-dwarfdump's reading of the object (shifted by the runtime address
of the text section). Negative cases: no -g, and debug relocations kitemu
cannot read, which must cost the line info and never the link.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import struct
import subprocess

import pytest
from elftools.elf.elffile import ELFFile

from kitemu.cc import INCLUDE_DIR
from kitemu.loader import load_object
from kitemu.loader.dwarf import DebugInfo, LineInfo
from kitemu.loader.model import SectionKind
from kitemu.runtime import JitProcess
from kitemu.targets import get_target

CLANG = os.environ.get("KITEMU_CLANG") or shutil.which("clang") or shutil.which("clang-14")
pytestmark = pytest.mark.skipif(CLANG is None, reason="clang is not installed: the DWARF "
                                                      "test objects are built at test time")

TARGETS = ["elf-x64", "elf-aarch64", "elf-rv64", "macho-x64", "macho-arm64"]

# Markers name lines; the tests find them, so the source can change freely.
X_C = """\
#include "kitlibc.h"

int other(int);
int counter;

__attribute__((noinline)) static int helper(int a)    /* decl:helper */
{                                                     /* open:helper */
    int b = a * 3;                                    /* body:helper */
    counter += b;                                     /* body:helper2 */
    return b + 1;
}

__attribute__((noinline)) int twice(int v)            /* decl:twice */
{                                                     /* open:twice */
    return helper(v) * 2;                             /* body:twice */
}

int main(void)                                        /* decl:main */
{                                                     /* open:main */
    int r = twice(4) + other(1);                      /* body:main */
    printf("%d %d\\n", r, counter);                    /* body:main2 */
    return r == 28 ? 0 : 1;
}
"""

OTHER_C = """\
int other(int x)
{
    return x + 1;
}
"""

LINES = {m.group(1): n for n, text in enumerate(X_C.splitlines(), 1)
         for m in [re.search(r"/\* (\w+:\w+) \*/", text)] if m}
FUNCS = ("helper", "twice", "main")

# variant -> (extra clang flags, targets it applies to)
VARIANTS = {
    "O0": (["-O0", "-g"], TARGETS),
    "O0-dwarf4": (["-O0", "-gdwarf-4"], ["elf-x64", "elf-aarch64", "elf-rv64"]),
    "O0-dwarf5": (["-O0", "-gdwarf-5"], ["macho-x64", "macho-arm64"]),
    "O0-fsections": (["-O0", "-g", "-ffunction-sections"], ["elf-x64", "elf-aarch64", "elf-rv64"]),
    # compressed debug sections (SHF_COMPRESSED): the reader inflates them
    "O0-gz": (["-O0", "-g", "-gz"], ["elf-x64", "elf-aarch64", "elf-rv64"]),
    "O0-norelax": (["-O0", "-g", "-mno-relax"], ["elf-rv64"]),
    # clang 14's -c writes no R_RISCV_RELAX; going through assembly with
    # -mrelax does (corpus/build.py's O2-relax variant does the same)
    "O0-relax-asm": (["-O0", "-g", "-mrelax"], ["elf-rv64"]),
    "O2": (["-O2", "-g"], TARGETS),
}
CASES = [(t, v) for v, (_, ts) in VARIANTS.items() for t in ts]
_FORMAT_FLAGS = {"elf": ["-fno-pic"], "macho": ["-fno-stack-protector"]}


def compile_one(tmp, target: str, flags: list[str], name: str, text: str) -> str:
    """clang -c ``name`` in ``tmp`` (so DW_AT_name is the bare ``name``)."""
    t = get_target(target)
    src = os.path.join(tmp, name)
    with open(src, "w") as f:
        f.write(text)
    out = src[:-2] + ".o"
    base = [CLANG, f"--target={t.triple}", "-ffreestanding", "-fno-common",
            *_FORMAT_FLAGS[t.format], f"-I{INCLUDE_DIR}", *flags]
    if "-mrelax" in flags:
        asm = src[:-2] + ".s"
        subprocess.run(base + ["-S", name, "-o", asm], cwd=tmp, check=True)
        subprocess.run([CLANG, f"--target={t.triple}", "-mrelax", "-c", asm, "-o", out],
                       cwd=tmp, check=True)
    else:
        subprocess.run(base + ["-c", name, "-o", out], cwd=tmp, check=True)
    return out


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    """(target, variant) -> (x.o path, other.o path), built once per module."""
    built: dict = {}

    def get(target, variant):
        key = (target, variant)
        if key not in built:
            tmp = str(tmp_path_factory.mktemp(f"{target}-{variant}"))
            flags = VARIANTS[variant][0]
            built[key] = (compile_one(tmp, target, flags, "x.c", X_C),
                          compile_one(tmp, target, flags, "other.c", OTHER_C))
        return built[key]
    return get


class Linked:
    """other.o then x.o, linked: x.o's code does not start the image."""

    def __init__(self, target, x_path, other_path):
        self.target = get_target(target)
        self.other = load_object(other_path)
        self.x = load_object(x_path)
        self.proc = JitProcess(target)
        self.image = self.proc.link([self.other, self.x])
        addrs = self.image.section_addrs
        self.debug = DebugInfo.from_object(self.x, lambda si: addrs.get((1, si)))

    def symbol_address(self, c_name: str) -> int:
        """Runtime address of x.o's symbol (static ones too): its section's
        linked address + its value."""
        want = self.target.symbol(c_name)
        sym = next(s for s in self.x.symbols if s.name == want and s.section is not None)
        return self.image.section_addrs[(1, sym.section)] + sym.value


@pytest.fixture
def linked(build):
    def make(target, variant):
        return Linked(target, *build(target, variant))
    return make


# -- positive -------------------------------------------------------------------------

@pytest.mark.parametrize("target,variant", CASES)
def test_functions_and_entry_lines(linked, target, variant):
    lk = linked(target, variant)
    d = lk.debug
    assert d.available, d.reason
    assert d.reason == ""
    if variant == "O0-gz":
        assert all(s.flags & 0x800 for s in lk.x.sections.values()     # SHF_COMPRESSED
                   if s.dwarf_name in ("debug_info", "debug_line"))
    funcs = {f.name: f for f in d.functions()}
    assert set(funcs) == set(FUNCS)          # incl. the static helper; not other.c's
    for name in FUNCS:
        f = funcs[name]
        addr = lk.symbol_address(name)
        assert f.low_pc == addr, name
        assert f.high_pc > f.low_pc
        assert os.path.basename(f.decl_file) == "x.c" and f.decl_line == LINES[f"decl:{name}"]
        assert f.cu_name == "x.c"
        assert d.function_at(addr) == f and d.function_at(f.high_pc - 1) == f
        assert d.dwarfinfo.get_DIE_from_refaddr(f.die_offset).tag == "DW_TAG_subprogram"
        info = d.line_for(addr)
        assert isinstance(info, LineInfo) and info.basename == "x.c", (name, info)
        if variant.startswith("O0"):
            # -O0: the first row of a function is its opening brace
            assert info.line == LINES[f"open:{name}"], (name, info)
        else:
            # -O2: several rows may share the entry address; the last one
            # (LLVM's choice) may already be a body line of the function
            assert LINES[f"decl:{name}"] <= info.line <= LINES[f"decl:{name}"] + 6, (name, info)
    # globals agree with the linker's own table
    for name in ("twice", "main"):
        assert funcs[name].low_pc == lk.proc.lookup(name)
    # the program still runs
    res = lk.proc.run()
    assert (res.exit_code, res.stdout) == (0, b"28 12\n")


@pytest.mark.parametrize("target,variant", CASES)
def test_line_addresses_map_back(linked, target, variant):
    lk = linked(target, variant)
    d = lk.debug
    markers = ["body:helper", "body:helper2", "body:twice", "body:main", "body:main2"]
    for marker in markers:
        line = LINES[marker]
        addrs = d.line_addresses("x.c", line)
        assert addrs, marker
        assert addrs == sorted(set(addrs))
        owner = marker.split(":")[1].rstrip("2")
        for a in addrs:
            info = d.line_for(a)
            assert (info.basename, info.line) == ("x.c", line), (marker, hex(a), info)
            assert d.function_at(a).name == owner
        # a path suffix and the whole path select the same rows; another file none
        assert d.line_addresses(d.line_for(addrs[0]).file, line) == addrs
        assert d.line_addresses("other.c", line) == []
        assert d.line_addresses("nothere/x.c", line) == []
    assert d.line_addresses("x.c", 1) == []


@pytest.mark.parametrize("target,variant", [c for c in CASES if "fsections" not in c[1]])
def test_row_table_matches_llvm_dwarfdump(linked, build, target, variant):
    """Every row llvm-dwarfdump reads from the object (text at its object
    address) is found at the same offset from the linked text section. The
    RISC-V objects encode their address advances as ADD16/SUB16 pairs in
    .debug_line, so this checks that those compose."""
    dump = shutil.which("llvm-dwarfdump") or shutil.which("llvm-dwarfdump-14")
    if dump is None:
        pytest.skip("llvm-dwarfdump is not installed")
    lk = linked(target, variant)
    (text,) = [s for s in lk.x.sections.values() if s.kind is SectionKind.TEXT and s.size]
    obj_text_addr = 0        # ELF relocatable sections, and clang's Mach-O __text, are at 0
    base = lk.image.section_addrs[(1, text.index)]
    out = subprocess.run([dump, "--debug-line", build(target, variant)[0]],
                         capture_output=True, text=True, check=True).stdout
    expected: dict[int, int] = {}       # address -> line of the last row there
    stmts: dict[int, set[int]] = {}     # line -> addresses of its is_stmt rows
    ends = set()
    rows = 0
    for m in re.finditer(r"^0x([0-9a-f]{16}) +(\d+) +\d+ +\d+ +\d+ +\d+ *(.*)$", out, re.M):
        addr, line, flags = int(m.group(1), 16), int(m.group(2)), m.group(3)
        if "end_sequence" in flags:
            ends.add(addr)
            continue
        expected[addr] = line
        if "is_stmt" in flags.split():
            stmts.setdefault(line, set()).add(base + addr - obj_text_addr)
        rows += 1
    assert rows >= 6 and len(stmts) >= 6
    for addr, line in expected.items():
        info = lk.debug.line_for(base + addr - obj_text_addr)
        assert info is not None and info.line == line, (hex(addr), line, info)
    for line in range(len(X_C.splitlines()) + 2):
        assert lk.debug.line_addresses("x.c", line) == sorted(stmts.get(line, ())), line
    for end in ends - set(expected):
        assert lk.debug.line_for(base + end - obj_text_addr) is None


def test_row_table_is_built_once(linked):
    lk = linked("elf-rv64", "O0")
    d = lk.debug
    f = d.functions()
    assert d.functions() is f
    rows = d._row_table()
    d.line_for(f[0].low_pc)
    d.line_addresses("x.c", LINES["body:main"])
    assert d._row_table() is rows


def test_from_image_matches_from_object(linked):
    lk = linked("macho-arm64", "O0")
    d = DebugInfo.from_image(lk.x, lk.image, 1)
    assert d.functions() == lk.debug.functions()


# -- the readers keep debug relocations; the linker ignores them ---------------------

@pytest.mark.parametrize("target", TARGETS)
def test_debug_sections_keep_relocations_and_are_not_placed(build, tmp_path, target):
    x_path, other_path = build(target, "O0")
    x = load_object(x_path)
    debug = {s.dwarf_name: s for s in x.sections.values() if s.dwarf_name}
    assert {"debug_info", "debug_abbrev", "debug_line", "debug_str"} <= set(debug)
    for s in debug.values():
        assert s.kind is SectionKind.NONALLOC and not s.kind.loaded
        assert s.debug_problem is None, s.debug_problem
    # addresses in debug_line (DW_LNE_set_address) need a relocation everywhere
    assert debug["debug_line"].relocations
    fmt = get_target(target).format
    for s in debug.values():
        for rel in s.relocations:
            assert rel.spec.name.startswith("R_" if fmt == "elf" else
                                            ("X86_64_RELOC_" if "x64" in target else "ARM64_RELOC_"))
    proc = JitProcess(target)
    image = proc.link([load_object(other_path), x])
    assert not any((1, s.index) in image.section_addrs for s in debug.values())
    # the same program without -g links with the same number of relocations
    nog = load_object(compile_one(str(tmp_path), target, ["-O0", "-g0"], "x.c", X_C))
    image0 = JitProcess(target).link([load_object(other_path), nog])
    assert image0.relocations_applied == image.relocations_applied


# -- negative -------------------------------------------------------------------------

@pytest.mark.parametrize("target", TARGETS)
def test_object_without_dwarf(tmp_path, target):
    path = compile_one(str(tmp_path), target, ["-O0", "-g0"], "x.c", X_C)
    other = compile_one(str(tmp_path), target, ["-O0", "-g0"], "other.c", OTHER_C)
    proc = JitProcess(target)
    image = proc.link([load_object(other), load_object(path)])
    d = DebugInfo.from_image(load_object(path), image, 1)
    assert d.available is False
    assert "no DWARF" in d.reason and "-g" in d.reason
    assert d.dwarfinfo is None
    assert d.line_for(proc.lookup("main")) is None
    assert d.functions() == [] and d.line_addresses("x.c", LINES["body:main"]) == []
    assert d.function_at(proc.lookup("main")) is None


def _elf_reloc_entry(data: bytes, section: str) -> int:
    """File offset of the first relocation entry of ``.rela<section>``."""
    elf = ELFFile(io.BytesIO(data))
    return elf.get_section_by_name(".rela" + section)["sh_offset"]


def _macho_reloc_entry(data: bytes, sectname: bytes) -> int:
    """File offset of the first relocation_info of Mach-O section ``sectname``."""
    ncmds = struct.unpack_from("<I", data, 16)[0]
    off = 32
    for _ in range(ncmds):
        cmd, size = struct.unpack_from("<II", data, off)
        if cmd == 0x19:
            nsects = struct.unpack_from("<I", data, off + 64)[0]
            for k in range(nsects):
                at = off + 72 + 80 * k
                if data[at:at + 16].rstrip(b"\0") == sectname:
                    return struct.unpack_from("<I", data, at + 56)[0]
        off += size
    raise AssertionError(sectname)


def _break_reloc(path: str, target: str, section: str) -> str:
    """A copy of the object whose first relocation of ``section`` has a type
    the target lacks."""
    data = bytearray(open(path, "rb").read())
    if get_target(target).format == "elf":
        at = _elf_reloc_entry(bytes(data), section)
        struct.pack_into("<I", data, at + 8, 0xEE)             # r_info low word: the type
        assert 0xEE not in get_target(target).arch.elf_relocs
    else:
        at = _macho_reloc_entry(bytes(data), ("__" + section[1:]).encode()[:16])
        word = struct.unpack_from("<I", data, at + 4)[0]
        struct.pack_into("<I", data, at + 4, (word & 0x0FFFFFFF) | (15 << 28))  # r_type 15
    out = path[:-2] + f"-broken{section.replace('.', '-')}.o"
    with open(out, "wb") as f:
        f.write(data)
    return out


@pytest.mark.parametrize("target", TARGETS)
def test_unreadable_debug_relocation_costs_line_info_not_the_link(build, target):
    x_path, other_path = build(target, "O0")
    broken = _break_reloc(x_path, target, ".debug_info")
    x = load_object(broken)                          # no exception
    sec = next(s for s in x.sections.values() if s.dwarf_name == "debug_info")
    assert sec.debug_problem and "unsupported relocation type" in sec.debug_problem
    assert sec.relocations == []
    proc = JitProcess(target)
    image = proc.link([load_object(other_path), x])
    res = proc.run()
    assert (res.exit_code, res.stdout) == (0, b"28 12\n")
    d = DebugInfo.from_image(x, image, 1)
    assert d.available is False
    assert "unsupported relocation type" in d.reason and sec.name in d.reason
    assert d.line_for(proc.lookup("main")) is None and d.functions() == []


@pytest.mark.parametrize("target", ["elf-x64", "elf-rv64", "macho-x64"])
def test_unreadable_debug_frame_relocation_leaves_the_rest(build, target):
    """debug_frame is not needed for lines and functions: it is left out,
    with a warning, and the rest still works."""
    x_path, other_path = build(target, "O0")
    broken = _break_reloc(x_path, target, ".debug_frame")
    x = load_object(broken)
    proc = JitProcess(target)
    image = proc.link([load_object(other_path), x])
    d = DebugInfo.from_image(x, image, 1)
    assert d.available, d.reason
    assert any("debug_frame" in w for w in d.warnings)
    assert d.line_for(proc.lookup("main")).line == LINES["open:main"]
    assert d.dwarfinfo.debug_frame_sec is None


@pytest.mark.parametrize("variant", ["O0", "O0-relax-asm"])
def test_rv64_line_table_uses_add_sub_pairs(build, variant):
    """What the rv64 cases above exercise: clang writes .debug_line address
    advances as ADD16/SUB16 label differences (with relaxation on, and
    clang 14 even with -mno-relax), and the -mrelax assembly route marks
    the code relaxable."""
    x = load_object(build("elf-rv64", variant)[0])
    names = lambda kind: {r.name for s in x.sections.values() if kind(s)  # noqa: E731
                          for r in s.relocations}
    line = names(lambda s: s.dwarf_name == "debug_line")
    assert {"R_RISCV_ADD16", "R_RISCV_SUB16"} <= line, line
    if variant == "O0-relax-asm":
        assert "R_RISCV_RELAX" in names(lambda s: s.kind is SectionKind.TEXT)


@pytest.mark.parametrize("target", ["elf-x64", "macho-arm64"])
def test_malformed_dwarf_is_reported_not_raised(build, target):
    x_path, _ = build(target, "O0")
    x = load_object(x_path)
    info = next(s for s in x.sections.values() if s.dwarf_name == "debug_info")
    info.data = info.data[:4] + b"\x63\x00" + info.data[6:]         # unit version 99
    d = DebugInfo.from_object(x, lambda si: 0x1000_0000)
    assert d.available is False and "malformed DWARF" in d.reason
    assert d.functions() == [] and d.line_for(0x1000_0000) is None
    # a truncated line table: no rows, a warning, the functions still listed
    x = load_object(x_path)
    line = next(s for s in x.sections.values() if s.dwarf_name == "debug_line")
    line.data, line.size = line.data[:20], 20
    line.relocations = [r for r in line.relocations if r.offset + r.spec.fixup.size <= 20]
    d = DebugInfo.from_object(x, lambda si: 0x1000_0000)
    assert d.available, d.reason
    assert d.line_for(0x1000_0000) is None and d.line_addresses("x.c", LINES["body:main"]) == []
    assert any("line table" in w for w in d.warnings)
    assert {f.name for f in d.functions()} == set(FUNCS)


# -- file names: directories relative to the compilation directory ------------------------

HEADER_H = """\
static inline int hfun(int a)   /* decl:hfun */
{
    return a * 7;               /* body:hfun */
}
"""

MAIN_C = """\
#include "h.h"
int mfun(int x)                 /* decl:mfun */
{
    return hfun(x) + 1;         /* body:mfun */
}
"""


def _marker_lines(text: str) -> dict[str, int]:
    return {m.group(1): n for n, line in enumerate(text.splitlines(), 1)
            for m in [re.search(r"/\* (\w+:\w+) \*/", line)] if m}


RELATIVE_COMP_DIR = "-fdebug-compilation-dir=."


@pytest.mark.parametrize("target,flags", [("elf-x64", ["-gdwarf-5"]), ("elf-x64", ["-gdwarf-4"]),
                                          ("elf-rv64", ["-gdwarf-4"]), ("macho-arm64", ["-g"]),
                                          ("macho-x64", ["-gdwarf-5"]),
                                          ("elf-x64", ["-gdwarf-5", RELATIVE_COMP_DIR]),
                                          ("elf-aarch64", ["-gdwarf-4", RELATIVE_COMP_DIR])])
def test_relative_directories_are_joined_to_the_compilation_directory(tmp_path, target, flags):
    """``clang -Iinc -c src/m.c``: the line table names the directories
    ``src`` and ``inc`` relative to DW_AT_comp_dir (DWARF 4 lists both as
    include directories; DWARF 5 names the main file ``src/m.c`` in
    directory 0 and the header in ``inc``). Every file gets its one
    absolute path, whatever the version; with a relative compilation
    directory (``.``), one normalized relative path."""
    tmp = str(tmp_path)
    os.makedirs(os.path.join(tmp, "src"))
    os.makedirs(os.path.join(tmp, "inc"))
    with open(os.path.join(tmp, "inc", "h.h"), "w") as f:
        f.write(HEADER_H)
    path = compile_one(tmp, target, ["-O0", *flags, "-Iinc"], "src/m.c", MAIN_C)
    root = os.path.realpath(tmp)          # what clang's getcwd() wrote as comp_dir
    main_c, h_h = f"{root}/src/m.c", f"{root}/inc/h.h"
    if RELATIVE_COMP_DIR in flags:
        main_c, h_h = "src/m.c", "inc/h.h"
    obj = load_object(path)
    d = DebugInfo.from_object(obj, lambda si: 0x1000_0000 + 0x10_0000 * si)
    assert d.available, d.reason
    funcs = {f.name: f for f in d.functions()}
    assert (funcs["mfun"].decl_file, funcs["mfun"].decl_line) == (main_c, 2)
    assert (funcs["hfun"].decl_file, funcs["hfun"].decl_line) == (h_h, 1)
    assert d.line_for(funcs["hfun"].low_pc).file == h_h
    assert d.line_for(funcs["mfun"].low_pc).file == main_c
    h_lines, m_lines = _marker_lines(HEADER_H), _marker_lines(MAIN_C)
    for file, short, line, owner in ((h_h, "h.h", h_lines["body:hfun"], "hfun"),
                                     (main_c, "src/m.c", m_lines["body:mfun"], "mfun")):
        addrs = d.line_addresses(file, line)          # the absolute path
        assert addrs and addrs == d.line_addresses(short, line), file
        assert all(d.function_at(a).name == owner for a in addrs)
    assert d.line_addresses(f"{root}/m.c", m_lines["body:mfun"]) == []


# -- line-table sequences, on a hand-written line program ------------------------------

def _uleb(v: int) -> bytes:
    out = bytearray()
    while True:
        b, v = v & 0x7F, v >> 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def _sleb(v: int) -> bytes:
    out = bytearray()
    while True:
        b, v = v & 0x7F, v >> 7
        done = (v == 0 and not b & 0x40) or (v == -1 and b & 0x40)
        out.append(b | (0 if done else 0x80))
        if done:
            return bytes(out)


def _line_program_v4(dirs: list[str], files: list[tuple[str, int]], program: bytes) -> bytes:
    """A DWARF 4 line program (32-bit format, one unit at offset 0)."""
    lengths = bytes([0, 1, 1, 1, 1, 0, 0, 0, 1, 0, 0, 1])      # opcodes 1..12
    tables = b"".join(d.encode() + b"\0" for d in dirs) + b"\0"
    tables += b"".join(n.encode() + b"\0" + _uleb(di) + b"\0\0" for n, di in files) + b"\0"
    after_header_length = bytes([1, 1, 1, (-5) & 0xFF, 14, 13]) + lengths + tables
    body = struct.pack("<H", 4) + struct.pack("<I", len(after_header_length)) \
        + after_header_length + program
    return struct.pack("<I", len(body)) + body


class _Rows:
    """Line-program opcodes."""

    @staticmethod
    def set_address(a: int) -> bytes:
        return b"\0" + _uleb(9) + b"\x02" + struct.pack("<Q", a)

    @staticmethod
    def line(delta: int) -> bytes:           # DW_LNS_advance_line
        return b"\x03" + _sleb(delta)

    @staticmethod
    def pc(delta: int) -> bytes:             # DW_LNS_advance_pc
        return b"\x02" + _uleb(delta)

    copy = b"\x01"                           # DW_LNS_copy: append a row
    negate_stmt = b"\x06"
    end_sequence = b"\0\x01\x01"


def _with_line_program(x_path: str, data: bytes) -> DebugInfo:
    """x.o with its line program replaced (DW_AT_stmt_list is 0)."""
    x = load_object(x_path)
    line = next(s for s in x.sections.values() if s.dwarf_name == "debug_line")
    line.data, line.size, line.relocations = data, len(data), []
    return DebugInfo.from_object(x, lambda si: 0x1000_0000)


def test_rows_at_the_end_of_a_sequence_describe_no_code(build):
    """A sequence ends at its end_sequence address, which belongs to whatever
    comes next: a row written at that address (a ``.loc`` with no
    instruction after it) is neither the line of that address nor an
    is_stmt address of its line; a non-stmt row is found by line_for only."""
    A, R = 0x1000_0100, _Rows
    program = (R.set_address(A) + R.line(9) + R.copy                      # 10 at A
               + R.pc(4) + R.line(1) + R.negate_stmt + R.copy             # 11 at A+4, not stmt
               + R.pc(4) + R.line(1) + R.negate_stmt + R.copy             # 12 at A+8 = the end
               + R.end_sequence
               + R.set_address(A + 8) + R.line(19) + R.copy               # 20 at A+8
               + R.pc(2) + R.end_sequence)
    d = _with_line_program(build("elf-x64", "O0-dwarf4")[0],
                           _line_program_v4([], [("x.c", 0)], program))
    assert d.available, d.reason
    assert [d.line_for(a) and d.line_for(a).line for a in (A - 1, A, A + 3, A + 4, A + 7, A + 8,
                                                           A + 9, A + 10)] == \
        [None, 10, 10, 11, 11, 20, 20, None]
    assert d.line_addresses("x.c", 10) == [A] and d.line_addresses("x.c", 11) == []
    assert d.line_addresses("x.c", 12) == []
    assert d.line_addresses("x.c", 20) == [A + 8]
    assert not d.warnings
