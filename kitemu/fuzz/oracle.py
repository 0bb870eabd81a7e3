"""The fuzzer's own relocation rules, written from the psABI documents.

Deliberately *not* derived from kitemu's ``RelocSpec``/``Fixup`` objects:
for each relocation label of each target this table says

* the formula, as the psABI writes it (``S + A - P``, ``Page(S + A) -
  Page(P)``, ``G + A - P``, ``V + S + A``...);
* the range of values the field accepts (``lo``/``hi`` inclusive, None for
  the ``*_NC`` kinds and data words that keep their low bits) and the
  alignment the value must have;
* whether an out-of-range value may be sent through a far-call stub
  (calls/jumps in code: AArch64 ``B``/``BL``, RISC-V ``jal``/``call``/
  ``c.j``, x86-64 ``call``/``jmp rel32``);
* which bits of the bytes at the place the fixup may change (``mask``,
  little-endian over ``size`` bytes): every other bit of the section must be
  left exactly as the object had it.

Sources: AMD64 SysV psABI 1.0 §4.4; ELF for the Arm 64-bit Architecture
(AAELF64) §5.7; RISC-V ELF psABI 1.0 "Relocations"; <mach-o/x86_64/reloc.h>
and <mach-o/arm64/reloc.h>. Where the documents leave an overflow check
open, kitemu's documented choice (never truncate) is written down with a
note: R_RISCV_32, R_X86_64_16/8 (lld checks them the same way).
"""

from __future__ import annotations

from dataclasses import dataclass

# formulas
NONE = "none"
ABS = "S + A"
PCREL = "S + A - P"
GOT_PCREL = "G + A - P"
GOT_ABS = "G + A"
PAGE = "Page(S + A) - Page(P)"
GOT_PAGE = "Page(G + A) - Page(P)"
PCREL_LO = "lo12 of the paired HI20's value"
ADD = "V + S + A"
SUB = "V - (S + A)"
SET = "S + A (replacing V)"
DELTA = "S + A - T"

GOT_FORMULAS = (GOT_PCREL, GOT_ABS, GOT_PAGE)
ADDITIVE = (ADD, SUB, SET)


def signed(bits: int) -> tuple[int, int]:
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def unsigned(bits: int) -> tuple[int, int]:
    return 0, (1 << bits) - 1


def either(bits: int) -> tuple[int, int]:
    """-2^(n-1) <= X < 2^n: the word may be read signed or unsigned."""
    return -(1 << (bits - 1)), (1 << bits) - 1


ANY = (None, None)


@dataclass(frozen=True)
class Rule:
    formula: str
    size: int                  # bytes at the place the relocation owns
    lo: int | None = None      # inclusive accepted range (None: not checked)
    hi: int | None = None
    align: int = 1             # the value must be a multiple of this
    stub: bool = False         # out of reach -> may go through a far-call stub
    mask: int | None = None    # bits it may change (None: every bit of ``size`` bytes)
    #: x86-64: a stub is allowed only when the byte before the field is a
    #: call/jmp rel32 opcode
    needs_call_opcode: bool = False
    #: the bit-field of a data byte (RISC-V SET6/SUB6): low 6 bits
    bits: int | None = None

    @property
    def checked(self) -> bool:
        return self.lo is not None

    def in_range(self, value: int) -> bool:
        if self.lo is not None and not self.lo <= value <= self.hi:
            return False
        return value % self.align == 0

    def field_mask(self) -> int:
        return self.mask if self.mask is not None else (1 << (8 * self.size)) - 1

    @property
    def additive(self) -> bool:
        return self.formula in ADDITIVE


def _r(formula, size, rng=ANY, align=1, **kw) -> Rule:
    return Rule(formula, size, rng[0], rng[1], align, **kw)


