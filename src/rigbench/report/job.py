"""The summary of `monitor -- CMD`: per GPU and total power, energy, throttling, clocks,
temperatures, utilisation, the job's throughput per joule, and the findings."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from rigbench.hw.telemetry import GpuChannel
from rigbench.records import Finding
from rigbench.report.telemetry import SHORT_WORDS, gpu_names
from rigbench.telemetry.job import JobReport

_MARK = {
    "error": "[red]ERROR[/red]",
    "warning": "[yellow]WARN[/yellow]",
    "info": "note",
    "ok": "[green]ok[/green]",
}


def _n(v: float | None, fmt: str = ".0f") -> str:
    return "—" if v is None else format(v, fmt)


def _energy(j: float | None) -> str:
    if j is None:
        return "—"
    return f"{j / 1000:.1f} kJ" if j >= 10_000 else f"{j:.0f} J"


def _how_it_ended(r: JobReport) -> str:
    if r.signal is not None:
        return f"ended by signal {r.signal} (exit {r.exit_code})"
    return f"exited {r.exit_code}"


def job_view(r: JobReport, findings: list[Finding]) -> RenderableType:
    t = Table(
        title=Text(f"{' '.join(r.command)}: {_how_it_ended(r)} after {r.duration_s:.1f} s"),
        title_justify="left",
        pad_edge=False,
    )
    for col in (
        "GPU",
        "W mean",
        "p99",
        "peak",
        "energy",
        "SM med/min",
        "°C max",
        "VRAM max",
        "util%",
    ):
        t.add_column(col, justify="left" if col == "GPU" else "right", no_wrap=True)
    t.add_column("throttled (share of time)")
    for g in r.gpus:
        throttle = (
            ", ".join(
                f"{SHORT_WORDS.get(k, k)} {100 * v:.0f} %"
                for k, v in sorted(g.throttle_share.items(), key=lambda kv: -kv[1])
                if v >= 0.005
            )
            or "none"
        )
        peak = _n(g.power_peak_w) + ("" if g.power_peak_kind == "instant" else " (1 s avg)")
        label = str(g.gpu)
        if g.lost_at is not None:
            label += f" [red]LOST at {g.lost_at:.1f} s[/red]"
        t.add_row(
            label,
            _n(g.power_mean_w),
            _n(g.power_p99_w),
            peak,
            _energy(g.energy_j),
            f"{_n(g.sm_clock_median_mhz)}/{_n(g.sm_clock_min_mhz)}",
            _n(g.temp_gpu_max_c),
            _n(g.temp_mem_max_c) if g.temp_mem_max_c is not None else "n/a",
            _n(g.util_mean_pct),
            throttle,
        )
    lines = [gpu_names([GpuChannel(gpu=g.gpu, name=g.name) for g in r.gpus])] if r.gpus else []
    if r.gpus:
        total = f"total: mean {_n(r.power_mean_w)} W, peak {_n(r.power_peak_w)} W together"
        if r.energy_j is not None and r.energy_kwh is not None:
            total += f"; {_energy(r.energy_j)} = {r.energy_kwh:.4f} kWh (GPU boards only)"
        if r.cost is not None:
            total += f", cost {r.cost:.4f} at {r.price_kwh:g}/kWh"
        lines.append(total)
    else:
        lines.append("no GPU was watched")
    m = r.metric
    if m is not None:
        unit = escape(m.unit or "")
        line = f"throughput ({m.name}): {_n(m.value, '.2f')} {unit}".rstrip()
        if len(m.values) > 1:
            line += f" ({'mean' if m.is_rate else 'last'} of {len(m.values)})"
        if m.per_joule is not None and m.per_kwh is not None:
            work = unit.removesuffix("/s") or "units"
            line += f" -> {m.per_joule:.4g} {work}/J, {m.per_kwh:.4g} {work}/kWh"
        lines.append(line)
    if r.run is not None:
        lines.append(f"[dim]{r.samples_written} samples saved as run #{r.run.id}[/dim]")
    lines.extend(finding_lines(findings))
    body = Text.from_markup("\n".join(lines))
    return Group(t, body) if r.gpus else Group(t.title or "", body)


def finding_lines(findings: list[Finding]) -> list[str]:
    """Errors, warnings (with their fix) and notes; of the checks that passed, the VRAM ones
    (a hot VRAM below its limit is worth seeing)."""
    lines = []
    for f in findings:
        if f.severity in _MARK and (f.severity != "ok" or f.id.startswith("vram.")):
            text = f"{_MARK[f.severity]} {escape(f.title)}"
            if f.severity in ("warning", "error") and f.fix:
                text += f"\n      fix: {f.fix}"
            lines.append(text)
    return lines
