"""The native backend: the same links, run on this CPU (x86-64 Linux hosts
only), in a forked child; results identical to the emulator's."""

import ctypes
import functools
import os
import time

import pytest

from kitemu.backends import native
from kitemu.backends.native import (ChildCrashed, NativeMachine, NativeMemoryFault,
                                    native_host_problem, run_isolated, run_native)
from kitemu.errors import ConfigError, ExecMemError, LinkError, WXViolation
from kitemu.execmem import RW, RX, ExecMem, Perm
from kitemu.harness.corpus import load_manifest
from kitemu.loader import load_object
from kitemu.loader.model import Binding, SectionKind, SymbolType
from kitemu.runtime import JitProcess

from objbuild import ObjBuilder

pytestmark = pytest.mark.skipif(native_host_problem() is not None,
                                reason=f"native backend: {native_host_problem()}")

CASES = load_manifest()
ELF_X64 = [c for c in CASES if c.target == "elf-x64"]
MACHO_X64 = [c for c in CASES if c.target == "macho-x64"]
TIMEOUT = 60.0


def _id(c):
    return f"{c.target}-{c.variant}-{c.case}"


@functools.lru_cache(maxsize=None)
def _objects(paths):
    return [load_object(p) for p in paths]


@functools.lru_cache(maxsize=None)
def _emulated(case_key, strategy="mprotect"):
    case = next(c for c in CASES if _id(c) == case_key)
    proc = JitProcess(case.target, strategy=strategy)
    proc.link(_objects(tuple(case.objects)))
    return proc.run(case.entry, case.args, program_name=case.case, timeout=TIMEOUT)


def _native(case, strategy):
    return run_native(_objects(tuple(case.objects)), target=case.target, entry=case.entry,
                      args=case.args, strategy=strategy, timeout=TIMEOUT,
                      program_name=case.case)


def _same_as_emulator(r, e):
    assert (r.stdout, r.stderr, r.exit_code, r.signal) == (e.stdout, e.stderr, e.exit_code,
                                                           e.signal)
    assert (r.fault is None) == (e.fault is None)


# -- the corpus ---------------------------------------------------------------------------
@pytest.mark.parametrize("strategy", ["mprotect", "dual-map"])
@pytest.mark.parametrize("case", ELF_X64, ids=_id)
def test_corpus_elf_x64_native(case, strategy):
    r = _native(case, strategy)
    assert r.exit_code == case.expected_exit, r.message
    assert r.stdout == case.expected_stdout
    assert r.stats["backend"] == "native"
    _same_as_emulator(r, _emulated(_id(case)))


@pytest.mark.parametrize("case", MACHO_X64, ids=_id)
def test_corpus_macho_x64_native(case):
    """Mach-O x86-64 code calls only host functions: it runs natively on
    Linux too (dual mapping, the macOS default strategy)."""
    r = _native(case, None)
    assert r.stats["strategy"] == "dual-map"
    assert r.exit_code == case.expected_exit, r.message
    assert r.stdout == case.expected_stdout
    _same_as_emulator(r, _emulated(_id(case), "dual-map"))


def test_corpus_jit_toggle_native():
    case = next(c for c in ELF_X64 if c.case == "ctors_dtors" and c.variant == "O2")
    r = _native(case, "jit-toggle")
    assert (r.stdout, r.exit_code) == (case.expected_stdout, case.expected_exit)


def test_variadic_doubles_and_stack_words_reach_the_host_body():
    case = next(c for c in ELF_X64 if c.case == "varargs" and c.variant == "O0")
    r = _native(case, "mprotect")
    assert b"d1 d2 d3 d4 d5 d6 d7 d8 d9 d10 i11 => 66" in r.stdout     # 2 doubles on the stack


