"""The exec-memory allocator: W^X, strategies, page sizes, stale translations."""

import pytest

from kitemu.backends.unicorn import UnicornMachine
from kitemu.errors import ConfigError, ExecMemError, WXViolation
from kitemu.execmem import RO, RW, RX, ExecMem, Perm
from kitemu.loader import load_object
from kitemu.runtime import JitProcess
from kitemu.targets import get_target

from helpers import ELF_TARGETS, STRATEGIES, corpus_objects, expected_stdout, linked


def machine(target="elf-x64", page=4096):
    return UnicornMachine(get_target(target).arch, page)


def assert_no_wx(m):
    for begin, end, perm in m.regions():
        assert not (perm & Perm.W and perm & Perm.X), f"{begin:#x}..{end:#x} is {perm}"


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_rwx_is_refused(strategy):
    mem = ExecMem(machine(), strategy, 4096, 0x10000000, 0x100000)
    c = mem.commit(100, "code")
    with pytest.raises(WXViolation):
        mem.protect(c, RW | Perm.X)
    d = mem.commit(100, "data")
    with pytest.raises(WXViolation):
        mem.protect(d, RX)   # data never becomes executable


def test_write_into_rx_code_is_refused_by_kitemu():
    m = machine()
    mem = ExecMem(m, "mprotect", 4096, 0x10000000, 0x100000)
    c = mem.commit(16, "code")
    mem.write(c.addr, b"\x90" * 16)
    mem.make_executable(c)
    with pytest.raises(WXViolation, match="refused host-side write"):
        mem.write(c.addr, b"\xcc")
    # unicorn itself would have accepted the write: the check is kitemu's
    assert m.read(c.addr, 1) == b"\x90"
    mem.make_writable(c)
    mem.write(c.addr, b"\xcc")
    assert m.read(c.addr, 1) == b"\xcc"


def test_dual_map_writes_through_alias_and_exec_view_never_writable():
    m = machine()
    mem = ExecMem(m, "dual-map", 4096, 0x10000000, 0x100000)
    c = mem.commit(16, "code")
    assert c.alias is not None and c.alias != c.addr
    mem.write(c.addr, b"\xc3")
    assert m.read(c.addr, 1) == b"\xc3"      # the RX view sees the alias write
    perms = {b: p for b, _, p in m.regions()}
    assert perms[c.addr] == RX and perms[c.alias] == RW
    with pytest.raises(WXViolation):
        mem.protect(c, RW)


def test_capacity_error_names_the_need():
    mem = ExecMem(machine(), "mprotect", 4096, 0x10000000, 0x2000)
    mem.commit(0x1000, "code")
    with pytest.raises(ExecMemError, match=r"out of capacity: need 0x2000"):
        mem.commit(0x1001, "data")


@pytest.mark.parametrize("page", [0, None, 3000, 2048])
def test_bad_page_size_is_a_clear_error(page):
    with pytest.raises(ConfigError, match="page size"):
        ExecMem(machine(), "mprotect", page, 0x10000000, 0x100000)


@pytest.mark.parametrize("strategy", [None, "", "mmap-magic"])
def test_missing_or_unknown_strategy_is_a_clear_error(strategy):
    with pytest.raises(ConfigError, match="strategy"):
        ExecMem(machine(), strategy, 4096, 0x10000000, 0x100000)


def test_write_outside_committed_memory():
    mem = ExecMem(machine(), "mprotect", 4096, 0x10000000, 0x100000)
    with pytest.raises(ExecMemError, match="not committed"):
        mem.write(0x10000000, b"x")


@pytest.mark.parametrize("target", ELF_TARGETS)
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_linked_image_is_wx_clean_and_final(target, strategy):
    proc = linked("hello", target, strategy=strategy)
    assert_no_wx(proc.machine)
    code, ro, data = (proc.mem.chunk_at(s.addr) for s in proc.image.segments)
    assert code.perm == RX and ro.perm == RO and data.perm == RW
    result = proc.run()
    assert result.exit_code == 0 and result.stdout == expected_stdout("hello")
    assert_no_wx(proc.machine)


@pytest.mark.parametrize("page", [4096, 16384, 65536])
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_aarch64_page_sizes(page, strategy):
    proc = linked("hello", "elf-aarch64", strategy=strategy, page_size=page)
    # every chunk starts on a page of the modelled size
    for c in proc.mem.chunks:
        assert c.addr % page == 0 and c.size % page == 0
    assert proc.machine.uc.ctl_get_page_size() == page
    assert proc.run().stdout == expected_stdout("hello")


@pytest.mark.parametrize("target", ELF_TARGETS)
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_stale_translation_after_relink_at_same_address(target, strategy):
    """Link, run, free, relink different code at the same address on the
    same machine, run: the new code must run (unicorn keeps translated
    blocks unless kitemu flushes them)."""
    first = JitProcess(target, strategy=strategy)
    first.link([load_object(p) for p in corpus_objects("hello", target)])
    r1 = first.run()
    assert r1.stdout == expected_stdout("hello")
    base = first.image.globals["main"]
    first_code = first.mem.chunks[0].addr
    first.free()
    m = first.machine
    m.hostproc.stdout.clear()
    second = JitProcess(target, strategy=strategy, machine=m)
    second.link([load_object(p) for p in corpus_objects("switch_vm", target)])
    assert second.mem.base == first.mem.base
    assert second.mem.chunks[0].addr == first_code
    r2 = second.run(args=[])
    assert r2.stdout == expected_stdout("switch_vm"), (hex(base), r2.message)


RETURN_CODE = {  # main: return N  (N patched into the first instruction)
    "elf-x64": lambda n: b"\xb8" + n.to_bytes(4, "little") + b"\xc3",          # mov eax, n; ret
    "elf-aarch64": lambda n: (0x52800000 | (n << 5)).to_bytes(4, "little")     # movz w0, #n
    + (0xD65F03C0).to_bytes(4, "little"),                                       # ret
    "elf-rv64": lambda n: (0x00000513 | (n << 20)).to_bytes(4, "little")       # addi a0, zero, n
    + (0x00008067).to_bytes(4, "little"),                                       # ret
}


@pytest.mark.parametrize("target", ELF_TARGETS)
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_rewritten_code_runs_new_bytes_not_stale_translations(target, strategy):
    """Run code, rewrite it in place through the allocator, run again: the
    new bytes must execute. Unicorn keeps translated blocks across
    host-side writes (worst with dual mapping, where the write goes to
    another address), so this fails unless ExecMem flushes."""
    from objbuild import ObjBuilder
    from kitemu.loader.model import SectionKind
    b = ObjBuilder(target, "patch.o")
    t = b.section(".text", SectionKind.TEXT, RETURN_CODE[target](1))
    b.symbol("main", t, 0)
    proc = JitProcess(target, strategy=strategy)
    proc.link([b.build()])
    main = proc.image.globals["main"]
    assert proc.call(main, [])[0] & 0xFF == 1
    chunk = proc.mem.chunk_at(main)
    proc.mem.make_writable(chunk)
    proc.mem.write(main, RETURN_CODE[target](2))
    proc.mem.make_executable(chunk)
    assert_no_wx(proc.machine)
    assert proc.call(main, [])[0] & 0xFF == 2
