"""The target registry: a target is an architecture + an object format + a
host operating-system model (which decides page size defaults, symbol naming
and how faults are reported).
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass

from ..errors import ConfigError
from .base import Arch, CallConv, VarargRule


@dataclass(frozen=True)
class Target:
    name: str          # e.g. "elf-aarch64"
    arch_module: str   # module under kitemu.targets
    format: str        # "elf" | "macho"
    host_os: str       # "linux" | "macos"
    default_page_size: int
    #: clang --target triple used to build corpus objects
    triple: str
    #: C names appear in the symbol table with this prefix (Mach-O: "_")
    symbol_prefix: str = ""
    #: the OS's variadic rule when it differs from the arch's (Apple arm64
    #: passes every unnamed argument on the stack)
    vararg_rule: VarargRule | None = None
    #: the default exec-memory strategy of the host OS
    default_strategy: str = "mprotect"

    @property
    def arch(self) -> Arch:
        return importlib.import_module(f"{__name__}.{self.arch_module}").ARCH

    @property
    def callconv(self) -> CallConv:
        cc = self.arch.callconv
        if self.vararg_rule is not None and self.vararg_rule is not cc.vararg_rule:
            cc = dataclasses.replace(cc, name=f"{cc.name}-{self.host_os}",
                                     vararg_rule=self.vararg_rule)
        return cc

    def symbol(self, c_name: str) -> str:
        """The symbol-table spelling of a C identifier on this target."""
        return self.symbol_prefix + c_name


TARGETS: dict[str, Target] = {
    t.name: t for t in (
        Target("elf-x64", "x64", "elf", "linux", 4096, "x86_64-linux-gnu"),
        Target("elf-aarch64", "aarch64", "elf", "linux", 4096, "aarch64-linux-gnu"),
        Target("elf-rv64", "rv64", "elf", "linux", 4096, "riscv64-linux-gnu"),
        Target("macho-x64", "x64", "macho", "macos", 4096, "x86_64-apple-macos",
               symbol_prefix="_", default_strategy="dual-map"),
        Target("macho-arm64", "aarch64", "macho", "macos", 16384, "arm64-apple-macos",
               symbol_prefix="_", vararg_rule=VarargRule.ON_STACK, default_strategy="dual-map"),
    )
}

ELF_MACHINE_TO_TARGET = {"EM_X86_64": "elf-x64", "EM_AARCH64": "elf-aarch64",
                         "EM_RISCV": "elf-rv64"}
#: Mach-O cputype -> target (CPU_TYPE_X86_64, CPU_TYPE_ARM64)
MACHO_CPU_TO_TARGET = {0x01000007: "macho-x64", 0x0100000C: "macho-arm64"}


def get_target(name: str) -> Target:
    try:
        return TARGETS[name]
    except KeyError:
        raise ConfigError(f"unknown target {name!r}; known targets: "
                          + ", ".join(TARGETS)) from None
