"""The JIT link: resolve, lay out, build GOT and stubs, apply fixups, publish.

The baseline of the roadmap: reserve one contiguous region, copy sections into
permission segments, apply relocations against the runtime addresses, and flip
to W^X final permissions.

Layout of one link inside the region (each segment starts on a page)::

    code    [.text of every input ...][far-call stubs]                    RX
    rodata  [.rodata, .eh_frame ...][GOT entries][stub cells]             R
    data    [.data ...][.init_array][.fini_array][.bss ...][COMMON]      RW

Stubs (``Arch.indirect_jump``) jump through a *stub cell* holding the real
destination. Host functions and IFUNCs get a stub each and their canonical
address is that stub, so every reference - direct call, function pointer in
data, GOT entry - sees one address that is always within reach of the image
(lld's "canonical PLT" idea). A branch to an in-image symbol that turns out to
be out of reach gets a stub too; layout is then redone with the extra stubs.

All fixups are applied into host-side ``bytearray`` copies of the segments;
memory is written once per segment afterwards, so a failing link writes
nothing into the image.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ExecMemError, FixupRangeError, LinkError, RelocationError
from ..execmem import RO, ExecMem
from ..loader.model import ObjectFile, Section, SectionKind
from ..targets import Target as TargetDesc
from ..targets.base import BitFieldDataFixup, Formula, RelocSpec, WrappingDataFixup
from .records import RelocIndex, RelocRecord, StageLog
from .symbols import (AbsTarget, CommonTarget, HostTarget, IfuncTarget, LinkerTarget,
                      SectionTarget, SymbolTable, Target)

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


@dataclass
class PlacedSymbol:
    name: str
    addr: int
    size: int
    kind: str          # func | object | ifunc | notype | host-stub | stub | got
    obj: str           # owning input path, or "<host>" / "<linker>"
    local: bool


@dataclass
class LinkedImage:
    """What a link produced: addresses and the metadata runs and reports need."""

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

    @property
    def reloc_index(self) -> RelocIndex:
        if self._index is None:
            self._index = RelocIndex(self.records)
        return self._index

    _index: RelocIndex | None = None


class Linker:
    def __init__(self, target: TargetDesc, execmem: ExecMem, host_addrs: dict[str, int]):
        self.target = target
        self.arch = target.arch
        self.mem = execmem
        self.host_addrs = host_addrs
        #: symbols the linker itself defines when referenced and not defined
        #: by an input: ``__dso_handle`` (what ``__cxa_atexit`` registrations
        #: name as their module) is the image's first address
        self.linker_defined = {target.symbol("__dso_handle")}

    # ------------------------------------------------------------------
    def link(self, objects: list[ObjectFile], run_resolver=None) -> LinkedImage:
        """Link ``objects`` into the region. ``run_resolver(addr) -> int``
        runs an IFUNC resolver in the machine (needed only if there are IFUNCs)."""
        for obj in objects:
            if obj.target != self.target.name:
                raise LinkError(f"{obj.path}: object is for {obj.target}, not {self.target.name}")
        stages = StageLog()
        stages.mark("reserve", f"region {self.mem.base:#x}+{self.mem.capacity:#x}, "
                    f"{self.mem.strategy.value}, page {self.mem.page_size:#x}")
        symtab = SymbolTable(objects, set(self.host_addrs), self.linker_defined)
        plan = _Plan(self, objects, symtab)
        plan.collect()
        symtab.raise_missing()
        stages.mark("resolve", f"{len(objects)} inputs, {len(symtab.globals)} globals")

        far_targets: set[Target] = set()
        for passes in range(1, _MAX_LAYOUT_PASSES + 1):
            plan.layout(self.mem.next, far_targets)
            newly_far = plan.apply()
            if not newly_far:
                break
            far_targets |= newly_far
        else:
            raise LinkError("layout did not converge: far-call stubs keep moving targets out of reach")
        stages.mark("layout+fixups", ", ".join(f"{s.name} {s.addr:#x}+{s.size:#x}"
                                               for s in plan.segments.values() if s.size)
                    + f" ({passes} pass{'es' if passes > 1 else ''})", plan.applied)
        stages.group("stubs/GOT", len(plan.got_addr) + len(plan.stub_addr) + len(plan.island_addr))
        stages.stages[-1].detail = (f"{len(plan.got_addr)} GOT entries, {len(plan.stub_addr)} "
                                    f"canonical stubs, {len(plan.island_addr)} island stubs")
        for kind, n in sorted(plan.kind_counts.items()):
            stages.group(f"fixups {kind}", n)
        image = plan.commit(run_resolver, stages)
        return image


class _Plan:
    """The state of one link between resolution and commit."""

    def __init__(self, linker: Linker, objects: list[ObjectFile], symtab: SymbolTable):
        self.linker = linker
        self.arch = linker.arch
        self.mem = linker.mem
        self.objects = objects
        self.symtab = symtab
        self.page = linker.mem.page_size

    # -- pass 0: which sections, which GOT entries, which stubs ------------
    def collect(self) -> None:
        self.placed: list[tuple[int, Section]] = []
        for oi, obj in enumerate(self.objects):
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
            for rel in sec.relocations:
                spec = rel.spec
                if spec.formula is Formula.NONE:
                    continue
                t = self.symtab.resolve(oi, rel.symbol)
                self.reloc_targets[(oi, sec.index, rel.index)] = t
                if spec.formula is Formula.DELTA:
                    if rel.subtrahend is None:
                        raise LinkError(f"{self.objects[oi].describe_reloc(sec, rel)}: "
                                        "a difference relocation without its subtrahend symbol")
                    self.subtrahends[(oi, sec.index, rel.index)] = \
                        self.symtab.resolve(oi, rel.subtrahend)
                if spec.formula in _GOT_FORMULAS:
                    self.got_targets[t] = None
                if isinstance(t, (HostTarget, IfuncTarget)):
                    self.stub_targets[t] = None   # canonical address is the stub

    # -- pass 1: addresses ----------------------------------------------
    def layout(self, start: int, islands: set) -> None:
        """Assign addresses. ``islands`` holds ``((obj, section), target)``
        pairs: a branch in that input section cannot reach ``target`` (or
        its canonical stub), so a range-extension stub is placed right after
        the section, within reach of its branches."""
        stub_targets = list(self.stub_targets)
        self.stub_list = stub_targets
        stub_size = self.arch.indirect_jump_size
        island_of: dict[tuple[int, int], list] = {}
        for key, t in sorted(islands, key=repr):
            island_of.setdefault(key, []).append(t)
        self.segments = {n: Segment(n, p) for n, p in (("code", "rx"), ("rodata", "r"), ("data", "rw"))}
        offsets: dict[tuple[int, int], tuple[str, int]] = {}
        island_offsets: dict[tuple, int] = {}
        seg_size = {"code": 0, "rodata": 0, "data": 0}
        ordered = sorted(self.placed, key=lambda p: (_DATA_ORDER.get(p[1].kind, 0),
                                                     _array_priority(p[1])))
        for oi, sec in ordered:
            seg = SEGMENT_OF[sec.kind]
            off = align_up(seg_size[seg], sec.align)
            offsets[(oi, sec.index)] = (seg, off)
            seg_size[seg] = off + sec.size
            if (oi, sec.index) in island_of:
                off = align_up(seg_size[seg], 16)
                for t in island_of[(oi, sec.index)]:
                    island_offsets[((oi, sec.index), t)] = off
                    off += stub_size
                seg_size[seg] = off
        # COMMON symbols at the end of data
        common_off = {}
        for name, c in self.symtab.commons.items():
            off = align_up(seg_size["data"], c.align)
            common_off[name] = off
            seg_size["data"] = off + c.size
        # canonical stubs after code, GOT + stub cells after rodata
        stub_off = align_up(seg_size["code"], 16)
        seg_size["code"] = stub_off + stub_size * len(stub_targets)
        got_off = align_up(seg_size["rodata"], 8)
        got_list = list(self.got_targets)
        seg_size["rodata"] = got_off + 8 * (len(got_list) + len(stub_targets) + len(island_offsets))

        need = sum(self.mem.round_up(n) for n in seg_size.values() if n)
        left = self.mem.base + self.mem.capacity - start
        if need > left:
            # checked before any buffer is allocated: a corrupt or huge
            # zero-fill/COMMON size is an error, not a MemoryError
            raise ExecMemError(
                f"exec memory region out of capacity: the link needs {need:#x} bytes "
                f"(code {seg_size['code']:#x}, rodata {seg_size['rodata']:#x}, data "
                f"{seg_size['data']:#x}), {left:#x} of {self.mem.capacity:#x} left")
        addr = start
        for name in ("code", "rodata", "data"):
            seg = self.segments[name]
            seg.size = seg_size[name]
            # an empty segment still gets an address: symbols in its empty
            # sections must point into the image, not at address 0
            seg.addr = addr
            if seg.size:
                addr += self.mem.round_up(seg.size)
        self.end = addr
        self.first_addr = start
        seg_addr = {n: s.addr for n, s in self.segments.items()}
        self.section_addr = {k: seg_addr[s] + o for k, (s, o) in offsets.items()}
        self.common_addr = {n: seg_addr["data"] + o for n, o in common_off.items()}
        code, ro = seg_addr["code"], seg_addr["rodata"]
        self.stub_addr = {t: code + stub_off + i * stub_size for i, t in enumerate(stub_targets)}
        self.got_addr = {t: ro + got_off + 8 * i for i, t in enumerate(got_list)}
        cells = ro + got_off + 8 * len(got_list)
        self.cell_addr = {t: cells + 8 * i for i, t in enumerate(stub_targets)}
        cells += 8 * len(stub_targets)
        self.island_addr = {k: code + o for k, o in island_offsets.items()}
        self.island_cell = {k: cells + 8 * i for i, k in enumerate(island_offsets)}

    def address_of(self, t: Target | None) -> int:
        """The canonical address ``S`` of a resolved target."""
        if t is None:
            return 0
        if isinstance(t, SectionTarget):
            return self.section_addr[(t.obj, t.section)] + t.offset
        if isinstance(t, AbsTarget):
            return t.value
        if isinstance(t, CommonTarget):
            return self.common_addr[t.name]
        if isinstance(t, (HostTarget, IfuncTarget)):
            return self.stub_addr[t]
        if isinstance(t, LinkerTarget):
            return self.first_addr
        raise AssertionError(t)

    def destination_of(self, t: Target) -> int:
        """The value of a canonical stub's cell: the real host function, or
        0 for an IFUNC until its resolver has run. (Island stubs jump to
        ``address_of(t)``: for a host function, via its canonical stub.)"""
        if isinstance(t, HostTarget):
            return self.linker.host_addrs[t.name]
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
        for t, a in self.got_addr.items():
            self._write_word(a, self.address_of(t), ptr)
        for t, a in self.stub_addr.items():
            self._write_bytes(a, self.arch.indirect_jump(a, self.cell_addr[t]))
            self._write_word(self.cell_addr[t], self.destination_of(t), ptr)
        for (key, t), a in self.island_addr.items():
            cell = self.island_cell[(key, t)]
            self._write_bytes(a, self.arch.indirect_jump(a, cell))
            self._write_word(cell, self.address_of(t), ptr)

        far: set = set()
        error: RelocationError | None = None
        applied = 0
        records: list[RelocRecord] = []
        kind_counts: dict[str, int] = {}
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
                if spec.formula is Formula.PCREL_LO:
                    if hi_by_offset is None:
                        hi_by_offset = {r.offset: r for r in sec.relocations if r.spec.hi_part}
                    value = self._pcrel_lo_value(obj, oi, sec, rel, hi_by_offset, sec_addr)
                else:
                    t = self.reloc_targets[(oi, sec.index, rel.index)]
                    via = "got" if spec.formula in _GOT_FORMULAS else ""
                    if spec.formula is Formula.DELTA:
                        T = self.address_of(self.subtrahends[(oi, sec.index, rel.index)])
                        value = self.address_of(t) + rel.addend - T
                    else:
                        value = self._value(spec, t, rel.addend, P, seg, base_off + rel.offset)
                    if spec.branch and sec.kind is SectionKind.TEXT and \
                            not spec.fixup.in_range(value) and \
                            self.arch.can_stub(spec, seg.buf, base_off + rel.offset):
                        island = self.island_addr.get(((oi, sec.index), t))
                        if island is None:
                            far.add(((oi, sec.index), t))
                            continue
                        value = island + rel.addend - P
                        via = "island"
                try:
                    spec.fixup.encode(seg.buf, base_off + rel.offset, value)
                except FixupRangeError as e:
                    # final only if this layout is: islands added for this pass's far
                    # branches move code, and with it this value
                    if error is None:
                        error = RelocationError(f"{obj.describe_reloc(sec, rel)}: cannot be "
                                                f"applied: {e.detail} (value {value:#x}, place "
                                                f"{P:#x})")
                    continue
                applied += 1
                kind_counts[spec.fixup.name] = kind_counts.get(spec.fixup.name, 0) + 1
                records.append(self._record(len(records), obj, oi, sec, rel, value, P, via))
        if error is not None and not far:
            raise error
        self.applied = applied
        self.records = records
        self.kind_counts = kind_counts
        return far

    def _record(self, apply_id, obj, oi, sec, rel, value, P, via) -> RelocRecord:
        spec = rel.spec
        if spec.formula is Formula.PCREL_LO:
            sym = obj.symbols[rel.symbol].name or "?"
            target = None
        else:
            t = self.reloc_targets[(oi, sec.index, rel.index)]
            sym = self._target_name(t)
            target = None if spec.formula in (Formula.ADD, Formula.SUB, Formula.DELTA) \
                else self.address_of(t) + rel.addend
            if isinstance(t, (HostTarget, IfuncTarget)) and not via:
                via = "stub"
        return RelocRecord(apply_id, obj.path, sec.name, rel.offset, spec.name, spec.fixup.name,
                           sym, rel.addend, value, P, spec.fixup.size, target, via)

    def _value(self, spec: RelocSpec, t, A: int, P: int, seg: Segment, off: int) -> int:
        f = spec.formula
        if f is Formula.ABS:
            return self.address_of(t) + A
        if f is Formula.PCREL:
            return self.address_of(t) + A - P
        if f is Formula.GOT_PCREL:
            return self.got_addr[t] + A - P
        if f is Formula.GOT_ABS:
            return self.got_addr[t] + A
        if f is Formula.PAGE_PCREL:
            return ((self.address_of(t) + A) & ~0xFFF) - (P & ~0xFFF)
        if f is Formula.GOT_PAGE_PCREL:
            return ((self.got_addr[t] + A) & ~0xFFF) - (P & ~0xFFF)
        if f is Formula.ADD:
            return spec.fixup.decode(seg.buf, off) + self.address_of(t) + A
        if f is Formula.SUB:
            return spec.fixup.decode(seg.buf, off) - (self.address_of(t) + A)
        raise AssertionError(f)

    def _pcrel_lo_value(self, obj, oi, sec, rel, hi_by_offset, sec_addr) -> int:
        """RISC-V PCREL_LO12_*: the symbol labels the AUIPC whose HI20 (or
        GOT_HI20) relocation gives the value; the LO part is its low 12 bits."""
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
            return self.got_addr[t] + hi.addend - hi_p
        return self.address_of(t) + hi.addend - hi_p

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

    # -- pass 3: memory ---------------------------------------------------
    def commit(self, run_resolver, stages: StageLog) -> LinkedImage:
        mem = self.mem
        chunks = {}
        for name, kind in (("code", "code"), ("rodata", "data"), ("data", "data")):
            seg = self.segments[name]
            if not seg.size:
                continue
            chunk = mem.commit(seg.size, kind)
            if chunk.addr != seg.addr:
                raise AssertionError(f"layout planned {seg.addr:#x}, got {chunk.addr:#x}")
            mem.write(seg.addr, bytes(seg.buf))
            chunks[name] = chunk
        stages.mark("copy", ", ".join(f"{n} {c.addr:#x}+{c.size:#x}" for n, c in chunks.items()))
        if "code" in chunks:
            mem.make_executable(chunks["code"])
        stages.mark("finalize code", "r-x")

        ifuncs = []
        for t in self.stub_list:
            if isinstance(t, IfuncTarget):
                ifuncs.append((t.name, self.address_of(t.resolver), self.cell_addr[t]))
        if ifuncs:
            if run_resolver is None:
                raise LinkError("IFUNC symbols need a machine to run their resolvers")
            stages.mark("ifunc resolvers", ", ".join(n for n, _, _ in ifuncs), len(ifuncs))
            for name, resolver, cell in ifuncs:
                value = run_resolver(resolver, name)
                mem.write(cell, value.to_bytes(8, "little"))
        if "rodata" in chunks:
            mem.protect(chunks["rodata"], RO)
        stages.mark("finalize rodata", "r--")

        def read_array(kind: SectionKind) -> list[int]:
            """The function pointers of all ``kind`` sections, in address
            order (which layout sorted by priority)."""
            out = []
            for oi, sec in sorted(self.placed, key=lambda p: self.section_addr[(p[0], p[1].index)]):
                if sec.kind is kind:
                    seg, off = self._seg_off(oi, sec)
                    raw = seg.buf[off:off + sec.size]
                    out += [int.from_bytes(raw[i:i + 8], "little") for i in range(0, len(raw) - 7, 8)]
            return out

        return LinkedImage(
            target=self.linker.target,
            segments=[s for s in self.segments.values() if s.size],
            globals=self._globals(),
            symbols=self._placed_symbols(),
            section_addrs=dict(self.section_addr),
            got={t: a for t, a in self.got_addr.items()},
            stubs=dict(self.stub_addr),
            stub_cells=dict(self.cell_addr),
            ifuncs=ifuncs,
            preinit_array=read_array(SectionKind.PREINIT_ARRAY),
            init_array=read_array(SectionKind.INIT_ARRAY),
            fini_array=read_array(SectionKind.FINI_ARRAY),
            relocations_applied=self.applied,
            stages=stages,
            records=self.records,
        )

    def _globals(self) -> dict[str, int]:
        out = {}
        for name, d in self.symtab.globals.items():
            out[name] = self.address_of(d.target)
        for name in self.symtab.commons:
            out[name] = self.common_addr[name]
        return out

    def _placed_symbols(self) -> list[PlacedSymbol]:
        out = []
        for oi, obj in enumerate(self.objects):
            for sym in obj.symbols:
                if not sym.name or sym.type.value in ("section", "file") or not sym.defined \
                        or sym.name.startswith((".L", "$")):   # asm-local labels, mapping symbols
                    continue
                if sym.place.value == "section":
                    if (oi, sym.section) not in self.section_addr:
                        continue
                    t = SectionTarget(oi, sym.section, sym.value)
                    addr = self.address_of(t)
                elif sym.place.value == "abs":
                    addr = sym.value
                else:
                    addr = self.common_addr.get(sym.name, 0)
                out.append(PlacedSymbol(sym.name, addr, sym.size, sym.type.value, obj.path,
                                        sym.binding.value == "local"))
        for t, a in self.stub_addr.items():
            out.append(PlacedSymbol(f"{self._target_name(t)}@stub", a,
                                    self.arch.indirect_jump_size, "stub", "<linker>", True))
        for (key, t), a in self.island_addr.items():
            out.append(PlacedSymbol(f"{self._target_name(t)}@island", a,
                                    self.arch.indirect_jump_size, "stub", "<linker>", True))
        return out

    def _target_name(self, t) -> str:
        if t is None:
            return "<weak undefined>"
        if isinstance(t, (HostTarget, IfuncTarget, CommonTarget, LinkerTarget)):
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
