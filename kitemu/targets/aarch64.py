"""AArch64 (Arm AAELF64 / AAPCS64 psABI, Linux).

What is peculiar about AArch64 for a JIT linker:

* Every instruction is a fixed 32-bit little-endian word, and a fixup is a
  bit field *inside* that word (imm26, imm19, imm14, imm12, imm16, or ADR's
  split immlo:immhi). Encoding is a read-modify-write of the word that must
  leave the opcode and register bits alone.
* Branch fields count instructions, not bytes: the byte offset must be a
  multiple of 4. ``B``/``BL`` (JUMP26/CALL26) reach +-128 MiB, ``B.cond``/
  ``CBZ``/``LDR literal`` (CONDBR19, LD_PREL_LO19) +-1 MiB, ``TBZ``/``TBNZ``
  (TSTBR14) only +-32 KiB. A JIT's code and its callees (host functions,
  other modules) are easily more than 128 MiB apart, so CALL26/JUMP26 that
  cannot reach go through a far-call stub built from the veneer registers
  x16/x17 (IP0/IP1), which the AAPCS64 lets any call clobber:
  ``adrp x16, cell; ldr x16, [x16, :lo12:cell]; br x16``. The short
  conditional branches get no stubs: out of range is an error.
* Addresses are built in two halves. ``ADRP`` yields the 4 KiB page of the
  target relative to the 4 KiB page of the instruction, ``Page(S+A) -
  Page(P)``, reaching +-4 GiB; the psABI's "page" is always 4 KiB, whatever
  the OS page size (16 KiB on Apple, 64 KiB on some Linux kernels). A
  following ``ADD``/``LDR``/``STR`` carries the low 12 bits (``*_LO12_NC``:
  no overflow check, the ``ADRP`` checked the range).
* The load/store ``LO12`` forms store the offset *scaled* by the access size
  (``ldr x0, [x1, #16]`` holds 2), so the low 12 bits of the target must be
  a multiple of the access size (1, 2, 4, 8, 16 bytes): the psABI requires
  the address be aligned, and a misaligned one is an error, never a silent
  truncation of its low bits.
* ``MOVZ``/``MOVK`` groups (MOVW_UABS_G0..G3) build a 64-bit constant 16
  bits at a time. The checked forms (``G0``, ``G1``, ``G2``) make sure no
  higher bits are lost; the ``_NC`` forms and ``G3`` just keep their 16 bits.
* unicorn's AArch64 CPU defaults to a 1 KiB target page size: a backend must
  set 4 KiB (or what the modelled OS uses) explicitly with
  ``ctl_set_page_size`` before mapping memory, so ``fixed_uc_page_size`` is
  None here.
* The return address is in ``x30`` (LR), not on the stack; ``sp`` is 16-byte
  aligned at every call. Linux's AAPCS64 passes variadic arguments like named
  ones (Apple's does not).
* Mach-O (target macho-arm64) uses the same fields: ARM64_RELOC_BRANCH26,
  PAGE21, PAGEOFF12 (whose scale comes from the instruction) and the GOT
  forms, with addends in a separate ARM64_RELOC_ADDEND: see the Mach-O
  section below and kitemu/loader/macho.py.
"""

from __future__ import annotations

import struct

import capstone
import unicorn
from unicorn import arm64_const as A

from ..errors import FixupRangeError
from .base import (Arch, CallConv, DataFixup, Fixup, Formula, RelocSpec,
                   VarargRule, page, sign_extend)

# ---------------------------------------------------------------------------
# Bit helpers on 32-bit little-endian instruction words.


def read_insn(buf, off: int) -> int:
    return struct.unpack_from("<I", buf, off)[0]


def write_insn(buf, off: int, word: int) -> None:
    struct.pack_into("<I", buf, off, word & 0xFFFFFFFF)


def set_bits(word: int, lsb: int, width: int, value: int) -> int:
    """``word`` with bits ``lsb .. lsb+width-1`` replaced by the low ``width``
    bits of ``value``."""
    mask = ((1 << width) - 1) << lsb
    return (word & ~mask & 0xFFFFFFFF) | ((value << lsb) & mask)


def get_bits(word: int, lsb: int, width: int) -> int:
    return (word >> lsb) & ((1 << width) - 1)


def set_imm26(word: int, imm: int) -> int:
    """B/BL: imm26 at bits 0..25."""
    return set_bits(word, 0, 26, imm)


