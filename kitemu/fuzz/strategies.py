"""Hypothesis strategies for relocation cases.

    from hypothesis import given
    from kitemu.fuzz.strategies import reloc_cases
    from kitemu.fuzz.check import check_case

    @given(reloc_cases("elf-aarch64", kinds=["R_AARCH64_CALL26"]))
    def test_calls(case):
        assert not check_case(case).failures

A case (:class:`~kitemu.fuzz.model.RelocCase`) is built around one
relocation *under test* (its kind drawn from ``kinds``, default every kind
of the target):

* a **site**: the real instruction(s) or data word the kind patches
  (:mod:`kitemu.fuzz.isa`), inside a section of ``site.o`` with padding
  before and after it, a drawn alignment, and sometimes further sites of
  other kinds after it;
* a **target symbol** placed by one of: ``same`` (in the site's own
  section: exact distances up to 1.5 MiB with section padding), ``section``
  (another section of ``site.o``), ``object`` (a global in ``target.o``,
  which may come before or after ``site.o``), ``secsym`` (a section symbol
  + addend, as assemblers write local references), ``pad`` (inside a BSS
  section of up to 8 MiB: large distances without large byte arrays),
  ``abs`` (an absolute symbol: any distance), ``weak`` (undefined weak:
  address 0), ``host`` (a host C function: its canonical stub);
* a **distance**: the value the formula should produce, drawn as ``near``,
  ``edge`` (the first and last value the field accepts), ``beyond`` (one
  step past either edge), ``far``, ``inside`` (anywhere in range) or
  ``misaligned``; it is reached exactly by the placement above plus an
  addend computed from a probe link of the case (:func:`~kitemu.fuzz.linking.probe_layout`);
* an **image base** (the default one, low, around the 2 GiB and 4 GiB
  lines, or high in the 47-bit space);
* with a small probability, a **malformed** relocation added: one whose
  bytes leave its section, one overlapping another, a RISC-V
  ``PCREL_LO12`` with no ``HI20`` at its label, a relocation in a BSS
  section. The checks decide what each case must do; the strategy only
  makes interesting inputs.
"""

from __future__ import annotations

from hypothesis import strategies as st

from ..errors import ConfigError
from ..execmem import parse_strategy
from ..runtime import check_region
from ..targets import get_target
from . import oracle as O
from .isa import OTHER, TARGET, Site, shapes
from .linking import probe_layout
from .model import (CaseObject, CaseReloc, CaseSection, CaseSymbol, RelocCase, catalogue,
                    null_symbol)

SAME_MAX = 3 << 19            # same-section padding up to 1.5 MiB
BSS_MAX = 8 << 20             # a BSS pad section up to 8 MiB
CAPACITY = 64 << 20
HOST_FUNCS = ("puts", "malloc", "memcpy", "printf", "strlen")
INT64 = (-(1 << 63), (1 << 63) - 1)
U64 = (1 << 64) - 1

PLACEMENTS = ("same", "section", "object", "secsym", "pad", "abs", "weak", "host")
DISTANCES = ("near", "edge", "beyond", "far", "inside", "misaligned")

_SECTION_NAMES = {"text": ".text", "rodata": ".rodata", "data": ".data", "bss": ".bss"}


def _chance(draw, percent: int) -> bool:
    """True with ``percent`` % probability; shrinks towards False."""
    return draw(st.integers(0, 99)) >= 100 - percent


def _valid_base(target: str, base: int) -> bool:
    t = get_target(target)
    if base % t.default_page_size:
        return False
    try:
        check_region(base, CAPACITY, parse_strategy(t.default_strategy))
    except ConfigError:
        return False
    return True


def bases(target: str) -> st.SearchStrategy[int]:
    """Image bases: the default, low, around the 2 GiB and 4 GiB lines, high."""
    return st.one_of(
        st.just(0x1000_0000),
        st.integers(0x10, 0x2FFF).map(lambda k: k * 0x10000),
        st.integers(0, 0x37).map(lambda k: 0x7FF2_0000 + k * 0x4000),
        st.integers(0, 0x3F).map(lambda k: 0xFFC0_0000 + k * 0x10000),
        st.integers(1, 0x7F00).map(lambda k: k << 32),
    ).filter(lambda b: _valid_base(target, b))


