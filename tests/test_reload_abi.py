"""kitemu.reload.abi: ABI signatures of definitions, from DWARF, on every target.

C files with functions of varied signatures are built with clang -g at test
time (DWARF 5 on ELF and 4 on Mach-O by default, plus the other version,
-O0 and -O2), linked with JitProcess, and their signatures read at the
runtime addresses are checked exactly. Identical signatures with different
bodies compare equal; each kind of change (a parameter's class or size, an
added parameter, the return, variadic, prototyped, an aggregate's layout,
the calling convention) makes them differ with a precise ``differences()``
message. Objects without -g give None.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess

import pytest

from kitemu.cc import INCLUDE_DIR
from kitemu.errors import ConfigError
from kitemu.loader import load_object
from kitemu.loader.dwarf import DebugInfo
from kitemu.reload.abi import (MAX_ABI_ARGS, AbiSignature, AbiType, signature_at,
                               signature_of)
from kitemu.runtime import JitProcess
from kitemu.targets import get_target

CLANG = os.environ.get("KITEMU_CLANG") or shutil.which("clang") or shutil.which("clang-14")
pytestmark = pytest.mark.skipif(CLANG is None, reason="clang is not installed: the test "
                                                      "objects are built at test time")

TARGETS = ["elf-x64", "elf-aarch64", "elf-rv64", "macho-x64", "macho-arm64"]
AARCH64 = ["elf-aarch64", "macho-arm64"]
_FORMAT_FLAGS = {"elf": ["-fno-pic"], "macho": ["-fno-stack-protector"]}

SIGS_C = """\
typedef long mylong;
typedef const mylong cmylong;
enum color { RED, GREEN, BLUE };
struct small { int a; int b; };
struct big { char c[24]; };
struct hfa { float x, y; };
struct mix { char c; int i; short s[3]; double d; };
struct bits { unsigned a : 3, b : 5; int c; };
union num { float f; int i; };
typedef int (*callback)(int);
typedef float v4 __attribute__((vector_size(16)));

void f_void(void) {}
int f_int_long(int a, long b) { return a + (int)b; }
double f_float_double(float a, double b) { return a + b; }
struct big f_big(struct small s, int *p)
{ struct big r = {{0}}; r.c[0] = (char)(s.a + *p); return r; }
int f_variadic(const char *fmt, ...) { return fmt[0]; }
long f_qualified(cmylong a, const volatile unsigned char *restrict b, _Atomic int c)
{ return a + *b + c; }
int f_enum(enum color c, _Bool flag, char ch, unsigned short sh, unsigned long long u)
{ return (int)c + flag + ch + sh + (int)u; }
int f_callback(callback cb, int arr[4], void (*fn)(void)) { fn(); return cb(arr[0]); }
static __attribute__((noinline)) int f_static(int a, double d) { return a + (int)d; }
int use_static(int a) { return f_static(a, 2.0) + f_static(a + 1, 3.0); }
struct hfa f_layouts(struct hfa h, struct mix m, struct bits b, union num u, v4 v)
{ h.x += m.d + b.a + u.i + v[0]; return h; }
long double f_long_double(long double x, _Complex double z, float _Complex w)
{ return __real__ z + __imag__ w > 0 ? x : -x; }
int f_kr(a, b) float a; char b; { return (int)a + b; }
int f_kr0() { return 1; }
int f_sixteen(int a1, int a2, int a3, int a4, int a5, int a6, int a7, int a8, int a9,
              int a10, int a11, int a12, int a13, int a14, int a15, int a16)
{ return a1 + a16; }
int f_many(int a1, int a2, int a3, int a4, int a5, int a6, int a7, int a8, int a9,
           int a10, int a11, int a12, int a13, int a14, int a15, int a16, int a17)
{ return a1 + a17; }
/* at -O2: inlined into f_inliner, and also emitted out of line (a concrete
   DIE whose types live on its DW_AT_abstract_origin) */
