"""Property tests for the x86-64 fixups, relocation table and stub code.

Each fixup is written into the operand field of a real instruction assembled
by keystone, and capstone must decode the operand that value means: a
``call``/``jmp`` target ``P + value - A`` (A = the distance from the field to
the end of the instruction, negated, as the assembler emits it), a RIP
displacement, an immediate.
"""

from __future__ import annotations

import shutil
import struct

import capstone
import keystone
import pytest
from capstone import x86 as CX
from elftools.elf.enums import ENUM_RELOC_TYPE_x64
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from kitemu.errors import FixupRangeError
from kitemu.targets import x64 as T
from kitemu.targets.base import Formula

from helpers import assert_llvm_mc_reloc_names

SETTINGS = settings(max_examples=150, deadline=None)
M64 = (1 << 64) - 1

_KS = keystone.Ks(keystone.KS_ARCH_X86, keystone.KS_MODE_64)
_CS = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
_CS.detail = True


def asm(text: str) -> bytes:
    enc, _ = _KS.asm(text, 0)
    return bytes(enc)


def disasm(code: bytes, addr: int):
    insns = list(_CS.disasm(code, addr))
    assert len(insns) == 1 and insns[0].size == len(code), code.hex()
    return insns[0]


addr_st = st.integers(0, (1 << 47) - 1)


def outside(lo: int, hi: int):
    return st.one_of(st.integers(-(1 << 70), lo - 1), st.integers(hi + 1, 1 << 70),
                     st.sampled_from([lo - 1, hi + 1]))


def patch(fixup, insn: bytes, value: int, junk: bytes) -> bytes:
    """Fill the field (the last ``fixup.size`` bytes of ``insn``) with junk,
    encode ``value`` there; check the opcode bytes are untouched and the
    decode round-trips."""
    off = len(insn) - fixup.size
    before = bytearray(insn[:off] + junk[:fixup.size])
    buf = bytearray(b"\x90" * 3) + before + b"\x90" * 3
    fixup.encode(buf, 3 + off, value)
    assert buf[:3 + off] == b"\x90" * 3 + insn[:off]
    assert buf[3 + len(insn):] == b"\x90" * 3
    assert fixup.decode(buf, 3 + off) == fixup.roundtrip(value)
    return bytes(buf[3:3 + len(insn)])


def rejects(fixup, insn: bytes, value: int):
    off = len(insn) - fixup.size
    buf = bytearray(insn + b"\x90" * 2)
    orig = bytes(buf)
    with pytest.raises(FixupRangeError):
        fixup.encode(buf, off, value)
    assert bytes(buf) == orig
    assert not fixup.in_range(value)


junk_st = st.binary(min_size=8, max_size=8)

# ---------------------------------------------------------------------------
# PC-relative fields inside instructions.

# (fixup, templates, value range); every template ends with the field.
PCREL_INSNS = [
    (T.PCREL32, ["call 0", "jmp 0x100", "jne 0x100"], (-(1 << 31), (1 << 31) - 1)),
    (T.PCREL8, ["jmp 2", "jne 2", "jrcxz 2"], (-128, 127)),
]


@pytest.mark.parametrize("fixup,templates,rng", PCREL_INSNS, ids=[x[0].name for x in PCREL_INSNS])
def test_pcrel_branch(fixup, templates, rng):
    @SETTINGS
    @given(st.sampled_from(templates), addr_st, st.integers(*rng), junk_st)
    def prop(tmpl, at, value, junk):
        insn = asm(tmpl)
        code = patch(fixup, insn, value, junk)
        d = disasm(code, at)
        field = at + len(insn) - fixup.size          # P
        addend = -fixup.size                          # the assembler's A
        # value = S + A - P  =>  S = P + value - A
        assert d.operands[0].type == CX.X86_OP_IMM
        assert d.operands[0].imm & M64 == (field + value - addend) & M64
        assert fixup.roundtrip(value) == value
    prop()

    @SETTINGS
    @given(outside(*rng))
    def rej(value):
        rejects(fixup, asm(templates[0]), value)
    rej()


