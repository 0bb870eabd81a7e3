"""``kitemu repro``: run a failing case under every host model x exec-memory
strategy, print which combinations crash and how, and optionally minimize it.

    kitemu repro INPUT... [--target T] [-e ENTRY] [--scenario FILE] [-- ARGS...]
    kitemu repro --case regressions/NAME [--variant fixed|padded]
    kitemu repro --replay DIR/reduced.json
    ... --minimize [-o DIR] [--same kind,signal,stage] [--host H --strategy S]

Exit status: with something to check (a case's expected report, table,
stdout and exit status; a reproducer's recorded fault) 0 when everything
matches and 1 otherwise; without, 0 when at least one combination crashed
(the crash reproduces) and 1 when all ran clean. With ``--minimize``, 0 once
the reduced reproducer is written. Bad input: 2, as every kitemu command.
"""

from __future__ import annotations

import json

from .cases import VARIANTS

def add_arguments(p) -> None:
    p.add_argument("inputs", nargs="*", metavar="INPUT",
                   help=".o objects, .a archives, .c sources (as kitemu run)")
    p.add_argument("--target", "-t", default=None,
                   help="target (default: from the first input's machine)")
    p.add_argument("-e", "--entry", default=None, help="entry symbol (default main)")
    p.add_argument("--scenario", default=None, metavar="FILE",
                   help="JSON list of host-side JIT steps to run instead of the entry "
                        "(see kitemu.repro.run)")
    p.add_argument("--case", default=None, metavar="DIR",
                   help="a regression case directory (regressions/NAME): its inputs, "
                        "scenario and expectations")
    p.add_argument("--variant", default="buggy", choices=VARIANTS,
                   help="which variant of --case to run (default buggy)")
    p.add_argument("--replay", default=None, metavar="FILE",
                   help="re-run a reproducer written by --minimize (reduced.json)")
    p.add_argument("--hosts", default=None, help="comma-separated host models (default: all)")
    p.add_argument("--strategies", default=None,
                   help="comma-separated exec-memory strategies (default: all kitemu has)")
    p.add_argument("--host", default=None,
                   help="host model of the detailed report and of --minimize")
    p.add_argument("--strategy", default=None,
                   help="strategy of the detailed report and of --minimize")
    p.add_argument("--timeout", type=float, default=None,
                   help="seconds each guest call may run (default: 10; while minimizing, "
                        "20x the first run, at least 0.2)")
    p.add_argument("--minimize", action="store_true",
                   help="delta-reduce the inputs while the same fault persists")
    p.add_argument("-o", "--out", default="repro-min", metavar="DIR",
                   help="where --minimize writes the reproducer (default ./repro-min)")
    p.add_argument("--same", default=None, metavar="FIELDS",
                   help="fault fields that must stay equal while minimizing (default "
                        "kind,signal,si_code,access,stage,function,symbol; also pc, address)")
    p.add_argument("-q", "--quiet", action="store_true", help="no disassembly, no progress")


