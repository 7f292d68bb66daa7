"""Terminal views of telemetry: the monitor's live table and its summary, as rich renderables."""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.text import Text

from rigbench.hw.telemetry import GpuChannel
from rigbench.hw.throttle import decode
from rigbench.tables import Table
from rigbench.telemetry.aggregate import AggregateView, GpuAggregate
from rigbench.telemetry.refresh import FieldRate
from rigbench.telemetry.sampler import SamplerStats


def _cell(value: float | None, peak: float | None = None) -> str:
    if value is None and peak is None:
        return "—"
    now = f"{value:.0f}" if value is not None else "—"
    if peak is None:
        return now
    return f"{now} [dim]({peak:.0f})[/dim]"


def _na(ch: GpuChannel, field: str) -> bool:
    return field in ch.unavailable


# Short words for the table; hw.throttle's longer wording is in the README and the JSON.
SHORT_WORDS = {
    "gpu_idle": "idle",
    "applications_clocks": "app clocks",
    "sw_power_cap": "power cap",
    "hw_slowdown": "HW slowdown",
    "sync_boost": "sync boost",
    "sw_thermal": "SW thermal",
    "hw_thermal": "HW thermal",
    "hw_power_brake": "power brake",
    "display_clock": "display clock",
}


def throttle_words(mask: int | None, *, short: bool = True) -> str:
    """The reasons in `mask` in words, the harmful ones in red."""
    if mask is None:
        return "—"
    reasons = decode(mask)
    if not reasons:
        return "none"
    words = [SHORT_WORDS.get(r.name, r.words) if short else r.words for r in reasons]
    return ", ".join(
        f"[red]{w}[/red]" if r.harmful and r.name != "sw_power_cap" else w
        for r, w in zip(reasons, words, strict=True)
    )


def short_name(name: str) -> str:
    """ "NVIDIA GeForce RTX 3090" -> "RTX 3090", "Tesla V100-SXM2-16GB" -> "V100-SXM2-16GB"."""
    for prefix in ("NVIDIA ", "GeForce ", "Tesla "):
        if name.startswith(prefix):
            name = name[len(prefix) :]
    return name


def _int(v: float | None) -> str:
    return "—" if v is None else f"{v:.0f}"


def monitor_table(view: AggregateView, title: str | None = None) -> Table:
    """One row per GPU: the latest reading, peaks since start in brackets."""
    t = Table(title=title, title_justify="left", pad_edge=False)
    for col, right in (
        ("GPU", False),
        ("W (peak)", True),
        ("avg 1s", True),
        ("°C (pk)", True),
        ("mem °C", True),
        ("SM MHz", True),
        ("fan%", True),
        ("util%", True),
        ("throttle", False),
    ):
        t.add_column(col, justify="right" if right else "left", no_wrap=right)
    for ch in view.channels:
        agg = view.gpus.get(ch.gpu) or GpuAggregate(gpu=ch.gpu)
        s = agg.latest
        label = str(ch.gpu)
        if agg.lost_at is not None:
            t.add_row(
                label,
                f"[red]LOST[/red] [dim]({_int(agg.power.value)})[/dim]",
                *(["—"] * 6),
                f"[red]off the bus at {agg.lost_at:.1f} s[/red]",
            )
            continue
        if s is None:
            t.add_row(label, *(["—"] * 8))
            continue
        mem_temp = "n/a" if _na(ch, "temp_mem_c") else _cell(s.temp_mem_c, agg.temp_mem.value)
        t.add_row(
            label,
            _cell(s.power_w, agg.power.value),
            "n/a" if s.power_avg_w is None else _int(s.power_avg_w),
            _cell(s.temp_gpu_c, agg.temp_gpu.value),
            mem_temp,
            _int(s.sm_clock_mhz),
            "n/a" if _na(ch, "fan_pct") else _int(s.fan_pct),
            _int(s.util_gpu_pct),
            throttle_words(s.throttle_mask),
        )
    return t


def gpu_names(channels: list[GpuChannel]) -> str:
    """ "GPU 0-3: V100-SXM2-16GB" (runs of one model grouped)."""
    groups: list[tuple[str, list[int]]] = []
    for ch in channels:
        name = short_name(ch.name)
        if groups and groups[-1][0] == name:
            groups[-1][1].append(ch.gpu)
        else:
            groups.append((name, [ch.gpu]))
    parts = []
    for name, idx in groups:
        ids = (
            f"{idx[0]}-{idx[-1]}"
            if len(idx) > 1 and idx == list(range(idx[0], idx[-1] + 1))
            else ",".join(map(str, idx))
        )
        parts.append(f"GPU {ids}: {name}")
    return "; ".join(parts)