# -- programs built in memory ----------------------------------------------------------------
def _program(code: bytes, relocs=(), rodata: bytes | None = None, undefined=(), extra=None):
    """``main`` = ``code``; relocs are (offset, type, symbol, addend)."""
    ob = ObjBuilder("elf-x64", "crash.o")
    text = ob.section(".text", SectionKind.TEXT, code)
    ob.symbol("main", text, 0, binding=Binding.GLOBAL, type=SymbolType.FUNC, size=len(code))
    if rodata is not None:
        ro = ob.section(".rodata", SectionKind.RODATA, rodata)
        ob.symbol("msg", ro, 0, binding=Binding.LOCAL, type=SymbolType.OBJECT)
    for name in undefined:
        ob.undefined(name)
    if extra:
        extra(ob, text)
    for off, rtype, sym, addend in relocs:
        ob.reloc(text, off, rtype, sym, addend)
    return ob.build()


PUTS_THEN = (bytes.fromhex("53"                       # push rbx (align the stack)
                           "488d3d00000000"           # lea rdi, [rip+msg]
                           "e800000000"),             # call puts
             [(4, "R_X86_64_PC32", "msg", -4), (9, "R_X86_64_PLT32", "puts", -4)])
MSG = b"before the crash\0"


def _crashing(tail: bytes):
    code, relocs = PUTS_THEN
    return _program(code + tail, relocs, MSG, ["puts"])


def _both(obj, **kw):
    native_r = run_native([obj], **kw)
    proc = JitProcess("elf-x64", strategy=kw.get("strategy", "mprotect"))
    proc.link([obj])
    return native_r, proc.run(timeout=kw.get("timeout"))


def test_write_to_null_is_sigsegv_in_the_child_only():
    obj = _crashing(bytes.fromhex("c7042500000000" "01000000"     # mov dword [0], 1
                                  "5b31c0c3"))
    t0 = time.perf_counter()
    r, e = _both(obj)
    assert time.perf_counter() - t0 < 30
    assert os.getpid()                        # still here
    assert r.stdout == e.stdout == b"before the crash\n"   # output before the crash survives
    assert r.exit_code == e.exit_code == 128 + 11
    assert r.signal == e.signal == "SIGSEGV"
    f, g = r.fault, e.fault
    for attr in ("signal", "si_code", "kind", "access", "address", "pc", "pc_symbol", "stage"):
        assert getattr(f, attr) == getattr(g, attr), attr
    assert (f.si_code, f.kind, f.access, f.address, f.pc_symbol) == \
        ("SEGV_MAPERR", "unmapped", "write", 0, "main+0xd")
    assert f.stage == "entry main"
    assert r.stats["child_status"] == "killed by SIGSEGV"
    assert "Segmentation fault: SIGSEGV SEGV_MAPERR" in r.fault.render()


def test_call_through_null_and_write_to_code():
    # call through a NULL pointer: an execute fault at 0
    r, e = _both(_crashing(bytes.fromhex("31c0ffd0")))      # xor eax,eax; call rax
    assert (r.fault.signal, r.fault.kind, r.fault.access, r.fault.address) == \
        (e.fault.signal, e.fault.kind, e.fault.access, e.fault.address) == \
        ("SIGSEGV", "unmapped", "execute", 0)
    # a store into its own (r-x) code: the MMU enforces W^X
    r, e = _both(_crashing(bytes.fromhex("488d05f5ffffff"      # lea rax, [rip-11]
                                         "c60090")))          # mov byte [rax], 0x90
    assert (r.fault.signal, r.fault.si_code, r.fault.kind, r.fault.access) == \
        (e.fault.signal, e.fault.si_code, e.fault.kind, e.fault.access) == \
        ("SIGSEGV", "SEGV_ACCERR", "protection", "write")
    assert r.fault.address == e.fault.address


