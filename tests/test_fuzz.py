"""kitemu fuzz: relocation cases checked against the psABI formulas and ld.lld.

* the fuzz properties (kitemu.fuzz.check) at a small budget on every target,
  and the ld.lld differential on the ELF targets where ld.lld is installed;
* the committed replay files under tests/data/fuzz/: one per kitemu bug the
  fuzzer found, each recorded on the unfixed linker, must now pass; the
  synthetic one (a truncating fixup, recorded as a mutation) must still be
  reported as failing by ``kitemu fuzz --replay``;
* --shard splits the work items disjointly and completely;
* the fuzzer can fail: with one fixup's encode monkeypatched to truncate it
  reports the failure, writes a replay file, and a shared example database
  replays that failure first on another run;
* the ELF writer's objects read back through kitemu's own ELF reader;
* the fuzzer's field decoders are independent of kitemu's: they agree with
  its encoders, and catch an encoder and decoder that agree on a wrong
  layout;
* a far branch with an addend reaches S + A through its stub.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from kitemu.cli import main as kitemu_main
from kitemu.errors import ConfigError
from kitemu.fuzz import fields, oracle
from kitemu.fuzz.check import check_case
from kitemu.fuzz.elfwriter import write_elf
from kitemu.fuzz.isa import shapes
from kitemu.fuzz.model import (FUZZ_TARGETS, CaseObject, CaseReloc, CaseSection, CaseSymbol,
                               RelocCase, catalogue, null_symbol)
from kitemu.fuzz.runner import (Report, WorkItem, load_replay, open_database, parse_shard, replay,
                                run, run_item, shard, work_items)
from kitemu.fuzz.strategies import reloc_cases
from kitemu.loader import load_object
from kitemu.targets import x64

REPLAYS = sorted((Path(__file__).resolve().parent / "data" / "fuzz").glob("*.json"))
HAS_LLD = shutil.which("ld.lld") is not None
ELF = [t for t in FUZZ_TARGETS if t.startswith("elf")]

FAST = settings(max_examples=150, deadline=None, database=None, derandomize=True,
                suppress_health_check=list(HealthCheck))


def _assert_ok(res):
    assert not res.failures, f"{res.summary()}\n{res.case.describe()}"


# -- tables ---------------------------------------------------------------------

@pytest.mark.parametrize("target", FUZZ_TARGETS)
def test_every_kind_has_a_rule_and_a_shape(target):
    cat = catalogue(target)
    assert set(cat) == set(oracle.RULES[target])
    for label, kind in cat.items():
        assert shapes(target, label), label
        assert oracle.rule(target, label).size == kind.size, label


# -- the properties ---------------------------------------------------------------

@pytest.mark.parametrize("target", FUZZ_TARGETS)
def test_properties_hold(target):
    @FAST
    @given(reloc_cases(target))
    def prop(case):
        _assert_ok(check_case(case))
    prop()


@pytest.mark.skipif(not HAS_LLD, reason="ld.lld is not installed (apt-get install lld)")
@pytest.mark.parametrize("target", ELF)
def test_lld_differential(target):
    compared = set()

    @settings(FAST, max_examples=60)
    @given(reloc_cases(target, bad=0))
    def prop(case):
        res = check_case(case, lld=True)
        _assert_ok(res)
        if res.lld is not None:
            compared.update(res.lld.compared)
    prop()
    assert compared, "the lld differential compared nothing"


def test_legitimate_composites_link():
    """RISC-V ADD/SUB and SET6/SUB6 at one place, RELAX on top: no overlap."""
    sec = CaseSection(1, ".data.site", "data", 4, 5, bytes.fromhex("0000000041"),
                      [CaseReloc(0, "R_RISCV_ADD32", 1), CaseReloc(0, "R_RISCV_SUB32", 2),
                       CaseReloc(4, "R_RISCV_SET6", 1), CaseReloc(4, "R_RISCV_SUB6", 2),
                       CaseReloc(0, "R_RISCV_RELAX", 1)])
    text = CaseSection(2, ".text.t", "text", 4, 64, bytes(64))
    obj = CaseObject("site.o", [sec, text], [null_symbol(),
                                             CaseSymbol("hi", "local", "func", "section", 2, 40),
                                             CaseSymbol("lo", "local", "func", "section", 2, 4)])
    res = check_case(RelocCase("elf-rv64", 0x1000_0000, 64 << 20, [obj]), lld=HAS_LLD)
    _assert_ok(res)
    assert res.outcome == "linked"
    assert res.verified["R_RISCV_SUB32"] == 1 and res.verified["R_RISCV_SUB6"] == 1


def _one_reloc_case(target, label, code, offset, addend, sym):
    sec = CaseSection(1, ".text.site", "text", 4, len(code), code,
                      [CaseReloc(offset, label, 1, addend)])
    return RelocCase(target, 0x1000_0000, 64 << 20,
                     [CaseObject("site.o", [sec], [null_symbol(), sym])])


@pytest.mark.parametrize("target", FUZZ_TARGETS)
def test_field_decoders_agree_with_kitemus_encoders(target):
    """The fuzzer's decoders (kitemu.fuzz.fields, from the ISA manuals) and
    kitemu's encoders are two implementations: what one writes, the other
    reads back as the kept value."""
    import random
    rnd = random.Random(target)
    for label, kind in catalogue(target).items():
        r = oracle.rule(target, label)
        if not kind.size or r.additive:
            continue
        for _ in range(200):
            lo = r.lo if r.checked else -(1 << 40)
            hi = r.hi if r.checked else 1 << 40
            v = rnd.randint(lo, hi)
            v -= v % r.align
            if not r.in_range(v):
                continue
            buf = bytearray(rnd.randbytes(kind.size))
            kind.fixup.encode(buf, 0, v)
            assert fields.decode(target, label, buf) == fields.kept(target, label, v), (label, v)


def test_a_consistently_wrong_encoder_and_decoder_are_caught(monkeypatch):
    """A field written and read back with the same wrong layout (big-endian
    here) passes a check that decodes with kitemu's own decoder; the
    fuzzer's decoder is independent of it."""
    fx = x64.PCREL32
    monkeypatch.setattr(fx, "encode_field", lambda buf, off, v: buf.__setitem__(
        slice(off, off + 4), struct.pack(">i", v)), raising=False)
    monkeypatch.setattr(fx, "decode_field", lambda buf, off: struct.unpack_from(">i", buf, off)[0],
                        raising=False)
    text = CaseSection(2, ".text.t", "text", 16, 0x40, bytes(0x40))
    case = _one_reloc_case("elf-x64", "R_X86_64_PC32", b"\xe8" + bytes(4), 1, 0x123,
                           CaseSymbol("t", "local", "func", "section", 2, 0))
    case.objects[0].sections.append(text)
    res = check_case(case)
    assert res.outcome == "linked" and any(f.prop == "value" for f in res.failures), res.summary()