def set_imm19(word: int, imm: int) -> int:
    """B.cond/CBZ/CBNZ/LDR (literal): imm19 at bits 5..23."""
    return set_bits(word, 5, 19, imm)


def set_imm14(word: int, imm: int) -> int:
    """TBZ/TBNZ: imm14 at bits 5..18."""
    return set_bits(word, 5, 14, imm)


def set_imm12(word: int, imm: int) -> int:
    """ADD (immediate), LDR/STR (unsigned offset): imm12 at bits 10..21."""
    return set_bits(word, 10, 12, imm)


def set_imm16(word: int, imm: int) -> int:
    """MOVZ/MOVK/MOVN: imm16 at bits 5..20."""
    return set_bits(word, 5, 16, imm)


def set_adr_imm(word: int, imm: int) -> int:
    """ADR/ADRP: a 21-bit immediate split as immlo (bits 29..30, the low 2
    bits) and immhi (bits 5..23, the high 19 bits)."""
    word = set_bits(word, 29, 2, imm)
    return set_bits(word, 5, 19, imm >> 2)


def get_adr_imm(word: int) -> int:
    """The signed 21-bit immediate of ADR/ADRP."""
    return sign_extend(get_bits(word, 29, 2) | (get_bits(word, 5, 19) << 2), 21)


# ---------------------------------------------------------------------------
# Fixup kinds.


class _InsnFixup(Fixup):
    """A field inside one 32-bit instruction word."""

    size = 4

    def encode_field(self, buf, off, value):
        write_insn(buf, off, self.put(read_insn(buf, off), value))

    def decode_field(self, buf, off):
        return self.get(read_insn(buf, off))

    # subclass hooks on the instruction word
    def put(self, word: int, value: int) -> int:
        raise NotImplementedError

    def get(self, word: int) -> int:
        raise NotImplementedError


class _PCRelBranch(_InsnFixup):
    """A signed word-offset branch field: value = byte offset from P, a
    multiple of 4; the ``bits``-bit field at ``lsb`` holds ``value >> 2``."""

    align = 4

    def __init__(self, name: str, lsb: int, bits: int, setter):
        self.name = name
        self.lsb = lsb
        self.bits = bits
        self._set = setter
        # bits of field + 2 implicit zero bits = signed byte range
        self.bounds = (-(1 << (bits + 1)), (1 << (bits + 1)) - 4)

    def put(self, word, value):
        return self._set(word, value >> 2)

    def get(self, word):
        return sign_extend(get_bits(word, self.lsb, self.bits), self.bits) << 2


class Branch26(_PCRelBranch):
    """B/BL imm26: +-128 MiB."""

    def __init__(self):
        super().__init__("aarch64.Branch26", 0, 26, set_imm26)


class CondBr19(_PCRelBranch):
    """B.cond/CBZ/CBNZ/LDR (literal) imm19 at bits 5..23: +-1 MiB."""

    def __init__(self):
        super().__init__("aarch64.CondBr19", 5, 19, set_imm19)


class TestBr14(_PCRelBranch):
    """TBZ/TBNZ imm14 at bits 5..18: +-32 KiB."""

    __test__ = False    # not a pytest test class despite the name

    def __init__(self):
        super().__init__("aarch64.TestBr14", 5, 14, set_imm14)


class AdrLo21(_InsnFixup):
    """ADR: a signed 21-bit byte offset (+-1 MiB), split immlo:immhi."""

    name = "aarch64.AdrLo21"
    bounds = (-(1 << 20), (1 << 20) - 1)

    def put(self, word, value):
        return set_adr_imm(word, value)

    def get(self, word):
        return get_adr_imm(word)


class AdrpPage21(_InsnFixup):
    """ADRP: value is the byte page delta ``Page(S+A) - Page(P)``, a multiple
    of 4096 within +-4 GiB; the field holds ``value >> 12``."""

    name = "aarch64.AdrpPage21"
    bounds = (-(1 << 32), (1 << 32) - 4096)
    align = 4096

    def put(self, word, value):
        return set_adr_imm(word, value >> 12)

    def get(self, word):
        return get_adr_imm(word) << 12


