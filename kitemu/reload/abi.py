"""ABI signatures of function definitions, read from their DWARF (roadmap 1.3).

Hot reload must not change the ABI that callers were compiled against: a new
body of ``f`` may replace the old one only if a call set up for the old
definition is exactly the call the new one expects. This module gives each
definition a compact, comparable :class:`AbiSignature` - target, arch, OS,
calling convention, variadic flag, return class and size, argument classes
and sizes - derived from the ``DW_TAG_subprogram`` that ``clang -g`` wrote
for it. **Two definitions are ABI-compatible iff their signatures are
equal**; :meth:`AbiSignature.differences` says what differs.

Classes
-------
Qualifiers (``typedef``, ``const``, ``volatile``, ``restrict``, ``_Atomic``)
are stripped, then a type is one of:

``void``       no value (return only); size 0
``int``        integers of any size, ``_Bool``, characters, enums, fixed-point
``uint``       an unsigned integer narrower than ``int`` (characters, enums
               too), and
``bool``       ``_Bool``, where the caller extends narrow arguments and the
               callee relies on it (clang on x86-64, Apple arm64 and RISC-V:
               ``signext``/``zeroext``): ``int f(signed char)`` and ``int
               f(unsigned char)`` receive -1 as different register values.
               On Linux AArch64 the callee extends (AAPCS64) and all three
               are ``int``
``ptr``        object and function pointers, C++ references; an array or a
               function *parameter* decays to a pointer (clang usually writes
               the decayed pointer type already)
``float``      ``float``, ``double``, ``long double`` where it is binary128
               (16 on Linux AArch64/RISC-V) or double (8 on Apple arm64),
               ``__float128``, imaginary and decimal floating types
``x87``        x86-64 ``long double`` (16): the x87 format goes in memory
               and comes back in ``st(0)``; ``__float128`` travels in SSE
               registers
``complex``    ``_Complex`` (DW_ATE_complex_float), sized
``vector``     GNU vector types (``__attribute__((vector_size(N)))``), which
               travel in vector registers, unlike arrays
``aggregate``  struct, union, class, sized
``unknown``    anything else (never produced for C); such a signature is not
               :attr:`~AbiSignature.reloadable`

Aggregate layouts
-----------------
Size alone does not decide how an aggregate is passed: on all three
architectures ``struct {int a, b;}`` travels in integer registers and
``struct {float a, b;}`` in floating-point ones (x86-64 SSE class, AArch64
HFA, RISC-V LP64D flattening), although both are ``aggregate:8``. So every
aggregate of at most :data:`LAYOUT_MAX_SIZE` bytes also has a *layout*, part
of the signature and of its equality: its scalar leaves in offset order, as
``<letter><size>@<offset>`` (i int/uint/bool, p ptr, f float, x x87, c
complex, v vector, u unknown), runs of equal adjacent leaves folded to
``<letter><size>x<count>@<offset>``, bit-fields as ``b<bits>@<bit offset>``:
``struct {int a; float b[2];}`` is ``{i4@0,f4x2@4}``. Leaves are not
enough: marks, before the leaves at their offset, record what clang's
classification also looks at (``tests/test_reload_abi.py`` checks them
against clang's own lowering):

* ``flex@<offset>`` a flexible array member, ``zero@<offset>`` a GNU
  zero-length array: no room, but a struct with a flexible array goes in
  memory on x86-64, and neither kind may be in an AArch64 HFA (nor the
  first in a RISC-V floating-point pair);
* ``union@<offset>``: RISC-V never passes a union in FP registers;
* ``align<N>`` the aggregate's own alignment attribute,
  ``align<N>@<offset>`` a member's (``_Alignas``, an aligned typedef or
  nested type): 16-byte alignment takes an even register pair (AArch64,
  RISC-V) and a 16-aligned stack slot (x86-64, AArch64 HFAs); Linux
  AArch64 ignores the first kind for passing, so the two are told apart;
* ``atomic@<offset>``: an ``_Atomic`` member or aggregate (x86-64 passes it
  in memory; DWARF 5 only, see below).

Larger aggregates go in memory / by reference on every supported ABI
whatever their contents, so their layout is ``""``, or ``{align<N>}`` for
the largest alignment asked for anywhere in them (which places them on the
x86-64 stack). (A C++ class passed by invisible reference,
DW_CC_pass_by_reference, has the layout ``byref``.)

Finding the definition
----------------------
:func:`signature_of` looks a definition up by name (``DW_AT_name`` or
``DW_AT_linkage_name``; on Mach-O the symbol spelling with its leading ``_``
is accepted as well as the C name), :func:`signature_at` by the runtime
address of its entry (``DW_AT_low_pc`` as relocated by
:class:`~kitemu.loader.dwarf.DebugInfo`). Only subprograms with code count
(declarations and the abstract instances of inlined functions do not). At
``-O2`` the out-of-line copy of a function that was also inlined is a
concrete DIE whose name, return type, parameters and prototyped flag live on
its ``DW_AT_abstract_origin`` (C++ definitions outside their class point at
the declaration with ``DW_AT_specification``): the chain is followed, each
attribute taken from the first DIE of the chain that has it, the parameter
list from the last DIE that has one (the complete description). Parameters
are the ``DW_TAG_formal_parameter`` children in order (C++'s artificial
``this`` included: it is a real argument); a
``DW_TAG_unspecified_parameters`` child makes the signature variadic.

Decisions
---------
* **K&R (unprototyped) definitions** - ``int f()``, ``int f(a) float a;
  {...}``, C without ``DW_AT_prototyped`` - get ``prototyped=False``, part
  of equality: callers of an unprototyped function pass default-promoted
  arguments with no check, and on x86-64 set ``%al`` as for a variadic call,
  so such a definition is compatible only with another unprototyped one
  taking the same promoted arguments (``int f()`` is *not* equal to ``int
  f(void)``: the conservative answer). Its arguments are recorded *after*
  the default argument promotions, which is what the callee really receives
  (``float`` -> ``float:8``, integers narrower than ``int`` -> ``int:4``).
  ``variadic`` stays False: calling a variadic function through a
  non-prototype declaration is undefined in C, so an unprototyped definition
  is never variadic. Rendered ``K&R(...)``.
* **More than MAX_ABI_ARGS parameters**: the signature is still returned,
  complete, with ``over_limit=True`` (a derived, non-compared field), and
  :attr:`~AbiSignature.reloadable` is False; nothing is raised, so the
  caller can both show the signature and mark the function non-reloadable.
* **Problems** (:attr:`~AbiSignature.problems`, which make a signature not
  :attr:`~AbiSignature.reloadable`): over the limit; ``DW_CC_nocall`` (the
  compiler rewrote the function's ABI); an ``unknown`` class; a non-C
  compilation unit (roadmap: non-C signatures reject reload); an internal
  (``static``) function. The last one is not pedantry: at ``-O2`` clang 14
  drops unused parameters and unused return values of static functions and
  may switch them to ``fastcc`` *without* saying so in DWARF (no
  ``DW_CC_nocall``), so the DWARF of a static function describes its source,
  not necessarily its calls.
* **A parameter DWARF does not show.** clang 14's AArch64 GlobalISel (its
  ``-O0`` instruction selector on both AArch64 targets) drops an *unused*
  aggregate parameter passed by reference (over 16 bytes, not an HFA) from
  the DWARF, type and all: ``int f(int a, struct {char c[17];} t, int b)``
  reads as ``(int:4, int:4)`` while ``b`` really travels in ``w2``. Nothing
  in the DIE betrays it, so the signature of unoptimized AArch64 clang code
  (no ``DW_AT_call_all_calls`` / ``DW_AT_GNU_all_call_sites`` /
  ``DW_AT_APPLE_optimized``, which optimized code carries and which keeps
  every parameter) has a :attr:`~AbiSignature.doubts` entry, a problem,
  unless the recorded command line shows ``-fno-global-isel``
  (``-grecord-command-line`` records it in ``DW_AT_producer``, in
  ``DW_AT_APPLE_flags`` on Darwin). Compile reloadable AArch64 code at
  ``-O0`` with ``-fno-global-isel -grecord-command-line``.
* Identity and diagnostic fields (``name``, ``external``, ``language``,
  ``doubts``, ``over_limit``) are carried for messages and
  :attr:`~AbiSignature.problems` but are not part of equality: a static and
  a global function of the same signature are ABI-equal.
* By name, several definitions (static functions of one name in different
  compilation units of an ``ld -r`` object): the external one wins, then the
  lowest address. :func:`signature_at` is unambiguous.
* No DWARF (built without ``-g``), DWARF the reader could not use, or no
  matching subprogram with code: None. A subprogram described only by
  ``DW_AT_ranges`` is not listed by ``DebugInfo.functions()`` and so is not
  found (clang does not split C functions at these settings).
* Argument numbers in messages are 1-based (``arg 1`` is the first).
* **What DWARF does not show**, so signatures cannot tell apart (clang
  14): ``_Atomic`` in DWARF 4 (the default on Darwin: no
  DW_TAG_atomic_type; an ``_Atomic`` member sends an x86-64 struct to
  memory); ``__attribute__((packed))`` that only lowers the alignment
  (``struct {__int128 x;} __attribute__((packed))`` leaves the AArch64 and
  RISC-V even register pair); the aligned attribute of a typedef of an
  aggregate (no DW_AT_alignment on DW_TAG_typedef); a member's
  ``_Alignas(16)`` against a member of a 16-aligned typedef (the same
  DW_AT_alignment; AArch64 aligns the stack slot of an HFA for the first
  only); ``_Complex long double`` against ``_Complex __float128`` on
  x86-64 (both ``complex``, 32 bytes; returned in ``st(0)``/``st(1)``
  against memory); and compilation flags that change the ABI without a
  trace in the types (``-mlong-double-128``, ``-mavx`` for 32-byte
  vectors).

Everything about one definition is computed once per :class:`DebugInfo`
(a weak cache), so asking again is a dictionary lookup.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import NamedTuple

from elftools.dwarf.enums import ENUM_DW_ATE, ENUM_DW_CC, ENUM_DW_LANG

from ..errors import ConfigError
from ..loader.dwarf import _DWARF_ERRORS, DebugInfo, FunctionInfo
from ..targets import Target, get_target

#: functions with more parameters than this are not reloadable (roadmap:
#: the fixed KIT_ABI_MAX_ARGS bound of the signature encoding)
MAX_ABI_ARGS = 16

#: aggregates up to this size carry their scalar layout in the signature;
#: every supported ABI passes larger ones in memory or by reference whatever
#: they hold (the largest register-passed aggregate is an AArch64 HFA of four
#: 16-byte long doubles)
LAYOUT_MAX_SIZE = 64

VOID, INT, PTR, FLOAT, COMPLEX, VECTOR, AGGREGATE, UNKNOWN = (
    "void", "int", "ptr", "float", "complex", "vector", "aggregate", "unknown")
#: integers narrower than int that the caller zero-extends (``uint``) and
#: ``_Bool`` (``bool``), where the caller's extension is part of the ABI
UINT, BOOL = "uint", "bool"
#: x86-64 ``long double``: the x87 80-bit format, passed in memory and
#: returned in ``st(0)``, unlike the IEEE binary128 ``__float128`` (SSE)
X87 = "x87"
_INTEGERS = (INT, UINT, BOOL)

#: C's int on every supported target, for the default argument promotions
_C_INT_SIZE = 4

_LEAF_LETTER = {INT: "i", UINT: "i", BOOL: "i", PTR: "p", FLOAT: "f", X87: "x", COMPLEX: "c",
                VECTOR: "v", UNKNOWN: "u", AGGREGATE: "a"}


class AbiType(NamedTuple):
    """One value's ABI class and size in bytes. A plain tuple underneath:
    ``AbiType("int", 4) == ("int", 4)``."""

    cls: str
    size: int

    def __str__(self) -> str:
        return VOID if self.cls == VOID else f"{self.cls}:{self.size}"


@dataclass(frozen=True)
class AbiSignature:
    """The ABI of one function definition. Equal signatures = compatible
    definitions. ``ret`` and ``args`` accept plain ``(class, size)`` tuples;
    ``arg_layouts`` defaults to no layout for every argument."""

    target: str                      # registry name, e.g. "elf-aarch64"
    arch: str                        # "x64" | "aarch64" | "rv64"
    os: str                          # "linux" | "macos"
    callconv: str                    # the target's CallConv.name, or a DW_CC_* name
    variadic: bool
    ret: AbiType
    args: tuple[AbiType, ...]
    prototyped: bool = True          # False: a K&R definition (see the module doc)
    ret_layout: str = ""             # aggregates <= LAYOUT_MAX_SIZE: "{i4@0,...}"
    arg_layouts: tuple[str, ...] = ()
    nocall: bool = False             # DW_CC_nocall: the compiler changed the ABI
    # -- identity, not ABI: not compared ------------------------------------------------
    name: str = field(default="", compare=False)
    external: bool = field(default=True, compare=False)
    language: str = field(default="", compare=False)
    #: reasons to doubt that the DWARF describes the whole ABI (see the
    #: module doc: clang's AArch64 GlobalISel at -O0); each one is a problem
    doubts: tuple[str, ...] = field(default=(), compare=False)
    over_limit: bool = field(init=False, compare=False)

    def __post_init__(self):
        set_ = object.__setattr__
        set_(self, "ret", AbiType(*self.ret))
        set_(self, "args", tuple(AbiType(*a) for a in self.args))
        if not self.arg_layouts:
            set_(self, "arg_layouts", ("",) * len(self.args))
        elif len(self.arg_layouts) != len(self.args):
            raise ValueError(f"{len(self.arg_layouts)} argument layouts for "
                             f"{len(self.args)} arguments")
        set_(self, "over_limit", len(self.args) > MAX_ABI_ARGS)

    # -- views ------------------------------------------------------------------------
    @property
    def arity(self) -> int:
        return len(self.args)

    def render(self) -> str:
        """One line: ``elf-aarch64 aapcs64 (int:4, ptr:8, float:8, ...) -> int:4``."""
        params = [_type_text(t, lay) for t, lay in zip(self.args, self.arg_layouts)]
        if self.variadic:
            params.append("...")
        plist = "(" + ", ".join(params) + ")"
        if not self.prototyped:
            plist = "K&R" + plist
        text = f"{self.target} {self.callconv} {plist} -> {_type_text(self.ret, self.ret_layout)}"
        if self.nocall:
            text += " [nocall]"
        return text

    __str__ = render

    @property
    def problems(self) -> list[str]:
        """Why this definition must not be hot-reloaded ([] if it may)."""
        out = []
        if self.over_limit:
            out.append(f"{self.arity} parameters, over the bound of {MAX_ABI_ARGS} "
                       "(MAX_ABI_ARGS)")
        if self.nocall:
            out.append("the compiler changed its calling convention (DW_CC_nocall)")
        for what, t in self._positions():
            if t.cls == UNKNOWN:
                out.append(f"{what}: a type without an ABI class")
        if self.language and not _is_c_language(self.language):
            out.append(f"not a C function ({self.language})")
        if not self.external:
            out.append("an internal (static) function: an optimizing compiler may have "
                       "changed its real calling convention without saying so in DWARF")
        out += self.doubts
        return out

    @property
    def reloadable(self) -> bool:
        return not self.problems

    def _positions(self):
        yield "return", self.ret
        for i, t in enumerate(self.args, 1):
            yield f"arg {i}", t

    # -- comparison -------------------------------------------------------------------
    def differences(self, other: AbiSignature) -> list[str]:
        """What differs from ``self`` (the old definition) to ``other`` (the
        new one), one phrase each, e.g. ``arg 2 size: 4 -> 8 (int:4 ->
        int:8)``; [] iff the signatures are equal."""
        out = []
        for label, attr in (("target", "target"), ("arch", "arch"), ("os", "os"),
                            ("calling convention", "callconv")):
            a, b = getattr(self, attr), getattr(other, attr)
            if a != b:
                out.append(f"{label}: {a} -> {b}")
        if self.nocall != other.nocall:
            out.append(f"nocall (DW_CC_nocall): {_yes(self.nocall)} -> {_yes(other.nocall)}")
        if self.prototyped != other.prototyped:
            out.append(f"prototyped: {_yes(self.prototyped)} -> {_yes(other.prototyped)}")
        if self.variadic != other.variadic:
            out.append(f"variadic: {_yes(self.variadic)} -> {_yes(other.variadic)}")
        out += _type_differences("return", self.ret, self.ret_layout,
                                 other.ret, other.ret_layout)
        if self.arity != other.arity:
            if other.arity > self.arity:
                extra = ", ".join(f"arg {i} {_type_text(t, lay)}" for i, (t, lay) in enumerate(
                    zip(other.args[self.arity:], other.arg_layouts[self.arity:]),
                    self.arity + 1))
                change = f"added {extra}"
            else:
                extra = ", ".join(f"arg {i} {_type_text(t, lay)}" for i, (t, lay) in enumerate(
                    zip(self.args[other.arity:], self.arg_layouts[other.arity:]),
                    other.arity + 1))
                change = f"removed {extra}"
            out.append(f"arity: {self.arity} -> {other.arity} parameters ({change})")
        for i in range(min(self.arity, other.arity)):
            out += _type_differences(f"arg {i + 1}", self.args[i], self.arg_layouts[i],
                                     other.args[i], other.arg_layouts[i])
        return out


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _type_text(t: AbiType, layout: str) -> str:
    return f"{t}{layout}" if layout else str(t)


def _type_differences(what: str, a: AbiType, la: str, b: AbiType, lb: str) -> list[str]:
    both = f"({_type_text(a, la)} -> {_type_text(b, lb)})"
    if a.cls != b.cls:
        return [f"{what} class: {a.cls} -> {b.cls} {both}"]
    if a.size != b.size:
        return [f"{what} size: {a.size} -> {b.size} {both}"]
    if la != lb:
        return [f"{what} layout: {la or 'none'} -> {lb or 'none'} {both}"]
    return []


# -- the DWARF side -------------------------------------------------------------------

_ATE = {v: k for k, v in ENUM_DW_ATE.items()}
_LANG = {v: k for k, v in ENUM_DW_LANG.items()}
_C_LANGUAGES = frozenset({"DW_LANG_C89", "DW_LANG_C", "DW_LANG_C99", "DW_LANG_C11",
                          "DW_LANG_C17", "DW_LANG_C23", "DW_LANG_ObjC"})

_DW_CC_NORMAL = ENUM_DW_CC["DW_CC_normal"]
_DW_CC_NOCALL = ENUM_DW_CC["DW_CC_nocall"]
_DW_CC_PASS_BY_REFERENCE = ENUM_DW_CC["DW_CC_pass_by_reference"]
#: LLVM's vendor calling conventions (llvm/BinaryFormat/Dwarf.def), which
#: pyelftools does not name
_CC_NAMES = {v: k for k, v in ENUM_DW_CC.items()} | {
    0xc0: "DW_CC_LLVM_vectorcall", 0xc1: "DW_CC_LLVM_Win64", 0xc2: "DW_CC_LLVM_X86_64SysV",
    0xc3: "DW_CC_LLVM_AAPCS", 0xc4: "DW_CC_LLVM_AAPCS_VFP", 0xc5: "DW_CC_LLVM_IntelOclBicc",
    0xc6: "DW_CC_LLVM_SpirFunction", 0xc7: "DW_CC_LLVM_OpenCLKernel", 0xc8: "DW_CC_LLVM_Swift",
    0xc9: "DW_CC_LLVM_PreserveMost", 0xca: "DW_CC_LLVM_PreserveAll",
    0xcb: "DW_CC_LLVM_X86RegCall"}

_QUALIFIERS = frozenset({"DW_TAG_typedef", "DW_TAG_const_type", "DW_TAG_volatile_type",
                         "DW_TAG_restrict_type", "DW_TAG_atomic_type", "DW_TAG_immutable_type",
                         "DW_TAG_packed_type", "DW_TAG_shared_type"})
_AGGREGATES = frozenset({"DW_TAG_structure_type", "DW_TAG_union_type", "DW_TAG_class_type"})
_POINTERS = frozenset({"DW_TAG_pointer_type", "DW_TAG_reference_type",
                       "DW_TAG_rvalue_reference_type", "DW_TAG_ptr_to_member_type"})
_REFS = ("DW_AT_abstract_origin", "DW_AT_specification")
_NAME_ATTRS = ("DW_AT_name", "DW_AT_linkage_name", "DW_AT_MIPS_linkage_name")

#: chains of typedefs/qualifiers, abstract origins and nested aggregates are
#: short in real DWARF; these bounds only stop malformed (cyclic) input
_MAX_CHAIN = 16
_MAX_DEPTH = 32
_MAX_LEAVES = 512


def _is_c_language(language: str) -> bool:
    return language in _C_LANGUAGES


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _chain(die) -> list:
    """``die`` and the DIEs its DW_AT_abstract_origin / DW_AT_specification
    lead to, in order."""
    out = [die]
    seen = {die.offset}
    while len(out) < _MAX_CHAIN:
        attrs = die.attributes
        ref = next((a for a in _REFS if a in attrs), None)
        if ref is None:
            break
        die = die.get_DIE_from_attribute(ref)
        if die.offset in seen:
            break
        seen.add(die.offset)
        out.append(die)
    return out


def _first(chain, attr):
    for die in chain:
        if attr in die.attributes:
            return die.attributes[attr].value
    return None


def _type_of(die):
    """The DIE of ``die``'s DW_AT_type (following its abstract origin), or
    None (void)."""
    for d in _chain(die):
        if "DW_AT_type" in d.attributes:
            return d.get_DIE_from_attribute("DW_AT_type")
    return None


def _strip(die):
    """``die`` without typedefs and qualifiers (None: void)."""
    return _strip_noting_atomic(die)[0]


def _strip_noting_atomic(die):
    """(``die`` without typedefs and qualifiers, whether ``_Atomic`` was
    among them). DWARF 5 only: DWARF 4 has no DW_TAG_atomic_type, and clang
    drops the qualifier."""
    atomic = False
    for _ in range(_MAX_CHAIN):
        if die is None or die.tag not in _QUALIFIERS:
            return die, atomic
        atomic = atomic or die.tag == "DW_TAG_atomic_type"
        die = die.get_DIE_from_attribute("DW_AT_type") if "DW_AT_type" in die.attributes \
            else None
    return die, atomic


def _uleb(data: list[int]) -> int:
    value = shift = 0
    for byte in data:
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    return value


def _member_offset(attrs) -> int:
    """DW_AT_data_member_location: a constant (DWARF 4/5), or the DWARF 2/3
    expression ``DW_OP_plus_uconst N``; union members have none (0)."""
    loc = attrs.get("DW_AT_data_member_location")
    if loc is None:
        return 0
    v = loc.value
    if isinstance(v, int):
        return v
    if isinstance(v, list) and v and v[0] == 0x23:        # DW_OP_plus_uconst
        return _uleb(v[1:])
    return 0


class _Classifier:
    """Classes, sizes and layouts of the types of one compilation unit, for
    one target (``arch``, ``os``: what its ABI makes of a type)."""

    def __init__(self, address_size: int, arch: str = "", os: str = ""):
        self.address_size = address_size
        # the caller sign- or zero-extends an argument narrower than int and
        # the callee relies on it (clang on x86-64, Apple arm64, RISC-V);
        # AAPCS64 leaves the upper bits unspecified: the callee extends
        self.caller_extends = not (arch == "aarch64" and os == "linux")
        self.x87 = arch == "x64"

    def classify(self, die, parameter: bool) -> tuple[AbiType, str]:
        """(class and size, layout) of type DIE ``die`` (None: void). A
        ``parameter``'s array or function type decays to a pointer."""
        declared = die
        die = _strip(die)
        if die is None:
            return AbiType(VOID, 0), ""
        tag = die.tag
        if tag in _AGGREGATES:
            size = self.size(die)
            if die.attributes.get("DW_AT_calling_convention") is not None and \
                    die.attributes["DW_AT_calling_convention"].value == _DW_CC_PASS_BY_REFERENCE:
                return AbiType(AGGREGATE, size), "byref"
            return AbiType(AGGREGATE, size), self.layout(declared, size)
        if tag == "DW_TAG_array_type" and "DW_AT_GNU_vector" not in die.attributes and parameter:
            return AbiType(PTR, self.address_size), ""
        if tag == "DW_TAG_subroutine_type" and parameter:
            return AbiType(PTR, self.address_size), ""
        return AbiType(self.scalar_class(die), self.size(die)), ""

    def scalar_class(self, die, depth: int = 0) -> str:
        tag = die.tag
        if tag == "DW_TAG_base_type":
            attrs = die.attributes
            enc = _ATE.get(attrs["DW_AT_encoding"].value) if "DW_AT_encoding" in attrs else None
            if enc == "DW_ATE_float" and self.x87 and self.size(die) > 8 and \
                    _text(attrs["DW_AT_name"].value if "DW_AT_name" in attrs else "") \
                    not in _IEEE_QUAD_NAMES:
                return X87
            if enc in ("DW_ATE_float", "DW_ATE_imaginary_float", "DW_ATE_decimal_float"):
                return FLOAT
            if enc == "DW_ATE_complex_float":
                return COMPLEX
            if enc == "DW_ATE_address":
                return PTR
            narrow = self.caller_extends and self.size(die) < _C_INT_SIZE
            if enc == "DW_ATE_boolean":
                return BOOL if narrow else INT
            if enc in ("DW_ATE_unsigned", "DW_ATE_unsigned_char", "DW_ATE_UTF", "DW_ATE_UCS",
                       "DW_ATE_ASCII", "DW_ATE_unsigned_fixed"):
                return UINT if narrow else INT
            if enc in ("DW_ATE_signed", "DW_ATE_signed_char", "DW_ATE_signed_fixed"):
                return INT
            return UNKNOWN
        if tag == "DW_TAG_enumeration_type":
            # the extension is that of the underlying type (clang names it)
            under = _strip(_type_of(die))
            if under is not None and under.tag == "DW_TAG_base_type" and depth < _MAX_DEPTH:
                cls = self.scalar_class(under, depth + 1)
                if cls in _INTEGERS:
                    return cls
            negative = any(isinstance(k.attributes["DW_AT_const_value"].value, int)
                           and k.attributes["DW_AT_const_value"].value < 0
                           for k in die.iter_children() if k.tag == "DW_TAG_enumerator"
                           and "DW_AT_const_value" in k.attributes)
            narrow = self.caller_extends and self.size(die) < _C_INT_SIZE
            return UINT if narrow and not negative else INT
        if tag in _POINTERS or tag == "DW_TAG_unspecified_type":   # C++ nullptr_t
            return PTR
        if tag == "DW_TAG_array_type" and "DW_AT_GNU_vector" in die.attributes:
            return VECTOR
        if tag in _AGGREGATES:
            return AGGREGATE
        return UNKNOWN

    def size(self, die, depth: int = 0) -> int:
        die = _strip(die)
        if die is None or depth > _MAX_DEPTH:
            return 0
        attrs = die.attributes
        if "DW_AT_byte_size" in attrs and isinstance(attrs["DW_AT_byte_size"].value, int):
            return attrs["DW_AT_byte_size"].value
        tag = die.tag
        if tag in _POINTERS or tag in ("DW_TAG_subroutine_type", "DW_TAG_unspecified_type"):
            return self.address_size
        if tag == "DW_TAG_array_type":
            return (self.count(die) or 0) * self.size(_type_of(die), depth + 1)
        if tag == "DW_TAG_enumeration_type":      # no size: that of the underlying type
            return self.size(_type_of(die), depth + 1)
        return 0

    @staticmethod
    def count(array) -> int | None:
        """Number of elements of an array (all dimensions); None if a
        dimension has no bound (a flexible array member)."""
        n = 1
        for sub in array.iter_children():
            if sub.tag != "DW_TAG_subrange_type":
                continue
            attrs = sub.attributes
            if "DW_AT_count" in attrs and isinstance(attrs["DW_AT_count"].value, int):
                n *= attrs["DW_AT_count"].value
            elif "DW_AT_upper_bound" in attrs and isinstance(attrs["DW_AT_upper_bound"].value, int):
                lower = attrs["DW_AT_lower_bound"].value if "DW_AT_lower_bound" in attrs else 0
                # GCC writes a zero-length array as upper bound -1
                n *= max(0, attrs["DW_AT_upper_bound"].value - lower + 1)
            else:
                return None
        return n

    # -- layouts ----------------------------------------------------------------------
    def layout(self, die, size: int) -> str:
        """The layout of aggregate type DIE ``die`` (qualifiers and typedefs
        not yet stripped) of ``size`` bytes: its leaves and marks when it is
        small enough to travel in registers; of a larger one, which goes in
        memory or by reference whatever it holds, only its alignment (which
        places it on the x86-64 stack), if one was asked for."""
        if size > LAYOUT_MAX_SIZE:
            align = self._explicit_alignment(die, 0)
            return f"{{align{align}}}" if align else ""
        leaves: list[tuple[int, str, int]] = []      # (offset in bits, kind, size)
        self._leaves(die, 0, leaves, 0, top=True)
        return "{" + ",".join(_fold(leaves)) + "}"

    def _explicit_alignment(self, die, depth: int) -> int:
        """The largest DW_AT_alignment of an aggregate type, of its members
        and of their types, at any depth (0: none); an array counts once."""
        die = _strip(die)
        while die is not None and die.tag == "DW_TAG_array_type" and depth <= _MAX_DEPTH:
            die, depth = _strip(_type_of(die)), depth + 1
        if die is None or die.tag not in _AGGREGATES or depth > _MAX_DEPTH:
            return 0
        found = [die.attributes["DW_AT_alignment"].value] \
            if "DW_AT_alignment" in die.attributes else []
        for member in die.iter_children():
            if member.tag != "DW_TAG_member":
                continue
            if "DW_AT_alignment" in member.attributes:
                found.append(member.attributes["DW_AT_alignment"].value)
            found.append(self._explicit_alignment(_type_of(member), depth + 1))
        return max((a for a in found if isinstance(a, int)), default=0)

    def _leaves(self, die, offset: int, out: list, depth: int, top: bool = False) -> None:
        die, atomic = _strip_noting_atomic(die)
        if die is None or depth > _MAX_DEPTH or len(out) > _MAX_LEAVES:
            return
        if atomic:       # an _Atomic member or aggregate: x86-64 passes it in memory
            out.append((offset * 8, "atomic", _MARK))
        tag = die.tag
        if tag in _AGGREGATES:
            align = die.attributes.get("DW_AT_alignment")
            if align is not None and isinstance(align.value, int):
                # an aggregate's own alignment attribute counts differently
                # from its members' (AArch64 Linux ignores it for passing)
                out.append((-1 if top else offset * 8, f"align{align.value}", _MARK))
            if tag == "DW_TAG_union_type":       # RISC-V never flattens a union
                out.append((offset * 8, "union", _MARK))
            for member in die.iter_children():
                if member.tag not in ("DW_TAG_member", "DW_TAG_inheritance"):
                    continue
                attrs = member.attributes
                if "DW_AT_declaration" in attrs or "DW_AT_external" in attrs:
                    continue                      # a C++ static data member
                mtype = _type_of(member)
                moff = _member_offset(attrs)
                if "DW_AT_alignment" in attrs and isinstance(attrs["DW_AT_alignment"].value, int):
                    # _Alignas, or a member of an aligned typedef
                    out.append(((offset + moff) * 8, f"align{attrs['DW_AT_alignment'].value}",
                                _MARK))
                if "DW_AT_bit_size" in attrs:
                    bits = attrs["DW_AT_bit_size"].value
                    if "DW_AT_data_bit_offset" in attrs:         # DWARF 4+ style
                        pos = attrs["DW_AT_data_bit_offset"].value
                    else:                                        # DWARF 2 style (LLVM, GDB tuning)
                        storage = attrs["DW_AT_byte_size"].value if "DW_AT_byte_size" in attrs \
                            else self.size(mtype)
                        bit_offset = attrs["DW_AT_bit_offset"].value \
                            if "DW_AT_bit_offset" in attrs else 0
                        pos = moff * 8 + storage * 8 - bit_offset - bits
                    out.append((offset * 8 + pos, f"b{bits}", _BITS))
                    continue
                self._leaves(mtype, offset + moff, out, depth + 1)
            return
        if tag == "DW_TAG_array_type" and "DW_AT_GNU_vector" not in die.attributes:
            n = self.count(die)
            if not n:
                # a flexible array member (GNU: or one of length 0) takes no
                # room but is no nothing: x86-64 passes a struct with a
                # flexible array in memory, and neither kind of array may be
                # in an AArch64 HFA or a RISC-V floating-point struct
                out.append((offset * 8, "flex" if n is None else "zero", _MARK))
                return
            elem = _type_of(die)
            esize = self.size(elem)
            for i in range(min(n, _MAX_LEAVES) if esize else 0):
                self._leaves(elem, offset + i * esize, out, depth + 1)
            return
        size = self.size(die)
        if size:
            out.append((offset * 8, _LEAF_LETTER[self.scalar_class(die)], size))