def test_illegal_instruction_and_division_by_zero():
    r, e = _both(_crashing(bytes.fromhex("0f0b")))          # ud2
    assert r.signal == e.signal == "SIGILL" and r.exit_code == e.exit_code == 132
    assert r.fault.pc == e.fault.pc and r.fault.pc_symbol == "main+0xd"
    assert r.fault.si_code == "ILL_ILLOPN"      # the kernel's code for ud2 (emulator: ILL_ILLOPC)
    r = run_native([_crashing(bytes.fromhex("31c931d2b801000000f7f1"))])   # div ecx (0)
    assert (r.signal, r.fault.si_code, r.exit_code) == ("SIGFPE", "FPE_INTDIV", 136)
    assert r.stdout == b"before the crash\n"


def test_bad_pointer_given_to_a_host_function():
    """puts((char *)8): the fault is in the host function, as libc would crash
    in strlen - the same report as the emulator's."""
    code = bytes.fromhex("53" "bf08000000" "e800000000" "5b31c0c3")   # mov edi, 8; call puts
    obj = _program(code, [(7, "R_X86_64_PLT32", "puts", -4)], undefined=["puts"])
    r, e = _both(obj)
    assert (r.exit_code, r.signal) == (e.exit_code, e.signal) == (139, "SIGSEGV")
    assert (r.fault.kind, r.fault.access, r.fault.address, r.fault.pc_symbol) == \
        (e.fault.kind, e.fault.access, e.fault.address, e.fault.pc_symbol) == \
        ("unmapped", "read", 8, "puts (host)")


def test_abort_and_exit_from_host_functions():
    code = bytes.fromhex("53" "e800000000" "5b31c0c3")                 # call abort
    r, e = _both(_program(code, [(2, "R_X86_64_PLT32", "abort", -4)], undefined=["abort"]))
    assert (r.exit_code, r.signal, r.fault, r.message) == (e.exit_code, e.signal, None,
                                                           e.message) == \
        (134, "SIGABRT", None, "abort() called")
    assert r.stats["child_status"] == "killed by SIGABRT"


def test_timeout_stops_an_endless_loop():
    obj = _program(bytes.fromhex("ebfe"))                                # jmp .
    t0 = time.perf_counter()
    r, e = _both(obj, timeout=0.3)
    assert time.perf_counter() - t0 < 10
    assert (r.exit_code, r.signal) == (e.exit_code, e.signal) == (137, "SIGKILL")
    assert r.fault.kind == e.fault.kind == "timeout"
    assert r.fault.pc == e.fault.pc and r.fault.pc_symbol == "main"
    assert r.stats["child_status"] == "killed by SIGKILL"


def test_parent_kills_a_child_that_stops_answering(monkeypatch):
    """The guest stops its own process (kill(getpid(), SIGSTOP)): the child
    cannot report its time limit, the parent kills it."""
    monkeypatch.setattr(native, "WATCHDOG_GRACE", 0.3)
    code = bytes.fromhex("b8270000000f05"       # getpid
                         "89c7be13000000"       # mov edi, eax; mov esi, SIGSTOP
                         "b83e0000000f05"       # kill
                         "ebfe")
    t0 = time.perf_counter()
    r = run_native([_program(code)], timeout=0.3)
    assert time.perf_counter() - t0 < 10
    assert (r.exit_code, r.signal, r.fault.kind) == (137, "SIGKILL", "timeout")
    assert "killed by the harness" in r.message
    assert r.fault.stage == "entry main"


# -- W^X and the dual mapping --------------------------------------------------------------
@pytest.mark.parametrize("strategy", ["mprotect", "dual-map"])
def test_no_rwx_mapping_after_linking(strategy):
    case = next(c for c in ELF_X64 if c.case == "bank3" and c.variant == "O2")
    r = _native(case, strategy)
    maps = r.stats["maps_after_link"]
    assert maps and not any("w" in p and "x" in p for _, _, p, _ in maps)
    perms = sorted(p for _, _, p, _ in maps)
    if strategy == "dual-map":
        assert perms == ["r--p", "r-xs", "rw-p", "rw-s"]     # RX view + RW alias of one memfd
        assert all("kitemu-jit" in n for _, _, p, n in maps if p.endswith("s"))
    else:
        assert perms == ["r--p", "r-xp", "rw-p"]
    assert not any(p & Perm.W and p & Perm.X for _, _, p in r.stats["regions_after_link"])
    # nothing writable+executable appeared in the child at all: ctypes'
    # callback trampolines were flipped to r-x once created
    assert r.stats["new_rwx_mappings"] == []


