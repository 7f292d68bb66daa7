"""The GPU catalog: vendor figures for the GPUs rigbench knows, each with its source.

The data lives in `data/gpus.toml` (shipped as package data) and is validated when first
loaded; a malformed file raises `CatalogError` naming the entry and the field. Benchmarks
read their peaks from here ("measured 790 TFLOP/s of 989.4 peak"); `plan` checks parts
lists against it.

Lookups (`find_gpu`) match exactly on the id, the name, the names NVML reports and the
aliases people type, ignoring case, spaces, dashes and underscores. Brand words (NVIDIA,
GeForce, Tesla, AMD, Radeon) are optional: "rtx 4090" and "NVIDIA GeForce RTX 4090" both
resolve. No fuzzy matching: "NVIDIA GeForce RTX 3090" is the 3090, never the 3090 Ti.
"""

from __future__ import annotations

import difflib
import functools
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from types import MappingProxyType
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

from rigbench.catalog._names import NameIndex, normalize
from rigbench.errors import RigbenchError

# Keys allowed in [gpu.peak_tflops]: dense peaks in TFLOP/s (int8 in TOPS).
DTYPES: tuple[str, ...] = ("fp64", "fp32", "tf32", "fp16", "bf16", "fp8", "int8")

# Field groups of [gpu.sources] and the GpuSpec fields each one covers. A group that has a
# value must have a source; a source for a group with no value is an error too.
SOURCE_GROUPS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "peak_tflops": ("peak_tflops",),
        "memory": ("memory_gib", "memory_type", "memory_bandwidth_gbs"),
        "power": ("tdp_w",),
        "transient_peak_w": ("transient_peak_w",),
        "interconnect": ("nvlink_version", "nvlink_links", "nvlink_gbs_per_link", "p2p_over_pcie"),
        "board": ("pcie_gen", "pcie_width", "form_factor", "slot_width"),
        "architecture": ("architecture", "compute_capability"),
    }
)
REQUIRED_SOURCES: tuple[str, ...] = ("peak_tflops", "memory")

FORM_FACTORS: tuple[str, ...] = ("pcie", "sxm2", "sxm4", "sxm5")

# Dropped from a name when the exact lookup fails ("NVIDIA RTX 4090" -> "RTX 4090").
_BRAND_WORDS = frozenset({"nvidia", "geforce", "tesla", "amd", "radeon"})

_DATA_FILE = "gpus.toml"
_ID_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_CC_RE = re.compile(r"^\d+\.\d+$")
_PCIE_WIDTHS = (1, 2, 4, 8, 16)


class CatalogError(RigbenchError):
    """The GPU catalog file is missing, unreadable or does not validate."""


@dataclass(frozen=True, slots=True, kw_only=True)
class GpuSpec:
    """One GPU model. A figure that was not found in any source is `None` (or absent from
    `peak_tflops`), never a guess; `sources` says where each figure group comes from."""

    id: str
    name: str
    vendor: str
    nvml_names: tuple[str, ...]
    aliases: tuple[str, ...]
    architecture: str
    compute_capability: str | None
    memory_gib: float
    memory_type: str | None
    memory_bandwidth_gbs: float | None  # GB/s, 1e9 bytes
    tdp_w: float | None
    transient_peak_w: float | None  # a measured millisecond spike above tdp_w
    pcie_gen: int | None
    pcie_width: int | None
    form_factor: str | None  # one of FORM_FACTORS
    slot_width: float | None  # expansion slots the card occupies; None for SXM modules
    nvlink_version: int | None
    nvlink_links: int | None
    nvlink_gbs_per_link: float | None  # GB/s per link, per direction
    p2p_over_pcie: bool | None  # does the stock driver enable PCIe peer-to-peer
    peak_tflops: Mapping[str, float]  # dense, per dtype in DTYPES; int8 in TOPS
    # field group (SOURCE_GROUPS) -> citation with URL; long, so kept out of repr()
    sources: Mapping[str, str] = field(repr=False)

    def __hash__(self) -> int:
        return hash(self.id)

    def source_for(self, field_group: str) -> str | None:
        """The citation for a field group ("peak_tflops", "memory", ...), if any."""
        return self.sources.get(field_group)

    @property
    def nvlink_gbs_per_direction(self) -> float | None:
        """Aggregate NVLink bandwidth per direction (links x per-link), if it has NVLink."""
        if self.nvlink_links is None or self.nvlink_gbs_per_link is None:
            return None
        return self.nvlink_links * self.nvlink_gbs_per_link

    @property
    def lookup_names(self) -> tuple[str, ...]:
        """Every string `find_gpu` resolves to this GPU: id, name, NVML names, aliases."""
        return (self.id, self.name, *self.nvml_names, *self.aliases)


