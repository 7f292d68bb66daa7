"""LLM inference on one device: prefill and decode tokens/s of a Llama-architecture model
with random weights (`models/llama.py`), at batch 1 and larger batches over a few context
lengths, decode set against the memory-bandwidth ceiling.

Model: GPU, the Llama 3 8B shapes in bf16 (32 layers, 4096 wide, 32 query and 8 kv
heads, MLP 14336, vocabulary 128256, untied output, 8.03 B parameters, 16.1 GB, random
weights drawn on the device); CPU, "tiny" in fp32. At 1B the ~15 small kernels of a layer
cost as much as its matrices (35-44 % of the ceiling at batch 1 on an H200); at 8B a
layer's matrices stream for ~0.1 ms. Contexts (prompt lengths) and batches: GPU 512 × 1,
16, 64 and 4096 × 1, 16 (batch × context at most GPU_BATCH_TOKENS: the cache of 16 × 4096
is 9 GB, 64 × 4096 would be 35 GB); --full 128 ... 8192 × 1, 8, 32, 128 (what does not fit
is skipped); CPU 16 and 48 × 1, 4. Runs on the first selected device (`--gpus` picks it).
Settings (`bench --set`, bench/options.py): infer.model (tiny, 1b, 3b, 8b), infer.engine
(eager, graph, compile), infer.attn (sdpa, matmul), infer.contexts and infer.batches
(comma lists; batches given are all run).

Decode engines: "graph" captures one decode step, greedy argmax and position increment
included, in a CUDA graph and replays it: no host work per token; "compile" (GPU default:
194 against 171 tokens/s for graph at 8B, batch 1, context 512, on an H200) does the same with the
decode layer compiled by `torch.compile` (default mode, no cudagraphs of its own: the step
is captured once, by us) first (fused element-wise kernels; one compilation serves every
layer); "eager" (CPU) calls it from Python. On GPUs the batch-1 result also gives the
eager rate, and with the graph engine the rate with the other attention (`attn_alt_*`).
Decode attention: "sdpa" (CPU default) is scaled_dot_product_attention over the whole cache
with the unwritten part masked; "matmul" (GPU default) is the same as two batched products
and a softmax, which keeps more blocks busy at batch 1 on a long cache. Measured on an
H200, 8B, batch 1, compile engine: matmul 204.5 / 194.6 tokens/s (72.5 % / 79.3 % of the
ceiling) at context 512 / 4096, sdpa 194.5 / 136.0 (69.0 % / 55.4 %).

Figures (per context P and batch B):

* prefill tokens/s = B·P / t (prompts run from an empty cache, at most PREFILL_TOKENS a
  forward pass), against the compute ceiling peak / (2·N + 2·L·H·D·P) FLOP a token (N the
  matrix parameters; the causal attention's products at P/2 on average).
* decode tokens/s = B / t_step, t_step the median of DECODE_TOKENS replays (CUDA events),
  against the ceiling B / max(bytes / BW, FLOPs / peak): bytes = every weight once + the
  k/v cache of B sequences at the mean context of the decode; BW the device-to-device copy
  rate measured in the step (read + write bytes, as `rigbench bench --only memory`), or
  the catalog's when too little memory is free. The graph reads the whole preallocated
  cache (P + DECODE_TOKENS + a few positions) with the unwritten part masked.

Checked: per context, a short greedy generation (batch 1, CHECK_PROMPT + CHECK_TOKENS)
through the same engine against `reference_logits` (no cache, float32 weights, every
position recomputed): the relative error of every position's logits within CHECK_TOL, and
every token the engine chose within twice the largest logit difference of the reference's
best (a closer pair may swap by rounding). A failed check fails the context's results.
"""

from __future__ import annotations

import math
import os
import statistics
import time
import zlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from rigbench.bench.context import BenchContext, BenchDevice, Step
from rigbench.bench.options import options_of
from rigbench.errors import BadInput
from rigbench.records import Result
from rigbench.stats import summarize

