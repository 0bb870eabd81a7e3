"""The differential oracle: the same case linked by ld.lld at the same addresses.

For an ELF case kitemu linked, each object is written as a real ELF
relocatable file (:mod:`kitemu.fuzz.elfwriter`) and linked by ``ld.lld``
with a linker script that gives every input section its own output section
at the address kitemu chose, in address order, lld's own GOT after
kitemu's region::

    SECTIONS {
      .k0_1 0x10000000 : { k0.o(.text.site) }
      .k1_1 0x10002000 : { k1.o(.bss.pad) }
      .got 0x14000000 : { *(.got) }
      .got.plt : { *(.got.plt) }
    }

(host functions are ``--defsym``-ed to the addresses of kitemu's canonical
stubs, so ``S`` is the same in both links). Then the bytes lld wrote are
compared with the bytes kitemu wrote: every relocation field of a kind both
link the same way, and every byte outside the relocation fields.

Kinds and situations that legitimately differ are skipped, with the reason
(:data:`SKIP_KINDS`, :func:`_skip_reason`):

* GOT formulas (x86-64 ``GOTPCREL``/``GOTPCRELX``/``REX_GOTPCRELX``,
  AArch64 ``ADR_GOT_PAGE``/``LD64_GOT_LO12_NC``, RISC-V ``GOT_HI20`` and the
  ``PCREL_LO12`` paired with it): each linker lays out its own GOT;
* a case where kitemu routed a branch through an island stub: lld inserts
  its own thunks or refuses, and either moves code;
* PC-relative references to an undefined weak symbol on AArch64 and RISC-V:
  lld resolves them to ``P`` (``P + 4`` for AArch64 branches), kitemu to
  address 0 (see ``kitemu.aot.WEAK_BRANCH_RULES``);
* ``R_RISCV_ALIGN``: lld 14 refuses it ("requires unimplemented linker
  relaxation");
* kinds lld does not know (reported as skipped when lld says so);
* an AArch64 case whose branch lld extended with a thunk (lld refused it
  for that, or the thunk grew the caller's section): ``THUNK``. Without a
  branch kind lld thunks, a grown section is a mismatch.

Every skip is counted per kind with its reason (``LldResult.skipped``,
``skip_reasons``) and printed by ``kitemu fuzz``.

The objects handed to lld have their instruction fields zeroed
(:func:`zeroed_fields`): lld 14 ORs AArch64 immediates into the
instruction word, kitemu replaces the field.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections import Counter
from dataclasses import dataclass, field

from ..link.symbols import HostTarget
from . import oracle as O
from .elfwriter import read_sections, write_elf
from .model import RelocCase

EMULATION = {"elf-x64": "elf_x86_64", "elf-aarch64": "aarch64linux", "elf-rv64": "elf64lriscv"}
LLD_TIMEOUT = 60.0

SKIP_KINDS = {
    "R_X86_64_GOTPCREL": "GOT layout is each linker's own",
    "R_X86_64_GOTPCRELX": "GOT layout is each linker's own (and lld relaxes it)",
    "R_X86_64_REX_GOTPCRELX": "GOT layout is each linker's own (and lld relaxes it)",
    "R_AARCH64_ADR_GOT_PAGE": "GOT layout is each linker's own",
    "R_AARCH64_LD64_GOT_LO12_NC": "GOT layout is each linker's own",
    "R_RISCV_GOT_HI20": "GOT layout is each linker's own",
}
#: the whole case is skipped when it holds one of these
SKIP_CASE_KINDS = {
    "R_RISCV_ALIGN": "lld 14 refuses R_RISCV_ALIGN (requires unimplemented linker relaxation)",
}
#: ld.lld errors that are lld's own limits, not a disagreement on a value
THUNK = ("lld treats R_AARCH64_PLT32 (like CALL26/JUMP26) as a branch that may need a "
         "range-extension thunk: with a 4-byte-short range at the top edge, and comparing a "
         "destination below address 0 unsigned; kitemu evaluates S + A - P as AAELF64 writes it")
KNOWN_REFUSALS = {
    "range extension thunk": THUNK,
    "file range overlaps": THUNK + " (the thunk grew the output section past its neighbour)",
    "unable to place section": THUNK + " (the thunk grew the output section past its neighbour)",
}
#: the kinds lld may add a thunk for: a refusal above is only excused with one of them
THUNKED = {"R_AARCH64_PLT32", "R_AARCH64_CALL26", "R_AARCH64_JUMP26"}
#: patches nothing: nothing to compare
NOTHING = {"R_X86_64_NONE", "R_AARCH64_NONE", "R_RISCV_NONE", "R_RISCV_RELAX", "R_RISCV_ALIGN"}


def find_lld() -> str | None:
    return shutil.which("ld.lld")


@dataclass
class LldResult:
    status: str = ""              # compared | skipped | lld-refused
    reason: str = ""
    compared: Counter = field(default_factory=Counter)     # kind -> fields equal
    skipped: Counter = field(default_factory=Counter)      # kind -> fields not compared
    skip_reasons: dict = field(default_factory=dict)       # kind -> why
    mismatches: list[str] = field(default_factory=list)


def _weak_pcrel(case: RelocCase, oi: int, rel, hosts) -> bool:
    from .check import resolve
    if case.target == "elf-x64":
        return False
    r = O.RULES[case.target][rel.label]
    if r.formula in (O.ABS, O.SET, O.ADD, O.SUB, O.NONE):
        return False
    ref = resolve(case, oi, rel.symbol, hosts)
    return ref is not None and ref.kind == "zero"


def _hi_of(sec, obj, rel):
    lab = obj.symbols[rel.symbol]
    return next((x for x in sec.relocs if x.label in O.RV_HI_KINDS and x.offset == lab.value), None)


def _skip_reason(case, oi, sec, rel, hosts) -> str | None:
    if rel.label in SKIP_KINDS:
        return SKIP_KINDS[rel.label]
    if rel.label == "R_AARCH64_JUMP26" and sec.data is not None and \
            sec.data[rel.offset + 3:rel.offset + 4] and sec.data[rel.offset + 3] >> 2 != 0b000101:
        return "R_AARCH64_JUMP26 on a word that is not a B: lld 14 rewrites it into a B, kitemu " \
               "keeps the instruction's opcode"
    if rel.label in O.RV_LO_KINDS:
        hi = _hi_of(sec, case.objects[oi], rel)
        if hi is not None and hi.label == "R_RISCV_GOT_HI20":
            return "paired with R_RISCV_GOT_HI20: GOT layout is each linker's own"
        if hi is not None and _weak_pcrel(case, oi, hi, hosts):
            return "paired with a HI20 against an undefined weak symbol (lld: P, kitemu: 0)"
        return None
    if _weak_pcrel(case, oi, rel, hosts):
        return "PC-relative to an undefined weak symbol: lld resolves it to P (P + 4 for " \
               "AArch64 branches), kitemu to 0"
    return None


def zeroed_fields(case: RelocCase) -> RelocCase:
    """A copy of ``case`` whose instruction immediates under relocations are
    zero. ld.lld ORs AArch64 immediates into the instruction (it relies on
    the assembler leaving them zero); kitemu replaces the field whatever it
    held (RELA: the addend is in the relocation, the field is ignored), as
    the fuzzer's own ``untouched``/``value`` checks verify. Data words and
    the read-modify-write RISC-V ADD/SUB/SET kinds keep their contents."""
    import copy
    c = copy.deepcopy(case)
    for _, sec, _, rel in c.relocations():
        r = O.RULES[case.target][rel.label]
        if r.mask is None or r.additive or sec.data is None:
            continue
        if not 0 <= rel.offset <= sec.size - r.size:
            continue
        data = bytearray(sec.data)
        word = int.from_bytes(data[rel.offset:rel.offset + r.size], "little") & ~r.mask
        data[rel.offset:rel.offset + r.size] = word.to_bytes(r.size, "little")
        sec.data = bytes(data)
    return c


def lld_compare(case: RelocCase, image, read, lld: str | None = None) -> LldResult:
    """Link ``case`` with ld.lld at kitemu's addresses (``image``) and compare
    the bytes; ``read(addr, n)`` reads kitemu's process memory."""
    from .linking import host_addrs
    res = LldResult()
    lld = lld or find_lld()
    if lld is None:
        res.status, res.reason = "skipped", "ld.lld is not on PATH"
        return res
    for k, why in SKIP_CASE_KINDS.items():
        if k in case.kinds():
            res.status, res.reason = "skipped", why
            res.skipped.update({rel.label: 1 for *_, rel in case.relocations()})
            return res
    if any(r.via == "island" for r in image.records):
        res.status, res.reason = "skipped", "kitemu routed a branch through an island stub"
        res.skipped.update({rel.label: 1 for *_, rel in case.relocations()})
        return res
    hosts = host_addrs(case.target)
    stubs = {t.name: a for t, a in image.stubs.items() if isinstance(t, HostTarget)}
    reasons = {}            # kind -> why it is not compared in this case
    for oi, sec, ri, rel in case.relocations():
        why = _skip_reason(case, oi, sec, rel, hosts)
        if why:
            reasons[rel.label] = why
    lld_case = zeroed_fields(case)
    with tempfile.TemporaryDirectory(prefix="kitemu-fuzz-lld-") as tmp:
        lines = []
        paths = []
        for oi, obj in enumerate(case.objects):
            p = os.path.join(tmp, f"k{oi}.o")
            with open(p, "wb") as f:
                f.write(write_elf(lld_case, oi))
            paths.append(f"k{oi}.o")
            for s in obj.sections:
                a = image.section_addrs[(oi, s.index)]
                lines.append((a, oi, s.index, f"  .k{oi}_{s.index} {a:#x} : {{ k{oi}.o({s.name}) }}"))
        # lld's own GOT right after kitemu's region, clear of every input section
        end = (case.base + case.capacity + 0xFFFF) & ~0xFFFF
        lines.append((end, -1, 0, f"  .got {end:#x} : {{ *(.got) }}\n  .got.plt : {{ *(.got.plt) }}"))
        # in address order: lld 14 writes a section over its own ELF header when
        # the script lists a lower address after a higher one
        with open(os.path.join(tmp, "case.ld"), "w") as f:
            f.write("SECTIONS {\n" + "\n".join(x[-1] for x in sorted(lines)) + "\n}\n")
        cmd = [lld, "-m", EMULATION[case.target], "-static", "--no-relax", "-z", "max-page-size=4096",
               "-z", "norelro", "--build-id=none", "-T", "case.ld", "-o", "out"]
        cmd += [f"--defsym={name}={addr:#x}" for name, addr in sorted(stubs.items())]
        cmd += paths
        try:
            proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True,
                                  timeout=LLD_TIMEOUT)
        except subprocess.TimeoutExpired:
            res.status, res.reason = "skipped", "ld.lld timed out"
            return res
        errors = [ln for ln in proc.stderr.splitlines() if "error:" in ln]
        if proc.returncode != 0 or errors:
            res.status = "lld-refused"
            res.reason = errors[0] if errors else proc.stderr.strip()[:300]
            if any(w in res.reason for w in ("unknown relocation", "unsupported relocation",
                                             "unrecognized reloc")):
                res.status = "skipped"
                res.skip_reasons["lld"] = res.reason
                return res
            for pattern, why in KNOWN_REFUSALS.items():
                if pattern in res.reason and case.kinds() & THUNKED:
                    res.status = "skipped"
                    res.skip_reasons["lld"] = why
                    return res
            for name, why in reasons.items():
                if name in res.reason:
                    res.status = "skipped"
                    res.skip_reasons[name] = why
                    res.skipped[name] += 1
                    return res
            res.mismatches.append(f"kitemu linked the case, ld.lld refused it: {res.reason}")
            return res
        with open(os.path.join(tmp, "out"), "rb") as f:
            out = f.read()
    if out[:4] != b"\x7fELF":
        res.status, res.reason = "skipped", "ld.lld wrote a corrupt output file"
        return res
    shdrs = read_sections(out)
    # a range-extension thunk lld added grows its caller's output section:
    # decided for the whole case before anything is compared
    grown = [s.name for oi, obj in enumerate(case.objects) for s in obj.sections
             if s.data is not None and s.size
             and (shdrs.get(f".k{oi}_{s.index}") or (0, 0, 0, s.size))[3] != s.size]
    if grown and case.kinds() & THUNKED:
        res.status, res.reason = "skipped", THUNK + f" (a thunk grew {', '.join(grown)})"
        res.skip_reasons["lld"] = res.reason
        return res
    res.status = "compared"
    for oi, obj in enumerate(case.objects):
        for sec in obj.sections:
            if sec.data is None or not sec.size:
                continue
            h = shdrs.get(f".k{oi}_{sec.index}")
            addr = image.section_addrs[(oi, sec.index)]
            if h is not None and h[3] != sec.size:
                res.mismatches.append(f"{obj.path}: section {sec.name}: ld.lld's copy is "
                                      f"{h[3]:#x} bytes, the input's {sec.size:#x}")
                continue
            if h is None or h[1] != addr:
                res.mismatches.append(f"{obj.path}: section {sec.name}: ld.lld did not place it at "
                                      f"{addr:#x} ({h})")
                continue
            theirs = out[h[2]:h[2] + sec.size]
            ours = read(addr, sec.size)
            if ours is None:
                res.mismatches.append(f"{obj.path}: section {sec.name}: kitemu's copy at "
                                      f"{addr:#x} is unreadable")
                continue
            excluded = 0              # bits of the bytes not compared byte-for-byte
            fields = []
            for ri, rel in enumerate(sec.relocs):
                r = O.RULES[case.target][rel.label]
                if rel.label in NOTHING or not r.size:
                    continue
                why = _skip_reason(case, oi, sec, rel, hosts)
                lo, hi = max(0, rel.offset), min(sec.size, rel.offset + r.size)
                if hi > lo:
                    excluded |= ((1 << (8 * (hi - lo))) - 1) << (8 * lo)
                if why:
                    res.skipped[rel.label] += 1
                    res.skip_reasons.setdefault(rel.label, why)
                else:
                    fields.append((ri, rel, lo, hi))
            for ri, rel, lo, hi in fields:
                if ours[lo:hi] == theirs[lo:hi]:
                    res.compared[rel.label] += 1
                else:
                    res.mismatches.append(
                        f"{obj.path}: section {sec.name}: relocation #{ri} {rel.label} at offset "
                        f"{rel.offset:#x} (place {addr + rel.offset:#x}): kitemu wrote "
                        f"{ours[lo:hi].hex()}, ld.lld wrote {theirs[lo:hi].hex()}")
            if ours != theirs:
                diff = (int.from_bytes(ours, "little") ^ int.from_bytes(theirs, "little")) & ~excluded
                if diff:
                    i = ((diff & -diff).bit_length() - 1) // 8
                    res.mismatches.append(f"{obj.path}: section {sec.name} offset {i:#x}: kitemu "
                                          f"has {ours[i]:#04x}, ld.lld {theirs[i]:#04x} (outside "
                                          "any relocation field)")
    return res