# -- x86-64 ---------------------------------------------------------------------
_X64 = {
    "R_X86_64_NONE": _r(NONE, 0),
    "R_X86_64_64": _r(ABS, 8, either(64)),
    "R_X86_64_PC32": _r(PCREL, 4, signed(32), stub=True, needs_call_opcode=True),
    "R_X86_64_PLT32": _r(PCREL, 4, signed(32), stub=True, needs_call_opcode=True),
    "R_X86_64_GOTPCREL": _r(GOT_PCREL, 4, signed(32)),
    "R_X86_64_32": _r(ABS, 4, unsigned(32)),         # zero-extended
    "R_X86_64_32S": _r(ABS, 4, signed(32)),          # sign-extended
    "R_X86_64_16": _r(ABS, 2, either(16)),           # word16 (lld: checkIntUInt)
    "R_X86_64_PC16": _r(PCREL, 2, signed(16)),
    "R_X86_64_8": _r(ABS, 1, either(8)),
    "R_X86_64_PC8": _r(PCREL, 1, signed(8)),
    "R_X86_64_PC64": _r(PCREL, 8, signed(64)),
    "R_X86_64_GOTPCRELX": _r(GOT_PCREL, 4, signed(32)),
    "R_X86_64_REX_GOTPCRELX": _r(GOT_PCREL, 4, signed(32)),
}
_MACHO_X64 = {
    "X86_64_RELOC_UNSIGNED:Data32": _r(ABS, 4, unsigned(32)),
    "X86_64_RELOC_UNSIGNED:Data64": _r(ABS, 8, either(64)),
    "X86_64_RELOC_SIGNED": _r(PCREL, 4, signed(32)),
    "X86_64_RELOC_BRANCH": _r(PCREL, 4, signed(32), stub=True, needs_call_opcode=True),
    "X86_64_RELOC_GOT_LOAD": _r(GOT_PCREL, 4, signed(32)),
    "X86_64_RELOC_GOT": _r(GOT_PCREL, 4, signed(32)),
    "X86_64_RELOC_SIGNED_1": _r(PCREL, 4, signed(32)),
    "X86_64_RELOC_SIGNED_2": _r(PCREL, 4, signed(32)),
    "X86_64_RELOC_SIGNED_4": _r(PCREL, 4, signed(32)),
    "X86_64_RELOC_SUBTRACTOR:Delta32": _r(DELTA, 4, signed(32)),
    "X86_64_RELOC_SUBTRACTOR:Delta64": _r(DELTA, 8, signed(64)),
}

# -- AArch64 --------------------------------------------------------------------
B26 = 0x03FFFFFF
IMM19 = 0x00FFFFE0
IMM14 = 0x0007FFE0
ADR = 0x60FFFFE0
IMM12 = 0x003FFC00
IMM16 = 0x001FFFE0


def _ldst(access: int, formula=ABS) -> Rule:
    return _r(formula, 4, ANY, access, mask=IMM12)


