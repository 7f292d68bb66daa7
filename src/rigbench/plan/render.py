"""The terminal form of a `PlanReport`: the GPUs as planned, the findings (errors first),
the predictions and where each model's memory goes. Reads the report's records only."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from rigbench.formatting import num
from rigbench.plan.records import PlanReport

_SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "info": "dim"}


def render_plan(report: PlanReport, console: Console) -> None:
    console.print(f"[bold]{escape(report.rig)}[/bold]  [dim]{escape(report.path)}[/dim]")

    gpus = Table(title="GPUs", title_justify="left")
    for col in ("#", "model", "power", "link", "GB/s", "slot", "PSU"):
        gpus.add_column(col, justify="right" if col in ("#", "power", "GB/s") else "left")
    for g in report.gpus:
        power = f"{g['power_w']:g} W" + ("" if g["power_limited"] else " (TDP)")
        link = g["link"] + (" + NVLink " + g["nvlink"] if g["nvlink"] != "none" else "")
        gbs = num(g["host_gbs"], 2)
        if g["host_gbs"] < g["link_gbs"]:
            gbs += " (shared)"
        gpus.add_row(
            str(g["index"]),
            escape(g["model"]),
            power,
            link,
            gbs,
            escape(g["slot"] or "—"),
            escape(g["psu"] or "—"),
        )
    console.print(gpus)

    findings = Table(title="Findings", title_justify="left", show_lines=True)
    findings.add_column("severity", no_wrap=True)
    findings.add_column("what", ratio=3)
    findings.add_column("why", ratio=4)
    findings.add_column("fix", ratio=3)
    for f in report.findings:
        style = _SEVERITY_STYLE[f.severity]
        findings.add_row(
            f"[{style}]{f.severity}[/{style}]",
            escape(f.title),
            escape(f.why or ""),
            escape(f.fix or "") or "—",
            style="dim" if f.severity == "info" else None,
        )
    console.print(findings)

    preds = Table(
        title="Predictions (upper bounds unless the basis says otherwise)", title_justify="left"
    )
    preds.add_column("what")
    preds.add_column("value", justify="right", no_wrap=True)
    preds.add_column("basis")
    for p in report.predictions:
        value = "—" if p.value is None else f"{num(p.value, 2)} {p.unit}"
        preds.add_row(escape(p.what), value, escape(p.basis))
    console.print(preds)

    for plan in report.fit:
        console.print(_fit_table(plan))

    counts = {s: sum(1 for f in report.findings if f.severity == s) for s in ("error", "warning")}
    verdict = {
        0: "[green]no warnings[/green]",
        1: "[yellow]warnings[/yellow]",
        2: "[bold red]errors[/bold red]",
    }[report.exit_code]
    console.print(
        f"{verdict}: {counts['error']} error(s), {counts['warning']} warning(s)"
        f" (exit {report.exit_code})"
    )


def _fit_table(plan: Mapping[str, Any]) -> Table:
    s = plan.get("settings", {})
    extra = ", ".join(
        f"{k} {v}"
        for k, v in s.items()
        if k in ("bits_per_weight", "context", "batch", "kv_dtype", "parallel", "mode", "sharding")
    )
    fits = "[green]fits[/green]" if plan["fits"] else "[bold red]does not fit[/bold red]"
    t = Table(
        title=f"Fit: {escape(plan['model_name'])} ({plan['kind']}; {escape(extra)}): {fits},"
        f" max context {plan['max_context']:,}",
        title_justify="left",
    )
    cols = (
        "GPU",
        "layers",
        "weights",
        "KV cache",
        "grads+optim",
        "activations",
        "overhead",
        "total",
        "of",
        "margin",
    )
    for col in cols:
        t.add_column(col, justify="left" if col in ("GPU", "layers") else "right")
    for g in plan["gpus"]:
        margin = g["margin_gib"]
        style = "red" if margin < 0 else "yellow" if margin < 1 else "green"
        t.add_row(
            str(g["gpu"]),
            f"{g['layers'][0]}-{g['layers'][1] - 1}" if g["layers"][1] > g["layers"][0] else "—",
            f"{g['weights_gib']:.1f}",
            f"{g['kv_cache_gib']:.1f}",
            f"{g['gradients_gib'] + g['optimizer_gib']:.1f}",
            f"{g['activations_gib']:.1f}",
            f"{g['overhead_gib']:.1f}",
            f"{g['total_gib']:.1f}",
            f"{g['capacity_gib']:g}",
            f"[{style}]{margin:+.1f}[/{style}]",
        )
    return t
