"""The runner bounds every step: a hang or a dead worker becomes a failed record and
the remaining steps still run. Faults come from the p2p benchmark's simulated-rig hooks."""

from __future__ import annotations

from dataclasses import replace

from rigbench.bench import p2p
from rigbench.bench.context import BenchContext, BenchDevice
from rigbench.records import Result
from rigbench.supervisor import run_steps


def _ctx(n: int, faults: dict[str, str]) -> BenchContext:
    devices = [BenchDevice(label=f"GPU{i}", torch_device="cpu", name="stand-in") for i in range(n)]
    return BenchContext(devices=devices, p2p_faults=faults, size_scale=0.02)


def _run(ctx: BenchContext, timeout_s: float) -> tuple[list[Result], list[str], list[str]]:
    steps = [replace(s, timeout_s=timeout_s) for s in p2p.plan(ctx)]
    results: list[Result] = []
    ended: list[str] = []
    aborted = run_steps("p2p", ctx, steps, results.append, lambda s: ended.append(s.key))
    return results, aborted, ended


def test_hung_pair_fails_and_the_others_carry_on() -> None:
    results, aborted, ended = _run(_ctx(3, {"0-1": "hang"}), timeout_s=2)
    assert aborted == ["p2p:0-1"]
    assert ended == ["p2p:0-1", "p2p:0-2", "p2p:1-2"]
    failed = [r for r in results if r.status == "failed"]
    assert len(failed) == 1
    assert failed[0].devices == ["GPU0", "GPU1"]
    assert "hung" in (failed[0].message or "") and failed[0].reason == "hang"
    ok_pairs = {tuple(r.devices) for r in results if r.status == "ok" and r.metric == "unidir"}
    assert ok_pairs == {("GPU0", "GPU2"), ("GPU2", "GPU0"), ("GPU1", "GPU2"), ("GPU2", "GPU1")}


def test_dead_worker_is_recorded_and_next_pair_runs() -> None:
    results, aborted, _ = _run(_ctx(3, {"0-2": "crash"}), timeout_s=30)
    assert aborted == ["p2p:0-2"]
    failed = [r for r in results if r.status == "failed"]
    assert len(failed) == 1 and "worker died (exit code 75)" in (failed[0].message or "")
    assert failed[0].reason == "crash"
    assert any(r.devices == ["GPU1", "GPU2"] and r.status == "ok" for r in results)


def test_corrupt_copy_is_caught_by_verification() -> None:
    results, aborted, _ = _run(_ctx(2, {"0-1": "corrupt"}), timeout_s=30)
    assert aborted == []
    unidir = [r for r in results if r.metric == "unidir"]
    assert unidir and all(r.status == "failed" for r in unidir)
    assert "differs from what was sent" in (unidir[0].message or "")


def test_healthy_pair_measures_everything() -> None:
    results, aborted, _ = _run(_ctx(2, {}), timeout_s=30)
    assert aborted == []
    assert sorted(r.metric for r in results) == ["bidir", "latency", "latency", "unidir", "unidir"]
    for r in results:
        assert r.status == "ok" and r.value is not None and r.value > 0
        assert r.spread is not None and r.spread.n == 10


def test_a_step_that_never_reports_ready_is_a_slow_start_not_a_hang() -> None:
    # A step with a start-up allowance that never calls step_ready() nor yields a result
    # (the hung pair) ends on its start-up limit: timeout_startup, never "hang".
    ctx = _ctx(2, {"0-1": "hang"})
    steps = [replace(s, timeout_s=60, startup_s=1) for s in p2p.plan(ctx)]
    results: list[Result] = []
    aborted = run_steps("p2p", ctx, steps, results.append)
    assert aborted == ["p2p:0-1"]
    failed = [r for r in results if r.status == "failed"]
    assert [r.reason for r in failed] == ["timeout_startup"]
    assert "did not start within 1 s" in (failed[0].message or "")


def test_a_stopped_run_ends_at_once_and_records_nothing_more() -> None:
    # The doctor stops the all_reduce once a P2P hang is confirmed. Here the stop is set
    # while the first pair runs; without it the hung pair 1-2 would wait out its 60 s
    # and be recorded as a hang.
    import threading

    ctx = _ctx(3, {"1-2": "hang"})
    steps = [replace(s, timeout_s=60) for s in p2p.plan(ctx)]
    stop = threading.Event()
    results: list[Result] = []

    def on_result(r: Result) -> None:
        results.append(r)
        stop.set()

    aborted = run_steps("p2p", ctx, steps, on_result, stop=stop)
    assert aborted == []
    assert results and all(r.status == "ok" and r.devices[:2] == ["GPU0", "GPU1"] for r in results)
