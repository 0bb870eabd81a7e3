"""Backtraces of a stopped call, on every target, through JIT frames of any
generation, host functions and stable entries.

:func:`backtrace` walks from a stopped call's registers (or registers given
by the caller) to the return sentinel (:data:`kitemu.runtime.SENTINEL`),
which every emulated call uses as its return address: the frame whose
return address is the sentinel is the outermost one (on the native backend,
whose calls go through an entry trampoline, the frame whose CFA reaches the
trampoline's stack pointer, ``stack_top_of_call()``). Each :class:`Frame`
says which function it is in (the symbol, or the body ``foo$body$N`` of a
reloadable function), the generation and ``file:line`` of that code (old
bodies keep their generation and their input's DWARF), and ``how`` its
caller was found:

``"cfi"``
    DWARF call frame information: an FDE covers the PC; its CFA rule and
    register rules (offset(N), val_offset(N), register, same value,
    undefined) give the caller's registers. Expressions
    (``DW_CFA_def_cfa_expression``, ``DW_CFA_expression``) are refused and
    the frame falls back to frame records.
``"frame-record"``
    the frame-pointer chain: x86-64 ``[rbp] = caller's rbp, [rbp+8] =
    return address``; AArch64 ``[x29] = caller's x29, [x29+8] = x30``
    (Darwin arm64 always keeps them); RISC-V ``[s0-16] = caller's s0,
    [s0-8] = ra`` (only with ``-fno-omit-frame-pointer``).
``"link-register"``
    a function that has no frame (yet, or any more): stopped before its
    prologue set the frame pointer, or at a return instruction. The return
    address is in the link register (AArch64 x30, RISC-V ra) or at
    ``[rsp]`` on x86-64.
``"host"``
    a host function (the host area): it unwinds as a leaf.
``"entry"``
    a stable entry of a reloadable function, or another linker stub (a
    canonical stub of a host function, a range-extension island, a
    pending stub): a single indirect jump, which unwinds as a leaf.

Where the CFI comes from
------------------------
* **ELF ``.eh_frame``** (``-fasynchronous-unwind-tables``; clang emits none
  for ``-ffreestanding`` code by default) is an allocated section: the linker
  lays it out in the rodata segment and applies its relocations (the FDEs'
  ``pc_begin`` as ``R_X86_64_PC32`` / ``R_AARCH64_PREL32`` /
  ``R_RISCV_32_PCREL``, RISC-V's ``ADD32``/``SUB32`` ranges and
  ``SET6``/``SUB6`` advance_loc deltas). It is therefore parsed **from
  memory**, at its runtime address: those bytes are exactly what a runtime
  unwinder (``__register_frame``) would get, relocated by the very fixups
  the code was linked with, including the linker's rule that an unwind
  table describes a reloadable function's *body* and not its stable entry.
  Relocating the input's bytes again here would only duplicate the linker.
* **``.debug_frame``** (``-g``; ELF and Mach-O x86-64 ``__DWARF,__debug_frame``)
  is never loaded: :class:`kitemu.loader.dwarf.DebugInfo` relocates it with
  kitemu's own fixups for the runtime addresses, as it does the other DWARF
  sections; its DWARFInfo's ``CFI_entries`` are used. The DebugInfo is the
  inspector's (one per input, shared with ``addr_to_sym``'s file:line).
* **Mach-O ``__TEXT,__eh_frame``** (x86-64 with unwind tables) is not
  loaded: the assembler resolved its ``pc_begin`` fields in the object's own
  address space. It is parsed from the object's bytes at the section's
  object address (``Section.addr``) and each FDE is moved to the runtime
  address of the section its ``pc_begin`` lies in.
* Darwin arm64 emits ``__compact_unwind`` only (not read): frame records.

pyelftools' :class:`~elftools.dwarf.callframe.CallFrameInfo` parses the
CIEs/FDEs and their instructions; this module builds the rows (pyelftools'
own decoder scales ``DW_CFA_def_cfa_sf`` by the code alignment factor and
rejects ``DW_CFA_GNU_args_size``), picks the row for a PC and evaluates it. FDE tables are built per input, on the first PC that falls in
that input's code, and kept with the image (inputs never change).

PCs of caller frames are return addresses: the FDE, the function and the
source line are looked up at ``pc - 1`` (inside the call instruction), so a
frame shows the line of its call -- except the caller of a signal frame
(an FDE whose CIE augmentation has ``S``), whose pc is the interrupted
instruction itself and is looked up as it is.

Limits: frame 0 inside an epilogue after the frame pointer was restored but
before the return instruction unwinds wrongly without CFI (and on AArch64
even with it: clang describes no epilogues there); a function without frame
pointer and without CFI (x86-64 / RISC-V ``-O2`` without ``-g`` or unwind
tables) cannot be unwound past: the walk stops (``Backtrace.complete`` is
False, ``reason`` says why) rather than guess; so does memory a rule
needs that cannot be read. kitemu delivers no signal into guest code, so
signal frames come only from hand-written CFI; host functions never call
back into guest code.
"""

