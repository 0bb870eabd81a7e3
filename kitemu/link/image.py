"""The live JIT image: everything links and appends have published.

A :class:`JitImage` owns one exec-memory region and grows append by append
(:func:`kitemu.link.linker.append`); nothing placed ever moves. Each
successful link, append or ``define`` publishes a new *generation*: the
first link is generation 0, each later one adds 1 (-1: nothing published
yet), and every symbol, relocation record and staged site carries the
generation that made it.

What it keeps, and why each piece stays after linking:

* ``published``: public name -> :class:`PublishedSymbol` (address, size,
  kind, owning input, generation). Later appends resolve against it first.
* ``symbols``: every placed symbol, local ones too (addr -> symbol for fault
  reports and the inspector).
* ``got`` / ``stubs`` / ``host_stubs``: one GOT entry per target address and
  one canonical stub per host function, shared by later appends.
* ``pending``: names referenced but not defined yet, with their staged
  relocations (:class:`StagedSite`), pending-stub cells and GOT entry: an
  append that defines the name re-applies them.
* ``index``: the durable relocation records and the patch-site index.
* ``arena``: where the next append's segments go (:class:`Arena`).

Memory per append is what it added (its inputs, symbols, records) plus a
constant; no per-append structure is rebuilt from the whole image, so the
cost of an append does not grow with the image.
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass, field

from ..errors import ExecMemError
from ..execmem import RW, Chunk, ExecMem, Strategy
from ..loader.model import ObjectFile, SectionKind
from ..targets import Target as TargetDesc
from ..targets.base import Fixup, Formula
from .linker import LinkedImage, PlacedSymbol, Segment, align_up, append
from .records import RelocIndex, RelocRecord, StageLog
from .symbols import (AbsTarget, HostTarget, ImageTarget, LinkerTarget,
                      PendingTarget, Target)

#: segment -> the ExecMem chunk kind it lives in
CHUNK_KIND = {"code": "code", "rodata": "data", "data": "data"}
SEGMENT_ORDER = ("code", "rodata", "data")


class Indirection(enum.Enum):
    """Hot reload's indirection mode (roadmap §1.1)."""
    NONE = "none"                        # INDIRECT_NONE: direct references only
    EXPORTED_FUNCS = "exported-funcs"    # INDIRECT_EXPORTED_FUNCS: every global function


@dataclass
class Body:
    """One generation's body of a reloadable function."""
    name: str                # foo$body$N
    addr: int
    size: int
    generation: int
    input: str
    #: active | replaced (still mapped and callable) | retired (the caller
    #: says no new frame can enter it; reclaimable once no frame is in it)
    state: str = "active"

    def __contains__(self, addr: int) -> bool:
        return self.addr <= addr < self.addr + max(self.size, 1)


@dataclass
class ReloadableFunction:
    """A function reached through a stable entry and a slot: public symbol
    (or ``tu::name`` identity of a static) -> entry -> slot -> body."""
    identity: str            # the public symbol name, or "file.c::helper"
    name: str                # its symbol name in the defining object
    entry: int               # RX: indirect jump through the slot
    slot: int                # RW, 8-byte aligned: the active body's address
    public: bool
    input_index: int         # the defining input (DWARF of the first body)
    bodies: list[Body] = field(default_factory=list)
    #: the last reload re-aimed direct call sites at its body (fast mode)
    direct_patched: bool = False

    @property
    def active(self) -> Body:
        return self.bodies[-1]

    def body_of(self, generation: int) -> Body | None:
        for b in self.bodies:
            if b.generation == generation:
                return b
        return None


@dataclass(slots=True)
class PublishedSymbol:
    name: str
    addr: int
    size: int
    kind: str          # func | object | ifunc | notype | common | abs
    binding: str       # global | weak
    input: str         # the defining input's path ("<define>" for define())
    generation: int


