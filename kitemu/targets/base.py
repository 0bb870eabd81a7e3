"""What every architecture module provides, and the small pieces they share.

The split follows LLVM JITLink: an object-format reader turns a format's
relocation type (ELF ``R_AARCH64_CALL26``, later Mach-O ``ARM64_RELOC_BRANCH26``)
into a :class:`RelocSpec`, which pairs

* a **formula** (:class:`Formula`), written as the psABI writes it
  (``S + A - P``), evaluated by the linker, and
* a **fixup** (:class:`Fixup`), the arch-owned field that receives the value:
  how it is encoded into the bytes at the site, decoded back, and which values
  it can hold.

Symbols in formulas: ``S`` the symbol's address, ``A`` the addend, ``P`` the
address of the place being patched, ``G`` the address of the symbol's GOT
entry, ``V`` the value already stored at the place, ``T`` a second symbol
whose address is subtracted (a Mach-O ``SUBTRACTOR`` pair), ``Page(x)`` =
``x & ~0xfff``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from ..errors import FixupRangeError

MASK64 = (1 << 64) - 1


def sign_extend(value: int, bits: int) -> int:
    """Interpret the low ``bits`` bits of ``value`` as two's complement."""
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def fits_signed(value: int, bits: int) -> bool:
    return -(1 << (bits - 1)) <= value < (1 << (bits - 1))


def fits_unsigned(value: int, bits: int) -> bool:
    return 0 <= value < (1 << bits)


def page(addr: int) -> int:
    """``Page(x)`` of the AArch64 ELF ABI: the 4 KiB page holding ``x``."""
    return addr & ~0xFFF


def read_le(buf, off: int, size: int) -> int:
    return int.from_bytes(buf[off:off + size], "little")


