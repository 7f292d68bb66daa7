"""`burnin --build BUILD.toml`: the measured GPU power against the build's PSUs and circuits.

Per PSU group of the build (rigbench.plan.build: one ATX unit, or server units paralleled on
one 12 V bus), the GPUs it feeds are summed tick by tick from the recorded samples (all GPUs
of one tick are read together): the peak and the mean of that sum, plus what the build
budgets for the CPU and the rest on the group that feeds them (not measured). Build GPU i is
the rig's GPU i.

* PSU: fails when the mean load reaches its rating, or the peak exceeds it (a PSU rated to
  ATX 3.0 may carry 160 % for 10 ms, about one 100 Hz sample: beyond that it fails); warns
  from PSU_WARN_SHARE of the rating.
* Circuit: the wall draw (load over the PSU's efficiency at that load) of every group on it;
  fails when the mean reaches the continuous rating (breaker x continuous_factor), warns
  when the peak does (breakers ride through short peaks; sustained load trips them).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

from rigbench.burnin.verdict import Severity, code_of, finding
from rigbench.records import Finding

PSU_WARN_SHARE = 0.8
ATX3_10MS_SHARE = 1.6
PENDING = (
    "--build: the build-file loader (rigbench.plan.build) is not in this version yet; "
    "the PSU and circuit comparison is skipped"
)


def load(path: Path) -> tuple[Any, str | None]:
    """(the build, None), or (None, why it cannot be compared). A malformed file raises the
    loader's one-line error (bad input)."""
    try:
        from rigbench.plan.build import load_build
    except ImportError:
        return None, PENDING
    return load_build(path), None


def group_series(
    ticks: dict[float, dict[int, float]], gpus: tuple[int, ...] | list[int]
) -> tuple[float | None, float | None]:
    """(peak, mean) over ticks of the summed power of `gpus`."""
    sums = [sum(p.get(g, 0.0) for g in gpus) for p in ticks.values() if any(g in p for g in gpus)]
    if not sums:
        return None, None
    return max(sums), sum(sums) / len(sums)


def reasons(build: Any, ticks: dict[float, dict[int, float]], rig_gpus: list[int]) -> list[Finding]:
    """Findings for every PSU group and circuit of `build`."""
    out: list[Finding] = []
    try:
        groups = list(build.psus)
        n_build = len(build.gpus)
        system_w = float(build.cpu_w) + float(build.other_w)
        wall = build.wall
    except AttributeError as exc:  # the loader's model changed under us
        return [finding(code="build", severity="info", message=f"--build: cannot read {exc}")]
    if n_build != len(rig_gpus):
        out.append(
            finding(
                code="build",
                severity="warn",
                message=f"the build has {n_build} GPUs, this run {len(rig_gpus)}: "
                "build GPU i is compared as the rig's GPU i",
            )
        )
    per_circuit: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for g in groups:
        fed = [i for i in g.gpus if i in rig_gpus]
        peak, mean = group_series(ticks, fed)
        if peak is None or mean is None:
            continue
        extra = system_w if g.system else 0.0
        load_peak, load_mean = peak + extra, mean + extra
        rated = float(g.rated_w)
        share_peak, share_mean = load_peak / rated, load_mean / rated
        allowed = ATX3_10MS_SHARE if g.atx3 else 1.0
        sev: Severity = "info"
        if share_mean >= 1 or share_peak > allowed:
            sev = "fail"
        elif share_peak >= PSU_WARN_SHARE:
            sev = "warn"
        what = f"GPUs {','.join(map(str, fed))} peaked at {peak:.0f} W (mean {mean:.0f} W)"
        if extra:
            what += f" + {extra:.0f} W budgeted for CPU and the rest (not measured)"
        atx = " (ATX 3.0: 160 % for 10 ms allowed)" if g.atx3 else ""
        out.append(
            finding(
                code="psu",
                severity=sev,
                message=f"{g.label} ({rated:.0f} W{atx}): {what} = {100 * share_peak:.0f} % "
                f"at peak, {100 * share_mean:.0f} % on average",
            )
        )
        eff_peak = g.efficiency_at(min(share_peak, 1.0))
        eff_mean = g.efficiency_at(min(share_mean, 1.0))
        per_circuit[int(g.circuit)].append((load_peak / eff_peak, load_mean / eff_mean))
    if wall is None:
        out.append(
            finding(
                code="circuit",
                severity="info",
                message="the build has no [wall] section: circuits not compared",
            )
        )
        return out
    breaker = float(wall.volts) * float(wall.amps)
    continuous = breaker * float(wall.continuous_factor)
    for c, loads in sorted(per_circuit.items()):
        peak_w = sum(p for p, _ in loads)
        mean_w = sum(m for _, m in loads)
        sev = "info"
        if mean_w >= continuous:
            sev = "fail"
        elif peak_w >= continuous:
            sev = "warn"
        out.append(
            finding(
                code="circuit",
                severity=sev,
                message=f"circuit {c} ({wall.volts:.0f} V x {wall.amps:.0f} A = {breaker:.0f} W, "
                f"{continuous:.0f} W continuous): about {peak_w:.0f} W at the wall at peak, "
                f"{mean_w:.0f} W on average (through the PSUs' efficiency)",
            )
        )
    return out


def findings(build: Any, ticks: Any, gpus: list[int]) -> list[Finding]:
    """The PSU and circuit reasons as findings (for `monitor -- CMD --build`)."""
    return [
        replace(
            f,
            id=f"build.{code_of(f)}",
            source="the build file's PSU groups and circuits (rigbench plan)",
        )
        for f in reasons(build, ticks, gpus)
    ]
