"""Function-level hot reload (roadmap §1): replace the body behind a stable
entry while execution is stopped.

A reloadable function ``foo`` is reached as ``foo`` -> stable entry (RX,
``Arch.indirect_jump``) -> slot (RW, 8-byte aligned) -> current body
``foo$body$N``. Everything that names ``foo`` - ``lookup``, relocations from
any input, GOT entries, function pointers stored in data - holds the entry,
so it stays valid across reloads. :func:`reload_function`:

1. **validates** the replacement object (§1.4): it must define ``foo`` and
   may add private (local) helpers, read-only literals, debug sections and
   references to symbols the image or the host already has; it must not add
   writable data (.data/.bss/COMMON), constructors or destructors
   (.init_array/.fini_array/__mod_init_func), TLS, other public definitions,
   definitions colliding with live ones, or references to names that exist
   nowhere. Each refusal is a :class:`ReloadError` with a machine-readable
   ``reason`` naming the symbol or section;
2. **checks the ABI** (§1.3): the DWARF signatures of the live body and the
   replacement must be equal (both shown when they are not); a missing one
   is refused unless ``unchecked=True``;
3. **appends** the replacement as one transaction of the image (its ``foo``
   renamed to the local ``foo$body$N``; references to its own first byte go
   to the stable entry, like every other reference), and as the last write
   of that transaction stores the new body's address into the slot: one
   aligned pointer-width store. The generation goes up by one. Any failure
   leaves the old body active and the image unchanged (dead pages aside).

Old bodies stay mapped and callable until the session is freed (§1.5): a
frame stopped inside one finishes there and returns normally. A body's
state is ``active``, ``replaced`` (callable, not reached by new calls) or
``retired`` (the caller declared it unused); :func:`can_reclaim` answers
False while the active body, or any stopped frame's PC, link register or
stack word, lies inside it (a conservative scan: a stale word can only make
the answer False, never a live frame True).
"""

from __future__ import annotations

import dataclasses

from ..errors import ExecMemError, KitemuError, LinkError, RelocationError
from ..link.image import JitImage, ReloadableFunction
from ..loader.model import Binding, ObjectFile, SectionKind, SymbolPlace, SymbolType

#: machine-readable reasons a reload is refused
REASONS = ("not-reloadable", "no-definition", "public-definition", "duplicate",
           "writable-data", "constructor", "tls", "unresolved", "abi-mismatch", "abi-unknown",
           "abi-over-limit", "invalid-object", "capacity", "relocation", "link")


class ReloadError(KitemuError):
    """A refused reload; ``reason`` is one of :data:`REASONS`."""

    def __init__(self, reason: str, message: str):
        assert reason in REASONS, reason
        super().__init__(f"reload refused ({reason}): {message}")
        self.reason = reason
        self.detail = message


def find_reloadable(image: JitImage, name: str) -> ReloadableFunction:
    """The reloadable function ``name`` (its symbol spelling, or a static's
    ``file.c::helper`` identity)."""
    rf = image.reloadables.get(name)
    if rf is None:
        known = ", ".join(sorted(image.reloadables)[:8]) or "none"
        raise ReloadError("not-reloadable",
                          f"{name!r} has no stable entry (indirection mode "
                          f"{image.indirection.value}; reloadable: {known})")
    return rf


# -- validation -------------------------------------------------------------------

_CTOR_KINDS = (SectionKind.INIT_ARRAY, SectionKind.FINI_ARRAY, SectionKind.PREINIT_ARRAY)
_WRITABLE_KINDS = (SectionKind.DATA, SectionKind.BSS)


def validate_replacement(image: JitImage, rf: ReloadableFunction, obj: ObjectFile) -> int:
    """Check ``obj`` may replace ``rf`` (§1.4); returns the index of its
    definition of the function."""
    if obj.target != image.target.name:
        raise ReloadError("invalid-object", f"{obj.path}: object is for {obj.target}, not "
                          f"{image.target.name}")
    body = None
    for sym in obj.symbols:
        if sym.name == rf.name and sym.defined and sym.place is SymbolPlace.SECTION:
            sec = obj.sections.get(sym.section)
            if sec is not None and sec.kind is SectionKind.TEXT:
                body = sym
    if body is None:
        raise ReloadError("no-definition", f"{obj.path} does not define {rf.name!r} in a code "
                          "section")
    for sec in obj.sections.values():
        if sec.kind in _CTOR_KINDS and sec.size:
            raise ReloadError("constructor", f"{obj.path}: section {sec.name}: a replacement may "
                              "not bring constructors or destructors")
        if sec.kind in _WRITABLE_KINDS and sec.size:
            names = [s.name for s in obj.symbols if s.section == sec.index and s.name
                     and s.type in (SymbolType.OBJECT, SymbolType.NOTYPE) and s.defined
                     and s.place is SymbolPlace.SECTION]
            what = f" ({', '.join(names)})" if names else ""
            raise ReloadError("writable-data", f"{obj.path}: section {sec.name}{what}: a "
                              "replacement may not add writable data; v1 reloads functions only")
    host = image.host_addrs
    for sym in obj.symbols:
        if sym is body or not sym.name:
            continue
        if sym.type is SymbolType.TLS:
            raise ReloadError("tls", f"{obj.path}: symbol {sym.name!r} is thread-local")
        if sym.place is SymbolPlace.COMMON:
            raise ReloadError("writable-data", f"{obj.path}: COMMON symbol {sym.name!r}: a "
                              "replacement may not add writable data")
        if sym.binding is Binding.LOCAL:
            continue
        if sym.defined:
            old = image.lookup_global(sym.name)
            if old is not None:
                raise ReloadError("duplicate", f"{obj.path} defines {sym.name!r}, already "
                                  f"defined by {old.input} (generation {old.generation})")
            raise ReloadError("public-definition", f"{obj.path} defines the public symbol "
                              f"{sym.name!r}; a replacement may define only {rf.name!r} and "
                              "local helpers")
        if sym.binding is Binding.WEAK or sym.name == rf.name:
            continue
        if image.lookup_global(sym.name) is None and sym.name not in host \
                and sym.name not in image.linker_defined:
            why = " (it is pending: no append has defined it)" if sym.name in image.pending else ""
            raise ReloadError("unresolved", f"{obj.path} references {sym.name!r}, which neither "
                              f"the image nor the host defines{why}")
    return body.index


