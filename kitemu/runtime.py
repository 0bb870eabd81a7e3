"""Putting it together: a machine, an exec-memory region, host functions, one
linked image, and the calls that run it (IFUNC resolvers, .init_array, the
entry with argc/argv, .fini_array).

Address map of an emulated process (defaults; the image base is settable)::

    0x0001_0000_0000  image region (capacity 64 MiB by default)
    0x0000_4000_0000  heap (malloc), grows up to 1 GiB
    0x0000_7000_0000  stack top (8 MiB below it)
    0x0000_7fef_0000  displaced-step scratch page (kitemu.dbg.step, mapped on first use)
    0x0000_7ff0_0000  return sentinel page (a call ends when PC reaches it)
    0x003f_0000_0000  host functions (far: references need GOT/stubs)
    image + 2^36      RW alias views of dual-mapped code
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from .backends.unicorn import CpuFault, UnicornMachine
from .errors import ConfigError, KitemuError
from .execmem import ALIAS_OFFSET, RW, RX, ExecMem, Strategy, check_page_size, parse_strategy
from .hostlib import GuestExit, HostProcess
from .hostlib.callconv import bits_to_double, double_to_bits
from .link.image import JitImage
from .link.linker import LinkedImage
from .loader.model import ObjectFile
from .targets import Target, get_target
from .faults import FaultReport, describe_fault

DEFAULT_BASE = 0x1000_0000
DEFAULT_CAPACITY = 64 << 20
HEAP_BASE = 0x4000_0000
HEAP_LIMIT = 0x6000_0000
STACK_TOP = 0x7000_0000
STACK_SIZE = 8 << 20
SENTINEL = 0x7FF0_0000
#: the 64 KiB below the sentinel page: where kitemu.dbg.step copies an
#: instruction to execute it displaced (mapped RX by the first such step)
STEP_SCRATCH = SENTINEL - 0x10000
HOST_BASE = 0x3F_0000_0000
#: bytes left untouched below a stopped call's stack pointer when another
#: call runs meanwhile (x86-64 SysV leaf functions keep data in the 128
#: bytes below %rsp)
RED_ZONE = 256


PROCESS_AREAS = {
    "the heap": (HEAP_BASE, HEAP_LIMIT),
    "the stack": (STACK_TOP - STACK_SIZE, STACK_TOP),
    "the displaced-step scratch page": (STEP_SCRATCH, SENTINEL),
    "the return-sentinel page": (SENTINEL, SENTINEL + 0x10000),
    "the host-function area": (HOST_BASE, HOST_BASE + 0x10000),
}


def check_region(base: int, capacity: int, strategy) -> None:
    """The image region (and its RW alias under dual mapping) must not
    overlap the process's own areas, nor leave the 48-bit address space."""
    spans = [("image region", base, base + capacity)]
    if strategy is Strategy.DUAL_MAP:
        spans.append(("RW alias of the image region", base + ALIAS_OFFSET,
                      base + ALIAS_OFFSET + capacity))
    for what, lo, hi in spans:
        if lo < 0 or hi > 1 << 48:
            raise ConfigError(f"{what} [{lo:#x}, {hi:#x}) lies outside the 48-bit address space")
        for area, alo, ahi in ((n, a, b) for n, (a, b) in PROCESS_AREAS.items()):
            if lo < ahi and alo < hi:
                raise ConfigError(f"{what} [{lo:#x}, {hi:#x}) overlaps {area} [{alo:#x}, {ahi:#x}); "
                                  "choose another --base")


@dataclass
class HostModel:
    """What the simulated host OS is: its page size and how it reports faults."""

    os: str = "linux"
    page_size: int = 4096


