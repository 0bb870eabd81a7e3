"""Linking cases with kitemu, cheaply.

A fresh :class:`~kitemu.runtime.JitProcess` maps its stack, sentinel page
and host-function area, which costs more than linking a small case. The
fuzzer keeps one host process per target and gives every link a new
exec-memory region on that machine (``JitProcess(target, machine=...)``),
freed after the case: the link itself is exactly what ``kitemu run`` does.
"""

from __future__ import annotations

import contextlib
import dataclasses

from ..runtime import JitProcess
from .model import RelocCase

_HOSTS: dict[str, JitProcess] = {}


def host_process(target: str) -> JitProcess:
    proc = _HOSTS.get(target)
    if proc is None:
        proc = _HOSTS[target] = JitProcess(target)
    return proc


def host_addrs(target: str) -> dict[str, int]:
    return host_process(target).machine.hostproc.addrs


@contextlib.contextmanager
def region(case: RelocCase):
    """A JitProcess for ``case`` (its base and capacity) on the shared
    machine of its target; the region is freed on exit."""
    host = host_process(case.target)
    proc = JitProcess(case.target, machine=host.machine, base=case.base, capacity=case.capacity)
    try:
        yield proc
    finally:
        proc.mem.free()


def stripped(case: RelocCase) -> RelocCase:
    """The case without any relocation (same sections and symbols)."""
    objects = [dataclasses.replace(o, sections=[dataclasses.replace(s, relocs=[])
                                                for s in o.sections]) for o in case.objects]
    return dataclasses.replace(case, objects=objects)


def probe_layout(case: RelocCase) -> dict[tuple[int, int], int] | None:
    """Section addresses kitemu gives ``case`` with its relocations removed
    (GOT entries, stubs and islands come after the sections they follow, so
    this is normally the final layout). None when that link fails."""
    from ..errors import KitemuError
    try:
        with region(case) as proc:
            image = proc.link(stripped(case).to_objects())
            return dict(image.section_addrs)
    except KitemuError:
        return None