class AdrpPage21NC(AdrpPage21):
    """ADRP without the overflow check (ADR_PREL_PG_HI21_NC): bits 12..32 of
    the page delta are kept, the rest is some other instruction's business
    (large code model: ``adrp`` + ``movk``)."""

    name = "aarch64.AdrpPage21NC"
    bounds = None

    def roundtrip(self, value):
        return sign_extend(value >> 12, 21) << 12


class AddLo12(_InsnFixup):
    """ADD (immediate) imm12 = ``value & 0xfff``, no check."""

    name = "aarch64.AddLo12"

    def put(self, word, value):
        return set_imm12(word, value & 0xFFF)

    def get(self, word):
        return get_bits(word, 10, 12)

    def roundtrip(self, value):
        return value & 0xFFF


class LdstLo12(_InsnFixup):
    """LDR/STR (unsigned offset) imm12 = ``(value & 0xfff) >> log2(access)``.

    No overflow check, but the low 12 bits must be a multiple of the access
    size (the psABI's "must be aligned"): since ``access`` divides 4096 that
    is exactly ``value % access == 0``, which the base ``align`` checks.
    """

    def __init__(self, access: int):
        self.access = access
        self.shift = access.bit_length() - 1
        self.name = f"aarch64.Ldst{8 * access}Lo12"
        self.align = access

    def put(self, word, value):
        return set_imm12(word, (value & 0xFFF) >> self.shift)

    def get(self, word):
        return get_bits(word, 10, 12) << self.shift

    def roundtrip(self, value):
        return value & 0xFFF


class MovWUAbs(_InsnFixup):
    """MOVZ/MOVK imm16 = ``(value >> 16*group) & 0xffff``.

    Checked forms (``G0``, ``G1``, ``G2``) reject a negative value or one
    with bits above the group; ``_NC`` forms and ``G3`` keep their 16 bits.
    ``decode`` returns the group's bits in place: ``imm16 << 16*group``.
    """

    def __init__(self, group: int, check: bool):
        self.group = group
        self.shift = 16 * group
        self.name = f"aarch64.MovW_G{group}" + ("" if check else "_NC")
        self.bounds = (0, (1 << (self.shift + 16)) - 1) if check else None

    def put(self, word, value):
        return set_imm16(word, (value >> self.shift) & 0xFFFF)

    def get(self, word):
        return get_bits(word, 5, 16) << self.shift

    def roundtrip(self, value):
        return value & (0xFFFF << self.shift)


BRANCH26 = Branch26()
CONDBR19 = CondBr19()
TESTBR14 = TestBr14()
ADR_LO21 = AdrLo21()
ADRP_PAGE21 = AdrpPage21()
ADRP_PAGE21_NC = AdrpPage21NC()
ADD_LO12 = AddLo12()
LDST8_LO12 = LdstLo12(1)
LDST16_LO12 = LdstLo12(2)
LDST32_LO12 = LdstLo12(4)
LDST64_LO12 = LdstLo12(8)
LDST128_LO12 = LdstLo12(16)
MOVW_G0 = MovWUAbs(0, True)
MOVW_G0_NC = MovWUAbs(0, False)
MOVW_G1 = MovWUAbs(1, True)
MOVW_G1_NC = MovWUAbs(1, False)
MOVW_G2 = MovWUAbs(2, True)
MOVW_G2_NC = MovWUAbs(2, False)
MOVW_G3 = MovWUAbs(3, False)      # the top group: nothing above it to lose
DATA64 = DataFixup("aarch64.Data64", 8)
DATA32 = DataFixup("aarch64.Data32", 4)      # psABI: -2^31 <= X < 2^32
DATA16 = DataFixup("aarch64.Data16", 2)      # psABI: -2^15 <= X < 2^16
PREL64 = DataFixup("aarch64.Prel64", 8, "signed")
# AAELF64 checks PREL32 as -2^31 <= X < 2^32 and PREL16 as -2^15 <= X < 2^16
# (the word may be read signed or unsigned); PLT32 is strictly signed.
PREL32 = DataFixup("aarch64.Prel32", 4, "either")
PREL16 = DataFixup("aarch64.Prel16", 2, "either")
PLT32 = DataFixup("aarch64.Plt32", 4, "signed")

