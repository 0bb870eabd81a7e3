"""The AOT reference: the same objects linked ahead of time by ld.lld.

Roadmap §3.1's "--no-jit" cross-check. The relocatable objects kitemu links
in memory are handed, unchanged, to LLVM's ``ld.lld``, which links them into
a **static, non-PIE ELF executable** at a fixed address; the executable's
``PT_LOAD`` segments are loaded into the same emulated process kitemu uses
(:class:`~kitemu.runtime.JitProcess`: same unicorn machine, same host
functions, same stack, heap and argv) and run by the same
:meth:`JitProcess.run` (preinit/init arrays, ``main(argc, argv)``, atexit,
fini arrays). Its stdout and exit code must equal kitemu's JIT run: lld is an
independent oracle for every relocation kitemu applies. Beyond what a run
observes, :func:`cross_check_relocations` compares every relocation kitemu
applied with the value lld wrote for it.

Entry points: :func:`run_aot` (link + load + run, returns a RunResult),
:func:`link_aot` (the executable only), :func:`load_aot` (map an executable
into a JitProcess from :func:`aot_process`), :func:`cross_check_relocations`.

Address map of an AOT process::

    0x0fff_0000  host functions (``host_base``): the 64 KiB right below the
                 image, so x86-64 PC32/PLT32, aarch64 CALL26, ADR_PREL_PG_HI21
                 and even the +-1 MiB ADR_PREL_LO21, RISC-V CALL/PCREL_HI20/
                 JAL (and the non-PIC absolute 32-bit forms) reach them
                 directly, without stubs (lld has no far-call thunks to an
                 absolute --defsym symbol in a static link)
    0x1000_0000  the executable (``--image-base``), one page-aligned mapping
                 per PT_LOAD with its own permissions (``-z
                 separate-loadable-segments``: no two segments share a page)
    0x2000_0000  the JitProcess's exec-memory region: reserved, never
                 committed (kept clear of the image so a later JIT link into
                 the same process cannot land on it)
    heap, stack, return sentinel: as in runtime.py

The ld.lld command line (:func:`lld_command`)::

    ld.lld -m EMULATION -static --no-pie -e main --image-base=0x10000000
           -z separate-loadable-segments -z max-page-size=P -z common-page-size=P
           -z norelro --build-id=none
           --defsym printf=0xfff0xxx ...     (each host function referenced)
           [--defsym __dso_handle=0x10000000] (if referenced, as kitemu defines it)
           [--no-relax]                       (``relax=False``)
           a.o b.o ... -o a.out

No libc, no crt files: the host functions are absolute symbols at the host
process's addresses (the same addresses ``HostProcess.addrs`` gives them).
Undefined weak references that no host function satisfies stay 0, as in
kitemu.

What lld does differently from kitemu, and why it is still the same program:

* x86-64 ``GOTPCRELX``/``REX_GOTPCRELX`` are relaxed to direct ``lea``/
  ``call`` (kitemu keeps the GOT load); ``relax=False`` passes
  ``--no-relax`` to keep the GOT loads.
* Host functions are called directly (they are in reach), not through
  kitemu's canonical stubs.
* IFUNCs: lld gives each one a ``.iplt`` entry jumping through a
  ``.got.plt`` slot that an ``R_*_IRELATIVE`` relocation (in ``.rela.dyn``,
  between ``__rela_iplt_start``/``__rela_iplt_end``) fills at start-up. A
  static executable has no dynamic loader, so :func:`load_aot` plays the part
  of glibc's ``apply_irel``: it runs each resolver (``JitProcess.call``) and
  writes its result into the slot before any constructor runs, making the
  slot's page writable just for that write. (lld defines the
  ``__rela_iplt_*`` bounds only when something references them, so the
  loader reads every allocated RELA section and accepts IRELATIVE only.)
* RISC-V: lld 14 implements no linker relaxation; ``R_RISCV_RELAX`` is a
  no-op hint for it, and an ``R_RISCV_ALIGN`` is an error ("requires
  unimplemented linker relaxation"), reported as a LinkError with lld's text.

Mach-O targets are refused (:func:`check_aot_target`): ``ld64.lld`` 14 says
"Option `-static' is not yet implemented", has no ``--defsym``, and leaves
undefined host functions either an error or (``-undefined dynamic_lookup``)
imports for dyld to bind; its output always carries LC_LOAD_DYLINKER. There
is no static Mach-O image to load.
"""

from __future__ import annotations

import io
import os
import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass, field

from .errors import ConfigError, KitemuError, LinkError
from .execmem import RW, Perm
from .hostlib import HOST_SLOT, REGISTRY
from .link.linker import PlacedSymbol
from .link.records import RelocIndex, RelocRecord, StageLog
from .runtime import (HEAP_BASE, HEAP_LIMIT, SENTINEL, STACK_SIZE, STACK_TOP, JitProcess,
                      RunResult)
from .targets import Target, get_target
from .targets.base import Formula as F

#: where ld.lld places the executable (``--image-base``)
AOT_BASE = 0x1000_0000
#: bytes the host-function area takes (HostProcess maps whole 64 KiB units)
AOT_HOST_AREA = (HOST_SLOT * len(REGISTRY) + 0xFFFF) & ~0xFFFF
#: where the host functions are mapped in an AOT process: right below the
#: image, so that even +-1 MiB fields (aarch64 ADR_PREL_LO21, RISC-V JAL)
#: reach them from the start of .text
AOT_HOST_BASE = AOT_BASE - AOT_HOST_AREA
#: the (unused) exec-memory region of the JitProcess hosting an AOT image
AOT_REGION_BASE = 0x2000_0000
AOT_REGION_CAPACITY = 16 << 20

