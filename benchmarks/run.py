#!/usr/bin/env python3
"""kitemu benchmarks, one command: ``python3 benchmarks/run.py [--quick] [--only NAME]``.

1. Execution overhead: the CPU-bound ``kernel`` of benchmarks/data/cpu_kernel.c
   linked by kitemu and called through ``JitProcess.call`` (with kitemu's
   hooks installed: host-area code hook, invalid-memory hook, interrupt hook)
   versus the *same linked bytes* copied into a fresh bare unicorn with no
   hook at all. Printed as a ratio (goal <= 1.1x).
2. Native vs emulated: the same kernel linked by kitemu on real memory
   (x86-64 Linux hosts) against the emulated run.
3. Link time per relocation on the largest corpus input (by relocation
   count), per target, against the time to merely read the objects.
4. ``kitemu parity`` wall time for the whole matrix.
5. Append cost vs image size and the memory of 10,000 small appends
   (benchmarks/append.py, also runnable alone).
6. Hot reload: reload latency (load_object + reload_function) against a
   plain append of the same bytes, the instructions a stable entry adds to
   a call (counted in the emulator) and a hot loop through the entry
   against one calling the body (benchmarks/reload.py, also runnable alone).

``--only NAME[,NAME]`` runs some of them: exec, native, link, parity, append, reload.

Every figure is measured in this run; ratios are against a reference measured
in the same run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from unicorn import Uc  # noqa: E402

from kitemu.backends.unicorn import uc_perm  # noqa: E402
from kitemu.harness.corpus import load_manifest  # noqa: E402
from kitemu.loader import load_object  # noqa: E402
from kitemu.runtime import SENTINEL, STACK_SIZE, STACK_TOP, JitProcess  # noqa: E402

TARGETS = ["elf-x64", "elf-aarch64", "elf-rv64"]
KERNELS = ("kernel", "kernel_mem")     # ALU-bound, memory-bound


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def bare_unicorn_copy(proc: JitProcess) -> Uc:
    """A fresh unicorn holding the same linked bytes with the same
    permissions, plus a stack: no kitemu code and no hooks."""
    arch = proc.arch
    uc = Uc(arch.uc_arch, arch.uc_mode)
    if arch.fixed_uc_page_size is None:
        uc.ctl_set_page_size(proc.host.page_size)
    for chunk in proc.mem.chunks:
        uc.mem_map(chunk.addr, chunk.size, uc_perm(chunk.perm))
        uc.mem_write(chunk.addr, proc.machine.read(chunk.addr, chunk.size))
    uc.mem_map(STACK_TOP - STACK_SIZE, STACK_SIZE, uc_perm(proc.mem.chunks[-1].perm))
    uc.mem_map(SENTINEL, 0x10000, uc_perm(proc.mem.chunks[0].perm))
    return uc


def bare_call(uc: Uc, proc: JitProcess, addr: int, arg: int) -> int:
    cc = proc.arch.callconv
    sp = STACK_TOP - 0x1000
    uc.reg_write(cc.int_args[0], arg)
    if cc.ra is None:
        sp -= 8
        uc.mem_write(sp, SENTINEL.to_bytes(8, "little"))
    else:
        uc.reg_write(cc.ra, SENTINEL)
    uc.reg_write(cc.sp, sp)
    uc.emu_start(addr, SENTINEL)
    return uc.reg_read(cc.int_ret)


def execution_overhead(n: int, repeat: int) -> None:
    print(f"== execution overhead: kitemu call vs bare unicorn on the same bytes, n={n} "
          f"(best of {repeat})")
    print(f"{'target':<12} {'kernel':<11} {'kitemu s':>9} {'bare s':>9} {'ratio':>7}")
    for target in TARGETS:
        path = os.path.join(HERE, "data", "obj", target, "cpu_kernel.o")
        for name in KERNELS:
            proc = JitProcess(target)
            proc.link([load_object(path)])
            fn = proc.image.globals[name]
            uc = bare_unicorn_copy(proc)          # before any run: same initial state
            expected, fault = proc.call(fn, [n])
            assert fault is None, fault
            assert bare_call(uc, proc, fn, n) == expected, "bare unicorn disagrees"
            t_kit = best_of(lambda: proc.call(fn, [n]), repeat)
            t_bare = best_of(lambda: bare_call(uc, proc, fn, n), repeat)
            print(f"{target:<12} {name:<11} {t_kit:9.4f} {t_bare:9.4f} {t_kit / t_bare:6.3f}x")


def link_time(repeat: int) -> None:
    print(f"== link time per relocation, largest corpus input per target (best of {repeat})")
    print(f"{'target':<12} {'case':<24} {'relocs':>7} {'read ms':>8} {'link ms':>8} "
          f"{'us/reloc':>9} {'link/read':>9}")
    cases = load_manifest()
    for target in TARGETS:
        best = None
        for c in cases:
            if c.target != target:
                continue
            objs = [load_object(p) for p in c.objects]
            n = sum(len(s.relocations) for o in objs for s in o.sections.values())
            if best is None or n > best[0]:
                best = (n, c)
        n, case = best
        t_read = best_of(lambda: [load_object(p) for p in case.objects], repeat)
        objs = [load_object(p) for p in case.objects]

        def link_once():
            proc = JitProcess(target)
            proc.link(objs)

        t_proc = best_of(lambda: JitProcess(target), repeat)
        t_link = best_of(link_once, repeat) - t_proc
        print(f"{target:<12} {case.case + '/' + case.variant:<24} {n:7d} {t_read * 1e3:8.2f} "
              f"{t_link * 1e3:8.2f} {t_link / n * 1e6:9.2f} {t_link / t_read:8.2f}x")


def _native_kernel_seconds(path: str, name: str, n: int, repeat: int) -> tuple[int, float]:
    """In a forked child (real memory, real CPU): link, then time name(n)."""
    from kitemu.backends.native import NativeProcess
    proc = NativeProcess("elf-x64")
    proc.link([load_object(path)])
    fn = proc.image.globals[name]
    value, fault = proc.call(fn, [n])
    assert fault is None, fault
    return value, best_of(lambda: proc.call(fn, [n]), repeat)


def native_vs_emulated(n: int, repeat: int) -> None:
    from kitemu.backends.native import native_host_problem, run_isolated
    print(f"== native vs emulated on elf-x64, n={n} (best of {repeat})")
    problem = native_host_problem()
    if problem:
        print(f"skipped: {problem}")
        return
    path = os.path.join(HERE, "data", "obj", "elf-x64", "cpu_kernel.o")
    proc = JitProcess("elf-x64")
    proc.link([load_object(path)])
    print(f"{'kernel':<12} {'emulated s':>10} {'native s':>9} {'emulated/native':>16}")
    for name in KERNELS:
        fn = proc.image.globals[name]
        t_emu = best_of(lambda: proc.call(fn, [n]), repeat)
        # the memory kernel keeps state in its table: compare fresh runs
        value, t_nat = run_isolated(_native_kernel_seconds, path, name, n, repeat)
        fresh = JitProcess("elf-x64")
        fresh.link([load_object(path)])
        assert value == fresh.call(fresh.image.globals[name], [n])[0], \
            f"native and emulated {name} disagree"
        print(f"{name:<12} {t_emu:10.4f} {t_nat:9.4f} {t_emu / t_nat:15.2f}x")


def parity_wall_time(jobs: int) -> None:
    import subprocess
    print(f"== kitemu parity, whole matrix, -j {jobs}")
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "kitemu.cli", "parity", "-q", "-j", str(jobs)],
                       capture_output=True, text=True)
    dt = time.perf_counter() - t0
    summary = [line for line in r.stdout.splitlines() if line.startswith("kitemu parity:")
               or " passed, " in line]
    for line in summary:
        print(line)
    print(f"wall time {dt:.1f} s (exit {r.returncode})")


SECTIONS = ("exec", "native", "link", "parity", "append", "reload")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    ap.add_argument("--only", metavar="NAME[,NAME]", default=",".join(SECTIONS),
                    help=f"run only these benchmarks: {', '.join(SECTIONS)} (default: all)")
    ns = ap.parse_args(argv)
    only = [x.strip() for x in ns.only.split(",") if x.strip()]
    unknown = [x for x in only if x not in SECTIONS]
    if unknown:
        ap.error(f"unknown benchmark {', '.join(unknown)}; known: {', '.join(SECTIONS)}")
    n = 3_000_000 if ns.quick else 40_000_000
    repeat = 2 if ns.quick else 5
    runs = {
        "exec": lambda: execution_overhead(n, repeat),
        "native": lambda: native_vs_emulated(n, repeat),
        "link": lambda: link_time(repeat),
        "parity": lambda: parity_wall_time(2),
        "append": lambda: append_benchmarks(ns.quick),
        "reload": lambda: reload_benchmarks(ns.quick),
    }
    for i, name in enumerate(x for x in SECTIONS if x in only):
        if i:
            print()
        runs[name]()
    return 0


def append_benchmarks(quick: bool) -> None:
    sys.path.insert(0, HERE)
    import append
    append.run(quick)


def reload_benchmarks(quick: bool) -> None:
    sys.path.insert(0, HERE)
    import reload
    reload.run(quick)


if __name__ == "__main__":
    sys.exit(main())