int f_inlined(int a, long b) { int s = 0; for (int i = 0; i < a; i++) s += i * b; return s; }
int f_inliner(int x) { return f_inlined(x, 3) + 1; }
"""

INTS16 = ", ".join(["int:4"] * 16)


def expected(target: str) -> dict[str, str]:
    """name -> render() of its signature on ``target``."""
    cc = get_target(target).callconv.name
    # long double: x87 on x86-64, binary128 on Linux AArch64 and RISC-V,
    # double on Apple arm64
    ld = {"elf-x64": "x87:16", "macho-x64": "x87:16", "macho-arm64": "float:8"}.get(
        target, "float:16")
    # arguments narrower than int: the caller extends them everywhere but on
    # Linux AArch64 (AAPCS64: the callee does), so their signedness is ABI;
    # plain char is unsigned on Linux AArch64 and RISC-V
    ext = target != "elf-aarch64"
    boolean, char, ushort = ("bool", "uint" if target == "elf-rv64" else "int", "uint") \
        if ext else ("int", "int", "int")
    sigs = {
        "f_void": "() -> void",
        "f_int_long": "(int:4, int:8) -> int:4",
        "f_float_double": "(float:4, float:8) -> float:8",
        "f_big": "(aggregate:8{i4x2@0}, ptr:8) -> aggregate:24{i1x24@0}",
        "f_variadic": "(ptr:8, ...) -> int:4",
        "f_qualified": "(int:8, ptr:8, int:4) -> int:8",
        "f_enum": f"(int:4, {boolean}:1, {char}:1, {ushort}:2, int:8) -> int:4",
        "f_callback": "(ptr:8, ptr:8, ptr:8) -> int:4",
        "f_static": "(int:4, float:8) -> int:4",
        "use_static": "(int:4) -> int:4",
        "f_layouts": "(aggregate:8{f4x2@0}, aggregate:24{i1@0,i4@4,i2x3@8,f8@16}, "
                     "aggregate:8{b3@0,b5@3,i4@4}, aggregate:4{union@0,f4@0,i4@0}, vector:16) "
                     "-> aggregate:8{f4x2@0}",
        "f_long_double": f"({ld}, complex:16, complex:8) -> {ld}",
        # K&R: default argument promotions (float -> double, char -> int)
        "f_kr": "K&R(float:8, int:4) -> int:4",
        "f_kr0": "K&R() -> int:4",
        "f_sixteen": f"({INTS16}) -> int:4",
        "f_many": f"({INTS16}, int:4) -> int:4",
        "f_inlined": "(int:4, int:8) -> int:4",
        "f_inliner": "(int:4) -> int:4",
    }
    return {name: f"{target} {cc} {text}" for name, text in sigs.items()}


# variant -> (clang flags, targets it applies to)
VARIANTS = {
    "O0": (["-O0", "-g"], TARGETS),
    "O0-dwarf4": (["-O0", "-gdwarf-4"], ["elf-x64", "elf-aarch64", "elf-rv64"]),
    "O0-dwarf5": (["-O0", "-gdwarf-5"], ["macho-x64", "macho-arm64"]),
    # AArch64 -O0 without GlobalISel, recorded on the command line
    "O0-noisel": (["-O0", "-g", "-fno-global-isel", "-grecord-command-line"], AARCH64),
    "O2": (["-O2", "-g"], TARGETS),
    "O2-dwarf4": (["-O2", "-gdwarf-4"], ["elf-x64", "elf-aarch64", "elf-rv64"]),
}
CASES = [(t, v) for v, (_, ts) in VARIANTS.items() for t in ts]


def compile_c(tmp: str, target: str, flags: list[str], name: str, text: str) -> str:
    t = get_target(target)
    src = os.path.join(tmp, name)
    with open(src, "w") as f:
        f.write(text)
    out = src[:-2] + ".o"
    subprocess.run([CLANG, f"--target={t.triple}", "-ffreestanding", "-fno-common", "-w",
                    *_FORMAT_FLAGS[t.format], f"-I{INCLUDE_DIR}", *flags, "-c", name,
                    "-o", out], cwd=tmp, check=True)
    return out


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    """(target, flags tuple, source) -> object path, each built once."""
    built: dict = {}

    def get(target: str, flags, text: str, name: str = "sigs.c") -> str:
        key = (target, tuple(flags), text, name)
        if key not in built:
            tmp = str(tmp_path_factory.mktemp(target))
            built[key] = compile_c(tmp, target, list(flags), name, text)
        return built[key]
    return get


class Linked:
    """One object linked alone into a fresh process; its DebugInfo at the
    runtime addresses."""

    def __init__(self, target: str, path: str):
        self.target = get_target(target)
        self.obj = load_object(path)
        self.proc = JitProcess(target)
        self.image = self.proc.link([self.obj])
        self.debug = DebugInfo.from_image(self.obj, self.image, 0)

    def address(self, c_name: str) -> int:
        """Runtime address of the object's symbol (static ones too)."""
        want = self.target.symbol(c_name)
        sym = next(s for s in self.obj.symbols if s.name == want and s.section is not None)
        return self.image.section_addrs[(0, sym.section)] + sym.value


@pytest.fixture(scope="module")
def linked(build):
    cache: dict = {}

    def get(target: str, variant: str) -> Linked:
        if (target, variant) not in cache:
            cache[target, variant] = Linked(target, build(target, VARIANTS[variant][0], SIGS_C))
        return cache[target, variant]
    return get


def debug_of(path: str) -> DebugInfo:
    """DebugInfo of an unlinked object, its loaded sections at made-up
    addresses (signature_of does not care where the code is)."""
    obj = load_object(path)
    return DebugInfo.from_object(obj, lambda si: 0x100000 + 0x10000 * si)


# -- exact signatures -------------------------------------------------------------------

@pytest.mark.parametrize("target,variant", CASES)
def test_signatures_exact(linked, target, variant):
    lk = linked(target, variant)
    assert lk.debug.available, lk.debug.reason
    t = get_target(target)
    want = expected(target)
    for name, text in want.items():
        sig = signature_of(lk.debug, name, target)
        assert sig is not None, name
        assert sig.render() == text, name
        assert (sig.target, sig.arch, sig.os, sig.callconv) == \
            (target, t.arch.name, t.host_os, t.callconv.name)
        assert sig.name == name and sig.language == "DW_LANG_C99"
        # by the runtime address of its entry: the same signature
        addr = lk.address(name)
        assert signature_at(lk.debug, addr, target) == sig, name
        # the symbol-table spelling (Mach-O: "_f") finds it too
        assert signature_of(lk.debug, t.symbol(name), t) == sig
        assert sig.over_limit == (name == "f_many")
        assert sig.prototyped == (name not in ("f_kr", "f_kr0"))
        assert sig.external == (name != "f_static")
    # the rest of the fields, for one function in full
    sig = signature_of(lk.debug, "f_int_long", target)
    assert sig == AbiSignature(target, t.arch.name, t.host_os, t.callconv.name, False,
                               ("int", 4), (("int", 4), ("int", 8)))
    assert sig.args == (AbiType("int", 4), AbiType("int", 8)) and sig.ret == ("int", 4)
    assert sig.variadic is False and signature_of(lk.debug, "f_variadic").variadic is True
    # every function with code is one of ours: nothing missed, nothing extra
    assert {f.name for f in lk.debug.functions()} == set(want)