#: how long one ld.lld run may take before it is reported as hung
LLD_TIMEOUT = 120.0

_EM = {"elf-x64": "EM_X86_64", "elf-aarch64": "EM_AARCH64", "elf-rv64": "EM_RISCV"}
#: ld.lld -m emulation (needed when every input is an archive)
_EMULATION = {"elf-x64": "elf_x86_64", "elf-aarch64": "aarch64linux", "elf-rv64": "elf64lriscv"}
#: R_X86_64_IRELATIVE, R_AARCH64_IRELATIVE, R_RISCV_IRELATIVE
_IRELATIVE = {"elf-x64": 37, "elf-aarch64": 1032, "elf-rv64": 58}


# -- targets and tools ----------------------------------------------------------

def check_aot_target(target: Target | str) -> Target:
    """The target, if the AOT reference can link it; a ConfigError otherwise."""
    t = get_target(target) if isinstance(target, str) else target
    if t.format != "elf":
        raise ConfigError(
            f"the AOT reference links ELF only: ld64 images need dyld (target {t.name}: "
            "ld64.lld 14 does not implement -static and leaves the host functions as "
            "imports dyld binds at load time; there is no static Mach-O image to load)")
    if t.name not in _EM:
        raise ConfigError(f"the AOT reference does not know target {t.name}")
    return t


def find_lld() -> str:
    """Path of ``ld.lld`` on PATH, or a ConfigError naming the missing tool."""
    path = shutil.which("ld.lld")
    if path is None:
        raise ConfigError("the AOT reference needs the LLVM linker ld.lld, which is not on PATH "
                          "(Debian/Ubuntu: apt-get install lld)")
    return path


def host_addresses(target: Target | str, host_base: int = AOT_HOST_BASE) -> dict[str, int]:
    """Host function name (target spelling) -> address, as a HostProcess at
    ``host_base`` lays them out (one ``HOST_SLOT`` each, names sorted)."""
    t = get_target(target) if isinstance(target, str) else target
    return {t.symbol(name): host_base + HOST_SLOT * i for i, name in enumerate(sorted(REGISTRY))}


# -- reading the inputs ---------------------------------------------------------

@dataclass
class _InputSymbols:
    """What the inputs define and reference (read with pyelftools, not with
    kitemu's own reader: the reference must not share its bugs)."""

    defined: dict[str, str] = field(default_factory=dict)     # global name -> object path
    undefined: set[str] = field(default_factory=set)          # referenced, global/weak
    file_of: dict[str, str] = field(default_factory=dict)     # STT_FILE name -> object path


_AR_MAGIC = b"!<arch>\n"


def _archive_members(path: str, data: bytes) -> list[tuple[str, bytes]]:
    """(name, bytes) of each ELF member of a System V / GNU ``ar`` archive
    (the symbol index ``/`` and the long-name table ``//`` skipped)."""
    out = []
    longnames = b""
    pos = len(_AR_MAGIC)
    while pos + 60 <= len(data):
        hdr = data[pos:pos + 60]
        if hdr[58:60] != b"`\n":
            raise KitemuError(f"{path}: corrupt archive member header at offset {pos:#x}")
        raw_name = hdr[:16].decode("ascii", "replace").rstrip()
        try:
            size = int(hdr[48:58].decode("ascii").strip() or 0)
        except ValueError:
            raise KitemuError(f"{path}: corrupt archive member size at offset {pos:#x}") from None
        body = data[pos + 60:pos + 60 + size]
        if len(body) != size:
            raise KitemuError(f"{path}: archive member at offset {pos:#x} is truncated")
        pos += 60 + size + (size & 1)
        if raw_name in ("/", "/SYM64/", "__.SYMDEF", "__.SYMDEF SORTED"):
            continue
        if raw_name == "//":
            longnames = body
            continue
        if raw_name.startswith("/") and raw_name[1:].isdigit():
            off = int(raw_name[1:])
            name = longnames[off:longnames.find(b"/\n", off)].decode("utf-8", "replace")
        else:
            name = raw_name.rstrip("/")
        if body[:4] == b"\x7fELF":
            out.append((name, body))
    return out


#: Elf64_Sym fields as read by :func:`_symtab`
_STB_LOCAL, _STT_SECTION, _STT_FILE, _STT_GNU_IFUNC = 0, 3, 4, 10
_SHN_UNDEF, _SHN_ABS = 0, 0xFFF1
_STT_KIND = {0: "notype", 1: "object", 2: "func", 5: "object", 6: "tls", 10: "ifunc"}


@dataclass
class _Sym:
    name: str
    value: int
    size: int
    bind: int
    type: int
    shndx: int


