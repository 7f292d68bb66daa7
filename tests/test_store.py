from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from rigbench.errors import StoreError
from rigbench.records import Result, Run
from rigbench.stats import summarize
from rigbench.store import Store, default_db_path
from rigbench.store.migrations import MIGRATIONS


def _result(**kw: object) -> Result:
    base: dict[str, object] = dict(
        benchmark="memory",
        metric="copy",
        value=2900.5,
        unit="GB/s",
        params={"bytes": 1 << 30},
        devices=["GPU0"],
        spread=summarize([2890.0, 2900.5, 2910.0]),
        peak=3350.0,
        basis="H100 SXM memory bandwidth",
    )
    base.update(kw)
    return Result(**base)  # type: ignore[arg-type]


def test_schema_columns_are_what_the_code_writes(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "r.db")
    cols = [row[1] for row in store.db.execute("PRAGMA table_info(results)")]
    assert cols == [
        "id", "run_id", "benchmark", "metric", "value", "unit", "params", "devices",
        "spread", "expected", "peak", "basis", "status", "message", "created_at",
        "conditions", "judgement", "reason",
    ]  # fmt: skip
    run_cols = [row[1] for row in store.db.execute("PRAGMA table_info(runs)")]
    assert run_cols == [
        "id", "command", "argv", "backend", "machine", "versions", "started_at",
        "finished_at", "status",
    ]  # fmt: skip
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_results_round_trip_and_survive_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    store = Store.open(path)
    run = Run(command="bench", argv=["bench"], backend="none")
    rid = store.start_run(run)
    store.add_result(rid, _result())
    store.add_result(rid, Result.failure("p2p", "unidir", "GB/s", "hung", devices=["GPU0", "GPU1"]))
    # A second connection (another process after a crash) sees both rows at once.
    other = Store.open(path)
    got = other.results(rid)
    assert [r.status for r in got] == ["ok", "failed"]
    assert got[0] == _result()
    assert got[0].ratio == pytest.approx(2900.5 / 3350.0)
    assert got[1].value is None and got[1].message == "hung"
    assert other.get_run(rid).status == "running"  # type: ignore[union-attr]
    store.finish_run(run, "incomplete")
    assert other.get_run(rid).status == "incomplete"  # type: ignore[union-attr]
    assert other.latest_run_id() == rid


def test_migrations_run_once(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    Store.open(path).close()
    Store.open(path).close()
    db = sqlite3.connect(path)
    assert db.execute("SELECT count(*) FROM migrations").fetchone()[0] == len(MIGRATIONS)


def test_unwritable_path_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StoreError, match="cannot open database"):
        Store.open(blocker / "sub" / "r.db")


def test_default_path_honours_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RIGBENCH_DB", str(tmp_path / "x.db"))
    assert default_db_path() == tmp_path / "x.db"


def test_findings_round_trip(tmp_path: Path) -> None:
    from rigbench.records import Finding

    store = Store.open(tmp_path / "r.db")
    cols = [row[1] for row in store.db.execute("PRAGMA table_info(findings)")]
    assert cols == [
        "id", "run_id", "finding", "severity", "title", "evidence", "why", "fix", "gpus",
        "created_at", "source", "origin",
    ]  # fmt: skip
    rid = store.start_run(Run(command="doctor"))
    f = Finding(
        id="p2p.hang",
        severity="error",
        title="P2P copy GPU0->GPU1 hung",
        evidence={"timeout_s": 10.0, "pair": [0, 1]},
        why="NCCL will hang",
        fix="iommu=pt",
        source="NCCL troubleshooting guide",
        origin="measurement",
        gpus=[0, 1],
    )
    store.add_finding(rid, f)
    assert store.findings(rid) == [f]
