#!/usr/bin/env python3
"""Build the kitemu C corpus into relocatable objects (stdlib only).

    python corpus/build.py                  # build every case x target x variant
    python corpus/build.py --check-native   # ... then build natively with gcc
                                            #     and compare with expected.stdout
    python corpus/build.py --native-only    # only the native gcc check
    python corpus/build.py --relocs         # relocation types per target

Objects go to corpus/obj/<target>/<variant>/<case>/<stem>.o and the list of
what was built to corpus/obj/manifest.json.  clang runs with the repository
root as working directory and only relative paths on its command line, so the
objects do not depend on where the checkout lives (the build is deterministic:
two runs give the same bytes).  See corpus/README.md.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import difflib
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

CORPUS = Path(__file__).resolve().parent
ROOT = CORPUS.parent
OBJ = CORPUS / "obj"
MANIFEST = OBJ / "manifest.json"
CORPUS_REL = CORPUS.relative_to(ROOT).as_posix()  # "corpus"

# Flags shared by every target and variant.  -g0: no debug info for now (a
# debug-info variant would need -fdebug-prefix-map=<root>=. to keep the
# objects free of absolute paths).  -Wall only adds diagnostics.
COMMON_FLAGS = [
    "-ffreestanding",
    "-fno-common",
    "-g0",
    "-Wall",
    "-Ikitemu/include",
]


def _base_variants() -> dict[str, list[str]]:
    # The relocation model is spelled out: distribution clangs differ in
    # their default (Debian's clang 14 defaults to -fPIE, upstream to
    # non-PIC), and the objects must not depend on that.
    return {
        "O0": ["-O0", "-fno-pic"],
        "O2": ["-O2", "-fno-pic"],
        "O2-pic": ["-O2", "-fPIC"],
    }


# The target table: one entry per target with its clang triple, its object
# format, flags added to every variant of the target, and its variants.  A
# variant is a list of flags, or a dict {"flags": [...], "via_asm": [...]}:
# via_asm variants are compiled to assembly (-S) and then assembled by clang
# with --target and the via_asm flags only.
TARGETS: dict[str, dict] = {
    "elf-x64": {
        "triple": "x86_64-linux-gnu",
        "format": "elf",
        "flags": [],
        "variants": {
            **_base_variants(),
            "O1-large": ["-O1", "-fno-pic", "-mcmodel=large"],
        },
    },
    "elf-aarch64": {
        "triple": "aarch64-linux-gnu",
        "format": "elf",
        "flags": [],
        "variants": {
            **_base_variants(),
            # non-PIC large model: MOVZ/MOVK with MOVW_UABS_G0_NC..G3
            "O1-large": ["-O1", "-fno-pic", "-mcmodel=large"],
        },
    },
    "elf-rv64": {
        "triple": "riscv64-linux-gnu",
        "format": "elf",
        # medany (PC-relative addressing, GCC's default for riscv64 Linux;
        # clang 14 defaults to medlow), and linker relaxation off unless a
        # variant asks for it (clang 14's -c emits no R_RISCV_RELAX anyway;
        # newer clangs would, by default).  Variant flags come later and win.
        "flags": ["-mcmodel=medany", "-mno-relax"],
        "variants": {
            **_base_variants(),
            # absolute LUI/ADDI addressing: R_RISCV_HI20 / R_RISCV_LO12_I/S
            "O1-medlow": ["-O1", "-fno-pic", "-mcmodel=medlow"],
            # Linker relaxation.  With clang 14, `-c -mrelax` gives objects
            # byte-identical to O2 (direct object emission writes no
            # R_RISCV_RELAX at all), so this variant goes through assembly:
            # clang -S, then clang -mrelax -c on the .s, which adds
            # R_RISCV_RELAX and branch relocations (BRANCH, RVC_BRANCH,
            # RVC_JUMP) to what O2-pic has (incl. ADD32/SUB32 jump tables).
            "O2-relax": {"flags": ["-O2", "-fPIC", "-mrelax"],
                         "via_asm": ["-mrelax"]},
        },
    },
    # Mach-O: code is always position-independent on Darwin, so the ELF
    # O2/O2-pic distinction does not exist; O0 and O2 differ in which
    # relocations appear (GOT loads, ADDEND pairs, SUBTRACTOR jump tables).
    "macho-x64": {
        "triple": "x86_64-apple-macos11",
        "format": "macho",
        # Darwin turns the stack protector on by default; kitemu's host
        # library has no __stack_chk_guard/__stack_chk_fail (yet)
        "flags": ["-fno-stack-protector"],
        "variants": {"O0": ["-O0"], "O2": ["-O2"]},
    },
    "macho-arm64": {
        "triple": "arm64-apple-macos11",
        "format": "macho",
        "flags": ["-fno-stack-protector"],
        "variants": {"O0": ["-O0"], "O2": ["-O2"]},
    },
}


def expected_stdout_path(case: dict, fmt: str) -> str:
    """``expected.<format>.stdout`` where a case's output depends on the
    object format (documented in its case.json), else ``expected.stdout``."""
    specific = case["dir"] / f"expected.{fmt}.stdout"
    name = specific.name if specific.exists() else "expected.stdout"
    return f"{case['name']}/{name}"


def variant_spec(target: str, variant: str) -> dict:
    v = TARGETS[target]["variants"][variant]
    if isinstance(v, dict):
        return {"flags": list(v["flags"]), "via_asm": v.get("via_asm")}
    return {"flags": list(v), "via_asm": None}


# Host functions kitemu provides (declared in kitemu/include/kitlibc.h).  A corpus
# object may leave nothing else undefined, except weak references.
HOST_FUNCTIONS = frozenset(
    """putchar puts printf snprintf sprintf vprintf vsnprintf vsprintf
    malloc calloc realloc free memcpy memmove memset memcmp strlen strcmp
    strncmp strcpy strchr exit abort __assert_fail""".split()
    # Darwin: clang registers destructors with __cxa_atexit(f, arg, &__dso_handle)
) | {"__cxa_atexit", "__dso_handle"}

NATIVE_OPTS = ["-O0", "-O2"]
NATIVE_TIMEOUT = 30


class BuildError(Exception):
    pass


# --------------------------------------------------------------------------
# cases


def case_dirs() -> list[Path]:
    """Every case directory (one holding a case.json), sorted by name."""
    return sorted(p.parent for p in CORPUS.glob("*/case.json"))


def load_case(case_dir: Path) -> dict:
    with open(case_dir / "case.json", encoding="utf-8") as f:
        meta = json.load(f)
    sources = sorted(case_dir.glob("*.c"))
    if not sources:
        raise BuildError(f"{case_dir.name}: no .c files")
    return {
        "name": case_dir.name,
        "dir": case_dir,
        "sources": sources,
        "exit": int(meta.get("exit", 0)),
        "args": [str(a) for a in meta.get("args", [])],
        "entry": meta.get("entry", "main"),
        "meta": meta,
    }


def load_cases(names: list[str] | None = None) -> list[dict]:
    cases = [load_case(d) for d in case_dirs()]
    if names:
        known = {c["name"] for c in cases}
        missing = [n for n in names if n not in known]
        if missing:
            raise BuildError(f"unknown case(s): {', '.join(missing)}")
        cases = [c for c in cases if c["name"] in names]
    return cases


# --------------------------------------------------------------------------
# tools


def find_tool(env_var: str, default: str) -> str | None:
    name = os.environ.get(env_var, default)
    return shutil.which(name)


def require_clang() -> str:
    clang = find_tool("CLANG", "clang")
    if clang is None:
        raise BuildError(
            f"clang is missing: no {os.environ.get('CLANG', 'clang')!r} on PATH "
            "(set CLANG=/path/to/clang).\n"
            "The corpus objects are built with clang (14 or later) for "
            "x86_64, aarch64 and riscv64; install clang and lld."
        )
    return clang


def tool_version(tool: str) -> str:
    out = subprocess.run([tool, "--version"], capture_output=True, text=True)
    return out.stdout.splitlines()[0].strip() if out.stdout else "?"


# --------------------------------------------------------------------------
# clang build


def variant_flags(target: str, variant: str) -> list[str]:
    """Compiler flags of a variant (without -c/-S, input and output)."""
    t = TARGETS[target]
    return [f"--target={t['triple']}", *COMMON_FLAGS, *t["flags"],
            *variant_spec(target, variant)["flags"]]


def object_rel(target: str, variant: str, case: str, src: Path) -> str:
    """Object path relative to corpus/."""
    return f"obj/{target}/{variant}/{case}/{src.stem}.o"


def compile_commands(clang: str, target: str, variant: str, src: Path,
                     out: str) -> list[list[str]]:
    """The clang argvs (run in order, cwd=ROOT) that compile src (a path
    under corpus/) to the object out.

    The source is named relative to the repository root (it ends up in
    STT_FILE and __FILE__), so the object bytes depend neither on the output
    path nor on where the checkout lives.  A via_asm variant writes out + ".s"
    first; build_object() removes it."""
    src_rel = src.resolve().relative_to(ROOT).as_posix()
    spec = variant_spec(target, variant)
    flags = variant_flags(target, variant)
    if spec["via_asm"] is None:
        return [[clang, *flags, "-c", src_rel, "-o", out]]
    t = TARGETS[target]
    asm = out + ".s"
    return [
        [clang, *flags, "-S", src_rel, "-o", asm],
        [clang, f"--target={t['triple']}", *spec["via_asm"],
         "-c", asm, "-o", out],
    ]


def build_object(argvs: list[list[str]]) -> None:
    """Run the commands of compile_commands() in order (cwd=ROOT)."""
    try:
        for argv in argvs:
            proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
            if proc.returncode != 0:
                raise BuildError("clang failed:\n  " + " ".join(argv) + "\n" +
                                 proc.stderr)
            if proc.stderr.strip():
                sys.stderr.write(proc.stderr)
    finally:
        if len(argvs) > 1:
            asm = Path(argvs[0][-1])
            (asm if asm.is_absolute() else ROOT / asm).unlink(missing_ok=True)


def jobs_list(cases: list[dict]):
    for case in cases:
        for target, tinfo in TARGETS.items():
            for variant in tinfo["variants"]:
                yield case, target, variant


def build(cases: list[dict], jobs: int) -> list[dict]:
    clang = require_clang()
    if OBJ.exists():
        shutil.rmtree(OBJ)
    tasks = []
    manifest = []
    for case, target, variant in jobs_list(cases):
        objs = []
        for src in case["sources"]:
            rel = object_rel(target, variant, case["name"], src)
            (CORPUS / rel).parent.mkdir(parents=True, exist_ok=True)
            out = (CORPUS / rel).relative_to(ROOT).as_posix()
            tasks.append(compile_commands(clang, target, variant, src, out))
            objs.append(rel)
        manifest.append({
            "case": case["name"],
            "target": target,
            "triple": TARGETS[target]["triple"],
            "variant": variant,
            "flags": variant_flags(target, variant),
            "via_asm": variant_spec(target, variant)["via_asm"],
            "objects": objs,
            "exit": case["exit"],
            "args": case["args"],
            "entry": case["entry"],
            "expected_stdout": expected_stdout_path(case, TARGETS[target]["format"]),
        })
    print(f"building {len(tasks)} objects ({len(manifest)} case/target/variant "
          f"combinations) with {tool_version(clang)}")
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        for fut in [pool.submit(build_object, argvs) for argvs in tasks]:
            fut.result()
    validate_objects(manifest)
    build_archives(manifest)
    with open(MANIFEST, "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    print(f"wrote {MANIFEST.relative_to(ROOT)}")
    return manifest


# Variants whose objects are also packed into a static archive <case>.a (the
# parity harness's "a" input kind: only the entry is a root, the rest is
# pulled lazily). GNU format for ELF, Darwin (BSD) format for Mach-O.
ARCHIVE_VARIANTS = ("O2",)


def build_archives(manifest: list[dict]) -> None:
    ar = find_tool("AR", "llvm-ar")
    if ar is None:
        raise BuildError("llvm-ar is missing (Debian package llvm): cannot build the archives")
    made = 0
    for entry in manifest:
        if entry["variant"] not in ARCHIVE_VARIANTS:
            continue
        fmt = "darwin" if TARGETS[entry["target"]]["format"] == "macho" else "gnu"
        objs = [(CORPUS / o).relative_to(ROOT).as_posix() for o in entry["objects"]]
        out = (CORPUS / entry["objects"][0]).parent / f"{entry['case']}.a"
        out = out.relative_to(ROOT).as_posix()
        # D: deterministic (zero timestamps/uids); s: symbol table
        subprocess.run([ar, "rcsD", f"--format={fmt}", out, *objs], check=True, cwd=ROOT)
        entry["archive"] = (CORPUS / entry["objects"][0]).parent.relative_to(CORPUS).as_posix() \
            + f"/{entry['case']}.a"
        made += 1
    print(f"packed {made} archives ({', '.join(ARCHIVE_VARIANTS)} variants)")


# --------------------------------------------------------------------------
# minimal ELF64 reader (symbols only), used to validate the objects


def elf_symbols(path: Path) -> list[tuple[str, int, int]]:
    """[(name, binding, shndx)] of the global/weak symbols of an ELF64 LE .o"""
    data = path.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise BuildError(f"{path}: not an ELF64 little-endian file")
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize)
                for i in range(shnum)]
    out = []
    for sh in sections:
        if sh[1] != 2:  # SHT_SYMTAB
            continue
        strtab = sections[sh[6]]
        str_off = strtab[4]
        for off in range(sh[4], sh[4] + sh[5], 24):
            st_name, st_info, _other, st_shndx = struct.unpack_from("<IBBH", data, off)
            bind = st_info >> 4
            if bind not in (1, 2):  # GLOBAL, WEAK
                continue
            end = data.index(b"\0", str_off + st_name)
            out.append((data[str_off + st_name:end].decode(), bind, st_shndx))
    return out


def macho_symbols(path: Path) -> list[tuple[str, int, int]]:
    """[(name without the leading underscore, binding, section)] of the
    external symbols of a Mach-O 64-bit LE .o, in elf_symbols' terms:
    binding 1 (global) or 2 (weak reference), section 0 when undefined."""
    data = path.read_bytes()
    if data[:4] != b"\xcf\xfa\xed\xfe":
        raise BuildError(f"{path}: not a Mach-O 64-bit little-endian file")
    ncmds, = struct.unpack_from("<I", data, 16)
    off = 32
    out = []
    for _ in range(ncmds):
        cmd, cmdsize = struct.unpack_from("<II", data, off)
        if cmd == 0x2:  # LC_SYMTAB
            symoff, nsyms, stroff, _strsize = struct.unpack_from("<IIII", data, off + 8)
            for i in range(nsyms):
                strx, ntype, nsect, ndesc, _value = struct.unpack_from("<IBBHQ", data, symoff + 16 * i)
                if ntype & 0xE0 or not ntype & 0x01:   # stabs, or not N_EXT
                    continue
                end = data.index(b"\0", stroff + strx)
                name = data[stroff + strx:end].decode()
                name = name[1:] if name.startswith("_") else name
                undefined = (ntype & 0x0E) == 0 and _value == 0
                bind = 2 if undefined and ndesc & 0x40 else 1     # N_WEAK_REF
                out.append((name, bind, 0 if undefined else max(nsect, 1)))
        off += cmdsize
    return out


def object_symbols(path: Path) -> list[tuple[str, int, int]]:
    return macho_symbols(path) if path.read_bytes()[:4] == b"\xcf\xfa\xed\xfe" else elf_symbols(path)


def validate_objects(manifest: list[dict]) -> None:
    """Each combination may leave undefined only host functions, symbols
    defined by its other objects, and weak references.  No object may
    contain the absolute path of the checkout."""
    root_bytes = str(ROOT).encode()
    problems = []
    for entry in manifest:
        defined, undefined = set(), {}
        for rel in entry["objects"]:
            path = CORPUS / rel
            if root_bytes in path.read_bytes():
                problems.append(f"{rel}: contains the absolute path {ROOT}")
            for name, bind, shndx in object_symbols(path):
                if shndx == 0:
                    undefined.setdefault(name, set()).add(bind)
                else:
                    defined.add(name)
        for name, binds in sorted(undefined.items()):
            if name in defined or name in HOST_FUNCTIONS or binds == {2}:
                continue
            problems.append(f"{entry['case']} {entry['target']} {entry['variant']}: "
                            f"undefined symbol {name!r} is not a host function")
    if problems:
        raise BuildError("object validation failed:\n  " + "\n  ".join(problems))


# --------------------------------------------------------------------------
# native check (gcc + glibc): the oracle for expected.stdout


def native_check_case(gcc: str, case: dict, opt: str, tmp: Path) -> str | None:
    """Build case natively with gcc at opt, run it, compare.  Returns None on
    success or a report of the mismatch."""
    exe = tmp / f"{case['name']}{opt}"
    srcs = [s.resolve().relative_to(ROOT).as_posix() for s in case["sources"]]
    entry_flags = []
    if case["entry"] != "main":
        # kitemu calls ENTRY(argc, argv) directly; natively, the C runtime
        # calls main: rename the case's own main away and give the program
        # a main that calls the entry, so the native run is the same call
        wrapper = tmp / f"{case['name']}{opt}-entry.c"
        wrapper.write_text("#undef main\n"
                           f"int {case['entry']}(int, char **);\n"
                           f"int main(int argc, char **argv) "
                           f"{{ return {case['entry']}(argc, argv); }}\n")
        srcs = [*srcs, str(wrapper)]
        entry_flags = ["-Dmain=corpus_case_main"]
    argv = [gcc, opt, "-ffp-contract=off", "-fno-common", "-Wall", "-Wextra",
            "-Wno-format-truncation",  # printf_fmt truncates on purpose
            "-Ikitemu/include", *entry_flags, "-o", str(exe), *srcs]
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
    label = f"{case['name']} (gcc {opt})"
    if proc.returncode != 0:
        return f"{label}: native build failed\n{' '.join(argv)}\n{proc.stderr}"
    if proc.stderr.strip():
        sys.stderr.write(f"{label}: warnings\n{proc.stderr}")
    try:
        run = subprocess.run([str(exe), *case["args"]], cwd=tmp,
                             capture_output=True, timeout=NATIVE_TIMEOUT,
                             stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return f"{label}: timed out after {NATIVE_TIMEOUT}s"
    expected = (case["dir"] / "expected.stdout").read_bytes()
    report = []
    if run.stdout != expected:
        diff = difflib.unified_diff(
            expected.decode("utf-8", "backslashreplace").splitlines(True),
            run.stdout.decode("utf-8", "backslashreplace").splitlines(True),
            f"{case['name']}/expected.stdout", f"native {opt} stdout")
        report.append("".join(diff) or "(stdout differs only in bytes)\n")
    if run.returncode != case["exit"]:
        report.append(f"exit code {run.returncode}, expected {case['exit']}\n")
    if report:
        return f"{label}: MISMATCH\n" + "".join(report)
    return None


def check_native(cases: list[dict], jobs: int) -> bool:
    gcc = find_tool("CC_NATIVE", "gcc")
    if gcc is None:
        raise BuildError(f"gcc is missing: no {os.environ.get('CC_NATIVE', 'gcc')!r} "
                         "on PATH (set CC_NATIVE=...); the native check needs gcc "
                         "and glibc.")
    failures = []
    with tempfile.TemporaryDirectory(prefix="kitemu-native-") as tmpdir:
        tmp = Path(tmpdir)
        with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
            futs = [(c, o, pool.submit(native_check_case, gcc, c, o, tmp))
                    for c in cases for o in NATIVE_OPTS]
            for case, opt, fut in futs:
                err = fut.result()
                if err:
                    failures.append(err)
                    print(err)
                else:
                    print(f"ok   {case['name']} (gcc {opt})")
    print(f"native check: {len(cases) * len(NATIVE_OPTS) - len(failures)} ok, "
          f"{len(failures)} failed")
    return not failures


# --------------------------------------------------------------------------
# relocation summary (llvm-readelf -r)


def reloc_table() -> dict[str, dict[str, int]]:
    readelf = find_tool("READELF", "llvm-readelf")
    if readelf is None:
        raise BuildError("llvm-readelf is missing")
    counts: dict[str, dict[str, int]] = {}
    pat = re.compile(r"^\s*[0-9a-f]{16}\s+[0-9a-f]+\s+(R_\w+)")
    for target in TARGETS:
        objs = sorted((OBJ / target).rglob("*.o"))
        if not objs:
            continue
        per = counts.setdefault(target, {})
        for i in range(0, len(objs), 200):
            out = subprocess.run([readelf, "-r", *map(str, objs[i:i + 200])],
                                 capture_output=True, text=True, check=True).stdout
            for line in out.splitlines():
                m = pat.match(line)
                if m:
                    per[m.group(1)] = per.get(m.group(1), 0) + 1
    return counts


def print_reloc_table(counts: dict[str, dict[str, int]]) -> None:
    for target, per in counts.items():
        print(f"{target}:")
        for rtype in sorted(per):
            print(f"  {rtype:32} {per[rtype]:6}")


# --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check-native", action="store_true",
                    help="after building, compile each case natively with gcc "
                         "-O0/-O2, run it and compare with expected.stdout/exit")
    ap.add_argument("--native-only", action="store_true",
                    help="only run the native check (no clang build)")
    ap.add_argument("--case", action="append", metavar="NAME",
                    help="restrict the native check to these cases")
    ap.add_argument("--relocs", action="store_true",
                    help="print relocation type counts per target (llvm-readelf)")
    ap.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args(argv)
    try:
        if args.relocs and not (args.check_native or args.native_only):
            print_reloc_table(reloc_table())
            return 0
        if not args.native_only:
            build(load_cases(), args.jobs)
        if args.check_native or args.native_only:
            if not check_native(load_cases(args.case), args.jobs):
                return 1
        if args.relocs:
            print_reloc_table(reloc_table())
    except BuildError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
