"""The workloads' settings (`bench --set KEY=VALUE`, repeatable): typed, validated, listed
in `bench --help` and the README. Unset keys take the defaults of the mode and device.

    rigbench bench --only train,infer --set train.compile=1 --set infer.contexts=512,4096
"""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from rigbench.errors import BadInput

TrainSize = Literal["tiny", "124m", "350m", "774m", "1.5b", "6.7b"]
InferModel = Literal["tiny", "1b", "3b", "8b"]
CollectiveOp = Literal["all_reduce", "all_gather", "reduce_scatter", "broadcast", "all_to_all"]
"""The collectives, in the order they run (rigbench.bench.collectives.OPS)."""


class WorkloadOptions(BaseModel):
    """One field per setting; the key on the command line is the field name with its first
    underscore as a dot (train_size -> train.size)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    train_size: TrainSize | None = Field(
        default=None, description="GPT size (default 124m on a GPU, tiny on the CPU)"
    )
    train_compile: Literal["0", "1", "both"] | None = Field(
        default=None, description="torch.compile the model: 0, 1 or both (default: 0; --full: both)"
    )
    train_fsdp: Literal["0", "1"] | None = Field(
        default=None, description="add an FSDP run over all devices (default: 0; --full: 1)"
    )
    train_batch: int | None = Field(
        default=None,
        ge=1,
        description="micro-batch per device (default: the largest power of 2 that fits)",
    )
    infer_model: InferModel | None = Field(
        default=None, description="Llama-shaped model: tiny, 1b, 3b, 8b (default 8b on a GPU)"
    )
    infer_engine: Literal["eager", "graph", "compile"] | None = Field(
        default=None, description="decode engine (default compile on a GPU, eager on the CPU)"
    )
    infer_attn: Literal["sdpa", "matmul"] | None = Field(
        default=None, description="attention kernel (default matmul on a GPU, sdpa on the CPU)"
    )
    infer_contexts: tuple[int, ...] | None = Field(
        default=None, description="prompt lengths, comma-separated"
    )
    infer_batches: tuple[int, ...] | None = Field(
        default=None, description="batch sizes, comma-separated"
    )
    collectives_ops: tuple[CollectiveOp, ...] | None = Field(
        default=None,
        description="collectives to run, comma-separated (default: "
        + ", ".join(get_args(CollectiveOp))
        + ")",
    )
    nbody_engines: tuple[Literal["triton", "torch"], ...] | None = Field(
        default=None, description="integrators: triton, torch (default both on a GPU)"
    )

    @field_validator("infer_contexts", "infer_batches", mode="before")
    @classmethod
    def _int_list(cls, v: object) -> object:
        if isinstance(v, str):
            try:
                v = tuple(int(x) for x in v.split(",") if x.strip())
            except ValueError:
                raise ValueError("positive integers separated by commas") from None
            if not v or min(v) < 1:
                raise ValueError("positive integers separated by commas")
        return v

    @field_validator("nbody_engines", "collectives_ops", mode="before")
    @classmethod
    def _names(cls, v: object) -> object:
        if isinstance(v, str):
            return tuple(x.strip() for x in v.split(",") if x.strip())
        return v


def option_keys() -> dict[str, str]:
    """KEY -> description, for help text and the README."""
    return {
        name.replace("_", ".", 1): field.description or ""
        for name, field in WorkloadOptions.model_fields.items()
    }


def parse_sets(items: list[str] | None) -> WorkloadOptions:
    """`--set KEY=VALUE` items as options; BadInput names the item and what is wrong."""
    raw: dict[str, str] = {}
    keys = option_keys()
    for item in items or []:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in keys:
            raise BadInput(f"--set {item!r}: expected KEY=VALUE with KEY one of {', '.join(keys)}")
        raw[key.replace(".", "_", 1)] = value.strip().lower()
    try:
        return WorkloadOptions.model_validate(raw)
    except ValidationError as exc:
        e = exc.errors()[0]
        key = str(e["loc"][0]).replace("_", ".", 1) if e["loc"] else "?"
        raise BadInput(f"--set {key}={raw.get(str(e['loc'][0]), '')}: {e['msg']}") from None


def options_of(extra: dict[str, object]) -> WorkloadOptions:
    """The options a benchmark context carries (defaults when none were given)."""
    opts = extra.get("options")
    return opts if isinstance(opts, WorkloadOptions) else WorkloadOptions()