F = Formula
ELF_RELOCS: dict[int, RelocSpec] = {
    0: RelocSpec("R_AARCH64_NONE", None, F.NONE),
    256: RelocSpec("R_AARCH64_NONE", None, F.NONE),
    257: RelocSpec("R_AARCH64_ABS64", DATA64, F.ABS),
    258: RelocSpec("R_AARCH64_ABS32", DATA32, F.ABS),
    259: RelocSpec("R_AARCH64_ABS16", DATA16, F.ABS),
    260: RelocSpec("R_AARCH64_PREL64", PREL64, F.PCREL),
    261: RelocSpec("R_AARCH64_PREL32", PREL32, F.PCREL),
    262: RelocSpec("R_AARCH64_PREL16", PREL16, F.PCREL),
    263: RelocSpec("R_AARCH64_MOVW_UABS_G0", MOVW_G0, F.ABS),
    264: RelocSpec("R_AARCH64_MOVW_UABS_G0_NC", MOVW_G0_NC, F.ABS),
    265: RelocSpec("R_AARCH64_MOVW_UABS_G1", MOVW_G1, F.ABS),
    266: RelocSpec("R_AARCH64_MOVW_UABS_G1_NC", MOVW_G1_NC, F.ABS),
    267: RelocSpec("R_AARCH64_MOVW_UABS_G2", MOVW_G2, F.ABS),
    268: RelocSpec("R_AARCH64_MOVW_UABS_G2_NC", MOVW_G2_NC, F.ABS),
    269: RelocSpec("R_AARCH64_MOVW_UABS_G3", MOVW_G3, F.ABS),
    273: RelocSpec("R_AARCH64_LD_PREL_LO19", CONDBR19, F.PCREL),
    274: RelocSpec("R_AARCH64_ADR_PREL_LO21", ADR_LO21, F.PCREL),
    275: RelocSpec("R_AARCH64_ADR_PREL_PG_HI21", ADRP_PAGE21, F.PAGE_PCREL),
    276: RelocSpec("R_AARCH64_ADR_PREL_PG_HI21_NC", ADRP_PAGE21_NC, F.PAGE_PCREL),
    277: RelocSpec("R_AARCH64_ADD_ABS_LO12_NC", ADD_LO12, F.ABS),
    278: RelocSpec("R_AARCH64_LDST8_ABS_LO12_NC", LDST8_LO12, F.ABS),
    279: RelocSpec("R_AARCH64_TSTBR14", TESTBR14, F.PCREL),
    280: RelocSpec("R_AARCH64_CONDBR19", CONDBR19, F.PCREL),
    282: RelocSpec("R_AARCH64_JUMP26", BRANCH26, F.PCREL, branch=True),
    283: RelocSpec("R_AARCH64_CALL26", BRANCH26, F.PCREL, branch=True),
    284: RelocSpec("R_AARCH64_LDST16_ABS_LO12_NC", LDST16_LO12, F.ABS),
    285: RelocSpec("R_AARCH64_LDST32_ABS_LO12_NC", LDST32_LO12, F.ABS),
    286: RelocSpec("R_AARCH64_LDST64_ABS_LO12_NC", LDST64_LO12, F.ABS),
    299: RelocSpec("R_AARCH64_LDST128_ABS_LO12_NC", LDST128_LO12, F.ABS),
    311: RelocSpec("R_AARCH64_ADR_GOT_PAGE", ADRP_PAGE21, F.GOT_PAGE_PCREL),
    312: RelocSpec("R_AARCH64_LD64_GOT_LO12_NC", LDST64_LO12, F.GOT_ABS),
    # `.word f@PLT - .` (relative vtables): S + A - P, signed 32-bit.
    314: RelocSpec("R_AARCH64_PLT32", PLT32, F.PCREL),
}