if TYPE_CHECKING:
    import torch

    from rigbench.bench.models.llama import LlamaModel

NAME = "infer"

GPU_MODEL = "8b"
CPU_MODEL = "tiny"
CONTEXTS = {(True, False): (512, 4096), (True, True): (128, 512, 2048, 8192)}
CONTEXTS.update({(False, False): (16, 48), (False, True): (16, 48, 128)})
BATCHES = {(True, False): (1, 16, 64), (True, True): (1, 8, 32, 128)}
BATCHES.update({(False, False): (1, 4), (False, True): (1, 4, 16)})
GPU_BATCH_TOKENS = 65536  # default GPU runs: batch × context at most this
DECODE_TOKENS = {True: 64, False: 8}
DECODE_WARMUP = 3
EAGER_TOKENS = 16
PREFILL_REPEATS = {True: 2, False: 2}
PREFILL_TOKENS = 32768  # tokens per prefill forward pass, at most
CACHE_ALIGN = 64
CHECK_PROMPT = 24
CHECK_TOKENS = 6
# Relative logits error allowed against the fp32 reference. bf16 keeps the residual stream
# in bf16: the 1B shapes gave 0.027-0.030 (CPU, two seeds); decoding one position off gave
# 0.48, attending to a fixed position 1.3.
CHECK_TOL = {"bf16": 8e-2, "fp16": 8e-2, "fp32": 1e-4}
BW_BYTES = {True: 1 << 30, False: 64 << 20}
BW_WARM_S = 0.5  # copies before the bandwidth probe is timed (GPU only)
MEMORY_HEADROOM = 0.85  # of free memory, for weights-sized scratch and the cache

GPU_TIMEOUT_S = 300.0
GPU_COMPILE_TIMEOUT_S = 600.0
CPU_TIMEOUT_S = 90.0

ATTNS = ("sdpa", "matmul")


# ------------------------------------------------------------------------- formulas


def decode_ceiling(
    batch: int,
    weight_bytes: float,
    kv_bytes_per_token: float,
    context: float,
    bandwidth_gbs: float,
    flops: float | None = None,
    peak_tflops: float | None = None,
) -> tuple[float, str]:
    """Tokens/s a decode step cannot beat, and what bounds it ("memory" or "compute"):
    batch / max(bytes / bandwidth, flops / peak), bytes = weights + the k/v of `batch`
    sequences at `context` positions."""
    t_mem = (weight_bytes + batch * kv_bytes_per_token * context) / (bandwidth_gbs * 1e9)
    t_flop = flops / (peak_tflops * 1e12) if flops and peak_tflops else 0.0
    return batch / max(t_mem, t_flop), "memory" if t_mem >= t_flop else "compute"


def decode_flops(
    matmul_params: int, batch: int, n_layers: int, attn_width: int, context: float
) -> float:
    """2·N a token for the matrices, 4·L·(H·D)·context for scores and weighted sum."""
    return batch * (2.0 * matmul_params + 4.0 * n_layers * attn_width * context)


def prefill_flops_per_token(
    matmul_params: int, n_layers: int, attn_width: int, prompt: int
) -> float:
    """2·N + 2·L·(H·D)·P: the causal attention's two products at P/2 positions on average."""
    return 2.0 * matmul_params + 2.0 * n_layers * attn_width * prompt


# ---------------------------------------------------------------------------- plan


