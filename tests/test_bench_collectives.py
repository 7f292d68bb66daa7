"""Collectives benchmark: figures, data checks, and real gloo runs on two CPU ranks."""

from __future__ import annotations

import math
import os
import time
import uuid
from pathlib import Path

import pytest
import torch

from rigbench.bench import collectives as coll
from rigbench.bench.context import BenchContext, BenchDevice, Expectation
from rigbench.records import Result
from rigbench.supervisor import run_steps


def _ctx(n: int = 2, **kw: object) -> BenchContext:
    devices = [BenchDevice(label=f"cpu{i}", torch_device="cpu", name="cpu") for i in range(n)]
    kw.setdefault("size_scale", 1 / 16)
    return BenchContext(devices=devices, **kw)  # type: ignore[arg-type]


PAIRS = {
    "0-1": Expectation(value=12.0, unit="GB/s", basis="test link A"),
    "1-2": Expectation(value=7.5, unit="GB/s", basis="test link B"),
}


# ----------------------------------------------------------------------- figures


def test_bus_factor_matches_nccl_tests() -> None:
    for n in (2, 4, 8):
        assert coll.bus_factor("all_reduce", n) == pytest.approx(2 * (n - 1) / n)
        for op in ("all_gather", "reduce_scatter", "all_to_all"):
            assert coll.bus_factor(op, n) == pytest.approx((n - 1) / n)
        assert coll.bus_factor("broadcast", n) == 1.0
    assert coll.bus_factor("all_reduce", 2) == 1.0
    with pytest.raises(ValueError):
        coll.bus_factor("gather", 2)


def test_message_counts_round_to_elements_and_blocks() -> None:
    sizes = (8, 4096, 65536)
    assert coll.message_counts("all_reduce", sizes, 1.0, 3) == [2, 1024, 16384]
    # Blocked ops: multiples of n elements, at least n; duplicates dropped.
    assert coll.message_counts("all_gather", sizes, 1.0, 3) == [3, 1023, 16383]
    assert coll.message_counts("all_to_all", (8, 12), 1.0, 4) == [4]
    assert coll.message_counts("broadcast", sizes, 1 / 16, 2) == [1, 64, 1024]


def test_iterations_and_slowest_rank() -> None:
    assert coll.iterations_for(1.0) == coll.MIN_ITERS
    assert coll.iterations_for(1e-9) == coll.MAX_ITERS
    assert coll.iterations_for(0.01, target_s=0.3) == 30
    assert coll.slowest_iterations([[1.0, 5.0, 2.0], [3.0, 1.0, 2.5]]) == [3.0, 5.0, 2.5]
    with pytest.raises(ValueError):
        coll.slowest_iterations([[1.0], [1.0, 2.0]])


def test_results_for_busbw_algbw_and_latency() -> None:
    times = [2e-3, 1e-3, 4e-3, 1e-3, 3e-3]
    m = coll.Measured(op="all_reduce", nbytes=4_000_000, world_size=4, backend="nccl")
    m.times_s = times
    busbw, lat = coll.results_for(m, ["GPU0", "GPU1"], (20.0, "why"), latency=True)
    factor = 2 * 3 / 4
    assert busbw.status == "ok" and busbw.metric == "busbw" and busbw.unit == "GB/s"
    assert busbw.value == pytest.approx(4e6 / 2e-3 * factor / 1e9)  # at the median time
    assert busbw.params["algbw_gbs"] == pytest.approx(4e6 / 2e-3 / 1e9)
    assert busbw.value == pytest.approx(busbw.params["algbw_gbs"] * factor)
    assert busbw.params["time_us_p50"] == pytest.approx(2000.0)
    assert busbw.params["time_us_p99"] == pytest.approx(3960.0)
    assert busbw.spread is not None and busbw.spread.n == 5
    assert busbw.spread.max == pytest.approx(4e6 / 1e-3 * factor / 1e9)
    assert (busbw.expected, busbw.basis, busbw.devices) == (20.0, "why", ["GPU0", "GPU1"])
    assert lat.metric == "latency" and lat.unit == "us" and lat.value == pytest.approx(2000.0)
    assert lat.expected is None

    m.problem = "rank 1: 1 of 10 elements wrong, first at index 3 (got 1, expected 2)"
    (bad,) = coll.results_for(m, ["GPU0"], None, latency=False)
    assert bad.status == "failed" and bad.value is None and "index 3" in (bad.message or "")
    assert bad.params["time_us_p50"] == pytest.approx(2000.0)  # kept as a diagnostic


