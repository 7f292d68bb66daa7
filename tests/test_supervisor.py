"""The one process supervisor: workers see the parent's environment as it is when they
start, a kill ends the worker's whole group, and the doctor's probes do not call a busy
machine's slow start a GPU hang."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from rigbench import supervisor
from rigbench.cli import app
from stepmods import rank_parents

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "simulated"


def _send_env(name: str, *, conn: Any) -> None:
    conn.send(os.environ.get(name))


def _start_grandchild(*, conn: Any) -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    conn.send(child.pid)
    time.sleep(600)


def test_a_worker_sees_the_environment_of_the_moment_it_starts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    supervisor.start(_send_env, ("RIGBENCH_TEST_ENV",), name="env-before").kill()  # server up
    monkeypatch.setenv("RIGBENCH_TEST_ENV", "set after the fork server started")
    worker = supervisor.start(_send_env, ("RIGBENCH_TEST_ENV",), name="env-after")
    try:
        assert worker.conn.poll(60)
        assert worker.conn.recv() == "set after the fork server started"
    finally:
        worker.kill()


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # a zombie of an exited child counts as gone
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(") ", 1)[1].startswith("Z")


def _ends(pid: int, within_s: float) -> bool:
    """Whether `pid` is gone within `within_s` (a bound on clean-up, not a timing)."""
    give_up = time.monotonic() + within_s
    while not _gone(pid) and time.monotonic() < give_up:
        time.sleep(0.1)
    return _gone(pid)


def test_killing_a_worker_ends_what_it_started() -> None:
    worker = supervisor.start(_start_grandchild, name="with-grandchild")
    assert worker.conn.poll(60)
    grandchild = worker.conn.recv()
    assert not _gone(grandchild)
    worker.kill()
    assert _ends(grandchild, 5)
    assert not worker.alive()


def _sleep_forever(*, conn: Any) -> None:
    conn.send("up")
    time.sleep(600)


PARENT = """
import sys, time
sys.path.insert(0, {tests!r})
from rigbench import supervisor
import test_supervisor
worker = supervisor.start(test_supervisor._sleep_forever, name="orphan")
worker.conn.recv()
print(worker.proc.pid, flush=True)
time.sleep(600)
"""


def test_a_worker_does_not_outlive_a_rigbench_killed_with_9() -> None:
    code = PARENT.format(tests=str(Path(__file__).parent))
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    pid = None
    try:
        assert parent.stdout is not None
        pid = int(parent.stdout.readline())
        assert not _gone(pid)
        parent.kill()
        parent.wait()
        assert _ends(pid, 30)
    finally:
        parent.kill()
        parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()
        if pid is not None and not _gone(pid):
            os.kill(pid, 9)


STEPS = """
import sys
sys.path.insert(0, {tests!r})
from rigbench import supervisor
from stepmods import ranks_then_wait
supervisor.run_steps("stepmods.ranks_then_wait", None, ranks_then_wait.plan(None), print)
"""


def test_a_steps_ranks_do_not_outlive_a_rigbench_killed_with_9() -> None:
    """The ranks a step's worker asked for are rigbench's children, not the worker's: a
    kill -9 of rigbench mid-step still ends the worker and every rank."""
    code = STEPS.format(tests=str(Path(__file__).parent))
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    pids: list[int] = []
    try:
        assert parent.stdout is not None
        line = parent.stdout.readline()  # the worker's print (it shares rigbench's stdout)
        assert line.startswith("pids "), line
        pids = [int(p) for p in line.split()[1:]]
        assert len(pids) == 3 and not any(_gone(p) for p in pids)
        parent.kill()
        parent.wait()
        assert [p for p in pids if not _ends(p, 30)] == []
    finally:
        parent.kill()
        parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()
        for pid in pids:
            if not _gone(pid):
                os.kill(pid, 9)


def test_a_steps_ranks_come_from_the_fork_server_its_worker_came_from() -> None:
    """A step worker's ranks are started by rigbench from the one fork server (which
    imported torch once), not from a fork server, and a torch import, of the worker's own."""
    got: list[Any] = []
    supervisor.run_steps("stepmods.rank_parents", None, rank_parents.plan(None), got.append)
    (result,) = got
    assert result.status == "ok", result.message
    worker_parent, rank_parent = result.params["parents"]
    assert rank_parent == worker_parent


@pytest.fixture
def cpu_hog() -> Iterator[None]:
    """Every core busy, as on a shared CI machine or a box compiling in the background."""
    hogs = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"])
        for _ in range(os.cpu_count() or 2)
    ]
    try:
        yield
    finally:
        for p in hogs:
            p.kill()
            p.wait()


@pytest.mark.usefixtures("cpu_hog")
def test_a_healthy_8_gpu_rig_on_busy_cpus_is_not_a_hang() -> None:
    # Before the supervisor, the probes' timeout included starting eight torch processes:
    # on busy cores the healthy rig got collectives.hang (an error, "reseat the modules").
    res = CliRunner().invoke(
        app,
        [
            "doctor",
            "--json",
            "--simulate",
            str(EXAMPLES / "h100-8x-nvswitch.toml"),
            "--only",
            "collectives",
            # Shorter than starting eight ranks takes even on an idle machine: only the
            # probe's own work, after its workers report ready, may count against it.
            "--timeout",
            "3",
        ],
    )
    findings = {f["id"]: f for f in json.loads(res.stdout)["findings"]}
    assert not [i for i in findings if i.endswith(".hang")], findings
    assert findings["collectives.ok"]["severity"] == "ok"
    assert res.exit_code == 0
