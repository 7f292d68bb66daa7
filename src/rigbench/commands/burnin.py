"""`rigbench burnin`: sustained and stepped load on every chosen GPU, checked, with a verdict."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rigbench.burnin.profiles import PROFILES
from rigbench.burnin.profiles import help_text as profiles_help
from rigbench.commands.common import (
    EXIT_ERROR,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
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

app = typer.Typer()
DEFAULT_MINUTES = 10.0

MAX_MINUTES = 7 * 24 * 60


@app.command()
def burnin(
    minutes: Annotated[
        float | None,
        typer.Option(
            "--minutes",
            help=f"How long the load runs (fractions allowed; default: the profile's length, "
            f"else {DEFAULT_MINUTES:g}).",
            metavar="N",
            show_default=False,
        ),
    ] = None,
    profile: Annotated[
        str | None,
        typer.Option(
            "--profile",
            help="An acceptance profile: " + profiles_help(),
            metavar="|".join(PROFILES),
            show_default=False,
        ),
    ] = None,
    gpus: Annotated[
        str | None,
        typer.Option("--gpus", help="Comma-separated GPU indices (default: all).", metavar="LIST"),
    ] = None,
    build: Annotated[
        Path | None,
        typer.Option(
            "--build",
            help="A build file (rigbench plan): compare measured peaks with its PSUs and circuit.",
            metavar="BUILD.toml",
        ),
    ] = None,
    rate: Annotated[
        float,
        typer.Option(
            "--rate", help="Telemetry samples per second per GPU (50 or more).", metavar="HZ"
        ),
    ] = 100.0,
    find_trip: Annotated[
        bool,
        typer.Option(
            "--find-trip",
            help="With --build: step the number of GPUs ramping idle->full together (1..N) "
            "and say at which step the combined spike goes past what the PSU groups carry "
            "for milliseconds (a trip, or a 12 V bus sag that drops GPUs). Simulated rigs only "
            "in this version. Exit 1 when a step trips.",
        ),
    ] = False,
    stagger: Annotated[
        float | None,
        typer.Option(
            "--stagger",
            help="With --find-trip: also ramp the GPUs this many ms apart, to show whether "
            "staggering the ramps avoids the trip.",
            metavar="MS",
        ),
    ] = None,
    sweep_power: Annotated[
        str | None,
        typer.Option(
            "--sweep-power",
            help="Measure the sustained GEMM rate and mean power at each power limit from LO "
            "to HI watts in STEP steps (e.g. 150:350:25), then put the limits back. Needs root "
            "to set limits: without it, measures at the current limit only and says so.",
            metavar="LO:HI:STEP",
        ),
    ] = None,
    simulate: SimulateOpt = None,
    as_json: JsonOpt = False,
    db: DbOpt = None,
) -> None:
    """Load every chosen GPU with checked matmuls, memory traffic and all_reduce, alternated
    with idle->full steps on all GPUs at once, while sampling telemetry; then a verdict per
    GPU and for the rig. Exit 0 pass, 1 fail, 2 bad input or nothing tested (a run too short),
    130 Ctrl-C."""
    from rigbench.bench.suite import parse_gpus
    from rigbench.burnin import build as build_check
    from rigbench.burnin.profiles import gate
    from rigbench.burnin.run import MIN_RATE_HZ, LiveState, run_burnin
    from rigbench.burnin.schedule import MIN_SAMPLES_PER_PHASE, shortest_run_s
    from rigbench.hw.backend import select_backend
    from rigbench.machine import new_run
    from rigbench.needs import require_torch
    from rigbench.report.burnin import progress_view, render_burnin
    from rigbench.store import Store
    from rigbench.telemetry.sampler import MAX_RATE_HZ

    with one_line_errors():
        if find_trip and sweep_power is not None:
            raise BadInput("--find-trip and --sweep-power: one at a time")
        if (find_trip or sweep_power is not None) and profile is not None:
            raise BadInput("--profile: a burn-in's, not with --find-trip or --sweep-power")
    if find_trip or stagger is not None:
        _find_trip(build, stagger, simulate, as_json, find_trip)
        return
    if sweep_power is not None:
        _sweep(sweep_power, gpus, simulate, as_json)
        return
    with one_line_errors():
        if profile is not None and profile not in PROFILES:
            raise BadInput(f"--profile must be one of {', '.join(PROFILES)} (got {profile!r})")
        if minutes is None:
            minutes = PROFILES[profile].minutes if profile is not None else DEFAULT_MINUTES
        if not MIN_RATE_HZ <= rate <= MAX_RATE_HZ:
            raise BadInput(
                f"--rate must be between {MIN_RATE_HZ:g} and {MAX_RATE_HZ:g} Hz (got {rate:g}): "
                "slower sampling misses the transients a burn-in provokes"
            )
        shortest = shortest_run_s(rate) / 60
        if not shortest <= minutes <= MAX_MINUTES:
            raise BadInput(
                f"--minutes must be from {shortest:.2g} to {MAX_MINUTES} (got {minutes:g}): "
                f"a shorter run has phases with fewer than {MIN_SAMPLES_PER_PHASE} telemetry "
                f"samples at {rate:g} Hz, so it tests nothing"
            )
        require_torch("burnin")
        build_obj, build_note = build_check.load(build) if build is not None else (None, None)
        backend = select_backend(simulate)
        rig = backend.rig()
        selected = parse_gpus(gpus, rig)
        store = Store.open(db)
        run = new_run("burnin", backend.kind, rig)
        store.start_run(run)

    live_display = None
    on_live = None
    if not as_json and err.is_terminal:
        from rich.live import Live

        live_display = Live(console=err, refresh_per_second=4, transient=True)
        last = [0.0]

        def on_live(state: LiveState) -> None:
            import time

            now = time.monotonic()
            if now - last[0] >= 0.25:
                last[0] = now
                live_display.update(progress_view(state))

    if not as_json:
        err.print(f"burn-in for {minutes:g} min, telemetry at {rate:g} Hz; run #{run.id}")
    interrupt_on_signals()  # Ctrl-C and SIGTERM stop the load; what ran is kept and judged
    try:
        if live_display is not None:
            live_display.start()
        with one_line_errors():
            outcome = run_burnin(
                backend,
                rig,
                selected,
                store,
                run,
                minutes=minutes,
                rate_hz=rate,
                build=build_obj,
                build_note=build_note,
                on_live=on_live,
            )
    except BaseException:
        if run.status == "running":
            store.finish_run(run, "failed")
        raise
    finally:
        if live_display is not None:
            live_display.stop()
    code = 0
    if outcome.interrupted:
        code = EXIT_INTERRUPTED
    elif outcome.verdict.verdict == "void":
        code = EXIT_ERROR  # nothing was tested: neither a pass nor a fault
    elif outcome.verdict.verdict != "pass":
        code = EXIT_FAILED
    if as_json:
        doc = outcome.to_dict()
        doc["gate"] = gate(profile, minutes, doc, code)
        print_json(doc)
    else:
        render_burnin(outcome, out)
        if profile is not None:
            out.print(f"profile {profile}: {minutes:g} min")
        out.print(f"[dim]run #{run.id} saved to {store.path}[/dim]")
    if code:
        raise typer.Exit(code)


def _find_trip(
    build: Path | None, stagger: float | None, simulate: Path | None, as_json: bool, asked: bool
) -> None:
    from rigbench.burnin import build as build_check
    from rigbench.burnin.psutrip import run_finder
    from rigbench.hw.backend import select_backend
    from rigbench.report.psutrip import render_trip

    with one_line_errors():
        if not asked:
            raise BadInput("--stagger: only with --find-trip")
        if build is None:
            raise BadInput("--find-trip needs --build BUILD.toml (the PSU groups to test)")
        if stagger is not None and not 0 < stagger <= 10_000:
            raise BadInput(f"--stagger must be above 0 and at most 10000 ms (got {stagger:g})")
        build_obj, note = build_check.load(build)
        if build_obj is None:
            raise BadInput(note or "--build: cannot be read")
        source = select_backend(simulate).telemetry()
        try:
            report = run_finder(source, build_obj, stagger)
        finally:
            source.close()
    if as_json:
        print_json(report.to_dict())
    else:
        render_trip(report, out)
    if report.trips:
        raise typer.Exit(EXIT_FAILED)


def _sweep(spec: str, gpus: str | None, simulate: Path | None, as_json: bool) -> None:
    from rigbench.bench.suite import parse_gpus
    from rigbench.burnin.sweep import parse_sweep, run_sweep
    from rigbench.hw.backend import select_backend
    from rigbench.needs import require_torch
    from rigbench.report.sweep import point_line, render_sweep

    with one_line_errors():
        limits = parse_sweep(spec)
        require_torch("burnin")
        backend = select_backend(simulate)
        selected = parse_gpus(gpus, backend.rig())
        if not selected:
            raise BadInput("--sweep-power: no GPU to sweep")

    def progress(p: object) -> None:
        if not as_json:
            err.print(point_line(p), highlight=False)  # type: ignore[arg-type]

    interrupt_on_signals()
    with one_line_errors():
        report = run_sweep(backend, limits, selected, on_point=progress)
    if as_json:
        print_json(report.to_dict())
    else:
        render_sweep(report, out)
