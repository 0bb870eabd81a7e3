"""Reading a relocation's field back out of the patched bytes.

The ``value`` property compares what the linker wrote with the psABI
formula. Decoding the bytes with the linker's own ``Fixup.decode`` would
let an encoder and decoder that agree on a wrong bit layout (an immediate
shifted by one, ``immlo``/``immhi`` swapped, a RISC-V scatter table with two
entries crossed) pass every check: the test could not fail. So the fields
are decoded here, from the instruction-set manuals, keyed by relocation
label and :mod:`kitemu.fuzz.oracle` rule, and never through
``kitemu.targets``:

* data words: little-endian, read signed when the rule's range is the
  signed one (``S + A - P`` into a 32-bit word), unsigned otherwise;
* AArch64 (Arm ARM C4): ``B``/``BL`` imm26 at [25:0], ``B.cond``/``CBZ``/
  ``LDR (literal)`` imm19 at [23:5], ``TBZ`` imm14 at [18:5] (all in words),
  ``ADR``/``ADRP`` immlo at [30:29] and immhi at [23:5] (``ADRP`` in pages),
  ``ADD``/``LDR``/``STR`` imm12 at [21:10] (scaled by the access size),
  ``MOVZ``/``MOVK`` imm16 at [20:5];
* RISC-V (unprivileged ISA, "Base Instruction Formats" and "Compressed
  Instruction Formats"): U, I, S, B, J, CB and CJ immediates.

:func:`decode` gives the value the field holds, in the unit of the formula
(byte offsets, page deltas, the HI20 instruction's ``hi << 12``);
:func:`kept` what a correct field keeps of a formula value: the value itself
for checked kinds, its low bits for the ``_NC``/lo12 kinds.
"""

from __future__ import annotations

from . import oracle as O


def _sext(v: int, bits: int) -> int:
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


def _bits(word: int, hi: int, lo: int) -> int:
    """``word[hi:lo]``, as the manuals write bit ranges."""
    return (word >> lo) & ((1 << (hi - lo + 1)) - 1)


def _signed_word(r: O.Rule) -> bool:
    """A data word read signed: its accepted range is exactly the signed one."""
    bits = 8 * r.size
    return r.lo is not None and (r.lo, r.hi) == O.signed(bits)


# -- AArch64 ----------------------------------------------------------------------

def _a64_adr_imm(w: int) -> int:
    return _sext(_bits(w, 23, 5) << 2 | _bits(w, 30, 29), 21)


def _a64_group(label: str) -> int:
    """MOVW_UABS_G<n>: the 16-bit group n."""
    return int(label.split("MOVW_UABS_G")[1][0])


def _a64_decode(label: str, r: O.Rule, w: int) -> int:
    if r.mask == O.B26:
        return _sext(_bits(w, 25, 0), 26) * 4
    if r.mask == O.IMM19:
        return _sext(_bits(w, 23, 5), 19) * 4
    if r.mask == O.IMM14:
        return _sext(_bits(w, 18, 5), 14) * 4
    if r.mask == O.ADR:
        return _a64_adr_imm(w) * (4096 if r.align == 4096 else 1)
    if r.mask == O.IMM12:
        return _bits(w, 21, 10) * r.align         # the access size (1 for ADD)
    if r.mask == O.IMM16:
        return _bits(w, 20, 5) << (16 * _a64_group(label))
    raise ValueError(f"no AArch64 field for {label}")


def _a64_kept(label: str, r: O.Rule, value: int) -> int:
    if r.mask == O.ADR and r.align == 4096 and not r.checked:       # ADRP _NC
        return _sext(value >> 12, 21) << 12
    if r.mask == O.IMM12:
        return value & 0xFFF
    if r.mask == O.IMM16:
        return value & (0xFFFF << (16 * _a64_group(label)))
    return value


# -- RISC-V ---------------------------------------------------------------------

def _rv_u(w: int) -> int:
    return _sext(_bits(w, 31, 12), 20) << 12


def _rv_i(w: int) -> int:
    return _sext(_bits(w, 31, 20), 12)


def _rv_s(w: int) -> int:
    return _sext(_bits(w, 31, 25) << 5 | _bits(w, 11, 7), 12)


def _rv_b(w: int) -> int:
    # imm[12|10:5] at 31:25, imm[4:1|11] at 11:7
    return _sext(_bits(w, 31, 31) << 12 | _bits(w, 7, 7) << 11 | _bits(w, 30, 25) << 5
                 | _bits(w, 11, 8) << 1, 13)


