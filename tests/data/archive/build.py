#!/usr/bin/env python3
"""Build the static-archive test inputs (tests/test_archive.py).

    python tests/data/archive/build.py          # src/*.c -> <target>/*.o, <target>/*.a
    python tests/data/archive/build.py --check  # rebuild in a temporary directory and
                                                # compare with the committed files

Stdlib only; needs clang and llvm-ar (LLVM 14) on PATH (override with
$CLANG / $LLVM_AR). clang runs from the repository root with relative
paths and no debug info; llvm-ar runs in deterministic mode (``D``: zero
timestamps, uids and gids) from the directory holding the members, whose
modes are set to 0644 first: the outputs are byte-for-byte reproducible.
See README.md for what each archive holds and why.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
SRC = HERE / "src"

COMMON_FLAGS = ["-ffreestanding", "-fno-common", "-g0", "-O2", "-Wall", "-Ikitemu/include"]

#: target -> clang flags
TARGETS: dict[str, list[str]] = {
    "elf-x64": ["--target=x86_64-linux-gnu", "-fno-pic"],
    "macho-arm64": ["--target=arm64-apple-macos11", "-fno-stack-protector"],
}

#: objects given on the command line (committed as .o files)
OBJECTS = ["main", "extra", "dup_one", "dup_both"]

#: archive -> members, in archive order
ARCHIVES: dict[str, list[str]] = {
    "libmath.a": ["mul", "add_helper", "hook", "counter", "strlen", "unused_member_long_name"],
    "libfmt.a": ["fmt_report", "trace"],
    "libdup.a": ["dup1", "dup2"],
    "libprog.a": ["prog_main", "greeting"],
    "empty.a": [],
}

#: target -> archive -> (llvm-ar --format, symbol table: "s" 32-bit, "s64"
#: 64-bit (/SYM64/, __.SYMDEF_64; llvm-ar's SYM64_THRESHOLD), "S" none)
FORMATS: dict[str, dict[str, tuple[str, str]]] = {
    "elf-x64": {
        "libmath.a": ("gnu", "s"),          # '/' symbol table, '//' long names
        "libfmt.a": ("bsd", "s"),           # __.SYMDEF, #1/N names
        "libdup.a": ("gnu", "s64"),         # /SYM64/
        "libprog.a": ("gnu", "S"),          # no symbol table
        "empty.a": ("gnu", "s"),            # just the magic
    },
    "macho-arm64": {
        "libmath.a": ("darwin", "s"),       # __.SYMDEF
        "libfmt.a": ("darwin", "s64"),      # __.SYMDEF_64
        "libdup.a": ("darwin", "s"),
        "libprog.a": ("darwin", "S"),       # no symbol table
        "empty.a": ("darwin", "s"),         # magic + an empty __.SYMDEF
    },
}


def tool(env: str, default: str) -> str:
    return os.environ.get(env, default)


def run(cmd: list[str], cwd: Path, env: dict | None = None) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True,
                          env=None if env is None else {**os.environ, **env})
    if proc.returncode != 0 or proc.stderr.strip():
        sys.stderr.write(f"$ {' '.join(cmd)}\n{proc.stdout}{proc.stderr}")
        raise SystemExit(f"{cmd[0]} failed (or warned)")


def compile_c(target: str, stem: str, out: Path) -> None:
    src = os.path.relpath(SRC / f"{stem}.c", ROOT)
    run([tool("CLANG", "clang"), *TARGETS[target], *COMMON_FLAGS, "-c", src,
         "-o", str(out)], cwd=ROOT)
    out.chmod(0o644)


def build(dest: Path) -> list[Path]:
    """Build every target into dest/<target>/; returns the files made."""
    made = []
    for target in TARGETS:
        out = dest / target
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            stems = OBJECTS + [m for ms in ARCHIVES.values() for m in ms]
            for stem in stems:
                compile_c(target, stem, work / f"{stem}.o")
            for stem in OBJECTS:
                shutil.copyfile(work / f"{stem}.o", out / f"{stem}.o")
                made.append(out / f"{stem}.o")
            for name, members in ARCHIVES.items():
                fmt, table = FORMATS[target][name]
                ops = "rcD" + ("S" if table == "S" else "s")
                env = {"SYM64_THRESHOLD": "1"} if table == "s64" else None
                run([tool("LLVM_AR", "llvm-ar"), ops, f"--format={fmt}", name,
                     *(f"{m}.o" for m in members)], cwd=work, env=env)
                shutil.copyfile(work / name, out / name)
                made.append(out / name)
    return made


def check() -> int:
    bad = 0
    with tempfile.TemporaryDirectory() as tmp:
        for path in build(Path(tmp)):
            rel = path.relative_to(tmp)
            committed = HERE / rel
            if not committed.exists():
                print(f"missing: {rel}")
                bad += 1
            elif committed.read_bytes() != path.read_bytes():
                print(f"differs: {rel}")
                bad += 1
    print("archives are up to date" if not bad else f"{bad} file(s) out of date")
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare a fresh build with the "
                    "committed files")
    args = ap.parse_args(argv)
    if args.check:
        return check()
    for path in build(HERE):
        print(path.relative_to(HERE))
    return 0


if __name__ == "__main__":
    sys.exit(main())