@dataclass
class CallOutcome:
    """How a resumable call (:meth:`JitProcess.start_call`,
    :meth:`JitProcess.resume`) came back.

    ``status`` is

    * ``"returned"``: the callee returned to the sentinel; ``value`` is the
      return value (int, or float for ``returns="double"``);
    * ``"breakpoint"``: it stopped before the instruction at ``pc`` (a
      breakpoint); the call stays pending: registers (``proc.machine.reg``)
      and memory are live, :meth:`JitProcess.resume` continues it,
      :meth:`JitProcess.abandon` drops it;
    * ``"faulted"``: ``fault`` is the :class:`FaultReport` (a time limit
      is a fault of kind ``"timeout"``, as for :meth:`JitProcess.call`);
    * ``"exited"``: a host function ended the program (``exit``, ``abort``);
      ``exit`` has the status and, for abort, the signal;
    * ``"interrupted"``: the machine stopped at ``pc`` for none of these
      reasons (nothing in kitemu does that; never mistaken for a return).
    """

    status: str
    value: int | float | None = None
    pc: int | None = None
    fault: FaultReport | None = None
    exit: GuestExit | None = None

    @property
    def returned(self) -> bool:
        return self.status == "returned"

    @property
    def stopped(self) -> bool:
        return self.status == "breakpoint"

    @property
    def faulted(self) -> bool:
        return self.status == "faulted"

    @property
    def exited(self) -> bool:
        return self.status == "exited"


@dataclass
class _StoppedCall:
    """A call stopped at a breakpoint, waiting for resume()/abandon()."""

    returns: str
    #: seconds of guest time the call may still run (None: no limit)
    budget: float | None
    #: the breakpoint it stopped at
    pc: int
    #: the J-stage it runs in (a call made meanwhile changes proc.stage)
    stage: str


@dataclass
class RunResult:
    stdout: bytes
    stderr: bytes
    exit_code: int
    fault: FaultReport | None = None
    signal: str | None = None
    message: str = ""
    stats: dict = field(default_factory=dict)


