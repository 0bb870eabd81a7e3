"""What every reader shares: reading an input file, and the guarantee that
parsing never ends in a traceback.

Readers check what they can explicitly; :func:`parse_guarded` turns any
low-level exception a corrupt input still provokes (a bad ``struct`` unpack,
an index past a table, an absurd size) into an :class:`ObjectFormatError`
naming the file.
"""

from __future__ import annotations

import struct

from ..errors import KitemuError, ObjectFormatError

#: what malformed bytes can make a parser raise
PARSE_ERRORS = (struct.error, ValueError, IndexError, KeyError, TypeError, AttributeError,
                UnicodeError, OverflowError, AssertionError, MemoryError)


def read_input(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise ObjectFormatError(path, f"cannot read: {e.strerror}") from None


def parse_guarded(path: str, what: str, parse, extra_errors: tuple = ()):
    """``parse()``, with any non-kitemu parse failure reported as
    ``PATH: <what> (<exception>)``."""
    try:
        return parse()
    except KitemuError:
        raise
    except PARSE_ERRORS + extra_errors as e:
        raise ObjectFormatError(path, f"{what} ({type(e).__name__}: {e})") from None
