"""Running the fuzz properties with hypothesis: work items, shards, budgets,
the example database, replay files.

The work is a list of *work items*, one per (target, relocation kind), in
a fixed order (:func:`work_items`). ``--shard I/N`` takes every N-th item
starting at I (:func:`shard`), so N CI workers split the kinds of every
target between them, disjointly, and together cover all of them. Each item
is one hypothesis test (``@given(reloc_cases(target, [kind]))``) with its
own database key, so a failure saved by one worker in a shared example
database (a directory, or Redis) is replayed first by every worker that
runs the same item. Seeds: ``--seed N`` makes a run repeatable; each item
and batch gets ``sha256(seed, shard, item, batch)``.

Budgets: ``--examples N`` runs N examples of every item of the shard;
``--seconds S`` runs batches of examples round-robin over the items until
the time is up.

On a failure hypothesis shrinks the case; the minimal one is written as a
replay file (JSON: the case, the failed properties, the mutation if any)
into ``--save-dir``, and :func:`replay` rebuilds and rechecks it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections import Counter
from dataclasses import dataclass, field

from ..errors import ConfigError
from .model import FUZZ_TARGETS, REPLAY_VERSION, RelocCase, catalogue


@dataclass(frozen=True)
class WorkItem:
    target: str
    kind: str

    @property
    def key(self) -> str:
        return f"{self.target}/{self.kind}"


def work_items(targets=None, kinds=None) -> list[WorkItem]:
    """Every (target, kind), targets in registry order, kinds in table order."""
    targets = list(targets or FUZZ_TARGETS)
    for t in targets:
        if t not in FUZZ_TARGETS:
            raise ConfigError(f"unknown fuzz target {t!r}; known: {', '.join(FUZZ_TARGETS)}")
    items = [WorkItem(t, k) for t in FUZZ_TARGETS if t in targets for k in catalogue(t)
             if not kinds or k in kinds]
    if kinds and not items:
        raise ConfigError(f"no relocation kind {', '.join(kinds)} on {', '.join(targets)}")
    return items


def parse_shard(text: str | None) -> tuple[int, int]:
    if not text:
        return 0, 1
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise ConfigError(f"--shard {text!r}: expected I/N, e.g. 0/4") from None
    if not (n >= 1 and 0 <= i < n):
        raise ConfigError(f"--shard {text!r}: need 0 <= I < N")
    return i, n


def shard(items: list[WorkItem], index: int, count: int) -> list[WorkItem]:
    """Every ``count``-th item starting at ``index``."""
    return items[index::count]


def derive_seed(seed: int, shard_spec: tuple[int, int], item: WorkItem, batch: int) -> int:
    h = hashlib.sha256(f"{seed}/{shard_spec[0]}/{shard_spec[1]}/{item.key}/{batch}".encode())
    return int.from_bytes(h.digest()[:8], "little")


def open_database(spec: str | None):
    """``None``, a directory (DirectoryBasedExampleDatabase) or
    ``redis://HOST:PORT[/DB]`` (RedisExampleDatabase; needs the ``redis``
    package, imported only here)."""
    if not spec:
        return None
    if spec.startswith("redis://"):
        try:
            import redis
        except ImportError:
            raise ConfigError("--database redis://... needs the Python package 'redis', which "
                              "is not installed (pip install redis)") from None
        from hypothesis.extra.redis import RedisExampleDatabase
        return RedisExampleDatabase(redis.Redis.from_url(spec), key_prefix=b"kitemu-fuzz:")
    from hypothesis.database import DirectoryBasedExampleDatabase
    return DirectoryBasedExampleDatabase(spec)


# ---------------------------------------------------------------------------

@dataclass
class TargetStats:
    examples: int = 0
    seconds: float = 0.0
    failures: int = 0
    outcomes: Counter = field(default_factory=Counter)
    verified: Counter = field(default_factory=Counter)
    rejected: Counter = field(default_factory=Counter)
    islands: Counter = field(default_factory=Counter)
    lld_status: Counter = field(default_factory=Counter)
    lld_compared: Counter = field(default_factory=Counter)
    lld_skipped: Counter = field(default_factory=Counter)
    lld_reasons: dict = field(default_factory=dict)       # kind -> why its fields were skipped
    lld_case_skips: Counter = field(default_factory=Counter)   # why whole cases were skipped

    @property
    def rate(self) -> float:
        return self.examples / self.seconds if self.seconds else 0.0


@dataclass
class FoundFailure:
    item: WorkItem
    result: object            # CheckResult (None for a fuzzer error)
    path: str | None
    text: str


@dataclass
class Report:
    stats: dict[str, TargetStats] = field(default_factory=dict)
    failures: list[FoundFailure] = field(default_factory=list)
    items: list[WorkItem] = field(default_factory=list)
    seed: int = 0

    def target(self, name: str) -> TargetStats:
        return self.stats.setdefault(name, TargetStats())

    @property
    def ok(self) -> bool:
        return not self.failures


def replay_document(result, *, mutation: str | None, seed: int | None, lld: bool) -> dict:
    case: RelocCase = result.case
    return {
        "kitemu_fuzz_replay": REPLAY_VERSION,
        "target": case.target,
        "kind": case.note.get("kind"),
        "property": result.failures[0].prop if result.failures else None,
        "failures": [{"property": f.prop, "message": f.message} for f in result.failures],
        "outcome": result.outcome,
        "error": result.error,
        "mutation": mutation,
        "seed": seed,
        "lld": lld,
        "case": case.to_dict(),
    }


def write_replay(result, save_dir: str, *, mutation=None, seed=None, lld=False) -> str:
    doc = replay_document(result, mutation=mutation, seed=seed, lld=lld)
    text = json.dumps(doc, indent=1)
    digest = hashlib.sha1(json.dumps(doc["case"], sort_keys=True).encode()).hexdigest()[:10]
    kind = (doc["kind"] or "case").replace(":", "-")
    os.makedirs(save_dir, exist_ok=True)
    path = os.path.join(save_dir, f"fuzz-{doc['target']}-{kind}-{digest}.json")
    with open(path, "w") as f:
        f.write(text + "\n")
    return path


def load_replay(path: str) -> tuple[RelocCase, dict]:
    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path}: cannot read the replay file: {e}") from None
    if doc.get("kitemu_fuzz_replay") != REPLAY_VERSION:
        raise ConfigError(f"{path}: not a kitemu fuzz replay file (version "
                          f"{doc.get('kitemu_fuzz_replay')!r})")
    try:
        case = RelocCase.from_dict(doc["case"])
    except (KeyError, TypeError, ValueError) as e:
        raise ConfigError(f"{path}: malformed case: {e}") from None
    return case, doc


def replay(path: str, *, lld: bool | None = None):
    """Rebuild and recheck the case of a replay file (under its recorded
    mutation). Returns (CheckResult, the document)."""
    from .check import check_case
    from .lld import find_lld
    from .mutate import mutated
    case, doc = load_replay(path)
    use_lld = doc.get("lld", True) if lld is None else lld
    use_lld = bool(use_lld and find_lld())
    with mutated(doc.get("mutation")):
        return check_case(case, lld=use_lld), doc


# ---------------------------------------------------------------------------

class _State:
    last = None          # the last failing CheckResult (hypothesis replays the minimal last)
    current = None       # the case being checked


def _reason_class(reason: str) -> str:
    """An ld.lld message without its place and symbol, to count alike
    refusals together."""
    reason = re.sub(r"\S+\.o:\([^)]*\):\s*", "", reason)
    reason = re.sub(r"\s*(against symbol|; references)\b.*$", "", reason)
    return re.sub(r"out of range: .*", "out of range", reason)


def _record(report: Report, item: WorkItem, res) -> None:
    st = report.target(item.target)
    st.examples += 1
    st.outcomes[res.outcome] += 1
    st.verified.update(res.verified)
    st.rejected.update(res.rejected)
    st.islands.update(res.islands)
    if res.lld is not None:
        st.lld_status[res.lld.status] += 1
        st.lld_compared.update(res.lld.compared)
        st.lld_skipped.update(res.lld.skipped)
        for k, why in res.lld.skip_reasons.items():
            st.lld_reasons.setdefault(k, why)
        if res.lld.status == "skipped":
            st.lld_case_skips[_reason_class(res.lld.reason)] += 1


def run_item(item: WorkItem, report: Report, *, examples: int, seed: int, database=None,
             lld: bool = False, save_dir: str = "fuzz-failures", mutation: str | None = None,
             echo=print) -> FoundFailure | None:
    """Run ``examples`` examples of one work item. A failure is shrunk,
    written as a replay file and returned."""
    from hypothesis import HealthCheck, Verbosity, given, settings
    from hypothesis import seed as hseed

    from .check import FuzzFailure, check_case
    from .mutate import mutated
    from .strategies import reloc_cases

    state = _State()

    def fuzz_one(case):
        state.current = case
        res = check_case(case, lld=lld)
        _record(report, item, res)
        if res.failures:
            state.last = res
            raise FuzzFailure(res)

    fuzz_one._hypothesis_internal_add_digest = f"kitemu-fuzz/{item.key}".encode()
    test = given(reloc_cases(item.target, [item.kind]))(fuzz_one)
    # the seed first: @seed resets the test's settings to database=None, the
    # settings applied after it bring the database back
    test = hseed(seed)(test)
    test = settings(max_examples=examples, database=database, deadline=None,
                    suppress_health_check=list(HealthCheck), report_multiple_bugs=False,
                    print_blob=False, verbosity=Verbosity.quiet)(test)
    t0 = time.perf_counter()
    found = None
    try:
        with mutated(mutation):
            test()
    except Exception as e:      # FuzzFailure (maybe wrapped by hypothesis), or a fuzzer bug
        res = state.last
        if res is not None:     # a property failed: the minimal case ran last
            path = write_replay(res, save_dir, mutation=mutation, seed=seed, lld=lld)
            found = FoundFailure(item, res, path, res.summary())
        else:                   # the fuzzer itself broke: report it, never hide it
            from .check import CheckResult, Failure
            path = None
            if state.current is not None:
                res = CheckResult(state.current, "crashed", str(e),
                                  [Failure("fuzzer-error", f"{type(e).__name__}: {e}")])
                path = write_replay(res, save_dir, mutation=mutation, seed=seed, lld=lld)
            found = FoundFailure(item, res, path,
                                 f"fuzzer error on {item.key}: {type(e).__name__}: {e}")
        report.target(item.target).failures += 1
        report.failures.append(found)
        echo(f"FAIL {item.key}: {found.text.splitlines()[0][:300]}")
        if found.path:
            echo(f"  replay file: {found.path}  (kitemu fuzz --replay {found.path})")
    finally:
        report.target(item.target).seconds += time.perf_counter() - t0
    return found


def run(targets=None, kinds=None, *, examples: int | None = None, seconds: float | None = None,
        shard_spec: tuple[int, int] = (0, 1), database=None, seed: int | None = None,
        lld: bool = False, save_dir: str = "fuzz-failures", mutation: str | None = None,
        batch: int = 10, echo=print) -> Report:
    """Run the fuzzer over this shard's work items within the budget."""
    if seed is None:
        seed = int.from_bytes(os.urandom(4), "little")
    items = shard(work_items(targets, kinds), *shard_spec)
    report = Report(items=items, seed=seed)
    db = open_database(database) if isinstance(database, str) or database is None else database
    kw = dict(database=db, lld=lld, save_dir=save_dir, mutation=mutation, echo=echo)
    failed: set[WorkItem] = set()
    if seconds is None:
        n = examples if examples is not None else 50
        for item in items:
            run_item(item, report, examples=n, seed=derive_seed(seed, shard_spec, item, 0), **kw)
        return report
    deadline = time.monotonic() + seconds
    rnd = 0
    while time.monotonic() < deadline:
        progressed = False
        for item in items:
            if item in failed:
                continue
            if time.monotonic() >= deadline:
                break
            if run_item(item, report, examples=batch,
                        seed=derive_seed(seed, shard_spec, item, rnd), **kw):
                failed.add(item)
            progressed = True
        if not progressed:
            break
        rnd += 1
    return report


