"""Instruction and data templates around a relocation site.

For each relocation label of each target, :func:`shapes` lists *shapes*: a
function ``shape(draw) -> Site`` that draws (with a hypothesis ``draw``)
the real instruction(s) or data word(s) the relocation patches, with
random register fields and random garbage in the field itself (RELA
relocations overwrite it; the ``ADD``/``SUB`` kinds read it as ``V``), and
the relocations on them, e.g. AArch64 ``adrp`` + ``ldr`` with
``ADR_PREL_PG_HI21`` + ``LDST64_ABS_LO12_NC``, RISC-V ``auipc`` + ``addi``
with ``PCREL_HI20`` + ``PCREL_LO12_I`` against a label on the ``auipc``,
``ADD32`` + ``SUB32`` at one data word.

Encodings are written here from the architecture manuals, not taken from
kitemu's encoders.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from hypothesis import strategies as st

from .oracle import rule

# roles of a relocation's symbol in a site
TARGET = "target"      # the symbol under test (S)
OTHER = "other"        # a second symbol: SUB of an ADD/SUB pair, a SUBTRACTOR's T


def label_role(offset: int) -> str:
    """RISC-V PCREL_LO12: the symbol is a local label at ``offset`` in the site."""
    return f"label:{offset}"


@dataclass
class SiteReloc:
    offset: int
    label: str
    role: str = TARGET
    addend: int = 0
    #: the symbol of role OTHER is this relocation's subtrahend (Mach-O DELTA)
    subtrahend: bool = False


@dataclass
class Site:
    code: bytes
    relocs: list[SiteReloc]
    #: the section kinds the site may live in
    kinds: tuple[str, ...] = ("text",)
    #: minimum alignment the site wants (instructions: 4 / 2)
    align: int = 1
    #: index in ``relocs`` of the relocation under test
    primary: int = 0
    name: str = ""
    extra: dict = field(default_factory=dict)


DATA_KINDS = ("data", "rodata", "text")


def _garbage(draw, value: int, mask: int) -> int:
    """``value`` with random bits under ``mask`` (the field's old contents)."""
    junk = draw(st.integers(0, mask)) & mask
    return (value & ~mask) | junk


def _u32(word: int) -> bytes:
    return struct.pack("<I", word & 0xFFFFFFFF)


def _u16(half: int) -> bytes:
    return struct.pack("<H", half & 0xFFFF)


def _data_site(draw, target, label, size, kinds=DATA_KINDS, name="data"):
    raw = draw(st.integers(0, (1 << (8 * size)) - 1)) if size else 0
    code = raw.to_bytes(size, "little") if size else draw(st.binary(min_size=1, max_size=8))
    return Site(code, [SiteReloc(0, label)], kinds, 1, name=name)


# ---------------------------------------------------------------------------
# x86-64 (ELF and Mach-O): every fixup is a little-endian field inside an
# instruction or a data word; PC-relative instruction fields count from the
# end of the instruction, which the addend carries.


def _x64_insn(prefix: bytes, field_size: int, tail: int = 0):
    """(code, field offset, default addend) of ``prefix`` + field + tail imm."""
    def make(draw, label):
        fld = draw(st.integers(0, (1 << (8 * field_size)) - 1)).to_bytes(field_size, "little")
        imm = draw(st.binary(min_size=tail, max_size=tail))
        code = prefix + fld + imm
        return code, len(prefix), -(field_size + tail)
    return make


def _x64_shapes(target: str, label: str) -> list:
    r = rule(target, label)
    reg = st.integers(0, 7)

    def insn(prefix_fn, name, field_size=4, tail=0, pcrel=True):
        def shape(draw):
            prefix = prefix_fn(draw)
            code, off, a = _x64_insn(prefix, field_size, tail)(draw, label)
            return Site(code, [SiteReloc(off, label, addend=a if pcrel else 0)], ("text",), 1,
                        name=name)
        return shape

    call = insn(lambda d: b"\xe8", "call rel32")
    jmp = insn(lambda d: b"\xe9", "jmp rel32")
    lea = insn(lambda d: bytes([0x48 | 4 * d(st.booleans()), 0x8D, 0x05 | d(reg) << 3]),
               "lea r64, [rip+disp32]")
    mov_load = insn(lambda d: bytes([0x48 | 4 * d(st.booleans()), 0x8B, 0x05 | d(reg) << 3]),
                    "mov r64, [rip+disp32]")
    call_ind = insn(lambda d: b"\xff\x15", "call [rip+disp32]")
    jmp_ind = insn(lambda d: b"\xff\x25", "jmp [rip+disp32]")
    push_ind = insn(lambda d: b"\xff\x35", "push [rip+disp32]")
    movb = insn(lambda d: b"\xc6\x05", "movb $imm8, disp32(%rip)", tail=1)
    movw = insn(lambda d: b"\x66\xc7\x05", "movw $imm16, disp32(%rip)", tail=2)
    movl = insn(lambda d: b"\xc7\x05", "movl $imm32, disp32(%rip)", tail=4)
    mov32 = insn(lambda d: bytes([0xB8 | d(reg)]), "mov r32, imm32", pcrel=False)
    mov32s = insn(lambda d: bytes([0x48 | d(st.booleans()), 0xC7, 0xC0 | d(reg)]),
                  "mov r64, simm32", pcrel=False)
    movabs = insn(lambda d: bytes([0x48 | d(st.booleans()), 0xB8 | d(reg)]), "movabs r64, imm64",
                  field_size=8, pcrel=False)
    mov16 = insn(lambda d: bytes([0x66, 0xB8 | d(reg)]), "mov r16, imm16", field_size=2,
                 pcrel=False)
    mov8 = insn(lambda d: bytes([0xB0 | d(reg)]), "mov r8, imm8", field_size=1, pcrel=False)
    jmp8 = insn(lambda d: b"\xeb", "jmp rel8", field_size=1)
    jcc8 = insn(lambda d: bytes([0x70 | d(st.integers(0, 15))]), "jcc rel8", field_size=1)

    def data(draw):
        return _data_site(draw, target, label, r.size)

    def delta(draw):
        s = _data_site(draw, target, label, r.size, name="delta word")
        s.relocs[0].subtrahend = True
        return s

    base = label.split(":")[0]
    table = {
        "R_X86_64_NONE": [data],
        "R_X86_64_64": [data, movabs],
        "R_X86_64_PC32": [call, jmp, lea, mov_load, data],
        "R_X86_64_PLT32": [call, jmp, data],
        "R_X86_64_GOTPCREL": [mov_load, call_ind, push_ind, data],
        "R_X86_64_GOTPCRELX": [mov_load, call_ind, jmp_ind],
        "R_X86_64_REX_GOTPCRELX": [mov_load],
        "R_X86_64_32": [data, mov32],
        "R_X86_64_32S": [data, mov32s],
        "R_X86_64_16": [data, mov16],
        "R_X86_64_PC16": [data],
        "R_X86_64_8": [data, mov8],
        "R_X86_64_PC8": [data, jmp8, jcc8],
        "R_X86_64_PC64": [data],
        "X86_64_RELOC_UNSIGNED:Data32": [data, mov32],
        "X86_64_RELOC_UNSIGNED:Data64": [data, movabs],
        "X86_64_RELOC_SIGNED": [lea, mov_load],
        "X86_64_RELOC_BRANCH": [call, jmp],
        "X86_64_RELOC_GOT_LOAD": [mov_load],
        "X86_64_RELOC_GOT": [call_ind, push_ind, data],
        "X86_64_RELOC_SIGNED_1": [movb],
        "X86_64_RELOC_SIGNED_2": [movw],
        "X86_64_RELOC_SIGNED_4": [movl],
    }
    if base == "X86_64_RELOC_SUBTRACTOR":
        return [delta]
    return table[label]


# ---------------------------------------------------------------------------
# AArch64: 32-bit instruction words, the fixup a bit field inside.

_A64_LDST = {   # access size -> (load/store words with imm12 = 0, Rn = Rt = 0)
    1: (0x39400000, 0x39000000, 0x39800000, 0x3D400000),      # ldrb strb ldrsb ldr b
    2: (0x79400000, 0x79000000, 0x79800000, 0x7D400000),      # ldrh strh ldrsh ldr h
    4: (0xB9400000, 0xB9000000, 0xB9800000, 0xBD400000),      # ldr w, str w, ldrsw, ldr s
    8: (0xF9400000, 0xF9000000, 0xFD400000, 0xFD000000),      # ldr x, str x, ldr d, str d
    16: (0x3DC00000, 0x3D800000),                             # ldr q, str q
}
_LO12_ACCESS = {"ADD_ABS_LO12_NC": 0, "LDST8_ABS_LO12_NC": 1, "LDST16_ABS_LO12_NC": 2,
                "LDST32_ABS_LO12_NC": 4, "LDST64_ABS_LO12_NC": 8, "LDST128_ABS_LO12_NC": 16,
                "AddLo12": 0, "Ldst8Lo12": 1, "Ldst16Lo12": 2, "Ldst32Lo12": 4,
                "Ldst64Lo12": 8, "Ldst128Lo12": 16}


def _a64_reg(draw) -> int:
    return draw(st.integers(0, 30))


def _a64_lo12_word(draw, access: int) -> int:
    rd, rn = _a64_reg(draw), _a64_reg(draw)
    if access == 0:
        base = draw(st.sampled_from([0x91000000, 0x11000000]))      # add x / add w
    else:
        base = draw(st.sampled_from(_A64_LDST[access]))
    return base | rn << 5 | rd


def _a64_shapes(target: str, label: str) -> list:
    r = rule(target, label)
    macho = target.startswith("macho")
    name = label.split(":")[0].replace("R_AARCH64_", "")

    def one(word_fn, nm):
        def shape(draw):
            w = _garbage(draw, word_fn(draw), r.field_mask())
            return Site(_u32(w), [SiteReloc(0, label)], ("text",), 4, name=nm)
        return shape

    bl = one(lambda d: 0x94000000, "bl")
    b = one(lambda d: 0x14000000, "b")
    bcond = one(lambda d: 0x54000000 | d(st.integers(0, 14)), "b.cond")
    cbz = one(lambda d: 0x34000000 | d(st.integers(0, 1)) << 24 | d(st.integers(0, 1)) << 31
              | _a64_reg(d), "cbz/cbnz")
    ldr_lit = one(lambda d: d(st.sampled_from([0x18000000, 0x58000000, 0x98000000, 0x1C000000]))
                  | _a64_reg(d), "ldr (literal)")
    tbz = one(lambda d: 0x36000000 | d(st.integers(0, 1)) << 24 | d(st.integers(0, 1)) << 31
              | d(st.integers(0, 31)) << 19 | _a64_reg(d), "tbz/tbnz")
    adr = one(lambda d: 0x10000000 | _a64_reg(d), "adr")

    def data(draw):
        return _data_site(draw, target, label, r.size)

    def delta(draw):
        s = _data_site(draw, target, label, r.size, name="delta word")
        s.relocs[0].subtrahend = True
        return s

    def lo12_label(access: int, got: bool) -> str:
        if macho:
            if got:
                return "ARM64_RELOC_GOT_LOAD_PAGEOFF12"
            short = {0: "AddLo12", 1: "Ldst8Lo12", 2: "Ldst16Lo12", 4: "Ldst32Lo12",
                     8: "Ldst64Lo12", 16: "Ldst128Lo12"}[access]
            return f"ARM64_RELOC_PAGEOFF12:{short}"
        if got:
            return "R_AARCH64_LD64_GOT_LO12_NC"
        return "R_AARCH64_" + {0: "ADD_ABS_LO12_NC", 1: "LDST8_ABS_LO12_NC",
                               2: "LDST16_ABS_LO12_NC", 4: "LDST32_ABS_LO12_NC",
                               8: "LDST64_ABS_LO12_NC", 16: "LDST128_ABS_LO12_NC"}[access]

    def page_label(got: bool) -> str:
        if macho:
            return "ARM64_RELOC_GOT_LOAD_PAGE21" if got else "ARM64_RELOC_PAGE21"
        return "R_AARCH64_ADR_GOT_PAGE" if got else draw_page_label

    draw_page_label = "R_AARCH64_ADR_PREL_PG_HI21"

    def adrp_pair(primary_is_page: bool, got: bool, access: int | None = None):
        """adrp xN, sym ; (add|ldr|str) xM, [xN, :lo12:sym] - with the primary
        relocation on one of the two (the partner is optional)."""
        def shape(draw):
            acc = 8 if got else (access if access is not None else
                                 draw(st.sampled_from([0, 1, 2, 4, 8, 16])))
            rd = _a64_reg(draw)
            adrp = _garbage(draw, 0x90000000 | rd, 0x60FFFFE0)
            lo = _a64_lo12_word(draw, acc) & ~(0x1F << 5) | rd << 5
            lo = _garbage(draw, lo, 0x003FFC00)
            if got:
                lo = 0xF9400000 | rd << 5 | _a64_reg(draw)
            page_lbl = label if primary_is_page else page_label(got)
            lo_lbl = label if not primary_is_page else lo12_label(acc, got)
            with_partner = draw(st.booleans())
            if primary_is_page:
                relocs = [SiteReloc(0, page_lbl)] + ([SiteReloc(4, lo_lbl)] if with_partner else [])
                return Site(_u32(adrp) + _u32(lo), relocs, ("text",), 4, 0,
                            name="adrp + lo12", extra={"pair": with_partner})
            relocs = ([SiteReloc(0, page_lbl)] if with_partner else []) + [SiteReloc(4, lo_lbl)]
            return Site(_u32(adrp) + _u32(lo), relocs, ("text",), 4, len(relocs) - 1,
                        name="adrp + lo12", extra={"pair": with_partner})
        return shape

    def movw(group: int):
        """movz/movk sequence: the primary at ``group``, the lower groups
        with their _NC kinds below it (movk), in order."""
        def shape(draw):
            rd = _a64_reg(draw)
            top = group if "_NC" not in label else draw(st.integers(group, 3))
            groups = list(range(top, -1, -1)) if draw(st.booleans()) else [group]
            if group not in groups:
                groups = [group]
            code = b""
            relocs = []
            primary = 0
            for i, g in enumerate(groups):
                word = (0xD2800000 if i == 0 else 0xF2800000) | g << 21 | rd
                code += _u32(_garbage(draw, word, 0x001FFFE0))
                if g == group:
                    lbl = label
                    primary = i
                elif g == 3:
                    lbl = "R_AARCH64_MOVW_UABS_G3"
                else:
                    lbl = f"R_AARCH64_MOVW_UABS_G{g}_NC"
                relocs.append(SiteReloc(4 * i, lbl))
            return Site(code, relocs, ("text",), 4, primary, name="movz/movk")
        return shape

    if name.startswith("MOVW_UABS_G"):
        return [movw(int(name[len("MOVW_UABS_G")]))]
    if name in ("ADD_ABS_LO12_NC",) or name.startswith("LDST") or name.startswith("ARM64_RELOC_PAGEOFF12"):
        short = label.split(":")[-1].replace("R_AARCH64_", "")
        return [adrp_pair(False, False, _LO12_ACCESS[short])]
    table = {
        "NONE": [data],
        "ABS64": [data], "ABS32": [data], "ABS16": [data],
        "PREL64": [data], "PREL32": [data], "PREL16": [data], "PLT32": [data],
        "LD_PREL_LO19": [ldr_lit],
        "ADR_PREL_LO21": [adr],
        "ADR_PREL_PG_HI21": [adrp_pair(True, False)],
        "ADR_PREL_PG_HI21_NC": [one(lambda d: 0x90000000 | _a64_reg(d), "adrp")],
        "TSTBR14": [tbz],
        "CONDBR19": [bcond, cbz],
        "JUMP26": [b],
        "CALL26": [bl],
        "ADR_GOT_PAGE": [adrp_pair(True, True)],
        "LD64_GOT_LO12_NC": [adrp_pair(False, True)],
        "ARM64_RELOC_UNSIGNED": [data],
        "ARM64_RELOC_BRANCH26": [bl, b],
        "ARM64_RELOC_PAGE21": [adrp_pair(True, False)],
        "ARM64_RELOC_GOT_LOAD_PAGE21": [adrp_pair(True, True)],
        "ARM64_RELOC_GOT_LOAD_PAGEOFF12": [adrp_pair(False, True)],
        "ARM64_RELOC_POINTER_TO_GOT": [data],
        "ARM64_RELOC_SUBTRACTOR": [delta],
    }
    return table[name]


# ---------------------------------------------------------------------------
# RISC-V: 32-bit words and 16-bit RVC halves; immediates scattered.

_NOP = 0x00000013


def _rv_reg(draw, lo=1) -> int:
    return draw(st.integers(lo, 31))


def _rv_shapes(target: str, label: str) -> list:
    r = rule(target, label)
    name = label.replace("R_RISCV_", "")

    def word(draw, w, mask):
        return _garbage(draw, w, mask)

    def branch(draw):
        f3 = draw(st.sampled_from([0, 1, 4, 5, 6, 7]))
        w = 0x63 | f3 << 12 | _rv_reg(draw, 0) << 15 | _rv_reg(draw, 0) << 20
        return Site(_u32(word(draw, w, 0xFE000F80)), [SiteReloc(0, label)], ("text",), 4,
                    name="b<cond>")

    def jal(draw):
        w = 0x6F | draw(st.sampled_from([0, 1, 5])) << 7
        return Site(_u32(word(draw, w, 0xFFFFF000)), [SiteReloc(0, label)], ("text",), 4,
                    name="jal")

    def call(draw):
        tail = draw(st.booleans())
        rd = 6 if tail else 1                           # t1 (tail) / ra (call)
        auipc = word(draw, 0x17 | rd << 7, 0xFFFFF000)
        jalr = word(draw, 0x67 | (0 if tail else 1) << 7 | rd << 15, 0xFFF00000)
        relocs = [SiteReloc(0, label)]
        if draw(st.booleans()):
            relocs.append(SiteReloc(0, "R_RISCV_RELAX"))
        return Site(_u32(auipc) + _u32(jalr), relocs, ("text",), 4, name="auipc + jalr")

    def pcrel_pair(hi_label: str, lo_label: str, primary_lo: bool):
        def shape(draw):
            rd = _rv_reg(draw)
            auipc = word(draw, 0x17 | rd << 7, 0xFFFFF000)
            if lo_label.endswith("_S"):
                f3 = draw(st.sampled_from([0, 1, 2, 3]))       # sb sh sw sd
                lo = 0x23 | f3 << 12 | rd << 15 | _rv_reg(draw, 0) << 20
                lo = word(draw, lo, 0xFE000F80)
            elif hi_label == "R_RISCV_GOT_HI20":
                lo = word(draw, 0x03 | 3 << 12 | rd << 7 | rd << 15, 0xFFF00000)    # ld
            else:
                op = draw(st.sampled_from([(0x13, 0), (0x03, 3), (0x03, 2), (0x67, 0)]))
                lo = word(draw, op[0] | op[1] << 12 | _rv_reg(draw) << 7 | rd << 15, 0xFFF00000)
            relocs = [SiteReloc(0, hi_label), SiteReloc(4, lo_label, label_role(0))]
            if draw(st.booleans()):
                relocs.insert(1, SiteReloc(0, "R_RISCV_RELAX"))
            return Site(_u32(auipc) + _u32(lo), relocs, ("text",), 4,
                        len(relocs) - 1 if primary_lo else 0, name="auipc + lo12")
        return shape

    def abs_pair(primary_lo: str | None, store: bool):
        def shape(draw):
            rd = _rv_reg(draw)
            lui = word(draw, 0x37 | rd << 7, 0xFFFFF000)
            if store:
                lo = word(draw, 0x23 | 3 << 12 | rd << 15 | _rv_reg(draw, 0) << 20, 0xFE000F80)
                lo_label = "R_RISCV_LO12_S"
            else:
                lo = word(draw, 0x13 | rd << 7 | rd << 15, 0xFFF00000)
                lo_label = "R_RISCV_LO12_I"
            with_hi = primary_lo is None or draw(st.booleans())
            relocs = ([SiteReloc(0, "R_RISCV_HI20")] if with_hi else []) + [SiteReloc(4, lo_label)]
            primary = 0 if primary_lo is None else len(relocs) - 1
            return Site(_u32(lui) + _u32(lo), relocs, ("text",), 4, primary, name="lui + lo12")
        return shape

    def rvc_branch(draw):
        h = (0b110 | draw(st.integers(0, 1))) << 13 | draw(st.integers(0, 7)) << 7 | 0b01
        return Site(_u16(word(draw, h, 0x1C7C)), [SiteReloc(0, label)], ("text",), 2,
                    name="c.beqz/c.bnez")

    def rvc_jump(draw):
        h = 0b101 << 13 | 0b01
        return Site(_u16(word(draw, h, 0x1FFC)), [SiteReloc(0, label)], ("text",), 2, name="c.j")

    def data(draw):
        return _data_site(draw, target, label, r.size)

    def add_sub(draw):
        """ADDn/SUBn (or SETn/SUBn) at one word: a label difference."""
        n = r.size
        bits = {1: "8", 2: "16", 4: "32", 8: "64"}[n] if r.bits is None else "6"
        raw = draw(st.integers(0, (1 << (8 * n)) - 1))
        first = "SET" if name.startswith("SET") or (bits == "6") else "ADD"
        if name.startswith("SUB") and bits != "6":
            first = draw(st.sampled_from(["ADD", "SET"] if bits in ("8", "16", "32") else ["ADD"]))
        pair = [SiteReloc(0, f"R_RISCV_{first}{bits}")]
        if name.startswith("SUB") or draw(st.booleans()):
            pair.append(SiteReloc(0, f"R_RISCV_SUB{bits}", OTHER))
        primary = next(i for i, x in enumerate(pair) if x.label == label)
        return Site(raw.to_bytes(n, "little"), pair, DATA_KINDS, 1, primary, name="label difference")

    def relax(draw):
        s = call(draw) if draw(st.booleans()) else Site(_u32(0x17 | 5 << 7), [], ("text",), 4)
        s.relocs = [x for x in s.relocs if x.label != "R_RISCV_RELAX"] + [SiteReloc(0, label)]
        s.primary = len(s.relocs) - 1
        s.name = "relax hint"
        return s

    def align(draw):
        n = draw(st.integers(1, 4))
        return Site(_u32(_NOP) * n, [SiteReloc(0, label, addend=4 * n)], ("text",), 4,
                    name="nop padding")

    def none(draw):
        return Site(draw(st.binary(min_size=4, max_size=4)), [SiteReloc(0, label)], DATA_KINDS, 1,
                    name="anything")

    table = {
        "NONE": [none], "RELAX": [relax], "ALIGN": [align],
        "32": [data], "64": [data], "32_PCREL": [data], "PLT32": [data],
        "BRANCH": [branch], "JAL": [jal], "CALL": [call], "CALL_PLT": [call],
        "GOT_HI20": [pcrel_pair("R_RISCV_GOT_HI20", "R_RISCV_PCREL_LO12_I", False)],
        "PCREL_HI20": [pcrel_pair("R_RISCV_PCREL_HI20", "R_RISCV_PCREL_LO12_I", False),
                       pcrel_pair("R_RISCV_PCREL_HI20", "R_RISCV_PCREL_LO12_S", False)],
        "PCREL_LO12_I": [pcrel_pair("R_RISCV_PCREL_HI20", "R_RISCV_PCREL_LO12_I", True),
                         pcrel_pair("R_RISCV_GOT_HI20", "R_RISCV_PCREL_LO12_I", True)],
        "PCREL_LO12_S": [pcrel_pair("R_RISCV_PCREL_HI20", "R_RISCV_PCREL_LO12_S", True)],
        "HI20": [abs_pair(None, False), abs_pair(None, True)],
        "LO12_I": [abs_pair("I", False)],
        "LO12_S": [abs_pair("S", True)],
        "RVC_BRANCH": [rvc_branch], "RVC_JUMP": [rvc_jump],
    }
    if name.startswith(("ADD", "SUB", "SET")):
        return [add_sub]
    return table[name]


def shapes(target: str, label: str) -> list:
    """The site shapes of relocation ``label`` on ``target``."""
    if target.endswith("x64"):
        return _x64_shapes(target, label)
    if target.endswith(("aarch64", "arm64")):
        return _a64_shapes(target, label)
    return _rv_shapes(target, label)
