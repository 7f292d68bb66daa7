"""Files the user names (a build file, a simulated rig, a database): refused before a byte
is read when they are not regular files (a FIFO blocks forever, /dev/zero never ends) or
larger than any real file of their kind."""

from __future__ import annotations

import os
import stat
from pathlib import Path

# The largest shipped example is a few KB; a hand-written TOML file of megabytes is a
# mistake (a wrong path, a log, a disk image), not a rig.
MAX_TOML_BYTES = 4 * 1024 * 1024


class NotReadable(Exception):
    """Why a file the user named is refused, in words (no path: the caller names it)."""


def kind_of(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _size_words(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n} bytes"


def check_regular(path: Path, max_bytes: int | None = None) -> None:
    """Raise NotReadable unless `path` is a regular file of at most `max_bytes`.
    FileNotFoundError passes through for callers that create missing files."""
    st = os.stat(path)  # follows links: a link to /dev/zero is a device
    if not stat.S_ISREG(st.st_mode):
        raise NotReadable(f"is {kind_of(st.st_mode)}, not a file")
    if max_bytes is not None and st.st_size > max_bytes:
        raise NotReadable(
            f"is {_size_words(st.st_size)}, more than the {_size_words(max_bytes)} "
            "any real file of this kind needs"
        )


def read_bytes_limited(path: Path, max_bytes: int) -> bytes:
    """The file's bytes, checked first; never more than `max_bytes` are read even if the
    file grows meanwhile."""
    check_regular(path, max_bytes)
    with open(path, "rb") as fh:
        raw = fh.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise NotReadable(f"is larger than {_size_words(max_bytes)}")
    return raw
