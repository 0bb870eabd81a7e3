"""Property tests for the RISC-V 64 fixups, relocation table and stub code.

The oracles are independent of kitemu's encoders:

* base instructions are hand-encoded here from the ISA manual (opcode,
  funct3 and register fields only, immediate zero) and checked once against
  ``llvm-mc -show-encoding``; llvm-mc also encodes a fixed sample of
  non-zero immediates that the fixups must reproduce bit for bit;
* capstone must decode, after a fixup wrote a value, the operand that value
  means (capstone 5 reports a branch/jump operand as the *offset* from the
  instruction, so the target is ``P + imm``);
* unicorn executes ``auipc``+``addi``, ``auipc``+``jalr`` and the far-jump
  stub and must land where the value says;
* the field masks below are this file's own statement of the formats.
"""

from __future__ import annotations

import random
import re
import shutil
import struct
import subprocess

import capstone
import pytest
import unicorn
from capstone import riscv_const as CR
from elftools.elf.elffile import ELFFile
from elftools.elf.relocation import RelocationSection
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from unicorn import riscv_const as UR

from kitemu.errors import FixupRangeError
from kitemu.targets import rv64 as T
from kitemu.targets.base import Formula

SETTINGS = settings(max_examples=150, deadline=None)
EMU_SETTINGS = settings(max_examples=40, deadline=None)
M64 = (1 << 64) - 1

LLVM_MC = shutil.which("llvm-mc") or shutil.which("llvm-mc-14")
LLVM_READELF = shutil.which("llvm-readelf") or shutil.which("llvm-readelf-14")
needs_llvm = pytest.mark.skipif(LLVM_MC is None or LLVM_READELF is None,
                                reason="llvm-mc / llvm-readelf not installed")

_CS = capstone.Cs(capstone.CS_ARCH_RISCV,
                  capstone.CS_MODE_RISCV64 | capstone.CS_MODE_RISCVC)
_CS.detail = True


def sext(v: int, bits: int) -> int:
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


def lo12(v: int) -> int:
    return ((v & 0xFFF) ^ 0x800) - 0x800


# ---------------------------------------------------------------------------
# Hand-encoded base instructions (RISC-V unprivileged ISA, ch. 2 and 16).

X0, RA, T1 = 0, 1, 6
S1, A0, A1, A3 = 9, 10, 11, 13


def u_word(opcode, rd):                       # lui / auipc rd, 0
    return opcode | rd << 7


def i_word(opcode, rd, funct3, rs1):          # addi / ld / jalr rd, 0(rs1)
    return opcode | rd << 7 | funct3 << 12 | rs1 << 15


def s_word(opcode, funct3, rs1, rs2):         # sd rs2, 0(rs1)
    return opcode | funct3 << 12 | rs1 << 15 | rs2 << 20


def b_word(funct3, rs1, rs2):                 # beq/bne rs1, rs2, 0
    return 0x63 | funct3 << 12 | rs1 << 15 | rs2 << 20


AUIPC_A0 = u_word(0x17, A0)                   # auipc a0, 0
AUIPC_RA = u_word(0x17, RA)                   # auipc ra, 0
AUIPC_T1 = u_word(0x17, T1)                   # auipc t1, 0
LUI_A3 = u_word(0x37, A3)                     # lui a3, 0
ADDI_A0_A1 = i_word(0x13, A0, 0, A1)          # addi a0, a1, 0
ADDI_A0_A0 = i_word(0x13, A0, 0, A0)          # addi a0, a0, 0
LD_T1_T1 = i_word(0x03, T1, 3, T1)            # ld t1, 0(t1)
JALR_RA_RA = i_word(0x67, RA, 0, RA)          # jalr ra, 0(ra)
JR_T1 = i_word(0x67, X0, 0, T1)               # jr t1
RET = i_word(0x67, X0, 0, RA)                 # ret
SD_A1_A0 = s_word(0x23, 3, A0, A1)            # sd a1, 0(a0)
JAL_RA = 0x6F | RA << 7                       # jal ra, 0
JAL_X0 = 0x6F                                 # j 0
BEQ_A0_A1 = b_word(0, A0, A1)                 # beq a0, a1, 0
BNE_A0_A1 = b_word(1, A0, A1)                 # bne a0, a1, 0
EBREAK = 0x00100073
C_BEQZ_A0 = 0b110 << 13 | (A0 - 8) << 7 | 0b01   # c.beqz a0, 0
C_BNEZ_S1 = 0b111 << 13 | (S1 - 8) << 7 | 0b01   # c.bnez s1, 0
C_J = 0b101 << 13 | 0b01                         # c.j 0

# Bits of each immediate field.
U_MASK = 0xFFFFF000
I_MASK = 0xFFF00000
S_MASK = 0xFE000F80
J_MASK = 0xFFFFF000
B_MASK = 0xFE000F80
CB_MASK = 0x1C7C          # bits 12:10 and 6:2
CJ_MASK = 0x1FFC          # bits 12:2


def creg(x: int) -> int:
    return CR.RISCV_REG_X0 + x


def disasm(code: bytes, addr: int):
    insns = list(_CS.disasm(bytes(code), addr))
    assert len(insns) == 1 and insns[0].size == len(code), bytes(code).hex()
    return insns[0]