def _rv_j(w: int) -> int:
    # imm[20|10:1|11|19:12] at 31:12
    return _sext(_bits(w, 31, 31) << 20 | _bits(w, 19, 12) << 12 | _bits(w, 20, 20) << 11
                 | _bits(w, 30, 21) << 1, 21)


def _rv_cb(h: int) -> int:
    # c.beqz/c.bnez: offset[8|4:3] at 12:10, offset[7:6|2:1|5] at 6:2
    return _sext(_bits(h, 12, 12) << 8 | _bits(h, 11, 10) << 3 | _bits(h, 6, 5) << 6
                 | _bits(h, 4, 3) << 1 | _bits(h, 2, 2) << 5, 9)


def _rv_cj(h: int) -> int:
    # c.j: offset[11|4|9:8|10|6|7|3:1|5] at 12:2
    return _sext(_bits(h, 12, 12) << 11 | _bits(h, 11, 11) << 4 | _bits(h, 10, 9) << 8
                 | _bits(h, 8, 8) << 10 | _bits(h, 7, 7) << 6 | _bits(h, 6, 6) << 7
                 | _bits(h, 5, 3) << 1 | _bits(h, 2, 2) << 5, 12)


_RV_HI = ("R_RISCV_HI20", "R_RISCV_PCREL_HI20", "R_RISCV_GOT_HI20")
_RV_LO_I = ("R_RISCV_LO12_I", "R_RISCV_PCREL_LO12_I")
_RV_LO_S = ("R_RISCV_LO12_S", "R_RISCV_PCREL_LO12_S")
_RV_INSN = {
    "R_RISCV_BRANCH": _rv_b, "R_RISCV_JAL": _rv_j,
    "R_RISCV_RVC_BRANCH": _rv_cb, "R_RISCV_RVC_JUMP": _rv_cj,
    **{k: _rv_u for k in _RV_HI}, **{k: _rv_i for k in _RV_LO_I}, **{k: _rv_s for k in _RV_LO_S},
}


def _rv_decode(label: str, r: O.Rule, raw: bytes) -> int:
    if label in ("R_RISCV_CALL", "R_RISCV_CALL_PLT"):       # auipc + jalr
        return _rv_u(int.from_bytes(raw[:4], "little")) + _rv_i(int.from_bytes(raw[4:8], "little"))
    return _RV_INSN[label](int.from_bytes(raw, "little"))


def _rv_kept(label: str, value: int) -> int:
    if label in _RV_HI:
        return O.hi20_part(value)
    if label in _RV_LO_I or label in _RV_LO_S:
        return O.lo12(value)
    return value


# ---------------------------------------------------------------------------

def _is_insn(target: str, label: str, r: O.Rule) -> bool:
    if target.endswith("x64") or r.mask is None:
        return False
    if target == "elf-rv64":
        return label in _RV_INSN or label in ("R_RISCV_CALL", "R_RISCV_CALL_PLT")
    return True


def decode(target: str, label: str, raw: bytes) -> int:
    """The value the field of relocation ``label`` holds in ``raw`` (its
    ``size`` bytes at the place)."""
    r = O.rule(target, label)
    if len(raw) < r.size:
        raise ValueError(f"{label}: {len(raw)} bytes for a {r.size}-byte field")
    raw = bytes(raw[:r.size])
    if _is_insn(target, label, r):
        if target == "elf-rv64":
            return _rv_decode(label, r, raw)
        return _a64_decode(label, r, int.from_bytes(raw, "little"))
    word = int.from_bytes(raw, "little")
    if r.bits is not None:                  # RISC-V SET6/SUB6: the low bits of a byte
        return word & ((1 << r.bits) - 1)
    return _sext(word, 8 * r.size) if _signed_word(r) else word


def kept(target: str, label: str, value: int) -> int:
    """What a correctly patched field of ``label`` decodes to after being
    given the formula value ``value`` (in range)."""
    r = O.rule(target, label)
    if _is_insn(target, label, r):
        if target == "elf-rv64":
            return _rv_kept(label, value)
        return _a64_kept(label, r, value)
    bits = r.bits if r.bits is not None else 8 * r.size
    return _sext(value, bits) if r.bits is None and _signed_word(r) else value & ((1 << bits) - 1)


def branch_bias(target: str, label: str) -> int:
    """Where a PC-relative branch field counts from, relative to its place
    ``P``: x86-64 ``call``/``jmp rel32`` count from the end of the
    instruction, which ends with the 4-byte field (``P + 4``); AArch64 and
    RISC-V branches count from the instruction itself (``P``; for
    ``auipc`` + ``jalr`` the ``auipc``)."""
    return O.rule(target, label).size if target.endswith("x64") else 0
