"""The JIT link: resolve, lay out, build GOT and stubs, apply fixups, publish.

The baseline of the roadmap: reserve one contiguous region, copy sections into
permission segments, apply relocations against the runtime addresses, and flip
to W^X final permissions. Every link is an *append* to a
:class:`~kitemu.link.image.JitImage`: the first one to an empty image, later
ones to the live image, without moving anything already placed.

Layout of one append (three segments)::

    code    [.text of every input ...][far-call stubs]                    RX
    rodata  [.rodata, .eh_frame ...][GOT entries][stub cells]             R
    data    [.data ...][.init_array][.fini_array][.bss ...][COMMON]      RW

Each segment goes into the tail of the image's open chunk of its kind (code,
rodata, data: :class:`~kitemu.link.image.Arena`) when it fits there, else
into a newly committed chunk; the first link of an image commits one chunk
per segment, exactly its size, so its layout is that of a one-shot link.

Names nobody defines yet can be *deferred* (``defer=``): a branch to one
goes through a pending stub whose cell points at a guard address that
faults naming the symbol; data references, GOT entries and PC-relative
address computations are *staged*: encoded against the guard now, and
re-applied (a new relocation record, the current generation) by the append
that defines the name.

Stubs (``Arch.indirect_jump``) jump through a *stub cell* holding the real
destination. Host functions and IFUNCs get a stub each and their canonical
address is that stub, so every reference - direct call, function pointer in
data, GOT entry - sees one address that is always within reach of the image
(lld's "canonical PLT" idea). A branch to an in-image symbol that turns out to
be out of reach gets a stub too; layout is then redone with the extra stubs.

Transactions. All fixups (and staged re-applications) are computed into
host-side ``bytearray`` copies first; memory is written only when every one
of them succeeded. What can still fail after that (an IFUNC resolver
faulting) rolls the written ranges back to their old bytes. The image's
symbols, GOT, stubs, pending table, records and generation change only at
publish, the last step. Newly committed chunks stay as dead space that
nothing points into (the arena reuses them).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ExecMemError, FixupRangeError, KitemuError, LinkError, RelocationError
from ..execmem import RO
from ..loader.model import ObjectFile, Section, SectionKind
from ..targets import Target as TargetDesc
from ..targets.base import BitFieldDataFixup, Formula, RelocSpec, WrappingDataFixup
from .records import RelocRecord, StageLog
from .symbols import (AbsTarget, CommonTarget, HostTarget, IfuncTarget, ImageTarget, LinkerTarget,
                      PendingTarget, SectionTarget, SymbolTable, Target)

SEGMENT_OF = {
    SectionKind.TEXT: "code",
    SectionKind.RODATA: "rodata",
    SectionKind.DATA: "data",
    SectionKind.PREINIT_ARRAY: "data",
    SectionKind.INIT_ARRAY: "data",
    SectionKind.FINI_ARRAY: "data",
    SectionKind.BSS: "data",
}
# order of section kinds inside the data segment: contents first, bss last
_DATA_ORDER = {SectionKind.DATA: 0, SectionKind.PREINIT_ARRAY: 1, SectionKind.INIT_ARRAY: 2,
               SectionKind.FINI_ARRAY: 3, SectionKind.BSS: 4}
_GOT_FORMULAS = (Formula.GOT_PCREL, Formula.GOT_ABS, Formula.GOT_PAGE_PCREL)
_MAX_LAYOUT_PASSES = 4
#: sections whose references to a function mean its code, not its identity:
#: a reloadable function's unwind info describes its body, not its entry
_UNWIND_SECTIONS = (".eh_frame", "__TEXT,__eh_frame", "__LD,__compact_unwind")


def _array_priority(sec: Section) -> int:
    """``.init_array.N`` / ``.fini_array.N`` sort by N; the unnumbered
    section (default priority) comes after every numbered one, as in lld
    and GNU ld. Other sections keep input order (0)."""
    if sec.kind not in (SectionKind.INIT_ARRAY, SectionKind.FINI_ARRAY, SectionKind.PREINIT_ARRAY):
        return 0
    suffix = sec.name.rsplit(".", 1)[-1]
    return int(suffix) if suffix.isdigit() else 65536


def _in_place(rel) -> bool:
    """RISC-V ADD/SUB/SET: read-modify-write data words that compose at one
    place (a label difference is an ADD and a SUB on the same word)."""
    return isinstance(rel.spec.fixup, (WrappingDataFixup, BitFieldDataFixup))


def check_fields(obj: ObjectFile, sec: Section) -> None:
    """Every relocation patches bytes inside its section, and no two patch
    overlapping bytes, except in-place pairs of one size at one place
    (RISC-V ADD/SUB/SET; NONE, RELAX and ALIGN patch nothing). The readers
    check the bounds of what they read; objects built in memory reach the
    linker unchecked, and a fixup past the end would write into the next
    section (or grow the segment buffer)."""
    spans = []
    for rel in sec.relocations:
        size = rel.spec.fixup.size if rel.spec.fixup is not None else 0
        if not size:
            continue
        if rel.offset < 0 or rel.offset + size > sec.size:
            raise RelocationError(f"{obj.describe_reloc(sec, rel)}: patches bytes "
                                  f"{rel.offset:#x}..{rel.offset + size:#x} outside the section "
                                  f"({sec.size:#x} bytes)")
        spans.append((rel.offset, size, rel))
    spans.sort(key=lambda s: s[0])
    far_end, holder = -1, None
    for off, size, rel in spans:
        if off < far_end and not (_in_place(holder) and _in_place(rel) and off == holder.offset
                                  and size == holder.spec.fixup.size):
            raise RelocationError(
                f"{obj.describe_reloc(sec, holder)}: its bytes {holder.offset:#x}.."
                f"{holder.offset + holder.spec.fixup.size:#x} overlap those of relocation "
                f"#{rel.index} {rel.name} at offset {rel.offset:#x} ({off:#x}..{off + size:#x}); "
                "only RISC-V ADD/SUB/SET of one size may share a place")
        if off + size > far_end:
            far_end, holder = off + size, rel


def align_up(n: int, a: int) -> int:
    return (n + a - 1) & -a


@dataclass
class Segment:
    name: str
    perm_final: str
    addr: int = 0
    size: int = 0
    buf: bytearray = field(default_factory=bytearray)
    generation: int = -1     # of the append that placed it


@dataclass(slots=True)
class PlacedSymbol:
    name: str
    addr: int
    size: int
    kind: str          # func | object | ifunc | notype | abs | common | stub
    obj: str           # owning input path, or "<host>" / "<linker>"
    local: bool
    generation: int = 0
    section: str = ""  # the input section (or "" for absolute/linker symbols)


@dataclass
class LinkedImage:
    """What one link (append) produced: its addresses and the metadata runs
    and reports need. ``section_addrs``, ``got``, ``stubs`` are keyed by
    image-wide object indices (``image.inputs``)."""

    target: TargetDesc
    segments: list[Segment]
    globals: dict[str, int]                 # public name -> canonical address
    symbols: list[PlacedSymbol]             # everything, for addr_to_sym
    section_addrs: dict[tuple[int, int], int]
    got: dict[Target, int]                  # target -> GOT entry address
    stubs: dict[Target, int]                # target -> stub address
    stub_cells: dict[Target, int]           # target -> cell address
    ifuncs: list[tuple[str, int, int]]      # (name, resolver address, stub cell address)
    preinit_array: list[int]
    init_array: list[int]
    fini_array: list[int]
    relocations_applied: int
    stages: StageLog
    records: list[RelocRecord]
    generation: int = 0
    #: image-wide indices of this append's inputs
    inputs: range = range(0)
    #: names this append staged (defined by nobody yet) and names it resolved
    deferred: list[str] = field(default_factory=list)
    resolved: list[str] = field(default_factory=list)


def formula_value(formula: Formula, S: int, A: int, P: int) -> int:
    """The psABI formulas a staged relocation can be re-applied with, once
    ``S`` is known (GOT forms re-apply through their GOT entry instead)."""
    if formula is Formula.ABS:
        return S + A
    if formula in (Formula.PCREL, Formula.PCREL_LO):
        return S + A - P
    if formula is Formula.PAGE_PCREL:
        return ((S + A) & ~0xFFF) - (P & ~0xFFF)
    raise AssertionError(formula)


# formulas a relocation against a not-yet-defined name can be staged with
_STAGEABLE = (Formula.ABS, Formula.PCREL, Formula.PAGE_PCREL)


def append(image, objects: list[ObjectFile], run_resolver=None,
           defer: bool | frozenset[str] = False, reload=None) -> LinkedImage:
    """Link ``objects`` into ``image`` (a :class:`~kitemu.link.image.JitImage`)
    as one transaction; see the module docstring. ``run_resolver(addr,
    name) -> int`` runs an IFUNC resolver in the machine (needed only if
    there are IFUNCs). ``defer``: True, or the names, of undefined symbols
    that may stay pending instead of failing the link."""
    target = image.target
    for obj in objects:
        if obj.target != target.name:
            raise LinkError(f"{obj.path}: object is for {obj.target}, not {target.name}")
    if not objects:
        raise LinkError("nothing to link: no input objects")
    image.mem._alive()
    stages = StageLog()
    mem = image.mem
    stages.mark("reserve", f"region {mem.base:#x}+{mem.capacity:#x}, "
                f"{mem.strategy.value}, page {mem.page_size:#x}")
    first = len(image.inputs)
    image.inputs.extend(objects)        # tentatively: truncated again on failure
    try:
        indices = range(first, len(image.inputs))
        symtab = SymbolTable(image.inputs, set(image.host_addrs), image.linker_defined,
                             indices=indices, image=image, defer=defer)
        plan = _Plan(image, indices, symtab)
        plan.reload = reload
        plan.collect()
        symtab.raise_missing()
        stages.mark("resolve", f"{len(objects)} inputs, {len(symtab.globals)} globals"
                    + (f", {len(symtab.deferred)} deferred" if symtab.deferred else ""))
        far_targets: set = set()
        for passes in range(1, _MAX_LAYOUT_PASSES + 1):
            plan.layout(far_targets)
            newly_far = plan.apply()
            if not newly_far:
                break
            far_targets |= newly_far
        else:
            raise LinkError("layout did not converge: far-call stubs keep moving targets out of reach")
        plan.restage()
        stages.mark("layout+fixups", ", ".join(f"{s.name} {s.addr:#x}+{s.size:#x}"
                                               for s in plan.segments.values() if s.size)
                    + f" ({passes} pass{'es' if passes > 1 else ''})", plan.applied)
        stages.group("stubs/GOT", len(plan.new_got) + len(plan.new_stubs) + len(plan.island_addr))
        stages.stages[-1].detail = (f"{len(plan.new_got)} GOT entries, {len(plan.new_stubs)} "
                                    f"canonical stubs, {len(plan.island_addr)} island stubs")
        for kind, n in sorted(plan.kind_counts.items()):
            stages.group(f"fixups {kind}", n)
        return plan.commit(run_resolver, stages)
    except BaseException:
        del image.inputs[first:]
        raise


class _Plan:
    """The state of one append between resolution and publish."""

    def __init__(self, image, indices: range, symtab: SymbolTable):
        self.image = image
        self.arch = image.target.arch
        self.mem = image.mem
        self.objects = image.inputs
        self.indices = indices
        self.symtab = symtab
        self.page = image.mem.page_size
        self.generation = image.generation + 1

    # -- pass 0: which sections, which GOT entries, which stubs ------------
    def collect(self) -> None:
        image = self.image
        self.placed: list[tuple[int, Section]] = []
        for oi in self.indices:
            obj = self.objects[oi]
            for sec in obj.sections.values():
                if sec.kind.loaded:
                    if sec.kind is SectionKind.BSS and sec.relocations:
                        raise LinkError(f"{obj.path}: section {sec.name}: relocations against "
                                        "a section with no contents (NOBITS)")
                    check_fields(obj, sec)
                    self.placed.append((oi, sec))
        # every defined global IFUNC gets its canonical stub, referenced or
        # not: its public address is the stub, and its resolver must run
        self.stub_targets: dict[Target | None, None] = {
            d.target: None for d in self.symtab.globals.values()
            if isinstance(d.target, IfuncTarget)}
        # resolve each relocation's target once
        self.reloc_targets: dict[tuple[int, int, int], Target | None] = {}
        self.subtrahends: dict[tuple[int, int, int], Target | None] = {}
        self.got_targets: dict[Target | None, None] = {}
        for oi, sec in self.placed:
            obj = self.objects[oi]
            for rel in sec.relocations:
                spec = rel.spec
                if spec.formula is Formula.NONE or spec.formula is Formula.PCREL_LO:
                    continue
                t = self.symtab.resolve(oi, rel.symbol)
                self.reloc_targets[(oi, sec.index, rel.index)] = t
                if spec.formula is Formula.DELTA:
                    if rel.subtrahend is None:
                        raise LinkError(f"{obj.describe_reloc(sec, rel)}: "
                                        "a difference relocation without its subtrahend symbol")
                    sub = self.symtab.resolve(oi, rel.subtrahend)
                    self.subtrahends[(oi, sec.index, rel.index)] = sub
                    if isinstance(sub, PendingTarget):
                        t = sub
                if isinstance(t, PendingTarget):
                    self._check_stageable(obj, sec, rel)
                if spec.formula in _GOT_FORMULAS:
                    self.got_targets[t] = None
                if isinstance(t, HostTarget) and t.name not in image.host_stubs:
                    self.stub_targets[t] = None   # canonical address is the stub
                elif isinstance(t, IfuncTarget):
                    self.stub_targets[t] = None
                elif isinstance(t, PendingTarget) and self._pending_call(sec, rel) \
                        and image.pending_stub(t.name) is None:
                    self.stub_targets[t] = None   # calls wait in a pending stub
        self._collect_reloadable()
        # GOT entries the image already has are shared
        self.old_got = {t: a for t in self.got_targets
                        if (a := image.got_entry(t)) is not None}
        self.new_got = [t for t in self.got_targets if t not in self.old_got]
        self.new_stubs = list(self.stub_targets)
        # the guard addresses of pending names exist before layout needs them
        if self.symtab.deferred:
            image.ensure_guard()

    def _collect_reloadable(self) -> None:
        """Functions of this append that get a stable entry and a slot
        (hot reload's indirection): in ``exported-funcs`` mode every global
        function, in any mode the names and ``tu::name`` identities marked
        reloadable. (IFUNCs keep their canonical stub and cannot be reloaded.)"""
        image = self.image
        self.reloadable: list[tuple[str, str, SectionTarget, int, int, bool]] = []
        exported = image.indirection.value == "exported-funcs"
        marked = image.marked
        if not exported and not marked:
            return
        seen = set()
        for name, d in self.symtab.globals.items():
            t = d.target
            if not isinstance(t, SectionTarget):
                continue
            obj = self.objects[d.obj]
            sym = obj.symbols[d.sym_index]
            if sym.type.value != "func" or obj.sections[t.section].kind is not SectionKind.TEXT:
                continue
            if exported or name in marked:
                self.reloadable.append((name, name, t, sym.size, d.obj, True))
                seen.add(name)
        local_marks = {m for m in marked if "::" in m}
        if local_marks:
            for oi in self.indices:
                obj = self.objects[oi]
                tu = image.tu_of(obj)
                for sym in obj.symbols:
                    if sym.binding.value != "local" or sym.type.value != "func" or not sym.defined:
                        continue
                    prefix = image.target.symbol("")
                    c_name = sym.name[len(prefix):] if sym.name.startswith(prefix) else sym.name
                    identity = f"{tu}::{c_name}"
                    if identity not in local_marks:
                        continue
                    if identity in seen or identity in image.reloadables:
                        raise LinkError(f"{obj.path}: reloadable identity {identity!r} is defined "
                                        "twice (two translation units with one name?)")
                    seen.add(identity)
                    self._check_own_section(obj, sym, identity)
                    self.reloadable.append((identity, sym.name,
                                            SectionTarget(oi, sym.section, sym.value), sym.size,
                                            oi, False))

    @staticmethod
    def _check_own_section(obj: ObjectFile, sym, identity: str) -> None:
        """An ELF assembler resolves a call to a local function in the same
        section itself: no relocation is left to send through the stable
        entry. (Mach-O keeps them: subsections via symbols.)"""
        if obj.format != "elf":
            return
        others = [s.name for s in obj.symbols if s.section == sym.section and s is not sym
                  and s.defined and s.type.value == "func"]
        if others:
            raise LinkError(
                f"{obj.path}: reloadable {identity!r} shares section "
                f"{obj.sections[sym.section].name} with {', '.join(sorted(others)[:4])}: calls "
                "the assembler resolved there would bypass its stable entry; compile with "
                "-ffunction-sections")

    def _redirect(self, addr: int) -> int:
        """A reloadable function's first byte -> its stable entry."""
        return self.body_entry.get(addr, addr) if self.body_entry else addr

    def symbol_value(self, t, A: int, spec: RelocSpec, sec: Section | None = None) -> int:
        """``S`` of a relocation: the target's canonical address, or, when
        the reference names a reloadable function's first byte, its stable
        entry. What the reference names is ``S + A`` (plus the branch bias
        for an x86-64 PC-relative field: a call to ``.text + 0x40`` carries
        ``A = 0x40 - 4``), which also catches references through section
        symbols, as assemblers write them for static functions. Unwind
        tables keep the body."""
        S = self.address_of(t)
        if not self.body_entry or (sec is not None and sec.name in _UNWIND_SECTIONS):
            return S
        bias = self.arch.branch_bias if spec.formula is Formula.PCREL and spec.fixup.size == 4 else 0
        R = S + A + bias
        entry = self.body_entry.get(R)
        return S if entry is None else S + (entry - R)

    def _pending_call(self, sec: Section, rel) -> bool:
        """Is this reference to a pending name a call or jump, which waits in
        a pending stub (rather than a staged address computation)?"""
        return (rel.spec.branch and sec.kind is SectionKind.TEXT
                and self.arch.can_stub(rel.spec, sec.data, rel.offset))

    def _check_stageable(self, obj, sec, rel) -> None:
        spec = rel.spec
        if spec.formula in _STAGEABLE or spec.formula in _GOT_FORMULAS:
            return
        raise LinkError(f"{obj.describe_reloc(sec, rel)}: cannot be deferred: a {spec.formula.name} "
                        "relocation against a symbol no input defines yet (only addresses, "
                        "PC-relative and GOT references can wait for a later append)")

    # -- pass 1: addresses ----------------------------------------------
    def layout(self, islands: set) -> None:
        """Assign addresses. ``islands`` holds ``((obj, section), target,
        extra)`` triples: a branch in that input section cannot reach
        ``target + extra`` (``extra``: the branch's addend plus the arch's
        branch bias; the target's canonical stub for a host function), so a
        range-extension stub to it is placed right after the section,
        within reach of its branches."""
        stub_size = self.arch.indirect_jump_size
        island_of: dict[tuple[int, int], list] = {}
        for key, t, extra in sorted(islands, key=repr):
            island_of.setdefault(key, []).append((t, extra))
        self.segments = {n: Segment(n, p) for n, p in (("code", "rx"), ("rodata", "r"), ("data", "rw"))}
        offsets: dict[tuple[int, int], tuple[str, int]] = {}
        island_offsets: dict[tuple, int] = {}
        seg_size = {"code": 0, "rodata": 0, "data": 0}
        seg_align = {"code": 16, "rodata": 8, "data": 8}
        ordered = sorted(self.placed, key=lambda p: (_DATA_ORDER.get(p[1].kind, 0),
                                                     _array_priority(p[1])))
        for oi, sec in ordered:
            seg = SEGMENT_OF[sec.kind]
            off = align_up(seg_size[seg], sec.align)
            seg_align[seg] = max(seg_align[seg], sec.align)
            offsets[(oi, sec.index)] = (seg, off)
            seg_size[seg] = off + sec.size
            if (oi, sec.index) in island_of:
                off = align_up(seg_size[seg], 16)
                for t, extra in island_of[(oi, sec.index)]:
                    island_offsets[((oi, sec.index), t, extra)] = off
                    off += stub_size
                seg_size[seg] = off
        # COMMON symbols at the end of data
        common_off = {}
        for name, c in self.symtab.commons.items():
            off = align_up(seg_size["data"], c.align)
            seg_align["data"] = max(seg_align["data"], c.align)
            common_off[name] = off
            seg_size["data"] = off + c.size
        # canonical stubs and stable entries after code, GOT + stub cells
        # after rodata, reload slots after data
        stub_off = align_up(seg_size["code"], 16)
        if self.new_stubs:
            seg_size["code"] = stub_off + stub_size * len(self.new_stubs)
        entry_off = align_up(seg_size["code"], 16)
        if self.reloadable:
            seg_size["code"] = entry_off + stub_size * len(self.reloadable)
        slot_off = align_up(seg_size["data"], 8)
        if self.reloadable:
            seg_size["data"] = slot_off + 8 * len(self.reloadable)
        got_off = align_up(seg_size["rodata"], 8)
        cell_count = len(self.new_got) + len(self.new_stubs) + len(island_offsets)
        if cell_count:
            seg_size["rodata"] = got_off + 8 * cell_count

        # where each segment goes: a tail of the image's open chunk or a new one
        self.placement = self.image.arena.place(seg_size, seg_align)
        for name in ("code", "rodata", "data"):
            seg = self.segments[name]
            seg.size = seg_size[name]
            # an empty segment still gets an address: symbols in its empty
            # sections must point into the image, not at address 0
            seg.addr = self.placement[name].addr
        self.first_addr = self.image.first_addr
        if self.first_addr is None:
            self.first_addr = min(s.addr for s in self.segments.values())
        seg_addr = {n: s.addr for n, s in self.segments.items()}
        self.section_addr = {k: seg_addr[s] + o for k, (s, o) in offsets.items()}
        self.common_addr = {n: seg_addr["data"] + o for n, o in common_off.items()}
        code, ro = seg_addr["code"], seg_addr["rodata"]
        self.stub_addr = {t: code + stub_off + i * stub_size for i, t in enumerate(self.new_stubs)}
        self.got_addr = dict(self.old_got)
        self.got_addr.update({t: ro + got_off + 8 * i for i, t in enumerate(self.new_got)})
        cells = ro + got_off + 8 * len(self.new_got)
        self.cell_addr = {t: cells + 8 * i for i, t in enumerate(self.new_stubs)}
        cells += 8 * len(self.new_stubs)
        self.island_addr = {k: code + o for k, o in island_offsets.items()}
        data = seg_addr["data"]
        #: identity -> (entry, slot, body address)
        self.entries = {}
        for i, (identity, _, t, _, _, _) in enumerate(self.reloadable):
            self.entries[identity] = (code + entry_off + i * stub_size, data + slot_off + 8 * i,
                                      self.address_of(t))
        self.body_entry = {body: entry for entry, _, body in self.entries.values()}
        if self.reload is not None:
            # the replacement body's first byte, too, is reached through the entry
            rf, local, sym_index = self.reload[:3]
            oi = self.indices[local]
            sym = self.objects[oi].symbols[sym_index]
            self.body_entry[self.address_of(SectionTarget(oi, sym.section, sym.value))] = rf.entry
        self.island_cell = {k: cells + 8 * i for i, k in enumerate(island_offsets)}

    def address_of(self, t: Target | None) -> int:
        """The canonical address ``S`` of a resolved target."""
        if t is None:
            return 0
        if isinstance(t, SectionTarget):
            return self.section_addr[(t.obj, t.section)] + t.offset
        if isinstance(t, (AbsTarget,)):
            return t.value
        if isinstance(t, ImageTarget):
            return t.addr
        if isinstance(t, CommonTarget):
            return self.common_addr[t.name]
        if isinstance(t, HostTarget):
            a = self.stub_addr.get(t)
            return a if a is not None else self.image.host_stubs[t.name]
        if isinstance(t, IfuncTarget):
            return self.stub_addr[t]
        if isinstance(t, PendingTarget):
            return self.image.guard_of(t.name)
        if isinstance(t, LinkerTarget):
            return self.first_addr
        raise AssertionError(t)

    def branch_address_of(self, t: Target | None) -> int:
        """Where a call to ``t`` goes: a pending name's stub, else ``S``."""
        if isinstance(t, PendingTarget):
            a = self.stub_addr.get(t)
            return a if a is not None else self.image.pending_stub(t.name)
        return self.address_of(t)

    def destination_of(self, t: Target) -> int:
        """The value of a canonical stub's cell: the real host function, or
        0 for an IFUNC until its resolver has run, or a pending name's guard.
        (Island stubs jump to ``address_of(t)``: for a host function, via its
        canonical stub.)"""
        if isinstance(t, HostTarget):
            return self.image.host_addrs[t.name]
        if isinstance(t, PendingTarget):
            return self.image.guard_of(t.name)
        return 0

    # -- pass 2: contents + fixups ---------------------------------------
    def apply(self) -> set:
        """Copy sections into segment buffers and apply every fixup.
        Returns targets that need a far-call stub they do not have yet."""
        for seg in self.segments.values():
            seg.buf = bytearray(seg.size)
        code = self.segments["code"]
        if code.size:
            # unused code bytes trap rather than slide into the next function
            trap = self.arch.trap
            code.buf[:] = (trap * (code.size // len(trap) + 1))[:code.size]
        for (oi, sec) in self.placed:
            if sec.data is not None:
                seg, off = self._seg_off(oi, sec)
                seg.buf[off:off + sec.size] = sec.data
        ptr = self.arch.pointer_size
        for t in self.new_got:
            self._write_word(self.got_addr[t], self._redirect(self.address_of(t)), ptr)
        for entry, slot, body in self.entries.values():
            self._write_bytes(entry, self.arch.indirect_jump(entry, slot))
            self._write_word(slot, body, ptr)
        for t, a in self.stub_addr.items():
            self._write_bytes(a, self.arch.indirect_jump(a, self.cell_addr[t]))
            self._write_word(self.cell_addr[t], self.destination_of(t), ptr)
        for (key, t, extra), a in self.island_addr.items():
            cell = self.island_cell[(key, t, extra)]
            self._write_bytes(a, self.arch.indirect_jump(a, cell))
            self._write_word(cell, self._redirect(self.branch_address_of(t) + extra), ptr)

        far: set = set()
        error: RelocationError | None = None
        applied = 0
        records: list[RelocRecord] = []
        kind_counts: dict[str, int] = {}
        #: relocations against pending names: re-applied when they are defined
        self.staged: list = []
        for oi, sec in self.placed:
            if not sec.relocations:
                continue
            obj = self.objects[oi]
            seg, base_off = self._seg_off(oi, sec)
            sec_addr = self.section_addr[(oi, sec.index)]
            hi_by_offset = None
            for rel in sec.relocations:
                spec = rel.spec
                if spec.formula is Formula.NONE:
                    continue
                P = sec_addr + rel.offset
                pending = None
                if spec.formula is Formula.PCREL_LO:
                    if hi_by_offset is None:
                        hi_by_offset = {r.offset: r for r in sec.relocations if r.spec.hi_part}
                    value, hi, t = self._pcrel_lo_value(obj, oi, sec, rel, hi_by_offset, sec_addr)
                    via = "got" if hi.spec.formula in _GOT_FORMULAS else ""
                    if isinstance(t, PendingTarget) and not via:
                        pending = (t.name, Formula.PCREL_LO, hi.addend, sec_addr + hi.offset)
                else:
                    t = self.reloc_targets[(oi, sec.index, rel.index)]
                    via = "got" if spec.formula in _GOT_FORMULAS else ""
                    if spec.formula is Formula.DELTA:
                        T = self.address_of(self.subtrahends[(oi, sec.index, rel.index)])
                        value = self.address_of(t) + rel.addend - T
                    elif isinstance(t, PendingTarget) and self._pending_call(sec, rel):
                        value = self.branch_address_of(t) + rel.addend - P
                        via = "pending stub"
                    else:
                        value = self._value(spec, t, rel.addend, P, seg, base_off + rel.offset,
                                            sec)
                        if isinstance(t, PendingTarget) and not via:
                            pending = (t.name, spec.formula, rel.addend, P)
                    if spec.branch and sec.kind is SectionKind.TEXT and \
                            not spec.fixup.in_range(value) and \
                            self.arch.can_stub(spec, seg.buf, base_off + rel.offset):
                        # the stub jumps to where the branch aims, S + A + bias;
                        # the branch itself aims at the stub
                        bias = self.arch.branch_bias
                        key = ((oi, sec.index), t, rel.addend + bias)
                        island = self.island_addr.get(key)
                        if island is None:
                            far.add(key)
                            continue
                        value = island - bias - P
                        via = "island"
                try:
                    spec.fixup.encode(seg.buf, base_off + rel.offset, value)
                except FixupRangeError as e:
                    # final only if this layout is: islands added for this pass's far
                    # branches move code, and with it this value
                    if error is None:
                        what = (f" (staged against {pending[0]!r}, not defined yet: its guard "
                                f"address {self.address_of(t):#x} stands in)") if pending else ""
                        error = RelocationError(f"{obj.describe_reloc(sec, rel)}: cannot be "
                                                f"applied: {e.detail} (value {value:#x}, place "
                                                f"{P:#x}){what}")
                    continue
                applied += 1
                kind_counts[spec.fixup.name] = kind_counts.get(spec.fixup.name, 0) + 1
                rec = self._record(self.image.next_apply_id + len(records), obj, oi, sec, rel,
                                   value, P,
                                   via or ("pending" if pending else ""), t)
                records.append(rec)
                if pending is not None:
                    name, formula, A, formula_P = pending
                    self.staged.append(self.image.staged_site(
                        name, obj.path, sec.name, rel.offset, rel.name, spec.fixup, formula,
                        A, formula_P, P, self.generation))
        if error is not None and not far:
            raise error
        self.applied = applied
        self.records = records
        self.kind_counts = kind_counts
        return far

    def restage(self) -> None:
        """Re-apply, into copies, every earlier relocation staged against a
        name this append defines: pending stub cells, GOT entries and staged
        sites get the definition's address. Range errors fail the append
        (naming the staged relocation), before anything is written."""
        image = self.image
        self.restaged: list[tuple[int, bytes]] = []
        self.restaged_records: list[RelocRecord] = []
        self.resolved: list[str] = []
        ptr = self.arch.pointer_size
        new_names = set(self.symtab.globals) | set(self.symtab.commons)
        for name in sorted(new_names & set(image.pending)):
            p = image.pending[name]
            d = self.symtab.globals.get(name)
            S = self._redirect(self.address_of(d.target if d is not None else CommonTarget(name)))
            self.resolved.append(name)
            for cell in p.cells:
                self.restaged.append((cell, S.to_bytes(ptr, "little")))
            if p.got is not None:
                self.restaged.append((p.got, S.to_bytes(ptr, "little")))
            for site in p.sites:
                buf = bytearray(image.mem.read(site.place, site.fixup.size))
                value = formula_value(site.formula, S, site.addend, site.formula_place)
                try:
                    site.fixup.encode(buf, 0, value)
                except FixupRangeError as e:
                    raise RelocationError(
                        f"{site.input}: section {site.section}: relocation {site.kind} at offset "
                        f"{site.offset:#x} against {name!r} (staged in generation "
                        f"{site.generation}) cannot be applied now that "
                        f"{self._definer(name)} defines it at {S:#x}: {e.detail} "
                        f"(value {value:#x}, place {site.place:#x})") from None
                self.restaged.append((site.place, bytes(buf)))
                self.restaged_records.append(RelocRecord(
                    image.next_apply_id + len(self.records) + len(self.restaged_records),
                    site.input, site.section,
                    site.offset, site.kind, site.fixup.name, name, site.addend, value,
                    site.place, site.fixup.size, S + site.addend, "staged", self.generation))
        if self.reload is not None:
            # hot reload: the new body goes live with one aligned
            # pointer-width store into the function's slot, the last write
            rf, local, sym_index, call_sites, direct = self.reload
            oi = self.indices[local]
            sym = self.objects[oi].symbols[sym_index]
            body = self.address_of(SectionTarget(oi, sym.section, sym.value))
            self.reload_body = (rf, body, sym.size)
            for r, fixup in call_sites:
                self._repatch_call_site(r, fixup, body if direct else rf.entry, rf.entry)
            self.restaged.append((rf.slot, body.to_bytes(ptr, "little")))
            self.restaged_records.append(RelocRecord(
                image.next_apply_id + len(self.records) + len(self.restaged_records),
                "<reload>", "<reload slots>", 0,
                "SLOT", "slot", rf.identity, 0, body, rf.slot, ptr, body, "reload",
                self.generation))

    def _repatch_call_site(self, r: RelocRecord, fixup, body: int, entry: int) -> None:
        """Direct-call patching: re-aim the branch of record ``r`` at
        ``body`` (value + the change of S), or, out of its reach, back at
        the stable entry."""
        S_old = r.target - r.addend
        buf = bytearray(self.image.mem.read(r.place, fixup.size))
        for S in (body, entry):
            value = r.value + (S - S_old)
            try:
                fixup.encode(buf, 0, value)
            except FixupRangeError:
                continue
            if S == S_old:
                return
            self.restaged.append((r.place, bytes(buf)))
            self.restaged_records.append(RelocRecord(
                self.image.next_apply_id + len(self.records) + len(self.restaged_records),
                r.input, r.section, r.offset, r.kind, r.fixup, r.symbol, r.addend, value,
                r.place, r.size, S + r.addend, "direct-patch", self.generation))
            return
        raise RelocationError(f"{r.input}: section {r.section}: relocation {r.kind} at offset "
                              f"{r.offset:#x}: cannot reach the new body at {body:#x} nor the "
                              f"stable entry at {entry:#x}")

    def _definer(self, name: str) -> str:
        d = self.symtab.globals.get(name)
        if d is not None:
            return self.objects[d.obj].path
        return ", ".join(self.objects[i].path for i in self.symtab.commons[name].objs)

    def _record(self, apply_id, obj, oi, sec, rel, value, P, via, t) -> RelocRecord:
        spec = rel.spec
        if spec.formula is Formula.PCREL_LO:
            sym = obj.symbols[rel.symbol].name or "?"
            target = None
        else:
            sym = self._target_name(t)
            target = None if spec.formula in (Formula.ADD, Formula.SUB, Formula.DELTA) \
                else self.symbol_value(t, rel.addend, spec, sec) + rel.addend
            if isinstance(t, (HostTarget, IfuncTarget)) and not via:
                via = "stub"
        return RelocRecord(apply_id, obj.path, sec.name, rel.offset, spec.name, spec.fixup.name,
                           sym, rel.addend, value, P, spec.fixup.size, target, via,
                           self.generation)

    def _value(self, spec: RelocSpec, t, A: int, P: int, seg: Segment, off: int,
               sec: Section | None = None) -> int:
        f = spec.formula
        if f is Formula.ABS:
            return self.symbol_value(t, A, spec, sec) + A
        if f is Formula.PCREL:
            return self.symbol_value(t, A, spec, sec) + A - P
        if f is Formula.GOT_PCREL:
            return self.got_addr[t] + A - P
        if f is Formula.GOT_ABS:
            return self.got_addr[t] + A
        if f is Formula.PAGE_PCREL:
            return ((self.symbol_value(t, A, spec, sec) + A) & ~0xFFF) - (P & ~0xFFF)
        if f is Formula.GOT_PAGE_PCREL:
            return ((self.got_addr[t] + A) & ~0xFFF) - (P & ~0xFFF)
        if f is Formula.ADD:
            return spec.fixup.decode(seg.buf, off) + self.address_of(t) + A
        if f is Formula.SUB:
            return spec.fixup.decode(seg.buf, off) - (self.address_of(t) + A)
        raise AssertionError(f)

    def _pcrel_lo_value(self, obj, oi, sec, rel, hi_by_offset, sec_addr):
        """RISC-V PCREL_LO12_*: the symbol labels the AUIPC whose HI20 (or
        GOT_HI20) relocation gives the value; the LO part is its low 12 bits.
        Returns (value, the HI relocation, its target)."""
        label = obj.symbols[rel.symbol]
        if label.section != sec.index:
            raise RelocationError(f"{obj.describe_reloc(sec, rel)}: its label {label.name!r} is "
                                  "not in the same section as the instruction")
        hi_off = label.value   # the LO's own addend is ignored, as lld does
        hi = hi_by_offset.get(hi_off)
        if hi is None:
            raise RelocationError(f"{obj.describe_reloc(sec, rel)}: no high-part relocation "
                                  f"(PCREL_HI20/GOT_HI20) at its label, offset {hi_off:#x}")
        t = self.reloc_targets[(oi, sec.index, hi.index)]
        hi_p = sec_addr + hi.offset
        if hi.spec.formula is Formula.GOT_PCREL:
            return self.got_addr[t] + hi.addend - hi_p, hi, t
        return self.symbol_value(t, hi.addend, hi.spec, sec) + hi.addend - hi_p, hi, t

    def _seg_off(self, oi, sec) -> tuple[Segment, int]:
        seg = self.segments[SEGMENT_OF[sec.kind]]
        return seg, self.section_addr[(oi, sec.index)] - seg.addr

    def _locate(self, addr: int) -> tuple[Segment, int]:
        for seg in self.segments.values():
            if seg.size and seg.addr <= addr < seg.addr + seg.size:
                return seg, addr - seg.addr
        raise AssertionError(hex(addr))

    def _write_bytes(self, addr: int, data: bytes) -> None:
        seg, off = self._locate(addr)
        seg.buf[off:off + len(data)] = data

    def _write_word(self, addr: int, value: int, size: int) -> None:
        self._write_bytes(addr, (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little"))

    # -- pass 3: memory, then publish ---------------------------------------
    def commit(self, run_resolver, stages: StageLog) -> LinkedImage:
        image, mem = self.image, self.mem
        ifuncs = [(t.name, self.address_of(t.resolver), self.cell_addr[t])
                  for t in self.new_stubs if isinstance(t, IfuncTarget)]
        if ifuncs and run_resolver is None:
            raise LinkError("IFUNC symbols need a machine to run their resolvers")
        written: list[tuple[int, bytes]] = []       # (addr, old bytes): the undo log
        try:
            chunks = image.arena.commit(self.placement, self.segments, written)
            stages.mark("copy", ", ".join(f"{n} {s.addr:#x}+{s.size:#x}"
                                          for n, s in self.segments.items() if s.size))
            if chunks.get("code") is not None:
                mem.make_executable(chunks["code"])
            stages.mark("finalize code", "r-x")
            if ifuncs:
                stages.mark("ifunc resolvers", ", ".join(n for n, _, _ in ifuncs), len(ifuncs))
                for name, resolver, cell in ifuncs:
                    value = run_resolver(resolver, name)
                    mem.write(cell, value.to_bytes(8, "little"))
            if chunks.get("rodata") is not None:
                mem.protect(chunks["rodata"], RO)
            stages.mark("finalize rodata", "r--")
            if self.restaged:
                written.extend((a, mem.read(a, len(d))) for a, d in self.restaged)
                mem.patch(self.restaged)
                stages.mark("staged relocations", ", ".join(self.resolved),
                            len(self.restaged_records))
        except BaseException as e:
            image.arena.rollback(written)
            if isinstance(e, KitemuError) or not isinstance(e, Exception):
                raise
            raise ExecMemError(f"append failed while writing memory: {e}") from e
        return image.publish(self, stages, ifuncs)

    def read_array(self, kind: SectionKind) -> list[int]:
        """The function pointers of all ``kind`` sections, in address order
        (which layout sorted by priority)."""
        out = []
        for oi, sec in sorted(self.placed, key=lambda p: self.section_addr[(p[0], p[1].index)]):
            if sec.kind is kind:
                seg, off = self._seg_off(oi, sec)
                raw = seg.buf[off:off + sec.size]
                out += [int.from_bytes(raw[i:i + 8], "little") for i in range(0, len(raw) - 7, 8)]
        return out

    def globals_placed(self) -> dict[str, int]:
        out = {}
        for name, d in self.symtab.globals.items():
            out[name] = self._redirect(self.address_of(d.target))
        for identity, public in ((r[0], r[5]) for r in self.reloadable):
            if not public:          # a static's synthetic identity: tu::name
                out[identity] = self.entries[identity][0]
        for name in self.symtab.commons:
            out[name] = self.common_addr[name]
        return out

    def placed_symbols(self) -> list[PlacedSymbol]:
        out = []
        gen = self.generation
        # a reloadable function's own symbol names its body, foo$body$0; the
        # public name (or tu::name identity) goes to its stable entry
        bodies = {(t, name): identity for identity, name, t, _, _, _ in self.reloadable}
        for identity, name, t, size, oi, public in self.reloadable:
            entry, slot, _ = self.entries[identity]
            path = self.objects[oi].path
            out.append(PlacedSymbol(identity, entry, self.arch.indirect_jump_size, "func", path,
                                    False, gen, "<stable entries>"))
            out.append(PlacedSymbol(f"{identity}@slot", slot, 8, "object", "<linker>", True, gen,
                                    "<reload slots>"))
        for oi in self.indices:
            obj = self.objects[oi]
            for sym in obj.symbols:
                if not sym.name or sym.type.value in ("section", "file") or not sym.defined \
                        or sym.name.startswith((".L", "$")):   # asm-local labels, mapping symbols
                    continue
                section = ""
                if sym.place.value == "section":
                    if (oi, sym.section) not in self.section_addr:
                        continue
                    t = SectionTarget(oi, sym.section, sym.value)
                    addr = self.address_of(t)
                    section = obj.sections[sym.section].name
                    kind = sym.type.value
                    if (t, sym.name) in bodies:
                        out.append(PlacedSymbol(f"{sym.name}$body$0", addr, sym.size, kind,
                                                obj.path, True, gen, section))
                        continue
                elif sym.place.value == "abs":
                    addr, kind = sym.value, "abs"
                else:
                    addr = self.common_addr.get(sym.name)
                    if addr is None:       # merged into an earlier append's definition
                        continue
                    kind, section = "common", "COMMON"
                out.append(PlacedSymbol(sym.name, addr, sym.size, kind, obj.path,
                                        sym.binding.value == "local", gen, section))
        for t, a in self.stub_addr.items():
            name = self._target_name(t)
            out.append(PlacedSymbol(f"{name}@{'pending' if isinstance(t, PendingTarget) else 'stub'}",
                                    a, self.arch.indirect_jump_size, "stub", "<linker>", True, gen))
        for (key, t, extra), a in self.island_addr.items():
            plus = f"{extra:+#x}" if extra else ""
            out.append(PlacedSymbol(f"{self._target_name(t)}{plus}@island", a,
                                    self.arch.indirect_jump_size, "stub", "<linker>", True, gen))
        return out

    def _target_name(self, t) -> str:
        if t is None:
            return "<weak undefined>"
        if isinstance(t, (HostTarget, IfuncTarget, CommonTarget, LinkerTarget, ImageTarget,
                          PendingTarget)):
            return t.name
        if isinstance(t, AbsTarget):
            return f"{t.value:#x}"
        obj = self.objects[t.obj]
        for sym in obj.symbols:
            if sym.section == t.section and sym.value == t.offset and sym.name \
                    and sym.type.value not in ("section", "file") \
                    and not sym.name.startswith(("$", ".L", "ltmp")):  # mapping symbols ($x, $d), asm labels
                return sym.name
        return f"{obj.sections[t.section].name}+{t.offset:#x}"