def write_le(buf, off: int, size: int, value: int) -> None:
    buf[off:off + size] = (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")


class Formula(enum.Enum):
    """How a relocation's value is computed; ``.value`` is the psABI text."""

    NONE = "none"                                 # R_*_NONE, RELAX, ALIGN
    ABS = "S + A"
    PCREL = "S + A - P"
    GOT_PCREL = "G + A - P"
    GOT_ABS = "G + A"                             # e.g. the lo12 of a GOT entry
    PAGE_PCREL = "Page(S + A) - Page(P)"
    GOT_PAGE_PCREL = "Page(G + A) - Page(P)"
    PCREL_LO = "lo12 of the paired HI20's value"  # RISC-V PCREL_LO12_I/S
    ADD = "V + S + A"
    SUB = "V - (S + A)"
    DELTA = "S + A - T"                           # T: the subtrahend symbol (Mach-O SUBTRACTOR pairs)


class Fixup:
    """A patchable field: ``size`` bytes at the place, holding a value.

    Subclasses define :meth:`encode_field` and :meth:`decode_field`.
    ``encode`` checks range and alignment first and never truncates: a value
    that does not fit raises :class:`FixupRangeError`.
    """

    name: str = "?"
    size: int = 0
    #: ``(lo, hi)`` inclusive bounds of encodable values, or None for "any
    #: value, low bits kept" (the *_NC kinds).
    bounds: tuple[int, int] | None = None
    #: the value must be a multiple of this.
    align: int = 1

    def check(self, value: int) -> None:
        if self.bounds is not None:
            lo, hi = self.bounds
            if not lo <= value <= hi:
                raise FixupRangeError(self.name, value,
                                      f"is out of range [{lo:#x}, {hi:#x}]")
        if value % self.align:
            raise FixupRangeError(self.name, value,
                                  f"is not a multiple of {self.align}")

    def in_range(self, value: int) -> bool:
        try:
            self.check(value)
        except FixupRangeError:
            return False
        return True

    def encode(self, buf: bytearray, off: int, value: int) -> None:
        self.check(value)
        self.encode_field(buf, off, value)

    def decode(self, buf, off: int) -> int:
        return self.decode_field(buf, off)

    def roundtrip(self, value: int) -> int:
        """What :meth:`decode` returns after ``encode(value)``: ``value`` itself
        for checked kinds; the kept low bits for no-check kinds."""
        return value

    # subclass hooks
    def encode_field(self, buf: bytearray, off: int, value: int) -> None:
        raise NotImplementedError

    def decode_field(self, buf, off: int) -> int:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<fixup {self.name}>"


class DataFixup(Fixup):
    """A little-endian data word of ``size`` bytes.

    ``signedness`` is "signed", "unsigned" or "either" (the value must fit as
    one or the other, e.g. ELF R_X86_64_32S vs R_X86_64_32 vs R_AARCH64_ABS32).
    """

    def __init__(self, name: str, size: int, signedness: str = "either"):
        self.name = name
        self.size = size
        self.signedness = signedness
        bits = 8 * size
        if signedness == "signed":
            self.bounds = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
        elif signedness == "unsigned":
            self.bounds = (0, (1 << bits) - 1)
        else:   # "either": fits as a signed or as an unsigned word
            self.bounds = (-(1 << (bits - 1)), (1 << bits) - 1)

    def encode_field(self, buf, off, value):
        write_le(buf, off, self.size, value)

    def decode_field(self, buf, off):
        raw = read_le(buf, off, self.size)
        if self.signedness == "signed":
            return sign_extend(raw, 8 * self.size)
        return raw

    def roundtrip(self, value):
        bits = 8 * self.size
        if self.signedness == "signed":
            return sign_extend(value, bits)
        return value & ((1 << bits) - 1)


class WrappingDataFixup(DataFixup):
    """A data word that keeps the low bits of its value (RISC-V ADD/SUB/SET:
    label differences computed modulo the word size, as lld does)."""

    def __init__(self, name: str, size: int):
        super().__init__(name, size, "unsigned")
        self.bounds = None

    def roundtrip(self, value):
        return value & ((1 << (8 * self.size)) - 1)


class BitFieldDataFixup(Fixup):
    """The low ``bits`` bits of a data byte (RISC-V SET6/SUB6: DWARF
    DW_CFA_advance_loc's 6-bit delta); the other bits are kept."""

    def __init__(self, name: str, bits: int):
        self.name = name
        self.size = 1
        self.bits = bits

    def encode_field(self, buf, off, value):
        mask = (1 << self.bits) - 1
        buf[off] = (buf[off] & ~mask & 0xFF) | (value & mask)

    def decode_field(self, buf, off):
        return buf[off] & ((1 << self.bits) - 1)

    def roundtrip(self, value):
        return value & ((1 << self.bits) - 1)


@dataclass(frozen=True)
class RelocSpec:
    """One relocation type of one object format, mapped onto a fixup."""

    name: str
    fixup: Fixup | None
    formula: Formula
    #: a call/jump: when the target is out of the fixup's reach the linker
    #: sends it through a far-call stub instead of failing.
    branch: bool = False
    #: the high part of a split PC-relative pair whose low part (Formula
    #: PCREL_LO) points at this relocation's place (RISC-V PCREL/GOT_HI20).
    hi_part: bool = False


class VarargRule(enum.Enum):
    """Where a variadic callee finds its unnamed arguments."""

    LIKE_NAMED = "unnamed arguments use registers exactly like named ones"
    FLOATS_IN_GPRS = "unnamed floating-point arguments travel in integer registers"
    ON_STACK = "every unnamed argument is on the stack (Apple arm64)"


@dataclass(frozen=True)
class CallConv:
    """A C calling convention in terms of unicorn register ids."""

    name: str
    int_args: tuple[int, ...]
    fp_args: tuple[int, ...]
    int_ret: int
    fp_ret: int
    sp: int
    pc: int
    #: register holding the return address, or None when it is pushed on the
    #: stack by the call (x86-64).
    ra: int | None
    stack_align: int
    vararg_rule: VarargRule
    #: bytes between the stack pointer at function entry and the first
    #: stack-passed argument (8 on x86-64: the return address).
    stack_args_offset: int = 0
    #: x86-64 needs %al = number of vector registers used by a variadic call.
    vector_count_reg: int | None = None
    #: name of fp register width: "xmm" registers read as 128-bit on x86-64.
    fp_reg_bits: int = 64


@dataclass
class Arch:
    """Everything the linker and the backends need to know about one ISA."""

    name: str
    elf_machine: str                 # pyelftools e_machine name, e.g. "EM_X86_64"
    elf_relocs: dict[int, RelocSpec]
    uc_arch: int
    uc_mode: int
    cs_arch: int
    cs_mode: int
    callconv: CallConv
    #: instruction returning to the caller, placed at every host-function address
    host_return: bytes
    #: a trap instruction (ud2 / brk / ebreak) used to fill unused code
    trap: bytes
    #: unicorn supports only this page size on this arch (None: configurable)
    fixed_uc_page_size: int | None
    pointer_size: int = 8
    #: size in bytes of :meth:`indirect_jump` code
    indirect_jump_size: int = 16
    #: where a PC-relative branch counts from, relative to its field ``P``:
    #: a branch with addend ``A`` aims at ``S + A + branch_bias``, which is
    #: what a range-extension stub must jump to (x86-64 rel32 counts from
    #: the end of the instruction, ``P + 4``; AArch64 and RISC-V from ``P``)
    branch_bias: int = 0
    extra: dict = field(default_factory=dict)

    def indirect_jump(self, at: int, cell: int) -> bytes:
        """Code placed at ``at`` that jumps to the 8-byte pointer stored at
        ``cell``: far-call stubs (cell = GOT entry) and, later, stable
        function entries (cell = reload slot)."""
        raise NotImplementedError

    def can_stub(self, spec: RelocSpec, data, off: int) -> bool:
        """May the reference at ``off`` be sent through a far-call stub?"""
        return spec.branch

    def reloc_name(self, rtype: int) -> str:
        spec = self.elf_relocs.get(rtype)
        return spec.name if spec else f"type {rtype}"
