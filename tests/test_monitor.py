"""`rigbench monitor` as a user meets it: recording, JSON, exit codes, one-line errors."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rigbench.cli import app
from rigbench.store import Store
from rigbench.telemetry.recorder import load_events, load_samples

runner = CliRunner()


def _invoke(*args: str) -> tuple[int, str, str]:
    res = runner.invoke(app, list(args), env={"COLUMNS": "200"})
    return res.exit_code, res.stdout, res.stderr


def test_monitor_records_samples_of_every_gpu(tmp_path: Path, examples: Path) -> None:
    db = tmp_path / "r.db"
    code, out, err = _invoke(
        "monitor", "--simulate", str(examples / "iva-2x3090.toml"), "--seconds", "1",
        "--rate", "50", "--record", "--db", str(db), "--json",
    )  # fmt: skip
    assert code == 0, err
    doc = json.loads(out)
    assert doc["run"]["status"] == "complete" and doc["run"]["command"] == "monitor"
    sampler = doc["sampler"]
    assert sampler["ticks"] + sampler["missed"] == pytest.approx(50, abs=3)
    store = Store.open(db)
    samples = load_samples(store, doc["run"]["id"])
    assert {s.gpu for s in samples} == {0, 1}
    assert len(samples) == 2 * sampler["ticks"]  # 2 GPUs, every tick recorded
    gpus = store.db.execute(
        "SELECT gpu, name, power_instant_source FROM telemetry_gpus WHERE run_id = ?",
        (doc["run"]["id"],),
    ).fetchall()
    assert [g[:2] for g in gpus] == [(0, "NVIDIA GeForce RTX 3090"), (1, "NVIDIA GeForce RTX 3090")]
    mem = doc["gpus"][0]["channel"]["unavailable"]["temp_mem_c"]
    assert "GDDR6X" in mem  # said, not left blank


def test_monitor_sees_a_gpu_fall_off_the_bus_and_exits_1(tmp_path: Path, examples: Path) -> None:
    db = tmp_path / "r.db"
    code, out, _ = _invoke(
        "monitor", "--simulate", str(examples / "v100-sxm2-server-transients.toml"),
        "--seconds", "2.8", "--rate", "100", "--record", "--db", str(db),
    )  # fmt: skip
    assert code == 1
    assert "LOST" in out and "Xid 79" in out
    assert "largest rise +800 W" in out  # four GPUs stepping 150 -> 350 W together
    store = Store.open(db)
    rid = store.latest_run_id("monitor")
    assert rid is not None
    kinds = {(e.kind, e.gpu) for e in load_events(store, rid)}
    assert kinds == {("xid", 3), ("lost", 3)}
    last = max(s.t for s in load_samples(store, rid, gpu=3))
    assert last < 2.5  # nothing read after it was lost


def test_monitor_without_gpus_says_so_and_exits_0(examples: Path) -> None:
    code, out, err = _invoke("monitor", "--simulate", str(examples / "cpu-only.toml"), "--json")
    assert code == 0
    assert json.loads(out) == {"gpus": [], "message": json.loads(out)["message"]}
    assert "no GPUs" in json.loads(out)["message"]


def test_monitor_prometheus_flag_serves_while_it_runs(examples: Path) -> None:
    code, out, err = _invoke(
        "monitor", "--simulate", str(examples / "iva-2x3090.toml"), "--seconds", "0.3",
        "--prometheus", "0",
    )  # fmt: skip
    assert code == 0
    assert "Prometheus metrics at http://127.0.0.1:" in err


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--rate", "0"], "--rate must be above 0"),
        (["--rate", "5000"], "at most 1000 Hz"),
        (["--seconds", "-1"], "--seconds must be a positive number"),
        (["--simulate", "no-such-rig.toml"], "no-such-rig.toml"),
    ],
)
def test_monitor_bad_input_is_one_line_exit_2(args: list[str], needle: str) -> None:
    code, out, err = _invoke("monitor", *args)
    assert code == 2
    assert needle in err and len(err.strip().splitlines()) == 1
    assert "Traceback" not in out + err


def test_monitor_port_in_use_is_one_line_exit_2(examples: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        code, _, err = _invoke(
            "monitor", "--simulate", str(examples / "iva-2x3090.toml"), "--seconds", "0.2",
            "--prometheus", str(port),
        )  # fmt: skip
    assert code == 2
    assert f"127.0.0.1:{port}" in err and len(err.strip().splitlines()) == 1
