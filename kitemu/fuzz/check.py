"""The properties every relocation case must satisfy.

:func:`check_case` links a case with kitemu (a :class:`JitProcess` at the
case's base), reads the image back from the process memory and checks:

``kitemu-error-only``
    linking raises nothing but a :class:`~kitemu.errors.KitemuError`.
``malformed-rejected``
    a relocation whose bytes lie (partly) outside its section, two
    relocations whose bytes overlap (except the legitimate composites: RISC-V
    ``ADD``/``SUB``/``SET`` of one size at one place; ``NONE``/``RELAX``/
    ``ALIGN`` patch nothing), a relocation in a BSS section, or a RISC-V
    ``PCREL_LO12`` with no ``HI20`` at its label is rejected with an error
    naming the relocation(s) (ObjectFormatError or LinkError), never linked.
``value``
    the value decoded from the patched bytes read back from the image (by
    the fuzzer's own decoders, :mod:`kitemu.fuzz.fields`, never kitemu's
    ``Fixup.decode``) equals the psABI formula recomputed here from the
    final addresses (``S + A - P``, ``Page(S + A) - Page(P)``, ``V + S +
    A``...) modulo the field's kept bits for the no-check kinds; split pairs
    (AArch64 ``adrp`` + lo12, RISC-V ``lui``/``auipc`` + lo12) add up to the
    full value.
``got``
    for ``G`` formulas, the GOT entry the patched field points at holds ``S``.
``range``
    an out-of-range or misaligned value is rejected with a RelocationError
    naming the relocation (and the value really is out of range, and really
    is the formula's), or, for a call/jump in code, sent through a stub:
    the field holds an in-range value, the branch (by the instruction's own
    semantics) lands on a stub, and the stub's cell (decoded with capstone)
    holds the branch's destination ``S + A`` (x86-64: ``S + A + 4``, the
    rel32 counting from the end of the instruction). Never truncated.
``stub``
    a host function's canonical stub jumps through a cell holding the host
    function's address; a branch's stub jumps to the branch's destination.
``island-addend``
    the ``stub`` failure in which the branch went to a stub for ``S`` alone
    and kept its addend in the field, landing ``A`` bytes past that stub.
``invalid-case``
    the case does not convert to kitemu's object model (a hand-edited
    replay file): nothing could be checked.
``untouched``
    every bit of every section outside the relocations' fields is what the
    object had (read-modify-write fixups keep opcode and register bits).
``layout``
    every section and GOT entry lies inside the region, sections aligned as
    they ask, and no two overlap.
``record``
    each applied relocation has exactly one RelocRecord with its place,
    value, size and target ``S + A``.
``nothing-committed``
    a link that fails leaves the exec-memory region untouched.

With ``lld=True`` (ELF targets, ld.lld on PATH) the case is also linked by
ld.lld at the same addresses and the patched bytes compared
(:mod:`kitemu.fuzz.lld`).
"""

from __future__ import annotations

import re
import traceback
from collections import Counter
from dataclasses import dataclass, field

from ..errors import KitemuError, LinkError, ObjectFormatError, RelocationError
from ..link.symbols import HostTarget
from ..targets import get_target
from . import fields as F
from . import oracle as O
from .linking import host_addrs, region
from .model import CaseReloc, CaseSection, RelocCase, catalogue
from .stubs import indirect_cell

PROPERTIES = ("kitemu-error-only", "malformed-rejected", "value", "got", "range", "stub",
              "island-addend", "untouched", "layout", "record", "nothing-committed", "lld",
              "invalid-case")
MASK64 = (1 << 64) - 1


@dataclass
class Failure:
    prop: str
    message: str

    def __str__(self) -> str:
        return f"[{self.prop}] {self.message}"


