"""Workloads (train, infer, nbody): formulas, self-checks, and real runs at tiny size on
the CPU through the runner (train over two gloo processes) and through the CLI."""

from __future__ import annotations

import json
import math

import pytest
import torch
from typer.testing import CliRunner

from rigbench.bench import infer, nbody, train
from rigbench.bench.context import BenchContext, BenchDevice, Expectation, Step
from rigbench.bench.models.gpt import GPT, flops_per_token, matmul_params
from rigbench.bench.models.gpt import SIZES as GPT_SIZES
from rigbench.bench.models.llama import SIZES as LLAMA_SIZES
from rigbench.bench.models.llama import LlamaModel
from rigbench.bench.options import parse_sets
from rigbench.bench.suite import DEFAULT_BENCHMARKS, WORKLOADS, parse_only
from rigbench.cli import app
from rigbench.records import Result
from rigbench.supervisor import run_steps


def _cpus(n: int) -> list[BenchDevice]:
    return [BenchDevice(label=f"cpu{i}", torch_device="cpu", name="cpu") for i in range(n)]


def _run(module: str, ctx: BenchContext) -> list[Result]:
    results: list[Result] = []
    aborted = run_steps(module, ctx, module_plan(module, ctx), results.append)
    assert aborted == []
    return results


def module_plan(module: str, ctx: BenchContext) -> list[Step]:
    return {"train": train, "infer": infer, "nbody": nbody}[module].plan(ctx)


def _by(results: list[Result], metric: str) -> list[Result]:
    return [r for r in results if r.metric == metric]


# ------------------------------------------------------------------------- suite


def test_workloads_are_named_only() -> None:
    assert not set(WORKLOADS) & set(parse_only(None))
    assert parse_only(None) == list(DEFAULT_BENCHMARKS)
    assert parse_only("nbody,train") == ["train", "nbody"]


# ---------------------------------------------------------------------- formulas


def test_training_formulas() -> None:
    assert train.world_sizes(1) == [1]
    assert train.world_sizes(3) == [1, 2, 3]
    assert train.world_sizes(8) == [1, 2, 4, 8]
    # 1e5 tokens/s at 1 GFLOP a token on 2 devices of 100 TFLOP/s: 50 %
    assert train.mfu_percent(1e9, 1e5, 2, 100.0) == pytest.approx(50.0)
    assert train.scaling_efficiency(180.0, 2, 100.0) == pytest.approx(90.0)
    assert train.comm_share(0.12, 0.10, 0.20) == pytest.approx(10.0)
    assert train.comm_share(0.09, 0.10, 0.20) == 0.0  # noise never gives a negative share
    assert train.loss_windows([5.0, 4.0, 3.0, 2.0, 1.0, 0.0], 2) == (4.5, 0.5)
    assert 0 < train.task_entropy(1024) < math.log(1024)


def test_gpt_124m_size_and_flops() -> None:
    cfg = GPT_SIZES["124m"]
    with torch.device("meta"):
        model = GPT(cfg)
    n = matmul_params(model)
    assert 123e6 < n < 125e6  # GPT-2 small with the 50304 vocabulary, tied embeddings
    assert flops_per_token(n, cfg, attention=False) == 6 * n
    assert flops_per_token(n, cfg) == 6 * n + 12 * 12 * 768 * 1024


def test_decode_ceiling_and_flops() -> None:
    # 2 GB of weights at 2000 GB/s, no cache: 1000 tokens/s at batch 1, memory-bound.
    tps, bound = infer.decode_ceiling(1, 2e9, 0.0, 100, 2000.0)
    assert tps == pytest.approx(1000.0) and bound == "memory"
    # The cache adds batch × context × bytes a position.
    tps, _ = infer.decode_ceiling(4, 2e9, 1e5, 5000, 2000.0)
    assert tps == pytest.approx(4 / ((2e9 + 4 * 1e5 * 5000) / 2e12))
    # A large batch becomes compute-bound.
    tps, bound = infer.decode_ceiling(512, 2e9, 0.0, 1, 2000.0, flops=1e15, peak_tflops=100.0)
    assert bound == "compute" and tps == pytest.approx(512 / 10.0)
    assert infer.decode_flops(10, 2, 3, 4, 5.0) == 2 * (20 + 4 * 3 * 4 * 5)
    assert infer.prefill_flops_per_token(10, 3, 4, 8) == 20 + 2 * 3 * 4 * 8


