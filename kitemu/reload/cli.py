"""``kitemu reload``: a scripted hot-reload scenario.

    kitemu reload prog.c --break value --replace value=value_v2.c [-- ARGS]

links the inputs with stable entries for every global function (or the
``--indirect`` mode given), runs the program until the named function is
hit (its active body's first instruction, the ``--hit``-th time), reloads
each ``--replace NAME=FILE`` while the program is stopped there, and
continues: the frame that was stopped finishes in the old body, later calls
enter the new one. It prints each step, the program's output and, at the
end, every reloaded function's bodies with their generation and state. The
exit status is the program's; a refused reload is reported, the program
continues with the old body, and the command then exits 2.
"""

from __future__ import annotations

import sys

from ..targets import TARGETS


def add_arguments(p) -> None:
    p.add_argument("inputs", nargs="+", metavar="INPUT", help=".o, .a or .c inputs")
    p.add_argument("--target", "-t", choices=sorted(TARGETS),
                   help="target (default: from the first input's machine)")
    p.add_argument("-e", "--entry", default="main", help="entry symbol (default main)")
    p.add_argument("--break", dest="break_at", required=True, metavar="FUNC",
                   help="stop when FUNC is hit (a C name, or file.c::name for a static)")
    p.add_argument("--hit", type=int, default=1, metavar="N",
                   help="stop at the N-th hit (default 1)")
    p.add_argument("--replace", action="append", default=[], metavar="NAME=FILE",
                   help="reload NAME from FILE (.o or .c) while stopped (repeatable)")
    p.add_argument("--unchecked", action="store_true",
                   help="reload even without a DWARF signature to compare")
    p.add_argument("--fast", action="store_true",
                   help="direct-call patching: also re-aim call sites at the new bodies")
    p.add_argument("--indirect", default="exported-funcs", choices=["exported-funcs", "none"],
                   help="indirection mode (default exported-funcs)")
    p.add_argument("--mark", action="append", default=[], metavar="NAME",
                   help="mark NAME (or file.c::static) reloadable (repeatable)")
    p.add_argument("--strategy", default=None, help="exec-memory strategy")
    p.add_argument("--cflags", action="append", default=[], metavar="FLAG",
                   help="extra clang flag for C inputs (repeatable; -g is always added)")
    p.add_argument("--timeout", type=float, default=None,
                   help="seconds each guest call may run")


def main(ns) -> int:
    from ..driver import gather
    from ..errors import ConfigError
    from ..session import Session
    from .function import ReloadError

    say = lambda text: print(f"kitemu: {text}", file=sys.stderr, flush=True)  # noqa: E731
    replacements = []
    for item in ns.replace:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ConfigError(f"--replace {item!r}: expected NAME=FILE")
        replacements.append((name, path))
    if ns.hit < 1:
        raise ConfigError(f"--hit {ns.hit}: must be 1 or more")
    cflags = ["-g", *ns.cflags]
    # the target: given, else the first binary input's (C sources are
    # compiled by the session, with its flags for reload)
    binaries = [p for p in ns.inputs if not p.endswith(".c")]
    target = ns.target or (gather(binaries).target.name if binaries else "elf-x64")

    def sink(data: bytes) -> None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()

    s = Session(target, indirect=ns.indirect, strategy=ns.strategy, cflags=cflags,
                stdout_sink=sink)
    refused: list[str] = []
    try:
        for name in ns.mark:
            s.mark_reloadable(name)
        s.add(*ns.inputs)
        s.link()
        say(f"linked {len(s.image.inputs)} input(s) for {s.target.name}, "
            f"{len(s.image.reloadables)} reloadable function(s), generation {s.generation}")
        where = _break_address(s, ns.break_at)
        s.proc.machine.add_breakpoint(where)
        hits = 0

        def on_breakpoint(proc, pc):
            nonlocal hits
            hits += 1
            info = s.addr_to_sym(pc)
            if hits < ns.hit:
                return
            say(f"stopped at {ns.break_at} (hit {hits}): pc {pc:#x} <{info.symbol}"
                f"{f'+{info.offset:#x}' if info.offset else ''}>, generation {info.generation}")
            for name, path in replacements:
                try:
                    gen = s.reload_function(name, path, unchecked=ns.unchecked,
                                            patch_call_sites=ns.fast)
                except ReloadError as e:
                    refused.append(str(e))
                    say(f"{e} - the old body stays active")
                    continue
                rf = s.reloadable(name)
                say(f"reloaded {name} from {path}: generation {gen}, body {rf.active.name} at "
                    f"{rf.active.addr:#x}, entry {rf.entry:#x} unchanged")
            proc.machine.remove_breakpoint(where)
            say("continuing")

        result = s.proc.run(ns.entry, ns.args, timeout=ns.timeout, on_breakpoint=on_breakpoint)
        if result.stderr:
            sys.stderr.buffer.write(result.stderr)
        if hits < ns.hit:
            say(f"{ns.break_at} was hit {hits} time(s), not {ns.hit}: nothing was reloaded")
        if result.fault is not None:
            say(f"program crashed. {result.fault.render(verbose=True)}")
        elif result.signal:
            say(f"program terminated by {result.signal}: {result.message}")
        say(f"program exited with status {result.exit_code}")
        for name, _ in replacements:
            try:
                rf = s.reloadable(name)
            except ReloadError:
                continue
            bodies = ", ".join(f"{b.name} gen {b.generation} {b.state}" for b in rf.bodies)
            say(f"{rf.identity}: entry {rf.entry:#x}; {bodies}")
        if refused:
            print(f"kitemu: error: {refused[0]}", file=sys.stderr)
            return 2
        return result.exit_code
    finally:
        s.free()


def _break_address(s, name: str) -> int:
    """Where "FUNC is hit": its active body's first instruction (the entry
    only jumps there), or the symbol itself when it is not reloadable."""
    from ..errors import ConfigError
    from .function import ReloadError
    try:
        return s.reloadable(name).active.addr
    except ReloadError:
        pass
    addr = s.lookup(name)
    if addr is None:
        raise ConfigError(f"--break {name}: no such function in the image")
    return addr
