"""End-to-end Mach-O relocation coverage: hand-written programs that check themselves.

tests/data/macho/src/{x64,arm64}/{main,lib}.s are assembled by
tests/data/macho/build.py (llvm-mc, ``-triple=x86_64-apple-macos`` /
``arm64-apple-macos``) into the committed objects tests/data/macho/obj/.
Each program reaches values through every kind of relocated field the
Mach-O reader produces and compares them with the same values reached
another way; ``_main`` returns 0 when every check passed, else the number of
the first failing check, and prints one line per group of checks. See
tests/data/macho/README.md for what covers what.
"""

from __future__ import annotations

import copy
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from kitemu.errors import RelocationError
from kitemu.loader import load_object
from kitemu.loader.macho import read_macho
from kitemu.loader.model import ObjectFile, SymbolType
from kitemu.runtime import JitProcess, run_files
from kitemu.targets import get_target

DATA = Path(__file__).resolve().parent / "data" / "macho"
OBJ = DATA / "obj"
ARCHES = ("x64", "arm64")
STRATEGIES = ("mprotect", "dual-map")
PROGRAM = ("main.o", "lib.o")

EXPECTED_STDOUT = {
    "x64": (b"x64 calls: ok\n"
            b"x64 rip-relative data: ok\n"
            b"x64 absolute data: ok\n"
            b"x64 got: ok\n"
            b"x64 differences: 5 ok\n"
            b"x64 symbols: ok\n"),
    "arm64": (b"arm64 branches: ok\n"
              b"arm64 page addresses: ok\n"
              b"arm64 load/store pageoff12: ok\n"
              b"arm64 data words: ok\n"
              b"arm64 got: ok\n"
              b"arm64 printf: 5 ok\n"
              b"arm64 symbols: ok\n"),
}

#: Kinds (type name, fixup, target) of ``Arch.macho_kinds()`` that no
#: committed object carries, with the reason. Each is exercised instead by
#: test_non_extern_rewrite_runs, which rewrites the program's own extern
#: relocations into the non-extern form and runs it.
NOT_EMITTABLE = {
    "x64": {},
    "arm64": {
        # llvm-mc writes arm64 relocations of loaded sections extern only
        # (AArch64MachObjectWriter allows section-relative ones in debug
        # sections alone - __LD,__compact_unwind and __DWARF, which kitemu
        # does not load - and uses "ltmpN + ADDEND" everywhere else).
        ("ARM64_RELOC_UNSIGNED", "aarch64.Data32", "section"): "llvm-mc: extern only",
        ("ARM64_RELOC_UNSIGNED", "aarch64.Data64", "section"): "llvm-mc: extern only",
        **{("ARM64_RELOC_SUBTRACTOR", f"aarch64.Delta{bits}", pair): "llvm-mc: extern only"
           for bits in (32, 64) for pair in ("section-extern", "extern-section",
                                             "section-section")},
    },
}

#: Mach-O relocation type numbers the readers refuse (no object carries them)
REFUSED_TYPES = {"x64": {9}, "arm64": {8, 9, 11}}


def target_of(arch: str) -> str:
    return f"macho-{arch}"


def program(arch: str) -> list[ObjectFile]:
    return [load_object(str(OBJ / arch / name)) for name in PROGRAM]


def run(arch: str, objects: list[ObjectFile], strategy: str = "mprotect", **kw):
    proc = JitProcess(target_of(arch), strategy=strategy, **kw)
    proc.link(objects)
    return proc, proc.run()


def assert_passed(result, arch: str) -> None:
    assert result.fault is None, result.message
    assert result.signal is None, result.message
    assert result.exit_code == 0, (
        f"{arch}: check {result.exit_code} failed (see tests/data/macho/src/{arch}/main.s); "
        f"stdout so far: {result.stdout!r}")
    assert result.stdout == EXPECTED_STDOUT[arch]


def kind_of(obj: ObjectFile, rel) -> tuple[str, str, str]:
    """(type name, fixup name, "extern"|"section"[-"extern"|"section"])."""
    def mode(i):
        return "section" if obj.symbols[i].type is SymbolType.SECTION else "extern"
    m = mode(rel.symbol) if rel.subtrahend is None else f"{mode(rel.symbol)}-{mode(rel.subtrahend)}"
    return rel.spec.name, rel.spec.fixup.name, m


def kinds(objects: list[ObjectFile]) -> set:
    return {kind_of(o, r) for o in objects for s in o.sections.values() for r in s.relocations}


# ---- (a) the programs pass ---------------------------------------------------------

