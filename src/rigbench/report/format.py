"""Number formatting shared by the renderers."""

from __future__ import annotations


def gib(n: int | None) -> str:
    return "—" if n is None else f"{n / 2**30:.1f} GiB"


def num(v: float | None, digits: int = 1) -> str:
    if v is None:
        return "—"
    if abs(v) >= 1e7:
        return f"{v:.3g}"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 100:
        return f"{v:.0f}"
    return f"{v:.{digits}f}" if abs(v) >= 1 else f"{v:.{digits + 1}g}"


def size(n: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:g} {unit}"
    return f"{n} B"


def ratio_cell(ratio: float | None) -> str:
    """A percentage coloured for how close the measurement came to its reference."""
    if ratio is None:
        return "—"
    pct = ratio * 100
    colour = "green" if ratio >= 0.75 else "yellow" if ratio >= 0.5 else "red"
    return f"[{colour}]{pct:.0f}%[/{colour}]"


_VERDICT = {
    "pass": "[green]PASS[/green]",
    "fail": "[red]FAIL[/red]",
    "void": "[yellow]VOID[/yellow] (nothing tested)",
}


def verdict_words(verdict: str) -> str:
    """A burn-in verdict as shown (rich markup)."""
    return _VERDICT.get(verdict, verdict)
