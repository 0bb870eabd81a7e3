"""Every error kitemu raises on bad input is a KitemuError.

The message always names what is at fault: the input file, the section, the
symbol, the relocation. The CLI prints ``str(err)`` and never a traceback, so
the text must stand on its own.
"""

from __future__ import annotations


class KitemuError(Exception):
    """Base class: a user-facing error with a self-contained message."""


class ObjectFormatError(KitemuError):
    """An input file is not a well-formed object kitemu can read."""

    def __init__(self, path: str, message: str, *, section: str | None = None,
                 relocation: str | None = None):
        where = path
        if section:
            where += f": section {section}"
        if relocation:
            where += f": relocation {relocation}"
        super().__init__(f"{where}: {message}")
        self.path = path
        self.section = section
        self.relocation = relocation


class UnsupportedRelocation(ObjectFormatError):
    """A relocation type the target does not implement."""


class FixupRangeError(KitemuError):
    """A value does not fit the instruction or data field of a fixup.

    Raised by a fixup's encoder; the linker catches it and either routes the
    reference through a stub or re-raises it as a RelocationError that names
    the relocation.
    """

    def __init__(self, fixup: str, value: int, detail: str):
        super().__init__(f"{fixup}: value {value:#x} {detail}")
        self.fixup = fixup
        self.value = value
        self.detail = detail


class LinkError(KitemuError):
    """Symbol resolution or layout failed."""


class RelocationError(LinkError):
    """A relocation could not be applied (overflow, misalignment, bad pairing)."""


class ExecMemError(KitemuError):
    """The executable-memory allocator refused an operation."""


class WXViolation(ExecMemError):
    """An operation would make memory writable and executable, or write to code."""


class ConfigError(KitemuError):
    """A host model, strategy or target was configured wrongly."""
