"""Input readers: bytes on disk -> :class:`~kitemu.loader.model.ObjectFile`."""

from __future__ import annotations

from ..errors import ObjectFormatError
from .archive import Archive, is_archive, read_archive
from .elf import is_elf, read_elf
from .guard import read_input
from .macho import is_macho, macho_refusal, read_macho
from .model import ObjectFile


def load_object(path: str, data: bytes | None = None) -> ObjectFile:
    """Read an object file of any supported format: ELF (``\\x7fELF``) or
    64-bit little-endian Mach-O (MH_MAGIC_64, ``0xfeedfacf``). 32-bit,
    big-endian and universal (fat) Mach-O files are refused by name."""
    if data is None:
        data = read_input(path)
    if is_elf(data):
        return read_elf(path, data)
    if is_macho(data):
        return read_macho(path, data)
    refusal = macho_refusal(data)
    if refusal:
        raise ObjectFormatError(path, refusal)
    raise ObjectFormatError(path, "unrecognised file format (expected an ELF or a 64-bit "
                                  "Mach-O relocatable object)")


def load_inputs(paths: list[str], load=None) -> tuple[list[ObjectFile], list[Archive]]:
    """Read command-line inputs by content, not by name: static archives
    (``!<arch>``; thin archives are refused) become :class:`Archive` s, whose
    members are pulled later by :func:`kitemu.link.inputs.select_inputs`;
    anything else is an object. Each list keeps the order of ``paths``.

    ``load(path) -> ObjectFile`` reads the objects (default: ``load_object``
    on the bytes already read); a file that cannot be opened is handed to it
    too, so that the object reader reports it."""
    objects: list[ObjectFile] = []
    archives: list[Archive] = []
    for path in paths:
        try:
            data = read_input(path)
        except ObjectFormatError:
            if load is None:
                raise
            objects.append(load(path))
            continue
        if is_archive(data):
            archives.append(read_archive(path, data))
        else:
            objects.append(load(path) if load is not None else load_object(path, data))
    return objects, archives
