"""A small ELF64 little-endian relocatable-object writer, for fuzz cases.

Enough for ld.lld (and kitemu's own ELF reader) to accept what the fuzzer
generates: ``ET_REL`` with the case's sections (``SHT_PROGBITS`` /
``SHT_NOBITS`` with ``SHF_ALLOC``/``SHF_WRITE``/``SHF_EXECINSTR`` from the
section kind), one ``SHT_RELA`` per relocated section, ``.symtab`` (locals
first, as the gABI requires), ``.strtab`` and ``.shstrtab``.

    data = write_elf(case, 0)          # bytes of the case's first object
"""

from __future__ import annotations

import struct

from .model import CaseObject, RelocCase, catalogue

EM = {"elf-x64": 62, "elf-aarch64": 183, "elf-rv64": 243}
#: e_flags: RISC-V RVC + double-float ABI (what clang -march=rv64gc emits)
E_FLAGS = {"elf-rv64": 0x5}

SHT_PROGBITS, SHT_SYMTAB, SHT_STRTAB, SHT_RELA, SHT_NOBITS = 1, 2, 3, 4, 8
SHT_INIT_ARRAY, SHT_FINI_ARRAY, SHT_PREINIT_ARRAY = 14, 15, 16
SHF_WRITE, SHF_ALLOC, SHF_EXECINSTR, SHF_INFO_LINK = 1, 2, 4, 0x40
SHN_UNDEF, SHN_ABS, SHN_COMMON = 0, 0xFFF1, 0xFFF2

_KIND = {   # section kind -> (sh_type, sh_flags)
    "text": (SHT_PROGBITS, SHF_ALLOC | SHF_EXECINSTR),
    "rodata": (SHT_PROGBITS, SHF_ALLOC),
    "data": (SHT_PROGBITS, SHF_ALLOC | SHF_WRITE),
    "bss": (SHT_NOBITS, SHF_ALLOC | SHF_WRITE),
    "init_array": (SHT_INIT_ARRAY, SHF_ALLOC | SHF_WRITE),
    "fini_array": (SHT_FINI_ARRAY, SHF_ALLOC | SHF_WRITE),
    "preinit_array": (SHT_PREINIT_ARRAY, SHF_ALLOC | SHF_WRITE),
    "nonalloc": (SHT_PROGBITS, 0),
}
_BIND = {"local": 0, "global": 1, "weak": 2}
_TYPE = {"notype": 0, "object": 1, "func": 2, "section": 3, "file": 4, "tls": 6, "ifunc": 10}


class _Strtab:
    def __init__(self):
        self.data = bytearray(b"\0")
        self.index: dict[str, int] = {"": 0}

    def add(self, s: str) -> int:
        if s not in self.index:
            self.index[s] = len(self.data)
            self.data += s.encode() + b"\0"
        return self.index[s]


def symbol_order(obj: CaseObject) -> list[int]:
    """Model symbol indices in ELF symtab order: the null symbol, the
    locals, then the globals and weaks."""
    rest = range(1, len(obj.symbols))
    return [0] + [i for i in rest if obj.symbols[i].binding == "local"] + \
        [i for i in rest if obj.symbols[i].binding != "local"]


def write_elf(case: RelocCase, oi: int) -> bytes:
    """The ELF bytes of ``case.objects[oi]``."""
    if case.target not in EM:
        raise ValueError(f"{case.target} is not an ELF target")
    obj = case.objects[oi]
    cat = catalogue(case.target)
    shstr, strtab = _Strtab(), _Strtab()
    # ELF section indices: 1.. the case's sections in order
    sec_index = {s.index: i + 1 for i, s in enumerate(obj.sections)}
    order = symbol_order(obj)
    sym_index = {m: e for e, m in enumerate(order)}
    first_global = next((e for e, m in enumerate(order) if m and obj.symbols[m].binding != "local"),
                        len(order))

    headers = []      # [name, type, flags, offset placeholder(data), size, link, info, align, entsize]
    blobs: list[bytes | None] = []

    def add(name, sh_type, flags, data, size, link=0, info=0, align=1, entsize=0):
        headers.append([shstr.add(name), sh_type, flags, size, link, info, align, entsize])
        blobs.append(data)
        return len(headers)     # 1-based ELF index

    for s in obj.sections:
        t, f = _KIND[s.kind]
        add(s.name, t, f, None if s.data is None else bytes(s.data), s.size, align=max(1, s.align))
    n_sections = len(headers)
    rela_for = [s for s in obj.sections if s.relocs]
    symtab_index = n_sections + len(rela_for) + 1
    for s in rela_for:
        raw = b"".join(struct.pack("<QQq", r.offset & (2**64 - 1),
                                   sym_index.get(r.symbol, r.symbol) << 32 | cat[r.label].rtype,
                                   r.addend) for r in s.relocs)
        add(".rela" + s.name, SHT_RELA, SHF_INFO_LINK, raw, len(raw), symtab_index,
            sec_index[s.index], 8, 24)
    syms = bytearray()
    for m in order:
        s = obj.symbols[m]
        if m == 0:
            syms += bytes(24)
            continue
        if s.place == "section":
            shndx = sec_index.get(s.section, 0xFFFF) if s.section is not None else 0
        else:
            shndx = {"abs": SHN_ABS, "common": SHN_COMMON}.get(s.place, SHN_UNDEF)
        info = _BIND[s.binding] << 4 | _TYPE[s.type]
        syms += struct.pack("<IBBHQQ", strtab.add(s.name), info, 0, shndx,
                            s.value & (2**64 - 1), s.size)
    strtab_index = symtab_index + 1
    add(".symtab", SHT_SYMTAB, 0, bytes(syms), len(syms), strtab_index, first_global, 8, 24)
    add(".strtab", SHT_STRTAB, 0, bytes(strtab.data), len(strtab.data))
    shstr.add(".shstrtab")
    shstrndx = len(headers) + 1
    add(".shstrtab", SHT_STRTAB, 0, None, 0)
    blobs[-1] = bytes(shstr.data)
    headers[-1][3] = len(shstr.data)

    out = bytearray(64)
    offsets = []
    for h, blob in zip(headers, blobs):
        align = max(1, h[6])
        if blob is None:            # NOBITS
            offsets.append(len(out))
            continue
        out += bytes((-len(out)) % align)
        offsets.append(len(out))
        out += blob
    out += bytes((-len(out)) % 8)
    shoff = len(out)
    out += bytes(64)                # the null section header
    for h, off in zip(headers, offsets):
        name, t, f, size, link, info, align, entsize = h
        out += struct.pack("<IIQQQQIIQQ", name, t, f, 0, off, size, link, info, align, entsize)
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    struct.pack_into("<16sHHIQQQIHHHHHH", out, 0, ident, 1, EM[case.target], 1, 0, 0, shoff,
                     E_FLAGS.get(case.target, 0), 64, 0, 0, 64, len(headers) + 1, shstrndx)
    return bytes(out)


def read_sections(data: bytes) -> dict[str, tuple[int, int, int, int]]:
    """``name -> (sh_type, sh_addr, sh_offset, sh_size)`` of an ELF64 file
    (for reading back what ld.lld wrote)."""
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    hdrs = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    stro = hdrs[shstrndx][4]
    out = {}
    for h in hdrs[1:]:
        end = data.index(b"\0", stro + h[0])
        out[data[stro + h[0]:end].decode()] = (h[1], h[3], h[4], h[5])
    return out
