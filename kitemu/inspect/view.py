"""The inspector: what is in a live image, by address and by name.

Three questions, as the roadmap's ``kit_jit_view``, ``kit_jit_addr_to_sym``
and ``kit_jit_sym_iter_*`` answer them:

* :meth:`Inspector.view` - the whole image now: its segments with their
  current permissions, every symbol (address, size, kind, binding, owning
  input, generation, and the GOT entry and stub the linker made for it),
  the host functions it binds and the names still pending. A view is a
  snapshot of one generation; the inspector rebuilds it when the image's
  generation no longer matches.
* :meth:`Inspector.addr_to_sym` - one address: symbol + offset, input
  section, input file, generation, and file:line where the input has DWARF.
* :meth:`Inspector.sym_iter` - public symbols in address order (internal
  ones too on request: locals, stubs, range-extension islands).

It reads the :class:`~kitemu.link.image.JitImage`'s published tables and
never the input files, except for DWARF line tables, which are read once
per input and kept (old generations keep theirs).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

from ..execmem import Perm
from ..link.image import JitImage
from ..link.symbols import IfuncTarget, PendingTarget


@dataclass(frozen=True)
class SegmentView:
    name: str            # code | rodata | data
    addr: int
    size: int
    perm: str            # now, e.g. "r-x"
    generation: int


@dataclass(frozen=True)
class SymbolView:
    name: str
    addr: int
    size: int
    kind: str            # func | object | ifunc | notype | common | abs | stub
    binding: str         # global | weak | local
    input: str
    generation: int
    section: str
    got: int | None = None       # the GOT entry holding this symbol's address
    stub: int | None = None      # the stub the linker made for it (IFUNC: its public address)
    internal: bool = False       # local, a linker stub or an assembler temporary
    temporary: bool = False      # an assembler temporary (.Lfoo, Mach-O ltmp0 / l_.str)


@dataclass(frozen=True)
class HostBinding:
    name: str
    addr: int            # the host function
    stub: int            # its canonical stub in the image
    got: int | None


@dataclass(frozen=True)
class PendingView:
    name: str
    guard: int
    since: int
    referenced_by: tuple[str, ...]
    staged_sites: int


@dataclass(frozen=True)
class AddrInfo:
    addr: int
    symbol: str | None
    offset: int
    section: str | None
    input: str | None
    generation: int | None
    file: str | None = None
    line: int | None = None

    def render(self) -> str:
        if self.symbol is None and self.section is None:
            return f"{self.addr:#x}: not in the image"
        where = self.symbol or "?"
        if self.offset:
            where += f"+{self.offset:#x}"
        text = f"{self.addr:#x}: {where}"
        if self.section:
            text += f" in {self.section}"
        if self.input:
            text += f" of {self.input}"
        if self.generation is not None:
            text += f", generation {self.generation}"
        if self.file:
            text += f", {self.file}:{self.line}"
        return text


@dataclass(frozen=True)
class ImageView:
    target: str
    generation: int
    strategy: str
    page_size: int
    base: int
    capacity: int
    used: int
    segments: tuple[SegmentView, ...]
    symbols: tuple[SymbolView, ...]          # address order, internal ones included
    host: tuple[HostBinding, ...]
    pending: tuple[PendingView, ...]
    inputs: tuple[tuple[str, int], ...] = field(default=())   # (path, generation)

    def to_json(self) -> dict:
        return asdict(self)

    def render(self, internal: bool = False) -> str:
        out = [f"image {self.target}: generation {self.generation}, {self.strategy}, page "
               f"{self.page_size:#x}, region {self.base:#x}+{self.capacity:#x} "
               f"({self.used:#x} used)"]
        out.append("inputs:")
        out += [f"  gen {g:<3} {path}" for path, g in self.inputs]
        out.append("segments:")
        out += [f"  {s.addr:#014x} {s.size:#9x} {s.perm}  {s.name:<6} gen {s.generation}"
                for s in self.segments]
        out.append("symbols:")
        for s in self.symbols:
            if s.internal and not internal:
                continue
            extra = "".join(f" {k}={v:#x}" for k, v in (("got", s.got), ("stub", s.stub)) if v)
            out.append(f"  {s.addr:#014x} {s.size:#7x} {s.kind:<7} {s.binding:<6} gen {s.generation:<3}"
                       f" {s.name}  [{s.input} {s.section}]{extra}")
        if self.host:
            out.append("host functions:")
            out += [f"  {h.name} = {h.addr:#x} via stub {h.stub:#x}"
                    + (f" got={h.got:#x}" if h.got else "") for h in self.host]
        if self.pending:
            out.append("pending (referenced, not defined yet):")
            out += [f"  {p.name}: guard {p.guard:#x}, {p.staged_sites} staged site(s), since "
                    f"generation {p.since}, referenced by {', '.join(p.referenced_by)}"
                    for p in self.pending]
        return "\n".join(out)


def _rank(s: SymbolView) -> int:
    """Which of several symbols at one place names it: a public one, else a
    local one, else an assembler temporary."""
    return 0 if s.temporary else (1 if s.internal else 2)


def _perm_text(perm: Perm) -> str:
    return "".join(c if perm & p else "-" for c, p in (("r", Perm.R), ("w", Perm.W), ("x", Perm.X)))


class Inspector:
    """Views of one image; see the module docstring."""

    def __init__(self, image: JitImage):
        self.image = image
        self._view: ImageView | None = None
        self._sections: tuple[list[int], list[tuple]] | None = None
        self._sections_gen = None
        self._debug: dict[int, object] = {}
        self.rebuilds = 0

    # -- the whole image ----------------------------------------------------------
    def view(self) -> ImageView:
        """The image as it is now (rebuilt when the generation changed)."""
        if self._view is None or self._view.generation != self.image.generation:
            self._view = self._build()
            self._sym_addrs = [s.addr for s in self._view.symbols]
            self.rebuilds += 1
        return self._view

    def _build(self) -> ImageView:
        image, mem = self.image, self.image.mem
        got_of: dict[int, int] = {}
        for key, entry in image._got_by_key.items():
            if key[0] == "addr":
                got_of.setdefault(key[1], entry)
        stub_of: dict[str, int] = {}
        for t, a in image.stubs.items():
            if isinstance(t, (IfuncTarget, PendingTarget)):
                stub_of.setdefault(t.name, a)
        segments = []
        for seg in image.segments:
            chunk = mem.chunk_at(seg.addr)
            perm = _perm_text(chunk.perm) if chunk is not None else "---"
            if chunk is not None and chunk.alias is not None:
                perm += f" (rw- alias {chunk.alias + seg.addr - chunk.addr:#x})"
            segments.append(SegmentView(seg.name, seg.addr, seg.size, perm, seg.generation))
        symbols = []
        for s in sorted(image.symbols, key=lambda s: (s.addr, s.name)):
            pub = image.published.get(s.name)
            public = pub is not None and not s.local and pub.addr == s.addr
            binding = pub.binding if public else ("local" if s.local else "global")
            temp = s.name.startswith((".L", "L", "l_", "ltmp")) and image.target.format == "macho" \
                or s.name.startswith(".L")
            symbols.append(SymbolView(
                s.name, s.addr, s.size, s.kind, binding, s.obj, s.generation, s.section,
                got_of.get(s.addr) if public else None,
                stub_of.get(s.name) if public else None,
                internal=s.local or s.kind == "stub" or temp, temporary=temp))
        host = []
        for name, stub in sorted(image.host_stubs.items()):
            host.append(HostBinding(name, image.host_addrs[name], stub,
                                    image._got_by_key.get(("host", name))))
        pending = tuple(PendingView(p.name, p.guard, p.since, tuple(p.referenced_by), len(p.sites))
                        for p in sorted(image.pending.values(), key=lambda p: p.name))
        inputs = tuple((obj.path, g) for obj, g in zip(image.inputs, image.input_generation))
        return ImageView(image.target.name, image.generation, mem.strategy.value, mem.page_size,
                         mem.base, mem.capacity, mem.used, tuple(segments), tuple(symbols),
                         tuple(host), pending, inputs)

    # -- one address ------------------------------------------------------------------
    def addr_to_sym(self, addr: int) -> AddrInfo:
        """What is at ``addr``: the innermost symbol containing it (else the
        nearest one before it in the same section), its input section and
        file, generation, and source line where DWARF is present."""
        section = self._section_at(addr)
        sym = self._symbol_at(addr, section)
        if section is None and sym is None:
            return AddrInfo(addr, None, 0, None, None, None)
        name = offset = None
        gen = None
        input_path = sec_name = None
        if sym is not None:
            name, offset, gen = sym.name, addr - sym.addr, sym.generation
            input_path, sec_name = sym.input, sym.section or None
        if section is not None:
            start, end, oi, si = section
            obj = self.image.inputs[oi]
            input_path, sec_name = obj.path, obj.sections[si].name
            gen = self.image.input_generation[oi]
        file = line = None
        if section is not None:
            loc = self._line(section[2], addr)
            if loc is not None:
                file, line = loc
        return AddrInfo(addr, name, offset or 0, sec_name, input_path, gen, file, line)

    def _sections_index(self):
        image = self.image
        if self._sections is None or self._sections_gen != image.generation:
            spans = []
            for (oi, si), a in image.section_addrs.items():
                size = image.inputs[oi].sections[si].size
                if size:
                    spans.append((a, a + size, oi, si))
            spans.sort()
            self._sections = ([s[0] for s in spans], spans)
            self._sections_gen = image.generation
        return self._sections

    def _section_at(self, addr: int):
        starts, spans = self._sections_index()
        i = bisect.bisect_right(starts, addr) - 1
        if i >= 0 and spans[i][0] <= addr < spans[i][1]:
            return spans[i]
        return None

    def _symbol_at(self, addr: int, section) -> SymbolView | None:
        syms = self.view().symbols
        i = bisect.bisect_right(self._sym_addrs, addr) - 1
        best = None
        while i >= 0:
            s = syms[i]
            if s.addr <= addr < s.addr + max(s.size, 1):
                if best is None or _rank(s) > _rank(best):
                    best = s
            elif best is None and s.size == 0 and section is not None and \
                    section[0] <= s.addr and s.section == self.image.inputs[section[2]].sections[section[3]].name:
                best = s                       # an unsized label before addr in the same section
            if s.addr < addr - 0x100000:
                break
            if best is not None and s.addr < best.addr:
                break
            i -= 1
        return best

    def _line(self, oi: int, addr: int):
        info = self._debug.get(oi)
        if info is None:
            info = self._debug[oi] = self._load_debug(oi)
        if info is False:
            return None
        loc = info.line_for(addr)
        return None if loc is None else (loc.file, loc.line)

    def _load_debug(self, oi: int):
        try:
            from ..loader.dwarf import DebugInfo
        except ImportError:
            return False
        image = self.image
        obj = image.inputs[oi]
        info = DebugInfo.from_object(obj, lambda si: image.section_addrs.get((oi, si)))
        return info if info.available else False

    # -- symbols in order -----------------------------------------------------------
    def sym_iter(self, internal: bool = False) -> Iterator[SymbolView]:
        """Symbols in address order: public ones, and with ``internal``
        also locals, linker stubs and assembler temporaries."""
        for s in self.view().symbols:
            if internal or not s.internal:
                yield s


def inspector(image: JitImage) -> Inspector:
    """The image's inspector (one per image, kept with it)."""
    ins = getattr(image, "_inspector", None)
    if ins is None:
        ins = image._inspector = Inspector(image)
    return ins


__all__ = ["AddrInfo", "HostBinding", "ImageView", "Inspector", "PendingView", "SegmentView",
           "SymbolView", "inspector"]
