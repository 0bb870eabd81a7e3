"""Regression cases: a directory with a ``case.json`` (see regressions/README.md).

``case.json`` names the target, the host model and strategy under which the
expected report holds, the inputs (paths relative to the case directory),
an optional scenario, the expected host x strategy table, and variants:
``fixed`` (the same input with the cause removed; expected stdout and exit
status) and optionally ``padded`` (the crash among irrelevant objects, for
``--minimize``). A variant overrides ``inputs``, ``scenario``, ``host``,
``strategy``, ``entry``, ``args`` and ``table`` where it gives them.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from ..errors import ConfigError
from .run import Program, build_program, check_scenario, load_inputs, parse_report

VARIANTS = ("buggy", "fixed", "padded")


@dataclass
class Case:
    name: str
    dir: str
    meta: dict

    def spec(self, variant: str = "buggy") -> dict:
        """The case's settings for ``variant``."""
        if variant not in VARIANTS:
            raise ConfigError(f"unknown case variant {variant!r}; known: {', '.join(VARIANTS)}")
        base = {k: v for k, v in self.meta.items() if k not in VARIANTS}
        if variant != "buggy":
            if variant not in self.meta:
                raise ConfigError(f"case {self.name} has no {variant} variant")
            if not isinstance(self.meta[variant], dict):
                raise ConfigError(f"{self.json}: variant {variant!r} must be a JSON object")
            base.update(self.meta[variant])
        base.setdefault("entry", "main")
        base.setdefault("args", [])
        base.setdefault("scenario", None)
        return base

    def path(self, rel: str) -> str:
        return os.path.join(self.dir, rel)

    def program(self, variant: str = "buggy") -> Program:
        """Load the variant's inputs. Objects are named by their path
        relative to the case directory (``obj/main.o``), so reports and
        reduced reproducers do not depend on where the checkout is."""
        spec = self.spec(variant)
        inputs = spec["inputs"]
        if not isinstance(inputs, list) or not all(isinstance(i, str) for i in inputs):
            raise ConfigError(f"{self.json}: {variant}: 'inputs' must be a list of paths")
        scenario = check_scenario(spec["scenario"], f"{self.json}: {variant}")
        return build_program(load_inputs([self.path(rel) for rel in inputs], inputs),
                             spec["target"], spec["entry"], list(spec["args"]), scenario)

    @property
    def json(self) -> str:
        return os.path.join(self.dir, "case.json")

    def expected_report(self) -> dict[str, str] | None:
        p = self.path(self.meta.get("expected_report", "expected.report"))
        if not os.path.exists(p):
            return None
        return parse_report(self._read(p).decode("utf-8", errors="replace"), p)

    def expected_table(self, variant: str = "buggy") -> dict[str, dict[str, str]]:
        return self.spec(variant).get("table", {})

    def expected_stdout(self, variant: str = "fixed") -> bytes | None:
        rel = self.spec(variant).get("stdout")
        if rel is None:
            return None
        return self._read(self.path(rel))

    def _read(self, path: str) -> bytes:
        try:
            with open(path, "rb") as f:
                return f.read()
        except OSError as e:
            raise ConfigError(f"{path}: cannot read (case {self.name}): {e.strerror}") from None

    def expected_exit(self, variant: str = "fixed") -> int | None:
        return self.spec(variant).get("exit")


def load_case(path: str) -> Case:
    """A case directory, or its case.json."""
    d = os.path.dirname(path) if path.endswith("case.json") else path
    p = os.path.join(d, "case.json")
    try:
        with open(p, encoding="utf-8") as f:
            meta = json.load(f)
    except OSError as e:
        raise ConfigError(f"{p}: cannot read the case: {e.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{p}: not valid JSON: {e}") from None
    if not isinstance(meta, dict):
        raise ConfigError(f"{p}: a case is a JSON object")
    for key in ("target", "inputs"):
        if key not in meta:
            raise ConfigError(f"{p}: missing {key!r}")
    return Case(os.path.basename(os.path.normpath(d)), d, meta)


def find_cases(root: str) -> list[Case]:
    """Every case under ``root`` (one level), sorted by name."""
    out = []
    for name in sorted(os.listdir(root)):
        if os.path.exists(os.path.join(root, name, "case.json")):
            out.append(load_case(os.path.join(root, name)))
    return out