def ops(insn):
    return list(insn.operands)


def imm_operand(insn) -> int:
    """The immediate operand; capstone drops a zero one in aliases (mv, jr)."""
    imms = [o.imm for o in insn.operands if o.type == CR.RISCV_OP_IMM]
    assert len(imms) <= 1, insn.op_str
    return imms[0] if imms else 0


def regs(insn) -> list[int]:
    return [o.reg for o in insn.operands if o.type == CR.RISCV_OP_REG]


def buf_of(word: int, size: int = 4) -> bytearray:
    return bytearray(word.to_bytes(size, "little"))


def le(buf, size=4, off=0) -> int:
    return int.from_bytes(bytes(buf[off:off + size]), "little")


def aligned(lo: int, hi: int, align: int):
    return st.integers(-(-lo // align), hi // align).map(lambda k: k * align)


# ---------------------------------------------------------------------------
# The fixups' contract, stated independently: (fixup, template words, masks
# per word, inclusive bounds or None, alignment).

CHECKED = [
    (T.U_HI20, (AUIPC_A0,), (U_MASK,), (-(1 << 31) - 0x800, (1 << 31) - 0x801), 1),
    (T.CALL, (AUIPC_RA, JALR_RA_RA), (U_MASK, I_MASK),
     (-(1 << 31) - 0x800, (1 << 31) - 0x801), 1),
    (T.JTYPE, (JAL_RA,), (J_MASK,), (-(1 << 20), (1 << 20) - 2), 2),
    (T.BTYPE, (BEQ_A0_A1,), (B_MASK,), (-4096, 4094), 2),
    (T.CBTYPE, (C_BEQZ_A0,), (CB_MASK,), (-256, 254), 2),
    (T.CJTYPE, (C_J,), (CJ_MASK,), (-2048, 2046), 2),
]
UNCHECKED = [
    (T.I_LO12, (ADDI_A0_A1,), (I_MASK,)),
    (T.S_LO12, (SD_A1_A0,), (S_MASK,)),
]


def template_buf(fixup, words) -> bytearray:
    width = fixup.size // len(words)
    return bytearray(b"".join(w.to_bytes(width, "little") for w in words))


def split_words(fixup, buf, n) -> list[int]:
    width = fixup.size // n
    return [le(buf, width, i * width) for i in range(n)]


@pytest.mark.parametrize("case", CHECKED, ids=lambda c: c[0].name)
@SETTINGS
@given(data=st.data())
def test_checked_fixup_roundtrip_and_other_bits(case, data):
    fixup, words, masks, (lo, hi), align = case
    assert fixup.size == sum(4 if w & 3 == 3 else 2 for w in words)
    value = data.draw(aligned(lo, hi, align), label="value")
    # random junk in every non-field bit, keeping the instruction's opcode
    junk = [data.draw(st.integers(0, (1 << (8 * (fixup.size // len(words)))) - 1))
            for _ in words]
    start = [(w & m) | (j & ~m & ((1 << (8 * (fixup.size // len(words)))) - 1))
             for w, m, j in zip(words, masks, junk)]
    buf = template_buf(fixup, start)
    fixup.encode(buf, 0, value)
    after = split_words(fixup, buf, len(words))
    for b, a, m in zip(start, after, masks):
        assert a & ~m == b & ~m
    assert fixup.decode(buf, 0) == fixup.roundtrip(value)
    if fixup is T.U_HI20:
        assert fixup.roundtrip(value) == value - lo12(value)
    else:
        assert fixup.roundtrip(value) == value


@pytest.mark.parametrize("case", CHECKED, ids=lambda c: c[0].name)
def test_checked_fixup_bounds_exact(case):
    fixup, words, _masks, (lo, hi), align = case
    for v in (lo, hi, 0):
        fixup.encode(template_buf(fixup, words), 0, v)
    for v in (lo - align, hi + align):
        buf = template_buf(fixup, words)
        with pytest.raises(FixupRangeError):
            fixup.encode(buf, 0, v)
        assert buf == template_buf(fixup, words)


@pytest.mark.parametrize("case", CHECKED, ids=lambda c: c[0].name)
@SETTINGS
@given(data=st.data())
def test_checked_fixup_rejects_and_leaves_buffer(case, data):
    fixup, words, _masks, (lo, hi), align = case
    bad = st.one_of(st.integers(lo - (1 << 40), lo - 1),
                    st.integers(hi + 1, hi + (1 << 40)))
    if align > 1:
        bad = st.one_of(bad, aligned(lo, hi - 1, align).map(lambda v: v + 1))
    value = data.draw(bad, label="value")
    buf = template_buf(fixup, words)
    with pytest.raises(FixupRangeError):
        fixup.encode(buf, 0, value)
    assert buf == template_buf(fixup, words)
    assert not fixup.in_range(value)


@pytest.mark.parametrize("case", UNCHECKED, ids=lambda c: c[0].name)
@SETTINGS
@given(value=st.integers(-(1 << 70), 1 << 70), junk=st.integers(0, 0xFFFFFFFF))
def test_lo12_fixups_never_check_and_keep_low_bits(case, value, junk):
    fixup, (word,), (mask,) = case
    assert fixup.bounds is None
    start = (word & mask) | (junk & ~mask & 0xFFFFFFFF)
    buf = buf_of(start)
    fixup.encode(buf, 0, value)
    assert le(buf) & ~mask == start & ~mask
    assert fixup.roundtrip(value) == lo12(value)
    assert fixup.decode(buf, 0) == lo12(value)


# ---------------------------------------------------------------------------
# capstone: the operand each value means.

HI_VALUES = st.integers(-(1 << 31) - 0x800, (1 << 31) - 0x801)


@SETTINGS
@given(value=HI_VALUES, rd=st.integers(1, 31), opcode=st.sampled_from([0x17, 0x37]))
def test_utype_hi20_capstone(value, rd, opcode):
    buf = buf_of(u_word(opcode, rd))
    T.U_HI20.encode(buf, 0, value)
    insn = disasm(buf, 0x10000)
    assert insn.mnemonic == ("auipc" if opcode == 0x17 else "lui")
    assert regs(insn) == [creg(rd)]
    imm20 = imm_operand(insn)
    assert 0 <= imm20 < 1 << 20
    assert (sext(imm20, 20) << 12) + lo12(value) == value


@SETTINGS
@given(value=st.integers(-(1 << 64), 1 << 64))
def test_itype_lo12_capstone(value):
    buf = buf_of(ADDI_A0_A1)
    T.I_LO12.encode(buf, 0, value)
    insn = disasm(buf, 0x10000)
    assert insn.mnemonic in ("addi", "mv")
    assert regs(insn) == [creg(A0), creg(A1)]
    assert imm_operand(insn) == lo12(value)

    buf = buf_of(LD_T1_T1)
    T.I_LO12.encode(buf, 0, value)
    insn = disasm(buf, 0x10000)
    assert insn.mnemonic == "ld"
    mem = [o.mem for o in insn.operands if o.type == CR.RISCV_OP_MEM]
    assert regs(insn) == [creg(T1)] and mem[0].base == creg(T1)
    assert mem[0].disp == lo12(value)


@SETTINGS
@given(value=st.integers(-(1 << 64), 1 << 64))
def test_stype_lo12_capstone(value):
    buf = buf_of(SD_A1_A0)
    T.S_LO12.encode(buf, 0, value)
    insn = disasm(buf, 0x10000)
    assert insn.mnemonic == "sd"
    mem = [o.mem for o in insn.operands if o.type == CR.RISCV_OP_MEM]
    assert regs(insn) == [creg(A1)] and mem[0].base == creg(A0)
    assert mem[0].disp == lo12(value)


@SETTINGS
@given(value=HI_VALUES)
def test_hi_lo_pair_recombines_capstone(value):
    """auipc a0, %pcrel_hi; addi a0, a0, %pcrel_lo / sd a1, %pcrel_lo(a0)."""
    code = buf_of(AUIPC_A0) + buf_of(ADDI_A0_A0) + buf_of(SD_A1_A0)
    T.U_HI20.encode(code, 0, value)
    T.I_LO12.encode(code, 4, value)
    T.S_LO12.encode(code, 8, value)
    hi_i, lo_i, st_i = list(_CS.disasm(bytes(code), 0x10000))
    hi = sext(imm_operand(hi_i), 20) << 12
    assert hi + imm_operand(lo_i) == value
    assert hi + [o.mem for o in st_i.operands if o.type == CR.RISCV_OP_MEM][0].disp == value


@SETTINGS
@given(value=HI_VALUES)
def test_call_pair_capstone(value):
    buf = buf_of(AUIPC_RA) + buf_of(JALR_RA_RA)
    T.CALL.encode(buf, 0, value)
    a, j = list(_CS.disasm(bytes(buf), 0x10000))
    assert a.mnemonic == "auipc" and regs(a) == [creg(RA)]
    assert j.mnemonic == "jalr" and regs(j)[-1] == creg(RA)
    assert (sext(imm_operand(a), 20) << 12) + imm_operand(j) == value
    assert T.CALL.decode(buf, 0) == value


@SETTINGS
@given(value=aligned(-(1 << 20), (1 << 20) - 2, 2),
       word=st.sampled_from([JAL_RA, JAL_X0]))
def test_jtype_capstone(value, word):
    buf = buf_of(word)
    T.JTYPE.encode(buf, 0, value)
    insn = disasm(buf, 0x40000)
    assert insn.mnemonic == ("jal" if word == JAL_RA else "j")
    assert 0x40000 + imm_operand(insn) == 0x40000 + value


@SETTINGS
@given(value=aligned(-4096, 4094, 2), word=st.sampled_from([BEQ_A0_A1, BNE_A0_A1]))
def test_btype_capstone(value, word):
    buf = buf_of(word)
    T.BTYPE.encode(buf, 0, value)
    insn = disasm(buf, 0x40000)
    assert insn.mnemonic == ("beq" if word == BEQ_A0_A1 else "bne")
    assert regs(insn) == [creg(A0), creg(A1)]
    assert imm_operand(insn) == value


@SETTINGS
@given(value=aligned(-256, 254, 2), rs=st.integers(8, 15),
       funct3=st.sampled_from([0b110, 0b111]))
def test_cbtype_capstone(value, rs, funct3):
    buf = buf_of(funct3 << 13 | (rs - 8) << 7 | 0b01, 2)
    T.CBTYPE.encode(buf, 0, value)
    insn = disasm(buf, 0x40000)
    assert insn.mnemonic == ("c.beqz" if funct3 == 0b110 else "c.bnez")
    assert regs(insn) == [creg(rs)]
    assert imm_operand(insn) == value


@SETTINGS
@given(value=aligned(-2048, 2046, 2))
def test_cjtype_capstone(value):
    buf = buf_of(C_J, 2)
    T.CJTYPE.encode(buf, 0, value)
    insn = disasm(buf, 0x40000)
    assert insn.mnemonic == "c.j"
    assert imm_operand(insn) == value


# ---------------------------------------------------------------------------
# unicorn: execute the patched code.

def _emu(pages: list[int]):
    mu = unicorn.Uc(unicorn.UC_ARCH_RISCV, unicorn.UC_MODE_RISCV64)
    for p in sorted(set(x & ~0xFFF for x in pages)):
        mu.mem_map(p, 0x1000)
    return mu


BASE = 0x1_0000_0000           # leaves +-2 GiB around it in positive space


@EMU_SETTINGS
@given(value=HI_VALUES, off=aligned(0, 0xFF0, 4))
def test_auipc_addi_executes(value, off):
    p = BASE + off
    code = buf_of(AUIPC_A0) + buf_of(ADDI_A0_A0)
    T.U_HI20.encode(code, 0, value)
    T.I_LO12.encode(code, 4, value)
    mu = _emu([p, p + 8])
    mu.mem_write(p, bytes(code))
    mu.emu_start(p, p + 8)
    assert mu.reg_read(UR.UC_RISCV_REG_A0) == (p + value) & M64


@EMU_SETTINGS
@given(value=aligned(-(1 << 31) - 0x800, (1 << 31) - 0x801, 2), off=aligned(0, 0xFF0, 4))
def test_call_pair_executes(value, off):
    assume(not 0 <= value < 8)         # a target inside the pair itself
    p = BASE + off
    code = buf_of(AUIPC_RA) + buf_of(JALR_RA_RA)
    T.CALL.encode(code, 0, value)
    target = p + value
    mu = _emu([p, p + 8, target])
    mu.mem_write(p, bytes(code))
    mu.emu_start(p, target, count=2)
    assert mu.reg_read(UR.UC_RISCV_REG_PC) == target
    assert mu.reg_read(UR.UC_RISCV_REG_RA) == p + 8


# ---------------------------------------------------------------------------
# Data fixups.

@SETTINGS
@given(value=st.integers(-(1 << 63), M64))
def test_data64(value):
    buf = bytearray(b"\xaa" * 10)
    T.DATA64.encode(buf, 1, value)
    assert struct.unpack_from("<Q", buf, 1)[0] == value & M64
    assert buf[0] == buf[9] == 0xAA
    assert T.DATA64.decode(buf, 1) == T.DATA64.roundtrip(value) == value & M64


@SETTINGS
@given(value=st.integers(-(1 << 31), (1 << 32) - 1))
def test_data32(value):
    buf = bytearray(b"\xaa" * 6)
    T.DATA32.encode(buf, 1, value)
    assert struct.unpack_from("<I", buf, 1)[0] == value & 0xFFFFFFFF
    assert buf[0] == buf[5] == 0xAA
    assert T.DATA32.decode(buf, 1) == T.DATA32.roundtrip(value)


@SETTINGS
@given(value=st.integers(-(1 << 31), (1 << 31) - 1))
def test_pcrel32(value):
    buf = bytearray(b"\xaa" * 6)
    T.PCREL32.encode(buf, 1, value)
    assert struct.unpack_from("<i", buf, 1)[0] == value
    assert T.PCREL32.decode(buf, 1) == T.PCREL32.roundtrip(value) == value


@pytest.mark.parametrize("fixup,lo,hi", [
    (T.DATA64, -(1 << 63), M64),
    (T.DATA32, -(1 << 31), (1 << 32) - 1),
    (T.PCREL32, -(1 << 31), (1 << 31) - 1),
], ids=lambda x: getattr(x, "name", ""))
@SETTINGS
@given(delta=st.integers(1, 1 << 40), below=st.booleans())
def test_data_out_of_range(fixup, lo, hi, delta, below):
    value = lo - delta if below else hi + delta
    buf = bytearray(b"\x5a" * 8)
    with pytest.raises(FixupRangeError):
        fixup.encode(buf, 0, value)
    assert buf == bytearray(b"\x5a" * 8)


WRAPPING = [(getattr(T, f"{k}{n}"), n // 8) for k in ("ADD", "SUB", "SET")
            for n in (8, 16, 32, 64) if hasattr(T, f"{k}{n}")]
FMT = {1: "<B", 2: "<H", 4: "<I", 8: "<Q"}


def test_wrapping_kinds_present():
    assert {f.name for f, _ in WRAPPING} >= {
        "rv64.Add8", "rv64.Add16", "rv64.Add32", "rv64.Add64",
        "rv64.Sub8", "rv64.Sub16", "rv64.Sub32", "rv64.Sub64",
        "rv64.Set8", "rv64.Set16", "rv64.Set32"}


@pytest.mark.parametrize("fixup,size", WRAPPING, ids=lambda x: getattr(x, "name", ""))
@SETTINGS
@given(value=st.integers(-(1 << 70), 1 << 70))
def test_wrapping_data(fixup, size, value):
    buf = bytearray(b"\xaa" * (size + 2))
    fixup.encode(buf, 1, value)            # never raises
    assert struct.unpack_from(FMT[size], buf, 1)[0] == value % (1 << (8 * size))
    assert buf[0] == buf[-1] == 0xAA
    assert fixup.decode(buf, 1) == fixup.roundtrip(value) == value % (1 << (8 * size))


@pytest.mark.parametrize("size", [1, 2, 4, 8])
@SETTINGS
@given(a=st.integers(0, M64), b=st.integers(0, M64), init=st.integers(0, M64))
def test_add_sub_pair_is_label_difference(size, a, b, init):
    """ADD then SUB at one place (``.word a - b``): V + a, then V - b."""
    add, sub = getattr(T, f"ADD{8 * size}"), getattr(T, f"SUB{8 * size}")
    mod = 1 << (8 * size)
    buf = bytearray((init % mod).to_bytes(size, "little"))
    add.encode(buf, 0, add.decode(buf, 0) + a)
    sub.encode(buf, 0, sub.decode(buf, 0) - b)
    assert int.from_bytes(buf, "little") == (init + a - b) % mod


@pytest.mark.parametrize("fixup", [T.SET6, T.SUB6], ids=lambda f: f.name)
@SETTINGS
@given(value=st.integers(-(1 << 70), 1 << 70), byte=st.integers(0, 255))
def test_six_bit_fields(fixup, value, byte):
    buf = bytearray([0x11, byte, 0x22])
    fixup.encode(buf, 1, value)
    assert buf[1] == (byte & 0xC0) | (value & 0x3F)
    assert buf[0] == 0x11 and buf[2] == 0x22
    assert fixup.decode(buf, 1) == fixup.roundtrip(value) == value & 0x3F


@SETTINGS
@given(adv=st.integers(0, 63), op=st.integers(0, 3))
def test_set6_sub6_cfa_advance(adv, op):
    """DW_CFA_advance_loc (opcode 0x40 | delta): SET6 end, SUB6 start."""
    start = 0x1000
    buf = bytearray([0x40])
    T.SET6.encode(buf, 0, start + adv)
    T.SUB6.encode(buf, 0, T.SUB6.decode(buf, 0) - start)
    assert buf[0] == 0x40 | adv


# ---------------------------------------------------------------------------
# The far-jump stub.

@SETTINGS
@given(at=aligned(0, 1 << 40, 4), delta=aligned(-(1 << 31) - 0x800, (1 << 31) - 0x801, 8))
def test_indirect_jump_capstone(at, delta):
    cell = at + delta
    code = T.ARCH.indirect_jump(at, cell)
    assert len(code) == T.ARCH.indirect_jump_size == 16
    insns = list(_CS.disasm(code, at))
    assert [i.mnemonic for i in insns] == ["auipc", "ld", "jr", "ebreak"]
    assert all(i.size == 4 for i in insns)
    auipc, load, jr, _ = insns
    assert regs(auipc) == [creg(T1)]
    mem = [o.mem for o in load.operands if o.type == CR.RISCV_OP_MEM][0]
    assert regs(load) == [creg(T1)] and mem.base == creg(T1)
    assert regs(jr) == [creg(T1)]
    assert at + (sext(imm_operand(auipc), 20) << 12) + mem.disp == cell


@SETTINGS
@given(at=aligned(1 << 33, 1 << 40, 4), delta=st.integers(1 << 31, 1 << 38),
       below=st.booleans())
def test_indirect_jump_out_of_range(at, delta, below):
    cell = at - delta - 0x800 - 1 if below else at + delta - 0x800
    with pytest.raises(FixupRangeError):
        T.ARCH.indirect_jump(at, cell)


@EMU_SETTINGS
@given(off=aligned(0, 0xFF0, 8), delta=aligned(-(1 << 31) - 0x800, (1 << 31) - 0x801, 8),
       target=aligned(0x2000_0000, 0x2FFF_FFFE, 2))
def test_indirect_jump_executes(off, delta, target):
    at = BASE + off
    cell = at + delta
    if cell & ~0xFFF in (at & ~0xFFF, target & ~0xFFF):
        cell = at + 0x4000 + (delta & 0xFF8)
    mu = _emu([at, cell, target])
    mu.mem_write(at, T.ARCH.indirect_jump(at, cell))
    mu.mem_write(cell, struct.pack("<Q", target))
    mu.reg_write(UR.UC_RISCV_REG_RA, 0x1234)
    mu.emu_start(at, target, count=3)
    assert mu.reg_read(UR.UC_RISCV_REG_PC) == target
    assert mu.reg_read(UR.UC_RISCV_REG_RA) == 0x1234      # a jump, not a call


def test_arch_basics():
    a = T.ARCH
    assert a.name == "rv64" and a.elf_machine == "EM_RISCV"
    assert a.fixed_uc_page_size == 4096 and a.pointer_size == 8
    assert a.host_return == struct.pack("<I", RET)
    assert a.trap == struct.pack("<I", EBREAK)
    assert disasm(a.host_return, 0).mnemonic == "ret"
    assert disasm(a.trap, 0).mnemonic == "ebreak"
    cc = a.callconv
    assert cc.int_args == tuple(getattr(UR, f"UC_RISCV_REG_A{i}") for i in range(8))
    assert cc.fp_args == tuple(getattr(UR, f"UC_RISCV_REG_FA{i}") for i in range(8))
    assert cc.ra == UR.UC_RISCV_REG_RA and cc.sp == UR.UC_RISCV_REG_SP
    assert cc.vararg_rule.name == "FLOATS_IN_GPRS" and cc.stack_align == 16


def test_trap_stops_unicorn_on_the_ebreak():
    """The docstring's ebreak quirk: UC_ERR_INSN_INVALID, PC on the ebreak."""
    mu = _emu([BASE])
    addi_1 = struct.pack("<I", ADDI_A0_A0 | 1 << 20)      # addi a0, a0, 1
    mu.mem_write(BASE, addi_1 + addi_1 + T.ARCH.trap + addi_1)
    with pytest.raises(unicorn.UcError) as err:
        mu.emu_start(BASE, BASE + 0x100)
    assert err.value.errno == unicorn.UC_ERR_INSN_INVALID
    assert mu.reg_read(UR.UC_RISCV_REG_PC) == BASE + 8
    assert mu.reg_read(UR.UC_RISCV_REG_A0) == 2


# ---------------------------------------------------------------------------
# The relocation table.

EXPECTED_TABLE = {
    0: ("NONE", None, Formula.NONE, False),
    1: ("32", T.DATA32, Formula.ABS, False),
    2: ("64", T.DATA64, Formula.ABS, False),
    16: ("BRANCH", T.BTYPE, Formula.PCREL, False),
    17: ("JAL", T.JTYPE, Formula.PCREL, True),
    18: ("CALL", T.CALL, Formula.PCREL, True),
    19: ("CALL_PLT", T.CALL, Formula.PCREL, True),
    20: ("GOT_HI20", T.U_HI20, Formula.GOT_PCREL, False),
    23: ("PCREL_HI20", T.U_HI20, Formula.PCREL, False),
    24: ("PCREL_LO12_I", T.I_LO12, Formula.PCREL_LO, False),
    25: ("PCREL_LO12_S", T.S_LO12, Formula.PCREL_LO, False),
    26: ("HI20", T.U_HI20, Formula.ABS, False),
    27: ("LO12_I", T.I_LO12, Formula.ABS, False),
    28: ("LO12_S", T.S_LO12, Formula.ABS, False),
    33: ("ADD8", T.ADD8, Formula.ADD, False),
    34: ("ADD16", T.ADD16, Formula.ADD, False),
    35: ("ADD32", T.ADD32, Formula.ADD, False),
    36: ("ADD64", T.ADD64, Formula.ADD, False),
    37: ("SUB8", T.SUB8, Formula.SUB, False),
    38: ("SUB16", T.SUB16, Formula.SUB, False),
    39: ("SUB32", T.SUB32, Formula.SUB, False),
    40: ("SUB64", T.SUB64, Formula.SUB, False),
    43: ("ALIGN", None, Formula.NONE, False),
    44: ("RVC_BRANCH", T.CBTYPE, Formula.PCREL, False),
    45: ("RVC_JUMP", T.CJTYPE, Formula.PCREL, True),
    51: ("RELAX", None, Formula.NONE, False),
    52: ("SUB6", T.SUB6, Formula.SUB, False),
    53: ("SET6", T.SET6, Formula.ABS, False),
    54: ("SET8", T.SET8, Formula.ABS, False),
    55: ("SET16", T.SET16, Formula.ABS, False),
    56: ("SET32", T.SET32, Formula.ABS, False),
    57: ("32_PCREL", T.PCREL32, Formula.PCREL, False),
}


def test_reloc_table_shape():
    for num, (name, fixup, formula, branch) in EXPECTED_TABLE.items():
        spec = T.ELF_RELOCS[num]
        assert spec.name == "R_RISCV_" + name
        assert spec.fixup is fixup and spec.formula is formula and spec.branch is branch
        assert T.ARCH.reloc_name(num) == spec.name
    assert T.ARCH.elf_relocs is T.ELF_RELOCS
    assert T.PCREL_HI_TYPES == {20, 23}
    names = [s.name for s in T.ELF_RELOCS.values()]
    assert len(names) == len(set(names))


def _assemble(tmp_path, src: str, mattr: str = "+m,+a,+c,+relax") -> tuple[bytes, str]:
    s = tmp_path / "t.s"
    o = tmp_path / "t.o"
    s.write_text(src)
    subprocess.run([LLVM_MC, "-triple=riscv64", f"-mattr={mattr}", "-filetype=obj",
                    str(s), "-o", str(o)], check=True, capture_output=True, text=True)
    readelf = subprocess.run([LLVM_READELF, "-r", str(o)], check=True,
                             capture_output=True, text=True).stdout
    return o.read_bytes(), readelf


_READELF_LINE = re.compile(r"^\s*[0-9a-f]{16}\s+([0-9a-f]{16})\s+(R_RISCV_\w+)", re.M)


def _readelf_relocs(text: str) -> list[tuple[int, str]]:
    return [(int(info, 16) & 0xFFFFFFFF, name) for info, name in _READELF_LINE.findall(text)]


def _pyelftools_types(path) -> list[int]:
    with open(path, "rb") as f:
        elf = ELFFile(f)
        return [r["r_info_type"] for sec in elf.iter_sections()
                if isinstance(sec, RelocationSection) for r in sec.iter_relocations()]


RELOC_SOURCE = """\
  .text
  .globl f
f:
  .cfi_startproc
1: auipc a0, %pcrel_hi(sym)
  addi a0, a0, %pcrel_lo(1b)
2: auipc a1, %pcrel_hi(sym)
  sd a0, %pcrel_lo(2b)(a1)
3: auipc a2, %got_pcrel_hi(sym)
  ld a2, %pcrel_lo(3b)(a2)
  lui a3, %hi(sym)
  addi a3, a3, %lo(sym)
  sw a3, %lo(sym)(a3)
  call sym
  .cfi_def_cfa_offset 16
  tail sym
  call sym@plt
  jal sym
  beq a0, a1, sym
  c.beqz a0, 5f
  c.j 5f
  .cfi_def_cfa_offset 40
5:
  call g
  .skip 100
  .cfi_def_cfa_offset 32
  call g
  .skip 300
  .cfi_def_cfa_offset 48
  call g
  .skip 70000
  .cfi_def_cfa_offset 64
4:
  .p2align 4
  ret
  .cfi_endproc
g:
  .data
  .word g - f
  .quad g - f
  .half g - f
  .byte g - f
  .quad sym
  .word sym
"""

# what RELOC_SOURCE must produce (LLVM 14): every kind above except NONE
EXPECTED_FROM_SOURCE = {1, 2, 16, 17, 18, 19, 20, 23, 24, 25, 26, 27, 28,
                        33, 34, 35, 36, 37, 38, 39, 40, 43, 44, 45, 51,
                        52, 53, 54, 55, 56, 57}


@needs_llvm
def test_reloc_numbers_match_llvm_on_real_code(tmp_path):
    _, readelf = _assemble(tmp_path, RELOC_SOURCE)
    seen = _readelf_relocs(readelf)
    assert seen, readelf
    for num, name in seen:
        assert num in T.ELF_RELOCS, (num, name)
        assert T.ELF_RELOCS[num].name == name
    assert {n for n, _ in seen} == EXPECTED_FROM_SOURCE
    assert sorted(_pyelftools_types(tmp_path / "t.o")) == sorted(n for n, _ in seen)


# relocation names newer than LLVM 14's RISCV.def (psABI 1.0 additions)
_NEWER_THAN_LLVM14 = {"R_RISCV_PLT32"}


@needs_llvm
def test_every_table_entry_matches_llvm_reloc_directive(tmp_path):
    specs = dict(T.ELF_RELOCS)
    src = ["  .text", "f:"]
    lines = {}
    for num, spec in specs.items():
        lines[len(src) + 1] = num
        src.append(f"  .reloc ., {spec.name}, sym")
        src.append("  nop")
    s = tmp_path / "r.s"
    s.write_text("\n".join(src) + "\n")
    res = subprocess.run([LLVM_MC, "-triple=riscv64", "-filetype=obj", str(s),
                          "-o", str(tmp_path / "r.o")], capture_output=True, text=True)
    unknown = {specs[lines[int(m)]].name
               for m in re.findall(r"r\.s:(\d+):\d+: error: unknown relocation name",
                                   res.stderr)}
    assert unknown <= _NEWER_THAN_LLVM14, res.stderr
    if unknown:
        specs = {n: sp for n, sp in specs.items() if sp.name not in unknown}
        _, readelf = _assemble(tmp_path, "\n".join(
            ["  .text", "f:"] + [f"  .reloc ., {sp.name}, sym\n  nop"
                                 for sp in specs.values()]) + "\n", mattr="+m")
    else:
        assert res.returncode == 0, res.stderr
        readelf = subprocess.run([LLVM_READELF, "-r", str(tmp_path / "r.o")],
                                 check=True, capture_output=True, text=True).stdout
    seen = _readelf_relocs(readelf)
    assert seen == [(n, sp.name) for n, sp in specs.items()]


# ---------------------------------------------------------------------------
# Encodings against llvm-mc.

def _llvm_encodings(lines: list[str], mattr: str) -> list[bytes]:
    res = subprocess.run([LLVM_MC, "-triple=riscv64", f"-mattr={mattr}", "-show-encoding"],
                         input="\n".join(lines) + "\n", capture_output=True, text=True)
    assert res.returncode == 0 and not res.stderr, res.stderr
    encs = [bytes(int(x, 16) for x in m.split(","))
            for m in re.findall(r"encoding: \[([^\]]*)\]", res.stdout)]
    assert len(encs) == len(lines), res.stdout
    return encs


@needs_llvm
def test_base_templates_match_llvm_mc():
    four = {
        "auipc a0, 0": AUIPC_A0, "auipc ra, 0": AUIPC_RA, "auipc t1, 0": AUIPC_T1,
        "lui a3, 0": LUI_A3, "addi a0, a1, 0": ADDI_A0_A1, "addi a0, a0, 0": ADDI_A0_A0,
        "ld t1, 0(t1)": LD_T1_T1, "jalr ra, 0(ra)": JALR_RA_RA, "jr t1": JR_T1,
        "ret": RET, "sd a1, 0(a0)": SD_A1_A0, "jal ra, 0": JAL_RA, "j 0": JAL_X0,
        "beq a0, a1, 0": BEQ_A0_A1, "bne a0, a1, 0": BNE_A0_A1, "ebreak": EBREAK,
    }
    for enc, word in zip(_llvm_encodings(list(four), "+m"), four.values()):
        assert enc == struct.pack("<I", word)
    two = {"c.beqz a0, 0": C_BEQZ_A0, "c.bnez s1, 0": C_BNEZ_S1, "c.j 0": C_J}
    for enc, half in zip(_llvm_encodings(list(two), "+c"), two.values()):
        assert enc == struct.pack("<H", half)


def _sample(lo, hi, align, rng, n=24):
    vals = {lo, hi, 0, align, -align}
    while len(vals) < n:
        vals.add(rng.randrange(lo // align, hi // align + 1) * align)
    return sorted(v for v in vals if lo <= v <= hi)


@needs_llvm
def test_fixups_match_llvm_mc_encodings():
    """llvm-mc encodes the same immediates bit for bit (and so do the
    module's own instruction helpers)."""
    rng = random.Random(20240601)
    cases = []   # (asm, fixup, template word, size, value, helper word or None)
    for v in _sample(-(1 << 31) - 0x800, (1 << 31) - 0x801, 1, rng):
        h = ((v + 0x800) >> 12) & 0xFFFFF
        cases.append((f"auipc a0, {h}", T.U_HI20, AUIPC_A0, 4, v, T.auipc(T.A0, h)))
        cases.append((f"lui a3, {h}", T.U_HI20, LUI_A3, 4, v, T.lui(T.A3, h)))
        lo = lo12(v)
        cases.append((f"addi a0, a1, {lo}", T.I_LO12, ADDI_A0_A1, 4, v, T.addi(T.A0, T.A1, lo)))
        cases.append((f"ld t1, {lo}(t1)", T.I_LO12, LD_T1_T1, 4, v, T.ld(T.T1, T.T1, lo)))
        cases.append((f"jalr ra, {lo}(ra)", T.I_LO12, JALR_RA_RA, 4, v, T.jalr(T.RA, T.RA, lo)))
        cases.append((f"sd a1, {lo}(a0)", T.S_LO12, SD_A1_A0, 4, v, T.sd(T.A1, T.A0, lo)))
    for v in _sample(-(1 << 20), (1 << 20) - 2, 2, rng):
        cases.append((f"jal ra, {v}", T.JTYPE, JAL_RA, 4, v, T.jal(T.RA, v)))
    for v in _sample(-4096, 4094, 2, rng):
        cases.append((f"beq a0, a1, {v}", T.BTYPE, BEQ_A0_A1, 4, v, T.beq(T.A0, T.A1, v)))
        cases.append((f"bne a0, a1, {v}", T.BTYPE, BNE_A0_A1, 4, v, T.bne(T.A0, T.A1, v)))
    ccases = []
    for v in _sample(-256, 254, 2, rng):
        ccases.append((f"c.beqz a0, {v}", T.CBTYPE, C_BEQZ_A0, 2, v, T.c_beqz(T.A0, v)))
        ccases.append((f"c.bnez s1, {v}", T.CBTYPE, C_BNEZ_S1, 2, v, T.c_bnez(T.S1, v)))
    for v in _sample(-2048, 2046, 2, rng):
        ccases.append((f"c.j {v}", T.CJTYPE, C_J, 2, v, T.c_j(v)))
    for group, mattr in ((cases, "+m"), (ccases, "+c")):
        encs = _llvm_encodings([c[0] for c in group], mattr)
        for (text, fixup, tmpl, size, v, helper), enc in zip(group, encs):
            buf = buf_of(tmpl, size)
            fixup.encode(buf, 0, v)
            assert bytes(buf) == enc, text
            assert helper.to_bytes(size, "little") == enc, text
    # the Call pair is the auipc and jalr above, side by side
    for v in _sample(-(1 << 31) - 0x800, (1 << 31) - 0x801, 1, rng, n=8):
        h = ((v + 0x800) >> 12) & 0xFFFFF
        enc = b"".join(_llvm_encodings([f"auipc ra, {h}", f"jalr ra, {lo12(v)}(ra)"], "+m"))
        buf = buf_of(AUIPC_RA) + buf_of(JALR_RA_RA)
        T.CALL.encode(buf, 0, v)
        assert bytes(buf) == enc
