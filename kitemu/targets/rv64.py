"""RISC-V 64 (RV64GC, LP64D psABI, Linux).

What is peculiar about RISC-V for a JIT linker:

* Instructions are 32-bit little-endian words, or 16-bit with the C
  extension (RVC): a fixup is a bit field inside a 2- or 4-byte
  instruction, and the immediate bits are *scrambled* differently by each
  format (J: ``imm[20|10:1|11|19:12]``, B: ``imm[12|10:5]`` ...
  ``imm[4:1|11]``, S: split across bits 31:25 and 11:7, the RVC formats worse
  still). Encoding is a read-modify-write that leaves opcode and register
  bits alone. Code is only 2-byte aligned, so every branch/jump offset must be
  even.
* A 32-bit address or offset is built in two halves: ``lui``/``auipc`` carry
  ``imm[31:12]`` and a following I-type (``addi``/``ld``/``jalr``) or S-type
  (``sd``) carries a *sign-extended* ``imm[11:0]``. Because the low half is
  signed, the high half is rounded: ``hi = (v + 0x800) >> 12``,
  ``lo = sign_extend(v & 0xfff, 12)``, so ``(hi << 12) + lo == v``. The pair
  reaches ``[-2^31 - 0x800, 2^31 - 0x801]``. The low halves (``*LO12*``)
  never overflow and are never checked; the ``HI20`` half is.
* ``R_RISCV_PCREL_LO12_I``/``_S`` do **not** point at the target. Their
  symbol is the *label of the ``auipc``* that carries the paired
  ``R_RISCV_PCREL_HI20`` (or ``R_RISCV_GOT_HI20``), and the value they encode
  is the low 12 bits of *that* relocation's value (``S + A - P`` of the
  ``auipc``, not of the ``addi``). The linker resolves the pair
  (:attr:`Formula.PCREL_LO`, :data:`PCREL_HI_TYPES`); the LO relocation's own
  addend is ignored (lld warns about a non-zero one).
* ``R_RISCV_HI20``/``LO12_*`` (``lui``, the medlow code model) hold an
  *absolute* address, so they only link when the symbol lies in the
  sign-extended 32-bit range ``[-2^31 - 0x800, 2^31 - 0x801]``; a JIT that
  places data above 2 GiB cannot link medlow code, and that is an error, not
  a truncation. (The linker must hand such fields a signed value: an address
  in the top 2 GiB of the 64-bit space is a negative number here.)
* ``R_RISCV_CALL``/``CALL_PLT`` patch an ``auipc ra|t1, hi``;
  ``jalr ra|x0, lo(ra|t1)`` *pair* (8 bytes, +-2 GiB, :class:`Call`).
  ``jal`` (``R_RISCV_JAL``) reaches only +-1 MiB, conditional branches
  (``R_RISCV_BRANCH``) +-4 KiB, ``c.beqz``/``c.bnez`` (``RVC_BRANCH``)
  +-256 B and ``c.j`` (``RVC_JUMP``) +-2 KiB. Out-of-reach calls and jumps
  go through a far-call stub ``auipc t1; ld t1; jr t1`` (t1 is the
  psABI's scratch for ``tail`` and PLT code); branches get no stub. On RV64
  ``c.jal`` does not exist (its encoding is ``c.addiw``), so ``RVC_JUMP`` is
  always ``c.j``.
* Label differences in data (``.word b - a``, DWARF/eh_frame lengths and
  ``DW_CFA_advance_loc``) are not folded by the assembler when linker
  relaxation may move the labels: they come as ``ADD*``/``SUB*`` pairs (and
  ``SET*``/``SUB6``) at the same place, each a read-modify-write of the word
  computed modulo the word size (``SET6``/``SUB6`` touch only the low 6 bits
  of the byte, the rest is the CFA opcode).
* ``R_RISCV_RELAX`` invites the linker to shrink the preceding instruction
  (e.g. ``auipc``+``jalr`` to ``jal``) and ``R_RISCV_ALIGN`` marks NOP padding
  that a relaxing linker must trim to restore alignment. kitemu never
  relaxes (never deletes bytes), so RELAX is ignored and ALIGN's padding NOPs
  simply stay where the assembler put them: the code is correct, only the
  alignment hint is lost. Both are :attr:`Formula.NONE`.
* LP64D passes named ``float``/``double`` arguments in ``fa0``-``fa7`` but
  *unnamed* (variadic) ones in integer registers
  (:attr:`VarargRule.FLOATS_IN_GPRS`). The return address is in ``ra`` (x1);
  ``sp`` is 16-byte aligned.
* unicorn's RISC-V CPU has a fixed 4 KiB page size (``ctl_set_page_size``
  fails with UC_ERR_ARG).
* ebreak quirks (unicorn 2.1.4): ``ebreak``/``c.ebreak`` never reach a
  ``UC_HOOK_INTR`` hook; emulation stops with ``UC_ERR_INSN_INVALID`` (a
  ``UC_HOOK_INSN_INVALID`` hook is called) and the PC is left *on* the
  ``ebreak``. A real illegal instruction (``unimp``, or ``c.unimp`` = zeroed
  memory) does raise interrupt 2 to ``UC_HOOK_INTR`` (``UC_ERR_EXCEPTION``
  without a hook), but the PC then reads 4 past the faulting instruction,
  even a 2-byte one. kitemu's trap is therefore ``ebreak``: it stops the
  emulator without any hook and reports the exact trap address. capstone
  reports branch/jump immediates as the *offset* from the instruction, not
  the absolute target.
"""