def prepare(obj: ObjectFile, rf: ReloadableFunction, body_index: int) -> ObjectFile:
    """The replacement as it is linked: its definition of the function made
    local and named ``foo$body$N`` (the public name stays with the stable
    entry)."""
    symbols = list(obj.symbols)
    old = symbols[body_index]
    symbols[body_index] = dataclasses.replace(old, name=f"{rf.name}$body${len(rf.bodies)}",
                                              binding=Binding.LOCAL)
    return dataclasses.replace(obj, symbols=symbols)


# -- ABI ----------------------------------------------------------------------------

def _signature(image: JitImage, obj: ObjectFile, name: str, section_address):
    from ..loader.dwarf import DebugInfo
    from .abi import signature_of
    debug = DebugInfo.from_object(obj, section_address)
    if not debug.available:
        return None
    return signature_of(debug, name, image.target)


def live_signature(image: JitImage, rf: ReloadableFunction):
    """The DWARF signature of the active body (cached per body; a reload
    stores its replacement's)."""
    body = rf.active
    cache = _signature_cache(image)
    key = (rf.identity, body.generation)
    if key not in cache:
        oi = next(i for i in range(len(image.inputs) - 1, -1, -1)
                  if image.inputs[i].path == body.input
                  and image.input_generation[i] == body.generation)
        cache[key] = _signature(image, image.inputs[oi], rf.name,
                                lambda si: image.section_addrs.get((oi, si)))
    return cache[key]


def _signature_cache(image: JitImage) -> dict:
    return image.__dict__.setdefault("_abi_signatures", {})


def check_abi(image: JitImage, rf: ReloadableFunction, obj: ObjectFile, unchecked: bool):
    """Refuse a replacement whose signature differs from the live one's (or
    is unknown, unless ``unchecked``); returns the replacement's signature."""
    new = _signature(image, obj, rf.name, lambda si: 0)
    old = live_signature(image, rf)
    for sig, whose in ((old, "live body"), (new, f"replacement {obj.path}")):
        if sig is None or unchecked or sig.reloadable:
            continue
        # DWARF cannot vouch for this definition's ABI (over MAX_ABI_ARGS,
        # DW_CC_nocall, a static clang may have rewritten, ...)
        reason = "abi-over-limit" if sig.over_limit else "abi-unknown"
        raise ReloadError(reason, f"{rf.identity}: the {whose}'s signature {sig.render()} cannot "
                          f"be trusted: {'; '.join(sig.problems)} (reload with unchecked=True to "
                          "take the risk)")
    if old is None or new is None:
        if unchecked:
            return new
        missing = " and ".join(w for s, w in ((old, "the live body"),
                                              (new, f"the replacement {obj.path}")) if s is None)
        raise ReloadError("abi-unknown", f"{rf.identity}: no DWARF signature for {missing} "
                          "(compile with -g), and the reload was not marked unchecked")
    if old != new:
        diffs = "; ".join(old.differences(new))
        raise ReloadError("abi-mismatch", f"{rf.identity}: signatures differ"
                          + (f" ({diffs})" if diffs else "") + f"\n  live:        {old.render()}"
                          f"\n  replacement: {new.render()}")
    return new


# -- the reload -------------------------------------------------------------------------

def _branch_specs(arch) -> dict:
    """Relocation kind name -> spec, for the branch kinds of ``arch`` (ELF
    and Mach-O): the call sites direct-call patching may re-aim."""
    import importlib
    out = {spec.name: spec for spec in arch.elf_relocs.values() if spec.branch}
    module = importlib.import_module(f"kitemu.targets.{arch.name}")
    for spec in getattr(module, "MACHO_RELOCS", {}).values():
        if spec.branch:
            out[spec.name] = spec
    return out