#: the names of IEEE binary128 floating types (x86-64 ``long double`` is x87)
_IEEE_QUAD_NAMES = frozenset({"__float128", "_Float128"})

#: leaf sizes of the entries of a layout that are not scalar leaves
_BITS, _MARK = 0, -1


def _fold(leaves: list[tuple[int, str, int]]) -> list[str]:
    """Leaves ``(bit offset, kind, size)`` in offset order (duplicates, from
    union members, once), runs of one kind at consecutive offsets folded:
    ``i1x24@0``. Offsets are printed in bytes, a bit-field's in bits. Marks
    (size ``_MARK``) come before the leaves at their offset and have no
    size: ``union@0``, ``flex@4``, ``zero@4``, ``atomic@0``, ``align16@0``
    (a member's), ``align16`` (the aggregate's own)."""
    parts: list[str] = []
    run = None                      # [byte offset, kind, size, count]
    for bitpos, kind, size in sorted(set(leaves), key=lambda x: (x[0], x[2] != _MARK, x)):
        if size <= 0:               # a bit-field or a mark
            if run:
                parts.append(_run_text(run))
                run = None
            if size == _BITS:
                parts.append(f"{kind}@{bitpos}")
            else:
                parts.append(kind if bitpos < 0 else f"{kind}@{bitpos // 8}")
            continue
        off = bitpos // 8
        if run and run[1] == kind and run[2] == size and off == run[0] + run[2] * run[3]:
            run[3] += 1
            continue
        if run:
            parts.append(_run_text(run))
        run = [off, kind, size, 1]
    if run:
        parts.append(_run_text(run))
    return parts


