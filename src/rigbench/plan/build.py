"""The build file: a rig as a parts list (TOML), checked before anything is bought.

`load_build(path)` reads and validates the file with pydantic (every table strict: unknown
keys, wrong types and impossible values are errors), resolves the catalog names (GPUs,
CPU, motherboard) and works out what each GPU is plugged into and which PSU feeds it.
Every problem is one `BuildFileError` line, `<file>: <key path>: <what is wrong>`, with
the closest catalog names for a model that is not in the catalog. `build_json_schema()`
is the JSON Schema published as `schemas/build.schema.json` for editors; regenerate it
with `python -c "import rigbench.plan as p; p.write_build_schema()"` from the repo root.

    [rig]          name, description
    [[gpu]]        model, count, power_limit_w, link ({gen, width} or slot name(s)), nvlink
    [cpu]          model, count (sockets)
    [motherboard]  model
    [[psu]]        model, watts, count, efficiency, kind, atx3, feeds, system, bus, circuit
    [power]        other_w, cpu_w
    [wall]         volts, amps, circuits, continuous_factor
    [costs]        price_usd, cloud_per_hour_usd, electricity_per_kwh_usd,
                   electricity_per_hour_usd, watts
    [usage]        hours_per_year, returns (percent per year), use_years, invest_years,
                   train_tokens_per_s, generate_tokens_per_s
    [[model]]      name (preset) or params/layers/heads/kv_heads/head_dim..., bits_per_weight,
                   context, batch, kv_dtype, mode, parallel, lora_rank, gpus

`examples/builds/` holds the rigs of our users' write-ups; the schema's descriptions say
what each key means and its unit.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from rigbench.catalog import (
    BoardSpec,
    CpuSpec,
    GpuSpec,
    Slot,
    closest_board_names,
    closest_cpu_names,
    closest_gpu_names,
    find_board,
    find_cpu,
    find_gpu,
)
from rigbench.catalog.models import (
    SLIDING_PATTERNS,
    ModelSpec,
    closest_model_names,
    find_model,
    sliding_window_layers,
)
from rigbench.errors import BadInput
from rigbench.links import pcie_gbs
from rigbench.plan.fit import KV_BYTES_PER_ELEMENT, bits_per_weight_of, kv_bytes_per_element
from rigbench.tomlfile import FileSchema, describe, key_path, read_toml, validation_failure

MAX_GPUS = 64

# 80 PLUS minimum efficiencies, 115 V internal non-redundant, at 10/20/50/100 % load
# (https://en.wikipedia.org/wiki/80_Plus, the CLEAResult program's table). Titanium adds
# a 10 % point; the others are held flat below 20 %.
EFFICIENCY_TIERS: dict[str, tuple[tuple[float, float], ...]] = {
    "80plus": ((0.2, 0.80), (0.5, 0.80), (1.0, 0.80)),
    "bronze": ((0.2, 0.82), (0.5, 0.85), (1.0, 0.82)),
    "silver": ((0.2, 0.85), (0.5, 0.88), (1.0, 0.85)),
    "gold": ((0.2, 0.87), (0.5, 0.90), (1.0, 0.87)),
    "platinum": ((0.2, 0.90), (0.5, 0.92), (1.0, 0.89)),
    "titanium": ((0.1, 0.90), (0.2, 0.92), (0.5, 0.94), (1.0, 0.90)),
}
DEFAULT_EFFICIENCY = "gold"
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


def tier_name(text: str) -> str | None:
    """The 80 PLUS tier a name means ("80 Plus Gold", "gold", "80+ platinum"), or None."""
    key = re.sub(r"[\s_\-]+", "", text.casefold()).replace("80plus", "").replace("80+", "")
    if key in ("", "white", "standard", "basic"):
        return "80plus"
    return key if key in EFFICIENCY_TIERS else None


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
            " linked), as in the 4×V100 SXM2 server write-up: every entry with this bus forms one "
            "group that shares"
            " the load."
        ),
    ] = None
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
            "Power budgeted for all CPUs together, W. Default: the catalog's max turbo power"
            " or TDP per socket."
        ),
    ] = None


class WallSection(_Strict):
    volts: Annotated[Positive, _doc("Outlet voltage, V.")] = 120.0
    amps: Annotated[Positive, _doc("Breaker rating of one circuit, A.")] = 15.0
    circuits: Annotated[int, Field(ge=1, le=16), _doc("Circuits (breakers) the rig may use.")] = 1
    continuous_factor: Annotated[
        float,
        Field(ge=0.1, le=1.0),
        _doc(
            "Share of the breaker rating a continuous load (3 h or more) may draw: 0.8 under"
            " the US NEC 80 % rule; 1.0 where breakers are rated for continuous load."
        ),
    ] = 0.8


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


def _unknown(what: str, name: str, close: list[str]) -> str:
    hint = f"; did you mean {', '.join(close)}?" if close else f" (see `rigbench catalog {what}`)"
    return f"unknown {what} {json.dumps(name)}{hint}"


# ----------------------------------------------------------------------- resolved view


@dataclass(frozen=True, slots=True, kw_only=True)
class GpuUnit:
    """One GPU of the build, resolved: its catalog entry, power and host link."""

    index: int  # 0-based over the whole build, file order
    entry: int  # which [[gpu]] entry
    spec: GpuSpec
    power_limit_w: float | None  # as set in the file
    power_w: float  # the limit, else the catalog TDP
    link_gen: int
    link_width: int
    link_gbs: float  # per direction, the GPU's own link (pcie_gbs)
    host_gbs: float  # what it gets to the CPU once a shared uplink is divided
    slot: str | None
    via: str | None  # "cpu", an uplink name, or None when the file gives the link
    link_basis: str  # where the link comes from, for findings
    nvlink: str  # one of NVLINK_KINDS

    @property
    def label(self) -> str:
        return f"GPU {self.index} ({self.spec.name})"


@dataclass(frozen=True, slots=True, kw_only=True)
class PsuGroup:
    """PSUs that carry one load together: one ATX unit, or server units on one 12 V bus."""

    index: int
    entries: tuple[int, ...]  # [[psu]] entries in the group
    label: str  # "psu[0]" or "psu[0]+psu[1]"
    model: str | None
    watts_each: tuple[float, ...]  # one per unit
    kind: str
    atx3: bool
    parallel: bool
    efficiency: float | str  # fraction, or an 80 PLUS tier name
    gpus: tuple[int, ...]
    system: bool
    circuit: int

    @property
    def units(self) -> int:
        return len(self.watts_each)

    @property
    def rated_w(self) -> float:
        return sum(self.watts_each)

    def efficiency_at(self, load_fraction: float) -> float:
        """Efficiency at a load (share of rated output): a fixed fraction, or the 80 PLUS
        tier's minimums interpolated linearly, held flat outside the tier's points."""
        if isinstance(self.efficiency, float):
            return self.efficiency
        points = EFFICIENCY_TIERS[self.efficiency]
        x = min(max(load_fraction, points[0][0]), points[-1][0])
        for (x0, y0), (x1, y1) in zip(points, points[1:], strict=False):
            if x0 <= x <= x1:
                return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
        return points[-1][1]  # pragma: no cover - x is clamped into the points


@dataclass(frozen=True, slots=True, kw_only=True)
class Build:
    """A validated build file with its catalog names resolved."""

    path: Path
    file: BuildFile
    gpus: tuple[GpuUnit, ...]
    cpu: CpuSpec | None
    cpu_count: int
    board: BoardSpec | None
    psus: tuple[PsuGroup, ...]
    # one per [[model]]: the architecture, or None when only params are given
    model_specs: tuple[ModelSpec | None, ...] = field(default=())

    @property
    def name(self) -> str:
        return self.file.rig.name

    @property
    def costs(self) -> CostsSection | None:
        return self.file.costs

    @property
    def usage(self) -> UsageSection | None:
        return self.file.usage

    @property
    def models(self) -> list[ModelEntry]:
        return self.file.model

    @property
    def wall(self) -> WallSection | None:
        return self.file.wall

    @property
    def other_w(self) -> float:
        o = self.file.power.other_w
        return DEFAULT_OTHER_W if o is None else o

    @property
    def cpu_w(self) -> float:
        """Power budgeted for the CPUs: [power] cpu_w, else the catalog's per socket."""
        if self.file.power.cpu_w is not None:
            return self.file.power.cpu_w
        return self.cpu.power_w * self.cpu_count if self.cpu is not None else 0.0


