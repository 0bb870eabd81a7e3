"""Property tests for the AArch64 fixups, relocation table and stub code.

Each instruction fixup is checked against an independent oracle: a real
instruction assembled by keystone carries the field, the fixup writes a value
into it, and capstone must decode the operand that value means (branch target
``P + value``, ``adrp`` target ``Page(P) + value``, load offset ``value &
0xfff``, ``movk`` immediate ``(value >> 16n) & 0xffff``...).
"""

from __future__ import annotations

import shutil
import struct

import capstone
import keystone
import pytest
import unicorn
from capstone import arm64 as CA
from elftools.elf.enums import ENUM_RELOC_TYPE_AARCH64
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from unicorn import arm64_const as UA

from kitemu.errors import FixupRangeError
from kitemu.targets import aarch64 as T
from kitemu.targets.base import DataFixup, Formula

from helpers import assert_llvm_mc_reloc_names

SETTINGS = settings(max_examples=150, deadline=None)
EMU_SETTINGS = settings(max_examples=30, deadline=None)
M64 = (1 << 64) - 1

_KS = keystone.Ks(keystone.KS_ARCH_ARM64, keystone.KS_MODE_LITTLE_ENDIAN)
_CS = capstone.Cs(capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM)
_CS.detail = True


def asm(text: str) -> bytes:
    enc, _ = _KS.asm(text, 0)
    code = bytes(enc)
    assert len(code) == 4, text
    return code


def disasm(code: bytes, addr: int):
    insns = list(_CS.disasm(code, addr))
    assert len(insns) == 1, code.hex()
    return insns[0]


def word(code) -> int:
    return struct.unpack("<I", bytes(code))[0]


def page(x: int) -> int:
    return x & ~0xFFF


# Bits of each field (the test's own statement of the encodings).
IMM26 = 0x03FFFFFF
IMM19 = 0x7FFFF << 5
IMM14 = 0x3FFF << 5
ADR21 = (0x3 << 29) | (0x7FFFF << 5)
IMM12 = 0xFFF << 10
IMM16 = 0xFFFF << 5

addr_st = st.integers(0, (1 << 46) - 1).map(lambda a: a & ~3)
junk_st = st.integers(0, 0xFFFFFFFF)


def patch(fixup, template: bytes, field_mask: int, junk: int, value: int):
    """Put junk in the field first (encode must overwrite all of it), then
    encode ``value``; check the other bits are untouched and the decode
    round-trips. Returns the patched bytes."""
    before = (word(template) & ~field_mask) | (junk & field_mask)
    buf = bytearray(b"\xaa" * 4 + struct.pack("<I", before) + b"\xbb" * 4)
    fixup.encode(buf, 4, value)
    assert buf[:4] == b"\xaa" * 4 and buf[8:] == b"\xbb" * 4
    after = word(buf[4:8])
    assert (after ^ before) & ~field_mask & 0xFFFFFFFF == 0, "bits outside the field changed"
    assert fixup.decode(buf, 4) == fixup.roundtrip(value)
    return bytes(buf[4:8])


def rejects(fixup, template: bytes, value: int):
    buf = bytearray(b"\x11" * 4 + template + b"\x22" * 4)
    orig = bytes(buf)
    with pytest.raises(FixupRangeError):
        fixup.encode(buf, 4, value)
    assert bytes(buf) == orig, "a rejected value modified the buffer"
    assert not fixup.in_range(value)


def outside(lo: int, hi: int, align: int = 1):
    """Values outside [lo, hi], multiples of ``align`` (so only the range
    check can reject them)."""
    def away(v):   # round to a multiple of align, away from the range
        return v + (-v) % align if v > hi else v - v % align
    return st.one_of(
        st.integers(-(1 << 66), lo - 1),
        st.integers(hi + 1, 1 << 66),
        st.sampled_from([lo - 1, hi + 1]),
    ).map(away)


# ---------------------------------------------------------------------------
# PC-relative branches: capstone's target at P must be P + value.