@SETTINGS
@given(st.sampled_from(["lea rax, [rip]", "mov rax, qword ptr [rip + 0x1000]",
                        "mov r11d, dword ptr [rip + 0x10]", "call qword ptr [rip + 0x10]"]),
       addr_st, st.integers(-(1 << 31), (1 << 31) - 1), junk_st)
def test_pcrel32_rip_displacement(tmpl, at, value, junk):
    insn = asm(tmpl)
    code = patch(T.PCREL32, insn, value, junk)
    d = disasm(code, at)
    mem = [op for op in d.operands if op.type == CX.X86_OP_MEM][0].mem
    assert mem.base == CX.X86_REG_RIP
    assert mem.disp == value
    # the address the CPU computes: end of instruction + disp
    field = at + len(insn) - 4
    assert (at + d.size + mem.disp) & M64 == (field + value + 4) & M64


# ---------------------------------------------------------------------------
# Absolute immediates.

IMM_INSNS = [
    # (fixup, template, value range, what the CPU sees: bits and sign-extension)
    (T.DATA64, "movabs rax, 0x1122334455667788", (-(1 << 63), (1 << 64) - 1), 64, False),
    (T.DATA32, "mov eax, 0x12345678", (0, (1 << 32) - 1), 32, False),
    (T.DATA32S, "mov rax, 0x12345678", (-(1 << 31), (1 << 31) - 1), 32, True),
    (T.DATA32S, "push 0x12345678", (-(1 << 31), (1 << 31) - 1), 32, True),
    (T.DATA16, "mov ax, 0x1234", (-(1 << 15), (1 << 16) - 1), 16, False),
    (T.DATA8, "mov al, 0x12", (-128, 255), 8, False),
]


@pytest.mark.parametrize("fixup,tmpl,rng,bits,sext", IMM_INSNS,
                         ids=[f"{x[0].name}-{x[1].split()[0]}" for x in IMM_INSNS])
def test_immediate(fixup, tmpl, rng, bits, sext):
    insn = asm(tmpl)

    @SETTINGS
    @given(st.integers(*rng), junk_st)
    def prop(value, junk):
        code = patch(fixup, insn, value, junk)
        d = disasm(code, 0)
        imm = [op for op in d.operands if op.type == CX.X86_OP_IMM][0].imm
        mask = (1 << bits) - 1
        if sext:
            # the CPU sign-extends: the full 64-bit register value is `value`
            assert imm & M64 == value & M64
        else:
            assert imm & mask == value & mask
    prop()

    @SETTINGS
    @given(outside(*rng))
    def rej(value):
        rejects(fixup, insn, value)
    rej()


# ---------------------------------------------------------------------------
# Data words (no instruction carries PC16/PC64 in 64-bit code).

DATAS = [
    # (fixup, size, accepted range, decoded as signed)
    (T.DATA64, 8, (-(1 << 63), (1 << 64) - 1), False),
    (T.DATA32, 4, (0, (1 << 32) - 1), False),
    (T.DATA32S, 4, (-(1 << 31), (1 << 31) - 1), True),
    (T.DATA16, 2, (-(1 << 15), (1 << 16) - 1), False),
    (T.DATA8, 1, (-128, 255), False),
    (T.PCREL64, 8, (-(1 << 63), (1 << 63) - 1), True),
    (T.PCREL32, 4, (-(1 << 31), (1 << 31) - 1), True),
    (T.PCREL16, 2, (-(1 << 15), (1 << 15) - 1), True),
    (T.PCREL8, 1, (-128, 127), True),
]
_FMT = {8: "q", 4: "i", 2: "h", 1: "b"}


@pytest.mark.parametrize("fixup,size,rng,signed", DATAS, ids=[d[0].name for d in DATAS])
def test_data(fixup, size, rng, signed):
    @SETTINGS
    @given(st.one_of(st.integers(*rng), st.sampled_from(rng)), st.integers(0, 7),
           st.binary(min_size=24, max_size=24))
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
    @given(outside(*rng))
    def rej(value):
        rejects(fixup, b"\0" * size, value)
    rej()


