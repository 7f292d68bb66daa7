"""What the process tests share: /proc readings (a process's descendants, whether one lives),
and the environment and a free port for the rigbench and torchrun processes they start."""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# torchrun's agent, as its `torchrun` script starts it (torch.distributed.run:main), with the
# exit rigbench's own processes have (rigbench.__main__): the interpreter's last garbage
# collections skip torch's objects, 0.5-0.9 of the agent's 2 CPU-s on the 2-core CI machine.
TORCHRUN = [
    sys.executable,
    "-c",
    "import atexit, gc; atexit.register(gc.freeze); from torch.distributed.run import main; main()",
]


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, whatever session it moved to (read from /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    """Running, not a zombie waiting to be reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def outliving(pids: set[int] | list[int], grace_s: float) -> list[int]:
    """Those of `pids` still alive after up to `grace_s`: a process killed a moment ago may
    still be tearing down its address space (torch's is large, and the host may be busy)."""
    deadline = time.monotonic() + grace_s
    while True:
        left = sorted(pid for pid in pids if alive(pid))
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.1)


def child_env() -> dict[str, str]:
    """This environment for a child rigbench: the source tree on its path, and no torchrun
    variables left over from a process that was itself a rank."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR"):
        env.pop(k, None)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
