"""Input readers: bytes on disk -> :class:`~kitemu.loader.model.ObjectFile`."""

from __future__ import annotations

from ..errors import ObjectFormatError
from .elf import is_elf, read_elf
from .model import ObjectFile


def load_object(path: str, data: bytes | None = None) -> ObjectFile:
    """Read an object file of any supported format."""
    if data is None:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise ObjectFormatError(path, f"cannot read: {e.strerror}") from None
    if is_elf(data):
        return read_elf(path, data)
    raise ObjectFormatError(path, "unrecognised file format (expected an ELF relocatable object)")
