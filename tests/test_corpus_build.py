"""Checks of the C corpus (corpus/): case layout, manifest and objects,
build determinism (needs clang) and the native oracle (needs gcc)."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

CORPUS = Path(__file__).resolve().parent.parent / "corpus"


def _load_build():
    spec = importlib.util.spec_from_file_location("kitemu_corpus_build",
                                                  CORPUS / "build.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


build = _load_build()

CASE_DIRS = build.case_dirs()
CASE_NAMES = [d.name for d in CASE_DIRS]
ALLOWED_INCLUDES = {"kitlibc.h", "stdarg.h", "stddef.h", "stdint.h", "stdbool.h"}


def _manifest() -> list[dict]:
    if not build.MANIFEST.exists():
        pytest.fail("corpus/obj/manifest.json is missing: run python corpus/build.py")
    with open(build.MANIFEST, encoding="utf-8") as f:
        return json.load(f)


# --------------------------------------------------------------------------
# (a) layout, case.json, manifest, objects


def test_enough_cases():
    assert len(CASE_DIRS) >= 14


@pytest.mark.parametrize("case_dir", CASE_DIRS, ids=CASE_NAMES)
def test_case_layout(case_dir: Path):
    assert (case_dir / "expected.stdout").is_file()
    assert list(case_dir.glob("*.c")), "a case needs at least one .c file"
    with open(case_dir / "case.json", encoding="utf-8") as f:
        meta = json.load(f)
    assert set(meta) >= {"exit", "args", "entry", "description", "features"}
    assert isinstance(meta["exit"], int) and 0 <= meta["exit"] <= 255
    assert isinstance(meta["args"], list)
    assert all(isinstance(a, str) for a in meta["args"])
    assert isinstance(meta["entry"], str) and meta["entry"].isidentifier()
    assert isinstance(meta["description"], str) and meta["description"]
    assert isinstance(meta["features"], list) and meta["features"]
    assert all(isinstance(x, str) and x for x in meta["features"])


@pytest.mark.parametrize("case_dir", CASE_DIRS, ids=CASE_NAMES)
def test_case_includes_only_kitlibc(case_dir: Path):
    for src in case_dir.glob("*.c"):
        for inc in re.findall(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]',
                              src.read_text(encoding="utf-8"), re.M):
            assert inc in ALLOWED_INCLUDES, f"{src.name} includes {inc}"


def test_manifest_lists_every_case_target_variant():
    manifest = _manifest()
    expected = {(c, t, v) for c in CASE_NAMES for t, info in build.TARGETS.items()
                for v in info["variants"]}
    seen = [(e["case"], e["target"], e["variant"]) for e in manifest]
    assert len(seen) == len(set(seen)), "duplicate manifest entries"
    assert set(seen) == expected


def test_manifest_entries_match_cases_and_objects_exist():
    cases = {c["name"]: c for c in build.load_cases()}
    for e in _manifest():
        case = cases[e["case"]]
        assert e["exit"] == case["exit"]
        assert e["args"] == case["args"]
        assert e["entry"] == case["entry"]
        assert e["flags"] == build.variant_flags(e["target"], e["variant"])
        assert e["objects"] == [build.object_rel(e["target"], e["variant"], e["case"], s)
                                for s in case["sources"]]
        for rel in e["objects"]:
            path = CORPUS / rel
            assert path.is_file(), f"missing object {rel}"
            head = path.read_bytes()[:20]
            if build.TARGETS[e["target"]]["format"] == "macho":
                assert head[:4] == b"\xcf\xfa\xed\xfe", f"{rel} is not Mach-O 64-bit LE"
                assert head[12] == 1, f"{rel} is not a relocatable object (MH_OBJECT)"
            else:
                assert head[:4] == b"\x7fELF"
                assert head[16] == 1, f"{rel} is not a relocatable object (ET_REL)"
        assert e["expected_stdout"] in (f"{e['case']}/expected.stdout",
                                        f"{e['case']}/expected.{build.TARGETS[e['target']]['format']}.stdout")
        assert (CORPUS / e["expected_stdout"]).is_file()


def test_objects_only_leave_host_functions_undefined():
    build.validate_objects(_manifest())


# --------------------------------------------------------------------------
# (b) determinism: rebuild a small case and compare bytes


def _object_compiler(path: Path) -> str | None:
    """The clang version string recorded in an object's .comment section."""
    m = re.search(rb"[\x20-\x7e]*clang version [\x20-\x7e]*", path.read_bytes())
    return m.group(0).decode().strip() if m else None


def test_rebuild_is_byte_identical(tmp_path: Path):
    clang = build.find_tool("CLANG", "clang")
    if clang is None:
        pytest.skip("clang is not installed: cannot rebuild the corpus")
    case = build.load_case(CORPUS / "hello")
    installed = build.tool_version(clang)
    checked = 0
    for target, info in build.TARGETS.items():
        for variant in info["variants"]:
            for src in case["sources"]:
                committed = CORPUS / build.object_rel(target, variant, case["name"], src)
                recorded = _object_compiler(committed)
                if recorded is not None and recorded not in installed:
                    pytest.skip(f"objects were built by {recorded!r}, installed "
                                f"clang is {installed!r}: bytes legitimately differ")
                out = tmp_path / f"{target}-{variant}-{src.stem}.o"
                build.build_object(build.compile_commands(clang, target, variant,
                                                          src, str(out)))
                assert out.read_bytes() == committed.read_bytes(), (
                    f"{target}/{variant}/{src.name}: rebuilt object differs")
                checked += 1
    assert checked > 0


# --------------------------------------------------------------------------
# (c) native oracle: gcc + glibc build and run of three cases


NATIVE_CASES = ["hello", "exit_nested", "args"]


def test_native_check_three_cases():
    gcc = build.find_tool("CC_NATIVE", "gcc")
    if gcc is None:
        pytest.skip("gcc is not installed: cannot run the native oracle")
    probe = subprocess.run([gcc, "-x", "c", "-", "-o", "/dev/null"],
                           input="int main(void){return 0;}", text=True,
                           capture_output=True)
    if probe.returncode != 0:
        pytest.skip("gcc cannot link a native program (no glibc?)")
    assert build.check_native(build.load_cases(NATIVE_CASES), jobs=2)
