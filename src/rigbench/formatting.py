"""Number and verdict formatting shared by the renderers (plan, report, commands)."""

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
    """A percentage of the datasheet or link figure. Not coloured: no healthy GPU reaches
    its datasheet figure, so the verdict (verdict_cell), not this ratio, says good or bad."""
    if ratio is None:
        return "—"
    return f"{ratio * 100:.0f}%"


VERDICT_STYLE = {
    "normal": ("green", "normal"),
    "below_normal": ("yellow", "below normal"),
    "fault": ("red", "FAULT"),
    "no_reference": ("dim", "no reference"),
}


def verdict_cell(verdict: str | None, cause: str | None = None) -> str:
    """The verdict in its colour, with the likely cause of a figure below normal."""
    if verdict is None:
        return "—"
    colour, words = VERDICT_STYLE.get(verdict, ("", verdict))
    if cause and verdict != "normal":
        words += f" ({cause.replace('_', ' ')})"
    return f"[{colour}]{words}[/{colour}]"
