#!/usr/bin/env python3
"""Hot-reload benchmarks: ``python3 benchmarks/reload.py [--quick]``, also run
by ``python3 benchmarks/run.py`` (``--only reload`` for these alone).

On all five targets, with ``Session(indirect="exported-funcs")`` and one
program compiled once up front (clang -O2 -g; -ffunction-sections on ELF,
as sessions do) whose ``work(int)`` is a noinline reloadable function:

1. **Reload latency**: from "replacement object bytes in hand" to "slot
   published": ``load_object(name, bytes)`` + ``Session.reload_function``,
   median over many reloads alternating two precompiled replacements of
   ``work`` with the live signature (so the ABI gate passes). Broken down
   into loading the object, validation, the ABI gate (and, within it, the
   replacement's signature read from DWARF on every reload) and the rest
   (the append transaction and the slot store). Reference, measured in the
   same session interleaved with the reloads: a plain ``Session.append`` of
   the same object bytes with the function renamed (``work`` ->
   ``work_ref<k>``, which in exported-funcs mode also gets an entry and a
   slot). The breakdown comes from timing wrappers around
   ``kitemu.reload.function.validate_replacement`` / ``check_abi`` /
   ``_signature`` during the timed reloads (about a microsecond of
   overhead, inside the figures).
2. **Per-call cost of the indirection**, counted in the emulator: the
   instructions of one call of ``work`` through its stable entry against
   one call of its body (a UC_HOOK_CODE counting hook over the image, added
   for the counted calls only, with the translation cache flushed over the
   image after adding and after removing it). Expected +1 on x86-64
   (``jmp *slot(%rip)``), +3 on AArch64 (adrp/ldr/br) and RISC-V
   (auipc/ld/jr). Also counted per iteration of ``loop_via(f, n)`` (the same
   loop bytes, ``f`` = entry or body).
3. **Hot loop wall time** (no hook): ``loop(n)`` calling ``work`` by name
   (through the entry: the code a reloadable program runs) and
   ``loop_via(entry, n)`` against the reference ``loop_via(body, n)``, the
   loop calling the body directly through a pointer to it. Best of
   ``repeat``; ratios against that reference.

Every figure is measured in this run; timing is never asserted.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import time
from contextlib import contextmanager
from typing import NamedTuple

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from unicorn import UC_HOOK_CODE  # noqa: E402

from kitemu.cc import compile_c  # noqa: E402
from kitemu.loader import load_object  # noqa: E402
from kitemu.session import INDIRECT_EXPORTED_FUNCS, Session  # noqa: E402
from kitemu.targets import get_target  # noqa: E402

TARGETS = ("elf-x64", "elf-aarch64", "elf-rv64", "macho-x64", "macho-arm64")

#: instructions a stable entry adds to a call, per architecture
EXPECTED_EXTRA = {"x64": 1, "aarch64": 3, "rv64": 3}

PROGRAM = """\
__attribute__((noinline)) int work(int x) { return x * 3 + 1; }

int loop(int n) {
    int acc = 0;
    for (int i = 0; i < n; i++)
        acc += work(i);
    return acc;
}

