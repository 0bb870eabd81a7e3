"""The JIT session API: one process, one image that grows append by append.

    from kitemu.session import Session

    with Session("elf-aarch64", base=0xfff00000, capacity=1 << 20) as s:
        s.define("counter_base", 0x5000_0000)       # absolute symbol
        s.add("lib.o", "libm.a")
        s.link()                                     # generation 1
        s.append("more.o")                           # generation 2
        s.call("add", 2, 3)                          # -> 5
        s.call("scale", 1.5, returns="double")
        s.read(s.lookup("table"), 16)

A session is a :class:`~kitemu.runtime.JitProcess` (emulated, in unicorn)
or a :class:`~kitemu.backends.native.NativeProcess` (real memory on an
x86-64 Linux host) holding one :class:`~kitemu.link.image.JitImage`. Every
method that links is a transaction: on any error the image, its symbols and
its generation are as they were. docs/SESSION.md is the reference.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from .errors import ConfigError, KitemuError, LinkError
from .faults import FaultReport
from .link.image import JitImage, PendingSymbol
from .link.linker import LinkedImage
from .link.records import RelocRecord
from .loader.archive import Archive
from .loader.model import ObjectFile
from .runtime import DEFAULT_BASE, DEFAULT_CAPACITY, JitProcess

BACKENDS = ("emulated", "native")
#: hot reload's indirection modes (roadmap §1.1): no stable entries (the
#: default: images are byte-for-byte those of a plain link), or one for
#: every global function
INDIRECT_NONE = "none"
INDIRECT_EXPORTED_FUNCS = "exported-funcs"


class GuestFault(KitemuError):
    """A call into the image faulted; ``report`` says how, as the host would."""

    def __init__(self, report: FaultReport):
        super().__init__(report.render())
        self.report = report


class Session:
    """A JIT session; see the module docstring."""

    def __init__(self, target: str = "elf-x64", backend: str = "emulated", *,
                 base: int = DEFAULT_BASE, capacity: int = DEFAULT_CAPACITY,
                 strategy: str | None = None, page_size: int | None = None,
                 host_os: str | None = None, stdout_sink=None, opt: str = "-O2",
                 cflags: Iterable[str] = (), indirect: str = INDIRECT_NONE):
        if backend not in BACKENDS:
            raise ConfigError(f"unknown backend {backend!r}; known: {', '.join(BACKENDS)}")
        if backend == "native":
            from .backends.native import NativeProcess
            if host_os not in (None, "linux"):
                raise ConfigError("the native backend reports faults as its real host (Linux) does")
            self.proc: JitProcess = NativeProcess(target, strategy=strategy, page_size=page_size,
                                                  base=base, capacity=capacity,
                                                  stdout_sink=stdout_sink)
        else:
            self.proc = JitProcess(target, strategy=strategy, page_size=page_size, base=base,
                                   capacity=capacity, stdout_sink=stdout_sink, host_os=host_os)
        self.backend = backend
        self.target = self.proc.target
        self._queued: list[ObjectFile | Archive] = []
        self._freed = False
        #: how C sources given to add/append are compiled (clang)
        self.opt, self.cflags = opt, list(cflags)
        from .link.image import Indirection
        try:
            self.image.indirection = Indirection(indirect)
        except ValueError:
            raise ConfigError(f"unknown indirection mode {indirect!r}; known: "
                              f"{INDIRECT_NONE}, {INDIRECT_EXPORTED_FUNCS}") from None

    # -- lifetime --------------------------------------------------------------
    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc) -> None:
        self.free()

    def free(self) -> None:
        """Release all memory of the image (every generation). The session
        cannot be used afterwards."""
        if not self._freed:
            self.proc.free()
            self._freed = True

    def _alive(self) -> None:
        if self._freed:
            raise KitemuError("the session was freed")

    # -- symbols and inputs ---------------------------------------------------------
    def symbol_name(self, c_name: str) -> str:
        """The symbol-table spelling of a C name (``_main`` on Mach-O)."""
        return self.target.symbol(c_name)

    def define(self, name: str, addr: int) -> int:
        """Publish an absolute symbol ``name`` (a C name) = ``addr``, before
        or between links; inputs linked later resolve references to it. A
        name earlier appends left pending is resolved. Returns the new
        generation."""
        self._alive()
        if not 0 <= addr < 1 << 64:
            raise ConfigError(f"absolute symbol {name!r}: address {addr:#x} is not a 64-bit address")
        self.proc.define(self.symbol_name(name), addr)
        return self.generation

    def add(self, *inputs: str | Path | ObjectFile | Archive) -> None:
        """Queue inputs for the next :meth:`link`: paths of objects,
        archives or C sources (compiled with clang, ``opt`` and ``cflags``
        of the session), or loaded objects."""
        self._alive()
        self._queued += self._load(inputs)

    def _load(self, inputs) -> list[ObjectFile | Archive]:
        from .driver import gather
        out: list[ObjectFile | Archive] = []
        paths = []
        for i in inputs:
            if isinstance(i, (ObjectFile, Archive)):
                out.append(i)
            else:
                paths.append(str(i))
        if paths:
            cflags = list(self.cflags)
            image = self.image
            if self.target.format == "elf" and (image.marked or image.indirection.value != "none") \
                    and "-ffunction-sections" not in cflags:
                # an ELF assembler resolves calls to a local (or hidden)
                # function in the same section itself, leaving no relocation
                # to send through the stable entry: one section per function
                cflags.append("-ffunction-sections")
            if self.target.arch.name == "aarch64" and self.opt == "-O0" and \
                    (image.marked or image.indirection.value != "none") \
                    and "-fno-global-isel" not in cflags:
                # clang 14's AArch64 GlobalISel (its -O0 selector) leaves some
                # unused aggregate parameters out of DWARF; kitemu.reload.abi
                # trusts -O0 AArch64 signatures only with SelectionDAG, which
                # the recorded command line shows
                cflags += ["-fno-global-isel", "-grecord-command-line"]
            gathered = gather(paths, target=self.target.name, opt=self.opt, cflags=cflags)
            out += gathered.objects + gathered.archives
        return out

    def link(self, defer: bool | Iterable[str] = False) -> int:
        """Link the queued inputs into the image (the first link or an
        append); archive members are pulled for what the new objects still
        need after the image's symbols and the host's. ``defer``: undefined
        names (C names, or True for all) allowed to stay pending until a
        later append defines them. Returns the new generation."""
        self._alive()
        queued, self._queued = self._queued, []
        if not queued:
            raise LinkError("nothing to link: add inputs first")
        self.linked = self._link(queued, defer)
        return self.generation

    def append(self, *inputs: str | Path | ObjectFile | Archive,
               defer: bool | Iterable[str] = False) -> int:
        """Add ``inputs`` and link them into the live image: nothing already
        placed moves. Returns the new generation."""
        self._alive()
        if self._queued:
            raise LinkError("inputs are queued with add(); link() them first")
        self.linked = self._link(self._load(inputs), defer)
        return self.generation

    def _link(self, inputs, defer) -> LinkedImage:
        from .link.inputs import select_inputs
        objects = [i for i in inputs if isinstance(i, ObjectFile)]
        archives = [i for i in inputs if isinstance(i, Archive)]
        if archives:
            # members are pulled only for what neither the host nor the
            # image defines (built only here: it costs O(image))
            known = set(self.proc.machine.hostproc.addrs) | set(self.image.published)
            objects = select_inputs(objects, archives, (), known)
        if isinstance(defer, bool):
            names = defer
        else:
            names = frozenset(self.symbol_name(n) for n in defer)
        return self.proc.link(objects, defer=names)

    # -- the image ------------------------------------------------------------
    @property
    def image(self) -> JitImage:
        self._alive()
        if self.proc.image is None:
            self.proc._live_image()
        return self.proc.image

    @property
    def generation(self) -> int:
        return self.proc.generation

    def lookup(self, name: str) -> int | None:
        """Canonical address of a global (C name or exact spelling), or None."""
        self._alive()
        return self.proc.lookup(name)

    def address(self, name: str) -> int:
        """Like :meth:`lookup`, but an undefined name is an error."""
        addr = self.lookup(name)
        if addr is None:
            pending = self.image.pending.get(self.symbol_name(name))
            why = (f"; it is pending (referenced by {', '.join(pending.referenced_by)})"
                   if pending else "")
            raise LinkError(f"symbol {name!r} is not defined in the image (generation "
                            f"{self.generation}){why}")
        return addr

    def pending(self) -> dict[str, PendingSymbol]:
        """Names referenced by the image but not defined yet."""
        return dict(self.image.pending)

    def sites(self, name: str) -> list[RelocRecord]:
        """Relocation records of every fixup against ``name`` (patch-site
        index), every generation, in apply order."""
        index = self.image.index
        return index.sites(self.symbol_name(name)) or index.sites(name)

    # -- hot reload -------------------------------------------------------------
    def mark_reloadable(self, name: str) -> None:
        """Give ``name`` a stable entry and a slot when it is linked: a C
        name of a global function, or ``file.c::helper`` for a static one
        (its callers in that file reach it through the entry). In
        ``exported-funcs`` mode every global function has one anyway. Must
        come before the function is linked."""
        self._alive()
        image = self.image
        key = name if "::" in name else self.symbol_name(name)
        if key in image.reloadables:
            return
        if image.lookup_global(key) is not None:
            from .reload.function import ReloadError
            raise ReloadError("not-reloadable", f"{name!r} is already linked without a stable "
                              "entry: mark it before the link that defines it")
        image.marked.add(key)

    def reload_function(self, name: str, replacement, unchecked: bool = False,
                        patch_call_sites: bool = False) -> int:
        """Replace the body of reloadable ``name`` (C name or ``file::name``)
        with the definition in ``replacement`` (a path - .o or .c, compiled
        with the session's flags - or an ObjectFile); returns the new
        generation, or raises :class:`~kitemu.reload.function.ReloadError`
        (``.reason``) leaving the old body active. ``patch_call_sites``:
        the fast mode, which also re-aims direct call sites at the new body."""
        from .reload.function import ReloadError, reload_function
        self._alive()
        if isinstance(replacement, ObjectFile):
            obj = replacement
        else:
            try:
                loaded = self._load([replacement])
            except KitemuError as e:
                reason = "tls" if "thread-local" in str(e) else "invalid-object"
                raise ReloadError(reason, str(e)) from None
            objs = [o for o in loaded if isinstance(o, ObjectFile)]
            if len(objs) != 1 or len(loaded) != 1:
                raise ReloadError("invalid-object", f"{replacement}: a replacement is one object")
            obj = objs[0]
        key = name if "::" in name else self.symbol_name(name)
        return reload_function(self.proc, key if key in self.image.reloadables else name, obj,
                               unchecked, patch_call_sites)

    def reloadable(self, name: str):
        """The :class:`~kitemu.link.image.ReloadableFunction` of ``name``:
        entry, slot, bodies with generation and state."""
        from .reload.function import find_reloadable
        key = name if "::" in name else self.symbol_name(name)
        return find_reloadable(self.image, key if key in self.image.reloadables else name)

    def can_reclaim(self, name: str, generation: int) -> bool:
        from .reload.function import can_reclaim
        return can_reclaim(self.proc, self.reloadable(name).identity, generation)

    def retire(self, name: str, generation: int) -> None:
        from .reload.function import retire
        retire(self.proc, self.reloadable(name).identity, generation)

    def body_state(self, name: str, generation: int) -> str:
        from .reload.function import body_state
        return body_state(self.proc, self.reloadable(name).identity, generation)

    # -- the inspector ----------------------------------------------------------
    def view(self):
        """The image now: segments, symbols, host bindings, pending names
        (:class:`~kitemu.inspect.ImageView`, rebuilt per generation)."""
        from .inspect import inspector
        return inspector(self.image).view()

    def addr_to_sym(self, addr: int):
        """Symbol + offset, section, input, generation and file:line of
        ``addr`` (:class:`~kitemu.inspect.AddrInfo`)."""
        from .inspect import inspector
        return inspector(self.image).addr_to_sym(addr)

    def sym_iter(self, internal: bool = False):
        """Public symbols in address order (``internal``: all of them)."""
        from .inspect import inspector
        return inspector(self.image).sym_iter(internal)

    # -- running --------------------------------------------------------------
    def call(self, fn: str | int, *args: int | float, returns: str = "int",
             timeout: float | None = None) -> int | float:
        """Call a function of the image by name or address with integer /
        pointer (int) and double (float) arguments, per the target's
        calling convention. ``returns="double"`` reads the floating-point
        return register. A fault raises :class:`GuestFault`."""
        self._alive()
        addr = self.address(fn) if isinstance(fn, str) else fn
        self.proc.stage = f"call {fn if isinstance(fn, str) else hex(fn)}"
        value, fault = self.proc.call(addr, list(args), returns=returns, timeout=timeout)
        if fault is not None:
            raise GuestFault(fault)
        return value

    def read(self, addr: int, size: int) -> bytes:
        """Bytes of guest memory (any mapped address: image, heap, stack)."""
        self._alive()
        try:
            return bytes(self.proc.machine.read(addr, size))
        except KitemuError:
            raise
        except Exception as e:
            raise KitemuError(f"cannot read {size} bytes at {addr:#x}: {e}") from None

    def write(self, addr: int, data: bytes) -> None:
        """Write guest memory. Inside the image the write follows the
        exec-memory strategy's W^X rules as a patch (code is opened for
        writing and closed again, translations are flushed); elsewhere
        (heap, stack) it is a plain store into mapped memory."""
        self._alive()
        mem = self.proc.mem
        if mem.chunk_at(addr) is not None:
            mem.patch([(addr, bytes(data))])
            return
        if mem.base <= addr < mem.base + mem.capacity:
            raise KitemuError(f"cannot write {len(data)} bytes at {addr:#x}: not committed memory "
                              "of the image")
        try:
            self.proc.machine.read(addr, len(data))       # mapped?
            self.proc.machine.write_raw(addr, bytes(data))
        except KitemuError:
            raise
        except Exception as e:
            raise KitemuError(f"cannot write {len(data)} bytes at {addr:#x}: {e}") from None
