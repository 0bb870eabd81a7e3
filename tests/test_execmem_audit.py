"""Cross-host KitExecMem audit (roadmap 3.3): hypothesis state machines over
every exec-memory strategy x page size, plus the virtualprotect design.

One state machine run = one shared ``UnicornMachine`` (through a
``JitProcess``, whose ``call`` runs guest code) and up to three ExecMem
regions on it. Every ExecMem talks to the machine through a recording proxy,
so the flush rule can be checked from the backend calls themselves. The test
keeps its own model of the contract (docs/EXECMEM.md): each chunk's
permission and bytes, the jit-toggle thread mode, the published functions
and the reload stubs; every rule predicts its outcome from the model first
(refusals included), and the invariants compare model, ExecMem and what
unicorn itself reports after every step.

Page sizes: aarch64 runs with true 4K/16K/64K unicorn pages; x64's unicorn
page is fixed at 4K, so its 16K/64K host pages are modelled as multiples.

Budget: KITEMU_PROFILE=full (tests/conftest.py) runs long; the default keeps
the whole file well under the suite's budget.
"""

from __future__ import annotations

import collections
import functools
import os
from dataclasses import dataclass, field

import pytest
import unicorn
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (RuleBasedStateMachine, initialize, invariant, precondition, rule,
                                 run_state_machine_as_test)

from kitemu.backends.unicorn import UnicornMachine
from kitemu.errors import ConfigError, ExecMemError, WXViolation
from kitemu.execmem import (ALIAS_OFFSET, ALLOCATION_GRANULARITY, RO, RW, RX, ExecMem, Perm,
                            Strategy, parse_strategy)
from kitemu.loader import load_object
from kitemu.runtime import JitProcess
from kitemu.targets import get_target

from helpers import ELF_TARGETS, corpus_objects, expected_stdout, linked

FULL = os.environ.get("KITEMU_PROFILE") == "full"
AUDIT_SETTINGS = settings(
    max_examples=400 if FULL else 30,
    stateful_step_count=60 if FULL else 30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                           HealthCheck.data_too_large],
)

ALL_STRATEGIES = [s.value for s in Strategy]
#: (target, host page size): x64 = fixed 4K unicorn granule (16K/64K pages
#: are multiples of it), aarch64 = unicorn pages of the modelled size
PAGE_CONFIGS = [("elf-x64", 4096), ("elf-x64", 16384), ("elf-x64", 65536),
                ("elf-aarch64", 4096), ("elf-aarch64", 16384), ("elf-aarch64", 65536)]

W, X = Perm.W, Perm.X
PERMS = [Perm.NONE, RO, W, X, RW, RX, W | X, RW | X]

REGION_BASES = [0x2000_0000 + i * 0x100_0000 for i in range(3)]
HELPER = 0x7FD0_0000            # the guest store gadget (outside every region)

# tiny functions: return an immediate (the "last bytes written" probe)
FUNC = {
    "x64": lambda v: b"\xb8" + v.to_bytes(4, "little") + b"\xc3",                # mov eax, v; ret
    "aarch64": lambda v: (0x52800000 | (v << 5)).to_bytes(4, "little")          # movz w0, #v
    + (0xD65F03C0).to_bytes(4, "little"),                                        # ret
}
STORE = {  # store(addr, value): one guest-side 8-byte store
    "x64": b"\x48\x89\x37\xc3",                                                  # mov [rdi], rsi; ret
    "aarch64": (0xF9000001).to_bytes(4, "little") + (0xD65F03C0).to_bytes(4, "little"),  # str x1,[x0]; ret
}
SLOT = 16                        # functions and stubs sit in 16-byte slots

#: how often each rule ran in this process (to see that the budget explores)
RULES_RUN: collections.Counter = collections.Counter()


def counted(f):
    @functools.wraps(f)
    def run(self, *args, **kwargs):
        RULES_RUN[f.__name__] += 1
        return f(self, *args, **kwargs)
    return run


def flush_tlb(machine: UnicornMachine) -> None:
    """Work around unicorn 2.1.4's soft TLB, which keeps read access to a
    page after it lost R: ``UnicornMachine.protect`` (``mem_protect`` then
    ``ctl_remove_cache``) leaves the page readable to guest loads, and any
    fault on a no-access page (a read or a fetch) leaves an entry that lets
    the next read succeed (writes and fetches are unaffected: W^X holds).
    The regression tests at the end of this file pin both against the real
    backend; until it flushes the TLB itself, the audit does it where the
    fixed backend would, so that its model checks the contract."""
    machine.uc.ctl(unicorn.UC_CTL_TLB_FLUSH, unicorn.UC_CTL_IO_WRITE)


class Recorder:
    """The machine as ExecMem's backend, logging every primitive call."""

    def __init__(self, machine: UnicornMachine):
        self.m = machine
        self.log: list[tuple] = []

    def map(self, addr, size, perm):
        self.log.append(("map", addr, size, perm))
        self.m.map(addr, size, perm)

    def map_aliased(self, views, size):
        self.log.append(("map_aliased", tuple(views), size))
        self.m.map_aliased(views, size)

    def protect(self, addr, size, perm):
        self.log.append(("protect", addr, size, perm))
        self.m.protect(addr, size, perm)
        flush_tlb(self.m)

    def unmap(self, addr, size):
        self.log.append(("unmap", addr, size))
        self.m.unmap(addr, size)

    def write_raw(self, addr, data):
        self.log.append(("write_raw", addr, len(data)))
        self.m.write_raw(addr, data)

    def read(self, addr, size):
        return self.m.read(addr, size)

    def flush_code(self, addr, size):
        self.log.append(("flush_code", addr, size))
        self.m.flush_code(addr, size)

    def mutations(self) -> list[tuple]:
        return [op for op in self.log if op[0] != "flush_code"]


@dataclass(eq=False)
class ChunkModel:
    chunk: object                 # the ExecMem Chunk
    kind: str
    perm: Perm                    # the expected permission of the view at addr
    shadow: bytearray             # the expected bytes

    @property
    def addr(self) -> int:
        return self.chunk.addr

    @property
    def end(self) -> int:
        return self.chunk.addr + len(self.shadow)

    def __repr__(self) -> str:
        return f"<{self.kind} {self.addr:#x}+{len(self.shadow):#x} {self.perm}>"

    def _repr_pretty_(self, p, cycle):
        p.text(repr(self))