from __future__ import annotations

import struct

import capstone
import unicorn
from unicorn import riscv_const as R

from ..errors import FixupRangeError
from .base import (Arch, BitFieldDataFixup, CallConv, DataFixup, Fixup,
                   Formula, RelocSpec, VarargRule, WrappingDataFixup,
                   fits_signed, fits_unsigned, read_le, sign_extend, write_le)

# ---------------------------------------------------------------------------
# Immediate scrambling. A layout is a tuple of (value_lo, value_hi, word_lo):
# bits value_lo..value_hi of the immediate live at word_lo.. of the
# instruction word.

Layout = tuple[tuple[int, int, int], ...]

I_LAYOUT: Layout = ((0, 11, 20),)
S_LAYOUT: Layout = ((0, 4, 7), (5, 11, 25))
U_LAYOUT: Layout = ((12, 31, 12),)
J_LAYOUT: Layout = ((1, 10, 21), (11, 11, 20), (12, 19, 12), (20, 20, 31))
B_LAYOUT: Layout = ((1, 4, 8), (5, 10, 25), (11, 11, 7), (12, 12, 31))
#: c.beqz / c.bnez: offset[8|4:3] at 12:10, offset[7:6|2:1|5] at 6:2
CB_LAYOUT: Layout = ((1, 2, 3), (3, 4, 10), (5, 5, 2), (6, 7, 5), (8, 8, 12))
#: c.j: offset[11|4|9:8|10|6|7|3:1|5] at 12:2
CJ_LAYOUT: Layout = ((1, 3, 3), (4, 4, 11), (5, 5, 2), (6, 6, 7), (7, 7, 6),
                     (8, 9, 9), (10, 10, 8), (11, 11, 12))


def layout_mask(layout: Layout) -> int:
    """The instruction bits a layout owns."""
    mask = 0
    for lo, hi, wlo in layout:
        mask |= ((1 << (hi - lo + 1)) - 1) << wlo
    return mask


def scatter(layout: Layout, imm: int) -> int:
    """The immediate's bits placed where ``layout`` puts them (no check)."""
    word = 0
    for lo, hi, wlo in layout:
        word |= ((imm >> lo) & ((1 << (hi - lo + 1)) - 1)) << wlo
    return word


def gather(layout: Layout, word: int) -> int:
    """The immediate held by ``word``, sign-extended from its top bit."""
    imm = 0
    top = 0
    for lo, hi, wlo in layout:
        imm |= ((word >> wlo) & ((1 << (hi - lo + 1)) - 1)) << lo
        top = max(top, hi)
    return sign_extend(imm, top + 1)


def hi20(value: int) -> int:
    """The rounded upper 20 bits (``lui``/``auipc`` immediate), as a signed
    number: ``(hi20(v) << 12) + lo12(v) == v``."""
    return (value + 0x800) >> 12


