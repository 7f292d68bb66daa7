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


def test_killing_a_worker_ends_what_it_started() -> None:
    worker = supervisor.start(_start_grandchild, name="with-grandchild")
    assert worker.conn.poll(60)
    grandchild = worker.conn.recv()
    assert not _gone(grandchild)
    worker.kill()
    for _ in range(50):
        if _gone(grandchild):
            break
        time.sleep(0.1)
    assert _gone(grandchild)
    assert not worker.alive()


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
            "p2p,collectives",
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