FAR_BRANCHES = [
    ("elf-aarch64", "R_AARCH64_CALL26", bytes.fromhex("00000094"), 0, 0x100),
    ("elf-x64", "R_X86_64_PLT32", b"\xe8" + bytes(4), 1, 0x100 - 4),
    ("elf-rv64", "R_RISCV_CALL", bytes.fromhex("97000000e7800000"), 0, 0x100),
]


def _far_branch_case(target, label, code, offset, addend):
    return _one_reloc_case(target, label, code, offset, addend,
                           CaseSymbol("far", "global", "notype", "abs", None, 0x7000_0000_0000))


@pytest.mark.parametrize("target,label,code,offset,addend", FAR_BRANCHES)
def test_far_branch_with_an_addend_reaches_s_plus_a(target, label, code, offset, addend):
    """A far branch to S + A goes through a stub to S + A (or is rejected)."""
    _assert_ok(check_case(_far_branch_case(target, label, code, offset, addend)))


# -- replay files -----------------------------------------------------------------

@pytest.mark.parametrize("path", REPLAYS, ids=[p.stem for p in REPLAYS])
def test_replay_file(path):
    case, doc = load_replay(str(path))
    assert doc["failures"], "a replay file records the failure it was written for"
    res, _ = replay(str(path), lld=HAS_LLD)
    if path.stem.startswith("synthetic"):
        assert doc["mutation"], "the synthetic case fails only under its recorded mutation"
        assert {f.prop for f in res.failures} >= {doc["property"]}
    else:
        _assert_ok(res)     # the bug this file was recorded for is fixed


