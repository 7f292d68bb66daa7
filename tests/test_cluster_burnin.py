"""Rank 0's one run of a burn-in across nodes: every rank's verdict, results and telemetry
under node labels, and the cluster's verdict."""

from __future__ import annotations

import pytest

from rigbench.bench.cluster import Node
from rigbench.burnin.cluster import RankReport, merge
from rigbench.burnin.verdict import DeviceVerdict, RigVerdict, finding
from rigbench.records import Result, Run
from rigbench.store import Store

COLS = ["run_id", "t", "gpu", "power_instant_w"]


def _report(rank: int, node: int, host: str, verdict: str) -> RankReport:
    reasons = [finding(code="wrong_result", severity="fail", message="checksum differs")]
    device = DeviceVerdict(
        label="GPU0",
        name="NVIDIA H100 80GB HBM3",
        gpu=0,
        verdict=verdict,  # type: ignore[arg-type]
        reasons=reasons if verdict == "fail" else [],
        figures={},
    )
    rig = RigVerdict(verdict=verdict, reasons=[], devices=[device], totals={"duration_s": 6.0})  # type: ignore[arg-type]
    result = Result(benchmark="burnin", metric="verdict", value=1.0, unit="pass", devices=["GPU0"])
    # telemetry_samples has more columns; the ones given are enough for the copy
    rows = [(7, 0.01 * k, 0, 300.0 + k) for k in range(3)]
    return RankReport(
        rank=rank,
        node_rank=node,
        host=host,
        verdict=rig,
        results=[result],
        telemetry={"telemetry_samples": (COLS, rows)},
    )


def _open() -> tuple[Store, Run]:
    store = Store.open(":memory:")
    run = Run(command="burnin", argv=[], backend="nvml")
    store.start_run(run)
    return store, run


def test_one_run_with_node_labels_and_every_ranks_telemetry() -> None:
    store, run = _open()
    nodes = [Node(0, "gpu-a", [0]), Node(1, "gpu-b", [1])]
    reports = [_report(0, 0, "gpu-a", "pass"), _report(1, 1, "gpu-b", "fail")]
    merged = merge(store, run, nodes, reports, [], None)
    v = merged.outcome.verdict
    assert v.verdict == "fail"  # one rank's device failed: the cluster fails
    assert [d.label for d in v.devices] == ["gpu-a:GPU0", "gpu-b:GPU0"]
    assert run.id is not None
    stored = store.results(run.id)
    assert [r.devices for r in stored if r.metric == "verdict"] == [["gpu-a:GPU0"], ["gpu-b:GPU0"]]
    gpus = store.db.execute(
        "SELECT gpu, COUNT(*) FROM telemetry_samples WHERE run_id = ? GROUP BY gpu", (run.id,)
    ).fetchall()
    assert gpus == [(0, 3), (1, 3)]  # each rank's samples under its rank, in this run


def test_a_lost_node_fails_the_run_and_names_it_and_shared_hosts_are_told_apart() -> None:
    store, run = _open()
    nodes = [Node(0, "box", [0]), Node(1, "box", [1])]  # two "nodes" on one host
    merged = merge(store, run, nodes, [_report(0, 0, "box", "pass")], [nodes[1]], "RuntimeError: x")
    v = merged.outcome.verdict
    assert v.verdict == "fail"
    assert [d.label for d in v.devices] == ["box-node0:GPU0"]
    (lost,) = [r for r in v.reasons if r.id == "burnin.lost"]
    assert "box (node 1, ranks 1)" in lost.title


def test_a_long_runs_telemetry_is_thinned_for_the_gather_and_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from rigbench.burnin import cluster

    store, run = _open()
    assert run.id is not None
    with store.db:
        store.db.executemany(
            "INSERT INTO telemetry_samples (run_id, t, gpu) VALUES (?, ?, 0)",
            [(run.id, 0.01 * k) for k in range(10)],
        )
    monkeypatch.setattr(cluster, "MAX_GATHERED_SAMPLES", 4)
    notes: list[str] = []
    _cols, rows = cluster.telemetry_rows(store, run.id, notes)["telemetry_samples"]
    assert len(rows) == 4 and notes and "one sample in 3" in notes[0]