# ---------------------------------------------------------------------------
# Mach-O relocations (<mach-o/arm64/reloc.h>).
#
# A relocation_info names a type, r_pcrel, r_length (log2 of the field size)
# and r_extern (r_symbolnum is a symbol index, else a 1-based section
# ordinal). The header's words, and the explicit addend ``A`` kitemu derives:
#
# * ARM64_RELOC_UNSIGNED "for pointers": r_pcrel=0, r_length 3 (``.quad``)
#   or 2 (``.long``). The field holds the addend, ``A = field`` (a 32-bit
#   field is read signed).
# * ARM64_RELOC_SUBTRACTOR "must be followed by a ARM64_RELOC_UNSIGNED": the
#   pair stores ``minuend - subtrahend + field`` into a 4- or 8-byte word;
#   macho.py makes it one Formula.DELTA relocation (MACHO_DELTA).
# * ARM64_RELOC_BRANCH26 "a B/BL instruction with 26-bit displacement",
#   ARM64_RELOC_PAGE21 "pc-rel distance to page of target" (ADRP),
#   ARM64_RELOC_PAGEOFF12 "offset within page, scaled by r_length",
#   ARM64_RELOC_GOT_LOAD_PAGE21 / GOT_LOAD_PAGEOFF12 the same for the
#   target's GOT slot. Instruction fields carry no implicit addend: the
#   assembler leaves the immediate 0 and puts a non-zero addend in an
#   ARM64_RELOC_ADDEND just before the relocation ("must be followed by
#   PAGE21 or PAGEOFF12"; LLVM also uses it for BRANCH26). ld64, lld, mold and
#   JITLink all rely on the zero immediate (they OR the value in, or check
#   it), so a non-zero one is refused rather than guessed at. Despite "scaled
#   by r_length", every producer writes r_length=2 and the scale of a
#   load/store is its access size, read from the instruction: see
#   macho_lo12_fixup (GOT_LOAD_PAGEOFF12 is always the 64-bit LDR of the
#   slot). These must be extern (r_extern=1), as every Mach-O linker
#   requires.
# * ARM64_RELOC_POINTER_TO_GOT "for pointers to GOT slots": r_pcrel=1,
#   r_length=2 is ``.long _foo@GOT - .`` (``G + A - P`` in a signed 32-bit
#   word); r_pcrel=0, r_length=3 is ``.quad _foo@GOT`` (``G + A``). Linkers
#   (lld, mold, JITLink) take no addend from the field - and llvm-mc leaves
#   a meaningless section-relative offset there - so ``A = 0``.
# * ARM64_RELOC_ADDEND: r_symbolnum is a 24-bit signed addend for the next
#   relocation, which must be a PAGE21, PAGEOFF12 or BRANCH26 at the same
#   address (macho.py pairs them).
# * ARM64_RELOC_TLVP_LOAD_PAGE21/PAGEOFF12 (thread-local variables) and
#   ARM64_RELOC_AUTHENTICATED_POINTER (arm64e signed pointers): refused.
#
# Non-extern relocations (UNSIGNED only; llvm-mc writes them only in
# sections kitemu does not load, __LD,__compact_unwind and __DWARF) need no
# arch rule: the field holds the target's address in the object's own
# address space, from which macho.py derives ``A``.

ARM64_RELOC_UNSIGNED = 0
ARM64_RELOC_SUBTRACTOR = 1
ARM64_RELOC_BRANCH26 = 2
ARM64_RELOC_PAGE21 = 3
ARM64_RELOC_PAGEOFF12 = 4
ARM64_RELOC_GOT_LOAD_PAGE21 = 5
ARM64_RELOC_GOT_LOAD_PAGEOFF12 = 6
ARM64_RELOC_POINTER_TO_GOT = 7
ARM64_RELOC_TLVP_LOAD_PAGE21 = 8
ARM64_RELOC_TLVP_LOAD_PAGEOFF12 = 9
ARM64_RELOC_ADDEND = 10
ARM64_RELOC_AUTHENTICATED_POINTER = 11

MACHO_RELOC_NAMES = {
    ARM64_RELOC_UNSIGNED: "ARM64_RELOC_UNSIGNED",
    ARM64_RELOC_SUBTRACTOR: "ARM64_RELOC_SUBTRACTOR",
    ARM64_RELOC_BRANCH26: "ARM64_RELOC_BRANCH26",
    ARM64_RELOC_PAGE21: "ARM64_RELOC_PAGE21",
    ARM64_RELOC_PAGEOFF12: "ARM64_RELOC_PAGEOFF12",
    ARM64_RELOC_GOT_LOAD_PAGE21: "ARM64_RELOC_GOT_LOAD_PAGE21",
    ARM64_RELOC_GOT_LOAD_PAGEOFF12: "ARM64_RELOC_GOT_LOAD_PAGEOFF12",
    ARM64_RELOC_POINTER_TO_GOT: "ARM64_RELOC_POINTER_TO_GOT",
    ARM64_RELOC_TLVP_LOAD_PAGE21: "ARM64_RELOC_TLVP_LOAD_PAGE21",
    ARM64_RELOC_TLVP_LOAD_PAGEOFF12: "ARM64_RELOC_TLVP_LOAD_PAGEOFF12",
    ARM64_RELOC_ADDEND: "ARM64_RELOC_ADDEND",
    ARM64_RELOC_AUTHENTICATED_POINTER: "ARM64_RELOC_AUTHENTICATED_POINTER",
}