# ----------------------------------------------------------------------------- loading


@functools.cache
def load_gpus() -> tuple[GpuSpec, ...]:
    """The shipped catalog, validated; read once per process."""
    resource = resources.files("rigbench.catalog").joinpath("data").joinpath(_DATA_FILE)
    origin = f"rigbench/catalog/data/{_DATA_FILE}"
    try:
        raw = resource.read_bytes()
    except OSError as exc:
        raise CatalogError(f"{origin}: cannot read the GPU catalog: {exc}") from exc
    return parse_catalog_bytes(raw, origin=origin)


def parse_catalog_bytes(raw: bytes, *, origin: str = "gpus.toml") -> tuple[GpuSpec, ...]:
    """Parse and validate catalog TOML text; `origin` names the file in error messages."""
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise CatalogError(f"{origin}: not valid TOML: {exc}") from exc
    return parse_catalog(data, origin=origin)


def parse_catalog(data: Mapping[str, Any], *, origin: str = "gpus.toml") -> tuple[GpuSpec, ...]:
    """Validate an already-parsed catalog document and build the specs."""
    unknown_top = sorted(set(data) - {"gpu"})
    if unknown_top:
        raise CatalogError(f"{origin}: unknown top-level key(s): {', '.join(unknown_top)}")
    entries = data.get("gpu")
    if not isinstance(entries, list) or not entries:
        raise CatalogError(f"{origin}: expected a non-empty list of [[gpu]] tables")

    specs: list[GpuSpec] = []
    for i, entry in enumerate(entries):
        label = f"{origin}: gpu[{i}]"
        if not isinstance(entry, dict):
            raise CatalogError(f"{label}: expected a table, got {type(entry).__name__}")
        if isinstance(entry.get("id"), str):
            label = f"{label} ({entry['id']!r})"
        specs.append(_Entry(entry, label).build())

    _check_unique(specs, origin)
    return tuple(specs)


_FIELDS: tuple[str, ...] = (
    "id",
    "name",
    "vendor",
    "nvml_names",
    "aliases",
    "architecture",
    "compute_capability",
    "memory_gib",
    "memory_type",
    "memory_bandwidth_gbs",
    "tdp_w",
    "transient_peak_w",
    "pcie_gen",
    "pcie_width",
    "form_factor",
    "slot_width",
    "nvlink_version",
    "nvlink_links",
    "nvlink_gbs_per_link",
    "p2p_over_pcie",
    "peak_tflops",
    "sources",
)
_REQUIRED: tuple[str, ...] = (
    "id",
    "name",
    "vendor",
    "architecture",
    "memory_gib",
    "peak_tflops",
    "sources",
)


