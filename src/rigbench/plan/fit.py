"""Will a model fit on a rig: GPU memory per GPU for LLM inference and training.

    from rigbench.plan.fit import fit_inference, fit_training
    plan = fit_inference("deepseek-r1:70b", gpus_gib=[24] * 4, bits_per_weight=4.5,
                         context=60_000, batch=1, kv_dtype="fp16", parallel="pp",
                         flash_attention=False)
    plan.fits, plan.max_context, plan.to_dict()

Pure arithmetic, no GPU needed. Sizes are GiB (2^30 bytes); a model is a `ModelSpec` (a preset
from `rigbench.catalog.models` or one built from explicit fields) or a preset name.

Inference, per GPU (P params, b bits per weight, L layers, h hidden, a heads, g KV heads, d head
size, V vocabulary, i MLP width, T context tokens, B sequences):

* weights: `P × b / 8` bytes in all, embeddings and output head included (the whole model at
  one average bits per weight; for a GGUF file, `file bytes × 8 / P` is its true average).
* KV cache: `2 × g × d × tokens(l) × B × e` bytes for each layer l it holds, summed; the 2 is
  K and V, `tokens(l) = min(T, window)` on a sliding-window layer and T otherwise, and e the
  bytes per element of the cache dtype (`KV_BYTES_PER_ELEMENT`: fp16 2, fp8 1, llama.cpp
  q8_0 34/32 and q4_0 18/32 — 32 values plus one fp16 scale per block). Llama 3 70B at 8192
  tokens, fp16: `2 × 80 × 8 × 128 × 8192 × 2` = 2.5 GiB.
* activations and workspace (an estimate, not a measurement): the largest buffers of one
  prefill chunk of `u = min(prefill_chunk, T × B)` tokens, fp32 as llama.cpp keeps them:
  `4 × u × (4h + 3 × i_local)` bytes (i_local = i × experts per token / tp; 4h when i is
  unknown), plus the logits of the B sequences being sampled `4 × B × V_local` on a GPU that
  holds the output head, plus without flash attention the attention scores of one chunk,
  `4 × u × tokens × a_local` bytes — what llama.cpp (and Ollama, which reserves it on every
  GPU) materialises when flash attention is off; flash attention never does.
* CUDA context: `cuda_context_gib`, 0.5 GiB per GPU by default — an assumption (the driver's
  context, cuBLAS workspace and allocator slack vary from ~0.3 to ~1 GiB).

Split over the GPUs:

* `tp` (tensor parallel, vLLM `--tensor-parallel-size n`): every GPU holds every layer with
  `a / n` query heads; weights `(P − K) / n + K × g_local / g` where K are the K/V projection
  weights; `g_local = g / n` KV heads, or 1 when `g < n` (each KV head is then replicated on
  `n / g` GPUs). The heads must divide: `a % n == 0` and `g % n == 0` or `n % g == 0`.
* `pp` (pipeline / layer split, llama.cpp and Ollama's default across GPUs): each GPU holds a
  run of whole layers; by default in proportion to its memory (one layer each, then the rest
  split by largest remainder), or as `layer_split` gives. The first GPU also holds the input
  embeddings `V × h`, the last the output head `V × h` (a tied head is a second copy).
* `none`: every GPU holds the whole model (one GPU, or data-parallel replicas that each serve
  B sequences).

Training, per GPU (n GPUs, s sequence tokens, m micro-batch), mixed-precision Adam:

* full fine-tune: 16 bytes per parameter — bf16 weights 2 + bf16 gradients 2 + fp32 master
  weights 4 + Adam's two fp32 moments 8 (the classic 2 + 2 + 12 of ZeRO, Rajbhandari et al.
  2020).
* LoRA: frozen bf16 base `2P` + adapters of `r × (in + out)` parameters per targeted linear
  module per layer, kept in fp32 with Adam: 16 bytes per adapter parameter (weights 4,
  gradients 4, moments 8). No gradients or optimizer state for the base.
* QLoRA: the base's transformer blocks in 4-bit NF4 with double-quantised constants,
  `4 + 8/64 + 32/(64 × 256)` = 4.127 bits per parameter (an 8-bit absmax per 64 weights and
  an fp32 constant per 256 of those); embeddings and output head stay bf16; adapters as LoRA.
* sharding: `ddp` replicates everything; `zero1` divides the optimizer state by n, `zero2`
  also the gradients, `fsdp` (= ZeRO-3) also the weights, and then each GPU also gathers the
  full weights of two layers at a time (the one computing and the one prefetched) and, for a
  full fine-tune, one layer's full gradients before they are reduce-scattered.
* activations (an estimate), per GPU, after Korthikanti et al. 2022, "Reducing Activation
  Recomputation in Large Transformer Models" (arXiv:2205.05198): a layer keeps
  `s × m × h × (34 + 5 × a × s / h)` bytes for its backward pass with 16-bit activations; the
  `5as²m` attention-score term is gone with flash attention. With gradient checkpointing only
  each layer's bf16 input `2 × s × m × h` is kept, plus one layer's full set while it is
  recomputed. The logits add `8 × s × m × V` (fp32 logits and their gradient; a fused or
  chunked cross-entropy avoids most of it). The 34 is for a GPT block; Llama blocks (no
  dropout, a wider gated MLP) differ by tens of percent either way.
* CUDA context as for inference.

`fits` means every GPU's total is within its capacity; `max_context` is the largest context (or
training sequence length) that still fits with everything else unchanged, at most the model's
`max_context` when it is known.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Literal

from rigbench.catalog.models import LINEAR_MODULES, ModelSpec, get_model
from rigbench.errors import BadInput

__all__ = [
    "CUDA_CONTEXT_GIB",
    "KV_BYTES_PER_ELEMENT",
    "LINEAR_MODULES",
    "PARALLELISMS",
    "QLORA_BITS_PER_PARAM",
    "SHARDINGS",
    "TRAINING_MODES",
    "WEIGHT_FORMAT_BITS",
    "FitPlan",
    "GpuPlacement",
    "ModelSpec",
    "bits_per_weight_of",
    "default_layer_split",
    "fit_inference",
    "fit_training",
    "get_model",
    "kv_bytes_per_element",
    "kv_cache_bytes",
    "lora_adapter_params",
]

GIB = 1024**3

CUDA_CONTEXT_GIB = 0.5
"""Assumed per GPU for the CUDA context, cuBLAS workspace and allocator slack."""

PREFILL_CHUNK = 512
"""Tokens processed at once during prefill (llama.cpp's default n_ubatch)."""

# Largest context the max-context search tries for a model whose max_context is unknown.
_CONTEXT_SEARCH_LIMIT = 1 << 21

KV_BYTES_PER_ELEMENT: Mapping[str, float] = MappingProxyType(
    {
        "fp32": 4.0,
        "fp16": 2.0,
        "bf16": 2.0,
        "fp8": 1.0,  # vLLM --kv-cache-dtype fp8 (e4m3 or e5m2)
        # llama.cpp block formats (--cache-type-k/-v): bytes per block of 32 values / 32
        "q8_0": 34 / 32,  # 32 int8 + one fp16 scale
        "q5_1": 24 / 32,  # 32 × 5 bits + fp16 scale + fp16 min
        "q5_0": 22 / 32,  # 32 × 5 bits + fp16 scale
        "q4_1": 20 / 32,  # 32 × 4 bits + fp16 scale + fp16 min
        "q4_0": 18 / 32,  # 32 × 4 bits + one fp16 scale
        "iq4_nl": 18 / 32,
    }
)
_KV_ALIASES: Mapping[str, str] = MappingProxyType(
    {
        "f32": "fp32",
        "float32": "fp32",
        "f16": "fp16",
        "float16": "fp16",
        "half": "fp16",
        "bfloat16": "bf16",
        "fp8_e4m3": "fp8",
        "fp8_e5m2": "fp8",
    }
)

WEIGHT_FORMAT_BITS: Mapping[str, float] = MappingProxyType(
    {
        "fp32": 32.0,
        "fp16": 16.0,
        "bf16": 16.0,
        "fp8": 8.0,
        "int8": 8.0,
        "int4": 4.0,
        # llama.cpp whole-tensor block formats: bytes per block × 8 / values per block
        "q8_0": 8.5,  # 34 bytes / 32
        "q5_1": 6.0,  # 24 bytes / 32
        "q5_0": 5.5,  # 22 bytes / 32
        "q4_1": 5.0,  # 20 bytes / 32
        "q4_0": 4.5,  # 18 bytes / 32
        "q2_k": 2.625,  # 84 bytes / 256
        # llama.cpp K-quant mixes (some tensors kept at a higher type): file size x 8 / params
        # of Llama-3-8B (8.03e9) from llama-quantize's table (tools/quantize/quantize.cpp,
        # QUANT_OPTIONS: Q3_K_S 3.41G, Q3_K_M 3.74G, Q3_K_L 4.03G, Q4_K_S 4.37G, Q4_K_M
        # 4.58G, Q5_K_S 5.21G, Q5_K_M 5.33G, Q6_K 6.14G; G = GiB). "q3_k", "q4_k" and "q5_k"
        # are llama-quantize's aliases of the _M mixes.
        "q3_k_s": 3.65,
        "q3_k_m": 4.0,
        "q3_k": 4.0,
        "q3_k_l": 4.31,
        "q4_k_s": 4.68,
        "q4_k_m": 4.9,
        "q4_k": 4.9,
        "q5_k_s": 5.57,
        "q5_k_m": 5.7,
        "q5_k": 5.7,
        "q6_k": 6.57,
        # bitsandbytes NF4 with double-quantised constants (QLoRA)
        "nf4": 4 + 8 / 64 + 32 / (64 * 256),
    }
)
"""Bits per weight of whole-tensor formats and llama.cpp's K-quant mixes (measured on a
Llama-3-8B file; larger models land slightly lower: a 70B Q4_K_M is ~4.85)."""

QLORA_BITS_PER_PARAM = WEIGHT_FORMAT_BITS["nf4"]

PARALLELISMS: tuple[str, ...] = ("tp", "pp", "none")
TRAINING_MODES: tuple[str, ...] = ("full", "lora", "qlora")
SHARDINGS: tuple[str, ...] = ("fsdp", "zero2", "zero1", "ddp")

# Bytes per parameter of a full fine-tune with bf16 mixed-precision Adam.
_FULL_WEIGHT_BYTES = 2.0
_FULL_GRAD_BYTES = 2.0
_FULL_OPTIMIZER_BYTES = 12.0  # fp32 master 4 + Adam m 4 + Adam v 4
# LoRA adapters in fp32 (PEFT's default) with Adam.
_ADAPTER_WEIGHT_BYTES = 4.0
_ADAPTER_GRAD_BYTES = 4.0
_ADAPTER_OPTIMIZER_BYTES = 8.0
_BASE_BF16_BYTES = 2.0
# Korthikanti et al. 2022: per-layer activation bytes s·b·h·(34 + 5·a·s/h), 16-bit.
_ACT_LINEAR = 34
_ACT_SCORES = 5
_LOGIT_BYTES = 8  # fp32 logits and their gradient, per logit
# CPU offload choices for training: "optimizer" keeps the optimizer state (fp32 master and
# Adam moments) in host memory and steps it there (DeepSpeed ZeRO-Offload, Ren et al. 2021,
# arXiv:2101.06840); "all" keeps parameters, gradients and optimizer state in host memory and
# brings each layer in as it runs (PyTorch FSDP CPUOffload(offload_params=True)).
CPU_OFFLOADS: tuple[str, ...] = ("none", "optimizer", "all")
# A chunked cross-entropy computes the fp32 logits a chunk of tokens at a time (torchtune's
# CEWithChunkedOutputLoss, 8 chunks by default).
LOSS_CHUNKS = 8


# ----------------------------------------------------------------------------- records


@dataclass(frozen=True, slots=True, kw_only=True)
class GpuPlacement:
    """What one GPU holds. GiB throughout; components that do not apply are 0."""

    gpu: int
    """Index in the `gpus_gib` list."""
    capacity_gib: float
    layers: tuple[int, int]
    """Transformer layers held, as [first, stop): (0, L) unless pipeline-split."""
    embeddings: bool
    """Holds the input embedding matrix."""
    output_head: bool
    """Holds the output head (the LM head computing logits)."""
    kv_heads: int
    """KV heads cached per layer on this GPU (inference; 0 in training)."""
    weights_gib: float
    """Model weights (training: the local shard, adapters included)."""
    kv_cache_gib: float = 0.0
    gradients_gib: float = 0.0
    optimizer_gib: float = 0.0
    activations_gib: float
    """Inference: prefill workspace (estimate). Training: stored activations (estimate)."""
    overhead_gib: float
    """CUDA context (assumption), plus FSDP's gathered layers when sharded."""

    @property
    def total_gib(self) -> float:
        return (
            self.weights_gib
            + self.kv_cache_gib
            + self.gradients_gib
            + self.optimizer_gib
            + self.activations_gib
            + self.overhead_gib
        )

    @property
    def margin_gib(self) -> float:
        """Capacity left over; negative when it does not fit."""
        return self.capacity_gib - self.total_gib

    @property
    def fits(self) -> bool:
        return self.total_gib <= self.capacity_gib

    def to_dict(self) -> dict[str, Any]:
        return {
            "gpu": self.gpu,
            "capacity_gib": _r(self.capacity_gib),
            "layers": list(self.layers),
            "embeddings": self.embeddings,
            "output_head": self.output_head,
            "kv_heads": self.kv_heads,
            "weights_gib": _r(self.weights_gib),
            "kv_cache_gib": _r(self.kv_cache_gib),
            "gradients_gib": _r(self.gradients_gib),
            "optimizer_gib": _r(self.optimizer_gib),
            "activations_gib": _r(self.activations_gib),
            "overhead_gib": _r(self.overhead_gib),
            "total_gib": _r(self.total_gib),
            "margin_gib": _r(self.margin_gib),
            "fits": self.fits,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class FitPlan:
    """Where a model's memory goes on each GPU, whether it fits, and the largest context that
    would. `to_dict()` is the machine-readable form (`plan --json`)."""

    kind: str
    """"inference" or "training"."""
    model: str
    """The model's catalog id."""
    model_name: str
    settings: Mapping[str, Any]
    """The inputs, resolved (bits per weight, context, batch, KV dtype, split, ...)."""
    placements: tuple[GpuPlacement, ...]
    max_context: int
    """Largest context (training: sequence length) that fits, all else equal; 0 if none."""
    max_context_limit: str
    """What bounds `max_context`: "memory", or "model" (its max_context was reached)."""
    notes: tuple[str, ...] = field(default=())
    """The totals behind the numbers and the assumptions that apply to this plan."""

    @property
    def total_gib(self) -> float:
        return sum(p.total_gib for p in self.placements)

    @property
    def capacity_gib(self) -> float:
        return sum(p.capacity_gib for p in self.placements)

    @property
    def margin_gib(self) -> float:
        """The smallest per-GPU margin: the GPU that decides whether it fits."""
        return min(p.margin_gib for p in self.placements)

    @property
    def fits(self) -> bool:
        return all(p.fits for p in self.placements)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "model": self.model,
            "model_name": self.model_name,
            "settings": dict(self.settings),
            "fits": self.fits,
            "total_gib": _r(self.total_gib),
            "capacity_gib": _r(self.capacity_gib),
            "margin_gib": _r(self.margin_gib),
            "max_context": self.max_context,
            "max_context_limit": self.max_context_limit,
            "gpus": [p.to_dict() for p in self.placements],
            "notes": list(self.notes),
        }


def _r(gib: float) -> float:
    return round(gib, 3)


# ----------------------------------------------------------------------------- inputs


def _resolve_model(model: ModelSpec | str) -> ModelSpec:
    if isinstance(model, ModelSpec):
        return model
    if isinstance(model, str):
        return get_model(model)
    raise BadInput(f"model must be a ModelSpec or a preset name, got {type(model).__name__}")


def _choice(what: str, value: str, allowed: Sequence[str]) -> str:
    if value in allowed:
        return value
    close = difflib.get_close_matches(str(value), list(allowed), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise BadInput(f"{what} {value!r} is not one of {', '.join(allowed)}{hint}")


def _positive_int(what: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadInput(f"{what} must be a positive integer, got {value!r}")
    return value


def _capacities(gpus_gib: Sequence[float]) -> list[float]:
    caps = list(gpus_gib)
    if not caps:
        raise BadInput("gpus_gib: give the memory of at least one GPU")
    for i, cap in enumerate(caps):
        if isinstance(cap, bool) or not isinstance(cap, (int, float)) or not cap > 0:
            raise BadInput(f"gpus_gib[{i}] must be a positive number of GiB, got {cap!r}")
    return [float(c) for c in caps]


def bits_per_weight_of(value: float | str) -> float:
    """Bits per weight from a number (16, 8, 5.5, 4.5, ...) or a format name in
    `WEIGHT_FORMAT_BITS` ("bf16", "q4_0", "q4_k", "nf4", ...; case-insensitive)."""
    if isinstance(value, str):
        key = value.strip().casefold()
        if key in WEIGHT_FORMAT_BITS:
            return WEIGHT_FORMAT_BITS[key]
        _choice("weight format", key, tuple(WEIGHT_FORMAT_BITS))
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 32:
        raise BadInput(f"bits_per_weight must be a number in (0, 32], got {value!r}")
    return float(value)


def kv_bytes_per_element(kv_dtype: str) -> float:
    """Bytes per cached K or V value for a cache dtype (`KV_BYTES_PER_ELEMENT`, or an alias
    such as "f16", "float16", "fp8_e4m3")."""
    key = str(kv_dtype).strip().casefold()
    key = _KV_ALIASES.get(key, key)
    return KV_BYTES_PER_ELEMENT[_choice("kv_dtype", key, tuple(KV_BYTES_PER_ELEMENT))]


# ----------------------------------------------------------------------------- formulas


def kv_cache_bytes(
    model: ModelSpec | str,
    *,
    context: int,
    batch: int = 1,
    kv_dtype: str = "fp16",
    layers: range | None = None,
    kv_heads: int | None = None,
) -> float:
    """KV cache bytes: the sum over `layers` (default all) of
    `2 × kv_heads × head_dim × tokens(layer) × batch × bytes_per_element`, where tokens is
    `min(context, sliding_window)` on a sliding-window layer and `context` otherwise.
    `kv_heads` defaults to the model's (pass the per-GPU count under tensor parallelism)."""
    spec = _resolve_model(model)
    _positive_int("context", context)
    _positive_int("batch", batch)
    heads = spec.kv_heads if kv_heads is None else kv_heads
    per_token = 2 * heads * spec.head_dim * batch * kv_bytes_per_element(kv_dtype)
    span = range(spec.layers) if layers is None else layers
    return float(sum(per_token * spec.cached_tokens(layer, context) for layer in span))


def default_layer_split(layers: int, capacities: Sequence[float]) -> list[int]:
    """Default pipeline split: one layer per GPU, then the remaining `layers − n` in
    proportion to each GPU's memory, by largest remainder (ties to the earlier GPU)."""
    n = len(capacities)
    if n > layers:
        raise BadInput(f"pipeline split: {n} GPUs but only {layers} layers")
    total = sum(capacities)
    rest = layers - n
    quotas = [rest * c / total for c in capacities]
    counts = [1 + math.floor(q) for q in quotas]
    left = layers - sum(counts)
    order = sorted(range(n), key=lambda i: (-(quotas[i] - math.floor(quotas[i])), i))
    for i in order[:left]:
        counts[i] += 1
    return counts


def lora_adapter_params(
    model: ModelSpec | str, *, rank: int, targets: Sequence[str] = LINEAR_MODULES
) -> int:
    """LoRA adapter parameters: for each targeted linear module of every layer,
    `rank × (in_features + out_features)` (matrices A and B), times the experts for an MoE's
    MLP. Targets: q, k, v, o, gate, up, down (default: all, as in the QLoRA paper)."""
    spec = _resolve_model(model)
    _positive_int("lora_rank", rank)
    shapes = spec.linear_shapes()
    chosen = list(dict.fromkeys(targets))
    if not chosen:
        raise BadInput("lora targets: name at least one module")
    total = 0
    for module in chosen:
        _choice("lora target", module, LINEAR_MODULES)
        if module not in shapes:
            raise BadInput(
                f"model {spec.name!r}: LoRA on {module!r} needs the MLP width (intermediate)"
            )
        d_in, d_out, copies = shapes[module]
        total += rank * (d_in + d_out) * copies
    return total * spec.layers


def _max_context(fits_at: Callable[[int], bool], limit: int) -> int:
    """Largest c in [1, limit] with fits_at(c), 0 if none; fits_at must be monotone."""
    if not fits_at(1):
        return 0
    lo, hi = 1, limit
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits_at(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def _context_limit(spec: ModelSpec) -> int:
    return spec.max_context or _CONTEXT_SEARCH_LIMIT


# ----------------------------------------------------------------------------- inference


@dataclass(frozen=True, slots=True)
class _Inference:
    spec: ModelSpec
    caps: tuple[float, ...]
    bits: float
    batch: int
    kv_b: float
    parallel: str
    split: tuple[int, ...]
    flash: bool
    chunk: int
    context_gib: float

    def workspace_bytes(self, *, u: int, tokens: int, heads: int, tp: int, head: bool) -> float:
        """Estimate, fp32: `4u(4h + 3i/tp)` + logits `4BV/tp` on a GPU with the head +
        (no flash attention) scores `4u × tokens × heads`."""
        spec = self.spec
        inter = spec.intermediate * spec.experts_per_token if spec.intermediate else 4 * spec.hidden
        act = 4 * u * (4 * spec.hidden + 3 * inter / tp)
        scores = 0 if self.flash else 4 * u * tokens * heads
        logits = 4 * self.batch * spec.vocab / tp if head else 0
        return act + scores + logits

    def placements(self, context: int) -> tuple[GpuPlacement, ...]:
        """Every GPU's share at `context` tokens (formulas: module docstring)."""
        spec, n = self.spec, len(self.caps)
        u = min(self.chunk, context * self.batch)
        weight_b = self.bits / 8
        every = range(spec.layers)
        if self.parallel in ("tp", "none"):
            tp = n if self.parallel == "tp" else 1
            kv_local = spec.kv_heads // tp if spec.kv_heads >= tp else 1
            k_params = spec.kv_proj_params * spec.layers
            params = (spec.params - k_params) / tp + k_params * kv_local / spec.kv_heads
            tokens = max(spec.cached_tokens(layer, context) for layer in every)
            work = self.workspace_bytes(
                u=u, tokens=tokens, heads=spec.heads // tp, tp=tp, head=True
            )
            share = GpuPlacement(
                gpu=0,
                capacity_gib=self.caps[0],
                layers=(0, spec.layers),
                embeddings=True,
                output_head=True,
                kv_heads=kv_local,
                weights_gib=params * weight_b / GIB,
                kv_cache_gib=self._kv(context, every, kv_local) / GIB,
                activations_gib=work / GIB,
                overhead_gib=self.context_gib,
            )
            return tuple(
                replace(share, gpu=gpu, capacity_gib=cap) for gpu, cap in enumerate(self.caps)
            )
        # pp: runs of whole layers; embeddings on the first GPU, the output head on the last
        out: list[GpuPlacement] = []
        start = 0
        embed = spec.vocab * spec.hidden
        for gpu, (cap, count) in enumerate(zip(self.caps, self.split, strict=True)):
            span = range(start, start + count)
            first, last = gpu == 0, gpu == n - 1
            params = count * spec.layer_params
            if first:
                params += embed
            if last and not (first and spec.tie_embeddings):
                params += embed
            tokens = max(spec.cached_tokens(layer, context) for layer in span)
            work = self.workspace_bytes(u=u, tokens=tokens, heads=spec.heads, tp=1, head=last)
            out.append(
                GpuPlacement(
                    gpu=gpu,
                    capacity_gib=cap,
                    layers=(span.start, span.stop),
                    embeddings=first,
                    output_head=last,
                    kv_heads=spec.kv_heads,
                    weights_gib=params * weight_b / GIB,
                    kv_cache_gib=self._kv(context, span, spec.kv_heads) / GIB,
                    activations_gib=work / GIB,
                    overhead_gib=self.context_gib,
                )
            )
            start += count
        return tuple(out)

    def _kv(self, context: int, span: range, kv_heads: int) -> float:
        """`2 × kv_heads × head_dim × tokens(layer) × batch × bytes`, summed over span."""
        spec = self.spec
        per_token = 2 * kv_heads * spec.head_dim * self.batch * self.kv_b
        return float(sum(per_token * spec.cached_tokens(layer, context) for layer in span))


def fit_inference(
    model: ModelSpec | str,
    *,
    gpus_gib: Sequence[float],
    bits_per_weight: float | str = 16,
    context: int = 4096,
    batch: int = 1,
    kv_dtype: str = "fp16",
    parallel: str = "pp",
    layer_split: Sequence[int] | None = None,
    flash_attention: bool = True,
    prefill_chunk: int = PREFILL_CHUNK,
    cuda_context_gib: float = CUDA_CONTEXT_GIB,
) -> FitPlan:
    """Memory per GPU to serve `model` at `context` tokens for `batch` sequences.

    `gpus_gib`: each GPU's memory (GiB). `bits_per_weight`: a number or a format name
    (`WEIGHT_FORMAT_BITS`). `kv_dtype`: a key of `KV_BYTES_PER_ELEMENT`. `parallel`: "tp",
    "pp" or "none" (see the module docstring); `layer_split`: layers per GPU for "pp".
    `flash_attention=False` adds the attention-score buffer llama.cpp and Ollama allocate
    without it. Formulas: module docstring. Raises BadInput for inputs that cannot be."""
    spec = _resolve_model(model)
    caps = _capacities(gpus_gib)
    n = len(caps)
    bits = bits_per_weight_of(bits_per_weight)
    _positive_int("context", context)
    _positive_int("batch", batch)
    _positive_int("prefill_chunk", prefill_chunk)
    kv_b = kv_bytes_per_element(kv_dtype)
    _choice("parallel", parallel, PARALLELISMS)
    if cuda_context_gib < 0:
        raise BadInput(f"cuda_context_gib must not be negative, got {cuda_context_gib!r}")

    split: tuple[int, ...] = ()
    if parallel == "tp":
        if spec.heads % n:
            raise BadInput(
                f"tensor parallel over {n} GPUs: {spec.heads} attention heads of {spec.id} "
                "do not divide evenly; use parallel='pp' or a GPU count that divides them"
            )
        if spec.kv_heads % n and n % spec.kv_heads:
            raise BadInput(
                f"tensor parallel over {n} GPUs: {spec.kv_heads} KV heads of {spec.id} neither "
                f"divide by {n} nor divide it; use parallel='pp'"
            )
    elif parallel == "pp":
        if layer_split is None:
            split = tuple(default_layer_split(spec.layers, caps))
        else:
            split = tuple(layer_split)
            if len(split) != n or any(
                isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in split
            ):
                raise BadInput(f"layer_split must give {n} positive layer counts, got {split!r}")
            if sum(split) != spec.layers:
                raise BadInput(
                    f"layer_split {list(split)} holds {sum(split)} layers; "
                    f"{spec.id} has {spec.layers}"
                )
    elif layer_split is not None:
        raise BadInput("layer_split applies to parallel='pp' only")

    job = _Inference(
        spec=spec,
        caps=tuple(caps),
        bits=bits,
        batch=batch,
        kv_b=kv_b,
        parallel=parallel,
        split=split,
        flash=flash_attention,
        chunk=prefill_chunk,
        context_gib=float(cuda_context_gib),
    )
    settings: dict[str, Any] = {
        "gpus_gib": caps,
        "bits_per_weight": bits,
        "context": context,
        "batch": batch,
        "kv_dtype": str(kv_dtype),
        "kv_bytes_per_element": kv_b,
        "parallel": parallel,
        "layer_split": list(split) or None,
        "flash_attention": flash_attention,
        "prefill_chunk": prefill_chunk,
        "cuda_context_gib": float(cuda_context_gib),
    }
    if isinstance(bits_per_weight, str):
        settings["weight_format"] = bits_per_weight
    return _fit_plan("inference", job, context, settings, _inference_notes(job, context))


def _inference_notes(job: _Inference, context: int) -> list[str]:
    spec, n = job.spec, len(job.caps)
    weights = spec.params * job.bits / 8 / GIB
    kv_token = job._kv(1, range(spec.layers), spec.kv_heads) / job.batch / 2**20
    notes = [
        f"weights: {spec.params:,} params × {job.bits:g} bits / 8 = {weights:.2f} GiB",
        f"KV cache: {kv_token:.3f} MiB per token of one sequence "
        f"(2 × {spec.layers} layers × {spec.kv_heads} KV heads × {spec.head_dim} × "
        f"{job.kv_b:g} bytes), × {context:,} tokens × {job.batch} sequences",
    ]
    if spec.sliding_window is not None:
        count = len(spec.sliding_layers or ())
        notes.append(
            f"sliding window: {count} of {spec.layers} layers cache at most "
            f"{spec.sliding_window:,} tokens"
        )
    if job.parallel == "tp" and spec.kv_heads < n:
        notes.append(
            f"tensor parallel {n} > {spec.kv_heads} KV heads: each GPU caches 1 KV head, "
            f"so the KV cache is replicated {n // spec.kv_heads}×"
        )
    if job.parallel == "none" and n > 1:
        notes.append(f"parallel 'none': each of the {n} GPUs holds a whole replica")
    if spec.is_moe:
        notes.append(
            f"MoE: all {spec.experts} experts are resident ({spec.params:,} params); "
            f"{spec.active_params:,} are active per token, which sets speed, not memory"
        )
    if spec.max_context and context > spec.max_context:
        notes.append(f"context {context:,} is beyond the model's max_context {spec.max_context:,}")
    notes.append(
        "activations/workspace are an estimate: fp32 buffers of one "
        f"{min(job.chunk, context * job.batch)}-token prefill chunk"
        + ("" if job.flash else ", plus its attention scores (no flash attention)")
    )
    if not spec.intermediate:
        notes.append("MLP width unknown: workspace assumes 4 × hidden")
    return notes


def _fit_plan(
    kind: Literal["inference", "training"],
    job: _Inference | _Training,
    context: int,
    settings: dict[str, Any],
    notes: list[str],
) -> FitPlan:
    """`job`'s placements at `context`, the longest context that fits on every GPU, and
    the notes of the job with the ones every fit ends with."""
    spec = job.spec
    placements = job.placements(context)
    limit = _context_limit(spec)
    best = _max_context(lambda c: all(p.fits for p in job.placements(c)), limit)
    notes = [*notes, f"CUDA context: {job.context_gib:g} GiB per GPU (assumption)"]
    worst = min(placements, key=lambda p: p.margin_gib)
    if not worst.fits:
        notes.append(f"GPU {worst.gpu} is short by {-worst.margin_gib:.2f} GiB")
    return FitPlan(
        kind=kind,
        model=spec.id,
        model_name=spec.name,
        settings=MappingProxyType(settings),
        placements=placements,
        max_context=best,
        max_context_limit="model" if best == limit and spec.max_context else "memory",
        notes=tuple(notes),
    )


# ----------------------------------------------------------------------------- training

_SHARD_DIVISORS: Mapping[str, tuple[bool, bool, bool]] = MappingProxyType(
    {  # (weights, gradients, optimizer) divided by the GPU count
        "ddp": (False, False, False),
        "zero1": (False, False, True),
        "zero2": (False, True, True),
        "fsdp": (True, True, True),
    }
)


@dataclass(frozen=True, slots=True)
class _Training:
    spec: ModelSpec
    caps: tuple[float, ...]
    mode: str
    sharding: str
    micro_batch: int
    adapters: int
    checkpointing: bool
    flash: bool
    context_gib: float
    cpu_offload: str = "none"
    activation_offload: bool = False
    chunked_loss: bool = False

    def state_bytes(self) -> tuple[float, float, float, float]:
        """(weights, gradients, optimizer, FSDP gather buffer) bytes per GPU."""
        spec, n = self.spec, len(self.caps)
        shard_w, shard_g, shard_o = _SHARD_DIVISORS[self.sharding]
        dw, dg, do = (n if shard_w else 1), (n if shard_g else 1), (n if shard_o else 1)
        p, a = spec.params, self.adapters
        if self.mode == "full":
            weights, grads, opt = (
                p * _FULL_WEIGHT_BYTES,
                p * _FULL_GRAD_BYTES,
                p * _FULL_OPTIMIZER_BYTES,
            )
            base_per_param = _FULL_WEIGHT_BYTES
        else:
            if self.mode == "lora":
                base = p * _BASE_BF16_BYTES
                base_per_param = _BASE_BF16_BYTES
            else:  # qlora: blocks in NF4, embeddings and head in bf16
                blocks = p - spec.embedding_params
                base = blocks * QLORA_BITS_PER_PARAM / 8 + spec.embedding_params * _BASE_BF16_BYTES
                base_per_param = QLORA_BITS_PER_PARAM / 8
            weights = base + a * _ADAPTER_WEIGHT_BYTES
            grads = a * _ADAPTER_GRAD_BYTES
            opt = a * _ADAPTER_OPTIMIZER_BYTES
        gather = 0.0
        if (shard_w and n > 1) or self.cpu_offload == "all":
            gather = 2 * spec.layer_params * base_per_param
            if self.mode == "full":
                gather += spec.layer_params * _FULL_GRAD_BYTES
        if self.cpu_offload == "all":
            return 0.0, 0.0, 0.0, gather
        if self.cpu_offload == "optimizer":
            opt = 0.0
        return weights / dw, grads / dg, opt / do, gather

    def host_bytes(self) -> float:
        """What CPU offload keeps in host memory, all GPUs together."""
        if self.cpu_offload == "none":
            return 0.0
        n = len(self.caps)
        weights, grads, opt, _ = _Training(
            spec=self.spec,
            caps=self.caps,
            mode=self.mode,
            sharding=self.sharding,
            micro_batch=self.micro_batch,
            adapters=self.adapters,
            checkpointing=self.checkpointing,
            flash=self.flash,
            context_gib=self.context_gib,
        ).state_bytes()
        shard_w, shard_g, shard_o = _SHARD_DIVISORS[self.sharding]
        full_o = opt * (n if shard_o else 1)
        if self.cpu_offload == "optimizer":
            return full_o
        return weights * (n if shard_w else 1) + grads * (n if shard_g else 1) + full_o

    def activation_bytes(self, seq: int) -> float:
        spec = self.spec
        s, m, h = seq, self.micro_batch, spec.hidden
        layer = s * m * h * _ACT_LINEAR + (
            0 if self.flash else _ACT_SCORES * spec.heads * s * s * m
        )
        # checkpointing: each layer's bf16 input, plus one layer's full set while recomputed;
        # with the checkpoints offloaded to host memory only the layer at work stays
        if self.checkpointing and self.activation_offload:
            stored = 2 * s * m * h + layer
        elif self.checkpointing:
            stored = spec.layers * 2 * s * m * h + layer
        else:
            stored = spec.layers * layer
        logits = _LOGIT_BYTES * s * m * spec.vocab
        return stored + (logits / LOSS_CHUNKS if self.chunked_loss else logits)

    def placements(self, seq: int) -> tuple[GpuPlacement, ...]:
        weights, grads, opt, gather = self.state_bytes()
        act = self.activation_bytes(seq)
        return tuple(
            GpuPlacement(
                gpu=gpu,
                capacity_gib=cap,
                layers=(0, self.spec.layers),
                embeddings=True,
                output_head=True,
                kv_heads=0,
                weights_gib=weights / GIB,
                gradients_gib=grads / GIB,
                optimizer_gib=opt / GIB,
                activations_gib=act / GIB,
                overhead_gib=self.context_gib + gather / GIB,
            )
            for gpu, cap in enumerate(self.caps)
        )


def fit_training(
    model: ModelSpec | str,
    *,
    gpus_gib: Sequence[float],
    mode: str,
    sharding: str = "fsdp",
    context: int = 2048,
    micro_batch: int = 1,
    lora_rank: int = 16,
    lora_targets: Sequence[str] = LINEAR_MODULES,
    checkpointing: bool = True,
    flash_attention: bool = True,
    cuda_context_gib: float = CUDA_CONTEXT_GIB,
    cpu_offload: str = "none",
    activation_offload: bool = False,
    chunked_loss: bool = False,
) -> FitPlan:
    """Memory per GPU to fine-tune `model` on sequences of `context` tokens, `micro_batch`
    sequences per GPU per step, with Adam in bf16 mixed precision.

    `mode`: "full", "lora" or "qlora"; `sharding`: "fsdp" (ZeRO-3), "zero2", "zero1" or "ddp";
    `lora_rank` and `lora_targets` (q, k, v, o, gate, up, down) size the adapters;
    `checkpointing`: gradient (activation) checkpointing per layer; `cpu_offload` ("none",
    "optimizer", "all": `CPU_OFFLOADS`), `activation_offload` (checkpoints in host memory)
    and `chunked_loss` (logits `LOSS_CHUNKS` chunks at a time) move memory off the GPU.
    Formulas: module docstring. Raises BadInput for inputs that cannot be."""
    spec = _resolve_model(model)
    caps = _capacities(gpus_gib)
    _choice("mode", mode, TRAINING_MODES)
    _choice("sharding", sharding, SHARDINGS)
    _positive_int("context", context)
    _positive_int("micro_batch", micro_batch)
    _choice("cpu_offload", cpu_offload, CPU_OFFLOADS)
    if activation_offload and not checkpointing:
        raise BadInput("activation_offload moves checkpoints: it needs checkpointing")
    if cuda_context_gib < 0:
        raise BadInput(f"cuda_context_gib must not be negative, got {cuda_context_gib!r}")
    adapters = 0
    if mode != "full":
        adapters = lora_adapter_params(spec, rank=lora_rank, targets=lora_targets)

    job = _Training(
        spec=spec,
        caps=tuple(caps),
        mode=mode,
        sharding=sharding,
        micro_batch=micro_batch,
        adapters=adapters,
        checkpointing=checkpointing,
        flash=flash_attention,
        context_gib=float(cuda_context_gib),
        cpu_offload=cpu_offload,
        activation_offload=activation_offload,
        chunked_loss=chunked_loss,
    )
    settings: dict[str, Any] = {
        "gpus_gib": caps,
        "mode": mode,
        "sharding": sharding,
        "context": context,
        "micro_batch": micro_batch,
        "lora_rank": lora_rank if mode != "full" else None,
        "lora_targets": list(dict.fromkeys(lora_targets)) if mode != "full" else None,
        "adapter_params": adapters,
        "checkpointing": checkpointing,
        "flash_attention": flash_attention,
        "cuda_context_gib": float(cuda_context_gib),
        "cpu_offload": cpu_offload,
        "activation_offload": activation_offload,
        "chunked_loss": chunked_loss,
        "host_gib": job.host_bytes() / GIB,
    }
    return _fit_plan("training", job, context, settings, _training_notes(job, context))


def _training_notes(job: _Training, context: int) -> list[str]:
    spec, n = job.spec, len(job.caps)
    notes = []
    if job.mode == "full":
        notes.append(
            "full fine-tune: 16 bytes/param (bf16 weights 2 + bf16 grads 2 + fp32 master 4 + "
            f"Adam moments 8) × {spec.params:,} params = {16 * spec.params / GIB:.1f} GiB in all"
        )
    else:
        share = 100 * job.adapters / spec.params
        base = (
            "bf16 base 2 bytes/param"
            if job.mode == "lora"
            else f"NF4 base {QLORA_BITS_PER_PARAM:.3f} bits/param (embeddings and head bf16)"
        )
        notes.append(
            f"{job.mode}: {base}, frozen; {job.adapters:,} adapter params ({share:.2f} %) "
            "at 16 bytes each (fp32 weights, grads, Adam moments)"
        )
    what = {
        "ddp": "replicated on every GPU",
        "zero1": f"optimizer state divided by {n}",
        "zero2": f"gradients and optimizer state divided by {n}",
        "fsdp": f"weights, gradients and optimizer state divided by {n}; "
        "two layers' full weights gathered at a time",
    }[job.sharding]
    notes.append(f"{job.sharding}: {what}")
    if job.cpu_offload != "none":
        held = (
            "optimizer state"
            if job.cpu_offload == "optimizer"
            else "weights, gradients and optimizer state"
        )
        notes.append(
            f"CPU offload: {held} in host memory ({job.host_bytes() / GIB:.1f} GiB of RAM),"
            " stepped on the CPU: slower steps, as the 4×V100 SXM2 server write-up saw on 16 GB"
            " V100s"
        )
    if job.activation_offload:
        notes.append("activation offload: checkpoints in host memory, one layer's on the GPU")
    if job.chunked_loss:
        notes.append(f"chunked loss: fp32 logits {LOSS_CHUNKS} chunks at a time")
    notes.append(
        "activations are an estimate (Korthikanti et al. 2022: s·b·h·(34 + 5·a·s/h) bytes per "
        "layer"
        + (", no score term with flash attention" if job.flash else "")
        + (
            "; checkpointing keeps 2·s·b·h per layer plus one layer's full set)"
            if job.checkpointing
            else ")"
        )
        + f" plus fp32 logits and their gradient, 8·s·b·V = "
        f"{_LOGIT_BYTES * context * job.micro_batch * spec.vocab / GIB:.2f} GiB"
    )
    if spec.is_moe:
        notes.append(
            f"MoE: all {spec.experts} experts are trained and held; activations are counted "
            "as for a dense block"
        )
    if not spec.vocab:
        notes.append("vocabulary unknown: embeddings and logits are not counted")
    if spec.max_context and context > spec.max_context:
        notes.append(
            f"sequence length {context:,} is beyond the model's max_context {spec.max_context:,}"
        )
    return notes
