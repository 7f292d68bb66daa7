"""A build file resolved: each GPU with its catalog entry, power and host link, the PSU
groups and what they feed, the CPU and board (`Build`, `GpuUnit`, `PsuGroup`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rigbench.catalog import BoardSpec, CpuSpec, GpuSpec
from rigbench.catalog.models import ModelSpec
from rigbench.plan.cpu_load import CPU_LOAD_SHARE, CPU_LOAD_SOURCE, cpu_load_w
from rigbench.plan.efficiency import EFFICIENCY_TIERS
from rigbench.plan.schema import (
    DEFAULT_OTHER_W,
    BuildFile,
    CostsSection,
    ModelEntry,
    UsageSection,
    WallSection,
)

# NVSwitch baseboards (HGX/DGX) carry switches, NICs, many DIMMs and a fan wall: ~300 W per
# GPU. Derived from NVIDIA's DGX A100 figures: 6.5 kW maximum system power, less 8 x 400 W
# GPUs and 2 x 225 W EPYC 7742, at ~94 % PSU efficiency, leaves ~2.5 kW (~305 W per GPU);
# DGX H100 (10.2 kW max, 8 x 700 W, 2 x 350 W) leaves ~3.3 kW at full fan speed.
HGX_OTHER_W_PER_GPU = 300.0
HGX_OTHER_SOURCE = (
    "derived from NVIDIA DGX A100 (6.5 kW max) and DGX H100 (10.2 kW max) system power less"
    " their GPUs and CPUs"
)


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
    redundant: int = 0  # units held in reserve (N+M), not counted as capacity
    unit_circuits: tuple[int, ...] = ()  # the circuit (phase) of each unit

    def share_on(self, circuit: int) -> float:
        """The share of this group's draw that `circuit` carries: paralleled units share
        the load evenly, so each circuit carries its units' part."""
        if not self.unit_circuits:
            return 1.0 if circuit == self.circuit else 0.0
        return self.unit_circuits.count(circuit) / len(self.unit_circuits)

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
        """Board, RAM, drives, fans, NICs: [power] other_w, else a default by platform."""
        o = self.file.power.other_w
        if o is not None:
            return o
        switched = sum(1 for g in self.gpus if g.nvlink == "nvswitch")
        return max(DEFAULT_OTHER_W, HGX_OTHER_W_PER_GPU * switched)

    @property
    def other_basis(self) -> str:
        """Where other_w comes from, for findings."""
        if self.file.power.other_w is not None:
            return "[power] other_w from the build file"
        if any(g.nvlink == "nvswitch" for g in self.gpus):
            return f"{HGX_OTHER_W_PER_GPU:g} W per NVSwitch-board GPU ({HGX_OTHER_SOURCE})"
        return f"{DEFAULT_OTHER_W:g} W, a round figure for board, RAM, drives and fans"

    @property
    def cpu_w(self) -> float:
        """Power budgeted for the CPUs at full load: [power] cpu_w, else their rating
        (burn-in budgets this beside the GPUs it measures)."""
        if self.file.power.cpu_w is not None:
            return self.file.power.cpu_w
        return self.cpu_rated_w

    @property
    def cpu_load_w(self) -> float:
        """What the CPUs draw under the build's workload: [power] cpu_w, else a share of
        their rating (rigbench.plan.cpu_load)."""
        if self.file.power.cpu_w is not None:
            return self.file.power.cpu_w
        return cpu_load_w(self.cpu_rated_w, self.file.power.workload)

    @property
    def cpu_rated_w(self) -> float:
        """The CPUs' rating: the catalog's max turbo power or TDP, times the sockets."""
        return self.cpu.power_w * self.cpu_count if self.cpu is not None else 0.0

    @property
    def cpu_basis(self) -> str:
        """Where cpu_w comes from, for findings."""
        if self.file.power.cpu_w is not None:
            return "[power] cpu_w from the build file"
        if self.cpu is None:
            return "no [cpu] in the build"
        w = self.file.power.workload
        return (
            f"{CPU_LOAD_SHARE[w]:.0%} of the CPUs' {self.cpu_rated_w:g} W rating while the"
            f" rig does '{w}' work ({CPU_LOAD_SOURCE[w]})"
        )
