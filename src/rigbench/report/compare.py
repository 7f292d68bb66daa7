"""The terminal table of `rigbench compare`."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from rigbench.judge.compare import Comparison
from rigbench.report.format import num


def render_comparison(cmp: Comparison, console: Console) -> None:
    for w in cmp.warnings:
        console.print(f"[yellow]! {w}[/yellow]")
    t = Table(title=f"{cmp.a} against {cmp.b}", title_justify="left")
    for col in ("benchmark", "metric", "device", "variant", cmp.a, cmp.b, "unit", "diff"):
        t.add_column(col, justify="right" if col in (cmp.a, cmp.b, "diff") else "left")
    t.add_column("beyond noise")
    for r in cmp.rows:
        rel = f" ({100 * r.rel:+.1f}%)" if r.rel is not None else ""
        flag = (
            "[yellow]yes[/yellow]"
            if r.beyond_noise
            else "no"
            if r.beyond_noise is not None
            else f"[dim]{r.note or '—'}[/dim]"
        )
        t.add_row(
            r.benchmark,
            r.metric,
            ",".join(r.devices),
            " ".join(f"{k}={v}" for k, v in r.variant.items()) or "—",
            num(r.a),
            num(r.b),
            r.unit,
            f"{num(r.diff)}{rel}" if r.diff is not None else "—",
            flag,
        )
    console.print(t)
    n = len(cmp.differing)
    console.print(
        f"{n} figure{'s' if n != 1 else ''} differ beyond noise"
        if n
        else "no figure differs beyond noise"
    )
