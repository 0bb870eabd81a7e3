"""The AOT reference (kitemu/aot.py): the same objects linked by ld.lld into a
static executable at a fixed address, run in unicorn with the same host
functions. Every ELF corpus case (every target, every variant) must print
the expected stdout and exit with the expected code under AOT, and match
kitemu's JIT run (stdout, stderr, exit code and the number of host calls).

Only the tests that run ld.lld are skipped when it is missing (with that
reason); the refusals (no ld.lld, Mach-O) are tested everywhere.
"""

from __future__ import annotations

import concurrent.futures
import os
import re
import shutil
import subprocess
from types import SimpleNamespace

import pytest
from elftools.elf.elffile import ELFFile

from kitemu import aot
from kitemu.aot import (AOT_BASE, AOT_HOST_BASE, LoadSegment, aot_process,
                        cross_check_relocations, link_aot, lld_command, load_aot, parse_lld_map,
                        run_aot)
from kitemu.errors import ConfigError, KitemuError, LinkError
from kitemu.execmem import RW, RX, Perm
from kitemu.harness.corpus import CASE_TIMEOUT, load_manifest
from kitemu.loader import load_object
from kitemu.runtime import JitProcess

from helpers import ELF_TARGETS, REPO

ALL_CASES = load_manifest()
ELF_CASES = [c for c in ALL_CASES if c.target.startswith("elf-")]
MACHO_CASES = [c for c in ALL_CASES if c.target.startswith("macho-")]
HAVE_LLD = shutil.which("ld.lld") is not None
needs_lld = pytest.mark.skipif(not HAVE_LLD, reason="ld.lld is not installed (the AOT "
                               "reference links with LLVM's ld.lld)")

#: Inputs ld.lld cannot link, each with lld's real error. Nothing in the
#: corpus is here: every ELF case x variant links with lld 14. Each entry is
#: checked to still fail with exactly this error (so a newer lld that links it
#: makes the test fail and the entry must go), then skipped with the reason.
LLD_CANNOT_LINK = {
    # the rv64 relocation-coverage program (tests/data) carries an
    # R_RISCV_ALIGN (it is assembled with +relax and has a .p2align); lld 14
    # implements no RISC-V relaxation and refuses ALIGN (RELAX alone is a
    # no-op hint it accepts: the corpus O2-relax variant links)
    ("reloc-coverage", "elf-rv64"): "relocation R_RISCV_ALIGN requires unimplemented linker "
                                    "relaxation; recompile with -mno-relax",
}


POOL = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="aot")


def _id(c):
    return f"{c.target}-{c.variant}-{c.case}"


def jit_run(case):
    proc = JitProcess(case.target)
    proc.link([load_object(p) for p in case.objects])
    return proc.run(case.entry, case.args, program_name=case.case, timeout=CASE_TIMEOUT)


def aot_run(case, paths=None, **kw):
    return run_aot(paths or case.objects, case.target, entry=case.entry, args=case.args,
                   timeout=CASE_TIMEOUT, program_name=case.case, **kw)


def assert_same(case, jit, ref):
    assert ref.fault is None, ref.message
    assert (ref.exit_code, ref.stdout) == (case.expected_exit, case.expected_stdout), ref.message
    # the oracle: kitemu's JIT and lld's image do exactly the same things
    assert (jit.exit_code, jit.stdout, jit.stderr) == (ref.exit_code, ref.stdout, ref.stderr)
    assert jit.stats["host_calls"] == ref.stats["host_calls"]


# -- the corpus -------------------------------------------------------------------

def test_every_elf_target_and_variant_is_covered():
    seen = {(c.target, c.variant) for c in ELF_CASES}
    assert {t for t, _ in seen} == set(ELF_TARGETS)
    assert seen >= {("elf-x64", v) for v in ("O0", "O2", "O2-pic", "O1-large")}
    assert seen >= {("elf-aarch64", v) for v in ("O0", "O2", "O2-pic", "O1-large")}
    assert seen >= {("elf-rv64", v) for v in ("O0", "O2", "O2-pic", "O1-medlow", "O2-relax")}
    assert len(ELF_CASES) == len({c.case for c in ELF_CASES}) * len(seen)


