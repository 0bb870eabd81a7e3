"""Running one failing program under one host model x exec-memory strategy.

A :class:`Program` is what to link (objects, archives, their raw bytes for
minimization) and how to run it: ``entry(argc, argv)`` with constructors and
destructors (``JitProcess.run``), or a *scenario*, a list of host-side JIT
steps (below). :func:`run_once` runs it in a fresh :class:`JitProcess` whose
host model is overridden (``JitProcess(host_os=...)``: an ELF target can be
run under the macOS fault model and the other way round) and returns an
:class:`Outcome`; :func:`run_table` does every host model x every strategy
(discovered from :class:`kitemu.execmem.Strategy`, so a new strategy joins
the table by itself).

Scenario steps (JSON objects; ``"op"`` selects the step)::

    {"op": "run"}                                   entry(argc, argv), ctors, dtors
    {"op": "commit_code", "chunk": "gen1", "size": 16384}
                                                    the JIT commits a new code chunk
                                                    (ExecMem.commit(size, "code"):
                                                    jit-toggle enters write mode)
    {"op": "write_code", "chunk": "gen1", "offset": 0, "hex": "400580d2c0035fd6"}
                                                    a host-side write into it
                                                    (ExecMem.write: the RW alias
                                                    under dual-map)
    {"op": "finalize_code", "chunk": "gen1"}        ExecMem.make_executable
    {"op": "call", "symbol": "f", "args": [1, "chunk:gen1", "sym:table"]}
    {"op": "call", "chunk": "gen1", "offset": 0}    call guest code; its J-stage
                                                    is "call f", plus "while
                                                    writing gen1" when a chunk
                                                    committed by the scenario is
                                                    not finalized yet

The exit status of a scenario is that of its last ``run``, or the low 8 bits
of its last call's return value (``exit()`` inside a call ends it with that
status). The first fault ends the scenario.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from ..errors import ConfigError, KitemuError
from ..faults import FaultReport

#: the host models a target can be run under (kitemu.faults.signal_for)
HOST_MODELS = ("linux", "macos")

#: what makes two faults "the same fault" unless told otherwise (--same):
#: the brief's kind, signal and J-stage, plus what pins the *bug*: the
#: access, the faulting function and the object accessed ("symbol": the
#: symbol at the faulting address without its offset, or the process area
#: it lies in). Without "symbol" a reduction can trade the bug for another
#: one in the same place (drop the relocation that formed a pointer to a
#: read-only table, and the same store now hits the code page).
DEFAULT_SAME = ("kind", "signal", "si_code", "access", "stage", "function", "symbol")
SAME_FIELDS = ("kind", "signal", "si_code", "access", "stage", "function", "symbol", "pc",
               "address")


def host_models() -> tuple[str, ...]:
    return HOST_MODELS


def strategies() -> list[str]:
    """Every exec-memory strategy kitemu has, in declaration order."""
    from ..execmem import Strategy
    return [s.value for s in Strategy]


@dataclass
class Program:
    """A failing case: inputs + how to run them."""

    target: object                       # kitemu.targets.Target
    objects: list                        # ObjectFile, command-line order
    archives: list = field(default_factory=list)
    entry: str = "main"
    args: list[str] = field(default_factory=list)
    scenario: list[dict] | None = None
    #: object path -> the bytes it was read from (needed by --minimize;
    #: archive members keep theirs in the Archive)
    raw: dict[str, bytes] = field(default_factory=dict)
    #: reductions applied to the objects before linking (a replayed
    #: reproducer: kitemu.repro.reduce.Edit)
    edits: list = field(default_factory=list)

    def roots(self) -> set[str]:
        """Symbols the run needs (archive members are pulled for them)."""
        names = {self.target.symbol(self.entry)} if self._runs_entry() else set()
        for step in self.scenario or ():
            if step.get("symbol"):
                names.add(self.target.symbol(step["symbol"]))
            for a in step.get("args", ()):
                if isinstance(a, str) and a.startswith("sym:"):
                    names.add(self.target.symbol(a[4:]))
        return names

    def _runs_entry(self) -> bool:
        return not self.scenario or any(s.get("op") == "run" for s in self.scenario)


@dataclass
class Outcome:
    """What one host model x strategy combination did."""

    host: str
    strategy: str
    fault: FaultReport | None = None
    exit_code: int | None = None
    stdout: bytes = b""
    #: a signal without a CPU fault (abort(): SIGABRT)
    signal: str | None = None
    #: the combination could not run (link error, unsupported strategy...)
    error: str | None = None
    seconds: float = 0.0

    @property
    def crashed(self) -> bool:
        return self.fault is not None or self.signal is not None

    @property
    def cell(self) -> str:
        """``SIGBUS BUS_ADRERR``, ``SIGABRT``, ``clean 0`` or ``error``: what
        a case's expected table holds."""
        if self.error is not None:
            return "error"
        if self.fault is not None:
            return f"{self.fault.signal} {self.fault.si_code}"
        if self.signal is not None:
            return self.signal
        return f"clean {self.exit_code}"


