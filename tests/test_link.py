"""Symbol resolution and fixup application, on small in-memory x86-64 objects."""

import struct

import pytest

from kitemu.errors import LinkError, RelocationError
from kitemu.loader.model import Binding, SectionKind, SymbolType
from kitemu.runtime import JitProcess

from objbuild import ObjBuilder

CALL = b"\xe8\0\0\0\0"                  # call rel32 (field at +1)
RET = b"\xc3"
LEA_RAX_RIP = b"\x48\x8d\x05\0\0\0\0"   # lea rax, [rip+disp32] (field at +3)
MOV_RAX_RIP = b"\x48\x8b\x05\0\0\0\0"   # mov rax, [rip+disp32] (field at +3)


def mov_eax(v):
    return b"\xb8" + struct.pack("<I", v)


def func_returning(path, name, value, binding=Binding.GLOBAL):
    b = ObjBuilder("elf-x64", path)
    t = b.section(".text", SectionKind.TEXT, mov_eax(value) + RET)
    b.symbol(name, t, 0, binding=binding)
    return b.build()


def main_calling(path, callee, name="main"):
    """main: call callee; ret  (returns callee's eax)"""
    b = ObjBuilder("elf-x64", path)
    t = b.section(".text", SectionKind.TEXT, b"\x48\x83\xec\x08" + CALL + b"\x48\x83\xc4\x08" + RET)
    b.symbol(name, t, 0)
    b.undefined(callee)
    b.reloc(t, 5, "R_X86_64_PLT32", callee, -4)
    return b.build()


def run(objs, **kw):
    proc = JitProcess("elf-x64", **kw)
    proc.link(objs)
    return proc, proc.run()


def test_cross_object_call():
    _, r = run([main_calling("main.o", "f"), func_returning("f.o", "f", 7)])
    assert r.exit_code == 7


def test_duplicate_strong_definitions_name_both_files():
    proc = JitProcess("elf-x64")
    with pytest.raises(LinkError, match=r"duplicate symbol 'f': defined in one\.o and in two\.o"):
        proc.link([main_calling("main.o", "f"), func_returning("one.o", "f", 1),
                   func_returning("two.o", "f", 2)])
    assert proc.mem.chunks == [] and proc.mem.used == 0   # nothing was committed


@pytest.mark.parametrize("order", [0, 1])
def test_strong_definition_beats_weak_in_either_order(order):
    weak = func_returning("weak.o", "f", 1, Binding.WEAK)
    strong = func_returning("strong.o", "f", 2)
    defs = [weak, strong] if order == 0 else [strong, weak]
    _, r = run([main_calling("main.o", "f")] + defs)
    assert r.exit_code == 2


def test_two_weak_definitions_first_wins():
    _, r = run([main_calling("main.o", "f"), func_returning("a.o", "f", 3, Binding.WEAK),
                func_returning("b.o", "f", 4, Binding.WEAK)])
    assert r.exit_code == 3


def test_missing_symbol_names_symbol_and_every_referencing_file():
    proc = JitProcess("elf-x64")
    with pytest.raises(LinkError) as e:
        proc.link([main_calling("main.o", "nowhere"), main_calling("other.o", "nowhere", "g")])
    msg = str(e.value)
    assert "undefined symbol 'nowhere'" in msg and "main.o" in msg and "other.o" in msg
    assert proc.mem.used == 0


def weak_ref_main(insn, rtype, base=None):
    """main: <insn referencing weak undefined 'maybe'>; ret  -> returns rax"""
    b = ObjBuilder("elf-x64", "weak.o")
    t = b.section(".text", SectionKind.TEXT, insn + RET)
    b.symbol("main", t, 0)
    b.undefined("maybe", weak=True)
    b.reloc(t, 3, rtype, "maybe", -4)
    return b.build()


@pytest.mark.parametrize("insn,rtype", [(MOV_RAX_RIP, "R_X86_64_REX_GOTPCRELX"),
                                        (MOV_RAX_RIP, "R_X86_64_GOTPCREL"),
                                        (LEA_RAX_RIP, "R_X86_64_PC32")])
def test_weak_undefined_resolves_to_zero(insn, rtype):
    proc, r = run([weak_ref_main(insn, rtype)])
    assert r.fault is None
    assert proc.machine.reg(proc.arch.callconv.int_ret) == 0