DELTA32 = DataFixup("aarch64.Delta32", 4, "signed")
DELTA64 = DataFixup("aarch64.Delta64", 8, "signed")
GOT_PREL32 = DataFixup("aarch64.GotPrel32", 4, "signed")


def macho_lo12_fixup(word: int) -> Fixup | None:
    """The fixup of the low-12-bits field of the instruction ``word`` (the
    target of a Mach-O PAGEOFF12), or None if it is not one that has such
    a field.

    * ADD (immediate), 32- or 64-bit, unshifted: ``sf 0 0 100010 0 imm12``
      -> AddLo12, the byte offset.
    * LDR/STR (immediate, unsigned offset) of every register class:
      ``size 111 V 01 opc imm12 Rn Rt``, imm12 scaled by the access size:
      1 << size, except V=1 (SIMD&FP) with size=0 and opc=1x, the 128-bit
      q registers -> Ldst{8,16,32,64,128}Lo12. (LDRS*, PRFM included: their
      scale is also 1 << size.)
    """
    if (word & 0x7FC00000) == 0x11000000:
        return ADD_LO12
    if (word & 0x3B000000) == 0x39000000:
        size = word >> 30
        simd = (word >> 26) & 1
        opc = (word >> 22) & 3
        if simd and size == 0 and opc & 2:
            return LDST128_LO12
        return (LDST8_LO12, LDST16_LO12, LDST32_LO12, LDST64_LO12)[size]
    return None


_LO12_FIXUPS = (ADD_LO12, LDST8_LO12, LDST16_LO12, LDST32_LO12, LDST64_LO12, LDST128_LO12)


def _macho_spec(rtype: int, fixup, formula, branch=False) -> RelocSpec:
    return RelocSpec(MACHO_RELOC_NAMES[rtype], fixup, formula, branch=branch)


#: (r_type, r_pcrel, r_length) -> RelocSpec, for the kinds whose field does
#: not depend on the instruction. BRANCH26 is branch=True: far targets (host
#: functions) get a stub.
MACHO_RELOCS: dict[tuple[int, int, int], RelocSpec] = {
    (ARM64_RELOC_UNSIGNED, 0, 2): _macho_spec(ARM64_RELOC_UNSIGNED, DATA32, F.ABS),
    (ARM64_RELOC_UNSIGNED, 0, 3): _macho_spec(ARM64_RELOC_UNSIGNED, DATA64, F.ABS),
    (ARM64_RELOC_BRANCH26, 1, 2): _macho_spec(ARM64_RELOC_BRANCH26, BRANCH26, F.PCREL, branch=True),
    (ARM64_RELOC_PAGE21, 1, 2): _macho_spec(ARM64_RELOC_PAGE21, ADRP_PAGE21, F.PAGE_PCREL),
    (ARM64_RELOC_GOT_LOAD_PAGE21, 1, 2): _macho_spec(ARM64_RELOC_GOT_LOAD_PAGE21, ADRP_PAGE21,
                                                     F.GOT_PAGE_PCREL),
    (ARM64_RELOC_POINTER_TO_GOT, 1, 2): _macho_spec(ARM64_RELOC_POINTER_TO_GOT, GOT_PREL32,
                                                    F.GOT_PCREL),
    (ARM64_RELOC_POINTER_TO_GOT, 0, 3): _macho_spec(ARM64_RELOC_POINTER_TO_GOT, DATA64, F.GOT_ABS),
}
#: PAGEOFF12 and GOT_LOAD_PAGEOFF12 (r_pcrel=0, r_length=2): fixup chosen by
#: the instruction at the place (macho_lo12_fixup)
MACHO_PAGEOFF12 = {fx: _macho_spec(ARM64_RELOC_PAGEOFF12, fx, F.ABS) for fx in _LO12_FIXUPS}
#: GOT_LOAD_PAGEOFF12 is on the 64-bit LDR that loads the GOT slot (llvm-mc
#: accepts @GOTPAGEOFF on nothing else; JITLink requires the same)
MACHO_GOT_PAGEOFF12 = _macho_spec(ARM64_RELOC_GOT_LOAD_PAGEOFF12, LDST64_LO12, F.GOT_ABS)
_LDR_X_UIMM_MASK, _LDR_X_UIMM = 0xFFC00000, 0xF9400000   # ldr Xt, [Xn, #imm]
#: kinds whose field is an instruction immediate (left 0, addend via ADDEND)
_MACHO_INSN = frozenset({ARM64_RELOC_BRANCH26, ARM64_RELOC_PAGE21, ARM64_RELOC_PAGEOFF12,
                         ARM64_RELOC_GOT_LOAD_PAGE21, ARM64_RELOC_GOT_LOAD_PAGEOFF12})
