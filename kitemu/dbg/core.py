"""The debugger core over a JIT session (roadmap §1.6, §3.2).

A :class:`Debugger` drives a :class:`~kitemu.session.Session`'s program
through ``JitProcess.run(on_breakpoint=)``: every stop - a breakpoint, a
finished step, a fault, the exit - becomes a :class:`StopEvent` handed to
``on_stop`` (the REPL, or a test), which inspects the stopped program and
then either returns (continue) or asks for a motion (``stepi``, ``step``,
``next``, ``finish``). Motions run while the program stays stopped where
they can (one instruction at a time, with :mod:`kitemu.dbg.step`) and let
the program run to a temporary breakpoint where they must (over a call,
out of a function).

Breakpoints follow the roadmap:

* ``*0x1234`` stays at that address forever, also in an old generation;
* ``foo`` binds to the active body of ``foo`` (or its address when it is
  not reloadable) and is rebound after a reload;
* ``file.c:42`` is resolved from the DWARF line tables of the inputs that
  are live (code in replaced bodies does not count), the latest generation
  first; when the image's generation changes it is resolved again, and if
  that fails it keeps its old addresses and is marked *stale*.

Hooks are exact-address breakpoints only; there is never a per-instruction
hook. A fault ends the program's current call: registers and memory can be
inspected, but it cannot be continued (as after a fatal signal).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import KitemuError
from .adapter import HostEvent, make_adapter
from .registers import Registers


class DebuggerError(KitemuError):
    """A debugger command that cannot be carried out (bad spec, no program)."""


@dataclass
class Breakpoint:
    number: int
    spec: str
    kind: str                       # address | function | line
    addrs: list[int]
    generation: int                 # the image generation it was resolved against
    hits: int = 0
    stale: bool = False
    enabled: bool = True
    temporary: bool = False

    def describe(self) -> str:
        where = ", ".join(f"{a:#x}" for a in self.addrs) or "<nowhere>"
        flags = " [stale]" if self.stale else ""
        return (f"{self.number:<4} {self.kind:<9} {'y' if self.enabled else 'n'}  {where:<22} "
                f"gen {self.generation:<3} hits {self.hits:<4} {self.spec}{flags}")


@dataclass
class StopEvent:
    kind: str                        # breakpoint | step | fault | exit
    pc: int | None = None
    breakpoints: list[int] = field(default_factory=list)
    host: HostEvent | None = None
    fault: object | None = None      # FaultReport
    exit_code: int | None = None
    where: object | None = None      # AddrInfo of pc

    def describe(self) -> str:
        if self.kind == "exit":
            return f"[program exited with code {self.exit_code}]"
        loc = _location(self.where, self.pc)
        if self.kind == "fault":
            return f"{self.host.text}\n{loc}"
        if self.kind == "breakpoint":
            nums = ", ".join(str(n) for n in self.breakpoints)
            return f"Breakpoint {nums}, {loc}"
        return loc


def display_path(path: str) -> str:
    """A source path as the debugger shows it: relative to the current
    directory when it lies below it (transcripts do not depend on where
    the checkout is)."""
    import os
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel


def _location(info, pc) -> str:
    if info is None or info.symbol is None:
        return f"{pc:#x} in ??"
    off = f"+{info.offset:#x}" if info.offset else ""
    src = f" at {display_path(info.file)}:{info.line}" if info.file else ""
    gen = f" [gen {info.generation}]" if info.generation is not None else ""
    return f"{pc:#x} in {info.symbol}{off}{src}{gen}"


class _Resume(Exception):
    """Raised inside a stop to let the program run on."""


class Debugger:
    def __init__(self, session, adapter: str = "posix"):
        self.session = session
        self.proc = session.proc
        self.adapter = make_adapter(adapter)
        self.regs = Registers(self.proc.machine, self.proc.arch.name)
        self.breakpoints: dict[int, Breakpoint] = {}
        self._next_number = 1
        self._armed: dict[int, int] = {}          # address -> refcount of breakpoints on it
        self._bound_generation = session.generation
        self.on_stop = None
        self.stopped: StopEvent | None = None
        self._motion = None                       # a step/next/finish waiting for a temp bp
        self._temp: set[int] = set()              # addresses armed for motions
        self._stepper = None
        self.running = False

    # -- locations ----------------------------------------------------------------------
    def where(self, pc: int):
        """addr_to_sym of ``pc``, with symbols as C names (no Mach-O ``_``)."""
        import dataclasses
        info = self.session.addr_to_sym(pc)
        prefix = self.session.target.symbol("")
        if prefix and info.symbol and info.symbol.startswith(prefix):
            info = dataclasses.replace(info, symbol=info.symbol[len(prefix):])
        return info

    def _line_of(self, pc: int):
        info = self.where(pc)
        return (info.file, info.line) if info.file else None

    # -- breakpoints -----------------------------------------------------------------------
    def break_at(self, spec: str, temporary: bool = False) -> Breakpoint:
        kind, addrs = self._resolve(spec)
        bp = Breakpoint(self._next_number, spec, kind, addrs, self.session.generation,
                        temporary=temporary)
        self._next_number += 1
        self.breakpoints[bp.number] = bp
        for a in addrs:
            self._arm(a)
        return bp

    def delete(self, number: int | None = None) -> None:
        numbers = list(self.breakpoints) if number is None else [number]
        for n in numbers:
            bp = self.breakpoints.pop(n, None)
            if bp is None:
                raise DebuggerError(f"no breakpoint number {n}")
            for a in bp.addrs:
                self._disarm(a)

    def info_breakpoints(self) -> list[str]:
        self._rebind()
        head = "Num  Type      En Address                Gen     Hits      What"
        return [head] + [bp.describe() for bp in self.breakpoints.values() if not bp.temporary]

    def _arm(self, addr: int) -> None:
        n = self._armed.get(addr, 0)
        if n == 0:
            self.proc.machine.add_breakpoint(addr)
        self._armed[addr] = n + 1

    def _disarm(self, addr: int) -> None:
        n = self._armed.get(addr, 0)
        if n <= 1:
            self._armed.pop(addr, None)
            if n == 1:
                self.proc.machine.remove_breakpoint(addr)
        else:
            self._armed[addr] = n - 1

    def _resolve(self, spec: str) -> tuple[str, list[int]]:
        s = self.session
        spec = spec.strip()
        if spec.startswith("*"):
            try:
                return "address", [int(spec[1:], 0)]
            except ValueError:
                raise DebuggerError(f"bad address in breakpoint {spec!r}") from None
        if ":" in spec and "::" not in spec:
            file, _, line = spec.rpartition(":")
            try:
                line_no = int(line)
            except ValueError:
                raise DebuggerError(f"bad line number in breakpoint {spec!r}") from None
            addrs = self._line_addresses(file, line_no)
            if not addrs:
                raise DebuggerError(f"no code at {file}:{line_no} in the live image")
            return "line", addrs
        from ..reload.function import ReloadError
        try:
            return "function", [s.reloadable(spec).active.addr]
        except ReloadError:
            pass
        addr = s.lookup(spec)
        if addr is None:
            raise DebuggerError(f"function {spec!r} not defined")
        return "function", [addr]

    def _line_addresses(self, file: str, line: int) -> list[int]:
        """Addresses of ``file:line`` in live code: the latest generation's
        inputs first; addresses inside replaced bodies do not count."""
        from ..inspect import inspector
        from ..loader.dwarf import DebugInfo
        image = self.session.image
        ins = inspector(image)
        dead = [b for rf in image.reloadables.values() for b in rf.bodies[:-1]]
        by_gen: dict[int, list[int]] = {}
        for oi in range(len(image.inputs)):
            info = ins._debug.get(oi)
            if info is None:
                obj = image.inputs[oi]
                info = DebugInfo.from_object(obj, lambda si, oi=oi: image.section_addrs.get((oi, si)))
                ins._debug[oi] = info if info.available else False
            if not info:
                continue
            addrs = [a for a in info.line_addresses(file, line) if not any(a in b for b in dead)]
            if addrs:
                by_gen.setdefault(image.input_generation[oi], []).extend(addrs)
        if not by_gen:
            return []
        return sorted(set(by_gen[max(by_gen)]))

    def _rebind(self) -> None:
        """After a reload (a new generation): function breakpoints move to
        the active body, line breakpoints are resolved again (or marked
        stale), address breakpoints stay."""
        gen = self.session.generation
        if gen == self._bound_generation:
            return
        self._bound_generation = gen
        for bp in self.breakpoints.values():
            if bp.kind == "address" or bp.temporary:
                continue
            try:
                _, addrs = self._resolve(bp.spec)
            except DebuggerError:
                bp.stale = True
                continue
            bp.stale = False
            if addrs != bp.addrs:
                for a in bp.addrs:
                    self._disarm(a)
                for a in addrs:
                    self._arm(a)
                bp.addrs = addrs
            bp.generation = gen

    # -- running -----------------------------------------------------------------------------
    def run(self, entry: str = "main", args=(), on_stop=None) -> StopEvent:
        """Run the program; ``on_stop(event)`` is called at every stop while
        the program is stopped. Returns the final event (exit or fault)."""
        self.on_stop = on_stop or self.on_stop
        if self.running:
            raise DebuggerError("the program is already running")
        self.running = True
        try:
            result = self.proc.run(entry, list(args), on_breakpoint=self._on_breakpoint)
        finally:
            self.running = False
            self._motion = None
            for addr in list(self._temp):          # a motion the exit cut short
                self._disarm_temp(addr)
            for bp in [b for b in self.breakpoints.values() if b.temporary]:
                self.delete(bp.number)
        if result.fault is not None:
            event = StopEvent("fault", result.fault.pc, host=self.adapter.fault(result.fault),
                              fault=result.fault, where=self.where(result.fault.pc),
                              exit_code=result.exit_code)
        else:
            event = StopEvent("exit", exit_code=result.exit_code)
        self.stopped = event
        if self.on_stop is not None:
            self.on_stop(event)
        self.stopped = None
        return event

    def _on_breakpoint(self, proc, pc: int) -> None:
        self._rebind()
        hit = [bp for bp in self.breakpoints.values() if bp.enabled and pc in bp.addrs]
        for bp in hit:
            bp.hits += 1
        user = [bp.number for bp in hit if not bp.temporary]
        if self._motion is not None:
            motion = self._motion
            self.stopped = StopEvent("step", pc, where=self.where(pc))
            try:
                event = motion(pc, user)
            except _Resume:
                return                             # the motion runs on
            finally:
                self.stopped = None
            if event is None:
                return
        elif not user:
            return                                 # an address only a motion wanted
        else:
            event = StopEvent("breakpoint", pc, user, self.adapter.breakpoint(pc),
                              where=self.where(pc))
        self._deliver(event)

    def _deliver(self, event: StopEvent) -> None:
        """Hand a stop to on_stop until it lets the program continue."""
        while True:
            self.stopped = event
            try:
                if self.on_stop is not None:
                    self.on_stop(event)
                return                             # continue
            except _Resume:
                return
            finally:
                self.stopped = None

    def _require_stopped(self) -> StopEvent:
        if self.stopped is None or self.stopped.kind in ("exit",):
            raise DebuggerError("the program is not stopped")
        if self.stopped.kind == "fault":
            raise DebuggerError("the program was killed by a fault; it cannot continue")
        return self.stopped

    # -- motions (called from on_stop) ----------------------------------------------------
    def stepi(self, displaced: bool = True) -> StopEvent:
        """Execute one instruction; the program stays stopped. If that
        instruction ends the call (returns to its caller outside the
        image), the program runs on."""
        self._require_stopped()
        from .step import Stepper
        if self._stepper is None:
            self._stepper = Stepper(self.proc)
        result = self._stepper.step(displaced=displaced)
        status = getattr(result, "status", "stopped")
        if status not in ("stopped", "step", "breakpoint"):
            raise _Resume()
        pc = self._pc()
        event = StopEvent("step", pc, host=self.adapter.step(pc), where=self.where(pc))
        self.stopped = event
        return event

    def step(self) -> StopEvent:
        """One source line, into calls that have line info."""
        return self._line_loop(self._line_of(self._require_stopped().pc), into=True)

    def next(self) -> StopEvent:
        """One source line, over calls."""
        return self._line_loop(self._line_of(self._require_stopped().pc), into=False)

    def _line_loop(self, origin, into: bool, limit: int = 200000) -> StopEvent:
        """Step instructions until the line changes. A call is stepped over
        (run to its return address) unless ``into`` and it reaches code
        with line info; stable entries, stubs and islands are stepped
        through. Raises _Resume when the program must run to a temporary
        breakpoint; the stop then comes through on_stop."""
        pending_ret = None
        for _ in range(limit):
            pc0 = self._pc()
            size = self._insn_size(pc0)
            event = self.stepi()
            pc = event.pc
            user = [bp for bp in self.breakpoints.values()
                    if bp.enabled and not bp.temporary and pc in bp.addrs]
            if user:
                # stepped onto a breakpoint (e.g. the first instruction of a
                # call being stepped over): it stops the line step, as a hit
                for bp in user:
                    bp.hits += 1
                event = StopEvent("breakpoint", pc, [bp.number for bp in user],
                                  self.adapter.breakpoint(pc), where=self.where(pc))
                self.stopped = event
                return event
            if size and self._return_address(at_entry=True) == pc0 + size and pc != pc0 + size:
                pending_ret = pc0 + size           # that instruction was a call
            if pending_ret is not None:
                if self._in_trampoline(pc):
                    continue
                line = self._line_of(pc)
                if into and line is not None and line[1] != 0:
                    return event
                return self._run_to(pending_ret, origin, into)
            line = self._line_of(pc)
            if line is not None and line[1] == 0:
                continue                           # line 0: code of no line (-O2), step on
            if line is not None and line != origin:
                return event
            if line is None and origin is not None and not self._in_trampoline(pc):
                return event                       # returned into code without line info
        raise DebuggerError("step did not reach another line")

    def _run_to(self, ret: int, origin, into: bool):
        """Let the program run to ``ret`` (the stepped-over call's return)
        in this frame, then keep stepping the line."""
        sp = self._sp()

        def motion(pc, user):
            if user and not (pc == ret and self._sp() >= sp):
                self._disarm_temp(ret)
                return StopEvent("breakpoint", pc, user, self.adapter.breakpoint(pc),
                                 where=self.where(pc))
            if pc == ret and self._sp() >= sp:
                self._disarm_temp(ret)
                line = self._line_of(pc)
                if line is not None and line[1] != 0 and line != origin:
                    return StopEvent("step", pc, host=self.adapter.step(pc), where=self.where(pc))
                return self._line_loop(origin, into)
            return None                            # a deeper recursion reached ret: run on

        self._start_motion(ret, motion)
        raise _Resume()

    def finish(self) -> None:
        """Run until the current function returns; the stop comes through
        on_stop."""
        self._require_stopped()
        ret = self._return_address()
        sp = self._sp()
        if self.proc.mem.chunk_at(ret) is None:
            raise _Resume()       # the caller is outside the image (main's): run on

        def motion(pc, user):
            # our own return: the stack is back at (x86-64: above) where it
            # was; deeper recursive frames returning to ret are below it
            if pc == ret and self._sp() >= sp:
                self._disarm_temp(ret)
                return StopEvent("step", pc, host=self.adapter.step(pc), where=self.where(pc))
            if user:
                self._disarm_temp(ret)
                return StopEvent("breakpoint", pc, user, self.adapter.breakpoint(pc),
                                 where=self.where(pc))
            return None

        self._start_motion(ret, motion)
        raise _Resume()

    def _start_motion(self, addr: int, motion) -> None:
        self._arm(addr)
        self._temp.add(addr)
        self._motion = motion

    def _disarm_temp(self, addr: int) -> None:
        if addr in self._temp:
            self._temp.discard(addr)
            self._disarm(addr)
        self._motion = None

    def _insn_size(self, pc: int) -> int:
        import capstone
        arch = self.proc.arch
        md = getattr(self, "_md", None)
        if md is None:
            md = self._md = capstone.Cs(arch.cs_arch, arch.cs_mode)
        try:
            code = self.session.read(pc, 16)
        except KitemuError:
            return 0
        for insn in md.disasm(code, pc, count=1):
            return insn.size
        return 0

    # -- frame helpers --------------------------------------------------------------------
    def _pc(self) -> int:
        return self.regs["rip" if self.proc.arch.name == "x64" else "pc"]

    def _sp(self) -> int:
        return self.regs["rsp" if self.proc.arch.name == "x64" else "sp"]

    def _return_address(self, at_entry: bool = False) -> int:
        """The current function's return address: from the unwinder, or at
        a function's first instruction from the link register / [sp]."""
        if not at_entry:
            try:
                from .unwind import backtrace
                frames = backtrace(self.proc)
                if len(frames) > 1:
                    return frames[1].pc
            except (ImportError, KitemuError):
                pass
        arch = self.proc.arch.name
        if arch == "x64":
            return int.from_bytes(self.session.read(self._sp(), 8), "little")
        return self.regs["x30" if arch == "aarch64" else "ra"]

    def _in_trampoline(self, pc: int) -> bool:
        image = self.session.image
        if any(rf.entry <= pc < rf.entry + self.proc.arch.indirect_jump_size
               for rf in image.reloadables.values()):
            return True
        info = self.where(pc)
        return info.symbol is not None and (info.symbol.endswith(("@stub", "@pending"))
                                           or "@island" in info.symbol)

    def continue_(self) -> None:
        """Let the program run on (from on_stop)."""
        self._require_stopped()
        raise _Resume()

    # -- state ---------------------------------------------------------------------------------
    def read(self, addr: int, size: int) -> bytes:
        return self.session.read(addr, size)

    def backtrace(self):
        from .unwind import backtrace
        return backtrace(self.proc)

    def reload(self, name: str, replacement, unchecked: bool = False) -> int:
        gen = self.session.reload_function(name, replacement, unchecked=unchecked)
        self._rebind()
        return gen

    def context(self) -> dict[str, int]:
        from .adapter import read_context
        return read_context(self.adapter, self.regs)

    def set_context(self, context: dict[str, int]) -> None:
        from .adapter import write_context
        self._require_stopped()
        write_context(self.adapter, self.regs, context)


__all__ = ["Breakpoint", "Debugger", "DebuggerError", "StopEvent"]
