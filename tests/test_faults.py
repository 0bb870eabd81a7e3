"""Crashes are reported as a Linux host would: signal, si_code, address,
symbol+offset, target - and the CLI exits with 128+signal."""

import pytest
from keystone import KS_ARCH_ARM64, KS_ARCH_X86, KS_MODE_64, KS_MODE_LITTLE_ENDIAN, Ks

from kitemu.cli import main as cli_main
from kitemu.driver import Inputs
from kitemu.loader.model import SectionKind, SymbolType
from kitemu.runtime import JitProcess
from kitemu.targets import get_target, rv64

from objbuild import ObjBuilder


def x64(asm):
    return bytes(Ks(KS_ARCH_X86, KS_MODE_64).asm(asm)[0])


def a64(asm):
    return bytes(Ks(KS_ARCH_ARM64, KS_MODE_LITTLE_ENDIAN).asm(asm)[0])


def rv(*insns):
    return b"".join(rv64.insn(i) for i in insns)


# (target, code of `main` that crashes, expected signal, si_code, access, address)
CASES = {
    "null-write": {
        "elf-x64": (x64("xor eax, eax; mov qword ptr [rax+8], rax; ret"), "SIGSEGV", "SEGV_MAPERR", "write", 8),
        "elf-aarch64": (a64("mov x0, #8; str x0, [x0]; ret"), "SIGSEGV", "SEGV_MAPERR", "write", 8),
        "elf-rv64": (rv(rv64.addi(10, 0, 8), rv64.sd(10, 10, 0), rv64.RET), "SIGSEGV", "SEGV_MAPERR", "write", 8),
    },
    "write-own-code": {
        # lea rax, [rip] is the address of the next instruction: main+7
        "elf-x64": (x64("lea rax, [rip]; mov byte ptr [rax], 0; ret"), "SIGSEGV", "SEGV_ACCERR", "write", ("main", 7)),
        "elf-aarch64": (a64("adr x0, #0; str x0, [x0]; ret"), "SIGSEGV", "SEGV_ACCERR", "write", ("main", 0)),
        "elf-rv64": (rv(rv64.auipc(10, 0), rv64.sd(10, 10, 0), rv64.RET), "SIGSEGV", "SEGV_ACCERR", "write", ("main", 0)),
    },
}


def crash_object(target, code):
    b = ObjBuilder(target, "crash.o")
    t = b.section(".text", SectionKind.TEXT, code)
    b.symbol("main", t, 0, size=len(code))
    return b.build()


@pytest.mark.parametrize("scenario", sorted(CASES))
@pytest.mark.parametrize("target", ["elf-x64", "elf-aarch64", "elf-rv64"])
@pytest.mark.parametrize("strategy", ["mprotect", "dual-map"])
def test_fault_reports(scenario, target, strategy):
    code, signal, si_code, access, address = CASES[scenario][target]
    proc = JitProcess(target, strategy=strategy)
    proc.link([crash_object(target, code)])
    r = proc.run()
    f = r.fault
    assert f is not None, r
    assert (f.signal, f.si_code, f.access) == (signal, si_code, access)
    main = proc.image.globals["main"]
    if isinstance(address, tuple):
        address = main + address[1]  # the code wrote to itself
    assert f.address == address
    assert main <= f.pc < main + len(code)
    assert f.pc_symbol.startswith("main+0x") or f.pc_symbol == "main"
    assert r.exit_code == 128 + {"SIGSEGV": 11, "SIGBUS": 7}[signal]
    text = f.render()
    assert target in text and signal in text and f"{address:#x}" in text


def test_executing_data_is_a_permission_fault():
    b = ObjBuilder("elf-x64", "execdata.o")
    t = b.section(".text", SectionKind.TEXT, x64("lea rax, [rip]; jmp rax") )
    d = b.section(".data", SectionKind.DATA, b"\xc3" * 8, align=8)
    b.symbol("main", t, 0)
    b.symbol("blob", d, 0, type=SymbolType.OBJECT)
    # lea rax, [rip + blob]
    b.reloc(t, 3, "R_X86_64_PC32", "blob", -4)
    proc = JitProcess("elf-x64")
    proc.link([b.build()])
    r = proc.run()
    assert r.fault.signal == "SIGSEGV" and r.fault.si_code == "SEGV_ACCERR"
    assert r.fault.access == "execute" and r.fault.pc == proc.image.globals["blob"]
    assert r.fault.pc_symbol == "blob"