@dataclass(eq=False)
class RegionModel:
    slot: int
    mem: ExecMem
    chunks: list[ChunkModel] = field(default_factory=list)
    freed: bool = False
    funcs: dict[int, int] = field(default_factory=dict)     # addr -> value written there
    stubs: dict[int, int] = field(default_factory=dict)     # stub addr -> cell addr

    @property
    def base(self) -> int:
        return self.mem.base

    @property
    def limit(self) -> int:
        return self.mem.base + self.mem.capacity

    @property
    def next(self) -> int:
        return self.chunks[-1].end if self.chunks else self.base

    def chunk_at(self, addr: int) -> ChunkModel | None:
        for cm in self.chunks:
            if cm.addr <= addr < cm.end:
                return cm
        return None

    def __repr__(self) -> str:
        return f"<region {self.slot} {self.base:#x}{' freed' if self.freed else ''}>"

    def _repr_pretty_(self, p, cycle):
        p.text(repr(self))


def clipped(regions, lo: int, hi: int) -> list[tuple[int, int, Perm]]:
    """unicorn's mappings intersecting [lo, hi), clipped, in address order."""
    out = []
    for b, e, p in regions:
        e += 1
        if b < hi and lo < e:
            out.append((max(b, lo), min(e, hi), p))
    return sorted(out)


def assert_mapped_as(regions, lo: int, hi: int, perm: Perm, what: str) -> None:
    pos = lo
    for b, e, p in clipped(regions, lo, hi):
        assert b == pos, f"{what}: {pos:#x}..{b:#x} is not mapped in unicorn"
        assert p == perm, f"{what}: unicorn reports {b:#x}..{e:#x} as {p}, expected {perm}"
        pos = e
    assert pos == hi, f"{what}: {pos:#x}..{hi:#x} is not mapped in unicorn"


def assert_unmapped(regions, lo: int, hi: int, what: str) -> None:
    got = clipped(regions, lo, hi)
    assert not got, f"{what}: unicorn maps " + ", ".join(f"{b:#x}..{e:#x} {p}" for b, e, p in got)


