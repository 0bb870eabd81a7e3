"""The target registry: a target is an architecture + an object format + a
host operating-system model (which decides page size defaults, symbol naming
and how faults are reported).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from ..errors import ConfigError
from .base import Arch


@dataclass(frozen=True)
class Target:
    name: str          # e.g. "elf-aarch64"
    arch_module: str   # module under kitemu.targets
    format: str        # "elf" (later "macho")
    host_os: str       # "linux" (later "macos")
    default_page_size: int
    #: clang --target triple used to build corpus objects
    triple: str

    @property
    def arch(self) -> Arch:
        return importlib.import_module(f"{__name__}.{self.arch_module}").ARCH


TARGETS: dict[str, Target] = {
    t.name: t for t in (
        Target("elf-x64", "x64", "elf", "linux", 4096, "x86_64-linux-gnu"),
        Target("elf-aarch64", "aarch64", "elf", "linux", 4096, "aarch64-linux-gnu"),
        Target("elf-rv64", "rv64", "elf", "linux", 4096, "riscv64-linux-gnu"),
    )
}

ELF_MACHINE_TO_TARGET = {"EM_X86_64": "elf-x64", "EM_AARCH64": "elf-aarch64",
                         "EM_RISCV": "elf-rv64"}


def get_target(name: str) -> Target:
    try:
        return TARGETS[name]
    except KeyError:
        raise ConfigError(f"unknown target {name!r}; known targets: "
                          + ", ".join(TARGETS)) from None
