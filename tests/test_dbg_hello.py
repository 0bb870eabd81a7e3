"""dbg_hello (roadmap §3.4): a fixed debugger script against corpus/hello on
every target, its transcript diffed with the committed one.

The image sits at a fixed base (0x400000) so addresses are stable; the
script (tests/data/dbg/hello.cmds) sets a function and a line breakpoint,
runs, steps over host calls and into a static function, backtraces,
finishes, continues to a line breakpoint twice, reads memory, registers and
disassembly, and single-steps. The expected transcripts
(tests/data/dbg/hello.<target>.expected) were reviewed by hand against the
source and the disassembly: lines, frames, breakpoint hits and program
output. Regenerate one with

    kitemu dbg corpus/hello/main.c --target T --base 0x400000 \\
        -x tests/data/dbg/hello.cmds --batch > tests/data/dbg/hello.T.expected

from the repository root, and review the diff before committing it.
"""

from __future__ import annotations

import difflib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kitemu.targets import TARGETS

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "dbg"

pytestmark = pytest.mark.skipif(shutil.which("clang") is None, reason="needs clang")


@pytest.mark.parametrize("target", TARGETS)
def test_dbg_hello_transcript(target):
    cmd = [sys.executable, "-m", "kitemu.cli", "dbg", "corpus/hello/main.c", "--target", target,
           "--base", "0x400000", "-x", "tests/data/dbg/hello.cmds", "--batch"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    expected = (DATA / f"hello.{target}.expected").read_text()
    if proc.stdout != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True),
                                            proc.stdout.splitlines(True),
                                            "expected", "got"))
        pytest.fail(f"dbg_hello transcript differs on {target}:\n{diff}")


def test_dbg_hello_script_exercises_every_kind_of_stop():
    """The script is not trivial: each transcript has a function and a line
    breakpoint hit, a step into a function, a backtrace of two frames, a
    finish back into main and the program's whole output."""
    for target in TARGETS:
        text = (DATA / f"hello.{target}.expected").read_text()
        assert "Breakpoint 1, " in text and text.count("Breakpoint 2, ") == 2
        assert "in underline" in text and "\n#1  " in text
        assert "Goodbye.\n[program exited with code 0]" in text
