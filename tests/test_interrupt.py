"""Ctrl-C in the middle of a run: what was measured stays, the run is marked incomplete,
and no worker is left behind."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from procs import descendants, outliving


def _count(db: Path, sql: str) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db) as conn:
            return int(conn.execute(sql).fetchone()[0])
    except sqlite3.OperationalError:
        return 0  # schema not created yet


def test_ctrl_c_keeps_results_and_marks_run_incomplete(tmp_path: Path, examples: Path) -> None:
    db = tmp_path / "r.db"
    # Pair 0-1 hangs for a minute, so the run is still going when we interrupt it;
    # pair 0-2 and 1-2 are never reached. Memory runs first and gives results to keep.
    cmd = [
        sys.executable, "-m", "rigbench", "bench", "--only", "memory,p2p",
        "--simulate", str(examples / "tr1920x-3x3090-p2p-hang.toml"),
        "--db", str(db), "--scale", "0.02", "--timeout", "60",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        # every memory result (one per stand-in GPU) is stored before p2p starts
        while _count(db, "SELECT count(*) FROM results WHERE benchmark = 'memory'") < 3:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no results stored in time"
            time.sleep(0.2)
        # p2p's hung worker starts after the memory results: gather workers a while
        workers: set[int] = set()
        until = time.monotonic() + 2.0
        while time.monotonic() < until:
            workers |= set(descendants(proc.pid))
            time.sleep(0.1)
        assert workers, "bench started no worker processes"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    with sqlite3.connect(db) as conn:
        status = conn.execute("SELECT status FROM runs").fetchone()[0]
        kept = conn.execute("SELECT count(*) FROM results WHERE status = 'ok'").fetchone()[0]
    assert status == "incomplete"
    assert kept >= 3
    # Workers fork from a fork server, so their command lines do not name the run: find
    # them by the environment they inherited (this test's own user-data path).
    entry = f"RIGBENCH_DB={tmp_path / 'user-data' / 'rigbench.db'}"
    give_up = time.monotonic() + 15  # the fork server exits once it sees its parent gone
    while _with_env(entry) and time.monotonic() < give_up:
        time.sleep(0.2)
    assert _with_env(entry) == []

    # the hung worker ran in its own session: it must be gone with the run
    survivors = outliving(workers, grace_s=10)
    for pid in survivors:  # a failed test leaves nothing behind either
        os.kill(pid, signal.SIGKILL)
    assert survivors == [], "workers outlived the interrupted run"


def _with_env(entry: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            env = (proc / "environ").read_bytes().split(b"\0")
            state = (proc / "stat").read_text().rsplit(") ", 1)[1][0]
        except OSError:
            continue
        if entry.encode() in env and state != "Z":
            found.append(int(proc.name))
    return found


_IMPORT_INTERRUPTED = """
import sys
class Interrupt:
    def find_spec(self, name, path=None, target=None):
        if name == "rigbench.cli":
            raise KeyboardInterrupt
sys.meta_path.insert(0, Interrupt())
sys.argv = ["rigbench", "info"]
from rigbench.__main__ import run
run()
"""


def test_ctrl_c_while_the_command_imports_exits_130_without_a_traceback() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _IMPORT_INTERRUPTED], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 130
    assert "Traceback" not in proc.stderr


_WORKER_START_AFTER_PARENT_STOPPED = """
import sys, time
from multiprocessing import synchronize, util
from rigbench import supervisor

class Slow:  # unpickled in the worker before the semaphore: the parent unlinks it meanwhile
    def __reduce__(self):
        return (time.sleep, (1.0,))

class Broken:
    def __reduce__(self):
        return (int, ("not a number",))

ctx = supervisor.context()
sem = ctx.Semaphore(1)
args = (Slow(), sem) if sys.argv[1] == "lost" else (Slow(), Broken())
worker = supervisor.start(time.sleep, args, name="w")  # never called: start-up fails
if sys.argv[1] == "lost":
    for f in list(util._finalizer_registry.values()):  # what a stopping parent runs
        if f._callback is synchronize.SemLock._cleanup:
            f()
worker.proc.join(30)
print("worker exit", worker.proc.exitcode)
"""


def test_a_worker_started_as_its_parent_stops_prints_no_traceback() -> None:
    """A Ctrl-C during a burn-in's start-up printed a forked worker's bootstrap traceback
    (its semaphore unlinked by the stopping parent) under rigbench's own lines."""
    lost = subprocess.run(
        [sys.executable, "-c", _WORKER_START_AFTER_PARENT_STOPPED, "lost"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert "worker exit 1" in lost.stdout
    assert "Traceback" not in lost.stderr, lost.stderr
    # any other failure while a worker starts still shows
    broken = subprocess.run(
        [sys.executable, "-c", _WORKER_START_AFTER_PARENT_STOPPED, "broken"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert "worker exit 1" in broken.stdout
    assert "ValueError" in broken.stderr