def lo12(value: int) -> int:
    """The sign-extended low 12 bits (``addi``/``ld``/``sd``/``jalr``)."""
    return sign_extend(value & 0xFFF, 12)


#: the values a hi20/lo12 pair can reach
HI20_BOUNDS = (-(1 << 31) - 0x800, (1 << 31) - 0x801)

# ---------------------------------------------------------------------------
# Fixups


class _ScatteredFixup(Fixup):
    """An immediate scattered over a 2- or 4-byte instruction."""

    layout: Layout = ()

    def encode_field(self, buf, off, value):
        word = read_le(buf, off, self.size)
        mask = layout_mask(self.layout)
        write_le(buf, off, self.size, (word & ~mask) | scatter(self.layout, value))

    def decode_field(self, buf, off):
        return gather(self.layout, read_le(buf, off, self.size))


class UTypeHi20(Fixup):
    """``lui``/``auipc`` imm[31:12]: the rounded upper half of a 32-bit value.

    The value is the whole offset/address; the field keeps ``hi20(value)`` and
    decodes to its contribution ``hi20(value) << 12``; the paired LO12 fixup
    supplies the rest."""

    name = "rv64.UTypeHi20"
    size = 4
    bounds = HI20_BOUNDS

    def encode_field(self, buf, off, value):
        word = read_le(buf, off, 4)
        write_le(buf, off, 4, (word & 0xFFF) | ((hi20(value) & 0xFFFFF) << 12))

    def decode_field(self, buf, off):
        return sign_extend(read_le(buf, off, 4) >> 12, 20) << 12

    def roundtrip(self, value):
        return hi20(value) << 12


class ITypeLo12(_ScatteredFixup):
    """I-type imm[11:0] (``addi``, loads, ``jalr``): the low 12 bits of the
    value, read back sign-extended. Never checked (the HI20 half is)."""

    name = "rv64.ITypeLo12"
    size = 4
    bounds = None
    layout = I_LAYOUT

    def roundtrip(self, value):
        return lo12(value)


class STypeLo12(_ScatteredFixup):
    """S-type imm[11:5] at bits 31:25, imm[4:0] at 11:7 (stores)."""

    name = "rv64.STypeLo12"
    size = 4
    bounds = None
    layout = S_LAYOUT

    def roundtrip(self, value):
        return lo12(value)


class Call(Fixup):
    """``auipc rX, hi`` at ``off`` and ``jalr rY, lo(rX)`` at ``off + 4``
    (R_RISCV_CALL/CALL_PLT): value ``S + A - P`` with P the ``auipc``."""

    name = "rv64.Call"
    size = 8
    bounds = HI20_BOUNDS

    def encode_field(self, buf, off, value):
        U_HI20.encode_field(buf, off, value)
        I_LO12.encode_field(buf, off + 4, value)

    def decode_field(self, buf, off):
        return U_HI20.decode_field(buf, off) + I_LO12.decode_field(buf, off + 4)


class JType(_ScatteredFixup):
    """``jal`` offset imm[20|10:1|11|19:12]: +-1 MiB, even."""

    name = "rv64.JType"
    size = 4
    bounds = (-(1 << 20), (1 << 20) - 2)
    align = 2
    layout = J_LAYOUT


class BType(_ScatteredFixup):
    """Conditional branch offset imm[12|10:5] / imm[4:1|11]: +-4 KiB, even."""

    name = "rv64.BType"
    size = 4
    bounds = (-(1 << 12), (1 << 12) - 2)
    align = 2
    layout = B_LAYOUT


class CBType(_ScatteredFixup):
    """``c.beqz``/``c.bnez`` 9-bit offset: +-256 B, even, 2-byte insn."""

    name = "rv64.CBType"
    size = 2
    bounds = (-(1 << 8), (1 << 8) - 2)
    align = 2
    layout = CB_LAYOUT


class CJType(_ScatteredFixup):
    """``c.j`` 12-bit offset: +-2 KiB, even, 2-byte insn."""

    name = "rv64.CJType"
    size = 2
    bounds = (-(1 << 11), (1 << 11) - 2)
    align = 2
    layout = CJ_LAYOUT


