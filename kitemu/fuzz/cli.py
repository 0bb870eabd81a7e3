"""``kitemu fuzz``: fuzz relocation records.

    kitemu fuzz [--target T ...] [--kind K ...] [--examples N | --seconds S]
                [--shard I/N] [--database DIR | --database redis://HOST:PORT]
                [--seed N] [--save-dir DIR] [--no-lld] [--mutate FIXUP[:MODE]]
    kitemu fuzz --replay FILE [--no-lld]
    kitemu fuzz --list [--target T ...] [--shard I/N]

Generates relocation cases (:mod:`kitemu.fuzz.strategies`), links each with
kitemu and checks the properties of :mod:`kitemu.fuzz.check` (and, for ELF
targets with ld.lld installed, the lld differential). Prints
examples/second per target; a failure is shrunk and written as a replay
file (its path is printed). Exit status: 0 all properties held, 1 a
property failed (or the replayed case still fails), 2 bad usage.

This module only builds the argument parser at import time; hypothesis and
the fuzzer are imported when the command runs.
"""

from __future__ import annotations

import argparse
import sys

TARGET_CHOICES = ("elf-x64", "elf-aarch64", "elf-rv64", "macho-x64", "macho-arm64")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", "-t", dest="fuzz_targets", action="extend", nargs="+",
                   choices=TARGET_CHOICES, metavar="T",
                   help="targets to fuzz (repeatable; default all: " + ", ".join(TARGET_CHOICES) + ")")
    p.add_argument("--kind", dest="kinds", action="extend", nargs="+", metavar="K",
                   help="only these relocation kinds (labels as --list prints them)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--examples", type=int, default=None, metavar="N",
                        help="examples per work item (target x relocation kind; default 50)")
    budget.add_argument("--seconds", type=float, default=None, metavar="S",
                        help="time budget: batches round-robin over the work items until S "
                        "seconds have passed")
    p.add_argument("--shard", default=None, metavar="I/N",
                   help="run every N-th work item starting at I (0 <= I < N), for CI workers")
    p.add_argument("--database", default=None, metavar="DIR|redis://HOST:PORT",
                   help="hypothesis example database shared by workers: a directory, or Redis "
                   "(needs the 'redis' package)")
    p.add_argument("--seed", type=int, default=None, help="make the run repeatable")
    p.add_argument("--replay", default=None, metavar="FILE",
                   help="rebuild and recheck the case of a replay file")
    p.add_argument("--save-dir", default="fuzz-failures", metavar="DIR",
                   help="where failures are written as replay files (default ./fuzz-failures)")
    p.add_argument("--no-lld", action="store_true",
                   help="skip the ld.lld differential oracle")
    p.add_argument("--mutate", default=None, metavar="FIXUP[:MODE]",
                   help="self-test: run against a deliberately broken fixup (e.g. "
                   "x64.Data32S:truncate); the fuzzer must report failures")
    p.add_argument("--batch", type=int, default=10, help=argparse.SUPPRESS)
    p.add_argument("--list", action="store_true",
                   help="list this shard's work items and exit")


def main(ns) -> int:
    from ..errors import ConfigError
    from .lld import find_lld
    from .runner import (format_report, parse_shard, replay, run, shard, work_items)

    out = sys.stdout
    lld = not ns.no_lld and find_lld() is not None
    if ns.replay:
        res, doc = replay(ns.replay, lld=None if not ns.no_lld else False)
        recorded = doc.get("property")
        print(f"replay {ns.replay}: {res.case.target} {doc.get('kind')}"
              + (f" under mutation {doc['mutation']}" if doc.get("mutation") else "")
              + (f" (recorded failure: {recorded})" if recorded else ""), file=out)
        print(f"  outcome: {res.outcome}" + (f": {res.error}" if res.error else ""), file=out)
        if res.ok:
            print("  all properties hold", file=out)
            return 0
        for f in res.failures:
            print(f"  FAIL {f}", file=out)
        return 1
    spec = parse_shard(ns.shard)
    if ns.mutate:
        from .mutate import parse as parse_mutation
        parse_mutation(ns.mutate)           # a bad FIXUP[:MODE] is a usage error, up front
    if ns.examples is not None and ns.examples < 1:
        raise ConfigError("--examples must be at least 1")
    if ns.seconds is not None and ns.seconds <= 0:
        raise ConfigError("--seconds must be positive")
    if ns.list:
        for item in shard(work_items(ns.fuzz_targets, ns.kinds), *spec):
            print(item.key, file=out)
        return 0
    if not ns.no_lld and not lld:
        print("kitemu fuzz: ld.lld is not on PATH: the lld differential is skipped", file=out)

    def echo(line: str) -> None:
        print(line, file=out, flush=True)

    report = run(ns.fuzz_targets, ns.kinds, examples=ns.examples, seconds=ns.seconds,
                 shard_spec=spec, database=ns.database, seed=ns.seed, lld=lld,
                 save_dir=ns.save_dir, mutation=ns.mutate, batch=ns.batch, echo=echo)
    echo(f"kitemu fuzz: seed {report.seed}, shard {spec[0]}/{spec[1]}, {len(report.items)} work "
         f"items" + (f", mutation {ns.mutate}" if ns.mutate else ""))
    echo(format_report(report, lld=lld))
    if report.failures:
        echo(f"{len(report.failures)} failing work item(s):")
        for f in report.failures:
            echo(f"  {f.item.key}: {f.path or '(no replay file)'}")
        return 1
    echo("all properties held")
    return 0