@dataclass(slots=True)
class StagedSite:
    """A relocation applied against a name nobody defined yet (its guard
    address stood in for ``S``), to be re-applied with the real address:
    value = formula(S, addend, formula_place), encoded at ``place``."""
    name: str
    input: str
    section: str
    offset: int
    kind: str                # relocation type name
    fixup: Fixup
    formula: Formula         # ABS, PCREL, PAGE_PCREL, or PCREL_LO (rv64, with its HI's P)
    addend: int
    formula_place: int       # the P of the formula (a PCREL_LO's HI instruction)
    place: int               # where the field is
    generation: int


@dataclass
class PendingSymbol:
    name: str
    guard: int                                   # stands in for S until defined
    since: int                                   # generation that first referenced it
    referenced_by: list[str] = field(default_factory=list)
    sites: list[StagedSite] = field(default_factory=list)
    stub: int | None = None                      # the pending stub calls go through
    cells: list[int] = field(default_factory=list)
    got: int | None = None


@dataclass(slots=True)
class Placement:
    addr: int
    chunk: Chunk | None      # the open chunk whose tail takes the segment, or None
    new_size: int = 0        # bytes of the chunk to commit (None chunk, non-empty segment)


class Arena:
    """Bump allocation of the three segment kinds in committed chunks.

    Each kind has an *open* chunk; a segment goes into its tail when it fits
    (aligned), else into a new chunk. The first link of an image commits
    exactly what it needs (one-shot layout); later chunks are at least
    ``grow`` bytes, so that small appends share pages instead of taking
    three pages each."""

    def __init__(self, mem: ExecMem, grow: int = 64 << 10):
        self.mem = mem
        self.grow = max(grow, mem.page_size)
        self.open: dict[str, Chunk | None] = dict.fromkeys(SEGMENT_ORDER)
        self.cursor: dict[str, int] = dict.fromkeys(SEGMENT_ORDER, 0)

    def place(self, sizes: dict[str, int], aligns: dict[str, int]) -> dict[str, Placement]:
        mem = self.mem
        first = all(c is None for c in self.open.values())
        next_addr = mem.next
        out: dict[str, Placement] = {}
        for name in SEGMENT_ORDER:
            size, chunk = sizes[name], self.open[name]
            if chunk is not None:
                a = align_up(self.cursor[name], aligns[name])
                if a + size <= chunk.end:
                    out[name] = Placement(a, chunk)
                    continue
            if not size:
                out[name] = Placement(self.cursor[name] if chunk is not None else next_addr, None)
                continue
            if aligns[name] > mem.page_size:
                raise ExecMemError(f"a {name} section asks for {aligns[name]:#x}-byte alignment, "
                                   f"more than the page size {mem.page_size:#x}")
            new = mem.round_up(size) if first else max(mem.round_up(size), self.grow)
            out[name] = Placement(next_addr, None, new)
            next_addr += new
        if next_addr > mem.limit:
            need = sum(p.new_size for p in out.values())
            raise ExecMemError(
                f"exec memory region out of capacity: the link needs {need:#x} bytes of new "
                f"pages (code {sizes['code']:#x}, rodata {sizes['rodata']:#x}, data "
                f"{sizes['data']:#x} bytes), {mem.left:#x} of {mem.capacity:#x} left")
        return out

    def commit(self, placement: dict[str, Placement], segments: dict[str, Segment],
               written: list) -> dict[str, Chunk | None]:
        """Commit new chunks and write the segments (code and rodata chunks
        are left writable: the caller finalizes them). ``written`` receives
        ``(addr, old bytes)`` of every range written, for :meth:`rollback`."""
        mem = self.mem
        self._saved = (dict(self.open), dict(self.cursor), [])
        chunks: dict[str, Chunk | None] = {}
        for name in SEGMENT_ORDER:
            seg, pl = segments[name], placement[name]
            if not seg.size:
                chunks[name] = None
                continue
            if pl.chunk is None:
                chunk = mem.commit(pl.new_size, CHUNK_KIND[name])
                if chunk.addr != pl.addr:
                    raise AssertionError(f"layout planned {pl.addr:#x}, got {chunk.addr:#x}")
                if name == "code":
                    # a code chunk's unused bytes trap instead of sliding on
                    fill = self._trap_fill(chunk.size)
                    if fill is not None:
                        mem.write(chunk.addr, fill)
                self.open[name] = chunk
            else:
                chunk = pl.chunk
                self._saved[2].append((chunk, chunk.perm, mem.jit_write_mode))
                if name == "code":
                    mem.make_writable(chunk)
                elif not chunk.perm & RW.W:
                    mem.protect(chunk, RW)
            written.append((seg.addr, mem.read(seg.addr, seg.size)))
            mem.write(seg.addr, bytes(seg.buf))
            self.cursor[name] = seg.addr + seg.size
            chunks[name] = chunk
        return chunks

    trap: bytes = b""

    def _trap_fill(self, size: int) -> bytes | None:
        if not self.trap:
            return None
        return (self.trap * (size // len(self.trap) + 1))[:size]

    def rollback(self, written: list) -> None:
        """Undo a failed commit: old bytes back, open chunks and cursors
        back, permissions of the chunks it opened back. New chunks stay
        committed as dead space."""
        saved = getattr(self, "_saved", None)
        mem = self.mem
        if written:
            mem.patch([(a, old) for a, old in reversed(written)])
        if saved is None:
            return
        opened, cursor, perms = saved
        for chunk, perm, jit_mode in perms:
            if chunk.kind == "code" and mem.strategy is Strategy.JIT_TOGGLE:
                mem.set_jit_write_mode(jit_mode)
            elif chunk.alias is None and chunk.perm != perm:
                mem.protect(chunk, perm)
        self.open, self.cursor = opened, cursor


class JitImage:
    """One image in one region; see the module docstring."""

    def __init__(self, target: TargetDesc, mem: ExecMem, host_addrs: dict[str, int]):
        self.target = target
        self.arch = target.arch
        self.mem = mem
        self.host_addrs = host_addrs
        #: symbols the linker defines when referenced and not defined by an
        #: input: ``__dso_handle`` (what ``__cxa_atexit`` registrations name
        #: as their module) is the image's first address
        self.linker_defined = {target.symbol("__dso_handle")}
        self.generation = -1
        self.inputs: list[ObjectFile] = []
        self.input_generation: list[int] = []
        self.published: dict[str, PublishedSymbol] = {}
        self.globals: dict[str, int] = {}
        self.symbols: list[PlacedSymbol] = []
        self.segments: list[Segment] = []
        self.section_addrs: dict[tuple[int, int], int] = {}
        self.got: dict[Target | None, int] = {}
        self._got_by_key: dict[tuple, int] = {}
        self.stubs: dict[Target, int] = {}
        self.stub_cells: dict[Target, int] = {}
        self.host_stubs: dict[str, int] = {}
        self.ifuncs: list[tuple[str, int, int]] = []
        self.pending: dict[str, PendingSymbol] = {}
        self.index = RelocIndex()
        self.preinit_array: list[int] = []
        self.init_array: list[int] = []
        self.fini_array: list[int] = []
        self.relocations_applied = 0
        self.stages = StageLog()
        self.first_addr: int | None = None
        self.arena = Arena(mem)
        self.arena.trap = target.arch.trap
        self.guard: int | None = None
        self._guard_slots: dict[str, int] = {}
        #: hot reload: the indirection mode, names/identities marked
        #: reloadable, and the reloadable functions placed so far
        self.indirection = Indirection.NONE
        self.marked: set[str] = set()
        self.reloadables: dict[str, ReloadableFunction] = {}

    # -- linking ------------------------------------------------------------
    def append(self, objects: list[ObjectFile], run_resolver=None,
               defer: bool | frozenset[str] = False, reload=None) -> LinkedImage:
        """Link ``objects`` into the image as one transaction (a new
        generation on success, nothing changed on failure). ``reload``
        (used by :mod:`kitemu.reload`): ``(function, local object index,
        body symbol index)``: the append also publishes that body in the
        function's slot."""
        return append(self, objects, run_resolver, defer, reload)

    @staticmethod
    def tu_of(obj: ObjectFile) -> str:
        """The translation unit part of a static's identity (``a.c``)."""
        return os.path.basename(obj.tu_name or obj.path)

    def define(self, name: str, addr: int) -> None:
        """Publish an absolute symbol (a new generation). A pending name is
        resolved: its staged relocations are applied with ``addr``."""
        from ..loader.model import Binding, Symbol, SymbolPlace, SymbolType
        sym = Symbol(index=1, name=name, value=addr, size=0, type=SymbolType.NOTYPE,
                     binding=Binding.GLOBAL, place=SymbolPlace.ABS, section=None)
        null = Symbol(index=0, name="", value=0, size=0, type=SymbolType.NOTYPE,
                      binding=Binding.LOCAL, place=SymbolPlace.UNDEF, section=None)
        obj = ObjectFile(f"<define {name}>", self.target.format, self.target.name, {}, [null, sym],
                         tu_name="<define>")
        self.append([obj])

    # -- queries the linker makes ------------------------------------------
    def lookup_global(self, name: str) -> PublishedSymbol | None:
        return self.published.get(name)

    @property
    def records(self) -> list[RelocRecord]:
        return self.index.records

    @property
    def reloc_index(self) -> RelocIndex:
        return self.index

    @property
    def next_apply_id(self) -> int:
        return len(self.index.records)

    @staticmethod
    def _got_key(t) -> tuple | None:
        if t is None:
            return ("addr", 0)
        if isinstance(t, ImageTarget):
            return ("addr", t.addr)
        if isinstance(t, AbsTarget):
            return ("addr", t.value)
        if isinstance(t, HostTarget):
            return ("host", t.name)
        if isinstance(t, PendingTarget):
            return ("pending", t.name)
        if isinstance(t, LinkerTarget):
            return ("linker", t.name)
        return None        # defined by the append itself: new

    def got_entry(self, t) -> int | None:
        key = self._got_key(t)
        return None if key is None else self._got_by_key.get(key)

    def pending_stub(self, name: str) -> int | None:
        p = self.pending.get(name)
        return None if p is None else p.stub

    def ensure_guard(self) -> None:
        """The guard range pending names' addresses come from: the top
        granule of the region, never committed (using one faults)."""
        if self.guard is None:
            self.guard_size = self.mem.granularity
            self.guard = self.mem.reserve_top(self.guard_size)

    def guard_of(self, name: str) -> int:
        """The stand-in address of pending ``name`` (16 bytes apart, so a
        fault at it names the symbol)."""
        p = self.pending.get(name)
        if p is not None:
            return p.guard
        a = self._guard_slots.get(name)
        if a is None:
            slots = self.guard_size // 16
            a = self.guard + 16 * (len(self._guard_slots) % slots)
            self._guard_slots[name] = a
        return a

    def describe_guard(self, addr: int | None) -> str | None:
        """If ``addr`` is a pending name's guard address (or within 16 bytes
        of it): what it stands for, as a symbolizer names it."""
        if self.guard is None or addr is None or not self.guard <= addr < self.guard + self.guard_size:
            return None
        for name, a in self._guard_slots.items():
            p = self.pending.get(name)
            if p is not None and a <= addr < a + 16:
                off = f"+{addr - a:#x}" if addr != a else ""
                return (f"{name}{off}: pending, no append has defined it yet (referenced by "
                        f"{', '.join(p.referenced_by)} since generation {p.since})")
        return None

    def staged_site(self, name, input_path, section, offset, kind, fixup, formula, addend,
                    formula_place, place, generation) -> StagedSite:
        return StagedSite(name, input_path, section, offset, kind, fixup, formula, addend,
                          formula_place, place, generation)

    # -- publish -------------------------------------------------------------
    def publish(self, plan, stages: StageLog, ifuncs) -> LinkedImage:
        """Make an append's results visible. Runs after every write
        succeeded; nothing here can fail."""
        gen = plan.generation
        records = plan.records + plan.restaged_records
        self.index.add(records)
        placed_globals = plan.globals_placed()
        for name, d in plan.symtab.globals.items():
            obj = self.inputs[d.obj]
            sym = obj.symbols[d.sym_index]
            self.published[name] = PublishedSymbol(name, placed_globals[name], sym.size,
                                                   sym.type.value, d.binding.value, obj.path, gen)
        for name, c in plan.symtab.commons.items():
            self.published[name] = PublishedSymbol(name, placed_globals[name], c.size, "common",
                                                   "global", self.inputs[c.objs[0]].path, gen)
        self.globals.update(placed_globals)
        new_symbols = plan.placed_symbols()
        self.symbols.extend(new_symbols)
        self.section_addrs.update(plan.section_addr)
        self.input_generation.extend([gen] * len(plan.indices))
        # pending names this append referenced first
        for name, refs in plan.symtab.deferred.items():
            p = self.pending.get(name)
            if p is None:
                p = self.pending[name] = PendingSymbol(name, self.guard_of(name), gen)
            p.referenced_by += [r for r in refs if r not in p.referenced_by]
        for site in plan.staged:
            self.pending[site.name].sites.append(site)
        for t in plan.new_got:
            a = plan.got_addr[t]
            self.got[t] = a
            key = self._got_key(t) or ("addr", plan.address_of(t))
            self._got_by_key.setdefault(key, a)
            if isinstance(t, PendingTarget):
                self.pending[t.name].got = a
        for t in plan.new_stubs:
            self.stubs[t] = plan.stub_addr[t]
            self.stub_cells[t] = plan.cell_addr[t]
            if isinstance(t, HostTarget):
                self.host_stubs[t.name] = plan.stub_addr[t]
            elif isinstance(t, PendingTarget):
                p = self.pending[t.name]
                p.stub = plan.stub_addr[t]
                p.cells.append(plan.cell_addr[t])
        # names this append defined: their staged relocations were re-applied
        for name in plan.resolved:
            p = self.pending.pop(name)
            if p.got is not None:
                self._got_by_key.pop(("pending", name), None)
                self._got_by_key.setdefault(("addr", self.globals[name]), p.got)
        for identity, name, t, size, oi, public in plan.reloadable:
            entry, slot, body = plan.entries[identity]
            rf = ReloadableFunction(identity, name, entry, slot, public, oi)
            rf.bodies.append(Body(f"{name}$body$0", body, size, gen, self.inputs[oi].path))
            self.reloadables[identity] = rf
        if plan.reload is not None:
            rf, body, size = plan.reload_body
            rf.active.state = "replaced"
            rf.bodies.append(Body(f"{rf.name}$body${len(rf.bodies)}", body, size, gen,
                                  self.inputs[plan.indices[0]].path))
        self.ifuncs += ifuncs
        preinit = plan.read_array(SectionKind.PREINIT_ARRAY)
        self.preinit_array += preinit
        init = plan.read_array(SectionKind.INIT_ARRAY)
        fini = plan.read_array(SectionKind.FINI_ARRAY)
        self.init_array += init
        self.fini_array += fini
        segments = []
        for seg in plan.segments.values():
            if seg.size:
                segments.append(Segment(seg.name, seg.perm_final, seg.addr, seg.size,
                                        generation=gen))
        self.segments += segments
        self.first_addr = plan.first_addr
        self.relocations_applied += len(records)
        self.generation = gen
        stages.mark("publish", f"generation {gen}")
        self.stages = stages
        result = LinkedImage(
            target=self.target, segments=segments, globals=placed_globals,
            symbols=new_symbols,
            section_addrs=dict(plan.section_addr),
            got={t: plan.got_addr[t] for t in plan.got_targets},
            stubs=dict(plan.stub_addr), stub_cells=dict(plan.cell_addr), ifuncs=ifuncs,
            preinit_array=preinit,
            init_array=init, fini_array=fini, relocations_applied=len(records), stages=stages,
            records=records, generation=gen, inputs=plan.indices,
            deferred=sorted(plan.symtab.deferred), resolved=list(plan.resolved))
        for seg in plan.segments.values():
            seg.buf = bytearray()           # the copies are not needed any more
        return result

    def free(self) -> None:
        self.mem.free()
