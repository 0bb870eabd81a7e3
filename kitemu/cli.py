"""``kitemu`` command line.

    kitemu run [--target T] [-e ENTRY] [--backend B] [--strategy S] [-O0..-O3]
               INPUT(.o .a .c -)... [-- ARGS...]
    kitemu targets
    kitemu corpus [--targets T,...] [--cases C,...] [--variants V,...] [--strategies S,...]
    kitemu fuzz [--target T ...] [--examples N | --seconds S] [--shard I/N] [--replay FILE] ...
    kitemu inspect INPUT... [--target T] [--append INPUT]... [--addr ADDR] [--json]
    kitemu reload INPUT... --break FUNC --replace FUNC=FILE [--target T] [-- ARGS...]
    kitemu dbg [--target T] INPUT... [-x SCRIPT] [--batch] [--adapter posix|windows]

Errors in the inputs print one ``kitemu: error: ...`` line and exit 2; a
program that crashes exits 128+signal after a one-paragraph report on stderr.
"""

from __future__ import annotations

import argparse
import os
import sys

from .errors import KitemuError
from .targets import TARGETS


def _int(text: str) -> int:
    return int(text, 0)


def cmd_run(ns) -> int:
    from .driver import gather, link_and_run

    def sink(data: bytes) -> None:
        sys.stdout.buffer.write(data)

    def trace(line: str) -> None:
        print(f"kitemu: {line}", file=sys.stderr, flush=True)

    inputs = gather(ns.inputs, target=ns.target, opt=ns.opt, cflags=ns.cflags)
    result = link_and_run(inputs, entry=ns.entry, args=ns.args, backend=ns.backend,
                          strategy=ns.strategy, page_size=ns.page_size, base=ns.base,
                          stdout_sink=sink if ns.backend != "aot" else None,
                          timeout=ns.timeout, trace=trace if ns.trace_link else None)
    if ns.backend == "aot":
        sys.stdout.buffer.write(result.stdout)
    sys.stdout.flush()
    if result.stderr:
        sys.stderr.buffer.write(result.stderr)
    if result.fault is not None:
        sys.stderr.write(f"kitemu: program crashed. {result.fault.render(verbose=True)}\n")
    elif result.signal:
        sys.stderr.write(f"kitemu: program terminated by {result.signal}: {result.message}\n")
    return result.exit_code


def cmd_targets(ns) -> int:
    for t in TARGETS.values():
        print(f"{t.name:<14} arch={t.arch_module:<8} format={t.format:<6} host={t.host_os:<6} "
              f"page={t.default_page_size:#x} clang --target={t.triple}")
    return 0


def cmd_corpus(ns) -> int:
    from .harness.corpus import main as corpus_main
    return corpus_main(ns)


def cmd_parity(ns) -> int:
    from .harness.parity import main as parity_main
    return parity_main(ns)


def cmd_fuzz(ns) -> int:
    from .fuzz.cli import main as fuzz_main
    return fuzz_main(ns)


def cmd_inspect(ns) -> int:
    from .inspect.cli import main as inspect_main
    return inspect_main(ns)


def cmd_reload(ns) -> int:
    from .reload.cli import main as reload_main
    return reload_main(ns)


def cmd_dbg(ns) -> int:
    from .dbg.cli import main as dbg_main
    return dbg_main(ns)