@pytest.mark.parametrize("target,variant", CASES)
def test_problems_and_reloadability(linked, target, variant):
    lk = linked(target, variant)
    globalisel_doubt = target in AARCH64 and variant.startswith("O0") and variant != "O0-noisel"
    for name in expected(target):
        sig = signature_of(lk.debug, name)
        problems = sig.problems
        assert any("over the bound of 16" in p for p in problems) == (name == "f_many")
        assert any("static" in p for p in problems) == (name == "f_static")
        assert any("GlobalISel" in p for p in problems) == globalisel_doubt, (name, problems)
        assert sig.reloadable == (not problems)
        assert sig.reloadable == (name not in ("f_many", "f_static") and not globalisel_doubt)


def test_max_args_bound():
    assert MAX_ABI_ARGS == 16
    base = dict(target="elf-x64", arch="x64", os="linux", callconv="sysv-x86-64",
                variadic=False, ret=("int", 4))
    assert not AbiSignature(**base, args=(("int", 4),) * 16).over_limit
    over = AbiSignature(**base, args=(("int", 4),) * 17)
    assert over.over_limit and not over.reloadable
    assert over.problems == ["17 parameters, over the bound of 16 (MAX_ABI_ARGS)"]


@pytest.mark.parametrize("target", TARGETS)
def test_o2_out_of_line_copy_follows_abstract_origin(linked, target):
    """At -O2, f_inlined's out-of-line DIE holds no name, type nor
    parameter types: they are on its abstract origin; at -O0 they are on
    the DIE itself. Both read the same."""
    sigs = {}
    for variant in ("O0", "O2"):
        lk = linked(target, variant)
        (f,) = [f for f in lk.debug.functions() if f.name == "f_inlined"]
        die = lk.debug.dwarfinfo.get_DIE_from_refaddr(f.die_offset)
        assert ("DW_AT_abstract_origin" in die.attributes) == (variant == "O2")
        assert ("DW_AT_type" in die.attributes) == (variant == "O0")
        sigs[variant] = signature_of(lk.debug, "f_inlined")
        assert sigs[variant].render() == expected(target)["f_inlined"]
    assert sigs["O0"] == sigs["O2"]


def test_signature_is_computed_once(linked):
    lk = linked("elf-rv64", "O0")
    a = signature_of(lk.debug, "f_layouts")
    assert signature_of(lk.debug, "f_layouts") is a
    assert signature_at(lk.debug, lk.address("f_layouts")) is a


# -- compatibility ----------------------------------------------------------------------

OLD_C = """\
struct pair { int a, b; };
int f_same(int a, long b, const char *s) { return a + (int)b + s[0]; }
double f_fp(float a, double b) { return a * b; }
struct pair f_pair(struct pair p, int n) { p.a += n; return p; }
int f_log(const char *fmt, ...) { return fmt[0]; }
int f_ret(int a) { return a; }
int f_kr(a) int a; { return a; }
int f_arg_int(int a, int b) { return a + b; }
int f_arg_float(float a) { return (int)a; }
int f_add(int a, int b) { return a - b; }
int f_drop(int a, int b) { return a * b; }
"""

# the same signatures, other bodies
SAME_C = """\
struct pair { int a, b; };
int f_same(int x, long y, const char *z) { return z[1] * x - (int)y; }
double f_fp(float a, double b) { return b - a / 2; }
struct pair f_pair(struct pair p, int n) { struct pair q = { p.b * n, p.a }; return q; }
int f_log(const char *fmt, ...) { return fmt[1] + 7; }
int f_ret(int a) { return a * 3; }
int f_kr(b) int b; { return -b; }
int f_arg_int(int a, int b) { return a * b - 1; }
int f_arg_float(float a) { return (int)(a * 2); }
int f_add(int a, int b) { return b; }
int f_drop(int a, int b) { return 0; }
"""

# one change per function
CHANGED_C = """\
struct pair { float a, b; };
int f_same(int a, long b, const char *s) { return a; }
double f_fp(double a, double b) { return a * b; }
struct pair f_pair(struct pair p, int n) { p.a += n; return p; }
int f_log(const char *fmt) { return fmt[0]; }
long f_ret(int a) { return a; }
int f_kr(int a) { return a; }
int f_arg_int(int a, long b) { return a + (int)b; }
int f_arg_float(int a) { return a; }
int f_add(int a, int b, int *c) { return a - b + *c; }
int f_drop(int a) { return a; }
"""

