"""Reading a host function's arguments from a stopped guest, per the target's
C calling convention, including variadic arguments and ``va_list`` objects.

Host functions are written once against :class:`CallArgs`; the arch-specific
knowledge is in :class:`~kitemu.targets.base.CallConv` (which registers) and
in the ``va_list`` readers below (what a ``va_list`` object looks like).
"""

from __future__ import annotations

import struct

from ..targets.base import CallConv, VarargRule


def bits_to_double(bits: int) -> float:
    return struct.unpack("<d", (bits & ((1 << 64) - 1)).to_bytes(8, "little"))[0]


def double_to_bits(value: float) -> int:
    return int.from_bytes(struct.pack("<d", value), "little")


class CallArgs:
    """Sequential reader of one call's arguments, named then variadic."""

    def __init__(self, machine, cc: CallConv):
        self.m = machine
        self.cc = cc
        self.gp = 0
        self.fp = 0
        self.sp = machine.reg(cc.sp)
        self.stack_off = cc.stack_args_offset
        self.variadic = False

    def _stack_word(self) -> int:
        v = int.from_bytes(self.m.read(self.sp + self.stack_off, 8), "little")
        self.stack_off += 8
        return v

    def start_varargs(self) -> "CallArgs":
        """The remaining arguments are the unnamed ones of a variadic call."""
        self.variadic = True
        if self.cc.vararg_rule is VarargRule.ON_STACK:
            self.gp = len(self.cc.int_args)
            self.fp = len(self.cc.fp_args)
        return self

    def next_int(self) -> int:
        if self.gp < len(self.cc.int_args):
            v = self.m.reg(self.cc.int_args[self.gp])
            self.gp += 1
            return v & ((1 << 64) - 1)
        return self._stack_word()

    def next_double(self) -> float:
        if self.variadic and self.cc.vararg_rule is VarargRule.FLOATS_IN_GPRS:
            return bits_to_double(self.next_int())
        if self.fp < len(self.cc.fp_args):
            v = self.m.reg(self.cc.fp_args[self.fp])
            self.fp += 1
            return bits_to_double(v)   # low 64 bits of xmm / d register
        return bits_to_double(self._stack_word())

    def read_cstring(self, addr: int, limit: int | None = None) -> bytes:
        return self.m.read_cstring(addr, limit)


class _MemoryVaList:
    """Base for va_list readers: string access goes to the machine."""

    def __init__(self, machine):
        self.m = machine

    def word(self, addr: int) -> int:
        return int.from_bytes(self.m.read(addr, 8), "little")

    def read_cstring(self, addr: int, limit: int | None = None) -> bytes:
        return self.m.read_cstring(addr, limit)


class X64VaList(_MemoryVaList):
    """SysV x86-64: ``va_list`` is a pointer to
    ``{u32 gp_offset; u32 fp_offset; void *overflow_arg_area; void *reg_save_area}``;
    the register save area holds 6 GPRs (48 bytes) then 8 XMM slots of 16 bytes."""

    def __init__(self, machine, va: int):
        super().__init__(machine)
        raw = machine.read(va, 24)
        self.gp_off, self.fp_off, self.overflow, self.save = struct.unpack("<IIQQ", raw)

    def next_int(self) -> int:
        if self.gp_off < 48:
            v = self.word(self.save + self.gp_off)
            self.gp_off += 8
            return v
        v = self.word(self.overflow)
        self.overflow += 8
        return v

    def next_double(self) -> float:
        if self.fp_off < 176:
            v = self.word(self.save + self.fp_off)
            self.fp_off += 16
            return bits_to_double(v)
        v = self.word(self.overflow)
        self.overflow += 8
        return bits_to_double(v)


class Aarch64VaList(_MemoryVaList):
    """AAPCS64 (Linux): ``va_list`` is a 32-byte struct
    ``{void *stack; void *gr_top; void *vr_top; int gr_offs; int vr_offs}``,
    passed to ``vprintf`` by reference (it is a composite larger than 16 bytes).
    Negative offsets index back from the tops of the register save areas;
    vector slots are 16 bytes."""

    def __init__(self, machine, va: int):
        super().__init__(machine)
        self.stack, self.gr_top, self.vr_top, self.gr_offs, self.vr_offs = \
            struct.unpack("<QQQii", machine.read(va, 32))

    def next_int(self) -> int:
        if self.gr_offs < 0:
            v = self.word(self.gr_top + self.gr_offs)
            self.gr_offs += 8
            return v
        v = self.word(self.stack)
        self.stack += 8
        return v

    def next_double(self) -> float:
        if self.vr_offs < 0:
            v = self.word(self.vr_top + self.vr_offs)
            self.vr_offs += 16
            return bits_to_double(v)
        v = self.word(self.stack)
        self.stack += 8
        return bits_to_double(v)


class PointerVaList(_MemoryVaList):
    """RISC-V LP64D (and Apple arm64): ``va_list`` is a plain pointer to
    consecutive 8-byte argument slots; doubles are stored as their bits."""

    def __init__(self, machine, va: int):
        super().__init__(machine)
        self.ptr = va

    def next_int(self) -> int:
        v = self.word(self.ptr)
        self.ptr += 8
        return v

    def next_double(self) -> float:
        return bits_to_double(self.next_int())


VA_LIST_READERS = {"x64": X64VaList, "aarch64": Aarch64VaList, "rv64": PointerVaList}
