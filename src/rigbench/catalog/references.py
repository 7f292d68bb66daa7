"""What healthy hardware measures: the reference set (`data/references.toml`, format in
REFERENCES_SCHEMA.md), each entry with its source, validated when first loaded.

An entry says, for a GPU model (or "*" for link-only figures, "cpu" for the CPU backend)
and a benchmark metric, the typical value and the healthy range, optionally only under
qualifiers (power limit, link, topology, size). Ratio entries give the range as a fraction
of the link's theoretical rate instead. Where the set has no entry the tool says "no
reference"; nothing here is a guess.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Mapping
from importlib import resources
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from rigbench.catalog.gpus import CatalogError, find_gpu

Benchmark = Literal["gemm", "memory", "hostlink", "p2p", "collectives", "train", "infer"]
GEMM_DTYPES = ("fp64", "fp32", "tf32", "fp16", "bf16", "fp8", "int8")
# benchmark -> the metrics the schema's vocabulary allows
METRICS: Mapping[str, tuple[str, ...]] = {
    "gemm": tuple(f"{d}.{k}" for d in GEMM_DTYPES for k in ("burst", "sustained")),
    "memory": ("copy",),
    "hostlink": ("h2d.pinned", "d2h.pinned"),
    "p2p": ("unidir", "bidir"),
    "collectives": ("all_reduce.busbw",),
    "train": ("mfu", "scaling_efficiency"),
    "infer": ("decode.roofline_ratio",),
}
_DATA_FILE = "references.toml"


class Reference(BaseModel):
    """One healthy-hardware figure and where it comes from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1)
    gpu: str = Field(min_length=1)
    benchmark: Benchmark
    metric: str
    unit: str
    typical: float | None = None
    low: float | None = None
    high: float | None = None
    ratio_typical: float | None = None
    ratio_low: float | None = None
    ratio_high: float | None = None
    power_limit_w: float | None = None
    link: str | None = None
    topology: str | None = None
    size: str | None = None
    # P2P: whether the figure is for pairs with peer access (a direct copy) or without (staged
    # through host memory); the two differ by 2-3x on the same link
    p2p: bool | None = None
    # train: eager PyTorch or torch.compile; the same GPU differs by ~1.4x between them
    engine: Literal["eager", "compiled"] | None = None
    conditions: str | None = None
    source: str = Field(min_length=1)
    note: str = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> Reference:
        if self.metric not in METRICS[self.benchmark]:
            raise ValueError(
                f"metric {self.metric!r} is not in the {self.benchmark} vocabulary"
                f" ({', '.join(METRICS[self.benchmark])})"
            )
        if self.gpu not in ("*", "cpu") and find_gpu(self.gpu) is None:
            raise ValueError(f"gpu {self.gpu!r} is not in the GPU catalog (or '*' or 'cpu')")
        absolute = (self.low, self.high)
        ratio = (self.ratio_low, self.ratio_high)
        if self.is_ratio:
            if None in ratio or any(v is not None for v in (*absolute, self.typical)):
                raise ValueError("a ratio entry gives ratio_low and ratio_high and no low/high")
            if self.gpu != "*":
                raise ValueError('a ratio entry is for any GPU: gpu = "*"')
        elif self.low is None and self.high is None:
            raise ValueError("give low and/or high (or ratio_low/ratio_high)")
        lo, hi = ratio if self.is_ratio else absolute
        if lo is not None and hi is not None and lo > hi:
            raise ValueError(f"low ({lo:g}) is above high ({hi:g})")
        return self

    @property
    def is_ratio(self) -> bool:
        return self.ratio_low is not None or self.ratio_high is not None

    @property
    def gpu_key(self) -> str:
        """The catalog id of the entry's GPU ("*" and "cpu" as they are)."""
        if self.gpu in ("*", "cpu"):
            return self.gpu
        spec = find_gpu(self.gpu)
        return spec.id if spec else self.gpu

    def range_for(self, link_rate: float | None) -> tuple[float | None, float | None, float | None]:
        """(low, typical, high) in the metric's unit; a ratio entry needs the link's rate."""
        if not self.is_ratio:
            return self.low, self.typical, self.high
        if not link_rate:
            return None, None, None

        def scale(v: float | None) -> float | None:
            return v * link_rate if v is not None else None

        return scale(self.ratio_low), scale(self.ratio_typical), scale(self.ratio_high)


def parse_references(raw: bytes | str, *, origin: str = _DATA_FILE) -> tuple[Reference, ...]:
    """Entries of a references file; CatalogError names the entry and what is wrong."""
    try:
        data: dict[str, Any] = tomllib.loads(raw.decode() if isinstance(raw, bytes) else raw)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise CatalogError(f"{origin}: not valid TOML: {exc}") from exc
    extra = set(data) - {"reference"}
    if extra:
        raise CatalogError(f"{origin}: unknown top-level key {sorted(extra)[0]!r}")
    out: list[Reference] = []
    seen: set[str] = set()
    for i, entry in enumerate(data.get("reference", [])):
        label = f"reference[{i}]" + (f" ({entry['id']})" if "id" in entry else "")
        try:
            ref = Reference.model_validate(entry)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "entry"
            raise CatalogError(f"{origin}: {label}: {where}: {first['msg']}") from None
        if ref.id in seen:
            raise CatalogError(f"{origin}: {label}: id {ref.id!r} is used twice")
        seen.add(ref.id)
        out.append(ref)
    return tuple(out)


@functools.cache
def load_references() -> tuple[Reference, ...]:
    """The shipped reference set."""
    resource = resources.files("rigbench.catalog").joinpath("data").joinpath(_DATA_FILE)
    return parse_references(resource.read_bytes())


def find_references(
    *,
    gpu: str,
    benchmark: str,
    metric: str,
    power_limit_w: float | None = None,
    link: str | None = None,
    topology: str | None = None,
    size: str | None = None,
    p2p: bool | None = None,
    engine: str | None = None,
    references: tuple[Reference, ...] | None = None,
) -> list[Reference]:
    """Entries for this GPU ("cpu" for the CPU backend) and metric whose qualifiers the
    result matches, most specific first. A GPU-specific entry wins over a "*" one; an
    entry measured at a power limit applies only within 5 % of it (a capped card is not
    judged against uncapped figures); link, topology, size, peer access and engine
    must match exactly."""
    refs = load_references() if references is None else references
    if gpu in ("*", "cpu"):
        key = gpu
    else:
        spec = find_gpu(gpu)
        key = spec.id if spec else gpu
    matches = []
    for r in refs:
        if r.benchmark != benchmark or r.metric != metric:
            continue
        if r.gpu_key not in (key, "*") or (key == "cpu" and r.gpu_key != "cpu"):
            continue
        if r.power_limit_w is not None and (
            power_limit_w is None or abs(power_limit_w - r.power_limit_w) > 0.05 * r.power_limit_w
        ):
            continue
        if r.link is not None and r.link != link:
            continue
        if r.topology is not None and r.topology != topology:
            continue
        if r.size is not None and size is not None and r.size != size:
            continue
        if r.p2p is not None and r.p2p != p2p:
            continue
        if r.engine is not None and r.engine != engine:
            continue
        matches.append(r)

    def specificity(r: Reference) -> int:
        qualifiers = (r.power_limit_w, r.link, r.topology, r.size, r.p2p, r.engine)
        return sum(x is not None for x in qualifiers) + 10 * (r.gpu_key != "*")

    return sorted(matches, key=specificity, reverse=True)