class _Entry:
    """Validates one [[gpu]] table; every error names the entry and the field."""

    def __init__(self, raw: dict[str, Any], label: str) -> None:
        self.raw = raw
        self.label = label

    def fail(self, message: str) -> CatalogError:
        return CatalogError(f"{self.label}: {message}")

    def build(self) -> GpuSpec:
        unknown = sorted(set(self.raw) - set(_FIELDS))
        if unknown:
            raise self.fail(f"unknown key(s): {_with_hints(unknown, _FIELDS)}")
        missing = [k for k in _REQUIRED if k not in self.raw]
        if missing:
            raise self.fail(f"missing required field(s): {', '.join(missing)}")

        spec_id = self.string("id")
        if not _ID_RE.match(spec_id):
            raise self.fail(f"id {spec_id!r} must be a lowercase slug like 'h100-sxm'")
        cc = self.opt_string("compute_capability")
        if cc is not None and not _CC_RE.match(cc):
            raise self.fail(f"compute_capability {cc!r} must look like '8.6'")
        form_factor = self.opt_string("form_factor")
        if form_factor is not None and form_factor not in FORM_FACTORS:
            raise self.fail(f"form_factor {form_factor!r} is not one of {', '.join(FORM_FACTORS)}")
        pcie_gen = self.opt_int("pcie_gen")
        if pcie_gen is not None and not 1 <= pcie_gen <= 7:
            raise self.fail(f"pcie_gen {pcie_gen} is out of range")
        pcie_width = self.opt_int("pcie_width")
        if pcie_width is not None and pcie_width not in _PCIE_WIDTHS:
            raise self.fail(f"pcie_width {pcie_width} is not one of {_PCIE_WIDTHS}")

        tdp_w = self.opt_positive("tdp_w")
        transient = self.opt_positive("transient_peak_w")
        if transient is not None and tdp_w is not None and transient <= tdp_w:
            raise self.fail(f"transient_peak_w {transient:g} should exceed tdp_w {tdp_w:g}")

        nvlink_version = self.opt_int("nvlink_version", minimum=1)
        nvlink_links = self.opt_int("nvlink_links", minimum=1)
        nvlink_gbs = self.opt_positive("nvlink_gbs_per_link")
        given = [v is not None for v in (nvlink_version, nvlink_links, nvlink_gbs)]
        if any(given) and not all(given):
            raise self.fail(
                "nvlink_version, nvlink_links and nvlink_gbs_per_link go together: "
                "give all three or none"
            )

        spec = GpuSpec(
            id=spec_id,
            name=self.string("name"),
            vendor=self.string("vendor"),
            nvml_names=self.strings("nvml_names"),
            aliases=self.strings("aliases"),
            architecture=self.string("architecture"),
            compute_capability=cc,
            memory_gib=self.positive("memory_gib"),
            memory_type=self.opt_string("memory_type"),
            memory_bandwidth_gbs=self.opt_positive("memory_bandwidth_gbs"),
            tdp_w=tdp_w,
            transient_peak_w=transient,
            pcie_gen=pcie_gen,
            pcie_width=pcie_width,
            form_factor=form_factor,
            slot_width=self.opt_positive("slot_width"),
            nvlink_version=nvlink_version,
            nvlink_links=nvlink_links,
            nvlink_gbs_per_link=nvlink_gbs,
            p2p_over_pcie=self.opt_bool("p2p_over_pcie"),
            peak_tflops=self.peaks(),
            sources=self.sources(),
        )
        self.check_sources_cover(spec)
        return spec

    # -- typed getters

    def string(self, key: str) -> str:
        value = self.raw.get(key)
        if not isinstance(value, str) or not value.strip():
            raise self.fail(f"{key} must be a non-empty string")
        return value

    def opt_string(self, key: str) -> str | None:
        return None if key not in self.raw else self.string(key)

    def strings(self, key: str) -> tuple[str, ...]:
        value = self.raw.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise self.fail(f"{key} must be a list of non-empty strings")
        return tuple(value)

    def opt_int(self, key: str, *, minimum: int | None = None) -> int | None:
        if key not in self.raw:
            return None
        value = self.raw[key]
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(f"{key} must be an integer, got {value!r}")
        if minimum is not None and value < minimum:
            raise self.fail(f"{key} must be at least {minimum}, got {value}")
        return value

    def positive(self, key: str) -> float:
        value = self.raw.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise self.fail(f"{key} must be a positive number, got {value!r}")
        return float(value)

    def opt_positive(self, key: str) -> float | None:
        return None if key not in self.raw else self.positive(key)

    def opt_bool(self, key: str) -> bool | None:
        if key not in self.raw:
            return None
        value = self.raw[key]
        if not isinstance(value, bool):
            raise self.fail(f"{key} must be true or false, got {value!r}")
        return value

    def peaks(self) -> Mapping[str, float]:
        table = self.raw["peak_tflops"]
        if not isinstance(table, dict) or not table:
            raise self.fail("peak_tflops must be a non-empty table of dtype = TFLOP/s")
        unknown = sorted(set(table) - set(DTYPES))
        if unknown:
            raise self.fail(f"peak_tflops: unknown dtype(s): {_with_hints(unknown, DTYPES)}")
        peaks: dict[str, float] = {}
        for dtype in DTYPES:  # a stable order, whatever the file's
            if dtype not in table:
                continue
            value = table[dtype]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise self.fail(f"peak_tflops.{dtype} must be a positive number, got {value!r}")
            peaks[dtype] = float(value)
        return MappingProxyType(peaks)

    def sources(self) -> Mapping[str, str]:
        table = self.raw["sources"]
        if not isinstance(table, dict):
            raise self.fail("sources must be a table of field group = citation")
        unknown = sorted(set(table) - set(SOURCE_GROUPS))
        if unknown:
            raise self.fail(
                f"sources: unknown field group(s): {_with_hints(unknown, SOURCE_GROUPS)}"
            )
        for group, citation in table.items():
            if not isinstance(citation, str) or not citation.strip():
                raise self.fail(f"sources.{group} must be a non-empty citation string")
        return MappingProxyType({g: table[g] for g in SOURCE_GROUPS if g in table})

    def check_sources_cover(self, spec: GpuSpec) -> None:
        for group in REQUIRED_SOURCES:
            if group not in spec.sources:
                raise self.fail(f"sources.{group} is required")
        for group, fields in SOURCE_GROUPS.items():
            has_value = any(k in self.raw for k in fields)
            if has_value and group not in spec.sources:
                present = ", ".join(k for k in fields if k in self.raw)
                raise self.fail(f"{present} given without sources.{group}")
            if not has_value and group in spec.sources:
                raise self.fail(f"sources.{group} cites a figure the entry does not give")


