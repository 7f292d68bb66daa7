"""Data-parallel training of a GPT-style decoder: tokens/s, step time, MFU, scaling
efficiency against one device, and the share of the step spent waiting for gradients.

What runs: `models/gpt.py` (124M parameters by default: 12 layers, 768 wide, 12 heads,
1024 tokens of context, vocabulary 50304; "tiny" on the CPU: 2 layers, 64 wide, 64 tokens)
under DistributedDataParallel on 2, 4 ... N devices (N included) and as the plain model on
one, the baseline (CPU stand-ins: 1 and 2 gloo processes); AdamW, bf16 autocast (fp16 with
a GradScaler where the GPU has no bf16; fp32 on the CPU), fused attention, optionally
`torch.compile`. `--full` adds the compiled model and an FSDP run (`fully_shard`, bf16
parameters, fp32 gradient reduction) over all devices, for models that do not fit one GPU.
Settings (`bench --set`, bench/options.py): train.size (tiny, 124m, 350m, 774m, 1.5b,
6.7b), train.compile (0, 1, both), train.fsdp (0, 1), train.batch (micro-batch per device;
default the largest power of two up to 32 that fits).

The tokens come from a learnable synthetic task: a fixed random successor rule over
K = min(1024, vocab/8) of the vocabulary's tokens, each next token the successor of the
last with probability 0.9 and a random one of the K otherwise. The loss starts near
ln(vocab) and must fall by at least LOSS_DROP_MIN nats from the mean of the first
LOSS_WINDOW steps to the mean of the last LOSS_WINDOW, or every result of the run is
failed (its floor, the rule's entropy, is in params).

Figures (t: the step time, the slowest rank's per step, CUDA events; W devices, micro-batch
B, context T):

* tokens/s = W·B·T / t (median over the timed steps; the spread is over steps), against the
  compute ceiling W·peak / flops_per_token, so its ratio is the MFU.
* MFU (%) = flops_per_token · tokens/s / (W · peak). flops_per_token = 6·N + 12·L·d·T:
  N the parameters in matrix products (all but the position table; the tied embedding once),
  12·L·d·T the attention products (PaLM appendix B, nanoGPT), the full T×T square although
  the mask is causal; params also give the 6·N-only MFU. Peak: the catalog's dense bf16 (or
  fp16) tensor rate; none on a CPU, where MFU is skipped rather than guessed.
* scaling efficiency (%) = tokens/s on W / (W · tokens/s on 1), the 1-device run of the same
  configuration earlier in this worker.
* gradient-communication share (%) = (forward+backward with DDP's all-reduce − the same
  under `no_sync`) / the synced step: the communication that backward did not hide.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

from rigbench.bench.context import BenchContext, BenchDevice, Step
from rigbench.bench.options import options_of
from rigbench.errors import BadInput
from rigbench.records import Result
from rigbench.stats import summarize
from rigbench.supervisor import RANKS_STARTUP_S

NAME = "train"

GPU_SIZE = "124m"
CPU_SIZE = "tiny"
CPU_MAX_WORLD = 2  # CPU stand-ins: 1 and 2 gloo processes, whatever the simulated rig has
MAX_MICRO_BATCH = 32
SLACK_BYTES = 4 << 30  # left free on a GPU beside the estimated need

# (warm-up steps, timed steps, timed no_sync forward+backward passes)
GPU_STEPS = (8, 20, 10)
CPU_STEPS = (2, 10, 3)
LR_WARMUP = 4
LR = {"cpu": 1e-2, "gpu": 1e-3}

TASK_EPS = 0.1  # chance that a token is random rather than its predecessor's successor
TASK_MAX_ACTIVE = 1024
DATA_BATCHES = 4  # distinct batches per rank, rotated
LOSS_WINDOW = 3
LOSS_DROP_MIN = 0.5  # nats

GPU_TIMEOUT_S = 300.0
GPU_COMPILE_TIMEOUT_S = 600.0
CPU_TIMEOUT_S = 120.0


# Worker-local: tokens/s of 1-device runs, for the scaling efficiency of the larger ones.
_BASELINE: dict[tuple[Any, ...], float] = {}


# ------------------------------------------------------------------------ formulas


def world_sizes(n: int) -> list[int]:
    """1, 2, 4 ... below n, and n itself."""
    out, w = [], 1
    while w < n:
        out.append(w)
        w *= 2
    return out + [n] if n >= 1 else []


def mfu_percent(
    flops_per_token: float, tokens_per_s: float, world: int, peak_tflops: float
) -> float:
    return 100.0 * flops_per_token * tokens_per_s / (world * peak_tflops * 1e12)


def scaling_efficiency(tokens_per_s: float, world: int, single: float) -> float:
    return 100.0 * tokens_per_s / (world * single)


def comm_share(fb_synced_s: float, fb_unsynced_s: float, step_s: float) -> float:
    """Percent of the step spent in gradient communication that backward did not hide."""
    return 100.0 * max(0.0, fb_synced_s - fb_unsynced_s) / step_s


def task_entropy(active: int, eps: float = TASK_EPS) -> float:
    """The synthetic task's entropy per token in nats: the lowest loss a model can reach."""
    p = 1.0 - eps + eps / active
    q = eps / active
    return -p * math.log(p) - (active - 1) * q * math.log(q)


