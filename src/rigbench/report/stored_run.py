"""`show`: everything a stored run holds — results, findings, telemetry — whatever state it
ended in (a crashed run shows what it stored before its process died)."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from rigbench.records import Finding, Result, Run
from rigbench.report.format import num
from rigbench.tables import Table
from rigbench.telemetry.stored import StoredTelemetry

_STATUS_NOTE = {
    "running": "still running, or its process was on another host",
    "crashed": "its process ended without finishing it (killed or lost power): "
    "shown is what it stored until then",
    "incomplete": "stopped before the end: shown is what it measured until then",
}


def stored_run_to_dict(
    run: Run, results: list[Result], findings: list[Finding], telemetry: list[StoredTelemetry]
) -> dict[str, Any]:
    doc: dict[str, Any] = {"run": run.to_dict(), "results": [r.to_dict() for r in results]}
    if findings:
        doc["findings"] = [f.to_dict() for f in findings]
    if telemetry:
        doc["telemetry"] = [t.to_dict() for t in telemetry]
    return doc


def _telemetry_table(telemetry: list[StoredTelemetry]) -> Table:
    t = Table(title="telemetry recorded", title_justify="left")
    for col in ("GPU", "name", "samples", "seconds", "peak W", "mean W", "peak °C", "mem °C",
                "mean SM MHz", "events"):  # fmt: skip
        t.add_column(col, justify="left" if col in ("GPU", "name") else "right")
    for s in telemetry:
        span = None
        if s.first_t_s is not None and s.last_t_s is not None:
            span = s.last_t_s - s.first_t_s
        t.add_row(
            str(s.gpu),
            s.name,
            str(s.samples),
            num(span),
            num(s.power_peak_w),
            num(s.power_mean_w),
            num(s.temp_gpu_peak_c),
            num(s.temp_mem_peak_c),
            num(s.sm_clock_mean_mhz),
            str(s.events),
        )
    return t


def render_stored_run(
    run: Run,
    results: list[Result],
    findings: list[Finding],
    telemetry: list[StoredTelemetry],
    console: Console,
) -> None:
    from rigbench.report.findings import render_findings
    from rigbench.report.results import render_results

    console.print(
        f"run #{run.id} {run.command} ({run.status}) started {run.started_at}, {run.backend}",
        highlight=False,
    )
    note = _STATUS_NOTE.get(run.status)
    if note:
        where = f" (pid {run.pid} on {run.host})" if run.pid is not None else ""
        console.print(f"[yellow]{run.status}{where}: {note}[/yellow]", highlight=False)
    render_results(results, console)
    if findings:
        severities = {f.severity for f in findings}
        code = 2 if "error" in severities else 1 if "warning" in severities else 0
        render_findings(findings, console, header=f"{run.command} findings", exit_code=code)
    if telemetry:
        console.print(_telemetry_table(telemetry))
    if not (results or findings or telemetry):
        console.print("[dim]nothing was stored in this run[/dim]")