U_HI20 = UTypeHi20()
I_LO12 = ITypeLo12()
S_LO12 = STypeLo12()
CALL = Call()
JTYPE = JType()
BTYPE = BType()
CBTYPE = CBType()
CJTYPE = CJType()

DATA64 = DataFixup("rv64.Data64", 8)
DATA32 = DataFixup("rv64.Data32", 4)                # -2^31 <= X < 2^32
PCREL32 = DataFixup("rv64.Pcrel32", 4, "signed")
ADD8 = WrappingDataFixup("rv64.Add8", 1)
ADD16 = WrappingDataFixup("rv64.Add16", 2)
ADD32 = WrappingDataFixup("rv64.Add32", 4)
ADD64 = WrappingDataFixup("rv64.Add64", 8)
SUB8 = WrappingDataFixup("rv64.Sub8", 1)
SUB16 = WrappingDataFixup("rv64.Sub16", 2)
SUB32 = WrappingDataFixup("rv64.Sub32", 4)
SUB64 = WrappingDataFixup("rv64.Sub64", 8)
SET8 = WrappingDataFixup("rv64.Set8", 1)
SET16 = WrappingDataFixup("rv64.Set16", 2)
SET32 = WrappingDataFixup("rv64.Set32", 4)
SET6 = BitFieldDataFixup("rv64.Set6", 6)
SUB6 = BitFieldDataFixup("rv64.Sub6", 6)

F = Formula
ELF_RELOCS: dict[int, RelocSpec] = {
    0: RelocSpec("R_RISCV_NONE", None, F.NONE),
    1: RelocSpec("R_RISCV_32", DATA32, F.ABS),
    2: RelocSpec("R_RISCV_64", DATA64, F.ABS),
    16: RelocSpec("R_RISCV_BRANCH", BTYPE, F.PCREL),
    17: RelocSpec("R_RISCV_JAL", JTYPE, F.PCREL, branch=True),
    18: RelocSpec("R_RISCV_CALL", CALL, F.PCREL, branch=True),
    19: RelocSpec("R_RISCV_CALL_PLT", CALL, F.PCREL, branch=True),
    20: RelocSpec("R_RISCV_GOT_HI20", U_HI20, F.GOT_PCREL, hi_part=True),
    23: RelocSpec("R_RISCV_PCREL_HI20", U_HI20, F.PCREL, hi_part=True),
    24: RelocSpec("R_RISCV_PCREL_LO12_I", I_LO12, F.PCREL_LO),
    25: RelocSpec("R_RISCV_PCREL_LO12_S", S_LO12, F.PCREL_LO),
    26: RelocSpec("R_RISCV_HI20", U_HI20, F.ABS),
    27: RelocSpec("R_RISCV_LO12_I", I_LO12, F.ABS),
    28: RelocSpec("R_RISCV_LO12_S", S_LO12, F.ABS),
    33: RelocSpec("R_RISCV_ADD8", ADD8, F.ADD),
    34: RelocSpec("R_RISCV_ADD16", ADD16, F.ADD),
    35: RelocSpec("R_RISCV_ADD32", ADD32, F.ADD),
    36: RelocSpec("R_RISCV_ADD64", ADD64, F.ADD),
    37: RelocSpec("R_RISCV_SUB8", SUB8, F.SUB),
    38: RelocSpec("R_RISCV_SUB16", SUB16, F.SUB),
    39: RelocSpec("R_RISCV_SUB32", SUB32, F.SUB),
    40: RelocSpec("R_RISCV_SUB64", SUB64, F.SUB),
    43: RelocSpec("R_RISCV_ALIGN", None, F.NONE),
    44: RelocSpec("R_RISCV_RVC_BRANCH", CBTYPE, F.PCREL),
    45: RelocSpec("R_RISCV_RVC_JUMP", CJTYPE, F.PCREL, branch=True),
    51: RelocSpec("R_RISCV_RELAX", None, F.NONE),
    52: RelocSpec("R_RISCV_SUB6", SUB6, F.SUB),
    53: RelocSpec("R_RISCV_SET6", SET6, F.ABS),
    54: RelocSpec("R_RISCV_SET8", SET8, F.ABS),
    55: RelocSpec("R_RISCV_SET16", SET16, F.ABS),
    56: RelocSpec("R_RISCV_SET32", SET32, F.ABS),
    57: RelocSpec("R_RISCV_32_PCREL", PCREL32, F.PCREL),
    # `.word f@plt - .` (relative vtables); a data word, never a stub site
    59: RelocSpec("R_RISCV_PLT32", PCREL32, F.PCREL),
}

