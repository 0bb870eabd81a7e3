"""The `kitemu` command line, run as a user would run it (a subprocess)."""

import os
import subprocess
import sys

import pytest

from helpers import REPO, corpus_objects, expected_stdout


def kitemu(*args):
    return subprocess.run([sys.executable, "-m", "kitemu.cli", *args], cwd=REPO,
                          capture_output=True, timeout=120)


@pytest.mark.parametrize("target", ["elf-x64", "elf-aarch64", "elf-rv64"])
def test_run_prints_stdout_and_exits_with_program_status(target):
    r = kitemu("run", "--target", target, "--strategy", "dual-map",
               *corpus_objects("retcode", target, "O0"))
    assert r.stdout == expected_stdout("retcode")
    import json
    with open(os.path.join(REPO, "corpus", "retcode", "case.json")) as f:
        assert r.returncode == json.load(f)["exit"] != 0


def test_run_passes_arguments_after_double_dash():
    import json
    with open(os.path.join(REPO, "corpus", "args", "case.json")) as f:
        case = json.load(f)
    r = kitemu("run", *corpus_objects("args", "elf-rv64"), "--", *case["args"])
    assert r.stdout == expected_stdout("args") and r.returncode == case["exit"]


def test_entry_option_and_missing_entry():
    r = kitemu("run", "-e", "no_such_function", *corpus_objects("hello", "elf-x64"))
    assert r.returncode == 2
    assert b"entry symbol 'no_such_function' is not defined" in r.stderr
    assert b"Traceback" not in r.stderr


def test_target_mismatch_is_an_error():
    r = kitemu("run", "--target", "elf-aarch64", *corpus_objects("hello", "elf-x64"))
    assert r.returncode == 2 and b"is for elf-x64, not elf-aarch64" in r.stderr


def test_missing_host_symbol_is_reported_with_referencing_file(tmp_path):
    # hello without the host library's puts: rename the undefined symbol in
    # the string table so it names a function nobody provides
    path = corpus_objects("hello", "elf-x64")[0]
    data = open(path, "rb").read()
    assert data.count(b"\0puts\0") == 1
    bad = tmp_path / "hello.o"
    bad.write_bytes(data.replace(b"\0puts\0", b"\0putz\0"))
    r = kitemu("run", str(bad))
    assert r.returncode == 2
    assert b"undefined symbol 'putz', referenced from " + str(bad).encode() in r.stderr


def test_targets_lists_the_registry():
    r = kitemu("targets")
    assert r.returncode == 0
    names = [line.split()[0] for line in r.stdout.decode().splitlines()]
    assert names == ["elf-x64", "elf-aarch64", "elf-rv64", "macho-x64", "macho-arm64"]