def _dual_map_views():
    m = NativeMachine()
    mem = ExecMem(m, "dual-map", 4096, 0x2000_0000, 1 << 20)
    chunk = mem.commit(4096, "code")
    mem.write(chunk.addr, bytes.fromhex("b82a000000c3"))     # mov eax, 42; ret
    mem.make_executable(chunk)
    view, alias = m.read(chunk.addr, 4096), m.read(chunk.alias, 4096)
    fn = ctypes.CFUNCTYPE(ctypes.c_int)(chunk.addr)
    first = fn()
    mem.write(chunk.addr + 1, (43).to_bytes(4, "little"))   # through the alias; no flush
    second = fn()
    out = {"same": view == alias, "first": first, "second": second,
           "view_now": m.read(chunk.addr, 6), "alias_now": m.read(chunk.alias, 6)}
    try:
        m.write_raw(chunk.addr, b"\x90")                   # the RX view itself: refused
    except NativeMemoryFault as e:
        out["rx_write"] = (e.kind, e.access)
    return out


def test_dual_map_views_show_the_same_bytes():
    out = run_isolated(_dual_map_views)
    assert out["same"] and out["view_now"] == out["alias_now"] == bytes.fromhex("b82b000000c3")
    assert (out["first"], out["second"]) == (42, 43)
    assert out["rx_write"] == ("protection", "write")


def _store_into_rx_view():
    m = NativeMachine()
    mem = ExecMem(m, "dual-map", 4096, 0x2000_0000, 1 << 20)
    chunk = mem.commit(4096, "code")
    ctypes.memmove(chunk.addr, b"\x90", 1)      # behind the table's back: the MMU says no
    return "written"


def test_the_mmu_refuses_a_store_into_the_rx_view():
    with pytest.raises(ChildCrashed) as info:
        run_isolated(_store_into_rx_view)
    assert info.value.signal == "SIGSEGV"


def _machine_checks():
    m = NativeMachine()
    out = {}
    m.map(0x2000_0000, 0x2000, RW)
    m.write_raw(0x2000_0ffe, b"abcd")                      # across a page: one mapping
    out["read"] = m.read(0x2000_0ffe, 4)
    out["cstr"] = m.read_cstring(0x2000_0ffe)
    for what, f in (("unmapped", lambda: m.read(0x2000_1ffe, 4)),
                    ("null", lambda: m.read_cstring(0))):
        try:
            f()
        except NativeMemoryFault as e:
            out[what] = (e.kind, e.access, e.addr)
    m.protect(0x2000_1000, 0x1000, Perm.R)                 # split the mapping
    out["regions"] = m.regions()
    try:
        m.write_raw(0x2000_1000, b"x")
    except NativeMemoryFault as e:
        out["ro"] = e.kind
    try:
        m.protect(0x2000_0000, 0x1000, RW | RX)
    except WXViolation:
        out["wx"] = True
    m.unmap(0x2000_0000, 0x2000)
    out["after_unmap"] = m.regions()
    taken = native.proc_maps()[0][0]                        # the interpreter's own image
    try:
        m.map(taken, 0x1000, RW)
    except ExecMemError as e:
        out["taken"] = str(e)
    return out


def test_machine_checks_accesses_against_its_map_table():
    out = run_isolated(_machine_checks)
    assert out["read"] == out["cstr"] == b"abcd"
    assert out["unmapped"] == ("unmapped", "read", 0x2000_1ffe)
    assert out["null"] == ("unmapped", "read", 0)
    assert out["regions"] == [(0x2000_0000, 0x2000_0fff, RW), (0x2000_1000, 0x2000_1fff, Perm.R)]
    assert out["ro"] == "protection" and out["wx"]
    assert out["after_unmap"] == []
    assert "already in use in this process" in out["taken"]


