"""``kitemu dbg [--target T] INPUT... [-x SCRIPT] [--batch]``: link the
inputs in a session (C compiled with -g, -O0 unless -O is given; stable
entries for every global function, so ``reload`` works) and start the
command line of :mod:`kitemu.dbg.repl`."""

from __future__ import annotations

import sys

from ..targets import TARGETS


def _int(text: str) -> int:
    return int(text, 0)


def add_arguments(p) -> None:
    p.add_argument("inputs", nargs="+", metavar="INPUT", help=".o, .a or .c inputs")
    p.add_argument("--target", "-t", choices=sorted(TARGETS),
                   help="target (default: from the first binary input, else elf-x64)")
    p.add_argument("-e", "--entry", default="main", help="entry symbol (default main)")
    p.add_argument("-x", dest="script", metavar="SCRIPT", help="run the commands in SCRIPT first")
    p.add_argument("--batch", action="store_true", help="exit after the script")
    p.add_argument("--base", type=_int, default=None, help="image base (fixed addresses)")
    p.add_argument("--backend", default="emulated", choices=["emulated", "native"],
                   help="emulated (unicorn, default) or native (x86-64 Linux hosts, elf-x64; "
                   "steps in place)")
    p.add_argument("--adapter", default="posix", choices=["posix", "windows"],
                   help="host adapter: how stops are delivered (default posix)")
    p.add_argument("--indirect", default="exported-funcs", choices=["exported-funcs", "none"],
                   help="indirection mode (default exported-funcs: every function reloadable)")
    p.add_argument("-O", dest="opt", default="-O0", help="optimisation for C inputs (default -O0)")
    p.add_argument("--cflags", action="append", default=[], metavar="FLAG",
                   help="extra clang flag for C inputs (repeatable)")


def main(ns) -> int:
    from ..driver import gather
    from ..errors import ConfigError
    from ..runtime import DEFAULT_BASE
    from ..session import Session
    from .core import Debugger
    from .repl import Repl

    binaries = [p for p in ns.inputs if not p.endswith(".c")]
    target = ns.target or (gather(binaries).target.name if binaries else "elf-x64")
    opt = ns.opt if ns.opt.startswith("-O") else f"-O{ns.opt}"
    def program_output(data: bytes) -> None:
        # the program's stdout, in order with the debugger's own lines
        sys.stdout.write(data.decode(errors="replace"))
        sys.stdout.flush()

    s = Session(target, backend=ns.backend, base=DEFAULT_BASE if ns.base is None else ns.base,
                stdout_sink=program_output,
                indirect=ns.indirect, opt=opt,
                cflags=["-g", "-fasynchronous-unwind-tables", *ns.cflags])
    try:
        s.add(*ns.inputs)
        s.link()
        repl = Repl(Debugger(s, adapter=ns.adapter), echo=bool(ns.script))
        repl.entry, repl.args = ns.entry, list(ns.args)
        if ns.script:
            try:
                with open(ns.script) as f:
                    repl.lines = f.read().splitlines()
            except OSError as e:
                raise ConfigError(f"{ns.script}: cannot read the script: {e.strerror}") from None
        repl.interactive = not ns.batch and sys.stdin.isatty()
        if not ns.batch and not sys.stdin.isatty():
            repl.lines += sys.stdin.read().splitlines()
        if repl.interactive:
            repl.enable_readline()
        return repl.loop()
    finally:
        s.free()
