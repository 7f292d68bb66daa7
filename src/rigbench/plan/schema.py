"""The build file's schema: what each table and key of a build file may hold (pydantic,
strict: unknown keys, wrong types and impossible values are errors). `rigbench.plan.build`
reads a file through it and resolves the result; the JSON Schema for editors is generated
from `BuildFile`.
"""

from __future__ import annotations

import json
import math
import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from rigbench.catalog import (
    closest_board_names,
    closest_cpu_names,
    closest_gpu_names,
    find_board,
    find_cpu,
    find_gpu,
)
from rigbench.catalog.models import SLIDING_PATTERNS
from rigbench.errors import BadInput
from rigbench.plan.efficiency import DEFAULT_EFFICIENCY, EFFICIENCY_TIERS, tier_name
from rigbench.plan.fit import KV_BYTES_PER_ELEMENT, bits_per_weight_of, kv_bytes_per_element

MAX_GPUS = 64
DEFAULT_OTHER_W = 100.0  # board, RAM, drives, fans: a round figure; measure and set it
NVLINK_KINDS = ("none", "bridge", "mesh", "nvswitch")


class BuildFileError(BadInput):
    """A build file that cannot be read or does not validate: one line,
    `<file>: <key path>: <what is wrong>`."""


# ----------------------------------------------------------------------- value checks


def _finite_positive(v: float) -> float:
    if not math.isfinite(v):
        raise ValueError("must be a finite number")
    if v <= 0:
        raise ValueError("must be greater than 0")
    return v


def _not_blank(v: str) -> str:
    if not v.strip():
        raise ValueError("must not be empty")
    return v


def _doc(text: str) -> Any:
    return Field(description=text)


Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Text = Annotated[str, AfterValidator(_not_blank)]
Gen = Annotated[int, Field(ge=1, le=6)]


Width = Literal[1, 2, 4, 8, 16]

_SUFFIX = {"k": 1e3, "m": 1e6, "b": 1e9, "t": 1e12}


def _parse_params(v: Any) -> float:
    """A parameter count: a number (70e9) or a string with a suffix ("70B", "350M")."""
    if isinstance(v, bool):
        raise ValueError('must be a number (70e9) or a string like "70B"')
    if isinstance(v, int | float):
        return _finite_positive(float(v))
    if isinstance(v, str):
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kKmMbBtT])\s*", v)
        if m:
            return float(m[1]) * _SUFFIX[m[2].lower()]
    raise ValueError('must be a number (70e9) or a string like "70B", "8.03B", "350M"')


def _parse_efficiency(v: Any) -> float | str:
    if isinstance(v, bool):
        raise ValueError("must be a fraction (0.92) or an 80 PLUS tier name")
    if isinstance(v, int | float):
        if not 0 < v <= 1:
            raise ValueError(
                "must be a fraction between 0 and 1 (0.92), or an 80 PLUS tier name"
                f" (got {v!r}; for 92 % write 0.92)"
            )
        return float(v)
    if isinstance(v, str):
        tier = tier_name(v)
        if tier is None:
            tiers = ", ".join(EFFICIENCY_TIERS)
            raise ValueError(f"unknown 80 PLUS tier {v!r} (one of {tiers}, or a fraction)")
        return tier
    raise ValueError("must be a fraction (0.92) or an 80 PLUS tier name")


def _parse_feeds(v: Any) -> list[int] | str:
    if isinstance(v, str):
        if v in ("all", "rest"):
            return v
        raise ValueError('must be a list of GPU indices, "all" or "rest"')
    if isinstance(v, list):
        if not v:
            raise ValueError("must name at least one GPU")
        if not all(isinstance(i, int) and not isinstance(i, bool) for i in v):
            raise ValueError("must be a list of GPU indices (whole numbers from 0)")
        if len(set(v)) != len(v):
            raise ValueError("names a GPU twice")
        if any(i < 0 for i in v):
            raise ValueError("GPU indices start at 0")
        return list(v)
    raise ValueError('must be a list of GPU indices, "all" or "rest"')


