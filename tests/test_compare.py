"""`rigbench compare`: a run against itself, against another rig's run, against the
references; the library function the report calls and the command."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from rigbench.cli import app
from rigbench.judge.compare import compare_runs, compare_to_references
from rigbench.records import Conditions, GpuConditions, Judgement, Result, Run
from rigbench.stats import summarize
from rigbench.store import Store

runner = CliRunner()


def _run(gpu: str, driver: str, limit: float, values: list[float]) -> tuple[Run, list[Result]]:
    run = Run(
        command="bench",
        backend="nvml",
        machine={"gpus": [{"index": 0, "name": gpu}]},
        versions={"driver": driver, "torch": "2.11.0"},
    )
    cond = Conditions(gpus=[GpuConditions(gpu=0, power_limit_w=limit)])
    results = [
        Result(
            benchmark="gemm",
            metric="bf16.sustained",
            value=summarize(values).p50,
            unit="TFLOP/s",
            params={"dtype": "bf16"},
            devices=["GPU0"],
            spread=summarize(values),
            conditions=cond,
            judgement=Judgement(
                verdict="normal", low=635.0, high=790.0, typical=685.0, reference="h200-x"
            ),
        ),
        Result(
            benchmark="memory",
            metric="copy",
            value=4250.0,
            unit="GB/s",
            params={"bytes": 1 << 30},
            devices=["GPU0"],
            spread=summarize([4240.0, 4250.0, 4260.0]),
        ),  # fmt: skip
        Result.failure(
            "gemm",
            "fp8.burst",
            "TFLOP/s",
            "no fp8",
            devices=["GPU0"],
            params={"dtype": "fp8"},
            status="skipped",
        ),  # fmt: skip
    ]
    return run, results


def test_a_run_against_itself_differs_in_nothing() -> None:
    run, results = _run("NVIDIA H200", "580", 700.0, [678.0, 680.0, 683.0])
    cmp = compare_runs(run, results, run, results)
    assert cmp.warnings == [] and cmp.differing == []
    assert len(cmp.rows) == 2  # the skipped figure is not a row
    assert all(r.diff == 0 and r.beyond_noise is False for r in cmp.rows)


def test_two_rigs_show_what_differs_beyond_noise_and_warn_about_the_setup() -> None:
    a = _run("NVIDIA H200", "580", 700.0, [678.0, 680.0, 683.0])
    b = _run("NVIDIA H100 80GB HBM3", "550", 350.0, [500.0, 505.0, 510.0])
    cmp = compare_runs(*a, *b)
    gemm = next(r for r in cmp.rows if r.benchmark == "gemm")
    assert gemm.beyond_noise and gemm.diff is not None and gemm.diff < 0
    memory = next(r for r in cmp.rows if r.benchmark == "memory")
    assert memory.beyond_noise is False  # same figure on both
    text = " | ".join(cmp.warnings)
    assert "GPUs differ" in text and "driver differs" in text and "power limit" in text
    assert "torch" not in text


def test_noise_is_the_two_spreads() -> None:
    a = _run("NVIDIA H200", "580", 700.0, [600.0, 680.0, 760.0])
    b = _run("NVIDIA H200", "580", 700.0, [620.0, 700.0, 780.0])
    (gemm, _memory) = compare_runs(*a, *b).rows
    assert gemm.diff == 20.0 and gemm.beyond_noise is False


def test_against_the_references() -> None:
    run, results = _run("NVIDIA H200", "580", 700.0, [600.0, 610.0, 620.0])
    cmp = compare_to_references(run, results)
    gemm, memory = cmp.rows
    assert gemm.b == 685.0 and gemm.beyond_noise is True  # 610 is below the healthy 635
    assert memory.note == "no reference" and memory.beyond_noise is None


def test_compare_command(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    store = Store.open(db)
    ids = []
    for run, results in (
        _run("NVIDIA H200", "580", 700.0, [678.0, 680.0, 683.0]),
        _run("NVIDIA H100 80GB HBM3", "550", 700.0, [500.0, 505.0, 510.0]),
    ):
        rid = store.start_run(run)
        for r in results:
            store.add_result(rid, r)
        ids.append(str(rid))
    res = runner.invoke(app, ["compare", ids[0], ids[0], "--db", str(db), "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["differing"] == 0
    res = runner.invoke(app, ["compare", ids[0], ids[1], "--db", str(db), "--json"])
    assert res.exit_code == 1 and json.loads(res.stdout)["differing"] == 1
    res = runner.invoke(app, ["compare", ids[0], "--reference", "--db", str(db)])
    assert res.exit_code == 0 and "references" in res.stdout
    res = runner.invoke(app, ["compare", ids[0], "--db", str(db)])
    assert res.exit_code == 2 and "--reference" in res.stderr
    res = runner.invoke(app, ["compare", "99", "--reference", "--db", str(db)])
    assert res.exit_code == 2 and "no run #99" in res.stderr


def test_compare_reference_on_a_cpu_run(tmp_path: Path, examples: Path) -> None:
    db = tmp_path / "r.db"
    res = runner.invoke(app, ["bench", "--simulate", str(examples / "cpu-only.toml"),
                              "--only", "memory", "--scale", "0.05", "--db", str(db)])  # fmt: skip
    assert res.exit_code == 0, res.stdout
    res = runner.invoke(app, ["compare", "1", "--reference", "--db", str(db), "--json"])
    assert res.exit_code == 0
    rows = json.loads(res.stdout)["rows"]
    assert rows and all(r["note"] == "no reference" for r in rows)
