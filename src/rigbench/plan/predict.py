"""Predictions for a build: what the rig should reach at best.

* peak compute per dtype: the sum of the catalog's dense datasheet peaks (stock clocks; a
  power limit below TDP lowers sustained clocks);
* memory: total and aggregate bandwidth, the sum over GPUs;
* each GPU's host link, `pcie_gbs(gen, width)` per direction (shared uplinks divided);
* decode tokens/s upper bound of a model, from bandwidth alone: every weight is read once
  per generated token, so one sequence can go no faster than `1 / t` with
  `t = W / n / min(bw)` split by tensor parallelism (the GPUs read their shards at once),
  `t = sum(W / n / bw_i)` split by layers (pipeline; the GPUs take turns), `t = W / bw_0` on
  one GPU. `W` = params x bits per weight / 8. The KV cache read per token is left out,
  so long contexts fall further below it. An MoE reads only its active parameters (the
  shared weights and the routed experts) per token. What runtimes reach of the bound:
  `DECODE_EFFICIENCY`;
* data-parallel speedup on n GPUs: compute per step `t_c = 6 N T / (peak x MFU)` (6 N FLOPs
  per token for forward and backward of N parameters, T tokens per GPU per step, MFU
  assumed `MFU`) against one all-reduce of the gradients `t_a` (rigbench.plan.pcie):
  between `n t_c / (t_c + t_a)` (no overlap) and `n t_c / max(t_c, t_a)` (full overlap).
  FSDP moves 1.5x DDP's bytes (two all-gathers of bf16 weights and a reduce-scatter of
  bf16 gradients: `3 (n-1)/n x 2N`).
"""

from __future__ import annotations

import re

from rigbench.catalog import DTYPES
from rigbench.catalog.models import ModelSpec
from rigbench.plan.build import Build, GpuUnit, ModelEntry
from rigbench.plan.fit import bits_per_weight_of
from rigbench.plan.pcie import GRAD_BYTES_PER_PARAM, allreduce_s, ring
from rigbench.plan.records import Prediction

# Model FLOPs utilisation assumed for training: 40 %, below the 46 % PaLM reached on TPU v4
# (Chowdhery et al. 2022, Table 3) and typical of well-tuned dense transformer training.
MFU = 0.4
# Share of the bandwidth bound llama.cpp's CUDA decode reaches for one sequence: a Tesla P40
# (347 GB/s) generates 56.8 tokens/s with llama 7B Q4_0 (3.56 GiB), reading 217 GB/s, 0.63
# of its bandwidth (ggml-org/llama.cpp PR #4766, tg128 table). Seeds 000 and 001 (13.3
# tokens/s on 4 x 3090, 14 on 4 x V100 with 70B models) sit at 0.59 and 0.75 of the bound.
DECODE_EFFICIENCY = 0.63
DECODE_SOURCE = "llama.cpp PR #4766: Tesla P40, llama 7B Q4_0, 56.8 tokens/s"
# Tokens per GPU per step when a [[model]] gives no batch and context: 8 x 2048.
REFERENCE_TOKENS = 8 * 2048


def _unit(dtype: str) -> str:
    return "TOP/s" if dtype == "int8" else "TFLOP/s"


def compute(build: Build) -> list[Prediction]:
    out = []
    n = len(build.gpus)
    limited = [g for g in build.gpus if g.spec.tdp_w and g.power_w < g.spec.tdp_w]
    for dtype in DTYPES:
        have = [g for g in build.gpus if dtype in g.spec.peak_tflops]
        if not have:
            continue
        basis = "sum of the catalog's dense datasheet peaks"
        if len(have) < n:
            basis += f" ({len(have)} of {n} GPUs have {dtype})"
        if limited:
            basis += "; GPUs limited below TDP run lower clocks"
        out.append(
            Prediction(
                id=f"compute.{dtype}",
                what=f"peak {dtype} compute",
                value=sum(g.spec.peak_tflops[dtype] for g in have),
                unit=_unit(dtype),
                basis=basis,
            )
        )
    return out


