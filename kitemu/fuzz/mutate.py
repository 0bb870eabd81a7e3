"""Deliberately broken kitemu, to show the fuzzer can fail.

``mutated("x64.Data32S:truncate")`` replaces, for the duration of the
``with`` block, the ``encode`` of the fixup named ``x64.Data32S`` by one
that skips the range check and writes the low bits: a truncating fixup,
exactly the bug the ``range`` property exists to catch. ``kitemu fuzz
--mutate FIXUP:MODE`` runs the whole fuzzer that way, and a replay file
written under a mutation records it, so ``--replay`` reproduces the failure.

Modes:

``truncate``   encode without the range/alignment check (keeps the low bits)
``off-by-one`` encode the value one step off after the check: ``value + 1``,
               or the smallest larger step the field shows (4 for a branch,
               4096 for ``adrp``, 65536 for ``movk ... lsl 16``): a wrong formula
"""

from __future__ import annotations

import contextlib
import importlib

from ..errors import ConfigError
from ..targets.base import Fixup

MODES = ("truncate", "off-by-one")
_ARCH_MODULES = ("x64", "aarch64", "rv64")
#: off-by-one: the first of these the field does not round away
_STEPS = (1, 2, 4, 8, 16, 1 << 12, 1 << 16, 1 << 32, 1 << 48)


def fixups() -> dict[str, Fixup]:
    """Every fixup instance of every architecture, by name."""
    out: dict[str, Fixup] = {}
    for mod_name in _ARCH_MODULES:
        mod = importlib.import_module(f"kitemu.targets.{mod_name}")
        for value in vars(mod).values():
            if isinstance(value, Fixup):
                out.setdefault(value.name, value)
    return out


def parse(spec: str) -> tuple[Fixup, str]:
    name, _, mode = spec.partition(":")
    mode = mode or "truncate"
    table = fixups()
    if name not in table:
        raise ConfigError(f"--mutate: no fixup named {name!r}; known: {', '.join(sorted(table))}")
    if mode not in MODES:
        raise ConfigError(f"--mutate: unknown mode {mode!r}; known: {', '.join(MODES)}")
    return table[name], mode


@contextlib.contextmanager
def mutated(spec: str | None):
    """Run the block with the fixup mutation ``spec`` (FIXUP[:MODE]) applied."""
    if not spec:
        yield
        return
    fx, mode = parse(spec)
    if mode == "truncate":
        def encode(buf, off, value, fx=fx):
            fx.encode_field(buf, off, value)
    else:
        original = type(fx).encode

        def encode(buf, off, value, fx=fx):
            original(fx, buf, off, value)
            right = bytes(buf[off:off + fx.size])
            for step in _STEPS:
                wrong = bytearray(right)
                fx.encode_field(wrong, 0, value + step)
                if wrong != right:
                    buf[off:off + fx.size] = wrong
                    return
    fx.encode = encode                      # an instance attribute shadows the method
    try:
        yield
    finally:
        del fx.encode
