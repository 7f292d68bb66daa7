"""kill -9 at random moments: a run whose process is gone reads `crashed` on the next open,
and `show` shows every result, finding and telemetry sample it stored before it died."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from typer.testing import CliRunner

from procs import descendants
from rigbench.cli import app

KILLS = 4  # per command; the seeded draws give each both kinds of moment (checked below)
COMMANDS = {
    # p2p between GPU 0 and 1 hangs for a minute: the run is never over before the kill
    "bench": ["bench", "--only", "memory,p2p", "--simulate", "tr1920x-3x3090-p2p-hang.toml",
              "--scale", "0.02", "--timeout", "60"],
    "burnin": ["burnin", "--minutes", "1", "--simulate", "v100-sxm2-server-transients.toml",
               "--rate", "50"],
    "monitor": ["monitor", "--record", "--simulate", "v100-sxm2-server.toml", "--rate", "50"],
}  # fmt: skip


def _stored(db: Path) -> dict[int, tuple[str, int, int]]:
    """Per run: status, results and telemetry samples, read straight from the file (none
    where every kill came before the command opened it: a loaded machine's start-up can
    outlast a start-up moment)."""
    with sqlite3.connect(db) as conn:
        try:
            runs = conn.execute("SELECT id, status FROM runs").fetchall()
        except sqlite3.OperationalError:  # no schema yet
            return {}
        return {
            rid: (
                status,
                conn.execute("SELECT count(*) FROM results WHERE run_id = ?", (rid,)).fetchone()[0],
                conn.execute(
                    "SELECT count(*) FROM telemetry_samples WHERE run_id = ?", (rid,)
                ).fetchone()[0],
            )
            for rid, status in runs
        }


def _stored_count(db: Path) -> int:
    """Results and samples stored so far (0 while there is no schema yet)."""
    try:
        with sqlite3.connect(db) as conn:
            return int(
                conn.execute(
                    "SELECT (SELECT count(*) FROM results)"
                    " + (SELECT count(*) FROM telemetry_samples)"
                ).fetchone()[0]
            )
    except sqlite3.OperationalError:
        return 0


Moment = tuple[float, int]  # seconds to sleep, or 0 and how many more items to wait for


def _moments(command: str) -> list[Moment]:
    """KILLS moments, drawn the same way every time: half a moment in start-up, half a
    moment after something more was stored."""
    rng = random.Random(f"kill-9 {command}")
    out: list[Moment] = []
    for _ in range(KILLS):
        if rng.random() < 0.5:
            out.append((rng.uniform(0.2, 2.0), 0))
        else:
            want = rng.randint(1, 3)
            out.append((rng.uniform(0.0, 1.0), want))
    return out


def _kill_at(argv: list[str], db: Path, moments: list[Moment], command: str) -> None:
    """Start the command on `db` and kill -9 it at each moment in turn."""
    for pause, want in moments:
        proc = subprocess.Popen(
            [sys.executable, "-m", "rigbench", *argv, "--db", str(db)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        stored_so_far = _stored_count(db)
        if want:
            deadline = time.monotonic() + 60
            while _stored_count(db) < want + stored_so_far:
                assert time.monotonic() < deadline, f"{command} stored nothing in 60 s"
                time.sleep(0.1)
        time.sleep(pause)
        assert proc.poll() is None, f"{command} ended before it was killed"
        workers = descendants(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        for pid in workers:  # workers' own fate is the supervisor's business, not this test's
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_kill_9_leaves_a_crashed_run_that_show_shows_in_full(
    command: str, tmp_path: Path, examples: Path
) -> None:
    argv = [a if not a.endswith(".toml") else str(examples / a) for a in COMMANDS[command]]
    moments = _moments(command)
    assert {bool(want) for _, want in moments} == {False, True}  # in start-up, after a store
    # Two databases killed at once, each at every other moment of either kind (the kills
    # after a store wait for a whole start-up): each still sees kills follow one another,
    # and the test waits for its processes' start-up about half as long.
    dbs = [tmp_path / "a.db", tmp_path / "b.db"]
    shares: list[list[Moment]] = [[] for _ in dbs]
    seen = {False: 0, True: 0}
    for m in moments:
        shares[seen[bool(m[1])] % len(dbs)].append(m)
        seen[bool(m[1])] += 1
    with ThreadPoolExecutor(len(dbs)) as pool:
        for chain in [pool.submit(_kill_at, argv, db, share, command)
                      for db, share in zip(dbs, shares, strict=True)]:  # fmt: skip
            chain.result()
    stored = {db: _stored(db) for db in dbs}
    assert any(stored.values()), "no run was started before any kill"
    measured = False
    for db, before in stored.items():
        # a start marks the runs killed before it; the last ones wait for the next open
        assert {status for status, _, _ in before.values()} <= {"running", "crashed"}
        runner = CliRunner()
        for rid, (_, n_results, n_samples) in before.items():
            res = runner.invoke(app, ["show", str(rid), "--json", "--db", str(db)])
            assert res.exit_code == 0, res.output
            doc = json.loads(res.stdout)
            assert doc["run"]["status"] == "crashed"
            assert len(doc["results"]) == n_results
            assert sum(t["samples"] for t in doc.get("telemetry", [])) == n_samples
            text = runner.invoke(app, ["show", str(rid), "--db", str(db)], env={"COLUMNS": "200"})
            assert "crashed" in text.stdout
        measured |= any(n_results or n_samples for _, n_results, n_samples in before.values())
        assert {s for s, _, _ in _stored(db).values()} <= {"crashed"}
    # something was measured in some runs, so the comparison above compared something
    assert measured


def test_open_marks_only_runs_whose_process_is_gone(tmp_path: Path) -> None:
    from rigbench.records import Run
    from rigbench.store import Store

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    store = Store.open(tmp_path / "r.db")
    ids = {
        "dead": store.start_run(Run(command="bench", pid=dead.pid)),
        "alive": store.start_run(Run(command="bench", pid=os.getppid())),
        "elsewhere": store.start_run(Run(command="bench", pid=dead.pid, host="another-host")),
        "finished": store.start_run(Run(command="bench", pid=dead.pid)),
    }
    store.finish_run(Run(command="bench", id=ids["finished"]), "complete")
    store.close()
    again = Store.open(tmp_path / "r.db")
    status = {k: again.get_run(v).status for k, v in ids.items()}  # type: ignore[union-attr]
    assert status == {
        "dead": "crashed",
        "alive": "running",
        "elsewhere": "running",
        "finished": "complete",
    }


def test_a_pid_reused_by_another_process_is_still_a_crash(tmp_path: Path) -> None:
    """After a reboot or a long wait another process may hold the dead run's pid: the start
    time stored with the run tells them apart."""
    from rigbench.records import Run
    from rigbench.store import Store

    store = Store.open(tmp_path / "r.db")
    # our parent is alive, but the run says it began at another moment: not the same process
    rid = store.start_run(Run(command="bench", pid=os.getppid()))
    store.db.execute(
        "UPDATE runs SET process = replace(process, 'start:', 'start:1') WHERE id = ?", (rid,)
    )
    store.db.commit()
    store.close()
    assert Store.open(tmp_path / "r.db").get_run(rid).status == "crashed"  # type: ignore[union-attr]


def test_a_run_from_another_pid_namespace_is_left_running(tmp_path: Path) -> None:
    """A container sharing the host name cannot see our pids, nor we its: unknown, not crashed."""
    from rigbench.records import Run
    from rigbench.store import Store

    store = Store.open(tmp_path / "r.db")
    rid = store.start_run(Run(command="bench", pid=2**22 + 7))
    store.db.execute("UPDATE runs SET process = 'pidns:1 boot:x start:5' WHERE id = ?", (rid,))
    store.db.commit()
    store.close()
    assert Store.open(tmp_path / "r.db").get_run(rid).status == "running"  # type: ignore[union-attr]