CHANGES = {
    "f_fp": ["arg 1 size: 4 -> 8 (float:4 -> float:8)"],
    "f_pair": ["return layout: {i4x2@0} -> {f4x2@0} "
               "(aggregate:8{i4x2@0} -> aggregate:8{f4x2@0})",
               "arg 1 layout: {i4x2@0} -> {f4x2@0} "
               "(aggregate:8{i4x2@0} -> aggregate:8{f4x2@0})"],
    "f_log": ["variadic: yes -> no"],
    "f_ret": ["return size: 4 -> 8 (int:4 -> int:8)"],
    "f_kr": ["prototyped: no -> yes"],
    "f_arg_int": ["arg 2 size: 4 -> 8 (int:4 -> int:8)"],
    "f_arg_float": ["arg 1 class: float -> int (float:4 -> int:4)"],
    "f_add": ["arity: 2 -> 3 parameters (added arg 3 ptr:8)"],
    "f_drop": ["arity: 2 -> 1 parameters (removed arg 2 int:4)"],
}


def _functions(text: str) -> list[str]:
    return [line.split("(")[0].split()[-1] for line in text.splitlines()
            if "(" in line and not line.startswith("struct pair {")]


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("opt", ["-O0", "-O2"])
def test_identical_signatures_other_bodies_are_equal(build, target, opt):
    old = debug_of(build(target, [opt, "-g"], OLD_C, "old.c"))
    same = debug_of(build(target, [opt, "-g"], SAME_C, "same.c"))
    names = _functions(OLD_C)
    assert len(names) == 10
    for name in names:
        a, b = signature_of(old, name), signature_of(same, name)
        assert a is not None and b is not None, name
        assert a == b and hash(a) == hash(b), (name, a.differences(b))
        assert a.differences(b) == [] and b.differences(a) == []
    # the bodies really differ
    fa, fb = ({f.name: f for f in d.functions()} for d in (old, same))
    assert any(fa[n].high_pc - fa[n].low_pc != fb[n].high_pc - fb[n].low_pc for n in names)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("opt", ["-O0", "-O2"])
def test_changes_are_named(build, target, opt):
    old = debug_of(build(target, [opt, "-g"], OLD_C, "old.c"))
    new = debug_of(build(target, [opt, "-g"], CHANGED_C, "changed.c"))
    assert set(CHANGES) | {"f_same"} == set(_functions(OLD_C))
    for name, diffs in CHANGES.items():
        a, b = signature_of(old, name), signature_of(new, name)
        assert a != b, name
        assert a.differences(b) == diffs, name
    # a changed body with the same signature is still compatible
    assert signature_of(old, "f_same") == signature_of(new, "f_same")


def test_differences_of_every_field():
    base = AbiSignature("elf-x64", "x64", "linux", "sysv-x86-64", False, ("int", 4),
                        (("int", 4), ("ptr", 8)))
    assert base.differences(base) == []
    cases = {
        "target": (dict(target="macho-x64", os="macos"),
                   ["target: elf-x64 -> macho-x64", "os: linux -> macos"]),
        "arch": (dict(arch="aarch64"), ["arch: x64 -> aarch64"]),
        "callconv": (dict(callconv="DW_CC_LLVM_Win64"),
                     ["calling convention: sysv-x86-64 -> DW_CC_LLVM_Win64"]),
        "variadic": (dict(variadic=True), ["variadic: no -> yes"]),
        "nocall": (dict(nocall=True), ["nocall (DW_CC_nocall): no -> yes"]),
        "return": (dict(ret=("void", 0)), ["return class: int -> void (int:4 -> void)"]),
        "arg": (dict(args=(("int", 4), ("ptr", 4))), ["arg 2 size: 8 -> 4 (ptr:8 -> ptr:4)"]),
        "two": (dict(args=(("float", 8), ("int", 8))),
                ["arg 1 class: int -> float (int:4 -> float:8)",
                 "arg 2 class: ptr -> int (ptr:8 -> int:8)"]),
    }
    for what, (change, diffs) in cases.items():
        other = dataclasses.replace(base, **change)
        assert other != base, what
        assert base.differences(other) == diffs, what
    # identity fields are not part of the ABI
    assert dataclasses.replace(base, name="g", external=False, language="DW_LANG_C11") == base


def test_render_and_construction():
    sig = AbiSignature("elf-aarch64", "aarch64", "linux", "aapcs64", True, ("int", 4),
                       (("int", 4), ("ptr", 8), ("float", 8)))
    assert sig.render() == "elf-aarch64 aapcs64 (int:4, ptr:8, float:8, ...) -> int:4"
    assert str(sig) == sig.render()
    assert isinstance(sig.ret, AbiType) and all(isinstance(a, AbiType) for a in sig.args)
    assert sig.arg_layouts == ("", "", "") and sig.arity == 3
    void = AbiSignature("elf-rv64", "rv64", "linux", "lp64d", False, ("void", 0), (),
                        prototyped=False, nocall=True)
    assert void.render() == "elf-rv64 lp64d K&R() -> void [nocall]"
    assert any("DW_CC_nocall" in p for p in void.problems)
    with pytest.raises(ValueError):
        AbiSignature("elf-x64", "x64", "linux", "sysv-x86-64", False, ("int", 4),
                     (("int", 4),), arg_layouts=("", ""))
    # hashable: usable as a key
    assert len({sig, dataclasses.replace(sig, name="x")}) == 1
    assert sig.reloadable and sig.problems == []
    assert dataclasses.replace(sig, args=(("int", 4), ("unknown", 8)),
                               arg_layouts=("", "")).problems == \
        ["arg 2: a type without an ABI class"]
    assert dataclasses.replace(sig, language="DW_LANG_C_plus_plus").problems == \
        ["not a C function (DW_LANG_C_plus_plus)"]
    assert dataclasses.replace(sig, language="DW_LANG_C11").reloadable