def test_weak_undefined_pcrel_that_cannot_reach_zero_is_an_error_not_truncation():
    proc = JitProcess("elf-x64", base=0x7F00_0000_0000)
    with pytest.raises(RelocationError) as e:
        proc.link([weak_ref_main(LEA_RAX_RIP, "R_X86_64_PC32")])
    msg = str(e.value)
    assert "weak.o: section .text: relocation #0 R_X86_64_PC32" in msg and "maybe" in msg
    assert "out of range" in msg
    assert proc.mem.used == 0


def test_weak_undefined_call_goes_through_a_stub_to_zero():
    """Calling a missing weak function must crash at address 0, not jump
    to a truncated address."""
    b = ObjBuilder("elf-x64", "callweak.o")
    t = b.section(".text", SectionKind.TEXT, CALL + RET)
    b.symbol("main", t, 0)
    b.undefined("maybe", weak=True)
    b.reloc(t, 1, "R_X86_64_PLT32", "maybe", -4)
    _, r = run([b.build()], base=0x7F00_0000_0000)
    assert r.fault is not None and r.fault.pc == 0 and r.fault.signal == "SIGSEGV"


def test_common_symbols_merge_to_largest():
    objs = []
    for i, size in enumerate((4, 16)):
        b = ObjBuilder("elf-x64", f"c{i}.o")
        code = LEA_RAX_RIP + RET
        t = b.section(".text", SectionKind.TEXT, code)
        b.symbol(f"addr{i}", t, 0)
        b.common("counter", size, 8 if i else 4)
        b.reloc(t, 3, "R_X86_64_PC32", "counter", -4)
        objs.append(b.build())
    proc = JitProcess("elf-x64")
    img = proc.link(objs)
    a0, _ = proc.call(img.globals["addr0"], [])
    a1, _ = proc.call(img.globals["addr1"], [])
    assert a0 == a1 == img.globals["counter"] and a0 % 8 == 0
    data = next(s for s in img.segments if s.name == "data")
    assert data.addr <= a0 and a0 + 16 <= data.addr + data.size


def test_absolute_symbols_and_abs_relocations():
    b = ObjBuilder("elf-x64", "abs.o")
    t = b.section(".text", SectionKind.TEXT, b"\x48\xb8" + bytes(8) + RET)   # movabs rax, imm64
    b.symbol("main", t, 0)
    b.absolute("MAGIC", 0x1234_5678_9ABC)
    b.reloc(t, 2, "R_X86_64_64", "MAGIC", 0x10)
    proc, r = run([b.build()])
    assert proc.machine.reg(proc.arch.callconv.int_ret) == 0x1234_5678_9ABC + 0x10


def test_32bit_absolute_overflow_is_an_error():
    b = ObjBuilder("elf-x64", "abs32.o")
    t = b.section(".text", SectionKind.TEXT, mov_eax(0) + RET)
    d = b.section(".data", SectionKind.DATA, bytes(8), align=8)
    b.symbol("main", t, 0)
    b.symbol("var", d, 0, type=SymbolType.OBJECT)
    b.reloc(t, 1, "R_X86_64_32", "var", 0)
    proc = JitProcess("elf-x64", base=0x1_0000_0000)
    with pytest.raises(RelocationError, match=r"abs32.o: section .text: relocation #0 R_X86_64_32 .* against var"):
        proc.link([b.build()])


def test_object_for_another_target_is_refused():
    b = ObjBuilder("elf-aarch64", "arm.o")
    proc = JitProcess("elf-x64")
    with pytest.raises(LinkError, match="arm.o: object is for elf-aarch64, not elf-x64"):
        proc.link([b.build()])


def test_relocations_in_bss_are_refused():
    b = ObjBuilder("elf-x64", "bss.o")
    s = b.section(".bss", SectionKind.BSS, None, size=16)
    b.symbol("x", s, 0, type=SymbolType.OBJECT)
    b.reloc(s, 0, "R_X86_64_64", "x")
    with pytest.raises(LinkError, match="bss.o: section .bss: relocations against a section with no contents"):
        JitProcess("elf-x64").link([b.build()])


