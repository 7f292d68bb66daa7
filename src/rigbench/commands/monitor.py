"""`rigbench monitor`: live GPU telemetry, recorded and exported on request."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from rigbench.commands.common import (
    EXIT_FAILED,
    DbOpt,
    JsonOpt,
    SimulateOpt,
    err,
    interrupt_on_signals,
    one_line_errors,
    out,
    print_json,
)
from rigbench.errors import BadInput

if TYPE_CHECKING:
    from rigbench.hw.telemetry import TelemetrySource
    from rigbench.telemetry.aggregate import Aggregator
    from rigbench.telemetry.recorder import Recorder
    from rigbench.telemetry.sampler import Sampler

app = typer.Typer()

REFRESH_S = 0.25


@app.command()
def monitor(
    rate: Annotated[
        float,
        typer.Option("--rate", help="Samples per second per GPU (up to 1000).", metavar="HZ"),
    ] = 20.0,
    seconds: Annotated[
        float | None,
        typer.Option(
            "--seconds", help="Stop after this many seconds (default: until Ctrl-C).", metavar="N"
        ),
    ] = None,
    record: Annotated[
        bool, typer.Option("--record", help="Store every sample in the database as a run.")
    ] = False,
    prometheus: Annotated[
        int | None,
        typer.Option(
            "--prometheus",
            help="Serve Prometheus metrics on 127.0.0.1:PORT/metrics (0: any free port).",
            metavar="PORT",
        ),
    ] = None,
    metric: Annotated[
        str | None,
        typer.Option(
            "--metric",
            help="With -- CMD: the job's throughput from its output, a regex with one capture "
            "group (a number, optionally its unit; '/s' makes it a rate) or a preset: ollama, "
            "llama-bench, hf-trainer (default: every preset is tried).",
            metavar="REGEX|PRESET",
        ),
    ] = None,
    price_kwh: Annotated[
        float | None,
        typer.Option("--price-kwh", help="With -- CMD: energy price per kWh, for the cost."),
    ] = None,
    build: Annotated[
        Path | None,
        typer.Option(
            "--build",
            help="With -- CMD: a build file (rigbench plan): the job's peaks against its PSUs "
            "and circuits.",
            metavar="FILE",
        ),
    ] = None,
    simulate: SimulateOpt = None,
    as_json: JsonOpt = False,
    db: DbOpt = None,
    command: Annotated[
        list[str] | None,
        typer.Argument(
            help="After --, a command to run and watch: monitor stops when it exits and exits "
            "with its exit code (128+N for signal N), after a summary of what the job did.",
            metavar="-- CMD [ARGS...]",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Watch every GPU's power (instantaneous and averaged), clocks, temperatures, fans,
    throttle reasons and Xid events, many times a second, with peaks since start. Exits 1
    when a GPU fell off the bus or reported an Xid, else 0 (Ctrl-C is the normal way out).
    With -- CMD, watches that job and stores it as a run (see the README)."""
    with one_line_errors():
        job_opts = {"--metric": metric, "--price-kwh": price_kwh, "--build": build}
        watch_opts = {"--seconds": seconds, "--prometheus": prometheus}
        if not command and (given := [k for k, v in job_opts.items() if v is not None]):
            raise BadInput(f"{', '.join(given)}: only with a command to watch (-- CMD)")
        if command and (given := [k for k, v in watch_opts.items() if v is not None]):
            raise BadInput(f"{', '.join(given)}: not with -- CMD (the job sets the time)")
    if command:
        from rigbench.commands.monitor_job import monitor_job

        monitor_job(
            command,
            rate=rate,
            simulate=simulate,
            metric=metric,
            price_kwh=price_kwh,
            build=build,
            as_json=as_json,
            db=db,
        )
        return
    from rigbench.hw.backend import select_backend
    from rigbench.judge.vram import vram_findings
    from rigbench.machine import new_run
    from rigbench.report.job import finding_lines
    from rigbench.report.telemetry import (
        field_rates_line,
        monitor_summary,
        monitor_view,
        unavailable_notes,
    )
    from rigbench.store import Store
    from rigbench.telemetry.aggregate import Aggregator
    from rigbench.telemetry.prometheus import PrometheusExporter, render_metrics
    from rigbench.telemetry.recorder import FLUSH_EVERY_S, Recorder
    from rigbench.telemetry.refresh import FieldRefresh
    from rigbench.telemetry.sampler import MAX_RATE_HZ, Sampler, Sink

    with one_line_errors():
        if not 0 < rate <= MAX_RATE_HZ:
            raise BadInput(f"--rate must be above 0 and at most {MAX_RATE_HZ:g} Hz (got {rate:g})")
        if seconds is not None and not seconds > 0:
            raise BadInput(f"--seconds must be a positive number (got {seconds:g})")
        backend = select_backend(simulate)
        rig = backend.rig()
        source = backend.telemetry()
    channels = source.channels()
    if not channels:
        source.close()
        message = "no NVIDIA GPU here: nothing to monitor"
        if rig.source.startswith("simulated"):
            message = (
                f"the simulated rig {rig.source.split(':', 1)[1]} has no GPUs: nothing to monitor"
            )
        if as_json:
            print_json({"gpus": [], "message": message})
        else:
            err.print(message)
        return

    store = run = recorder = exporter = None
    aggregator = Aggregator(channels, 1.0 / rate)
    refresh = FieldRefresh()
    sinks: list[Sink] = [aggregator.add, refresh.add]
    try:
        with one_line_errors():
            if record:
                store = Store.open(db)
                run = new_run("monitor", backend.kind, rig)
                run_id = store.start_run(run)
                recorder = Recorder(store, run_id, channels, time.time())
                sinks.append(recorder.add)
            sampler = Sampler(source, rate, sinks)
            if prometheus is not None:
                exporter = PrometheusExporter(
                    lambda: render_metrics(aggregator.view(), sampler.stats().achieved_hz),
                    prometheus,
                )
                err.print(f"Prometheus metrics at {exporter.url}")
        if not as_json:
            for note in unavailable_notes(channels):
                err.print(f"[dim]{note}[/dim]", highlight=False)
        interrupt_on_signals()  # Ctrl-C and SIGTERM end the watch; what was sampled is kept
        interrupted = _watch(sampler, aggregator, recorder, seconds, as_json, source, FLUSH_EVERY_S)
        stats = sampler.stop()
        with one_line_errors():
            sampler.check()
            if recorder is not None:
                recorder.flush()
            if store is not None and run is not None:
                store.finish_run(run, "complete")
    finally:
        if exporter is not None:
            exporter.close()
        source.close()

    view = aggregator.view()
    vram = [f for ch in channels for f in vram_findings(ch, view.gpus.get(ch.gpu))]
    if as_json:
        doc = monitor_summary(view, stats, refresh.rates(stats.achieved_hz))
        doc["findings"] = [f.to_dict() for f in vram]
        doc["run"] = run.to_dict() if run is not None else None
        doc["interrupted"] = interrupted
        doc["events_unavailable"] = source.events_unavailable
        print_json(doc)
    else:
        out.print(
            monitor_view(
                view,
                stats,
                events_unavailable=source.events_unavailable,
                title=f"GPU telemetry over {stats.elapsed_s:.1f} s (peaks in brackets)",
            )
        )
        out.print(field_rates_line(refresh.rates(stats.achieved_hz)), highlight=False)
        for line in finding_lines(vram):
            out.print(line)
        if run is not None and recorder is not None:
            where = store.path if store is not None else None
            out.print(f"[dim]{recorder.written} samples saved as run #{run.id} ({where})[/dim]")
    if any(e.kind in ("xid", "lost") for e in view.events):
        raise typer.Exit(EXIT_FAILED)


