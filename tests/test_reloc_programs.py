"""End-to-end relocation coverage: hand-written programs that check themselves.

tests/data/src/<target>/{main,lib}.s are assembled (tests/data/build.py) into
the committed objects tests/data/obj/<target>/*.o. Each program reaches
values through every kind of relocated field its target has and compares
them with the same values reached another way; ``main`` returns 0 when every
check passed, else the number of the first failing check, and prints one
line per group of checks. See tests/data/README.md for what covers what.
"""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kitemu.errors import RelocationError
from kitemu.loader import load_object
from kitemu.loader.model import ObjectFile
from kitemu.runtime import JitProcess, run_files
from kitemu.targets import get_target

DATA = Path(__file__).resolve().parent / "data"
OBJ = DATA / "obj"
TARGETS = ("elf-x64", "elf-aarch64", "elf-rv64")
STRATEGIES = ("mprotect", "dual-map")

#: link order of the relocation-coverage program of each target
PROGRAM = ("main.o", "lib.o")

EXPECTED_STDOUT = {
    "elf-x64": (b"x64 calls: ok\n"
                b"x64 pc-relative data: ok\n"
                b"x64 absolute data: ok\n"
                b"x64 got: ok\n"),
    "elf-aarch64": (b"aarch64 branches: ok\n"
                    b"aarch64 pc-relative addresses: ok\n"
                    b"aarch64 load/store lo12: ok\n"
                    b"aarch64 movz/movk groups: ok\n"
                    b"aarch64 data words: ok\n"
                    b"aarch64 got: ok\n"),
    "elf-rv64": (b"rv64 calls and branches: ok\n"
                 b"rv64 addresses: ok\n"
                 b"rv64 data words: ok\n"),
}

#: ELF_RELOCS entries no committed object carries, with the reason. Keep it
#: minimal: every kind an assembler can emit is in a program instead. (The
#: R_*_NONE kinds are covered too: each main.s has a `.reloc ., R_*_NONE`
#: on a data word whose value a check then uses.)
NOT_EMITTABLE = {
    "elf-x64": {},
    "elf-aarch64": {
        # 256 is AAELF64's withdrawn second encoding of "no relocation"
        # (binutils calls it R_AARCH64_NULL); every assembler writes
        # R_AARCH64_NONE as 0 and llvm-mc 14's `.reloc` has no name for 256.
        # test_alternate_none_is_ignored retypes a NONE in memory instead.
        256: "withdrawn alternate R_AARCH64_NONE",
    },
    "elf-rv64": {
        # R_RISCV_PLT32 (`.word f@plt - .`) is newer than the pinned
        # toolchain: LLVM 14's RISCV.def has no entry for it (llvm-mc 14
        # assembles `f@plt - .` to an ADD32/SUB32 pair and rejects
        # `.reloc ., R_RISCV_PLT32`); it came with LLVM 17.
        # test_rv64_plt32_runs retypes the program's 32_PCREL in memory.
        59: "R_RISCV_PLT32: not known to llvm-mc 14",
    },
}


def program(target: str) -> list[ObjectFile]:
    return [load_object(str(OBJ / target / name)) for name in PROGRAM]


def committed_objects(target: str) -> list[ObjectFile]:
    paths = sorted((OBJ / target).glob("*.o"))
    assert paths, f"no committed objects in {OBJ / target}"
    return [load_object(str(p)) for p in paths]


def symbol_name(obj: ObjectFile, rel) -> str:
    """How a relocation's symbol is named in messages (a section symbol by
    its section's name)."""
    sym = obj.symbols[rel.symbol]
    if sym.name:
        return sym.name
    return obj.sections[sym.section].name if sym.section in obj.sections else ""


def run(target: str, objects: list[ObjectFile], strategy: str = "mprotect", **kw):
    proc = JitProcess(target, strategy=strategy, **kw)
    proc.link(objects)
    return proc, proc.run()