def memory(build: Build) -> list[Prediction]:
    bws = [g.spec.memory_bandwidth_gbs for g in build.gpus]
    out = [
        Prediction(
            id="memory.total_gib",
            what="GPU memory",
            value=sum(g.spec.memory_gib for g in build.gpus),
            unit="GiB",
            basis="sum of the catalog's capacities",
        )
    ]
    if all(bw is not None for bw in bws):
        out.append(
            Prediction(
                id="memory.bandwidth_gbs",
                what="aggregate GPU memory bandwidth",
                value=sum(bw for bw in bws if bw is not None),
                unit="GB/s",
                basis="sum of the catalog's datasheet figures",
            )
        )
    return out


def links(build: Build) -> list[Prediction]:
    return [
        Prediction(
            id=f"link.gpu{g.index}",
            what=f"GPU {g.index} ({g.spec.name}) host link",
            value=g.host_gbs,
            unit="GB/s",
            basis=f"Gen{g.link_gen} x{g.link_width} per direction: {g.link_basis}",
        )
        for g in build.gpus
    ]


def _gpus_of(build: Build, entry: ModelEntry) -> list[GpuUnit]:
    if entry.gpus:
        return [build.gpus[i] for i in entry.gpus]
    return list(build.gpus)


def _label(entry: ModelEntry, spec: ModelSpec | None, m: int) -> str:
    """An id-safe label: the preset id, else the entry's name, else model<m>."""
    if spec is not None and spec.id:
        return spec.id
    return re.sub(r"[^a-z0-9.:]+", "-", (entry.name or f"model{m}").casefold()).strip("-")


def decode(build: Build) -> list[Prediction]:
    out = []
    for m, (entry, spec) in enumerate(zip(build.models, build.model_specs, strict=False)):
        if entry.mode != "inference":
            continue
        params = spec.params if spec is not None else entry.params
        gpus = _gpus_of(build, entry)
        bws = [g.spec.memory_bandwidth_gbs for g in gpus]
        if not params or not gpus or any(bw is None for bw in bws):
            continue
        bits = bits_per_weight_of(entry.bits_per_weight if entry.bits_per_weight else 16)
        read, read_basis = _params_read_per_token(spec, float(params))
        weights = read * bits / 8
        split = entry.parallel or "pp"
        n = len(gpus)
        bw = [float(b) for b in bws if b is not None]
        if split == "none" or n == 1:
            t = weights / (bw[0] * 1e9)
            how = f"one GPU reads all {weights / 1e9:.1f} GB of weights per token"
        elif split == "tp":
            t = weights / n / (min(bw) * 1e9)
            how = f"{n} GPUs read {weights / n / 1e9:.1f} GB each at once (tensor parallel)"
        else:
            t = sum(weights / n / (b * 1e9) for b in bw)
            how = f"{n} GPUs read {weights / n / 1e9:.1f} GB each in turn (layers split)"
        label = _label(entry, spec, m)
        expected = DECODE_EFFICIENCY / t
        out.append(
            Prediction(
                id=f"decode.{label}",
                what=f"decode upper bound, {label} at {bits:.3g} bits, one sequence",
                value=1 / t,
                unit="tokens/s",
                basis=(
                    f"{how}{read_basis}; memory bandwidth only (KV cache reads and kernels"
                    f" cost more): expect ~{expected:.1f} tokens/s at the"
                    f" {DECODE_EFFICIENCY:.0%} of it llama.cpp reaches ({DECODE_SOURCE})"
                ),
                evidence={
                    "weights_gb": weights / 1e9,
                    "params_read": read,
                    "gpus": [g.index for g in gpus],
                    "expected_tokens_per_s": expected,
                    "efficiency": DECODE_EFFICIENCY,
                },
            )
        )
    return out


