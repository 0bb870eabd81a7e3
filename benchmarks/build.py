#!/usr/bin/env python3
"""Rebuild the committed benchmark objects (needs clang): one per ELF target."""

import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TRIPLES = {"elf-x64": "x86_64-linux-gnu", "elf-aarch64": "aarch64-linux-gnu",
           "elf-rv64": "riscv64-linux-gnu"}

for target, triple in TRIPLES.items():
    out = HERE / "data" / "obj" / target
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run(["clang", f"--target={triple}", "-O2", "-fno-pic", "-ffreestanding", "-g0",
                    "-Ikitemu/include", "-c", "benchmarks/data/cpu_kernel.c",
                    "-o", str((out / "cpu_kernel.o").relative_to(ROOT))], check=True, cwd=ROOT)
    print("built", out / "cpu_kernel.o")
