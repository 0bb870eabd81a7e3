"""Small helpers shared by tests: corpus object paths and quick runs."""

from __future__ import annotations

import os

from kitemu.loader import load_object
from kitemu.runtime import JitProcess

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(REPO, "corpus")
ELF_TARGETS = ["elf-x64", "elf-aarch64", "elf-rv64"]
STRATEGIES = ["mprotect", "dual-map"]


def corpus_objects(case: str, target: str, variant: str = "O2") -> list[str]:
    d = os.path.join(CORPUS, "obj", target, variant, case)
    return sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith(".o"))


def expected_stdout(case: str) -> bytes:
    with open(os.path.join(CORPUS, case, "expected.stdout"), "rb") as f:
        return f.read()


def linked(case: str, target: str, variant: str = "O2", **kw) -> JitProcess:
    proc = JitProcess(target, **kw)
    proc.link([load_object(p) for p in corpus_objects(case, target, variant)])
    return proc


def read_bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()
