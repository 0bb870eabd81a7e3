"""Tests for kitemu.hostlib.printf against the real glibc printf.

The glibc reference comes from C programs compiled with gcc at test time
(into a pytest tmp dir):

* the table test builds one program with one ``snprintf`` per case;
* the property tests build one "printf server" that reads requests
  (argument kind, ``*`` values, the value, the format) on stdin, calls
  ``snprintf`` with a runtime format and answers with the length and the
  bytes.  It is started once per module and every Hypothesis example is a
  round trip through its pipes.

Everything that needs gcc is skipped, with a reason, when gcc is missing;
the hand-written expectations and the refusal tests always run.
"""

from __future__ import annotations

import math
import os
import shutil
import struct
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kitemu.hostlib.printf import ListArgs, PrintfError, format_printf

GCC = shutil.which("gcc")
needs_gcc = pytest.mark.skipif(
    GCC is None, reason="gcc not found: no glibc reference printf to compare with")

MASK64 = (1 << 64) - 1
INF = math.inf
NAN = math.nan


def bits_to_double(bits: int) -> float:
    return struct.unpack("<d", struct.pack("<Q", bits & MASK64))[0]


def double_to_bits(x: float) -> int:
    return struct.unpack("<Q", struct.pack("<d", x))[0]


NEG_NAN = bits_to_double(0xFFF8_0000_0000_0000)


def compile_c(source: str, directory, name: str) -> str:
    src = directory / f"{name}.c"
    exe = directory / name
    src.write_text(source)
    subprocess.run(
        [GCC, "-std=gnu11", "-O0", "-fno-builtin", "-w", "-o", str(exe), str(src)],
        check=True, capture_output=True, text=True)
    return str(exe)


def c_bytes_literal(data: bytes) -> str:
    """A C string literal spelling ``data`` with octal escapes only."""
    return '"' + "".join(f"\\{b:03o}" for b in data) + '"'


# ---------------------------------------------------------------------------
# (1) a table of cases compared with glibc
# ---------------------------------------------------------------------------

# Typed C arguments: (C type, value).  "str" is a char * (None = NULL).
def i(v): return ("int", v)
def u(v): return ("unsigned", v)
def l(v): return ("long", v)
def ul(v): return ("unsigned long", v)
def ll(v): return ("long long", v)
def d(x): return ("double", x)
def s(b): return ("str", b)
def p(v): return ("void *", v)


NULL = s(None)