BRANCHES = [
    # (fixup, templates, field mask, range bits: value in [-2^b, 2^b - 4])
    (T.BRANCH26, ["bl #0", "b #0"], IMM26, 27),
    (T.CONDBR19, ["b.ne #0", "b.eq #0", "cbz x3, #0", "cbnz w7, #0",
                  "ldr x0, #0", "ldr w5, #0"], IMM19, 20),
    (T.TESTBR14, ["tbz w1, #5, #0", "tbnz x9, #40, #0"], IMM14, 15),
]


def _branch_target(insn) -> int:
    return insn.operands[-1].imm


@pytest.mark.parametrize("fixup,templates,mask,bits", BRANCHES,
                         ids=[b[0].name for b in BRANCHES])
def test_branch_encodes_target(fixup, templates, mask, bits):
    @SETTINGS
    @given(st.sampled_from(templates), addr_st, st.integers(-(1 << (bits - 2)), (1 << (bits - 2)) - 1),
           junk_st)
    def prop(tmpl, p, k, junk):
        value = 4 * k
        code = patch(fixup, asm(tmpl), mask, junk, value)
        insn = disasm(code, p)
        assert insn.mnemonic == disasm(asm(tmpl), 0).mnemonic
        assert _branch_target(insn) & M64 == (p + value) & M64
        assert fixup.roundtrip(value) == value
    prop()


@pytest.mark.parametrize("fixup,templates,mask,bits", BRANCHES,
                         ids=[b[0].name for b in BRANCHES])
def test_branch_rejects_out_of_range_and_misaligned(fixup, templates, mask, bits):
    lo, hi = -(1 << bits), (1 << bits) - 4
    # the edges themselves are accepted
    for v in (lo, hi, 0, 4, -4):
        assert fixup.in_range(v)

    @SETTINGS
    @given(st.one_of(outside(lo, hi, 4),
                     st.integers(lo, hi).filter(lambda v: v % 4)))
    def prop(value):
        rejects(fixup, asm(templates[0]), value)
    prop()


# ---------------------------------------------------------------------------
# ADR / ADRP.

@SETTINGS
@given(st.sampled_from(["adr x0, #0", "adr x17, #0"]), addr_st,
       st.integers(-(1 << 20), (1 << 20) - 1), junk_st)
def test_adr_lo21(tmpl, p, value, junk):
    code = patch(T.ADR_LO21, asm(tmpl), ADR21, junk, value)
    insn = disasm(code, p)
    assert insn.mnemonic == "adr"
    assert insn.operands[1].imm & M64 == (p + value) & M64


@SETTINGS
@given(st.one_of(outside(-(1 << 20), (1 << 20) - 1)))
def test_adr_lo21_rejects(value):
    rejects(T.ADR_LO21, asm("adr x0, #0"), value)


@SETTINGS
@given(st.sampled_from(["adrp x0, #0", "adrp x16, #0"]), addr_st,
       st.integers(-(1 << 20), (1 << 20) - 1), junk_st)
def test_adrp_page21(tmpl, p, k, junk):
    value = k << 12
    code = patch(T.ADRP_PAGE21, asm(tmpl), ADR21, junk, value)
    insn = disasm(code, p)
    assert insn.mnemonic == "adrp"
    assert insn.operands[1].imm & M64 == (page(p) + value) & M64
    assert T.ADRP_PAGE21.roundtrip(value) == value


def test_adrp_page21_edges():
    assert T.ADRP_PAGE21.in_range(-(1 << 32))
    assert T.ADRP_PAGE21.in_range((1 << 32) - 4096)
    assert not T.ADRP_PAGE21.in_range(1 << 32)
    assert not T.ADRP_PAGE21.in_range(-(1 << 32) - 4096)


@SETTINGS
@given(st.one_of(outside(-(1 << 32), (1 << 32) - 4096, 4096),
                 st.integers(-(1 << 32), (1 << 32)).filter(lambda v: v % 4096)))
def test_adrp_page21_rejects(value):
    rejects(T.ADRP_PAGE21, asm("adrp x0, #0"), value)