#: relocation types a PCREL_LO12_I/S may pair with (at the auipc its symbol
#: labels); the LO encodes the low 12 bits of that relocation's value.
PCREL_HI_TYPES = frozenset(n for n, spec in ELF_RELOCS.items() if spec.hi_part)

# ---------------------------------------------------------------------------
# Instruction encoders. Register numbers are x0..x31 (ABI names below).

ZERO, RA, SP, GP, TP, T0, T1, T2 = range(8)
S0, S1 = 8, 9
A0, A1, A2, A3, A4, A5, A6, A7 = range(10, 18)

OP_LUI = 0x37
OP_AUIPC = 0x17
OP_JAL = 0x6F
OP_JALR = 0x67
OP_BRANCH = 0x63
OP_LOAD = 0x03
OP_STORE = 0x23
OP_IMM = 0x13
OP_SYSTEM = 0x73


def _reg(r: int) -> int:
    if not 0 <= r < 32:
        raise ValueError(f"not a RISC-V integer register number: {r}")
    return r


def _creg(r: int) -> int:
    """RVC 3-bit register field: x8..x15 only."""
    if not 8 <= r < 16:
        raise ValueError(f"RVC compressed register must be x8..x15, not x{r}")
    return r - 8


def _apply(fixup: Fixup, template: int, value: int) -> int:
    buf = bytearray(template.to_bytes(fixup.size, "little"))
    fixup.encode(buf, 0, value)
    return int.from_bytes(buf, "little")


def _check_imm12(name: str, imm: int) -> None:
    if not fits_signed(imm, 12):
        raise FixupRangeError(name, imm, "does not fit a signed 12-bit immediate")


def i_type(opcode: int, rd: int, funct3: int, rs1: int, imm: int) -> int:
    """I-type word; ``imm`` must fit signed 12 bits."""
    _check_imm12("rv64.i_type", imm)
    word = opcode | _reg(rd) << 7 | funct3 << 12 | _reg(rs1) << 15
    return _apply(I_LO12, word, imm)


def s_type(opcode: int, funct3: int, rs1: int, rs2: int, imm: int) -> int:
    """S-type word; ``imm`` must fit signed 12 bits."""
    _check_imm12("rv64.s_type", imm)
    word = opcode | funct3 << 12 | _reg(rs1) << 15 | _reg(rs2) << 20
    return _apply(S_LO12, word, imm)


def u_type(opcode: int, rd: int, imm20: int) -> int:
    """U-type word from the raw 20-bit field (signed -2^19.. or unsigned
    0..2^20-1); the instruction's value is ``sext(imm20) << 12``."""
    if not (fits_signed(imm20, 20) or fits_unsigned(imm20, 20)):
        raise FixupRangeError("rv64.u_type", imm20, "does not fit a 20-bit field")
    return opcode | _reg(rd) << 7 | (imm20 & 0xFFFFF) << 12


def j_type(opcode: int, rd: int, offset: int) -> int:
    return _apply(JTYPE, opcode | _reg(rd) << 7, offset)


def b_type(opcode: int, funct3: int, rs1: int, rs2: int, offset: int) -> int:
    word = opcode | funct3 << 12 | _reg(rs1) << 15 | _reg(rs2) << 20
    return _apply(BTYPE, word, offset)


def cb_type(funct3: int, rs1: int, offset: int) -> int:
    """16-bit CB format (quadrant 1): c.beqz (funct3 6), c.bnez (7)."""
    return _apply(CBTYPE, funct3 << 13 | _creg(rs1) << 7 | 0b01, offset)


def cj_type(funct3: int, offset: int) -> int:
    """16-bit CJ format (quadrant 1): c.j (funct3 5)."""
    return _apply(CJTYPE, funct3 << 13 | 0b01, offset)