# -- calling conventions, and clang's AArch64 -O0 parameter drop -------------------------

MS_ABI_C = """\
int __attribute__((ms_abi)) f_ms(int a) { return a; }
int f_sysv(int a) { return a; }
"""


@pytest.mark.parametrize("target", ["elf-x64", "macho-x64"])
def test_calling_convention_attribute(build, target):
    d = debug_of(build(target, ["-O0", "-g"], MS_ABI_C, "ms.c"))
    ms, sysv = signature_of(d, "f_ms"), signature_of(d, "f_sysv")
    assert ms.callconv == "DW_CC_LLVM_Win64" and sysv.callconv == "sysv-x86-64"
    assert ms.render() == f"{target} DW_CC_LLVM_Win64 (int:4) -> int:4"
    assert sysv.differences(ms) == ["calling convention: sysv-x86-64 -> DW_CC_LLVM_Win64"]


BYREF_C = """\
struct s17 { char c[17]; };
int f_byref(int a, struct s17 unused, int b) { return a + b; }
"""


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("flags", [["-O0", "-g"],
                                   ["-O0", "-g", "-fno-global-isel", "-grecord-command-line"],
                                   ["-O2", "-g"]], ids=["O0", "O0-noisel", "O2"])
def test_by_reference_aggregate_parameter(build, target, flags):
    """An unused aggregate parameter passed by reference: clang's AArch64
    GlobalISel (-O0) may leave it out of DWARF, so such a signature carries
    a doubt; everywhere else the parameter is there and nothing is doubted."""
    d = debug_of(build(target, flags, BYREF_C, "byref.c"))
    sig = signature_of(d, "f_byref")
    cc = get_target(target).callconv.name
    full = f"{target} {cc} (int:4, aggregate:17{{i1x17@0}}, int:4) -> int:4"
    if target in AARCH64 and flags == ["-O0", "-g"]:
        assert sig.doubts and "GlobalISel" in sig.doubts[0] and not sig.reloadable
        assert sig.doubts[0] in sig.problems
    else:
        assert sig.doubts == () and sig.reloadable
        assert sig.render() == full


# -- None and errors --------------------------------------------------------------------

@pytest.mark.parametrize("target", TARGETS)
def test_without_debug_info_none(build, target):
    path = build(target, ["-O0", "-g0"], SIGS_C, "nog.c")
    lk = Linked(target, path)
    assert lk.debug.available is False
    for name in ("f_int_long", "f_static", get_target(target).symbol("f_void")):
        assert signature_of(lk.debug, name, target) is None
    assert signature_at(lk.debug, lk.address("f_int_long"), target) is None


def test_unknown_name_or_address_none(linked):
    lk = linked("macho-arm64", "O0")
    assert signature_of(lk.debug, "no_such_function") is None
    assert signature_of(lk.debug, "__f_void") is None             # one "_" only
    assert signature_of(lk.debug, "color") is None                # not a function
    addr = lk.address("f_int_long")
    assert signature_at(lk.debug, addr) is not None
    assert signature_at(lk.debug, addr + 4) is None               # inside, not the entry
    # ELF symbols have no prefix to strip
    elf = linked("elf-x64", "O0")
    assert signature_of(elf.debug, "_f_void") is None
    assert signature_of(elf.debug, "f_void") is not None


def test_target_must_be_the_objects(linked):
    lk = linked("elf-x64", "O0")
    with pytest.raises(ConfigError, match="elf-x64"):
        signature_of(lk.debug, "f_void", "elf-rv64")
    assert signature_of(lk.debug, "f_void", get_target("elf-x64")) == \
        signature_of(lk.debug, "f_void")


# -- the classifier on DWARF shapes clang does not write for C -----------------------------

class _Attr:
    def __init__(self, value):
        self.value = value


class _Die:
    """Just enough of a pyelftools DIE for the classifier."""

    _next = 0

    def __init__(self, tag, type=None, children=(), **attrs):
        _Die._next += 1
        self.offset = _Die._next
        self.tag = tag
        self._type = type
        self._children = list(children)
        self.attributes = {f"DW_AT_{k}": _Attr(v) for k, v in attrs.items()}
        if type is not None:
            self.attributes["DW_AT_type"] = _Attr(type)

    def get_DIE_from_attribute(self, name):
        assert name == "DW_AT_type"
        return self._type

    def iter_children(self):
        return iter(self._children)


