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
        said = f"{s.outcome}: {s.observed}" if s.observed else s.outcome
        t.add_row(str(s.ramping), f"{s.gpus_peak_w:.0f}", groups, f"[{style}]{said}[/{style}]")
    return t


def step_line(s: TripStep) -> str:
    """One measured step as it comes in."""
    mode = f"{s.stagger_ms:g} ms apart" if s.stagger_ms else "together"
    groups = "; ".join(f"{g.label} {g.load_w:.0f} / {g.spike_capacity_w:.0f} W" for g in s.groups)
    what = s.observed or s.outcome
    return (
        f"{s.ramping} GPU(s) ramping {mode}: GPUs peak {s.gpus_peak_w:.0f} W "
        f"({s.samples} samples); {groups}: {what}"
    )


def render_trip(report: TripReport, console: Console) -> None:
    r0 = report.ramps[0] if report.ramps else None
    if r0 is not None and report.measured:
        for r in report.ramps:
            console.print(
                f"GPU {r.gpu}: idle {r.idle_w:g} W, highest reading while ramping "
                f"{r.peak_w:g} W, settled {r.sustained_w:g} W ({r.source}); the build's CPU "
                "and other budget on the group that feeds them",
                highlight=False,
            )
    elif r0 is not None:
        spike = f" for {r0.spike_ms:g} ms" if r0.spike_ms is not None else ""
        console.print(
            f"each GPU: idle {r0.idle_w:g} W, ramp peak {r0.peak_w:g} W{spike}, "
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
        if ks is None and k is None:
            verdict = "every step holds, as together"
        elif ks is None:
            verdict = "every step holds: staggering avoids the trip"
        elif k is not None and ks > k:
            verdict = f"trips at {ks} GPUs (later than together, at {k})"
        else:
            verdict = f"trips at {ks} GPUs: staggering does not avoid it"
        # the same count of GPUs both ways: how much lower the staggered peak is
        both = {s.ramping: s for s in report.simultaneous}
        pair = [(both[s.ramping], s) for s in report.staggered if s.ramping in both]
        lower = ""
        if pair:
            a, b = pair[-1]
            lower = (
                f"; the peak with {a.ramping} GPUs is {a.gpus_peak_w - b.gpus_peak_w:.0f} W "
                "lower than together"
            )
        console.print(f"staggered {ms:g} ms: {verdict}{lower}", highlight=False)
    for f in report.findings():
        if f.fix and f.severity == "error":
            console.print(f"[red]{f.title}[/red]: {f.why}; fix: {f.fix}")
        elif f.severity == "warning":
            console.print(f"[yellow]{f.title}[/yellow]")
    if report.stopped:
        console.print(f"finder {report.stopped}", highlight=False)
    if not report.simultaneous:
        return
    last = report.simultaneous[-1]
    for c in last.circuits:
        over = " (over its continuous rating)" if c["over"] else ""
        console.print(
            f"circuit {c['circuit']}: {last.ramping} GPU(s) loaded, about "
            f"{c['wall_sustained_w']:.0f} W at the "
            f"wall sustained, continuous rating {c['continuous_w']:.0f} W{over}",
            highlight=False,
        )
