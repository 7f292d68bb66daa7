"""Terminal views of a burn-in: progress while it runs, the verdict when it is done."""

from __future__ import annotations

import time

from rich.console import Console, Group, RenderableType
from rich.text import Text

from rigbench.burnin.run import BurninOutcome, LiveState
from rigbench.formatting import num, verdict_words
from rigbench.report.telemetry import monitor_table
from rigbench.tables import Table

# a burn-in finding's severity (error: the burn-in's fail, warning: its warn)
_SEVERITY = {"error": "[red]✗[/red]", "warning": "[yellow]![/yellow]", "info": "[dim]·[/dim]"}


def progress_view(state: LiveState) -> RenderableType:
    parts: list[RenderableType] = []
    left = ""
    if state.ends_at is not None:
        left = f", {max(0.0, state.ends_at - time.monotonic()):.0f} s left"
    if state.view is not None:
        parts.append(monitor_table(state.view(), f"burn-in: {state.phase}{left} (Ctrl-C stops)"))
    else:
        parts.append(Text(f"burn-in: {state.phase}{left} (Ctrl-C stops)"))
    workers = []
    for w in state.workers:
        colour = {"failed": "red", "done": "green"}.get(w.status, "white")
        batches = sum(len(r) for r in w.gemm.values())
        text = f"[{colour}]{w.device.label} {w.status}[/{colour}] {batches} matmul batches"
        if w.wrong:
            text += f" [red]{len(w.wrong)} wrong[/red]"
        if w.error:
            text += f" [red]{w.error}[/red]"
        workers.append(text)
    parts.append(Text.from_markup("  ".join(workers)))
    if state.stats is not None:
        s = state.stats()
        if s.achieved_hz is not None:
            parts.append(Text(f"sampling at {s.achieved_hz:.0f} Hz", style="dim"))
    return Group(*parts)


def _int(v: float | None) -> str:
    return "—" if v is None else f"{v:.0f}"


def render_burnin(outcome: BurninOutcome, console: Console) -> None:
    v = outcome.verdict
    t = Table(
        title="burn-in per device (peak W: instantaneous where the GPU reports it)",
        title_justify="left",
        pad_edge=False,
    )
    for col, right in (
        ("device", False),
        ("verdict", False),
        ("TFLOP/s", True),
        ("peak W", True),
        ("mean W", True),
        ("rise W", True),
        ("°C", True),
        ("mem °C", True),
        ("SM MHz", True),
    ):
        t.add_column(col, justify="right" if right else "left", no_wrap=True)
    for d in v.devices:
        f = d.figures
        verdict = verdict_words(d.verdict).split(" ")[0]
        mem = f.get("temp_mem_peak_c")
        if mem is not None:
            mem_cell = _int(mem)
        else:
            mem_cell = "n/a" if "temp_mem_c" in (f.get("unavailable") or {}) else "—"
        t.add_row(
            d.label,
            verdict,
            num(f.get("gemm_tflops_median")),
            _int(f.get("power_peak_w")),
            _int(f.get("power_mean_w")),
            _int(f.get("power_rise_w")),
            _int(f.get("temp_gpu_peak_c")),
            mem_cell,
            _int(f.get("sm_clock_sustained_median_mhz")),
        )
    console.print(t)
    groups: list[tuple[str, list[str]]] = []  # runs of one model
    for d in v.devices:
        if groups and groups[-1][0] == d.name:
            groups[-1][1].append(d.label)
        else:
            groups.append((d.name, [d.label]))
    console.print(
        "[dim]"
        + "; ".join(
            f"{labels[0]}{'–' + labels[-1] if len(labels) > 1 else ''}: {name}"
            for name, labels in groups
        )
        + "[/dim]",
        highlight=False,
    )
    for d in v.devices:
        for r in d.reasons:
            console.print(f"  {_SEVERITY[r.severity]} {d.label}: {r.title}", highlight=False)
    tot = v.totals
    lines = []
    if tot.get("power_peak_w") is not None:
        lines.append(
            f"GPUs together: peak {tot['power_peak_w']:.0f} W, "
            f"mean {_int(tot.get('power_mean_w'))} W, "
            f"largest rise +{tot.get('power_rise_w') or 0:.0f} W within "
            f"{1000 * (tot.get('power_rise_window_s') or 0):.0f} ms; "
            f"{tot.get('idle_to_full_steps', 0)} idle→full steps on all GPUs at once"
        )
    if tot.get("allreduce_busbw_gbps_median") is not None:
        lines.append(f"all_reduce busbw median {tot['allreduce_busbw_gbps_median']:.1f} GB/s")
    sampler = tot.get("sampler") or {}
    if sampler.get("achieved_hz"):
        lines.append(
            f"telemetry: {sampler['achieved_hz']:.1f} Hz of {sampler['rate_hz']:g} Hz, "
            f"{sampler.get('missed', 0)} ticks missed"
        )
    for line in lines:
        console.print(line, highlight=False)
    for r in v.reasons:
        console.print(f"{_SEVERITY[r.severity]} rig: {r.title}", highlight=False)
    for note in outcome.notes:
        console.print(f"[dim]{note}[/dim]", highlight=False)
    console.print(f"rig verdict: {verdict_words(v.verdict)}  (run #{outcome.run.id})")
    if outcome.plot is not None:
        console.print(f"plot: {outcome.plot}", highlight=False)
