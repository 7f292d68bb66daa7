"""Which process runs a command, told apart from any later process given the same pid: the
pid namespace it lives in, the boot, and its start time (procfs). Lets the store tell a run
whose process is gone (kill -9, power loss) from one still going."""

from __future__ import annotations

import os
import socket
from pathlib import Path

PROC = Path("/proc")


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/<pid>/stat after the command name (which may hold spaces and parentheses)."""
    try:
        return (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _pid_namespace() -> str:
    try:
        return str(os.stat(PROC / "self" / "ns" / "pid").st_ino)
    except OSError:
        return "?"


def _boot() -> str:
    try:
        return (PROC / "sys" / "kernel" / "random" / "boot_id").read_text().strip()
    except OSError:
        return "?"


def host() -> str:
    return socket.gethostname()


def identity(pid: int | None = None) -> str:
    """`pidns:<inode> boot:<id> start:<ticks>` of a process (default: this one)."""
    fields = _stat_fields(pid if pid is not None else os.getpid())
    start = fields[19] if fields and len(fields) > 19 else "?"  # field 22: starttime
    return f"pidns:{_pid_namespace()} boot:{_boot()} start:{start}"


def same_namespace(ident: str) -> bool:
    """Whether a process of this identity can be looked up from here at all."""
    return ident.split(" ", 1)[0] == f"pidns:{_pid_namespace()}"


def is_gone(pid: int, ident: str | None) -> bool:
    """Whether the process that had `pid` (and `ident`, when known) has ended: no such pid,
    a zombie, or another process now holding the pid (another boot or start time)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # alive, another user's
    fields = _stat_fields(pid)
    if fields is None:
        return False  # cannot tell: leave it running
    if fields[0] == "Z":
        return True  # ended; waits only to be reaped
    return ident is not None and "?" not in ident and identity(pid) != ident