@needs_lld
@pytest.mark.parametrize("case", ELF_CASES, ids=_id)
def test_corpus_case(case):
    """Three runs of one case: kitemu's JIT, lld's image as lld links by
    default (relaxations, merged strings), and lld's -O0 --no-relax image
    used for the relocation-level check: expected stdout and exit code
    everywhere, JIT == lld's image in everything observable, and each value
    kitemu wrote equal to what lld wrote for the same relocation
    (cross_check_relocations). The only allowed differences are the
    documented ones (branches to an undefined weak symbol, never executed)."""
    # the default image links and runs in a second thread meanwhile: the
    # two ld.lld processes overlap (unicorn and subprocess release the GIL)
    default = POOL.submit(aot_run, case)
    check = cross_check_relocations(case.objects, case.target)
    jit = check.jit.run(case.entry, case.args, program_name=case.case, timeout=CASE_TIMEOUT)
    assert_same(case, jit, default.result())
    assert check.mismatches == []
    assert check.total > 0
    assert all("undefined weak" in k for k in check.known)
    if check.known:
        assert case.case == "weak_symbols" and case.target != "elf-x64"
    unrelaxed = check.aot.run(case.entry, case.args, program_name=case.case,
                              timeout=CASE_TIMEOUT)
    assert_same(case, jit, unrelaxed)


@needs_lld
@pytest.mark.parametrize("case", [c for c in ELF_CASES if c.variant == "O2"], ids=_id)
def test_corpus_archive_aot(case):
    """The same objects as one static archive (``<case>.a``, committed for
    O2): lld pulls members from the entry symbol on."""
    archive = os.path.join(os.path.dirname(case.objects[0]), f"{case.case}.a")
    assert os.path.exists(archive), archive
    ref = aot_run(case, [archive])
    assert (ref.exit_code, ref.stdout) == (case.expected_exit, case.expected_stdout), ref.message


@needs_lld
@pytest.mark.parametrize("target", ELF_TARGETS)
def test_no_relax_keeps_a_got(target, tmp_path):
    [case] = [c for c in ELF_CASES if (c.case, c.target, c.variant) == ("hello", target, "O2-pic")]
    sizes = {}
    for relax in (True, False):
        exe = link_aot(case.objects, target, str(tmp_path), relax=relax,
                       output=str(tmp_path / f"hello-{relax}"))
        with open(exe, "rb") as f:
            sizes[relax] = sum(s["sh_size"] for s in ELFFile(f).iter_sections()
                               if s.name == ".got")
    assert sizes[False] > 0
    if target == "elf-x64":
        assert sizes[True] == 0          # GOTPCRELX to a non-preemptible symbol: relaxed away


# -- the relocation-coverage programs (tests/data) ----------------------------------

RELOC_EXPECTED = {
    "elf-x64": (b"x64 calls: ok\nx64 pc-relative data: ok\nx64 absolute data: ok\n"
                b"x64 got: ok\n"),
    "elf-aarch64": (b"aarch64 branches: ok\naarch64 pc-relative addresses: ok\n"
                    b"aarch64 load/store lo12: ok\naarch64 movz/movk groups: ok\n"
                    b"aarch64 data words: ok\naarch64 got: ok\n"),
    "elf-rv64": b"rv64 calls and branches: ok\nrv64 addresses: ok\nrv64 data words: ok\n",
}


@needs_lld
@pytest.mark.parametrize("target", ELF_TARGETS)
def test_relocation_coverage_program(target):
    """Every relocation kind kitemu implements for the target, reached
    through its field and checked by the program itself (exit 0 = every
    check passed): lld handles the same kinds with the same results."""
    objs = [os.path.join(REPO, "tests", "data", "obj", target, n) for n in ("main.o", "lib.o")]
    known = LLD_CANNOT_LINK.get(("reloc-coverage", target))
    if known is not None:
        with pytest.raises(LinkError, match=re.escape(known)):
            run_aot(objs, target)
        pytest.skip(f"ld.lld 14 cannot link it: {known}")
    ref = run_aot(objs, target)
    proc = JitProcess(target)
    proc.link([load_object(p) for p in objs])
    jit = proc.run()
    assert (ref.exit_code, ref.stdout) == (0, RELOC_EXPECTED[target]), ref.message
    assert (jit.exit_code, jit.stdout) == (ref.exit_code, ref.stdout)
    # and relocation by relocation, every kind of the target's table that
    # the program carries
    check = cross_check_relocations(objs, target)
    assert check.mismatches == [] and check.known == []
    assert len(check.checked) >= {"elf-x64": 13, "elf-aarch64": 30}[target]


