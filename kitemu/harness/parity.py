"""``kitemu parity``: the regression harness of roadmap §3.1.

Every corpus case x every target x every input kind x every backend that can
run it, each diffed against the case's expected stdout and exit code and
against the other backends:

input kinds
    ``o``      the committed objects, one ``.o`` per source file (multi-file
               cases are linked from several objects)
    ``a``      the same objects packed in a static archive (``case.a``):
               only the entry symbol is a root, everything else is pulled
               lazily from the archive
    ``c``      the C sources, compiled by clang for the target (``kitemu run
               a.c b.c``)
    ``stdin``  single-source cases: the C source piped to ``kitemu run -``
    ``cli``    the objects through the real command line in a subprocess,
               with ``-e ENTRY`` and the case's arguments: exit status and
               stdout as a shell sees them

backends
    ``emulated``  kitemu's JIT in unicorn (every target)
    ``native``    kitemu's JIT on real memory (elf-x64 on an x86-64 Linux host)
    ``aot``       ld.lld's static image at a fixed address, run in unicorn
                  with the same host functions (ELF targets; the reference)

A combination a host cannot run (no clang for ``c``/``stdin``, no ld.lld for
``aot``, a non-x86-64 host for ``native``) is reported as skipped with the
reason, never silently dropped.
"""

from __future__ import annotations

import concurrent.futures
import difflib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from xml.sax.saxutils import escape, quoteattr

from ..errors import KitemuError
from .corpus import default_corpus_dir, load_manifest

KINDS = ("o", "a", "c", "stdin", "cli")
BACKENDS = ("emulated", "native", "aot")
DEFAULT_VARIANT = "O2"
CELL_TIMEOUT = 60.0


@dataclass
class Cell:
    case: str
    target: str
    kind: str
    backend: str
    status: str = "pending"        # pass | fail | skip
    detail: str = ""
    seconds: float = 0.0
    exit_code: int | None = None
    stdout: str = ""               # decoded with surrogateescape for reports

    @property
    def key(self) -> tuple:
        return (self.case, self.target, self.kind, self.backend)


@dataclass
class Plan:
    corpus_dir: str
    variant: str
    cases: dict = field(default_factory=dict)   # (case, target) -> manifest CorpusCase


def native_supported(target: str) -> str | None:
    """None when the native backend can run ``target`` here, else why not."""
    from ..backends.native import check_native
    try:
        check_native(target)
    except KitemuError as e:
        return str(e)
    return None


def skip_reason(kind: str, backend: str, target: str, case_sources: int) -> str | None:
    from ..cc import find_clang
    if backend == "native":
        why = native_supported(target)
        if why:
            return why
    if backend == "aot":
        if not target.startswith("elf-"):
            return "the AOT reference links ELF only (Mach-O images need dyld)"
        if shutil.which("ld.lld") is None:
            return "ld.lld is not installed"
    if kind in ("c", "stdin"):
        try:
            find_clang()
        except KitemuError:
            return "clang is not installed"
    if kind == "stdin" and case_sources != 1:
        return "stdin takes one translation unit; the case has several"
    if kind in ("stdin", "cli") and backend == "aot":
        return "the AOT reference takes object files"
    return None


def plan_cells(plan: Plan, targets, cases, kinds, backends) -> list[Cell]:
    cells = []
    for (case, target), cc in sorted(plan.cases.items()):
        if (targets and target not in targets) or (cases and case not in cases):
            continue
        for kind in kinds:
            for backend in backends:
                cell = Cell(case, target, kind, backend)
                why = skip_reason(kind, backend, target, len(cc.objects))
                if why:
                    cell.status, cell.detail = "skip", why
                cells.append(cell)
    return cells


def _sources(corpus_dir: str, case: str) -> list[str]:
    d = os.path.join(corpus_dir, case)
    return sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith(".c"))


def _archive_path(cc) -> str:
    return os.path.join(os.path.dirname(cc.objects[0]), f"{cc.case}.a")