def _run_text(run) -> str:
    off, kind, size, count = run
    return f"{kind}{size}x{count}@{off}" if count > 1 else f"{kind}{size}@{off}"


# -- lookup ---------------------------------------------------------------------------

class _Index:
    """Per-DebugInfo: functions by name and by entry address, and the
    signatures computed so far."""

    def __init__(self, debug: DebugInfo):
        self.by_name: dict[str, list[FunctionInfo]] = {}
        self.by_pc: dict[int, FunctionInfo] = {}
        self.signatures: dict[tuple[int, str], AbiSignature] = {}
        dwarf = debug.dwarfinfo
        if dwarf is None:
            return
        for f in debug.functions():
            self.by_pc.setdefault(f.low_pc, f)
            try:
                chain = _chain(dwarf.get_DIE_from_refaddr(f.die_offset))
            except _DWARF_ERRORS:
                continue
            names = {f.name}
            for attr in _NAME_ATTRS:
                for die in chain:
                    if attr in die.attributes:
                        names.add(_text(die.attributes[attr].value))
            for n in names:
                self.by_name.setdefault(n, []).append(f)


_INDEXES: weakref.WeakKeyDictionary[DebugInfo, _Index] = weakref.WeakKeyDictionary()


def _index(debug: DebugInfo) -> _Index:
    idx = _INDEXES.get(debug)
    if idx is None:
        idx = _INDEXES[debug] = _Index(debug)
    return idx


