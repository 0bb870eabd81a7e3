"""Single-stepping a stopped call: exactly one instruction, in place or displaced.

A call stopped by :meth:`JitProcess.start_call`/:meth:`JitProcess.resume`
(``proc.stopped``; registers live in ``proc.machine``) is moved on by one
instruction with :meth:`Stepper.step`. Neither mechanism uses a global
per-instruction hook or ``emu_start(count=...)`` (unicorn flushes every
translated block when a counted run ends): a step is a normal
:meth:`JitProcess.resume` with *one-shot breakpoints* -- exact-address code
hooks (:meth:`UnicornMachine.add_breakpoint`) added for this step only, on
the addresses where the instruction can go, and removed afterwards. They are
breakpoints rather than private hooks because the host-function range hook
yields to breakpoints (a step that lands on a host function stops before the
function's body runs).

**In place.** The instruction executes at its own address. Its successors
are computed from the registers before it runs: the fall-through, a direct
target, an indirect target (``ret`` reads ``[rsp]`` / ``x30`` / ``ra``,
``jmp rax``, ``br x16``, ``jalr``), both ways of a conditional branch (its
condition is never evaluated here). A breakpoint on the stepped instruction
does not stop the step: it is passed over once, as :meth:`resume` does, or,
when the instruction is not one of its own successors, left out for the
step (an x86 ``rep`` string instruction calls its address's hooks once per
iteration).

**Displaced.** The instruction is copied to a scratch page (64 KiB at
:data:`kitemu.runtime.STEP_SCRATCH`, just below the return-sentinel page,
mapped RX once per machine and written host-side, translation flushed) and
executed there, so a breakpoint on it stays in place; that is what a
debugger needs to step over a breakpoint without removing it, with other
code (another thread of a real host) never seeing it missing. The copy is
followed by two *landing pads* (the arch's trap instruction)::

    scratch + 0      the copy (same length as the original)
    scratch + len    pad F: fall-through          -> PC = from + len
    scratch + len+T  pad T: taken (T = trap size) -> PC = the original target

PC-relative branches are re-encoded to aim at pad T (so the offset is
``len + T`` on aarch64/rv64: GDB's "offset 8", and 2 past pad F on x86-64);
branches to absolute targets (register, stack) run as they are and land on a
one-shot breakpoint at the target they read. Execution therefore always ends
on a pad or on a computed target, then the real PC is set and the fixups
below are applied. A fault *inside* the copy gives back every register as it
was and reports the original address (the instruction had no effect: all
faults here are precise); a fault at the branch target (fetch from unmapped
memory) is reported where it happened, after the branch's own fixups.

Per architecture (the classes of issue 8; the x86-64 and AArch64 fixups
follow the ideas of GDB's displaced stepping, with no code taken from it;
GDB has none for RISC-V):

* **x86-64** -- RIP-relative operands: the disp32 is re-encoded relative to
  the copy when the scratch page can reach the operand; otherwise ModRM is
  rewritten to ``[reg + disp32]`` through a register the instruction does not
  touch (capstone's implicit + explicit register access; rsi/rdi/rbp first,
  as no ModRM instruction uses them implicitly), loaded with ``from + len``
  and given back afterwards (REX.B, or the inverted B of VEX/EVEX/XOP,
  cleared so the base is that low register). Relative ``jmp``/``jcc``/``loop``/``jrcxz``/``call``:
  rel8/rel32 re-encoded to pad T; ``call`` pushes the copy's return address,
  which is then overwritten with the ORIGINAL one (``from + len``). ``ret``
  (and ``ret imm16``), ``jmp``/``call`` through a register or memory: run in
  the copy, land on the target read beforehand; an indirect ``call`` gets its
  pushed return address fixed the same way. Far transfers and ``iret`` cannot
  be stepped (:class:`StepError`).
* **AArch64** -- ``B``/``BL``, ``B.cond``, ``CBZ``/``CBNZ``, ``TBZ``/``TBNZ``:
  re-encoded to pad T; ``BL`` then sets ``x30 = from + 4``. ``ADR``/``ADRP``:
  the value is computed into Rd and the copy is a ``NOP``. ``LDR``/``LDRSW``
  (literal), also the SIMD&FP ``LDR St/Dt/Qt`` forms: a base register (Rt
  itself, or ``x0`` given back afterwards) is loaded with the literal's
  address and the copy is ``LDR Rt, [Xbase]``; ``PRFM`` (literal) becomes a
  ``NOP``. ``BR``/``BLR``/``RET``: run in the copy, land on the register's
  value; ``BLR`` then sets ``x30 = from + 4``. Falls back in place:
  exclusive loads/stores (``LDXR``/``STXR``/``LDAXR``/``STLXR``/``LDXP``...:
  the copy would break the exclusive monitor a real host clears on the
  trap), pointer-authenticated branches (``BRAA``/``RETAA``..., target
  stripped of its PAC for the one-shot breakpoint). ``ERET``/``DRPS``:
  :class:`StepError`.
* **RISC-V 64** -- ``AUIPC``: Rd computed, the copy is a ``NOP``.
  ``JAL``: re-encoded to pad T with ``rd = x0``, then ``rd = from + 4``.
  ``JALR``, ``C.JR``, ``C.JALR``: run in the copy, land on the target, then
  ``rd``/``ra = from + len``. ``BEQ``/``BNE``/``BLT``/``BGE``/``BLTU``/``BGEU``,
  ``C.BEQZ``/``C.BNEZ``, ``C.J``: re-encoded to pad T. ``C.JAL`` exists only
  on RV32 (on RV64 its encoding is ``C.ADDIW``, an ordinary instruction).
  Falls back in place: ``LR``/``SC`` (the reservation, as for AArch64).

Everywhere: instructions that neither read the PC nor branch are copied
unchanged; an instruction in the host-function area is always stepped in
place (its body runs from a hook bound to its address).

A step that returns to the call's sentinel, faults or exits ends the call
(:meth:`JitProcess.stopped_ended`: the next ``resume()`` returns that same
outcome, so a ``run(on_breakpoint=)`` loop carries on).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field, replace

import capstone
from capstone import x86_const as CX

from ..backends.unicorn import CpuFault, GuestMemoryFault
from ..errors import KitemuError
from ..execmem import RX
from ..faults import describe_fault
from ..runtime import SENTINEL, STEP_SCRATCH, CallOutcome
from ..targets import rv64 as RV
from ..targets.base import MASK64, sign_extend

#: bytes of the scratch page (one mapping: a multiple of every granule)
SCRATCH_SIZE = 0x10000
#: the host-function area's size (kitemu.runtime.PROCESS_AREAS)
HOST_AREA_SIZE = 0x10000


class StepError(KitemuError):
    """The instruction cannot be single-stepped: where it goes cannot be
    known from the registers (far transfers, ``iret``, ``eret``)."""


@dataclass
class StepResult:
    """What one :meth:`Stepper.step` did.

    ``status`` is ``"stopped"`` (the call stays stopped, at ``pc``) or how
    the call ended, with :class:`~kitemu.runtime.CallOutcome`'s words:
    ``"returned"`` (``value``), ``"faulted"`` (``fault``), ``"exited"``
    (``exit``), ``"interrupted"``; ``outcome`` is then the call's outcome
    (what the next ``proc.resume()`` returns too).
    """

    status: str
    #: where the call now waits (``"stopped"``), else the outcome's pc
    pc: int | None
    #: the stepped instruction's address, length and text
    from_pc: int
    size: int
    insn: str
    #: its class: "plain" and "undecodable" everywhere; x86-64
    #: "rip-relative", "jmp", "jcc" (also loop*/jrcxz), "call",
    #: "indirect-jmp", "indirect-call", "ret"; AArch64 "b", "bl", "b.cond",
    #: "cbz" (and cbnz), "tbz" (and tbnz), "adr", "adrp", "ldr-literal",
    #: "br", "blr", "ret", "exclusive", "pac-branch"; RISC-V "auipc", "jal",
    #: "jalr", "branch", "c.j", "c.jr", "c.jalr", "c.beqz" (and c.bnez), "lr/sc"
    kind: str
    #: "displaced" or "in-place"
    mode: str
    #: why a displaced step was asked for but the step ran in place
    reason: str | None = None
    outcome: CallOutcome | None = None

    @property
    def stopped(self) -> bool:
        return self.status == "stopped"

    @property
    def returned(self) -> bool:
        return self.status == "returned"

    @property
    def faulted(self) -> bool:
        return self.status == "faulted"

    @property
    def exited(self) -> bool:
        return self.status == "exited"

    @property
    def value(self):
        return None if self.outcome is None else self.outcome.value

    @property
    def fault(self):
        return None if self.outcome is None else self.outcome.fault

    @property
    def exit(self):
        return None if self.outcome is None else self.outcome.exit


@dataclass
class _Plan:
    """One decoded instruction: where it can go (in place) and how to run
    a copy of it (displaced). Computed from the registers before it runs."""

    addr: int
    size: int
    text: str
    kind: str
    #: possible next PCs (in place)
    successors: list[int] = field(default_factory=list)
    #: why it cannot be displaced (None: it can)
    refuse: str | None = None
    #: the displaced copy (``size`` bytes), run at the scratch page
    copy: bytes = b""
    #: original target of a PC-relative branch aimed at pad T
    taken: int | None = None
    #: absolute targets the copy itself jumps to (land there)
    absolute: list[int] = field(default_factory=list)
    #: registers set before the copy runs / given back after it
    pre: list[tuple[int, int]] = field(default_factory=list)
    restore: list[tuple[int, int]] = field(default_factory=list)
    #: register receiving the return address after a landing (BL, JAL...)
    link: tuple[int, int] | None = None
    #: x86-64 call: the return address to store at [rsp] after a landing
    push: int | None = None


class Stepper:
    """Single-steps the stopped call of ``proc``: displaced or in place on
    the emulated backend, in place on the native one (its int3 breakpoints
    under the stepped instruction are re-armed by the backend itself)."""

    def __init__(self, proc):
        #: the native backend steps in place only: its breakpoints are int3s
        #: it re-arms itself, and it has no scratch page to displace into
        self.native = not hasattr(proc.machine, "run_until")
        self.proc = proc
        self.m = proc.machine
        self.arch = proc.arch
        self.cc = proc.target.callconv
        self._md = capstone.Cs(self.arch.cs_arch, self.arch.cs_mode)
        self._md.detail = True
        self._regs = _reg_table(self.arch.name)
        self._mapped = False

    # -- public -------------------------------------------------------------------------
    def step(self, displaced: bool = True) -> StepResult:
        """Execute exactly one instruction of the stopped call (see the
        module docstring). ``displaced=False`` steps in place."""
        proc = self.proc
        if not proc.stopped:
            raise KitemuError("no call is stopped: nothing to step")
        pc = self.m.reg(self.cc.pc)
        plan = self.plan(pc)
        reason = None
        if displaced and self.native:
            reason = "the native backend steps in place (a breakpoint under the instruction is lifted and re-armed by the backend)"
        elif displaced:
            reason = plan.refuse
            if reason is None and _within(pc, proc.host_base, HOST_AREA_SIZE):
                reason = "a host function: its body runs from a hook bound to its address"
            if reason is None and _within(pc, STEP_SCRATCH, SCRATCH_SIZE):
                reason = "the instruction is in the displaced-step scratch page itself"
        if displaced and reason is None:
            status, where, outcome = self._displaced(plan)
            mode = "displaced"
        else:
            status, where, outcome = self._in_place(plan)
            mode = "in-place"
        return StepResult(status, where, pc, plan.size, plan.text, plan.kind, mode, reason,
                          outcome)

    def plan(self, pc: int) -> _Plan:
        """Decode the instruction at ``pc`` with the current registers."""
        name = self.arch.name
        if name == "x64":
            return self._plan_x64(pc)
        if name == "aarch64":
            return self._plan_aarch64(pc)
        return self._plan_rv64(pc)

    # -- the two mechanisms -----------------------------------------------------------------
    def _run(self, landings: list[int]) -> CallOutcome:
        """resume() the stopped call with one-shot breakpoints on
        ``landings`` (the sentinel needs none: the run ends there)."""
        m = self.m
        temp = [a for a in dict.fromkeys(landings) if a not in m.breakpoints and a != SENTINEL]
        for a in temp:
            m.add_breakpoint(a)
        try:
            return self.proc.resume()
        finally:
            for a in temp:
                m.remove_breakpoint(a)

    def _finish(self, outcome: CallOutcome):
        """(status, pc, outcome) of a run; an ended call keeps its outcome
        for the next resume()."""
        if outcome.stopped:
            return "stopped", outcome.pc, None
        self.proc.stopped_ended(outcome)
        return outcome.status, outcome.pc, outcome

    def _in_place(self, plan: _Plan):
        proc, m = self.proc, self.m
        pc = plan.addr
        proc.stopped_moved_to(pc)            # resume() passes a breakpoint here once
        lifted = pc in m.breakpoints and pc not in plan.successors
        if lifted:
            m.remove_breakpoint(pc)          # x86 rep: its hooks run once per iteration
        try:
            outcome = self._run(plan.successors)
        finally:
            if lifted:
                m.add_breakpoint(pc)
        return self._finish(outcome)

    def _displaced(self, plan: _Plan):
        m, cc = self.m, self.cc
        scratch = self._scratch()
        trap = self.arch.trap
        pad_f = scratch + plan.size
        pad_t = pad_f + len(trap)
        assert len(plan.copy) == plan.size
        code = plan.copy + trap + trap
        m.write_raw(scratch, code)
        m.flush_code(scratch, len(code))
        # what the registers set for the copy held (given back if the copy faults)
        before_pre = [(reg, m.reg(reg)) for reg, _ in plan.pre]
        for reg, value in plan.pre:
            m.set_reg(reg, value)
        m.set_reg(cc.pc, scratch)
        landings = [pad_f] + ([pad_t] if plan.taken is not None else []) + plan.absolute
        before = m.last_stop
        outcome = self._run(landings)
        if outcome.stopped:
            if outcome.pc == pad_f:
                real = plan.addr + plan.size
            elif outcome.pc == pad_t and plan.taken is not None:
                real = plan.taken
            else:
                real = outcome.pc
            self._landed(plan)
            self.proc.stopped_moved_to(real)
            return "stopped", real, None
        if outcome.returned and SENTINEL in plan.absolute:
            self._landed(plan)
            if isinstance(outcome.value, int):       # the link register may be the return one
                outcome = replace(outcome, value=m.reg(cc.int_ret))
        elif outcome.faulted:
            stop = m.last_stop if m.last_stop is not before else None
            fault = stop.fault if stop is not None else None
            if fault is None:                        # the time limit was used up already
                fault = CpuFault("timeout", None, None, scratch, "time limit reached")
            if scratch <= fault.pc <= scratch + max(plan.size, 4):
                # inside the copy: report the original address. Faults are
                # precise except for what a `rep` string instruction's earlier
                # iterations did (rcx/rsi/rdi moved on, memory written), which
                # stays as in place; only the registers set for the copy are
                # given back.
                for reg, value in reversed(before_pre):
                    m.set_reg(reg, value)
                pc = plan.addr + (fault.pc - scratch)
                m.set_reg(cc.pc, pc)
                report = describe_fault(replace(fault, pc=pc), self.proc)
                outcome = replace(outcome, pc=pc, fault=report)
            else:
                self._landed(plan)                   # the branch went, its target faulted
        return self._finish(outcome)

    def _landed(self, plan: _Plan) -> None:
        m = self.m
        for reg, value in plan.restore:
            m.set_reg(reg, value)
        if plan.link is not None and plan.link[0] is not None:
            m.set_reg(*plan.link)
        if plan.push is not None:
            m.write_raw(m.reg(self.cc.sp), plan.push.to_bytes(8, "little"))

    def _scratch(self) -> int:
        """The scratch page, mapped RX (trap-filled) by the machine's first
        displaced step, whichever Stepper makes it."""
        m = self.m
        if not self._mapped:
            if not any(begin <= STEP_SCRATCH <= end for begin, end, _ in m.regions()):
                m.map(STEP_SCRATCH, SCRATCH_SIZE, RX)
                m.write_raw(STEP_SCRATCH, self.arch.trap * (SCRATCH_SIZE // len(self.arch.trap)))
            self._mapped = True
        return STEP_SCRATCH

    # -- helpers ------------------------------------------------------------------------------
    def _fetch(self, pc: int, size: int) -> bytes:
        """Up to ``size`` readable bytes at ``pc``."""
        try:
            return self.m.read(pc, size)
        except GuestMemoryFault:
            out = b""
            for i in range(size):
                try:
                    out += self.m.read(pc + i, 1)
                except GuestMemoryFault:
                    break
            return out

    def _read64(self, addr: int, size: int = 8) -> int | None:
        try:
            return int.from_bytes(self.m.read(addr & MASK64, size), "little")
        except GuestMemoryFault:
            return None

    def _text(self, code: bytes, pc: int) -> str:
        for i in self._md.disasm(code, pc, 1):
            return f"{i.mnemonic} {i.op_str}".strip()
        return f".byte {code.hex()}" if code else "(unmapped)"

    # -- x86-64 ---------------------------------------------------------------------------------
    def _plan_x64(self, pc: int) -> _Plan:
        code = self._fetch(pc, 15)
        insn = next(iter(self._md.disasm(code, pc, 1)), None)
        if insn is None:
            # an invalid instruction faults where it is
            return _Plan(pc, 0, self._text(code, pc), "undecodable",
                         refuse="capstone cannot decode the instruction")
        n = insn.size
        raw = bytes(code[:n])
        nxt = pc + n
        p = _Plan(pc, n, f"{insn.mnemonic} {insn.op_str}".strip(), "plain", copy=raw)
        groups = set(insn.groups)
        rel = CX.X86_GRP_BRANCH_RELATIVE in groups
        if CX.X86_GRP_IRET in groups or insn.id in (CX.X86_INS_RETF, CX.X86_INS_RETFQ,
                                                     CX.X86_INS_LJMP, CX.X86_INS_LCALL):
            raise StepError(f"cannot step {p.text!r} at {pc:#x}: a far transfer")
        rip_op = next((op for op in insn.operands
                       if op.type == CX.X86_OP_MEM and op.mem.base == CX.X86_REG_RIP), None)
        if rip_op is not None:
            p.kind = "rip-relative"
            self._x64_rip(p, insn, raw, nxt)
        if CX.X86_GRP_RET in groups:
            p.kind = "ret"
            target = self._read64(self.m.reg(self.cc.sp))
            p.successors = [] if target is None else [target]
            p.absolute = list(p.successors)
        elif CX.X86_GRP_CALL in groups or CX.X86_GRP_JUMP in groups or rel:   # (loop: rel only)
            call = CX.X86_GRP_CALL in groups
            if rel:
                target = insn.operands[0].imm & MASK64
                cond = not call and insn.id != CX.X86_INS_JMP
                p.kind = "call" if call else ("jcc" if cond else "jmp")
                p.successors = [target] + ([nxt] if cond else [])
                p.taken = target
                p.copy = self._x64_rel(p, insn, raw)
            else:
                p.kind = "indirect-call" if call else "indirect-jmp"
                target = self._x64_operand(insn, insn.operands[0], nxt)
                p.successors = [] if target is None else [target]
                p.absolute = list(p.successors)
            if call:
                p.push = nxt
        else:
            p.successors = [nxt]
        return p

    def _x64_rel(self, p: _Plan, insn, raw: bytes) -> bytes:
        """The branch with its relative field aimed at pad T (2 bytes past
        pad F, which follows the copy)."""
        off, size = insn.imm_offset, insn.imm_size
        if not off or size not in (1, 2, 4) or off + size != len(raw):
            p.refuse = f"unexpected encoding of a relative branch ({raw.hex()})"
            return raw
        fmt = {1: "<b", 2: "<h", 4: "<i"}[size]
        return raw[:off] + struct.pack(fmt, len(self.arch.trap)) + raw[off + size:]

    def _x64_rip(self, p: _Plan, insn, raw: bytes, nxt: int) -> None:
        """Rewrite a RIP-relative operand for the copy at the scratch page."""
        # RIP-relative is ModRM mod=00 r/m=101 with no SIB: the disp32 follows
        # ModRM. (capstone 5's disp_size says 2 under a 0x66 prefix or VEX.pp=01:
        # movdqa, movapd, cmp word ptr, vmovdqa... so it is not trusted.)
        mo = insn.modrm_offset
        if not mo or mo + 5 > len(raw) or raw[mo] & 0xC7 != 0x05:
            p.refuse = f"unexpected encoding of a RIP-relative operand ({raw.hex()})"
            return
        doff = mo + 1
        disp = struct.unpack_from("<i", raw, doff)[0]
        new = disp + p.addr - STEP_SCRATCH
        if -(1 << 31) <= new < (1 << 31):
            p.copy = raw[:doff] + struct.pack("<i", new) + raw[doff + 4:]
            return
        # out of reach: [scratch register + disp32], the register = from + len
        i = 0
        while i < len(raw) and raw[i] in _X86_LEGACY_PREFIXES:
            i += 1
        rex = i if i < len(raw) and 0x40 <= raw[i] <= 0x4F else None
        op0 = raw[i + (rex is not None)] if i + (rex is not None) < len(raw) else None
        # 3-byte VEX, EVEX and XOP carry an inverted B bit (bit 5 of the byte
        # after the escape); 2-byte VEX (C5) has none: B = 0 already
        vex_b = op0 in (0xC4, 0x62) or (op0 == 0x8F and insn.mnemonic != "pop")
        read, written = insn.regs_access()
        used = {insn.reg_name(r) for r in (*read, *written)}
        for name, aliases, num in _X86_SCRATCH_REGS:
            if not used & aliases:
                break
        else:                                     # pragma: no cover - 7 candidates
            p.refuse = "no free register for the RIP-relative operand"
            return
        code = bytearray(raw)
        if rex is not None:
            code[rex] &= ~1                       # REX.B: the base is a low register
        if vex_b:
            code[i + 1] |= 0x20                   # ~B = 1: likewise
        mo = insn.modrm_offset
        code[mo] = 0b10 << 6 | (code[mo] & 0x38) | num
        reg = self._regs[name]
        p.copy = bytes(code)
        p.pre.append((reg, nxt))
        p.restore.append((reg, self.m.reg(reg)))

    def _x64_ea(self, insn, mem, nxt: int) -> int:
        def val(r):
            if r == CX.X86_REG_INVALID:
                return 0
            if r == CX.X86_REG_RIP:
                return nxt
            if r == CX.X86_REG_EIP:
                return nxt & 0xFFFFFFFF
            return self.m.reg(self._regs[insn.reg_name(r)])
        addr = val(mem.base) + val(mem.index) * (mem.scale or 1) + mem.disp
        if insn.addr_size == 4:
            addr &= 0xFFFFFFFF
        if mem.segment == CX.X86_REG_FS:
            addr += self.m.reg(self._regs["fs_base"])
        elif mem.segment == CX.X86_REG_GS:
            addr += self.m.reg(self._regs["gs_base"])
        return addr & MASK64

    def _x64_operand(self, insn, op, nxt: int) -> int | None:
        if op.type == CX.X86_OP_REG:
            return self.m.reg(self._regs[insn.reg_name(op.reg)]) & MASK64
        if op.type == CX.X86_OP_MEM:
            return self._read64(self._x64_ea(insn, op.mem, nxt), op.size or 8)
        return None

    # -- AArch64 -------------------------------------------------------------------------------
    def _plan_aarch64(self, pc: int) -> _Plan:
        code = self._fetch(pc, 4)
        if len(code) < 4:
            return _Plan(pc, 0, "(unmapped)", "undecodable", refuse="the instruction is not readable")
        w = struct.unpack("<I", code)[0]
        nxt = pc + 4
        p = _Plan(pc, 4, self._text(code, pc), "plain", [nxt], copy=code)
        x = self._x
        if (w & 0x3F800000) == 0x08000000:
            p.kind = "exclusive"
            p.refuse = ("an exclusive load/store (LDXR/STXR family): a displaced copy would "
                        "break the exclusive monitor")
        elif (w & 0x7C000000) == 0x14000000:                       # B, BL
            target = (pc + (sign_extend(w & 0x3FFFFFF, 26) << 2)) & MASK64
            bl = w >> 31
            p.kind = "bl" if bl else "b"
            p.successors = [target]
            p.taken = target
            p.copy = _word((w & 0xFC000000) | (8 >> 2))
            if bl:
                p.link = (self._xreg(30), nxt)
        elif (w & 0xFF000010) == 0x54000000:                       # B.cond
            self._a64_cond(p, w, 5, 19, "b.cond")
        elif (w & 0x7E000000) == 0x34000000:                       # CBZ, CBNZ
            self._a64_cond(p, w, 5, 19, "cbz")
        elif (w & 0x7E000000) == 0x36000000:                       # TBZ, TBNZ
            self._a64_cond(p, w, 5, 14, "tbz")
        elif (w & 0x1F000000) == 0x10000000:                       # ADR, ADRP
            rd = w & 31
            imm = sign_extend(((w >> 29) & 3) | ((w >> 5) & 0x7FFFF) << 2, 21)
            if w >> 31:
                p.kind = "adrp"
                value = ((pc & ~0xFFF) + (imm << 12)) & MASK64
            else:
                p.kind = "adr"
                value = (pc + imm) & MASK64
            p.copy = _word(A64_NOP)
            if rd != 31:                                           # xzr: no effect
                p.pre.append((self._xreg(rd), value))
        elif (w & 0x3B000000) == 0x18000000:                       # LDR (literal)
            self._a64_literal(p, w)
        elif (w & 0xFE000000) == 0xD6000000:                       # branch (register)
            opc = (w >> 21) & 0xF
            rn = (w >> 5) & 31
            plain = (w & 0xFFFFFC1F) in (0xD61F0000, 0xD63F0000, 0xD65F0000)
            if plain:
                target = x(rn)
                p.kind = {0: "br", 1: "blr", 2: "ret"}[opc]
                p.successors = [target]
                p.absolute = [target]
                if opc == 1:
                    p.link = (self._xreg(30), nxt)
            elif opc in (4, 5):
                raise StepError(f"cannot step {p.text!r} at {pc:#x}: an exception return")
            else:
                # BRAA/BLRAA/RETAA...: where it goes once authenticated
                p.kind = "pac-branch"
                p.refuse = "a pointer-authenticated branch"
                p.successors = [_strip_pac(x(30 if opc == 2 else rn))]
        return p

    def _a64_cond(self, p: _Plan, w: int, lsb: int, bits: int, kind: str) -> None:
        off = sign_extend((w >> lsb) & ((1 << bits) - 1), bits) << 2
        target = (p.addr + off) & MASK64
        p.kind = kind
        p.successors = [target, p.addr + 4]
        p.taken = target
        mask = ((1 << bits) - 1) << lsb
        p.copy = _word((w & ~mask & 0xFFFFFFFF) | ((8 >> 2) << lsb))

    def _a64_literal(self, p: _Plan, w: int) -> None:
        opc, simd, rt = w >> 30, (w >> 26) & 1, w & 31
        addr = (p.addr + (sign_extend((w >> 5) & 0x7FFFF, 19) << 2)) & MASK64
        p.kind = "ldr-literal"
        if not simd and opc == 3:                                  # PRFM: a hint
            p.copy = _word(A64_NOP)
            return
        if simd:
            load = {0: 0xBD400000, 1: 0xFD400000, 2: 0x3DC00000}.get(opc)
            if load is None:
                p.refuse = "an unallocated LDR (literal) encoding"
                return
            base = 0
        else:
            load = {0: 0xB9400000, 1: 0xF9400000, 2: 0xB9800000}[opc]
            base = rt if rt != 31 else 0
        reg = self._xreg(base)
        p.copy = _word(load | base << 5 | rt)
        p.pre.append((reg, addr))
        if simd or base != rt:
            p.restore.append((reg, self.m.reg(reg)))

    def _xreg(self, n: int) -> int:
        return self._regs[f"x{n}"]

    def _x(self, n: int) -> int:
        """X[n] of a branch/compare operand (31: xzr)."""
        return 0 if n == 31 else self.m.reg(self._xreg(n))

    # -- RISC-V 64 -----------------------------------------------------------------------------
    def _plan_rv64(self, pc: int) -> _Plan:
        code = self._fetch(pc, 2)
        if len(code) < 2:
            return _Plan(pc, 0, "(unmapped)", "undecodable", refuse="the instruction is not readable")
        h = code[0] | code[1] << 8
        if h & 3 == 3:
            code = self._fetch(pc, 4)
            if len(code) < 4:
                return _Plan(pc, 0, "(unmapped)", "undecodable",
                             refuse="the instruction is not readable")
            return self._plan_rv64_32(pc, struct.unpack("<I", code)[0], code)
        return self._plan_rv64_16(pc, h, code)

    def _r(self, n: int) -> int:
        return 0 if n == 0 else self.m.reg(self._regs[f"x{n}"])

    def _rreg(self, n: int) -> int | None:
        return None if n == 0 else self._regs[f"x{n}"]

    def _plan_rv64_32(self, pc: int, w: int, code: bytes) -> _Plan:
        nxt = pc + 4
        p = _Plan(pc, 4, self._text(code, pc), "plain", [nxt], copy=code)
        op, rd, f3, rs1 = w & 0x7F, (w >> 7) & 31, (w >> 12) & 7, (w >> 15) & 31
        pad_t = 4 + len(self.arch.trap)
        if op == RV.OP_AUIPC:
            p.kind = "auipc"
            p.copy = RV.insn(RV.NOP)
            if rd:
                p.pre.append((self._rreg(rd), (pc + sign_extend(w & 0xFFFFF000, 32)) & MASK64))
        elif op == RV.OP_JAL:
            off = RV.JTYPE.decode(code, 0)
            target = (pc + off) & MASK64
            p.kind = "jal"
            p.successors = [target]
            p.taken = target
            buf = bytearray(RV.insn(w & ~0xF80))                     # rd = x0
            RV.JTYPE.encode(buf, 0, pad_t)
            p.copy = bytes(buf)
            p.link = (self._rreg(rd), nxt)
        elif op == RV.OP_JALR and f3 == 0:
            target = (self._r(rs1) + sign_extend(w >> 20, 12)) & MASK64 & ~1
            p.kind = "jalr"
            p.successors = [target]
            p.absolute = [target]
            p.link = (self._rreg(rd), nxt)
        elif op == RV.OP_BRANCH and f3 in (0, 1, 4, 5, 6, 7):
            target = (pc + RV.BTYPE.decode(code, 0)) & MASK64
            p.kind = "branch"
            p.successors = [target, nxt]
            p.taken = target
            buf = bytearray(code)
            RV.BTYPE.encode(buf, 0, pad_t)
            p.copy = bytes(buf)
        elif op == 0x2F and (w >> 27) in (2, 3):
            p.kind = "lr/sc"
            p.refuse = ("a load-reserved/store-conditional (LR/SC): a displaced copy would "
                        "break the reservation")
        return p

    def _plan_rv64_16(self, pc: int, h: int, code: bytes) -> _Plan:
        nxt = pc + 2
        p = _Plan(pc, 2, self._text(code, pc), "plain", [nxt], copy=code)
        quadrant, f3 = h & 3, h >> 13
        pad_t = 2 + len(self.arch.trap)
        if quadrant == 1 and f3 == 5:                                 # C.J
            target = (pc + RV.CJTYPE.decode(code, 0)) & MASK64
            p.kind = "c.j"
            p.successors = [target]
            p.taken = target
            buf = bytearray(code)
            RV.CJTYPE.encode(buf, 0, pad_t)
            p.copy = bytes(buf)
        elif quadrant == 1 and f3 in (6, 7):                          # C.BEQZ, C.BNEZ
            target = (pc + RV.CBTYPE.decode(code, 0)) & MASK64
            p.kind = "c.beqz"
            p.successors = [target, nxt]
            p.taken = target
            buf = bytearray(code)
            RV.CBTYPE.encode(buf, 0, pad_t)
            p.copy = bytes(buf)
        elif quadrant == 2 and f3 == 4:
            link, rs1, rs2 = (h >> 12) & 1, (h >> 7) & 31, (h >> 2) & 31
            if rs1 and not rs2:                                       # C.JR, C.JALR
                target = self._r(rs1) & ~1
                p.kind = "c.jalr" if link else "c.jr"
                p.successors = [target]
                p.absolute = [target]
                if link:
                    p.link = (self._rreg(1), nxt)
        return p


# ---------------------------------------------------------------------------------------------

A64_NOP = 0xD503201F

_X86_LEGACY_PREFIXES = frozenset(b"\xf0\xf2\xf3\x2e\x36\x3e\x26\x64\x65\x66\x67")

#: registers a RIP-relative operand can be rebased on: (name, every name
#: of it capstone may list as accessed, ModRM r/m number). rsi, rdi and rbp
#: first: no instruction with a ModRM memory operand uses them implicitly,
#: whereas rax/rcx/rdx/rbx are implicit operands capstone does not always
#: list (``pcmpestrm`` reads eax/edx and capstone 5 reports neither).
_X86_SCRATCH_REGS = (
    ("rsi", {"sil", "si", "esi", "rsi"}, 6),
    ("rdi", {"dil", "di", "edi", "rdi"}, 7),
    ("rbp", {"bpl", "bp", "ebp", "rbp"}, 5),
    ("rbx", {"bl", "bh", "bx", "ebx", "rbx"}, 3),
    ("rcx", {"cl", "ch", "cx", "ecx", "rcx"}, 1),
    ("rdx", {"dl", "dh", "dx", "edx", "rdx"}, 2),
    ("rax", {"al", "ah", "ax", "eax", "rax"}, 0),
)


def _word(w: int) -> bytes:
    return struct.pack("<I", w & 0xFFFFFFFF)


def _within(addr: int, base: int, size: int) -> bool:
    return base <= addr < base + size


def _strip_pac(addr: int) -> int:
    """An AArch64 pointer without its authentication code (48-bit VAs)."""
    return addr | ~((1 << 48) - 1) & MASK64 if addr >> 55 & 1 else addr & ((1 << 48) - 1)


class _RegTable(dict):
    """Register name (as capstone spells it) -> unicorn register id."""

    def __init__(self, module, prefix: str):
        super().__init__()
        self._module, self._prefix = module, prefix

    def __missing__(self, name: str) -> int:
        reg = getattr(self._module, self._prefix + name.upper(), None)
        if reg is None:
            raise StepError(f"no unicorn register for {name!r}")
        self[name] = reg
        return reg


def _reg_table(arch: str) -> _RegTable:
    if arch == "x64":
        from unicorn import x86_const
        return _RegTable(x86_const, "UC_X86_REG_")
    if arch == "aarch64":
        from unicorn import arm64_const
        return _RegTable(arm64_const, "UC_ARM64_REG_")
    from unicorn import riscv_const
    return _RegTable(riscv_const, "UC_RISCV_REG_")