def cmd_repro(ns) -> int:
    from .repro.cli import main as repro_main
    return repro_main(ns)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kitemu", description="JIT linker testbed: link objects in "
                                "memory and run them in unicorn")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="link objects in memory and run them")
    r.add_argument("--target", "-t", choices=sorted(TARGETS),
                   help="target (default: from the first input's machine)")
    r.add_argument("-e", "--entry", default="main", help="entry symbol (default main)")
    r.add_argument("--strategy", default=None,
                   help="exec-memory strategy: mprotect | dual-map | jit-toggle | virtualprotect (default: the host OS's usual one)")
    r.add_argument("--page-size", type=_int, default=None, help="host page size (default per target)")
    r.add_argument("--base", type=_int, default=0x1000_0000, help="image region base address")
    r.add_argument("--backend", default="emulated", choices=["emulated", "native", "aot"],
                   help="emulated (unicorn, default), native (real memory; x86-64 Linux "
                   "hosts, elf-x64), aot (ld.lld static image in unicorn: the reference)")
    for level in ("-O0", "-O1", "-O2", "-O3", "-Os"):
        r.add_argument(level, dest="opt", action="store_const", const=level,
                       help=f"compile C inputs with {level}" if level == "-O0" else argparse.SUPPRESS)
    r.set_defaults(opt="-O2")
    r.add_argument("--cflags", action="append", default=[], metavar="FLAG",
                   help="extra clang flag for C inputs (repeatable)")
    r.add_argument("--timeout", type=float, default=None,
                   help="seconds each guest call may run (default: no limit)")
    r.add_argument("--trace-link", action="store_true",
                   help="print the link's J-stages and each run-time stage to stderr")
    r.add_argument("inputs", nargs="+", metavar="INPUT",
                   help=".o objects, .a archives, .c sources, or - for C source on stdin")
    r.set_defaults(func=cmd_run)

    t = sub.add_parser("targets", help="list targets")
    t.set_defaults(func=cmd_targets)

    c = sub.add_parser("corpus", help="run the corpus on every target and compare with expected output")
    c.add_argument("--targets", default=None, help="comma-separated targets (default all)")
    c.add_argument("--cases", default=None, help="comma-separated case names (default all)")
    c.add_argument("--variants", default=None, help="comma-separated build variants (default all)")
    c.add_argument("--strategies", default="mprotect,dual-map,jit-toggle,virtualprotect", help="exec-memory strategies")
    c.add_argument("--corpus-dir", default=None, help="corpus directory (default: ./corpus)")
    c.add_argument("-q", "--quiet", action="store_true", help="print only failures and the summary")
    c.set_defaults(func=cmd_corpus)

    pa = sub.add_parser("parity", help="every corpus case x target x input kind x backend, "
                        "diffed against expected output and each other")
    pa.add_argument("--targets", default=None, help="comma-separated targets (default all)")
    pa.add_argument("--cases", default=None, help="comma-separated case names (default all)")
    pa.add_argument("--kinds", default=None, help="input kinds: o,a,c,stdin,cli (default all)")
    pa.add_argument("--backends", default=None, help="backends: emulated,native,aot (default all)")
    pa.add_argument("--variant", default=None, help="object build variant (default O2)")
    pa.add_argument("-j", "--jobs", type=int, default=1, help="parallel worker processes")
    pa.add_argument("--json", default=None, metavar="FILE", help="write a JSON report")
    pa.add_argument("--junit", default=None, metavar="FILE", help="write a JUnit XML report")
    pa.add_argument("--corpus-dir", default=None, help="corpus directory (default: ./corpus)")
    pa.add_argument("-q", "--quiet", action="store_true", help="do not list skipped combinations")
    pa.set_defaults(func=cmd_parity)

    from .inspect.cli import add_arguments as add_inspect_arguments
    ins = sub.add_parser("inspect", help="link inputs (and appends) and print the image: "
                         "segments, symbols with generation, GOT entry and stub; or --addr")
    add_inspect_arguments(ins)
    ins.set_defaults(func=cmd_inspect)

    from .reload.cli import add_arguments as add_reload_arguments
    rl = sub.add_parser("reload", help="hot reload scenario: run until a function is hit, "
                        "reload it from an object, continue, print the results")
    add_reload_arguments(rl)
    rl.set_defaults(func=cmd_reload)

    from .dbg.cli import add_arguments as add_dbg_arguments
    dg = sub.add_parser("dbg", help="the JIT debugger: breakpoints (reload-aware), stepping, "
                        "backtraces, reload, gdb-like commands")
    add_dbg_arguments(dg)
    dg.set_defaults(func=cmd_dbg)

    from .repro.cli import add_arguments as add_repro_arguments
    rp = sub.add_parser("repro", help="reproduce a crash under every host model x exec-memory "
                        "strategy; --minimize reduces its inputs")
    add_repro_arguments(rp)
    rp.set_defaults(func=cmd_repro)

    from .fuzz.cli import add_arguments as add_fuzz_arguments
    fz = sub.add_parser("fuzz", help="fuzz relocation records: generated relocation cases checked "
                        "against the psABI formulas and ld.lld")
    add_fuzz_arguments(fz)
    fz.set_defaults(func=cmd_fuzz)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    prog_args: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, prog_args = argv[:i], argv[i + 1:]
    ns = build_parser().parse_args(argv)
    ns.args = prog_args
    try:
        return ns.func(ns)
    except KitemuError as e:
        sys.stdout.flush()
        print(f"kitemu: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # stdout was closed early (e.g. `kitemu run ... | head`): not an error
        # of ours; silence the interpreter's flush at exit too
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