class ExecMemAudit(RuleBasedStateMachine):
    STRATEGY: str = "mprotect"
    TARGET: str = "elf-x64"
    PAGE: int = 4096

    def __init__(self):
        super().__init__()
        self.strategy = parse_strategy(self.STRATEGY)
        self.proc = JitProcess(self.TARGET, strategy=self.STRATEGY, page_size=self.PAGE)
        self.machine = self.proc.machine
        # a hang guard: a stale or wild jump stops after a bounded number of
        # instructions (the probes run < 10; unicorn's timeout would cost a
        # timer thread per call) and then fails the value/fault check
        uc, emu_start = self.machine.uc, self.machine.uc.emu_start
        uc.emu_start = lambda begin, until, timeout=0, count=0: emu_start(begin, until, timeout,
                                                                          count or 10_000)
        self.arch_name = self.proc.arch.name
        self.func = FUNC[self.arch_name]
        self.rec = Recorder(self.machine)
        helper = max(self.PAGE, 0x10000)
        self.machine.map(HELPER, helper, RX)
        self.machine.write_raw(HELPER, STORE[self.arch_name])
        self.capacity = max(24 * self.PAGE, 4 * ALLOCATION_GRANULARITY)
        self.granularity = (max(ALLOCATION_GRANULARITY, self.PAGE)
                            if self.strategy is Strategy.VIRTUAL_PROTECT else self.PAGE)
        self.slots: dict[int, RegionModel] = {}
        #: jit-toggle: the (single emulated) thread's write mode, shared by
        #: every jit-toggle region on the machine
        self.jit_write = False

    # -- model helpers ---------------------------------------------------------
    def live(self) -> list[RegionModel]:
        return [r for _, r in sorted(self.slots.items()) if not r.freed]

    def has_live(self) -> bool:
        return bool(self.live())

    def code_chunks(self) -> list[tuple[RegionModel, ChunkModel]]:
        return [(r, c) for r in self.live() for c in r.chunks if c.kind == "code"]

    def owner(self, addr: int) -> tuple[RegionModel, ChunkModel] | tuple[None, None]:
        for r in self.live():
            cm = r.chunk_at(addr)
            if cm is not None:
                return r, cm
        return None, None

    def func_intact(self, addr: int, value: int) -> bool:
        _, cm = self.owner(addr)
        code = self.func(value)
        return cm is not None and bytes(cm.shadow[addr - cm.addr:addr - cm.addr + len(code)]) == code

    def intact_funcs(self) -> list[tuple[int, int]]:
        return [(a, v) for r in self.live() for a, v in sorted(r.funcs.items()) if self.func_intact(a, v)]

    def stub_state(self, stub: int, cell: int):
        """(stub chunk, cell chunk, target address, target value) when the
        stub's bytes are intact and its cell holds an intact function's
        address; else None (calling it would be unpredictable)."""
        _, sc = self.owner(stub)
        _, cc = self.owner(cell)
        if sc is None or cc is None:
            return None
        code = self.proc.arch.indirect_jump(stub, cell)
        if bytes(sc.shadow[stub - sc.addr:stub - sc.addr + len(code)]) != code:
            return None
        target = int.from_bytes(cc.shadow[cell - cc.addr:cell - cc.addr + 8], "little")
        for a, v in self.intact_funcs():
            if a == target:
                return sc, cc, a, v
        return None

    def set_jit_model(self, enabled: bool) -> None:
        self.jit_write = enabled
        for _, cm in self.code_chunks():
            cm.perm = RW if enabled else RX

    def snapshot(self):
        return (tuple(self.machine.regions()),
                tuple((r.slot, r.mem.next, r.mem.freed, r.mem.jit_write_mode,
                       tuple((c.addr, c.size, c.kind, c.perm, c.alias) for c in r.mem.chunks),
                       tuple(r.mem.reservations)) for r in self.slots.values()))

    def refused(self, call, exc=ExecMemError, match: str | None = None) -> None:
        """``call`` must raise ``exc`` (a kitemu error) and change nothing."""
        before = self.snapshot()
        self.rec.log.clear()
        with pytest.raises(exc, match=match):
            call()
        assert not self.rec.mutations(), f"a refused operation touched the backend: {self.rec.log}"
        assert self.snapshot() == before, "a refused operation changed the state"

    def call(self, addr: int, args=()):
        """JitProcess.call; after a fault the TLB is flushed, as the fixed
        backend's run() would (see flush_tlb)."""
        got, fault = self.proc.call(addr, list(args))
        if fault is not None:
            flush_tlb(self.machine)
        return got, fault

    def expect_value(self, addr: int, value: int, what: str) -> None:
        got, fault = self.call(addr)
        assert fault is None, f"{what} at {addr:#x} faulted: {fault.render()}"
        assert got == value, (f"{what} at {addr:#x} returned {got:#x} but {value:#x} was written "
                              "last: stale code ran")

    def expect_fault(self, addr: int, access: str, at: int, kind: str, what: str) -> None:
        got, fault = self.call(addr)
        assert fault is not None, f"{what} at {addr:#x} ran (returned {got:#x}) but must fault"
        assert (fault.kind, fault.access, fault.address) == (kind, access, at), \
            f"{what} at {addr:#x}: expected a {kind} {access} fault at {at:#x}, got {fault.render()}"

    def is_exec(self, cm: ChunkModel) -> bool:
        return bool(cm.perm & X)

    # -- the JIT's write cycle -----------------------------------------------------
    def jit_write_code(self, region: RegionModel, cm: ChunkModel, addr: int, code: bytes,
                       via_toggle: bool) -> None:
        """Open the chunk for writing, write, finalize - each strategy's way."""
        mem = region.mem
        if self.strategy is Strategy.JIT_TOGGLE and via_toggle:
            mem.set_jit_write_mode(True)
            self.set_jit_model(True)
        elif self.strategy is not Strategy.DUAL_MAP or via_toggle:
            mem.make_writable(cm.chunk)
            if self.strategy is Strategy.JIT_TOGGLE:
                self.set_jit_model(True)
            elif self.strategy is not Strategy.DUAL_MAP:
                cm.perm = RW
        mem.write(addr, code)
        cm.shadow[addr - cm.addr:addr - cm.addr + len(code)] = code
        if self.strategy is Strategy.JIT_TOGGLE and via_toggle:
            mem.set_jit_write_mode(False)
            self.set_jit_model(False)
        else:
            mem.make_executable(cm.chunk)
            if self.strategy is Strategy.JIT_TOGGLE:
                self.set_jit_model(False)
            else:
                cm.perm = RX

    # -- rules -----------------------------------------------------------------------
    @initialize()
    def first_region(self):
        self._reserve(0)

    def _reserve(self, slot: int) -> None:
        mem = ExecMem(self.rec, self.STRATEGY, self.PAGE, REGION_BASES[slot], self.capacity,
                      granule=self.machine.granule)
        assert mem.next == mem.base and not mem.chunks and not mem.reservations
        self.slots[slot] = RegionModel(slot, mem)
        if self.strategy is Strategy.JIT_TOGGLE:
            assert mem.jit_write_mode == self.jit_write     # one thread for every region

    @precondition(lambda self: len(self.live()) < len(REGION_BASES))
    @rule(data=st.data())
    @counted
    def reserve(self, data):
        """A new region; a freed slot is reused at the same base (relink at
        the same addresses: no translation of the old code may survive)."""
        free = [s for s in range(len(REGION_BASES)) if s not in self.slots or self.slots[s].freed]
        self._reserve(data.draw(st.sampled_from(free), label="slot"))

    @precondition(has_live)
    @rule(data=st.data())
    @counted
    def free_region(self, data):
        r = data.draw(st.sampled_from(self.live()), label="region")
        r.mem.free()
        r.freed = True
        self.refused(lambda: r.mem.commit(1, "code"), match="freed")
        self.refused(lambda: r.mem.write(r.base, b"x"), match="freed")
        if r.chunks:
            self.refused(lambda: r.mem.protect(r.chunks[0].chunk, RO), match="freed")

    @precondition(has_live)
    @rule(data=st.data(), kind=st.sampled_from(["code", "data"]))
    @counted
    def commit(self, data, kind):
        r = data.draw(st.sampled_from(self.live()), label="region")
        self._commit(r, kind, self._draw_size(data))

    def _draw_size(self, data) -> int:
        """Mostly a few pages; sometimes up to the whole capacity (which
        may not fit: a refused commit)."""
        return data.draw(st.integers(0, 3 * self.PAGE) | st.integers(0, self.capacity), label="size")

    def _commit(self, r: RegionModel, kind: str, size: int) -> ChunkModel | None:
        rounded = -(-max(size, 1) // self.PAGE) * self.PAGE
        if r.next + rounded > r.limit:
            self.refused(lambda: r.mem.commit(size, kind), match="out of capacity")
            return None
        chunk = r.mem.commit(size, kind)
        assert (chunk.addr, chunk.size, chunk.kind) == (r.next, rounded, kind)
        dual = kind == "code" and self.strategy is Strategy.DUAL_MAP
        assert chunk.alias == (chunk.addr + ALIAS_OFFSET if dual else None)
        cm = ChunkModel(chunk, kind, RX if dual else RW, bytearray(rounded))
        r.chunks.append(cm)
        if kind == "code" and self.strategy is Strategy.JIT_TOGGLE:
            self.set_jit_model(True)     # committing code puts the thread in write mode
        return cm

    def _write_outcome(self, r: RegionModel, addr: int, n: int) -> str:
        """What ExecMem.write must do: "ok", "wx" or "uncommitted" (the
        first offending piece decides, as pieces are checked in order)."""
        pos, end = addr, addr + n
        while pos < end:
            cm = r.chunk_at(pos)
            if cm is None:
                return "uncommitted"
            if not (cm.chunk.alias is not None or cm.perm & W):
                return "wx"
            pos = cm.end
        return "ok"

    @precondition(has_live)
    @rule(data=st.data(), where=st.sampled_from(["chunk", "chunk", "span", "outside"]))
    @counted
    def write(self, data, where):
        """A host-side write of random bytes: valid ones land (through the
        alias for dual-mapped code), invalid ones (RX code, non-writable
        data, uncommitted memory, the alias address itself) are refused and
        change nothing."""
        r = data.draw(st.sampled_from(self.live()), label="region")
        if where == "chunk" and r.chunks:
            cm = data.draw(st.sampled_from(r.chunks), label="chunk")
            off = data.draw(st.integers(0, len(cm.shadow) - 1), label="offset")
            addr, n = cm.addr + off, data.draw(st.integers(1, min(64, len(cm.shadow) - off)), label="n")
        elif where == "span" and r.chunks:
            cm = data.draw(st.sampled_from(r.chunks), label="chunk")
            addr = cm.end - data.draw(st.integers(1, 8), label="back")
            n = cm.end - addr + data.draw(st.integers(1, 8), label="over")
        else:
            choices = [r.base - 8, r.next, r.limit - 4, r.limit]
            choices += [cm.chunk.alias for cm in r.chunks if cm.chunk.alias is not None]
            addr, n = data.draw(st.sampled_from(choices), label="addr"), 8
        payload = data.draw(st.binary(min_size=n, max_size=n), label="bytes")
        outcome = self._write_outcome(r, addr, n)
        if outcome == "wx":
            self.refused(lambda: r.mem.write(addr, payload), WXViolation, "refused host-side write")
        elif outcome == "uncommitted":
            self.refused(lambda: r.mem.write(addr, payload), match="not committed")
        else:
            r.mem.write(addr, payload)
            pos = addr
            while pos < addr + n:
                cm = r.chunk_at(pos)
                stop = min(addr + n, cm.end)
                cm.shadow[pos - cm.addr:stop - cm.addr] = payload[pos - addr:stop - addr]
                pos = stop

    @precondition(has_live)
    @rule(data=st.data(), value=st.integers(0, (1 << 64) - 1))
    @counted
    def guest_store(self, data, value):
        """Guest code stores 8 bytes into a view: it lands iff the view is
        writable; into RX code (the dual-map RX view, finalized code) it
        faults as a write-protection fault and changes nothing. (The
        dual-map RW alias is left out: a guest JIT writing code through it
        must flush for itself, outside ExecMem's contract.)"""
        r = data.draw(st.sampled_from(self.live()), label="region")
        if not r.chunks:
            return
        cm = data.draw(st.sampled_from(r.chunks), label="chunk")
        addr = cm.addr + 8 * data.draw(st.integers(0, len(cm.shadow) // 8 - 1), label="slot")
        if cm.perm & W:
            _, fault = self.call(HELPER, [addr, value])
            assert fault is None, fault.render()
            cm.shadow[addr - cm.addr:addr - cm.addr + 8] = value.to_bytes(8, "little")
        else:
            before = self.machine.read(addr, 8)
            _, fault = self.call(HELPER, [addr, value])
            assert fault is not None and (fault.kind, fault.access, fault.address) == \
                ("protection", "write", addr), \
                f"guest store into {cm} at {addr:#x}: {fault.render() if fault else 'it landed'}"
            assert self.machine.read(addr, 8) == before

    def _protect_outcome(self, cm: ChunkModel, perm: Perm) -> str:
        """The contract's answer to protect(chunk, perm)."""
        s = self.strategy
        if perm & W and perm & X:
            return "wx"
        if cm.kind == "code" and s is Strategy.DUAL_MAP:
            return "noop" if perm == RX else "wx"
        if cm.kind == "code" and s is Strategy.JIT_TOGGLE:
            return "toggle" if perm in (RX, RW) else "wx"
        if perm & X and cm.kind == "data":
            return "wx"
        if s is Strategy.VIRTUAL_PROTECT and perm == W:
            return "error"               # no PAGE_* constant is write-only
        return "set"

    @precondition(has_live)
    @rule(data=st.data(), perm=st.sampled_from(PERMS), foreign=st.booleans())
    @counted
    def protect(self, data, perm, foreign):
        """Valid flips land; refused ones (RWX, X on data, anything but RX
        on dual-mapped code, a chunk of another or a freed region) raise a
        kitemu error and change nothing."""
        r = data.draw(st.sampled_from(self.live()), label="region")
        others = [c for o in self.slots.values() if o is not r for c in o.chunks]
        if foreign and others:
            cm = data.draw(st.sampled_from(others), label="foreign chunk")
            self.refused(lambda: r.mem.protect(cm.chunk, RO), match="not a committed chunk")
            return
        if not r.chunks:
            return
        cm = data.draw(st.sampled_from(r.chunks), label="chunk")
        outcome = self._protect_outcome(cm, perm)
        if outcome == "wx":
            self.refused(lambda: r.mem.protect(cm.chunk, perm), WXViolation)
            return
        if outcome == "error":
            self.refused(lambda: r.mem.protect(cm.chunk, perm), match="PAGE_")
            return
        r.mem.protect(cm.chunk, perm)
        if outcome == "toggle":
            self.set_jit_model(perm == RW)
        elif outcome == "set":
            cm.perm = perm

    @precondition(has_live)
    @rule(data=st.data(), enabled=st.booleans())
    @counted
    def jit_toggle(self, data, enabled):
        """pthread_jit_write_protect_np: flips every JIT code chunk of every
        jit-toggle region; the other strategies have no toggle."""
        r = data.draw(st.sampled_from(self.live()), label="region")
        if self.strategy is not Strategy.JIT_TOGGLE:
            self.refused(lambda: r.mem.set_jit_write_mode(enabled), match="no per-thread")
            return
        r.mem.set_jit_write_mode(enabled)
        self.set_jit_model(enabled)

    @precondition(lambda self: bool(self.code_chunks()))
    @rule(data=st.data(), value=st.integers(0, 0xFFFF), via_toggle=st.booleans())
    @counted
    def place_function(self, data, value, via_toggle):
        """The JIT writes a function into code (open, write, finalize), then
        calls it: the new value, never a stale translation."""
        r, cm = data.draw(st.sampled_from(self.code_chunks()), label="chunk")
        addr = cm.addr + SLOT * data.draw(st.integers(0, min(len(cm.shadow) // SLOT, 64) - 1), label="slot")
        self.jit_write_code(r, cm, addr, self.func(value), via_toggle)
        r.funcs[addr] = value
        self.expect_value(addr, value, "freshly placed function")

    @precondition(has_live)
    @rule(data=st.data(), value=st.integers(0, 0xFFFF))
    @counted
    def append(self, data, value):
        """More code after earlier code was finalized: commit, write,
        finalize; every earlier function must still run (the invariant
        calls them all)."""
        r = data.draw(st.sampled_from(self.live()), label="region")
        cm = self._commit(r, "code", self._draw_size(data))
        if cm is None:
            return
        addr = cm.addr + SLOT * data.draw(st.integers(0, min(len(cm.shadow) // SLOT, 64) - 1), label="slot")
        self.jit_write_code(r, cm, addr, self.func(value), data.draw(st.booleans(), label="via_toggle"))
        r.funcs[addr] = value
        self.expect_value(addr, value, "appended function")

    def _writable_cells(self, r: RegionModel) -> list[ChunkModel]:
        return [c for c in r.chunks if c.kind == "data" and c.perm & W]

    @precondition(has_live)
    @rule(data=st.data())
    @counted
    def make_stub(self, data):
        """A code stub jumping through an 8-byte cell in data (a far-call
        stub / hot-reload entry), the cell pointing at a published function."""
        r = data.draw(st.sampled_from(self.live()), label="region")
        codes = [c for c in r.chunks if c.kind == "code"]
        cells = self._writable_cells(r)
        targets = self.intact_funcs()
        if not codes or not cells or not targets:
            return
        cm = data.draw(st.sampled_from(codes), label="stub chunk")
        stub = cm.addr + SLOT * data.draw(st.integers(0, min(len(cm.shadow) // SLOT, 64) - 1), label="slot")
        dc = data.draw(st.sampled_from(cells), label="cell chunk")
        cell = dc.addr + 8 * data.draw(st.integers(0, min(len(dc.shadow) // 8, 512) - 1), label="cell")
        target, value = data.draw(st.sampled_from(targets), label="target")
        r.mem.write(cell, target.to_bytes(8, "little"))
        dc.shadow[cell - dc.addr:cell - dc.addr + 8] = target.to_bytes(8, "little")
        self.jit_write_code(r, cm, stub, self.proc.arch.indirect_jump(stub, cell),
                            data.draw(st.booleans(), label="via_toggle"))
        r.stubs[stub] = cell

    @precondition(has_live)
    @rule(data=st.data())
    @counted
    def reload(self, data):
        """Hot reload: rewrite one pointer cell in data, call through the
        stub: the new target runs. No code is written, nothing flushed."""
        r = data.draw(st.sampled_from(self.live()), label="region")
        stubs = [(s, c) for s, c in sorted(r.stubs.items()) if self.stub_state(s, c) is not None]
        targets = self.intact_funcs()
        if not stubs or not targets:
            return
        stub, cell = data.draw(st.sampled_from(stubs), label="stub")
        _, cc = self.owner(cell)
        if not cc.perm & W:
            return
        target, value = data.draw(st.sampled_from(targets), label="new target")
        r.mem.write(cell, target.to_bytes(8, "little"))
        cc.shadow[cell - cc.addr:cell - cc.addr + 8] = target.to_bytes(8, "little")
        self._check_stub(stub, cell)

    @precondition(has_live)
    @rule(data=st.data())
    @counted
    def execute_elsewhere(self, data):
        """Jumping into data, the dual-map RW alias, or uncommitted (reserved
        or unreserved) memory faults on the fetch."""
        r = data.draw(st.sampled_from(self.live()), label="region")
        spots = [("uncommitted", r.next)] if r.next < r.limit else []
        spots += [("data", c.addr) for c in r.chunks if c.kind == "data"]
        spots += [("alias", c.chunk.alias) for c in r.chunks if c.chunk.alias is not None]
        if not spots:
            return
        what, addr = data.draw(st.sampled_from(spots), label="where")
        reserved = any(res.base <= addr < res.end for res in r.mem.reservations)
        kind = "unmapped" if what == "uncommitted" and not reserved else "protection"
        self.expect_fault(addr, "execute", addr, kind, f"a jump into {what}")

    # -- invariants ------------------------------------------------------------------
    @invariant()
    def no_mapping_is_writable_and_executable(self):
        for b, e, p in self.machine.regions():
            assert not (p & W and p & X), f"unicorn maps {b:#x}..{e:#x} as {p}"

    @invariant()
    def chunks_layout_and_permissions_match_unicorn(self):
        regions = self.machine.regions()
        for r in self.slots.values():
            alias_lo, alias_hi = r.base + ALIAS_OFFSET, r.limit + ALIAS_OFFSET
            if r.freed:
                assert_unmapped(regions, r.base, r.limit, f"freed {r}")
                assert_unmapped(regions, alias_lo, alias_hi, f"alias range of freed {r}")
                continue
            mem = r.mem
            assert [c.chunk for c in r.chunks] == mem.chunks and mem.next == r.next
            pos = r.base
            for cm in r.chunks:
                c = cm.chunk
                assert c.addr == pos and c.addr % self.PAGE == 0 and c.size % self.PAGE == 0
                assert c.perm == cm.perm, f"ExecMem records {c.perm} for {cm}"
                assert mem.chunk_at(c.addr) is c and mem.chunk_at(c.end - 1) is c
                assert_mapped_as(regions, c.addr, c.end, cm.perm, f"{cm}")
                if c.alias is not None:
                    assert_mapped_as(regions, c.alias, c.alias + c.size, RW, f"alias of {cm}")
                pos = c.end
            if self.strategy is not Strategy.DUAL_MAP:
                assert_unmapped(regions, alias_lo, alias_hi, f"alias range of {r}")
            if self.strategy is Strategy.VIRTUAL_PROTECT:
                res = mem.reservations
                top = r.base
                for rv in res:
                    assert rv.base == top, f"reservations of {r} are not contiguous: {res}"
                    assert rv.base % self.granularity == 0 and rv.size % self.granularity == 0, rv
                    assert rv.size > 0
                    top = rv.end
                assert top <= r.limit
                assert top >= r.next and bool(res) == bool(r.chunks), (res, hex(r.next))
                # a commit never reserves more than it needs
                if res:
                    assert res[-1].base < r.next
                # committed pages checked above; the reserved tail is no-access
                if top > r.next:
                    assert_mapped_as(regions, r.next, top, Perm.NONE, f"reserved tail of {r}")
                assert_unmapped(regions, top, r.limit, f"unreserved part of {r}")
            else:
                assert not mem.reservations
                assert_unmapped(regions, r.next, r.limit, f"uncommitted part of {r}")

    @invariant()
    def bytes_match_and_aliases_agree(self):
        for r in self.live():
            for cm in r.chunks:
                got = self.machine.read(cm.addr, len(cm.shadow))
                assert got == cm.shadow, f"bytes of {cm} differ from the last ones written"
                if cm.chunk.alias is not None:
                    assert self.machine.read(cm.chunk.alias, len(cm.shadow)) == got, \
                        f"the RW alias of {cm} shows other bytes than its RX view"

    @invariant()
    def jit_thread_mode_is_one_for_all_regions(self):
        if self.strategy is not Strategy.JIT_TOGGLE:
            return
        for r in self.live():
            assert r.mem.jit_write_mode == self.jit_write
        for _, cm in self.code_chunks():
            assert cm.perm == (RW if self.jit_write else RX)

    @invariant()
    def flushed_after_every_code_write_and_permission_change(self):
        log, self.rec.log = self.rec.log, []
        code = [(cm.addr, cm.end, cm.chunk.alias) for _, cm in self.code_chunks()]

        def view_of(addr: int) -> int | None:
            for lo, hi, alias in code:
                if lo <= addr < hi:
                    return addr
                if alias is not None and alias <= addr < alias + (hi - lo):
                    return lo + (addr - alias)
            return None

        def flushed_later(i: int, lo: int, n: int) -> bool:
            return any(op[0] == "flush_code" and op[1] <= lo and lo + n <= op[1] + op[2]
                       for op in log[i + 1:])

        for i, op in enumerate(log):
            if op[0] == "write_raw":
                view = view_of(op[1])
                if view is not None:
                    assert flushed_later(i, view, op[2]), f"code write {op} not flushed: {log}"
            elif op[0] == "protect":
                for lo, hi, _ in code:
                    a, b = max(lo, op[1]), min(hi, op[1] + op[2])
                    if a < b:
                        assert flushed_later(i, a, b - a), f"code permission change {op} not flushed: {log}"

    @invariant()
    def published_code_runs_the_last_bytes_written(self):
        """Every intact function runs iff its view is executable and returns
        the last value written there; so does every reload stub."""
        for addr, value in self.intact_funcs():
            _, cm = self.owner(addr)
            if self.is_exec(cm):
                assert self._x_at(addr), \
                    f"published function at {addr:#x} lies in non-executable memory"
                self.expect_value(addr, value, "published function")
            else:
                self.expect_fault(addr, "execute", addr, "protection", f"function in {cm}")
        for r in self.live():
            for stub, cell in sorted(r.stubs.items()):
                self._check_stub(stub, cell)

    def _x_at(self, addr: int) -> bool:
        return any(b <= addr <= e and p & X for b, e, p in self.machine.regions())

    def _check_stub(self, stub: int, cell: int) -> None:
        state = self.stub_state(stub, cell)
        if state is None:
            return
        sc, cc, target, value = state
        if cc.perm == W:
            # write-only: readable on x86-64/arm64 hosts (PROT_WRITE implies
            # PROT_READ), not in unicorn unless a store warmed its TLB - the
            # outcome of reading it is host-dependent (docs/EXECMEM.md)
            return
        if not self.is_exec(sc):
            self.expect_fault(stub, "execute", stub, "protection", f"stub in {sc}")
        elif not cc.perm & Perm.R:
            self.expect_fault(stub, "read", cell, "protection", f"stub whose cell is in {cc}")
        elif not self.is_exec(self.owner(target)[1]):
            self.expect_fault(stub, "execute", target, "protection", "stub to a non-executable target")
        else:
            self.expect_value(stub, value, f"stub via cell {cell:#x}")

    def teardown(self):
        for r in self.live():
            r.mem.free()


@pytest.mark.parametrize("target,page", PAGE_CONFIGS, ids=[f"{t}-{p // 1024}k" for t, p in PAGE_CONFIGS])
@pytest.mark.parametrize("strategy", ALL_STRATEGIES)
def test_execmem_state_machine(strategy, target, page):
    audit = type(f"Audit_{strategy}_{target}_{page}".replace("-", "_"), (ExecMemAudit,),
                 {"STRATEGY": strategy, "TARGET": target, "PAGE": page})
    run_state_machine_as_test(audit, settings=AUDIT_SETTINGS)


# -- the virtualprotect design, spelled out ------------------------------------------

def vp(page=4096, target="elf-x64", base=0x2000_0000, capacity=0x80000):
    m = UnicornMachine(get_target(target).arch, page)
    rec = Recorder(m)
    return m, rec, ExecMem(rec, "virtualprotect", page, base, capacity, granule=m.granule)


def test_virtualprotect_is_a_strategy():
    assert Strategy.VIRTUAL_PROTECT.value == "virtualprotect"
    assert parse_strategy("virtualprotect") is Strategy.VIRTUAL_PROTECT


def test_virtualprotect_draws_pages_from_64k_reservations():
    m, rec, mem = vp()
    assert mem.reservations == []              # nothing reserved before the first commit
    a = mem.commit(0x3000, "code")
    assert [(r.base, r.size) for r in mem.reservations] == [(0x2000_0000, 0x10000)]
    assert (a.addr, a.size, a.perm) == (0x2000_0000, 0x3000, RW)
    assert ("map", 0x2000_0000, 0x10000, Perm.NONE) in rec.log          # MEM_RESERVE
    assert ("protect", 0x2000_0000, 0x3000, RW) in rec.log              # MEM_COMMIT
    b = mem.commit(0xD000, "data")             # exactly fills the reservation
    assert len(mem.reservations) == 1 and b.end == 0x2001_0000
    rec.log.clear()
    c = mem.commit(0x1000, "data")             # runs out: a new reservation, contiguous
    assert [(r.base, r.size) for r in mem.reservations][1] == (0x2001_0000, 0x10000)
    assert c.addr == 0x2001_0000
    regions = m.regions()
    assert_mapped_as(regions, 0x2001_1000, 0x2002_0000, Perm.NONE, "reserved tail")


def test_virtualprotect_chunk_straddling_reservations_gets_one_call_per_reservation():
    m, rec, mem = vp()
    mem.commit(0xE000, "data")
    rec.log.clear()
    code = mem.commit(0x14000, "code")         # 0x2000 in the first, 0x12000 in new ones
    assert (code.addr, code.end) == (0x2000_E000, 0x2002_2000)
    assert [(r.base, r.size) for r in mem.reservations] == [(0x2000_0000, 0x10000),
                                                            (0x2001_0000, 0x20000)]
    assert [op for op in rec.log if op[0] == "protect"] == [
        ("protect", 0x2000_E000, 0x2000, RW), ("protect", 0x2001_0000, 0x12000, RW)]
    mem.write(code.addr, b"\xc3" * code.size)
    rec.log.clear()
    mem.make_executable(code)                  # VirtualProtect x2, FlushInstructionCache
    assert rec.log == [("protect", 0x2000_E000, 0x2000, RX), ("protect", 0x2001_0000, 0x12000, RX),
                       ("flush_code", code.addr, code.size)]
    assert_mapped_as(m.regions(), code.addr, code.end, RX, "code")
    mem.free()                                 # VirtualFree(MEM_RELEASE) per reservation
    assert_unmapped(m.regions(), 0x2000_0000, 0x2008_0000, "freed region")


@pytest.mark.parametrize("page", [4096, 16384, 65536])
def test_virtualprotect_aarch64_pages_within_64k_granularity(page):
    m, rec, mem = vp(page, "elf-aarch64")
    assert m.uc.ctl_get_page_size() == page and mem.granularity == 0x10000
    chunks = [mem.commit(1, "code"), mem.commit(1, "data"), mem.commit(0x10001, "data")]
    assert [c.size for c in chunks] == [page, page, -(-0x10001 // page) * page]
    for r in mem.reservations:
        assert r.base % 0x10000 == 0 and r.size % 0x10000 == 0
    assert sum(r.size for r in mem.reservations) == -(-mem.used // 0x10000) * 0x10000


@pytest.mark.parametrize("base,capacity", [(0x2000_1000, 0x80000), (0x2000_0000, 0x81000)])
def test_virtualprotect_region_must_be_granularity_aligned(base, capacity):
    with pytest.raises(ConfigError, match="allocation granularity 0x10000"):
        vp(base=base, capacity=capacity)


def test_virtualprotect_refusals_name_the_page_protection():
    m, rec, mem = vp()
    code = mem.commit(16, "code")
    mem.write(code.addr, b"\xc3")
    mem.make_executable(code)
    with pytest.raises(WXViolation, match=r"is r-x \(PAGE_EXECUTE_READ\)"):
        mem.write(code.addr, b"\x90")
    with pytest.raises(WXViolation, match="PAGE_EXECUTE_READWRITE"):
        mem.protect(code, RW | X)
    data = mem.commit(16, "data")
    with pytest.raises(ExecMemError, match="no Windows page protection is -w-"):
        mem.protect(data, W)
    mem.protect(data, RO)                      # PAGE_READONLY


def test_virtualprotect_failed_reservation_changes_nothing():
    m, rec, mem = vp()
    mem.commit(0x10000, "code")
    m.map(0x2001_0000, 0x1000, RO)             # someone else holds the next 64 KiB
    before = (m.regions(), mem.next, mem.reservations, list(mem.chunks))
    with pytest.raises(ExecMemError, match="cannot map"):
        mem.commit(0x1000, "data")
    assert (m.regions(), mem.next, mem.reservations, list(mem.chunks)) == before


@pytest.mark.parametrize("target", ELF_TARGETS)
def test_virtualprotect_linked_image_final_and_relinkable(target):
    """The existing strategy tests, for virtualprotect: a linked image is W^X
    clean with final permissions, and a relink at the same address on the
    same machine runs the new code."""
    proc = linked("hello", target, strategy="virtualprotect")
    code, ro, data = (proc.mem.chunk_at(s.addr) for s in proc.image.segments)
    assert code.perm == RX and ro.perm == RO and data.perm == RW
    assert proc.run().stdout == expected_stdout("hello")
    first_code = code.addr
    proc.free()
    m = proc.machine
    m.hostproc.stdout.clear()
    second = JitProcess(target, strategy="virtualprotect", machine=m)
    second.link([load_object(p) for p in corpus_objects("switch_vm", target)])
    assert second.mem.chunks[0].addr == first_code
    assert second.run(args=[]).stdout == expected_stdout("switch_vm")
    for b, e, p in m.regions():
        assert not (p & W and p & X)


# -- regressions found by the audit ------------------------------------------------------

@pytest.mark.parametrize("strategy", ALL_STRATEGIES)
def test_refused_write_spanning_chunks_writes_nothing(strategy):
    """A write that starts in writable data and runs into finalized code (or
    off the end of committed memory) is refused before any byte lands."""
    m = UnicornMachine(get_target("elf-x64").arch, 4096)
    mem = ExecMem(m, strategy, 4096, 0x2000_0000, 0x40000)
    data = mem.commit(0x1000, "data")
    code = mem.commit(0x1000, "code")
    mem.commit(0x1000, "data")
    if strategy != "dual-map":
        mem.make_executable(code)
        with pytest.raises(WXViolation):
            mem.write(data.end - 4, b"A" * 8)
        assert m.read(data.end - 4, 4) == bytes(4)
    with pytest.raises(ExecMemError, match="not committed"):
        mem.write(mem.next - 4, b"B" * 8)
    assert m.read(mem.next - 4, 4) == bytes(4)


@pytest.mark.parametrize("strategy", ALL_STRATEGIES)
def test_protecting_a_chunk_of_another_or_freed_region_is_a_kitemu_error(strategy):
    m = UnicornMachine(get_target("elf-x64").arch, 4096)
    a = ExecMem(m, strategy, 4096, 0x2000_0000, 0x40000)
    b = ExecMem(m, strategy, 4096, 0x2100_0000, 0x40000)
    ca, cb = a.commit(1, "data"), b.commit(1, "data")
    with pytest.raises(ExecMemError, match="not a committed chunk of this region"):
        a.protect(cb, RO)
    a.free()
    with pytest.raises(ExecMemError, match="not a committed chunk of this region"):
        b.protect(ca, RO)


def test_jit_toggle_write_mode_covers_every_region_of_the_thread():
    """pthread_jit_write_protect_np is per thread, over all MAP_JIT memory:
    a second region entering write mode makes the first one's code RW too
    (calling it then faults, as on macOS)."""
    proc = JitProcess("elf-x64", strategy="jit-toggle")
    m = proc.machine
    a = ExecMem(m, "jit-toggle", 4096, 0x2000_0000, 0x40000)
    b = ExecMem(m, "jit-toggle", 4096, 0x2100_0000, 0x40000)
    fa = a.commit(16, "code")
    a.write(fa.addr, FUNC["x64"](7))
    a.make_executable(fa)
    assert proc.call(fa.addr) == (7, None)
    fb = b.commit(16, "code")                  # the thread enters write mode
    assert fa.perm == RW and a.jit_write_mode and b.jit_write_mode
    value, fault = proc.call(fa.addr)
    assert fault is not None and (fault.kind, fault.access) == ("protection", "execute")
    b.write(fb.addr, FUNC["x64"](8))
    b.set_jit_write_mode(False)
    assert fa.perm == fb.perm == RX
    assert proc.call(fa.addr) == (7, None) and proc.call(fb.addr) == (8, None)
    b.free()
    a.set_jit_write_mode(True)                 # a freed region is no longer touched
    assert fa.perm == RW


LOAD = {  # load(addr): one guest-side 8-byte load
    "elf-x64": b"\x48\x8b\x07\xc3",                                                  # mov rax, [rdi]; ret
    "elf-aarch64": (0xF9400000).to_bytes(4, "little")                               # ldr x0, [x0]
    + (0xD65F03C0).to_bytes(4, "little"),                                            # ret
}


def load_probe(target: str):
    proc = JitProcess(target, strategy="mprotect")
    mem = ExecMem(proc.machine, "mprotect", 4096, 0x2000_0000, 0x40000, granule=proc.machine.granule)
    code = mem.commit(16, "code")
    mem.write(code.addr, LOAD[target])
    mem.make_executable(code)
    return proc, mem, code.addr


@pytest.mark.parametrize("target", ["elf-x64", "elf-aarch64"])
def test_read_of_a_page_made_no_access_faults(target):
    """Found by the audit (a reload stub whose cell page was made
    no-access kept reading it): once a page is PROT_NONE every guest read of
    it faults, even if the guest read it just before. (unicorn 2.1.4's TLB
    kept the old read permission; the backend flushes it.)"""
    proc, mem, load = load_probe(target)
    data = mem.commit(16, "data")
    assert proc.call(load, [data.addr]) == (0, None)
    mem.protect(data, Perm.NONE)
    for attempt in range(3):
        _, fault = proc.call(load, [data.addr])
        assert fault is not None and (fault.kind, fault.access, fault.address) == \
            ("protection", "read", data.addr), f"read #{attempt + 1} of a no-access page did not fault"


@pytest.mark.parametrize("target", ["elf-x64", "elf-aarch64"])
def test_second_read_of_a_no_access_page_faults_too(target):
    """Every guest read of a page without R faults, not just the first:
    here virtualprotect's reserved-but-uncommitted tail, never readable."""
    proc = JitProcess(target, strategy="virtualprotect")
    mem = ExecMem(proc.machine, "virtualprotect", 4096, 0x2000_0000, 0x40000,
                  granule=proc.machine.granule)
    code = mem.commit(16, "code")
    mem.write(code.addr, LOAD[target])
    mem.make_executable(code)
    reserved_tail = mem.next                   # reserved, not committed: no access
    for attempt in range(3):
        _, fault = proc.call(code.addr, [reserved_tail])
        assert fault is not None and (fault.kind, fault.access, fault.address) == \
            ("protection", "read", reserved_tail), f"read #{attempt + 1} of a no-access page did not fault"


@pytest.mark.parametrize("target", ["elf-x64", "elf-aarch64"])
def test_writes_and_fetches_fault_after_losing_w_or_x(target):
    """What the TLB bug does not reach: a page that lost W refuses guest
    stores, a page that lost X refuses fetches, every time."""
    proc, mem, load = load_probe(target)
    arch = proc.arch.name
    store = mem.commit(16, "code")
    mem.write(store.addr, STORE[arch])
    mem.make_executable(store)
    data = mem.commit(16, "data")
    assert proc.call(store.addr, [data.addr, 1])[1] is None       # a writable TLB entry
    mem.protect(data, RO)
    code = mem.commit(16, "code")
    mem.write(code.addr, FUNC[arch](3))
    mem.make_executable(code)
    assert proc.call(code.addr) == (3, None)                        # an executable translation
    mem.make_writable(code)
    for _ in range(3):
        _, fault = proc.call(store.addr, [data.addr, 2])
        assert (fault.kind, fault.access) == ("protection", "write")
        _, fault = proc.call(code.addr)
        assert (fault.kind, fault.access) == ("protection", "execute")
    assert proc.machine.read(data.addr, 1) == b"\x01"