def run_cell(cell: Cell, plan: Plan) -> Cell:
    """Run one cell (in a worker process when -j > 1)."""
    from ..driver import gather, link_and_run
    cc = plan.cases[(cell.case, cell.target)]
    t0 = time.perf_counter()
    try:
        if cell.kind == "cli":
            code, out = _run_cli(cell, cc)
        else:
            if cell.kind == "o":
                paths, stdin = cc.objects, None
            elif cell.kind == "a":
                paths, stdin = [_archive_path(cc)], None
            elif cell.kind == "c":
                paths, stdin = _sources(plan.corpus_dir, cell.case), None
            else:  # stdin
                [src] = _sources(plan.corpus_dir, cell.case)
                with open(src, "rb") as f:
                    paths, stdin = ["-"], f.read()
            if cell.backend == "aot" and cell.kind == "c":
                paths = _compile_to_files(paths, cell.target)
            inputs = gather(paths, target=cell.target, opt="-O2", stdin=stdin)
            if cell.backend == "aot":
                from ..aot import run_aot
                result = run_aot(paths, cell.target, entry=cc.entry, args=cc.args,
                                 timeout=CELL_TIMEOUT)
            else:
                result = link_and_run(inputs, entry=cc.entry, args=cc.args,
                                      backend=cell.backend, timeout=CELL_TIMEOUT)
            code, out = result.exit_code, result.stdout
            if result.fault is not None:
                cell.detail = result.fault.render()
    except KitemuError as e:
        code, out = None, b""
        cell.detail = f"error: {e}"
    cell.seconds = time.perf_counter() - t0
    cell.exit_code = code
    cell.stdout = out.decode("utf-8", "surrogateescape")
    problems = []
    if code != cc.expected_exit:
        problems.append(f"exit {code}, expected {cc.expected_exit}")
    if out != cc.expected_stdout:
        problems.append("stdout differs:\n" + unified_diff(cc.expected_stdout, out))
    if problems:
        cell.status = "fail"
        cell.detail = "; ".join(problems) + (f"\n{cell.detail}" if cell.detail else "")
    else:
        cell.status = "pass"
        cell.detail = ""
    return cell


def _run_cli(cell: Cell, cc) -> tuple[int, bytes]:
    cmd = [sys.executable, "-m", "kitemu.cli", "run", "--target", cell.target,
           "--backend", cell.backend, "--timeout", str(CELL_TIMEOUT), "-e", cc.entry,
           *cc.objects, "--", *cc.args]
    proc = subprocess.run(cmd, capture_output=True, timeout=CELL_TIMEOUT * 2)
    return proc.returncode, proc.stdout


def _compile_to_files(sources: list[str], target: str) -> list[str]:
    from ..cc import compile_c
    from ..targets import get_target
    out_dir = tempfile.mkdtemp(prefix="kitemu-parity-")
    paths = []
    for src in sources:
        _, data = compile_c(src, get_target(target), "-O2")
        path = os.path.join(out_dir, os.path.basename(src)[:-2] + ".o")
        with open(path, "wb") as f:
            f.write(data)
        paths.append(path)
    return paths


def unified_diff(expected: bytes, got: bytes, limit: int = 40) -> str:
    lines = list(difflib.unified_diff(
        expected.decode("utf-8", "replace").splitlines(),
        got.decode("utf-8", "replace").splitlines(),
        "expected", "got", lineterm="", n=1))
    if len(lines) > limit:
        lines = lines[:limit] + [f"... ({len(lines) - limit} more diff lines)"]
    return "\n".join("    " + line for line in lines)


def cross_check(cells: list[Cell]) -> list[str]:
    """Backends that ran the same case/target/kind must agree with each
    other (they also each agree with the expected output when they pass)."""
    groups: dict[tuple, list[Cell]] = {}
    for c in cells:
        if c.status in ("pass", "fail"):
            groups.setdefault((c.case, c.target, c.kind), []).append(c)
    out = []
    for key, group in sorted(groups.items()):
        outcomes = {(c.exit_code, c.stdout) for c in group}
        if len(outcomes) > 1:
            names = ", ".join(f"{c.backend}: exit {c.exit_code}" for c in group)
            out.append(f"{'/'.join(key)}: backends disagree ({names})")
    return out


# -- reports -------------------------------------------------------------------

def table(cells: list[Cell], backends) -> str:
    rows: dict[tuple, dict[str, list[Cell]]] = {}
    for c in cells:
        rows.setdefault((c.case, c.target), {}).setdefault(c.backend, []).append(c)
    head = f"{'case':<16} {'target':<12} " + " ".join(f"{b:<22}" for b in backends)
    lines = [head, "-" * len(head)]
    for (case, target), by_backend in sorted(rows.items()):
        parts = []
        for b in backends:
            group = by_backend.get(b, [])
            ran = [c for c in group if c.status != "skip"]
            if not ran:
                parts.append(f"{'skip':<22}")
                continue
            failed = [c.kind for c in ran if c.status == "fail"]
            ms = sum(c.seconds for c in ran) * 1000
            text = (f"ok {len(ran)}/{len(group)}" if not failed
                    else f"FAIL {','.join(failed)}") + f" {ms:.0f}ms"
            parts.append(f"{text:<22}")
        lines.append(f"{case:<16} {target:<12} " + " ".join(parts))
    return "\n".join(lines)


def write_json(path: str, cells: list[Cell], disagreements: list[str], seconds: float) -> None:
    with open(path, "w") as f:
        json.dump({"seconds": seconds, "disagreements": disagreements,
                   "cells": [asdict(c) for c in cells]}, f, indent=1)