@needs_lld
def test_cross_check_catches_a_wrong_formula(monkeypatch):
    """Mutation: R_X86_64_PC32 evaluated as S + A (absolute) by kitemu. The
    values still fit, the link succeeds; the cross-check names every PC32."""
    import dataclasses

    from kitemu.targets.base import Formula
    from kitemu.targets.x64 import ELF_RELOCS
    case = _case("bank3", "elf-x64", "O2-pic")
    monkeypatch.setitem(ELF_RELOCS, 2, dataclasses.replace(ELF_RELOCS[2], formula=Formula.ABS))
    check = cross_check_relocations(case.objects, case.target)
    assert check.mismatches
    assert all("relocation R_X86_64_PC32 at offset" in m and "lld wrote" in m
               for m in check.mismatches)
    assert len(check.mismatches) == check.checked["R_X86_64_PC32"]


# -- IFUNC ---------------------------------------------------------------------------

def _loaded(case, tmp_path, relax=True):
    proc = aot_process(case.target)
    exe = link_aot(case.objects, case.target, str(tmp_path), host_addrs=proc.hostproc.addrs,
                   relax=relax)
    image = load_aot(proc, exe)
    return proc, image, exe


def _case(name, target, variant="O2"):
    [c] = [c for c in ELF_CASES if (c.case, c.target, c.variant) == (name, target, variant)]
    return c


@needs_lld
@pytest.mark.parametrize("target", ELF_TARGETS)
def test_ifunc_irelative_applied_before_constructors(target, tmp_path):
    case = _case("ifunc", target)
    proc, image, _ = _loaded(case, tmp_path)
    g = image.globals
    names = sorted(n for n, _, _ in image.ifuncs)
    assert names == ["answer", "checksum", "impl_name"]
    local = {s.name: s.addr for s in image.symbols if s.local}
    chosen = {"checksum": g["checksum_unrolled"], "impl_name": local["name_unrolled"],
              "answer": g["answer_v2"]}
    for name, resolver, slot in image.ifuncs:
        assert resolver == local[f"resolve_{name}"]
        assert int.from_bytes(proc.machine.read(slot, 8), "little") == chosen[name]
        # the public address is the .iplt entry (canonical, like kitemu's stub)
        assert g[name] == image.iplt[name] != resolver
    # each name's entry jumps through its own slot
    assert proc.call(proc.lookup("answer"))[0] & 0xFFFFFFFF == 42
    assert proc.machine.read_cstring(proc.call(proc.lookup("impl_name"))[0]) == b"unrolled"
    assert "ifunc resolvers" in image.stages.names
    r = proc.run("main", [], program_name="ifunc")
    assert (r.exit_code, r.stdout) == (0, case.expected_stdout)


@needs_lld
def test_ifunc_resolver_fault_names_the_resolver(tmp_path):
    """A resolver that crashes: the load fails naming the IFUNC and the
    symbolized fault (resolver patched to a trap in the executable)."""
    case = _case("ifunc", "elf-x64")
    proc = aot_process(case.target)
    exe = link_aot(case.objects, case.target, str(tmp_path), host_addrs=proc.hostproc.addrs)
    with open(exe, "r+b") as f:
        elf = ELFFile(f)
        sym = next(s for s in elf.get_section_by_name(".symtab").iter_symbols()
                   if s.name == "resolve_answer")
        off = next(elf.address_offsets(sym["st_value"]))
        f.seek(off)
        f.write(b"\x0f\x0b")                              # ud2
    with pytest.raises(KitemuError, match=r"IFUNC resolver of 'answer' at 0x[0-9a-f]+ did not "
                                          r"return: Illegal instruction.*<resolve_answer>"):
        load_aot(proc, exe)