def _with_hints(names: list[str], known: Any) -> str:
    parts = []
    for name in names:
        close = difflib.get_close_matches(name, list(known), n=1)
        parts.append(f"{name!r} (did you mean {close[0]!r}?)" if close else repr(name))
    return ", ".join(parts)


def _check_unique(specs: list[GpuSpec], origin: str) -> None:
    ids: set[str] = set()
    owner: dict[str, str] = {}
    for spec in specs:
        if spec.id in ids:
            raise CatalogError(f"{origin}: duplicate id {spec.id!r}")
        ids.add(spec.id)
        for name in spec.lookup_names:
            key = normalize(name)
            if not key:
                raise CatalogError(f"{origin}: {spec.id!r}: name {name!r} is empty once normalized")
            other = owner.setdefault(key, spec.id)
            if other != spec.id:
                raise CatalogError(
                    f"{origin}: {name!r} of {spec.id!r} already names {other!r}; "
                    "a lookup name must be unique"
                )


# ----------------------------------------------------------------------------- lookups


@functools.cache
def _index() -> NameIndex[GpuSpec]:
    return NameIndex.build(((s, s.lookup_names, s.name) for s in load_gpus()), _BRAND_WORDS)


def find_gpu(name: str) -> GpuSpec | None:
    """The GPU whose id, name, NVML name or alias is `name`, or None.

    Exact match after ignoring case, spaces, dashes and underscores; brand words (NVIDIA,
    GeForce, Tesla, AMD, Radeon) may be added or left out. Never a near miss."""
    return _index().find(name)


def closest_gpu_names(name: str, n: int = 3) -> list[str]:
    """Up to `n` catalog GPU names that look like `name`, best first, for error messages."""
    return _index().closest(name, n)


def search_gpus(query: str) -> list[GpuSpec]:
    """GPUs matching every word of `query`, in catalog order. A word matches a GPU when it
    is a substring of its id, name, an NVML name, an alias or its vendor, or the start of a
    word of its architecture ("ampere", "ga102"; "h100" does not match the H200's GH100).
    Case-, space- and dash-insensitive. An empty query lists the whole catalog."""
    words = [w for w in (normalize(w) for w in query.split()) if w]
    results = []
    for spec in load_gpus():
        names = "|".join(normalize(f) for f in (*spec.lookup_names, spec.vendor))
        arch_words = re.findall(r"[a-z0-9.]+", spec.architecture.casefold())
        if all(w in names or any(a.startswith(w) for a in arch_words) for w in words):
            results.append(spec)
    return results