TABLE = [
    # plain and truncated integers
    (b"%d", [i(0)]),
    (b"%d", [i(-1)]),
    (b"%d|%d", [i(2**31 - 1), i(-2**31)]),
    (b"%i|%5i|%-5i|", [i(42), i(42), i(42)]),
    (b"%u", [u(-1)]),
    (b"%u|%u", [i(-1), u(2**31)]),
    (b"%hhu|%hhd|%hhd", [i(0x1ff), i(0x80), i(0x7f)]),
    (b"%hd|%hu|%hx", [i(0x18000), i(-1), i(0x12345)]),
    (b"%ld|%ld", [l(-2**63), l(2**63 - 1)]),
    (b"%lld|%llu|%llx", [ll(2**63 - 1), ll(-1), ll(-1)]),
    (b"%lx|%lX|%lo", [ul(0xDEADBEEFCAFEF00D)] * 3),
    (b"%jd %zu %td %zd", [l(-5), ul(7), l(-9), l(-1)]),
    (b"%Ld|%qd|%Zu|%qu", [ll(-1), ll(-2), ul(3), ll(-1)]),
    (b"%hhx|%hx|%x|%lx", [i(-1), i(-1), i(-1), l(-1)]),
    # octal / hex / binary with '#'
    (b"%o|%#o|%#o|%#o", [u(8), u(15), u(0), u(0o777)]),
    (b"%x|%#x|%#X|%#x|%X", [u(255), u(255), u(255), u(0), u(0xABCDEF)]),
    (b"%#08x|%#-8x|%08X|%#8x|", [u(255), u(255), u(255), u(255)]),
    (b"%#.3x|%#10.4x|%#-10.4X|", [u(0xAB), u(0xAB), u(0xAB)]),
    (b"%#5.3o|%#.5o|%#.0o|%#.0x|%.0u", [u(8), u(8), u(0), u(0), u(0)]),
    (b"%b|%#b|%B|%#B|%.8b|%#010b|%#b", [u(5)] * 6 + [u(0)]),
    # sign and padding flags
    (b"%+d|% d|%+ d|% +d", [i(5)] * 4),
    (b"%+d|% d|%+i", [i(-5), i(-5), i(0)]),
    (b"%+u|% x|%+o|% X", [u(5)] * 4),
    (b"%05d|%-05d|%+05d|%0+5d|", [i(-42), i(-42), i(42), i(42)]),
    (b"%-+8.3d|%- 8.3d|%+-8d|", [i(42), i(42), i(-42)]),
    # precision on integers
    (b"%.3d|%8.3d|%-8.3d|%08.3d|", [i(7)] * 4),
    (b"%.3d|%08.3d|%.10d", [i(-7), i(-7), i(-7)]),
    (b"%.0d|%5.0d|%-3.0d|%+.0d|% .0d|", [i(0)] * 5),
    (b"%.0x|%#.0x|%5.0o|", [u(0)] * 3),
    # characters
    (b"%c|%5c|%-5c|%05c|%.0c", [i(65)] * 5),
    (b"%c%c", [i(0x141), i(0x1FF)]),
    (b"%c%c%c", [i(ord("a")), i(0), i(0x7F)]),
    (b"%lc|%5lc|%hhc|%hc", [u(65), u(66), i(0x143), i(0x144)]),
    # strings
    (b"%s|%10s|%-10s|%.2s|%10.2s|%.0s|", [s(b"hello")] * 6),
    (b"%s", [NULL]),
    (b"%.3s|%.5s|%.6s|%8.2s|%-8s|%10s|", [NULL] * 6),
    (b"%s|%.4s|", [s(b"caf\xc3\xa9 \xff\x01"), s(b"caf\xc3\xa9")]),
    (b"%05s|%-05s|", [s(b"ab"), s(b"ab")]),
    (b"%hs|%hhs", [s(b"x"), s(b"y")]),
    # pointers
    (b"%p|%p", [p(0x1234), p(0)]),
    (b"%20p|%-20p|%020p|", [p(0x7FFF0000)] * 3),
    (b"%+p|% p|%.8p|%#p|%+020p", [p(0x1234)] * 5),
    (b"%10p|%-10p|%010p|%.2p|%+p", [p(0)] * 5),
    (b"%p", [p(MASK64)]),
    # fixed notation
    (b"%f|%F|%f", [d(3.14159), d(-2.5), d(0.0)]),
    (b"%.0f|%.0f|%.0f|%.0f|%.0f", [d(0.5), d(1.5), d(2.5), d(-0.5), d(3.5)]),
    (b"%#.0f|%#.0e|%#.0g|%#g", [d(3.0)] * 4),
    (b"%08.3f|%-8.3f|%+.2f|%+08.2f|", [d(-3.14159), d(2.5), d(1.005), d(1.005)]),
    (b"%.1f|%.2f|%.3f|%.2f", [d(0.05), d(0.125), d(0.0005), d(2.675)]),
    (b"%.60f", [d(0.1)]),
    (b"%f", [d(1e300)]),
    (b"%f|%.10f", [d(5e-324), d(1e-5)]),
    (b"%lf|%lF|%le|%lg|%la", [d(1.5)] * 5),
    (b"%'d|%'.2f", [i(1234567), d(1234567.891)]),
    # exponent notation
    (b"%e|%E|%+.3e|%.0e|%.0e", [d(1234.5678)] * 4 + [d(2.5)]),
    (b"%e|%E|%.3e", [d(0.0), d(1e-300), d(-9.9996)]),
    (b"%5.1e|%12.4E|%-12.2e|", [d(-0.000123)] * 3),
    (b"%.17g|%.17e|%.20e", [d(2 / 3)] * 3),
    # general notation
    (b"%g|%g|%g|%g", [d(100000.0), d(1000000.0), d(0.0001), d(0.00001)]),
    (b"%G|%g|%#g|%#.3g|%G", [d(1e-10), d(123.456), d(1.0), d(1.0), d(1e20)]),
    (b"%.0g|%.1g|%.20g|%#.0g", [d(0.1)] * 4),
    (b"%.3g|%.3g|%#.3g|%g", [d(1234567.0), d(0.0001234), d(100.0), d(1e100)]),
    (b"%g|%010g|%-10g|%+g", [d(-1.5e-300)] * 4),
    # special values
    (b"%f|%F|%e|%E|%g|%G|%a|%A", [d(INF)] * 8),
    (b"%f|%F|%e|%E|%g|%G|%a|%A", [d(-INF)] * 8),
    (b"%f|%F|%e|%E|%g|%G|%a|%A", [d(NAN)] * 8),
    (b"%f|%F|%e|%G|%a", [d(NEG_NAN)] * 5),
    (b"%+f|% f|%010f|%-10f|%+010E|", [d(INF)] * 5),
    (b"%+f|% F|%010f|%-10g|%+05e|", [d(NAN)] * 5),
    (b"%f|%e|%g|%+f|%a|%010.2f", [d(-0.0)] * 6),
    # hexadecimal floats
    (b"%a|%A|%a|%a|%a", [d(1.0), d(-0.1), d(0.0), d(5e-324), d(2.2250738585072014e-308)]),
    (b"%.0a|%.0a|%.1a|%.1a|%#a|%010a", [d(1.5), d(2.5), d(1.03125), d(1.09375), d(1.0), d(1.5)]),
    (b"%.3a|%.20a|%+a|% A|%-12a|", [d(1.0), d(0.1), d(3.0), d(3.0), d(-3.0)]),
    (b"%.0a|%.1a|%.12a", [d(0.75), d(1.96875), d(1.0 + 2 ** -52 * 0x80)]),
    (b"%.2a|%.0a", [d(bits_to_double(0x000F_FFFF_FFFF_FFFF)), d(bits_to_double(0x0008_0000_0000_0000))]),
    # '*' width and precision
    (b"%*d|%-*d|%*d|", [i(5), i(42), i(5), i(42), i(-5), i(42)]),
    (b"%.*d|%.*d|%.*f|%.*s|", [i(4), i(7), i(-1), i(7), i(-3), d(2.5), i(-1), s(b"abc")]),
    (b"%*.*f|%0*d|%-*.*s|", [i(-10), i(2), d(3.14159), i(-6), i(3), i(6), i(2), s(b"xyz")]),
    (b"%*s|%.*s|%*p|", [i(-4), NULL, i(2), NULL, i(-12), p(0)]),
    # glibc's slow path ('h' on a float/c/s/p) keeps '0' after a negative '*'
    (b"[%0*.1f]%hf[%0*.1f][%0*a][%0*g][%0*e][%0*f][%-0*f][%0*d]",
     [i(-6), d(1.0), d(1.0), i(-6), d(1.0), i(-12), d(1.5), i(-8), d(1.5),
      i(-14), d(1.5), i(-10), d(INF), i(-12), d(1.5), i(-6), i(3)]),
    (b"%0*hf|%0*.2he|%hc[%0*.1f]|%hhf[%0*.1f]", [i(-12), d(1.5), i(-12), d(1.5), i(65),
                                                i(-6), d(1.0), d(2.0), i(-6), d(1.0)]),
    # literal text
    (b"%%|%5%|%-5%|", []),
    (b"100%% done\n", []),
    (b"\xff\xfe raw %d \x80\x00tail", [i(1)]),
    (b"", []),
    # several conversions in one call
    (b"[%d %s %c %5.2f %p %x %e]", [i(-3), s(b"str"), i(ord("z")), d(3.14159),
                                    p(0xBEEF), u(0xC0FFEE), d(6.02e23)]),
    (b"%s=%-6d %#x;%s", [s(b"key"), i(99), u(99), NULL]),
]


