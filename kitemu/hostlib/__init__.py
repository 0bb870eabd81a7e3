"""Host functions: the C library a JIT'd program sees, written once in Python.

Every host function lives at its own address in a small RX *host area*
mapped far from the image (so calls to it exercise GOT entries and far-call
stubs). Each address holds the target's ``ret`` instruction; a single code
hook bounded to the host area runs the Python body, writes the return value
register, and the ``ret`` then returns to the caller. Nothing is hooked
anywhere else, so guest code runs at full unicorn speed.

Functions are registered with :func:`host` and receive ``(proc, args)``:
``proc`` is the :class:`HostProcess` (memory, stdout, heap, exit), ``args`` a
:class:`~kitemu.hostlib.callconv.CallArgs` reading arguments in order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..backends.unicorn import CpuFault, GuestMemoryFault
from ..execmem import RX, Perm
from ..targets.base import VarargRule
from .callconv import VA_LIST_READERS, CallArgs, PointerVaList, double_to_bits

HOST_SLOT = 16


@dataclass
class HostFunction:
    name: str
    body: Callable
    returns: str          # "int" | "double" | "void"
    variadic_after: int | None = None   # number of named args of a variadic function


REGISTRY: dict[str, HostFunction] = {}


def host(name: str, returns: str = "int", variadic_after: int | None = None):
    def deco(fn):
        REGISTRY[name] = HostFunction(name, fn, returns, variadic_after)
        return fn
    return deco


class GuestExit(Exception):
    """Raised inside a host function to end the program (exit, abort)."""

    def __init__(self, status: int, signal: str | None = None, message: str = ""):
        super().__init__(message or f"exit {status}")
        self.status = status
        self.signal = signal
        self.message = message


class Heap:
    """malloc for the guest: first-fit over a free list, 16-byte aligned,
    growing by mapping more of a reserved range."""

    ALIGN = 16

    def __init__(self, machine, base: int, limit: int, grow: int = 1 << 20):
        self.m = machine
        self.base = base
        self.limit = limit
        self.mapped_end = base
        self.top = base
        self.grow = grow
        self.sizes: dict[int, int] = {}
        self.free_blocks: list[tuple[int, int]] = []   # (addr, size)

    def malloc(self, size: int) -> int:
        size = max(self.ALIGN, (size + self.ALIGN - 1) & -self.ALIGN)
        for i, (addr, bsize) in enumerate(self.free_blocks):
            if bsize >= size:
                if bsize - size >= self.ALIGN:
                    self.free_blocks[i] = (addr + size, bsize - size)
                else:
                    del self.free_blocks[i]
                    size = bsize
                self.sizes[addr] = size
                return addr
        addr = self.top
        if addr + size > self.limit:
            return 0
        while addr + size > self.mapped_end:
            n = max(self.grow, (addr + size - self.mapped_end + 0xFFF) & ~0xFFF)
            n = min(n, self.limit - self.mapped_end)
            self.m.map(self.mapped_end, n, Perm.R | Perm.W)
            self.mapped_end += n
        self.top = addr + size
        self.sizes[addr] = size
        return addr

    def free(self, addr: int) -> bool:
        size = self.sizes.pop(addr, None)
        if size is None:
            return False
        self.free_blocks.append((addr, size))
        return True

    def size_of(self, addr: int) -> int | None:
        return self.sizes.get(addr)


class HostProcess:
    """The host side of one running program: its stdout/stderr, heap, exit."""

    def __init__(self, machine, target, host_base: int, heap_base: int, heap_limit: int,
                 names: list[str] | None = None, stdout_sink=None):
        self._init_state(machine, target, heap_base, heap_limit, names, stdout_sink)
        arch = self.arch
        self.base = host_base
        #: symbol name on this target (``_printf`` on Mach-O) -> address
        self.addrs = {target.symbol(f.name): host_base + HOST_SLOT * i
                      for i, f in enumerate(self.functions)}
        self.by_addr = {host_base + HOST_SLOT * i: f for i, f in enumerate(self.functions)}
        size = (HOST_SLOT * len(self.functions) + 0xFFFF) & ~0xFFFF
        machine.map(host_base, size, RX)
        ret = arch.host_return
        code = bytearray()
        for _ in self.functions:
            code += (ret + arch.trap * HOST_SLOT)[:HOST_SLOT]
        machine.write_raw(host_base, bytes(code))
        machine.hook_range(host_base, host_base + size, self._dispatch)
        self.end = host_base + size

    def _init_state(self, machine, target, heap_base: int, heap_limit: int,
                    names: list[str] | None, stdout_sink, stderr_sink=None) -> None:
        """The state every backend's host side has (the emulated one adds a
        hooked host area, the native one ctypes callbacks)."""
        self.m = machine
        self.target = target
        self.arch = target.arch
        self.cc = target.callconv
        self.stdout = bytearray()
        self.stderr = bytearray()
        self.stdout_sink = stdout_sink
        self.stderr_sink = stderr_sink
        self.heap = Heap(machine, heap_base, heap_limit)
        self.exit: GuestExit | None = None
        #: a fault inside a host function (bad pointer argument), if any
        self.fault: CpuFault | None = None
        #: (function, argument) registered by atexit/__cxa_atexit, in order
        self.atexit: list[tuple[int, int]] = []
        self.program_name = "a.out"
        self.calls = 0
        self.functions = [REGISTRY[n] for n in (names or sorted(REGISTRY))]

    # -- output -----------------------------------------------------------
    def write_stdout(self, data: bytes) -> None:
        self.stdout += data
        if self.stdout_sink is not None:
            self.stdout_sink(data)

    def write_stderr(self, data: bytes) -> None:
        self.stderr += data
        if self.stderr_sink is not None:
            self.stderr_sink(data)

    # -- guest memory helpers ----------------------------------------------
    def cstr(self, addr: int) -> bytes:
        return self.m.read_cstring(addr)

    def read(self, addr: int, n: int) -> bytes:
        return self.m.read(addr, n) if n else b""

    def write(self, addr: int, data: bytes) -> None:
        if data:
            self.m.write_raw(addr, data)

    def va_list(self, value: int):
        if self.cc.vararg_rule is VarargRule.ON_STACK:
            return PointerVaList(self.m, value)     # Apple arm64: va_list is a char *
        return VA_LIST_READERS[self.arch.name](self.m, value)

    # -- dispatch -----------------------------------------------------------
    def _dispatch(self, machine, address: int) -> None:
        fn = self.by_addr.get(address)
        if fn is None:
            return
        self.calls += 1
        args = CallArgs(machine, self.cc)
        try:
            result = fn.body(self, args)
        except GuestExit as e:
            self.exit = e
            machine.stop()
            return
        except GuestMemoryFault as e:
            # the C library would have crashed inside this function
            self.fault = CpuFault("unmapped", e.access, e.addr, address,
                                  f"host function {fn.name}: {e}")
            machine.stop()
            return
        if fn.returns == "double":
            machine.set_reg(self.cc.fp_ret, double_to_bits(result))
        elif fn.returns != "void":
            machine.set_reg(self.cc.int_ret, (result or 0) & ((1 << 64) - 1))


from . import libc as _libc  # noqa: E402,F401  (registers the functions)
