"""Far-call stubs: branches that cannot reach their target go through a stub.

* A call whose callee is placed beyond the branch's reach (rv64 ``jal``,
  +-1 MiB; aarch64 ``bl``, +-128 MiB) by a synthetic padding object between
  caller and callee is routed through a range-extension stub placed within
  reach ("far_callee@island"), whose cell holds the callee's address.
* A call to an undefined weak function (address 0, far from the image) links
  and gets a stub whose cell is 0 (the call itself is guarded).
* A call to a host function (``puts``) goes to the function's canonical stub
  inside the image, whose cell holds the host function's address.

Everything is checked on the process memory after the link: call sites and
stubs are decoded with capstone, cells are read back.

Objects: tests/data/obj/<target>/{far_caller,far_callee,weak_caller}.o and
the relocation-coverage programs' main.o (see tests/data/README.md).
"""

from __future__ import annotations

import time
from pathlib import Path

import capstone
import pytest

from kitemu.loader import load_object
from kitemu.loader.model import (Binding, ObjectFile, Section, SectionKind,
                                 Symbol, SymbolPlace, SymbolType)
from kitemu.runtime import HOST_BASE, JitProcess
from kitemu.targets import get_target
from kitemu.targets.base import sign_extend

OBJ = Path(__file__).resolve().parent / "data" / "obj"

#: per target: padding that puts the callee out of reach, the image capacity
#: that holds it, the call's relocation type and its reach in bytes
FAR = {
    "elf-rv64": dict(padding=2 << 20, capacity=16 << 20, reloc="R_RISCV_JAL",
                     reach=(-(1 << 20), (1 << 20) - 2)),
    "elf-aarch64": dict(padding=130 << 20, capacity=160 << 20, reloc="R_AARCH64_CALL26",
                        reach=(-(1 << 27), (1 << 27) - 4)),
}
#: the weak-undefined test: the image base that puts address 0 out of reach
WEAK = {
    "elf-rv64": dict(base=None, reloc="R_RISCV_JAL"),
    "elf-aarch64": dict(base=None, reloc="R_AARCH64_CALL26"),
    # +-2 GiB: only an image placed high is out of reach of address 0
    "elf-x64": dict(base=0x7F00_0000_0000, reloc="R_X86_64_PLT32"),
}
#: call relocation types against host functions in the coverage programs
HOST_CALL_RELOCS = {
    "elf-x64": {"R_X86_64_PLT32"},
    "elf-aarch64": {"R_AARCH64_CALL26"},
    "elf-rv64": {"R_RISCV_CALL", "R_RISCV_CALL_PLT"},
}


# ---- helpers ------------------------------------------------------------------

def obj(target: str, name: str) -> ObjectFile:
    return load_object(str(OBJ / target / name))