def test_replay_cli_reports_the_synthetic_failure(capsys):
    path = next(p for p in REPLAYS if p.stem.startswith("synthetic"))
    assert kitemu_main(["fuzz", "--replay", str(path), "--no-lld"]) == 1
    out = capsys.readouterr().out
    assert "FAIL [range]" in out and "x64.Data32S:truncate" in out


def test_replay_cli_passes_a_fixed_finding(capsys):
    path = next(p for p in REPLAYS if p.stem == "overlapping-relocations")
    assert kitemu_main(["fuzz", "--replay", str(path), "--no-lld"]) == 0
    assert "all properties hold" in capsys.readouterr().out


def test_replay_files_cover_every_fixed_finding():
    stems = {p.stem for p in REPLAYS}
    assert {"empty-section-address", "reloc-past-section-end", "overlapping-relocations",
            "range-error-before-islands", "synthetic-truncating-fixup",
            "island-addend-rv64-jal", "island-addend-macho-x64-branch",
            "island-addend-macho-arm64-branch26"} <= stems


# -- sharding, seeds, databases -------------------------------------------------------

@pytest.mark.parametrize("n", [1, 2, 3, 7])
def test_shards_are_disjoint_and_complete(n):
    items = work_items()
    parts = [shard(items, i, n) for i in range(n)]
    union = [it for part in parts for it in part]
    assert sorted(union, key=lambda w: w.key) == sorted(items, key=lambda w: w.key)
    assert len(set(union)) == len(union)                     # disjoint
    assert parts == [shard(work_items(), i, n) for i in range(n)]    # deterministic
    assert len({len(p) for p in parts}) <= 2                 # balanced


def test_work_items_cover_every_target_and_kind():
    items = work_items()
    assert {(w.target, w.kind) for w in items} == {(t, k) for t in FUZZ_TARGETS for k in catalogue(t)}


def test_shard_cli_lists_its_items(capsys):
    seen = []
    for i in range(3):
        assert kitemu_main(["fuzz", "--list", "--shard", f"{i}/3"]) == 0
        seen += capsys.readouterr().out.split()
    assert sorted(seen) == sorted(w.key for w in work_items())


@pytest.mark.parametrize("bad", ["3", "2/2", "-1/2", "a/b", "1/0"])
def test_bad_shard_spec(bad):
    with pytest.raises(ConfigError):
        parse_shard(bad)


def test_redis_database_needs_the_redis_package():
    if importlib.util.find_spec("redis") is not None:
        pytest.skip("the redis package is installed")
    with pytest.raises(ConfigError, match="'redis'"):
        open_database("redis://localhost:6379")


# -- the fuzzer can fail ------------------------------------------------------------

def _truncate(monkeypatch):
    """x64.Data32S (R_X86_64_32S) without its range check: it keeps the low bits."""
    monkeypatch.setattr(x64.DATA32S, "encode",
                        lambda buf, off, value: x64.DATA32S.encode_field(buf, off, value),
                        raising=False)