#: kinds an ARM64_RELOC_ADDEND may precede
MACHO_TAKES_ADDEND = frozenset({ARM64_RELOC_BRANCH26, ARM64_RELOC_PAGE21, ARM64_RELOC_PAGEOFF12})
#: kinds whose r_symbolnum must be a symbol (r_extern=1)
MACHO_EXTERN_ONLY = _MACHO_INSN | {ARM64_RELOC_POINTER_TO_GOT}
MACHO_REFUSED = {
    ARM64_RELOC_TLVP_LOAD_PAGE21: "thread-local variables are not supported",
    ARM64_RELOC_TLVP_LOAD_PAGEOFF12: "thread-local variables are not supported",
    ARM64_RELOC_AUTHENTICATED_POINTER: "arm64e authenticated (signed) pointers are not supported",
}
MACHO_DELTA = {
    2: _macho_spec(ARM64_RELOC_SUBTRACTOR, DELTA32, F.DELTA),
    3: _macho_spec(ARM64_RELOC_SUBTRACTOR, DELTA64, F.DELTA),
}


# ---------------------------------------------------------------------------
# Fixed instructions.

RET = 0xD65F03C0              # ret (x30)
BRK0 = 0xD4200000             # brk #0
_ADRP_X16 = 0x90000010        # adrp x16, #0
_LDR_X16_X16 = 0xF9400210     # ldr x16, [x16, #0]
_BR_X16 = 0xD61F0200          # br x16


def _insn(word: int) -> bytes:
    return struct.pack("<I", word)


