"""The driver: command-line inputs -> objects and archives to link.

Inputs are recognised by content (ELF or Mach-O object, ``!<arch>``
archive), except C: ``.c`` files and ``-`` (C source on standard input) are
compiled with clang for the target first. Objects keep their command-line
order; archive members are pulled lazily at link time
(:func:`kitemu.link.inputs.select_inputs`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from .errors import ConfigError
from .targets import Target, get_target

DEFAULT_TARGET = "elf-x64"


@dataclass
class Inputs:
    target: Target
    objects: list = field(default_factory=list)
    archives: list = field(default_factory=list)


def is_c_input(path: str) -> bool:
    return path == "-" or path.endswith(".c")


def gather(paths: list[str], target: str | None = None, opt: str = "-O2",
           cflags: list[str] | None = None, stdin: bytes | None = None) -> Inputs:
    """Load every input; compile the C ones for the target, which is
    ``target``, else the first binary input's, else elf-x64."""
    from .cc import compile_c
    from .loader import load_object
    from .loader.archive import is_archive, read_archive
    from .loader.guard import read_input

    if not paths:
        raise ConfigError("no input files")
    if paths.count("-") > 1:
        raise ConfigError("'-' (C source on standard input) may be given only once")
    loaded: list[tuple[str, object]] = []      # ("object"|"archive"|"c", value)
    for p in paths:
        if is_c_input(p):
            loaded.append(("c", p))
            continue
        data = read_input(p)
        if is_archive(data):
            loaded.append(("archive", read_archive(p, data)))
        else:
            loaded.append(("object", load_object(p, data)))
    if target is None:
        target = next((v.target for k, v in loaded if k == "object"), None) \
            or next((v.target for k, v in loaded if k == "archive" and v.target), None) \
            or DEFAULT_TARGET
    tgt = get_target(target)
    inputs = Inputs(tgt)
    for kind, value in loaded:
        if kind == "object":
            inputs.objects.append(value)
        elif kind == "archive":
            inputs.archives.append(value)
        elif value == "-":
            text = stdin if stdin is not None else sys.stdin.buffer.read()
            name, data = compile_c(None, tgt, opt, cflags, text=text, name="<stdin>")
            inputs.objects.append(load_object(name, data))
        else:
            name, data = compile_c(value, tgt, opt, cflags)
            inputs.objects.append(load_object(name, data))
    return inputs


BACKENDS = ("emulated", "native", "aot")


def link_and_run(inputs: Inputs, entry: str = "main", args: list[str] | None = None,
                 backend: str = "emulated", strategy: str | None = None,
                 page_size: int | None = None, base: int | None = None,
                 stdout_sink=None, timeout: float | None = None, trace=None):
    """Link ``inputs`` and run ``entry(argc, argv)`` on a backend:
    ``emulated`` (kitemu's JIT in unicorn), ``native`` (kitemu's JIT on
    real memory, x86-64 Linux hosts) or ``aot`` (ld.lld's static image in
    unicorn: the reference). Returns a :class:`kitemu.runtime.RunResult`."""
    from .link.inputs import select_inputs
    from .runtime import DEFAULT_BASE, JitProcess

    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; known: {', '.join(BACKENDS)}")
    base = DEFAULT_BASE if base is None else base
    if backend == "emulated":
        proc = JitProcess(inputs.target, strategy=strategy, page_size=page_size, base=base,
                          stdout_sink=stdout_sink)
        objects = select_inputs(inputs.objects, inputs.archives,
                                {inputs.target.symbol(entry)}, set(proc.hostproc.addrs))
        proc.link(objects)
        if trace is not None:
            for st in proc.image.stages.stages:
                trace(st.render())
            proc.on_stage = lambda name: trace(f"J-stage {name}")
        return proc.run(entry, args, timeout=timeout)
    from .hostlib import REGISTRY
    host_names = {inputs.target.symbol(n) for n in REGISTRY}
    objects = select_inputs(inputs.objects, inputs.archives, {inputs.target.symbol(entry)},
                            host_names)
    if backend == "native":
        from .backends.native import run_native
        return run_native(objects, inputs.target.name, entry=entry, args=args or (),
                          strategy=strategy, base=base, timeout=timeout, page_size=page_size,
                          stdout_sink=stdout_sink, trace=trace)
    from .aot import run_aot
    return run_aot(objects, inputs.target.name, entry=entry, args=args or (), timeout=timeout)
