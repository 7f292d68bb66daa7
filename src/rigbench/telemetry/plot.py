"""Power, SM clock and temperatures of every GPU over time, as one matplotlib figure: the
burn-in saves it as a PNG with its run, the report embeds it as SVG. Load phases are shaded,
events marked, power limits drawn. Long series are thinned (`rigbench.stats.thin`); power
keeps each bucket's maximum, so no peak is lost from the picture.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rigbench.stats import thin

PHASE_COLOURS = {
    "gemm": "#d9e8f5",
    "memory": "#e3f2d9",
    "allreduce": "#f5e6d9",
    "full": "#f0f0f0",
}
_ROWS = (
    ("power_w", "power (W)", True),
    ("sm_clock_mhz", "SM clock (MHz)", False),
    ("temp_gpu_c", "temperature (°C)", False),
)


def _points(
    ts: list[Any], vs: list[Any], keep_max: bool, max_points: int, *, zero_is_missing: bool
) -> tuple[list[float], list[float]]:
    """The readings that exist, thinned (a memory temperature of 0 is "not read")."""
    pts = [
        (t, float(v))
        for t, v in zip(ts, vs, strict=True)
        if v is not None and (v or not zero_is_missing)
    ]
    return thin([p[0] for p in pts], [p[1] for p in pts], keep_max, max_points)


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def telemetry_figure(
    series: dict[str, dict[str, list[Any]]],
    phases: Sequence[tuple[str, float, float]],
    events: Sequence[tuple[float, str]],
    title: str,
    *,
    limits: dict[str, float] | None = None,
    max_points: int,
    figsize: tuple[float, float],
) -> Any:
    """The figure: `series[label]` has lists "t", "power_w", "sm_clock_mhz", "temp_gpu_c",
    "temp_mem_c" (None where not read); `phases` are (kind, start s, end s); `events` are
    (t, what) marked on every panel and labelled on the first; `limits` name -> watts."""
    plt = pyplot()
    fig, axes = plt.subplots(3, 1, figsize=figsize, sharex=True)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (key, label, keep_max) in zip(axes, _ROWS, strict=True):
        for kind, start, end in phases:
            colour = PHASE_COLOURS.get(kind)
            if colour:
                ax.axvspan(start, end, color=colour, lw=0, zorder=0)
        for k, (name, cols) in enumerate(series.items()):
            colour = colours[k % len(colours)]
            pts = [(t, v) for t, v in zip(cols["t"], cols[key], strict=True) if v is not None]
            if pts:
                ts, vs = thin([p[0] for p in pts], [float(p[1]) for p in pts], keep_max, max_points)
                ax.plot(ts, vs, lw=0.8, color=colour, label=name)
            if key == "temp_gpu_c":
                mem = [(t, v) for t, v in zip(cols["t"], cols["temp_mem_c"], strict=True) if v]
                if mem:
                    ts, vs = thin(
                        [p[0] for p in mem], [float(p[1]) for p in mem], False, max_points
                    )
                    ax.plot(ts, vs, lw=0.8, ls="--", color=colour, label=f"{name} memory")
        for t, _ in events:
            ax.axvline(t, color="red", lw=1, ls=":")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    for name, watts in (limits or {}).items():
        axes[0].axhline(watts, ls=":", lw=1, color="#b00020")
        axes[0].annotate(
            name, (0.01, watts), xycoords=("axes fraction", "data"), fontsize=7,
            color="#b00020", va="bottom",
        )  # fmt: skip
    for t, what in events:
        axes[0].annotate(
            what, (t, 1.0), xycoords=("data", "axes fraction"), rotation=90, va="top",
            fontsize=7, color="red",
        )  # fmt: skip
    if series:
        axes[0].legend(loc="upper right", fontsize=7, ncol=2)
    axes[-1].set_xlabel(
        "seconds since sampling began (shaded: blue matmul, green memory, orange all_reduce, "
        "grey full-load steps)"
    )
    axes[0].set_title(title, fontsize=10)
    fig.tight_layout()
    return fig
