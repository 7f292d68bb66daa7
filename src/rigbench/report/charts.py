"""The report's charts as standalone SVG documents (matplotlib, Agg, text as paths): no fonts,
scripts or links to fetch, so a page that embeds them stays self-contained.

Every function returns the SVG as bytes. Long series are thinned to MAX_POINTS per line
(power keeps each bucket's maximum, so no peak is lost from the picture).
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any

from rigbench.telemetry.plot import pyplot, telemetry_figure

MAX_POINTS = 1500


def _plt() -> Any:
    plt = pyplot()
    plt.rcParams["svg.hashsalt"] = "rigbench"  # the same run gives the same file
    plt.rcParams["svg.fonttype"] = "path"
    return plt


def _svg(fig: Any) -> bytes:
    plt = _plt()
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    plt.close(fig)
    return buf.getvalue()


def bars(
    labels: list[str],
    measured: list[float | None],
    reference: list[float | None],
    unit: str,
    title: str,
    reference_label: str = "expected",
) -> bytes:
    """Measured against the reference, one pair of bars per label."""
    plt = _plt()
    n = len(labels)
    fig, ax = plt.subplots(figsize=(min(12, 2.5 + 0.55 * n), 3.6))
    xs = list(range(n))
    have_ref = any(r for r in reference)
    width = 0.4 if have_ref else 0.6
    ax.bar(
        [x - (width / 2 if have_ref else 0) for x in xs],
        [m or 0.0 for m in measured],
        width,
        label="measured (median)",
        color="#3b75af",
    )
    if have_ref:
        ax.bar(
            [x + width / 2 for x in xs],
            [r or 0.0 for r in reference],
            width,
            label=reference_label,
            color="#c7c7c7",
            edgecolor="#888888",
        )
    for x, m in zip(xs, measured, strict=True):
        if m is None:
            ax.annotate(
                "failed / skipped",
                (x, 0),
                rotation=90,
                fontsize=7,
                color="#b00020",
                ha="center",
                va="bottom",
            )
    ax.set_xticks(xs)
    ax.set_xticklabels(
        labels, rotation=30 if n > 4 else 0, ha="right" if n > 4 else "center", fontsize=8
    )
    ax.set_ylabel(unit)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    return _svg(fig)


def heatmap(
    matrix: list[list[float | None]],
    rows: list[str],
    cols: list[str],
    unit: str,
    title: str,
    notes: list[list[str]] | None = None,
) -> bytes:
    """A matrix (P2P per GPU pair, busbw per operation and size), each cell annotated; None
    cells (not measured, or failed) are hatched."""
    plt = _plt()
    import numpy as np

    data = np.array([[math.nan if v is None else v for v in row] for row in matrix], dtype=float)
    fig, ax = plt.subplots(figsize=(2.2 + 0.9 * len(cols), 1.6 + 0.55 * len(rows)))
    masked = np.ma.masked_invalid(data)
    im = ax.imshow(masked, cmap="viridis", aspect="auto")
    ax.patch.set(hatch="//", edgecolor="#bbbbbb")
    ax.set_xticks(range(len(cols)))
    ax.set_xticklabels(cols, fontsize=8)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(rows, fontsize=8)
    finite = data[np.isfinite(data)]
    mid = float(np.nanmean(finite)) if finite.size else 0.0
    for i in range(len(rows)):
        for j in range(len(cols)):
            v = data[i, j]
            note = notes[i][j] if notes else ""
            if math.isfinite(v):
                text = f"{v:.3g}" + (f"\n{note}" if note else "")
                colour = "white" if v < mid else "black"
            else:
                text, colour = note or "", "#b00020"
            if text:
                ax.text(j, i, text, ha="center", va="center", fontsize=7, color=colour)
    fig.colorbar(im, ax=ax, label=unit)
    ax.set_title(title, fontsize=10)
    return _svg(fig)


def lines(
    series: dict[str, tuple[list[float], list[float]]],
    xlabel: str,
    ylabel: str,
    title: str,
    *,
    logx: bool = False,
    logy: bool = False,
    references: dict[str, float] | None = None,
    ideal: dict[str, tuple[list[float], list[float]]] | None = None,
) -> bytes:
    """One line per series; horizontal reference lines and dashed ideal curves."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 3.8))
    for name, (xs, ys) in series.items():
        ax.plot(xs, ys, marker="o", ms=3, lw=1.2, label=name)
    for name, (xs, ys) in (ideal or {}).items():
        ax.plot(xs, ys, ls="--", lw=1, color="#888888", label=name)
    for name, y in (references or {}).items():
        ax.axhline(y, ls=":", color="#b00020", lw=1)
        ax.annotate(
            name,
            (0.01, y),
            xycoords=("axes fraction", "data"),
            fontsize=7,
            color="#b00020",
            va="bottom",
        )
    if logx:
        ax.set_xscale("log", base=2)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    return _svg(fig)


def telemetry(
    series: dict[str, dict[str, list[Any]]],
    phases: Sequence[tuple[str, float, float]],
    events: Sequence[tuple[float, str]],
    title: str,
    limits: dict[str, float] | None = None,
) -> bytes:
    """Power, SM clock and temperatures over time (rigbench.telemetry.plot), power limits
    drawn as dotted lines."""
    fig = telemetry_figure(
        series, phases, events, title, limits=limits, max_points=MAX_POINTS, figsize=(11, 8)
    )
    return _svg(fig)
