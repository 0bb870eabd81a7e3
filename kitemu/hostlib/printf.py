"""A C ``printf``-family formatter that needs no CPU.

:func:`format_printf` turns a format string plus a source of variadic
arguments (:class:`VarArgs`) into the bytes glibc's ``printf`` would write on
x86-64 Linux (LP64, the "C" locale).  The emulator side only has to provide a
``VarArgs`` that pulls integer words from the general-purpose argument
registers / stack, doubles from the vector registers / stack, and reads
C strings from guest memory; everything else happens here.

Supported
---------
* conversions ``d i u o x X c s p f F e E g G a A %`` and glibc's C23
  extension ``b B`` (binary, ``#`` adds ``0b``/``0B``);
* flags ``-  +  space  #  0`` and ``'`` (thousands grouping: a no-op in the
  "C" locale, exactly as in glibc);
* width and precision as digits or ``*`` (taken from the next integer
  argument as a signed 32-bit int; a negative ``*`` width means
  left-justify, a negative ``*`` precision means "no precision");
* length modifiers ``hh h l ll j z Z t q L``.  Integers are cut from the raw
  64-bit word: ``hh`` = 8 bits, ``h`` = 16, none = 32, every other modifier =
  64 (LP64), sign-extended for ``d``/``i`` and zero-extended otherwise.
  On ``f e g a`` the modifiers ``l j z Z t h hh`` are ignored (as glibc does);
* ``%lc`` (and ``%C``, and ``c`` with any 64-bit modifier, which glibc also
  treats as a wide character) for code points 0..127 — the "C" locale
  cannot encode anything else;
* glibc's spellings for special values: ``(nil)`` for a NULL ``%p``,
  ``(null)`` for a NULL ``%s`` (nothing at all when a precision < 6 would cut
  it), ``inf``/``nan``/``-nan`` (upper case for ``F E G A``), ``+``/space on
  ``%p``, space padding (never zeros) for inf/nan and for ``%s``/``%c``/
  ``%p``-NULL even with the ``0`` flag.  Hexadecimal floats follow glibc: the
  leading digit is the implicit bit (``0`` for subnormals, whose exponent is
  ``-1022``), rounding to a precision is round-half-even and may produce a
  leading ``2`` (``%.0a`` of 1.5 is ``0x2p+0``);
* one glibc 2.36 quirk, reproduced on purpose: once a conversion with the
  ``h`` modifier on ``c s p C`` or a floating conversion appears, glibc
  formats the rest of the call on its positional-argument path, where a
  negative ``*`` width does not cancel the ``0`` flag: ``%f``/``%e``/``%g``
  are then padded with zeros on the *right* and ``%a`` is not padded.

Refused (raise :class:`PrintfError`, a ``ValueError``)
-----------------------------------------------------
* ``%n`` in every form: it stores through a pointer argument into guest
  memory and is the classic format-string exploit primitive;
* ``L``/``ll``/``q`` on a floating conversion: that means ``long double``,
  which is passed on the x87 stack area and which no ``VarArgs`` provides;
* wide strings (``%ls``, ``%S``, ``s`` with any 64-bit modifier) and wide
  characters above 127 (glibc fails with ``EILSEQ`` there);
* ``%m`` (needs the guest's ``errno``), positional arguments (``%1$d``), the
  ``I`` flag, unknown conversions and a format that ends inside a
  conversion.  glibc copies unknown conversions through more or less
  literally; we raise instead, naming the conversion and its byte offset,
  because an unknown conversion in guest code is almost always a bug the
  user wants to see;
* a width or precision that does not fit a C ``int`` (glibc fails with
  ``EOVERFLOW``).

Bytes outside conversions are copied verbatim: the format is ``bytes`` and is
never decoded.  Like a C string, the format ends at its first NUL byte.
"""

from __future__ import annotations

import math
import struct
from typing import Mapping, Protocol, Sequence

from kitemu.errors import KitemuError

__all__ = ["PrintfError", "VarArgs", "ListArgs", "format_printf"]

_INT_MAX = 0x7FFF_FFFF
_MASK64 = (1 << 64) - 1

_FLAG_CHARS = b"-+ #0'"
# Length modifier -> width in bits of the integer argument.
_LENGTH_BITS = {
    b"hh": 8, b"h": 16, b"": 32,
    b"l": 64, b"ll": 64, b"L": 64, b"q": 64, b"j": 64, b"z": 64, b"Z": 64,
    b"t": 64,
}
# Modifiers that glibc turns into "long double" on a floating conversion.
_LONG_DOUBLE_MODS = (b"L", b"ll", b"q")
# Modifiers that set glibc's ``is_long``: wide char/string for %c / %s.
_WIDE_MODS = (b"l", b"ll", b"L", b"q", b"j", b"z", b"Z", b"t")