@SETTINGS
@given(addr_st, st.integers(-(1 << 40), 1 << 40), junk_st)
def test_adrp_page21_nc_keeps_bits(p, k, junk):
    value = k << 12
    code = patch(T.ADRP_PAGE21_NC, asm("adrp x3, #0"), ADR21, junk, value)
    insn = disasm(code, p)
    kept = ((value >> 12) & 0x1FFFFF)
    kept = (kept - (1 << 21) if kept >> 20 else kept) << 12
    assert insn.operands[1].imm & M64 == (page(p) + kept) & M64
    assert T.ADRP_PAGE21_NC.roundtrip(value) == kept


# ---------------------------------------------------------------------------
# ADD / LDR / STR low 12 bits.

value_st = st.integers(-(1 << 64), 1 << 64)


@SETTINGS
@given(st.sampled_from(["add x0, x1, #0", "add w3, w4, #0", "adds x5, x6, #0"]),
       value_st, junk_st)
def test_add_lo12(tmpl, value, junk):
    code = patch(T.ADD_LO12, asm(tmpl), IMM12, junk, value)
    insn = disasm(code, 0)
    assert insn.operands[-1].type == CA.ARM64_OP_IMM
    assert insn.operands[-1].imm == value & 0xFFF
    assert T.ADD_LO12.roundtrip(value) == value & 0xFFF


LDSTS = [
    (T.LDST8_LO12, 1, ["ldrb w0, [x1, #0]", "strb w2, [x3, #0]", "ldrsb x0, [x1, #0]"]),
    (T.LDST16_LO12, 2, ["ldrh w0, [x1, #0]", "strh w2, [x3, #0]", "ldr h0, [x1, #0]"]),
    (T.LDST32_LO12, 4, ["ldr w0, [x1, #0]", "str w2, [x3, #0]", "ldr s0, [x1, #0]",
                        "ldrsw x0, [x1, #0]"]),
    (T.LDST64_LO12, 8, ["ldr x0, [x1, #0]", "str x2, [x3, #0]", "ldr d0, [x1, #0]"]),
    (T.LDST128_LO12, 16, ["ldr q0, [x1, #0]", "str q2, [x3, #0]"]),
]


@pytest.mark.parametrize("fixup,size,templates", LDSTS, ids=[x[0].name for x in LDSTS])
def test_ldst_lo12(fixup, size, templates):
    @SETTINGS
    @given(st.sampled_from(templates), value_st, junk_st)
    def prop(tmpl, value, junk):
        value -= value % size
        code = patch(fixup, asm(tmpl), IMM12, junk, value)
        insn = disasm(code, 0)
        mem = insn.operands[-1]
        assert mem.type == CA.ARM64_OP_MEM
        assert mem.mem.disp == value & 0xFFF
        assert fixup.roundtrip(value) == value & 0xFFF
    prop()


@pytest.mark.parametrize("fixup,size,templates",
                         [x for x in LDSTS if x[1] > 1], ids=[x[0].name for x in LDSTS if x[1] > 1])
def test_ldst_lo12_rejects_misaligned(fixup, size, templates):
    @SETTINGS
    @given(value_st.filter(lambda v: v % size))
    def prop(value):
        rejects(fixup, asm(templates[0]), value)
    prop()


def test_ldst8_accepts_everything():
    for v in (-1, 1, 0xFFF, 1 << 70, -(1 << 70) + 3):
        assert T.LDST8_LO12.in_range(v)


# ---------------------------------------------------------------------------
# MOVZ / MOVK groups.

MOVWS = [
    # (fixup, group, checked)
    (T.MOVW_G0, 0, True), (T.MOVW_G0_NC, 0, False),
    (T.MOVW_G1, 1, True), (T.MOVW_G1_NC, 1, False),
    (T.MOVW_G2, 2, True), (T.MOVW_G2_NC, 2, False),
    (T.MOVW_G3, 3, False),
]


def _mov_templates(group):
    sh = 16 * group
    return [f"movz x0, #0, lsl #{sh}", f"movk x0, #0, lsl #{sh}",
            f"movk x17, #0, lsl #{sh}"]


