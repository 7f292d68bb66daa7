"""What every check reads (the rig, its health facts, the probes' results) and the small
helpers checks share to build findings."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from rigbench.doctor.probes import ProbeResults
from rigbench.hw.health import GpuHealth, HealthInfo
from rigbench.hw.model import GpuInfo, Rig
from rigbench.records import Finding


@dataclass(kw_only=True, slots=True)
class DoctorInput:
    rig: Rig
    health: HealthInfo
    probes: ProbeResults  # parts that did not run say why in `probes.skipped`

    @property
    def simulated(self) -> bool:
        return self.rig.source.startswith("simulated")

    def gpu_health(self, index: int) -> GpuHealth:
        found = self.health.gpu(index)
        if found is not None:
            return found
        missing = GpuHealth(index=index)
        missing.unavailable["*"] = "no health figures were read for this GPU"
        return missing

    def same_model_groups(self) -> dict[str, list[GpuInfo]]:
        groups: dict[str, list[GpuInfo]] = {}
        for g in self.rig.gpus:
            groups.setdefault(g.name, []).append(g)
        return groups


def unknown(obj: GpuHealth | Any, field: str) -> str:
    """Why `field` of a health record is None."""
    reasons: dict[str, str] = getattr(obj, "unavailable", {})
    return reasons.get(field) or reasons.get("*") or "not read"


def gpus_text(indices: Iterable[int]) -> str:
    """ "GPU 2" or "GPUs 0, 1, 3"."""
    ids = sorted(set(indices))
    if len(ids) == 1:
        return f"GPU {ids[0]}"
    return "GPUs " + ", ".join(str(i) for i in ids)


def ok(check: str, title: str, evidence: dict[str, Any] | None = None) -> Finding:
    return Finding(id=f"{check}.ok", severity="ok", title=title, evidence=evidence or {})


def skipped(check: str, why: str, evidence: dict[str, Any] | None = None) -> Finding:
    """A check that could not run; `why` is the reason a user reads."""
    return Finding(
        id=f"{check}.skipped",
        severity="skipped",
        title=f"{check}: not checked",
        why=why,
        evidence=evidence or {},
    )


def common_reason(items: list[tuple[int, str]]) -> str:
    """One reason for several GPUs: "GPU 0-3: why" or each GPU's own."""
    reasons = {why for _, why in items}
    if len(reasons) == 1:
        return reasons.pop()
    return "; ".join(f"GPU {i}: {why}" for i, why in items)


def gpus_without(d: DoctorInput, fields: tuple[str, ...]) -> list[tuple[int, str]]:
    """(GPU, why) for every GPU that has none of `fields`."""
    out = []
    for g in d.rig.gpus:
        h = d.gpu_health(g.index)
        if all(getattr(h, f) is None for f in fields):
            out.append((g.index, unknown(h, fields[0])))
    return out


def with_gaps(finding: Finding, missing: list[tuple[int, str]]) -> Finding:
    """An ok finding that says which GPUs it could not read (and why)."""
    if missing:
        finding.title += f" (not read on {gpus_text(i for i, _ in missing)})"
        finding.evidence["not_read"] = {f"GPU {i}": why for i, why in missing}
    return finding
