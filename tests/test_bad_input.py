"""Bad input to every command: one line on stderr, a non-zero exit, nothing read that was
not needed, nothing stored before lost."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rigbench.cli import app
from rigbench.store import Store

runner = CliRunner()


def _invoke(*args: str) -> tuple[int, str, str]:
    res = runner.invoke(app, list(args), env={"COLUMNS": "200"})
    return res.exit_code, res.stdout, res.stderr


def _one_line_error(code: int, out: str, err: str) -> None:
    assert code == 2, (code, out, err)
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in out + err


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "pipe.toml"
    os.mkfifo(path)
    return path


@pytest.mark.parametrize("command", ["info", "bench", "doctor", "burnin", "monitor"])
@pytest.mark.parametrize("target", ["fifo", "dev_zero", "directory", "huge"])
def test_simulate_file_that_is_no_rig_file(
    command: str, target: str, fifo: Path, tmp_path: Path
) -> None:
    huge = tmp_path / "huge.toml"
    with open(huge, "wb") as fh:  # sparse: no disk used
        fh.truncate(64 * 2**20)
    path = {"fifo": fifo, "dev_zero": Path("/dev/zero"), "directory": tmp_path, "huge": huge}
    db = [] if command == "info" else ["--db", str(tmp_path / "r.db")]
    code, out, err = _invoke(command, "--simulate", str(path[target]), *db)
    _one_line_error(code, out, err)
    assert {"fifo": "FIFO", "dev_zero": "device", "directory": "directory", "huge": "MiB"}[
        target
    ] in err


@pytest.mark.parametrize("target", ["fifo", "dev_zero", "directory"])
def test_db_that_is_no_database_file(target: str, fifo: Path, tmp_path: Path) -> None:
    path = {"fifo": fifo, "dev_zero": Path("/dev/zero"), "directory": tmp_path}[target]
    code, out, err = _invoke("show", "--db", str(path))
    _one_line_error(code, out, err)
    assert "cannot open database" in err


def test_db_from_a_newer_rigbench_is_refused_and_left_alone(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    Store.open(db).close()
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO migrations VALUES ('m999_from_the_future', 'x')")
    before = db.read_bytes()
    code, out, err = _invoke("show", "--db", str(db))
    _one_line_error(code, out, err)
    assert "newer rigbench" in err
    assert db.read_bytes() == before