def _python_args(cargs):
    """The ListArgs for a table case: strings get fake addresses."""
    values, strings = [], {}
    for n, (ctype, value) in enumerate(cargs):
        if ctype == "double":
            values.append(value)
        elif ctype == "str":
            if value is None:
                values.append(0)
            else:
                addr = 0x10000 + 0x1000 * n
                strings[addr] = value
                values.append(addr)
        elif ctype in ("int", "unsigned"):
            # What a 32-bit `mov` leaves in the argument register: the value
            # zero-extended.  The formatter must sign-extend it itself.
            values.append(value & 0xFFFF_FFFF)
        else:
            values.append(value & MASK64)
    return ListArgs(values, strings)


def _c_arg(ctype, value):
    if ctype == "double":
        return f"dbl(0x{double_to_bits(value):016x}ULL)"
    if ctype == "str":
        return "(char *)0" if value is None else c_bytes_literal(value)
    return f"({ctype})0x{value & MASK64:x}ULL"


def _table_program() -> str:
    lines = [
        "#include <stdio.h>",
        "#include <string.h>",
        "static char buf[1 << 16];",
        "static double dbl(unsigned long long b) { double d; memcpy(&d, &b, 8); return d; }",
        "static void emit(int n) {",
        "  if (n < 0 || n >= (int)sizeof buf) { printf(\"-1\\n\"); return; }",
        "  printf(\"%d\\n\", n); fwrite(buf, 1, n, stdout);",
        "}",
        "int main(void) {",
    ]
    for fmt, cargs in TABLE:
        call_args = "".join(", " + _c_arg(t, v) for t, v in cargs)
        lines.append(f"  emit(snprintf(buf, sizeof buf, {c_bytes_literal(fmt)}{call_args}));")
    lines += ["  return 0;", "}"]
    return "\n".join(lines) + "\n"