_A64 = {
    "R_AARCH64_NONE": _r(NONE, 0),
    "R_AARCH64_ABS64": _r(ABS, 8, either(64)),
    "R_AARCH64_ABS32": _r(ABS, 4, either(32)),
    "R_AARCH64_ABS16": _r(ABS, 2, either(16)),
    # AAELF64 lists no overflow check for PREL64: a 64-bit place holds any value
    # mod 2^64. kitemu (like x86-64 PC64) reads it as a signed offset and refuses
    # the values no signed 64-bit offset expresses instead of wrapping them.
    "R_AARCH64_PREL64": _r(PCREL, 8, signed(64)),
    "R_AARCH64_PREL32": _r(PCREL, 4, either(32)),
    "R_AARCH64_PREL16": _r(PCREL, 2, either(16)),
    "R_AARCH64_PLT32": _r(PCREL, 4, signed(32)),
    "R_AARCH64_MOVW_UABS_G0": _r(ABS, 4, unsigned(16), mask=IMM16),
    "R_AARCH64_MOVW_UABS_G0_NC": _r(ABS, 4, ANY, mask=IMM16),
    "R_AARCH64_MOVW_UABS_G1": _r(ABS, 4, unsigned(32), mask=IMM16),
    "R_AARCH64_MOVW_UABS_G1_NC": _r(ABS, 4, ANY, mask=IMM16),
    "R_AARCH64_MOVW_UABS_G2": _r(ABS, 4, unsigned(48), mask=IMM16),
    "R_AARCH64_MOVW_UABS_G2_NC": _r(ABS, 4, ANY, mask=IMM16),
    "R_AARCH64_MOVW_UABS_G3": _r(ABS, 4, ANY, mask=IMM16),
    "R_AARCH64_LD_PREL_LO19": _r(PCREL, 4, signed(21), 4, mask=IMM19),
    "R_AARCH64_ADR_PREL_LO21": _r(PCREL, 4, signed(21), mask=ADR),
    "R_AARCH64_ADR_PREL_PG_HI21": _r(PAGE, 4, signed(33), 4096, mask=ADR),
    "R_AARCH64_ADR_PREL_PG_HI21_NC": _r(PAGE, 4, ANY, 4096, mask=ADR),
    "R_AARCH64_ADD_ABS_LO12_NC": _r(ABS, 4, ANY, mask=IMM12),
    "R_AARCH64_LDST8_ABS_LO12_NC": _ldst(1),
    "R_AARCH64_LDST16_ABS_LO12_NC": _ldst(2),
    "R_AARCH64_LDST32_ABS_LO12_NC": _ldst(4),
    "R_AARCH64_LDST64_ABS_LO12_NC": _ldst(8),
    "R_AARCH64_LDST128_ABS_LO12_NC": _ldst(16),
    "R_AARCH64_TSTBR14": _r(PCREL, 4, signed(16), 4, mask=IMM14),
    "R_AARCH64_CONDBR19": _r(PCREL, 4, signed(21), 4, mask=IMM19),
    "R_AARCH64_JUMP26": _r(PCREL, 4, signed(28), 4, stub=True, mask=B26),
    "R_AARCH64_CALL26": _r(PCREL, 4, signed(28), 4, stub=True, mask=B26),
    "R_AARCH64_ADR_GOT_PAGE": _r(GOT_PAGE, 4, signed(33), 4096, mask=ADR),
    "R_AARCH64_LD64_GOT_LO12_NC": _ldst(8, GOT_ABS),
}
_MACHO_A64 = {
    "ARM64_RELOC_UNSIGNED:Data32": _r(ABS, 4, either(32)),
    "ARM64_RELOC_UNSIGNED:Data64": _r(ABS, 8, either(64)),
    "ARM64_RELOC_BRANCH26": _r(PCREL, 4, signed(28), 4, stub=True, mask=B26),
    "ARM64_RELOC_PAGE21": _r(PAGE, 4, signed(33), 4096, mask=ADR),
    "ARM64_RELOC_GOT_LOAD_PAGE21": _r(GOT_PAGE, 4, signed(33), 4096, mask=ADR),
    "ARM64_RELOC_POINTER_TO_GOT:GotPrel32": _r(GOT_PCREL, 4, signed(32)),
    "ARM64_RELOC_POINTER_TO_GOT:Data64": _r(GOT_ABS, 8, either(64)),
    "ARM64_RELOC_PAGEOFF12:AddLo12": _r(ABS, 4, ANY, mask=IMM12),
    "ARM64_RELOC_PAGEOFF12:Ldst8Lo12": _ldst(1),
    "ARM64_RELOC_PAGEOFF12:Ldst16Lo12": _ldst(2),
    "ARM64_RELOC_PAGEOFF12:Ldst32Lo12": _ldst(4),
    "ARM64_RELOC_PAGEOFF12:Ldst64Lo12": _ldst(8),
    "ARM64_RELOC_PAGEOFF12:Ldst128Lo12": _ldst(16),
    "ARM64_RELOC_GOT_LOAD_PAGEOFF12": _ldst(8, GOT_ABS),
    "ARM64_RELOC_SUBTRACTOR:Delta32": _r(DELTA, 4, signed(32)),
    "ARM64_RELOC_SUBTRACTOR:Delta64": _r(DELTA, 8, signed(64)),
}

# -- RISC-V ---------------------------------------------------------------------
#: lui/auipc + 12-bit signed low part: hi = (v + 0x800) >> 12 must fit 20 bits
HI20 = (-(1 << 31) - 0x800, (1 << 31) - 0x801)
U = 0xFFFFF000
I = 0xFFF00000
S = 0xFE000F80
J = 0xFFFFF000
B = 0xFE000F80
CB = 0x1C7C
CJ = 0x1FFC

