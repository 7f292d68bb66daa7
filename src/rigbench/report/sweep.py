"""The power-limit sweep's table: per limit and GPU, sustained GEMM rate, power, per watt."""

from __future__ import annotations

from rich.console import Console

from rigbench.burnin.sweep import SweepPoint, SweepReport, best_per_watt
from rigbench.tables import Table


def _f(v: float | None, fmt: str) -> str:
    return "—" if v is None else format(v, fmt)


def point_line(p: SweepPoint) -> str:
    limit = "current limit" if p.limit_w is None else f"{p.limit_w:g} W"
    return (
        f"GPU {p.gpu} at {limit}: {_f(p.tflops, '.3g')} TFLOP/s sustained, "
        f"{_f(p.power_mean_w, '.0f')} W mean"
    )


def render_sweep(report: SweepReport, console: Console) -> None:
    for note in report.notes:
        console.print(note, highlight=False)
    t = Table(title="power-limit sweep (sustained GEMM)")
    for col in ("GPU", "limit W", "dtype", "TFLOP/s", "mean W", "TFLOP/s per W"):
        t.add_column(col, justify="right")
    for p in report.points:
        t.add_row(
            str(p.gpu),
            "current" if p.limit_w is None else f"{p.limit_w:g}",
            p.dtype or "—",
            _f(p.tflops, ".3g"),
            _f(p.power_mean_w, ".0f"),
            _f(p.tflops_per_w, ".3g"),
        )
    console.print(t)
    for gpu in sorted({p.gpu for p in report.points}):
        best = best_per_watt(report, gpu)
        if best is not None and best.limit_w is not None and not report.simulated:
            console.print(f"GPU {gpu}: most work per watt at {best.limit_w:g} W", highlight=False)