def test_llama_1b_shapes_and_bytes() -> None:
    cfg = LLAMA_SIZES["1b"]
    model = LlamaModel(LLAMA_SIZES["tiny"], dtype=torch.float32, device="cpu", seed=0)
    assert model.kv_bytes_per_token() == 2 * 2 * 2 * 16 * 4
    per_layer = (cfg.n_heads + 2 * cfg.n_kv_heads) * cfg.head_dim * cfg.dim
    per_layer += cfg.dim * cfg.dim + 3 * cfg.dim * cfg.ffn_dim
    assert 1.2e9 < per_layer * cfg.n_layers + cfg.vocab_size * cfg.dim < 1.3e9


def test_fp64_rates_and_peak() -> None:
    assert nbody.fp64_fp32_rate((9, 0)) == 0.5
    assert nbody.fp64_fp32_rate((8, 6)) == 1 / 64
    assert nbody.fp64_fp32_rate((7, 0)) == 0.5
    assert nbody.fp64_fp32_rate(None) is None
    assert nbody.fp64_fp32_rate((99, 0)) is None
    assert nbody.peak_system_steps(1.0) == pytest.approx(1e12 / nbody.FLOPS_PER_SYSTEM_STEP)
    assert nbody.system_steps_per_s(1000, 50, 2.0) == 25000.0


# ------------------------------------------------------------------------- train


def test_train_ddp_on_one_and_two_gloo_ranks() -> None:
    ctx = BenchContext(devices=_cpus(2))
    assert [s.key for s in train.plan(ctx)] == ["train:ddp:1:eager", "train:ddp:2:eager"]
    results = _run("train", ctx)
    assert all(r.status == "ok" for r in results if r.metric != "mfu"), [
        r.message for r in results if r.status != "ok"
    ]
    tps = _by(results, "tokens_per_s")
    assert [r.params["world_size"] for r in tps] == [1, 2]
    assert all(r.value and r.value > 0 and r.unit == "tokens/s" for r in tps)
    assert tps[1].devices == ["cpu0", "cpu1"] and tps[1].params["backend"] == "gloo"
    for r in _by(results, "loss_drop"):
        assert r.value is not None and r.value >= train.LOSS_DROP_MIN
        assert r.params["loss_last"] < r.params["ln_vocab"] - 1
    # No catalog peak on a CPU: MFU is skipped, not guessed.
    assert all(r.status == "skipped" for r in _by(results, "mfu"))
    (eff,) = _by(results, "scaling_efficiency")
    assert eff.value and eff.value > 0 and eff.peak == 100.0
    (comm,) = _by(results, "comm_share")
    assert comm.value is not None and 0 <= comm.value <= 100


def test_train_fsdp_on_two_gloo_ranks() -> None:
    ctx = BenchContext(devices=_cpus(2), extra={"options": parse_sets(["train.fsdp=1"])})
    (step,) = [s for s in train.plan(ctx) if s.params["parallel"] == "fsdp"]
    assert step.params["world_size"] == 2
    results: list[Result] = []
    assert run_steps("train", ctx, [step], results.append) == []
    assert all(r.status != "failed" for r in results), [r.message for r in results]
    # Alone in its worker: no 1-device baseline for a scaling efficiency.
    assert [r.status for r in _by(results, "scaling_efficiency")] == ["skipped"]
    (drop,) = _by(results, "loss_drop")
    assert drop.value is not None and drop.value >= train.LOSS_DROP_MIN
    assert _by(results, "comm_share")


def _reply(losses: list[float], step_s: float = 0.1) -> dict:
    return {
        "step_s": [step_s] * 4,
        "fb_s": [step_s * 0.8] * 4,
        "nosync_fb_s": [step_s * 0.7] * 4,
        "losses": losses,
        "n_params": 1000,
        "micro_batch": 2,
        "precision": "bf16",
        "config": {
            "n_layer": 2,
            "n_embd": 16,
            "n_head": 2,
            "block_size": 8,
            "vocab_size": 64,
        },
    }


def _train_step(w: int) -> Step:
    return Step(
        key=f"train:ddp:{w}:eager",
        label="t",
        metric="tokens_per_s",
        unit="tokens/s",
        params={"size": "x", "parallel": "ddp", "world_size": w, "compile": False},
    )


