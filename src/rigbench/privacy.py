"""What an owner may not want to publish, taken out of exports and reports: the hostname,
serial numbers, UUIDs and paths inside their home directory (a file keeps its name)."""

from __future__ import annotations

import os
import re
from typing import Any

ID_KEYS = frozenset({"hostname", "uuid", "serial", "serial_number", "board_serial", "mac"})
# A path in a user's home (or root's, or the running user's): /home/ann/rigs/x.toml -> x.toml
_HOME_PATH = re.compile(r"(?:/home/[^/\s]+|/root|/Users/[^/\s]+)(?:/[^\s/:;,'\"()]+)+")
_UUID = re.compile(
    r"\bGPU-[0-9a-fA-F-]{36}\b|\b[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}\b"
)


def scrub_text(text: str) -> str:
    home = os.path.expanduser("~")
    if home not in ("/", "") and home in text:
        text = re.sub(re.escape(home) + r"(?:/[^\s/:;,'\"()]+)+", _basename, text)
    text = _HOME_PATH.sub(_basename, text)
    return _UUID.sub("<uuid>", text)


def _basename(m: re.Match[str]) -> str:
    return m.group(0).rstrip("/").rsplit("/", 1)[-1]


def scrub_argv(argv: list[str]) -> list[str]:
    """Command lines keep their options; a file argument keeps only its name."""
    out = []
    for a in argv:
        if "/" in a and not a.startswith("-"):
            a = a.rstrip("/").rsplit("/", 1)[-1]
        elif a.startswith("--") and "=" in a and "/" in a:
            opt, value = a.split("=", 1)
            a = f"{opt}={value.rstrip('/').rsplit('/', 1)[-1]}"
        out.append(scrub_text(a))
    return out


def scrub(value: Any) -> Any:
    """A JSON-like value without ID_KEYS entries and with user paths and UUIDs shortened."""
    if isinstance(value, dict):
        return {k: scrub(v) for k, v in value.items() if k not in ID_KEYS}
    if isinstance(value, list | tuple):
        return [scrub(v) for v in value]
    if isinstance(value, str):
        return scrub_text(value)
    return value