def write_junit(path: str, cells: list[Cell], seconds: float) -> None:
    by_target: dict[str, list[Cell]] = {}
    for c in cells:
        by_target.setdefault(c.target, []).append(c)
    out = ['<?xml version="1.0" encoding="UTF-8"?>',
           f'<testsuites name="kitemu parity" tests="{len(cells)}" '
           f'failures="{sum(c.status == "fail" for c in cells)}" time="{seconds:.3f}">']
    for target, group in sorted(by_target.items()):
        out.append(f'  <testsuite name={quoteattr(target)} tests="{len(group)}" '
                   f'failures="{sum(c.status == "fail" for c in group)}" '
                   f'skipped="{sum(c.status == "skip" for c in group)}">')
        for c in group:
            out.append(f'    <testcase classname={quoteattr(f"{c.case}.{c.target}")} '
                       f'name={quoteattr(f"{c.kind}-{c.backend}")} time="{c.seconds:.3f}">')
            if c.status == "fail":
                first = c.detail.splitlines()[0] if c.detail else "mismatch"
                out.append(f'      <failure message={quoteattr(first)}>{escape(c.detail)}</failure>')
            elif c.status == "skip":
                out.append(f'      <skipped message={quoteattr(c.detail)}/>')
            out.append("    </testcase>")
        out.append("  </testsuite>")
    out.append("</testsuites>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


# -- main -----------------------------------------------------------------------

def _split(text):
    return tuple(x for x in text.split(",") if x) if text else None


def main(ns) -> int:
    corpus_dir = ns.corpus_dir or default_corpus_dir()
    variant = ns.variant or DEFAULT_VARIANT
    plan = Plan(corpus_dir, variant)
    for cc in load_manifest(corpus_dir):
        if cc.variant == variant:
            plan.cases[(cc.case, cc.target)] = cc
    if not plan.cases:
        print(f"kitemu parity: no corpus entries for variant {variant!r}", file=sys.stderr)
        return 2
    kinds = _split(ns.kinds) or KINDS
    backends = _split(ns.backends) or BACKENDS
    for k in kinds:
        if k not in KINDS:
            raise KitemuError(f"unknown input kind {k!r}; known: {', '.join(KINDS)}")
    for b in backends:
        if b not in BACKENDS:
            raise KitemuError(f"unknown backend {b!r}; known: {', '.join(BACKENDS)}")
    cells = plan_cells(plan, _split(ns.targets), _split(ns.cases), kinds, backends)
    todo = [c for c in cells if c.status == "pending"]
    if not todo:
        print("kitemu parity: nothing to run (every selected cell is skipped)", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    done = 0
    progress_every = max(1, len(todo) // 20)

    def report(c: Cell) -> None:
        nonlocal done
        done += 1
        if c.status == "fail":
            print(f"FAIL {c.case} {c.target} {c.kind} {c.backend}: "
                  f"{c.detail.splitlines()[0] if c.detail else ''}", file=sys.stderr, flush=True)
        if done % progress_every == 0 or done == len(todo):
            print(f"kitemu parity: {done}/{len(todo)} runs, {time.perf_counter() - t0:.1f} s",
                  file=sys.stderr, flush=True)

    results: dict[tuple, Cell] = {}
    if ns.jobs > 1:
        with concurrent.futures.ProcessPoolExecutor(max_workers=ns.jobs) as pool:
            futures = [pool.submit(run_cell, c, plan) for c in todo]
            for fut in concurrent.futures.as_completed(futures):
                c = fut.result()
                results[c.key] = c
                report(c)
    else:
        for c in todo:
            run_cell(c, plan)
            results[c.key] = c
            report(c)
    cells = [results.get(c.key, c) for c in cells]
    seconds = time.perf_counter() - t0
    disagreements = cross_check(cells)

    print(table(cells, backends))
    failed = [c for c in cells if c.status == "fail"]
    for c in failed:
        print(f"\nFAIL {c.case} / {c.target} / {c.kind} / {c.backend}\n{c.detail}")
    for d in disagreements:
        print(f"\nMISMATCH {d}")
    skipped = sorted({(c.backend, c.kind, c.detail) for c in cells if c.status == "skip"})
    if skipped and not ns.quiet:
        print("\nskipped:")
        for backend, kind, why in skipped:
            print(f"  {kind}/{backend}: {why}")
    n_pass = sum(c.status == "pass" for c in cells)
    print(f"\nkitemu parity: {len(cells)} cells ({len(plan.cases)} case/target pairs x "
          f"{len(kinds)} input kinds x {len(backends)} backends), variant {variant}, "
          f"-j {ns.jobs}, {seconds:.1f} s")
    print(f"{n_pass} passed, {len(failed)} failed, {len(cells) - n_pass - len(failed)} skipped")
    if ns.json:
        write_json(ns.json, cells, disagreements, seconds)
    if ns.junit:
        write_junit(ns.junit, cells, seconds)
    return 1 if failed or disagreements else 0