# ----------------------------------------------------------------------- errors


_SCHEMA = FileSchema(
    root=BuildFile,
    kind="build file",
    array_tables=frozenset({"gpu", "psu", "model"}),
    tables=frozenset({"rig", "cpu", "motherboard", "power", "wall", "costs", "usage"}),
    show_checked_value=False,
)


def _fail(path: Path, where: str | None, what: str) -> BuildFileError:
    """`<file>: <key path>: <what is wrong>`, or `<file>: <what>` for the file as a whole."""
    text = f"{path}: {where}: {what}" if where else f"{path}: {what}"
    return BuildFileError(re.sub(r"[\r\n]+", " ", text))


# ----------------------------------------------------------------------- loading


def load_build(path: str | Path) -> Build:
    """Read, validate and resolve a build file; raises BuildFileError (one line)."""
    path = Path(path)
    data = read_toml(path, lambda where, what: _fail(path, where, what))
    try:
        file = BuildFile.model_validate(data)
    except ValidationError as exc:
        raise validation_failure(
            exc, _SCHEMA, lambda where, what: _fail(path, where, what)
        ) from None
    return _Resolver(path, file).build()


def with_models(
    build: Build,
    names: list[str],
    *,
    context: int | None = None,
    bits: str | None = None,
    mode: str = "inference",
) -> Build:
    """`build` with more [[model]] entries: presets named on the command line, checked
    like the file's own (errors name `--model`)."""
    entries = []
    for name in names:
        raw: dict[str, Any] = {"name": name, "mode": mode}
        if context is not None:
            raw["context"] = context
        if bits is not None:
            try:
                raw["bits_per_weight"] = float(bits)
            except ValueError:
                raw["bits_per_weight"] = bits
        try:
            entries.append(ModelEntry.model_validate(raw))
        except ValidationError as exc:
            err = exc.errors()[0]
            key = key_path(tuple(err["loc"]))
            opt = {"mode": "--mode", "bits_per_weight": "--bits-per-weight"}.get(key, "--model")
            raise BuildFileError(f"{opt}: {describe(err, _SCHEMA)}") from None
    file = build.file.model_copy(update={"model": [*build.file.model, *entries]})
    resolver = _Resolver(build.path, file)
    try:
        specs = resolver.resolve_models(len(build.gpus))
    except BuildFileError as exc:
        first = len(build.file.model)
        text = str(exc).removeprefix(f"{build.path}: ")
        for k in range(len(entries)):
            text = text.replace(f"model[{first + k}].name", "--model")
        raise BuildFileError(text) from None
    return replace(build, file=file, model_specs=tuple(specs))