def _symtab(path: str, data: bytes, e_type: int) -> list[_Sym]:
    """The SHT_SYMTAB of a 64-bit little-endian ELF file of type ``e_type``
    (1 ET_REL, 2 ET_EXEC), unpacked with struct (pyelftools' symbol
    iterator costs several ms per file; this is the hot path of every run)."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise KitemuError(f"{path}: not a 64-bit little-endian ELF file")
    got_type, = struct.unpack_from("<H", data, 16)
    if got_type != e_type:
        want = {1: "a relocatable object (ET_REL)", 2: "an executable (ET_EXEC)"}[e_type]
        raise KitemuError(f"{path}: ELF type {got_type}, not {want}")
    try:
        shoff, = struct.unpack_from("<Q", data, 0x28)
        shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
        shdrs = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize)
                 for i in range(shnum)]
        out = []
        for sh in shdrs:
            if sh[1] != 2:                                   # SHT_SYMTAB
                continue
            _, _, _, _, off, size, link, _, _, entsize = sh
            stroff, strsize = shdrs[link][4], shdrs[link][5]
            strtab = data[stroff:stroff + strsize]
            if off + size > len(data) or stroff + strsize > len(data) or entsize != 24:
                raise KitemuError(f"{path}: symbol table lies outside the file")
            for name_off, info, _, shndx, value, sz in struct.iter_unpack(
                    "<IBBHQQ", data[off:off + size]):
                end = strtab.find(b"\0", name_off)
                name = strtab[name_off:end if end >= 0 else None].decode("utf-8", "replace")
                out.append(_Sym(name, value, sz, info >> 4, info & 0xF, shndx))
        return out
    except (struct.error, IndexError) as e:
        raise KitemuError(f"{path}: truncated or corrupt ELF file ({e})") from None


def _scan_elf(out: _InputSymbols, path: str, data: bytes) -> None:
    for sym in _symtab(path, data, 1):
        if not sym.name:
            continue
        if sym.type == _STT_FILE:
            out.file_of.setdefault(sym.name, path)
        elif sym.bind == _STB_LOCAL:
            continue
        elif sym.shndx == _SHN_UNDEF:
            out.undefined.add(sym.name)
        else:
            out.defined.setdefault(sym.name, path)


def _input_symbols(paths: list[str]) -> _InputSymbols:
    """Scan objects and archives (every member: a name any member defines
    never becomes a --defsym, so lld may pull that member instead)."""
    out = _InputSymbols()
    for path in paths:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise KitemuError(f"{path}: cannot read: {e.strerror}") from None
        if data.startswith(_AR_MAGIC):
            for name, body in _archive_members(path, data):
                _scan_elf(out, f"{path}({name})", body)
        elif data[:4] == b"\x7fELF":
            _scan_elf(out, path, data)
        else:
            raise KitemuError(f"{path}: neither an ELF object nor an archive (the AOT reference "
                              "links ELF inputs with ld.lld)")
    out.undefined -= set(out.defined)
    return out


def input_paths(inputs, workdir: str) -> list[str]:
    """File paths for ld.lld from ``inputs``: paths (objects or archives),
    or loaded objects (anything with a ``.path``, e.g. ``ObjectFile``). An
    archive member named ``lib.a(member.o)`` is extracted into ``workdir``."""
    out = []
    for i, item in enumerate(inputs):
        if isinstance(item, (str, os.PathLike)):
            path = os.fspath(item)
        else:
            path = getattr(item, "path", None)
        if not isinstance(path, str):
            raise ConfigError(f"AOT input #{i} ({item!r}) is neither a path nor a loaded object")
        if not os.path.exists(path) and path.endswith(")") and "(" in path:
            archive, member = path[:-1].split("(", 1)
            try:
                with open(archive, "rb") as f:
                    data = f.read()
            except OSError as e:
                raise KitemuError(f"{archive}: cannot read: {e.strerror}") from None
            body = next((b for n, b in _archive_members(archive, data) if n == member), None)
            if body is None:
                raise KitemuError(f"{archive}: no ELF member {member!r}")
            path = os.path.join(workdir, f"m{i}-{os.path.basename(member)}")
            with open(path, "wb") as f:
                f.write(body)
        out.append(path)
    return out


# -- linking --------------------------------------------------------------------

def lld_command(object_paths: list[str], target: Target | str, output: str, *,
                entry: str = "main", image_base: int = AOT_BASE,
                host_addrs: dict[str, int] | None = None, page_size: int | None = None,
                relax: bool = True, lld: str = "ld.lld",
                inputs: _InputSymbols | None = None, extra_args=()) -> list[str]:
    """The ld.lld command line that links ``object_paths`` into a static
    executable at ``image_base`` (see the module docstring)."""
    t = check_aot_target(target)
    page = page_size or t.default_page_size
    host_addrs = host_addrs if host_addrs is not None else host_addresses(t)
    inputs = inputs or _input_symbols(list(object_paths))
    cmd = [lld, "-m", _EMULATION[t.name], "-static", "--no-pie", "-e", t.symbol(entry),
           f"--image-base={image_base:#x}",
           "-z", "separate-loadable-segments", "-z", f"max-page-size={page}",
           "-z", f"common-page-size={page}", "-z", "norelro", "--build-id=none"]
    if not relax:
        cmd.append("--no-relax")
    for name in sorted(inputs.undefined):
        if name in host_addrs:
            cmd += ["--defsym", f"{name}={host_addrs[name]:#x}"]
    dso = t.symbol("__dso_handle")
    if dso in inputs.undefined and dso not in host_addrs:
        # kitemu's linker defines __dso_handle as the image's first address
        cmd += ["--defsym", f"{dso}={image_base:#x}"]
    cmd += list(extra_args)
    cmd += [os.fspath(p) for p in object_paths]
    cmd += ["-o", os.fspath(output)]
    return cmd


def link_aot(object_paths, target: Target | str, workdir: str, *, entry: str = "main",
             image_base: int = AOT_BASE, host_addrs: dict[str, int] | None = None,
             page_size: int | None = None, relax: bool = True,
             output: str | None = None, extra_args=()) -> str:
    """Link ``object_paths`` (ELF objects and archives, or loaded objects:
    :func:`input_paths`) with ld.lld into a static non-PIE executable in
    ``workdir``; returns its path. ``host_addrs`` (default: a HostProcess at
    :data:`AOT_HOST_BASE`) gives each referenced host function its absolute
    address. Errors: ConfigError (no ld.lld, Mach-O target), LinkError (lld
    refused the inputs; the message carries lld's own text). ``extra_args``
    go to lld before the inputs."""
    return _link(object_paths, target, workdir, entry=entry, image_base=image_base,
                 host_addrs=host_addrs, page_size=page_size, relax=relax, output=output,
                 extra_args=extra_args)[0]


def _link(object_paths, target, workdir, *, entry="main", image_base=AOT_BASE, host_addrs=None,
          page_size=None, relax=True, output=None, extra_args=()) -> tuple[str, _InputSymbols, str]:
    """link_aot's work; returns (executable, what the inputs define and
    reference, lld's warnings)."""
    t = check_aot_target(target)
    lld = find_lld()
    paths = input_paths(object_paths, workdir)
    if not paths:
        raise ConfigError("no input files")
    inputs = _input_symbols(paths)
    if output is None:
        stem = os.path.splitext(os.path.basename(paths[0]))[0]
        output = os.path.join(workdir, f"{stem}.aot.{t.name}")
    cmd = lld_command(paths, t, output, entry=entry, image_base=image_base,
                      host_addrs=host_addrs, page_size=page_size, relax=relax, lld=lld,
                      inputs=inputs, extra_args=extra_args)
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, errors="replace",
                              timeout=LLD_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise LinkError(f"ld.lld did not finish within {LLD_TIMEOUT:g} s linking "
                        + ", ".join(paths)) from None
    except OSError as e:
        raise ConfigError(f"cannot run {lld}: {e.strerror}") from None
    if done.returncode != 0:
        text = (done.stderr or done.stdout).strip()
        raise LinkError(f"ld.lld could not link {', '.join(paths)} for {t.name}: "
                        f"{text or f'exit status {done.returncode}'}")
    return output, inputs, done.stderr.strip()


# -- loading --------------------------------------------------------------------

@dataclass
class LoadSegment:
    """One PT_LOAD as mapped: page-rounded ``[addr, addr + size)``."""

    name: str              # "PT_LOAD[i]"
    addr: int
    size: int
    perm: Perm
    vaddr: int             # p_vaddr, p_memsz
    memsz: int

    @property
    def perm_final(self) -> str:
        return str(self.perm)


@dataclass
class AotImage:
    """A loaded lld executable, offering what :meth:`JitProcess.run` and the
    fault reports read from a :class:`~kitemu.link.image.JitImage`."""

    target: Target
    path: str
    entry: int                              # e_entry
    segments: list[LoadSegment]             # one per PT_LOAD
    globals: dict[str, int]                 # public name -> canonical address
    symbols: list[PlacedSymbol]             # everything, for fault symbolization
    preinit_array: list[int]
    init_array: list[int]
    fini_array: list[int]
    ifuncs: list[tuple[str, int, int]]      # (name, resolver, .got.plt slot) per IRELATIVE
    iplt: dict[str, int]                    # ifunc name -> its .iplt entry
    stages: StageLog
    records: list[RelocRecord] = field(default_factory=list)
    reloc_index: RelocIndex = field(default_factory=lambda: RelocIndex([]))
    relocations_applied: int = 0
    generation: int = 1                     # a static image: one generation, never appended


def _perm(p_flags: int) -> Perm:
    perm = Perm.NONE
    if p_flags & 4:
        perm |= Perm.R
    if p_flags & 2:
        perm |= Perm.W
    if p_flags & 1:
        perm |= Perm.X
    return perm


def _process_areas(proc: JitProcess) -> dict[str, tuple[int, int]]:
    hp = proc.machine.hostproc
    return {
        "the heap": (HEAP_BASE, HEAP_LIMIT),
        "the stack": (STACK_TOP - STACK_SIZE, STACK_TOP),
        "the return-sentinel page": (SENTINEL, SENTINEL + 0x10000),
        "the host-function area": (hp.base, hp.end),
        "the exec-memory region": (proc.mem.base, proc.mem.base + proc.mem.capacity),
    }


def load_aot(proc: JitProcess, path: str, *, inputs: _InputSymbols | None = None,
             stages: StageLog | None = None) -> AotImage:
    """Map ``path`` (a static ET_EXEC from :func:`link_aot`) into ``proc``'s
    machine, apply its IRELATIVE relocations and make it ``proc.image``."""
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile
    from elftools.elf.relocation import RelocationSection

    t = check_aot_target(proc.target)
    stages = stages or StageLog()
    m = proc.machine
    page = proc.host.page_size
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise KitemuError(f"{path}: cannot read: {e.strerror}") from None
    try:
        elf = ELFFile(io.BytesIO(data))
        header = elf.header
        if elf.elfclass != 64 or not elf.little_endian:
            raise KitemuError(f"{path}: not a 64-bit little-endian ELF executable")
        if header["e_type"] != "ET_EXEC":
            raise KitemuError(f"{path}: {header['e_type']}, not a static non-PIE executable "
                              "(ET_EXEC)")
        if header["e_machine"] != _EM[t.name]:
            raise KitemuError(f"{path}: machine {header['e_machine']}, not {_EM[t.name]} "
                              f"({t.name})")
        phdrs = [p.header for p in elf.iter_segments()]
        sections = list(elf.iter_sections())
    except ELFError as e:
        raise KitemuError(f"{path}: truncated or corrupt ELF executable ({e})") from None
    for p in phdrs:
        if p["p_type"] in ("PT_INTERP", "PT_DYNAMIC", "PT_TLS"):
            raise KitemuError(f"{path}: has {p['p_type']}: not a static executable without "
                              "TLS (the AOT loader is no dynamic loader)")

    # -- PT_LOAD segments: page-aligned mappings, each with its own permission
    areas = _process_areas(proc)
    segments: list[LoadSegment] = []
    loads = [p for p in phdrs if p["p_type"] == "PT_LOAD" and p["p_memsz"]]
    for i, p in enumerate(loads):
        perm = _perm(p["p_flags"])
        lo = p["p_vaddr"] & -page
        hi = (p["p_vaddr"] + p["p_memsz"] + page - 1) & -page
        if perm & Perm.W and perm & Perm.X:
            # never W and X at once; splitting it would mean guessing which
            # bytes are code. -z separate-loadable-segments never yields one.
            raise KitemuError(f"{path}: PT_LOAD[{i}] at {p['p_vaddr']:#x} is RWX; refused (W^X): "
                              "link without a linker script that merges code and data")
        for s in segments:
            if lo < s.addr + s.size and s.addr < hi:
                raise KitemuError(f"{path}: PT_LOAD[{i}] [{lo:#x}, {hi:#x}) shares a page with "
                                  f"{s.name} [{s.addr:#x}, {s.addr + s.size:#x}); each segment "
                                  "needs its own pages for its own permissions (link with "
                                  "-z separate-loadable-segments)")
        for area, (alo, ahi) in areas.items():
            if lo < ahi and alo < hi:
                raise KitemuError(f"{path}: PT_LOAD[{i}] [{lo:#x}, {hi:#x}) overlaps {area} "
                                  f"[{alo:#x}, {ahi:#x}); link at another image base")
        if p["p_filesz"] > p["p_memsz"] or p["p_offset"] + p["p_filesz"] > len(data):
            raise KitemuError(f"{path}: PT_LOAD[{i}]: contents lie outside the file")
        segments.append(LoadSegment(f"PT_LOAD[{i}]", lo, hi - lo, perm, p["p_vaddr"], p["p_memsz"]))
        m.map(lo, hi - lo, RW)
        m.write_raw(p["p_vaddr"], data[p["p_offset"]:p["p_offset"] + p["p_filesz"]])
        m.protect(lo, hi - lo, perm)        # flushes any translation of the range
    if not segments:
        raise KitemuError(f"{path}: no loadable segment")
    stages.mark("load", ", ".join(f"{s.name} {s.addr:#x}+{s.size:#x} {s.perm}" for s in segments))

    # -- symbols
    inputs = inputs or _InputSymbols()
    host = proc.machine.hostproc.addrs
    symtab = _symtab(path, data, 2)
    if not symtab:
        raise KitemuError(f"{path}: no .symtab (the AOT reference needs unstripped executables)")
    placed: list[PlacedSymbol] = []
    globals_: dict[str, int] = {}
    ifunc_syms: dict[int, list[str]] = {}           # resolver address -> IFUNC names
    local_names: dict[int, str] = {}
    current_file = path
    for sym in symtab:
        name, value, typ, shndx = sym.name, sym.value, sym.type, sym.shndx
        if typ == _STT_FILE:
            current_file = inputs.file_of.get(name, name)
            continue
        if not name or typ == _STT_SECTION or shndx == _SHN_UNDEF or name.startswith(("$", ".L")):
            continue
        if shndx == _SHN_ABS and host.get(name) == value:
            continue                                   # a --defsym'd host function
        kind = _STT_KIND.get(typ, f"type{typ}")
        local = sym.bind == _STB_LOCAL
        obj = current_file if local else inputs.defined.get(name, "<ld.lld>")
        placed.append(PlacedSymbol(name, value, sym.size, kind, obj, local))
        if kind == "ifunc":
            ifunc_syms.setdefault(value, []).append(name)
        if local:
            local_names.setdefault(value, name)
        else:
            globals_[name] = value

    # -- IRELATIVE relocations (static executables carry them in .rela.dyn)
    irel_type = _IRELATIVE[t.name]
    irels: list[tuple[int, int]] = []                   # (GOT slot, resolver)
    for sec in sections:
        if not isinstance(sec, RelocationSection) or not sec["sh_flags"] & 2:   # SHF_ALLOC
            continue
        if not sec.is_RELA():
            raise KitemuError(f"{path}: section {sec.name}: SHT_REL; expected RELA")
        for r in sec.iter_relocations():
            rtype = r["r_info_type"]
            if rtype == 0:
                continue
            if rtype != irel_type or r["r_info_sym"] != 0:
                raise KitemuError(f"{path}: section {sec.name}: dynamic relocation type {rtype} "
                                  f"at {r['r_offset']:#x}: a static executable may only carry "
                                  "IRELATIVE relocations")
            irels.append((r["r_offset"], r["r_addend"]))
    # .iplt entry i jumps through the slot of IRELATIVE i (lld adds both together)
    # .iplt entry i jumps through the slot of IRELATIVE i (lld creates both
    # together). An IFUNC with a canonical .iplt entry (its address is taken)
    # appears in .symtab as a FUNC at that entry; one only ever called keeps
    # STT_GNU_IFUNC and its resolver's address, which ``globals`` replaces by
    # the entry (the canonical address, as kitemu's stub is).
    global_at: dict[int, list[str]] = {}
    for name, value in globals_.items():
        global_at.setdefault(value, []).append(name)
    iplt_sec = next((s for s in sections if s.name == ".iplt"), None)
    iplt: dict[str, int] = {}
    ifuncs = []
    step = 0
    if irels and iplt_sec is not None and iplt_sec["sh_size"] % len(irels) == 0:
        step = iplt_sec["sh_size"] // len(irels)
    for i, (slot, resolver) in enumerate(irels):
        entry_addr = iplt_sec["sh_addr"] + i * step if step else None
        names = ifunc_syms.get(resolver) or global_at.get(entry_addr) \
            or [local_names.get(resolver, f"{resolver:#x}")]
        ifuncs.append((names[0], resolver, slot))
        if entry_addr is None:
            continue
        for name in names:
            iplt[name] = entry_addr
            placed.append(PlacedSymbol(f"{name}@iplt", entry_addr, step, "stub", "<ld.lld>", True))
            if globals_.get(name) == resolver:
                globals_[name] = entry_addr

    image = AotImage(t, path, elf.header["e_entry"], segments, globals_, placed, [], [], [],
                     ifuncs, iplt, stages)
    proc.image = image           # faults in resolvers are symbolized against it

    # -- IFUNC resolvers: glibc's apply_irel, before any constructor
    if ifuncs:
        for name, resolver, slot in ifuncs:
            proc.stage = f"ifunc resolver {name}"
            value, fault = proc.call(resolver, [])
            if fault is not None or proc.machine.hostproc.exit is not None:
                raise KitemuError(f"IFUNC resolver of {name!r} at {resolver:#x} did not return: "
                                  f"{fault.render() if fault else 'the program exited'}")
            _write_word(proc, segments, slot, value, path)
        stages.mark("ifunc resolvers", ", ".join(n for n, _, _ in ifuncs), len(ifuncs))
    proc.stage = "link"

    # -- constructor/destructor arrays (read after IRELATIVE, from memory)
    arrays = {"SHT_PREINIT_ARRAY": [], "SHT_INIT_ARRAY": [], "SHT_FINI_ARRAY": []}
    for sec in sections:
        if sec["sh_type"] in arrays and sec["sh_size"]:
            raw = m.read(sec["sh_addr"], sec["sh_size"])
            arrays[sec["sh_type"]] += [int.from_bytes(raw[i:i + 8], "little")
                                       for i in range(0, len(raw) - 7, 8)]
    image.preinit_array = arrays["SHT_PREINIT_ARRAY"]
    image.init_array = arrays["SHT_INIT_ARRAY"]
    image.fini_array = arrays["SHT_FINI_ARRAY"]
    return image


def _write_word(proc: JitProcess, segments: list[LoadSegment], addr: int, value: int,
                path: str) -> None:
    """Write a GOT slot: its page is made RW for the write (never W+X: an
    executable page loses X meanwhile), then gets its permission back."""
    seg = next((s for s in segments if s.addr <= addr and addr + 8 <= s.addr + s.size), None)
    if seg is None:
        raise KitemuError(f"{path}: IRELATIVE slot {addr:#x} lies outside every PT_LOAD")
    perm = seg.perm
    page = proc.host.page_size
    lo = addr & -page
    hi = (addr + 8 + page - 1) & -page
    m = proc.machine
    if not perm & Perm.W:
        m.protect(lo, hi - lo, RW)
    m.write_raw(addr, (value & ((1 << 64) - 1)).to_bytes(8, "little"))
    if not perm & Perm.W:
        m.protect(lo, hi - lo, perm)


# -- running --------------------------------------------------------------------

def aot_process(target: Target | str, stdout_sink=None) -> JitProcess:
    """A JitProcess laid out for an AOT image: host functions near it."""
    t = check_aot_target(target)
    return JitProcess(t, host_base=AOT_HOST_BASE, base=AOT_REGION_BASE,
                      capacity=AOT_REGION_CAPACITY, stdout_sink=stdout_sink)


def run_aot(object_paths, target: Target | str, entry: str = "main", args=(),
            timeout: float | None = None, *, program_name: str = "a.out",
            workdir: str | None = None, relax: bool = True, stdout_sink=None) -> RunResult:
    """Link ``object_paths`` with ld.lld (:func:`link_aot`; paths of ELF
    objects or archives, or loaded objects with a ``.path``), load the
    executable into a fresh :class:`JitProcess` (:func:`load_aot`) and run it
    with :meth:`JitProcess.run`: preinit/init arrays, ``entry(argc, argv)``
    with argv = [program_name, *args], atexit handlers, fini arrays.
    ``timeout`` (seconds) bounds each guest call, IFUNC resolvers included.
    The executable is written to ``workdir`` (default: a temporary
    directory, removed afterwards). Returns the RunResult a JIT run returns;
    bad inputs raise KitemuError (ConfigError: no ld.lld, Mach-O target;
    LinkError: lld's own message)."""
    t = check_aot_target(target)
    stages = StageLog()
    proc = aot_process(t, stdout_sink)
    if timeout is not None:
        proc.timeout = timeout
    with tempfile.TemporaryDirectory(prefix="kitemu-aot-") as tmp:
        exe, inputs, warnings = _link(object_paths, t, workdir or tmp, entry=entry,
                                      host_addrs=proc.hostproc.addrs,
                                      page_size=proc.host.page_size, relax=relax)
        stages.mark("aot link", f"ld.lld -> {exe}" + (f" ({warnings})" if warnings else ""))
        load_aot(proc, exe, inputs=inputs, stages=stages)
    return proc.run(entry, list(args), program_name=program_name, timeout=timeout)


# -- relocation-level cross-check -------------------------------------------------

@dataclass
class RelocCheck:
    """The result of :func:`cross_check_relocations`."""

    checked: dict[str, int] = field(default_factory=dict)      # relocation kind -> count
    mismatches: list[str] = field(default_factory=list)
    #: differences both ABIs allow (see :data:`WEAK_BRANCH_RULES`), described
    known: list[str] = field(default_factory=list)
    #: the two linked processes (kitemu's JIT; lld's -O0 --no-relax image),
    #: ready for ``run``
    jit: JitProcess | None = None
    aot: JitProcess | None = None

    @property
    def total(self) -> int:
        return sum(self.checked.values())


#: What lld makes of a direct branch/call to an undefined weak symbol in a
#: static link (lld's ``getRelocTargetVA``, ``R_PC`` on an undefined weak):
#: on AArch64 the branch goes to the next instruction (a BL becomes a no-op,
#: as AAELF64 allows), on RISC-V to itself (an endless loop "making the user
#: aware of the issue"). kitemu branches to address 0 (through an island
#: stub where 0 is out of reach), so executing it faults like a call through
#: a null pointer. C code only reaches such a call behind ``if (&f)``, so the
#: two are the same program; value lld writes -> why.
WEAK_BRANCH_RULES = {
    "aarch64": (4, "lld sends a branch to an undefined weak to the next instruction (a no-op); "
                   "kitemu to address 0"),
    "rv64": (0, "lld sends a call to an undefined weak to itself (an endless loop); kitemu to "
                "address 0"),
}


def parse_lld_map(text: str) -> dict[tuple[str, str], int]:
    """``(input path, input section name) -> address`` from an ld.lld
    ``-Map`` file (input-section lines: ``VMA LMA Size Align path:(name)``)."""
    out: dict[tuple[str, str], int] = {}
    for line in text.splitlines()[1:]:
        parts = line.split(None, 4)
        if len(parts) != 5 or not parts[4].endswith(")") or ":(" not in parts[4]:
            continue
        path, name = parts[4][:-1].rsplit(":(", 1)
        if path == "<internal>":
            continue
        key = (path, name)
        if key in out:
            raise KitemuError(f"lld map: input section {name} of {path} appears twice")
        out[key] = int(parts[0], 16)
    return out


def cross_check_relocations(object_paths, target: Target | str,
                            workdir: str | None = None) -> RelocCheck:
    """Every relocation kitemu's JIT applies, checked against the value
    ld.lld wrote for the same relocation.

    Both link the same objects: kitemu into a JitProcess, lld with ``-O0``
    (no section merging: every input section keeps its bytes and its map
    entry) and ``--no-relax`` (no instruction rewriting). For each kitemu
    relocation record the place moves to lld's layout (``-Map``), and the
    symbol kitemu bound (the record's ``S``) is translated to lld's address
    of the same thing: the same input section + offset, the host function
    (kitemu's canonical stub -> the --defsym address), the IFUNC's .iplt
    entry, 0 for an undefined weak. The formula is then evaluated with lld's
    addresses and compared with what lld's bytes decode to (the target's own
    fixup decoder; ``roundtrip`` for the kinds that keep only some bits):

    * ``S + A``, ``S + A - P``, ``Page(S + A) - Page(P)``: directly;
    * GOT formulas: the GOT entry lld's field points at must hold ``S``
      (aarch64 ``ADR_GOT_PAGE`` + ``LD64_GOT_LO12_NC`` and RISC-V
      ``GOT_HI20`` + ``PCREL_LO12_I`` as pairs);
    * RISC-V ``PCREL_LO12_*``: its ``PCREL_HI20``/``GOT_HI20`` at the label;
    * RISC-V ``ADD*``/``SUB*`` pairs: the final difference.

    A mismatch means kitemu and lld disagree on one relocation (a symbol
    bound differently, a formula or an encoding): each names the input,
    section, offset, kind, symbol and both values. ``object_paths`` are
    relocatable objects (paths or loaded objects; no archives: kitemu's
    Linker takes objects)."""
    from .link.symbols import HostTarget, IfuncTarget
    from .loader import load_object

    t = check_aot_target(target)
    arch = t.arch
    specs = {spec.name: spec for spec in arch.elf_relocs.values()}
    check = RelocCheck()
    with tempfile.TemporaryDirectory(prefix="kitemu-aotx-") as tmp:
        wd = workdir or tmp
        paths = input_paths(object_paths, wd)
        objects = [load_object(p) for p in paths]
        jit = JitProcess(t)
        image = jit.link(objects)
        proc = aot_process(t)
        map_path = os.path.join(wd, "aot.map")
        exe, inputs, _ = _link(paths, t, wd, host_addrs=proc.hostproc.addrs,
                               page_size=proc.host.page_size, relax=False,
                               extra_args=["-O0", f"-Map={map_path}"])
        load_aot(proc, exe, inputs=inputs)
        with open(map_path) as f:
            placed = parse_lld_map(f.read())
    mem = proc.machine
    aot_image = proc.image
    check.jit, check.aot = jit, proc

    # kitemu address -> lld address of the same thing
    stub_of = {a: tgt for tgt, a in image.stubs.items()}
    spans = sorted((a, a + objects[oi].sections[si].size, objects[oi].path,
                    objects[oi].sections[si].name) for (oi, si), a in image.section_addrs.items())

    def translate(addr: int, symbol: str) -> int | None:
        if symbol == "<weak undefined>" or symbol == f"{addr:#x}":   # an absolute symbol
            return addr
        tgt = stub_of.get(addr)
        if isinstance(tgt, HostTarget):
            return proc.hostproc.addrs[tgt.name]
        if isinstance(tgt, IfuncTarget):
            return aot_image.iplt.get(tgt.name)
        hits = [(lo, path, name) for lo, hi, path, name in spans if lo <= addr < hi] or \
               [(lo, path, name) for lo, hi, path, name in spans if addr == hi]
        for lo, path, name in hits:
            if (path, name) in placed:
                return placed[(path, name)] + addr - lo
        if addr == jit.mem.base and symbol.endswith("__dso_handle"):
            return AOT_BASE
        return None

    def read(addr: int, n: int = 8) -> bytes:
        return mem.read(addr, n)

    def decode(spec, addr: int) -> int:
        return spec.fixup.decode(read(addr, max(spec.fixup.size, 8)), 0)

    labels = {(o.path, s.name): s.value for o in objects for s in o.symbols if s.name}
    by_place = {(r.input, r.section, r.offset): r for r in image.records
                if specs[r.kind].formula.name != "NONE"}
    adds = {}
    got_pages: dict[tuple, int] = {}

    def fail(r, why: str) -> None:
        check.mismatches.append(f"{r.input}: section {r.section}: relocation {r.kind} at offset "
                                f"{r.offset:#x} against {r.symbol} + {r.addend:#x}: {why}")

    def s_aot(r) -> int | None:
        s = translate(r.target - r.addend, r.symbol)
        if s is None:
            fail(r, f"kitemu's target {r.target:#x} has no counterpart in lld's image")
        return s

    def got_holds(r, g: int, s: int) -> None:
        held = int.from_bytes(read(g), "little")
        if held != s:
            fail(r, f"lld's GOT entry {g:#x} holds {held:#x}, expected {s:#x}")

    for r in image.records:
        spec = specs[r.kind]
        f = spec.formula
        if f is F.NONE:
            continue
        base = placed.get((r.input, r.section))
        if base is None:
            fail(r, "lld's map does not place this input section")
            continue
        P = base + r.offset
        fx = spec.fixup
        got = decode(spec, P)
        check.checked[r.kind] = check.checked.get(r.kind, 0) + 1
        if spec.branch and r.symbol == "<weak undefined>" and arch.name in WEAK_BRANCH_RULES:
            value, why = WEAK_BRANCH_RULES[arch.name]
            where = (f"{r.input}: section {r.section}: relocation {r.kind} at offset "
                     f"{r.offset:#x} against an undefined weak symbol")
            if got == value:
                check.known.append(f"{where}: {why}")
            else:
                fail(r, f"lld wrote {got:#x}; expected {value:#x} ({why})")
            continue
        if f in (F.ABS, F.PCREL, F.PAGE_PCREL):
            s = s_aot(r)
            if s is None:
                continue
            v = {F.ABS: lambda: s + r.addend, F.PCREL: lambda: s + r.addend - P,
                 F.PAGE_PCREL: lambda: ((s + r.addend) & ~0xFFF) - (P & ~0xFFF)}[f]()
            want = fx.roundtrip(v)
            if (want - got) % (1 << (8 * fx.size)):
                fail(r, f"lld wrote {got:#x}, kitemu's formula with lld's addresses gives "
                        f"{want:#x} (S={s:#x}, P={P:#x})")
        elif f is F.GOT_PCREL:
            s = s_aot(r)
            if s is None:
                continue
            if fx.name.endswith("UTypeHi20"):
                continue              # checked with its PCREL_LO12 partner
            got_holds(r, got + P - r.addend, s)
        elif f is F.GOT_PAGE_PCREL:
            got_pages[(r.input, r.section, r.symbol)] = got + (P & ~0xFFF)
        elif f is F.GOT_ABS:
            s = s_aot(r)
            page_ = got_pages.get((r.input, r.section, r.symbol))
            if s is None or page_ is None:
                if page_ is None:
                    fail(r, "no ADR_GOT_PAGE partner before it")
                continue
            got_holds(r, page_ + (got & 0xFFF) - r.addend, s)
        elif f is F.PCREL_LO:
            label = labels.get((r.input, r.symbol))
            hi = by_place.get((r.input, r.section, label)) if label is not None else None
            if hi is None:
                fail(r, "no HI20 partner at its label")
                continue
            hs = translate(hi.target - hi.addend, hi.symbol)
            if hs is None:
                fail(hi, f"kitemu's target {hi.target:#x} has no counterpart in lld's image")
                continue
            hp = base + hi.offset
            full = decode(specs[hi.kind], hp) + got
            if specs[hi.kind].formula is F.GOT_PCREL:
                got_holds(r, hp + full - hi.addend, hs)
            elif full != hs + hi.addend - hp:
                fail(r, f"lld's HI20+LO12 pair gives {hp + full:#x}, expected "
                        f"{hs + hi.addend:#x}")
        elif f is F.ADD:
            adds[(r.input, r.section, r.offset)] = r
        elif f is F.SUB:
            a = adds.pop((r.input, r.section, r.offset), None)
            if a is None:
                fail(r, "no ADD partner at the same place")
                continue
            # kitemu: a.value = V0 + S1 + A1, r.value = a.value - (S2 + A2)
            obj = next(o for o in objects if o.path == r.input)
            sec = next(x for x in obj.sections.values() if x.name == r.section)
            v0 = fx.decode(bytes(sec.data[r.offset:r.offset + max(fx.size, 8)]).ljust(8, b"\0"), 0)
            s1 = translate(a.value - v0 - a.addend, a.symbol)
            s2 = translate(a.value - r.value - r.addend, r.symbol)
            if s1 is None or s2 is None:
                fail(r, "a symbol of the ADD/SUB pair has no counterpart in lld's image")
                continue
            want = v0 + s1 + a.addend - (s2 + r.addend)
            if (want - got) % (1 << (8 * fx.size)):
                fail(r, f"lld wrote {got:#x}, expected {want:#x}")
        else:
            fail(r, f"formula {f.name} is not cross-checked")
    for a in adds.values():
        fail(a, "ADD without its SUB partner")
    return check