def test_classifier_on_uncommon_shapes():
    from kitemu.reload.abi import _Classifier

    c = _Classifier(8)
    int4 = _Die("DW_TAG_base_type", encoding=5, byte_size=4)
    array = _Die("DW_TAG_array_type", type=int4,
                 children=[_Die("DW_TAG_subrange_type", upper_bound=3)])
    fn = _Die("DW_TAG_subroutine_type", type=int4)
    assert c.classify(array, parameter=True) == (("ptr", 8), "")       # decays
    assert c.classify(fn, parameter=True) == (("ptr", 8), "")          # decays
    assert c.size(array) == 16
    # an enum without DW_AT_byte_size has its underlying type's size
    enum = _Die("DW_TAG_enumeration_type", type=_Die("DW_TAG_base_type", encoding=7,
                                                     byte_size=2))
    assert c.classify(_Die("DW_TAG_typedef", type=_Die("DW_TAG_const_type", type=enum)),
                      parameter=True) == (("uint", 2), "")
    # ... which only matters where the caller extends narrow arguments
    assert _Classifier(8, "aarch64", "linux").classify(enum, parameter=True) == (("int", 2), "")
    assert _Classifier(8, "aarch64", "macos").classify(enum, parameter=True) == (("uint", 2), "")
    # without an underlying type: unsigned unless an enumerator is negative
    for values, cls in (((0, 1), "uint"), ((-1, 1), "int")):
        bare = _Die("DW_TAG_enumeration_type", byte_size=1, children=[
            _Die("DW_TAG_enumerator", const_value=v) for v in values])
        assert c.classify(bare, parameter=True) == ((cls, 1), "")
    # const void (a typedef of a qualifier of nothing) is void
    assert c.classify(_Die("DW_TAG_const_type"), parameter=False) == (("void", 0), "")
    # a struct holding the array: its layout folds the run
    struct = _Die("DW_TAG_structure_type", byte_size=24, children=[
        _Die("DW_TAG_member", type=array, data_member_location=0),
        _Die("DW_TAG_member", type=_Die("DW_TAG_pointer_type", type=fn),
             data_member_location=16)])
    assert c.classify(struct, parameter=True) == (("aggregate", 24), "{i4x4@0,p8@16}")
    # a C++ class passed by invisible reference
    byref = _Die("DW_TAG_class_type", byte_size=4, calling_convention=4,
                 children=[_Die("DW_TAG_member", type=int4, data_member_location=0)])
    assert c.classify(byref, parameter=True) == (("aggregate", 4), "byref")
    # something without an ABI class
    assert c.classify(_Die("DW_TAG_string_type", byte_size=8), parameter=True) == \
        (("unknown", 8), "")


# -- what the layout and the classes must see: changes that move arguments -----------------

HIDDEN_OLD_C = """\
struct flex { float x; };
struct zero { float x; };
struct uni { float a; };
struct talign { long a, b; };
struct malign { long a, b; };
struct big { long a[10]; };
struct big2 { char a[600], b[408]; struct { long x, pad; } in; };
struct atom { float a; float b; };
int h_schar(signed char c) { return c; }
int h_bool(_Bool b) { return b; }
unsigned short h_ushort(short s) { return s; }
int h_flex(struct flex s) { return (int)s.x; }
int h_zero(struct zero s) { return (int)s.x; }
int h_union(struct uni s) { return (int)s.a; }
int h_talign(int a, struct talign s) { return a + (int)s.a; }
int h_malign(int a, struct malign s) { return a + (int)s.a; }
int h_big(struct big s) { return (int)s.a[0]; }
int h_big2(struct big2 s) { return (int)s.in.x; }
int h_atomic(struct atom s) { return (int)s.a; }
#if defined(__x86_64__) && defined(__SIZEOF_FLOAT128__)
long double h_x87(long double x) { return x; }
#endif
"""

# each function: the same C-level shape, a change the callers' code depends on
HIDDEN_NEW_C = """\
struct flex { float x; float f[]; };
struct zero { float x; float f[0]; };
union uni { float a; float b; };
struct talign { long a, b; } __attribute__((aligned(16)));
struct malign { _Alignas(16) long a; long b; };
struct big { long a[10]; } __attribute__((aligned(16)));
struct big2 { char a[600], b[408]; struct { _Alignas(16) long x; long pad; } in; };
struct atom { _Atomic float a; float b; };
int h_schar(unsigned char c) { return c; }
int h_bool(unsigned char b) { return b; }
short h_ushort(unsigned short s) { return s; }
int h_flex(struct flex s) { return (int)s.x; }
int h_zero(struct zero s) { return (int)s.x; }
int h_union(union uni s) { return (int)s.a; }
int h_talign(int a, struct talign s) { return a + (int)s.a; }
int h_malign(int a, struct malign s) { return a + (int)s.a; }
int h_big(struct big s) { return (int)s.a[0]; }
int h_big2(struct big2 s) { return (int)s.in.x; }
int h_atomic(struct atom s) { return (int)s.a; }
#if defined(__x86_64__) && defined(__SIZEOF_FLOAT128__)
__float128 h_x87(__float128 x) { return x; }
#endif
"""


