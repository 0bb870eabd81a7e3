"""Which objects a link takes: the command-line objects and the archive
members they need.

:func:`select_inputs` implements lazy archive loading, the rules of a
static link with every archive inside one ``--start-group``/``--end-group``:

* every command-line object is linked;
* an archive member is *pulled* (linked) when its archive's symbol index
  says it defines a name that is still *wanted*: referenced by a **strong**
  (non-weak) undefined symbol of a linked object, or listed in ``roots``
  (the entry symbol, so that ``main`` itself can live in an archive), and
  defined by no linked object. Members pulled in turn contribute their own
  undefined references, until nothing more is wanted (transitive closure),
  across all archives whatever their order (a member of the first archive
  may need one of the last and the other way round).

What does **not** pull a member:

* a *weak* undefined reference (ELF: STB_WEAK undefined; Mach-O:
  N_WEAK_REF). A weak reference says "use it if it is linked anyway"; lld,
  GNU ld and ld64 leave such a symbol unresolved (address 0) rather than
  fetch a member for it. If the member is pulled for another reason, the
  weak reference binds to its definition as usual.
* a name a linked object already defines, strongly, weakly **or as a
  COMMON** (tentative definition, ``int x;`` with ``-fcommon``). A COMMON
  is a definition for symbol resolution: lld (without ``--fortran-common``)
  and ld64 do not fetch an archive member to replace it; only GNU ld's
  Fortran-era rule does. If a member defining it is pulled for another
  reason, its real definition wins over the COMMON as in any link.
* a name the host provides (``host_names``: kitemu's host C library, what
  a shared libc is to a static link). The host library is already loaded
  in the process before any archive is looked at, as in a JIT that
  searches the process's symbols first and static libraries after (LLVM
  ORC's ``lli --extra-archive``: the process-symbols generator is consulted
  before the archive's). So ``main.o libmine.a`` calls the host ``strlen``
  even if ``libmine.a`` has a ``strlen.o``; to use the archive's, link that
  member explicitly (extract it) or pull its member through another
  symbol - a linked definition always beats the host function.

Order independence. The result does not depend on the order of
``objects`` or of ``archives``:

* the set of wanted names is computed from the whole set of linked objects;
  pulling proceeds in rounds, each taking the wanted names in sorted order
  (a member pulled earlier in a round may define a later name, which is
  then no longer wanted);
* a name defined by several members goes to the first member in archive
  order of the first archive by path (archives are ranked by their path;
  the same path given twice is one archive). Within one archive this is
  what every linker does (the symbol table's first entry); across archives
  ld would take the first on the command line, kitemu takes the first by
  name, so that command-line order never changes what links.

The returned list is the command-line objects (in their given order: it
decides the layout) followed by the pulled members, sorted by archive rank
then member index.

Two members defining the same strong symbol are no error while at most one
of them is pulled; if both are, the linker's usual duplicate-symbol check
reports ``duplicate symbol 'f': defined in lib.a(a.o) and in lib.a(b.o)``.
A pulled member whose index entry turns out not to define the symbol (a
stale symbol table) leaves the symbol undefined, which the link then
reports with the referencing files.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import LinkError
from ..loader.archive import Archive
from ..loader.model import Binding, ObjectFile


def select_inputs(objects: list[ObjectFile], archives: list[Archive],
                  roots: Iterable[str] = (), host_names: Iterable[str] = ()) -> list[ObjectFile]:
    """The objects to link: ``objects`` and every archive member they need
    (see the module docstring for the rules)."""
    ranked = _rank(archives)
    roots = set(roots)
    host = set(host_names)
    defined: set[str] = set()
    wanted_refs: set[str] = set()       # strong undefined references

    def take(obj: ObjectFile) -> None:
        for sym in obj.symbols:
            if sym.binding is Binding.LOCAL or not sym.name:
                continue
            if sym.defined:
                defined.add(sym.name)
            elif sym.binding is not Binding.WEAK:
                wanted_refs.add(sym.name)

    for obj in objects:
        take(obj)
    pulled: dict[tuple[int, int], ObjectFile] = {}
    while True:
        wanted = sorted(((wanted_refs - host) | roots) - defined)
        progress = False
        for name in wanted:
            if name in defined:
                continue            # a member pulled earlier in this round defines it
            key = _provider(ranked, name, pulled)
            if key is None:
                continue            # no archive defines it: the link reports it
            ai, mi = key
            obj = ranked[ai].load(mi)
            pulled[key] = obj
            take(obj)
            progress = True
        if not progress:
            break
    return list(objects) + [pulled[k] for k in sorted(pulled)]


def _rank(archives: list[Archive]) -> list[Archive]:
    by_path: dict[str, Archive] = {}
    for a in archives:
        old = by_path.get(a.path)
        if old is None:
            by_path[a.path] = a
        elif old is not a and [m.data for m in old.members] != [m.data for m in a.members]:
            raise LinkError(f"two different archives are named {a.path!r}")
    return [by_path[p] for p in sorted(by_path)]


def _provider(ranked: list[Archive], name: str,
              pulled: dict[tuple[int, int], ObjectFile]) -> tuple[int, int] | None:
    """The first member not yet pulled whose archive index lists ``name``."""
    for ai, archive in enumerate(ranked):
        for mi in archive.symbol_index.get(name, ()):
            if (ai, mi) not in pulled:
                return ai, mi
    return None
