"""`rigbench monitor [OPTIONS] -- CMD [ARGS...]`: watch the rig while an owner's job runs.
Called by commands.monitor when a command is given; exits with the command's exit code."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from rigbench.commands.common import err, one_line_errors, out, print_json
from rigbench.errors import BadInput

if TYPE_CHECKING:
    from rigbench.telemetry.aggregate import AggregateView
    from rigbench.telemetry.sampler import SamplerStats


def monitor_job(
    command: list[str],
    *,
    rate: float,
    simulate: Path | None,
    metric: str | None,
    price_kwh: float | None,
    build: Path | None,
    as_json: bool,
    db: Path | None,
) -> None:
    from rich.live import Live

    from rigbench.burnin import build as build_check
    from rigbench.hw.backend import select_backend
    from rigbench.judge.job import job_findings
    from rigbench.machine import new_run
    from rigbench.report.job import job_view
    from rigbench.report.telemetry import monitor_view, unavailable_notes
    from rigbench.store import Store
    from rigbench.telemetry.job import job_results, watch_job
    from rigbench.telemetry.metric import MetricParser
    from rigbench.telemetry.sampler import MAX_RATE_HZ

    with one_line_errors():
        if not 0 < rate <= MAX_RATE_HZ:
            raise BadInput(f"--rate must be above 0 and at most {MAX_RATE_HZ:g} Hz (got {rate:g})")
        if price_kwh is not None and not price_kwh >= 0:
            raise BadInput(f"--price-kwh must be 0 or more (got {price_kwh:g})")
        parser = MetricParser.from_option(metric)
        build_obj = build_check.load(build) if build is not None else None
        backend = select_backend(simulate)
        rig = backend.rig()
        source = backend.telemetry()
        store = Store.open(db)
    channels = source.channels()
    if not as_json:
        if not channels:
            err.print("no NVIDIA GPU here: the command runs unwatched (its time is still kept)")
        for note in unavailable_notes(channels):
            err.print(f"[dim]{note}[/dim]", highlight=False)
    run = new_run("monitor", backend.kind, rig)
    live = None
    if not as_json and err.is_terminal:
        live = Live(console=err, refresh_per_second=4, transient=True)

    def refresh(view: AggregateView, stats: SamplerStats, elapsed: float) -> None:
        if live is not None:
            live.update(
                monitor_view(
                    view,
                    stats,
                    events_unavailable=source.events_unavailable,
                    title=f"{' '.join(command)}: {elapsed:.0f} s (peaks in brackets)",
                )
            )

    try:
        with one_line_errors():
            if live is not None:
                live.start()
            try:
                report, view, series = watch_job(
                    command,
                    source=source,
                    rate_hz=rate,
                    metric=parser,
                    store=store,
                    run=run,
                    price_kwh=price_kwh,
                    keep_ticks=build_obj is not None,
                    stdout=sys.stderr.buffer if as_json else None,
                    on_refresh=refresh,
                )
            finally:
                if live is not None:
                    live.stop()
            findings = job_findings(report, channels, view, series=series)
            if build_obj is not None and series is not None and series.ticks is not None:
                findings += build_check.findings(build_obj, series.ticks, [c.gpu for c in channels])
            if run.id is not None:
                for f in findings:
                    store.add_finding(run.id, f)
                for r in job_results(report):  # what `rigbench compare` sets side by side
                    store.add_result(run.id, r)
                store.finish_run(run, "complete")
    finally:
        source.close()
    if as_json:
        doc = report.to_dict()
        doc["findings"] = [f.to_dict() for f in findings]
        print_json(doc)
    else:
        out.print(job_view(report, findings))
    raise typer.Exit(report.exit_code)