from __future__ import annotations

import bisect
import io
from dataclasses import dataclass

import unicorn.arm64_const as A
import unicorn.riscv_const as R
import unicorn.x86_const as X

from ..errors import KitemuError
from ..loader.model import SectionKind

#: frames walked at most by default
DEFAULT_LIMIT = 64
_MASK = (1 << 64) - 1
#: a frame pointer further above the stack pointer than this is not one
_MAX_FRAME = 1 << 24


# -- registers ----------------------------------------------------------------------
@dataclass(frozen=True)
class _Regs:
    """DWARF register numbering of one arch, and how to read each register."""

    names: dict[int, str]        # DWARF number -> name
    uc: dict[int, int]           # DWARF number -> unicorn register id
    sp: int                      # DWARF number of the stack pointer
    fp: int                      # ... of the frame pointer
    lr: int | None               # ... of the link register (None: x86-64)
    pc_uc: int                   # unicorn id of the PC
    ra_column: int               # the return-address column CIEs use


_X64_DWARF = ["rax", "rdx", "rcx", "rbx", "rsi", "rdi", "rbp", "rsp",
              "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"]
_RV_ABI = ["zero", "ra", "sp", "gp", "tp", "t0", "t1", "t2", "s0", "s1"] + \
    [f"a{i}" for i in range(8)] + [f"s{i}" for i in range(2, 12)] + \
    [f"t{i}" for i in range(3, 7)]


def _arch_regs(name: str) -> _Regs:
    if name == "x64":
        names = dict(enumerate(_X64_DWARF))
        uc = {i: getattr(X, f"UC_X86_REG_{n.upper()}") for i, n in names.items()}
        return _Regs(names, uc, 7, 6, None, X.UC_X86_REG_RIP, 16)
    if name == "aarch64":
        names = {i: f"x{i}" for i in range(31)}
        names[31] = "sp"
        uc = {i: getattr(A, f"UC_ARM64_REG_X{i}") for i in range(29)}
        uc.update({29: A.UC_ARM64_REG_X29, 30: A.UC_ARM64_REG_X30, 31: A.UC_ARM64_REG_SP})
        return _Regs(names, uc, 31, 29, 30, A.UC_ARM64_REG_PC, 30)
    if name == "rv64":
        names = dict(enumerate(_RV_ABI))
        uc = {i: getattr(R, f"UC_RISCV_REG_X{i}") for i in range(1, 32)}
        del names[0]
        return _Regs(names, uc, 2, 8, 1, R.UC_RISCV_REG_PC, 1)
    raise KitemuError(f"no unwinder for arch {name!r}")


def _aliases(arch: str) -> dict[str, str]:
    if arch == "x64":
        return {"pc": "rip", "sp": "rsp", "fp": "rbp"}
    if arch == "aarch64":
        return {"fp": "x29", "lr": "x30", "x31": "sp"}
    return {"fp": "s0", **{f"x{i}": n for i, n in enumerate(_RV_ABI)}}


# -- results ------------------------------------------------------------------------
@dataclass(frozen=True)
class Frame:
    """One frame of a backtrace (index 0: where the call stopped)."""

    index: int
    pc: int                   # frame 0: the stop PC; others: the return address
    sp: int                   # the frame's stack pointer
    cfa: int | None           # its canonical frame address (the caller's sp)
    function: str | None      # C spelling: c, value$body$0, strlen; None: unknown
    generation: int | None    # of the code at pc (None: host or unknown)
    file: str | None
    line: int | None
    how: str                  # cfi | frame-record | link-register | host | entry
    symbol: str | None = None     # as the image spells it (_c on Mach-O)
    offset: int = 0               # of the looked-up address from the symbol
    table: str | None = None      # the section whose FDE unwound it (how == "cfi")

    def render(self) -> str:
        where = self.function or "??"
        if self.offset:
            where += f"+{self.offset:#x}"
        text = f"#{self.index:<2} {self.pc:#014x} {where}"
        if self.generation is not None:
            text += f" (gen {self.generation})"
        if self.file:
            text += f" at {self.file}:{self.line}"
        return text + f"  [{self.how}]"