class PrintfError(KitemuError, ValueError):
    """A format string kitemu refuses or cannot format."""


class VarArgs(Protocol):
    """Where the formatter gets the variadic arguments from."""

    def next_int(self) -> int:
        """The next integer-class argument: the raw 64-bit word (0..2**64-1)."""
        ...

    def next_double(self) -> float:
        """The next double argument (a float was promoted to double)."""
        ...

    def read_cstring(self, addr: int, limit: int | None = None) -> bytes:
        """Bytes at ``addr`` up to (excluding) the NUL, at most ``limit`` bytes."""
        ...


class ListArgs:
    """A :class:`VarArgs` over a Python list, for tests and host-side callers.

    ``values`` are consumed in order; ints are taken as 64-bit words (negative
    ints are stored two's complement), floats as doubles.  ``strings`` maps a
    fake address to the bytes stored there (the terminating NUL is implicit);
    an address inside a string reads its tail.
    """

    def __init__(self, values: Sequence[int | float] = (),
                 strings: Mapping[int, bytes] | None = None):
        self.values = list(values)
        self.strings = dict(strings or {})
        self.pos = 0

    def _next(self, what: str) -> int | float:
        if self.pos >= len(self.values):
            raise PrintfError(
                f"argument {self.pos + 1} missing: the format wants {what}, "
                f"but only {len(self.values)} argument(s) were given")
        value = self.values[self.pos]
        self.pos += 1
        return value

    def next_int(self) -> int:
        value = self._next("an integer")
        if isinstance(value, bool) or not isinstance(value, int):
            raise PrintfError(
                f"argument {self.pos} is {value!r}, but the format wants an integer")
        return value & _MASK64

    def next_double(self) -> float:
        value = self._next("a double")
        if not isinstance(value, float):
            raise PrintfError(
                f"argument {self.pos} is {value!r}, but the format wants a double")
        return value

    def read_cstring(self, addr: int, limit: int | None = None) -> bytes:
        for base, data in self.strings.items():
            if base <= addr <= base + len(data):
                data = data[addr - base:]
                nul = data.find(b"\0")
                if nul >= 0:
                    data = data[:nul]
                return data if limit is None else data[:limit]
        raise PrintfError(f"no string at address {addr:#x}")


class _Spec:
    """One parsed conversion specification."""

    __slots__ = ("offset", "left", "plus", "space", "alt", "zero",
                 "star_left", "width", "prec", "length", "conv")

    def __init__(self, offset: int):
        self.offset = offset
        self.left = self.plus = self.space = self.alt = self.zero = False
        self.star_left = False  # left-justified by a negative '*' width only
        self.width = 0
        self.prec: int | None = None
        self.length = b""
        self.conv = ""

    def where(self) -> str:
        return f"%{self.conv} at offset {self.offset}"


def _int32(word: int) -> int:
    word &= 0xFFFF_FFFF
    return word - (1 << 32) if word & 0x8000_0000 else word


def _read_number(fmt: bytes, i: int, start: int, what: str) -> tuple[int, int]:
    j = i
    while j < len(fmt) and 0x30 <= fmt[j] <= 0x39:
        j += 1
    value = int(fmt[i:j]) if j > i else 0
    if value > _INT_MAX:
        raise PrintfError(
            f"{what} {value} of the conversion at offset {start} "
            f"does not fit a C int (glibc fails with EOVERFLOW)")
    return value, j


def _parse_spec(fmt: bytes, i: int, args: VarArgs) -> tuple[_Spec, int]:
    """Parse the conversion starting at ``fmt[i] == '%'``; consume ``*`` args."""
    start = i
    spec = _Spec(start)
    n = len(fmt)
    i += 1

    def incomplete() -> PrintfError:
        return PrintfError(
            f"format ends inside the conversion starting at offset {start} "
            f"({fmt[start:]!r})")

    # Positional arguments: %N$...
    j = i
    while j < n and 0x30 <= fmt[j] <= 0x39:
        j += 1
    if j > i and fmt[j:j + 1] == b"$":
        raise PrintfError(
            f"positional argument {fmt[start:j + 1].decode('latin-1')} "
            f"at offset {start} is not supported")

    while i < n and fmt[i] in _FLAG_CHARS:
        c = fmt[i]
        if c == 0x2D:
            spec.left = True
        elif c == 0x2B:
            spec.plus = True
        elif c == 0x20:
            spec.space = True
        elif c == 0x23:
            spec.alt = True
        elif c == 0x30:
            spec.zero = True
        # "'" (grouping) is a no-op in the C locale.
        i += 1

    if i < n and fmt[i] == 0x2A:  # '*'
        width = _int32(args.next_int())
        if width < 0:
            if width == -(1 << 31):
                raise PrintfError(
                    f"'*' width {width} of the conversion at offset {start} "
                    f"cannot be negated")
            spec.star_left = not spec.left
            spec.left = True
            width = -width
        spec.width = width
        i += 1
    else:
        spec.width, i = _read_number(fmt, i, start, "width")

    if i < n and fmt[i] == 0x2E:  # '.'
        i += 1
        if i < n and fmt[i] == 0x2A:
            prec = _int32(args.next_int())
            spec.prec = prec if prec >= 0 else None
            i += 1
        else:
            spec.prec, i = _read_number(fmt, i, start, "precision")

    for mod in (b"hh", b"h", b"ll", b"l", b"L", b"q", b"j", b"z", b"Z", b"t"):
        if fmt.startswith(mod, i):
            spec.length = mod
            i += len(mod)
            break

    if i >= n:
        raise incomplete()
    spec.conv = chr(fmt[i])
    return spec, i + 1


