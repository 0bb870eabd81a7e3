#!/usr/bin/env python3
"""Append benchmarks (issue 6): ``python3 benchmarks/append.py [--quick]``,
also run by ``python3 benchmarks/run.py`` (``--only append`` for these alone).

1. Append cost vs image size: the time of one append of one small object
   to an image that already holds 1, 100 and 1,000 objects, on all five
   targets, through ``Session.append`` (the API) and through
   ``JitProcess.link`` (the linker it wraps). Each object (built in memory,
   no compiler) has three functions and a data word with realistic
   relocations: ``f<k>`` returns k, ``g<k>`` calls ``f<k-1>`` (a call into
   the previous append's object, i.e. into the image) and adds 1, ``h<k>``
   loads ``ptr<k>`` PC-relative (x64 PC32 / SIGNED, aarch64 ADRP+LDR, rv64
   PCREL_HI20+LO12_I) and ``ptr<k>`` holds ``&f<k>`` (a 64-bit absolute
   pointer). Reported as the median us per append at each size, against a
   reference measured in the same run: the first link of the same kind of
   object into an empty image. The goal is ratio 1000-vs-1 ~ 1.0 (an append
   costs what it adds, not what the image holds); when a path's ratio
   exceeds 1.5 the run cProfiles Session.append at the largest size and
   prints the functions with the most own time.
2. Memory of 10,000 small appends (one target): Python heap growth
   (tracemalloc) and guest memory committed (sum of the region's chunk
   sizes, and ``ExecMem.used``) per append at 1,000 / 5,000 / 10,000, plus
   unicorn's mapped region count.

Every figure is measured in this run; timing is never asserted.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import struct
import sys
import time
import tracemalloc

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from kitemu.loader.model import (Binding, ObjectFile, Relocation, Section,  # noqa: E402
                                 SectionKind, Symbol, SymbolPlace, SymbolType)
from kitemu.session import Session  # noqa: E402
from kitemu.targets import get_target  # noqa: E402

TARGETS = ("elf-x64", "elf-aarch64", "elf-rv64", "macho-x64", "macho-arm64")
CAPACITY = 256 << 20


# -- objects built in memory -------------------------------------------------------

def _le32(*words: int) -> bytes:
    return b"".join(struct.pack("<I", w) for w in words)


def _rv_addi(rd: int, rs1: int, imm: int) -> int:
    return ((imm & 0xFFF) << 20) | (rs1 << 15) | (rd << 7) | 0x13


# Code of f (at 0), g (at 16) and h (at G_END), and the relocations:
# (offset, ELF name, Mach-O (type, pcrel, length) or None, symbol key).
# Symbol keys: "prev" = f<k-1>, "ptr" = ptr<k>, "hi" = the local label at h
# (rv64 PCREL_LO12_I names its PCREL_HI20 instruction).
def _code(arch: str, k: int) -> tuple[bytes, int, int, list]:
    if arch == "x64":
        f = b"\xb8" + struct.pack("<I", k) + b"\xc3"                 # mov eax, k; ret
        g = b"\xe8\0\0\0\0" + b"\x83\xc0\x01" + b"\xc3"               # call f<prev>; add eax,1; ret
        h = b"\x48\x8b\x05\0\0\0\0" + b"\xc3"                         # mov rax, [rip+ptr]; ret
        relocs = [(16 + 1, "R_X86_64_PLT32", (2, 1, 2), "prev", -4),     # X86_64_RELOC_BRANCH
                  (32 + 3, "R_X86_64_PC32", (1, 1, 2), "ptr", -4)]       # X86_64_RELOC_SIGNED
        g_size, h_off = len(g), 32
    elif arch == "aarch64":
        ret = 0xD65F03C0
        f = _le32(0x52800000 | ((k & 0xFFFF) << 5), ret)             # movz w0, #k; ret
        g = _le32(0xA9BF7BFD, 0x94000000, 0x11000400, 0xA8C17BFD, ret)  # stp; bl; add; ldp; ret
        h = _le32(0x90000000, 0xF9400000, ret)                        # adrp x0; ldr x0,[x0]; ret
        relocs = [(16 + 4, "R_AARCH64_CALL26", (2, 1, 2), "prev", 0),
                  (48, "R_AARCH64_ADR_PREL_PG_HI21", (3, 1, 2), "ptr", 0),
                  (52, "R_AARCH64_LDST64_ABS_LO12_NC", (4, 0, 2), "ptr", 0)]
        g_size, h_off = len(g), 48
        k &= 0xFFFF
    elif arch == "rv64":
        ret = 0x00008067                                              # jalr x0, 0(ra)
        f = _le32(_rv_addi(10, 0, k & 0x7FF), ret)                    # li a0, k; ret
        g = _le32(_rv_addi(2, 2, -16), 0x00113423,                    # addi sp,-16; sd ra,8(sp)
                  0x00000097, 0x000080E7,                             # auipc ra; jalr ra (call)
                  _rv_addi(10, 10, 1), 0x00813083,                    # addi a0,1; ld ra,8(sp)
                  _rv_addi(2, 2, 16), ret)                            # addi sp,16; ret
        h = _le32(0x00000517, 0x00053503, ret)                        # auipc a0; ld a0,0(a0); ret
        relocs = [(16 + 8, "R_RISCV_CALL_PLT", None, "prev", 0),
                  (48, "R_RISCV_PCREL_HI20", None, "ptr", 0),
                  (52, "R_RISCV_PCREL_LO12_I", None, "hi", 0)]
        g_size, h_off = len(g), 48
        k &= 0x7FF
    else:
        raise ValueError(arch)
    code = bytearray(f)
    code += b"\0" * (16 - len(code)) + g
    code += b"\0" * (h_off - len(code)) + h
    return bytes(code), g_size, h_off, relocs


def expected_f(target: str, k: int) -> int:
    """What f<k>() returns (the immediates are narrower than k on RISC)."""
    arch = get_target(target).arch_module
    return k & {"x64": 0xFFFFFFFF, "aarch64": 0xFFFF, "rv64": 0x7FF}[arch]


def make_object(target: str, k: int, prev: int | None = None) -> ObjectFile:
    """Object k: f<k>, g<k> -> f<prev> (omitted when prev is None; prev == k
    calls the object's own f<k>, the same relocations with nothing
    undefined), h<k> loading ptr<k> = &f<k>; see the module docstring."""
    t = get_target(target)
    arch = t.arch
    macho = t.format == "macho"
    code, g_size, h_off, relocs = _code(t.arch_module, k)
    text_name, data_name = ("__TEXT,__text", "__DATA,__data") if macho else (".text", ".data")
    text = Section(1, text_name, SectionKind.TEXT, 16, len(code), code)
    data = Section(2, data_name, SectionKind.DATA, 8, 8, bytes(8))
    name = t.symbol
    symbols = [Symbol(0, "", Binding.LOCAL, SymbolType.NOTYPE, SymbolPlace.UNDEF, None, 0, 0)]

    def add(sym_name, binding, stype, place, section, value, size) -> int:
        symbols.append(Symbol(len(symbols), sym_name, binding, stype, place, section, value, size))
        return len(symbols) - 1

    index = {"hi": add(f"L.hi{k}", Binding.LOCAL, SymbolType.NOTYPE, SymbolPlace.SECTION, 1,
                       h_off, 0)}
    add(name(f"f{k}"), Binding.GLOBAL, SymbolType.FUNC, SymbolPlace.SECTION, 1, 0, 8)
    f_index = len(symbols) - 1
    add(name(f"h{k}"), Binding.GLOBAL, SymbolType.FUNC, SymbolPlace.SECTION, 1, h_off,
        len(code) - h_off)
    index["ptr"] = add(name(f"ptr{k}"), Binding.GLOBAL, SymbolType.OBJECT, SymbolPlace.SECTION,
                       2, 0, 8)
    if prev is not None:
        add(name(f"g{k}"), Binding.GLOBAL, SymbolType.FUNC, SymbolPlace.SECTION, 1, 16, g_size)
        index["prev"] = f_index if prev == k else add(
            name(f"f{prev}"), Binding.GLOBAL, SymbolType.NOTYPE, SymbolPlace.UNDEF, None, 0, 0)

    def reloc(sec: Section, off: int, elf_name: str, macho_form, sym: int, addend: int) -> None:
        if macho:
            rtype, pcrel, length = macho_form
            spec, addend = arch.macho_reloc(rtype, pcrel, length, True, sec.data, off)
        else:
            rtype = next(n for n, s in arch.elf_relocs.items() if s.name == elf_name)
            spec = arch.elf_relocs[rtype]
        sec.relocations.append(Relocation(off, rtype, spec, sym, addend, len(sec.relocations)))

    for off, elf_name, macho_form, key, addend in relocs:
        if key == "prev" and prev is None:
            continue
        reloc(text, off, elf_name, macho_form, index[key], addend)
    ptr_reloc = {"x64": "R_X86_64_64", "aarch64": "R_AARCH64_ABS64",
                 "rv64": "R_RISCV_64"}[t.arch_module]
    reloc(data, 0, ptr_reloc, (0, 0, 3), f_index, 0)      # *_RELOC_UNSIGNED, 64-bit
    path = f"append{k}.o"
    return ObjectFile(path, t.format, t.name, {1: text, 2: data}, symbols, path,
                      subsections_via_symbols=macho)


def check_object(s: Session, target: str, k: int, prev: int | None) -> None:
    """The appended object works: every relocation landed."""
    assert s.call(f"f{k}") == expected_f(target, k)
    assert s.call(f"h{k}") == s.lookup(f"f{k}"), f"h{k}: ptr{k} does not hold &f{k}"
    assert struct.unpack("<Q", s.read(s.lookup(f"ptr{k}"), 8))[0] == s.lookup(f"f{k}")
    if prev is not None:
        want = (expected_f(target, prev) + 1) & 0xFFFFFFFF
        assert s.call(f"g{k}") & 0xFFFFFFFF == want, f"g{k} did not call f{prev}"


# -- 1. append cost vs image size -----------------------------------------------

def _session(target: str) -> Session:
    return Session(target, capacity=CAPACITY)


def _grow(s: Session, target: str, start: int, stop: int) -> None:
    """Append objects start..stop-1 (through the linker: the quickest way)."""
    for k in range(start, stop):
        s.proc.link([make_object(target, k, k - 1 if k else None)])


def _median_us(ns: list[int]) -> float:
    return statistics.median(ns) / 1e3


#: sizes up to this get a fresh image per sample
FRESH_MAX = 10


def _timed_append(s: Session, path: str, target: str, k: int) -> int:
    """ns of appending object k (calling f<k-1>) through ``path``."""
    obj = make_object(target, k, k - 1)
    t0 = time.perf_counter_ns()
    if path == "session":
        s.append(obj)
    else:
        s.proc.link([obj])
    return time.perf_counter_ns() - t0


def append_cost(targets, sizes, samples: int, ref_samples: int, profile: bool = True) -> dict:
    """Median us of one append at each image size, per target, through
    ``Session.append`` (the API) and through ``JitProcess.link`` (the
    linker alone, which Session.append wraps), and the reference: the first
    link of the same kind of object into an empty image."""
    sizes = list(sizes)
    print(f"== append cost vs image size: median us per append of one small object "
          f"(3 functions, a pointer word, a call into the image; {samples} appends per size "
          "and path)")
    lo, hi = sizes[0], sizes[-1]
    print(f"{'target':<12} {'path':<15} {'first link':>10}"
          + "".join(f" {f'@{n}':>8}" for n in sizes)
          + f" {f'@{hi}/@{lo}':>10} {f'@{hi}/first':>11}")
    out = {}
    growing = []
    for target in targets:
        warm = _session(target)                  # first-use costs (imports) are not timed
        warm.append(make_object(target, 0, 0))
        warm.free()
        # reference: the first link of the same object into an empty image
        ref = {"session": [], "link": []}
        for _ in range(ref_samples):
            for path in ref:
                s = _session(target)
                obj = make_object(target, 0, 0)        # same relocations, none undefined
                t0 = time.perf_counter_ns()
                if path == "session":
                    s.append(obj)
                else:
                    s.proc.link([obj])
                ref[path].append(time.perf_counter_ns() - t0)
                s.free()
        # a tiny size: a fresh image of exactly n objects per sample; larger
        # ones: one image grown to each size in turn, then `samples` appends
        # through JitProcess.link, then `samples` through Session.append (the
        # image grows by them, n to n + 2 * samples: the sizes are far apart)
        times = {n: {"session": [], "link": []} for n in sizes}
        s = None
        held = 0
        for n in sizes:
            if n <= FRESH_MAX:
                for _ in range(samples):
                    for path in ("session", "link"):
                        f = _session(target)
                        _grow(f, target, 0, n)
                        times[n][path].append(_timed_append(f, path, target, n))
                        check_object(f, target, n, n - 1)
                        f.free()
                continue
            if s is None:
                s = _session(target)
            _grow(s, target, held, n)
            held = max(held, n)
            for path in ("link", "session"):
                for _ in range(samples):
                    times[n][path].append(_timed_append(s, path, target, held))
                    held += 1
            check_object(s, target, held - 1, held - 2)
        if s is not None:
            s.free()
        out[target] = {}
        for path, label in (("session", "Session.append"), ("link", "JitProcess.link")):
            ref_us = _median_us(ref[path])
            per_size = {n: _median_us(times[n][path]) for n in sizes}
            ratio = per_size[hi] / per_size[lo]
            vs_ref = per_size[hi] / ref_us
            print(f"{target:<12} {label:<15} {ref_us:10.1f}"
                  + "".join(f" {per_size[n]:8.1f}" for n in sizes)
                  + f" {ratio:9.2f}x {vs_ref:10.2f}x")
            out[target][path] = {"first_link_us": ref_us, "append_us": per_size,
                                 "ratio": ratio, "vs_first_link": vs_ref}
            if ratio > 1.5:
                growing.append((target, label))
    if growing:
        print(f"cost grows with the image ({hi}-vs-{lo} > 1.5x): "
              + ", ".join(f"{t} {p}" for t, p in growing))
        if profile:
            profile_append(growing[0][0], hi)
    return out


def profile_append(target: str, size: int, appends: int = 100, top: int = 6) -> list:
    """cProfile ``appends`` Session.appends to an image of ``size``
    objects; print the functions with the most own time."""
    import cProfile
    import pstats
    s = _session(target)
    _grow(s, target, 0, size)
    objs = [make_object(target, k, k - 1) for k in range(size, size + appends)]
    gc.collect()
    gc.disable()               # a collection would land on whichever function allocates
    prof = cProfile.Profile()
    prof.enable()
    try:
        for obj in objs:
            s.append(obj)
    finally:
        prof.disable()
        gc.enable()
    s.free()
    st = pstats.Stats(prof)
    rows = sorted(st.stats.items(), key=lambda kv: -kv[1][2])[:top]
    print(f"profile: {appends} Session.appends at {size} objects on {target} (cProfile, gc off), "
          "top functions by own time, us per append")
    out = []
    for (file, line, fn), (_, _, tt, ct, _) in rows:
        short = os.path.relpath(file, os.path.dirname(HERE)) if file.startswith("/") else file
        where = f"{short}:{line}({fn})"
        print(f"  {tt / appends * 1e6:9.1f} own {ct / appends * 1e6:9.1f} cum  {where}")
        out.append((where, tt / appends * 1e6, ct / appends * 1e6))
    return out


# -- 2. memory of many small appends ---------------------------------------------

def _guest(s: Session) -> tuple[int, int, int]:
    mem = s.proc.mem
    committed = sum(c.size for c in mem.chunks)
    uc = getattr(s.proc.machine, "uc", None)
    regions = len(list(uc.mem_regions())) if uc is not None else -1
    return committed, mem.used, regions


def append_memory(target: str, checkpoints) -> dict:
    checkpoints = sorted(checkpoints)
    total = checkpoints[-1]
    print(f"== memory of {total:,} small appends on {target} (per append since the first link; "
          "interval = since the previous checkpoint)")
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    kept = [make_object(target, k, k - 1) for k in range(1, 201)]
    input_bytes = (tracemalloc.get_traced_memory()[0] - base) / len(kept)
    del kept
    tracemalloc.stop()
    s = _session(target)
    s.append(make_object(target, 0))
    gc.collect()
    committed0, used0, regions0 = _guest(s)
    tracemalloc.start()
    heap0 = tracemalloc.get_traced_memory()[0]
    t0 = time.perf_counter()
    print(f"{'appends':>8} {'heap B/app':>10} {'interval':>9} {'committed B/app':>15} "
          f"{'used B/app':>10} {'chunks':>6} {'uc regions':>10} {'s':>6}")
    rows = []
    prev_n, prev_heap = 0, heap0
    k = 1
    for n in checkpoints:
        for k in range(k, n + 1):
            s.append(make_object(target, k, k - 1))
        k = n + 1
        gc.collect()
        heap = tracemalloc.get_traced_memory()[0]
        committed, used, regions = _guest(s)
        row = {"appends": n, "heap_per_append": (heap - heap0) / n,
               "heap_interval_per_append": (heap - prev_heap) / (n - prev_n),
               "committed_per_append": (committed - committed0) / n,
               "used_per_append": (used - used0) / n, "chunks": len(s.proc.mem.chunks),
               "uc_regions": regions, "seconds": time.perf_counter() - t0}
        rows.append(row)
        print(f"{n:8d} {row['heap_per_append']:10.0f} {row['heap_interval_per_append']:9.0f} "
              f"{row['committed_per_append']:15.1f} {row['used_per_append']:10.1f} "
              f"{row['chunks']:6d} {regions:10d} {row['seconds']:6.1f}")
        prev_n, prev_heap = n, heap
    tracemalloc.stop()
    check_object(s, target, total, total - 1)
    check_object(s, target, 1, 0)
    placed = sum(seg.size for seg in s.image.segments) / (total + 1)
    print(f"(after the first link: {committed0} B committed, {used0} B used, {regions0} uc "
          f"regions. Per append: the input object itself is {input_bytes:.0f} B of Python heap "
          f"(the image keeps it), its segments {placed:.0f} B of guest memory; chunks are "
          "committed 64 KiB at a time)")
    s.free()
    return {"target": target, "rows": rows, "input_object_bytes": input_bytes,
            "segment_bytes_per_append": placed}


# -- entry points ------------------------------------------------------------------

def run(quick: bool = False, targets=TARGETS, memory_target: str = "elf-x64",
        sizes=None, samples=None, checkpoints=None, profile: bool = True) -> dict:
    """Both benchmarks; returns the figures (also printed)."""
    sizes = sizes or (1, 100, 1000)       # growing to 1,000 takes ~0.2 s a target
    samples = samples or (40 if not quick else 10)
    checkpoints = checkpoints or ((1000, 5000, 10000) if not quick else (250, 500, 1000))
    cost = append_cost(targets, sizes, samples, ref_samples=samples, profile=profile)
    print()
    memory = append_memory(memory_target, checkpoints)
    return {"cost": cost, "memory": memory}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    ap.add_argument("--targets", default=",".join(TARGETS),
                    help="comma-separated targets for the cost benchmark (default: all five)")
    ap.add_argument("--memory-target", default="elf-x64")
    ns = ap.parse_args(argv)
    run(ns.quick, targets=ns.targets.split(","), memory_target=ns.memory_target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
