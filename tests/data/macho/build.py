#!/usr/bin/env python3
"""Assemble the Mach-O relocation-coverage programs into the committed objects.

    python tests/data/macho/build.py            # src/<arch>/*.s -> obj/<arch>/*.o
    python tests/data/macho/build.py --check    # rebuild in a temporary directory
                                                # and compare with obj/
    python tests/data/macho/build.py --relocs   # relocations per object
                                                # (llvm-objdump --macho -r)

Stdlib only; needs llvm-mc (LLVM 14) and, for --relocs, llvm-objdump on PATH
(override with $LLVM_MC / $LLVM_OBJDUMP). llvm-mc runs as
``llvm-mc -triple=<triple> -filetype=obj`` with this directory as its
working directory and relative paths only, without debug info, so the
objects are byte-for-byte reproducible. See README.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

DATA = Path(__file__).resolve().parent
SRC = DATA / "src"
OBJ = DATA / "obj"

#: source directory -> llvm-mc arguments (besides -filetype=obj, input, output)
TARGETS: dict[str, list[str]] = {
    "x64": ["-triple=x86_64-apple-macos"],
    "arm64": ["-triple=arm64-apple-macos"],
}


def tool(env: str, default: str) -> str:
    return os.environ.get(env, default)


def sources(target: str) -> list[Path]:
    return sorted((SRC / target).glob("*.s"))


def assemble(target: str, src: Path, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [tool("LLVM_MC", "llvm-mc"), *TARGETS[target], "-filetype=obj",
           os.path.relpath(src, DATA), "-o", os.path.relpath(out, DATA)]
    proc = subprocess.run(cmd, cwd=DATA, capture_output=True, text=True)
    if proc.returncode != 0 or proc.stderr.strip():
        sys.stderr.write(f"$ {' '.join(cmd)}\n{proc.stderr}")
        raise SystemExit(f"llvm-mc failed (or warned) on {src.relative_to(DATA)}")


def build(dest: Path) -> list[Path]:
    built = []
    for target in TARGETS:
        srcs = sources(target)
        if not srcs:
            raise SystemExit(f"no sources in {SRC / target}")
        for src in srcs:
            out = dest / target / (src.stem + ".o")
            assemble(target, src, out)
            built.append(out)
    return built


def check() -> int:
    bad = 0
    with tempfile.TemporaryDirectory(dir=DATA) as tmp:
        for out in build(Path(tmp)):
            rel = out.relative_to(tmp)
            committed = OBJ / rel
            if not committed.exists():
                print(f"missing: obj/{rel}")
                bad += 1
            elif committed.read_bytes() != out.read_bytes():
                print(f"differs: obj/{rel}")
                bad += 1
        stale = {p.relative_to(OBJ) for p in OBJ.rglob("*.o")} - \
                {p.relative_to(tmp) for p in Path(tmp).rglob("*.o")}
        for rel in sorted(stale):
            print(f"stale (no source): obj/{rel}")
            bad += 1
    print("objects are up to date" if not bad else f"{bad} object(s) out of date")
    return 1 if bad else 0


def relocs() -> int:
    for target in TARGETS:
        for obj in sorted((OBJ / target).glob("*.o")):
            out = subprocess.run([tool("LLVM_OBJDUMP", "llvm-objdump"), "--macho", "-r", str(obj)],
                                 capture_output=True, text=True, check=True).stdout
            print(out)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--check", action="store_true", help="compare a fresh build with obj/")
    g.add_argument("--relocs", action="store_true", help="list relocations per object")
    args = ap.parse_args(argv)
    if args.check:
        return check()
    if args.relocs:
        return relocs()
    for out in build(OBJ):
        print(out.relative_to(DATA))
    return 0


if __name__ == "__main__":
    sys.exit(main())