def fault_key(report: FaultReport, fields=DEFAULT_SAME) -> tuple:
    """The parts of a fault that must not change while minimizing."""
    values = {
        "kind": report.kind, "signal": report.signal, "si_code": report.si_code,
        "access": report.access, "stage": report.stage,
        "function": report.pc_symbol.split("+0x")[0], "pc": report.pc_symbol,
        "symbol": (report.address_symbol.split("+0x")[0] if report.address_symbol
                   else address_area(report.address)),
        "address": report.address_symbol or (None if report.address is None
                                             else f"{report.address:#x}"),
    }
    return tuple(values[f] for f in fields)


def address_area(addr: int | None) -> str:
    """Where an address without a symbol lies, coarsely (layout-independent)."""
    from ..execmem import ALIAS_OFFSET
    from ..runtime import DEFAULT_BASE, PROCESS_AREAS
    if addr is None:
        return "none"
    if addr < 0x10000:
        return "the null page"
    for name, (lo, hi) in PROCESS_AREAS.items():
        if lo <= addr < hi:
            return name
    if DEFAULT_BASE + ALIAS_OFFSET <= addr < DEFAULT_BASE + 2 * ALIAS_OFFSET:
        return "the RW alias area"
    if DEFAULT_BASE <= addr < DEFAULT_BASE + ALIAS_OFFSET:
        return "the image region"
    return "unmapped memory"


def parse_same(text: str | None) -> tuple[str, ...]:
    if not text:
        return DEFAULT_SAME
    fields = tuple(f.strip() for f in text.split(",") if f.strip())
    bad = [f for f in fields if f not in SAME_FIELDS]
    if bad or not fields:
        raise ConfigError(f"--same: unknown fault field(s) {', '.join(bad) or '(none)'}; "
                          f"choose from {', '.join(SAME_FIELDS)}")
    return fields


# -- running -------------------------------------------------------------------------

def run_once(program: Program, host: str, strategy: str, timeout: float | None = None,
             objects: list | None = None) -> Outcome:
    """Link and run ``program`` in a fresh process under ``host`` and
    ``strategy``. ``objects`` (already selected, e.g. a reduced set)
    replaces the program's objects and archives."""
    from ..link.inputs import select_inputs
    from ..runtime import JitProcess

    t0 = time.perf_counter()
    out = Outcome(host, strategy)
    proc = None
    try:
        proc = JitProcess(program.target, strategy=strategy, host_os=host)
        proc.timeout = timeout
        if objects is None:
            objects = select_inputs(program.objects, program.archives, program.roots(),
                                    set(proc.hostproc.addrs))
            if program.edits:
                from .reduce import apply_edits
                objects = apply_edits(objects, program.edits, program.target.arch)
        proc.link(objects)
        if program.scenario:
            run_scenario(proc, program, out)
        else:
            r = proc.run(program.entry, list(program.args), timeout=timeout)
            out.stdout, out.exit_code, out.fault = r.stdout, r.exit_code, r.fault
            if r.fault is None and r.signal:
                out.signal = r.signal
    except KitemuError as e:
        out.error = str(e)
    finally:
        if proc is not None:
            try:
                proc.free()
            except Exception:
                pass
    out.seconds = time.perf_counter() - t0
    return out


def run_table(program: Program, hosts=None, strats=None, timeout: float | None = None,
              on_outcome=None) -> list[Outcome]:
    """Every host model x every strategy, hosts outermost."""
    outs = []
    for host in hosts or host_models():
        for strategy in strats or strategies():
            o = run_once(program, host, strategy, timeout)
            outs.append(o)
            if on_outcome is not None:
                on_outcome(o)
    return outs