def test_slowest_pair_is_expected() -> None:
    ctx = _ctx(3, pair_expected=PAIRS)
    value, basis = coll.slowest_pair(ctx) or (None, "")
    assert value == 7.5
    assert "cpu1-cpu2" in basis and "test link B" in basis and "slowest link" in basis
    assert coll.slowest_pair(_ctx(3)) is None


def test_plan() -> None:
    assert coll.plan(_ctx(1)) == []
    steps = coll.plan(_ctx(2))
    assert [s.key for s in steps] == [f"collectives:{op}" for op in coll.OPS]
    assert all(s.devices == ["cpu0", "cpu1"] and s.params["backend"] == "gloo" for s in steps)
    assert steps[0].params["sizes"] == [4, 256, 4096, 65536]
    full = coll.plan(_ctx(2, mode="full", size_scale=1.0))
    assert full[0].params["sizes"][-1] == 16 << 20
    gpu = coll.plan(_ctx(2, on_gpu=True, mode="full", size_scale=1.0))
    assert gpu[0].params["backend"] == "nccl"
    assert gpu[0].params["sizes"][0] == 8 and gpu[0].params["sizes"][-1] == 1 << 30


# ------------------------------------------------------------------ data checks


def _simulate(op: str, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
    """What each rank holds after `op`, computed directly from every rank's input."""
    n = len(inputs)
    if op == "all_reduce":
        return [torch.stack(inputs).sum(0)] * n
    if op == "all_gather":
        return [torch.cat(inputs)] * n
    if op == "reduce_scatter":
        return list(torch.stack(inputs).sum(0).chunk(n))
    if op == "broadcast":
        return [inputs[coll.ROOT]] * n
    if op == "all_to_all":
        return [torch.cat([inp.chunk(n)[r] for inp in inputs]) for r in range(n)]
    raise AssertionError(op)


@pytest.mark.parametrize("op", coll.OPS)
def test_expected_output_matches_the_collective(op: str) -> None:
    n, count = 3, 3 * 70_000  # longer than the pattern's period
    inputs = [coll.input_for(op, r, n, count) for r in range(n)]
    assert len({float(t[0]) for t in inputs}) == n  # ranks' data differ
    for rank, got in enumerate(_simulate(op, inputs)):
        assert torch.equal(got, coll.expected_output(op, rank, n, count))
        assert coll.check_output(op, rank, n, count, got.clone()) is None


def test_pattern_is_exact_and_position_dependent() -> None:
    p = coll.pattern(5, 200_000)
    assert p.dtype == torch.float32
    assert float(p.min()) >= 1 and float(p.max()) <= coll._MOD
    assert torch.equal(p, p.round())
    assert torch.equal(coll.pattern(5, 10, offset=65_536), p[65_536:65_546])
    # Summed over many ranks the values stay integers well under 2**24.
    total = coll._sum_pattern(64, 1000)
    assert float(total.max()) < 2**24 and torch.equal(total, total.round())


@pytest.mark.parametrize("op", coll.OPS)
def test_corrupted_output_is_caught(op: str) -> None:
    n, count = 2, 2 * 1024
    out = coll.expected_output(op, 1, n, count).clone()
    out[37] += 1.0
    out[900] = -3.0
    msg = coll.check_output(op, 1, n, count, out)
    assert msg is not None
    assert msg.startswith("rank 1:") and "2 of" in msg and "first at index 37" in msg


def test_unwritten_output_is_caught() -> None:
    out = coll.expected_output("all_gather", 0, 2, 64).clone()
    out[40:] = math.nan
    msg = coll.check_output("all_gather", 0, 2, 64, out)
    assert msg is not None and "24 of 64" in msg and "index 40" in msg and "got nan" in msg
    assert coll.first_mismatch(torch.ones(3), torch.ones(3)) is None


# ------------------------------------------------------------- real gloo runs


def _tagged_processes(tag: str) -> list[int]:
    """Live processes (other than this one, multiprocessing's resource tracker and the
    supervisor's fork server, which serve this process for its lifetime) whose
    environment carries `tag`, and the fork server's live children (workers forked from a
    server started before `tag` was set do not show it in /proc/PID/environ)."""
    procs = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit() or int(p.name) == os.getpid():
            continue
        try:
            fields = (p / "stat").read_text().rsplit(")", 1)[1].split()
            procs.append(
                (
                    int(p.name),
                    fields[0],
                    int(fields[1]),
                    (p / "cmdline").read_bytes(),
                    (p / "environ").read_bytes(),
                )
            )
        except OSError:
            continue
    servers = {
        pid
        for pid, _, ppid, cmd, _ in procs
        if ppid == os.getpid() and b"multiprocessing.forkserver" in cmd
    }
    pids = []
    for pid, state, ppid, cmd, env in procs:
        if pid in servers or b"multiprocessing.resource_tracker" in cmd or state == "Z":
            continue
        if tag.encode() in env or ppid in servers:
            pids.append(pid)
    return pids


def _zombie_children() -> list[int]:
    out = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            stat = (p / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] == "Z" and int(fields[1]) == os.getpid():
            out.append(int(p.name))
    return out


def _assert_no_leftovers(tag: str) -> None:
    deadline = time.monotonic() + 10
    while _tagged_processes(tag) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _tagged_processes(tag) == []
    assert _zombie_children() == []


@pytest.fixture
def tag(monkeypatch: pytest.MonkeyPatch) -> str:
    """An environment marker the worker and its ranks inherit."""
    value = f"rigbench-test-{uuid.uuid4()}"
    monkeypatch.setenv("RIGBENCH_TEST_TAG", value)
    return value


def test_all_ops_on_two_cpu_ranks(tag: str) -> None:
    ctx = _ctx(2, pair_expected={"0-1": Expectation(value=12.0, unit="GB/s", basis="link")})
    steps = coll.plan(ctx)
    results: list[Result] = []
    run_steps("collectives", ctx, steps, results.append)

    for step in steps:
        op = step.params["op"]
        mine = [r for r in results if r.params.get("op") == op]
        assert mine, op
        if all(r.status == "skipped" for r in mine):  # an op gloo lacks: said, not faked
            assert mine[0].message
            continue
        assert all(r.status == "ok" for r in mine), [r.message for r in mine]
        busbw = [r for r in mine if r.metric == "busbw"]
        assert [r.params["bytes"] for r in busbw] == step.params["sizes"]
        factor = coll.bus_factor(op, 2)
        for r in busbw:
            assert r.value is not None and r.value > 0 and r.unit == "GB/s"
            assert r.value == pytest.approx(r.params["algbw_gbs"] * factor)
            assert r.params["world_size"] == 2 and r.params["backend"] == "gloo"
            assert r.params["time_us_p99"] >= r.params["time_us_p50"] > 0
            assert r.spread is not None and coll.MIN_ITERS <= r.spread.n <= coll.MAX_ITERS
            assert r.expected == 12.0 and "cpu0-cpu1" in (r.basis or "")
            assert r.devices == ["cpu0", "cpu1"]
        (lat,) = [r for r in mine if r.metric == "latency"]
        assert lat.params["bytes"] == min(step.params["sizes"]) and (lat.value or 0) > 0
    # torch 2.13's gloo has every op.
    assert not [r for r in results if r.status != "ok"]
    _assert_no_leftovers(tag)


def test_corrupting_link_fails_the_check(tag: str) -> None:
    ctx = _ctx(2, p2p_faults={"0-1": "corrupt"})
    steps = [s for s in coll.plan(ctx) if s.params["op"] in ("all_reduce", "all_to_all")]
    results: list[Result] = []
    run_steps("collectives", ctx, steps, results.append)
    assert results and all(r.status == "failed" and r.value is None for r in results)
    for r in results:
        assert "rank 1:" in (r.message or "") and "first at index" in (r.message or "")
        assert "rank 0" not in (r.message or "")
    _assert_no_leftovers(tag)


def test_hung_rank_is_killed_with_the_worker(tag: str) -> None:
    ctx = _ctx(2, p2p_faults={"0-1": "hang"})
    (step,) = [s for s in coll.plan(ctx) if s.params["op"] == "broadcast"]
    step.timeout_s = 1.0  # counts once the ranks are up: nothing ever comes from a hung pair
    results: list[Result] = []
    run_steps("collectives", ctx, [step], results.append)
    (r,) = results
    assert r.status == "failed" and "hung" in (r.message or "")
    _assert_no_leftovers(tag)


def test_pool_tears_down_cleanly(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rank 0 in this process: ranks persist across steps, then exit 0 on shutdown."""
    for name in ("MASTER_ADDR", "MASTER_PORT", "NCCL_NVLS_ENABLE"):  # set by rank 0
        monkeypatch.delenv(name, raising=False)  # restored afterwards
    ctx = _ctx(2, size_scale=1 / 256)
    by_op = {s.params["op"]: s for s in coll.plan(ctx)}
    try:
        first = list(coll.run(ctx, by_op["broadcast"]))
        pool = coll._POOL
        assert pool is not None and pool.alive()
        procs = [peer.proc for peer in pool.peers]
        second = list(coll.run(ctx, by_op["reduce_scatter"]))
        assert coll._POOL is pool  # reused, not restarted
        assert all(r.status == "ok" for r in first + second)
    finally:
        coll.shutdown_pool()
    assert coll._POOL is None and not torch.distributed.is_initialized()
    assert [p.exitcode for p in procs if p is not None] == [0]