class Backtrace(list):
    """The frames, innermost first. ``complete``: the walk reached the
    return sentinel; otherwise ``reason`` says where and why it stopped."""

    complete: bool = False
    reason: str = ""

    def render(self) -> str:
        lines = [f.render() for f in self]
        if not self.complete:
            lines.append(f"   (backtrace stopped: {self.reason})")
        return "\n".join(lines)

    @property
    def functions(self) -> list[str | None]:
        return [f.function for f in self]


# -- CFI tables ---------------------------------------------------------------------
@dataclass
class _Fde:
    start: int                # runtime
    end: int
    delta: int                # runtime - table address space
    rows: list                # pyelftools decoded rows (pc in table space)
    pcs: list[int]
    ra_column: int
    table: str
    problem: str | None = None
    #: the CIE's augmentation has 'S': a signal frame, whose caller's pc is
    #: the interrupted instruction itself (looked up at pc, not pc - 1)
    signal: bool = False


class _ImageTables:
    """Per image: a code-section index, FDEs per input, stub ranges."""

    def __init__(self, image):
        self.image = image
        self.fdes: dict[int, list[_Fde]] = {}
        self.fde_starts: dict[int, list[int]] = {}
        self.problems: dict[int, list[str]] = {}
        self._sections_count = -1
        self._spans: list[tuple[int, int, int]] = []
        self._starts: list[int] = []
        self._stubs_gen = None
        self._stubs: list[tuple[int, int]] = []

    # where code lives --------------------------------------------------------------
    def input_at(self, addr: int) -> int | None:
        image = self.image
        if len(image.section_addrs) != self._sections_count:
            spans = []
            for (oi, si), a in image.section_addrs.items():
                sec = image.inputs[oi].sections[si]
                if sec.kind is SectionKind.TEXT and sec.size:
                    spans.append((a, a + sec.size, oi))
            spans.sort()
            self._spans, self._starts = spans, [s[0] for s in spans]
            self._sections_count = len(image.section_addrs)
        i = bisect.bisect_right(self._starts, addr) - 1
        if i >= 0 and addr < self._spans[i][1]:
            return self._spans[i][2]
        return None

    def is_stub(self, addr: int) -> bool:
        """A stable entry or a linker stub (canonical, island, pending)."""
        image = self.image
        if self._stubs_gen != image.generation:
            ranges = []
            arch = image.arch
            for rf in image.reloadables.values():
                ranges.append((rf.entry, rf.entry + len(arch.indirect_jump(rf.entry, rf.slot))))
            for s in image.symbols:
                if s.kind == "stub":
                    ranges.append((s.addr, s.addr + max(s.size, 1)))
            self._stubs = sorted(ranges)
            self._stubs_gen = image.generation
        i = bisect.bisect_right(self._stubs, (addr, 1 << 64)) - 1
        return i >= 0 and self._stubs[i][0] <= addr < self._stubs[i][1]

    # FDEs ---------------------------------------------------------------------------
    def fde_for(self, oi: int, pc: int) -> _Fde | None:
        fdes = self.fdes.get(oi)
        if fdes is None:
            fdes = self._load(oi)
        starts = self.fde_starts[oi]
        i = bisect.bisect_right(starts, pc) - 1
        while i >= 0:
            f = fdes[i]
            if f.start <= pc < f.end:
                return f
            if f.start + (1 << 20) < pc:
                break
            i -= 1
        return None

    def _load(self, oi: int) -> list[_Fde]:
        image = self.image
        obj = image.inputs[oi]
        problems = self.problems.setdefault(oi, [])
        found: list[_Fde] = []
        for si, sec in obj.sections.items():
            try:
                if sec.name == ".eh_frame" and (oi, si) in image.section_addrs:
                    addr = image.section_addrs[(oi, si)]
                    data = image.mem.read(addr, sec.size)
                    found += _parse(data, addr, True, 0, ".eh_frame")
                elif sec.name == "__TEXT,__eh_frame" and sec.data:
                    found += self._macho_eh_frame(oi, sec)
            except Exception as e:     # malformed CFI costs unwinding, never the walk
                problems.append(f"{obj.path}: {sec.name}: {type(e).__name__}: {e}")
        dwarf = _debug_info(image, oi)
        if dwarf is not None:
            try:
                if dwarf.has_CFI():
                    table = "__DWARF,__debug_frame" if obj.format == "macho" else ".debug_frame"
                    found += _entries(dwarf.CFI_entries(), 0, table)
            except Exception as e:
                problems.append(f"{obj.path}: debug_frame: {type(e).__name__}: {e}")
        # .eh_frame first: at one start address, the runtime table wins
        order = {".eh_frame": 0, "__TEXT,__eh_frame": 0}
        found = [f for f in found if f.end > f.start and f.start != 0]
        found.sort(key=lambda f: (f.start, order.get(f.table, 1)))
        dedup: list[_Fde] = []
        for f in found:
            if dedup and dedup[-1].start == f.start:
                continue
            dedup.append(f)
        self.fdes[oi] = dedup
        self.fde_starts[oi] = [f.start for f in dedup]
        return dedup

    def _macho_eh_frame(self, oi: int, sec) -> list[_Fde]:
        """``__TEXT,__eh_frame`` in the object's address space: each FDE
        moves with the section its pc_begin lies in."""
        image = self.image
        obj = image.inputs[oi]
        out = []
        for f in _parse(sec.data, sec.addr, True, 0, sec.name):
            for si, s in obj.sections.items():
                if s.kind is SectionKind.TEXT and s.addr <= f.start < s.addr + max(s.size, 1):
                    base = image.section_addrs.get((oi, si))
                    if base is not None:
                        delta = base - s.addr
                        f.start += delta
                        f.end += delta
                        f.delta = delta
                        out.append(f)
                    break
        return out