def assert_passed(result, target: str) -> None:
    assert result.fault is None, result.message
    assert result.signal is None, result.message
    assert result.exit_code == 0, (
        f"{target}: check {result.exit_code} failed (see tests/data/src/{target}/main.s); "
        f"stdout so far: {result.stdout!r}")
    assert result.stdout == EXPECTED_STDOUT[target]


# ---- (a) the programs pass ---------------------------------------------------

@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("target", TARGETS)
def test_program_passes(target, strategy):
    proc, result = run(target, program(target), strategy)
    assert_passed(result, target)
    assert result.stderr == b""
    # every relocation of the program was applied (none are skipped)
    applied = sum(1 for o in program(target) for s in o.sections.values()
                  for r in s.relocations if r.spec.fixup is not None)
    assert proc.image.relocations_applied == applied


@pytest.mark.parametrize("target", TARGETS)
def test_program_via_run_files(target):
    result = run_files([str(OBJ / target / n) for n in PROGRAM])
    assert_passed(result, target)


# ---- (b) the committed objects cover every relocation kind ---------------------

@pytest.mark.parametrize("target", TARGETS)
def test_objects_cover_every_relocation_kind(target):
    table = get_target(target).arch.elf_relocs
    allowed = NOT_EMITTABLE[target]
    assert set(allowed) <= set(table), "allow-list names a kind the target does not have"
    seen: dict[int, str] = {}
    for obj in committed_objects(target):
        assert obj.target == target
        for sec in obj.sections.values():
            for rel in sec.relocations:
                seen.setdefault(rel.type, rel.name)
    missing = {t: table[t].name for t in table if t not in seen and t not in allowed}
    assert not missing, f"{target}: no committed object carries {sorted(missing.values())}"
    # the allow-list stays minimal: nothing on it is actually covered
    covered_anyway = {t: allowed[t] for t in allowed if t in seen}
    assert not covered_anyway, f"{target}: allow-listed but covered: {covered_anyway}"
    assert set(seen) <= set(table)


@pytest.mark.parametrize("target", TARGETS)
def test_readme_lists_every_covered_kind(target):
    readme = (DATA / "README.md").read_text()
    names = {r.name for o in committed_objects(target) for s in o.sections.values()
             for r in s.relocations}
    absent = sorted(n for n in names if n not in readme)
    assert not absent, f"tests/data/README.md does not mention {absent}"