def _watch(
    sampler: Sampler,
    aggregator: Aggregator,
    recorder: Recorder | None,
    seconds: float | None,
    quiet: bool,
    source: TelemetrySource,
    flush_every: float,
) -> bool:
    """Run the sampler and the live view until `seconds` pass or Ctrl-C; True if
    interrupted."""
    from rich.live import Live

    from rigbench.report.telemetry import monitor_view

    live = None
    if not quiet and out.is_terminal:
        live = Live(console=out, refresh_per_second=1 / REFRESH_S, transient=True)
    t0 = sampler.start()
    last_flush = t0
    try:
        if live is not None:
            live.start()
        while True:
            now = time.monotonic()
            if seconds is not None and now - t0 >= seconds:
                return False
            if not sampler.alive:
                return False  # the sampler stopped on an error: check() re-raises it
            if recorder is not None and now - last_flush >= flush_every:
                with one_line_errors():
                    recorder.flush()
                last_flush = now
            if live is not None:
                live.update(
                    monitor_view(
                        aggregator.view(),
                        sampler.stats(),
                        events_unavailable=source.events_unavailable,
                        title=f"GPU telemetry, {now - t0:.0f} s (peaks in brackets; Ctrl-C stops)",
                    )
                )
            wait = REFRESH_S
            if seconds is not None:
                wait = min(wait, max(0.0, t0 + seconds - time.monotonic()))
            time.sleep(wait)
    except KeyboardInterrupt:
        return True
    finally:
        if live is not None:
            live.stop()