def _parse(data: bytes, address: int, eh: bool, delta: int, table: str) -> list[_Fde]:
    from elftools.dwarf.callframe import CallFrameInfo
    from elftools.dwarf.structs import DWARFStructs
    structs = DWARFStructs(little_endian=True, dwarf_format=32, address_size=8)
    cfi = CallFrameInfo(io.BytesIO(data), len(data), address, structs, for_eh_frame=eh)
    return _entries(cfi.get_entries(), delta, table)


def _entries(entries, delta: int, table: str) -> list[_Fde]:
    from elftools.dwarf.callframe import FDE
    out = []
    for e in entries:
        if not isinstance(e, FDE):
            continue
        # pyelftools does not wrap a PC-relative 8-byte pointer (Mach-O)
        start = e["initial_location"] & _MASK
        size = e["address_range"]
        problem = None
        try:
            rows = _rows(e)
        except Exception as ex:             # an opcode that cannot be decoded
            rows, problem = [], f"{type(ex).__name__}: {ex}"
        ra = e.cie["return_address_register"]
        signal = b"S" in bytes(e.cie.header.get("augmentation") or b"")
        out.append(_Fde(start + delta, start + delta + size, delta, rows,
                        [r["pc"] & _MASK for r in rows], ra, table, problem, signal))
    return out


