"""``kitemu dbg``: a gdb-like command line over :class:`~kitemu.dbg.core.Debugger`.

Commands: run/r [ARGS], break/b SPEC (``*ADDR``, ``FUNC``, ``FILE:LINE``),
tbreak SPEC, delete/d [N], info breakpoints|registers [REG]|reloadable,
continue/c, step/s, next/n, stepi/si, finish, backtrace/bt, x/NFU ADDR,
print/p EXPR, set $REG|*ADDR = EXPR, disassemble [ADDR|FUNC] [N],
reload FUNC FILE [unchecked],
context, help, quit/q. Interactive sessions get readline history and
completion of commands and symbol names; ``-x SCRIPT`` runs a command file
first and ``--batch`` exits after it. Every bad command prints one line
saying why, never a traceback.
"""

from __future__ import annotations

import re
import shlex
import sys

from ..errors import KitemuError
from .core import Debugger, DebuggerError, StopEvent, _Resume, display_path

COMMANDS = ["run", "break", "tbreak", "delete", "info", "continue", "step", "next", "stepi",
            "finish", "backtrace", "x", "print", "set", "disassemble", "reload", "context", "help",
            "quit"]
ALIASES = {"r": "run", "b": "break", "d": "delete", "c": "continue", "s": "step", "n": "next",
           "si": "stepi", "bt": "backtrace", "where": "backtrace", "p": "print",
           "disas": "disassemble", "q": "quit", "i": "info", "cont": "continue"}
#: commands that let the program run on, and so end a stop's command loop
RESUMING = {"continue", "step", "next", "finish", "stepi"}


class _Quit(Exception):
    pass