class _Case:
    """Helpers adding sections and symbols to a case's objects."""

    @staticmethod
    def section(obj: CaseObject, name: str, kind: str, align: int, data: bytes | None,
                size: int | None = None) -> CaseSection:
        sec = CaseSection(len(obj.sections) + 1, name, kind, align,
                          len(data) if data is not None else size, data)
        obj.sections.append(sec)
        return sec

    @staticmethod
    def symbol(obj: CaseObject, sym: CaseSymbol) -> int:
        obj.symbols.append(sym)
        return len(obj.symbols) - 1


def _filler(target: str, n: int, pattern: int) -> bytes:
    if not n:
        return b""
    unit = get_target(target).arch.trap if pattern == 0 else bytes([pattern])
    return (unit * (n // len(unit) + 1))[:n]


def _aligned_in(lo: int, hi: int, al: int, x: int) -> int:
    """``x`` clamped to [lo, hi] and rounded to a multiple of ``al`` inside."""
    x = max(lo, min(hi, x))
    x -= x % al
    if x < lo:
        x += al
    return x


def wanted_value(draw, r: O.Rule, distance: str) -> int | None:
    """The value the controlling relocation's formula should produce."""
    al = r.align
    if not r.checked:
        if al > 1 and distance == "misaligned":
            return draw(st.integers(0, 0xFFFF_FFFF)) * al + draw(st.integers(1, al - 1))
        return draw(st.integers(INT64[0] // 2, INT64[1] // 2)) // al * al
    lo, hi = r.lo, r.hi
    lo_al = -(-lo // al) * al
    hi_al = hi - hi % al
    if distance == "near":
        n = 256 * al
        return _aligned_in(max(lo_al, -n), min(hi_al, n), al, draw(st.integers(-n, n)))
    if distance == "edge":
        return draw(st.sampled_from([hi_al, lo_al]))
    if distance == "beyond":
        return draw(st.sampled_from([hi_al + al, lo_al - al]))
    if distance == "far":
        d = draw(st.integers(1, 1 << 34)) * al
        return hi_al + d if draw(st.booleans()) else lo_al - d
    if distance == "inside":
        return _aligned_in(lo_al, hi_al, al, draw(st.integers(lo_al, hi_al)))
    if distance == "misaligned" and al > 1:
        return _aligned_in(max(lo_al, -4096), min(hi_al, 4096), al,
                           draw(st.integers(-4096, 4096))) + draw(st.integers(1, al - 1))
    return None


def _host_symbol(target: str, draw) -> CaseSymbol:
    name = get_target(target).symbol(draw(st.sampled_from(HOST_FUNCS)))
    return CaseSymbol(name, "global", "notype", "undef")


@st.composite
def _reloc_case(draw, target: str, kinds, bad: int, extras: int) -> RelocCase:
    cat = catalogue(target)
    labels = sorted(kinds) if kinds else list(cat)
    label = draw(st.sampled_from(labels))
    site = draw(st.sampled_from(shapes(target, label)))(draw)
    primary = site.relocs[site.primary]
    # the relocation whose value the distance controls: a PCREL_LO12's is its HI20's
    ctrl = site.relocs[0] if label in O.RV_LO_KINDS else primary
    r = O.rule(target, ctrl.label)
    formula = r.formula
    base = draw(bases(target))

    placements = list(PLACEMENTS)
    if formula in (O.ADD, O.SUB, O.SET) or r.formula == O.NONE:
        placements = ["same", "section", "object", "abs", "weak"]
    placement = draw(st.sampled_from(placements))
    distance = draw(st.sampled_from(DISTANCES))
    want = None
    if formula in (O.ABS, O.SET, O.PCREL, O.PAGE, O.DELTA) and placement != "host":
        want = wanted_value(draw, r, distance)
    low12 = draw(st.integers(0, 0xFFF))

    # -- the site section ---------------------------------------------------
    sec_kind = draw(st.sampled_from(site.kinds))
    unit = max(site.align, 1)
    pre = unit * draw(st.integers(0, 16))
    post = unit * draw(st.integers(0, 16))
    align = draw(st.sampled_from([1, 2, 4, 8, 16, 64, 4096]))
    if not _chance(draw, 10):
        align = max(align, site.align)
    pattern = draw(st.sampled_from([0, 0x00, 0xFF, 0x5A]))
    code = bytearray(site.code)
    sym_off = None          # "same": the target's offset in the site section
    A = ctrl.addend
    if placement == "same" and want is not None and formula == O.PCREL and abs(want) <= SAME_MAX:
        # S - P = want - A: the target sits want - A bytes from the field,
        # before the site (more padding in front) or after it (more behind)
        sym_off = pre + ctrl.offset + want - A
        if sym_off < 0:
            pre += -(sym_off // unit) * unit       # round the extra padding up to the unit
            sym_off = pre + ctrl.offset + want - A
        end = pre + len(code) + post
        if sym_off > end:
            post += sym_off - end
    elif placement == "same":
        sym_off = draw(st.integers(0, pre + len(code) + post))

    # further sites of other kinds after the one under test
    extra_sites: list[Site] = []
    if _chance(draw, extras):
        for _ in range(draw(st.integers(1, 2))):
            lbl = draw(st.sampled_from(list(cat)))
            shp = draw(st.sampled_from(shapes(target, lbl)))(draw)
            if sec_kind not in shp.kinds:
                continue
            extra_sites.append(shp)

    site_obj_first = not _chance(draw, 30)
    site_obj = CaseObject("site.o", [], [null_symbol()])
    tgt_obj = CaseObject("target.o", [], [null_symbol()])
    body = _filler(target, pre, pattern) + bytes(code) + _filler(target, post, pattern)
    extra_at = []
    for shp in extra_sites:
        pad = (-len(body)) % max(shp.align, 1)
        body += _filler(target, pad, pattern)
        extra_at.append(len(body))
        body += shp.code
    site_sec = _Case.section(site_obj, f"{_SECTION_NAMES[sec_kind]}.site", sec_kind, align, body)

    # -- the target symbol ----------------------------------------------------
    def define(obj, sec, value, binding="global", stype="notype", name="target"):
        return _Case.symbol(obj, CaseSymbol(name, binding, stype, "section", sec.index, value))

    tgt_kind = draw(st.sampled_from(["text", "rodata", "data", "bss"]))
    tgt_size = draw(st.sampled_from([0, 1, 8, 64, 4096, 65536]))
    tgt_align = draw(st.sampled_from([1, 4, 16, 4096]))
    tgt_val = draw(st.integers(0, tgt_size))
    target_sym = None       # (object, index) of the TARGET symbol as site.o refers to it
    S_fixed = None          # an absolute symbol's value
    pad_sec = None
    if placement == "same":
        binding = draw(st.sampled_from(["local", "global"]))
        target_sym = define(site_obj, site_sec, sym_off, binding, "func")
    elif placement in ("section", "secsym"):
        data = None if tgt_kind == "bss" else _filler(target, tgt_size, pattern)
        tsec = _Case.section(site_obj, f"{_SECTION_NAMES[tgt_kind]}.t", tgt_kind, tgt_align, data,
                             tgt_size)
        if placement == "secsym":
            target_sym = _Case.symbol(site_obj, CaseSymbol("", "local", "section", "section",
                                                           tsec.index, 0))
            A += tgt_val
        else:
            target_sym = define(site_obj, tsec, tgt_val, draw(st.sampled_from(["local", "global"])),
                                "object")
    elif placement in ("object", "pad"):
        if placement == "pad":
            size = min(BSS_MAX, max(abs(want or 0) + 0x10000, 0x1000)) if want is not None \
                else draw(st.sampled_from([0x1000, 1 << 20]))
            pad_sec = _Case.section(tgt_obj, ".bss.pad", "bss", tgt_align, None, size)
            define(tgt_obj, pad_sec, draw(st.integers(0, size)), "global", "object")
        else:
            data = None if tgt_kind == "bss" else _filler(target, tgt_size, pattern)
            tsec = _Case.section(tgt_obj, f"{_SECTION_NAMES[tgt_kind]}.t", tgt_kind, tgt_align,
                                 data, tgt_size)
            define(tgt_obj, tsec, tgt_val, draw(st.sampled_from(["global", "weak"])), "func")
        target_sym = _Case.symbol(site_obj, CaseSymbol("target", "global", "notype", "undef"))
    elif placement == "abs":
        S_fixed = draw(st.integers(0, U64))
        where = draw(st.sampled_from(["site", "target"]))
        sym = CaseSymbol("target", "global", "notype", "abs", None, S_fixed)
        if where == "site":
            target_sym = _Case.symbol(site_obj, sym)
        else:
            _Case.symbol(tgt_obj, sym)
            target_sym = _Case.symbol(site_obj, CaseSymbol("target", "global", "notype", "undef"))
    elif placement == "weak":
        target_sym = _Case.symbol(site_obj, CaseSymbol("target", "weak", "notype", "undef"))
    else:   # host
        target_sym = _Case.symbol(site_obj, _host_symbol(target, draw))

    # the OTHER symbol (SUB of a label difference, SUBTRACTOR's subtrahend)
    other_sym = None
    if any(x.role == OTHER or x.subtrahend for s in [site, *extra_sites] for x in s.relocs):
        other_off = draw(st.integers(0, site_sec.size))
        other_sym = _Case.symbol(site_obj, CaseSymbol("other", "local", "notype", "section",
                                                      site_sec.index, other_off))

    def add_site(s: Site, at: int, primary_site: bool) -> None:
        for x in s.relocs:
            if x.role == TARGET:
                sym = target_sym
                addend = A if primary_site else x.addend + draw(st.integers(-64, 64))
            elif x.role == OTHER:
                sym, addend = other_sym, draw(st.integers(-64, 64))
            else:   # label:<offset>: a local label on the HI20 instruction
                off = at + int(x.role.split(":")[1])
                sym = _Case.symbol(site_obj, CaseSymbol(f".Lpcrel_hi{len(site_obj.symbols)}",
                                                        "local", "notype", "section",
                                                        site_sec.index, off))
                addend = 0
            site_sec.relocs.append(CaseReloc(at + x.offset, x.label, sym, addend,
                                             other_sym if x.subtrahend else None))

    add_site(site, pre, True)
    n_primary = len(site_sec.relocs)     # the addends _tune may move: not the extra sites'
    for shp, at in zip(extra_sites, extra_at):
        add_site(shp, at, False)

    objs_order = [site_obj, tgt_obj] if site_obj_first else [tgt_obj, site_obj]
    objects = [o for o in objs_order if o.sections or len(o.symbols) > 1]
    case = RelocCase(target, base, CAPACITY, objects,
                     {"kind": label, "shape": site.name, "placement": placement,
                      "distance": distance, "want": want})

    # -- reach the wanted value exactly ---------------------------------------
    if formula in O.GOT_FORMULAS:
        _got_addend(draw, site_sec, n_primary, r, distance)
    elif want is not None and not (placement == "same" and formula == O.PCREL and sym_off is not None
                                   and abs(want) <= SAME_MAX):
        _tune(case, site_obj, site_sec, n_primary, pre + ctrl.offset, target_sym, other_sym,
              formula, want, low12, placement, pad_sec, tgt_obj)

    # -- malformed inputs -----------------------------------------------------
    if _chance(draw, bad):
        _break(draw, case, site_obj, site_sec, target_sym, pre + primary.offset)
    return case


def _set_addend(site_sec, n_primary: int, target_sym, A: int) -> bool:
    """Set the addend of the site under test's relocations against the
    target (the first ``n_primary`` of the section; extra sites keep theirs)."""
    if not INT64[0] <= A <= INT64[1]:
        return False
    for r in site_sec.relocs[:n_primary]:
        if r.symbol == target_sym:
            r.addend = A
    return True


def _got_addend(draw, site_sec, n_primary, r: O.Rule, distance: str) -> None:
    """GOT kinds: G is kitemu's choice; the addend alone moves the value."""
    tsym = site_sec.relocs[0].symbol
    if distance in ("beyond", "far") and r.checked:
        A = r.hi + (1 << 27) + draw(st.integers(0, 1 << 20))
        A = A if draw(st.booleans()) else r.lo - (1 << 27) - draw(st.integers(0, 1 << 20))
    elif distance == "misaligned":
        A = draw(st.integers(1, 15))
    else:
        A = draw(st.sampled_from([0, 0, -4, 8, draw(st.integers(-4096, 4096))]))
    _set_addend(site_sec, n_primary, tsym, A)


def _tune(case, site_obj, site_sec, n_primary, p_off, target_sym, other_sym, formula, want,
          low12, placement, pad_sec, tgt_obj) -> None:
    """Probe the layout, then set the addend (or the absolute symbol's value,
    or the symbol's offset in its BSS pad) so that the formula gives ``want``."""
    addrs = probe_layout(case)
    if addrs is None:
        return
    oi_site = case.objects.index(site_obj)
    P = addrs[(oi_site, site_sec.index)] + p_off
    ref = site_obj.symbols[target_sym]
    A0 = next(r.addend for r in site_sec.relocs if r.symbol == target_sym)
    if formula == O.PCREL:
        SA = want + P
    elif formula == O.PAGE:
        SA = O.page(P) + want + low12
    elif formula == O.DELTA:
        o = site_obj.symbols[other_sym]
        SA = want + addrs[(oi_site, o.section)] + o.value
    else:
        SA = want
    if placement == "abs":
        sym = ref if ref.place == "abs" else next(s for s in tgt_obj.symbols if s.name == ref.name)
        S = SA - A0
        if 0 <= S <= U64:
            sym.value = S
            return
        sym.value = max(0, min(U64, SA))
        _set_addend(site_sec, n_primary, target_sym, SA - sym.value)
        return
    if placement == "weak" or placement == "host":
        _set_addend(site_sec, n_primary, target_sym, SA)
        return
    # a symbol in a section: its address from the probe
    if ref.place == "undef":
        oi_t = case.objects.index(tgt_obj)
        sym = next(s for s in tgt_obj.symbols if s.name == ref.name)
    else:
        oi_t, sym = oi_site, ref
    sec_addr = addrs[(oi_t, sym.section)]
    if placement == "pad" and pad_sec is not None:
        value = SA - A0 - sec_addr
        if 0 <= value <= pad_sec.size:
            sym.value = value
            return
    _set_addend(site_sec, n_primary, target_sym, SA - (sec_addr + sym.value))


def _break(draw, case, site_obj, site_sec, target_sym, p_off) -> None:
    """Add one malformed relocation."""
    cat = catalogue(case.target)
    sized = [k for k in cat.values() if k.size]
    how = draw(st.sampled_from(["bounds", "overlap", "bss"] +
                               (["orphan-lo"] if case.target == "elf-rv64" else [])))
    case.note["malformed"] = how
    if how == "bounds":
        k = draw(st.sampled_from(sized))
        off = draw(st.integers(max(0, site_sec.size - k.size + 1), site_sec.size + 3))
        site_sec.relocs.append(CaseReloc(off, k.label, target_sym, 0))
    elif how == "overlap":
        k = draw(st.sampled_from(sized))
        lo = max(0, p_off - k.size + 1)
        hi = min(site_sec.size - k.size, p_off + 3)
        if hi < lo:
            return
        site_sec.relocs.append(CaseReloc(draw(st.integers(lo, hi)), k.label, target_sym, 0))
    elif how == "bss":
        k = draw(st.sampled_from(list(cat.values())))
        sec = _Case.section(site_obj, ".bss.r", "bss", 8, None, 64)
        sec.relocs.append(CaseReloc(draw(st.integers(0, 56)), k.label, target_sym, 0))
    else:
        off = draw(st.integers(0, max(0, site_sec.size - 4)))
        lbl = _Case.symbol(site_obj, CaseSymbol(".Lorphan", "local", "notype", "section",
                                                site_sec.index, draw(st.integers(0, site_sec.size))))
        site_sec.relocs.append(CaseReloc(off, draw(st.sampled_from(list(O.RV_LO_KINDS))), lbl, 0))


def reloc_cases(target: str, kinds=None, *, bad: int = 10, extras: int = 25
                ) -> st.SearchStrategy[RelocCase]:
    """Relocation cases for ``target`` around one of ``kinds`` (labels of
    :func:`~kitemu.fuzz.model.catalogue`; default all). ``bad`` and
    ``extras`` are the percent chances of a malformed relocation and of
    further sites of other kinds in the same section."""
    if kinds:
        unknown = set(kinds) - set(catalogue(target))
        if unknown:
            raise ValueError(f"unknown relocation kinds for {target}: {sorted(unknown)}")
    return _reloc_case(target, tuple(kinds) if kinds else None, bad, extras)


__all__ = ["reloc_cases", "bases", "wanted_value", "PLACEMENTS", "DISTANCES"]