def test_irelative_slot_write_respects_page_permissions():
    """The GOT slot's page is writable only during the write (an RX page
    becomes RW, never RWX) and gets its permission back."""
    proc = aot_process("elf-x64")
    m = proc.machine
    for perm in (Perm.R, RX):
        addr = AOT_BASE if perm == Perm.R else AOT_BASE + 0x1000
        m.map(addr, 0x1000, RW)
        m.protect(addr, 0x1000, perm)
        seg = LoadSegment("PT_LOAD[x]", addr, 0x1000, perm, addr, 0x1000)
        aot._write_word(proc, [seg], addr + 0x18, 0x1122334455667788, "x")
        assert m.read(addr + 0x18, 8) == (0x1122334455667788).to_bytes(8, "little")
        [(_, _, now)] = [r for r in m.regions() if r[0] == addr]
        assert now == perm
    with pytest.raises(KitemuError, match="outside every PT_LOAD"):
        aot._write_word(proc, [], AOT_BASE + 0x10000, 1, "x")


# -- the loaded image ------------------------------------------------------------

@needs_lld
@pytest.mark.parametrize("target", ELF_TARGETS)
def test_segments_mapped_with_their_own_permissions(target, tmp_path):
    proc, image, exe = _loaded(_case("ctors_dtors", target), tmp_path)
    with open(exe, "rb") as f:
        loads = [p.header for p in ELFFile(f).iter_segments() if p["p_type"] == "PT_LOAD"]
    assert [s.vaddr for s in image.segments] == [p["p_vaddr"] for p in loads]
    regions = {b: p for b, _, p in proc.machine.regions()}
    for seg in image.segments:
        assert seg.addr % 4096 == 0 and seg.size % 4096 == 0
        assert not (seg.perm & Perm.W and seg.perm & Perm.X)
        assert regions[seg.addr] == seg.perm
    assert {s.perm for s in image.segments} >= {Perm.R, RX, RW}
    assert image.segments[0].addr == AOT_BASE
    # host functions sit right below the image: direct calls, no stubs
    assert proc.hostproc.base == AOT_HOST_BASE
    assert proc.hostproc.end == AOT_BASE
    # constructors/destructors come from the executable's arrays
    assert len(image.init_array) >= 2 and len(image.fini_array) >= 2
    assert all(s.addr <= fn < s.addr + s.size for fn in image.init_array + image.fini_array
               for s in [next(s for s in image.segments if s.perm == RX)])
    # no relocation records: faults name symbols only
    assert image.records == [] and image.reloc_index.about(AOT_BASE) is None


@needs_lld
def test_rwx_segment_is_refused(tmp_path):
    """``--omagic`` makes lld put everything in one RWX PT_LOAD: refused
    (W^X), not split by guessing which bytes are code."""
    case = _case("hello", "elf-x64")
    out = str(tmp_path / "rwx")
    cmd = lld_command(case.objects, case.target, out, lld=shutil.which("ld.lld")) + ["--omagic"]
    subprocess.run(cmd, check=True, capture_output=True)
    with pytest.raises(KitemuError, match=r"PT_LOAD\[0\] at 0x[0-9a-f]+ is RWX; refused \(W\^X\)"):
        load_aot(aot_process("elf-x64"), out)


@needs_lld
def test_fault_is_symbolized_against_the_executable(tmp_path):
    case = _case("hello", "elf-aarch64")
    proc, image, _ = _loaded(case, tmp_path)
    main = image.globals["main"]
    proc.machine.write_raw(main + 8, proc.arch.trap)       # a brk inside main
    proc.machine.flush_code(main, 16)
    r = proc.run("main", [])
    assert r.fault is not None and r.signal == "SIGTRAP"
    assert r.fault.pc_symbol == "main+0x8"
    assert "J-stage entry main" in r.message


@needs_lld
def test_objects_given_as_loaded_objects_and_archive_members(tmp_path):
    case = _case("bank3", "elf-rv64")
    objs = [load_object(p) for p in case.objects]
    assert_same(case, jit_run(case), aot_run(case, objs))
    archive = os.path.join(os.path.dirname(case.objects[0]), "bank3.a")
    members = [SimpleNamespace(path=f"{archive}({os.path.basename(p)})") for p in case.objects]
    assert_same(case, jit_run(case), aot_run(case, members, workdir=str(tmp_path)))