def _parse_length_prefixed(data: bytes, count: int) -> list[bytes | None]:
    results, pos = [], 0
    for _ in range(count):
        nl = data.index(b"\n", pos)
        n = int(data[pos:nl])
        pos = nl + 1
        if n < 0:
            results.append(None)
        else:
            results.append(data[pos:pos + n])
            pos += n
    assert pos == len(data)
    return results


@pytest.fixture(scope="module")
def glibc_table(tmp_path_factory):
    if GCC is None:
        pytest.skip("gcc not found: no glibc reference printf to compare with")
    exe = compile_c(_table_program(), tmp_path_factory.mktemp("printf_table"), "table")
    out = subprocess.run([exe], check=True, capture_output=True, timeout=60).stdout
    return _parse_length_prefixed(out, len(TABLE))


def test_table_is_big_enough():
    assert len(TABLE) >= 60


@needs_gcc
@pytest.mark.parametrize("index", range(len(TABLE)),
                         ids=[repr(fmt)[2:-1][:40] for fmt, _ in TABLE])
def test_table_matches_glibc(glibc_table, index):
    fmt, cargs = TABLE[index]
    expected = glibc_table[index]
    assert expected is not None, f"glibc failed on {fmt!r}"
    assert format_printf(fmt, _python_args(cargs)) == expected


# ---------------------------------------------------------------------------
# hand-written expectations (no gcc needed)
# ---------------------------------------------------------------------------

