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