class Repl:
    def __init__(self, debugger: Debugger, out=None, echo: bool = False):
        self.dbg = debugger
        self.out = out or sys.stdout
        self.echo = echo
        self.lines: list[str] = []          # script lines still to run
        self.interactive = False
        self.entry = "main"
        self.args: list[str] = []

    # -- input ---------------------------------------------------------------------
    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def _read(self) -> str | None:
        if self.lines:
            line = self.lines.pop(0)
            if self.echo:
                self.say(f"(kitemu) {line}")
            return line
        if not self.interactive:
            return None
        try:
            return input("(kitemu) ")
        except EOFError:
            return None

    def enable_readline(self) -> None:
        try:
            import readline
        except ImportError:                     # not on every platform
            return
        names = sorted(self.dbg.session.image.globals)

        def complete(text, state):
            buf = readline.get_line_buffer()
            pool = COMMANDS if " " not in buf.lstrip() else names
            hits = [c for c in pool if c.startswith(text)]
            return hits[state] if state < len(hits) else None

        readline.set_completer(complete)
        readline.parse_and_bind("tab: complete")

    # -- the loops --------------------------------------------------------------------
    def loop(self) -> int:
        """The top level: commands until quit or the end of input."""
        while True:
            line = self._read()
            if line is None:
                return 0
            try:
                self.execute(line, stopped=False)
            except _Quit:
                self.dbg.proc.abandon()
                return 0

    def on_stop(self, event: StopEvent) -> None:
        """A stop: print it, then commands until one lets the program run."""
        self.say(event.describe())
        if event.kind in ("exit", "fault"):
            return
        while True:
            line = self._read()
            if line is None:
                raise _Quit()
            resumed = self.execute(line, stopped=True)
            if resumed is not None:
                self.say(resumed.describe())

    # -- commands ------------------------------------------------------------------------
    def execute(self, line: str, stopped: bool) -> StopEvent | None:
        """Run one command. Returns a stop event a synchronous motion
        produced (the program is still stopped); raises _Resume (through
        the debugger) when the program runs on."""
        line = line.strip()
        if not line or line.startswith("#"):
            return None
        m = re.match(r"(\w+)(/\S*)?\s*(.*)$", line)
        if m is None:
            self.say(f"Undefined command: {line!r}. Try \"help\".")
            return None
        word, fmt, rest = m.group(1), m.group(2) or "", m.group(3)
        cmd = ALIASES.get(word, word)
        if cmd not in COMMANDS:
            self.say(f"Undefined command: {word!r}. Try \"help\".")
            return None
        if cmd == "quit":
            raise _Quit()
        try:
            return getattr(self, f"cmd_{cmd}")(rest, fmt, stopped)
        except _Resume:
            raise
        except (DebuggerError, KitemuError, ValueError, KeyError) as e:
            msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
            self.say(f"error: {msg}")
            return None

    def _need_stopped(self, stopped: bool, what: str) -> None:
        if not stopped:
            raise DebuggerError(f"{what}: the program is not being run")

    def cmd_help(self, rest, fmt, stopped):
        self.say("commands: " + ", ".join(COMMANDS))

    def cmd_run(self, rest, fmt, stopped):
        if stopped:
            raise DebuggerError("the program is already running")
        if rest:
            self.args = shlex.split(rest)
        self.dbg.run(self.entry, self.args, on_stop=self.on_stop)
        return None

    def cmd_break(self, rest, fmt, stopped, temporary=False):
        if not rest:
            raise DebuggerError("break: give *ADDR, FUNC or FILE:LINE")
        bp = self.dbg.break_at(rest, temporary=temporary)
        where = ", ".join(f"{a:#x}" for a in bp.addrs)
        info = self.dbg.where(bp.addrs[0])
        src = f": file {display_path(info.file)}, line {info.line}" if info.file else ""
        self.say(f"Breakpoint {bp.number} at {where}{src}")

    def cmd_tbreak(self, rest, fmt, stopped):
        return self.cmd_break(rest, fmt, stopped, temporary=True)

    def cmd_delete(self, rest, fmt, stopped):
        self.dbg.delete(int(rest) if rest else None)

    def cmd_info(self, rest, fmt, stopped):
        what, _, arg = rest.partition(" ")
        if what in ("breakpoints", "b", "break"):
            for line in self.dbg.info_breakpoints():
                self.say(line)
        elif what in ("registers", "r", "reg"):
            regs = self.dbg.regs
            names = [arg] if arg else regs.names()
            for n in names:
                self.say(f"{regs.canonical(n) or n:<8} {regs[n]:#018x}")
        elif what == "reloadable":
            for rf in self.dbg.session.image.reloadables.values():
                bodies = ", ".join(f"{b.name}@{b.addr:#x} gen {b.generation} {b.state}"
                                   for b in rf.bodies)
                self.say(f"{rf.identity}: entry {rf.entry:#x} slot {rf.slot:#x}: {bodies}")
        else:
            raise DebuggerError(f"info {what}: expected breakpoints, registers or reloadable")

    def cmd_continue(self, rest, fmt, stopped):
        self._need_stopped(stopped, "continue")
        self.dbg.continue_()

    def cmd_stepi(self, rest, fmt, stopped):
        self._need_stopped(stopped, "stepi")
        event = None
        for _ in range(int(rest) if rest else 1):
            event = self.dbg.stepi()
        return event

    def cmd_step(self, rest, fmt, stopped):
        self._need_stopped(stopped, "step")
        return self.dbg.step()

    def cmd_next(self, rest, fmt, stopped):
        self._need_stopped(stopped, "next")
        return self.dbg.next()

    def cmd_finish(self, rest, fmt, stopped):
        self._need_stopped(stopped, "finish")
        self.dbg.finish()

    def cmd_backtrace(self, rest, fmt, stopped):
        frames = self.dbg.backtrace()
        for f in frames:
            src = f" at {display_path(f.file)}:{f.line}" if getattr(f, "file", None) else ""
            gen = f" [gen {f.generation}]" if getattr(f, "generation", None) is not None else ""
            self.say(f"#{f.index:<2} {f.pc:#x} in {f.function or '??'}{src}{gen}")

    def _value(self, expr: str) -> int:
        """Registers ($pc, $x0), symbols, numbers, joined by + and -."""
        total = 0
        for sign, term in re.findall(r"([+-]?)\s*([^+\-\s]+)", expr.strip()):
            if term.startswith("$"):
                v = self.dbg.regs[term]
            elif re.fullmatch(r"(0x[0-9a-fA-F]+|\d+)", term):
                v = int(term, 0)
            else:
                v = self.dbg.session.lookup(term)
                if v is None:
                    raise DebuggerError(f"no symbol {term!r} in the image")
            total += -v if sign == "-" else v
        return total & ((1 << 64) - 1)

    def cmd_print(self, rest, fmt, stopped):
        if not rest:
            raise DebuggerError("print: give an expression")
        v = self._value(rest)
        info = self.dbg.where(v)
        sym = f" <{info.symbol}{f'+{info.offset:#x}' if info.offset else ''}>" if info.symbol else ""
        self.say(f"{rest} = {v:#x} ({v}){sym}")

    def cmd_set(self, rest, fmt, stopped):
        """``set $REG = EXPR`` or ``set *ADDR = EXPR`` (an 8-byte store; in
        the image it is a W^X patch)."""
        target, sep, expr = rest.partition("=")
        target = target.strip()
        if not sep or not target or not expr.strip():
            raise DebuggerError("set: expected $REG = EXPR or *ADDR = EXPR")
        value = self._value(expr)
        if target.startswith("$"):
            self._need_stopped(stopped, "set")
            self.dbg.regs[target] = value
        elif target.startswith("*"):
            self.dbg.session.write(self._value(target[1:]), value.to_bytes(8, "little"))
        else:
            raise DebuggerError("set: expected $REG = EXPR or *ADDR = EXPR")

    def cmd_x(self, rest, fmt, stopped):
        m = re.fullmatch(r"/(\d*)([xdsi]?)([bhwg]?)", fmt or "/")
        if m is None:
            raise DebuggerError(f"x{fmt}: expected x/NFU with F in x,d,s,i and U in b,h,w,g")
        count = int(m.group(1) or 1)
        form = m.group(2) or "x"
        unit = {"b": 1, "h": 2, "w": 4, "g": 8}[m.group(3) or "w"]
        addr = self._value(rest)
        if form == "i":
            return self._disas(addr, count)
        if form == "s":
            text = self.dbg.read(addr, 256).split(b"\0")[0].decode(errors="replace")
            self.say(f"{addr:#x}: {text!r}")
            return None
        raw = self.dbg.read(addr, count * unit)
        words = [int.from_bytes(raw[i:i + unit], "little") for i in range(0, len(raw), unit)]
        for row in range(0, len(words), 4):
            cells = words[row:row + 4]
            text = " ".join(f"{w:#0{2 + 2 * unit}x}" if form == "x" else str(w) for w in cells)
            self.say(f"{addr + row * unit:#x}: {text}")

    def cmd_disassemble(self, rest, fmt, stopped):
        parts = rest.split()
        if parts:
            addr = self._value(parts[0])
        else:
            self._need_stopped(stopped, "disassemble")
            addr = self.dbg._pc()
        count = int(parts[1]) if len(parts) > 1 else 8
        self._disas(addr, count)

    def _disas(self, addr: int, count: int) -> None:
        import capstone
        arch = self.dbg.proc.arch
        md = capstone.Cs(arch.cs_arch, arch.cs_mode)
        pc = self.dbg._pc() if self.dbg.stopped is not None else None
        code = self.dbg.read(addr, count * 16)
        for n, insn in enumerate(md.disasm(code, addr)):
            if n >= count:
                break
            mark = "=>" if insn.address == pc else "  "
            info = self.dbg.where(insn.address)
            sym = f"<{info.symbol}+{info.offset:#x}>" if info.symbol else ""
            self.say(f"{mark} {insn.address:#x} {sym:<24} {insn.mnemonic} {insn.op_str}".rstrip())

    def cmd_reload(self, rest, fmt, stopped):
        parts = shlex.split(rest)
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != "unchecked"):
            raise DebuggerError("reload: expected FUNC FILE [unchecked]")
        gen = self.dbg.reload(parts[0], parts[1], unchecked=len(parts) == 3)
        rf = self.dbg.session.reloadable(parts[0])
        self.say(f"reloaded {parts[0]}: generation {gen}, {rf.active.name} at {rf.active.addr:#x}")

    def cmd_context(self, rest, fmt, stopped):
        self._need_stopped(stopped, "context")
        ctx = self.dbg.context()
        self.say(" ".join(f"{k}={v:#x}" for k, v in ctx.items()))
