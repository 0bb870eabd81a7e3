"""C inputs: ``.c`` files and C source on stdin, compiled with clang for the
chosen target into relocatable objects that kitemu then links like any other.

Programs see one header, ``kitlibc.h`` (shipped in ``kitemu/include``),
declaring the host C library; everything else comes from clang's
freestanding headers. The flags match the corpus build: ``-ffreestanding
-fno-common``, no stack protector on Darwin (kitemu provides no
``__stack_chk_guard``), and an explicit code model where distribution
defaults differ.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

from .errors import ConfigError, KitemuError
from .targets import Target

INCLUDE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "include")
OPT_LEVELS = ("-O0", "-O1", "-O2", "-O3", "-Os")

#: per-format flags so that objects do not depend on the distribution's
#: clang defaults (Debian's clang 14 defaults to PIE)
_FORMAT_FLAGS = {"elf": ["-fno-pic"], "macho": ["-fno-stack-protector"]}


def find_clang() -> str:
    clang = os.environ.get("KITEMU_CLANG") or shutil.which("clang") or shutil.which("clang-14")
    if clang is None:
        raise ConfigError("compiling C inputs needs clang, which is not installed "
                          "(Debian: apt-get install clang; or set KITEMU_CLANG)")
    return clang


def compile_c(source: str | None, target: Target, opt: str = "-O2",
              extra_flags: list[str] | None = None, *, text: bytes | None = None,
              name: str | None = None) -> tuple[str, bytes]:
    """Compile one C translation unit; returns ``(display name, object bytes)``.

    Give a path in ``source``, or the program text in ``text`` (stdin) with
    ``source=None``; ``name`` is what messages call it."""
    if opt not in OPT_LEVELS:
        raise ConfigError(f"unknown optimisation level {opt!r}; use one of {', '.join(OPT_LEVELS)}")
    clang = find_clang()
    display = name or source or "<stdin>"
    with tempfile.TemporaryDirectory(prefix="kitemu-cc-") as tmp:
        out = os.path.join(tmp, "out.o")
        cmd = [clang, f"--target={target.triple}", "-ffreestanding", "-fno-common", "-g0",
               *_FORMAT_FLAGS.get(target.format, []), f"-I{INCLUDE_DIR}", opt,
               *(extra_flags or []), "-c", "-o", out]
        cmd += ["-x", "c", "-"] if source is None else [source]
        proc = subprocess.run(cmd, input=text if source is None else None,
                              capture_output=True, timeout=300)
        if proc.returncode != 0:
            raise KitemuError(f"{display}: clang failed (exit {proc.returncode}):\n"
                              + proc.stderr.decode(errors="replace").rstrip())
        with open(out, "rb") as f:
            return display, f.read()