def hidden_changes(target: str) -> dict[str, list[str]]:
    """name -> differences() from HIDDEN_OLD_C to HIDDEN_NEW_C on ``target``
    (DWARF 5); [] where the change is no ABI change there."""
    def layout(what, size, old, new):
        return [f"{what} layout: {old or 'none'} -> {new} "
                f"(aggregate:{size}{old} -> aggregate:{size}{new})"]
    ext = target != "elf-aarch64"        # the caller extends narrow arguments
    out = {
        "h_schar": ["arg 1 class: int -> uint (int:1 -> uint:1)"] if ext else [],
        "h_bool": ["arg 1 class: bool -> uint (bool:1 -> uint:1)"] if ext else [],
        "h_ushort": (["return class: uint -> int (uint:2 -> int:2)",
                      "arg 1 class: int -> uint (int:2 -> uint:2)"] if ext else []),
        "h_flex": layout("arg 1", 4, "{f4@0}", "{f4@0,flex@4}"),
        "h_zero": layout("arg 1", 4, "{f4@0}", "{f4@0,zero@4}"),
        "h_union": layout("arg 1", 4, "{f4@0}", "{union@0,f4@0}"),
        "h_talign": layout("arg 2", 16, "{i8x2@0}", "{align16,i8x2@0}"),
        "h_malign": layout("arg 2", 16, "{i8x2@0}", "{align16@0,i8x2@0}"),
        # larger than LAYOUT_MAX_SIZE: only the alignment is left
        "h_big": layout("arg 1", 80, "", "{align16}"),
        # a nested member's, however far in (1024 bytes either way)
        "h_big2": layout("arg 1", 1024, "", "{align16}"),
        "h_atomic": layout("arg 1", 8, "{f4x2@0}", "{atomic@0,f4x2@0}"),
    }
    if target == "elf-x64":             # Apple's clang has no __float128
        out["h_x87"] = ["return class: x87 -> float (x87:16 -> float:16)",
                        "arg 1 class: x87 -> float (x87:16 -> float:16)"]
    return out


@pytest.mark.parametrize("target", TARGETS)
def test_changes_that_move_arguments_are_seen(build, target):
    """Each change keeps the C shape and the sizes but changes where or how
    the caller passes the value (clang's lowering, checked below by
    test_equal_signatures_are_lowered_alike): the extension of a narrow
    integer, x87 against binary128, a flexible or zero-length array (no
    x86-64 register, no AArch64 HFA, no RISC-V FP pair), a union (no RISC-V
    FP pair), an aggregate's or a member's alignment (even register pairs,
    the stack slot), an _Atomic member (x86-64 memory)."""
    old = debug_of(build(target, ["-O0", "-gdwarf-5"], HIDDEN_OLD_C, "hidden_old.c"))
    new = debug_of(build(target, ["-O0", "-gdwarf-5"], HIDDEN_NEW_C, "hidden_new.c"))
    for name, diffs in hidden_changes(target).items():
        a, b = signature_of(old, name), signature_of(new, name)
        assert a is not None and b is not None, name
        assert a.differences(b) == diffs, name
        assert (a == b) == (not diffs), name


# -- equal signatures must be equal calls: clang's own lowering as the oracle ---------------

#: scalar and aggregate types whose passing differs in some way on some target
ORACLE_TYPES = {
    "bool": "_Bool", "char": "char", "schar": "signed char", "uchar": "unsigned char",
    "short": "short", "ushort": "unsigned short", "int": "int", "uint": "unsigned",
    "long": "long", "ulong": "unsigned long", "i128": "__int128", "float": "float",
    "double": "double", "ldouble": "long double", "cfloat": "_Complex float",
    "cdouble": "_Complex double", "es": "enum es", "en": "enum en", "eb": "enum eb",
    "v4f": "v4f", "v4i": "v4i", "v2d": "v2d", "ptr": "int *",
}
ORACLE_STRUCTS = {          # name -> body (after "struct NAME {"), "union" bodies start with "|"
    "f1": "float x; };", "f2": "float a, b; };", "f3": "float a, b, c; };",
    "farr3": "float a[3]; };", "f4": "float a, b, c, d; };", "f5": "float a, b, c, d, e; };",
    "d2": "double a, b; };", "df": "double a; float b; };", "fd": "float a; double b; };",
    "fi": "float f; int i; };", "if_": "int i; float f; };", "dl": "double d; long l; };",
    "ld": "long l; double d; };", "cf": "char c; float f; };", "i1": "int n; };",
    "fflex": "float x; float f[]; };", "fzero": "float x; float f[0]; };",
    "iflex": "int n; int f[]; };", "u_ff": "|float f; float g; };",
    "u_fi": "|float f; int i; };", "nu_f": "union { float a; float b; } u; float c; };",
    "l2": "long a, b; };", "l1pad": "long a; long pad; };",
    "l2al": "long a, b; } __attribute__((aligned(16)));",
    "l2mal": "_Alignas(16) long a; long b; };", "i128s": "__int128 x; };",
    "c16": "char c[16]; };", "c16al": "char c[16]; } __attribute__((aligned(16)));",
    "f2al": "float a, b; } __attribute__((aligned(16)));",
    "f4al": "float a, b, c, d; } __attribute__((aligned(16)));",
    "dmal": "_Alignas(16) double a; double b; };",
    "ldbl": "long double x; };", "cflt": "_Complex float z; };", "v4fs": "v4f v; };",
    "at3": "_Atomic int x; };", "atf2": "_Atomic float a; float b; };",
    "big": "long a[10]; };", "bigal": "long a[10]; } __attribute__((aligned(16)));",
}
ORACLE_DECLS = """\
enum es { ES_A, ES_B } __attribute__((packed));
enum en { EN_A = -1, EN_B } __attribute__((packed));
enum eb { EB_A = 1L << 40 };
typedef float v4f __attribute__((vector_size(16)));
typedef int v4i __attribute__((vector_size(16)));
typedef double v2d __attribute__((vector_size(16)));
"""
ORACLE_SHAPES = {   # where the value goes: first registers, the stack, after the FP registers
    "arg": "void F(int a0, T t) {}",
    "stack": "void F(long a0, long a1, long a2, long a3, long a4, long a5, long a6, long a7, "
             "T t, long z) {}",
    "fpfull": "void F(double d0, double d1, double d2, double d3, double d4, double d5, "
              "double d6, double d7, T t, double z) {}",
    "ret": "T F(void) { T x; __builtin_memset(&x, 0, sizeof x); return x; }",
}