int loop_via(int (*f)(int), int n) {
    int acc = 0;
    for (int i = 0; i < n; i++)
        acc += f(i);
    return acc;
}
"""

#: two replacements of work with its exact signature, and what they compute
REPLACEMENTS = (
    ("int work(int x) { return x * 5 + 2; }\n", lambda x: x * 5 + 2),
    ("int work(int x) { return x * 7 - 3; }\n", lambda x: x * 7 - 3),
)


def _wrap32(v: int) -> int:
    return v & 0xFFFFFFFF


def cflags(target: str) -> list[str]:
    t = get_target(target)
    return ["-g"] + (["-ffunction-sections"] if t.format == "elf" else [])


class Objects(NamedTuple):
    program: bytes
    replacements: tuple[bytes, ...]


def build(target: str) -> Objects:
    """Compile the program and both replacements once (clang -O2 -g)."""
    t = get_target(target)
    flags = cflags(target)
    _, prog = compile_c(None, t, "-O2", flags, text=PROGRAM.encode(), name="prog.c")
    reps = tuple(compile_c(None, t, "-O2", flags, text=src.encode(), name=f"work_v{i}.c")[1]
                 for i, (src, _) in enumerate(REPLACEMENTS))
    return Objects(prog, reps)


def new_session(target: str, objects: Objects) -> Session:
    s = Session(target, indirect=INDIRECT_EXPORTED_FUNCS, cflags=["-g"])
    s.append(load_object("prog.o", objects.program))
    assert s.call("work", 3) == 10
    return s


def _median_us(ns: list[int]) -> float:
    return statistics.median(ns) / 1e3


# -- 1. reload latency --------------------------------------------------------------

@contextmanager
def _phase_timers(acc: dict[str, int]):
    """Time kitemu.reload.function's phases while the block runs (the
    module's globals, which reload_function looks up at each call)."""
    import kitemu.reload.function as rfmod
    saved = {}

    def wrap(attr: str, key: str):
        fn = getattr(rfmod, attr, None)
        if fn is None:
            return
        saved[attr] = fn

        def timed(*a, **kw):
            t0 = time.perf_counter_ns()
            try:
                return fn(*a, **kw)
            finally:
                acc[key] = acc.get(key, 0) + time.perf_counter_ns() - t0
        setattr(rfmod, attr, timed)

    wrap("validate_replacement", "validate")
    wrap("check_abi", "abi")
    wrap("_signature", "dwarf")
    try:
        yield
    finally:
        for attr, fn in saved.items():
            setattr(rfmod, attr, fn)


def _renamed(obj, old: str, new: str):
    symbols = [dataclasses.replace(sym, name=new) if sym.name == old else sym
               for sym in obj.symbols]
    return dataclasses.replace(obj, symbols=symbols)


def reload_latency(s: Session, objects: Objects, reloads: int, warmup: int = 2) -> dict:
    """Median us of load_object + reload_function (and its phases), and of
    the reference: load_object + rename + Session.append of the same bytes,
    interleaved in the same session."""
    work = s.symbol_name("work")
    entry = s.lookup("work")
    samples = {k: [] for k in ("total", "load", "validate", "abi", "dwarf", "rest", "append",
                               "append_load")}
    for k in range(warmup + reloads):
        i = k % len(objects.replacements)
        data = objects.replacements[i]
        acc: dict[str, int] = {}
        with _phase_timers(acc):
            t0 = time.perf_counter_ns()
            obj = load_object(f"work_v{i}.o", data)
            t1 = time.perf_counter_ns()
            s.reload_function("work", obj)
            t2 = time.perf_counter_ns()
        # the reference: the same bytes appended as a new function
        t3 = time.perf_counter_ns()
        ref = load_object(f"work_v{i}.o", data)
        t3b = time.perf_counter_ns()
        s.append(_renamed(ref, work, s.symbol_name(f"work_ref{k}")))
        t4 = time.perf_counter_ns()
        x = k + 3
        want = _wrap32(REPLACEMENTS[i][1](x))
        assert _wrap32(s.call("work", x)) == want, "the reload did not take"
        assert _wrap32(s.call(f"work_ref{k}", x)) == want, "the reference append does not run"
        assert s.lookup("work") == entry
        if k < warmup:
            continue
        total, load = t2 - t0, t1 - t0
        samples["total"].append(total)
        samples["load"].append(load)
        for key in ("validate", "abi", "dwarf"):
            samples[key].append(acc.get(key, 0))
        samples["rest"].append(total - load - acc.get("validate", 0) - acc.get("abi", 0))
        samples["append"].append(t4 - t3)
        samples["append_load"].append(t3b - t3)
    out = {f"{k}_us": _median_us(v) for k, v in samples.items()}
    out["reload_us"] = out.pop("total_us")
    out["ratio"] = out["reload_us"] / out["append_us"]
    # without reading the object (the same bytes, the same reader, on both sides)
    out["ratio_linking"] = (statistics.median(t - ld for t, ld in zip(samples["total"],
                                                                      samples["load"]))
                            / statistics.median(a - ld for a, ld in zip(samples["append"],
                                                                        samples["append_load"])))
    # each reload's own share, then the median: robust to one slow sample
    out["dwarf_share"] = statistics.median(d / t for d, t in zip(samples["dwarf"],
                                                                   samples["total"]))
    out["reloads"] = reloads
    out["generation"] = s.generation
    out["bodies"] = len(s.reloadable("work").bodies)
    return out