@pytest.mark.parametrize("fixup,group,checked", MOVWS, ids=[m[0].name for m in MOVWS])
def test_movw(fixup, group, checked):
    sh = 16 * group
    values = st.integers(0, (1 << (sh + 16)) - 1) if checked else value_st

    @SETTINGS
    @given(st.sampled_from(_mov_templates(group)), values, junk_st)
    def prop(tmpl, value, junk):
        code = patch(fixup, asm(tmpl), IMM16, junk, value)
        insn = disasm(code, 0)
        op = insn.operands[1]
        assert op.type == CA.ARM64_OP_IMM
        shift = op.shift.value if op.shift.type == CA.ARM64_SFT_LSL else 0
        # `mov x0, #imm` (the movz alias) shows the shifted value, movz/movk
        # the raw imm16 with `lsl #16n`: either way imm << shift.
        assert (op.imm << shift) & M64 == ((value >> sh) & 0xFFFF) << sh
        assert fixup.roundtrip(value) == ((value >> sh) & 0xFFFF) << sh
    prop()


@pytest.mark.parametrize("fixup,group,checked",
                         [m for m in MOVWS if m[2]], ids=[m[0].name for m in MOVWS if m[2]])
def test_movw_checked_rejects(fixup, group, checked):
    hi = (1 << (16 * group + 16)) - 1
    assert fixup.in_range(0) and fixup.in_range(hi)

    @SETTINGS
    @given(outside(0, hi))
    def prop(value):
        rejects(fixup, asm(_mov_templates(group)[0]), value)
    prop()


# ---------------------------------------------------------------------------
# Data words.

DATAS = [
    # (fixup, size, lo, hi, signed decode)
    (T.DATA64, 8, -(1 << 63), (1 << 64) - 1, False),
    (T.DATA32, 4, -(1 << 31), (1 << 32) - 1, False),
    (T.DATA16, 2, -(1 << 15), (1 << 16) - 1, False),
    (T.PREL64, 8, -(1 << 63), (1 << 63) - 1, True),
    # AAELF64: PREL32 checks -2^31 <= X < 2^32, PREL16 -2^15 <= X < 2^16
    (T.PREL32, 4, -(1 << 31), (1 << 32) - 1, False),
    (T.PREL16, 2, -(1 << 15), (1 << 16) - 1, False),
    (T.PLT32, 4, -(1 << 31), (1 << 31) - 1, True),
]
_FMT = {8: "q", 4: "i", 2: "h"}


@pytest.mark.parametrize("fixup,size,lo,hi,signed", DATAS, ids=[d[0].name for d in DATAS])
def test_data(fixup, size, lo, hi, signed):
    @SETTINGS
    @given(st.integers(lo, hi), st.integers(0, 7), st.binary(min_size=24, max_size=24))
    def prop(value, off, filler):
        buf = bytearray(filler)
        fixup.encode(buf, off, value)
        assert buf[:off] == filler[:off] and buf[off + size:] == filler[off + size:]
        fmt = "<" + (_FMT[size] if signed else _FMT[size].upper())
        (got,) = struct.unpack_from(fmt, buf, off)
        raw = value & ((1 << 8 * size) - 1)
        assert got == (raw - (1 << 8 * size) if signed and raw >> (8 * size - 1) else raw)
        assert fixup.decode(buf, off) == fixup.roundtrip(value) == got
    prop()

    @SETTINGS
    @given(outside(lo, hi))
    def rej(value):
        rejects(fixup, b"\0" * size, value)
    rej()


@pytest.mark.parametrize("fixup,size,lo,hi,signed", DATAS, ids=[d[0].name for d in DATAS])
def test_data_roundtrip_over_all_accepted_values(fixup, size, lo, hi, signed):
    """Whatever ``bounds`` accepts, decode(encode(v)) == roundtrip(v)."""
    blo, bhi = fixup.bounds

    @SETTINGS
    @given(st.one_of(st.integers(blo, bhi), st.sampled_from([blo, bhi])))
    def prop(value):
        buf = bytearray(size)
        fixup.encode(buf, 0, value)
        assert fixup.decode(buf, 0) == fixup.roundtrip(value)
    prop()


# ---------------------------------------------------------------------------
# Every fixup the table uses is covered above.

