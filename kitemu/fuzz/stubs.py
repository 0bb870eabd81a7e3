"""Following a far-call stub to its pointer cell, with capstone.

A stub (canonical stub of a host function, range-extension island) is code
that jumps through an 8-byte cell. The fuzzer does not trust kitemu's
description of its stubs: it disassembles the bytes in the image and
computes the cell address from the instructions themselves:

* x86-64: ``jmp qword ptr [rip + disp]`` -> ``at + len + disp``;
* AArch64: ``adrp xN, page; ldr xN, [xN, #off]; br xN`` -> ``page + off``;
* RISC-V: ``auipc tN, hi; ld tN, lo(tN); jr tN`` -> ``at + (hi << 12) + lo``.
"""

from __future__ import annotations

import capstone

_CS: dict[str, capstone.Cs] = {}


def _sext(v: int, bits: int) -> int:
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


def _cs(arch) -> capstone.Cs:
    md = _CS.get(arch.name)
    if md is None:
        md = _CS[arch.name] = capstone.Cs(arch.cs_arch, arch.cs_mode)
        md.detail = True
    return md


def indirect_cell(arch, code: bytes, at: int) -> int | None:
    """The cell the stub ``code`` at ``at`` jumps through, or None if the
    bytes are not such a stub."""
    insns = list(_cs(arch).disasm(code, at))
    if len(insns) < (1 if arch.name == "x64" else 3):
        return None             # not even the stub's instructions (data, a trap, garbage)
    try:
        if arch.name == "x64":
            i = insns[0]
            op = i.operands[0]
            if i.mnemonic != "jmp" or op.type != capstone.CS_OP_MEM \
                    or i.reg_name(op.mem.base) != "rip" or op.mem.index:
                return None
            return at + i.size + op.mem.disp
        if arch.name == "aarch64":
            adrp, ldr, br = insns[:3]
            if (adrp.mnemonic, ldr.mnemonic, br.mnemonic) != ("adrp", "ldr", "br"):
                return None
            reg = adrp.operands[0].reg
            if ldr.operands[0].reg != reg or ldr.operands[1].mem.base != reg \
                    or br.operands[0].reg != reg or not ldr.op_str.startswith("x"):
                return None
            return adrp.operands[1].imm + ldr.operands[1].mem.disp
        if arch.name == "rv64":
            auipc, ld, jr = insns[:3]
            if (auipc.mnemonic, ld.mnemonic, jr.mnemonic) != ("auipc", "ld", "jr"):
                return None
            reg = auipc.operands[0].reg
            if ld.operands[0].reg != reg or ld.operands[1].mem.base != reg \
                    or jr.operands[0].reg != reg:
                return None
            return at + (_sext(auipc.operands[1].imm, 20) << 12) + ld.operands[1].mem.disp
    except (IndexError, AttributeError, capstone.CsError):
        return None
    return None