class AArch64(Arch):
    # -- Mach-O (see kitemu/loader/macho.py for the protocol) --------------
    macho_unsigned = ARM64_RELOC_UNSIGNED
    macho_subtractor = ARM64_RELOC_SUBTRACTOR
    macho_addend = ARM64_RELOC_ADDEND

    def macho_reloc_name(self, rtype: int) -> str | None:
        return MACHO_RELOC_NAMES.get(rtype)

    def macho_reloc(self, rtype: int, pcrel: int, length: int, extern: bool,
                    data, off: int) -> tuple[RelocSpec, int]:
        """The spec of one (unpaired) relocation and its implicit addend
        when extern (ignored otherwise; an ARM64_RELOC_ADDEND is added by the
        reader). Raises NotImplementedError for a refused kind, ValueError
        for a malformed one."""
        name = MACHO_RELOC_NAMES[rtype]
        if rtype in MACHO_REFUSED:
            raise NotImplementedError(MACHO_REFUSED[rtype])
        if rtype == ARM64_RELOC_PAGEOFF12 and (pcrel, length) == (0, 2):
            word = read_insn(data, off)
            spec = MACHO_PAGEOFF12.get(macho_lo12_fixup(word))
            if spec is None:
                raise ValueError(f"the instruction {word:#010x} at the place is not an ADD "
                                 "(immediate) or a LDR/STR (immediate, unsigned offset)")
        elif rtype == ARM64_RELOC_GOT_LOAD_PAGEOFF12 and (pcrel, length) == (0, 2):
            word = read_insn(data, off)
            if word & _LDR_X_UIMM_MASK != _LDR_X_UIMM:
                raise ValueError(f"the instruction {word:#010x} at the place is not a 64-bit "
                                 "LDR (immediate, unsigned offset), which loads a GOT slot")
            spec = MACHO_GOT_PAGEOFF12
        else:
            spec = MACHO_RELOCS.get((rtype, pcrel, length))
            if spec is None:
                raise ValueError(f"r_pcrel={pcrel} with r_length={length} is not a valid "
                                 f"form of {name}")
        if not extern and rtype in MACHO_EXTERN_ONLY:
            raise ValueError("must refer to a symbol (r_extern=1), not to a section")
        if rtype in _MACHO_INSN:
            imm = spec.fixup.decode(data, off)
            if imm:
                raise ValueError(f"the instruction's immediate field is {imm:#x}, not 0 "
                                 "(Mach-O arm64 addends travel in ARM64_RELOC_ADDEND)")
            return spec, 0
        if rtype == ARM64_RELOC_POINTER_TO_GOT:
            return spec, 0
        field = sign_extend(int.from_bytes(data[off:off + (1 << length)], "little"), 8 << length)
        return spec, field

    def macho_takes_addend(self, rtype: int) -> bool:
        return rtype in MACHO_TAKES_ADDEND

    def macho_delta(self, length: int) -> RelocSpec | None:
        return MACHO_DELTA.get(length)

    def macho_kinds(self) -> set[tuple[str, str, str]]:
        """Every (type name, fixup name, target) the reader can produce, for
        coverage tests: target "extern" (a symbol) or "section" (r_extern=0);
        for a SUBTRACTOR pair "<minuend>-<subtrahend>"."""
        specs = [((r, p, n), s) for (r, p, n), s in MACHO_RELOCS.items()]
        specs += [((ARM64_RELOC_PAGEOFF12, 0, 2), s) for s in MACHO_PAGEOFF12.values()]
        specs += [((ARM64_RELOC_GOT_LOAD_PAGEOFF12, 0, 2), MACHO_GOT_PAGEOFF12)]
        out = set()
        for (rtype, _, _), spec in specs:
            out.add((spec.name, spec.fixup.name, "extern"))
            if rtype not in MACHO_EXTERN_ONLY:
                out.add((spec.name, spec.fixup.name, "section"))
        for spec in MACHO_DELTA.values():
            out |= {(spec.name, spec.fixup.name, f"{a}-{b}")
                    for a in ("extern", "section") for b in ("extern", "section")}
        return out

    # -- everything else ----------------------------------------------------
    def indirect_jump(self, at: int, cell: int) -> bytes:
        """``adrp x16, cell; ldr x16, [x16, :lo12:cell]; br x16; brk #0``.

        x16 (IP0) is the intra-procedure-call scratch register: a veneer may
        clobber it. Raises FixupRangeError when ``cell`` is beyond ADRP's
        +-4 GiB or not 8-byte aligned."""
        code = bytearray(_insn(_ADRP_X16) + _insn(_LDR_X16_X16)
                         + _insn(_BR_X16))
        try:
            ADRP_PAGE21.encode(code, 0, page(cell) - page(at))
            LDST64_LO12.encode(code, 4, cell)
        except FixupRangeError as err:
            raise FixupRangeError(
                "aarch64.IndirectJump", err.value,
                f"{err.detail} ({err.fixup}: cell {cell:#x} from {at:#x})") from None
        code += _insn(BRK0) * ((self.indirect_jump_size - len(code)) // 4)
        return bytes(code)


CALLCONV = CallConv(
    name="aapcs64",
    int_args=tuple(getattr(A, f"UC_ARM64_REG_X{i}") for i in range(8)),
    fp_args=tuple(getattr(A, f"UC_ARM64_REG_D{i}") for i in range(8)),
    int_ret=A.UC_ARM64_REG_X0,
    fp_ret=A.UC_ARM64_REG_D0,
    sp=A.UC_ARM64_REG_SP,
    pc=A.UC_ARM64_REG_PC,
    ra=A.UC_ARM64_REG_LR,
    stack_align=16,
    vararg_rule=VarargRule.LIKE_NAMED,
    stack_args_offset=0,
    fp_reg_bits=64,
)

ARCH = AArch64(
    name="aarch64",
    elf_machine="EM_AARCH64",
    elf_relocs=ELF_RELOCS,
    uc_arch=unicorn.UC_ARCH_ARM64,
    uc_mode=unicorn.UC_MODE_ARM,
    cs_arch=capstone.CS_ARCH_ARM64,
    cs_mode=capstone.CS_MODE_ARM,
    callconv=CALLCONV,
    host_return=_insn(RET),
    trap=_insn(BRK0),
    fixed_uc_page_size=None,
    indirect_jump_size=16,
)