def format_report(report: Report, *, lld: bool) -> str:
    lines = []
    for t in FUZZ_TARGETS:
        st = report.stats.get(t)
        if st is None:
            continue
        kinds = {i.kind for i in report.items if i.target == t}
        line = (f"{t:<12} {st.examples:6d} examples {st.seconds:7.1f} s {st.rate:7.1f} ex/s  "
                f"failures {st.failures}  verified {sum(st.verified.values())} "
                f"({len(set(st.verified) & kinds)}/{len(kinds)} kinds)  "
                f"rejected {sum(st.rejected.values())}  islands {sum(st.islands.values())}")
        if lld and t.startswith("elf"):
            line += (f"  lld: {st.lld_status.get('compared', 0)} cases compared, "
                     f"{sum(st.lld_compared.values())} fields ({len(st.lld_compared)} kinds), "
                     f"{st.lld_status.get('skipped', 0)} cases and "
                     f"{sum(st.lld_skipped.values())} fields skipped")
        lines.append(line)
        if lld and t.startswith("elf"):
            # what the differential did not compare, and why: never silently
            for why, n in st.lld_case_skips.most_common():
                lines.append(f"    lld skipped {n} case(s): {why}")
            for k, why in sorted(st.lld_reasons.items()):
                if k != "lld":          # lld's own refusals: counted as case skips above
                    lines.append(f"    lld skipped {k} fields: {why}")
    return "\n".join(lines)
