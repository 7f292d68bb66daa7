"""The CPU catalog: PCIe lanes and generation, cores and power of the CPUs people build
deep-learning rigs on, each entry with the vendor page it comes from.

The data lives in `data/cpus.toml` and is validated when first loaded; a malformed file
raises `CatalogError` naming the entry and the key. `plan` checks a build's lanes against
it. Lookups (`find_cpu`) match the id, the name or an alias exactly, ignoring case,
spaces, dashes and underscores; brand words (AMD, Intel, Ryzen, Threadripper, PRO, Core,
Xeon, EPYC) may be added or left out.

>>> find_cpu("Threadripper 1920X").pcie_lanes
60
"""

from __future__ import annotations

import functools
import re
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from rigbench.catalog._names import (
    NameIndex,
    check_unique_names,
    matches_query,
    read_data_toml,
    validation_message,
)
from rigbench.catalog.gpus import CatalogError

_FILE = "cpus.toml"
_BRAND_WORDS = frozenset(
    {"amd", "intel", "ryzen", "threadripper", "pro", "core", "xeon", "epyc", "processor", "cpu"}
)

Slug = Annotated[str, Field(pattern=r"^[a-z0-9]+(?:-[a-z0-9]+)*$")]
Text = Annotated[str, Field(min_length=1)]


class CpuSpec(BaseModel):
    """One CPU model. Lanes are what one socket gives to slots and devices."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    id: Slug
    name: Text
    vendor: Text
    aliases: Annotated[tuple[Text, ...], Field(strict=False)] = ()
    family: Text
    socket: Text
    cores: Annotated[int, Field(ge=1, le=512)]
    threads: Annotated[int, Field(ge=1, le=1024)]
    tdp_w: Annotated[float, Field(gt=0, le=1000)]
    max_power_w: Annotated[float, Field(gt=0, le=1500)] | None = None
    pcie_gen: Annotated[int, Field(ge=1, le=6)]
    pcie_lanes: Annotated[int, Field(ge=1, le=256)]
    pcie_lanes_total: Annotated[int, Field(ge=1, le=256)] | None = None
    pcie_lanes_2s: Annotated[int, Field(ge=1, le=512)] | None = None
    max_sockets: Annotated[int, Field(ge=1, le=8)] = 1
    source: Annotated[str, Field(pattern=r"https?://")]
    notes: Text | None = None

    @model_validator(mode="after")
    def _consistent(self) -> CpuSpec:
        if self.threads < self.cores:
            raise ValueError("threads must be at least cores")
        if self.max_power_w is not None and self.max_power_w < self.tdp_w:
            raise ValueError("max_power_w must be at least tdp_w")
        if self.pcie_lanes_total is not None and self.pcie_lanes_total < self.pcie_lanes:
            raise ValueError("pcie_lanes_total must be at least pcie_lanes")
        if self.pcie_lanes_2s is not None and self.max_sockets < 2:
            raise ValueError("pcie_lanes_2s given for a one-socket CPU")
        return self

    @property
    def power_w(self) -> float:
        """What `plan` budgets for one socket: max turbo power where published, else TDP."""
        return self.max_power_w if self.max_power_w is not None else self.tdp_w

    def lanes_for(self, sockets: int) -> int:
        """PCIe lanes a system with `sockets` of this CPU gives to slots and devices."""
        if sockets >= 2 and self.pcie_lanes_2s is not None:
            return self.pcie_lanes_2s
        return self.pcie_lanes * sockets

    @property
    def lookup_names(self) -> tuple[str, ...]:
        return (self.id, self.name, *self.aliases)


class _CpuFile(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    cpu: list[CpuSpec] = Field(min_length=1)


def parse_cpus(data: Any, *, origin: str = _FILE) -> tuple[CpuSpec, ...]:
    """Validate a parsed CPU catalog document; errors name the entry and the key."""
    try:
        specs = tuple(_CpuFile.model_validate(data).cpu)
    except ValidationError as exc:
        raise CatalogError(validation_message(origin, "cpu", data, exc)) from None
    check_unique_names(specs, origin, CatalogError)
    return specs


@functools.cache
def load_cpus() -> tuple[CpuSpec, ...]:
    """The shipped CPU catalog, validated; read once per process."""
    data, origin = read_data_toml(_FILE, CatalogError)
    return parse_cpus(data, origin=origin)


@functools.cache
def _index() -> NameIndex[CpuSpec]:
    return NameIndex.build(((c, c.lookup_names, c.name) for c in load_cpus()), _BRAND_WORDS)


def _clean(name: str) -> str:
    """Drop what /proc/cpuinfo adds to a model name: (R), (TM), "12-Core Processor",
    "CPU @ 2.40GHz", "12th Gen"."""
    name = re.sub(r"\((?:R|TM)\)", " ", name, flags=re.IGNORECASE)
    name = re.sub(r"@\s*[\d.]+\s*GHz", " ", name, flags=re.IGNORECASE)
    name = re.sub(
        r"\b\d+-Cores?\b|\bProcessor\b|\bCPU\b|\b\d+(?:st|nd|rd|th) Gen\b",
        " ",
        name,
        flags=re.IGNORECASE,
    )
    return " ".join(name.split())


def find_cpu(name: str) -> CpuSpec | None:
    """The CPU whose id, name or alias is `name` (brand words optional), or None. The
    model names /proc/cpuinfo reports resolve too ("Intel(R) Xeon(R) CPU E5-2680 v4 @
    2.40GHz", "AMD Ryzen Threadripper PRO 7955WX 16-Cores")."""
    return _index().find(name) or _index().find(_clean(name))


def closest_cpu_names(name: str, n: int = 3) -> list[str]:
    """Up to `n` catalog CPU names that look like `name`, best first."""
    return _index().closest(name, n)


def search_cpus(query: str) -> list[CpuSpec]:
    """CPUs matching every word of `query` (id, name, alias, vendor, family, socket)."""
    return [
        c
        for c in load_cpus()
        if matches_query(query, (*c.lookup_names, c.vendor, c.family, c.socket))
    ]
