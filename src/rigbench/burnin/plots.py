"""The burn-in's plot (rigbench.telemetry.plot's figure) as one PNG saved with the run."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rigbench.hw.telemetry import TelemetryEvent
from rigbench.telemetry.plot import pyplot, telemetry_figure

MAX_POINTS = 4000


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
    labels: dict[tuple[int, float], list[str]] = {}
    for e in events:  # one label per GPU and moment: "GPU 3: Xid 79, lost"
        what = f"Xid {e.code}" if e.kind == "xid" else e.kind
        labels.setdefault((e.gpu, round(e.t, 1)), []).append(what)
    fig = telemetry_figure(
        {f"GPU {gpu} {names.get(gpu, '')}": cols for gpu, cols in sorted(series.items())},
        phases,
        [(t, f"GPU {gpu}: {', '.join(whats)}") for (gpu, t), whats in labels.items()],
        title,
        max_points=MAX_POINTS,
        figsize=(12, 9),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    pyplot().close(fig)
    return path


def sweep_plot_path(store: Any, run_id: int) -> Path | None:
    """Beside the database, as the burn-in's plot (burnin.run.plot_path)."""
    if store.path is None:
        return None
    return store.path.parent / f"{store.path.name}.plots" / f"run{run_id}-sweep.png"


_SWEEP_PANELS = (
    ("tflops", "sustained GEMM (TFLOP/s)"),
    ("tflops_per_w", "GEMM TFLOP/s per W"),
    ("tokens_per_s", "training tokens/s"),
    ("tokens_per_s_per_w", "training tokens/s per W"),
)


def save_sweep_plot(path: Path, points: Sequence[Any], title: str) -> Path:
    """The sweep's curves against the enforced power limit, one line per GPU; the best
    limit per watt of each GPU ringed on the per-watt panels."""
    plt = pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5), sharex=True)
    gpus = sorted({p.gpu for p in points})
    for ax, (key, ylabel) in zip(axes.flat, _SWEEP_PANELS, strict=True):
        for gpu in gpus:
            pts = sorted(
                (p.enforced_limit_w, getattr(p, key))
                for p in points
                if p.gpu == gpu and p.enforced_limit_w is not None and getattr(p, key) is not None
            )
            if not pts:
                continue
            xs, ys = [x for x, _ in pts], [y for _, y in pts]
            (line,) = ax.plot(xs, ys, marker="o", label=f"GPU {gpu}")
            if key.endswith("per_w"):
                k = ys.index(max(ys))
                ax.plot(
                    [xs[k]], [ys[k]], marker="o", markersize=14, fillstyle="none",
                    color=line.get_color(),
                )  # fmt: skip
                ax.annotate(
                    f"{xs[k]:g} W", (xs[k], ys[k]), textcoords="offset points", xytext=(6, 6)
                )
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if not ax.lines:
            ax.text(0.5, 0.5, "not measured", ha="center", va="center", transform=ax.transAxes)
    for ax in axes[1]:
        ax.set_xlabel("power limit (W)")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="upper right")
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