def _resolve_target(debug: DebugInfo, target: Target | str | None) -> Target:
    t = get_target(debug.obj.target) if target is None else (
        get_target(target) if isinstance(target, str) else target)
    if t.name != debug.obj.target:
        raise ConfigError(f"{debug.obj.path}: an object for {debug.obj.target}, "
                          f"not {t.name}")
    return t


def signature_of(debug: DebugInfo, name: str, target: Target | str | None = None
                 ) -> AbiSignature | None:
    """The ABI signature of the definition (a subprogram with code) called
    ``name`` in ``debug``'s object: its C name, linkage name or, on Mach-O,
    symbol name (``_f``). ``target`` (a Target or registry name; default the
    object's) must be the object's. None without DWARF or such a definition."""
    t = _resolve_target(debug, target)
    idx = _index(debug)
    candidates = [name]
    if t.symbol_prefix and name.startswith(t.symbol_prefix):
        candidates.append(name[len(t.symbol_prefix):])
    for cand in candidates:
        found = idx.by_name.get(cand)
        if not found:
            continue
        sigs = [s for s in (_signature(debug, idx, f, t) for f in found) if s is not None]
        if sigs:
            # the external definition first, then the lowest address (found is sorted)
            return next((s for s in sigs if s.external), sigs[0])
    return None