def run_scenario(proc, program: Program, out: Outcome) -> None:
    """Run the scenario's steps in ``proc`` (linked), filling ``out``."""
    hp = proc.machine.hostproc
    chunks: dict[str, object] = {}
    open_chunks: list[str] = []

    def chunk(step) -> object:
        name = step.get("chunk")
        if name not in chunks:
            raise ConfigError(f"scenario step {step}: no code chunk {name!r} was committed")
        return chunks[name]

    def value(a):
        if isinstance(a, bool) or not isinstance(a, (int, float, str)):
            raise ConfigError(f"scenario argument {a!r}: use a number, 'chunk:NAME' or 'sym:NAME'")
        if isinstance(a, str):
            if a.startswith("chunk:"):
                return chunk({"chunk": a[6:]}).addr
            if a.startswith("sym:"):
                addr = proc.lookup(a[4:])
                if addr is None:
                    raise ConfigError(f"scenario argument {a!r}: symbol not defined")
                return addr
            return int(a, 0)
        return a

    exit_code = 0
    for step in program.scenario:
        op = step.get("op")
        if op == "run":
            r = proc.run(program.entry, list(program.args))
            out.fault, exit_code = r.fault, r.exit_code
            if r.fault is None and r.signal:
                out.signal = r.signal
            if out.crashed:
                break
        elif op == "commit_code":
            chunks[step["chunk"]] = proc.mem.commit(int(step.get("size", proc.mem.page_size)), "code")
            open_chunks.append(step["chunk"])
        elif op == "write_code":
            c = chunk(step)
            proc.mem.write(c.addr + int(step.get("offset", 0)), bytes.fromhex(step["hex"]))
        elif op == "finalize_code":
            c = chunk(step)
            proc.mem.make_executable(c)
            if step["chunk"] in open_chunks:
                open_chunks.remove(step["chunk"])
        elif op == "call":
            if step.get("symbol"):
                name = step["symbol"]
                addr = proc.lookup(name)
                if addr is None:
                    raise ConfigError(f"scenario: symbol {name!r} is not defined by the inputs")
            else:
                name = f"{step['chunk']}+{int(step.get('offset', 0)):#x}"
                addr = chunk(step).addr + int(step.get("offset", 0))
            stage = f"call {name}"
            if open_chunks:
                stage += f" while writing {', '.join(open_chunks)}"
            proc.stage = stage
            hp.exit = None
            ret, fault = proc.call(addr, [value(a) for a in step.get("args", ())])
            if fault is not None:
                out.fault = fault
                exit_code = fault.exit_code
                break
            if hp.exit is not None:
                exit_code = hp.exit.status
                if hp.exit.signal:
                    out.signal = hp.exit.signal
                break
            exit_code = ret & 0xFF
        else:
            raise ConfigError(f"unknown scenario op {op!r} (known: run, commit_code, write_code, "
                              "finalize_code, call)")
    out.stdout = bytes(hp.stdout)
    out.exit_code = out.fault.exit_code if out.fault is not None else exit_code


# -- scenarios ----------------------------------------------------------------------------

SCENARIO_OPS = ("run", "commit_code", "write_code", "finalize_code", "call")


