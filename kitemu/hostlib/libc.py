"""The host C library: stdio output, printf family, heap, mem*/str*, exit.

Integer arguments arrive as raw 64-bit register words: each body truncates to
its C parameter type itself (``int`` -> low 32 bits, ``size_t`` -> 64).
"""

from __future__ import annotations

from . import GuestExit, host
from .printf import PrintfError, format_printf

M64 = (1 << 64) - 1


def s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >> 31 else v


def u32(v: int) -> int:
    return v & 0xFFFFFFFF


def _printf(proc, fmt_addr: int, va) -> bytes:
    fmt = proc.cstr(fmt_addr)
    try:
        return format_printf(fmt, va)
    except PrintfError as e:
        raise GuestExit(134, "SIGABRT", f"printf: {e}") from None


# -- stdio ---------------------------------------------------------------
@host("putchar")
def putchar(proc, a):
    c = a.next_int() & 0xFF
    proc.write_stdout(bytes([c]))
    return c


@host("puts")
def puts(proc, a):
    proc.write_stdout(proc.cstr(a.next_int()) + b"\n")
    return 1


@host("printf", variadic_after=1)
def printf(proc, a):
    fmt = a.next_int()
    out = _printf(proc, fmt, a.start_varargs())
    proc.write_stdout(out)
    return len(out)


@host("vprintf")
def vprintf(proc, a):
    fmt = a.next_int()
    out = _printf(proc, fmt, proc.va_list(a.next_int()))
    proc.write_stdout(out)
    return len(out)


def _store_truncated(proc, buf: int, size: int | None, out: bytes) -> int:
    if size is None:
        proc.write(buf, out + b"\0")
    elif size > 0:
        n = min(len(out), size - 1)
        proc.write(buf, out[:n] + b"\0")
    return len(out)


@host("sprintf", variadic_after=2)
def sprintf(proc, a):
    buf, fmt = a.next_int(), a.next_int()
    return _store_truncated(proc, buf, None, _printf(proc, fmt, a.start_varargs()))


@host("snprintf", variadic_after=3)
def snprintf(proc, a):
    buf, size, fmt = a.next_int(), a.next_int(), a.next_int()
    return _store_truncated(proc, buf, size, _printf(proc, fmt, a.start_varargs()))


@host("vsprintf")
def vsprintf(proc, a):
    buf, fmt, va = a.next_int(), a.next_int(), a.next_int()
    return _store_truncated(proc, buf, None, _printf(proc, fmt, proc.va_list(va)))


@host("vsnprintf")
def vsnprintf(proc, a):
    buf, size, fmt, va = a.next_int(), a.next_int(), a.next_int(), a.next_int()
    return _store_truncated(proc, buf, size, _printf(proc, fmt, proc.va_list(va)))


# -- heap ------------------------------------------------------------------
@host("malloc")
def malloc(proc, a):
    return proc.heap.malloc(a.next_int())


@host("calloc")
def calloc(proc, a):
    n, size = a.next_int(), a.next_int()
    total = n * size
    if total > M64:
        return 0
    p = proc.heap.malloc(total)
    if p:
        proc.write(p, bytes(total))
    return p


@host("realloc")
def realloc(proc, a):
    old, size = a.next_int(), a.next_int()
    if old == 0:
        return proc.heap.malloc(size)
    old_size = proc.heap.size_of(old)
    if old_size is None:
        raise GuestExit(134, "SIGABRT", f"realloc(): invalid pointer {old:#x}")
    if size == 0:
        proc.heap.free(old)
        return 0
    new = proc.heap.malloc(size)
    if new:
        proc.write(new, proc.read(old, min(old_size, size)))
        proc.heap.free(old)
    return new


@host("free", returns="void")
def free(proc, a):
    p = a.next_int()
    if p and not proc.heap.free(p):
        raise GuestExit(134, "SIGABRT", f"free(): invalid pointer {p:#x}")


# -- memory and strings --------------------------------------------------
@host("memcpy")
def memcpy(proc, a):
    dst, src, n = a.next_int(), a.next_int(), a.next_int()
    proc.write(dst, proc.read(src, n))
    return dst


@host("memmove")
def memmove(proc, a):
    dst, src, n = a.next_int(), a.next_int(), a.next_int()
    proc.write(dst, proc.read(src, n))
    return dst


@host("memset")
def memset(proc, a):
    dst, c, n = a.next_int(), a.next_int() & 0xFF, a.next_int()
    proc.write(dst, bytes([c]) * n)
    return dst


def _sign(x: int) -> int:
    return (x > 0) - (x < 0)


@host("memcmp")
def memcmp(proc, a):
    p, q, n = a.next_int(), a.next_int(), a.next_int()
    x, y = proc.read(p, n), proc.read(q, n)
    for bx, by in zip(x, y):
        if bx != by:
            return _sign(bx - by)
    return 0


@host("strlen")
def strlen(proc, a):
    return len(proc.cstr(a.next_int()))


@host("strcmp")
def strcmp(proc, a):
    x, y = proc.cstr(a.next_int()) + b"\0", proc.cstr(a.next_int()) + b"\0"
    for bx, by in zip(x, y):
        if bx != by:
            return _sign(bx - by)
    return 0


@host("strncmp")
def strncmp(proc, a):
    p, q, n = a.next_int(), a.next_int(), a.next_int()
    x = proc.m.read_cstring(p, n) + b"\0"
    y = proc.m.read_cstring(q, n) + b"\0"
    for i, (bx, by) in enumerate(zip(x, y)):
        if i >= n:
            break
        if bx != by:
            return _sign(bx - by)
        if bx == 0:
            break
    return 0


@host("strcpy")
def strcpy(proc, a):
    dst, src = a.next_int(), a.next_int()
    proc.write(dst, proc.cstr(src) + b"\0")
    return dst


@host("strchr")
def strchr(proc, a):
    s, c = a.next_int(), a.next_int() & 0xFF
    data = proc.cstr(s) + b"\0"
    i = data.find(bytes([c]))
    return s + i if i >= 0 else 0


# -- termination -------------------------------------------------------------
@host("__cxa_atexit")
def cxa_atexit(proc, a):
    """Register ``func(arg)`` to run at exit (clang registers destructors
    this way on Darwin); handlers run in reverse order of registration."""
    func, arg = a.next_int(), a.next_int()
    proc.atexit.append((func, arg))
    return 0


@host("atexit")
def atexit(proc, a):
    proc.atexit.append((a.next_int(), 0))
    return 0


@host("exit", returns="void")
def exit_(proc, a):
    raise GuestExit(s32(a.next_int()) & 0xFF)


@host("abort", returns="void")
def abort(proc, a):
    raise GuestExit(134, "SIGABRT", "abort() called")


@host("__assert_fail", returns="void")
def assert_fail(proc, a):
    expr, file, line, func = a.next_int(), a.next_int(), u32(a.next_int()), a.next_int()
    msg = (f"{proc.program_name}: {proc.cstr(file).decode(errors='replace')}:{line}: "
           f"{proc.cstr(func).decode(errors='replace')}: Assertion "
           f"`{proc.cstr(expr).decode(errors='replace')}' failed.\n")
    proc.write_stderr(msg.encode())
    raise GuestExit(134, "SIGABRT", msg.strip())
