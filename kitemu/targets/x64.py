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
* Mach-O (target macho-x64) names the same fields differently and keeps the
  addend in the field (implicit addends), with SIGNED_1/2/4 for a
  displacement followed by an immediate: see the Mach-O section below, which
  maps each type onto these fixups, and kitemu/loader/macho.py.
"""

from __future__ import annotations

import struct

import capstone
import unicorn
from unicorn import x86_const as X

from ..errors import FixupRangeError
from .base import (Arch, CallConv, DataFixup, Formula, RelocSpec, VarargRule,
                   fits_signed, read_le, sign_extend)

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


# ---------------------------------------------------------------------------
# Mach-O relocations (<mach-o/x86_64/reloc.h>).
#
# A Mach-O relocation_info names a type, r_pcrel, r_length (log2 of the field
# size) and r_extern (r_symbolnum is a symbol index, else a 1-based section
# ordinal). The addend is *implicit*: the field at the place holds it. The
# header's own words, and what they mean for the explicit ELF-style addend
# ``A`` of ``S + A - P`` that kitemu's linker evaluates:
#
# * X86_64_RELOC_UNSIGNED "for absolute addresses": r_pcrel=0, r_length 3
#   (``.quad _foo``) or 2 (``.long _foo``, ``movl $_foo, %eax`` - only
#   usable while the image is below 4 GiB, as kitemu's default one is). The
#   field holds the addend: ``A = field`` (a 32-bit field is read signed:
#   ``.long _foo - 4``).
# * X86_64_RELOC_SIGNED "for signed 32-bit displacement" (``movq _foo(%rip),
#   %rax``), X86_64_RELOC_BRANCH "a CALL/JMP instruction with 32-bit
#   displacement", X86_64_RELOC_GOT_LOAD "a MOVQ load of a GOT entry",
#   X86_64_RELOC_GOT "other GOT references" (``pushq _foo@GOTPCREL(%rip)``,
#   ``call *_foo@GOTPCREL(%rip)``, and in data ``.long _foo@GOTPCREL+4``, where
#   the source spells the bias itself): r_pcrel=1, r_length=2. The displacement
#   counts from the end of the 4-byte field, and the field holds the offset
#   from the symbol: ``_foo+8(%rip)`` stores 8, so ``A = field - 4``.
# * X86_64_RELOC_SIGNED_1/2/4 "for signed 32-bit displacement with a -1/-2/-4
#   addend": the same, for instructions whose rip-relative operand is followed
#   by a 1/2/4-byte immediate (``movb $1, _x(%rip)``), so the displacement
#   counts from 1/2/4 bytes past the end of the field. The assembler stores
#   ``offset - k`` (``movb $1, _x(%rip)`` stores -1): ``A = field - 4``
#   again, which lands on ``S + offset`` from the real end of the
#   instruction. (ld64 adds k back to the field and subtracts it from P:
#   the same value.)
# * X86_64_RELOC_SUBTRACTOR "must be followed by a X86_64_RELOC_UNSIGNED":
#   the pair stores ``minuend - subtrahend + field`` into a 4- or 8-byte
#   word; macho.py turns it into one Formula.DELTA relocation (MACHO_DELTA).
# * X86_64_RELOC_TLV "for thread local variables": refused.
#
# Non-extern (section-ordinal) relocations need no arch rule: the assembler
# has already applied them in the object's own address space (sections at
# their ``addr``), so the field holds the formula's value there and macho.py
# recovers ``A`` from it (see kitemu/loader/macho.py). GOT_LOAD and GOT must
# be extern (a GOT entry belongs to a symbol).

X86_64_RELOC_UNSIGNED = 0
X86_64_RELOC_SIGNED = 1
X86_64_RELOC_BRANCH = 2
X86_64_RELOC_GOT_LOAD = 3
X86_64_RELOC_GOT = 4
X86_64_RELOC_SUBTRACTOR = 5
X86_64_RELOC_SIGNED_1 = 6
X86_64_RELOC_SIGNED_2 = 7
X86_64_RELOC_SIGNED_4 = 8
X86_64_RELOC_TLV = 9

MACHO_RELOC_NAMES = {
    X86_64_RELOC_UNSIGNED: "X86_64_RELOC_UNSIGNED",
    X86_64_RELOC_SIGNED: "X86_64_RELOC_SIGNED",
    X86_64_RELOC_BRANCH: "X86_64_RELOC_BRANCH",
    X86_64_RELOC_GOT_LOAD: "X86_64_RELOC_GOT_LOAD",
    X86_64_RELOC_GOT: "X86_64_RELOC_GOT",
    X86_64_RELOC_SUBTRACTOR: "X86_64_RELOC_SUBTRACTOR",
    X86_64_RELOC_SIGNED_1: "X86_64_RELOC_SIGNED_1",
    X86_64_RELOC_SIGNED_2: "X86_64_RELOC_SIGNED_2",
    X86_64_RELOC_SIGNED_4: "X86_64_RELOC_SIGNED_4",
    X86_64_RELOC_TLV: "X86_64_RELOC_TLV",
}

# A SUBTRACTOR pair's word: a signed distance, range-checked, never truncated.
DELTA32 = DataFixup("x64.Delta32", 4, "signed")
DELTA64 = DataFixup("x64.Delta64", 8, "signed")


def _macho_spec(rtype: int, fixup, formula, branch=False) -> RelocSpec:
    return RelocSpec(MACHO_RELOC_NAMES[rtype], fixup, formula, branch=branch)


#: (r_type, r_pcrel, r_length) -> RelocSpec. BRANCH is branch=True: a call
#: or jmp to a far target (a host function) goes through a stub (can_stub
#: still checks for the call/jmp opcode before the field).
MACHO_RELOCS: dict[tuple[int, int, int], RelocSpec] = {
    (X86_64_RELOC_UNSIGNED, 0, 2): _macho_spec(X86_64_RELOC_UNSIGNED, DATA32, F.ABS),
    (X86_64_RELOC_UNSIGNED, 0, 3): _macho_spec(X86_64_RELOC_UNSIGNED, DATA64, F.ABS),
    (X86_64_RELOC_SIGNED, 1, 2): _macho_spec(X86_64_RELOC_SIGNED, PCREL32, F.PCREL),
    (X86_64_RELOC_BRANCH, 1, 2): _macho_spec(X86_64_RELOC_BRANCH, PCREL32, F.PCREL, branch=True),
    (X86_64_RELOC_GOT_LOAD, 1, 2): _macho_spec(X86_64_RELOC_GOT_LOAD, PCREL32, F.GOT_PCREL),
    (X86_64_RELOC_GOT, 1, 2): _macho_spec(X86_64_RELOC_GOT, PCREL32, F.GOT_PCREL),
    (X86_64_RELOC_SIGNED_1, 1, 2): _macho_spec(X86_64_RELOC_SIGNED_1, PCREL32, F.PCREL),
    (X86_64_RELOC_SIGNED_2, 1, 2): _macho_spec(X86_64_RELOC_SIGNED_2, PCREL32, F.PCREL),
    (X86_64_RELOC_SIGNED_4, 1, 2): _macho_spec(X86_64_RELOC_SIGNED_4, PCREL32, F.PCREL),
}
#: types whose r_symbolnum must be a symbol (r_extern=1)
MACHO_EXTERN_ONLY = frozenset({X86_64_RELOC_GOT_LOAD, X86_64_RELOC_GOT})
#: known types kitemu refuses, with the reason
MACHO_REFUSED = {X86_64_RELOC_TLV: "thread-local variables are not supported"}
#: r_length of a SUBTRACTOR/UNSIGNED pair -> the one relocation it becomes
MACHO_DELTA = {
    2: _macho_spec(X86_64_RELOC_SUBTRACTOR, DELTA32, F.DELTA),
    3: _macho_spec(X86_64_RELOC_SUBTRACTOR, DELTA64, F.DELTA),
}


class X64(Arch):
    # -- Mach-O (see kitemu/loader/macho.py for the protocol) --------------
    macho_unsigned = X86_64_RELOC_UNSIGNED
    macho_subtractor = X86_64_RELOC_SUBTRACTOR
    macho_addend = None            # x86-64 has no ADDEND prefix relocation

    def macho_reloc_name(self, rtype: int) -> str | None:
        return MACHO_RELOC_NAMES.get(rtype)

    def macho_reloc(self, rtype: int, pcrel: int, length: int, extern: bool,
                    data, off: int) -> tuple[RelocSpec, int]:
        """The spec of one (unpaired) relocation, and its explicit addend
        when it is extern (ignored otherwise). Raises NotImplementedError
        for a refused kind, ValueError for a malformed one."""
        if rtype in MACHO_REFUSED:
            raise NotImplementedError(MACHO_REFUSED[rtype])
        spec = MACHO_RELOCS.get((rtype, pcrel, length))
        if spec is None:
            raise ValueError(f"r_pcrel={pcrel} with r_length={length} is not a valid "
                             f"form of {MACHO_RELOC_NAMES[rtype]}")
        if not extern and rtype in MACHO_EXTERN_ONLY:
            raise ValueError("must refer to a symbol (r_extern=1), not to a section")
        field = sign_extend(read_le(data, off, 1 << length), 8 << length)
        return spec, (field - 4 if pcrel else field)

    def macho_takes_addend(self, rtype: int) -> bool:
        return False

    def macho_delta(self, length: int) -> RelocSpec | None:
        return MACHO_DELTA.get(length)

    def macho_kinds(self) -> set[tuple[str, str, str]]:
        """Every (type name, fixup name, target) the reader can produce, for
        coverage tests: target "extern" (a symbol) or "section" (r_extern=0);
        for a SUBTRACTOR pair "<minuend>-<subtrahend>"."""
        out = set()
        for (rtype, _, _), spec in MACHO_RELOCS.items():
            out.add((spec.name, spec.fixup.name, "extern"))
            if rtype not in MACHO_EXTERN_ONLY:
                out.add((spec.name, spec.fixup.name, "section"))
        for spec in MACHO_DELTA.values():
            out |= {(spec.name, spec.fixup.name, f"{a}-{b}")
                    for a in ("extern", "section") for b in ("extern", "section")}
        return out

    # -- everything else ----------------------------------------------------
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
    branch_bias=4,
)