@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("arch", ARCHES)
def test_program_passes(arch, strategy):
    objs = program(arch)
    proc, result = run(arch, objs, strategy)
    assert_passed(result, arch)
    assert result.stderr == b""
    applied = sum(len(s.relocations) for o in objs for s in o.sections.values())
    assert proc.image.relocations_applied == applied
    # macho-arm64 models macOS on Apple silicon: 16 KiB pages
    assert proc.mem.page_size == (16384 if arch == "arm64" else 4096)


@pytest.mark.parametrize("arch", ARCHES)
def test_program_via_run_files(arch):
    result = run_files([str(OBJ / arch / n) for n in PROGRAM])
    assert_passed(result, arch)


# ---- (b) the committed objects cover every relocation kind ------------------------

@pytest.mark.parametrize("arch", ARCHES)
def test_objects_cover_every_relocation_kind(arch):
    supported = get_target(target_of(arch)).arch.macho_kinds()
    allowed = NOT_EMITTABLE[arch]
    assert set(allowed) <= supported, "allow-list names a kind the reader does not produce"
    seen = kinds([load_object(str(p)) for p in sorted((OBJ / arch).glob("*.o"))])
    assert seen <= supported
    missing = supported - seen - set(allowed)
    assert not missing, f"{arch}: no committed object carries {sorted(missing)}"
    covered_anyway = set(allowed) & seen
    assert not covered_anyway, f"{arch}: allow-listed but covered: {covered_anyway}"


def raw_relocations(path: Path):
    """(section name, [(r_address, symbolnum, pcrel, length, extern, type)])
    for every section, parsed here independently of the reader."""
    data = path.read_bytes()
    ncmds, = struct.unpack_from("<I", data, 16)
    off, out = 32, []
    for _ in range(ncmds):
        cmd, size = struct.unpack_from("<II", data, off)
        if cmd == 0x19:
            nsects, = struct.unpack_from("<I", data, off + 64)
            for k in range(nsects):
                s = off + 72 + 80 * k
                sect, seg = (data[s:s + 16].rstrip(b"\0").decode(),
                             data[s + 16:s + 32].rstrip(b"\0").decode())
                reloff, nreloc = struct.unpack_from("<II", data, s + 56)
                entries = []
                for i in range(nreloc):
                    a, w = struct.unpack_from("<iI", data, reloff + 8 * i)
                    entries.append((a, w & 0xFFFFFF, (w >> 24) & 1, (w >> 25) & 3,
                                    (w >> 27) & 1, w >> 28))
                out.append((f"{seg},{sect}", entries))
        off += size
    return out


@pytest.mark.parametrize("arch", ARCHES)
def test_objects_carry_every_relocation_type(arch):
    """Every type number the arch knows, but the refused ones, occurs in the
    committed objects; on arm64 an ADDEND precedes each kind that takes one."""
    a = get_target(target_of(arch)).arch
    known = {t for t in range(16) if a.macho_reloc_name(t)}
    seen, addend_before = set(), set()
    for path in sorted((OBJ / arch).glob("*.o")):
        for _, entries in raw_relocations(path):
            for e, nxt in zip(entries, entries[1:] + [None]):
                seen.add(e[5])
                if e[5] == a.macho_addend and nxt:
                    addend_before.add(nxt[5])
    assert seen == known - REFUSED_TYPES[arch]
    if a.macho_addend is not None:
        assert addend_before == {t for t in known if a.macho_takes_addend(t)}