def lui(rd: int, imm20: int) -> int:
    return u_type(OP_LUI, rd, imm20)


def auipc(rd: int, imm20: int) -> int:
    return u_type(OP_AUIPC, rd, imm20)


def addi(rd: int, rs1: int, imm: int) -> int:
    return i_type(OP_IMM, rd, 0, rs1, imm)


def ld(rd: int, rs1: int, imm: int) -> int:
    return i_type(OP_LOAD, rd, 3, rs1, imm)


def sd(rs2: int, rs1: int, imm: int) -> int:
    """``sd rs2, imm(rs1)``"""
    return s_type(OP_STORE, 3, rs1, rs2, imm)


def jalr(rd: int, rs1: int, imm: int = 0) -> int:
    return i_type(OP_JALR, rd, 0, rs1, imm)


def jal(rd: int, offset: int) -> int:
    return j_type(OP_JAL, rd, offset)


def beq(rs1: int, rs2: int, offset: int) -> int:
    return b_type(OP_BRANCH, 0, rs1, rs2, offset)


def bne(rs1: int, rs2: int, offset: int) -> int:
    return b_type(OP_BRANCH, 1, rs1, rs2, offset)


def c_beqz(rs1: int, offset: int) -> int:
    return cb_type(0b110, rs1, offset)


def c_bnez(rs1: int, offset: int) -> int:
    return cb_type(0b111, rs1, offset)


def c_j(offset: int) -> int:
    return cj_type(0b101, offset)


def insn(word: int) -> bytes:
    """A 4-byte instruction word as little-endian bytes."""
    return struct.pack("<I", word)


def cinsn(half: int) -> bytes:
    """A 2-byte RVC instruction as little-endian bytes."""
    return struct.pack("<H", half)


NOP = addi(ZERO, ZERO, 0)        # 0x00000013
RET = jalr(ZERO, RA, 0)          # 0x00008067
EBREAK = 0x00100073
C_EBREAK = 0x9002

# ---------------------------------------------------------------------------


class RV64(Arch):
    def indirect_jump(self, at: int, cell: int) -> bytes:
        # auipc t1, %pcrel_hi(cell); ld t1, %pcrel_lo(cell)(t1); jr t1; ebreak
        value = cell - at
        if not U_HI20.in_range(value):
            lo, hi = HI20_BOUNDS
            raise FixupRangeError("rv64.IndirectJump", value,
                                  f"is out of auipc+ld range [{lo:#x}, {hi:#x}]")
        code = bytearray(insn(auipc(T1, 0)) + insn(ld(T1, T1, 0))
                         + insn(jalr(ZERO, T1, 0)))
        U_HI20.encode(code, 0, value)
        I_LO12.encode(code, 4, value)
        code += self.trap * ((self.indirect_jump_size - len(code)) // len(self.trap))
        return bytes(code)


CALLCONV = CallConv(
    name="lp64d",
    int_args=tuple(getattr(R, f"UC_RISCV_REG_A{i}") for i in range(8)),
    fp_args=tuple(getattr(R, f"UC_RISCV_REG_FA{i}") for i in range(8)),
    int_ret=R.UC_RISCV_REG_A0,
    fp_ret=R.UC_RISCV_REG_FA0,
    sp=R.UC_RISCV_REG_SP,
    pc=R.UC_RISCV_REG_PC,
    ra=R.UC_RISCV_REG_RA,
    stack_align=16,
    vararg_rule=VarargRule.FLOATS_IN_GPRS,
    stack_args_offset=0,
    fp_reg_bits=64,
)

ARCH = RV64(
    name="rv64",
    elf_machine="EM_RISCV",
    elf_relocs=ELF_RELOCS,
    uc_arch=unicorn.UC_ARCH_RISCV,
    uc_mode=unicorn.UC_MODE_RISCV64,
    cs_arch=capstone.CS_ARCH_RISCV,
    cs_mode=capstone.CS_MODE_RISCV64 | capstone.CS_MODE_RISCVC,
    callconv=CALLCONV,
    host_return=insn(RET),        # ret = jalr x0, 0(ra)
    trap=insn(EBREAK),            # ebreak: see the module docstring
    fixed_uc_page_size=4096,
    indirect_jump_size=16,
)
