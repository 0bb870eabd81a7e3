"""Crashes are reported as a Linux host would: signal, si_code, address,
symbol+offset, target - and the CLI exits with 128+signal."""

import pytest
from keystone import KS_ARCH_ARM64, KS_ARCH_X86, KS_MODE_64, KS_MODE_LITTLE_ENDIAN, Ks

from kitemu.cli import main as cli_main
from kitemu.loader.model import SectionKind, SymbolType
from kitemu.runtime import JitProcess
from kitemu.targets import rv64

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
    monkeypatch.setattr("kitemu.runtime.load_object", lambda p: obj)
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
