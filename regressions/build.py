#!/usr/bin/env python3
"""Build the committed objects of the Bus-error regression corpus (stdlib only).

    python regressions/build.py                 # rebuild every case's obj/
    python regressions/build.py --case NAME     # one case (repeatable)
    python regressions/build.py --check         # rebuild into a temporary
                                                # directory and compare with
                                                # the committed bytes

Each case's ``case.json`` has a ``build`` list; an entry is one of

    {"out": "obj/main.o", "src": "src/main.c", "flags": ["-O2", "-DFIXED"]}
    {"out": "obj/entry.o", "src": "src/entry.s"}              (llvm-mc)
    {"out": "obj/libx.a", "members": ["obj/a.o", "obj/b.o"]}  (llvm-ar)

C files are compiled with clang (``$CLANG``, default ``clang``) for the
case's target with the corpus's flags (``-ffreestanding -fno-common -g0
-Wall -Ikitemu/include``, ``-fno-pic`` on ELF, ``-fno-stack-protector`` on
Mach-O, ``-mcmodel=medany -mno-relax`` on riscv64) plus the entry's
``flags``. clang runs from the repository root with relative paths only, so
the objects do not depend on where the checkout lives; llvm-ar writes
deterministic archives (zero dates/uids). Archives use the GNU format for
ELF members and the Darwin format for Mach-O ones.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

TRIPLES = {
    "elf-x64": "x86_64-linux-gnu",
    "elf-aarch64": "aarch64-linux-gnu",
    "elf-rv64": "riscv64-linux-gnu",
    "macho-x64": "x86_64-apple-macos11",
    "macho-arm64": "arm64-apple-macos11",
}
COMMON_FLAGS = ["-ffreestanding", "-fno-common", "-g0", "-Wall", "-Ikitemu/include"]
FORMAT_FLAGS = {"elf": ["-fno-pic"], "macho": ["-fno-stack-protector"]}
TARGET_FLAGS = {"elf-rv64": ["-mcmodel=medany", "-mno-relax"]}


class BuildError(Exception):
    pass


def tool(env: str, default: str) -> str:
    path = os.environ.get(env) or shutil.which(default)
    if path is None:
        raise BuildError(f"{default} is not installed (or set ${env})")
    return path


def case_dirs(names: list[str] | None) -> list[Path]:
    dirs = sorted(p.parent for p in HERE.glob("*/case.json"))
    if names:
        known = {d.name: d for d in dirs}
        missing = [n for n in names if n not in known]
        if missing:
            raise BuildError(f"unknown case(s): {', '.join(missing)}")
        dirs = [known[n] for n in names]
    return dirs


def run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"{' '.join(cmd)}\n{proc.stderr.rstrip()}")


def build_case(case_dir: Path, out_root: Path) -> list[Path]:
    """Build one case's objects under ``out_root`` (the case directory, or a
    scratch directory for --check); returns the written paths."""
    with open(case_dir / "case.json", encoding="utf-8") as f:
        meta = json.load(f)
    target = meta["target"]
    triple = TRIPLES[target]
    fmt = target.split("-")[0]
    rel = case_dir.relative_to(ROOT).as_posix()
    written = []
    for entry in meta["build"]:
        out = out_root / entry["out"]
        out.parent.mkdir(parents=True, exist_ok=True)
        out_arg = os.path.relpath(out, ROOT)
        if "members" in entry:
            if out.exists():
                out.unlink()
            members = [os.path.relpath(out_root / m, ROOT) for m in entry["members"]]
            run([tool("LLVM_AR", "llvm-ar"), "rcs", f"--format={'gnu' if fmt == 'elf' else 'darwin'}",
                 out_arg, *members])
        elif entry["src"].endswith(".s"):
            run([tool("LLVM_MC", "llvm-mc"), f"-triple={triple}", "-filetype=obj",
                 f"{rel}/{entry['src']}", "-o", out_arg])
        else:
            run([tool("CLANG", "clang"), f"--target={triple}", *COMMON_FLAGS,
                 *FORMAT_FLAGS[fmt], *TARGET_FLAGS.get(target, []), *entry.get("flags", []),
                 "-c", f"{rel}/{entry['src']}", "-o", out_arg])
        data = out.read_bytes()
        if str(ROOT).encode() in data:
            raise BuildError(f"{out_arg} contains the checkout's absolute path")
        written.append(out)
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--case", action="append", default=None, help="build only this case")
    ap.add_argument("--check", action="store_true",
                    help="rebuild into a scratch directory and compare with the committed objects")
    ns = ap.parse_args(argv)
    try:
        dirs = case_dirs(ns.case)
        if not ns.check:
            for d in dirs:
                for p in build_case(d, d):
                    print(f"built {p.relative_to(ROOT)}")
            return 0
        bad = 0
        with tempfile.TemporaryDirectory(prefix="kitemu-regr-", dir=ROOT) as tmp:
            for d in dirs:
                scratch = Path(tmp) / d.name
                for p in build_case(d, scratch):
                    committed = d / p.relative_to(scratch)
                    same = committed.exists() and committed.read_bytes() == p.read_bytes()
                    if not same:
                        bad += 1
                        print(f"DIFFERS {committed.relative_to(ROOT)}")
        print(f"{'all objects match' if not bad else f'{bad} object(s) differ'}")
        return 1 if bad else 0
    except BuildError as e:
        print(f"build.py: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