def test_every_fixup_kind_is_tested():
    tested = ({b[0] for b in BRANCHES} | {x[0] for x in LDSTS} | {m[0] for m in MOVWS}
              | {d[0] for d in DATAS}
              | {T.ADR_LO21, T.ADRP_PAGE21, T.ADRP_PAGE21_NC, T.ADD_LO12})
    used = {spec.fixup for spec in T.ELF_RELOCS.values() if spec.fixup is not None}
    assert used <= tested, used - tested


# ---------------------------------------------------------------------------
# Far-call stub / indirect jump.

@SETTINGS
@given(addr_st, st.integers(-(1 << 20), (1 << 20) - 1), st.integers(0, 511))
def test_indirect_jump(at, dpage, slot):
    cell = page(at) + (dpage << 12) + 8 * slot
    assume(cell >= 0)
    code = T.ARCH.indirect_jump(at, cell)
    assert len(code) == T.ARCH.indirect_jump_size == 16
    insns = list(_CS.disasm(code, at))
    assert [i.mnemonic for i in insns] == ["adrp", "ldr", "br", "brk"]
    adrp, ldr, br, _ = insns
    reg = adrp.operands[0].reg
    assert reg in (CA.ARM64_REG_X16, CA.ARM64_REG_X17)   # IP0/IP1 only
    mem = ldr.operands[1].mem
    assert mem.base == reg and ldr.operands[0].reg == reg
    assert adrp.operands[1].imm + mem.disp == cell
    assert br.operands[0].reg == reg


@SETTINGS
@given(addr_st, st.one_of(st.integers(1 << 32, 1 << 40), st.integers(-(1 << 40), -(1 << 32) - 4096)))
def test_indirect_jump_out_of_range(at, delta):
    cell = page(at) + (delta & ~0xFFF)
    assume(0 <= cell < (1 << 64))
    with pytest.raises(FixupRangeError):
        T.ARCH.indirect_jump(at, cell)


@SETTINGS
@given(addr_st, st.integers(0, 1 << 20).filter(lambda c: c % 8))
def test_indirect_jump_misaligned_cell(at, off):
    with pytest.raises(FixupRangeError):
        T.ARCH.indirect_jump(at, (at & ~7) + off)


def test_fixed_instructions():
    assert disasm(T.ARCH.host_return, 0).mnemonic == "ret"
    trap = disasm(T.ARCH.trap, 0)
    assert trap.mnemonic == "brk" and trap.operands[0].imm == 0
    assert T.ARCH.host_return == asm("ret") and T.ARCH.trap == asm("brk #0")


# ---------------------------------------------------------------------------
# unicorn: execute patched code (4 KiB pages set explicitly: unicorn's
# AArch64 default is 1 KiB).

BASE = 0x1_0000_0000            # +-4 GiB around it stays in positive space


def _emu(addrs):
    mu = unicorn.Uc(unicorn.UC_ARCH_ARM64, unicorn.UC_MODE_ARM)
    mu.ctl_set_page_size(0x1000)
    for p in sorted({a & ~0xFFF for a in addrs}):
        mu.mem_map(p, 0x1000)
    return mu


@EMU_SETTINGS
@given(st.integers(0, 0x3FF).map(lambda i: 4 * i), st.integers(-(1 << 20), (1 << 20) - 1),
       st.integers(0, 0xFFF))
def test_adrp_add_executes(off, dpage, lo):
    p = BASE + (dpage & 0xFF) * 0x1000 + off
    assume(p % 0x1000 <= 0xFF8)
    s = page(p) + (dpage << 12) + lo
    code = bytearray(asm("adrp x0, #0") + asm("add x0, x0, #0"))
    T.ADRP_PAGE21.encode(code, 0, page(s) - page(p))
    T.ADD_LO12.encode(code, 4, s)
    mu = _emu([p, p + 4])
    mu.mem_write(p, bytes(code))
    mu.emu_start(p, p + 8)
    assert mu.reg_read(UA.UC_ARM64_REG_X0) == s


@EMU_SETTINGS
@given(st.integers(0, 0x3FF).map(lambda i: 4 * i), st.integers(-0x1000, 0x1000),
       st.integers(0, 0x1FF), st.integers(0, M64))
