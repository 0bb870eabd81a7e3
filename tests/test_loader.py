"""The ELF reader: the neutral model, and clear errors for malformed inputs."""

import struct

import pytest
from hypothesis import given, settings, strategies as st

from kitemu.cli import main as cli_main
from kitemu.errors import KitemuError, ObjectFormatError, UnsupportedRelocation
from kitemu.loader import load_object
from kitemu.loader.elf import read_elf
from kitemu.loader.model import Binding, SectionKind, SymbolPlace, SymbolType

from helpers import ELF_TARGETS, corpus_objects, read_bytes


def hello(target="elf-x64"):
    path = corpus_objects("hello", target)[0]
    return path, read_bytes(path)


def section_headers(data):
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shnum, shstrndx = struct.unpack_from("<HH", data, 0x3C)
    strtab_off = struct.unpack_from("<Q", data, shoff + shstrndx * 64 + 0x18)[0]
    out = []
    for i in range(shnum):
        name, stype, flags, addr, off, size, link, info, align, entsize = \
            struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * 64)
        end = data.index(b"\0", strtab_off + name)
        out.append(dict(index=i, name=data[strtab_off + name:end].decode(), type=stype,
                        offset=off, size=size, info=info, hdr=shoff + i * 64))
    return out


def first_rela(data, name_prefix=".rela.text"):
    return next(s for s in section_headers(data) if s["name"].startswith(name_prefix))


@pytest.mark.parametrize("target", ELF_TARGETS)
def test_model_of_a_real_object(target):
    obj = load_object(corpus_objects("hello", target)[0])
    assert obj.target == target and obj.format == "elf"
    kinds = {s.name: s.kind for s in obj.sections.values()}
    assert kinds[".text"] is SectionKind.TEXT
    text = next(s for s in obj.sections.values() if s.name == ".text")
    assert text.flags == 0x6 and text.executable and not text.writable   # SHF_ALLOC|SHF_EXECINSTR
    assert any(k is SectionKind.RODATA for k in kinds.values())
    main = next(s for s in obj.symbols if s.name == "main")
    assert main.binding is Binding.GLOBAL and main.type is SymbolType.FUNC
    assert main.place is SymbolPlace.SECTION and obj.sections[main.section].name == ".text"
    puts = next(s for s in obj.symbols if s.name == "puts")
    assert puts.place is SymbolPlace.UNDEF
    text = next(s for s in obj.sections.values() if s.name == ".text")
    assert text.relocations and all(r.offset + r.spec.fixup.size <= text.size
                                    for r in text.relocations if r.spec.fixup)
    assert obj.tu_name.endswith(".c")


def test_truncated_object_names_the_file(tmp_path):
    path, data = hello()
    for cut in (10, 63, 200, len(data) // 2, len(data) - 1):
        p = tmp_path / f"cut{cut}.o"
        p.write_bytes(data[:cut])
        with pytest.raises(ObjectFormatError) as e:
            load_object(str(p))
        assert str(p) in str(e.value)


def test_not_an_object(tmp_path):
    p = tmp_path / "x.o"
    p.write_bytes(b"hello world\n")
    with pytest.raises(ObjectFormatError, match="unrecognised file format"):
        load_object(str(p))
    with pytest.raises(ObjectFormatError, match="cannot read"):
        load_object(str(tmp_path / "missing.o"))


def test_unknown_machine():
    path, data = hello()
    bad = bytearray(data)
    struct.pack_into("<H", bad, 0x12, 0x14)   # EM_PPC
    with pytest.raises(ObjectFormatError, match="unsupported machine"):
        read_elf("ppc.o", bytes(bad))


def test_bad_relocation_type_names_file_section_relocation():
    path, data = hello()
    rela = first_rela(data)
    bad = bytearray(data)
    info_off = rela["offset"] + 8
    info, = struct.unpack_from("<Q", bad, info_off)
    struct.pack_into("<Q", bad, info_off, (info & ~0xFFFFFFFF) | 0xEE)
    with pytest.raises(UnsupportedRelocation) as e:
        read_elf("bad.o", bytes(bad))
    msg = str(e.value)
    assert "bad.o" in msg and "section .text" in msg and "relocation #0" in msg and "238" in msg


def test_relocation_past_section_end():
    path, data = hello()
    rela = first_rela(data)
    bad = bytearray(data)
    struct.pack_into("<Q", bad, rela["offset"], 0xFFFFF0)
    with pytest.raises(ObjectFormatError, match=r"bad.o: section .text: relocation #0 .* past the section end"):
        read_elf("bad.o", bytes(bad))


def test_relocation_symbol_index_out_of_range():
    path, data = hello()
    rela = first_rela(data)
    bad = bytearray(data)
    info, = struct.unpack_from("<Q", bad, rela["offset"] + 8)
    struct.pack_into("<Q", bad, rela["offset"] + 8, (info & 0xFFFFFFFF) | (9999 << 32))
    with pytest.raises(ObjectFormatError, match="symbol index 9999 is out of range"):
        read_elf("bad.o", bytes(bad))


def test_sht_rel_is_refused():
    path, data = hello()
    rela = first_rela(data)
    bad = bytearray(data)
    struct.pack_into("<I", bad, rela["hdr"] + 4, 9)   # SHT_REL
    with pytest.raises(ObjectFormatError, match="SHT_REL"):
        read_elf("rel.o", bytes(bad))


def test_not_relocatable():
    path, data = hello()
    bad = bytearray(data)
    struct.pack_into("<H", bad, 0x10, 2)   # ET_EXEC
    with pytest.raises(ObjectFormatError, match="not a relocatable object"):
        read_elf("exec.o", bytes(bad))


@settings(max_examples=150)
@given(st.data())
def test_random_corruption_never_escapes_as_a_traceback(data):
    """Flip bytes anywhere in a real object: reading (and linking) either
    works or raises a KitemuError, nothing else."""
    target = data.draw(st.sampled_from(ELF_TARGETS))
    path, raw = hello(target)
    buf = bytearray(raw)
    for _ in range(data.draw(st.integers(1, 8))):
        pos = data.draw(st.integers(0, len(buf) - 1))
        buf[pos] = data.draw(st.integers(0, 255))
    try:
        read_elf("fuzz.o", bytes(buf))
    except KitemuError as e:
        assert "fuzz.o" in str(e)


def test_cli_reports_errors_without_traceback(tmp_path, capsys):
    p = tmp_path / "trunc.o"
    p.write_bytes(hello()[1][:100])
    assert cli_main(["run", str(p)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("kitemu: error: ") and "trunc.o" in err and "Traceback" not in err