def test_train_results_mfu_scaling_and_a_loss_that_does_not_fall() -> None:
    peak = {"bf16": Expectation(value=1e-6, unit="TFLOP/s", basis="test peak")}
    devs = [
        BenchDevice(label=f"GPU{i}", torch_device="cpu", name="t", peak_tflops=peak)
        for i in range(2)
    ]
    falling = [6.0, 5.0, 4.0, 3.0, 2.0, 1.0]
    one = train.results_for(_train_step(1), devs[:1], [_reply(falling)])
    (tps1,) = _by(one, "tokens_per_s")
    assert tps1.value == pytest.approx(2 * 8 / 0.1)
    (mfu,) = _by(one, "mfu")
    fpt = 6 * 1000 + 12 * 2 * 16 * 8
    assert mfu.value == pytest.approx(100 * fpt * 160 / 1e6)
    assert mfu.params["attention_flops_included"] is True
    assert tps1.ratio == pytest.approx(mfu.value / 100)
    two = train.results_for(_train_step(2), devs, [_reply(falling, 0.125), _reply(falling, 0.1)])
    (eff,) = _by(two, "scaling_efficiency")
    assert eff.value == pytest.approx(100 * (2 * 2 * 8 / 0.125) / (2 * 160))  # slowest rank
    (comm,) = _by(two, "comm_share")
    assert comm.value == pytest.approx(100 * (0.1 - 0.0875) / 0.125)
    flat = train.results_for(_train_step(1), devs[:1], [_reply([4.0, 4.1, 3.9, 4.0, 4.0, 4.0])])
    assert all(r.status != "ok" for r in flat)
    assert all("loss did not fall" in (r.message or "") for r in flat if r.status == "failed")


# ------------------------------------------------------------------------- infer


def test_infer_runs_and_decode_matches_the_reference() -> None:
    ctx = BenchContext(devices=_cpus(1))
    results = _run("infer", ctx)
    assert results and all(r.status == "ok" for r in results), [r.message for r in results]
    decode = _by(results, "decode_tokens_per_s")
    assert {(r.params["context"], r.params["batch"]) for r in decode} == {
        (16, 1),
        (16, 4),
        (48, 1),
        (48, 4),
    }
    for r in decode:
        assert r.value and r.value > 0 and r.expected and r.expected > 0
        assert r.params["check_rel_error"] < infer.CHECK_TOL["fp32"]
        assert r.params["bound"] == "memory"
    assert len(_by(results, "prefill_tokens_per_s")) == 4


class _OffByOne(LlamaModel):
    """Decodes one position too far on: wrong rotary angle, wrong cache slot."""

    def decode(self, tokens, pos, cache, layer_fn=None, attn="sdpa"):  # type: ignore[no-untyped-def]
        return super().decode(tokens, pos + 1, cache, layer_fn, attn)


def test_infer_check_catches_a_wrong_decode() -> None:
    cfg = LLAMA_SIZES["tiny"]
    good = LlamaModel(cfg, dtype=torch.float32, device="cpu", seed=3)
    err, wrong = infer.check_against_reference(good, "eager", 5, "fp32")
    assert wrong is None and err < 1e-5
    bad = _OffByOne(cfg, dtype=torch.float32, device="cpu", seed=3)
    err, wrong = infer.check_against_reference(bad, "eager", 5, "fp32")
    assert wrong is not None and "decode step" in wrong


def test_infer_matmul_attention_matches_the_reference() -> None:
    cfg = LLAMA_SIZES["tiny"]
    model = LlamaModel(cfg, dtype=torch.float32, device="cpu", seed=4)
    err, wrong = infer.check_against_reference(model, "eager", 6, "fp32", attn="matmul")
    assert wrong is None and err < 1e-5
    # bf16 (rotary in bf16, residuals in bf16) within the GPU tolerance
    model = LlamaModel(cfg, dtype=torch.bfloat16, device="cpu", seed=4)
    for attn in infer.ATTNS:
        err, wrong = infer.check_against_reference(model, "eager", 6, "bf16", attn=attn)
        assert wrong is None, wrong