def signature_at(debug: DebugInfo, low_pc: int, target: Target | str | None = None
                 ) -> AbiSignature | None:
    """The ABI signature of the function whose entry (relocated
    ``DW_AT_low_pc``) is ``low_pc``; None without DWARF or if no function
    starts there (an address inside a function is not its entry)."""
    t = _resolve_target(debug, target)
    idx = _index(debug)
    f = idx.by_pc.get(low_pc)
    return _signature(debug, idx, f, t) if f is not None else None


def _signature(debug: DebugInfo, idx: _Index, f: FunctionInfo, t: Target
               ) -> AbiSignature | None:
    key = (f.die_offset, t.name)
    sig = idx.signatures.get(key)
    if sig is None:
        try:
            sig = _build(debug.dwarfinfo.get_DIE_from_refaddr(f.die_offset), f, t)
        except _DWARF_ERRORS as e:
            debug.warnings.append(f"{debug.obj.path}: ABI signature of {f.name}: malformed "
                                  f"DWARF ({type(e).__name__}: {e})")
            return None
        idx.signatures[key] = sig
    return sig


def _build(die, f: FunctionInfo, t: Target) -> AbiSignature:
    chain = _chain(die)
    top = die.cu.get_top_DIE()
    lang_value = top.attributes["DW_AT_language"].value if "DW_AT_language" in top.attributes \
        else None
    language = _LANG.get(lang_value, f"DW_LANG_{lang_value:#x}") if lang_value is not None \
        else ""
    classifier = _Classifier(die.cu.header["address_size"], t.arch.name, t.host_os)

    ret, ret_layout = classifier.classify(_type_of(die), parameter=False)
    # parameters: the last DIE of the chain that lists any (the complete one)
    params, variadic = [], False
    for d in chain:
        kids = [k for k in d.iter_children()
                if k.tag in ("DW_TAG_formal_parameter", "DW_TAG_unspecified_parameters")]
        if kids:
            params = [k for k in kids if k.tag == "DW_TAG_formal_parameter"]
            variadic = variadic or any(k.tag == "DW_TAG_unspecified_parameters" for k in kids)
    typed = [classifier.classify(_type_of(p), parameter=True) for p in params]

    # DW_AT_prototyped only exists for C-family languages; elsewhere all
    # functions have prototypes
    prototyped = bool(_first(chain, "DW_AT_prototyped")) or not _is_c_language(language)
    if not prototyped:
        typed = [(_promoted(a), lay) for a, lay in typed]

    cc = _first(chain, "DW_AT_calling_convention")
    nocall = cc == _DW_CC_NOCALL
    if cc is None or cc in (_DW_CC_NORMAL, _DW_CC_NOCALL):
        callconv = t.callconv.name
    else:
        callconv = _CC_NAMES.get(cc, f"DW_CC_{cc:#x}")
    return AbiSignature(
        target=t.name, arch=t.arch.name, os=t.host_os, callconv=callconv,
        variadic=variadic, ret=ret, args=tuple(a for a, _ in typed),
        prototyped=prototyped, ret_layout=ret_layout,
        arg_layouts=tuple(lay for _, lay in typed), nocall=nocall,
        name=f.name, external=bool(_first(chain, "DW_AT_external")), language=language,
        doubts=_doubts(chain, top, t))