class JitProcess:
    """One emulated process holding one linked image."""

    def __init__(self, target: Target | str, strategy: str | None = None, page_size: int | None = None,
                 base: int = DEFAULT_BASE, capacity: int = DEFAULT_CAPACITY,
                 machine: UnicornMachine | None = None, stdout_sink=None, host_os: str | None = None,
                 host_base: int = HOST_BASE):
        self.target = get_target(target) if isinstance(target, str) else target
        self.arch = self.target.arch
        if host_os not in (None, "linux", "macos"):
            raise ConfigError(f"unknown host model {host_os!r}; known: linux, macos")
        self.host = HostModel(host_os or self.target.host_os,
                              self.target.default_page_size if page_size is None else page_size)
        check_page_size(self.host.page_size, self.arch.fixed_uc_page_size or 4096)
        # no strategy given: the host OS's usual one (Linux mprotect, macOS dual-map)
        self.strategy = parse_strategy(strategy or self.target.default_strategy)
        check_region(base, capacity, self.strategy)
        self.machine = machine or UnicornMachine(self.arch, self.host.page_size)
        self.mem = ExecMem(self.machine, self.strategy, self.host.page_size, base, capacity,
                           granule=self.machine.granule)
        self.host_base = host_base
        if machine is None:
            self._map_process_areas(stdout_sink)
        #: the live image (None until the first link)
        self.image: JitImage | None = None
        self.stack_top = STACK_TOP
        #: seconds each guest call may run (0/None: no limit); a call that
        #: runs out is reported as a "timeout" fault
        self.timeout: float | None = None
        #: called with each run-time J-stage as it starts (``--trace-link``)
        self.on_stage = None
        #: the J-stage guest code is running in (reported with faults)
        self.stage = "link"
        #: the call stopped at a breakpoint (start_call/resume), if any
        self._stopped_call: _StoppedCall | None = None
        #: how a stopped call ended while a debugger moved it on
        #: (stopped_ended): the next resume() returns it
        self._ended_call: CallOutcome | None = None

    def _map_process_areas(self, stdout_sink):
        m = self.machine
        m.map(STACK_TOP - STACK_SIZE, STACK_SIZE, RW)
        page = max(self.host.page_size, 0x10000)
        m.map(SENTINEL, page, RX)
        m.write_raw(SENTINEL, self.arch.trap * (64 // len(self.arch.trap)))
        self.hostproc = HostProcess(m, self.target, self.host_base, HEAP_BASE, HEAP_LIMIT,
                                    stdout_sink=stdout_sink)
        m.hostproc = self.hostproc

    @property
    def stage(self) -> str:
        return self._stage

    @stage.setter
    def stage(self, name: str) -> None:
        self._stage = name
        if self.on_stage is not None:
            self.on_stage(name)

    # -- linking -------------------------------------------------------------
    def _live_image(self) -> JitImage:
        if self.image is None:
            self.image = JitImage(self.target, self.mem, self.machine.hostproc.addrs)
        return self.image

    def link(self, objects: list[ObjectFile], defer: bool | frozenset[str] = False) -> LinkedImage:
        """Link ``objects`` into the image: the first link, or an append to
        the live image (one transaction, one new generation). Returns what
        this link placed; ``self.image`` is the whole image."""
        return self._live_image().append(objects, run_resolver=self._run_resolver, defer=defer)

    append = link

    def define(self, name: str, addr: int) -> None:
        """Publish an absolute symbol (spelled as in the symbol table)."""
        self._live_image().define(name, addr)

    @property
    def generation(self) -> int:
        """The image's generation: 0 after the first link, +1 per append
        (-1 before anything is linked)."""
        return -1 if self.image is None else self.image.generation

    def _run_resolver(self, addr: int, name: str = "?") -> int:
        self.stage = f"ifunc resolver {name}"
        value, fault = self.call(addr, [])
        if fault is not None or self.machine.hostproc.exit is not None:
            raise KitemuError(f"IFUNC resolver of {name!r} at {addr:#x} did not return: "
                              f"{fault.render() if fault else 'the program exited'}")
        return value

    # -- calling ---------------------------------------------------------------
    def call(self, addr: int, args: list[int | float] = (), sp: int | None = None,
             returns: str = "int", timeout: float | None = None):
        """Call guest function ``addr`` with integer/pointer (int) and double
        (float) arguments, placed per the target's calling convention
        (registers first, then 8-byte stack slots in order). Returns
        ``(return value, FaultReport | None)``; ``returns="double"`` reads
        the floating-point return register.

        A call that runs into a breakpoint cannot stop there: it ends with
        a SIGTRAP report (kind ``"breakpoint"``), as a process without a
        debugger would. :meth:`start_call` is the call that can stop and
        resume. While such a call is stopped, ``call`` still works (an
        IFUNC resolver run by an append, a function called from a
        debugger): it runs on the stack below the stopped frame and gives
        all registers back afterwards."""
        m = self.machine
        if self._stopped_call is None:
            return self._plain_call(addr, args, sp, returns, timeout)
        saved = m.save_context()
        stage = self._stage
        if sp is None:
            sp = m.reg(self.target.callconv.sp) - RED_ZONE
        try:
            return self._plain_call(addr, args, sp, returns, timeout)
        finally:
            m.restore_context(saved)
            self._stage = stage

    def _plain_call(self, addr: int, args, sp: int | None, returns: str, timeout: float | None):
        self._enter(args, sp)
        m = self.machine
        cc = self.target.callconv
        timeout = self.timeout if timeout is None else timeout
        hp = m.hostproc
        hp.fault = None
        fault = m.run(addr, SENTINEL, int(timeout * 1e6) if timeout else 0)
        if fault is None and hp.fault is not None:
            fault = hp.fault
        if fault is not None:
            return 0, describe_fault(fault, self)
        if returns == "double":
            return bits_to_double(m.reg(cc.fp_ret)), None
        return m.reg(cc.int_ret), None

    def _enter(self, args, sp: int | None) -> None:
        """Arguments, stack pointer and the sentinel return address of a
        call, per the target's calling convention."""
        cc = self.target.callconv
        m = self.machine
        sp = (sp if sp is not None else self.stack_top) & ~(cc.stack_align - 1)
        gp = fp = 0
        stack_words: list[int] = []
        for v in args:
            if isinstance(v, float):
                bits = double_to_bits(v)
                if fp < len(cc.fp_args):
                    m.set_reg(cc.fp_args[fp], bits)
                    fp += 1
                    continue
                stack_words.append(bits)
            else:
                v &= (1 << 64) - 1
                if gp < len(cc.int_args):
                    m.set_reg(cc.int_args[gp], v)
                    gp += 1
                    continue
                stack_words.append(v)
        if stack_words:
            sp -= 8 * len(stack_words)
            sp &= ~(cc.stack_align - 1)
            m.write_raw(sp, b"".join(w.to_bytes(8, "little") for w in stack_words))
        if cc.ra is None:
            sp -= 8                            # the return address pushed by `call`
            m.write_raw(sp, SENTINEL.to_bytes(8, "little"))
        else:
            m.set_reg(cc.ra, SENTINEL)
        m.set_reg(cc.sp, sp)
        if cc.vector_count_reg is not None:
            m.set_reg(cc.vector_count_reg, fp)

    # -- resumable calls -----------------------------------------------------------
    #
    # start_call() is call() that can stop at a breakpoint
    # (machine.add_breakpoint) and be continued with resume(): the return
    # address stays the sentinel, so whatever happens while the call is
    # stopped (memory and register writes, code patched through
    # self.mem.patch, appends, other calls), returning still completes the
    # original call. One call at a time can be stopped.

    @property
    def stopped(self) -> bool:
        """A call is stopped at a breakpoint (resume() or abandon() it)."""
        return self._stopped_call is not None

    @property
    def stopped_at(self) -> int | None:
        """The breakpoint address the stopped call is waiting at."""
        return None if self._stopped_call is None else self._stopped_call.pc

    def start_call(self, addr: int, args: list[int | float] = (), sp: int | None = None,
                   returns: str = "int", timeout: float | None = None) -> CallOutcome:
        """Call guest function ``addr`` as :meth:`call` does (same argument
        placement, ``returns``, ``timeout`` defaulting to ``self.timeout``),
        but stop at breakpoints instead of failing: see
        :class:`CallOutcome`. A breakpoint on ``addr`` itself hits before
        the first instruction. ``timeout`` bounds the guest time of the
        whole call, summed over its resumes (time spent stopped is not
        counted)."""
        if self._stopped_call is not None:
            raise KitemuError(f"a call is stopped at {self._stopped_call.pc:#x}: "
                              "resume() or abandon() it before starting another")
        self._ended_call = None
        if not hasattr(self.machine, "run_until"):
            raise KitemuError("resumable calls need the emulated backend")
        self._enter(args, sp)
        timeout = self.timeout if timeout is None else timeout
        return self._run_call(addr, returns, timeout or None, None)

    def resume(self) -> CallOutcome:
        """Continue the stopped call from the current PC. If the PC is still
        the breakpoint it stopped at, that instruction runs (the breakpoint
        hits again the next time execution arrives there); a PC set
        elsewhere runs from there, stopping at once if it is a breakpoint."""
        pending = self._stopped_call
        if pending is None:
            ended, self._ended_call = self._ended_call, None
            if ended is not None:
                return ended                  # a debugger step ended it (stopped_ended)
            raise KitemuError("no call is stopped: nothing to resume")
        self._stopped_call = None
        if self._stage != pending.stage:
            self.stage = pending.stage
        pc = self.machine.reg(self.target.callconv.pc)
        return self._run_call(pc, pending.returns, pending.budget,
                              pending.pc if pc == pending.pc else None)

    def abandon(self) -> bool:
        """Drop the stopped call: it will never return. The stack and
        registers are left as they are; the next call starts afresh.
        Returns whether a call was stopped (no call: nothing happens)."""
        dropped = self._stopped_call is not None
        self._stopped_call = None
        self._ended_call = None
        return dropped

    # -- debugger motions (kitemu.dbg.step) ---------------------------------------------

    def stopped_moved_to(self, pc: int) -> None:
        """The stopped call now waits at ``pc``: a debugger moved it on
        (executed an instruction, :mod:`kitemu.dbg.step`) or set its PC.
        Writes the PC register; :meth:`resume` passes over a breakpoint at
        ``pc`` once, as it does for the breakpoint the call stopped at."""
        if self._stopped_call is None:
            raise KitemuError("no call is stopped")
        self.machine.set_reg(self.target.callconv.pc, pc)
        self._stopped_call.pc = pc

    def stopped_ended(self, outcome: CallOutcome) -> None:
        """A debugger motion ran the stopped call to its end (a single step
        that returned to the sentinel, faulted or exited; ``outcome`` came
        from :meth:`resume`). The next :meth:`resume` returns ``outcome``
        instead of failing, so a ``run(on_breakpoint=)`` loop that resumes
        after its callback sees how the call ended; :meth:`start_call` and
        :meth:`abandon` forget it."""
        if self._stopped_call is not None:
            raise KitemuError(f"the call is still stopped at {self._stopped_call.pc:#x}")
        self._ended_call = outcome

    def _run_call(self, begin: int, returns: str, budget: float | None,
                  skip: int | None) -> CallOutcome:
        m = self.machine
        hp = m.hostproc
        hp.fault = None
        if budget is not None and budget <= 0:
            pc = m.reg(self.target.callconv.pc)
            fault = CpuFault("timeout", None, None, pc, "time limit reached")
            return CallOutcome("faulted", pc=pc, fault=describe_fault(fault, self))
        started = time.monotonic()
        stop = m.run_until(begin, SENTINEL, max(1, int(budget * 1e6)) if budget else 0,
                           skip_breakpoint=skip)
        if budget is not None:
            budget -= time.monotonic() - started
        if stop.reason == "breakpoint":
            self._stopped_call = _StoppedCall(returns, budget, stop.pc, self._stage)
            return CallOutcome("breakpoint", pc=stop.pc)
        fault = stop.fault
        if fault is None and hp.fault is not None:
            fault = hp.fault
        if fault is not None:
            return CallOutcome("faulted", pc=fault.pc, fault=describe_fault(fault, self))
        if stop.reason == "host-stop" and hp.exit is not None:
            return CallOutcome("exited", pc=stop.pc, exit=hp.exit)
        if stop.reason != "returned":
            return CallOutcome("interrupted", pc=stop.pc)
        cc = self.target.callconv
        if returns == "double":
            return CallOutcome("returned", bits_to_double(m.reg(cc.fp_ret)), stop.pc)
        return CallOutcome("returned", m.reg(cc.int_ret), stop.pc)

    def lookup(self, c_name: str) -> int | None:
        """Address of a global by its C name (``main``), or by its exact
        symbol-table spelling (``_main`` on Mach-O)."""
        if self.image is None:
            return None
        g = self.image.globals
        return g.get(self.target.symbol(c_name), g.get(c_name))

    def lay_out_argv(self, argv: list[bytes]) -> tuple[int, int]:
        """Copy argv strings and the argv array to the top of the stack;
        returns (argv address, new stack top)."""
        m = self.machine
        top = STACK_TOP
        ptrs = []
        for s in argv:
            top -= len(s) + 1
            m.write_raw(top, s + b"\0")
            ptrs.append(top)
        top &= ~15
        table = b"".join(p.to_bytes(8, "little") for p in ptrs) + bytes(8)
        top -= len(table)
        top &= ~15
        m.write_raw(top, table)
        return top, top - 64

    # -- running a program --------------------------------------------------------
    def run(self, entry: str = "main", args: list[str] | None = None,
            program_name: str = "a.out", timeout: float | None = None,
            on_breakpoint=None) -> RunResult:
        """Run a linked program: constructors, ``entry(argc, argv)``,
        destructors. ``timeout`` (seconds) bounds each of those calls.
        ``on_breakpoint(proc, pc)``, if given, is called each time the
        program stops at a breakpoint (``machine.add_breakpoint``); the
        program continues when it returns (it may patch, append, reload,
        move breakpoints meanwhile). Without it a breakpoint hit ends the
        run with SIGTRAP, as in a process without a debugger."""
        if timeout is not None:
            self.timeout = timeout
        if self.image is None or self.image.generation < 0:
            raise KitemuError("nothing is linked")
        addr = self.lookup(entry)
        if addr is None:
            raise KitemuError(f"entry symbol {entry!r} is not defined by the inputs")
        hp = self.machine.hostproc
        hp.program_name = program_name
        argv = [program_name.encode()] + [a.encode() for a in (args or [])]
        argv_addr, self.stack_top = self.lay_out_argv(argv)

        def finish(code, fault=None, signal=None, message=""):
            return RunResult(bytes(hp.stdout), bytes(hp.stderr), code, fault, signal, message,
                             {"host_calls": hp.calls})

        def call(fn, call_args):
            if on_breakpoint is None:
                return self.call(fn, call_args)
            outcome = self.start_call(fn, call_args)
            while outcome.stopped:
                on_breakpoint(self, outcome.pc)
                outcome = self.resume()
            if outcome.faulted:
                return 0, outcome.fault
            return (outcome.value if outcome.returned else 0), None

        for kind, table in (("preinit_array", self.image.preinit_array),
                            ("init_array", self.image.init_array)):
            for i, fn in enumerate(table):
                if fn in (0, (1 << 64) - 1):
                    continue
                self.stage = f"{kind}[{i}]"
                _, fault = call(fn, [len(argv), argv_addr])
                if fault or hp.exit:
                    return self._ended(finish, fault)
        self.stage = f"entry {entry}"
        ret, fault = call(addr, [len(argv), argv_addr])
        if fault or hp.exit and hp.exit.signal:
            return self._ended(finish, fault)
        status = hp.exit.status if hp.exit else ret & 0xFF
        # exit() and returning from main both run atexit handlers, then the
        # destructors
        hp.exit = None
        while hp.atexit:
            fn, arg = hp.atexit.pop()
            self.stage = "atexit handler"
            _, fault = call(fn, [arg])
            if fault or hp.exit:
                return self._ended(finish, fault)
        for i, fn in reversed(list(enumerate(self.image.fini_array))):
            if fn in (0, (1 << 64) - 1):
                continue
            self.stage = f"fini_array[{i}]"
            _, fault = call(fn, [])
            if fault or hp.exit:
                return self._ended(finish, fault)
        return finish(status)

    def _ended(self, finish, fault):
        hp = self.machine.hostproc
        if fault is not None:
            return finish(fault.exit_code, fault, fault.signal, fault.render())
        e = hp.exit
        if e.signal:
            return finish(e.status, None, e.signal, e.message)
        return finish(e.status)

    def free(self) -> None:
        self.mem.free()
        self.image = None


def run_files(paths: list[str], target: str | None = None, entry: str = "main",
              args: list[str] | None = None, strategy: str | None = None,
              page_size: int | None = None, base: int = DEFAULT_BASE,
              stdout_sink=None, timeout: float | None = None, trace=None) -> RunResult:
    """Load (objects, archives, C sources), link and run in the emulator.
    ``trace(line)``, if given, receives the link's J-stages once linked and
    each run-time stage as it starts. (The driver's ``link_and_run`` also
    offers the native and AOT backends.)"""
    from .driver import gather, link_and_run
    return link_and_run(gather(paths, target=target), entry=entry, args=args,
                        strategy=strategy, page_size=page_size, base=base,
                        stdout_sink=stdout_sink, timeout=timeout, trace=trace)
