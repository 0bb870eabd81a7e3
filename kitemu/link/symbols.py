"""Symbol resolution across translation units.

Rules (those of a static ELF link):

* a strong (GLOBAL) definition beats WEAK ones and COMMON ones; two strong
  definitions of one name are an error naming both files;
* COMMON symbols of one name merge into one .bss object of the largest size
  and alignment, unless a real definition exists;
* an undefined reference binds to a definition, else to a host function,
  else (if every reference is weak) to address 0; otherwise it is an error
  naming the symbol and every file that references it.

Appending to a live image (:class:`~kitemu.link.image.JitImage`) adds the
rules of an append-only link: the image's published symbols come first
(nothing already placed moves), so

* a new strong definition of a name the image defines is an error, weak or
  strong there: references to the old one were already applied and an
  append never re-points them (replacing a function is hot reload's job);
* a new weak or COMMON definition of such a name is dropped, and the
  input's references bind to the image's definition;
* a reference to a name nobody defines yet may be *deferred* (the caller
  says so): it binds to a :class:`PendingTarget`, and the relocation is
  staged until an append defines the name.

A resolved target is a :class:`Target` key that layout later turns into an
address; this keeps resolution independent of where things are placed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import LinkError
from ..loader.model import Binding, ObjectFile, SymbolPlace, SymbolType


@dataclass(frozen=True)
class SectionTarget:
    """``section + offset`` of one input object."""
    obj: int          # index of the object in the link
    section: int      # section index in that object
    offset: int


@dataclass(frozen=True)
class AbsTarget:
    value: int


@dataclass(frozen=True)
class HostTarget:
    name: str


@dataclass(frozen=True)
class LinkerTarget:
    """A symbol the linker defines itself (``__dso_handle``)."""
    name: str


@dataclass(frozen=True)
class CommonTarget:
    name: str


@dataclass(frozen=True)
class IfuncTarget:
    """An IFUNC's canonical address: its stub, whose cell receives the value
    the resolver (at ``resolver``) returns at link time."""
    resolver: SectionTarget
    name: str


@dataclass(frozen=True)
class ImageTarget:
    """A symbol an earlier append (or ``define``) published: its canonical
    address is final."""
    name: str
    addr: int


@dataclass(frozen=True)
class PendingTarget:
    """A name referenced but not defined yet: relocations against it are
    staged and applied when an append defines it."""
    name: str


Target = (SectionTarget | AbsTarget | HostTarget | CommonTarget | IfuncTarget | LinkerTarget
          | ImageTarget | PendingTarget)


@dataclass
class GlobalDef:
    name: str
    obj: int
    sym_index: int
    binding: Binding
    place: SymbolPlace
    target: Target


@dataclass
class Common:
    name: str
    size: int
    align: int
    objs: list[int] = field(default_factory=list)


class SymbolTable:
    """Resolution for one link (or one append): ``objects[i]`` for ``i`` in
    ``indices`` are the new inputs (the list may hold earlier appends'
    inputs before them); ``image`` answers for names already published
    (``image.lookup_global(name)`` -> published symbol or None,
    ``image.pending`` names staged but undefined); ``defer`` says which
    undefined names may be staged: ``True`` for all, or a set of names."""

    def __init__(self, objects: list[ObjectFile], host_names: set[str],
                 linker_defined: set[str] = frozenset(), indices: range | None = None,
                 image=None, defer: bool | frozenset[str] = False):
        self.objects = objects
        self.indices = range(len(objects)) if indices is None else indices
        self.host_names = host_names
        self.linker_defined = linker_defined
        self.image = image
        self.defer = defer
        self.globals: dict[str, GlobalDef] = {}
        self.commons: dict[str, Common] = {}
        #: names this link stages (referenced, defined nowhere yet)
        self.deferred: dict[str, list[str]] = {}
        self._resolve_definitions()
        self.missing: dict[str, list[str]] = {}

    def _definition_target(self, oi: int, sym) -> Target:
        if sym.place is SymbolPlace.ABS:
            return AbsTarget(sym.value)
        if sym.place is SymbolPlace.COMMON:
            return CommonTarget(sym.name)
        obj = self.objects[oi]
        sec = obj.sections.get(sym.section)
        if sec is None or not sec.kind.loaded:
            raise LinkError(f"{obj.path}: symbol {sym.name!r} is defined in section "
                            f"#{sym.section}, which is not loaded")
        target = SectionTarget(oi, sym.section, sym.value)
        if sym.type is SymbolType.IFUNC:
            return IfuncTarget(target, sym.name or f"{obj.path}:#{sym.index}")
        return target

    def _resolve_definitions(self) -> None:
        for oi in self.indices:
            obj = self.objects[oi]
            for sym in obj.symbols:
                if sym.binding is Binding.LOCAL or not sym.defined or not sym.name:
                    continue
                if sym.place is SymbolPlace.COMMON:
                    c = self.commons.setdefault(sym.name, Common(sym.name, 0, 1))
                    c.size = max(c.size, sym.size)
                    c.align = max(c.align, sym.value or 1)
                    c.objs.append(oi)
                    continue
                new = GlobalDef(sym.name, oi, sym.index, sym.binding, sym.place,
                                self._definition_target(oi, sym))
                old = self.globals.get(sym.name)
                if old is None or (old.binding is Binding.WEAK and new.binding is not Binding.WEAK):
                    self.globals[sym.name] = new
                elif old.binding is not Binding.WEAK and new.binding is not Binding.WEAK:
                    raise LinkError(
                        f"duplicate symbol {sym.name!r}: defined in {self.objects[old.obj].path} "
                        f"and in {obj.path}")
        for name in list(self.commons):
            if name in self.globals:
                del self.commons[name]   # a real definition wins over tentative ones
        if self.image is not None:
            self._check_against_image()

    def _check_against_image(self) -> None:
        """Append-only: the image's definitions stay; see the module doc."""
        lookup = self.image.lookup_global
        for name in list(self.commons):
            if lookup(name) is not None:
                del self.commons[name]
        for name, d in list(self.globals.items()):
            old = lookup(name)
            if old is None:
                if name not in self.image.host_stubs:
                    continue
                if d.binding is Binding.WEAK:
                    del self.globals[name]     # the host function already bound stays
                else:
                    raise LinkError(
                        f"{self.objects[d.obj].path}: defines {name!r}, which earlier appends "
                        "already bound to the host function of that name; an append cannot "
                        "re-point their references")
                continue
            if d.binding is Binding.WEAK:
                del self.globals[name]
                continue
            weak = "a weak definition" if old.binding == "weak" else "a definition"
            raise LinkError(
                f"duplicate symbol {name!r}: defined in {self.objects[d.obj].path} and already "
                f"published by {old.input} (generation {old.generation}, {weak} at "
                f"{old.addr:#x}); an append cannot replace a published symbol")

    def resolve(self, oi: int, sym_index: int) -> Target | None:
        """The target of symbol ``sym_index`` of object ``oi`` as referenced
        from that object; None for a weak undefined reference (address 0)."""
        obj = self.objects[oi]
        sym = obj.symbols[sym_index]
        if sym.binding is Binding.LOCAL:
            if sym.place is SymbolPlace.UNDEF:
                if sym_index == 0:
                    return AbsTarget(0)   # relocations with no symbol: S = 0
                raise LinkError(f"{obj.path}: local symbol {sym.name!r} is undefined")
            return self._definition_target(oi, sym)
        d = self.globals.get(sym.name)
        if d is not None:
            return d.target
        if sym.name in self.commons:
            return CommonTarget(sym.name)
        if self.image is not None:
            old = self.image.lookup_global(sym.name)
            if old is not None:
                return ImageTarget(sym.name, old.addr)
            if sym.name in self.image.pending:
                return PendingTarget(sym.name)
        if sym.name in self.host_names:
            return HostTarget(sym.name)
        if sym.name in self.linker_defined:
            return LinkerTarget(sym.name)
        if sym.binding is Binding.WEAK:
            return None
        if self.defer is True or (self.defer and sym.name in self.defer):
            refs = self.deferred.setdefault(sym.name, [])
            if obj.path not in refs:
                refs.append(obj.path)
            return PendingTarget(sym.name)
        refs = self.missing.setdefault(sym.name, [])
        if obj.path not in refs:
            refs.append(obj.path)
        return None

    def raise_missing(self) -> None:
        if self.missing:
            lines = [f"undefined symbol {name!r}, referenced from {', '.join(files)}"
                     for name, files in sorted(self.missing.items())]
            raise LinkError("; ".join(lines) + " (no definition in the inputs and no host function)")