@dataclass
class CheckResult:
    case: RelocCase
    outcome: str = ""                     # "linked" | "rejected" | "crashed"
    error: str = ""
    failures: list[Failure] = field(default_factory=list)
    #: relocations whose value was verified, per kind
    verified: Counter = field(default_factory=Counter)
    #: relocations rightly rejected (range / malformed), per kind
    rejected: Counter = field(default_factory=Counter)
    #: relocations that went through an island, per kind
    islands: Counter = field(default_factory=Counter)
    lld: object | None = None             # kitemu.fuzz.lld.LldResult

    def fail(self, prop: str, message: str) -> None:
        self.failures.append(Failure(prop, message))

    @property
    def ok(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        if self.ok:
            return f"ok ({self.outcome})"
        return "\n".join(str(f) for f in self.failures)


class FuzzFailure(AssertionError):
    """Raised inside hypothesis tests so that it shrinks the case."""

    def __init__(self, result: CheckResult):
        super().__init__(result.summary())
        self.result = result


def _name(rel: CaseReloc) -> str:
    return rel.label.split(":")[0]


def _where(case: RelocCase, oi: int, sec: CaseSection, ri: int, rel: CaseReloc) -> str:
    return (f"{case.objects[oi].path}: section {sec.name}: relocation #{ri} {_name(rel)} at offset "
            f"{rel.offset:#x}")


# ---------------------------------------------------------------------------
# symbol resolution, independently of kitemu's SymbolTable

@dataclass(frozen=True)
class Ref:
    kind: str             # sec | abs | zero | host
    obj: int = 0
    section: int = 0
    value: int = 0
    name: str = ""


def resolve(case: RelocCase, oi: int, symidx: int, hosts) -> Ref | None:
    obj = case.objects[oi]
    if not 0 <= symidx < len(obj.symbols):
        return None
    sym = obj.symbols[symidx]
    if sym.binding == "local":
        if sym.place == "undef":
            return Ref("abs", value=0) if symidx == 0 else None
        return Ref("abs", value=sym.value) if sym.place == "abs" else Ref("sec", oi, sym.section,
                                                                          sym.value)
    best = None
    for j, o in enumerate(case.objects):
        for s in o.symbols:
            if s.name == sym.name and s.binding != "local" and s.place != "undef":
                if best is None or (best[1].binding == "weak" and s.binding == "global"):
                    best = (j, s)
    if best is not None:
        j, s = best
        return Ref("abs", value=s.value) if s.place == "abs" else Ref("sec", j, s.section, s.value)
    if sym.name in hosts:
        return Ref("host", name=sym.name)
    if sym.binding == "weak":
        return Ref("zero")
    return None


# ---------------------------------------------------------------------------
# static analysis: what must be rejected

@dataclass
class Malformed:
    what: str                 # bounds | overlap | bss | orphan-lo
    message: str
    relocs: list[str]         # "#i NAME" phrases the error must name
    errors: tuple             # acceptable exception classes
    section: str = ""         # "PATH: section NAME:", which the error must name too


def malformed(case: RelocCase) -> list[Malformed]:
    out = []
    rules = O.RULES[case.target]
    for oi, obj in enumerate(case.objects):
        for sec in obj.sections:
            if not sec.relocs:
                continue
            path = obj.path
            n0 = len(out)
            if sec.kind == "bss":
                out.append(Malformed("bss", f"{path}: section {sec.name}: relocations in a BSS "
                                     "section", [], (LinkError, ObjectFormatError),
                                     f"{path}: section {sec.name}:"))
                continue
            spans = []
            for ri, rel in enumerate(sec.relocs):
                r = rules[rel.label]
                if r.size and (rel.offset < 0 or rel.offset + r.size > sec.size):
                    out.append(Malformed("bounds", f"{_where(case, oi, sec, ri, rel)}: bytes "
                                         f"{rel.offset:#x}..{rel.offset + r.size:#x} outside the "
                                         f"section ({sec.size:#x} bytes)",
                                         [f"#{ri} {_name(rel)}"], (LinkError, ObjectFormatError)))
                elif r.size:
                    spans.append((rel.offset, rel.offset + r.size, ri, rel, r))
                if rel.label in O.RV_LO_KINDS:
                    lab = obj.symbols[rel.symbol] if rel.symbol < len(obj.symbols) else None
                    his = [x for x in sec.relocs if x.label in O.RV_HI_KINDS
                           and lab is not None and x.offset == lab.value]
                    if lab is None or lab.place != "section" or lab.section != sec.index or not his:
                        out.append(Malformed("orphan-lo", f"{_where(case, oi, sec, ri, rel)}: no "
                                             "HI20 at its label", [f"#{ri} {_name(rel)}"],
                                             (RelocationError,)))
            spans.sort(key=lambda s: (s[0], s[2]))
            for i, (a0, a1, ai, arel, ar) in enumerate(spans):
                for b0, b1, bi, brel, br in spans[i + 1:]:
                    if b0 >= a1:
                        break
                    if ar.additive and br.additive and a0 == b0 and ar.size == br.size:
                        continue        # ADD/SUB/SET composite at one place
                    out.append(Malformed(
                        "overlap", f"{_where(case, oi, sec, ai, arel)} and relocation #{bi} "
                        f"{_name(brel)} at offset {brel.offset:#x} patch overlapping bytes",
                        [f"#{ai} {_name(arel)}", f"#{bi} {_name(brel)}"], (LinkError,)))
            for m in out[n0:]:
                m.section = f"{path}: section {sec.name}:"
    return out


# ---------------------------------------------------------------------------

_RELOC_RE = re.compile(r"(?P<path>\S+): section (?P<sec>\S+): relocation #(?P<idx>\d+) "
                       r"(?P<name>\S+) at offset (?P<off>0x[0-9a-f]+)")
_VALUE_RE = re.compile(r"\(value (?P<v>-?0x[0-9a-f]+), place (?P<p>0x[0-9a-f]+)\)")


class _Ctx:
    def __init__(self, case: RelocCase, proc, image, res: CheckResult):
        self.case = case
        self.proc = proc
        self.image = image
        self.res = res
        self.arch = get_target(case.target).arch
        self.hosts = host_addrs(case.target)
        self.cat = catalogue(case.target)
        self.rules = O.RULES[case.target]
        self.stub_of_host = {t.name: a for t, a in image.stubs.items() if isinstance(t, HostTarget)}

    def read(self, addr: int, n: int) -> bytes | None:
        try:
            data = self.proc.mem.read(addr, n)
        except Exception:       # unmapped: reported by the caller
            return None
        return bytes(data)

    def word(self, addr: int) -> int | None:
        raw = self.read(addr, 8)
        return None if raw is None else int.from_bytes(raw, "little")

    def sec_addr(self, oi: int, index: int) -> int:
        return self.image.section_addrs[(oi, index)]

    def S(self, ref: Ref) -> int | None:
        if ref.kind == "sec":
            return self.sec_addr(ref.obj, ref.section) + ref.value
        if ref.kind == "abs":
            return ref.value
        if ref.kind == "zero":
            return 0
        return self.stub_of_host.get(ref.name)


def check_case(case: RelocCase, *, lld: bool = False) -> CheckResult:
    """Link ``case`` and check every property; see the module docstring."""
    res = CheckResult(case)
    bad = malformed(case)
    try:
        objects = case.to_objects()
    except Exception as e:          # a case the model cannot express: not kitemu's fault,
        res.outcome = "invalid"     # but nothing was checked, which must not pass as a success
        res.error = f"{type(e).__name__}: {e}"
        res.fail("invalid-case", f"the case does not convert to kitemu's object model: {res.error}")
        return res
    with region(case) as proc:
        try:
            image = proc.link(objects)
        except KitemuError as e:
            res.outcome = "rejected"
            res.error = f"{type(e).__name__}: {e}"
            if proc.mem.chunks or proc.mem.used:
                res.fail("nothing-committed", f"the failed link left {len(proc.mem.chunks)} chunks "
                         f"({proc.mem.used:#x} bytes) committed")
            _check_rejection(case, e, bad, res)
            return res
        except Exception as e:
            res.outcome = "crashed"
            tb = traceback.extract_tb(e.__traceback__)[-1]
            res.error = f"{type(e).__name__}: {e} ({tb.filename}:{tb.lineno})"
            res.fail("kitemu-error-only", f"linking raised {type(e).__name__}, not a KitemuError: "
                     f"{e} (at {tb.filename}:{tb.lineno} in {tb.name})")
            return res
        res.outcome = "linked"
        for m in bad:
            res.fail("malformed-rejected", f"linked although {m.message}")
        if bad:
            return res
        ctx = _Ctx(case, proc, image, res)
        _check_layout(ctx)
        _check_relocations(ctx)
        _check_host_stubs(ctx)
        if lld and get_target(case.target).format == "elf" and res.ok:
            from .lld import lld_compare
            res.lld = lld_compare(case, image, ctx.read)
            for msg in res.lld.mismatches:
                res.fail("lld", msg)
    return res


# ---------------------------------------------------------------------------
# rejected links

def _find(case: RelocCase, path: str, secname: str, idx: int):
    for oi, obj in enumerate(case.objects):
        if obj.path != path:
            continue
        for sec in obj.sections:
            if sec.name == secname and 0 <= idx < len(sec.relocs):
                return oi, sec, sec.relocs[idx]
    return None


def _check_rejection(case: RelocCase, err: KitemuError, bad: list[Malformed],
                     res: CheckResult) -> None:
    msg = str(err)
    for m in bad:
        if isinstance(err, m.errors) and m.section in msg and all(
                re.search(rf"relocation {re.escape(p)}\b", msg) for p in m.relocs):
            res.rejected[m.what] += 1
            return
    m = _RELOC_RE.search(msg)
    if isinstance(err, RelocationError) and m:
        found = _find(case, m["path"], m["sec"], int(m["idx"]))
        if found is None:
            res.fail("range", f"the error names a relocation the case does not have: {msg}")
            return
        oi, sec, rel = found
        if _name(rel) != m["name"] or rel.offset != int(m["off"], 16):
            res.fail("range", f"the error misnames relocation #{m['idx']} ({_name(rel)} at "
                     f"{rel.offset:#x}): {msg}")
            return
        if any(p for b in bad for p in b.relocs if p == f"#{m['idx']} {m['name']}"):
            res.rejected["malformed"] += 1
            return
        _verify_range_rejection(case, oi, sec, int(m["idx"]), rel, msg, res)
        return
    if bad:
        res.fail("malformed-rejected", f"rejected, but not for the malformed relocation "
                 f"({bad[0].message}): {type(err).__name__}: {msg}")
    else:
        res.fail("range", f"a well-formed case was rejected: {type(err).__name__}: {msg}")


def _relink(case: RelocCase, fixes: dict):
    """Link a copy of ``case`` whose relocations in ``fixes`` ((object,
    section index, relocation index) -> addend) have new addends; further
    range errors get their addend shifted into range too. Returns (image,
    word reader) or None. Addends move no section, GOT entry or stub."""
    import copy
    for _ in range(16):
        c = copy.deepcopy(case)
        for (oi, si, ri), a in fixes.items():
            c.objects[oi].section(si).relocs[ri].addend = a
        with region(c) as proc:
            try:
                image = proc.link(c.to_objects())
            except RelocationError as e:
                m, vm = _RELOC_RE.search(str(e)), _VALUE_RE.search(str(e))
                found = m and vm and _find(c, m["path"], m["sec"], int(m["idx"]))
                if not found:
                    return None
                oi, sec, rel = found
                key = (oi, sec.index, int(m["idx"]))
                r = O.RULES[case.target][rel.label]
                if key in fixes or (r.stub and sec.kind == "text"):
                    # a branch's addend decides whether it gets an island, and
                    # islands move the code after them: no equivalent layout
                    return None
                fixes[key] = rel.addend - int(vm["v"], 16)
                continue
            except KitemuError:
                return None

            def word(addr, proc=proc):
                try:
                    return int.from_bytes(proc.mem.read(addr, 8), "little")
                except Exception:
                    return None
            got = {g: word(g) for g in image.got.values()}
            stubs = {t.name: a for t, a in image.stubs.items() if isinstance(t, HostTarget)}
            return dict(image.section_addrs), got, stubs
    return None


def _verify_range_rejection(case, oi, sec, ri, rel, msg, res) -> None:
    """A RelocationError on a well-formed relocation: the value must really
    be out of range (or misaligned), and be the formula's - computed from
    the addresses of the same case relinked with this addend moved into
    range (addends move nothing)."""
    r = O.RULES[case.target][rel.label]
    vm = _VALUE_RE.search(msg)
    if vm is None:
        res.fail("range", f"a range error without its value and place: {msg}")
        return
    V, Preported = int(vm["v"], 16), int(vm["p"], 16)
    if rel.label in O.RV_LO_KINDS or r.additive:
        res.fail("range", f"{_where(case, oi, sec, ri, rel)}: a range error on a kind that never "
                 f"overflows: {msg}")
        return
    if r.in_range(V):
        res.fail("range", f"{_where(case, oi, sec, ri, rel)}: rejected the value {V:#x}, which "
                 f"the field accepts ([{r.lo}, {r.hi}], align {r.align}): {msg}")
        return
    relinked = _relink(case, {(oi, sec.index, ri): rel.addend - V})
    if relinked is None:
        res.rejected[rel.label] += 1         # cannot recompute: out of range verified only
        return
    addrs, got, stubs = relinked
    P = addrs[(oi, sec.index)] + rel.offset
    if P != Preported:
        res.fail("range", f"{_where(case, oi, sec, ri, rel)}: the error reports place "
                 f"{Preported:#x}, the section is at {addrs[(oi, sec.index)]:#x}: {msg}")
        return
    hosts = host_addrs(case.target)

    def S_of(ref):
        if ref is None:
            return None
        if ref.kind == "sec":
            return addrs[(ref.obj, ref.section)] + ref.value
        if ref.kind == "host":
            return stubs.get(ref.name)
        return ref.value if ref.kind == "abs" else 0
    S = S_of(resolve(case, oi, rel.symbol, hosts))
    T = S_of(resolve(case, oi, rel.subtrahend, hosts)) if rel.subtrahend is not None else 0
    if S is None or T is None:
        res.fail("range", f"{_where(case, oi, sec, ri, rel)}: its symbols do not resolve")
        return
    if r.formula in O.GOT_FORMULAS:
        wants = [O.evaluate(r.formula, G=g, A=rel.addend, P=P) for g, w in got.items() if w == S]
    else:
        wants = [O.evaluate(r.formula, S=S, A=rel.addend, P=P, T=T)]
    if V in wants:
        res.rejected[rel.label] += 1
        return
    if r.stub and sec.kind == "text":
        # the value of a route through an island stub after the section: the
        # branch aims at the stub (X = P + bias + V); a link that keeps the
        # addend in the field (island-addend) reports X + A - P instead
        bias = F.branch_bias(case.target, rel.label)
        end = addrs[(oi, sec.index)] + sec.size
        if any(end <= X < end + 64 * 16 for X in (P + bias + V, V - rel.addend + P)) and \
                all(not r.in_range(w) for w in wants):
            res.rejected[rel.label] += 1
            return
    res.fail("range", f"{_where(case, oi, sec, ri, rel)}: the error reports value {V:#x} but "
             f"{r.formula} gives {', '.join(hex(w) for w in wants) or 'nothing'} (S={S:#x}, "
             f"A={rel.addend:#x}, P={P:#x}): {msg}")


# ---------------------------------------------------------------------------
# linked images

def _check_layout(ctx: _Ctx) -> None:
    case, res = ctx.case, ctx.res
    spans = []
    for oi, obj in enumerate(case.objects):
        for sec in obj.sections:
            a = ctx.image.section_addrs.get((oi, sec.index))
            if a is None:
                res.fail("layout", f"{obj.path}: section {sec.name} was not placed")
                continue
            if a % sec.align:
                res.fail("layout", f"{obj.path}: section {sec.name} at {a:#x} is not aligned to "
                         f"{sec.align}")
            if not case.base <= a <= a + sec.size <= case.base + case.capacity:
                res.fail("layout", f"{obj.path}: section {sec.name} [{a:#x}, +{sec.size:#x}) lies "
                         "outside the region")
            if sec.size:
                spans.append((a, a + sec.size, f"{obj.path}:{sec.name}"))
    for t, g in ctx.image.got.items():
        if not case.base <= g <= g + 8 <= case.base + case.capacity:
            res.fail("layout", f"the GOT entry of {t} at {g:#x} lies outside the region")
        spans.append((g, g + 8, f"GOT entry of {t}"))
    spans.sort()
    for (a0, a1, an), (b0, b1, bn) in zip(spans, spans[1:]):
        if b0 < a1:
            res.fail("layout", f"sections {an} [{a0:#x}, {a1:#x}) and {bn} [{b0:#x}, {b1:#x}) overlap")


def _check_host_stubs(ctx: _Ctx) -> None:
    for name, addr in ctx.stub_of_host.items():
        code = ctx.read(addr, 16)
        cell = indirect_cell(ctx.arch, code or b"", addr)
        if cell is None:
            ctx.res.fail("stub", f"the canonical stub of {name} at {addr:#x} is not an indirect "
                         f"jump: {(code or b'').hex()}")
            continue
        held = ctx.word(cell)
        if held != ctx.hosts[name]:
            ctx.res.fail("stub", f"the canonical stub of {name} jumps through {cell:#x}, which holds "
                         f"{held if held is None else hex(held)}, not {name}'s address "
                         f"{ctx.hosts[name]:#x}")


def _decode(ctx: _Ctx, kind, addr: int) -> int | None:
    """The field of ``kind`` at ``addr`` in the image, decoded by the
    fuzzer's own decoders (:mod:`kitemu.fuzz.fields`), not kitemu's."""
    raw = ctx.read(addr, kind.size)
    if raw is None:
        return None
    return F.decode(ctx.case.target, kind.label, raw)


def _check_relocations(ctx: _Ctx) -> None:
    case, res, image = ctx.case, ctx.res, ctx.image
    records: dict[tuple, list] = {}
    for rec in image.records:
        records.setdefault((rec.input, rec.section, rec.offset, rec.kind), []).append(rec)
    seen_records = 0
    mem_fields: dict[tuple[int, int], list[tuple[int, int]]] = {}    # (oi, sec) -> (offset, mask)
    groups: dict[tuple[int, int, int], list] = {}                    # additive at one place
    for oi, obj in enumerate(case.objects):
        for sec in obj.sections:
            sec_addr = ctx.sec_addr(oi, sec.index)
            for ri, rel in enumerate(sec.relocs):
                r = ctx.rules[rel.label]
                kind = ctx.cat[rel.label]
                where = _where(case, oi, sec, ri, rel)
                if r.formula == O.NONE:
                    continue
                mem_fields.setdefault((oi, sec.index), []).append((rel.offset, r.field_mask(), r.size))
                P = sec_addr + rel.offset
                recs = records.get((obj.path, sec.name, rel.offset, kind.spec.name))
                rec = recs.pop(0) if recs else None
                if rec is None:
                    res.fail("record", f"{where}: no relocation record")
                else:
                    seen_records += 1
                    if rec.place != P or rec.size != r.size:
                        res.fail("record", f"{where}: record place {rec.place:#x} size {rec.size}, "
                                 f"expected {P:#x} size {r.size}")
                if r.additive:
                    groups.setdefault((oi, sec.index, rel.offset), []).append((ri, rel, r, rec))
                    continue
                _check_one(ctx, oi, sec, ri, rel, r, kind, P, rec, where)
            _check_pairs(ctx, oi, sec, sec_addr)
    if seen_records != len(image.records):
        res.fail("record", f"{len(image.records)} relocation records for {seen_records} relocations")
    for (oi, si, off), grp in groups.items():
        _check_additive(ctx, oi, case.objects[oi].section(si), off, grp)
    _check_untouched(ctx, mem_fields)


def _stub_eligible(ctx: _Ctx, sec: CaseSection, rel: CaseReloc, r: O.Rule) -> bool | None:
    """May this relocation go through a stub? None: it depends on bytes
    another relocation patches (x86-64 looks at the opcode before the field)."""
    if not r.stub or sec.kind != "text":
        return False
    if r.needs_call_opcode:
        if rel.offset < 1:
            return False
        for other in sec.relocs:
            size = ctx.rules[other.label].size
            if other is not rel and other.offset <= rel.offset - 1 < other.offset + size:
                return None
        return sec.data[rel.offset - 1] in (0xE8, 0xE9)
    return True


def _check_one(ctx: _Ctx, oi, sec, ri, rel, r: O.Rule, kind, P, rec, where) -> None:
    res, case = ctx.res, ctx.case
    got = _decode(ctx, kind, P)
    if got is None:
        res.fail("value", f"{where}: cannot read the patched bytes at {P:#x}")
        return
    if rel.label in O.RV_LO_KINDS:
        _check_pcrel_lo(ctx, oi, sec, ri, rel, got, where)
        return
    ref = resolve(case, oi, rel.symbol, ctx.hosts)
    S = ctx.S(ref) if ref is not None else None
    if S is None:
        res.fail("value", f"{where}: its symbol does not resolve (host stub missing?)")
        return
    A = rel.addend
    if r.formula in O.GOT_FORMULAS:
        _check_got(ctx, r, kind, S, A, P, got, where, rec)
        return
    T = 0
    if r.formula == O.DELTA:
        tref = resolve(case, oi, rel.subtrahend, ctx.hosts) if rel.subtrahend is not None else None
        if tref is None or ctx.S(tref) is None:
            res.fail("value", f"{where}: its subtrahend does not resolve")
            return
        T = ctx.S(tref)
    value = O.evaluate(r.formula, S=S, A=A, P=P, T=T)
    if rec is not None and rec.target is not None and r.formula != O.DELTA and rec.target != S + A:
        res.fail("record", f"{where}: record target {rec.target:#x}, expected S + A = {S + A:#x}")
    if r.in_range(value):
        want = _kept(ctx, rel.label, value)
        if got != want:
            res.fail("value", f"{where}: the field decodes to {got:#x}, the formula {r.formula} gives "
                     f"{value:#x} (kept: {want:#x}; S={S:#x} A={A:#x} P={P:#x})")
        elif rec is not None and rec.via == "island":
            res.fail("range", f"{where}: an island for the in-range value {value:#x}")
        elif rec is not None and rec.value != value and not r.additive:
            res.fail("record", f"{where}: record value {rec.value:#x}, expected {value:#x}")
        else:
            res.verified[rel.label] += 1
        return
    # out of range or misaligned: only a stub may save it
    eligible = _stub_eligible(ctx, sec, rel, r)
    if eligible is None:        # the opcode byte is another relocation's: either way
        eligible = rec is not None and rec.via == "island"
    if eligible:
        if not r.in_range(got) or _kept(ctx, rel.label, got) != got:
            res.fail("range", f"{where}: value {value:#x} is out of range and the field holds "
                     f"{got:#x}, which is no valid stub reach either")
            return
        # where the branch goes by the instruction's semantics, and where it
        # should go: S + A counted from the same origin (x86-64: the end of
        # the instruction, so S + A + 4; S itself for the usual A = -4)
        bias = F.branch_bias(case.target, rel.label)
        X = P + bias + got
        dest = S + A + bias
        code = ctx.read(X, 16)
        cell = indirect_cell(ctx.arch, code or b"", X)
        if cell is None or ctx.word(cell) != dest & MASK64:
            # a stub for S alone, A + bias bytes before the landing: the link
            # dropped the addend (it encoded island + A - P with an island to S)
            island = X - A - bias
            icell = indirect_cell(ctx.arch, ctx.read(island, 16) or b"", island)
            if A + bias and icell is not None and ctx.word(icell) == S:
                res.fail("island-addend", f"{where}: out of range (value {value:#x}); routed "
                         f"through the stub at {island:#x}, which jumps to S = {S:#x}, with the "
                         f"addend still in the field: the branch lands at {X:#x}, not on a stub "
                         f"to S + A{f' + {bias}' if bias else ''} = {dest:#x}")
                return
        if cell is None:
            res.fail("range", f"{where}: value {value:#x} is out of range; the field sends it to "
                     f"{X:#x}, which is not a stub ({(code or b'').hex()}) - truncated?")
            return
        held = ctx.word(cell)
        if held != dest & MASK64:
            res.fail("stub", f"{where}: the branch lands on the stub at {X:#x}, which jumps "
                     f"through {cell:#x} holding {held if held is None else hex(held)}, not the "
                     f"branch's destination {dest:#x} (S={S:#x} A={A:#x})")
            return
        res.islands[rel.label] += 1
        res.verified[rel.label] += 1
        return
    res.fail("range", f"{where}: linked the out-of-range value {value:#x} (accepts [{r.lo}, {r.hi}] "
             f"align {r.align}; S={S:#x} A={A:#x} P={P:#x}): the field holds {got:#x} - truncated")


def _kept(ctx: _Ctx, label: str, value: int) -> int:
    """What a correct field of ``label`` keeps of ``value`` (the fuzzer's
    own rule, :func:`kitemu.fuzz.fields.kept`)."""
    return F.kept(ctx.case.target, label, value)


def _check_got(ctx: _Ctx, r, kind, S, A, P, got, where, rec) -> None:
    res = ctx.res
    entries = [g for g in ctx.image.got.values() if ctx.word(g) == S]
    if not entries:
        res.fail("got", f"{where}: no GOT entry holds S = {S:#x}")
        return
    if r.formula == O.GOT_PCREL and kind.label not in O.RV_HI_KINDS:
        G = got - A + P
        if G not in ctx.image.got.values():
            res.fail("got", f"{where}: the field points at {G:#x}, not at a GOT entry")
            return
        if ctx.word(G) != S:
            res.fail("got", f"{where}: the GOT entry {G:#x} it points at holds {ctx.word(G):#x}, "
                     f"not S = {S:#x}")
            return
    ok = False
    for G in entries:
        value = O.evaluate(r.formula, G=G, A=A, P=P)
        if not r.in_range(value):
            continue
        if _kept(ctx, kind.label, value) == got:
            ok = True
            break
    if ok:
        res.verified[kind.label] += 1
        return
    values = [O.evaluate(r.formula, G=G, A=A, P=P) for G in entries]
    if all(not r.in_range(v) for v in values):
        res.fail("range", f"{where}: linked the out-of-range value {values[0]:#x} "
                 f"(G={entries[0]:#x} A={A:#x} P={P:#x}); the field holds {got:#x}")
    else:
        res.fail("value", f"{where}: the field decodes to {got:#x}; {r.formula} with the GOT entry "
                 f"holding S gives {values[0]:#x} (G={entries[0]:#x} A={A:#x} P={P:#x})")


def _check_pcrel_lo(ctx: _Ctx, oi, sec, ri, rel, got, where) -> None:
    """RISC-V PCREL_LO12_I/S: the low part of its HI20's value; with the HI20
    the pair adds up to the full value."""
    res, case = ctx.res, ctx.case
    label = case.objects[oi].symbols[rel.symbol]
    hi = next(x for x in sec.relocs if x.label in O.RV_HI_KINDS and x.offset == label.value)
    sec_addr = ctx.sec_addr(oi, sec.index)
    hp = sec_addr + hi.offset
    ref = resolve(case, oi, hi.symbol, ctx.hosts)
    S = ctx.S(ref) if ref is not None else None
    hkind = ctx.cat[hi.label]
    hdec = _decode(ctx, hkind, hp)
    if S is None or hdec is None:
        res.fail("value", f"{where}: its HI20's symbol does not resolve or its bytes at {hp:#x} "
                 "are unreadable")
        return
    if hi.label == "R_RISCV_GOT_HI20":
        entries = [g for g in ctx.image.got.values() if ctx.word(g) == S]
        G = hp + hdec + got - hi.addend
        if G not in entries:
            res.fail("got", f"{where}: auipc + lo12 give {hp + hdec + got:#x}, so the GOT entry "
                     f"{G:#x}, which does not hold S = {S:#x}")
        else:
            res.verified[rel.label] += 1
        return
    value = S + hi.addend - hp
    if got != O.lo12(value):
        res.fail("value", f"{where}: the field decodes to {got:#x}, expected lo12({value:#x}) = "
                 f"{O.lo12(value):#x}")
    elif hdec + got != value:
        res.fail("value", f"{where}: HI20 + LO12 give {hdec + got:#x}, expected {value:#x}")
    else:
        res.verified[rel.label] += 1


def _check_pairs(ctx: _Ctx, oi, sec, sec_addr) -> None:
    """AArch64 adrp + lo12 and RISC-V lui + lo12 on the same symbol and
    addend: the two fields together give the full address."""
    res, case = ctx.res, ctx.case
    by_off = {}
    for rel in sec.relocs:
        by_off.setdefault(rel.offset, []).append(rel)
    for rel in sec.relocs:
        r = ctx.rules[rel.label]
        if r.formula not in (O.PAGE, O.GOT_PAGE) and rel.label != "R_RISCV_HI20":
            continue
        for lo in by_off.get(rel.offset + 4, []):
            lr = ctx.rules[lo.label]
            if lo.symbol != rel.symbol or lo.addend != rel.addend:
                continue
            if rel.label == "R_RISCV_HI20":
                if lo.label not in ("R_RISCV_LO12_I", "R_RISCV_LO12_S"):
                    continue
            elif (r.formula == O.GOT_PAGE) != (lr.formula == O.GOT_ABS) or lr.formula not in (
                    O.ABS, O.GOT_ABS) or lr.mask != O.IMM12:
                continue
            P = sec_addr + rel.offset
            hi_v = _decode(ctx, ctx.cat[rel.label], P)
            lo_v = _decode(ctx, ctx.cat[lo.label], P + 4)
            ref = resolve(case, oi, rel.symbol, ctx.hosts)
            S = ctx.S(ref)
            if hi_v is None or lo_v is None or S is None:
                continue
            where = _where(case, oi, sec, sec.relocs.index(rel), rel)
            if rel.label == "R_RISCV_HI20":
                full = hi_v + lo_v
                want = S + rel.addend
                if r.in_range(want) and full != want:
                    res.fail("value", f"{where}: lui + lo12 give {full:#x}, expected S + A = "
                             f"{want:#x}")
                continue
            full = O.page(P) + hi_v + lo_v
            if not O.signed(33)[0] <= hi_v <= O.signed(33)[1]:
                continue
            if r.formula == O.PAGE:
                want = S + rel.addend
                if r.in_range(O.page(want) - O.page(P)) and lr.in_range(want) and full != want:
                    res.fail("value", f"{where}: adrp + lo12 give {full:#x}, expected S + A = "
                             f"{want:#x}")
            else:
                G = full - rel.addend
                if r.in_range(O.page(G + rel.addend) - O.page(P)) and ctx.word(G) != S:
                    res.fail("got", f"{where}: adrp + ldr reach {G:#x}, which does not hold S = "
                             f"{S:#x}")


def _check_additive(ctx: _Ctx, oi, sec, off, grp) -> None:
    """RISC-V ADD/SUB/SET at one place, applied in order on the word."""
    res, case = ctx.res, ctx.case
    size = grp[0][2].size
    bits = grp[0][2].bits or 8 * size
    mask = (1 << bits) - 1
    orig = int.from_bytes(sec.data[off:off + size], "little")
    v = orig & mask
    for ri, rel, r, rec in grp:
        ref = resolve(case, oi, rel.symbol, ctx.hosts)
        S = ctx.S(ref)
        if S is None:
            res.fail("value", f"{_where(case, oi, sec, ri, rel)}: its symbol does not resolve")
            return
        before = v
        v = O.evaluate(r.formula, S=S, A=rel.addend, V=v) & mask
        if rec is not None and (rec.value & mask) != v:
            res.fail("record", f"{_where(case, oi, sec, ri, rel)}: record value {rec.value:#x}, "
                     f"expected {v:#x} (V={before:#x} S={S:#x} A={rel.addend:#x})")
    P = ctx.sec_addr(oi, sec.index) + off
    raw = ctx.read(P, size)
    got = int.from_bytes(raw, "little") & mask if raw is not None else None
    ri, rel = grp[-1][0], grp[-1][1]
    if got != v:
        res.fail("value", f"{_where(case, oi, sec, ri, rel)}: the word at {P:#x} holds "
                 f"{got if got is None else hex(got)}; {' then '.join(_name(g[1]) for g in grp)} on "
                 f"V = {orig & mask:#x} give {v:#x}")
    else:
        for g in grp:
            res.verified[g[1].label] += 1


def _check_untouched(ctx: _Ctx, fields) -> None:
    case, res = ctx.case, ctx.res
    for oi, obj in enumerate(case.objects):
        for sec in obj.sections:
            if sec.data is None or not sec.size:
                continue
            addr = ctx.sec_addr(oi, sec.index)
            now = ctx.read(addr, sec.size)
            if now is None:
                res.fail("untouched", f"{obj.path}: section {sec.name} at {addr:#x} is unreadable")
                continue
            if now == sec.data:
                continue
            allowed = 0
            for off, mask, size in fields.get((oi, sec.index), []):
                if off >= 0:
                    allowed |= mask << (8 * off)
            diff = (int.from_bytes(now, "little") ^ int.from_bytes(sec.data, "little")) & ~allowed
            if diff:
                i = ((diff & -diff).bit_length() - 1) // 8
                a, b = now[i], sec.data[i]
                res.fail("untouched", f"{obj.path}: section {sec.name} offset {i:#x}: byte "
                         f"{b:#04x} became {a:#04x} (bits {(diff >> (8 * i)) & 0xFF:#04x} lie "
                         "outside every relocation's field)")