# -- 2. instructions per call, counted --------------------------------------------------

def counted_call(s: Session, fn, *args) -> tuple[int, int]:
    """(return value, instructions executed inside the image) of one call,
    counted by a UC_HOOK_CODE hook over the image region that exists only
    for this call. Unicorn runs stale translations when hooks change, so
    the image's code is flushed after the hook is added and after it is
    removed (as kitemu/backends/unicorn.py does for its range hooks)."""
    uc = s.proc.machine.uc
    mem = s.proc.mem
    count = 0

    def on_code(uc_, address, size, user):
        nonlocal count
        count += 1

    def flush():
        for c in mem.chunks:
            uc.ctl_remove_cache(c.addr, c.addr + c.size)

    handle = uc.hook_add(UC_HOOK_CODE, on_code, begin=mem.base, end=mem.base + mem.capacity - 1)
    try:
        flush()
        value = s.call(fn, *args)
    finally:
        uc.hook_del(handle)
        flush()
    return value, count


def call_costs(s: Session, iterations: int = 100) -> dict:
    """Instructions of one call through the entry vs one of the body, and
    per iteration of loop_via(entry) vs loop_via(body)."""
    rf = s.reloadable("work")
    entry, body = rf.entry, rf.active.addr
    v_entry, n_entry = counted_call(s, entry, 7)
    v_body, n_body = counted_call(s, body, 7)
    assert v_entry == v_body, "the entry and the body disagree"
    l_entry, c_entry = counted_call(s, "loop_via", entry, iterations)
    l_body, c_body = counted_call(s, "loop_via", body, iterations)
    assert l_entry == l_body
    l_named, c_named = counted_call(s, "loop", iterations)
    assert l_named == l_entry
    return {"entry_call": n_entry, "body_call": n_body, "extra_per_call": n_entry - n_body,
            "extra_per_iteration": (c_entry - c_body) / iterations,
            "loop_per_iteration": c_named / iterations,
            "loop_via_body_per_iteration": c_body / iterations}


# -- 3. hot loop wall time --------------------------------------------------------------

def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def hot_loop(s: Session, n: int, repeat: int) -> dict:
    rf = s.reloadable("work")
    entry, body = rf.entry, rf.active.addr
    want = s.call("loop_via", body, n)
    assert s.call("loop", n) == want and s.call("loop_via", entry, n) == want
    t_body = best_of(lambda: s.call("loop_via", body, n), repeat)
    t_loop = best_of(lambda: s.call("loop", n), repeat)
    t_via_entry = best_of(lambda: s.call("loop_via", entry, n), repeat)
    return {"n": n, "loop_s": t_loop, "via_entry_s": t_via_entry, "via_body_s": t_body,
            "loop_ratio": t_loop / t_body, "via_entry_ratio": t_via_entry / t_body}


# -- entry points ------------------------------------------------------------------