def _pad(spec: _Spec, body: bytes, zero_prefix: bytes | None = None) -> bytes:
    """Justify ``body`` in ``spec.width``.

    ``zero_prefix`` (sign and radix prefix) enables zero padding: zeros go
    between it and the rest of ``body`` (which must start with it).
    """
    fill = spec.width - len(body)
    if fill <= 0:
        return body
    if spec.left:
        return body + b" " * fill
    if zero_prefix is not None:
        k = len(zero_prefix)
        return body[:k] + b"0" * fill + body[k:]
    return b" " * fill + body


def _sign(spec: _Spec, negative: bool) -> str:
    if negative:
        return "-"
    if spec.plus:
        return "+"
    if spec.space:
        return " "
    return ""


_DIGITS_FMT = {"d": "d", "i": "d", "u": "d", "o": "o", "x": "x", "X": "X",
               "b": "b", "B": "b"}


def _format_int(spec: _Spec, word: int) -> bytes:
    conv = spec.conv
    bits = _LENGTH_BITS[spec.length]
    value = word & ((1 << bits) - 1)
    signed = conv in "di"
    negative = False
    if signed and value >> (bits - 1):
        value = (1 << bits) - value
        negative = True

    if spec.prec == 0 and value == 0:
        digits = ""
    else:
        digits = format(value, _DIGITS_FMT[conv])
    if spec.prec is not None and len(digits) < spec.prec:
        digits = "0" * (spec.prec - len(digits)) + digits

    prefix = ""
    if spec.alt:
        if conv == "o":
            if not digits.startswith("0"):
                digits = "0" + digits
        elif conv in "xXbB" and value != 0:
            prefix = "0" + conv
    # '+' and ' ' only apply to signed conversions.
    sign = _sign(spec, negative) if signed else ""
    head = (sign + prefix).encode()
    zero = spec.zero and not spec.left and spec.prec is None
    return _pad(spec, head + digits.encode(), head if zero else None)


def _format_pointer(spec: _Spec, word: int) -> bytes:
    if word == 0:
        return _pad(spec, b"(nil)")
    digits = format(word, "x")
    if spec.prec is not None and len(digits) < spec.prec:
        digits = "0" * (spec.prec - len(digits)) + digits
    # glibc formats a pointer as %#lx but keeps the '+' and ' ' flags.
    head = (_sign(spec, False) + "0x").encode()
    zero = spec.zero and not spec.left and spec.prec is None
    return _pad(spec, head + digits.encode(), head if zero else None)


def _hex_float(x: float, prec: int | None, alt: bool) -> tuple[str, str]:
    """``abs(x)`` as glibc's ``%a`` without the sign: (``0x``, rest)."""
    (bits,) = struct.unpack("<Q", struct.pack("<d", x))
    biased = (bits >> 52) & 0x7FF
    mant = bits & ((1 << 52) - 1)
    if biased == 0:
        lead = 0
        exp = 0 if mant == 0 else -1022
    else:
        lead = 1
        exp = biased - 1023
    frac = f"{mant:013x}"
    if prec is None:
        frac = frac.rstrip("0")
    elif prec >= 13:
        frac += "0" * (prec - 13)
    else:
        full = (lead << 52) | mant
        shift = 4 * (13 - prec)
        q, r = divmod(full, 1 << shift)
        half = 1 << (shift - 1)
        if r > half or (r == half and q & 1):
            q += 1
        lead = q >> (4 * prec)
        frac = f"{q & ((1 << (4 * prec)) - 1):0{prec}x}" if prec else ""
    point = "." if frac or alt else ""
    return "0x", f"{lead:x}{point}{frac}p{exp:+d}"