def test_every_fixup_kind_is_tested():
    tested = {x[0] for x in PCREL_INSNS} | {x[0] for x in IMM_INSNS} | {d[0] for d in DATAS}
    used = {spec.fixup for spec in T.ELF_RELOCS.values() if spec.fixup is not None}
    assert used <= tested, used - tested


# ---------------------------------------------------------------------------
# Far-call stub.

@SETTINGS
@given(addr_st, st.integers(-(1 << 31), (1 << 31) - 1))
def test_indirect_jump(at, delta):
    cell = at + 6 + delta
    assume(cell >= 0)
    code = T.ARCH.indirect_jump(at, cell)
    assert len(code) == T.ARCH.indirect_jump_size
    d = list(_CS.disasm(code, at))[0]
    assert d.mnemonic == "jmp"
    mem = d.operands[0].mem
    assert d.operands[0].type == CX.X86_OP_MEM and mem.base == CX.X86_REG_RIP
    assert mem.index == CX.X86_REG_INVALID and d.operands[0].size == 8
    assert at + d.size + mem.disp == cell
    # the padding traps
    assert set(code[d.size:]) <= {0xCC}


@SETTINGS
@given(addr_st, st.one_of(st.integers(1 << 31, 1 << 40), st.integers(-(1 << 40), -(1 << 31) - 1)))
def test_indirect_jump_out_of_range(at, delta):
    cell = at + 6 + delta
    assume(cell >= 0)
    with pytest.raises(FixupRangeError):
        T.ARCH.indirect_jump(at, cell)


def test_is_branch_site():
    call = asm("call 0x1000")
    assert T.is_branch_site(b"\x90" + call, 2)
    assert T.is_branch_site(asm("jmp 0x1000"), 1)
    lea = asm("lea rax, [rip + 0x1000]")
    assert not T.is_branch_site(lea, len(lea) - 4)
    assert not T.is_branch_site(call, 0)


def test_fixed_instructions():
    assert disasm(T.ARCH.host_return, 0).mnemonic == "ret"
    assert disasm(T.ARCH.trap, 0).mnemonic == "ud2"


# ---------------------------------------------------------------------------
# The relocation table.

def test_reloc_names_and_numbers_match_pyelftools():
    for num, spec in T.ELF_RELOCS.items():
        assert spec.name.startswith("R_X86_64_")
        assert (spec.fixup is None) == (spec.formula is Formula.NONE)
        if spec.name in ENUM_RELOC_TYPE_x64:
            assert ENUM_RELOC_TYPE_x64[spec.name] == num, spec.name


LLVM_MC_CASES = [
    ("text", "call far@PLT", "R_X86_64_PLT32"),
    ("text", "movq far@GOTPCREL(%rip), %rax", "R_X86_64_REX_GOTPCRELX"),
    ("text", "movl far@GOTPCREL(%rip), %eax", "R_X86_64_GOTPCRELX"),
    ("text", "leaq far(%rip), %rax", "R_X86_64_PC32"),
    ("text", "movq $far, %rax", "R_X86_64_32S"),
    ("text", "movl $far, %eax", "R_X86_64_32"),
    ("data", ".quad far", "R_X86_64_64"),
    ("data", ".long far", "R_X86_64_32"),
    ("data", ".word far", "R_X86_64_16"),
    ("data", ".byte far", "R_X86_64_8"),
    ("data", ".quad far - .", "R_X86_64_PC64"),
    ("data", ".long far - .", "R_X86_64_PC32"),
    ("data", ".word far - .", "R_X86_64_PC16"),
    ("data", ".byte far - .", "R_X86_64_PC8"),
    ("data", ".long far@GOTPCREL", "R_X86_64_GOTPCREL"),
    ("data", ".reloc ., R_X86_64_NONE, far", "R_X86_64_NONE"),
]


@pytest.mark.skipif(shutil.which("llvm-mc") is None, reason="llvm-mc not installed")
def test_reloc_numbers_match_llvm_mc(tmp_path):
    assert_llvm_mc_reloc_names(tmp_path, "x86_64-linux-gnu", LLVM_MC_CASES, T.ELF_RELOCS)