def run(quick: bool = False, targets=TARGETS, reloads: int | None = None, n: int | None = None,
        repeat: int | None = None) -> dict:
    """All three benchmarks on ``targets``; returns the figures (also printed)."""
    reloads = reloads or (10 if quick else 50)
    n = n or (200_000 if quick else 4_000_000)
    repeat = repeat or (2 if quick else 5)
    built = {}
    t0 = time.perf_counter()
    for target in targets:
        built[target] = build(target)
    print(f"(compiled the program and 2 replacements for {len(targets)} targets in "
          f"{time.perf_counter() - t0:.1f} s; clang -O2 -g)")
    out = {t: {} for t in targets}

    print(f"== reload latency: median us of load_object(bytes) + reload_function over {reloads} "
          "reloads (2 replacements alternating) vs a plain Session.append of the same bytes "
          "(function renamed), interleaved in the same session")
    print(f"{'target':<12} {'reload':>8} {'load':>7} {'valid.':>7} {'ABI':>7} {'(DWARF)':>8} "
          f"{'append+':>8} {'append':>8} {'reload/':>8} {'w/o':>6} {'DWARF':>6}")
    print(f"{'':<12} {'us':>8} {'us':>7} {'us':>7} {'us':>7} {'us':>8} "
          f"{'publish':>8} {'ref us':>8} {'append':>8} {'load':>6} {'share':>6}")
    for target in targets:
        s = new_session(target, built[target])
        try:
            r = reload_latency(s, built[target], reloads)
        finally:
            s.free()
        out[target]["reload"] = r
        print(f"{target:<12} {r['reload_us']:8.0f} {r['load_us']:7.0f} {r['validate_us']:7.1f} "
              f"{r['abi_us']:7.0f} {r['dwarf_us']:8.0f} {r['rest_us']:8.0f} {r['append_us']:8.0f} "
              f"{r['ratio']:7.2f}x {r['ratio_linking']:5.2f}x {r['dwarf_share'] * 100:5.0f}%")
    print("(load = load_object of the bytes (the reference reads the same bytes); ABI = the "
          "whole gate; DWARF = within it, reading the replacement's signature from its debug "
          "info, done on every reload, share = of the whole reload; append+publish = the rest: "
          "prepare, the append transaction, the slot store; w/o load = the ratio with the "
          "object reading taken out of both sides)")

    print()
    print("== per-call cost of the stable entry, counted in the emulator (instructions executed "
          "in the image)")
    print(f"{'target':<12} {'via entry':>9} {'body':>5} {'extra':>6} {'expected':>8} "
          f"{'extra/iter':>10} {'loop/iter':>9} {'body-ptr loop/iter':>18}")
    for target in targets:
        s = new_session(target, built[target])
        try:
            c = call_costs(s)
            h = hot_loop(s, n, repeat)
        finally:
            s.free()
        c["expected"] = EXPECTED_EXTRA[get_target(target).arch_module]
        out[target]["calls"] = c
        out[target]["loop"] = h
        print(f"{target:<12} {c['entry_call']:9d} {c['body_call']:5d} {c['extra_per_call']:+6d} "
              f"{c['expected']:+8d} {c['extra_per_iteration']:+10.2f} "
              f"{c['loop_per_iteration']:9.2f} {c['loop_via_body_per_iteration']:18.2f}")

    print()
    print(f"== hot loop: n={n} calls of work, wall time without hooks (best of {repeat}); "
          "reference: loop_via(body) calling the body through a pointer to it")
    print(f"{'target':<12} {'loop(n) s':>10} {'via entry s':>11} {'via body s':>10} "
          f"{'loop/body':>9} {'entry/body':>10} {'ns/call':>8}")
    for target in targets:
        h = out[target]["loop"]
        print(f"{target:<12} {h['loop_s']:10.4f} {h['via_entry_s']:11.4f} {h['via_body_s']:10.4f} "
              f"{h['loop_ratio']:8.3f}x {h['via_entry_ratio']:9.3f}x "
              f"{(h['via_entry_s'] - h['via_body_s']) / n * 1e9:+8.2f}")
    print("(loop(n) calls work by name: a direct call to the entry; loop_via(entry) is the same "
          "loop bytes as the reference; ns/call = the entry's extra wall time per call)")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    ap.add_argument("--targets", default=",".join(TARGETS),
                    help="comma-separated targets (default: all five)")
    ns = ap.parse_args(argv)
    run(ns.quick, targets=ns.targets.split(","))
    return 0


if __name__ == "__main__":
    sys.exit(main())
