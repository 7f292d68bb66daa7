"""The power-limit sweep's table: per limit and GPU, sustained GEMM rate and training
tokens/s, each with the mean power over its own window and the figure per watt."""

from __future__ import annotations

from rich.console import Console

from rigbench.burnin.sweep import SweepPoint, SweepReport, best_per_watt
from rigbench.tables import Table


def _f(v: float | None, fmt: str) -> str:
    return "—" if v is None else format(v, fmt)


def _limit(p: SweepPoint) -> str:
    if p.limit_w is not None:
        return f"{p.limit_w:g} W"
    now = f" ({p.enforced_limit_w:g} W)" if p.enforced_limit_w is not None else ""
    return f"the current limit{now}"


def point_line(p: SweepPoint) -> str:
    line = (
        f"GPU {p.gpu} at {_limit(p)}: {_f(p.tflops, '.3g')} TFLOP/s sustained at "
        f"{_f(p.power_mean_w, '.0f')} W, training {_f(p.tokens_per_s, '.4g')} tokens/s at "
        f"{_f(p.train_power_mean_w, '.0f')} W"
    )
    return line + "".join(f"; {x}" for x in p.problems[:2])


def render_sweep(report: SweepReport, console: Console) -> None:
    for note in report.notes:
        console.print(note, highlight=False)
    size = next((p.train_size for p in report.points if p.train_size), None)
    train = f"training GPT-{size} on one GPU" if size else "training"
    t = Table(title=f"power-limit sweep (sustained GEMM; {train})")
    cols = ("GPU", "limit W", "dtype", "TFLOP/s", "W", "TFLOP/s/W", "tokens/s", "W",
            "tokens/s/W")  # fmt: skip
    for col in cols:
        t.add_column(col, justify="right")
    for p in report.points:
        t.add_row(
            str(p.gpu),
            _f(p.enforced_limit_w, "g") if p.limit_w is None else f"{p.limit_w:g}",
            p.dtype or "—",
            _f(p.tflops, ".3g"),
            _f(p.power_mean_w, ".0f"),
            _f(p.tflops_per_w, ".3g"),
            _f(p.tokens_per_s, ".4g"),
            _f(p.train_power_mean_w, ".0f"),
            _f(p.tokens_per_s_per_w, ".3g"),
        )
    console.print(t)
    caveat = " (simulated rig: CPU stand-in rates, not a GPU's)" if report.simulated else ""
    for gpu in sorted({p.gpu for p in report.points}):
        if not report.limits_set or len([p for p in report.points if p.gpu == gpu]) < 2:
            continue
        g = best_per_watt(report, gpu)
        tk = best_per_watt(report, gpu, "tokens_per_s_per_w")
        parts = []
        if g is not None:
            parts.append(f"GEMM at {_f(g.enforced_limit_w, 'g')} W")
        if tk is not None:
            parts.append(f"training at {_f(tk.enforced_limit_w, 'g')} W")
        if parts:
            console.print(
                f"GPU {gpu}: most work per watt: {', '.join(parts)}{caveat}", highlight=False
            )
    if report.plot:
        console.print(f"plot: {report.plot}", highlight=False)