def test_rv64_pcrel_lo_without_its_hi_is_an_error():
    """PCREL_LO12_I names the label of its AUIPC; if no PCREL_HI20 sits
    there, the value is undefined: refuse, naming the relocation."""
    from kitemu.targets import rv64
    code = rv64.insn(rv64.auipc(10, 0)) + rv64.insn(rv64.addi(10, 10, 0)) + rv64.insn(rv64.RET)
    b = ObjBuilder("elf-rv64", "lo.o")
    t = b.section(".text", SectionKind.TEXT, code, align=4)
    d = b.section(".rodata", SectionKind.RODATA, b"x", align=1)
    b.symbol("main", t, 0)
    b.symbol("thing", d, 0, type=SymbolType.OBJECT)
    b.symbol(".Lpcrel_hi0", t, 4, binding=Binding.LOCAL, type=SymbolType.NOTYPE)  # wrong label
    b.reloc(t, 0, "R_RISCV_PCREL_HI20", "thing")
    b.reloc(t, 4, "R_RISCV_PCREL_LO12_I", ".Lpcrel_hi0")
    with pytest.raises(RelocationError, match=r"lo.o: section .text: relocation #1 R_RISCV_PCREL_LO12_I "
                                              r".*no high-part relocation .* offset 0x4"):
        JitProcess("elf-rv64").link([b.build()])


def test_huge_bss_is_a_capacity_error_before_any_allocation():
    """A (corrupt) zero-fill of 2^60 bytes must be refused by the capacity
    check, not by a MemoryError building the segment buffers."""
    from kitemu.errors import ExecMemError
    b = ObjBuilder("elf-x64", "huge.o")
    s = b.section(".bss", SectionKind.BSS, None, size=1 << 60)
    b.symbol("big", s, 0, type=SymbolType.OBJECT)
    b.common("also_big", 1 << 50, 16)
    proc = JitProcess("elf-x64")
    with pytest.raises(ExecMemError, match=r"out of capacity: the link needs 0x"):
        proc.link([b.build()])
    assert proc.mem.used == 0


def test_unreferenced_global_ifunc_gets_its_stub_and_resolver_runs():
    """A global IFUNC nobody references still has a public address (its
    canonical stub) and its resolver runs at link time."""
    b = ObjBuilder("elf-x64", "ifunc.o")
    impl = mov_eax(77) + RET
    # resolver: lea rax, [rip + impl]; ret
    resolver = LEA_RAX_RIP + RET
    t = b.section(".text", SectionKind.TEXT, impl + resolver)
    b.symbol("impl", t, 0, binding=Binding.LOCAL)
    b.symbol("resolver", t, len(impl), binding=Binding.LOCAL)
    b.symbol("pick", t, len(impl), type=SymbolType.IFUNC)
    b.reloc(t, len(impl) + 3, "R_X86_64_PC32", "impl", -4)
    proc = JitProcess("elf-x64")
    img = proc.link([b.build()])
    assert [name for name, _, _ in img.ifuncs] == ["pick"]
    value, fault = proc.call(img.globals["pick"], [])
    assert fault is None and value & 0xFFFFFFFF == 77


def test_overlapping_fixups_are_refused():
    b = ObjBuilder("elf-x64", "overlap.o")
    t = b.section(".text", SectionKind.TEXT, mov_eax(0) + RET)
    d = b.section(".data", SectionKind.DATA, bytes(16), align=8)
    b.symbol("main", t, 0)
    b.symbol("x", d, 0, type=SymbolType.OBJECT)
    b.reloc(d, 0, "R_X86_64_64", "x")
    b.reloc(d, 4, "R_X86_64_32", "x")
    with pytest.raises(RelocationError, match=r"overlap.o: section .data: relocation #0 R_X86_64_64 "
                                              r".*overlap those of relocation #1 R_X86_64_32"):
        JitProcess("elf-x64").link([b.build()])


def test_fixup_outside_its_section_is_refused():
    b = ObjBuilder("elf-x64", "past.o")
    d = b.section(".data", SectionKind.DATA, bytes(8), align=8)
    b.symbol("x", d, 0, type=SymbolType.OBJECT)
    b.reloc(d, 4, "R_X86_64_64", "x")
    with pytest.raises(RelocationError, match=r"past.o: section .data: relocation #0 .* outside the section"):
        JitProcess("elf-x64").link([b.build()])


def test_riscv_add_sub_pair_at_one_place_is_allowed():
    b = ObjBuilder("elf-rv64", "diff.o")
    t = b.section(".text", SectionKind.TEXT, bytes(16), align=4)
    d = b.section(".rodata", SectionKind.RODATA, bytes(4), align=4)
    b.symbol("a", t, 12, type=SymbolType.NOTYPE)
    b.symbol("b", t, 4, type=SymbolType.NOTYPE)
    b.reloc(d, 0, "R_RISCV_ADD32", "a")
    b.reloc(d, 0, "R_RISCV_SUB32", "b")
    proc = JitProcess("elf-rv64")
    img = proc.link([b.build()])
    ro = next(s for s in img.segments if s.name == "rodata")
    assert int.from_bytes(proc.machine.read(ro.addr, 4), "little") == 8   # a - b
