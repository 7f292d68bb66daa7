"""`burnin --build BUILD.toml`: the measured GPU power against the build's PSUs and circuits,
judged by the model `plan` sizes them with (rigbench.plan.power), so that a plan and a
burn-in of the same build say the same thing of the same load.

Per PSU group of the build (one ATX unit, or server units paralleled on one 12 V bus), the
GPUs it feeds are summed tick by tick from the recorded samples (all GPUs of one tick are
read together), plus what the build budgets for the CPU and the rest on the group that feeds
them (not measured):

* the peak of that sum against what the group carries for milliseconds (GroupLoad.outcome:
  holds, at risk, or past the line above which a trip is likely). A burn-in that reached
  that line and held is a warning, not a failure (as the PSU-trip finder says of a step
  nothing dropped at): a fall off the bus or a lost worker fails the run by itself;
* the mean against the group's capacity: over it is a failure, over plan's HEADROOM of it
  a warning.

Per circuit: the mean wall draw (load over the PSU's efficiency at that load) against the
breaker and its continuous share (plan.power.circuit_severity). Peaks are shown, not judged.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

from rigbench.burnin.verdict import Severity, code_of, finding
from rigbench.records import Finding

# plan's Finding severities, as the burn-in's
_SEVERITY: dict[str, Severity] = {"error": "fail", "warning": "warn", "info": "info"}


def load(path: Path) -> Any:
    """The build; a malformed file raises the loader's one-line error (bad input)."""
    from rigbench.plan.build import load_build

    return load_build(path)


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
    from rigbench.plan.power import HEADROOM, circuit_severity, group_loads

    out: list[Finding] = []
    if len(build.gpus) != len(rig_gpus):
        out.append(
            finding(
                code="build",
                severity="warn",
                message=f"the build has {len(build.gpus)} GPUs, this run {len(rig_gpus)}: "
                "build GPU i is compared as the rig's GPU i",
            )
        )
    per_circuit: dict[int, list[float]] = defaultdict(list)
    peaks: dict[int, list[float]] = defaultdict(list)
    for ld in group_loads(build):
        g = ld.group
        fed = [i for i in g.gpus if i in rig_gpus]
        peak, mean = group_series(ticks, fed)
        if peak is None or mean is None:
            continue
        load_peak, load_mean = peak + ld.system_w, mean + ld.system_w
        spike = ld.outcome(load_peak)
        sev: Severity = "info"
        if load_mean > ld.capacity_w:
            sev = "fail"
        elif spike != "holds" or load_mean > HEADROOM * ld.capacity_w:
            sev = "warn"
        what = f"GPUs {','.join(map(str, fed))} peaked at {peak:.0f} W (mean {mean:.0f} W)"
        if ld.system_w:
            what += f" + {ld.system_w:.0f} W budgeted for CPU and the rest (not measured)"
        said = {
            "holds": f"within the {ld.spike_capacity_w:.0f} W it carries for milliseconds",
            "at_risk": f"past the {ld.spike_capacity_w:.0f} W it carries for milliseconds at "
            "low risk",
            "trips": f"past {ld.high_risk_w:.0f} W, above which a trip is likely; it held "
            "during this run",
        }[spike]
        out.append(
            finding(
                code="psu",
                severity=sev,
                message=f"{g.label} ({g.rated_w:.0f} W): {what}: {said} ({ld.spike_basis}); "
                f"the mean is {100 * load_mean / ld.capacity_w:.0f} % of its "
                f"{ld.capacity_w:.0f} W capacity",
            )
        )
        share_peak = min(load_peak / g.rated_w, 1.0)
        share_mean = min(load_mean / g.rated_w, 1.0)
        for c in _circuits(g):
            part = g.share_on(c)
            per_circuit[c].append(part * load_mean / g.efficiency_at(share_mean))
            peaks[c].append(part * load_peak / g.efficiency_at(share_peak))
    wall = build.wall
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
    continuous = breaker * float(wall.continuous_share)
    for c, means in sorted(per_circuit.items()):
        mean_w, peak_w = sum(means), sum(peaks[c])
        out.append(
            finding(
                code="circuit",
                severity=_SEVERITY[circuit_severity(mean_w, breaker, continuous)],
                message=f"circuit {c} ({wall.volts:.0f} V x {wall.amps:.0f} A = {breaker:.0f} W, "
                f"{continuous:.0f} W continuous): about {mean_w:.0f} W at the wall on "
                f"average, {peak_w:.0f} W at peak (through the PSUs' efficiency; a breaker "
                "trips on sustained load, not on peaks)",
            )
        )
    return out


def _circuits(group: Any) -> list[int]:
    return sorted(set(group.unit_circuits)) if group.unit_circuits else [int(group.circuit)]


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