_RV = {
    "R_RISCV_NONE": _r(NONE, 0),
    "R_RISCV_32": _r(ABS, 4, either(32)),          # psABI: word32; kitemu/lld-17 check it
    "R_RISCV_64": _r(ABS, 8, either(64)),
    "R_RISCV_BRANCH": _r(PCREL, 4, signed(13), 2, mask=B),
    "R_RISCV_JAL": _r(PCREL, 4, signed(21), 2, stub=True, mask=J),
    "R_RISCV_CALL": _r(PCREL, 8, HI20, stub=True, mask=U | I << 32),
    "R_RISCV_CALL_PLT": _r(PCREL, 8, HI20, stub=True, mask=U | I << 32),
    "R_RISCV_GOT_HI20": _r(GOT_PCREL, 4, HI20, mask=U),
    "R_RISCV_PCREL_HI20": _r(PCREL, 4, HI20, mask=U),
    "R_RISCV_PCREL_LO12_I": _r(PCREL_LO, 4, ANY, mask=I),
    "R_RISCV_PCREL_LO12_S": _r(PCREL_LO, 4, ANY, mask=S),
    "R_RISCV_HI20": _r(ABS, 4, HI20, mask=U),
    "R_RISCV_LO12_I": _r(ABS, 4, ANY, mask=I),
    "R_RISCV_LO12_S": _r(ABS, 4, ANY, mask=S),
    "R_RISCV_ADD8": _r(ADD, 1),
    "R_RISCV_ADD16": _r(ADD, 2),
    "R_RISCV_ADD32": _r(ADD, 4),
    "R_RISCV_ADD64": _r(ADD, 8),
    "R_RISCV_SUB8": _r(SUB, 1),
    "R_RISCV_SUB16": _r(SUB, 2),
    "R_RISCV_SUB32": _r(SUB, 4),
    "R_RISCV_SUB64": _r(SUB, 8),
    "R_RISCV_ALIGN": _r(NONE, 0),
    "R_RISCV_RVC_BRANCH": _r(PCREL, 2, signed(9), 2, mask=CB),
    "R_RISCV_RVC_JUMP": _r(PCREL, 2, signed(12), 2, stub=True, mask=CJ),
    "R_RISCV_RELAX": _r(NONE, 0),
    "R_RISCV_SUB6": _r(SUB, 1, mask=0x3F, bits=6),
    "R_RISCV_SET6": _r(SET, 1, mask=0x3F, bits=6),
    "R_RISCV_SET8": _r(SET, 1),
    "R_RISCV_SET16": _r(SET, 2),
    "R_RISCV_SET32": _r(SET, 4),
    "R_RISCV_32_PCREL": _r(PCREL, 4, signed(32)),
    "R_RISCV_PLT32": _r(PCREL, 4, signed(32)),
}

RULES: dict[str, dict[str, Rule]] = {
    "elf-x64": _X64,
    "elf-aarch64": _A64,
    "elf-rv64": _RV,
    "macho-x64": _MACHO_X64,
    "macho-arm64": _MACHO_A64,
}

#: RISC-V kinds whose value is the pair partner's (PCREL_LO12_*), and the
#: HI20 kinds a PCREL_LO12 may pair with
RV_LO_KINDS = ("R_RISCV_PCREL_LO12_I", "R_RISCV_PCREL_LO12_S")
RV_HI_KINDS = ("R_RISCV_PCREL_HI20", "R_RISCV_GOT_HI20")


def rule(target: str, label: str) -> Rule:
    return RULES[target][label]


def page(x: int) -> int:
    return x & ~0xFFF


def lo12(v: int) -> int:
    """Sign-extended low 12 bits (RISC-V I/S immediates)."""
    v &= 0xFFF
    return v - 0x1000 if v & 0x800 else v


def hi20_part(v: int) -> int:
    """What the HI20 instruction contributes: ``v - lo12(v)``."""
    return v - lo12(v)


def evaluate(formula: str, *, S: int = 0, A: int = 0, P: int = 0, G: int = 0, T: int = 0,
             V: int = 0) -> int:
    """The psABI value of ``formula`` (not the PCREL_LO pairing)."""
    if formula == ABS or formula == SET:
        return S + A
    if formula == PCREL:
        return S + A - P
    if formula == GOT_PCREL:
        return G + A - P
    if formula == GOT_ABS:
        return G + A
    if formula == PAGE:
        return page(S + A) - page(P)
    if formula == GOT_PAGE:
        return page(G + A) - page(P)
    if formula == ADD:
        return V + S + A
    if formula == SUB:
        return V - (S + A)
    if formula == DELTA:
        return S + A - T
    raise ValueError(formula)