def footer(view: AggregateView, stats: SamplerStats, *, events_unavailable: str | None) -> Text:
    lines = [gpu_names(view.channels)]
    total = view.total_power
    rise = view.total_rise
    if total.value is not None:
        line = f"rig: GPUs peaked at {total.value:.0f} W together"
        if total.t is not None:
            line += f" (t={total.t:.2f} s)"
        if view.total_mean.value is not None:
            line += f", mean {view.total_mean.value:.0f} W"
        if rise.rise > 0:
            line += f"; largest rise +{rise.rise:.0f} W within {rise.window_s * 1000:.0f} ms"
        lines.append(line)
    achieved = stats.achieved_hz
    lines.append(
        f"sampler: {achieved:.1f} Hz of {stats.rate_hz:g} Hz"
        if achieved is not None
        else f"sampler: starting at {stats.rate_hz:g} Hz"
    )
    if stats.missed:
        lines[-1] += f", {stats.missed} ticks missed"
    if stats.read_ms_mean is not None:
        lines[-1] += f", a read of every GPU takes {stats.read_ms_mean:.2f} ms"
    for e in view.events[-5:]:
        what = f"Xid {e.code}: {e.message}" if e.kind == "xid" else e.message or e.kind
        lines.append(f"[red]event[/red] t={e.t:.2f} s GPU {e.gpu}: {what}")
    if events_unavailable:
        lines.append(f"[dim]Xid events not watched: {events_unavailable}[/dim]")
    return Text.from_markup("\n".join(lines))


def unavailable_notes(channels: list[GpuChannel]) -> list[str]:
    """One line per (figure, reason), naming the GPUs it applies to."""
    by: dict[tuple[str, str], list[int]] = {}
    for ch in channels:
        for fieldname, why in ch.unavailable.items():
            if fieldname.startswith("limits.") or fieldname in ("uuid", "compute_capability"):
                continue
            by.setdefault((fieldname, why), []).append(ch.gpu)
    return [
        f"{name}: unavailable on GPU {','.join(map(str, gpus))}: {why}"
        for (name, why), gpus in sorted(by.items())
    ]


def monitor_view(
    view: AggregateView, stats: SamplerStats, *, events_unavailable: str | None, title: str
) -> RenderableType:
    return Group(
        monitor_table(view, title), footer(view, stats, events_unavailable=events_unavailable)
    )


# short names for the refresh line
_FIELD_WORDS = {
    "power_instant_w": "power",
    "sm_clock_mhz": "SM clock",
    "throttle_mask": "throttle",
    "power_avg_w": "power avg",
    "energy_mj": "energy",
    "mem_clock_mhz": "mem clock",
    "temp_gpu_c": "temp",
    "temp_mem_c": "mem temp",
    "fan_pct": "fan",
    "util_gpu_pct": "util",
    "util_mem_pct": "mem util",
    "mem_used_bytes": "mem used",
    "pcie_replay_count": "PCIe replays",
    "ecc_corrected": "ECC corr",
    "ecc_uncorrected": "ECC uncorr",
}


def field_rates_line(rates: list[FieldRate]) -> str:
    """Per figure: how many times a second its value changed, of how many reads."""

    def hz(v: float | None) -> str:
        return "-" if v is None else f"{v:.3g}"

    parts = [
        f"{_FIELD_WORDS.get(r.field, r.field)} {hz(r.changes_hz)}/{hz(r.read_hz)}"
        for r in rates
        if r.changes_hz
    ]
    if not parts:
        return "refresh: no figure changed while watched"
    return "refresh (value changes/s of reads/s; a lower bound on the driver's rate): " + ", ".join(
        parts
    )


def monitor_summary(
    view: AggregateView, stats: SamplerStats, rates: list[FieldRate] | None = None
) -> dict[str, Any]:
    """The monitor's --json document (without the run)."""
    gpus = []
    for ch in view.channels:
        agg = view.gpus[ch.gpu]
        gpus.append(
            {
                "gpu": ch.gpu,
                "name": ch.name,
                "samples": agg.samples,
                "power_peak_w": agg.power.value,
                "power_peak_t": agg.power.t,
                "power_avg_peak_w": agg.power_avg.value,
                "power_mean_w": agg.power_mean.value,
                "energy_avg_w": agg.energy_avg_w,
                "power_rise_w": agg.rise.rise,
                "temp_gpu_peak_c": agg.temp_gpu.value,
                "temp_mem_peak_c": agg.temp_mem.value,
                "sm_clock_min_mhz": agg.sm_clock_min,
                "sm_clock_max_mhz": agg.sm_clock_max,
                "throttle_s": agg.throttle_s,
                "lost_at": agg.lost_at,
                "latest": agg.latest.to_dict() if agg.latest else None,
                "channel": ch.to_dict(),
            }
        )
    return {
        "sampler": stats.to_dict(),
        "fields": {r.field: r.to_dict() for r in rates or []},
        "rig": {
            "power_peak_w": view.total_power.value,
            "power_peak_t": view.total_power.t,
            "power_mean_w": view.total_mean.value,
            "power_rise_w": view.total_rise.rise,
            "power_rise_window_s": view.total_rise.window_s,
        },
        "gpus": gpus,
        "events": [e.to_dict() for e in view.events],
    }
