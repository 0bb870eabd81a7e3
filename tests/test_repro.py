"""kitemu repro and the Bus-error regression corpus (regressions/).

* every case reproduces its expected.report (signal, si_code, J-stage, pc
  symbol, relocation...) under its host model (macOS, or Linux for a
  strict-alignment case), and its fixed variant runs correctly. The
  expected reports say what the real host reports (checked against xnu's
  and Linux's signal code, not copied from kitemu's output);
* the host x strategy table of each case (and of each fixed variant) has the
  case's crash/clean pattern; `kitemu repro` prints it with every strategy
  kitemu has;
* --minimize reduces a padded case to a minimal reproducer with the same
  fault, reports what it removed, and --replay re-runs it;
* fault reports carry the generation and the disassembly around the PC,
  shown by `kitemu run` too; rv64 exception PCs and alignment-fault
  addresses are right.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from kitemu.cli import main as cli_main
from kitemu.loader.model import Binding, SectionKind, SymbolType
from kitemu.repro import (Edit, apply_edits, fault_key, find_cases, load_case, load_replay,
                          minimize, report_fields, run_once, run_table, strategies,
                          write_reduction)
from kitemu.repro.reduce import _neutralize, defined_names, refs_ok, units
from kitemu.repro.run import compare_report, format_table, parse_report
from kitemu.runtime import JitProcess
from kitemu.targets import rv64

from helpers import REPO
from objbuild import ObjBuilder

REGRESSIONS = os.path.join(REPO, "regressions")
CASES = find_cases(REGRESSIONS)
CASE_NAMES = [c.name for c in CASES]
KNOWN = ("mprotect", "dual-map", "jit-toggle")

def case(name):
    return load_case(os.path.join(REGRESSIONS, name))


def test_the_corpus_has_at_least_four_distinct_bus_errors():
    assert len(CASES) >= 4
    causes = {c.meta["cause"] for c in CASES}
    assert len(causes) == len(CASES)
    for c in CASES:
        rep = c.expected_report()
        assert rep["signal"] == "SIGBUS" and rep["host"] == c.meta["host"], c.name
        # a Bus error under the macOS model, or under strict alignment
        assert c.meta["host"] == "macos" or rep["si_code"] == "BUS_ADRALN", c.name
        assert c.meta.get("fix") and "fixed" in c.meta


@pytest.mark.parametrize("name", CASE_NAMES)
def test_case_reproduces_its_expected_report(name):
    c = case(name)
    spec = c.spec()
    out = run_once(c.program(), spec["host"], spec["strategy"], timeout=10)
    assert out.fault is not None, out
    expected = c.expected_report()
    for key in ("signal", "si_code", "j-stage", "pc", "relocation", "kind", "access", "address"):
        assert key in expected, key
    # the disassembly marks the faulting instruction
    marked = [line for line in out.fault.disassembly if line.startswith("=>")]
    assert len(marked) == 1 and f"{out.fault.pc:#x}" in marked[0]
    assert out.fault.generation == 0
    diffs = compare_report(expected, report_fields(out, c.meta["target"]))
    assert diffs == []


@pytest.mark.parametrize("name", CASE_NAMES)
def test_fixed_variant_runs_correctly(name):
    c = case(name)
    spec = c.spec("fixed")
    out = run_once(c.program("fixed"), spec["host"], spec["strategy"], timeout=10)
    assert out.fault is None and out.error is None and out.signal is None, out
    assert out.stdout == c.expected_stdout("fixed")
    assert out.exit_code == c.expected_exit("fixed")


@pytest.mark.parametrize("variant", ["buggy", "fixed"])
@pytest.mark.parametrize("name", CASE_NAMES)
def test_host_by_strategy_table(name, variant):
    c = case(name)
    expected = c.expected_table(variant)
    # the table lists every strategy kitemu has (a new one needs its cells)
    assert {(h, s) for h in expected for s in expected[h]} == \
        {(h, s) for h in ("linux", "macos") for s in strategies()}
    outs = run_table(c.program(variant), ["linux", "macos"], strategies(), timeout=10)
    got = {(o.host, o.strategy): o.cell for o in outs}
    want = {(h, s): expected[h][s] for h in expected for s in expected[h]}
    assert got == want


def test_table_patterns_of_the_roadmap_causes():
    """(a) crashes only under jit-toggle; (b) with SIGBUS on macOS dual-map
    and SIGSEGV on Linux; misaligned atomics are SIGBUS on both hosts; the
    wrong-relocation store is a Bus error on macOS only."""
    def table(name):
        c = case(name)
        return {(o.host, o.strategy): o for o in run_table(c.program(), ["linux", "macos"],
                                                          list(KNOWN), timeout=10)}

    a = table("jit_write_mode_call")
    assert {k for k, o in a.items() if o.crashed} == {("linux", "jit-toggle"), ("macos", "jit-toggle")}
    assert a["macos", "jit-toggle"].fault.signal == "SIGBUS"
    b = table("rx_view_self_patch")
    assert b["macos", "dual-map"].cell == "SIGBUS BUS_ADRERR"      # x86-64 xnu
    assert b["linux", "dual-map"].cell == "SIGSEGV SEGV_ACCERR"
    for name in ("misaligned_ldxr", "misaligned_amo_rv64"):
        assert {o.cell for o in table(name).values()} == {"SIGBUS BUS_ADRALN"}
    d = table("asm_reloc_to_rodata")
    assert {o.cell.split()[0] for (h, _), o in d.items() if h == "macos"} == {"SIGBUS"}
    assert {o.cell for (h, _), o in d.items() if h == "linux"} == {"SIGSEGV SEGV_ACCERR"}


# -- the command ------------------------------------------------------------------------

def _table_rows(out: str) -> dict[tuple[str, str], str]:
    rows = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0] in ("linux", "macos") and parts[1] in strategies():
            rows[parts[0], parts[1]] = " ".join(parts[2:])
    return rows


@pytest.mark.parametrize("name", CASE_NAMES)
def test_cli_repro_case_prints_table_and_checks(name, capsys):
    rc = cli_main(["repro", "--case", os.path.join(REGRESSIONS, name)])
    out = capsys.readouterr().out
    rows = _table_rows(out)
    # every host model x every strategy kitemu has (a new one shows up by itself)
    assert set(rows) == {(h, s) for h in ("linux", "macos") for s in strategies()}
    table = case(name).expected_table()
    for (h, s), row in rows.items():
        want = table[h].get(s)
        if want is None:
            continue
        if want.startswith("clean"):
            assert row.startswith("clean") and row.endswith(f"exit {want.split()[1]}")
        else:
            assert row.startswith("crash " + want)
    assert "program crashed. Bus error" in out
    assert "disassembly around pc" in out and "\n    => 0x" in out
    assert rc == 0
    assert "expected report: matches" in out and "expected table: matches" in out


def test_cli_repro_fixed_variant(capsys):
    assert cli_main(["repro", "--case", os.path.join(REGRESSIONS, "rx_view_self_patch"),
                     "--variant", "fixed"]) == 0
    out = capsys.readouterr().out
    assert "expected stdout: matches" in out and "expected exit 0: matches" in out
    rows = _table_rows(out)
    assert rows["macos", "dual-map"] == "clean exit 0"
    assert rows["linux", "mprotect"].startswith("crash SIGSEGV SEGV_MAPERR")


def test_cli_repro_plain_inputs(capsys):
    d = os.path.join(REGRESSIONS, "misaligned_ldxr", "obj")
    assert cli_main(["repro", os.path.join(d, "main.o"), os.path.join(d, "atomic.o"),
                     "--hosts", "macos", "--strategies", "mprotect,dual-map"]) == 0
    out = capsys.readouterr().out
    assert _table_rows(out) == {("macos", "mprotect"): "crash SIGBUS BUS_ADRALN entry main atomic_add",
                                ("macos", "dual-map"): "crash SIGBUS BUS_ADRALN entry main atomic_add"}
    assert "address: stats+0x1" in out
    # a program that runs clean: exit status 1 (nothing reproduced)
    assert cli_main(["repro", os.path.join(d, "main-fixed.o"), os.path.join(d, "atomic.o"),
                     "--hosts", "linux", "--strategies", "mprotect"]) == 1


def test_cli_repro_detects_a_wrong_expectation(tmp_path, capsys):
    src = os.path.join(REGRESSIONS, "misaligned_ldxr")
    dst = tmp_path / "case"
    shutil.copytree(src, dst)
    rep = (dst / "expected.report").read_text().replace("pc: atomic_add", "pc: main+0x10")
    (dst / "expected.report").write_text(rep)
    assert cli_main(["repro", "--case", str(dst)]) == 1
    out = capsys.readouterr().out
    assert "expected report: DIFFERS" in out and "pc: expected 'main+0x10', got 'atomic_add'" in out


def _one_error_line(capsys, argv, *must_name):
    assert cli_main(["repro", "-q", *argv]) == 2, argv
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("kitemu: error: "), err
    for what in must_name:
        assert what in err[0], (what, err[0])
    return err[0]


def test_cli_repro_bad_input_is_one_error_line(capsys, tmp_path):
    ldxr = os.path.join(REGRESSIONS, "misaligned_ldxr", "obj")
    rx = os.path.join(REGRESSIONS, "rx_view_self_patch", "obj", "main.o")
    garbage = tmp_path / "garbage.o"
    garbage.write_bytes(bytes(range(256)) * 4)
    empty = tmp_path / "empty.o"
    empty.write_bytes(b"")
    _one_error_line(capsys, ["--case", "/nonexistent/case"], "/nonexistent/case")
    _one_error_line(capsys, [str(tmp_path / "missing.o")], "missing.o")
    _one_error_line(capsys, [str(garbage)], str(garbage))
    _one_error_line(capsys, [str(empty)], str(empty))
    # an object for another target: named, up front (not an "error" in every cell)
    _one_error_line(capsys, ["--target", "elf-x64", os.path.join(ldxr, "main.o")],
                    "main.o", "elf-aarch64", "not elf-x64")
    _one_error_line(capsys, [os.path.join(ldxr, "main.o"), rx], rx, "macho-x64")
    _one_error_line(capsys, ["--target", "bogus", os.path.join(ldxr, "main.o")], "bogus")
    _one_error_line(capsys, ["x.o", "--strategies", "bogus"], "bogus")
    _one_error_line(capsys, ["x.o", "--host", "windows"], "windows")
    # the same link error under every combination: bad input (after the table)
    assert cli_main(["repro", "-q", os.path.join(ldxr, "main.o")]) == 2
    assert "undefined symbol 'atomic_add'" in capsys.readouterr().err
    # a reproducer or a scenario that is not one
    _one_error_line(capsys, ["--replay", str(garbage)], str(garbage))
    _one_error_line(capsys, ["--replay", str(empty)], str(empty))
    bad = tmp_path / "bad.json"
    for text in ('{"format": "kitemu-repro/1"}', '[1, 2]',
                 '{"format": "kitemu-repro/1", "target": "elf-x64", '
                 '"objects": [{"name": "a.o", "data": "!!"}]}'):
        bad.write_text(text)
        _one_error_line(capsys, ["--replay", str(bad)], str(bad))
    for text in ("[]", '[{"op": "fly"}]', '[{"op": "write_code", "chunk": "c", "hex": "zz"}]',
                 '[{"op": "call", "symbol": "f", "args": ["nope"]}]', '[{"op": "commit_code"}]'):
        bad.write_text(text)
        _one_error_line(capsys, ["--scenario", str(bad), os.path.join(ldxr, "atomic.o")],
                        str(bad))
    _one_error_line(capsys, ["--scenario", str(garbage), os.path.join(ldxr, "atomic.o")],
                    str(garbage))
    _one_error_line(capsys, ["--case", os.path.join(REGRESSIONS, "misaligned_ldxr"),
                             "--target", "elf-x64"], "--target")


def test_kitemu_run_crash_output_has_disassembly(capsys):
    d = os.path.join(REGRESSIONS, "asm_reloc_to_rodata", "obj")
    assert cli_main(["run", os.path.join(d, "calib.o"), os.path.join(d, "main.o")]) == 128 + 7
    err = capsys.readouterr().err.splitlines()
    # the one-paragraph summary first, unchanged; then the new lines
    assert err[0].startswith("kitemu: program crashed. Bus error: SIGBUS ")
    assert " on macho-arm64 (macos host model)" in err[0]
    assert "<_record_sample+0x10>; J-stage entry main; that address was produced by" in err[0]
    assert err[1] == "  generation 0"
    assert err[2] == "  disassembly around pc 0x10000038:"
    marked = [line for line in err[3:] if line.lstrip().startswith("=>")]
    assert len(marked) == 1 and "str" in marked[0] and "<_record_sample+0x10>" in marked[0]


# -- minimization ------------------------------------------------------------------------

def test_minimize_padded_case_to_a_minimal_reproducer(tmp_path):
    c = case("asm_reloc_to_rodata")
    spec = c.spec("padded")
    program = c.program("padded")
    first = run_once(program, spec["host"], spec["strategy"], timeout=10)
    red = minimize(program, spec["host"], spec["strategy"])
    f = red.outcome.fault
    assert f is not None and fault_key(f) == fault_key(first.fault)
    assert (f.signal, f.si_code, f.stage, f.pc_symbol, f.address_symbol) == \
        ("SIGBUS", "BUS_ADRALN", "entry main",
         "_record_sample+0x10", "_sample_limits")
    # what is left: main (with the inline-asm routine) and calib's read-only table
    assert red.kept() == ["obj/main-padded.o", "obj/calib.o"]
    removed = red.removed_lines()
    assert "archive libnoise.a: extracted libnoise.a(fmt.o); never pulled: unused.o" in removed
    assert "removed object noise.o" in removed
    assert "removed archive member libnoise.a(fmt.o)" in removed
    assert "removed section calib.o: __DATA,__data" in removed
    assert "removed section calib.o: __TEXT,__text" in removed
    assert any(r.startswith("trapped function main-padded.o: _unused_fold") for r in removed)
    assert any(r.startswith("trapped function main-padded.o: _fill_padding") for r in removed)
    assert "dropped relocations main-padded.o: __TEXT,__text -> _banner + 0x0" in removed
    # the relocations that form the bad address are never dropped
    assert not any("_sample_limits" in r for r in removed)
    main = apply_edits(program.objects, red.edits, program.target.arch)[0]
    assert main.path == "obj/main-padded.o"
    text = next(s for s in main.sections.values() if s.name == "__TEXT,__text")
    assert sorted(r.name for r in text.relocations
                  if main.symbols[r.symbol].name == "_sample_limits") == \
        ["ARM64_RELOC_PAGE21", "ARM64_RELOC_PAGEOFF12"]

    # the reproducer on disk, replayed
    written = write_reduction(red, str(tmp_path / "min"))
    assert written[0].endswith("reduced.json")
    meta = json.loads((tmp_path / "min" / "reduced.json").read_text())
    assert meta["fault"]["signal"] == "SIGBUS" and meta["host"] == "macos"
    assert [o["name"] for o in meta["objects"]] == ["obj/main-padded.o", "obj/calib.o"]
    replayed, meta2 = load_replay(str(tmp_path / "min" / "reduced.json"))
    again = run_once(replayed, "macos", "dual-map", timeout=10)
    assert report_fields(again, "macho-arm64") == meta2["fault"]
    expected = c.expected_report()
    got = report_fields(again, "macho-arm64")
    for key in ("signal", "si_code", "kind", "access", "address", "j-stage", "pc"):
        assert got[key] == expected[key]


def test_cli_minimize_and_replay(tmp_path, capsys):
    out_dir = tmp_path / "min"
    assert cli_main(["repro", "--case", os.path.join(REGRESSIONS, "asm_reloc_to_rodata"),
                     "--variant", "padded", "--minimize", "-o", str(out_dir), "-q"]) == 0
    out = capsys.readouterr().out
    si_code = "BUS_ADRALN"
    assert "minimized in" in out and f"same fault SIGBUS {si_code} in J-stage entry main" in out
    assert "  removed object noise.o" in out and "  trapped function main-padded.o: _unused_fold" in out
    assert "kept: obj/main-padded.o (edited), obj/calib.o (edited)" in out
    assert cli_main(["repro", "--replay", str(out_dir / "reduced.json")]) == 0
    out = capsys.readouterr().out
    assert "expected report: matches" in out
    rows = _table_rows(out)
    assert rows["macos", "dual-map"].startswith(f"crash SIGBUS {si_code}")
    assert rows["linux", "mprotect"].startswith("crash SIGSEGV SEGV_ACCERR")


def test_minimize_keeps_unmodified_objects_as_files(tmp_path):
    c = case("misaligned_ldxr")
    red = minimize(c.program(), "macos", "mprotect")
    assert red.outcome.fault.pc_symbol == "atomic_add"
    assert "obj/atomic.o" in red.kept() and "obj/atomic.o" not in red.modified()
    written = write_reduction(red, str(tmp_path))
    atomic = tmp_path / "atomic.o"
    assert str(atomic) in written
    assert atomic.read_bytes() == open(os.path.join(c.dir, "obj", "atomic.o"), "rb").read()


def test_minimize_a_scenario_case():
    c = case("jit_write_mode_call")
    red = minimize(c.program(), "macos", "jit-toggle")
    f = red.outcome.fault
    assert (f.signal, f.stage, f.pc_symbol) == ("SIGBUS", "call code_checksum while writing gen1",
                                                "_code_checksum")
    # code_checksum's printf is irrelevant to the crash
    assert "dropped relocations jit.o: __TEXT,__text -> _printf + 0x0" in red.removed_lines()


def test_minimize_refuses_a_clean_program():
    from kitemu.errors import KitemuError
    c = case("misaligned_ldxr")
    with pytest.raises(KitemuError, match="nothing to minimize"):
        minimize(c.program("fixed"), "linux", "mprotect")


# -- the edits -----------------------------------------------------------------------------

def test_edits_never_modify_their_inputs_and_keep_references_sound():
    c = case("asm_reloc_to_rodata")
    prog = c.program()
    calib, main = prog.objects
    before = [(s.data, list(s.relocations)) for s in calib.sections.values()]
    roots = prog.roots()
    was = defined_names(prog.objects)
    secs = {e.label: e for e in units("section", prog.objects, roots, set()) if e.obj == calib.path}
    # __TEXT,__const holds _sample_limits, referenced by main's inline asm
    cut = apply_edits(prog.objects, [secs["__TEXT,__const"]], prog.target.arch)
    assert not refs_ok(cut, was, roots)
    # dropping main's group against _sample_limits first makes it removable
    group = next(e for e in units("relocs", prog.objects, roots, set())
                 if e.obj == main.path and "_sample_limits" in e.label)
    calib_refs = [e for e in units("relocs", prog.objects, roots, set())
                  if e.obj == calib.path and "_sample_limits" in e.label]
    cut = apply_edits(prog.objects, [secs["__TEXT,__const"], group, *calib_refs],
                      prog.target.arch)
    assert refs_ok(cut, was, roots)
    assert [(s.data, list(s.relocations)) for s in calib.sections.values()] == before
    # the entry's function is never a candidate for trapping
    assert "_main" not in {e.label for e in units("function", prog.objects, roots, set())}
    # an edited object keeps its removed section's globals out of sight
    removed = apply_edits(prog.objects, [Edit("section", calib.path, secs["__TEXT,__const"].section)],
                          prog.target.arch)[0]
    assert "_sample_limits" not in defined_names([removed])


@pytest.mark.parametrize("arch,before,after", [
    ("aarch64", (0x94000010).to_bytes(4, "little"), (0xD503201F).to_bytes(4, "little")),  # bl -> nop
    ("aarch64", (0x14000010).to_bytes(4, "little"), (0xD65F03C0).to_bytes(4, "little")),  # b -> ret
    ("x64", b"\xe8\x00\x00\x00\x00", b"\x0f\x1f\x44\x00\x00"),                             # call -> nop5
    ("x64", b"\xe9\x00\x00\x00\x00", b"\xc3\x0f\x1f\x40\x00"),                             # jmp -> ret
])
def test_dropped_calls_become_no_ops(arch, before, after):
    from types import SimpleNamespace
    data = bytearray(before)
    rel = SimpleNamespace(offset=1 if arch == "x64" else 0, spec=SimpleNamespace(name="?"))
    _neutralize(arch, data, rel)
    assert bytes(data) == after


def test_dropped_rv64_call_pair_becomes_no_ops():
    from types import SimpleNamespace
    call = rv64.insn(rv64.auipc(1, 0)) + rv64.insn(rv64.jalr(1, 1, 0))
    tail = rv64.insn(rv64.auipc(6, 0)) + rv64.insn(rv64.jalr(0, 6, 0))
    for code, want in ((call, rv64.insn(rv64.NOP) * 2),
                       (tail, rv64.insn(rv64.RET) + rv64.insn(rv64.NOP))):
        data = bytearray(code)
        _neutralize("rv64", data, SimpleNamespace(offset=0, spec=SimpleNamespace(name="R_RISCV_CALL")))
        assert bytes(data) == want


# -- fault report details ---------------------------------------------------------------------

def _misaligned_object(target, code):
    """``main`` (the code) and a 32-byte ``cell`` in .data."""
    b = ObjBuilder(target, "mis.o")
    t = b.section(".text", SectionKind.TEXT, code)
    d = b.section(".data", SectionKind.DATA, bytes(32), align=16)
    b.symbol("main", t, 0, size=len(code))
    b.symbol("cell", d, 0, type=SymbolType.OBJECT, size=32)
    return b, t


def test_rv64_exception_pc_is_the_faulting_instruction():
    """unicorn's RISC-V interrupt path reports the PC past the faulting
    AMO; the report names the AMO itself, and its address."""
    b, t = _misaligned_object("elf-rv64", b"".join(rv64.insn(w) for w in (
        rv64.auipc(10, 0), rv64.addi(10, 10, 0), rv64.addi(10, 10, 3),
        0x00C5352F,                                      # amoadd.d a0, a2, (a0)
        rv64.RET)))
    b.reloc(t, 0, "R_RISCV_PCREL_HI20", "cell", 0)
    label = b.symbol(".Lpcrel_hi0", t, 0, binding=Binding.LOCAL)
    b.reloc(t, 4, "R_RISCV_PCREL_LO12_I", label, 0)
    proc = JitProcess("elf-rv64", host_os="macos")
    proc.link([b.build()])
    f = proc.run().fault
    assert (f.signal, f.si_code) == ("SIGBUS", "BUS_ADRALN")
    assert f.pc_symbol == "main+0xc" and f.address_symbol == "cell+0x3" and f.access == "write"
    assert "misaligned access (alignment fault)" in f.render()
    assert any(line.startswith("=>") and "amoadd.d" in line for line in f.disassembly)


def test_aarch64_alignment_fault_address_from_the_instruction():
    from keystone import KS_ARCH_ARM64, KS_MODE_LITTLE_ENDIAN, Ks
    code = bytes(Ks(KS_ARCH_ARM64, KS_MODE_LITTLE_ENDIAN).asm(
        "adrp x8, #0; add x8, x8, #0; add x9, x8, #5; ldaxr x1, [x9]; ret")[0])
    b, t = _misaligned_object("elf-aarch64", code)
    b.reloc(t, 0, "R_AARCH64_ADR_PREL_PG_HI21", "cell", 0)
    b.reloc(t, 4, "R_AARCH64_ADD_ABS_LO12_NC", "cell", 0)
    proc = JitProcess("elf-aarch64")
    proc.link([b.build()])
    f = proc.run().fault
    assert (f.signal, f.si_code, f.access) == ("SIGBUS", "BUS_ADRALN", "read")
    assert f.pc_symbol == "main+0xc" and f.address == proc.lookup("cell") + 5


def test_verbose_render_keeps_the_summary_paragraph():
    c = case("misaligned_ldxr")
    f = run_once(c.program(), "linux", "mprotect", timeout=10).fault
    short, verbose = f.render(), f.render(verbose=True)
    assert "\n" not in short and verbose.startswith(short + "\n  generation 0\n")
    assert "disassembly around pc" in verbose


def test_format_table_lists_errors_too():
    from kitemu.repro.run import Outcome
    lines = format_table([Outcome("linux", "mprotect", exit_code=0),
                          Outcome("macos", "dual-map", error="undefined symbol 'x'")])
    assert lines[2].split() == ["linux", "mprotect", "clean", "exit", "0"]
    assert lines[3].split()[:3] == ["macos", "dual-map", "error"]


def test_parse_report_ignores_comments():
    assert parse_report("# why\nsignal: SIGBUS\n\npc: f+0x4\n") == {"signal": "SIGBUS", "pc": "f+0x4"}


# -- the committed objects --------------------------------------------------------------------

@pytest.mark.skipif(not all(shutil.which(t) for t in ("clang", "llvm-ar")),
                    reason="needs clang and llvm-ar")
def test_committed_objects_are_what_build_py_builds():
    proc = subprocess.run([sys.executable, os.path.join(REGRESSIONS, "build.py"), "--check"],
                          capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "all objects match" in proc.stdout


def test_minimize_refuses_a_time_limit():
    """A program that runs out of time has no fault to keep: minimizing it
    would run every trial to its limit."""
    from kitemu.errors import KitemuError
    from kitemu.repro import Program
    from kitemu.targets import get_target
    b = ObjBuilder("elf-x64", "loop.o")
    t = b.section(".text", SectionKind.TEXT, b"\xeb\xfe")          # jmp .
    b.symbol("main", t, 0, size=2)
    program = Program(get_target("elf-x64"), [b.build()])
    with pytest.raises(KitemuError, match="ran out of time"):
        minimize(program, "linux", "mprotect", timeout=0.2)


def test_reproducer_file_names():
    from kitemu.repro.reduce import _file_name
    assert _file_name("obj/main.o") == "main.o"
    assert _file_name("obj/libnoise.a(fmt.o)") == "libnoise.a-fmt.o"
    # a compiled C input is an object, never written under its source's name
    assert _file_name("dir/prog.c") == "prog.o" and _file_name("<stdin>") == "stdin.o"


def test_reproducer_keeps_objects_with_the_same_base_name(tmp_path):
    from kitemu.repro.reduce import Reduction
    from kitemu.repro.run import Outcome
    red = Reduction("elf-x64", "linux", "mprotect", "main", [], None, ("kind",),
                    [("a/main.o", b"first"), ("b/main.o", b"second")], [],
                    Outcome("linux", "mprotect", exit_code=0))
    written = write_reduction(red, str(tmp_path))
    assert sorted(open(p, "rb").read() for p in written[1:]) == [b"first", b"second"]