@pytest.mark.parametrize("target,code", [("elf-x64", x64("ud2")), ("elf-aarch64", b"\0\0\0\0"),
                                         ("elf-rv64", b"\0\0\0\0")])
def test_illegal_instruction(target, code):
    proc = JitProcess(target)
    proc.link([crash_object(target, code)])
    r = proc.run()
    assert r.fault.signal == "SIGILL" and r.exit_code == 132


def test_cli_crash_report(tmp_path, capsys, monkeypatch):
    obj = crash_object("elf-x64", CASES["null-write"]["elf-x64"][0])
    monkeypatch.setattr("kitemu.driver.gather", lambda paths, **kw: Inputs(get_target("elf-x64"), [obj]))
    assert cli_main(["run", "crash.o"]) == 139
    err = capsys.readouterr().err
    assert "program crashed" in err and "SIGSEGV SEGV_MAPERR" in err and "<main+0x" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("target,code", [("elf-x64", b"\xeb\xfe"),                       # jmp .
                                         ("elf-aarch64", (0x14000000).to_bytes(4, "little")),  # b .
                                         ("elf-rv64", (0x0000006F).to_bytes(4, "little"))])    # j .
def test_endless_loop_is_stopped_by_the_time_limit(target, code):
    proc = JitProcess(target)
    proc.link([crash_object(target, code)])
    r = proc.run(timeout=0.2)
    assert r.fault is not None and r.fault.kind == "timeout" and r.fault.signal == "SIGKILL"
    assert r.fault.pc_symbol == "main" and r.exit_code == 137


def test_exit_inside_a_time_limited_run_is_not_a_timeout():
    from helpers import corpus_objects, expected_stdout
    from kitemu.loader import load_object
    proc = JitProcess("elf-x64")
    proc.link([load_object(p) for p in corpus_objects("exit_nested", "elf-x64")])
    r = proc.run(timeout=30)
    assert r.fault is None and r.exit_code == 3 and r.stdout == expected_stdout("exit_nested")


def test_bad_pointer_to_a_host_function_is_a_segfault_in_that_function():
    """puts((char *)8): libc would crash inside puts; kitemu reports the
    fault with the host function as the PC, never a Python traceback."""
    b = ObjBuilder("elf-x64", "badptr.o")
    t = b.section(".text", SectionKind.TEXT, x64("push rax; mov edi, 8; call 0x1000") + b"\x59\xc3")
    b.symbol("main", t, 0)
    b.undefined("puts")
    b.reloc(t, 7, "R_X86_64_PLT32", "puts", -4)
    proc = JitProcess("elf-x64")
    proc.link([b.build()])
    r = proc.run()
    assert r.fault is not None and r.fault.signal == "SIGSEGV" and r.fault.access == "read"
    assert r.fault.address == 8 and r.fault.pc_symbol == "puts (host)"


@pytest.mark.parametrize("base,what", [(0x7000_0000 - 0x10_0000, "the stack"),
                                       (0x4000_0000, "the heap"),
                                       (0x7FF0_0000, "the return-sentinel page")])
def test_image_region_may_not_overlap_process_areas(base, what):
    from kitemu.errors import ConfigError
    with pytest.raises(ConfigError, match=f"overlaps {what}"):
        JitProcess("elf-x64", base=base)


# -- the macOS host model, J-stages and relocation records ------------------------

def test_macos_write_to_code_is_a_bus_error_with_its_j_stage():
    """On macOS a write to a mapped RX page is SIGBUS ("Bus error"), not
    SIGSEGV; the report says which J-stage was running."""
    b = ObjBuilder("macho-arm64", "wx.o")
    t = b.section("__TEXT,__text", SectionKind.TEXT, a64("adr x0, #0; str x0, [x0]; ret"))
    b.symbol("_main", t, 0)
    proc = JitProcess("macho-arm64")
    assert proc.mem.page_size == 16384 and proc.strategy.value == "dual-map"
    proc.link([b.build()])
    r = proc.run()
    f = r.fault
    # arm64 xnu: every SIGBUS has si_code BUS_ADRALN (x86-64: BUS_ADRERR)
    assert (f.signal, f.si_code, f.access) == ("SIGBUS", "BUS_ADRALN", "write")
    assert f.stage == "entry main" and r.exit_code == 128 + 7
    assert "Bus error" in f.render() and "J-stage entry main" in f.render()