def test_objects_are_up_to_date():
    """The committed objects are what build.py makes from the sources."""
    if shutil.which("llvm-mc") is None:
        pytest.skip("llvm-mc is not installed")
    proc = subprocess.run([sys.executable, str(DATA / "build.py"), "--check"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_readme_lists_every_covered_kind():
    readme = (DATA / "README.md").read_text()
    names = {k[0] for arch in ARCHES for k in kinds(program(arch))}
    names.add("ARM64_RELOC_ADDEND")
    absent = sorted(n for n in names if n not in readme)
    assert not absent, f"tests/data/macho/README.md does not mention {absent}"


# ---- (c) the non-extern forms, by rewriting the program ---------------------------

def _sections_and_symbols(data: bytes):
    """Section headers (ordinal -> (addr, file offset)) and nlist entries."""
    ncmds, = struct.unpack_from("<I", data, 16)
    off, sections, symtab = 32, {}, None
    for _ in range(ncmds):
        cmd, size = struct.unpack_from("<II", data, off)
        if cmd == 0x19:
            nsects, = struct.unpack_from("<I", data, off + 64)
            for k in range(nsects):
                s = off + 72 + 80 * k
                addr, _, fileoff = struct.unpack_from("<QQI", data, s + 32)
                reloff, nreloc = struct.unpack_from("<II", data, s + 56)
                sections[len(sections) + 1] = (addr, fileoff, reloff, nreloc)
        elif cmd == 0x2:
            symoff, nsyms = struct.unpack_from("<II", data, off + 8)
            symtab = [struct.unpack_from("<IBBHQ", data, symoff + 16 * i) for i in range(nsyms)]
        off += size
    return sections, symtab


def make_non_extern(data: bytes, *, minuends=True, subtrahends=True, pcrel=True) -> bytes:
    """Rewrite every extern relocation that may be non-extern and whose symbol
    this object defines (N_SECT) into the r_extern=0 form, the way an
    assembler writes it (the field then holds the target's address in the
    object's address space, see <mach-o/reloc.h>):

    * UNSIGNED (alone, or the minuend of a pair): field += symbol address;
    * SUBTRACTOR (the subtrahend): field -= symbol address;
    * x86-64 pc-relative (SIGNED*, BRANCH): the field becomes the final
      displacement ``S + field - (P + 4)``.

    r_symbolnum becomes the symbol's section ordinal. Weak definitions keep
    their extern relocations (a section-relative one would bind to this
    object's copy, which another object's strong one overrides). The
    semantics are written out here, independently of the reader."""
    buf = bytearray(data)
    cputype, = struct.unpack_from("<I", data, 4)
    x64 = cputype == 0x01000007
    unsigned, subtractor = (0, 5) if x64 else (0, 1)
    pcrel_types = {1, 2, 6, 7, 8} if x64 else set()
    sections, symtab = _sections_and_symbols(data)
    for ordinal, (sec_addr, fileoff, reloff, nreloc) in sections.items():
        prev = None
        for i in range(nreloc):
            at = reloff + 8 * i
            address, word = struct.unpack_from("<iI", buf, at)
            symnum, length, extern, rtype = (word & 0xFFFFFF, (word >> 25) & 3,
                                             (word >> 27) & 1, word >> 28)
            after_subtractor = prev == subtractor
            prev = rtype
            if not extern:
                continue
            n_strx, n_type, n_sect, n_desc, n_value = symtab[symnum]
            if n_type & 0xE0 or n_type & 0x0E != 0x0E:
                continue                    # not defined in a section of this object
            if n_desc & 0x80:
                continue                    # N_WEAK_DEF: another object's may win
            size = 1 << length
            field = int.from_bytes(buf[fileoff + address:fileoff + address + size], "little",
                                   signed=True)
            if rtype == subtractor:
                if not subtrahends:
                    continue
                field -= n_value
            elif rtype == unsigned:
                if after_subtractor and not minuends:
                    continue
                field += n_value
            elif rtype in pcrel_types and pcrel:
                field = n_value + field - (sec_addr + address + 4)
            else:
                continue
            buf[fileoff + address:fileoff + address + size] = \
                (field & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
            word = (word & ~(0xFFFFFF | (1 << 27))) | n_sect
            struct.pack_into("<iI", buf, at, address, word)
    return bytes(buf)


@pytest.mark.parametrize("variant", ["all", "minuends-only"])
@pytest.mark.parametrize("arch", ARCHES)
def test_non_extern_rewrite_runs(arch, variant):
    """The program still passes with every relocation that may be
    non-extern rewritten so: this is what covers NOT_EMITTABLE by execution
    (and x86-64's non-extern forms a second time)."""
    kw = {} if variant == "all" else {"subtrahends": False, "pcrel": False}
    objs = [read_macho(f"{name}", make_non_extern((OBJ / arch / name).read_bytes(), **kw))
            for name in PROGRAM]
    _, result = run(arch, objs)
    assert_passed(result, arch)
    rewritten = kinds(objs)
    if variant == "all":
        # together the two variants carry every allow-listed kind
        both = rewritten | kinds([read_macho(n, make_non_extern(
            (OBJ / arch / n).read_bytes(), subtrahends=False, pcrel=False)) for n in PROGRAM])
        assert set(NOT_EMITTABLE[arch]) <= both
    assert any(k[2].startswith("section") for k in rewritten)


# ---- (d) the checks are sensitive: a wrong addend rule fails its check ------------

#: (arch, relocation type name, target mode, section or None for all,
#: addend delta, the check that then fails)
MUTATIONS = [
    # SIGNED_1/2/4 count from 1/2/4 bytes past the field: a rule that forgot
    # (or double-counted) that lands one byte off and the slot compare fails
    ("x64", "X86_64_RELOC_SIGNED_1", "extern", None, -1, 9),
    ("x64", "X86_64_RELOC_SIGNED_2", "extern", None, +1, 10),
    ("x64", "X86_64_RELOC_SIGNED_4", "extern", None, -4, 11),
    ("x64", "X86_64_RELOC_SIGNED_1", "section", None, +1, 12),
    ("x64", "X86_64_RELOC_SIGNED_2", "section", None, -2, 13),
    ("x64", "X86_64_RELOC_SIGNED_4", "section", None, +4, 14),
    ("x64", "X86_64_RELOC_SIGNED", "extern", None, +4, 6),
    ("x64", "X86_64_RELOC_SUBTRACTOR", "extern-extern", None, +8, 24),
    ("x64", "X86_64_RELOC_SUBTRACTOR", "section-section", None, -8, 28),
    ("x64", "X86_64_RELOC_UNSIGNED", "section", None, +8, 12),
    ("x64", "X86_64_RELOC_GOT", "extern", "__TEXT,__const", +8, 22),
    ("arm64", "ARM64_RELOC_SUBTRACTOR", "extern-extern", None, +8, 19),
    ("arm64", "ARM64_RELOC_POINTER_TO_GOT", "extern", None, +8, 23),
    ("arm64", "ARM64_RELOC_UNSIGNED", "extern", "__TEXT,__const", +8, 6),
]


@pytest.mark.parametrize("arch,name,mode,section,delta,check", MUTATIONS)
def test_a_wrong_addend_fails_its_check(arch, name, mode, section, delta, check):
    objs = copy.deepcopy(program(arch))
    hit = 0
    for obj in objs[:1]:        # main.o
        for sec in obj.sections.values():
            if section not in (None, sec.name):
                continue
            for rel in sec.relocations:
                if kind_of(obj, rel)[0] == name and kind_of(obj, rel)[2] == mode:
                    rel.addend += delta
                    hit += 1
    assert hit
    _, result = run(arch, objs)
    assert result.exit_code == check, (result.exit_code, result.stdout, result.message)


def test_a_dropped_arm64_addend_fails_its_check():
    """ARM64_RELOC_ADDEND on PAGE21: Page(S + A), not Page(S). Dropping the
    addend of the ADRP of `_lib_big@PAGE + 0x1008` (check 8) picks the wrong
    4 KiB page."""
    objs = copy.deepcopy(program("arm64"))
    main = objs[0]
    text = next(s for s in main.sections.values() if s.name == "__TEXT,__text")
    victims = [r for r in text.relocations
               if r.name == "ARM64_RELOC_PAGE21" and r.addend == 0x1008]
    assert len(victims) == 1
    victims[0].addend = 0
    _, result = run("arm64", objs)
    assert result.exit_code == 8


# ---- (e) a relocation that cannot be applied is a precise error -------------------

@pytest.mark.parametrize("arch,name", [("x64", "X86_64_RELOC_SUBTRACTOR"),
                                       ("arm64", "ARM64_RELOC_SUBTRACTOR"),
                                       ("arm64", "ARM64_RELOC_POINTER_TO_GOT")])
def test_difference_overflow_is_a_relocation_error(arch, name):
    """A 4-byte difference that does not fit is an error naming the
    relocation, never a truncated word."""
    objs = copy.deepcopy(program(arch))
    victim = None
    for obj in objs:
        for sec in obj.sections.values():
            for rel in sec.relocations:
                if victim is None and rel.name == name and rel.spec.fixup.size == 4:
                    rel.addend += 1 << 32
                    victim = (obj, sec, rel)
    assert victim
    proc = JitProcess(target_of(arch))
    with pytest.raises(RelocationError) as info:
        proc.link(objs)
    obj, sec, rel = victim
    msg = str(info.value)
    assert proc.generation == -1        # nothing was published
    assert msg.startswith(f"{obj.path}: section {sec.name}: relocation #{rel.index} {name} "
                          f"at offset {rel.offset:#x}"), msg
    assert "out of range" in msg


@pytest.mark.parametrize("arch", ARCHES)
def test_high_base_is_a_relocation_error(arch):
    """4-byte UNSIGNED words hold image addresses only below 4 GiB."""
    proc = JitProcess(target_of(arch), base=0x7F00_0000_0000)
    with pytest.raises(RelocationError) as info:
        proc.link(program(arch))
    assert proc.generation == -1        # nothing was published
    unsigned = "X86_64_RELOC_UNSIGNED" if arch == "x64" else "ARM64_RELOC_UNSIGNED"
    assert unsigned in str(info.value) and "out of range" in str(info.value)


def test_far_host_calls_go_through_stubs():
    """X86_64_RELOC_BRANCH / ARM64_RELOC_BRANCH26 to host functions (far
    from the image) reach them through stubs: the programs print."""
    for arch in ARCHES:
        proc, result = run(arch, program(arch))
        assert result.stdout == EXPECTED_STDOUT[arch]
        names = {n for t, n in ((t, getattr(t, "name", "")) for t in proc.image.stubs)}
        assert {"_puts", "_printf"} <= names
