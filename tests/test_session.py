"""The JIT session API and append-only incremental linking (docs/SESSION.md).

* appends on every target: a second object calls into the first and the
  first into the second (staged relocations: a pending stub for the call, a
  staged data pointer and a staged PC-relative/GOT load), nothing already
  placed moves, every append is one generation;
* fixed-base placement and absolute symbols;
* the patch-site index names exactly the sites that reference a symbol;
* a failing append of every kind leaves memory, symbols and generation as
  they were (a hypothesis property over random sequences of good and bad
  appends) and nothing points into the pages it committed;
* out of capacity says how much was needed.
"""

from __future__ import annotations

import shutil
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kitemu.execmem import RX
from kitemu.errors import ExecMemError, KitemuError, LinkError, RelocationError
from kitemu.loader.model import SectionKind, SymbolType
from kitemu.session import GuestFault, Session
from kitemu.targets import TARGETS

from objbuild import ObjBuilder

needs_clang = pytest.mark.skipif(shutil.which("clang") is None, reason="needs clang")

A_C = r"""
extern int b_scale(int);            /* defined by a later append */
extern int counter;                 /* defined by a later append */
int *counter_ptr = &counter;        /* a staged data pointer */
int a_twice(int x) { return 2 * x; }
int a_calls_b(int x) { return b_scale(x) + 1; }
int a_reads_counter(void) { return counter; }
"""

B_C = r"""
int a_twice(int);                   /* defined by the image */
int counter = 42;
int b_scale(int x) { return a_twice(x) * 10; }
"""


@needs_clang
@pytest.mark.parametrize("target", TARGETS)
def test_append_resolves_both_ways_and_moves_nothing(target, tmp_path):
    (tmp_path / "a.c").write_text(A_C)
    (tmp_path / "b.c").write_text(B_C)
    with Session(target) as s:
        assert s.generation == -1
        assert s.append(tmp_path / "a.c", defer=True) == 0
        assert set(s.pending()) == {s.symbol_name("b_scale"), s.symbol_name("counter")}
        before = {n: s.lookup(n) for n in ("a_twice", "a_calls_b", "a_reads_counter",
                                           "counter_ptr")}
        assert s.call("a_twice", 21) == 42
        # calling through the pending stub faults at b_scale's guard address
        with pytest.raises(GuestFault) as info:
            s.call("a_calls_b", 3)
        assert "b_scale: pending, no append has defined it yet" in str(info.value)

        assert s.append(tmp_path / "b.c") == 1
        assert s.pending() == {}
        assert {n: s.lookup(n) for n in before} == before           # nothing moved
        assert s.call("a_calls_b", 3) == 61                         # a -> b -> a
        assert s.call("b_scale", 4) == 80
        assert s.call("a_reads_counter") == 42                      # staged load
        ptr = struct.unpack("<Q", s.read(s.lookup("counter_ptr"), 8))[0]
        assert ptr == s.lookup("counter")                           # staged pointer
        # every generation's records are kept; the staged ones were re-applied
        # in generation 1, against b's definitions
        staged = [r for r in s.sites("counter") if r.generation == 1]
        assert staged and all(r.target - r.addend == s.lookup("counter") for r in staged)
        assert {r.input for r in s.sites("a_twice")} >= {str(tmp_path / "b.c")}


@needs_clang
@pytest.mark.parametrize("target", TARGETS)
def test_fixed_base_and_absolute_symbols(target, tmp_path):
    (tmp_path / "abs.c").write_text(
        "extern char device_regs[];\n"
        "long regs_address(void) { return (long)device_regs; }\n"
        "int add(int a, int b) { return a + b; }\n"
        "double scale(double x, long k) { return x * k; }\n")
    base, capacity = 0xFFF00000, 1 << 20
    with Session(target, base=base, capacity=capacity) as s:
        s.define("device_regs", 0x1234_5678)
        s.add(tmp_path / "abs.c")
        assert s.link() == 1                      # define() was generation 0
        for name in ("regs_address", "add", "scale"):
            assert base <= s.lookup(name) < base + capacity
        assert s.call("regs_address") == 0x1234_5678
        assert s.call("add", 40, 2) == 42
        assert s.call("scale", 1.5, 4, returns="double") == 6.0
        assert all(base <= seg.addr < base + capacity for seg in s.image.segments)


def test_session_memory_read_write_and_free():
    b = ObjBuilder("elf-x64", "data.o")
    d = b.section(".data", SectionKind.DATA, struct.pack("<Q", 7), align=8)
    b.symbol("word", d, 0, type=SymbolType.OBJECT, size=8)
    t = b.section(".text", SectionKind.TEXT, bytes.fromhex("488b05000000 00c3".replace(" ", "")))
    b.symbol("get", t, 0)
    b.reloc(t, 3, "R_X86_64_PC32", "word", -4)
    s = Session("elf-x64")
    s.append(b.build())
    addr = s.lookup("word")
    assert s.read(addr, 8) == struct.pack("<Q", 7)
    s.write(addr, struct.pack("<Q", 99))
    assert s.call("get") == 99
    # a write into code follows W^X (opened, patched, closed, flushed)
    s.write(s.lookup("get"), bytes.fromhex("b805000000c3"))     # mov eax, 5; ret
    assert s.call("get") == 5
    assert s.proc.mem.chunk_at(s.lookup("get")).perm == RX
    with pytest.raises(KitemuError, match="not committed"):
        s.write(s.proc.mem.base + s.proc.mem.capacity - 16, b"x")
    s.free()
    assert s.proc.mem.chunks == []
    with pytest.raises(KitemuError, match="freed"):
        s.lookup("word")