def test_adrp_ldr_executes(off, dpage, slot, payload):
    p = BASE + 0x2000_0000 + off
    cell = page(p) + (dpage << 12) + 8 * slot
    assume(not (cell < p + 8 and p < cell + 8))     # the cell is not the code
    code = bytearray(asm("adrp x1, #0") + asm("ldr x0, [x1, #0]"))
    T.ADRP_PAGE21.encode(code, 0, page(cell) - page(p))
    T.LDST64_LO12.encode(code, 4, cell)
    mu = _emu([p, p + 4, cell])
    mu.mem_write(p, bytes(code))
    mu.mem_write(cell, struct.pack("<Q", payload))
    mu.emu_start(p, p + 8)
    assert mu.reg_read(UA.UC_ARM64_REG_X0) == payload


@EMU_SETTINGS
@given(st.integers(-(1 << 25), (1 << 25) - 1).map(lambda k: 4 * k).filter(lambda v: v != 0))
def test_bl_executes(value):
    p = BASE
    code = bytearray(asm("bl #0"))
    T.BRANCH26.encode(code, 0, value)
    mu = _emu([p, p + value])
    mu.mem_write(p, bytes(code))
    mu.emu_start(p, p + value, count=1)
    assert mu.reg_read(UA.UC_ARM64_REG_PC) == p + value
    assert mu.reg_read(UA.UC_ARM64_REG_LR) == p + 4


@EMU_SETTINGS
@given(st.integers(0, M64))
def test_movz_movk_sequence_executes(value):
    code = bytearray(asm("movz x0, #0, lsl #48") + asm("movk x0, #0, lsl #32")
                     + asm("movk x0, #0, lsl #16") + asm("movk x0, #0"))
    T.MOVW_G3.encode(code, 0, value)
    T.MOVW_G2_NC.encode(code, 4, value)
    T.MOVW_G1_NC.encode(code, 8, value)
    T.MOVW_G0_NC.encode(code, 12, value)
    mu = _emu([BASE])
    mu.mem_write(BASE, bytes(code))
    mu.emu_start(BASE, BASE + 16)
    assert mu.reg_read(UA.UC_ARM64_REG_X0) == value


@EMU_SETTINGS
@given(st.integers(0, 0x3FC).map(lambda i: 4 * i), st.integers(-(1 << 20), (1 << 20) - 1),
       st.integers(0, 0x1FF), st.integers(1, 0x3FF))
def test_indirect_jump_executes(off, dpage, slot, tslot):
    at = BASE + 0x8000_0000 + off
    cell = page(at) + (dpage << 12) + 8 * slot
    target = BASE + 0x10_0000 + 4 * tslot            # another page
    assume(page(cell) not in (page(at), page(target)))
    mu = _emu([at, cell, target])
    mu.mem_write(at, T.ARCH.indirect_jump(at, cell))
    mu.mem_write(cell, struct.pack("<Q", target))
    mu.mem_write(target, T.ARCH.trap)
    mu.emu_start(at, target, count=3)
    assert mu.reg_read(UA.UC_ARM64_REG_PC) == target
    # only IP0/IP1 may be clobbered: x0..x15, x18..x30 untouched (zero)
    assert all(mu.reg_read(getattr(UA, f"UC_ARM64_REG_X{i}")) == 0
               for i in (*range(16), *range(18, 30)))


# ---------------------------------------------------------------------------
# The relocation table.

def test_reloc_names_and_numbers_match_pyelftools():
    for num, spec in T.ELF_RELOCS.items():
        assert spec.name.startswith("R_AARCH64_")
        if spec.name == "R_AARCH64_NONE":
            assert num in (0, 256) and spec.fixup is None
            continue
        assert spec.fixup is not None
        if spec.name in ENUM_RELOC_TYPE_AARCH64:
            assert ENUM_RELOC_TYPE_AARCH64[spec.name] == num, spec.name