HAND = [
    (b"%d", [0xFFFFFFFF], {}, b"-1"),
    (b"%hhu", [0x1FF], {}, b"255"),
    (b"%u", [-1 & 0xFFFFFFFF], {}, b"4294967295"),
    (b"%u", [-1], {}, b"4294967295"),
    (b"%lld", [-1], {}, b"-1"),
    (b"%d", [0xDEAD_BEEF_0000_0007], {}, b"7"),
    (b"%p|%p", [0, 0x1234], {}, b"(nil)|0x1234"),
    (b"%s|%.5s|%.6s|", [0, 0, 0], {}, b"(null)||(null)|"),
    (b"%c", [0x141], {}, b"A"),
    (b"%#o|%#x|%#x", [15, 0, 255], {}, b"017|0|0xff"),
    (b"%#g|%g", [1.0, 1.0], {}, b"1.00000|1"),
    (b"%.0f|%+.3e|%08.3f", [2.5, 1234.5, -3.14159], {}, b"2|+1.234e+03|-003.142"),
    (b"%-10s|", [0x100], {0x100: b"hi"}, b"hi        |"),
    (b"% d|%.3d|%08.3d|%.0d|", [5, 7, 7, 0], {}, b" 5|007|     007||"),
    (b"%f|%F|%e|%G", [INF, -INF, NAN, NEG_NAN], {}, b"inf|-INF|nan|-NAN"),
    (b"%+f|% e|%010f", [INF, NAN, -INF], {}, b"+inf| nan|      -inf"),
    (b"%f|%e|%g", [-0.0, -0.0, -0.0], {}, b"-0.000000|-0.000000e+00|-0"),
    (b"%a|%.0a|%A|%a", [1.0, 1.5, -0.1, 0.0], {}, b"0x1p+0|0x2p+0|-0X1.999999999999AP-4|0x0p+0"),
    (b"%*d|%-*d|%.*d|", [-4, 1, 3, 2, -1, 5], {}, b"1   |2  |5|"),
    (b"caf\xc3\xa9 %d%% \xff", [3], {}, b"caf\xc3\xa9 3% \xff"),
    (b"%s", [0x2002], {0x2000: b"abcdef"}, b"cdef"),
    (b"%.3s", [0x2000], {0x2000: b"ab\0cd"}, b"ab"),
    (b"%b|%#B", [6, 6], {}, b"110|0B110"),
]


@pytest.mark.parametrize("fmt,values,strings,expected", HAND,
                         ids=[repr(h[0])[2:-1] for h in HAND])
def test_hand_written(fmt, values, strings, expected):
    assert format_printf(fmt, ListArgs(values, strings)) == expected


# ---------------------------------------------------------------------------
# (3) refusals, NULL %s, negative '*'
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", [b"%n", b"abc%n", b"%hhn", b"%hn", b"%ln", b"%lln",
                                 b"%zn", b"%-5n", b"%*n", b"%d%n"])
def test_percent_n_is_refused(fmt):
    args = ListArgs([1, 0x1000, 0x1000])
    with pytest.raises(PrintfError, match=r"%\w*n .*refused"):
        format_printf(fmt, args)


def test_printf_error_is_a_value_error():
    with pytest.raises(ValueError):
        format_printf(b"%n", ListArgs([0x1000]))


@pytest.mark.parametrize("fmt,values,what", [
    (b"%Lf", [1.0], "long double"),
    (b"%llg", [1.0], "long double"),
    (b"%qe", [1.0], "long double"),
    (b"%ls", [0x1000], "wide string"),
    (b"%S", [0x1000], "wide string"),
    (b"%lc", [0xE9], "EILSEQ"),
    (b"ab%yc", [], "unknown conversion 'y'.*offset 2"),
    (b"%5", [], "ends inside"),
    (b"x%", [], "ends inside"),
    (b"%-", [], "ends inside"),
    (b"%1$d", [1], "positional"),
    (b"%m", [], "strerror"),
    (b"%hhl", [1], "unknown conversion 'l'"),
    (b"%Id", [1], "unknown conversion 'I'"),
    (b"%99999999999d", [1], "EOVERFLOW"),
    (b"%.99999999999f", [1.0], "EOVERFLOW"),
    (b"%*d", [0x8000_0000, 1], "cannot be negated"),
    (b"%d %d", [1], "argument 2 missing"),
    (b"%d", [1.5], "wants an integer"),
    (b"%f", [1], "wants a double"),
    (b"%s", [0x1234], "no string at address 0x1234"),
])
def test_refused_and_malformed(fmt, values, what):
    with pytest.raises(PrintfError, match=what):
        format_printf(fmt, ListArgs(values, {}))