def test_out_of_capacity_says_how_much_was_needed():
    b = ObjBuilder("elf-x64", "big.o")
    b.section(".bss", SectionKind.BSS, None, size=3 << 20)
    s = Session("elf-x64", capacity=1 << 20)
    with pytest.raises(ExecMemError, match=r"needs 0x300000 bytes .* 0x100000 of 0x100000 left"):
        s.append(b.build())
    assert s.generation == -1


def test_call_of_an_undefined_name_is_an_error():
    s = Session("elf-aarch64")
    with pytest.raises(LinkError, match="'nope' is not defined"):
        s.call("nope")


# -- transactional appends: a property over random sequences ------------------------

X64_RET_K = bytes.fromhex("b8") + b"\0\0\0\0" + b"\xc3"       # mov eax, imm32; ret
X64_CALL_INC = bytes.fromhex("e8000000004883c001c3")[:5] + bytes.fromhex("83c001c3")


def good_object(k: int, prev: int | None):
    """f<k> returns k; g<k> returns f<prev>() + 1 (a call into the image);
    ptr<k> holds &f<k> (a pointer word); common c<k>."""
    b = ObjBuilder("elf-x64", f"good{k}.o")
    code = bytearray(X64_RET_K)
    code[1:5] = struct.pack("<I", k)
    g_off = 16
    code += b"\xcc" * (g_off - len(code)) + X64_CALL_INC
    t = b.section(".text", SectionKind.TEXT, bytes(code))
    b.symbol(f"f{k}", t, 0, size=6)
    d = b.section(".data", SectionKind.DATA, bytes(8), align=8)
    b.symbol(f"ptr{k}", d, 0, type=SymbolType.OBJECT, size=8)
    b.reloc(d, 0, "R_X86_64_64", f"f{k}", 0)
    if prev is not None:
        b.symbol(f"g{k}", t, g_off, size=9)
        b.undefined(f"f{prev}")
        b.reloc(t, g_off + 1, "R_X86_64_PLT32", f"f{prev}", -4)
    b.common(f"c{k}", 8, 8)
    return b.build()


def bad_object(kind: str, k: int, defined: list[int]):
    b = ObjBuilder("elf-x64", f"bad-{kind}{k}.o")
    code = bytearray(X64_RET_K) + b"\xcc" * 10 + X64_CALL_INC
    t = b.section(".text", SectionKind.TEXT, bytes(code))
    b.symbol(f"fresh{k}", t, 0)
    d = b.section(".data", SectionKind.DATA, bytes(16), align=8)
    b.symbol(f"fresh_data{k}", d, 0, type=SymbolType.OBJECT)
    if kind == "unresolved":
        b.undefined("nowhere")
        b.reloc(t, 17, "R_X86_64_PLT32", "nowhere", -4)
    elif kind == "duplicate":
        b.symbol(f"f{defined[0]}", t, 16)
    elif kind == "capacity":
        b.section(".bss", SectionKind.BSS, None, size=1 << 40)
    elif kind == "overflow":
        b.absolute("far_away", 1 << 40)
        b.reloc(d, 0, "R_X86_64_32", "far_away", 0)
    elif kind == "malformed":
        b.reloc(d, 12, "R_X86_64_64", f"fresh{k}", 0)          # 8 bytes at 12 of 16
    elif kind == "resolver-fault":
        # an IFUNC whose resolver executes ud2: fails after memory was written
        b.symbol(f"ifunc{k}", t, 16, type=SymbolType.IFUNC)
        code[16:18] = b"\x0f\x0b"
        b.sections[t].data = bytes(code)
    return b.build()


BAD_KINDS = ("unresolved", "duplicate", "capacity", "overflow", "malformed", "resolver-fault")


