"""What the stdlib-only assembly build scripts share (tests/data/build.py for
ELF, tests/data/macho/build.py for Mach-O): assemble ``src/<target>/*.s``
with llvm-mc into ``obj/<target>/*.o`` reproducibly (the data directory as
working directory, relative paths only), and check committed objects
against a fresh build."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path


def tool(env: str, default: str) -> str:
    return os.environ.get(env, default)


class AsmTree:
    def __init__(self, data: Path, targets: dict[str, list[str]]):
        self.data = data
        self.src = data / "src"
        self.obj = data / "obj"
        #: target directory -> llvm-mc arguments (besides -filetype=obj, input, output)
        self.targets = targets

    def sources(self, target: str) -> list[Path]:
        return sorted((self.src / target).glob("*.s"))

    def assemble(self, target: str, src: Path, out: Path) -> None:
        out.parent.mkdir(parents=True, exist_ok=True)
        cmd = [tool("LLVM_MC", "llvm-mc"), *self.targets[target], "-filetype=obj",
               os.path.relpath(src, self.data), "-o", os.path.relpath(out, self.data)]
        proc = subprocess.run(cmd, cwd=self.data, capture_output=True, text=True)
        if proc.returncode != 0 or proc.stderr.strip():
            sys.stderr.write(f"$ {' '.join(cmd)}\n{proc.stderr}")
            raise SystemExit(f"llvm-mc failed (or warned) on {src.relative_to(self.data)}")

    def build(self, dest: Path) -> list[Path]:
        built = []
        for target in self.targets:
            srcs = self.sources(target)
            if not srcs:
                raise SystemExit(f"no sources in {self.src / target}")
            for src in srcs:
                out = dest / target / (src.stem + ".o")
                self.assemble(target, src, out)
                built.append(out)
        return built

    def check(self) -> int:
        bad = 0
        with tempfile.TemporaryDirectory(dir=self.data) as tmp:
            for out in self.build(Path(tmp)):
                rel = out.relative_to(tmp)
                committed = self.obj / rel
                if not committed.exists():
                    print(f"missing: obj/{rel}")
                    bad += 1
                elif committed.read_bytes() != out.read_bytes():
                    print(f"differs: obj/{rel}")
                    bad += 1
            stale = {p.relative_to(self.obj) for p in self.obj.rglob("*.o")} - \
                    {p.relative_to(tmp) for p in Path(tmp).rglob("*.o")}
            for rel in sorted(stale):
                print(f"stale (no source): obj/{rel}")
                bad += 1
        print("objects are up to date" if not bad else f"{bad} object(s) out of date")
        return 1 if bad else 0
