"""x86-64 (AMD64 System V psABI).

What is peculiar about x86-64 for a JIT linker:

* Instructions are variable length, so a fixup is never an instruction: it is
  a 32- or 64-bit little-endian field somewhere inside one. PC-relative fields
  are relative to the *end* of the instruction, which the assembler folds into
  the addend (``call foo`` carries ``A = -4``), so every PC-relative kind is
  plainly ``S + A - P`` over a signed 32-bit field.
* A 32-bit PC-relative field reaches +-2 GiB. Calls (PC32/PLT32 on a call or
  jmp) that cannot reach go through a far-call stub ``jmp *cell(%rip)``; data
  references that cannot reach are an error, never a truncation.
* ``R_X86_64_32`` zero-extends and ``R_X86_64_32S`` sign-extends: the same
  field, two ranges.
* GOTPCRELX/REX_GOTPCRELX allow a linker to relax ``mov foo@GOTPCREL(%rip)``
  into ``lea``; kitemu keeps the GOT load (always correct), so they are plain
  ``G + A - P``.
* The return address is pushed on the stack by ``call``: at function entry
  ``rsp % 16 == 8``. A variadic call sets ``%al`` to the number of vector
  registers used.
"""

from __future__ import annotations

import struct

import capstone
import unicorn
from unicorn import x86_const as X

from ..errors import FixupRangeError
from .base import (Arch, CallConv, DataFixup, Formula, RelocSpec, VarargRule,
                   fits_signed)

# Fixup kinds: fields inside instructions or data.
DATA64 = DataFixup("x64.Data64", 8)
DATA32 = DataFixup("x64.Data32", 4, "unsigned")        # zero-extended use
DATA32S = DataFixup("x64.Data32S", 4, "signed")        # sign-extended use
DATA16 = DataFixup("x64.Data16", 2)
DATA8 = DataFixup("x64.Data8", 1)
PCREL32 = DataFixup("x64.PCRel32", 4, "signed")
PCREL64 = DataFixup("x64.PCRel64", 8, "signed")
PCREL16 = DataFixup("x64.PCRel16", 2, "signed")
PCREL8 = DataFixup("x64.PCRel8", 1, "signed")

F = Formula
ELF_RELOCS: dict[int, RelocSpec] = {
    0: RelocSpec("R_X86_64_NONE", None, F.NONE),
    1: RelocSpec("R_X86_64_64", DATA64, F.ABS),
    2: RelocSpec("R_X86_64_PC32", PCREL32, F.PCREL, branch=True),
    4: RelocSpec("R_X86_64_PLT32", PCREL32, F.PCREL, branch=True),
    9: RelocSpec("R_X86_64_GOTPCREL", PCREL32, F.GOT_PCREL),
    10: RelocSpec("R_X86_64_32", DATA32, F.ABS),
    11: RelocSpec("R_X86_64_32S", DATA32S, F.ABS),
    12: RelocSpec("R_X86_64_16", DATA16, F.ABS),
    13: RelocSpec("R_X86_64_PC16", PCREL16, F.PCREL),
    14: RelocSpec("R_X86_64_8", DATA8, F.ABS),
    15: RelocSpec("R_X86_64_PC8", PCREL8, F.PCREL),
    24: RelocSpec("R_X86_64_PC64", PCREL64, F.PCREL),
    41: RelocSpec("R_X86_64_GOTPCRELX", PCREL32, F.GOT_PCREL),
    42: RelocSpec("R_X86_64_REX_GOTPCRELX", PCREL32, F.GOT_PCREL),
}

# PC32 is marked branch=True because clang emits it for `call`/`jmp` to local
# functions as well as for data; the linker only uses a stub when the bytes
# before the field are a call/jmp opcode (see is_branch_site).
_CALL_JMP_REL32 = (0xE8, 0xE9)


def is_branch_site(code: bytes, field_offset: int) -> bool:
    """True when the 32-bit field at ``field_offset`` is the operand of a
    ``call rel32`` / ``jmp rel32`` (opcode byte just before it)."""
    return field_offset >= 1 and code[field_offset - 1] in _CALL_JMP_REL32


class X64(Arch):
    def can_stub(self, spec, data, off):
        return spec.branch and is_branch_site(data, off)

    def indirect_jump(self, at: int, cell: int) -> bytes:
        # jmp *disp32(%rip): ff 25 disp32, disp relative to the end (at + 6).
        disp = cell - (at + 6)
        if not fits_signed(disp, 32):
            raise FixupRangeError("x64.IndirectJump", disp, "is out of range of rip+disp32")
        code = b"\xff\x25" + struct.pack("<i", disp)
        return code + b"\xcc" * (self.indirect_jump_size - len(code))


CALLCONV = CallConv(
    name="sysv-x86-64",
    int_args=(X.UC_X86_REG_RDI, X.UC_X86_REG_RSI, X.UC_X86_REG_RDX,
              X.UC_X86_REG_RCX, X.UC_X86_REG_R8, X.UC_X86_REG_R9),
    fp_args=tuple(getattr(X, f"UC_X86_REG_XMM{i}") for i in range(8)),
    int_ret=X.UC_X86_REG_RAX,
    fp_ret=X.UC_X86_REG_XMM0,
    sp=X.UC_X86_REG_RSP,
    pc=X.UC_X86_REG_RIP,
    ra=None,
    stack_align=16,
    vararg_rule=VarargRule.LIKE_NAMED,
    stack_args_offset=8,
    vector_count_reg=X.UC_X86_REG_AL,
    fp_reg_bits=128,
)

ARCH = X64(
    name="x64",
    elf_machine="EM_X86_64",
    elf_relocs=ELF_RELOCS,
    uc_arch=unicorn.UC_ARCH_X86,
    uc_mode=unicorn.UC_MODE_64,
    cs_arch=capstone.CS_ARCH_X86,
    cs_mode=capstone.CS_MODE_64,
    callconv=CALLCONV,
    host_return=b"\xc3",          # ret
    trap=b"\x0f\x0b",             # ud2
    fixed_uc_page_size=4096,
    indirect_jump_size=8,
)