def snapshot(s: Session):
    image = s.image
    mem = s.proc.mem
    return {
        "generation": image.generation,
        "memory": [(c.addr, c.perm, s.read(c.addr, c.size)) for c in mem.chunks],
        "published": {n: (p.addr, p.size, p.kind, p.input, p.generation)
                      for n, p in image.published.items()},
        "symbols": len(image.symbols),
        "records": len(image.records),
        "got": dict(image.got), "stubs": dict(image.stubs),
        "pending": {n: len(p.sites) for n, p in image.pending.items()},
        "inputs": len(image.inputs),
    }


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(("good",) * 3 + BAD_KINDS), min_size=1, max_size=8))
def test_failing_appends_change_nothing(plan):
    s = Session("elf-x64", capacity=8 << 20)
    defined: list[int] = []
    try:
        s.append(good_object(0, None))
        defined.append(0)
        for k, step in enumerate(plan, start=1):
            if step == "good":
                gen = s.generation
                s.append(good_object(k, defined[-1]))
                assert s.generation == gen + 1
                defined.append(k)
                continue
            before = snapshot(s)
            chunks_before = {c.addr for c in s.proc.mem.chunks}
            with pytest.raises(KitemuError):
                s.append(bad_object(step, k, defined))
            assert snapshot(s)["memory"][:len(before["memory"])] == before["memory"]
            after = snapshot(s)
            after["memory"] = after["memory"][:len(before["memory"])]
            assert after == before, step
            # nothing published points into pages the failed append committed
            dead = [c for c in s.proc.mem.chunks if c.addr not in chunks_before]
            for p in s.image.published.values():
                assert not any(c.addr <= p.addr < c.end for c in dead)
        # the patch-site index names exactly the sites that reference f<k>:
        # its own pointer word, and the call in the next good append
        for i, k in enumerate(defined):
            want = {(f"good{k}.o", ".data", 0, "R_X86_64_64")}
            if i + 1 < len(defined):
                want.add((f"good{defined[i + 1]}.o", ".text", 17, "R_X86_64_PLT32"))
            assert {(r.input, r.section, r.offset, r.kind) for r in s.sites(f"f{k}")} == want
        # and the image still works: every g<k> calls f<prev> across appends
        for i, k in enumerate(defined):
            assert s.call(f"f{k}") == k
            assert struct.unpack("<Q", s.read(s.lookup(f"ptr{k}"), 8))[0] == s.lookup(f"f{k}")
            if i:
                assert s.call(f"g{k}") == defined[i - 1] + 1
    finally:
        s.free()


def test_staged_relocation_that_overflows_fails_the_defining_append():
    """A 32-bit absolute reference staged against a pending name fails the
    append that defines the name out of its reach, naming the staged site;
    the pending entry and the image stay as they were."""
    a = ObjBuilder("elf-x64", "refs.o")
    d = a.section(".data", SectionKind.DATA, bytes(8), align=8)
    a.symbol("slot", d, 0, type=SymbolType.OBJECT)
    a.undefined("later")
    a.reloc(d, 0, "R_X86_64_32", "later", 0)
    s = Session("elf-x64")
    s.append(a.build(), defer=["later"])
    guard = s.image.pending["later"].guard
    assert struct.unpack("<I", s.read(s.lookup("slot"), 4))[0] == guard
    before = snapshot(s)
    far = ObjBuilder("elf-x64", "far.o")
    far.absolute("later", 1 << 40)
    with pytest.raises(RelocationError, match=r"refs.o: section .data: relocation R_X86_64_32 .*"
                                              r"'later' \(staged in generation 0\).*far.o"):
        s.append(far.build())
    assert snapshot(s) == before
    near = ObjBuilder("elf-x64", "near.o")
    near.absolute("later", 0x1234)
    s.append(near.build())
    assert struct.unpack("<I", s.read(s.lookup("slot"), 4))[0] == 0x1234
    assert [r.via for r in s.sites("later")] == ["pending", "staged"]


def test_append_cannot_replace_a_published_symbol():
    s = Session("elf-x64")
    s.append(good_object(0, None))
    with pytest.raises(LinkError, match=r"duplicate symbol 'f0'.*generation 0"):
        s.append(good_object(0, None))
    # a weak definition of a published name is dropped: its references bind
    # to the image's
    b = ObjBuilder("elf-x64", "weak.o")
    code = bytearray(X64_RET_K)
    code[1:5] = struct.pack("<I", 77)             # the weak f0 would return 77
    t = b.section(".text", SectionKind.TEXT, bytes(code) + b"\xcc" * 10 + X64_CALL_INC)
    from kitemu.loader.model import Binding
    b.symbol("f0", t, 0, binding=Binding.WEAK)
    b.symbol("h", t, 16)
    b.reloc(t, 17, "R_X86_64_PLT32", "f0", -4)
    s.append(b.build())
    assert s.call("h") == 1                      # f0 (the image's, returns 0) + 1


@needs_clang
def test_native_backend_appends_and_stages_like_the_emulator(tmp_path):
    from kitemu.backends.native import native_host_problem
    if native_host_problem():
        pytest.skip(native_host_problem())
    (tmp_path / "a.c").write_text(A_C)
    (tmp_path / "b.c").write_text(B_C)
    with Session("elf-x64", backend="native") as s:
        s.append(tmp_path / "a.c", defer=True)
        assert s.call("a_twice", 21) == 42
        with pytest.raises(GuestFault, match="b_scale: pending"):
            s.call("a_calls_b", 3)                   # a real SIGSEGV at the guard
        s.append(tmp_path / "b.c")
        assert s.call("a_calls_b", 3) == 61 and s.call("a_reads_counter") == 42
        s.write(s.lookup("counter"), struct.pack("<i", 7))
        assert s.call("a_reads_counter") == 7
