"""Register names per arch, as a debugger shows them, mapped to the
backend's register ids (unicorn's constants, which the native backend
accepts too)."""

from __future__ import annotations

import unicorn.arm64_const as A
import unicorn.riscv_const as R
import unicorn.x86_const as X

_X64 = ["rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11",
        "r12", "r13", "r14", "r15", "rip", "eflags"]
_RV_ABI = ["zero", "ra", "sp", "gp", "tp", "t0", "t1", "t2", "s0", "s1"] + \
    [f"a{i}" for i in range(8)] + [f"s{i}" for i in range(2, 12)] + [f"t{i}" for i in range(3, 7)]


def register_table(arch_name: str) -> dict[str, int]:
    """Ordered name -> register id (general registers, pc, sp, flags)."""
    if arch_name == "x64":
        return {n: getattr(X, f"UC_X86_REG_{n.upper()}") for n in _X64}
    if arch_name == "aarch64":
        out = {f"x{i}": getattr(A, f"UC_ARM64_REG_X{i}") for i in range(31)}
        out.update(sp=A.UC_ARM64_REG_SP, pc=A.UC_ARM64_REG_PC, nzcv=A.UC_ARM64_REG_NZCV)
        return out
    if arch_name == "rv64":
        out = {name: getattr(R, f"UC_RISCV_REG_X{i}") for i, name in enumerate(_RV_ABI)}
        out["pc"] = R.UC_RISCV_REG_PC
        return out
    raise KeyError(arch_name)


#: extra spellings: aarch64 fp/lr, rv64 fp and x0..x31
def aliases(arch_name: str) -> dict[str, str]:
    if arch_name == "x64":
        return {"pc": "rip", "sp": "rsp", "fp": "rbp"}
    if arch_name == "aarch64":
        return {"fp": "x29", "lr": "x30"}
    if arch_name == "rv64":
        out = {f"x{i}": n for i, n in enumerate(_RV_ABI)}
        out["fp"] = "s0"
        return out
    return {}


class Registers:
    """Read and write a stopped program's registers by name."""

    def __init__(self, machine, arch_name: str):
        self.machine = machine
        self.arch = arch_name
        self.table = register_table(arch_name)
        self.alias = aliases(arch_name)

    def names(self) -> list[str]:
        return list(self.table)

    def canonical(self, name: str) -> str | None:
        name = name.lower().lstrip("$")
        name = self.alias.get(name, name)
        return name if name in self.table else None

    def __getitem__(self, name: str) -> int:
        key = self.canonical(name)
        if key is None:
            raise KeyError(name)
        return self.machine.reg(self.table[key])

    def __setitem__(self, name: str, value: int) -> None:
        key = self.canonical(name)
        if key is None:
            raise KeyError(name)
        self.machine.set_reg(self.table[key], value & ((1 << 64) - 1))

    def snapshot(self) -> dict[str, int]:
        return {n: self.machine.reg(r) for n, r in self.table.items()}