def active_tokens(vocab: int) -> int:
    return max(2, min(TASK_MAX_ACTIVE, vocab // 8))


def loss_windows(losses: list[float], window: int = LOSS_WINDOW) -> tuple[float, float]:
    w = max(1, min(window, len(losses) // 2))
    return statistics.fmean(losses[:w]), statistics.fmean(losses[-w:])


# -------------------------------------------------------------------------- plan


def plan(ctx: BenchContext) -> list[Step]:
    from rigbench.bench.models.gpt_config import SIZES  # no torch in the planning process

    on_gpu = ctx.on_gpu
    opts = options_of(ctx.extra)
    size = opts.train_size or (GPU_SIZE if on_gpu else CPU_SIZE)
    if size not in SIZES:
        raise BadInput(f"train.size={size!r}: choose from {', '.join(SIZES)}")
    compile_mode = opts.train_compile or ("both" if ctx.mode == "full" else "0")
    fsdp = (opts.train_fsdp or ("1" if ctx.mode == "full" else "0")) == "1"
    batch = str(opts.train_batch) if opts.train_batch else ""
    n = len(ctx.devices) if on_gpu else min(len(ctx.devices), CPU_MAX_WORLD)
    compiles = {"0": [False], "1": [True], "both": [False, True]}[compile_mode]
    backend = "nccl" if on_gpu else "gloo"
    steps = []
    runs = [("ddp", w, c) for c in compiles for w in world_sizes(n)]
    if fsdp and n >= 1:
        runs += [("fsdp", n, compiles[-1])]
    for parallel, w, compiled in runs:
        timeout = (
            (GPU_COMPILE_TIMEOUT_S if compiled else GPU_TIMEOUT_S) if on_gpu else CPU_TIMEOUT_S
        )
        tag = "compiled" if compiled else "eager"
        steps.append(
            Step(
                key=f"{NAME}:{parallel}:{w}:{tag}",
                label=f"train GPT-{size} {parallel.upper()} on {w} device(s), {tag}",
                metric="tokens_per_s",
                unit="tokens/s",
                devices=[d.label for d in ctx.devices[:w]],
                params={
                    "size": size,
                    "parallel": parallel,
                    "world_size": w,
                    "compile": compiled,
                    "backend": backend,
                    "micro_batch": int(batch) if batch else None,
                },
                timeout_s=timeout,
                startup_s=RANKS_STARTUP_S,
            )
        )
    return steps


# --------------------------------------------------------------------------- ranks


def _synthetic_batches(
    vocab: int, block: int, batch: int, n_batches: int, seed: int, rank: int
) -> list[Any]:
    """`n_batches` tensors of (batch, block + 1) tokens from the successor rule (the same
    rule on every rank; the sequences differ by rank)."""
    import torch

    k = active_tokens(vocab)
    g = torch.Generator().manual_seed(seed)
    active = torch.randperm(vocab, generator=g)[:k]
    succ = torch.zeros(vocab, dtype=torch.long)
    succ[active] = active[torch.randperm(k, generator=g)]
    g.manual_seed(seed * 7919 + 1 + rank)
    rows = batch * n_batches
    x = torch.empty(rows, block + 1, dtype=torch.long)
    x[:, 0] = active[torch.randint(k, (rows,), generator=g)]
    for t in range(block):
        noise = torch.rand(rows, generator=g) < TASK_EPS
        rand = active[torch.randint(k, (rows,), generator=g)]
        x[:, t + 1] = torch.where(noise, rand, succ[x[:, t]])
    return list(x.split(batch))


def _micro_batch(cfg: Any, n_params: int, device: Any, world: int, parallel: str) -> int:
    """Largest power of two (up to MAX_MICRO_BATCH) whose estimated memory fits: 16 bytes
    a parameter (fp32 weights, gradients, AdamW; divided by W under FSDP) plus, a sample,
    34·L·T·d bytes of bf16 activations and T·V·10 bytes of logits (bf16, fp32, gradient)."""
    import torch

    free, _total = torch.cuda.mem_get_info(device)
    state = 16 * n_params / (world if parallel == "fsdp" else 1)
    per_sample = (
        34 * cfg.n_layer * cfg.block_size * cfg.n_embd + cfg.block_size * cfg.vocab_size * 10
    )
    room = free - SLACK_BYTES - state
    b = 1
    while b * 2 <= MAX_MICRO_BATCH and b * 2 * per_sample <= room:
        b *= 2
    return b


class TrainRank:
    """One rank of a training run (rigbench.bench.rankpool handler)."""

    def __init__(self, rank: int, world: int, device: str, group: Any = None) -> None:
        self.rank, self.world, self.device = rank, world, device
        self.group = group  # None: the default, whole-world group

    def close(self) -> None:
        import gc

        import torch

        gc.collect()  # DDP/FSDP hold reference cycles; free the model before the next run
        if torch.device(self.device).type == "cuda":
            torch.cuda.empty_cache()

    def handle(self, cmd: tuple[Any, ...]) -> tuple[Any, ...]:
        if cmd[0] != "train":
            return ("error", f"rank {self.rank}: unknown command {cmd[0]!r}")
        return ("ok", self._train(dict(cmd[1])))

    def _train(self, spec: dict[str, Any]) -> dict[str, Any]:  # noqa: C901 - one run, in order
        import contextlib

        import torch
        import torch.distributed as dist

        from rigbench.bench.models.gpt import GPT, SIZES, matmul_params

        dev = torch.device(self.device)
        on_cuda = dev.type == "cuda"
        cfg = SIZES[spec["size"]]
        parallel = spec["parallel"]
        if on_cuda:
            torch.cuda.set_device(dev)
            precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        else:
            precision = "fp32"
            # Ranks share the CPU: without this each takes every core and they thrash.
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // self.world))
        import gc

        import torch._dynamo  # noqa: F401 - torch.optim imports it at its first use anyway

        # All that exists now (torch, its compiler, this process's modules) lives as long as
        # the process: frozen, it is left out of every collection from here on, close()'s
        # included, which otherwise walks it all (about 0.12 s a time on a CPU core).
        gc.freeze()
        torch.manual_seed(spec["seed"])  # the same initial weights on every rank
        if parallel == "fsdp":  # built without memory, sharded, then each rank fills its part
            with torch.device("meta"):
                model: Any = GPT(cfg)
        else:
            model = GPT(cfg).to(dev)
        n_params = matmul_params(model)
        batch = spec.get("micro_batch")
        if not batch:
            batch = _micro_batch(cfg, n_params, dev, self.world, parallel) if on_cuda else 8
            t = torch.tensor([batch], device=dev)
            # every rank runs the same batch
            dist.all_reduce(t, op=dist.ReduceOp.MIN, group=self.group)
            batch = int(t.item())
        if parallel == "fsdp":
            from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

            mp = (
                MixedPrecisionPolicy(
                    param_dtype=getattr(torch, {"bf16": "bfloat16", "fp16": "float16"}[precision]),
                    reduce_dtype=torch.float32,
                )
                if on_cuda
                else MixedPrecisionPolicy()
            )
            for block in model.blocks:
                fully_shard(block, mp_policy=mp)
            fully_shard(model, mp_policy=mp)
            model.to_empty(device=dev)
            model.init_weights()
            inner = model
            if spec["compile"]:
                model = torch.compile(model)
        else:
            from torch.nn.parallel import DistributedDataParallel as DDP

            if spec["compile"]:
                model = torch.compile(model)  # compiled, then wrapped (as nanoGPT)
            if self.world > 1:  # one device is the plain model: the baseline of scaling
                model = DDP(
                    model,
                    device_ids=[dev.index] if on_cuda else None,
                    process_group=self.group,
                )
            inner = model

        def set_sync(on: bool) -> None:
            if self.world == 1:
                return
            if parallel == "fsdp":
                inner.set_requires_gradient_sync(on)
            else:
                inner.require_backward_grad_sync = on

        opt = torch.optim.AdamW(
            model.parameters(),
            lr=LR["gpu" if on_cuda else "cpu"],
            betas=(0.9, 0.95),
            weight_decay=0.1,
            **({"fused": True} if on_cuda else {}),
        )
        peak_lr = opt.param_groups[0]["lr"]
        scaler = torch.amp.GradScaler("cuda") if precision == "fp16" and parallel == "ddp" else None
        autocast: Any = (
            torch.autocast("cuda", dtype=torch.bfloat16 if precision == "bf16" else torch.float16)
            if on_cuda and parallel == "ddp"
            else contextlib.nullcontext()
        )
        data = [
            b.to(dev)
            for b in _synthetic_batches(
                cfg.vocab_size, cfg.block_size, batch, DATA_BATCHES, spec["seed"], self.rank
            )
        ]
        warm, timed, unsynced = spec["steps"]

        from rigbench.bench.timing import device_clock

        clock, seconds = device_clock(self.device)

        def fwd_bwd(i: int) -> torch.Tensor:
            x = data[i % len(data)]
            with autocast:
                loss = model(x[:, :-1], x[:, 1:])
            if scaler is not None:
                scaler.scale(loss).backward()
            else:
                loss.backward()
            return loss.detach()

        window_t0 = time.monotonic()
        marks: list[tuple[Any, Any, Any]] = []
        losses: list[torch.Tensor] = []
        set_sync(True)
        for i in range(warm + timed):
            for group in opt.param_groups:
                group["lr"] = peak_lr * min(1.0, (i + 1) / LR_WARMUP)
            t0 = clock()
            losses.append(fwd_bwd(i))
            t1 = clock()
            if scaler is not None:
                scaler.step(opt)
                scaler.update()
            else:
                opt.step()
            opt.zero_grad(set_to_none=True)
            if not on_cuda:
                dist.barrier(group=self.group)  # gloo: a step ends when every rank's has
            t2 = clock()
            if i >= warm:
                marks.append((t0, t1, t2))
            if i == warm - 1 or (warm == 0 and i == 0):
                window_t0 = time.monotonic()  # the timed steps start (for the conditions)
        nosync: list[tuple[Any, Any]] = []
        if self.world > 1 and unsynced:
            set_sync(False)
            for i in range(unsynced):
                t0 = clock()
                fwd_bwd(i)
                t1 = clock()
                nosync.append((t0, t1))
                opt.zero_grad(set_to_none=True)  # no optimizer step: replicas stay equal
            set_sync(True)
        if on_cuda:
            torch.cuda.synchronize(dev)
        window_t1 = time.monotonic()
        loss_values = [float(v) for v in torch.stack(losses).float().cpu()]
        out = {
            "window": [window_t0, window_t1],
            "step_s": [seconds(a, c) for a, _b, c in marks],
            "fb_s": [seconds(a, b) for a, b, _c in marks],
            "nosync_fb_s": [seconds(a, b) for a, b in nosync],
            "losses": loss_values,
            "n_params": n_params,
            "micro_batch": batch,
            "precision": precision,
            "config": asdict(cfg),
        }
        return out


# ----------------------------------------------------------------------------- run


def _peak(devices: list[BenchDevice], precision: str) -> tuple[float, str] | None:
    """The slowest device's dense peak for `precision` (a ring runs at the slowest's pace)."""
    peaks = [d.peak_tflops.get(precision) for d in devices]
    if not peaks or any(p is None for p in peaks):
        return None
    low = min(peaks, key=lambda p: p.value)  # type: ignore[union-attr]
    assert low is not None
    return low.value, low.basis


def _fail_all(results: list[Result], why: str) -> list[Result]:
    out = []
    for r in results:
        if r.status != "ok":
            out.append(r)
            continue
        params = {**r.params, "measured": r.value}
        out.append(Result.failure(NAME, r.metric, r.unit, why, devices=r.devices, params=params))
    return out


def results_for(
    step: Step, devices: list[BenchDevice], replies: list[dict[str, Any]]
) -> list[Result]:
    """The results of one run from every rank's reply (pure: unit-tested on made-up data)."""
    from rigbench.bench.models.gpt_config import GPTConfig, flops_per_token

    first = replies[0]
    w = len(replies)
    cfg = GPTConfig(**first["config"])
    batch = int(first["micro_batch"])
    step_s = [max(ts) for ts in zip(*(r["step_s"] for r in replies), strict=True)]
    fb_s = [max(ts) for ts in zip(*(r["fb_s"] for r in replies), strict=True)]
    tokens = w * batch * cfg.block_size
    tps = [tokens / t for t in step_s if t > 0]
    spread = summarize(tps)
    t_step = statistics.median(step_s)
    n = int(first["n_params"])
    fpt = flops_per_token(n, cfg)
    fpt6 = flops_per_token(n, cfg, attention=False)
    losses = [statistics.fmean(v) for v in zip(*(r["losses"] for r in replies), strict=True)]
    first_loss, last_loss = loss_windows(losses)
    labels = [d.label for d in devices]
    precision = str(first["precision"])
    params: dict[str, Any] = {
        **{k: v for k, v in step.params.items() if k != "micro_batch"},
        "micro_batch": batch,
        "context": cfg.block_size,
        "layers": cfg.n_layer,
        "width": cfg.n_embd,
        "heads": cfg.n_head,
        "vocab": cfg.vocab_size,
        "n_params": n,
        "precision": precision,
        "tokens_per_step": tokens,
        "step_ms_p50": t_step * 1e3,
        "step_ms_p10": summarize(step_s).p10 * 1e3,
        "step_ms_p90": summarize(step_s).p90 * 1e3,
        "flops_per_token": fpt,
        "attention_flops_included": True,
    }
    if "window" in first:  # monotonic times of the timed steps, for the conditions
        params["window_t0"], params["window_t1"] = (float(t) for t in first["window"])
    peak = _peak(devices, precision)
    tps_p50 = spread.p50
    out: list[Result] = []
    ceiling = w * peak[0] * 1e12 / fpt if peak else None
    out.append(
        Result(
            benchmark=NAME,
            metric="tokens_per_s",
            value=tps_p50,
            unit="tokens/s",
            params=dict(params),
            devices=labels,
            spread=spread,
            peak=ceiling,
            basis=(
                f"compute ceiling {w} × {peak[0]:g} TFLOP/s / {fpt / 1e9:.3g} GFLOP a token "
                f"(6·N + 12·L·d·T); {peak[1]}"
                if peak
                else None
            ),
        )
    )
    out.append(
        Result(
            benchmark=NAME,
            metric="step_time",
            value=t_step * 1e3,
            unit="ms",
            params=dict(params),
            devices=labels,
            spread=summarize([t * 1e3 for t in step_s]),
        )
    )
    if peak:
        mfu = mfu_percent(fpt, tps_p50, w, peak[0])
        out.append(
            Result(
                benchmark=NAME,
                metric="mfu",
                value=mfu,
                unit="%",
                params={
                    **params,
                    "mfu_6n_only": mfu_percent(fpt6, tps_p50, w, peak[0]),
                    "peak_tflops_per_device": peak[0],
                    "model_tflops_per_device": fpt * tps_p50 / w / 1e12,
                },
                devices=labels,
                spread=summarize([mfu_percent(fpt, v, w, peak[0]) for v in tps]),
                basis=(
                    "(6·N + 12·L·d·T) FLOP a token × tokens/s / (devices × dense "
                    f"{precision} peak); attention FLOPs included, counted over the full "
                    f"T×T square (PaLM appendix B); peak: {peak[1]}"
                ),
            )
        )
    else:
        out.append(
            Result.failure(
                NAME,
                "mfu",
                "%",
                f"no catalog {precision} peak for {devices[0].name}: MFU unknown, not guessed",
                devices=labels,
                params=dict(params),
                status="skipped",
            )
        )
    # DDP and FSDP runs share the 1-device baseline: the same model on one device.
    key = (
        step.params.get("size"),
        step.params.get("compile"),
        precision,
        batch,
        tuple(d.name for d in devices[:1]),
    )
    if w == 1:
        _BASELINE[key] = tps_p50
    else:
        single = _BASELINE.get(key)
        if single:
            eff = scaling_efficiency(tps_p50, w, single)
            out.append(
                Result(
                    benchmark=NAME,
                    metric="scaling_efficiency",
                    value=eff,
                    unit="%",
                    params={**params, "single_device_tokens_per_s": single},
                    devices=labels,
                    spread=summarize([scaling_efficiency(v, w, single) for v in tps]),
                    peak=100.0,
                    basis=f"tokens/s on {w} / ({w} × {single:.4g} tokens/s on 1 device, same run)",
                )
            )
        else:
            out.append(
                Result.failure(
                    NAME,
                    "scaling_efficiency",
                    "%",
                    "no 1-device run of the same configuration in this worker",
                    devices=labels,
                    params=dict(params),
                    status="skipped",
                )
            )
        nosync = [max(ts) for ts in zip(*(r["nosync_fb_s"] for r in replies), strict=True)]
        if nosync:
            fb_med, ns_med = statistics.median(fb_s), statistics.median(nosync)
            share = comm_share(fb_med, ns_med, t_step)
            what = "no_sync" if step.params.get("parallel") == "ddp" else "no gradient sync"
            out.append(
                Result(
                    benchmark=NAME,
                    metric="comm_share",
                    value=share,
                    unit="%",
                    params={
                        **params,
                        "fwd_bwd_ms_synced": fb_med * 1e3,
                        "fwd_bwd_ms_unsynced": ns_med * 1e3,
                        "exposed_comm_ms": max(0.0, fb_med - ns_med) * 1e3,
                    },
                    devices=labels,
                    basis=(
                        f"(forward+backward with gradient reduction − the same under {what}) "
                        "/ step time: the communication backward did not hide"
                    ),
                )
            )
    drop = first_loss - last_loss
    k = active_tokens(cfg.vocab_size)
    loss_params = {
        **params,
        "loss_first": first_loss,
        "loss_last": last_loss,
        "ln_vocab": math.log(cfg.vocab_size),
        "loss_floor": task_entropy(k),
        "active_tokens": k,
        "steps": len(losses),
    }
    fell = math.isfinite(drop) and drop >= LOSS_DROP_MIN
    out.append(
        Result(
            benchmark=NAME,
            metric="loss_drop",
            value=drop if math.isfinite(drop) else None,
            unit="nats",
            params=loss_params,
            devices=labels,
            basis=(
                f"mean loss of the first {LOSS_WINDOW} steps − of the last {LOSS_WINDOW}; "
                f"must be at least {LOSS_DROP_MIN}"
            ),
        )
    )
    if not fell:
        why = (
            f"loss did not fall: {first_loss:.3f} → {last_loss:.3f} nats over {len(losses)} "
            f"steps (needs a drop of {LOSS_DROP_MIN})"
        )
        out = _fail_all(out, why)
    return out


def run(ctx: BenchContext, step: Step) -> Iterator[Result]:
    import torch

    from rigbench.bench.rankpool import RankPool

    w = int(step.params["world_size"])
    devices = ctx.devices[:w]
    if len(devices) < w:
        yield Result.failure(
            NAME, "tokens_per_s", "tokens/s", f"needs {w} devices", status="skipped"
        )
        return
    if not torch.distributed.is_available():
        yield Result.failure(
            NAME,
            "tokens_per_s",
            "tokens/s",
            "this torch build has no torch.distributed",
            devices=[d.label for d in devices],
            status="skipped",
        )
        return
    spec = {
        "size": step.params["size"],
        "parallel": step.params["parallel"],
        "compile": bool(step.params["compile"]),
        "micro_batch": step.params.get("micro_batch"),
        "seed": ctx.seed + 1234,
        "steps": GPU_STEPS if ctx.on_gpu else CPU_STEPS,
    }
    backend = "nccl" if ctx.on_gpu else "gloo"
    pool = RankPool([d.torch_device for d in devices], backend, "rigbench.bench.train:TrainRank")
    try:
        replies = pool.command("train", spec)
    finally:
        pool.shutdown()
    errors = [r[1] for r in replies if r[0] != "ok"]
    if errors:
        raise RuntimeError("; ".join(errors))
    yield from results_for(step, devices, [r[1] for r in replies])