def direct_call_sites(image: JitImage, rf: ReloadableFunction) -> list:
    """The branch sites (calls and tail jumps) whose bytes now aim at the
    function's entry or one of its bodies: the last record of each place
    (the patch-site index), excluding islands and stubs."""
    specs = _branch_specs(image.arch)
    aims = {rf.entry} | {b.addr for b in rf.bodies}
    latest = {}
    for r in image.records:
        if r.kind in specs and r.target is not None and r.via in ("", "direct-patch"):
            latest[r.place] = r
    out = []
    for place, r in latest.items():
        if image.index.wrote(place) is not r or (r.target - r.addend) not in aims:
            continue
        if image.arch.name == "x64":
            from ..targets.x64 import is_branch_site
            if not is_branch_site(image.mem.read(place - 1, 1), 1):
                continue            # a PC-relative address (lea), not a call
        out.append((r, specs[r.kind].fixup))
    return out


def reload_function(proc, name: str, obj: ObjectFile, unchecked: bool = False,
                    patch_call_sites: bool = False) -> int:
    """Replace the body of reloadable ``name`` with ``obj``'s definition;
    returns the new generation (see the module docstring).
    ``patch_call_sites`` (the fast mode of §1.8): also re-aim every direct
    call site of the function at the new body, in the same transaction, so
    calls skip the entry; pointers and the slot stay as they are, so the
    results are those of the slot baseline."""
    image: JitImage = proc.image
    if image is None:
        raise ReloadError("not-reloadable", "nothing is linked")
    rf = find_reloadable(image, name)
    body_index = validate_replacement(image, rf, obj)
    signature = check_abi(image, rf, obj, unchecked)
    linked = prepare(obj, rf, body_index)
    try:
        # fast mode re-aims the call sites at the new body; the slot baseline
        # re-aims sites an earlier fast reload aimed at a body back at the entry
        sites = direct_call_sites(image, rf) \
            if patch_call_sites or rf.direct_patched else []
        image.append([linked], run_resolver=proc._run_resolver,
                     reload=(rf, 0, body_index, sites, patch_call_sites))
    except ExecMemError as e:
        raise ReloadError("capacity", str(e)) from None
    except RelocationError as e:
        raise ReloadError("relocation", str(e)) from None
    except LinkError as e:
        raise ReloadError("link", str(e)) from None
    _signature_cache(image)[(rf.identity, image.generation)] = signature
    rf.direct_patched = patch_call_sites
    return image.generation


# -- lifetime ------------------------------------------------------------------------------

def stopped_frame_words(proc) -> tuple[list[int], str]:
    """What a stopped call may still return into: its PC, its link register
    (aarch64 x30, rv64 ra) and every 8-byte word between its stack pointer
    and the stack top. Empty when no call is stopped."""
    if not getattr(proc, "stopped", False):
        return [], "no call is stopped"
    cc = proc.target.callconv
    m = proc.machine
    words = [m.reg(cc.pc)]
    if cc.ra is not None:
        words.append(m.reg(cc.ra))
    sp = m.reg(cc.sp) & ~7
    top = proc.stack_top_of_call() if hasattr(proc, "stack_top_of_call") else None
    from ..runtime import STACK_TOP
    top = top or STACK_TOP
    if sp < top:
        raw = m.read(sp, top - sp)
        words += [int.from_bytes(raw[i:i + 8], "little") for i in range(0, len(raw) - 7, 8)]
    return words, "stopped call"


def can_reclaim(proc, name: str, generation: int) -> bool:
    """May the body of ``name`` from ``generation`` be reclaimed? False for
    the active body and while a stopped frame's PC, return address or any
    stack word points into it."""
    rf = find_reloadable(proc.image, name)
    body = rf.body_of(generation)
    if body is None:
        raise ReloadError("not-reloadable", f"{name!r} has no body of generation {generation} "
                          f"(bodies: {', '.join(str(b.generation) for b in rf.bodies)})")
    if body is rf.active:
        return False
    words, _ = stopped_frame_words(proc)
    return not any(w in body for w in words)


def retire(proc, name: str, generation: int) -> None:
    """Declare a replaced body retired: no new frame will enter it (the
    caller's promise; v1 keeps its pages until the session is freed)."""
    rf = find_reloadable(proc.image, name)
    body = rf.body_of(generation)
    if body is None or body is rf.active:
        raise ReloadError("not-reloadable", f"{name!r}: generation {generation} is not a "
                          "replaced body")
    body.state = "retired"


def body_state(proc, name: str, generation: int) -> str:
    """active | replaced | retired | reclaimable (retired and no frame in it)."""
    rf = find_reloadable(proc.image, name)
    body = rf.body_of(generation)
    if body is None:
        raise ReloadError("not-reloadable", f"{name!r} has no body of generation {generation}")
    if body.state == "retired" and can_reclaim(proc, name, generation):
        return "reclaimable"
    return body.state