def _oracle_source(target: str) -> tuple[str, list[str]]:
    types, structs = dict(ORACLE_TYPES), dict(ORACLE_STRUCTS)
    if target == "elf-x64":             # binary128 next to x87 (Apple's clang has none)
        types["f128"] = "__float128"
        structs["f128s"] = "__float128 x; };"
    decls = [ORACLE_DECLS]
    for name, body in structs.items():
        kind = "union" if body.startswith("|") else "struct"
        decls.append(f"{kind} {name} {{ {body.lstrip('|')}")
        types["S_" + name] = f"{kind} {name}"
    names, funcs = [], []
    for shape, template in ORACLE_SHAPES.items():
        for t, ctype in types.items():
            names.append(f"o_{shape}_{t}")
            funcs.append(template.replace("F", names[-1]).replace("T", ctype))
    return "\n".join(decls + funcs) + "\n", names


def _vector_bytes(m) -> int:
    """Size of the LLVM vector type matched as ``<N x T>``."""
    bits = {"float": 32, "double": 64}.get(m.group(2)) or int(m.group(2)[1:])
    return int(m.group(1)) * bits // 8


def _lowered(ir: str, target: str) -> dict[str, str]:
    """Function name -> its LLVM IR prototype after clang's ABI lowering,
    names and ABI-neutral attributes removed."""
    out = {}
    for m in re.finditer(r"^define [^@]*@(\w+)\((.*)\).*\{$", ir, re.M):
        text = m.group(0)
        text = re.sub(r"%[\w.]+(?=[,)])", "", text)                       # parameter names
        text = re.sub(r"\b(dso_local|noundef|nonnull|noalias|nocapture|readonly|"
                      r"writeonly|local_unnamed_addr)\b", "", text)
        text = re.sub(r"#\d+|dereferenceable\(\d+\)", "", text)
        text = re.sub(r"%(struct|union)\.\w+", "%agg", text)
        text = re.sub(r"@\w+", "@f", text)
        # the sret pointer's alignment is the callee's business
        text = re.sub(r"(sret\([^)]*\)) align \d+", r"\1", text)
        # a vector travels by its size, whatever its elements
        text = re.sub(r"<(\d+) x (i\d+|float|double)>", lambda v: f"<vector:{_vector_bytes(v)}>",
                      text)
        if target == "elf-aarch64":
            # AAPCS64: the callee extends a narrow argument, so _Bool (i1)
            # and char (i8) arrive alike
            text = re.sub(r"\bi1\b", "i8", text)
        out[m.group(1)] = " ".join(text.split())
    return out


@pytest.mark.parametrize("target", TARGETS)
def test_equal_signatures_are_lowered_alike(tmp_path, target):
    """The dangerous direction of ABI equality, against an oracle that owes
    nothing to DWARF: clang's own lowering of each prototype to LLVM IR
    (which register class, coercion, byval and its alignment, sret,
    sign/zero extension). Over many types, each passed first, on the stack,
    after the FP registers and returned, two definitions whose signatures
    compare equal must lower to the same prototype. Left out on purpose:
    what DWARF cannot show (see the module doc of kitemu.reload.abi)."""
    source, names = _oracle_source(target)
    src = tmp_path / "oracle.c"
    src.write_text(source)
    t = get_target(target)
    base = [CLANG, f"--target={t.triple}", "-ffreestanding", "-w", "-O0",
            *_FORMAT_FLAGS[t.format]]
    if t.arch.name == "aarch64":
        base += ["-fno-global-isel", "-grecord-command-line"]
    subprocess.run(base + ["-gdwarf-5", "-c", str(src), "-o", str(tmp_path / "oracle.o")],
                   check=True)
    ir = subprocess.run(base + ["-g0", "-S", "-emit-llvm", str(src), "-o", "-"], check=True,
                        capture_output=True, text=True).stdout
    lowered = _lowered(ir, target)
    debug = debug_of(str(tmp_path / "oracle.o"))
    groups: dict = {}
    for name in names:
        sig = signature_of(debug, name)
        assert sig is not None and sig.reloadable, (name, sig and sig.problems)
        groups.setdefault((name.split("_")[1], sig), {})[name] = lowered[name]
    clashes = [f"{sig.render()}:\n" + "\n".join(f"    {n}: {p}" for n, p in members.items())
               for (_, sig), members in groups.items() if len(set(members.values())) > 1]
    assert not clashes, "equal signatures, different calls:\n" + "\n".join(clashes)
    # and the oracle does tell types apart: most groups hold one type
    assert len(groups) > 0.6 * len(names)