def _rows(fde) -> list[dict]:
    """The FDE's table rows ({"pc", "cfa": CFARule, column: RegisterRule}),
    from the instructions pyelftools parsed. Built here rather than by
    ``get_decoded()``: pyelftools 0.33 scales DW_CFA_def_cfa_sf by the code
    alignment factor (the data one is right) and cannot decode
    DW_CFA_GNU_args_size (which says nothing about the CFA or registers)."""
    from elftools.dwarf.callframe import CFARule, RegisterRule as RR
    from elftools.dwarf.constants import DW_CFA as O
    cie = fde.cie
    caf, daf = cie["code_alignment_factor"], cie["data_alignment_factor"]
    rows: list[dict] = []
    row: dict = {"pc": fde["initial_location"], "cfa": CFARule(reg=None, offset=0)}
    initial: dict = {}
    stack: list[dict] = []

    def run(instructions, in_fde: bool) -> None:
        nonlocal row
        for ins in instructions:
            op, a = ins.opcode, ins.args
            if op in (O.advance_loc, O.advance_loc1, O.advance_loc2, O.advance_loc4):
                if in_fde:
                    rows.append(dict(row))
                row["pc"] += a[0] * caf
            elif op == O.set_loc:
                if in_fde:
                    rows.append(dict(row))
                row["pc"] = a[0]
            elif op == O.def_cfa:
                row["cfa"] = CFARule(reg=a[0], offset=a[1])
            elif op == O.def_cfa_sf:
                row["cfa"] = CFARule(reg=a[0], offset=a[1] * daf)
            elif op == O.def_cfa_register:
                row["cfa"] = CFARule(reg=a[0], offset=row["cfa"].offset)
            elif op == O.def_cfa_offset:
                row["cfa"] = CFARule(reg=row["cfa"].reg, offset=a[0])
            elif op == O.def_cfa_offset_sf:
                row["cfa"] = CFARule(reg=row["cfa"].reg, offset=a[0] * daf)
            elif op == O.def_cfa_expression:
                row["cfa"] = CFARule(expr=a[0])
            elif op == O.undefined:
                row[a[0]] = RR(RR.UNDEFINED)
            elif op == O.same_value:
                row[a[0]] = RR(RR.SAME_VALUE)
            elif op in (O.offset, O.offset_extended, O.offset_extended_sf):
                row[a[0]] = RR(RR.OFFSET, a[1] * daf)
            elif op in (O.val_offset, O.val_offset_sf):
                row[a[0]] = RR(RR.VAL_OFFSET, a[1] * daf)
            elif op == O.register:
                row[a[0]] = RR(RR.REGISTER, a[1])
            elif op == O.expression:
                row[a[0]] = RR(RR.EXPRESSION, a[1])
            elif op == O.val_expression:
                row[a[0]] = RR(RR.VAL_EXPRESSION, a[1])
            elif op in (O.restore, O.restore_extended):
                if a[0] in initial:                  # the CIE's rule for it
                    row[a[0]] = initial[a[0]]
                else:
                    row.pop(a[0], None)
            elif op == O.remember_state:
                stack.append(dict(row))
            elif op == O.restore_state:
                if not stack:
                    raise ValueError("DW_CFA_restore_state without a remembered state")
                row = dict(stack.pop(), pc=row["pc"])
            elif op in (O.nop, O.GNU_args_size, O.AARCH64_negate_ra_state):
                pass
            else:
                raise ValueError(f"unknown CFI opcode {int(op):#x}")

    run(cie.instructions, False)
    initial = {k: v for k, v in row.items() if k not in ("pc", "cfa")}
    run(fde.instructions, True)
    rows.append(row)
    return rows


def _debug_info(image, oi: int):
    """The input's DWARFInfo over relocated sections, through the
    inspector's DebugInfo cache (one per input)."""
    from ..inspect.view import inspector
    ins = inspector(image)
    info = ins._debug.get(oi)
    if info is None:
        info = ins._debug[oi] = ins._load_debug(oi)
    if info is False:
        return None
    return info.dwarfinfo


def _tables(image) -> _ImageTables:
    t = getattr(image, "_unwind_tables", None)
    if t is None:
        t = image._unwind_tables = _ImageTables(image)
    return t


# -- instruction patterns (frames without CFI) ------------------------------------
def _is_return(arch: str, code: bytes) -> bool:
    if arch == "x64":
        return code[:1] in (b"\xc3", b"\xc2") or code[:2] == b"\xf3\xc3"
    if arch == "aarch64":
        return len(code) >= 4 and int.from_bytes(code[:4], "little") & 0xFFFFFC1F == 0xD65F0000
    if arch == "rv64":
        half = int.from_bytes(code[:2], "little")
        if half & 3 != 3:
            return half == 0x8082                     # c.jr ra
        return len(code) >= 4 and int.from_bytes(code[:4], "little") == 0x00008067  # jalr x0, 0(ra)
    return False


