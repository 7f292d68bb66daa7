"""The burn-in's plot: power, SM clock and temperatures of every GPU over time, the load
phases shaded and events marked, as one PNG saved with the run (matplotlib, Agg backend).

Long runs are thinned to MAX_POINTS per line; power keeps each bucket's maximum so that
no peak is lost in the picture.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rigbench.hw.telemetry import TelemetryEvent
from rigbench.stats import thin

MAX_POINTS = 4000
PHASE_COLOURS = {
    "gemm": "#d9e8f5",
    "memory": "#e3f2d9",
    "allreduce": "#f5e6d9",
    "full": "#f0f0f0",
}


def _thin(ts: list[float], vs: list[float], keep_max: bool) -> tuple[list[float], list[float]]:
    return thin(ts, vs, keep_max, MAX_POINTS)


def save_plot(
    path: Path,
    series: dict[int, dict[str, list[Any]]],
    names: dict[int, str],
    phases: Sequence[tuple[str, float, float]],
    events: list[TelemetryEvent],
    title: str,
) -> Path:
    """`series[gpu]` has lists "t", "power_w", "sm_clock_mhz", "temp_gpu_c", "temp_mem_c"
    (None where not read); `phases` are (kind, start, end) in seconds since t0."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 1, figsize=(12, 9), sharex=True)
    rows = (
        ("power_w", "power (W)", True),
        ("sm_clock_mhz", "SM clock (MHz)", False),
        ("temp_gpu_c", "temperature (°C)", False),
    )
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (key, label, keep_max) in zip(axes, rows, strict=True):
        for kind, start, end in phases:
            colour = PHASE_COLOURS.get(kind)
            if colour:
                ax.axvspan(start, end, color=colour, lw=0, zorder=0)
        for k, (gpu, cols) in enumerate(sorted(series.items())):
            colour = colours[k % len(colours)]
            pts = [(t, v) for t, v in zip(cols["t"], cols[key], strict=True) if v is not None]
            if pts:
                ts, vs = _thin([p[0] for p in pts], [float(p[1]) for p in pts], keep_max)
                ax.plot(ts, vs, lw=0.8, color=colour, label=f"GPU {gpu} {names.get(gpu, '')}")
            if key == "temp_gpu_c":
                mem = [(t, v) for t, v in zip(cols["t"], cols["temp_mem_c"], strict=True) if v]
                if mem:
                    ts, vs = _thin([p[0] for p in mem], [float(p[1]) for p in mem], False)
                    ax.plot(ts, vs, lw=0.8, ls="--", color=colour, label=f"GPU {gpu} memory")
        for e in events:
            ax.axvline(e.t, color="red", lw=1, ls=":")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    labels: dict[tuple[int, float], list[str]] = {}
    for e in events:  # one label per GPU and moment: "GPU 3: Xid 79, lost"
        what = f"Xid {e.code}" if e.kind == "xid" else e.kind
        labels.setdefault((e.gpu, round(e.t, 1)), []).append(what)
    for (gpu, t), whats in labels.items():
        axes[0].annotate(
            f"GPU {gpu}: {', '.join(whats)}",
            (t, 1.0),
            xycoords=("data", "axes fraction"),
            rotation=90,
            va="top",
            fontsize=7,
            color="red",
        )
    axes[0].legend(loc="upper right", fontsize=7, ncol=2)
    axes[-1].set_xlabel(
        "seconds since sampling began (shaded: blue matmul, green memory, orange all_reduce, "
        "grey full-load steps)"
    )
    axes[0].set_title(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