REQUIRED = {
    "R_AARCH64_ABS64", "R_AARCH64_ABS32", "R_AARCH64_ABS16", "R_AARCH64_PREL64",
    "R_AARCH64_PREL32", "R_AARCH64_PREL16", "R_AARCH64_MOVW_UABS_G0",
    "R_AARCH64_MOVW_UABS_G0_NC", "R_AARCH64_MOVW_UABS_G1", "R_AARCH64_MOVW_UABS_G1_NC",
    "R_AARCH64_MOVW_UABS_G2", "R_AARCH64_MOVW_UABS_G2_NC", "R_AARCH64_MOVW_UABS_G3",
    "R_AARCH64_ADR_PREL_LO21", "R_AARCH64_ADR_PREL_PG_HI21",
    "R_AARCH64_ADR_PREL_PG_HI21_NC", "R_AARCH64_ADD_ABS_LO12_NC",
    "R_AARCH64_LDST8_ABS_LO12_NC", "R_AARCH64_TSTBR14", "R_AARCH64_CONDBR19",
    "R_AARCH64_JUMP26", "R_AARCH64_CALL26", "R_AARCH64_LDST16_ABS_LO12_NC",
    "R_AARCH64_LDST32_ABS_LO12_NC", "R_AARCH64_LDST64_ABS_LO12_NC",
    "R_AARCH64_LDST128_ABS_LO12_NC", "R_AARCH64_ADR_GOT_PAGE",
    "R_AARCH64_LD64_GOT_LO12_NC",
}


def test_required_relocs_present_with_right_formula():
    by_name = {spec.name: (num, spec) for num, spec in T.ELF_RELOCS.items() if num}
    assert REQUIRED <= set(by_name)
    assert T.ELF_RELOCS[0].formula is Formula.NONE
    assert T.ELF_RELOCS[256].formula is Formula.NONE
    F = Formula
    want = {
        "R_AARCH64_ADR_PREL_PG_HI21": (F.PAGE_PCREL, T.ADRP_PAGE21),
        "R_AARCH64_ADR_PREL_PG_HI21_NC": (F.PAGE_PCREL, T.ADRP_PAGE21_NC),
        "R_AARCH64_ADR_GOT_PAGE": (F.GOT_PAGE_PCREL, T.ADRP_PAGE21),
        "R_AARCH64_LD64_GOT_LO12_NC": (F.GOT_ABS, T.LDST64_LO12),
        "R_AARCH64_CALL26": (F.PCREL, T.BRANCH26),
        "R_AARCH64_JUMP26": (F.PCREL, T.BRANCH26),
        "R_AARCH64_CONDBR19": (F.PCREL, T.CONDBR19),
        "R_AARCH64_TSTBR14": (F.PCREL, T.TESTBR14),
        "R_AARCH64_ADR_PREL_LO21": (F.PCREL, T.ADR_LO21),
        "R_AARCH64_ADD_ABS_LO12_NC": (F.ABS, T.ADD_LO12),
        "R_AARCH64_LDST128_ABS_LO12_NC": (F.ABS, T.LDST128_LO12),
        "R_AARCH64_MOVW_UABS_G3": (F.ABS, T.MOVW_G3),
    }
    for name, (formula, fixup) in want.items():
        spec = by_name[name][1]
        assert (spec.formula, spec.fixup) == (formula, fixup), name
    for name, (num, spec) in by_name.items():
        assert spec.branch == (name in ("R_AARCH64_CALL26", "R_AARCH64_JUMP26")), name
        if name.startswith(("R_AARCH64_ABS", "R_AARCH64_MOVW_UABS")) or "_ABS_LO12" in name:
            assert spec.formula is F.ABS, name
        if name.startswith("R_AARCH64_PREL"):
            assert spec.formula is F.PCREL, name
            assert spec.fixup.signedness == ("signed" if name == "R_AARCH64_PREL64" else "either"), name