def _prologue(arch: str, code: bytes, upto: int) -> tuple[bool, int, int | None]:
    """Scan a function's code up to offset ``upto`` (exclusive: the
    instructions already run, in a straight-line prologue). Returns
    ``(frame pointer set, bytes the stack pointer went down, offset of the
    saved frame-pointer/return-address pair from sp when pushed but not yet
    the frame pointer (x86-64 ``push rbp``))``."""
    if arch == "x64":
        if upto >= 1 and code[:1] == b"\x55":
            if upto >= 4 and code[1:4] in (b"\x48\x89\xe5", b"\x48\x8b\xec"):
                return True, 8, None
            return False, 8, 0
        return False, 0, None
    down = 0
    if arch == "aarch64":
        for off in range(0, min(upto, len(code) - 3), 4):
            w = int.from_bytes(code[off:off + 4], "little")
            if w & 0xFFC003FF == 0x910003FD:                 # add x29, sp, #imm (mov x29, sp)
                return True, down, None
            if w & 0xFF8003FF == 0xD10003FF:                 # sub sp, sp, #imm{, lsl 12}
                imm = (w >> 10) & 0xFFF
                down += imm << 12 if w & (1 << 22) else imm
            elif w & 0xFFC003E0 == 0xA98003E0:               # stp xA, xB, [sp, #-imm]!
                imm7 = (w >> 15) & 0x7F
                down -= (imm7 - 128 if imm7 & 64 else imm7) * 8
        return False, down, None
    if arch == "rv64":
        off = 0
        while off < upto and off + 2 <= len(code):
            half = int.from_bytes(code[off:off + 2], "little")
            if half & 3 != 3:                                 # compressed
                if half & 0xE01F == 0 and half:              # c.addi4spn s0, sp, imm
                    return True, down, None
                if half & 0xEF83 == 0x6101:                  # c.addi16sp sp, imm
                    imm = ((half >> 12) & 1) << 9 | ((half >> 6) & 1) << 4 | \
                        ((half >> 5) & 1) << 6 | ((half >> 3) & 3) << 7 | ((half >> 2) & 1) << 5
                    down -= imm - (1 << 10) if imm & (1 << 9) else imm
                elif half & 0xEF83 == 0x0101:                # c.addi sp, imm
                    imm = ((half >> 12) & 1) << 5 | (half >> 2) & 0x1F
                    down -= imm - 64 if imm & 32 else imm
                off += 2
                continue
            if off + 4 > len(code):
                break
            w = int.from_bytes(code[off:off + 4], "little")
            imm = w >> 20
            imm = imm - 4096 if imm & 2048 else imm
            if w & 0xFFFFF == 0x10413:                       # addi s0, sp, imm
                return True, down, None
            if w & 0xFFFFF == 0x10113:                       # addi sp, sp, imm
                down -= imm
            off += 4
        return False, down, None
    return False, 0, None


# -- the walk ---------------------------------------------------------------------
class _Unreadable(Exception):
    """A frame's unwinding needs memory that cannot be read."""

    def __init__(self, addr: int, how: str):
        super().__init__(addr, how)
        self.addr, self.how = addr, how