def test_objects_are_up_to_date():
    """The committed objects are what build.py makes from the sources."""
    if shutil.which("llvm-mc") is None:
        pytest.skip("llvm-mc is not installed")
    proc = subprocess.run([sys.executable, str(DATA / "build.py"), "--check"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# ---- the two allow-listed kinds, exercised in memory ---------------------------

def _retype(objects, old_type: int, new_type: int, target: str) -> int:
    spec = get_target(target).arch.elf_relocs[new_type]
    n = 0
    for obj in objects:
        for sec in obj.sections.values():
            for rel in sec.relocations:
                if rel.type == old_type:
                    rel.type, rel.spec = new_type, spec
                    n += 1
    return n


def test_rv64_plt32_runs():
    """R_RISCV_PLT32 is S + A - P in a signed 32-bit word, like 32_PCREL:
    the program still passes with its 32_PCREL words retyped."""
    objs = program("elf-rv64")
    assert _retype(objs, 57, 59, "elf-rv64") >= 1
    _, result = run("elf-rv64", objs)
    assert_passed(result, "elf-rv64")


def test_alternate_none_is_ignored():
    objs = program("elf-aarch64")
    assert _retype(objs, 0, 256, "elf-aarch64") >= 1
    _, result = run("elf-aarch64", objs)
    assert_passed(result, "elf-aarch64")


# ---- (c) a relocation that cannot be applied is a precise error ---------------

_DESCRIBED = re.compile(
    r"^(?P<path>.+?): section (?P<section>\S+): relocation #(?P<index>\d+) (?P<type>R_\w+) "
    r"at offset (?P<offset>0x[0-9a-f]+) against (?P<symbol>\S+) [+-] 0x[0-9a-f]+: "
    r".*\(value (?P<value>-?0x[0-9a-f]+), place 0x[0-9a-f]+\)")


def _check_message(err: RelocationError, objects: list[ObjectFile]):
    """The message names the file, the section, the relocation (type and
    index) and its symbol, and shows the whole value, which the field cannot
    hold (never a truncated one). Returns (object, section, relocation)."""
    msg = str(err)
    m = _DESCRIBED.match(msg)
    assert m, f"unexpected RelocationError message: {msg}"
    obj = next((o for o in objects if o.path == m["path"]), None)
    assert obj is not None, f"message names no input file: {msg}"
    sec = next((s for s in obj.sections.values() if s.name == m["section"]), None)
    assert sec is not None, msg
    rel = next(r for r in sec.relocations if r.index == int(m["index"]))
    assert rel.name == m["type"] and rel.offset == int(m["offset"], 16), msg
    assert m["symbol"] == symbol_name(obj, rel), msg
    value = int(m["value"], 16)
    assert not rel.spec.fixup.in_range(value), f"the error shows an encodable value: {msg}"
    return obj, sec, rel


#: per target: (relocation type, symbol it is against, addend to add) for an
#: in-memory corruption whose value no longer fits its field
CORRUPTIONS = {
    # `.byte lib_near - .`: +-128 bytes
    "elf-x64": ("R_X86_64_PC8", "lib_near", 0x100),
    # `tbnz x21, #3, .Lback_tbnz` in .text.far: +-32 KiB
    "elf-aarch64": ("R_AARCH64_TSTBR14", ".text", 0x10000),
    # `beq zero, zero, far_branch`: +-4 KiB
    "elf-rv64": ("R_RISCV_BRANCH", "far_branch", 0x2000),
}


@pytest.mark.parametrize("target", TARGETS)
def test_addend_overflow_is_a_relocation_error(target):
    objs = copy.deepcopy(program(target))
    rtype, symbol, delta = CORRUPTIONS[target]
    victim = None
    for obj in objs:
        for sec in obj.sections.values():
            for rel in sec.relocations:
                if victim is None and rel.name == rtype and symbol_name(obj, rel) == symbol:
                    rel.addend += delta
                    victim = (obj, sec, rel)
    assert victim is not None, f"{target}: no {rtype} against {symbol} in the program"
    proc = JitProcess(target)
    with pytest.raises(RelocationError) as info:
        proc.link(objs)
    assert proc.generation == -1        # nothing was published
    obj, sec, rel = _check_message(info.value, objs)
    assert (obj, sec, rel) == victim
    assert rtype in str(info.value) and symbol in str(info.value)
    assert obj.path in str(info.value) and f"section {sec.name}" in str(info.value)


#: what a high image base breaks on each target (absolute fields that hold an
#: address of the image: 32-bit words and immediates, checked MOVW groups,
#: RISC-V's lui %hi)
HIGH_BASE = 0x7F00_0000_0000
ABSOLUTE_KINDS = {
    "elf-x64": {"R_X86_64_32", "R_X86_64_32S"},
    "elf-aarch64": {"R_AARCH64_ABS32", "R_AARCH64_MOVW_UABS_G0", "R_AARCH64_MOVW_UABS_G1"},
    "elf-rv64": {"R_RISCV_32", "R_RISCV_HI20", "R_RISCV_SET32"},
}


@pytest.mark.parametrize("target", TARGETS)
def test_high_base_is_a_relocation_error(target):
    objs = program(target)
    proc = JitProcess(target, base=HIGH_BASE)
    with pytest.raises(RelocationError) as info:
        proc.link(objs)
    assert proc.generation == -1        # nothing was published
    obj, sec, rel = _check_message(info.value, objs)
    assert rel.name in ABSOLUTE_KINDS[target], str(info.value)
    sym = obj.symbols[rel.symbol]
    assert sym.name and sym.name in str(info.value)