def _params_read_per_token(spec: ModelSpec | None, params: float) -> tuple[float, str]:
    """The weights one decoded token reads: all of a dense model; of an MoE, the shared
    part and the experts the token is routed to (its active parameters)."""
    if spec is None or not spec.is_moe:
        return params, ""
    active = float(spec.active_params)
    if active >= params:
        counted = spec.architecture_params()
        if counted is None:
            return params, "; an MoE whose active parameters are unknown: all weights counted"
        active = float(counted[1])
    return active, (
        f"; MoE: {active / 1e9:.1f}B of {params / 1e9:.1f}B parameters read per token"
        f" ({spec.experts_per_token} of {spec.experts} experts)"
    )


def _dp_dtype(gpus: list[GpuUnit]) -> str:
    for dtype in ("bf16", "fp16", "fp32"):
        if all(dtype in g.spec.peak_tflops for g in gpus):
            return dtype
    return "fp32"


def scaling(build: Build) -> list[Prediction]:
    if len(build.gpus) < 2:
        return []
    jobs: list[tuple[str, float, float, str, list[GpuUnit]]] = []  # label, N, T, sharding, gpus
    for m, (entry, spec) in enumerate(zip(build.models, build.model_specs, strict=False)):
        if entry.mode != "full":
            continue
        params = spec.params if spec is not None else entry.params
        if not params:
            continue
        tokens = float(
            entry.batch * entry.context
            if entry.batch is not None and entry.context is not None
            else REFERENCE_TOKENS
        )
        jobs.append(
            (
                _label(entry, spec, m),
                float(params),
                float(tokens),
                entry.parallel or "fsdp",
                _gpus_of(build, entry),
            )
        )
    if not jobs:
        jobs.append(("reference-1b", 1e9, float(REFERENCE_TOKENS), "ddp", list(build.gpus)))
    out = []
    for label, params, tokens, sharding, gpus in jobs:
        n = len(gpus)
        r = ring(build, gpus)
        if r is None:
            continue
        dtype = _dp_dtype(gpus)
        peak = min(g.spec.peak_tflops.get(dtype, 0.0) for g in gpus)
        if peak <= 0:
            continue
        t_c = 6 * params * tokens / (peak * 1e12 * MFU)
        if sharding == "fsdp":
            nbytes = 1.5 * params * 2  # 1.5x an all-reduce of bf16 (2-byte) values
            moved = "FSDP: 1.5x an all-reduce of bf16 values"
        elif sharding in ("zero1", "zero2"):
            nbytes = params * 2
            moved = f"{sharding}: bf16 gradients reduce-scattered, weights all-gathered"
        else:
            nbytes = params * GRAD_BYTES_PER_PARAM
            moved = "DDP: fp32 gradients"
        t_a = allreduce_s(nbytes, n, r.gbs)
        low = n * t_c / (t_c + t_a)
        high = n * t_c / max(t_c, t_a)
        out.append(
            Prediction(
                id=f"scaling.{label}",
                what=f"data-parallel speedup on {n} GPUs, {label}",
                value=low,
                unit="x",
                basis=(
                    f"{low:.2f}x with no overlap, {high:.2f}x with full overlap: compute"
                    f" {t_c * 1e3:,.0f} ms/step (6 x {params / 1e9:.3g}B params x {tokens:,.0f}"
                    f" tokens at {peak:g} {dtype} TFLOP/s x MFU {MFU:.0%}) against"
                    f" {t_a * 1e3:,.0f} ms of communication ({moved}) over {r.basis}; a step"
                    f" takes {(t_c + t_a) * 1e3:,.0f} ms without overlap"
                ),
                evidence={
                    "gpus": n,
                    "compute_s": t_c,
                    "allreduce_s": t_a,
                    "step_s_no_overlap": t_c + t_a,
                    "speedup_no_overlap": low,
                    "speedup_full_overlap": high,
                    "ring_gbs": r.gbs,
                    "ring_over": r.over,
                    "tokens_per_gpu_step": tokens,
                    "mfu": MFU,
                    "dtype": dtype,
                },
            )
        )
    return out


def all_predictions(build: Build) -> list[Prediction]:
    return [*compute(build), *memory(build), *links(build), *decode(build), *scaling(build)]
