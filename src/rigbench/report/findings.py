"""`rigbench doctor`'s report: problems first (what, evidence, why, fix), then one line per
check that passed or could not run, then the tally and the exit code."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.text import Text

from rigbench.records import Finding
from rigbench.tables import Table

STYLE = {
    "error": "bold red",
    "warning": "yellow",
    "info": "cyan",
    "ok": "green",
    "skipped": "dim",
}
ORDER = ("error", "warning", "info")


def _value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    if isinstance(v, str):
        return v
    return json.dumps(v, default=str)


def evidence_text(evidence: dict[str, Any]) -> str:
    parts = [f"{k}: {_value(v)}" for k, v in evidence.items() if v not in (None, [], {})]
    return "; ".join(parts)


def render_findings(
    findings: list[Finding], console: Console, *, header: str, exit_code: int
) -> None:
    console.print(Text(header, style="bold"))
    problems = [f for sev in ORDER for f in findings if f.severity == sev]
    for f in problems:
        console.print()
        head = Text()
        head.append(f"{f.severity.upper():8}", style=STYLE[f.severity])
        head.append(f"{f.id}  ", style="bold")
        head.append(f.title)
        console.print(head)
        grid = Table.grid(padding=(0, 1))
        grid.add_column(width=8, style="dim")
        grid.add_column(width=8, style="dim")
        grid.add_column(ratio=1)
        for label, text in (
            ("evidence", evidence_text(f.evidence)),
            ("why", f.why or ""),
            ("fix", f.fix or ""),
        ):
            if text:
                grid.add_row("", label, Text(text))
        console.print(grid)
    rest = [f for f in findings if f.severity in ("ok", "skipped")]
    if rest:
        console.print()
        grid = Table.grid(padding=(0, 1))
        grid.add_column(width=8)
        grid.add_column(ratio=1)
        for f in rest:
            name = f.id.rsplit(".", 1)[0]
            line = Text(f"{name}: ", style="bold")
            line.append(f.title if f.severity == "ok" else (f.why or "not checked"))
            grid.add_row(Text(f.severity, style=STYLE[f.severity]), line)
        console.print(grid)
    counts = {s: sum(1 for f in findings if f.severity == s) for s in STYLE}
    plural = {"error": "errors", "warning": "warnings"}
    tally = ", ".join(f"{n} {plural.get(s, s) if n > 1 else s}" for s, n in counts.items() if n)
    verdict = {0: "healthy", 1: "warnings", 2: "errors"}.get(exit_code, "")
    console.print()
    console.print(Text(f"{tally} -> exit {exit_code} ({verdict})", style="bold"))
