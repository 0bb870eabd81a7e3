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
import subprocess
import sys
from pathlib import Path

DATA = Path(__file__).resolve().parent
SRC = DATA / "src"
OBJ = DATA / "obj"

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from asmbuild import AsmTree, tool  # noqa: E402  (shared with the other asm build script)

#: source directory -> llvm-mc arguments (besides -filetype=obj, input, output)
TARGETS: dict[str, list[str]] = {
    "x64": ["-triple=x86_64-apple-macos"],
    "arm64": ["-triple=arm64-apple-macos"],
}


TREE = AsmTree(DATA, TARGETS)
build, check = TREE.build, TREE.check


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