def plan(ctx: BenchContext) -> list[Step]:
    from rigbench.bench.models.llama_config import SIZES  # no torch in the planning process

    if not ctx.devices:
        return []
    dev = ctx.devices[0]
    on_gpu = ctx.on_gpu
    full = ctx.mode == "full"
    opts = options_of(ctx.extra)
    model = opts.infer_model or (GPU_MODEL if on_gpu else CPU_MODEL)
    if model not in SIZES:
        raise BadInput(f"infer.model={model!r}: choose from {', '.join(SIZES)}")
    engine = opts.infer_engine or ("compile" if on_gpu else "eager")
    if not on_gpu:
        engine = "eager"
    attn = opts.infer_attn or ("matmul" if on_gpu else "sdpa")
    contexts = opts.infer_contexts or CONTEXTS[(on_gpu, full)]
    batches = opts.infer_batches or BATCHES[(on_gpu, full)]
    limit = on_gpu and not full and not opts.infer_batches

    def batches_at(p: int) -> list[int]:
        return [b for b in batches if not limit or b == 1 or b * p <= GPU_BATCH_TOKENS]

    timeout = (
        (GPU_COMPILE_TIMEOUT_S if engine == "compile" else GPU_TIMEOUT_S)
        if on_gpu
        else CPU_TIMEOUT_S
    )
    return [
        Step(
            key=f"{NAME}:{dev.label}:{model}:ctx{p}",
            label=f"{dev.label} Llama-{model} inference, context {p}",
            metric="decode_tokens_per_s",
            unit="tokens/s",
            devices=[dev.label],
            params={
                "model": model,
                "context": p,
                "batches": batches_at(p),
                "engine": engine,
                "attn": attn,
            },
            timeout_s=timeout,
        )
        for p in contexts
    ]


# ------------------------------------------------------------------------ decoding


_COMPILED: dict[int, Callable[..., Any]] = {}


def _compiled_layer(model: LlamaModel) -> Callable[..., Any]:
    """`model.decode_layer` through torch.compile, once per model: every layer and every
    step share it (a new batch or cache length recompiles it once)."""
    import torch

    fn = _COMPILED.get(id(model))
    if fn is None:
        import torch._dynamo

        torch._dynamo.config.cache_size_limit = max(64, torch._dynamo.config.cache_size_limit)
        fn = torch.compile(model.decode_layer, fullgraph=True, dynamic=False)
        _COMPILED.clear()
        _COMPILED[id(model)] = fn
    return fn


class Decoder:
    """Greedy decoding of B sequences through one engine. `step()` advances every
    sequence by one token (the argmax) and the position by one; `logits` holds the last
    step's logits when built with keep_logits."""

    def __init__(
        self,
        model: LlamaModel,
        cache: torch.Tensor,
        first_tokens: torch.Tensor,
        start: int,
        engine: str,
        *,
        attn: str = "sdpa",
        keep_logits: bool = False,
    ) -> None:
        import torch

        self.model, self.cache, self.engine, self.attn = model, cache, engine, attn
        dev = model.device
        self.tok = first_tokens.view(-1, 1).clone()
        self.pos = torch.tensor([start], dtype=torch.long, device=dev)
        self.start = start
        self.logits: torch.Tensor | None = None
        self.keep = keep_logits
        model.ensure_rope(cache.shape[4])
        self.layer_fn: Callable[..., torch.Tensor] | None = None
        if engine == "compile":
            self.layer_fn = _compiled_layer(model)
        self.graph: Any = None
        if engine in ("graph", "compile"):
            self._capture()

    def _body(self) -> None:
        logits = self.model.decode(self.tok, self.pos, self.cache, self.layer_fn, self.attn)
        if self.keep:
            if self.logits is None:
                self.logits = logits.clone()
            else:
                self.logits.copy_(logits)
        self.tok.copy_(logits.argmax(-1, keepdim=True))
        self.pos.add_(1)

    def _capture(self) -> None:
        import torch

        tok0, pos0 = self.tok.clone(), self.pos.clone()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):  # warm-up: compilation, cuBLAS handles, the logits buffer
                self._body()
        torch.cuda.current_stream().wait_stream(side)
        # The warm-up wrote the cache at positions start, start+1; decoding from `start`
        # again overwrites them before they are read (later positions are masked).
        self.tok.copy_(tok0)
        self.pos.copy_(pos0)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self._body()

    def step(self) -> None:
        if self.graph is not None:
            self.graph.replay()
        else:
            self._body()