def _split(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def main(ns) -> int:
    from ..errors import ConfigError
    from ..targets import get_target
    from .cases import load_case
    from .reduce import load_replay, minimize, write_reduction
    from .run import (check_scenario, compare_report, format_report, format_table,
                      gather_program, host_models, parse_same, report_fields, run_table,
                      strategies)

    def say(line: str = "") -> None:
        print(line, flush=True)

    hosts = _split(ns.hosts) or list(host_models())
    strats = _split(ns.strategies) or strategies()
    for h in hosts:
        if h not in host_models():
            raise ConfigError(f"unknown host model {h!r}; known: {', '.join(host_models())}")
    for s in strats:
        if s not in strategies():
            raise ConfigError(f"unknown exec-memory strategy {s!r}; known: {', '.join(strategies())}")
    if ns.host is not None and ns.host not in host_models():
        raise ConfigError(f"--host: unknown host model {ns.host!r}; known: "
                          f"{', '.join(host_models())}")
    if ns.strategy is not None and ns.strategy not in strategies():
        raise ConfigError(f"--strategy: unknown exec-memory strategy {ns.strategy!r}; known: "
                          f"{', '.join(strategies())}")
    same = parse_same(ns.same)
    timeout = ns.timeout if ns.timeout is not None else 10.0
    sources = [x for x in (ns.case, ns.replay) if x]
    if len(sources) > 1 or (sources and ns.inputs):
        raise ConfigError("give inputs, --case or --replay, not several")
    if sources and (ns.target or ns.scenario):
        raise ConfigError(f"--{'target' if ns.target else 'scenario'} applies to plain inputs; "
                          f"--case and --replay name their own")

    case = replay_meta = None
    expected_report = expected_table = expected_stdout = expected_exit = None
    host = ns.host
    strategy = ns.strategy
    if ns.case:
        case = load_case(ns.case)
        program = case.program(ns.variant)
        spec = case.spec(ns.variant)
        title = f"case {case.name} ({ns.variant})"
        host = host or spec.get("host")
        strategy = strategy or spec.get("strategy")
        expected_table = case.expected_table(ns.variant) or None
        if ns.variant == "buggy":
            expected_report = case.expected_report()
        if ns.variant == "fixed":
            expected_stdout = case.expected_stdout("fixed")
            expected_exit = case.expected_exit("fixed")
    elif ns.replay:
        program, replay_meta = load_replay(ns.replay)
        title = f"reproducer {ns.replay}"
        host = host or replay_meta.get("host")
        strategy = strategy or replay_meta.get("strategy")
        expected_report = replay_meta.get("fault")
    else:
        scenario = None
        if ns.scenario:
            try:
                with open(ns.scenario, encoding="utf-8") as f:
                    scenario = json.load(f)
            except OSError as e:
                raise ConfigError(f"{ns.scenario}: cannot read the scenario: {e.strerror}") from None
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise ConfigError(f"{ns.scenario}: not a scenario (invalid JSON: {e})") from None
            scenario = check_scenario(scenario, ns.scenario)
        program = gather_program(ns.inputs, target=ns.target, entry=ns.entry or "main",
                                 args=ns.args, scenario=scenario)
        title = f"{len(ns.inputs)} input(s)"
    if ns.entry and (case or replay_meta):
        program.entry = ns.entry
    if ns.args and (case or replay_meta):
        program.args = list(ns.args)
    target = program.target.name

    say(f"kitemu repro: {title}, target {target}, "
        + (f"scenario of {len(program.scenario)} steps" if program.scenario
           else f"entry {program.entry}") + (f", args {program.args}" if program.args else ""))
    outs = run_table(program, hosts, strats, timeout)
    for line in format_table(outs):
        say(f"  {line}")
    if all(o.error is not None for o in outs) and len({o.error for o in outs}) == 1:
        # the same link error everywhere (undefined symbol, bad relocation...):
        # bad input, reported as every kitemu command reports it
        raise ConfigError(outs[0].error)

    # the combination to report in detail (and to minimize under)
    def pick():
        if host and strategy:
            return next((o for o in outs if (o.host, o.strategy) == (host, strategy)), None)
        crashes = [o for o in outs if o.fault is not None and (not host or o.host == host)
                   and (not strategy or o.strategy == strategy)]
        t = get_target(target)
        pref = [o for o in crashes if (o.host, o.strategy) == (t.host_os, t.default_strategy)]
        same_host = [o for o in crashes if o.host == t.host_os]
        return (pref or same_host or crashes or [None])[0]

    ref = pick()
    if ref is None and (host and strategy):
        from .run import run_once
        ref = run_once(program, host, strategy, timeout)
    ok = True
    if ref is not None:
        say()
        say(f"{ref.host} x {ref.strategy}: " + (
            f"program crashed. {ref.fault.render(verbose=not ns.quiet)}" if ref.fault is not None
            else f"error: {ref.error}" if ref.error is not None
            else f"terminated by {ref.signal}" if ref.signal
            else f"ran clean, exit {ref.exit_code}"))
        if ref.stdout:
            say("  program stdout:")
            for line in ref.stdout.decode(errors="replace").splitlines():
                say(f"    | {line}")
        fields = report_fields(ref, target)
        say("  report:")
        for line in format_report(fields).splitlines():
            say(f"    {line}")
        if expected_report is not None:
            diffs = compare_report(expected_report, fields)
            say("  expected report: " + ("matches" if not diffs else "DIFFERS"))
            for d in diffs:
                say(f"    {d}")
            ok &= not diffs
        if expected_stdout is not None:
            same_out = ref.stdout == expected_stdout
            say("  expected stdout: " + ("matches" if same_out else "DIFFERS"))
            ok &= same_out
        if expected_exit is not None:
            same_exit = ref.fault is None and ref.exit_code == expected_exit
            say(f"  expected exit {expected_exit}: " + ("matches" if same_exit else
                                                       f"DIFFERS (got {ref.cell})"))
            ok &= same_exit
    if expected_table:
        bad = []
        for o in outs:
            want = expected_table.get(o.host, {}).get(o.strategy)
            if want is not None and o.cell != want:
                bad.append(f"{o.host} x {o.strategy}: expected {want}, got {o.cell}")
        say("  expected table: " + ("matches" if not bad else "DIFFERS"))
        for b in bad:
            say(f"    {b}")
        ok &= not bad

    if ns.minimize:
        if ref is None or ref.fault is None:
            raise ConfigError("--minimize: no combination crashed with a CPU fault"
                              + (f" under {host or 'any host'} x {strategy or 'any strategy'}"
                                 if host or strategy else ""))
        say()
        say(f"minimizing under {ref.host} x {ref.strategy}, keeping the same "
            f"{', '.join(same)} ...")
        red = minimize(program, ref.host, ref.strategy, same,
                       timeout=ns.timeout, log=None if ns.quiet else (lambda l: say(f"  {l}")))
        f = red.outcome.fault
        say(f"minimized in {red.trials} trials ({red.seconds:.1f} s): "
            + (f"same fault {f.signal} {f.si_code} in J-stage {f.stage} at {f.pc_symbol}"
               if f is not None else "(no fault?)"))
        for line in red.removed_lines():
            say(f"  {line}")
        modified = red.modified()
        say("  kept: " + ", ".join(f"{n}{' (edited)' if n in modified else ''}"
                                   for n in red.kept()))
        for p in write_reduction(red, ns.out):
            say(f"  wrote {p}")
        say(f"  replay: kitemu repro --replay {ns.out}/reduced.json")
        return 0
    if expected_report is not None or expected_table or expected_stdout is not None \
            or expected_exit is not None:
        return 0 if ok else 1
    return 0 if any(o.crashed for o in outs) else 1