class _Walker:
    use_cfi = True
    #: the frame just unwound is a signal frame (CIE augmentation 'S')
    signal = False

    def __init__(self, proc, regs: dict[int, int], pc: int):
        from ..inspect.view import inspector
        from ..runtime import HOST_BASE, SENTINEL
        self.proc = proc
        self.image = proc.image
        self.arch = proc.target.arch.name
        self.target = proc.target
        self.R = _arch_regs(self.arch)
        self.regs, self.pc = regs, pc
        self.sentinel = SENTINEL
        self.tables = _tables(self.image) if self.image is not None else None
        self.inspector = inspector(self.image) if self.image is not None else None
        # the native backend calls through an entry trampoline, not the
        # sentinel: the outermost frame's CFA is the trampoline's sp
        top = getattr(proc, "stack_top_of_call", None)
        self.call_top = top() if callable(top) else None
        from ..hostlib import HOST_SLOT
        hp = proc.machine.hostproc
        addrs = dict(getattr(hp, "addrs", {}) or {})
        self.host_names = {a: n for n, a in addrs.items()}
        self.host_slot = HOST_SLOT
        # the emulator's host area: 16-byte slots from host_base; the native
        # backend's host functions are callbacks anywhere (exact addresses)
        base = getattr(proc, "host_base", HOST_BASE)
        end = base + HOST_SLOT * max(len(addrs), 1)
        if all(base <= a < end for a in addrs.values()):
            self.host = (base, end)
        else:
            self.host = (0, 0)

    def is_host(self, addr: int) -> bool:
        return self.host[0] <= addr < self.host[1] or addr in self.host_names

    def read64(self, addr: int, how: str) -> int:
        try:
            return int.from_bytes(self.proc.machine.read(addr & _MASK, 8), "little")
        except Exception:
            raise _Unreadable(addr & _MASK, how) from None

    def c_name(self, name: str | None) -> str | None:
        p = self.target.symbol_prefix
        if name and p and name.startswith(p):
            return name[len(p):]
        return name

    def code_at(self, addr: int, size: int) -> bytes:
        try:
            return self.proc.machine.read(addr, size)
        except Exception:
            return b""

    def valid_return(self, ra: int) -> bool:
        if ra == self.sentinel:
            return True
        if self.is_host(ra):
            return True
        return self.tables is not None and self.tables.input_at(ra) is not None or \
            (self.tables is not None and self.tables.is_stub(ra))

    # ---------------------------------------------------------------------------
    def walk(self, limit: int) -> Backtrace:
        out = Backtrace()
        regs, pc = dict(self.regs), self.pc
        seen: set[tuple[int, int]] = set()
        exact = True                  # frame 0, or the caller of a signal frame
        for index in range(limit):
            lookup = pc if exact else pc - 1
            sp = regs[self.R.sp]
            self.signal = False
            try:
                result = self.unwind(index, pc, lookup, regs)
            except _Unreadable as e:
                out.append(self.frame(index, pc, lookup, sp, None, e.how, None))
                out.reason = (f"frame #{index} ({e.how}): memory at {e.addr:#x} is not "
                              "readable")
                return out
            how, cfa, new_regs, ra, table, problem = result
            exact = self.signal
            out.append(self.frame(index, pc, lookup, sp, cfa, how, table))
            if problem is not None:
                out.reason = problem
                return out
            if ra == self.sentinel or (self.call_top is not None and cfa is not None
                                       and cfa >= self.call_top):
                out.complete = True
                return out
            if not self.valid_return(ra):
                out.reason = (f"frame #{index} ({how}) gives return address {ra:#x}, which is "
                              "not code")
                return out
            key = (ra, new_regs[self.R.sp])
            if key in seen or new_regs[self.R.sp] < sp:
                out.reason = f"frame #{index} ({how}) does not move up the stack"
                return out
            seen.add(key)
            regs, pc = new_regs, ra
        out.reason = f"limit of {limit} frames reached"
        return out

    def frame(self, index, pc, lookup, sp, cfa, how, table) -> Frame:
        if how == "host" or self.is_host(lookup):
            slot = lookup if lookup in self.host_names else \
                lookup - (lookup - self.host[0]) % self.host_slot
            name = self.host_names.get(slot)
            return Frame(index, pc, sp, cfa, self.c_name(name), None, None, None, how, name,
                         lookup - slot, None)
        if self.inspector is None:
            return Frame(index, pc, sp, cfa, None, None, None, None, how)
        info = self.inspector.addr_to_sym(lookup)
        offset = info.offset + (pc - lookup) if info.symbol else 0
        return Frame(index, pc, sp, cfa, self.c_name(info.symbol), info.generation, info.file,
                     info.line, how, info.symbol, offset, table)

    # ---------------------------------------------------------------------------
    def unwind(self, index: int, pc: int, lookup: int, regs: dict[int, int]):
        """(how, cfa, caller registers, return address, table, problem)."""
        R = self.R
        if self.is_host(pc):
            return self.leaf("host", regs, 0)
        if self.tables is not None and self.tables.is_stub(lookup):
            return self.leaf("entry", regs, 0)
        if index == 0 and _is_return(self.arch, self.code_at(pc, 4)):
            return self.leaf("link-register", regs, 0)
        oi = self.tables.input_at(lookup) if self.tables is not None else None
        if oi is not None and self.use_cfi:
            fde = self.tables.fde_for(oi, lookup)
            if fde is not None and fde.problem is None:
                done = self.cfi(fde, lookup, regs)
                if done is not None:
                    return done
        if index == 0:
            start = self.function_start(pc)
            if start is not None:
                code = self.code_at(start, min(pc - start + 8, 4096))
                frame_set, down, pushed = _prologue(self.arch, code, pc - start)
                if not frame_set:
                    if pushed is not None:                # x86-64: after push rbp
                        return self.record(regs, regs[R.sp] + pushed)
                    return self.leaf("link-register", regs, down)
        return self.record(regs, regs.get(R.fp, 0))

    def function_start(self, pc: int) -> int | None:
        if self.inspector is None:
            return None
        info = self.inspector.addr_to_sym(pc)
        if info.symbol is None:
            return None
        return pc - info.offset

    def leaf(self, how: str, regs: dict[int, int], down: int):
        """No frame: the return address is in the link register, or at
        [sp + down] on x86-64; the caller's sp is sp + down (+8 popped)."""
        R = self.R
        new = dict(regs)
        sp = regs[R.sp] + down
        if R.lr is None:
            ra = self.read64(sp, how)
            cfa = sp + 8
        else:
            ra = regs[R.lr]
            cfa = sp
        new[R.sp] = cfa
        return how, cfa, new, ra, None, None

    def record(self, regs: dict[int, int], fp: int):
        """The frame record at ``fp``."""
        R = self.R
        sp = regs[R.sp]
        if fp < sp or fp - sp > _MAX_FRAME or fp % 8:
            return ("frame-record", None, regs, 0, None,
                    f"no CFI covers the frame's pc and its frame pointer {fp:#x} is not a "
                    f"frame record above sp {sp:#x}")
        new = dict(regs)
        if self.arch == "rv64":
            ra, saved = self.read64(fp - 8, "frame-record"), self.read64(fp - 16, "frame-record")
            cfa = fp
        else:
            saved, ra = self.read64(fp, "frame-record"), self.read64(fp + 8, "frame-record")
            cfa = fp + 16
        new[R.fp] = saved
        new[R.sp] = cfa
        if R.lr is not None:
            new[R.lr] = ra
        return "frame-record", cfa, new, ra, None, None

    def cfi(self, fde: _Fde, lookup: int, regs: dict[int, int]):
        from elftools.dwarf.callframe import RegisterRule as RR
        i = bisect.bisect_right(fde.pcs, lookup - fde.delta) - 1
        if i < 0:
            return None
        row = fde.rows[i]
        rule = row["cfa"]
        if rule.expr is not None or rule.reg is None or rule.reg not in regs:
            return None                      # refused: frame records instead
        cfa = (regs[rule.reg] + rule.offset) & _MASK
        self.signal = fde.signal
        new = dict(regs)
        ra_col = fde.ra_column
        ra_value = regs.get(ra_col) if ra_col in regs else None
        for col, rr in row.items():
            if col in ("pc", "cfa"):
                continue
            if rr.type == RR.OFFSET:
                value = self.read64(cfa + rr.arg, "cfi")
            elif rr.type == RR.VAL_OFFSET:
                value = cfa + rr.arg
            elif rr.type == RR.REGISTER:
                if rr.arg not in regs:
                    return None
                value = regs[rr.arg]
            elif rr.type == RR.SAME_VALUE:
                continue
            elif rr.type == RR.UNDEFINED:
                if col == ra_col:            # no caller: the outermost frame
                    return ("cfi", cfa, new, self.sentinel, fde.table, None)
                new.pop(col, None)
                continue
            else:                            # expressions, architectural
                return None
            if col == ra_col:
                ra_value = value
            if col in self.R.uc or col == self.R.sp:
                new[col] = value
        if ra_value is None:
            return None
        new[self.R.sp] = cfa
        return "cfi", cfa, new, ra_value, fde.table, None


