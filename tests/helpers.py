"""Small helpers shared by tests: corpus object paths and quick runs."""

from __future__ import annotations

import os

from kitemu.loader import load_object
from kitemu.runtime import JitProcess

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(REPO, "corpus")
ELF_TARGETS = ["elf-x64", "elf-aarch64", "elf-rv64"]
STRATEGIES = ["mprotect", "dual-map", "jit-toggle", "virtualprotect"]


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


def assert_llvm_mc_reloc_names(tmp_path, triple: str, cases, relocs) -> None:
    """Assemble one line per case with llvm-mc and check that each emitted
    relocation's type number maps, in ``relocs`` (an arch's ELF_RELOCS), to
    the name the case expects; and that every table entry was seen.

    ``cases`` are ``(section, asm line, expected relocation name)`` with
    section "text" or "data"."""
    import subprocess

    from elftools.elf.elffile import ELFFile
    from elftools.elf.relocation import RelocationSection

    text = [c for c in cases if c[0] == "text"]
    data = [c for c in cases if c[0] == "data"]
    src = (".text\n" + "".join(f"  {c[1]}\n" for c in text)
           + ".data\n" + "".join(f"  {c[1]}\n" for c in data))
    (tmp_path / "r.s").write_text(src)
    subprocess.run(["llvm-mc", f"-triple={triple}", "-filetype=obj",
                    str(tmp_path / "r.s"), "-o", str(tmp_path / "r.o")], check=True)
    with open(tmp_path / "r.o", "rb") as f:
        elf = ELFFile(f)
        got = {}
        for sec in elf.iter_sections():
            if isinstance(sec, RelocationSection):
                target = elf.get_section(sec["sh_info"]).name
                got[target] = [r["r_info_type"] for r in sorted(sec.iter_relocations(),
                                                                  key=lambda r: r["r_offset"])]
    for sect, sect_cases in ((".text", text), (".data", data)):
        assert len(got[sect]) == len(sect_cases)
        for rtype, (_, line, name) in zip(got[sect], sect_cases):
            assert rtype in relocs, (line, rtype)
            assert relocs[rtype].name == name, line
    seen = {name for _, _, name in cases}
    assert {s.name for s in relocs.values()} <= seen
