"""Build neutral-model objects in memory for tests (no assembler needed).

    obj = ObjBuilder("elf-x64", "a.o")
    text = obj.section(".text", SectionKind.TEXT, code_bytes)
    obj.symbol("main", text, 0, binding=Binding.GLOBAL, type=SymbolType.FUNC)
    obj.undefined("puts")
    obj.reloc(text, 1, "R_X86_64_PLT32", "puts", -4)
    o = obj.build()
"""

from __future__ import annotations

from kitemu.loader.model import (Binding, ObjectFile, Relocation, Section, SectionKind,
                                 Symbol, SymbolPlace, SymbolType)
from kitemu.targets import get_target


class ObjBuilder:
    def __init__(self, target: str, path: str = "synthetic.o"):
        self.target = target
        self.arch = get_target(target).arch
        self.path = path
        self.sections: dict[int, Section] = {}
        self.symbols: list[Symbol] = [Symbol(0, "", Binding.LOCAL, SymbolType.NOTYPE,
                                             SymbolPlace.UNDEF, None, 0, 0)]
        self.by_name: dict[str, int] = {}

    def section(self, name: str, kind: SectionKind, data: bytes | None, align: int = 16,
                size: int | None = None) -> int:
        index = len(self.sections) + 1
        self.sections[index] = Section(index, name, kind, align,
                                       size if data is None else len(data),
                                       None if data is None else bytes(data))
        return index

    def symbol(self, name: str, section: int, value: int, *, binding=Binding.GLOBAL,
               type=SymbolType.FUNC, size: int = 0) -> int:
        return self._add(Symbol(len(self.symbols), name, binding, type, SymbolPlace.SECTION,
                                section, value, size))

    def undefined(self, name: str, weak: bool = False) -> int:
        return self._add(Symbol(len(self.symbols), name, Binding.WEAK if weak else Binding.GLOBAL,
                                SymbolType.NOTYPE, SymbolPlace.UNDEF, None, 0, 0))

    def common(self, name: str, size: int, align: int) -> int:
        return self._add(Symbol(len(self.symbols), name, Binding.GLOBAL, SymbolType.OBJECT,
                                SymbolPlace.COMMON, None, align, size))

    def absolute(self, name: str, value: int) -> int:
        return self._add(Symbol(len(self.symbols), name, Binding.GLOBAL, SymbolType.NOTYPE,
                                SymbolPlace.ABS, None, value, 0))

    def _add(self, sym: Symbol) -> int:
        self.symbols.append(sym)
        self.by_name[sym.name] = sym.index
        return sym.index

    def reloc(self, section: int, offset: int, type_name: str, symbol: str | int, addend: int = 0):
        rtype = next(n for n, s in self.arch.elf_relocs.items() if s.name == type_name)
        sym = symbol if isinstance(symbol, int) else self.by_name[symbol]
        sec = self.sections[section]
        sec.relocations.append(Relocation(offset, rtype, self.arch.elf_relocs[rtype], sym, addend,
                                          len(sec.relocations)))

    def build(self) -> ObjectFile:
        return ObjectFile(self.path, "elf", self.target, dict(self.sections), list(self.symbols),
                          self.path)