# -- entry point ------------------------------------------------------------------
def read_registers(proc) -> tuple[dict[int, int], int]:
    """The machine's registers in DWARF numbering, and the PC."""
    R = _arch_regs(proc.target.arch.name)
    m = proc.machine
    return {n: m.reg(u) for n, u in R.uc.items()}, m.reg(R.pc_uc)


def backtrace(proc, limit: int = DEFAULT_LIMIT, regs: dict[str, int] | None = None, *,
              cfi: bool = True) -> Backtrace:
    """The frames of ``proc``'s stopped call (:attr:`JitProcess.stopped`),
    innermost first, up to ``limit``; see the module docstring.

    ``regs`` gives registers by name instead (``pc``, ``sp``, ``fp``,
    ``lr``/``ra`` and the arch's own names: ``rip``, ``rbp``, ``x29``,
    ``s0``...); registers it does not name are read from the machine. A
    process with no stopped call needs ``regs``. ``cfi=False`` ignores
    the CFI tables (frame records and link registers only: a cross-check)."""
    if regs is None and not getattr(proc, "stopped", False):
        raise KitemuError("no call is stopped: backtrace() needs a stopped call "
                          "(start_call at a breakpoint) or registers")
    arch = proc.target.arch.name
    R = _arch_regs(arch)
    values, pc = read_registers(proc)
    if regs:
        by_name = {n: i for i, n in R.names.items()}
        aliases = _aliases(arch)
        for name, value in regs.items():
            if isinstance(value, bool) or not isinstance(value, int):
                raise KitemuError(f"register {name!r}: {value!r} is not an integer")
            value &= _MASK
            key = aliases.get(name.lower(), name.lower())
            if key in ("pc", "rip"):
                pc = value
            elif key in by_name:
                values[by_name[key]] = value
            else:
                raise KitemuError(f"unknown register {name!r} for {arch}")
    walker = _Walker(proc, values, pc)
    walker.use_cfi = cfi
    return walker.walk(max(1, limit))


__all__ = ["Backtrace", "Frame", "backtrace", "read_registers"]