# One line of assembly -> the relocation llvm-mc emits for it.
LLVM_MC_CASES = [
    ("text", "b far", "R_AARCH64_JUMP26"),
    ("text", "bl far", "R_AARCH64_CALL26"),
    ("text", "b.ne far", "R_AARCH64_CONDBR19"),
    ("text", "tbz w1, #5, far", "R_AARCH64_TSTBR14"),
    ("text", "ldr x0, far", "R_AARCH64_LD_PREL_LO19"),
    ("text", "adr x0, far", "R_AARCH64_ADR_PREL_LO21"),
    ("text", "adrp x0, far", "R_AARCH64_ADR_PREL_PG_HI21"),
    ("text", "adrp x0, :pg_hi21_nc:far", "R_AARCH64_ADR_PREL_PG_HI21_NC"),
    ("text", "add x0, x0, :lo12:far", "R_AARCH64_ADD_ABS_LO12_NC"),
    ("text", "ldrb w0, [x1, :lo12:far]", "R_AARCH64_LDST8_ABS_LO12_NC"),
    ("text", "ldrh w0, [x1, :lo12:far]", "R_AARCH64_LDST16_ABS_LO12_NC"),
    ("text", "ldr w0, [x1, :lo12:far]", "R_AARCH64_LDST32_ABS_LO12_NC"),
    ("text", "ldr x0, [x1, :lo12:far]", "R_AARCH64_LDST64_ABS_LO12_NC"),
    ("text", "ldr q0, [x1, :lo12:far]", "R_AARCH64_LDST128_ABS_LO12_NC"),
    ("text", "adrp x0, :got:far", "R_AARCH64_ADR_GOT_PAGE"),
    ("text", "ldr x0, [x0, :got_lo12:far]", "R_AARCH64_LD64_GOT_LO12_NC"),
    ("text", "movz x0, #:abs_g0:far", "R_AARCH64_MOVW_UABS_G0"),
    ("text", "movk x0, #:abs_g0_nc:far", "R_AARCH64_MOVW_UABS_G0_NC"),
    ("text", "movz x0, #:abs_g1:far", "R_AARCH64_MOVW_UABS_G1"),
    ("text", "movk x0, #:abs_g1_nc:far", "R_AARCH64_MOVW_UABS_G1_NC"),
    ("text", "movz x0, #:abs_g2:far", "R_AARCH64_MOVW_UABS_G2"),
    ("text", "movk x0, #:abs_g2_nc:far", "R_AARCH64_MOVW_UABS_G2_NC"),
    ("text", "movk x0, #:abs_g3:far", "R_AARCH64_MOVW_UABS_G3"),
    ("data", ".xword far", "R_AARCH64_ABS64"),
    ("data", ".word far", "R_AARCH64_ABS32"),
    ("data", ".hword far", "R_AARCH64_ABS16"),
    ("data", ".xword far - .", "R_AARCH64_PREL64"),
    ("data", ".word far - .", "R_AARCH64_PREL32"),
    ("data", ".hword far - .", "R_AARCH64_PREL16"),
    ("data", ".word far@PLT - .", "R_AARCH64_PLT32"),
    ("data", ".reloc ., R_AARCH64_NONE, far", "R_AARCH64_NONE"),
]


@pytest.mark.skipif(shutil.which("llvm-mc") is None, reason="llvm-mc not installed")
def test_reloc_numbers_match_llvm_mc(tmp_path):
    assert_llvm_mc_reloc_names(tmp_path, "aarch64-linux-gnu", LLVM_MC_CASES, T.ELF_RELOCS)


# ---------------------------------------------------------------------------
# Calling convention and the Arch record.

def test_arch_record():
    from unicorn import arm64_const as A
    import unicorn
    a = T.ARCH
    assert (a.name, a.elf_machine) == ("aarch64", "EM_AARCH64")
    assert (a.uc_arch, a.uc_mode) == (unicorn.UC_ARCH_ARM64, unicorn.UC_MODE_ARM)
    assert (a.cs_arch, a.cs_mode) == (capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM)
    assert a.fixed_uc_page_size is None
    cc = a.callconv
    assert cc.int_args == tuple(getattr(A, f"UC_ARM64_REG_X{i}") for i in range(8))
    assert cc.fp_args == tuple(getattr(A, f"UC_ARM64_REG_D{i}") for i in range(8))
    assert (cc.int_ret, cc.fp_ret) == (A.UC_ARM64_REG_X0, A.UC_ARM64_REG_D0)
    assert cc.ra == A.UC_ARM64_REG_X30 and cc.sp == A.UC_ARM64_REG_SP
    assert cc.pc == A.UC_ARM64_REG_PC and cc.stack_align == 16
    assert cc.stack_args_offset == 0 and cc.fp_reg_bits == 64
    assert isinstance(T.DATA64, DataFixup)