def test_infer_gpu_plan_defaults() -> None:
    assert infer.GPU_MODEL == "8b"
    batches = {
        p: [b for b in infer.BATCHES[(True, False)] if b == 1 or b * p <= infer.GPU_BATCH_TOKENS]
        for p in infer.CONTEXTS[(True, False)]
    }
    assert batches == {512: [1, 16, 64], 4096: [1, 16]}
    # weights + the largest default cache fit well inside an 80 GB GPU
    cfg = LLAMA_SIZES["8b"]
    params = cfg.n_layers * (
        (cfg.n_heads + 2 * cfg.n_kv_heads) * cfg.head_dim * cfg.dim
        + cfg.dim * cfg.dim
        + 3 * cfg.dim * cfg.ffn_dim
    )
    params += 2 * cfg.vocab_size * cfg.dim
    assert 8.0e9 < params < 8.1e9
    kv_token = 2 * cfg.n_layers * cfg.n_kv_heads * cfg.head_dim * 2
    largest = max(b * (p + 192) for p, bs in batches.items() for b in bs)
    assert 2 * params + kv_token * largest < 30e9


# ------------------------------------------------------------------------- nbody


def test_nbody_energy_drift_catches_a_broken_integrator() -> None:
    start = nbody.initial_state(512, torch.float64, "cpu", 1)
    fine, coarse = start.clone(), start.clone()
    nbody.integrate_torch(fine, 200)
    nbody.integrate_torch(coarse, 200, dt=0.05)
    assert float(nbody.energy_drift(start, fine).median()) < nbody.DRIFT_TOL["fp64"]
    assert float(nbody.energy_drift(start, coarse).median()) > 100 * nbody.DRIFT_TOL["fp64"]
    broken = start.clone()
    broken[0, 7] = math.nan
    assert math.isinf(float(nbody.energy_drift(start, broken)[7]))


def test_nbody_results_fail_on_drift_and_set_the_fp64_ratio() -> None:
    peaks = {
        "fp32": Expectation(value=60.0, unit="TFLOP/s", basis="cat fp32"),
        "fp64": Expectation(value=60.0, unit="TFLOP/s", basis="cat fp64 tensor"),
    }
    dev = BenchDevice(label="GPU0", torch_device="cuda:0", name="H", peak_tflops=peaks)
    step = Step(
        key="nbody:GPU0:triton",
        label="t",
        metric="system_steps_per_s",
        unit=nbody.UNIT,
        params={"engine": "triton", "systems": 1000},
    )
    fig = {"steps": 10, "drift_median": 1e-7, "drift_p99": 1e-5, "drift_max": 1e-4}
    measured = {
        "fp32": ({**fig, "seconds": [0.01, 0.01]}, None),
        "fp64": ({**fig, "seconds": [0.04, 0.04]}, None),
    }
    out = nbody.results_for(dev, step, measured, (9, 0))
    (ratio,) = _by(out, "fp64_fp32_ratio")
    assert ratio.value == pytest.approx(0.25) and ratio.expected == 0.5
    assert ratio.params["catalog_fp64_over_fp32"] == 1.0
    fp64 = next(r for r in _by(out, "system_steps_per_s") if r.params["dtype"] == "fp64")
    assert fp64.peak == pytest.approx(60e12 * 0.5 / nbody.FLOPS_PER_SYSTEM_STEP)
    measured["fp64"] = ({"steps": 10}, "fp64: energy not conserved")
    out = nbody.results_for(dev, step, measured, (9, 0))
    assert [r.status for r in out if r.params.get("dtype") == "fp64"] == ["failed"]
    assert not _by(out, "fp64_fp32_ratio")


def test_cli_bench_only_nbody_json() -> None:
    """The CLI path: plan in the parent, the torch engine through the runner, JSON out."""
    res = CliRunner().invoke(
        app, ["bench", "--only", "nbody", "--json", "--scale", "0.05"], env={"COLUMNS": "200"}
    )
    assert res.exit_code == 0, res.stdout + res.stderr
    results = [Result.from_dict(r) for r in json.loads(res.stdout)["results"]]
    assert all(r.benchmark == "nbody" and r.status == "ok" for r in results)
    assert {r.metric for r in results} == {"system_steps_per_s", "energy_drift", "fp64_fp32_ratio"}
    rates = _by(results, "system_steps_per_s")
    assert {r.params["engine"] for r in rates} == {"torch"}
    assert {r.params["dtype"] for r in rates} == {"fp32", "fp64"}
    assert all(r.unit == "systems·steps/s" and r.value and r.value > 0 for r in rates)
    for r in _by(results, "energy_drift"):
        assert r.value is not None and r.value < nbody.DRIFT_TOL[r.params["dtype"]]
    (ratio,) = _by(results, "fp64_fp32_ratio")
    assert ratio.unit == "ratio" and ratio.value and ratio.value > 0
