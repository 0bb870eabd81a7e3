"""Every corpus program, every ELF target, every build variant, both
exec-memory strategies: expected stdout and exit code."""

import pytest

from kitemu.harness.corpus import load_manifest, run_case

from helpers import ELF_TARGETS, STRATEGIES

CASES = load_manifest()


def _id(c):
    return f"{c.target}-{c.variant}-{c.case}"


def test_manifest_covers_every_elf_target():
    assert {c.target for c in CASES} >= set(ELF_TARGETS)
    assert len({c.case for c in CASES}) >= 12


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("case", CASES, ids=_id)
def test_corpus_case(case, strategy):
    r = run_case(case, strategy)
    assert r.ok, r.detail