def check_scenario(steps, where: str) -> list[dict] | None:
    """``steps`` if it is a well-formed scenario, else a ConfigError naming
    ``where`` (the file it came from) and the step: a bad scenario is bad
    input, reported before anything runs."""
    if steps is None:
        return None
    if not isinstance(steps, list) or not steps:
        raise ConfigError(f"{where}: a scenario is a non-empty JSON list of steps")
    for i, step in enumerate(steps):
        def bad(why: str):
            return ConfigError(f"{where}: scenario step #{i} {step!r}: {why}")
        if not isinstance(step, dict):
            raise bad("not a JSON object")
        op = step.get("op")
        if op not in SCENARIO_OPS:
            raise bad(f"unknown op {op!r} (known: {', '.join(SCENARIO_OPS)})")
        for key in ("size", "offset"):
            if key in step and (isinstance(step[key], bool) or not isinstance(step[key], int)
                                or step[key] < 0):
                raise bad(f"{key!r} must be a non-negative integer")
        if op in ("commit_code", "write_code", "finalize_code") or (op == "call"
                                                                      and "symbol" not in step):
            if not isinstance(step.get("chunk"), str):
                raise bad("needs a 'chunk' name" + (" or a 'symbol'" if op == "call" else ""))
        if op == "call" and "symbol" in step and not isinstance(step["symbol"], str):
            raise bad("'symbol' must be a string")
        if op == "write_code":
            try:
                bytes.fromhex(step.get("hex"))
            except (TypeError, ValueError):
                raise bad("'hex' must be a string of hex digits") from None
        args = step.get("args", [])
        if not isinstance(args, list):
            raise bad("'args' must be a list")
        for a in args:
            ok = isinstance(a, int) and not isinstance(a, bool)
            if isinstance(a, str):
                try:
                    ok = a.startswith(("chunk:", "sym:")) or int(a, 0) is not None
                except ValueError:
                    ok = False
            if not ok:
                raise bad(f"argument {a!r}: use an integer, 'chunk:NAME' or 'sym:NAME'")
    return steps


# -- loading inputs (keeping their bytes) ----------------------------------------------------

def load_inputs(paths: list[str], names: list[str] | None = None) -> list[tuple]:
    """Read ``paths``: ``("object", ObjectFile, bytes)``, ``("archive",
    Archive, bytes)`` or ``("c", path, None)`` each (C is compiled once the
    target is known). ``names`` (default: the paths) is what the objects and
    messages call them. Unlike :func:`kitemu.driver.gather` the bytes are
    kept: minimization re-reads and rewrites inputs."""
    from ..driver import is_c_input
    from ..loader import load_object
    from ..loader.archive import is_archive, read_archive
    from ..loader.guard import read_input

    if not paths:
        raise ConfigError("no input files")
    if paths.count("-") > 1:
        raise ConfigError("'-' (C source on standard input) may be given only once")
    loaded = []
    for p, name in zip(paths, names or paths):
        if is_c_input(p):
            loaded.append(("c", p, None))
            continue
        data = read_input(p)
        if is_archive(data):
            loaded.append(("archive", read_archive(name, data), data))
        else:
            loaded.append(("object", load_object(name, data), data))
    return loaded


def build_program(loaded: list[tuple], target: str | None = None, entry: str = "main",
                  args: list[str] | None = None, scenario: list[dict] | None = None,
                  opt: str = "-O2", cflags: list[str] | None = None) -> Program:
    """A :class:`Program` from :func:`load_inputs`' result. The target is
    ``target``, else the first object's (or archive's), else elf-x64; an
    object or archive for another target is refused here, naming the file,
    rather than failing every host x strategy combination alike."""
    from ..cc import compile_c
    from ..driver import DEFAULT_TARGET
    from ..errors import ObjectFormatError
    from ..loader import load_object
    from ..targets import get_target

    if target is None:
        target = next((v.target for k, v, _ in loaded if k == "object"), None) \
            or next((v.target for k, v, _ in loaded if k == "archive" and v.target), None) \
            or DEFAULT_TARGET
    tgt = get_target(target)
    for kind, value, _ in loaded:
        if kind != "c" and value.target and value.target != tgt.name:
            raise ObjectFormatError(value.path, f"{'object' if kind == 'object' else 'archive'} "
                                    f"is for {value.target}, not {tgt.name}")
    prog = Program(tgt, [], [], entry, list(args or []), scenario)
    for kind, value, data in loaded:
        if kind == "object":
            prog.objects.append(value)
            prog.raw[value.path] = data
        elif kind == "archive":
            prog.archives.append(value)
        else:
            name, data = compile_c(None if value == "-" else value, tgt, opt, cflags,
                                   text=None if value != "-" else _stdin(), name=None)
            prog.objects.append(load_object(name, data))
            prog.raw[name] = data
    return prog


def gather_program(paths: list[str], target: str | None = None, entry: str = "main",
                   args: list[str] | None = None, scenario: list[dict] | None = None,
                   opt: str = "-O2", cflags: list[str] | None = None) -> Program:
    """The command line's inputs as a :class:`Program` (see
    :func:`load_inputs` and :func:`build_program`)."""
    return build_program(load_inputs(paths), target, entry, args, scenario, opt, cflags)


