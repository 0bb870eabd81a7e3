"""`kitemu parity`: the matrix, its reports, and that a wrong expectation
fails with a readable diff."""

import json
import os
import shutil
import xml.etree.ElementTree as ET

from kitemu.cli import main as cli_main

from helpers import CORPUS


def parity(*args):
    return cli_main(["parity", *args])


def test_subset_matrix_passes_and_reports(tmp_path, capsys):
    js, junit = tmp_path / "p.json", tmp_path / "p.xml"
    code = parity("--cases", "hello,bank3", "--targets", "elf-x64,elf-rv64,macho-arm64",
                  "--kinds", "o,a,cli", "--backends", "emulated", "--json", str(js),
                  "--junit", str(junit))
    out = capsys.readouterr().out
    assert code == 0, out
    report = json.loads(js.read_text())
    cells = report["cells"]
    assert len(cells) == 2 * 3 * 3
    assert all(c["status"] == "pass" for c in cells)
    assert {c["kind"] for c in cells} == {"o", "a", "cli"}
    assert report["disagreements"] == []
    suites = ET.parse(junit).getroot()
    assert suites.get("tests") == "18" and suites.get("failures") == "0"
    assert "18 passed, 0 failed, 0 skipped" in out
    # the table has one row per case x target
    assert sum(1 for line in out.splitlines() if line.startswith(("hello ", "bank3 "))) == 6


def test_unrunnable_combinations_are_skipped_with_a_reason(capsys):
    code = parity("--cases", "hello", "--targets", "macho-x64", "--kinds", "o",
                  "--backends", "emulated,aot")
    out = capsys.readouterr().out
    assert code == 0
    assert "o/aot: the AOT reference links ELF only" in out
    assert "1 passed, 0 failed, 1 skipped" in out


def broken_corpus(tmp_path, case="hello"):
    """A copy of the corpus (one case) whose expected output is wrong."""
    root = tmp_path / "corpus"
    shutil.copytree(os.path.join(CORPUS, case), root / case)
    with open(os.path.join(CORPUS, "obj", "manifest.json")) as f:
        manifest = [e for e in json.load(f) if e["case"] == case]
    for e in manifest:
        for rel in e["objects"] + ([e["archive"]] if "archive" in e else []):
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(os.path.join(CORPUS, rel), root / rel)
    (root / "obj").mkdir(exist_ok=True)
    (root / "obj" / "manifest.json").write_text(json.dumps(manifest))
    exp = root / case / "expected.stdout"
    exp.write_bytes(exp.read_bytes().replace(b"Hello, kitemu!", b"Hello, world!", 1))
    return root


def test_a_wrong_expectation_fails_with_a_readable_diff(tmp_path, capsys):
    root = broken_corpus(tmp_path)
    code = parity("--corpus-dir", str(root), "--targets", "elf-aarch64", "--kinds", "o",
                  "--backends", "emulated")
    out = capsys.readouterr().out
    assert code == 1
    assert "FAIL hello / elf-aarch64 / o / emulated" in out
    assert "-Hello, world!" in out and "+Hello, kitemu!" in out
    assert "0 passed, 1 failed" in out


def test_parallel_run_gives_the_same_cells(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    args = ["--cases", "recursion,ptr_tables", "--targets", "elf-x64,macho-x64", "--kinds", "o,a",
            "--backends", "emulated"]
    assert parity(*args, "--json", str(a)) == 0
    assert parity(*args, "-j", "2", "--json", str(b)) == 0

    def key(path):
        return sorted((c["case"], c["target"], c["kind"], c["backend"], c["status"], c["stdout"])
                      for c in json.loads(path.read_text())["cells"])
    assert key(a) == key(b)
