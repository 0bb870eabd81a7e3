#!/usr/bin/env python3
"""Assemble the relocation-coverage programs into the committed objects.

    python tests/data/build.py            # src/<target>/*.s -> obj/<target>/*.o
    python tests/data/build.py --check    # rebuild in a temporary directory and
                                          # compare with the committed objects
    python tests/data/build.py --relocs   # relocation types per object
                                          # (llvm-readelf -r), for the README

Stdlib only; needs llvm-mc (LLVM 14) and, for --relocs, llvm-readelf on PATH
(override with $LLVM_MC / $LLVM_READELF). llvm-mc runs with this directory as
its working directory and relative paths only, without debug info, so the
objects are byte-for-byte reproducible. See README.md.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

DATA = Path(__file__).resolve().parent
SRC = DATA / "src"
OBJ = DATA / "obj"

sys.path.insert(0, str(Path(__file__).resolve().parent))
from asmbuild import AsmTree, tool  # noqa: E402  (shared with the other asm build script)

#: target name -> llvm-mc arguments (besides -filetype=obj, input, output)
TARGETS: dict[str, list[str]] = {
    "elf-x64": ["-triple=x86_64-linux-gnu"],
    "elf-aarch64": ["-triple=aarch64-linux-gnu"],
    # +relax: calls/loads carry R_RISCV_RELAX, .p2align in code emits
    # R_RISCV_ALIGN and label differences become ADD*/SUB* pairs.
    "elf-rv64": ["-triple=riscv64-linux-gnu", "-mattr=+m,+a,+f,+d,+c,+relax"],
}


TREE = AsmTree(DATA, TARGETS)
build, check = TREE.build, TREE.check


_RELOC_LINE = re.compile(r"^\s*[0-9a-f]{16}\s+[0-9a-f]{16}\s+(R_\w+)")


def relocs() -> int:
    for target in TARGETS:
        union: Counter[str] = Counter()
        for obj in sorted((OBJ / target).glob("*.o")):
            out = subprocess.run([tool("LLVM_READELF", "llvm-readelf"), "-r", str(obj)],
                                 capture_output=True, text=True, check=True).stdout
            kinds = Counter(m.group(1) for line in out.splitlines()
                            if (m := _RELOC_LINE.match(line)))
            union += kinds
            print(f"{target}/{obj.name}: " + ", ".join(f"{k} x{n}" for k, n in sorted(kinds.items())))
        print(f"{target} (all objects, {len(union)} types): " + " ".join(sorted(union)))
        print()
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--check", action="store_true", help="compare a fresh build with obj/")
    g.add_argument("--relocs", action="store_true", help="list relocation types per object")
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
