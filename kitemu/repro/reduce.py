"""Delta reduction of a failing program (``kitemu repro --minimize``).

The reducer works on the neutral object model (``loader/model.py``), never
on bytes of a format, with four kinds of reduction, each an :class:`Edit`:

``object``    drop a whole object. Archives are *extracted* first: the
              members the link pulls (``select_inputs``, the same closure
              the link computes) become objects of their own, the members
              it never pulls are dropped at once (they cannot change the
              link) and reported.
``section``   remove a loaded section. Its global symbols become local
              (invisible to other objects).
``function``  trap a function: its bytes become the arch's trap instruction
              (``ud2``/``brk``/``ebreak``) and the relocations inside it are
              dropped. Nothing moves: a function cannot be cut out of a
              section soundly, because references inside a section need no
              relocation (x86-64 ``call`` to a local function, RISC-V
              branches...), so every address stays what it was.
``relocs``    drop a relocation group: every relocation of one section
              against one (symbol, addend) - an ADRP/ADD or HI20/LO12 pair is
              one group (a PCREL_LO joins its HI20's group; RELAX/ALIGN join
              the relocation at their offset). The field keeps its assembled
              bytes, except that a dropped *call* becomes a no-op and a
              dropped tail jump a return (aarch64 BL/B, x86-64 call/jmp
              rel32, RISC-V CALL/JAL), so the code no longer needs its callee.

Soundness: an edit set is tried only if the result still *links to the same
definitions*: every relocation left in a kept section must reach a symbol
that is still defined where it was (a local symbol's section must be kept;
a name some input defined must still be defined by one, or the reference
would silently rebind to a host function or to a weak 0), and the entry
and scenario symbols must stay defined. So sections and objects go only
when unreferenced - which trapping functions and dropping call sites make
them. Every candidate is then relinked and rerun in a fresh process under
the chosen host model and strategy; it is kept when the *same fault*
happens: by default the same kind, signal, si_code, access, J-stage and
faulting function (``--same`` chooses the fields).

The search is Zeller's ddmin, run per kind (objects, then sections, then
functions, then relocation groups) and repeated while a round removes
something.

The reproducer is written as a replayable JSON file (``reduced.json``):
the target, host model, strategy, entry, arguments, scenario, the expected
fault, the *original bytes* of each kept object (base64) and the edits to
apply to them, plus what was removed. ``kitemu repro --replay FILE`` loads
the objects, applies the edits with the same code and re-runs. Kept objects
that need no edit are also written out as ``.o`` files next to it (when
none needs an edit, those files alone are a reproducer for ``kitemu run``).
kitemu has no object writer: serialising the edits keeps the reproducer
exact without one.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from dataclasses import dataclass, field, replace

from ..errors import ConfigError, KitemuError
from ..loader.model import Binding, SectionKind, SymbolPlace, SymbolType
from ..targets.base import Formula
from .run import (DEFAULT_SAME, Outcome, Program, fault_key, report_fields, run_once,
                  short_input)

KINDS = ("object", "section", "function", "relocs")
FORMAT = "kitemu-repro/1"


class ReproError(KitemuError):
    pass


@dataclass(frozen=True)
class Edit:
    kind: str            # one of KINDS
    obj: str             # object path (as loaded)
    section: int = -1    # section index (section, function, relocs)
    start: int = 0       # function: [start, end) in the section
    end: int = 0
    symbol: int = -1     # relocs: symbol index of the group
    addend: int = 0      # relocs: addend of the group
    label: str = ""      # for people: section, function or group name

    def to_json(self) -> dict:
        d = {"kind": self.kind, "object": self.obj}
        if self.kind != "object":
            d["section"] = self.section
        if self.kind == "function":
            d.update(start=self.start, end=self.end)
        if self.kind == "relocs":
            d.update(symbol=self.symbol, addend=self.addend)
        if self.label:
            d["label"] = self.label
        return d

    @classmethod
    def from_json(cls, d: dict) -> "Edit":
        """An edit as :meth:`to_json` writes it; ValueError if it is not one."""
        if d.get("kind") not in KINDS:
            raise ValueError(f"unknown edit kind {d.get('kind')!r}")
        e = cls(d["kind"], d["object"], d.get("section", -1), d.get("start", 0),
                d.get("end", 0), d.get("symbol", -1), d.get("addend", 0), d.get("label", ""))
        ints = (e.section, e.start, e.end, e.symbol, e.addend)
        if not isinstance(e.obj, str) or not isinstance(e.label, str) or \
                any(isinstance(v, bool) or not isinstance(v, int) for v in ints):
            raise ValueError(f"edit {d!r}: object and label are strings, the rest integers")
        return e

    def describe(self) -> str:
        o = short_input(self.obj)
        if self.kind == "object":
            what = "archive member" if self.obj.endswith(")") else "object"
            return f"removed {what} {o}"
        if self.kind == "section":
            return f"removed section {o}: {self.label}"
        if self.kind == "function":
            return f"trapped function {o}: {self.label} [{self.start:#x}, {self.end:#x})"
        return f"dropped relocations {o}: {self.label}"


# -- applying edits ------------------------------------------------------------------------

def apply_edits(objects: list, edits, arch) -> list:
    """New :class:`ObjectFile` s with ``edits`` applied (the inputs are
    never modified). Edits of unknown objects are ignored."""
    drop = set()
    by_obj: dict[str, list[Edit]] = {}
    for e in edits:
        if e.kind == "object":
            drop.add(e.obj)
        else:
            by_obj.setdefault(e.obj, []).append(e)
    out = []
    for obj in objects:
        if obj.path in drop:
            continue
        es = by_obj.get(obj.path)
        out.append(_edit_object(obj, es, arch) if es else obj)
    return out


def _edit_object(obj, edits: list[Edit], arch):
    removed = {e.section for e in edits if e.kind == "section"}
    traps: dict[int, list[tuple[int, int]]] = {}
    groups: dict[int, set[tuple[int, int]]] = {}
    for e in edits:
        if e.kind == "function":
            traps.setdefault(e.section, []).append((e.start, e.end))
        elif e.kind == "relocs":
            groups.setdefault(e.section, set()).add((e.symbol, e.addend))
    sections = {}
    for idx, sec in obj.sections.items():
        if idx in removed:
            continue
        if idx not in traps and idx not in groups:
            sections[idx] = sec
            continue
        data = bytearray(sec.data) if sec.data is not None else None
        ranges = traps.get(idx, [])
        dropped = groups.get(idx, set())
        relocs = []
        for rel, key in zip(sec.relocations, group_keys(obj, sec)):
            if any(s <= rel.offset < e for s, e in ranges):
                continue
            if key in dropped:
                if data is not None and rel.spec.branch:
                    _neutralize(arch.name, data, rel)
                continue
            relocs.append(rel)
        if data is not None:
            for s, e in ranges:
                trap = arch.trap
                data[s:e] = (trap * ((e - s) // len(trap) + 1))[:e - s]
        sections[idx] = replace(sec, data=None if data is None else bytes(data), relocations=relocs)
    symbols = obj.symbols
    if removed:
        symbols = [replace(s, binding=Binding.LOCAL)
                   if s.place is SymbolPlace.SECTION and s.section in removed
                   and s.binding is not Binding.LOCAL else s
                   for s in obj.symbols]
    return replace(obj, sections=sections, symbols=symbols)


def group_keys(obj, sec) -> list[tuple[int, int]]:
    """The relocation group of each relocation of ``sec``: (symbol index,
    addend), with PCREL_LO joined to its HI20 and NONE-formula ones (RELAX,
    ALIGN) to the relocation at their offset."""
    rels = sec.relocations
    hi_at = {r.offset: r for r in rels if r.spec.hi_part}
    keys = []
    for r in rels:
        if r.spec.formula is Formula.PCREL_LO and r.symbol < len(obj.symbols):
            hi = hi_at.get(obj.symbols[r.symbol].value)
            keys.append((hi.symbol, hi.addend) if hi is not None else (r.symbol, r.addend))
        else:
            keys.append((r.symbol, r.addend))
    real_at = {r.offset: k for r, k in zip(rels, keys) if r.spec.formula is not Formula.NONE}
    return [real_at.get(r.offset, k) if r.spec.formula is Formula.NONE else k
            for r, k in zip(rels, keys)]


_A64_NOP = (0xD503201F).to_bytes(4, "little")
_A64_RET = (0xD65F03C0).to_bytes(4, "little")
_RV_NOP = (0x00000013).to_bytes(4, "little")
_RV_RET = (0x00008067).to_bytes(4, "little")


def _neutralize(arch: str, data: bytearray, rel) -> None:
    """A dropped call becomes a no-op, a dropped tail jump a return."""
    off = rel.offset
    if arch == "aarch64" and off + 4 <= len(data):
        op = int.from_bytes(data[off:off + 4], "little") & 0xFC000000
        if op == 0x94000000:                       # BL
            data[off:off + 4] = _A64_NOP
        elif op == 0x14000000:                     # B
            data[off:off + 4] = _A64_RET
    elif arch == "x64" and 1 <= off and off + 4 <= len(data):
        if data[off - 1] == 0xE8:                  # call rel32
            data[off - 1:off + 4] = b"\x0f\x1f\x44\x00\x00"
        elif data[off - 1] == 0xE9:                # jmp rel32
            data[off - 1:off + 4] = b"\xc3\x0f\x1f\x40\x00"
    elif arch == "rv64":
        name = rel.spec.name
        if name in ("R_RISCV_CALL", "R_RISCV_CALL_PLT") and off + 8 <= len(data):
            rd = (int.from_bytes(data[off + 4:off + 8], "little") >> 7) & 31   # of the JALR
            data[off:off + 8] = _RV_NOP + _RV_NOP if rd else _RV_RET + _RV_NOP
        elif name == "R_RISCV_JAL" and off + 4 <= len(data):
            rd = (int.from_bytes(data[off:off + 4], "little") >> 7) & 31
            data[off:off + 4] = _RV_NOP if rd else _RV_RET


# -- soundness -----------------------------------------------------------------------------

def defined_names(objects) -> set[str]:
    return {s.name for o in objects for s in o.symbols
            if s.name and s.defined and s.binding is not Binding.LOCAL}


def refs_ok(objects, was_defined: set[str], roots: set[str]) -> bool:
    """Does every kept relocation still reach a definition where it did?"""
    defined = defined_names(objects)
    if any(r in was_defined and r not in defined for r in roots):
        return False
    for o in objects:
        n = len(o.symbols)
        for sec in o.sections.values():
            if not sec.kind.loaded:
                continue
            for rel in sec.relocations:
                if rel.spec.formula is Formula.NONE:
                    continue
                for si in (rel.symbol, rel.subtrahend):
                    if si is None or si >= n:
                        continue
                    s = o.symbols[si]
                    if s.binding is Binding.LOCAL:
                        if s.place is SymbolPlace.SECTION and s.section not in o.sections:
                            return False
                    elif s.name in was_defined and s.name not in defined:
                        return False
    return True


# -- units ---------------------------------------------------------------------------------

def _is_temp(name: str, fmt: str) -> bool:
    return name.startswith((".L", "$")) or (fmt == "macho" and name[:1] in ("l", "L"))


def units(kind: str, objects, roots: set[str], done: set[Edit]) -> list[Edit]:
    """The candidate edits of ``kind`` on the current (edited) objects."""
    out: list[Edit] = []
    if kind == "object":
        return [Edit("object", o.path, label=short_input(o.path)) for o in objects]
    for o in objects:
        for idx, sec in sorted(o.sections.items()):
            if not sec.kind.loaded:
                continue
            if kind == "section":
                out.append(Edit("section", o.path, idx, label=sec.name))
            elif kind == "function" and sec.kind is SectionKind.TEXT and sec.data is not None:
                out += _function_units(o, idx, sec, roots)
            elif kind == "relocs":
                seen = {}
                internal = set()
                for rel, key in zip(sec.relocations, group_keys(o, sec)):
                    if _internal_flow(o, idx, sec, rel):
                        internal.add(key)
                for rel, key in zip(sec.relocations, group_keys(o, sec)):
                    if rel.spec.formula is Formula.NONE or key in seen or key in internal:
                        continue
                    si, addend = key
                    name = o.symbols[si].name if si < len(o.symbols) else f"#{si}"
                    sign = "+" if addend >= 0 else "-"
                    seen[key] = Edit("relocs", o.path, idx, symbol=si, addend=addend,
                                     label=f"{sec.name} -> {name or f'symbol #{si}'} {sign} "
                                           f"{abs(addend):#x}")
                out += seen.values()
    return [u for u in out if u not in done]


def _internal_flow(o, idx, sec, rel) -> bool:
    """A PC-relative reference from code to its own section that is not a
    call (RISC-V relaxed objects keep BRANCH/RVC_JUMP relocations for a
    function's own branches): dropping it only breaks the function's
    control flow (a branch to itself), never a reduction worth a trial."""
    if sec.kind is not SectionKind.TEXT or rel.spec.branch or \
            rel.spec.formula is not Formula.PCREL or rel.symbol >= len(o.symbols):
        return False
    s = o.symbols[rel.symbol]
    return s.place is SymbolPlace.SECTION and s.section == idx


def _function_units(o, idx, sec, roots) -> list[Edit]:
    syms = [s for s in o.symbols if s.place is SymbolPlace.SECTION and s.section == idx
            and s.name and s.type not in (SymbolType.SECTION, SymbolType.FILE)
            and not _is_temp(s.name, o.format)]
    bounds = sorted({s.value for s in syms} | {sec.size})
    out, starts = [], set()
    for s in sorted(syms, key=lambda s: s.value):
        if s.type is not SymbolType.FUNC or s.name in roots or s.value in starts \
                or s.value >= sec.size:
            continue
        nxt = next(b for b in bounds if b > s.value)
        end = min(s.value + s.size, nxt) if s.size else nxt
        if end > s.value:
            starts.add(s.value)
            out.append(Edit("function", o.path, idx, s.value, end, label=s.name))
    return out


# -- ddmin -----------------------------------------------------------------------------------

def ddmin(items: list, keep_ok) -> list:
    """Zeller's ddmin: a small sublist of ``items`` such that
    ``keep_ok(sublist)`` (keeping only it reproduces), 1-minimal: no
    single item of it can be removed."""
    c = list(items)
    if not c or keep_ok([]):
        return []
    n = 2
    while len(c) >= 2:
        chunks = [c[i * len(c) // n:(i + 1) * len(c) // n] for i in range(n)]
        chunks = [ch for ch in chunks if ch]
        reduced = False
        for ch in chunks:
            if keep_ok(ch):
                c, n, reduced = ch, 2, True
                break
        if not reduced:
            for ch in chunks:
                ids = {id(x) for x in ch}
                comp = [x for x in c if id(x) not in ids]
                if keep_ok(comp):
                    c, n, reduced = comp, max(n - 1, 2), True
                    break
        if not reduced:
            if n >= len(c):
                break
            n = min(len(c), 2 * n)
    return c


# -- minimizing -------------------------------------------------------------------------------

@dataclass
class Reduction:
    target: str
    host: str
    strategy: str
    entry: str
    args: list[str]
    scenario: list[dict] | None
    same: tuple[str, ...]
    base: list[tuple[str, bytes]]          # extracted inputs: (object path, original bytes)
    edits: list[Edit]
    outcome: Outcome                       # the reduced program's run
    notes: list[str] = field(default_factory=list)
    trials: int = 0
    seconds: float = 0.0

    @property
    def dropped(self) -> set[str]:
        return {e.obj for e in self.edits if e.kind == "object"}

    def kept(self) -> list[str]:
        return [name for name, _ in self.base if name not in self.dropped]

    def effective_edits(self) -> list[Edit]:
        """The edits that still do something: none of a dropped object, none
        inside a removed section."""
        drop = self.dropped
        gone = {(e.obj, e.section) for e in self.edits if e.kind == "section"}
        out = []
        for e in self.edits:
            if e.kind == "object":
                out.append(e)
            elif e.obj in drop:
                continue
            elif e.kind != "section" and (e.obj, e.section) in gone:
                continue
            else:
                out.append(e)
        return out

    def modified(self) -> set[str]:
        return {e.obj for e in self.effective_edits() if e.kind != "object"}

    def removed_lines(self) -> list[str]:
        order = {k: i for i, k in enumerate(KINDS)}
        return self.notes + [e.describe() for e in sorted(self.effective_edits(),
                                                          key=lambda e: order[e.kind])]

    def to_json(self) -> dict:
        kept = set(self.kept())
        return {
            "format": FORMAT,
            "target": self.target, "host": self.host, "strategy": self.strategy,
            "entry": self.entry, "args": self.args, "scenario": self.scenario,
            "same": list(self.same),
            "fault": report_fields(self.outcome, self.target),
            "objects": [{"name": n, "sha256": hashlib.sha256(d).hexdigest(),
                         "data": base64.b64encode(d).decode()}
                        for n, d in self.base if n in kept],
            "edits": [e.to_json() for e in self.effective_edits() if e.kind != "object"],
            "removed": self.removed_lines(),
            "trials": self.trials,
        }


#: seconds the unreduced program may run before minimizing starts (when no
#: timeout is given; the trials then get 20x what it took, at least 0.2 s)
FIRST_RUN_TIMEOUT = 10.0


def minimize(program: Program, host: str, strategy: str, same=DEFAULT_SAME,
             timeout: float | None = None, log=None, max_rounds: int = 4) -> Reduction:
    """Reduce ``program`` while its fault under ``host`` x ``strategy``
    stays the same (``same`` fields). ``log(line)`` hears of progress."""
    from ..hostlib import REGISTRY
    from ..link.inputs import select_inputs

    t0 = time.perf_counter()
    log = log or (lambda line: None)
    first = run_once(program, host, strategy, timeout or FIRST_RUN_TIMEOUT)
    if first.fault is None or first.fault.kind == "timeout":
        what = f"error: {first.error}" if first.error else \
            f"terminated by {first.signal}" if first.signal else \
            "it ran out of time" if first.fault is not None else f"exit {first.exit_code}"
        raise ReproError(f"nothing to minimize: under {host} x {strategy} the program does not "
                         f"crash with a CPU fault ({what})")
    key = fault_key(first.fault, same)
    trial_timeout = timeout or max(0.2, 20 * first.seconds)

    # archives: extract what the link pulls, drop what it never pulls
    arch = program.target.arch
    roots = program.roots()
    host_names = {program.target.symbol(n) for n in REGISTRY}
    selected = select_inputs(program.objects, program.archives, roots, host_names)
    raw = dict(program.raw)
    notes = []
    paths = {o.path for o in selected}
    for a in program.archives:
        members = [a.member_path(i) for i in range(len(a.members))]
        for i, m in enumerate(members):
            raw.setdefault(m, a.members[i].data)
        never = [short_input(m).split("(", 1)[1][:-1] for m in members if m not in paths]
        pulled = [short_input(m) for m in members if m in paths]
        notes.append(f"archive {short_input(a.path)}: extracted {', '.join(pulled) or 'nothing'}"
                     f"; never pulled: {', '.join(never) or 'nothing'}")
    missing = [o.path for o in selected if o.path not in raw]
    if missing:
        raise ReproError(f"cannot minimize: no bytes for {', '.join(missing)}")
    base = [(o.path, raw[o.path]) for o in selected]
    if len({n for n, _ in base}) != len(base):
        raise ReproError("cannot minimize: two inputs have the same name")
    was_defined = defined_names(selected)
    flat = replace(program, objects=selected, archives=[], edits=[])

    cache: dict[frozenset, bool] = {}
    trials = 0

    def test(edits: frozenset) -> bool:
        nonlocal trials
        if edits in cache:
            return cache[edits]
        objs = apply_edits(selected, edits, arch)
        ok = False
        if refs_ok(objs, was_defined, roots):
            trials += 1
            try:
                out = run_once(flat, host, strategy, trial_timeout, objects=objs)
            except Exception:          # a reduction the linker cannot take: not interesting
                out = None
            ok = out is not None and out.fault is not None and fault_key(out.fault, same) == key
        cache[edits] = ok
        return ok

    accepted: list[Edit] = list(program.edits)
    if not test(frozenset(accepted)):
        raise ReproError("the fault does not reproduce once the archives are extracted")
    for rnd in range(max_rounds):
        progress = False
        for kind in KINDS:
            objs = apply_edits(selected, accepted, arch)
            cands = units(kind, objs, roots, set(accepted))
            if not cands:
                continue
            base_set = frozenset(accepted)

            def keep_ok(kept, cands=cands, base_set=base_set):
                ids = {id(x) for x in kept}
                return test(base_set | frozenset(u for u in cands if id(u) not in ids))

            kept = ddmin(cands, keep_ok)
            ids = {id(x) for x in kept}
            removed = [u for u in cands if id(u) not in ids]
            if removed:
                accepted += removed
                progress = True
                log(f"round {rnd + 1}: {kind}: removed {len(removed)} of {len(cands)} "
                    f"({trials} trials so far)")
        if not progress:
            break
    final = run_once(flat, host, strategy, trial_timeout,
                     objects=apply_edits(selected, accepted, arch))
    if final.fault is None or fault_key(final.fault, same) != key:
        # every accepted set was tested; a different result now means the
        # program does not fail deterministically: do not write it down
        got = report_fields(final, program.target.name)
        raise ReproError("the reduced program no longer reproduces the fault on a rerun (got "
                         + ", ".join(f"{k} {v}" for k, v in got.items()
                                     if k not in ("target", "host", "strategy")) + ")")
    return Reduction(program.target.name, host, strategy, program.entry, list(program.args),
                     program.scenario, tuple(same), base, accepted, final, notes, trials,
                     time.perf_counter() - t0)


# -- the reproducer on disk ---------------------------------------------------------------------

def _file_name(name: str) -> str:
    """Where a kept object is written: its base name (``lib.a(m.o)`` ->
    ``lib.a-m.o``); a compiled C input (``prog.c``, ``<stdin>``) gets
    ``.o``, never its source's name."""
    base = short_input(name).replace("(", "-").replace(")", "").strip("<>")
    if base.endswith(".c"):
        base = base[:-2]
    return base if base.endswith(".o") else base + ".o"


def write_reduction(red: Reduction, outdir: str) -> list[str]:
    """``outdir/reduced.json`` plus the kept objects that need no edit."""
    os.makedirs(outdir, exist_ok=True)
    written = []
    path = os.path.join(outdir, "reduced.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(red.to_json(), f, indent=1)
        f.write("\n")
    written.append(path)
    modified = red.modified()
    kept = set(red.kept())
    used = {"reduced.json"}
    for name, data in red.base:
        if name in kept and name not in modified:
            fname = _file_name(name)
            k = 1
            while fname in used:               # a/main.o and b/main.o
                k += 1
                fname = f"{k}-{_file_name(name)}"
            used.add(fname)
            p = os.path.join(outdir, fname)
            with open(p, "wb") as f:
                f.write(data)
            written.append(p)
    return written


def load_replay(path: str) -> tuple[Program, dict]:
    """A reduced.json -> (the program: the kept objects' original bytes plus
    the edits :func:`run_once` applies before linking, the file's fields)."""
    from ..loader import load_object
    from ..targets import get_target
    from .run import check_scenario

    try:
        with open(path, encoding="utf-8") as f:
            meta = json.load(f)
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the reproducer: {e.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not a reproducer (invalid JSON: {e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        got = meta.get("format") if isinstance(meta, dict) else None
        raise ConfigError(f"{path}: not a kitemu reproducer (format {got!r}, "
                          f"expected {FORMAT!r})")
    try:
        target = get_target(meta["target"])
        pristine, raw = [], {}
        for o in meta["objects"]:
            data = base64.b64decode(o["data"], validate=True)
            if "sha256" in o and hashlib.sha256(data).hexdigest() != o["sha256"]:
                raise ConfigError(f"{path}: object {o['name']}: checksum mismatch")
            pristine.append(load_object(o["name"], data))
            raw[o["name"]] = data
        edits = [Edit.from_json(e) for e in meta.get("edits", [])]
        args = [str(a) for a in meta.get("args", [])]
        entry = str(meta.get("entry", "main"))
        fault = meta.get("fault")
        if fault is not None and not (isinstance(fault, dict) and all(
                isinstance(v, str) for v in fault.values())):
            raise ValueError("'fault' must map report keys to strings")
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        # ValueError includes binascii.Error (bad base64)
        raise ConfigError(f"{path}: malformed reproducer ({type(e).__name__}: {e})") from None
    scenario = check_scenario(meta.get("scenario"), path)
    prog = Program(target, pristine, [], entry, args, scenario, raw, edits)
    return prog, meta