def _parse_link(v: Any) -> LinkSpec | str | list[str]:
    if isinstance(v, dict):
        unknown = sorted(set(v) - {"gen", "width"})
        if unknown:
            raise ValueError(f"unknown key {unknown[0]!r} (a link is {{ gen = 4, width = 16 }})")
        if "gen" not in v or "width" not in v:
            raise ValueError("needs both gen and width: { gen = 4, width = 16 }")
        gen, width = v["gen"], v["width"]
        for key, val in (("gen", gen), ("width", width)):
            if isinstance(val, bool) or not isinstance(val, int):
                raise ValueError(f"{key} must be a whole number (got {val!r})")
        if not 1 <= gen <= 6:
            raise ValueError(f"gen must be between 1 and 6 (got {gen})")
        if width not in (1, 2, 4, 8, 16):
            raise ValueError(f"width must be one of 1, 2, 4, 8, 16 (got {width})")
        return LinkSpec(gen=gen, width=width)
    if isinstance(v, str):
        return _not_blank(v)
    if isinstance(v, list) and v and all(isinstance(s, str) and s.strip() for s in v):
        return list(v)
    raise ValueError(
        'must be { gen = 4, width = 16 }, a slot name ("PCI_E1") or a list of slot names'
    )


_LINK_SCHEMA = {
    "description": (
        "What the GPU is plugged into: the PCIe link { gen = 4, width = 16 }, or the name of a"
        " slot of the [motherboard] (a list of names for an entry with count > 1). Left out:"
        " the board's next free slot, or a full-width slot at the CPU's generation."
    ),
    "anyOf": [
        {
            "type": "object",
            "properties": {
                "gen": {"type": "integer", "minimum": 1, "maximum": 6},
                "width": {"enum": [1, 2, 4, 8, 16]},
            },
            "required": ["gen", "width"],
            "additionalProperties": False,
        },
        {"type": "string", "minLength": 1},
        {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1},
    ],
}
_FEEDS_SCHEMA = {
    "description": (
        "The GPUs (indices from 0, in file order, counting each GPU of a count) this PSU group"
        ' feeds, "all", or "rest" (every GPU no other group names). Default: "all" with one'
        ' group, "rest" otherwise.'
    ),
    "anyOf": [
        {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 1},
        {"enum": ["all", "rest"]},
    ],
}
_EFFICIENCY_SCHEMA = {
    "description": (
        "Efficiency: a fraction (0.92) held at every load, or an 80 PLUS tier (80plus, bronze,"
        " silver, gold, platinum, titanium) interpolated by load from the tier's 115 V minimums."
        f" Default: {DEFAULT_EFFICIENCY}."
    ),
    "anyOf": [
        {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
        {"type": "string"},
    ],
}
_PARAMS_SCHEMA = {
    "description": 'Parameters: a number (70e9) or a string with a suffix ("70B", "350M").',
    "anyOf": [{"type": "number", "exclusiveMinimum": 0}, {"type": "string"}],
}


# ----------------------------------------------------------------------- the file


class _Strict(BaseModel):
    # strict: TOML values already have types; "16" is not 16 and true is not 1.
    model_config = ConfigDict(extra="forbid", strict=True)


class LinkSpec(_Strict):
    """A PCIe link: generation and electrical width."""

    gen: Gen
    width: Width


class RigSection(_Strict):
    name: Annotated[Text, _doc("The rig's name, free text.")]
    description: Annotated[Text | None, _doc("Free text.")] = None


class GpuEntry(_Strict):
    model: Annotated[
        Text, _doc('A GPU of the catalog: name or alias ("RTX 3090", "V100 SXM2 16GB").')
    ]
    count: Annotated[int, Field(ge=1, le=MAX_GPUS), _doc("How many of this GPU (1-64).")] = 1
    power_limit_w: Annotated[
        Positive | None,
        _doc("Power limit set with nvidia-smi -pl, W. Default: the catalog's TDP."),
    ] = None
    link: Annotated[Any, BeforeValidator(_parse_link), WithJsonSchema(_LINK_SCHEMA)] = None
    nvlink: Annotated[
        Literal["none", "bridge", "mesh", "nvswitch"] | None,
        _doc(
            "How these GPUs are linked by NVLink: none; bridge (pairs of cards); mesh (direct"
            " links between every pair, as SXM2 baseboards); nvswitch (every link to a"
            " switch, as HGX boards). Default: mesh for SXM2, nvswitch for SXM4/SXM5, else"
            " none."
        ),
    ] = None

    @field_validator("model")
    @classmethod
    def _known(cls, v: str) -> str:
        if find_gpu(v) is None:
            raise ValueError(_unknown("GPU", v, closest_gpu_names(v)))
        return v


class CpuSection(_Strict):
    model: Annotated[Text, _doc('A CPU of the catalog ("Threadripper 1920X", "EPYC 7763").')]
    count: Annotated[int, Field(ge=1, le=8), _doc("Sockets filled with this CPU.")] = 1

    @field_validator("model")
    @classmethod
    def _known(cls, v: str) -> str:
        if find_cpu(v) is None:
            raise ValueError(_unknown("CPU", v, closest_cpu_names(v)))
        return v


class BoardSection(_Strict):
    model: Annotated[Text, _doc('A motherboard of the catalog ("X570 Unify", "T180-G20").')]

    @field_validator("model")
    @classmethod
    def _known(cls, v: str) -> str:
        if find_board(v) is None:
            raise ValueError(_unknown("motherboard", v, closest_board_names(v)))
        return v


class PsuEntry(_Strict):
    model: Annotated[Text | None, _doc("Free text: what the PSU is (not looked up).")] = None
    watts: Annotated[
        Positive,
        _doc(
            "Rated DC output, W, at YOUR wall voltage (many server PSUs give less on"
            " 100-127 V than on 200-240 V)."
        ),
    ]
    count: Annotated[
        int,
        Field(ge=1, le=16),
        _doc('How many identical PSUs; more than one needs bus = "12v-parallel".'),
    ] = 1
    efficiency: Annotated[
        Any, BeforeValidator(_parse_efficiency), WithJsonSchema(_EFFICIENCY_SCHEMA)
    ] = None
    kind: Annotated[
        Literal["atx", "server"], _doc('"atx" (desktop) or "server" (hot-swap, 12 V only).')
    ] = "atx"
    atx3: Annotated[
        bool,
        _doc(
            "The PSU is rated to ATX 3.0 power excursions (200 % of rated power for 100 us,"
            " 180 % for 1 ms, 160 % for 10 ms, 120 % for 100 ms)."
        ),
    ] = False
    feeds: Annotated[Any, BeforeValidator(_parse_feeds), WithJsonSchema(_FEEDS_SCHEMA)] = None
    system: Annotated[
        bool | None,
        _doc("This group feeds the CPU, board and the rest ([power]). Default: the first group."),
    ] = None
    bus: Annotated[
        Literal["12v-parallel"] | None,
        _doc(
            "Server PSUs whose outputs are paralleled on one 12 V bus (current-share pins"
            " linked), as in seed 001: every entry with this bus forms one group that shares"
            " the load."
        ),
    ] = None
    redundant: Annotated[
        int,
        Field(ge=0, le=15),
        _doc(
            "Units of this entry held in reserve (the M of N+M redundancy, as servers ship"
            " their PSUs): not counted as capacity. Default 0."
        ),
    ] = 0
    circuit: Annotated[
        int,
        Field(ge=0, le=15),
        _doc("The wall circuit this PSU plugs into (0-based, below [wall] circuits)."),
    ] = 0


class PowerSection(_Strict):
    other_w: Annotated[
        NonNegative | None,
        _doc(f"Board, RAM, drives, fans, NICs, W. Default: {DEFAULT_OTHER_W:g}."),
    ] = None
    cpu_w: Annotated[
        NonNegative | None,
        _doc(
            "What all CPUs together draw under the workload, W. Default: a share of the"
            " catalog's max turbo power or TDP per socket that depends on workload."
        ),
    ] = None
    workload: Annotated[
        Literal["train", "inference", "cpu-bound"],
        _doc(
            "What the rig runs: train or inference (the CPU mostly feeds the GPUs: 0.3 of"
            " its rating, seed 000's measurement), or cpu-bound (heavy CPU preprocessing"
            " beside the GPUs: its full rating)."
        ),
    ] = "train"


class WallSection(_Strict):
    volts: Annotated[Positive, _doc("Outlet voltage, V.")] = 120.0
    amps: Annotated[Positive, _doc("Breaker rating of one circuit, A.")] = 15.0
    circuits: Annotated[
        int | None,
        Field(ge=1, le=16),
        _doc("Circuits (breakers) the rig may use. Default 1, or 3 with phases = 3."),
    ] = None
    phases: Annotated[
        Literal[1, 3],
        _doc(
            "3 for a three-phase feed: one circuit per phase (psu circuit = the phase), volts"
            " the voltage a PSU sees (230 V line-to-neutral from a 400 V feed, 208 V"
            " line-to-line in the US), amps the breaker of each phase."
        ),
    ] = 1
    continuous_factor: Annotated[
        float | None,
        Field(ge=0.1, le=1.0),
        _doc(
            "Share of the breaker rating a continuous load (3 h or more) may draw: 0.8 under"
            " the US NEC 80 % rule; 1.0 where breakers are rated for continuous load (IEC"
            " 60898 breakers of 230 V countries). Default: 0.8 below 200 V, else 1.0 (set"
            " 0.8 for a US 208/240 V circuit)."
        ),
    ] = None

    @model_validator(mode="after")
    def _default_share(self) -> WallSection:
        if self.continuous_factor is None:
            self.continuous_factor = self.continuous_share
        if self.circuits is None:
            self.circuits = self.phases
        elif self.phases == 3 and self.circuits % 3:
            raise ValueError("a three-phase feed gives circuits in threes (one per phase)")
        return self

    @property
    def continuous_share(self) -> float:
        """continuous_factor, or its default for the voltage."""
        if self.continuous_factor is not None:
            return self.continuous_factor
        return 0.8 if self.volts < 200 else 1.0


class CostsSection(_Strict):
    price_usd: Annotated[NonNegative | None, _doc("What the rig costs, USD.")] = None
    cloud_per_hour_usd: Annotated[
        NonNegative | None, _doc("What renting the same work costs per hour, USD.")
    ] = None
    electricity_per_kwh_usd: Annotated[
        NonNegative | None, _doc("Electricity price, USD per kWh.")
    ] = None
    electricity_per_hour_usd: Annotated[
        NonNegative | None,
        _doc("Electricity per hour of use, USD (instead of electricity_per_kwh_usd)."),
    ] = None
    watts: Annotated[
        Positive | None,
        _doc("Average wall draw while in use, W. Default: plan's sustained wall estimate."),
    ] = None

    @model_validator(mode="after")
    def _one_electricity(self) -> CostsSection:
        if self.electricity_per_hour_usd is not None and self.electricity_per_kwh_usd is not None:
            raise ValueError("give electricity_per_hour_usd or electricity_per_kwh_usd, not both")
        return self


class UsageSection(_Strict):
    hours_per_year: Annotated[
        list[Positive] | None, _doc("Hours of use a year; several values compare levels.")
    ] = None
    returns: Annotated[
        list[float] | None,
        _doc(
            "Yearly return the money would earn invested, in PERCENT (5 means 5 %);"
            " several values compare."
        ),
    ] = None
    use_years: Annotated[int | None, Field(ge=0, le=100), _doc("Years the rig is used.")] = None
    invest_years: Annotated[
        int | None,
        Field(ge=0, le=100),
        _doc("Years the savings stay invested after use ends."),
    ] = None
    train_tokens_per_s: Annotated[
        Positive | None, _doc("Training throughput, tokens/s (for cost per token).")
    ] = None
    generate_tokens_per_s: Annotated[
        Positive | None, _doc("Generation throughput, tokens/s (for cost per token).")
    ] = None

    @field_validator("hours_per_year", "returns")
    @classmethod
    def _not_empty(cls, v: list[float] | None) -> list[float] | None:
        if v is not None and not v:
            raise ValueError("must not be empty")
        return v

    @field_validator("returns")
    @classmethod
    def _percent(cls, v: list[float] | None) -> list[float] | None:
        if v is None:
            return v
        for r in v:
            if not math.isfinite(r) or not -100 < r <= 1000:
                raise ValueError(f"must be percents between -100 and 1000 (got {r!r})")
        if all(0 < abs(r) < 1 for r in v):
            raise ValueError(
                f"are percent per year: write 5 for 5 % ({v[0]!r} looks like a fraction)"
            )
        return v


def _parse_bits(v: Any) -> float | str:
    if isinstance(v, bool) or not isinstance(v, int | float | str):
        raise ValueError('must be a number of bits (4.8) or a format name ("q4_k", "bf16")')
    try:
        bits = bits_per_weight_of(v)
    except BadInput as exc:
        raise ValueError(str(exc)) from None
    if not 1 <= bits <= 32:
        raise ValueError(f"must be between 1 and 32 bits (got {v!r})")
    return v if isinstance(v, str) else float(v)


def _parse_kv_dtype(v: Any) -> str:
    if not isinstance(v, str):
        raise ValueError("must be a string: " + ", ".join(KV_BYTES_PER_ELEMENT))
    try:
        kv_bytes_per_element(v)
    except BadInput:
        raise ValueError("must be one of " + ", ".join(KV_BYTES_PER_ELEMENT)) from None
    return v


def _parse_sliding_layers(v: Any) -> list[int] | str:
    if isinstance(v, str) and v in SLIDING_PATTERNS:
        return v
    if isinstance(v, list) and all(isinstance(i, int) and not isinstance(i, bool) for i in v):
        if any(i < 0 for i in v):
            raise ValueError("layer indices start at 0")
        return list(v)
    raise ValueError('must be a list of layer indices (from 0) or "all", "even", "odd"')


_BITS_SCHEMA = {
    "description": (
        "Bits per weight: a number (4.8 for a Q4_K_M file, 16 for bf16) or a format name"
        ' ("q4_k", "q8_0", "bf16", "nf4"). Default: 16.'
    ),
    "anyOf": [{"type": "number", "minimum": 1, "maximum": 32}, {"type": "string"}],
}
_KV_SCHEMA = {
    "description": "KV cache dtype. Default: fp16.",
    "enum": list(KV_BYTES_PER_ELEMENT),
}
_SLIDING_SCHEMA = {
    "description": (
        'Layers (0-based) that use the sliding window, or "all", "even", "odd". Default with a'
        " window: all."
    ),
    "anyOf": [
        {"type": "array", "items": {"type": "integer", "minimum": 0}},
        {"enum": list(SLIDING_PATTERNS)},
    ],
}
ARCH_FIELDS = (
    "params",
    "layers",
    "hidden",
    "heads",
    "kv_heads",
    "head_dim",
    "vocab",
    "intermediate",
    "experts",
    "experts_per_token",
    "sliding_window",
    "sliding_layers",
    "tie_embeddings",
    "max_context",
    "qkv_bias",
)
INFERENCE_SPLITS = ("tp", "pp", "none")
TRAINING_SHARDINGS = ("fsdp", "zero2", "zero1", "ddp", "none")


class ModelEntry(_Strict):
    """A model to fit on the rig: a preset of the model catalog (rigbench.catalog.models)
    or an architecture given key by key (names as in the model's config.json); the fit
    engine (rigbench.plan.fit) computes the memory."""

    name: Annotated[
        Text | None,
        _doc(
            'A preset ("llama-3-70b", "deepseek-r1:70b", "qwen2.5-72b"), or a label for a model'
            " described by params, layers, hidden, heads and kv_heads."
        ),
    ] = None
    params: Annotated[Any, BeforeValidator(_parse_params), WithJsonSchema(_PARAMS_SCHEMA)] = None
    layers: Annotated[int | None, Field(ge=1, le=1000), _doc("Transformer blocks.")] = None
    hidden: Annotated[int | None, Field(ge=1, le=10**6), _doc("Model width (hidden_size).")] = None
    heads: Annotated[int | None, Field(ge=1, le=10**4), _doc("Query heads.")] = None
    kv_heads: Annotated[int | None, Field(ge=1, le=10**4), _doc("Key/value heads (GQA, MQA).")] = (
        None
    )
    head_dim: Annotated[int | None, Field(ge=1, le=10**4), _doc("Size of one head.")] = None
    vocab: Annotated[int | None, Field(ge=1, le=10**8), _doc("Vocabulary.")] = None
    intermediate: Annotated[
        int | None,
        Field(ge=1, le=10**7),
        _doc("MLP inner width (per expert for MoE)."),
    ] = None
    experts: Annotated[int | None, Field(ge=1, le=10**4), _doc("MoE experts per layer.")] = None
    experts_per_token: Annotated[
        int | None, Field(ge=1, le=10**4), _doc("Experts each token is routed to.")
    ] = None
    sliding_window: Annotated[
        int | None,
        Field(ge=1, le=10**8),
        _doc("Tokens a sliding-window layer attends to."),
    ] = None
    sliding_layers: Annotated[
        Any, BeforeValidator(_parse_sliding_layers), WithJsonSchema(_SLIDING_SCHEMA)
    ] = None
    tie_embeddings: Annotated[bool | None, _doc("The output head shares the input embeddings.")] = (
        None
    )
    max_context: Annotated[
        int | None,
        Field(ge=1, le=10**8),
        _doc("Context the model was trained for (max_position_embeddings)."),
    ] = None
    qkv_bias: Annotated[bool | None, _doc("Q, K and V projections have biases (Qwen2).")] = None
    bits_per_weight: Annotated[Any, BeforeValidator(_parse_bits), WithJsonSchema(_BITS_SCHEMA)] = (
        None
    )
    context: Annotated[
        int | None,
        Field(ge=1, le=10**8),
        _doc("Context (training: sequence) length, tokens."),
    ] = None
    batch: Annotated[
        int | None,
        Field(ge=1, le=10**6),
        _doc("Sequences at once (inference) or per GPU per step (training)."),
    ] = None
    kv_dtype: Annotated[Any, BeforeValidator(_parse_kv_dtype), WithJsonSchema(_KV_SCHEMA)] = None
    mode: Annotated[
        Literal["inference", "full", "lora", "qlora"],
        _doc("inference, or training: full (mixed-precision Adam), lora, qlora."),
    ] = "inference"
    parallel: Annotated[
        Literal["tp", "pp", "none", "fsdp", "zero2", "zero1", "ddp"] | None,
        _doc(
            "Inference: tp (tensor parallel), pp (layers split, llama.cpp/Ollama; default),"
            " none (a whole copy per GPU). Training: fsdp (ZeRO-3; default), zero2, zero1,"
            " ddp or none (every GPU holds everything)."
        ),
    ] = None
    lora_rank: Annotated[int | None, Field(ge=1, le=65536), _doc("LoRA rank (default 16).")] = None
    flash_attention: Annotated[
        bool | None,
        _doc("Flash attention on (default true; Ollama/llama.cpp without it add a buffer)."),
    ] = None
    checkpointing: Annotated[
        bool | None, _doc("Gradient checkpointing per layer (training; default true).")
    ] = None
    cpu_offload: Annotated[
        Literal["none", "optimizer", "all"] | None,
        _doc(
            "Training: keep the optimizer state (optimizer: DeepSpeed ZeRO-Offload) or"
            " weights, gradients and optimizer state (all: FSDP CPUOffload) in host memory."
            " Default none."
        ),
    ] = None
    activation_offload: Annotated[
        bool | None,
        _doc("Training: keep activation checkpoints in host memory (default false)."),
    ] = None
    chunked_loss: Annotated[
        bool | None,
        _doc("Training: compute the fp32 logits in 8 chunks (chunked cross-entropy)."),
    ] = None
    gpus: Annotated[list[int] | None, _doc("GPU indices the model uses (default: all).")] = None

    @model_validator(mode="after")
    def _consistent(self) -> ModelEntry:
        if self.name is None and self.params is None:
            raise ValueError("needs a preset name, or params, layers, hidden, heads, kv_heads")
        if (
            self.heads is not None
            and self.kv_heads is not None
            and (self.kv_heads > self.heads or self.heads % self.kv_heads)
        ):
            raise ValueError(f"kv_heads {self.kv_heads} must divide heads {self.heads}")
        if (
            self.experts is not None
            and self.experts_per_token is not None
            and self.experts_per_token > self.experts
        ):
            raise ValueError("experts_per_token cannot exceed experts")
        if self.mode != "inference" and self.bits_per_weight is not None:
            raise ValueError(
                f"bits_per_weight does not apply to mode = {json.dumps(self.mode)}: training"
                " keeps bf16 weights (full: plus fp32 master weights and Adam moments, 16 bytes"
                ' per parameter; lora: a bf16 base); use mode = "qlora" for a 4-bit base'
            )
        training_only = [
            k for k in ("cpu_offload", "activation_offload", "chunked_loss") if getattr(self, k)
        ]
        if self.mode == "inference" and training_only:
            raise ValueError(f"{training_only[0]} applies to training modes only")
        if self.parallel is not None:
            allowed = INFERENCE_SPLITS if self.mode == "inference" else TRAINING_SHARDINGS
            if self.parallel not in allowed:
                raise ValueError(
                    f"parallel = {json.dumps(self.parallel)} does not apply to mode ="
                    f" {json.dumps(self.mode)} (one of {', '.join(allowed)})"
                )
        return self

    @property
    def arch_given(self) -> list[str]:
        return [k for k in ARCH_FIELDS if getattr(self, k) is not None]


class BuildFile(_Strict):
    """A rig as a parts list: what `rigbench plan` and `rigbench cost` read."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        title="rigbench build file",
        json_schema_extra={
            "$comment": "Generated from rigbench.plan.build.BuildFile; see examples/builds/."
        },
    )

    rig: RigSection
    gpu: Annotated[list[GpuEntry], _doc("One entry per GPU model (count repeats it).")] = Field(
        default_factory=list
    )
    cpu: CpuSection | None = None
    motherboard: BoardSection | None = None
    psu: Annotated[
        list[PsuEntry], _doc("Power supplies; each entry one PSU or a paralleled bus.")
    ] = Field(default_factory=list)
    power: PowerSection = Field(default_factory=PowerSection)
    wall: WallSection | None = None
    costs: CostsSection | None = None
    usage: UsageSection | None = None
    model: Annotated[list[ModelEntry], _doc("Models to fit on the rig.")] = Field(
        default_factory=list
    )


_CATALOG_KIND = {"GPU": "gpu", "CPU": "cpu", "motherboard": "board"}


def _unknown(what: str, name: str, close: list[str]) -> str:
    listing = f"`rigbench catalog --kind {_CATALOG_KIND.get(what, what)}` lists them"
    hint = f"; did you mean {', '.join(close)}?" if close else f" ({listing})"
    return f"unknown {what} {json.dumps(name)}{hint}"
