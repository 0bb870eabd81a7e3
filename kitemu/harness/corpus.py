"""The corpus runner: every committed corpus object set, on every target,
under every exec-memory strategy, compared with the expected stdout and exit
code. ``kitemu corpus`` is the project's main job until the full parity
harness replaces it.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass

from ..errors import KitemuError


#: seconds any one call of a corpus program may run: a mis-linked program
#: that loops fails its case instead of hanging the run
CASE_TIMEOUT = 60.0


@dataclass
class CorpusCase:
    case: str
    target: str
    variant: str
    objects: list[str]      # absolute paths
    expected_stdout: bytes
    expected_exit: int
    args: list[str]
    entry: str


@dataclass
class CaseResult:
    case: CorpusCase
    strategy: str
    ok: bool
    detail: str
    seconds: float


def default_corpus_dir() -> str:
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.dirname(os.path.dirname(here))
    return os.path.join(repo, "corpus")


def load_manifest(corpus_dir: str | None = None) -> list[CorpusCase]:
    corpus_dir = corpus_dir or default_corpus_dir()
    path = os.path.join(corpus_dir, "obj", "manifest.json")
    try:
        with open(path) as f:
            entries = json.load(f)
    except OSError as e:
        raise KitemuError(f"{path}: cannot read corpus manifest ({e.strerror}); "
                          "run `python corpus/build.py`") from None
    if isinstance(entries, dict):
        entries = entries.get("entries", [])
    out = []
    for e in entries:
        expected_path = e.get("expected_stdout", f"{e['case']}/expected.stdout")
        with open(os.path.join(corpus_dir, expected_path), "rb") as f:
            expected = f.read()
        out.append(CorpusCase(e["case"], e["target"], e["variant"],
                              [os.path.join(corpus_dir, o) for o in e["objects"]],
                              expected, e.get("exit", 0), e.get("args", []),
                              e.get("entry", "main")))
    return out


def run_case(case: CorpusCase, strategy: str) -> CaseResult:
    from ..loader import load_object
    from ..runtime import JitProcess
    t0 = time.perf_counter()
    try:
        proc = JitProcess(case.target, strategy=strategy)
        proc.link([load_object(p) for p in case.objects])
        r = proc.run(case.entry, case.args, program_name=case.case, timeout=CASE_TIMEOUT)
    except KitemuError as e:
        return CaseResult(case, strategy, False, f"error: {e}", time.perf_counter() - t0)
    dt = time.perf_counter() - t0
    problems = []
    if r.exit_code != case.expected_exit:
        problems.append(f"exit {r.exit_code}, expected {case.expected_exit}"
                        + (f" ({r.message})" if r.message else ""))
    if r.stdout != case.expected_stdout:
        problems.append("stdout differs: " + first_difference(case.expected_stdout, r.stdout))
    return CaseResult(case, strategy, not problems, "; ".join(problems), dt)


def first_difference(expected: bytes, got: bytes) -> str:
    exp_lines = expected.split(b"\n")
    got_lines = got.split(b"\n")
    for i, (a, b) in enumerate(zip(exp_lines, got_lines)):
        if a != b:
            return f"line {i + 1}: expected {a!r}, got {b!r}"
    return f"expected {len(exp_lines)} lines, got {len(got_lines)}"


def _split(text: str | None) -> set[str] | None:
    return set(text.split(",")) if text else None


def main(ns) -> int:
    cases = load_manifest(ns.corpus_dir)
    targets, names, variants = _split(ns.targets), _split(ns.cases), _split(ns.variants)
    strategies = ns.strategies.split(",")
    selected = [c for c in cases
                if (targets is None or c.target in targets)
                and (names is None or c.case in names)
                and (variants is None or c.variant in variants)]
    if not selected:
        print("kitemu corpus: no cases selected", file=sys.stderr)
        return 2
    failures = 0
    total = 0
    t0 = time.perf_counter()
    for c in selected:
        for s in strategies:
            r = run_case(c, s)
            total += 1
            if not r.ok:
                failures += 1
            if not r.ok or not ns.quiet:
                status = "ok  " if r.ok else "FAIL"
                print(f"{status} {c.target:<12} {c.variant:<10} {s:<9} {c.case:<20} "
                      f"{r.seconds * 1000:7.1f} ms  {r.detail}")
    dt = time.perf_counter() - t0
    print(f"{total - failures} passed, {failures} failed")
    print(f"kitemu corpus: {total} runs ({len(selected)} case builds x {len(strategies)} strategies) "
          f"in {dt:.1f} s", file=sys.stderr)
    return 1 if failures else 0
