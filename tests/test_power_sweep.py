"""`burnin --sweep-power`: its spec, and a sweep on a simulated rig that sets the limits in
memory, measures GEMM and training at each with the power over each one's window, plots the
curve and puts the limit back (no real GPU setting is touched)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rigbench.burnin.sweep import SweepPoint, SweepReport, best_per_watt, parse_sweep, run_sweep
from rigbench.cli import app
from rigbench.errors import BadInput
from rigbench.hw.simulated import SimulatedBackend


def test_sweep_spec() -> None:
    assert parse_sweep("150:350:25") == [150, 175, 200, 225, 250, 275, 300, 325, 350]
    assert parse_sweep("280:285:5") == [280, 285]
    for bad in ("150:350", "350:150:25", "a:b:c", "150:350:0", "1:1000:1"):
        with pytest.raises(BadInput, match="--sweep-power"):
            parse_sweep(bad)


def test_simulated_sweep_measures_each_limit_and_restores_it(examples: Path) -> None:
    backend = SimulatedBackend.from_file(examples / "h200-x1.toml")
    before = backend.rig().gpus[0].power_limit_w
    # the GEMM alone here; training per watt is the command's test below
    report = run_sweep(backend, [300.0, 500.0], [0], size_scale=0.25, train=False)
    assert report.simulated and report.limits_set
    assert any("simulated rig" in n for n in report.notes)
    assert [p.limit_w for p in report.points] == [300.0, 500.0]
    assert [p.enforced_limit_w for p in report.points] == [300.0, 500.0]
    # the traced draw follows the limit (85 % of it, the healthy baseline), read over the
    # GEMM's own window; the rate is measured on the CPU stand-in
    assert [p.power_mean_w for p in report.points] == [pytest.approx(255), pytest.approx(425)]
    for p in report.points:
        assert p.tflops and p.tflops_per_w == pytest.approx(p.tflops / p.power_mean_w)
        assert p.tokens_per_s is None and p.tokens_per_s_per_w is None
    assert backend.rig().gpus[0].power_limit_w == before


def _pt(limit: float, tflops_w: float | None, tokens_w: float | None) -> SweepPoint:
    return SweepPoint(
        limit_w=limit, enforced_limit_w=limit, gpu=0, tflops=1.0, dtype="bf16",
        power_mean_w=limit, tflops_per_w=tflops_w, tokens_per_s_per_w=tokens_w,
    )  # fmt: skip


def test_best_limit_per_watt_is_taken_per_figure() -> None:
    report = SweepReport(
        points=[_pt(250, 0.9, 30.0), _pt(300, 1.0, 29.0), _pt(350, 0.8, None)], limits_set=True
    )
    assert best_per_watt(report, 0).limit_w == 300  # type: ignore[union-attr]
    assert best_per_watt(report, 0, "tokens_per_s_per_w").limit_w == 250  # type: ignore[union-attr]
    assert report.to_dict()["best_per_watt"] == {
        "0": {"tflops_per_w_at_w": 300, "tokens_per_s_per_w_at_w": 250}
    }
    # the current limit only (no root): one point is no "best"
    assert SweepReport(points=[_pt(250, 0.9, 30.0)]).to_dict()["best_per_watt"] == {}


def test_sweep_command_stores_each_point_and_saves_the_curve(
    tmp_path: Path, examples: Path
) -> None:
    db = tmp_path / "r.db"
    res = CliRunner().invoke(
        app,
        ["burnin", "--sweep-power", "300:500:200", "--json", "--db", str(db),
         "--simulate", str(examples / "h200-x1.toml")],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert [p["limit_w"] for p in doc["points"]] == [300, 500]
    assert set(doc["best_per_watt"]["0"]) == {"tflops_per_w_at_w", "tokens_per_s_per_w_at_w"}
    # training's power is read over its own window: the traced draw, 85 % of each limit
    points = doc["points"]
    assert [p["train_power_mean_w"] for p in points] == [pytest.approx(255), pytest.approx(425)]
    for p in points:
        assert p["train_size"] == "tiny" and p["tokens_per_s"]
        assert p["tokens_per_s_per_w"] == pytest.approx(p["tokens_per_s"] / p["train_power_mean_w"])
    plot = Path(doc["plot"])
    assert plot.parent == tmp_path / "r.db.plots" and plot.name == f"run{doc['run_id']}-sweep.png"
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with sqlite3.connect(db) as con:
        rows = con.execute(
            "SELECT metric, value FROM results WHERE benchmark = 'burnin.sweep' AND run_id = ?",
            (doc["run_id"],),
        ).fetchall()
    assert len(rows) == 2 and all(m == "tflops_per_w" and v for m, v in rows)


def test_sweep_without_a_gpu_says_so_in_one_line(tmp_path: Path, examples: Path) -> None:
    res = CliRunner().invoke(
        app,
        ["burnin", "--sweep-power", "300:500:200", "--db", str(tmp_path / "r.db"),
         "--simulate", str(examples / "cpu-only.toml")],
    )  # fmt: skip
    assert res.exit_code == 2 and "no GPU to sweep" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def _refusing(tmp_path: Path, examples: Path, mode: str) -> Path:
    rig = tmp_path / f"{mode}.toml"
    rig.write_text(
        (examples / "h200-x1.toml")
        .read_text()
        .replace("[system]\n", f'[system]\npower_limit_set = "{mode}"\n', 1)
    )
    return rig


def test_a_sweep_that_may_not_set_limits_says_so_once_and_measures_the_current_limit(
    tmp_path: Path, examples: Path
) -> None:
    # as a normal user (the H100 run of 2026-12-07)
    res = CliRunner().invoke(
        app,
        ["burnin", "--sweep-power", "300:500:200", "--json", "--db", str(tmp_path / "r.db"),
         "--simulate", str(_refusing(tmp_path, examples, "needs_root"))],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["limits_set"] is False
    # the current limit only: none set (limit_w None), the one enforced read
    assert [(p["limit_w"], p["enforced_limit_w"]) for p in doc["points"]] == [(None, 700)]
    assert [n for n in doc["notes"] if "measuring at the current limit only" in n] == [
        "setting a GPU power limit needs root (nvmlDeviceSetPowerManagementLimit): measuring "
        "at the current limit only (GPU 0 700 W)"
    ]
    assert doc["best_per_watt"] == {}


def test_root_refused_by_the_driver_measures_the_current_limit_and_changes_nothing(
    tmp_path: Path, examples: Path
) -> None:
    # a VM whose driver refuses even root: the first setting fails, the limit stays
    backend = SimulatedBackend.from_file(_refusing(tmp_path, examples, "refused"))
    report = run_sweep(backend, [300.0, 500.0], [0], size_scale=0.25, train=False)
    assert not report.limits_set
    assert [(p.limit_w, p.enforced_limit_w) for p in report.points] == [(None, 700)]
    assert [n for n in report.notes if "current limit only" in n] == [
        "cannot set power limits here (GPU 0: cannot set the power limit to 300 W: "
        "Insufficient Permissions): measuring at the current limit only (GPU 0 700 W)"
    ]
    assert backend.rig().gpus[0].power_limit_w == 700
