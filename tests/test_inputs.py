"""Input kinds of `kitemu run`: C files and C on stdin (compiled with clang
for the target), -O levels, mixing with objects; clear errors."""

import os
import shutil
import subprocess
import sys

import pytest

from helpers import REPO, corpus_objects, expected_stdout

needs_clang = pytest.mark.skipif(shutil.which("clang") is None,
                                 reason="clang is not installed: C inputs cannot be compiled here")


def kitemu(*args, stdin=None, env=None):
    return subprocess.run([sys.executable, "-m", "kitemu.cli", *args], cwd=REPO, input=stdin,
                          capture_output=True, timeout=300, env=env)


def source(case, name="main.c"):
    return os.path.join(REPO, "corpus", case, name)


@needs_clang
@pytest.mark.parametrize("target", ["elf-x64", "elf-aarch64", "elf-rv64", "macho-x64", "macho-arm64"])
def test_c_file_input_on_every_target(target):
    r = kitemu("run", "--target", target, source("hello"))
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout == expected_stdout("hello")


@needs_clang
@pytest.mark.parametrize("opt", ["-O0", "-O1", "-O3", "-Os"])
def test_optimisation_levels_reach_clang(opt, tmp_path):
    r = kitemu("run", "--target", "elf-rv64", opt, source("recursion"))
    assert r.returncode == 0 and r.stdout == expected_stdout("recursion")
    from kitemu.cc import compile_c
    from kitemu.targets import get_target
    o0 = compile_c(source("recursion"), get_target("elf-rv64"), "-O0")[1]
    o3 = compile_c(source("recursion"), get_target("elf-rv64"), "-O3")[1]
    assert o0 != o3          # the level really changed the code


@needs_clang
def test_stdin_c_input():
    with open(source("switch_vm"), "rb") as f:
        text = f.read()
    r = kitemu("run", "--target", "elf-aarch64", "-", stdin=text)
    assert r.returncode == 0 and r.stdout == expected_stdout("switch_vm")


@needs_clang
def test_multi_file_c_mixed_with_objects():
    """bank3 = main.c + two objects of the other TUs, given in any order."""
    objs = [p for p in corpus_objects("bank3", "elf-x64") if not p.endswith("main.o")]
    r = kitemu("run", objs[1], source("bank3"), objs[0])
    assert r.returncode == 0 and r.stdout == expected_stdout("bank3")


@needs_clang
def test_compile_error_names_the_file(tmp_path):
    bad = tmp_path / "bad.c"
    bad.write_text("int main(void) { return undefined_thing; }\n")
    r = kitemu("run", str(bad))
    assert r.returncode == 2
    err = r.stderr.decode()
    assert err.startswith(f"kitemu: error: {bad}: clang failed") and "undefined_thing" in err


def test_missing_clang_is_a_clear_error(tmp_path):
    env = dict(os.environ, PATH=str(tmp_path), KITEMU_CLANG="")
    r = subprocess.run([sys.executable, "-m", "kitemu.cli", "run", source("hello")], cwd=REPO,
                       capture_output=True, timeout=120, env=env)
    assert r.returncode == 2
    assert b"compiling C inputs needs clang, which is not installed" in r.stderr
    assert b"Traceback" not in r.stderr


def test_two_stdin_inputs_are_refused():
    r = kitemu("run", "-", "-", stdin=b"")
    assert r.returncode == 2 and b"'-' (C source on standard input) may be given only once" in r.stderr