@pytest.mark.parametrize("fmt,expected", [
    (b"%s", b"(null)"),
    (b"%.0s|", b"|"),
    (b"%.5s|", b"|"),
    (b"%.6s|", b"(null)|"),
    (b"%.100s|", b"(null)|"),
    (b"%8s|", b"  (null)|"),
    (b"%-8s|", b"(null)  |"),
    (b"%8.3s|", b"        |"),
    (b"%08s|", b"  (null)|"),
])
def test_null_string(fmt, expected):
    assert format_printf(fmt, ListArgs([0])) == expected


def test_null_string_is_not_read():
    class NoMemory(ListArgs):
        def read_cstring(self, addr, limit=None):
            raise AssertionError("a NULL %s must not touch memory")

    assert format_printf(b"%s%.3s", NoMemory([0, 0])) == b"(null)"


def test_precision_bounds_the_string_read():
    limits = []

    class Recording(ListArgs):
        def read_cstring(self, addr, limit=None):
            limits.append(limit)
            return super().read_cstring(addr, limit)

    args = Recording([0x1000, 0x1000, 3, 0x1000, -1 & MASK64, 0x1000],
                     {0x1000: b"abcdef"})
    assert format_printf(b"%s|%.2s|%.*s|%.*s", args) == b"abcdef|ab|abc|abcdef"
    assert limits == [None, 2, 3, None]


@pytest.mark.parametrize("fmt,values,expected", [
    (b"%*d|", [-5, 42], b"42   |"),
    (b"%*d|", [(-5) & 0xFFFF_FFFF, 42], b"42   |"),   # int in a zero-extended word
    (b"%0*d|", [-5, 42], b"42   |"),                 # left-justify beats '0'
    (b"%-*d|", [-5, 42], b"42   |"),
    (b"%*d|", [0xFFFF_FFFF_0000_0003, 42], b" 42|"),  # upper bits ignored
    (b"%.*d|", [-1, 0], b"0|"),                      # negative precision = none
    (b"%.*d|", [-7, 5], b"5|"),
    (b"%08.*d|", [-1, 5], b"00000005|"),             # so '0' applies again
    (b"%.*f|", [-2, 2.5], b"2.500000|"),
    (b"%.*e|", [-2, 2.5], b"2.500000e+00|"),
    (b"%.*s|", [-1, 0x10], b"long string|"),
    (b"%.*s|", [-1, 0], b"(null)|"),
    (b"%*.*s|", [-8, -1, 0x10], b"long string|"),
    (b"%*.*s|", [-14, 4, 0x10], b"long          |"),
    (b"%*c|", [-3, ord("x")], b"x  |"),
    (b"%*p|", [-8, 0x10], b"0x10    |"),
    (b"%*%|%d", [5, 7], b"%|7"),                      # glibc consumes the '*'
    (b"%0*.1f|%0*.1hf|%0*.1f", [-6, 1.0, -6, 1.0, -6, 1.0],  # glibc slow-path quirk
     b"1.0   |1.0000|1.0000"),
])
def test_negative_star(fmt, values, expected):
    strings = {0x10: b"long string"}
    assert format_printf(fmt, ListArgs(values, strings)) == expected


# ---------------------------------------------------------------------------
# (2) property tests against a glibc "printf server"
# ---------------------------------------------------------------------------

SERVER_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>

static char buf[1 << 16];
static char line[1 << 16];
static char fmt[1 << 14];
static char str[1 << 14];

/* "h<hex digits>" -> bytes, NUL-terminated. */
static void unhex(const char *h, char *out) {
  h++;
  while (h[0] && h[1]) {
    unsigned v;
    sscanf(h, "%2x", &v);
    *out++ = (char)v;
    h += 2;
  }
  *out = 0;
}

#define CALL(ARG) (nstar == 0 ? snprintf(buf, sizeof buf, fmt, ARG) \
                 : nstar == 1 ? snprintf(buf, sizeof buf, fmt, s1, ARG) \
                 : snprintf(buf, sizeof buf, fmt, s1, s2, ARG))