# ---------------------------------------------------------------------- measuring


def _measure_bandwidth(tdev: torch.device, nbytes: int) -> float | None:
    """Device-to-device copy rate in GB/s (bytes read + written), or None without room."""
    import torch

    from rigbench.bench.timing import synchronize, time_iterations

    if tdev.type == "cuda":
        free, _ = torch.cuda.mem_get_info(tdev)
        if 2 * nbytes > 0.5 * free:
            return None
    src = torch.randn(nbytes // 4, device=tdev)
    dst = torch.empty_like(src)
    # The ceiling must not depend on the state the step found the GPU in: after a few
    # warm-up copies an idle H100 still copied at 2.59 TB/s in one step and 3.0 in another,
    # so the same ~2.2 TB/s of decode read as 0.80 and 0.69 of its ceiling
    # (benchmarks/2026-12-06-h100-1gpu.md). Copy for BW_WARM_S first, as the memory
    # benchmark's clocks are by then, and take the fast quartile of 40 copies.
    t_end = time.monotonic() + (BW_WARM_S if tdev.type == "cuda" else 0.0)
    while True:
        dst.copy_(src)
        synchronize(tdev)
        if time.monotonic() >= t_end:
            break
    seconds = sorted(time_iterations(lambda: dst.copy_(src), tdev, warmup=2, repeats=40))
    if not torch.equal(src, dst):
        raise RuntimeError("the bandwidth probe's copy came out wrong")
    return 2 * nbytes / seconds[len(seconds) // 4] / 1e9


def check_against_reference(
    model: LlamaModel,
    engine: str,
    seed: int,
    precision: str,
    attn: str = "sdpa",
    length: int | None = None,
) -> tuple[float, str | None]:
    """Greedy generation through `engine` against the plain reference: (the largest
    relative logits error, failure or None). `length`: the cache's (positions past the
    check masked), that of the batch-1 measurement so a compiled layer serves both."""
    import torch

    g = torch.Generator(device=model.device).manual_seed(seed)
    prompt = torch.randint(
        model.cfg.vocab_size, (1, CHECK_PROMPT), generator=g, device=model.device
    )
    length = max(length or 0, CHECK_PROMPT + CHECK_TOKENS + CACHE_ALIGN)
    cache = model.new_cache(1, length)
    first = model.prefill(prompt, cache, slice(0, 1)).float()
    got = [first[0]]
    chosen = [int(first[0].argmax())]
    dec = Decoder(model, cache, first.argmax(-1), CHECK_PROMPT, engine, attn=attn, keep_logits=True)
    for _ in range(CHECK_TOKENS - 1):
        dec.step()
        assert dec.logits is not None
        got.append(dec.logits[0].clone())
        chosen.append(int(dec.logits[0].argmax()))
    seq = torch.cat([prompt[0], torch.tensor(chosen[:-1], device=model.device)])
    ref = model.reference_logits(seq.view(1, -1))[0, CHECK_PROMPT - 1 :]
    worst = 0.0
    for i, (mine, want) in enumerate(zip(got, ref, strict=True)):
        if not bool(torch.isfinite(mine).all()):
            return math.inf, f"decode step {i}: non-finite logits"
        diff = float((mine - want).abs().max())
        err = float(torch.linalg.vector_norm(mine - want) / torch.linalg.vector_norm(want))
        worst = max(worst, err)
        if not err <= CHECK_TOL[precision]:
            return err, (
                f"decode step {i}: logits differ from the reference by {err:.3g} "
                f"(relative; tolerance {CHECK_TOL[precision]:g})"
            )
        gap = float(want.max() - want[chosen[i]])
        if gap > 2 * diff:
            return err, (
                f"decode step {i}: chose token {chosen[i]}, {gap:.3g} under the reference's "
                f"best {int(want.argmax())} (logits differ by at most {diff:.3g})"
            )
    return worst, None


def _sync(tdev: torch.device) -> None:
    import torch

    if tdev.type == "cuda":
        torch.cuda.synchronize(tdev)


def _prefill_all(model: LlamaModel, prompts: torch.Tensor, cache: Any) -> torch.Tensor:
    b, p = prompts.shape
    rows_per = max(1, PREFILL_TOKENS // p)
    last = []
    for r0 in range(0, b, rows_per):
        rows = slice(r0, min(b, r0 + rows_per))
        last.append(model.prefill(prompts[rows], cache, rows))
    import torch

    return torch.cat(last)


def _cache_length(p: int, n_tokens: int) -> int:
    return CACHE_ALIGN * math.ceil((p + n_tokens + DECODE_WARMUP + 2) / CACHE_ALIGN)


def _measure_batch(
    model: LlamaModel,
    tdev: torch.device,
    p: int,
    b: int,
    engine: str,
    attn: str,
    seed: int,
    n_tokens: int,
) -> dict[str, Any]:
    import torch

    from rigbench.bench.timing import device_clock

    mark, elapsed = device_clock(tdev)
    g = torch.Generator(device=tdev).manual_seed(seed)
    prompts = torch.randint(model.cfg.vocab_size, (b, p), generator=g, device=tdev)
    length = _cache_length(p, n_tokens)
    cache = model.new_cache(b, length)
    model.ensure_rope(length)
    prefill_s = []
    for _ in range(PREFILL_REPEATS[tdev.type == "cuda"]):
        t0 = mark()
        last = _prefill_all(model, prompts, cache)
        t1 = mark()
        _sync(tdev)
        prefill_s.append(elapsed(t0, t1))
    dec = Decoder(model, cache, last.argmax(-1), p, engine, attn=attn)
    for _ in range(DECODE_WARMUP):
        dec.step()
    window_t0 = time.monotonic()
    marks = [mark()]
    for _ in range(n_tokens):
        dec.step()
        marks.append(mark())
    _sync(tdev)
    window = [window_t0, time.monotonic()]  # the timed decode, for the conditions
    step_s = [elapsed(a, b2) for a, b2 in zip(marks, marks[1:], strict=False)]
    tokens = dec.tok.view(-1)
    if not bool(((tokens >= 0) & (tokens < model.cfg.vocab_size)).all()):
        raise RuntimeError("decode produced token ids outside the vocabulary")
    out = {
        "prefill_s": prefill_s,
        "step_s": step_s,
        "cache_length": length,
        "mean_context": p + DECODE_WARMUP + n_tokens / 2,
        "window": window,
    }
    if tdev.type == "cuda" and b == 1 and engine == "graph":
        # The other attention, same cache and engine (no recompilation): a comparison.
        alt = ATTNS[1 - ATTNS.index(attn)]
        dec = Decoder(model, cache, last.argmax(-1), p, engine, attn=alt)
        for _ in range(DECODE_WARMUP):
            dec.step()
        marks = [mark()]
        for _ in range(n_tokens):
            dec.step()
            marks.append(mark())
        _sync(tdev)
        alt_s = statistics.median(elapsed(a, b2) for a, b2 in zip(marks, marks[1:], strict=False))
        out["attn_alt"] = alt
        out["attn_alt_tokens_per_s"] = 1 / alt_s
    return out


def _eager_rate(model: LlamaModel, tdev: torch.device, p: int, attn: str, seed: int) -> float:
    """Batch-1 decode tokens/s with every kernel launched from Python (GPU comparison)."""
    import torch

    from rigbench.bench.timing import device_clock

    mark, elapsed = device_clock(tdev)
    g = torch.Generator(device=tdev).manual_seed(seed)
    prompts = torch.randint(model.cfg.vocab_size, (1, p), generator=g, device=tdev)
    cache = model.new_cache(1, CACHE_ALIGN * math.ceil((p + EAGER_TOKENS + 4) / CACHE_ALIGN))
    last = model.prefill(prompts, cache, slice(0, 1))
    dec = Decoder(model, cache, last.argmax(-1), p, "eager", attn=attn)
    dec.step()
    t0 = mark()
    for _ in range(EAGER_TOKENS):
        dec.step()
    t1 = mark()
    _sync(tdev)
    return EAGER_TOKENS / elapsed(t0, t1)


def run(ctx: BenchContext, step: Step) -> Iterator[Result]:
    import torch

    from rigbench.bench.models.llama import SIZES, LlamaModel

    dev = ctx.device(step.devices[0])
    tdev = torch.device(dev.torch_device)
    on_cuda = tdev.type == "cuda"
    size = str(step.params["model"])
    p = int(step.params["context"])
    engine = str(step.params["engine"])
    attn = str(step.params.get("attn", ATTNS[0]))
    cfg = SIZES[size]
    labels = [dev.label]
    if on_cuda:
        torch.cuda.set_device(tdev)
        precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    else:
        precision = "fp32"
        torch.set_num_threads(os.cpu_count() or 1)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[precision]
    seed = (ctx.seed * 1_000_003 + zlib.crc32(step.key.encode())) % (2**31)
    base: dict[str, Any] = {
        "model": size,
        "context": p,
        "engine": engine,
        "attn": attn,
        "precision": precision,
        "layers": cfg.n_layers,
        "width": cfg.dim,
        "heads": cfg.n_heads,
        "kv_heads": cfg.n_kv_heads,
        "vocab": cfg.vocab_size,
    }
    with torch.inference_mode():
        bw = _measure_bandwidth(tdev, BW_BYTES[on_cuda])
        model = LlamaModel(cfg, dtype=dtype, device=tdev, seed=seed)
        base["n_params"] = model.matmul_params()
        n_tokens = DECODE_TOKENS[on_cuda]
        err, wrong = check_against_reference(
            model, engine, seed + 1, precision, attn, _cache_length(p, n_tokens)
        )
        base["check_rel_error"] = err if math.isfinite(err) else None
        catalog_bw = dev.peak_memory_bandwidth
        peak = dev.peak_tflops.get(precision)
        if bw is not None:
            bw_basis = f"measured device copy {bw:.0f} GB/s (read + write)"
        elif catalog_bw is not None:
            bw, bw_basis = catalog_bw.value, catalog_bw.basis
        else:
            bw_basis = ""
        eager_rate = None
        for b in step.params["batches"]:
            b = int(b)
            params = {**base, "batch": b}
            need = model.kv_bytes_per_token() * b * (p + n_tokens + 2 * CACHE_ALIGN)
            if on_cuda:
                # Prefill scratch: the MLP's gate/up/hidden of one forward pass.
                tokens = min(b * p, max(p, PREFILL_TOKENS))
                need += tokens * cfg.ffn_dim * 2 * dtype.itemsize * 3
                free, _ = torch.cuda.mem_get_info(tdev)
                if need > MEMORY_HEADROOM * free:
                    for metric in ("prefill_tokens_per_s", "decode_tokens_per_s"):
                        yield Result.failure(
                            NAME,
                            metric,
                            "tokens/s",
                            f"batch {b} at context {p} needs ~{need / 2**30:.1f} GiB, "
                            f"{free / 2**30:.1f} GiB free",
                            devices=labels,
                            params=params,
                            status="skipped",
                        )
                    continue
            try:
                m = _measure_batch(model, tdev, p, b, engine, attn, seed + b, n_tokens)
            except torch.cuda.OutOfMemoryError:
                torch.cuda.empty_cache()
                for metric in ("prefill_tokens_per_s", "decode_tokens_per_s"):
                    yield Result.failure(
                        NAME,
                        metric,
                        "tokens/s",
                        f"out of memory at batch {b}, context {p}",
                        devices=labels,
                        params=params,
                        status="skipped",
                    )
                continue
            if on_cuda and b == 1 and engine != "eager":
                eager_rate = _eager_rate(model, tdev, p, attn, seed)
            for r in _results(model, dev, params, m, bw, bw_basis, peak, b, p, eager_rate):
                if wrong is not None:
                    r = Result.failure(
                        NAME,
                        r.metric,
                        r.unit,
                        f"wrong output: {wrong}",
                        devices=labels,
                        params={**r.params, "measured": r.value},
                    )
                yield r
            del m
            if on_cuda:
                torch.cuda.empty_cache()
        del model
    _COMPILED.clear()  # it holds the model
    if on_cuda:
        torch.cuda.empty_cache()


def _results(
    model: LlamaModel,
    dev: BenchDevice,
    params: dict[str, Any],
    m: dict[str, Any],
    bw: float | None,
    bw_basis: str,
    peak: Any,
    b: int,
    p: int,
    eager_rate: float | None,
) -> list[Result]:
    cfg = model.cfg
    labels = [dev.label]
    n = model.matmul_params()
    width = cfg.n_heads * cfg.head_dim
    prefill = [b * p / t for t in m["prefill_s"] if t > 0]
    pf_fpt = prefill_flops_per_token(n, cfg.n_layers, width, p)
    pf_peak = peak.value * 1e12 / pf_fpt if peak else None
    out = [
        Result(
            benchmark=NAME,
            metric="prefill_tokens_per_s",
            value=statistics.median(prefill),
            unit="tokens/s",
            params={**params, "flops_per_token": pf_fpt},
            devices=labels,
            spread=summarize(prefill),
            peak=pf_peak,
            basis=(
                f"compute ceiling {peak.value:g} TFLOP/s / (2·N + 2·L·H·D·P) = "
                f"{pf_fpt / 1e9:.3g} GFLOP a token; {peak.basis}"
                if peak
                else None
            ),
        )
    ]
    decode = [b / t for t in m["step_s"] if t > 0]
    t_step = statistics.median(m["step_s"])
    ctx_mean = m["mean_context"]
    wbytes = model.weight_bytes_per_step(b)
    kvt = model.kv_bytes_per_token()
    dparams: dict[str, Any] = {
        **params,
        "decode_tokens": len(m["step_s"]),
        "step_ms_p50": t_step * 1e3,
        "weight_bytes": wbytes,
        "kv_bytes": b * kvt * ctx_mean,
        "kv_bytes_allocated": b * kvt * m["cache_length"],
        "bandwidth_gbs": bw,
        "achieved_gbs": (wbytes + b * kvt * ctx_mean) / t_step / 1e9,
    }
    if "window" in m:
        dparams["window_t0"], dparams["window_t1"] = (float(t) for t in m["window"])
    if eager_rate is not None and b == 1:
        dparams["eager_tokens_per_s"] = eager_rate
    if "attn_alt" in m:
        dparams["attn_alt"] = m["attn_alt"]
        dparams["attn_alt_tokens_per_s"] = m["attn_alt_tokens_per_s"]
    expected = basis = None
    if bw:
        flops = decode_flops(n, b, cfg.n_layers, width, ctx_mean)
        expected, bound = decode_ceiling(
            b, wbytes, kvt, ctx_mean, bw, flops, peak.value if peak else None
        )
        dparams["bound"] = bound
        gb = (wbytes + b * kvt * ctx_mean) / 1e9
        basis = (
            f"{bound}-bound ceiling: {b} / max({gb:.3g} GB (weights + k/v at mean context "
            f"{ctx_mean:.0f}) / {bw:.0f} GB/s, FLOPs / peak); {bw_basis}"
        )
    out.append(
        Result(
            benchmark=NAME,
            metric="decode_tokens_per_s",
            value=b / t_step,
            unit="tokens/s",
            params=dparams,
            devices=labels,
            spread=summarize(decode),
            expected=expected,
            basis=basis,
        )
    )
    return out
