"""The benchmarks run and report what they promise (structure only: timing
is never asserted)."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


def _module(name: str):
    spec = importlib.util.spec_from_file_location(f"kitemu_bench_{name}", BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def append_bench():
    return _module("append")


def test_append_benchmark_reports_cost_and_memory(append_bench, capsys):
    targets = ("elf-x64", "macho-arm64")
    sizes = (1, append_bench.FRESH_MAX + 2)       # a fresh-image size and a grown one
    out = append_bench.run(targets=targets, sizes=sizes, samples=2, checkpoints=(4, 8),
                           profile=False)
    text = capsys.readouterr().out
    assert "== append cost vs image size" in text
    assert "== memory of 8 small appends on elf-x64" in text
    assert set(out["cost"]) == set(targets)
    for target in targets:
        assert set(out["cost"][target]) == {"session", "link"}
        for path in ("session", "link"):
            fig = out["cost"][target][path]
            assert set(fig["append_us"]) == set(sizes)
            assert all(v > 0 for v in fig["append_us"].values())
            assert fig["first_link_us"] > 0 and fig["ratio"] > 0 and fig["vs_first_link"] > 0
        assert text.count(f"\n{target:<12} ") == 2
    rows = out["memory"]["rows"]
    assert [r["appends"] for r in rows] == [4, 8]
    for r in rows:
        assert set(r) == {"appends", "heap_per_append", "heap_interval_per_append",
                          "committed_per_append", "used_per_append", "chunks", "uc_regions",
                          "seconds"}
        assert r["chunks"] >= 2 and r["uc_regions"] >= r["chunks"]
    assert out["memory"]["input_object_bytes"] > 0
    assert out["memory"]["segment_bytes_per_append"] > 0


@pytest.mark.parametrize("target", ["elf-x64", "elf-aarch64", "elf-rv64", "macho-x64",
                                    "macho-arm64"])
def test_append_benchmark_objects_link_and_run(append_bench, target):
    """The in-memory objects are what the benchmark says: each one's call
    into the previous object, PC-relative load and pointer word work."""
    from kitemu.session import Session
    with Session(target) as s:
        s.append(append_bench.make_object(target, 0, 0))
        append_bench.check_object(s, target, 0, 0)
        for k in (1, 2):
            s.append(append_bench.make_object(target, k, k - 1))
            append_bench.check_object(s, target, k, k - 1)


def test_append_profile_names_functions(append_bench, capsys):
    rows = append_bench.profile_append("elf-x64", 3, appends=2, top=3)
    assert len(rows) == 3 and all(":" in where for where, _, _ in rows)
    assert "profile: 2 Session.appends at 3 objects" in capsys.readouterr().out


def test_run_only_selects_benchmarks(monkeypatch, capsys):
    run = _module("run")
    with pytest.raises(SystemExit):
        run.main(["--only", "nope"])
    assert "unknown benchmark nope" in capsys.readouterr().err
    called = []
    monkeypatch.setattr(run, "append_benchmarks", lambda quick: called.append(quick))
    assert run.main(["--quick", "--only", "append"]) == 0
    assert called == [True]
    reloads = []
    monkeypatch.setattr(run, "reload_benchmarks", lambda quick: reloads.append(quick))
    assert run.main(["--only", "reload"]) == 0
    assert reloads == [False] and called == [True]


# -- hot reload (benchmarks/reload.py) ---------------------------------------------

needs_clang = pytest.mark.skipif(shutil.which("clang") is None, reason="needs clang")
RELOAD_TARGETS = ["elf-x64", "elf-aarch64", "elf-rv64", "macho-x64", "macho-arm64"]


@pytest.fixture(scope="module")
def reload_bench():
    return _module("reload")


@needs_clang
def test_reload_benchmark_reports_figures(reload_bench, capsys):
    targets = ("elf-x64", "macho-arm64")
    out = reload_bench.run(targets=targets, reloads=2, n=50, repeat=1)
    text = capsys.readouterr().out
    for title in ("== reload latency", "== per-call cost of the stable entry", "== hot loop"):
        assert title in text
    assert set(out) == set(targets)
    for target in targets:
        r = out[target]["reload"]
        assert r["reloads"] == 2
        # warm-up reloads + timed ones, each followed by a reference append
        assert r["bodies"] == 1 + 2 + 2 and r["generation"] == 2 * (2 + 2)
        for key in ("reload_us", "load_us", "abi_us", "dwarf_us", "append_us", "ratio",
                    "ratio_linking", "validate_us"):
            assert r[key] > 0, key
        assert 0 < r["dwarf_share"] < 1 and r["dwarf_us"] <= r["abi_us"]
        h = out[target]["loop"]
        assert h["n"] == 50 and h["loop_ratio"] > 0 and h["via_entry_ratio"] > 0
        assert text.count(f"\n{target:<12} ") == 3


@needs_clang
@pytest.mark.parametrize("target", RELOAD_TARGETS)
def test_stable_entry_adds_exactly_its_jump_instructions(reload_bench, target):
    """A correctness check, not timing: instruction counts are
    deterministic. One call through the stable entry executes exactly the
    entry's indirect jump more than a call of the body: 1 instruction on
    x86-64 (jmp *slot(%rip)), 3 on AArch64 (adrp/ldr/br) and RISC-V
    (auipc/ld/jr); so does every iteration of the same loop given the entry
    instead of the body. The counting hook is gone afterwards."""
    from kitemu.targets import get_target
    expected = {"x64": 1, "aarch64": 3, "rv64": 3}[get_target(target).arch_module]
    assert reload_bench.EXPECTED_EXTRA[get_target(target).arch_module] == expected
    s = reload_bench.new_session(target, reload_bench.build(target))
    try:
        uc = s.proc.machine.uc
        callbacks = dict(getattr(uc, "_callbacks", {}))
        c = reload_bench.call_costs(s, iterations=20)
        assert c["extra_per_call"] == expected
        assert c["extra_per_iteration"] == expected
        assert c["entry_call"] == c["body_call"] + expected
        assert dict(getattr(uc, "_callbacks", {})) == callbacks     # hook removed
        # and counting again (after the flush) gives the same figures
        assert reload_bench.call_costs(s, iterations=20) == c
    finally:
        s.free()