int main(void) {
  while (fgets(line, sizeof line, stdin)) {
    char kind;
    int nstar, s1, s2, n = -1;
    static char val[1 << 15], fh[1 << 15];
    if (sscanf(line, "%c %d %d %d %s %s", &kind, &nstar, &s1, &s2, val, fh) != 6) {
      printf("-2\n");
      fflush(stdout);
      continue;
    }
    unhex(fh, fmt);
    unsigned long long v = strtoull(val, 0, 16);
    switch (kind) {
    case 'i': n = CALL((int)v); break;
    case 'l': n = CALL((long)v); break;
    case 'p': n = CALL((void *)(uintptr_t)v); break;
    case 'd': { double x; memcpy(&x, &v, 8); n = CALL(x); break; }
    case 's': {
      char *ptr = 0;
      if (val[0] == 'h') { unhex(val, str); ptr = str; }
      n = CALL(ptr);
      break;
    }
    }
    if (n >= (int)sizeof buf) n = -3;
    printf("%d\n", n);
    if (n > 0) fwrite(buf, 1, n, stdout);
    fflush(stdout);
  }
  return 0;
}
"""


class GlibcServer:
    def __init__(self, exe: str):
        self.proc = subprocess.Popen([exe], stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def snprintf(self, kind: str, stars: list[int], value: str, fmt: bytes) -> bytes:
        s1, s2 = (stars + [0, 0])[:2]
        request = f"{kind} {len(stars)} {s1} {s2} {value} h{fmt.hex()}\n"
        self.proc.stdin.write(request.encode())
        self.proc.stdin.flush()
        n = int(self.proc.stdout.readline())
        assert n >= 0, f"glibc server failed ({n}) on {request!r}"
        return self.proc.stdout.read(n)

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=10)
        self.proc.stdout.close()


@pytest.fixture(scope="module")
def glibc(tmp_path_factory):
    if GCC is None:
        pytest.skip("gcc not found: no glibc reference printf to compare with")
    exe = compile_c(SERVER_C, tmp_path_factory.mktemp("printf_server"), "server")
    server = GlibcServer(exe)
    try:
        yield server
    finally:
        server.close()


EXAMPLES = 2000 if os.environ.get("KITEMU_PROFILE") == "full" else 250
PROPERTY = settings(max_examples=EXAMPLES, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])

INT_EDGES = [0, 1, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0x7FFF_FFFF,
             0x8000_0000, 0xFFFF_FFFF, 0x1_0000_0000, 0x7FFF_FFFF_FFFF_FFFF,
             0x8000_0000_0000_0000, MASK64, MASK64 - 1]
words = st.one_of(
    st.integers(0, MASK64),
    st.sampled_from(INT_EDGES),
    st.integers(-1000, 1000).map(lambda v: v & MASK64),
    st.tuples(st.integers(0, 0xFFFF_FFFF), st.sampled_from(INT_EDGES))
      .map(lambda t: (t[0] << 32 | t[1]) & MASK64),     # garbage in the upper half
)
doubles = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(0, MASK64).map(bits_to_double),          # any bit pattern, NaN payloads too
    st.sampled_from([0.0, -0.0, 0.5, 1.5, 2.5, -2.5, 0.125, 9.5, 99.5, 999999.5,
                     1e-5, 1e-4, 1e15, 1e16, 1e17, 5e-324, 2.2250738585072014e-308,
                     1.7976931348623157e308, INF, -INF, NAN, NEG_NAN, 0.1, 1 / 3]),
    st.integers(-10**6, 10**6).map(lambda n: n / 8),
)


@st.composite
def spec_parts(draw, flag_chars: str, max_width: int, max_prec: int, precision=True):
    """(flags, width text, precision text, star values) of a random spec."""
    flags = "".join(draw(st.lists(st.sampled_from(flag_chars), max_size=4)))
    stars: list[int] = []
    width = draw(st.one_of(st.just(""), st.integers(1, max_width).map(str), st.just("*")))
    if width == "*":
        stars.append(draw(st.integers(-max_width, max_width)))
    prec = ""
    if precision:
        prec = draw(st.one_of(st.just(""), st.just("."),
                              st.integers(0, max_prec).map(lambda n: f".{n}"),
                              st.just(".*")))
        if prec == ".*":
            stars.append(draw(st.integers(-5, max_prec)))
    return flags, width, prec, stars


def star_words(draw, stars):
    """How the int '*' arguments sit in 64-bit words: sign- or zero-extended."""
    zero_ext = draw(st.booleans())
    return [(v & 0xFFFF_FFFF) if zero_ext else (v & MASK64) for v in stars]


def check(glibc, kind, stars, cvalue, fmt, args):
    expected = glibc.snprintf(kind, stars, cvalue, fmt)
    got = format_printf(fmt, args)
    assert got == expected, f"format {fmt!r}, value {cvalue}: glibc {expected!r}, ours {got!r}"


@needs_gcc
@PROPERTY
@given(data=st.data())
def test_integers_match_glibc(glibc, data):
    flags, width, prec, stars = data.draw(spec_parts("-+ #0'", 30, 25))
    length = data.draw(st.sampled_from(["", "hh", "h", "l", "ll", "j", "z", "Z", "t", "q", "L"]))
    conv = data.draw(st.sampled_from("diuoxXbB"))
    value = data.draw(words)
    fmt = f"<%{flags}{width}{prec}{length}{conv}>".encode()
    kind = "i" if length in ("", "h", "hh") else "l"
    args = ListArgs(star_words(data.draw, stars) + [value])
    check(glibc, kind, stars, f"{value:x}", fmt, args)


@needs_gcc
@PROPERTY
@given(data=st.data())
def test_doubles_match_glibc(glibc, data):
    flags, width, prec, stars = data.draw(spec_parts("-+ #0'", 40, 40))
    length = data.draw(st.sampled_from(["", "", "", "l", "h", "j", "z", "t"]))
    conv = data.draw(st.sampled_from("fFeEgGaA"))
    value = data.draw(doubles)
    fmt = f"<%{flags}{width}{prec}{length}{conv}>".encode()
    args = ListArgs(star_words(data.draw, stars) + [value])
    check(glibc, "d", stars, f"{double_to_bits(value):x}", fmt, args)


@needs_gcc
@PROPERTY
@given(data=st.data())
def test_strings_chars_pointers_match_glibc(glibc, data):
    conv = data.draw(st.sampled_from("scp"))
    if conv == "s":
        flags, width, prec, stars = data.draw(spec_parts("-0 +#", 20, 12))
        length = data.draw(st.sampled_from(["", "h", "hh"]))
        text = data.draw(st.one_of(
            st.none(), st.binary(max_size=16).map(lambda b: b.replace(b"\0", b"\1"))))
        strings = {} if text is None else {0x5000: text}
        values = [0 if text is None else 0x5000]
        kind, cvalue = "s", ("-" if text is None else f"h{text.hex()}")
    elif conv == "c":
        flags, width, prec, stars = data.draw(spec_parts("-0", 20, 5))
        length = data.draw(st.sampled_from(["", "h", "hh", "l"]))
        value = data.draw(words)
        if length == "l":
            value = data.draw(st.integers(0, 0x7F))   # the C locale's wide chars
        strings, values = {}, [value]
        kind, cvalue = "i", f"{value:x}"
    else:
        flags, width, prec, stars = data.draw(spec_parts("-+ #0", 30, 20))
        length = data.draw(st.sampled_from(["", "l", "h"]))
        value = data.draw(st.one_of(st.just(0), words))
        strings, values = {}, [value]
        kind, cvalue = "p", f"{value:x}"
    fmt = f"<%{flags}{width}{prec}{length}{conv}>".encode()
    args = ListArgs(star_words(data.draw, stars) + values, strings)
    check(glibc, kind, stars, cvalue, fmt, args)


@needs_gcc
@PROPERTY
@given(literal=st.binary(max_size=24), value=words)
def test_literal_bytes_are_copied(glibc, literal, value):
    literal = literal.replace(b"\0", b"").replace(b"%", b"%%")
    fmt = literal + b"%d" + literal
    check(glibc, "i", [], f"{value:x}", fmt, ListArgs([value]))