# -- errors ------------------------------------------------------------------------------------
def test_link_errors_come_back_as_the_same_error():
    obj = _program(bytes.fromhex("e800000000c3"), [(1, "R_X86_64_PLT32", "nowhere", -4)],
                   undefined=["nowhere"])
    with pytest.raises(LinkError) as native_err:
        run_native([obj])
    with pytest.raises(LinkError) as emu_err:
        JitProcess("elf-x64").link([obj])
    assert str(native_err.value) == str(emu_err.value)


def test_non_x64_targets_and_hosts_are_refused(monkeypatch):
    with pytest.raises(ConfigError, match="x86-64 code only"):
        run_native([], target="elf-aarch64")
    case = next(c for c in CASES if c.target == "elf-rv64")
    with pytest.raises(ConfigError, match="elf-rv64"):
        run_native(case.objects, target=None)
    monkeypatch.setattr(native.platform, "machine", lambda: "aarch64")
    with pytest.raises(ConfigError, match="needs an x86-64 host"):
        run_native([], target="elf-x64")


def test_stack_overflow_is_reported_from_the_alternate_signal_stack():
    r = run_native([_program(bytes.fromhex("e8fbffffff"))])          # main: call main
    assert (r.exit_code, r.signal, r.fault.access, r.fault.pc_symbol) == \
        (139, "SIGSEGV", "write", "main")
    # the guard page below the worker's stack (the emulator: unmapped memory
    # below its 8 MiB stack, SEGV_MAPERR)
    assert r.fault.si_code == "SEGV_ACCERR"


def test_a_fault_outside_guest_code_kills_the_child_and_is_still_reported():
    """The guest sends SIGSEGV to the child's main thread (tgkill(pid, pid,
    SIGSEGV)): not guest code, so the handler lets the child die; the parent
    reports the signal from the record the handler left it."""
    code = bytes.fromhex("b8270000000f05"       # getpid
                         "89c789c6ba0b000000"   # edi = esi = pid, edx = SIGSEGV
                         "b8ea0000000f05"       # tgkill
                         "ebfe")
    r = run_native([_program(code)], timeout=20)
    assert (r.exit_code, r.signal) == (139, "SIGSEGV")
    assert r.fault.si_code == "SI_TKILL" and r.fault.stage == "entry main"
    assert "outside guest code" in r.message
    assert r.stats["child_status"] == "killed by SIGSEGV"


def test_object_format_errors_keep_their_type():
    from kitemu.errors import KitemuError
    with pytest.raises(KitemuError) as info:
        run_native([os.path.abspath(__file__)])
    assert "test_native.py" in str(info.value)


# -- process lifetime --------------------------------------------------------------------------
def _processes_one_after_another(paths):
    from kitemu.backends.native import NativeProcess
    out = []
    for _ in range(3):
        proc = NativeProcess("elf-x64")
        proc.link(_objects(paths))
        r = proc.run("main", [], timeout=TIMEOUT)
        proc.free()
        out.append((r.exit_code, r.stdout, r.message, len(os.listdir("/proc/self/fd"))))
    return out


def test_a_freed_native_process_leaves_its_addresses_and_fds_behind():
    """NativeProcess.free() unmaps the heap and argv pages (mapped by the
    machine, not ExecMem) and closes its pipe: the next process in the same
    OS process maps them again at the same addresses."""
    case = next(c for c in ELF_X64 if c.case == "malloc_list" and c.variant == "O2")
    out = run_isolated(_processes_one_after_another, tuple(case.objects))
    assert [o[:3] for o in out] == [out[0][:3]] * 3, out
    assert out[0][0] == case.expected_exit and out[0][1] == case.expected_stdout
    assert out[0][3] == out[1][3] == out[2][3]
