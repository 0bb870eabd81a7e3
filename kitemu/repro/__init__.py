"""Reproducing crashes: ``kitemu repro``.

* :mod:`kitemu.repro.run` - a failing :class:`~kitemu.repro.run.Program`
  (objects, archives, entry and arguments, or a host-side JIT *scenario*)
  run under one host model x exec-memory strategy
  (:func:`~kitemu.repro.run.run_once`) or all of them
  (:func:`~kitemu.repro.run.run_table`), and the layout-independent report
  lines a regression case's ``expected.report`` holds;
* :mod:`kitemu.repro.cases` - regression cases (``regressions/*/case.json``):
  buggy, fixed and padded variants, expected report, table, stdout;
* :mod:`kitemu.repro.reduce` - ``--minimize``: ddmin over objects, archive
  members, sections, functions and relocation groups of the neutral object
  model; the reduced reproducer as a replayable JSON file;
* :mod:`kitemu.repro.cli` - the command.
"""

from .cases import Case, find_cases, load_case
from .reduce import Edit, Reduction, apply_edits, load_replay, minimize, write_reduction
from .run import (DEFAULT_SAME, Outcome, Program, fault_key, format_table, gather_program,
                  host_models, parse_report, report_fields, run_once, run_table, strategies)

__all__ = [
    "Case", "DEFAULT_SAME", "Edit", "Outcome", "Program", "Reduction", "apply_edits",
    "fault_key", "find_cases", "format_table", "gather_program", "host_models", "load_case",
    "load_replay", "minimize", "parse_report", "report_fields", "run_once", "run_table",
    "strategies", "write_reduction",
]
