"""gemm, memory and hostlink on the CPU stand-in (and, where there is one, a CUDA GPU)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from rigbench.bench import gemm, hostlink, memory
from rigbench.bench.context import BenchContext, BenchDevice, Expectation, Mode
from rigbench.bench.suite import shared_uplinks
from rigbench.hw.simulated import SimulatedBackend
from rigbench.records import Result
from rigbench.supervisor import StepModule as BenchmarkModule
from rigbench.supervisor import run_steps

SCALE = 0.125  # gemm 64^3, memory 8 MiB, hostlink 2 MiB on the CPU

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _expect(value: float, unit: str, basis: str) -> Expectation:
    return Expectation(value=value, unit=unit, basis=basis)


def _cpu_device(i: int, *, with_figures: bool = True) -> BenchDevice:
    dev = BenchDevice(label=f"cpu{i}", torch_device="cpu", name="CPU stand-in")
    if with_figures:
        dev.peak_tflops = {"fp32": _expect(2.0, "TFLOP/s", "test fp32 peak")}
        dev.peak_memory_bandwidth = _expect(100.0, "GB/s", "test memory peak")
        dev.host_link = _expect(31.5, "GB/s", "PCIe 4.0 x16, 31.5 GB/s per direction")
    return dev


def _ctx(n_devices: int = 1, mode: Mode = "quick") -> BenchContext:
    return BenchContext(
        devices=[_cpu_device(i) for i in range(n_devices)], mode=mode, size_scale=SCALE, seed=7
    )


def _run(module: BenchmarkModule, ctx: BenchContext) -> dict[str, list[Result]]:
    out: dict[str, list[Result]] = {}
    for step in module.plan(ctx):
        assert step.timeout_s > 0
        out[step.key] = list(module.run(ctx, step))
    return out


def _assert_measured(r: Result, unit: str, repeats: int) -> None:
    assert r.status == "ok", r.message
    assert r.unit == unit
    assert r.value is not None and r.value > 0 and math.isfinite(r.value)
    assert r.spread is not None and r.spread.n == repeats
    assert r.spread.min <= r.value <= r.spread.max


# --- gemm -----------------------------------------------------------------------------


def test_gemm_plan_has_a_step_per_device_and_dtype() -> None:
    steps = gemm.plan(_ctx(2))
    assert [s.key for s in steps] == [
        f"gemm:cpu{i}:{dtype}" for i in range(2) for dtype in gemm.DTYPES
    ]
    for s in steps:
        assert s.metric == f"{s.params['dtype']}.burst" and s.devices == [s.key.split(":")[1]]
        assert s.unit == ("TOP/s" if s.params["dtype"] == "int8" else "TFLOP/s")


def test_gemm_cpu_measures_fp64_fp32_bf16_and_skips_the_rest() -> None:
    results = _run(gemm, _ctx())
    for dtype in gemm.DTYPES:
        rs = results[f"gemm:cpu0:{dtype}"]
        r = rs[0]
        assert r.metric == f"{dtype}.burst" and r.devices == ["cpu0"]
        assert r.params["dtype"] == dtype
        if dtype in gemm.CPU_DTYPES:
            _assert_measured(r, "TFLOP/s", gemm.BURST_REPEATS)
            assert r.params["m"] == r.params["n"] == r.params["k"] == 64
            assert r.params["warmup"] == gemm.BURST_WARMUP
            assert 0 <= r.params["rel_error"] <= gemm.TOLERANCE[dtype]
            assert r.params["window_t0"] < r.params["window_t1"]
            # quick: a sustained run for the training dtype only
            assert [x.metric for x in rs[1:]] == (
                [f"{dtype}.sustained"] if dtype in gemm.QUICK_SUSTAINED else []
            )
        else:
            assert len(rs) == 1
            assert r.status == "skipped" and r.value is None and r.message
            assert r.unit == gemm.unit_for(dtype)
    (fp32,) = results["gemm:cpu0:fp32"]
    assert fp32.peak == 2.0 and fp32.basis == "test fp32 peak"
    (fp64,) = results["gemm:cpu0:fp64"]
    assert fp64.peak is None and fp64.basis is None


def test_gemm_full_runs_a_sustained_figure_after_the_burst() -> None:
    ctx = _ctx(mode="full")
    step = next(s for s in gemm.plan(ctx) if s.params["dtype"] == "fp32")
    burst, sustained = list(gemm.run(ctx, step))
    assert burst.metric == "fp32.burst" and burst.params["m"] == 64
    assert sustained.metric == "fp32.sustained" and sustained.status == "ok"
    assert sustained.peak == 2.0
    assert sustained.params["seconds"] >= gemm.SUSTAINED_S_CPU
    # the median is over the second half only, which the window covers
    assert sustained.spread is not None
    assert sustained.spread.n == sustained.params["timed_calls"] > 0
    t0, t1 = sustained.params["window_t0"], sustained.params["window_t1"]
    # "seconds" is rounded to 0.01 s; on a busy machine the first timed chunk can already
    # end past the half, and the window is then the whole run
    assert 0 < t1 - t0 <= sustained.params["seconds"] + 0.005


def test_gemm_leaves_fp32_precision_as_it_found_it() -> None:
    cuda_mm = torch.backends.cuda.matmul
    before = cuda_mm.fp32_precision
    with gemm.fp32_math("cuda", tf32=True):
        assert cuda_mm.fp32_precision == "tf32"
    with gemm.fp32_math("cuda", tf32=False):
        assert cuda_mm.fp32_precision == "ieee"
    assert cuda_mm.fp32_precision == before
    cpu_before = torch.backends.mkldnn.matmul.fp32_precision
    ctx = _ctx()
    for step in gemm.plan(ctx):
        if step.params["dtype"] in ("fp32", "tf32"):
            list(gemm.run(ctx, step))
    assert torch.backends.mkldnn.matmul.fp32_precision == cpu_before
    assert cuda_mm.fp32_precision == before


def test_gemm_check_catches_wrong_outputs() -> None:
    gen = torch.Generator().manual_seed(1)
    ref = torch.randn(64, 64, generator=gen, dtype=torch.float64)
    err, why = gemm.check_output("fp32", ref.float(), ref)
    assert why is None and err < 1e-6
    corrupted = ref.float().clone()
    corrupted[3, 5] += 10.0
    err, why = gemm.check_output("fp32", corrupted, ref)
    assert why is not None and err > gemm.TOLERANCE["fp32"]
    with_nan = ref.clone()
    with_nan[0, 0] = math.nan
    assert gemm.check_output("fp64", with_nan, ref)[1] is not None
    assert gemm.check_output("bf16", ref.bfloat16(), ref)[1] is None
    exact = torch.randint(-500, 500, (32, 32), generator=gen).double()
    assert gemm.check_output("int8", exact.int(), exact)[1] is None
    off_by_one = exact.int().clone()
    off_by_one[1, 2] += 1
    assert gemm.check_output("int8", off_by_one, exact)[1] is not None


def test_gemm_verify_catches_an_unwritten_output() -> None:
    gen = torch.Generator().manual_seed(3)
    prob = gemm._build("fp32", 64, 64, 64, torch.device("cpu"), gen, 1)
    assert prob.verify()[1] is None
    prob.call = lambda i: None  # a "kernel" that writes nothing
    err, why = prob.verify()
    assert why is not None and "not written" in why


# --- memory ---------------------------------------------------------------------------


def test_memory_cpu_copy() -> None:
    ctx = _ctx(2)
    results = _run(memory, ctx)
    assert list(results) == ["memory:cpu0:8MiB", "memory:cpu1:8MiB"]
    for (r,) in results.values():
        assert r.metric == "copy" and r.params["bytes"] == 8 << 20
        assert r.params["bytes_moved"] == 16 << 20
        _assert_measured(r, "GB/s", memory.REPEATS_CPU)
        assert r.peak == 100.0 and r.basis == "test memory peak"


def test_memory_through_the_worker() -> None:
    ctx = _ctx()
    got: list[Result] = []
    run_steps("memory", ctx, memory.plan(ctx), got.append)
    (r,) = got
    assert r.benchmark == "memory" and r.devices == ["cpu0"]
    _assert_measured(r, "GB/s", memory.REPEATS_CPU)
    assert r.peak == 100.0


def test_memory_verify_catches_a_wrong_copy() -> None:
    src = torch.randn(1000, generator=torch.Generator().manual_seed(5))
    assert memory.verify_copy(src, src.clone()) is None
    dst = src.clone()
    dst[17] = 0.0
    why = memory.verify_copy(src, dst)
    assert why is not None and "1 of 1000" in why
    assert memory.verify_copy(src, src[:10].clone()) is not None


# --- hostlink -------------------------------------------------------------------------


def test_hostlink_cpu_is_labelled_memcpy_and_skips_pinned() -> None:
    ctx = _ctx(2)
    results = _run(hostlink, ctx)
    assert list(results) == ["hostlink:cpu0", "hostlink:cpu1", "hostlink:all"]
    for key, rs in results.items():
        assert sorted((r.metric, r.params["pinned"]) for r in rs) == [
            ("d2h", False),
            ("d2h", True),
            ("h2d", False),
            ("h2d", True),
        ]
        for r in rs:
            assert r.params["bytes"] == 2 << 20
            if r.params["pinned"]:
                assert r.status == "skipped" and r.value is None and r.message
                continue
            _assert_measured(r, "GB/s", hostlink.REPEATS_CPU)
            assert r.params["host_memory"] == "pageable"
            assert r.params["note"] == "no host link on CPU: this is memcpy"
            if key == "hostlink:all":
                assert r.devices == ["cpu0", "cpu1"]
                assert r.params["at_once"] == 2 and r.params["bytes_total"] == 4 << 20
                assert r.expected == pytest.approx(63.0)
                assert r.basis and "sum" in r.basis
            else:
                assert r.devices == [key.split(":")[1]]
                assert r.expected == 31.5
                assert r.basis == "PCIe 4.0 x16, 31.5 GB/s per direction"


def test_hostlink_without_a_known_link_has_no_expectation() -> None:
    ctx = BenchContext(
        devices=[_cpu_device(0, with_figures=False), _cpu_device(1)], size_scale=SCALE
    )
    steps = hostlink.plan(ctx)
    for step in (steps[0], steps[-1]):  # cpu0 alone, and all at once
        measured = [r for r in hostlink.run(ctx, step) if r.status == "ok"]
        assert len(measured) == 2
        assert all(r.expected is None and r.basis is None for r in measured)


@pytest.mark.parametrize(
    ("numa_nodes", "process_nodes", "gpu_nodes", "words"),
    [
        (2, [0], [0, 1], ["local", "remote", "remote"]),
        (2, [0, 1], [0, 1], ["local", "local", "local"]),
        (2, [0], [0, None], ["local", "unknown", "unknown"]),
        (None, None, [0, 1], ["unknown", "unknown", "unknown"]),
        (1, [0], [-1, -1], ["local", "local", "local"]),  # one node: nothing to get wrong
    ],
)
def test_hostlink_says_where_its_host_buffers_were(
    numa_nodes: int | None, process_nodes: list[int] | None, gpu_nodes: list[int | None],
    words: list[str],
) -> None:  # fmt: skip
    ctx = _ctx(2)
    ctx.numa_nodes, ctx.process_numa_nodes = numa_nodes, process_nodes
    for dev, node in zip(ctx.devices, gpu_nodes, strict=True):
        dev.numa_node = node
    results = _run(hostlink, ctx)
    got = [{r.params["numa"] for r in rs if r.status == "ok"} for rs in results.values()]
    assert got == [{w} for w in words]
    for rs in results.values():
        ok = [r for r in rs if r.status == "ok"]
        assert all(r.params["process_numa_nodes"] == process_nodes for r in ok)


def test_gpus_behind_one_pcie_switch_share_its_uplink(examples: Path) -> None:
    rig = SimulatedBackend.from_file(examples / "iommu-acs-switch.toml").rig()
    assert shared_uplinks(rig, [0, 1, 2, 3]) == {0: 0, 1: 0, 2: 2, 3: 2}
    assert shared_uplinks(rig, [1, 3]) == {1: 1, 3: 3}
    rig.pairs[-1].pcie_path = None  # a pair whose path NVML could not give
    assert shared_uplinks(rig, [0, 1, 2, 3]) == dict.fromkeys([0, 1, 2, 3])


@pytest.mark.parametrize(
    ("uplinks", "expected", "words"),
    [
        ([0, 0, 2, 2], 63.0, "cpu0+cpu1 behind one PCIe switch; cpu2+cpu3 behind one"),
        ([0, 1, 2, 3], 126.0, "no two share a PCIe switch"),
        ([0, 0, 0, 0], 31.5, "cpu0+cpu1+cpu2+cpu3 behind one PCIe switch"),
        ([0, 0, None, 2], 126.0, "how the devices share uplinks is unknown"),
    ],
)
def test_all_at_once_expects_one_link_per_uplink(
    uplinks: list[int | None], expected: float, words: str
) -> None:
    ctx = _ctx(4)
    for dev, up in zip(ctx.devices, uplinks, strict=True):
        dev.uplink = up
    (all_step,) = [s for s in hostlink.plan(ctx) if s.key == hostlink.ALL_KEY]
    rows = [r for r in hostlink.run(ctx, all_step) if r.status == "ok"]
    assert rows
    for r in rows:
        assert r.expected == pytest.approx(expected)
        assert r.basis and words in r.basis
        assert r.params["uplinks"] == (None if None in uplinks else len(set(uplinks)))


def test_hostlink_single_device_has_no_all_step() -> None:
    assert [s.key for s in hostlink.plan(_ctx(1))] == ["hostlink:cpu0"]


def test_hostlink_verify_catches_a_wrong_transfer() -> None:
    src = torch.randn(1000, generator=torch.Generator().manual_seed(9))
    assert hostlink.verify_transfer(src, src.clone()) is None
    dst = src.clone()
    dst[999] = math.nan
    assert hostlink.verify_transfer(src, dst) is not None


def test_hostlink_concurrent_failure_is_raised_not_hung() -> None:
    cpu = torch.device("cpu")
    good = hostlink._Lane(cpu, torch.randn(64), torch.empty(64), False)
    bad = hostlink._Lane(cpu, torch.randn(64), torch.empty(32), False)
    with pytest.raises(RuntimeError):
        hostlink.concurrent_wall_times([good, bad], warmup=1, repeats=3)


# --- on a CUDA GPU --------------------------------------------------------------------


def _gpu_ctx() -> BenchContext:
    dev = BenchDevice(
        label="GPU0",
        torch_device="cuda:0",
        name=torch.cuda.get_device_name(0),
        gpu_index=0,
        compute_capability=torch.cuda.get_device_capability(0),
        host_link=_expect(25.0, "GB/s", "test link"),
    )
    return BenchContext(devices=[dev], on_gpu=True, size_scale=0.25)


@pytest.mark.gpu
@needs_cuda
def test_gemm_gpu_all_dtypes() -> None:
    before = torch.backends.cuda.matmul.fp32_precision
    ctx = _gpu_ctx()
    by_dtype = {}
    for key, (r, *_rest) in _run(gemm, ctx).items():
        assert r.status in ("ok", "skipped"), (key, r.message)
        by_dtype[r.params["dtype"]] = r
        if r.status == "ok":
            _assert_measured(r, r.unit, gemm.BURST_REPEATS)
            assert r.params["rel_error"] <= gemm.TOLERANCE[r.params["dtype"]]
    assert torch.backends.cuda.matmul.fp32_precision == before
    if by_dtype["tf32"].status == "ok":  # TF32 was really on for tf32 and off for fp32
        assert by_dtype["tf32"].params["rel_error"] > 1e-5
        assert by_dtype["fp32"].params["rel_error"] < 1e-5


@pytest.mark.gpu
@needs_cuda
def test_gemm_gpu_through_the_worker() -> None:
    ctx = _gpu_ctx()
    steps = [s for s in gemm.plan(ctx) if s.params["dtype"] == "bf16"]
    got: list[Result] = []
    run_steps("gemm", ctx, steps, got.append)
    (r,) = got
    assert r.status in ("ok", "skipped"), r.message


@pytest.mark.gpu
@needs_cuda
def test_memory_and_hostlink_gpu() -> None:
    ctx = _gpu_ctx()
    for (r,) in _run(memory, ctx).values():
        _assert_measured(r, "GB/s", memory.REPEATS_GPU)
    (rs,) = _run(hostlink, ctx).values()
    assert len(rs) == 4
    for r in rs:
        _assert_measured(r, "GB/s", hostlink.REPEATS_GPU)
        assert r.expected == 25.0 and "note" not in r.params