def test_mutated_kitemu_is_caught(monkeypatch, tmp_path):
    _truncate(monkeypatch)
    item = WorkItem("elf-x64", "R_X86_64_32S")
    report = Report()
    found = run_item(item, report, examples=60, seed=1, save_dir=str(tmp_path), echo=lambda s: None)
    assert found is not None and found.path, "the fuzzer missed a truncating fixup"
    assert any(f.prop == "range" for f in found.result.failures)
    doc = json.loads(Path(found.path).read_text())
    assert doc["target"] == "elf-x64" and doc["property"] == "range"
    res, _ = replay(found.path, lld=False)                 # still broken: still failing
    assert not res.ok
    monkeypatch.undo()                                     # kitemu fixed: the case passes
    res, _ = replay(found.path, lld=False)
    _assert_ok(res)


def test_failure_replays_from_a_shared_database(monkeypatch, tmp_path):
    """A failure found by one worker is the first example every other worker
    (another seed, one example) runs when they share the database."""
    _truncate(monkeypatch)
    db = str(tmp_path / "db")
    item = WorkItem("elf-x64", "R_X86_64_32S")
    first = run_item(item, Report(), examples=60, seed=1, database=open_database(db),
                     save_dir=str(tmp_path / "a"), echo=lambda s: None)
    assert first is not None
    again = run_item(item, Report(), examples=1, seed=12345, database=open_database(db),
                     save_dir=str(tmp_path / "b"), echo=lambda s: None)
    assert again is not None, "the shared database did not replay the failure"


def test_cli_mutate_fails_and_writes_a_replayable_file(tmp_path, capsys):
    argv = ["fuzz", "--target", "elf-x64", "--kind", "R_X86_64_32S", "--examples", "60",
            "--seed", "1", "--no-lld", "--mutate", "x64.Data32S:truncate", "--save-dir", str(tmp_path)]
    assert kitemu_main(argv) == 1
    out = capsys.readouterr().out
    assert "replay file:" in out and "ex/s" in out
    (path,) = tmp_path.glob("*.json")
    assert json.loads(path.read_text())["mutation"] == "x64.Data32S:truncate"
    assert kitemu_main(["fuzz", "--replay", str(path), "--no-lld"]) == 1


def test_cli_run_passes_and_prints_rates(capsys):
    assert kitemu_main(["fuzz", "--target", "macho-arm64", "elf-rv64", "--kind",
                        "ARM64_RELOC_PAGE21", "R_RISCV_PCREL_HI20", "--examples", "5", "--seed", "3",
                        "--no-lld", "--save-dir", "/nonexistent/never-written"]) == 0
    out = capsys.readouterr().out
    assert "macho-arm64" in out and "elf-rv64" in out and "ex/s" in out
    assert "all properties held" in out


def test_seconds_budget_stops():
    import time
    t0 = time.monotonic()
    report = run(["macho-x64"], ["X86_64_RELOC_SIGNED"], seconds=1.0, seed=5, batch=3,
                 echo=lambda s: None)
    assert report.ok and report.stats["macho-x64"].examples >= 3
    assert time.monotonic() - t0 < 20


# -- the ELF writer ---------------------------------------------------------------

@pytest.mark.parametrize("target", ELF)
def test_elf_writer_reads_back(target):
    @settings(FAST, max_examples=20)
    @given(reloc_cases(target, bad=0))
    def prop(case):
        for oi, want in enumerate(case.to_objects()):
            got = load_object(want.path, write_elf(case, oi))
            assert [(s.name, s.kind, s.align, s.size, s.data) for s in got.sections.values()] == \
                   [(s.name, s.kind, s.align, s.size, s.data) for s in want.sections.values()]

            def sym(o, i):
                s = o.symbols[i]
                return (s.section if s.type.value == "section" else s.name, s.place, s.value,
                        s.binding)
            for a, b in zip(got.sections.values(), want.sections.values()):
                assert [(r.offset, r.type, sym(got, r.symbol), r.addend) for r in a.relocations] == \
                       [(r.offset, r.type, sym(want, r.symbol), r.addend) for r in b.relocations]
    prop()