#: attributes clang puts on every subprogram of optimized code
_OPTIMIZED_MARKS = ("DW_AT_call_all_calls", "DW_AT_GNU_all_call_sites", "DW_AT_APPLE_optimized",
                    "DW_AT_call_all_source_calls")
#: command-line spellings that turn AArch64 GlobalISel off (visible in
#: DW_AT_producer with -grecord-command-line)
_NO_GLOBAL_ISEL = ("-fno-global-isel", "-global-isel=0", "-global-isel=false")


def _doubts(chain, top, t: Target) -> tuple[str, ...]:
    """Known ways the DWARF of this definition may not describe its whole ABI."""
    if t.arch.name != "aarch64":
        return ()
    # the command line is in DW_AT_producer on ELF, in DW_AT_APPLE_flags on Darwin
    producer = " ".join(_text(top.attributes[a].value) for a in ("DW_AT_producer",
                                                                 "DW_AT_APPLE_flags")
                        if a in top.attributes)
    if "clang" not in producer or any(flag in producer for flag in _NO_GLOBAL_ISEL):
        return ()
    if any(mark in d.attributes for d in chain for mark in _OPTIMIZED_MARKS):
        return ()        # optimized code keeps every parameter (retained nodes)
    return ("the parameter list may be incomplete: clang's AArch64 GlobalISel (the -O0 "
            "default) leaves an unused aggregate parameter passed by reference out of "
            "DWARF; build with -fno-global-isel -grecord-command-line, or optimize",)


def _promoted(a: AbiType) -> AbiType:
    """C's default argument promotions (C11 6.5.2.2p6): what the definition
    of an unprototyped function really receives."""
    if a.cls in _INTEGERS and a.size < _C_INT_SIZE:
        return AbiType(INT, _C_INT_SIZE)
    if a.cls == FLOAT and a.size == 4:
        return AbiType(FLOAT, 8)
    return a