def padding_object(target: str, size: int) -> ObjectFile:
    """An in-memory object with one text section of ``size`` bytes of trap
    instructions, no symbols and no relocations."""
    trap = get_target(target).arch.trap
    data = trap * (size // len(trap))
    sec = Section(index=1, name=".text.padding", kind=SectionKind.TEXT, align=16,
                  size=len(data), data=data)
    null = Symbol(0, "", Binding.LOCAL, SymbolType.NOTYPE, SymbolPlace.UNDEF, None, 0, 0)
    return ObjectFile(path="<padding>", format="elf", target=target, sections={1: sec},
                      symbols=[null], tu_name="<padding>")


def call_site(proc: JitProcess, objects: list[ObjectFile], oi: int, rtype: str,
              symbol: str) -> int:
    """Runtime address P of the first ``rtype`` relocation against ``symbol``
    in a text section of ``objects[oi]``."""
    o = objects[oi]
    for sec in o.sections.values():
        if sec.kind is not SectionKind.TEXT:
            continue
        for rel in sec.relocations:
            if rel.name == rtype and o.symbols[rel.symbol].name == symbol:
                if rtype == "R_X86_64_PLT32" and sec.data[rel.offset - 1] != 0xE8:
                    continue                      # not a `call rel32`
                return proc.image.section_addrs[(oi, sec.index)] + rel.offset
    raise AssertionError(f"{o.path}: no {rtype} against {symbol}")


def disasm(proc: JitProcess, addr: int, count: int):
    arch = proc.arch
    md = capstone.Cs(arch.cs_arch, arch.cs_mode)
    md.detail = True
    insns = list(md.disasm(proc.machine.read(addr, 4 * count + 8), addr, count))
    assert len(insns) == count, f"cannot decode {count} instructions at {addr:#x}"
    return insns


def read_u64(proc: JitProcess, addr: int) -> int:
    return int.from_bytes(proc.machine.read(addr, 8), "little")


def decode_call(proc: JitProcess, target: str, site: int) -> int:
    """Where the call instruction(s) at ``site`` go, decoded from memory.
    (For x64, ``site`` is the rel32 field; the opcode is one byte before.)"""
    if target == "elf-x64":
        (i,) = disasm(proc, site - 1, 1)
        assert i.mnemonic == "call", i
        return i.operands[0].imm
    if target == "elf-aarch64":
        (i,) = disasm(proc, site, 1)
        assert i.mnemonic in ("bl", "b"), i
        return i.operands[0].imm                  # capstone: absolute target
    (i,) = disasm(proc, site, 1)
    if i.mnemonic == "jal":
        return site + i.operands[-1].imm          # capstone: offset from the jal
    # R_RISCV_CALL: auipc rX, hi20; jalr rY, lo12(rX)
    auipc, jalr = disasm(proc, site, 2)
    assert (auipc.mnemonic, jalr.mnemonic) == ("auipc", "jalr"), (auipc, jalr)
    assert jalr.operands[1].reg == auipc.operands[0].reg
    lo = jalr.operands[2].imm if len(jalr.operands) > 2 else 0
    return site + (sign_extend(auipc.operands[1].imm, 20) << 12) + lo


def decode_stub_cell(proc: JitProcess, target: str, stub: int) -> int:
    """The cell a stub's code loads its destination from, decoded from memory."""
    if target == "elf-x64":
        (i,) = disasm(proc, stub, 1)              # jmp qword ptr [rip + disp]
        assert i.mnemonic == "jmp", i
        mem = i.operands[0].mem
        assert i.reg_name(mem.base) == "rip", i
        return stub + i.size + mem.disp
    if target == "elf-aarch64":
        adrp, ldr, br = disasm(proc, stub, 3)     # adrp x16; ldr x16, [x16, #lo]; br x16
        assert (adrp.mnemonic, ldr.mnemonic, br.mnemonic) == ("adrp", "ldr", "br")
        x16 = adrp.operands[0].reg
        assert ldr.operands[0].reg == x16 and ldr.operands[1].mem.base == x16
        assert br.operands[0].reg == x16
        return adrp.operands[1].imm + ldr.operands[1].mem.disp
    auipc, ld, jr = disasm(proc, stub, 3)         # auipc t1; ld t1, lo(t1); jr t1
    assert (auipc.mnemonic, ld.mnemonic, jr.mnemonic) == ("auipc", "ld", "jr")
    reg = auipc.operands[0].reg
    assert ld.operands[0].reg == reg and ld.operands[1].mem.base == reg
    assert jr.operands[0].reg == reg
    return stub + (sign_extend(auipc.operands[1].imm, 20) << 12) + ld.operands[1].mem.disp


def stub_symbol(proc: JitProcess, addr: int):
    found = [s for s in proc.image.symbols if s.addr == addr and s.kind == "stub"]
    assert len(found) == 1, f"{addr:#x} is not a stub: {found}"
    return found[0]


def code_segment(proc: JitProcess):
    return next(s for s in proc.image.segments if s.name == "code")


def in_reach(reach, value: int) -> bool:
    return reach[0] <= value <= reach[1]


# ---- a callee placed beyond the branch's reach -----------------------------------

@pytest.mark.parametrize("strategy", ["mprotect", "dual-map"])
@pytest.mark.parametrize("target", list(FAR))
def test_far_call_goes_through_an_island(target, strategy):
    cfg = FAR[target]
    objects = [obj(target, "far_caller.o"), padding_object(target, cfg["padding"]),
               obj(target, "far_callee.o")]
    proc = JitProcess(target, strategy=strategy, capacity=cfg["capacity"])
    try:
        _check_far_call(proc, target, cfg, objects)
    finally:
        proc.free()                                # the padding is large


def _check_far_call(proc, target, cfg, objects):
    t0 = time.perf_counter()
    proc.link(objects)
    result = proc.run()
    elapsed = time.perf_counter() - t0
    assert result.fault is None, result.message
    assert result.exit_code == 42                  # far_callee's 41, plus 1

    image = proc.image
    callee = image.globals["far_callee"]
    site = call_site(proc, objects, 0, cfg["reloc"], "far_callee")
    assert not in_reach(cfg["reach"], callee - site), "the padding did not push the callee out of reach"

    dest = decode_call(proc, target, site)
    assert dest != callee
    stub = stub_symbol(proc, dest)
    assert stub.name == "far_callee@island"
    assert in_reach(cfg["reach"], dest - site)
    code = code_segment(proc)
    assert code.addr <= dest < code.addr + code.size
    cell = decode_stub_cell(proc, target, dest)
    assert read_u64(proc, cell) == callee
    # link + run of an image this size stays quick (130 MiB on aarch64)
    assert elapsed < 60, f"far-call link and run took {elapsed:.1f}s"


@pytest.mark.parametrize("target", list(FAR))
def test_near_call_is_direct(target):
    """Without the padding the same call reaches its callee directly."""
    objects = [obj(target, "far_caller.o"), obj(target, "far_callee.o")]
    proc = JitProcess(target)
    proc.link(objects)
    assert proc.run().exit_code == 42
    site = call_site(proc, objects, 0, FAR[target]["reloc"], "far_callee")
    assert decode_call(proc, target, site) == proc.image.globals["far_callee"]
    assert not [s for s in proc.image.symbols if s.name.endswith("@island")]


# ---- a call to an undefined weak function -------------------------------------------

@pytest.mark.parametrize("target", list(WEAK))
def test_weak_undefined_far_call_links(target):
    cfg = WEAK[target]
    kw = {} if cfg["base"] is None else {"base": cfg["base"]}
    objects = [obj(target, "weak_caller.o")]
    proc = JitProcess(target, **kw)
    proc.link(objects)                             # no error
    result = proc.run()
    assert result.fault is None, result.message
    assert result.exit_code == 7                   # the guarded call is not taken

    site = call_site(proc, objects, 0, cfg["reloc"], "maybe_fn")
    dest = decode_call(proc, target, site)
    assert dest != 0
    stub = stub_symbol(proc, dest)
    assert stub.name.endswith("@island")
    code = code_segment(proc)
    assert code.addr <= dest < code.addr + code.size
    assert read_u64(proc, decode_stub_cell(proc, target, dest)) == 0


# ---- calls to host functions -----------------------------------------------------------

@pytest.mark.parametrize("target", ["elf-x64", "elf-aarch64", "elf-rv64"])
def test_host_call_goes_through_a_stub_in_the_image(target):
    objects = [obj(target, "main.o"), obj(target, "lib.o")]
    proc = JitProcess(target)
    proc.link(objects)
    host = proc.machine.hostproc
    puts = host.addrs["puts"]
    assert HOST_BASE <= puts < host.end

    sites = [call_site(proc, objects, 0, r, "puts")
             for r in sorted(HOST_CALL_RELOCS[target])
             if any(rel.name == r and objects[0].symbols[rel.symbol].name == "puts"
                    for s in objects[0].sections.values() for rel in s.relocations)]
    assert sites
    for site in sites:
        dest = decode_call(proc, target, site)
        stub = stub_symbol(proc, dest)
        assert stub.name == "puts@stub"
        assert dest in proc.image.stubs.values()   # its canonical stub
        code = code_segment(proc)
        assert code.addr <= dest < code.addr + code.size
        cell = decode_stub_cell(proc, target, dest)
        assert read_u64(proc, cell) == puts
    result = proc.run()
    assert result.exit_code == 0 and b"ok\n" in result.stdout


# ---- only branches in code get stubs -----------------------------------------------

def test_out_of_reach_data_word_is_an_error_not_a_stub():
    """`.byte 0xe8; .long FAR - .` in .rodata, FAR an absolute symbol 0x7000_0000_0000
    (defined in another object) that a 32-bit offset cannot reach: the link must
    fail with a RelocationError, and must never write a stub into the code."""
    from kitemu.errors import RelocationError
    from kitemu.loader.model import Relocation
    x64 = get_target("elf-x64").arch
    null = Symbol(0, "", Binding.LOCAL, SymbolType.NOTYPE, SymbolPlace.UNDEF, None, 0, 0)
    code = b"\x90" * 16 + b"\xb8\x05\x00\x00\x00\xc3"          # nops; mov $5, %eax; ret
    text = Section(1, ".text", SectionKind.TEXT, 16, len(code), code)
    rodata = Section(2, ".rodata", SectionKind.RODATA, 1, 5, b"\xe8\x00\x00\x00\x00",
                     [Relocation(1, 2, x64.elf_relocs[2], 2, 0)])   # R_X86_64_PC32 FAR
    user = ObjectFile("<user>", "elf", "elf-x64", {1: text, 2: rodata}, [
        null,
        Symbol(1, "main", Binding.GLOBAL, SymbolType.FUNC, SymbolPlace.SECTION, 1, 0, len(code)),
        Symbol(2, "FAR", Binding.GLOBAL, SymbolType.NOTYPE, SymbolPlace.UNDEF, None, 0, 0),
    ], "<user>")
    far = ObjectFile("<far>", "elf", "elf-x64", {}, [
        null,
        Symbol(1, "FAR", Binding.GLOBAL, SymbolType.NOTYPE, SymbolPlace.ABS, None,
               0x7000_0000_0000, 0),
    ], "<far>")
    proc = JitProcess("elf-x64")
    try:
        proc.link([user, far])
    except RelocationError as e:
        assert "<user>: section .rodata" in str(e) and "R_X86_64_PC32" in str(e)
        return
    main = proc.image.globals["main"]
    assert proc.machine.read(main, len(code)) == code, "a stub was written over main's code"
    raise AssertionError("an out-of-reach PC32 data word was linked through a stub")