def _stdin() -> bytes:
    import sys
    return sys.stdin.buffer.read()


# -- rendering -----------------------------------------------------------------------------

def short_input(path: str) -> str:
    """``dir/main.o`` -> ``main.o``; ``dir/lib.a(m.o)`` -> ``lib.a(m.o)``."""
    if path.endswith(")") and "(" in path:
        archive, member = path[:-1].split("(", 1)
        return f"{os.path.basename(archive)}({member})"
    return os.path.basename(path)


def relocation_line(fault: FaultReport) -> str:
    """The layout-independent part of the description of the relocation a
    fault report names. That is the relocation that wrote or produced the
    faulting address; when none did, kitemu names the one that wrote or
    produced the *pc* (the call that led to the faulting function), and the
    line says so (``pc produced by ...``) instead of passing it off as the
    address's."""
    if not fault.relocation:
        return "none"
    how, rec = fault.relocation
    sign = "+" if rec.addend >= 0 else "-"
    via = f" via {rec.via}" if rec.via else ""
    verb = "written by" if how == "wrote" else "produced by"
    if fault.relocation_subject() == "pc":
        verb = f"pc {verb}"
    return (f"{verb} {short_input(rec.input)}: section {rec.section}: relocation {rec.kind} at "
            f"offset {rec.offset:#x} against {rec.symbol} {sign} {abs(rec.addend):#x}{via}")


#: the keys of an expected.report, in order
REPORT_KEYS = ("target", "host", "strategy", "signal", "si_code", "kind", "access", "address",
               "j-stage", "pc", "generation", "relocation")


def report_fields(out: Outcome, target: str) -> dict[str, str]:
    """An outcome as ``expected.report`` writes it."""
    d = {"target": target, "host": out.host, "strategy": out.strategy}
    if out.error is not None:
        d["result"] = f"error: {out.error}"
        return d
    f = out.fault
    if f is None:
        d["result"] = f"terminated by {out.signal}" if out.signal else "clean"
        d["exit"] = str(out.exit_code)
        return d
    address = "none" if f.address is None else (f.address_symbol or f"{f.address:#x}")
    d.update({"signal": f.signal, "si_code": f.si_code, "kind": f.kind,
              "access": f.access or "none", "address": address, "j-stage": f.stage or "none",
              "pc": f.pc_symbol, "generation": str(f.generation),
              "relocation": relocation_line(f)})
    return d


def format_report(fields: dict[str, str]) -> str:
    return "".join(f"{k}: {v}\n" for k, v in fields.items())


def parse_report(text: str, where: str = "expected report") -> dict[str, str]:
    """``key: value`` lines (``#`` comments and blank lines ignored);
    ``where`` names the file in errors."""
    d = {}
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition(":")
        if not sep:
            raise ConfigError(f"{where}: line {n} {line!r} is not 'key: value'")
        d[key.strip()] = value.strip()
    return d


def compare_report(expected: dict[str, str], got: dict[str, str]) -> list[str]:
    """Mismatches (empty: every expected key has the expected value)."""
    return [f"{k}: expected {v!r}, got {got.get(k, '(missing)')!r}"
            for k, v in expected.items() if got.get(k) != v]


def format_table(outs: list[Outcome]) -> list[str]:
    """The host x strategy table, one line per combination."""
    rows = [("host", "strategy", "result", "signal", "si_code", "J-stage", "pc / exit")]
    for o in outs:
        if o.error is not None:
            rows.append((o.host, o.strategy, "error", "", "", "", o.error.splitlines()[0][:70]))
        elif o.fault is not None:
            f = o.fault
            rows.append((o.host, o.strategy, "crash", f.signal, f.si_code, f.stage, f.pc_symbol))
        elif o.signal is not None:
            rows.append((o.host, o.strategy, "crash", o.signal, "", "", f"exit {o.exit_code}"))
        else:
            rows.append((o.host, o.strategy, "clean", "", "", "", f"exit {o.exit_code}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = []
    for k, r in enumerate(rows):
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1])
        if k == 0:
            lines.append("  ".join("-" * w for w in widths) + "  " + "-" * 9)
    return [line.rstrip() for line in lines]