# -- the ld.lld command line and its errors ----------------------------------------

def test_command_line():
    case = _case("hello", "elf-x64")
    cmd = lld_command(case.objects, "elf-x64", "out")
    for flag in ("-static", "--no-pie", "-z norelro", "--build-id=none", "-e main",
                 f"--image-base={AOT_BASE:#x}", "-z separate-loadable-segments",
                 "-m elf_x86_64", "-o out"):
        assert flag in " ".join(cmd), flag
    defsyms = [cmd[i + 1] for i, a in enumerate(cmd) if a == "--defsym"]
    host = aot.host_addresses("elf-x64")
    # exactly the host functions hello references, at the HostProcess's addresses
    with open(case.objects[0], "rb") as f:
        undefined = {s.name for s in ELFFile(f).get_section_by_name(".symtab").iter_symbols()
                     if s.name and s["st_shndx"] == "SHN_UNDEF"}
    assert {"printf", "puts"} <= undefined <= set(host)
    assert {d.split("=")[0] for d in defsyms} == undefined
    assert all(int(d.split("=")[1], 16) == host[d.split("=")[0]] for d in defsyms)
    assert "--no-relax" in lld_command(case.objects, "elf-x64", "out", relax=False)
    proc = aot_process("elf-x64")
    assert aot.host_addresses("elf-x64", proc.hostproc.base) == proc.hostproc.addrs


@needs_lld
def test_lld_error_is_a_link_error_with_lld_text(tmp_path):
    case = _case("bank3", "elf-x64")
    main_only = [p for p in case.objects if p.endswith("main.o")]
    with pytest.raises(LinkError, match=r"ld.lld could not link .*main\.o for elf-x64: "
                                        r"ld.lld: error: undefined symbol: "):
        link_aot(main_only, "elf-x64", str(tmp_path))


@needs_lld
def test_missing_entry(tmp_path):
    case = _case("hello", "elf-rv64")
    with pytest.raises(KitemuError, match="entry symbol 'no_such_entry' is not defined"):
        run_aot(case.objects, case.target, entry="no_such_entry")


def test_missing_lld_is_a_config_error(monkeypatch, tmp_path):
    case = _case("hello", "elf-x64")
    monkeypatch.setattr(aot.shutil, "which", lambda *a, **k: None)
    with pytest.raises(ConfigError, match="needs the LLVM linker ld.lld, which is not on PATH"):
        run_aot(case.objects, case.target)


def test_lld_not_on_path_is_a_config_error(monkeypatch, tmp_path):
    case = _case("hello", "elf-aarch64")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ConfigError, match="ld.lld"):
        link_aot(case.objects, case.target, str(tmp_path))


@pytest.mark.parametrize("target", ["macho-x64", "macho-arm64"])
def test_macho_targets_are_refused(target, tmp_path):
    case = next(c for c in MACHO_CASES if c.target == target and c.case == "hello")
    msg = "the AOT reference links ELF only: ld64 images need dyld"
    with pytest.raises(ConfigError, match=msg):
        run_aot(case.objects, target)
    with pytest.raises(ConfigError, match=msg):
        link_aot(case.objects, target, str(tmp_path))


def test_parse_lld_map():
    text = ("             VMA              LMA     Size Align Out     In      Symbol\n"
            "        10000158         10000158      2b8     8 .rodata\n"
            "        10000158         10000158      1fb     1         <internal>:(.rodata)\n"
            "        10000354         10000354        4     4         /o/a.o:(.rodata)\n"
            "        10000354         10000354        4     1                 account_count\n"
            "        10001000         10001000       a8     4         /o/lib.a(m.o):(.text)\n")
    assert parse_lld_map(text) == {("/o/a.o", ".rodata"): 0x10000354,
                                   ("/o/lib.a(m.o)", ".text"): 0x10001000}


def test_non_elf_input_is_refused(tmp_path):
    bogus = tmp_path / "x.o"
    bogus.write_bytes(b"not an object")
    with pytest.raises(KitemuError, match="neither an ELF object nor an archive"):
        aot._input_symbols([str(bogus)])