@pytest.mark.parametrize("arch,kind,linux,macos", [
    ("x64", "protection", ("SIGSEGV", "SEGV_ACCERR"), ("SIGBUS", "BUS_ADRERR")),
    ("x64", "unmapped", ("SIGSEGV", "SEGV_MAPERR"), ("SIGSEGV", "SEGV_MAPERR")),
    ("aarch64", "protection", ("SIGSEGV", "SEGV_ACCERR"), ("SIGBUS", "BUS_ADRALN")),
    ("aarch64", "unmapped", ("SIGSEGV", "SEGV_MAPERR"), ("SIGSEGV", "SEGV_ACCERR")),
    ("aarch64", "illegal-instruction", ("SIGILL", "ILL_ILLOPC"), ("SIGILL", "ILL_ILLTRP")),
])
def test_signal_and_si_code_per_host_and_arch(arch, kind, linux, macos):
    """si_code as each kernel fills it: Linux by cause; xnu by arch (arm64
    sendsig: every SIGBUS BUS_ADRALN, every SIGSEGV SEGV_ACCERR, every SIGILL
    ILL_ILLTRP; i386 sendsig: SIGBUS BUS_ADRERR, SIGSEGV by Mach error)."""
    from types import SimpleNamespace
    from kitemu.faults import signal_for
    fault = SimpleNamespace(kind=kind, intno=None)
    assert signal_for(fault, arch, "linux") == linux
    assert signal_for(fault, arch, "macos") == macos


@pytest.mark.parametrize("target,signal", [("macho-arm64", "SIGBUS"), ("elf-aarch64", "SIGSEGV")])
def test_executing_map_jit_code_in_write_mode(target, signal):
    """jit-toggle: after the thread switches to write mode, every JIT page is
    RW for it: calling into JIT code then faults on the fetch - SIGBUS on
    macOS, the classic Apple-silicon W^X "Bus error"."""
    b = ObjBuilder(target, "jit.o")
    t = b.section(".text", SectionKind.TEXT, a64("mov x0, #7; ret"))
    b.symbol(get_target(target).symbol("f"), t, 0)
    proc = JitProcess(target, strategy="jit-toggle")
    proc.link([b.build()])
    f_addr = proc.lookup("f")
    assert proc.call(f_addr, [])[0] == 7
    proc.mem.set_jit_write_mode(True)          # pthread_jit_write_protect_np(0)
    value, fault = proc.call(f_addr, [])
    assert fault is not None and fault.signal == signal and fault.access == "execute"
    proc.mem.set_jit_write_mode(False)
    assert proc.call(f_addr, [])[0] == 7


def test_fault_names_the_relocation_that_produced_the_address():
    """main loads a pointer that a relocation put in .data and calls it; the
    pointer's target is data, so the call faults there, and the report
    names the R_X86_64_64 that produced the address."""
    b = ObjBuilder("elf-x64", "fptr.o")
    t = b.section(".text", SectionKind.TEXT, x64("push rax; mov rax, qword ptr [rip]; call rax; pop rcx; ret"))
    d = b.section(".data", SectionKind.DATA, bytes(16), align=8)
    b.symbol("main", t, 0)
    b.symbol("table", d, 0, type=SymbolType.OBJECT)
    b.symbol("not_code", d, 8, type=SymbolType.OBJECT)
    b.reloc(t, 4, "R_X86_64_PC32", "table", -4)          # mov rax, [rip + table]
    b.reloc(d, 0, "R_X86_64_64", "not_code", 0)           # table[0] = &not_code
    proc = JitProcess("elf-x64")
    proc.link([b.build()])
    r = proc.run()
    f = r.fault
    assert f.access == "execute" and f.pc == proc.lookup("not_code")
    how, rec = f.relocation
    assert how == "produced" and rec.kind == "R_X86_64_64" and rec.symbol == "not_code"
    assert rec.section == ".data" and rec.input == "fptr.o"
    assert "produced by fptr.o: section .data: relocation R_X86_64_64" in f.render()


def test_trace_link_prints_link_and_run_stages(capsys, monkeypatch):
    obj = crash_object("elf-x64", x64("mov eax, 3; ret"))
    monkeypatch.setattr("kitemu.driver.gather", lambda paths, **kw: Inputs(get_target("elf-x64"), [obj]))
    assert cli_main(["run", "--trace-link", "x.o"]) == 3
    err = capsys.readouterr().err
    stages = [line.split("J-stage ")[1].split(":")[0].split(" (")[0].split(" [")[0]
              for line in err.splitlines() if "J-stage" in line]
    assert stages[:3] == ["reserve", "resolve", "layout+fixups"]
    assert "copy" in stages and "finalize code" in stages and stages[-1] == "entry main"
