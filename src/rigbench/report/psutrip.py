"""The PSU-trip finder's table: one row per number of GPUs ramping together."""

from __future__ import annotations

from rich.console import Console

from rigbench.burnin.psutrip import TripReport, TripStep, first_trip
from rigbench.tables import Table

_STYLE = {"holds": "green", "at_risk": "yellow", "trips": "red"}


def _table(title: str, steps: list[TripStep]) -> Table:
    t = Table(title=title)
    t.add_column("GPUs ramping", justify="right")
    t.add_column("GPUs peak W", justify="right")
    t.add_column("PSU group: load / ms capacity")
    t.add_column("outcome")
    for s in steps:
        groups = "; ".join(
            f"{g.label} {g.load_w:.0f} / {g.spike_capacity_w:.0f} W "
            f"({100 * g.load_w / g.spike_capacity_w:.0f} %)"
            for g in s.groups
        )
        style = _STYLE[s.outcome]
        t.add_row(str(s.ramping), f"{s.gpus_peak_w:.0f}", groups, f"[{style}]{s.outcome}[/{style}]")
    return t


def render_trip(report: TripReport, console: Console) -> None:
    r0 = report.ramps[0] if report.ramps else None
    if r0 is not None:
        console.print(
            f"each GPU: idle {r0.idle_w:g} W, ramp peak {r0.peak_w:g} W for {r0.spike_ms:g} ms, "
            f"then {r0.sustained_w:g} W ({r0.source}); the build's CPU and other budget on the "
            "group that feeds them",
            highlight=False,
        )
    console.print(_table(f"ramping together ({report.build})", report.simultaneous))
    k = first_trip(report.simultaneous)
    console.print(
        f"together: trips at {k} GPUs ramping at once" if k else "together: every step holds",
        highlight=False,
    )
    if report.staggered:
        ms = report.staggered[0].stagger_ms
        console.print(_table(f"ramps {ms:g} ms apart", report.staggered))
        ks = first_trip(report.staggered)
        last, last_s = report.simultaneous[-1], report.staggered[-1]
        lower = last.gpus_peak_w - last_s.gpus_peak_w
        if ks is None and k is None:
            verdict = "every step holds, as together"
        elif ks is None:
            verdict = "every step holds: staggering avoids the trip"
        elif k is not None and ks > k:
            verdict = f"trips at {ks} GPUs (later than together, at {k})"
        else:
            verdict = f"trips at {ks} GPUs: staggering does not avoid it"
        console.print(
            f"staggered {ms:g} ms: {verdict}; the peak with all {last.ramping} GPUs is "
            f"{lower:.0f} W lower than together",
            highlight=False,
        )
    for f in report.findings():
        if f.fix and f.severity == "error":
            console.print(f"[red]{f.title}[/red]: {f.why}; fix: {f.fix}")
    for c in report.simultaneous[-1].circuits if report.simultaneous else []:
        over = " (over its continuous rating)" if c["over"] else ""
        console.print(
            f"circuit {c['circuit']}: all GPUs loaded, about {c['wall_sustained_w']:.0f} W at the "
            f"wall sustained, continuous rating {c['continuous_w']:.0f} W{over}",
            highlight=False,
        )