def _format_double(spec: _Spec, x: float, slow_path: bool) -> bytes:
    conv = spec.conv
    upper = conv in "FEGA"
    negative = math.copysign(1.0, x) < 0
    sign = _sign(spec, negative)
    if not math.isfinite(x):
        body = "nan" if math.isnan(x) else "inf"
        if upper:
            body = body.upper()
        return _pad(spec, (sign + body).encode())

    x = abs(x)
    lower = conv.lower()
    if lower == "a":
        radix, rest = _hex_float(x, spec.prec, spec.alt)
        head = sign + radix
        text = head + rest
    else:
        prec = 6 if spec.prec is None else spec.prec
        pyfmt = ("%#." if spec.alt else "%.") + str(prec) + lower
        head = sign
        text = sign + pyfmt % x
    if upper:
        text = text.upper()
        head = head.upper()
    if slow_path and spec.star_left and spec.zero:
        # glibc quirk: on its slow ("positional") path a negative '*' width
        # does not cancel the '0' flag, so %f/%e/%g are left-justified and
        # padded with zeros on the right, and %a is not padded at all.
        if lower == "a":
            return text.encode()
        return text.encode() + b"0" * (spec.width - len(text))
    zero = spec.zero and not spec.left
    return _pad(spec, text.encode(), head.encode() if zero else None)


def _format_string(spec: _Spec, addr: int, args: VarArgs) -> bytes:
    if addr == 0:
        # glibc: "(null)" if the precision lets it through whole, else nothing.
        data = b"(null)" if spec.prec is None or spec.prec >= 6 else b""
    else:
        data = args.read_cstring(addr, spec.prec)
        nul = data.find(b"\0")
        if nul >= 0:
            data = data[:nul]
        if spec.prec is not None:
            data = data[:spec.prec]
    return _pad(spec, data)


def _format_char(spec: _Spec, word: int, wide: bool) -> bytes:
    if wide:
        code = word & 0xFFFF_FFFF
        if code > 0x7F:
            raise PrintfError(
                f"wide character U+{code:04X} for {spec.where()} cannot be "
                f"encoded in the C locale (glibc fails with EILSEQ)")
        return _pad(spec, bytes([code]))
    return _pad(spec, bytes([word & 0xFF]))


def format_printf(fmt: bytes, args: VarArgs) -> bytes:
    """Format like glibc's ``printf(fmt, ...)`` and return the output bytes.

    Raises :class:`PrintfError` for refused or malformed conversions (see the
    module docstring); output produced before the error is discarded.
    """
    nul = fmt.find(b"\0")
    if nul >= 0:
        fmt = fmt[:nul]  # a C format string ends at its NUL
    out = bytearray()
    n = len(fmt)
    i = 0
    # glibc's fast loop hands 'h' + c/s/p/C/floating conversions to its
    # slow, positional-argument machinery, which then formats every
    # remaining conversion of the call; it differs in one corner (see
    # _format_double), so we track it.
    slow_path = False
    while i < n:
        pct = fmt.find(b"%", i)
        if pct < 0:
            out += fmt[i:]
            break
        out += fmt[i:pct]
        spec, i = _parse_spec(fmt, pct, args)
        conv = spec.conv
        if spec.length == b"h" and conv in "cspCSfFeEgGaA":
            slow_path = True
        if conv == "%":
            out += b"%"
        elif conv in "diuoxXbB":
            out += _format_int(spec, args.next_int())
        elif conv in "fFeEgGaA":
            if spec.length in _LONG_DOUBLE_MODS:
                raise PrintfError(
                    f"%{spec.length.decode()}{conv} at offset {spec.offset}: "
                    f"long double arguments are not supported")
            out += _format_double(spec, args.next_double(), slow_path)
        elif conv == "c":
            out += _format_char(spec, args.next_int(), spec.length in _WIDE_MODS)
        elif conv == "C":
            out += _format_char(spec, args.next_int(), True)
        elif conv == "s":
            if spec.length in _WIDE_MODS:
                raise PrintfError(
                    f"%{spec.length.decode()}s at offset {spec.offset}: "
                    f"wide strings are not supported")
            out += _format_string(spec, args.next_int(), args)
        elif conv == "S":
            raise PrintfError(
                f"{spec.where()}: wide strings are not supported")
        elif conv == "p":
            out += _format_pointer(spec, args.next_int())
        elif conv == "n":
            raise PrintfError(
                f"%{spec.length.decode()}n at offset {spec.offset} is refused: "
                f"it writes the output length through a pointer into guest "
                f"memory, the classic format-string attack")
        elif conv == "m":
            raise PrintfError(
                f"{spec.where()} (strerror(errno)) is not supported")
        else:
            shown = conv if 0x20 < ord(conv) < 0x7F else f"\\x{ord(conv):02x}"
            raise PrintfError(
                f"unknown conversion '{shown}' in "
                f"{fmt[spec.offset:i]!r} at offset {spec.offset}")
    return bytes(out)