def build_json_schema() -> dict[str, Any]:
    """The JSON Schema of the build file (published as schemas/build.schema.json)."""
    schema = BuildFile.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def write_build_schema(path: str | Path = "schemas/build.schema.json") -> None:
    """Write build_json_schema() where the repository publishes it."""
    Path(path).write_text(json.dumps(build_json_schema(), indent=2) + "\n", encoding="utf-8")


class _Resolver:
    """Cross-table checks and resolution: which slot and link each GPU gets, which PSU
    group feeds it. Errors name the key they come from."""

    def __init__(self, path: Path, file: BuildFile) -> None:
        self.path = path
        self.file = file

    def fail(self, where: str | None, what: str) -> BuildFileError:
        return _fail(self.path, where, what)

    def build(self) -> Build:
        f = self.file
        cpu = find_cpu(f.cpu.model) if f.cpu else None
        cpu_count = f.cpu.count if f.cpu else 0
        board = find_board(f.motherboard.model) if f.motherboard else None
        if cpu is not None and f.cpu is not None and cpu_count > cpu.max_sockets:
            raise self.fail(
                "cpu.count", f"the {cpu.name} runs in at most {cpu.max_sockets} socket(s)"
            )
        if board is not None:
            if cpu is not None and _socket_key(cpu.socket) != _socket_key(board.socket):
                raise self.fail(
                    "motherboard.model",
                    f"the {board.name} has socket {board.socket}; the {cpu.name} needs"
                    f" {cpu.socket}",
                )
            if cpu_count > board.cpu_sockets:
                raise self.fail(
                    "cpu.count", f"the {board.name} has {board.cpu_sockets} CPU socket(s)"
                )
        n_gpus = sum(e.count for e in f.gpu)
        if n_gpus > MAX_GPUS:
            raise self.fail("gpu", f"{n_gpus} GPUs; at most {MAX_GPUS}")
        gpus = self.resolve_gpus(cpu, board)
        psus = self.resolve_psus(n_gpus)
        models = self.resolve_models(n_gpus)
        return Build(
            path=self.path,
            file=f,
            gpus=tuple(gpus),
            cpu=cpu,
            cpu_count=cpu_count,
            board=board,
            psus=tuple(psus),
            model_specs=tuple(models),
        )

    # -- GPUs and their links

    def resolve_gpus(self, cpu: CpuSpec | None, board: BoardSpec | None) -> list[GpuUnit]:
        f = self.file
        # 1. every GPU's requested slot (or None)
        wanted: list[tuple[int, int, GpuSpec, str | None]] = []  # (entry, k, spec, slot)
        for e, entry in enumerate(f.gpu):
            spec = find_gpu(entry.model)
            assert spec is not None  # checked by the field validator
            link = entry.link
            names: list[str | None] = [None] * entry.count
            if isinstance(link, str | list):
                where = f"gpu[{e}].link"
                if board is None:
                    raise self.fail(where, "names a slot, but the build has no [motherboard]")
                given = [link] if isinstance(link, str) else link
                if len(given) != entry.count:
                    raise self.fail(
                        where,
                        f"names {len(given)} slot(s) for {entry.count} GPU(s): give one slot"
                        " per GPU",
                    )
                for k, name in enumerate(given):
                    slot = board.slot_named(name)
                    if slot is None:
                        close = difflib.get_close_matches(
                            name, [s.name for s in board.slots], n=2, cutoff=0.5
                        )
                        hint = f"; did you mean {', '.join(close)}?" if close else ""
                        raise self.fail(
                            where, f"the {board.name} has no slot {json.dumps(name)}{hint}"
                        )
                    names[k] = slot.name
            for k in range(entry.count):
                wanted.append((e, k, spec, names[k]))

        # 2. slots: explicit ones reserved first, then the board's order for the rest
        taken: dict[str, int] = {}
        for i, (e, _, _, name) in enumerate(wanted):
            if name is not None:
                if name in taken:
                    raise self.fail(
                        f"gpu[{e}].link", f"slot {name} already holds GPU {taken[name]}"
                    )
                taken[name] = i
        assigned: list[str | None] = [w[3] for w in wanted]
        if board is not None:
            free = [s for s in board.slots_for_gpus if s.name not in taken]
            for i, (e, _, spec, name) in enumerate(wanted):
                if name is not None or isinstance(f.gpu[e].link, LinkSpec):
                    continue
                kind = _slot_kind(spec)
                slot = next((s for s in free if s.kind == kind), None)
                if slot is None:
                    raise self.fail(
                        f"gpu[{e}]",
                        f"no free {kind} slot left on the {board.name} for GPU {i}"
                        f" ({len([s for s in board.slots if s.kind == kind])} {kind} slots)",
                    )
                free.remove(slot)
                assigned[i] = slot.name
                taken[slot.name] = i

        # 3. links
        units: list[GpuUnit] = []
        populated = set(taken)
        uplink_load: dict[str, int] = {}
        if board is not None:
            for name in populated:
                slot_via = board.slot(name).via
                if slot_via != "cpu":
                    uplink_load[slot_via] = uplink_load.get(slot_via, 0) + 1
        cpu_gen = cpu.pcie_gen if cpu is not None else None
        for i, (e, _, spec, _) in enumerate(wanted):
            entry = f.gpu[e]
            gpu_gen = spec.pcie_gen or 6
            gpu_width = spec.pcie_width or 16
            slot_name = assigned[i]
            via: str | None = None
            if isinstance(entry.link, LinkSpec):
                gen, width = min(entry.link.gen, gpu_gen), min(entry.link.width, gpu_width)
                basis = f"link Gen{entry.link.gen} x{entry.link.width} from the build file"
                if cpu_gen is not None and gen > cpu_gen:
                    basis += f", run at Gen{cpu_gen} (the CPU's lanes)"
                    gen = cpu_gen
            elif slot_name is not None and board is not None:
                slot = board.slot(slot_name)
                if slot.kind != _slot_kind(spec):
                    raise self.fail(
                        f"gpu[{e}].link",
                        f"the {spec.name} is a {_slot_kind(spec)} GPU; slot {slot.name} of"
                        f" the {board.name} is {slot.kind}",
                    )
                width_now = slot.width_with(populated - {slot.name})
                if width_now == 0:
                    others = ", ".join(sorted(populated & _sharers(slot)))
                    raise self.fail(
                        f"gpu[{e}]",
                        f"slot {slot.name} of the {board.name} is disabled while {others}"
                        " holds a card",
                    )
                via = slot.via
                gen = min(slot.gen, gpu_gen)
                width = min(width_now, gpu_width)
                basis = f"slot {slot.name} of the {board.name} (Gen{slot.gen} x{slot.width}"
                basis += f", x{width_now} as populated)" if width_now != slot.width else ")"
                if via == "cpu" and cpu_gen is not None and gen > cpu_gen:
                    basis += f", run at Gen{cpu_gen} (the CPU's lanes)"
                    gen = cpu_gen
            else:
                gen, width = gpu_gen, gpu_width
                if cpu_gen is not None and gen > cpu_gen:
                    gen = cpu_gen
                via = "cpu"
                basis = f"assumed: a full-width slot (Gen{gen} x{width}); no link or board given"
            link_gbs = pcie_gbs(gen, width)
            host_gbs = link_gbs
            if board is not None and via is not None and via != "cpu":
                up = board.uplink_named(via)
                assert up is not None  # the board catalog checks via names
                up_gen = min(up.gen, cpu_gen) if cpu_gen is not None else up.gen
                share = pcie_gbs(up_gen, up.width) / max(1, uplink_load.get(via, 1))
                if share < link_gbs:
                    host_gbs = share
                    basis += (
                        f"; behind {via} (Gen{up_gen} x{up.width}) shared by"
                        f" {uplink_load.get(via, 1)} GPU(s)"
                    )
            units.append(
                GpuUnit(
                    index=i,
                    entry=e,
                    spec=spec,
                    power_limit_w=entry.power_limit_w,
                    power_w=self.power_of(e, spec, entry.power_limit_w),
                    link_gen=gen,
                    link_width=width,
                    link_gbs=link_gbs,
                    host_gbs=host_gbs,
                    slot=slot_name,
                    via=via,
                    link_basis=basis,
                    nvlink=self.nvlink_of(e, spec, entry.nvlink),
                )
            )
        return units

    def power_of(self, e: int, spec: GpuSpec, limit: float | None) -> float:
        if limit is not None:
            return limit
        if spec.tdp_w is None:
            raise self.fail(
                f"gpu[{e}]",
                f"the catalog has no TDP for the {spec.name}: give power_limit_w",
            )
        return spec.tdp_w

    def nvlink_of(self, e: int, spec: GpuSpec, kind: str | None) -> str:
        if kind is None:
            if spec.nvlink_links is None:
                return "none"
            return {"sxm2": "mesh", "sxm4": "nvswitch", "sxm5": "nvswitch"}.get(
                spec.form_factor or "", "none"
            )
        if kind != "none" and spec.nvlink_links is None:
            raise self.fail(f"gpu[{e}].nvlink", f"the {spec.name} has no NVLink")
        if kind == "bridge" and spec.form_factor != "pcie":
            raise self.fail(f"gpu[{e}].nvlink", "bridges link PCIe cards; use mesh or nvswitch")
        return kind

    # -- PSUs

    def resolve_psus(self, n_gpus: int) -> list[PsuGroup]:
        f = self.file
        circuits = f.wall.circuits if f.wall else 1
        bus_entries: list[int] = []
        solo: list[int] = []
        for p, entry in enumerate(f.psu):
            where = f"psu[{p}]"
            if entry.bus is not None and entry.kind != "server":
                raise self.fail(
                    f"{where}.bus", 'only server PSUs (kind = "server") share a 12 V bus'
                )
            if entry.count > 1 and entry.bus is None:
                raise self.fail(
                    f"{where}.count",
                    'several PSUs in one entry must share a bus (bus = "12v-parallel");'
                    " give ATX PSUs one [[psu]] entry each",
                )
            if entry.atx3 and entry.kind != "atx":
                raise self.fail(f"{where}.atx3", "ATX 3.0 ratings apply to ATX PSUs only")
            if entry.circuit >= circuits:
                raise self.fail(
                    f"{where}.circuit",
                    f"circuit {entry.circuit} does not exist ([wall] circuits = {circuits};"
                    " circuits count from 0)",
                )
            (bus_entries if entry.bus else solo).append(p)
        # groups in file order of their first entry
        firsts = sorted(([bus_entries[0]] if bus_entries else []) + solo)
        groups_entries = [
            tuple(bus_entries) if bus_entries and first == bus_entries[0] else (first,)
            for first in firsts
        ]
        for members in groups_entries:
            for p in members[1:]:
                e0, ep = f.psu[members[0]], f.psu[p]
                for key in ("feeds", "system"):
                    if getattr(ep, key) is not None:
                        raise self.fail(
                            f"psu[{p}].{key}",
                            f"PSUs on one bus share the load: give {key} on psu[{members[0]}] only",
                        )
                if ep.circuit != e0.circuit:
                    raise self.fail(
                        f"psu[{p}].circuit",
                        "PSUs paralleled on one bus must be on one circuit in this model",
                    )
        # which GPUs each group feeds
        feeds: list[list[int] | str] = []
        for members in groups_entries:
            given = f.psu[members[0]].feeds
            if given is None:
                given = "all" if len(groups_entries) == 1 else "rest"
            feeds.append(given)
        if sum(1 for x in feeds if x == "all") and len(groups_entries) > 1:
            p = groups_entries[next(i for i, x in enumerate(feeds) if x == "all")][0]
            raise self.fail(
                f"psu[{p}].feeds", '"all" with several PSU groups: say which GPUs each feeds'
            )
        rest_groups = [i for i, x in enumerate(feeds) if x == "rest"]
        if len(rest_groups) > 1:
            p = groups_entries[rest_groups[1]][0]
            raise self.fail(
                f"psu[{p}].feeds",
                'only one PSU group can feed "rest": give the others a list of GPU indices',
            )
        owner: dict[int, int] = {}
        for g, x in enumerate(feeds):
            if isinstance(x, list):
                for i in x:
                    p = groups_entries[g][0]
                    if i >= n_gpus:
                        raise self.fail(
                            f"psu[{p}].feeds",
                            f"GPU {i} does not exist (the build has {n_gpus}; indices from 0)",
                        )
                    if i in owner:
                        raise self.fail(
                            f"psu[{p}].feeds",
                            f"GPU {i} is already fed by psu[{groups_entries[owner[i]][0]}]",
                        )
                    owner[i] = g
        gpu_lists: list[tuple[int, ...]] = []
        for x in feeds:
            if x == "all":
                gpu_lists.append(tuple(range(n_gpus)))
            elif x == "rest":
                gpu_lists.append(tuple(i for i in range(n_gpus) if i not in owner))
            else:
                assert isinstance(x, list)
                gpu_lists.append(tuple(sorted(x)))
        if groups_entries and not rest_groups and len(owner) < n_gpus and len(feeds) > 1:
            missing = [i for i in range(n_gpus) if i not in owner]
            raise self.fail(
                "psu", f'no PSU feeds GPU {", ".join(map(str, missing))} (use feeds = "rest")'
            )
        # which group feeds the CPU, board and the rest
        flagged = [g for g, m in enumerate(groups_entries) if f.psu[m[0]].system]
        if len(flagged) > 1:
            p = groups_entries[flagged[1]][0]
            raise self.fail(f"psu[{p}].system", "only one PSU group feeds the system")
        system_group = flagged[0] if flagged else 0
        groups: list[PsuGroup] = []
        for g, members in enumerate(groups_entries):
            first = f.psu[members[0]]
            efficiency = first.efficiency
            if efficiency is None:
                efficiency = DEFAULT_EFFICIENCY
            watts = tuple(f.psu[p].watts for p in members for _ in range(f.psu[p].count))
            groups.append(
                PsuGroup(
                    index=g,
                    entries=members,
                    label="+".join(f"psu[{p}]" for p in members),
                    model=first.model,
                    watts_each=watts,
                    kind=first.kind,
                    atx3=first.atx3,
                    parallel=first.bus is not None,
                    efficiency=efficiency,
                    gpus=gpu_lists[g],
                    system=g == system_group,
                    circuit=first.circuit,
                )
            )
        return groups

    # -- models

    def resolve_models(self, n_gpus: int) -> list[ModelSpec | None]:
        """Each [[model]]'s architecture: a preset, one built from the entry's figures, or
        None when the entry gives only params (enough for bandwidth bounds, not for fit)."""
        specs: list[ModelSpec | None] = []
        for m, entry in enumerate(self.file.model):
            where = f"model[{m}]"
            for i in entry.gpus or []:
                if not 0 <= i < n_gpus:
                    raise self.fail(
                        f"{where}.gpus",
                        f"GPU {i} does not exist (the build has {n_gpus}; indices from 0)",
                    )
            preset = find_model(entry.name) if entry.name is not None else None
            if preset is not None:
                if entry.arch_given:
                    raise self.fail(
                        f"{where}.{entry.arch_given[0]}",
                        f"{json.dumps(entry.name)} is a preset: leave out its architecture,"
                        " or name the model differently to describe your own",
                    )
                specs.append(preset)
                continue
            needed = ("params", "layers", "hidden", "heads", "kv_heads")
            if entry.params is None:
                assert entry.name is not None  # the model validator wants one of them
                close = closest_model_names(entry.name)
                hint = f"; did you mean {', '.join(close)}?" if close else ""
                raise self.fail(
                    f"{where}.name",
                    f"unknown model preset {json.dumps(entry.name)}{hint} (or describe it:"
                    " params, layers, hidden, heads, kv_heads)",
                )
            if any(getattr(entry, k) is None for k in needed):
                specs.append(None)
                continue
            specs.append(self.custom_model(m, entry))
        return specs

    def custom_model(self, m: int, entry: ModelEntry) -> ModelSpec:
        assert entry.layers is not None and entry.hidden is not None
        assert entry.heads is not None and entry.kv_heads is not None
        sliding: tuple[int, ...] | None = None
        if isinstance(entry.sliding_layers, str):
            sliding = sliding_window_layers(entry.sliding_layers, entry.layers)
        elif isinstance(entry.sliding_layers, list):
            sliding = tuple(entry.sliding_layers)
        try:
            return ModelSpec(
                name=entry.name or f"model[{m}]",
                params=round(entry.params),
                layers=entry.layers,
                hidden=entry.hidden,
                heads=entry.heads,
                kv_heads=entry.kv_heads,
                head_dim=entry.head_dim or 0,
                vocab=entry.vocab or 0,
                intermediate=entry.intermediate or 0,
                experts=entry.experts or 1,
                experts_per_token=entry.experts_per_token or 1,
                tie_embeddings=bool(entry.tie_embeddings),
                sliding_window=entry.sliding_window,
                sliding_layers=sliding,
            )
        except BadInput as exc:
            message = str(exc).split(": ", 1)[-1]
            raise self.fail(f"model[{m}]", message) from None


def _socket_key(socket: str) -> str:
    return re.sub(r"[\s\-_]+", "", socket.casefold())


def _slot_kind(spec: GpuSpec) -> str:
    ff = spec.form_factor or "pcie"
    return ff if ff in ("sxm2", "sxm4", "sxm5") else "pcie"


def _sharers(slot: Slot) -> set[str]:
    return {name for rule in slot.shares if rule.width == 0 for name in rule.when}
