"""`rigbench burnin`: sustained and stepped load on every chosen GPU, checked, with a verdict."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from rigbench.burnin.profiles import PROFILES
from rigbench.burnin.profiles import help_text as profiles_help
from rigbench.commands.common import (
    EXIT_ERROR,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    DbOpt,
    EveryNodeOpt,
    JsonOpt,
    SimulateOpt,
    check_every_node,
    check_timeout,
    err,
    follow_rank_0,
    interrupt_on_signals,
    one_line_errors,
    out,
    print_json,
    quiet_interrupt,
    stored_run,
)
from rigbench.errors import BadInput

if TYPE_CHECKING:
    from rigbench.burnin.psutrip import TripReport

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
    vram: Annotated[
        bool | None,
        typer.Option(
            "--vram/--no-vram",
            help="Run the VRAM pattern test on every GPU after the load (default: on with "
            "--profile, off without).",
            show_default=False,
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
            "for milliseconds (a trip, or a 12 V bus sag that drops GPUs). On real GPUs each "
            "step is run and its spike measured from the instantaneous power at 100 Hz, saved "
            "as it is measured, stopping where a GPU falls off the bus or a load dies (a real "
            "trip can power the machine off); on a simulated rig the trace's figures are "
            "stepped through the model. Exit 1 when a step trips.",
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
            help="At each power limit from LO to HI watts in STEP steps (e.g. 150:350:25), "
            "per GPU: the sustained GEMM rate and a short training run's tokens/s (GPT-124M on "
            "one GPU, tiny on a CPU stand-in), each per watt of the mean power over its own "
            "window; then the limits are put back. Prints the best limit per watt and saves "
            "the curve as a PNG beside the database. Needs root to set limits: without it, "
            "measures at the current limit only and says so.",
            metavar="LO:HI:STEP",
        ),
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout",
            help="Under torchrun: seconds a rank may take to reach the job's rendezvous "
            "before it says so in one line (default: bench's and doctor's, 60).",
            metavar="SECONDS",
        ),
    ] = None,
    simulate: SimulateOpt = None,
    as_json: JsonOpt = False,
    db: DbOpt = None,
    every_node: EveryNodeOpt = False,
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
        if (find_trip or sweep_power is not None) and vram is not None:
            raise BadInput("--vram: a burn-in's, not with --find-trip or --sweep-power")
    from rigbench.bench.cluster import DEFAULT_TIMEOUT_S, torchrun_env

    dist_env = torchrun_env()
    with one_line_errors():
        check_timeout(timeout)
        check_every_node(every_node, dist_env is not None)
        if timeout is not None and dist_env is None:
            raise BadInput(
                "--timeout: only under torchrun (the time to reach the job's rendezvous)"
            )
        if dist_env is not None:
            given = [
                name
                for name, value in (
                    ("--gpus", gpus),
                    ("--build", build),
                    ("--find-trip", find_trip or None),
                    ("--stagger", stagger),
                    ("--sweep-power", sweep_power),
                )
                if value is not None
            ]
            if given:
                raise BadInput(
                    f"under torchrun each rank burns in its own GPU (LOCAL_RANK): "
                    f"{', '.join(given)} only without torchrun"
                )
    if find_trip or stagger is not None:
        _find_trip(build, stagger, simulate, as_json, find_trip, gpus, db)
        return
    if sweep_power is not None:
        _sweep(sweep_power, gpus, simulate, as_json, db)
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
        build_obj = build_check.load(build) if build is not None else None
        backend = select_backend(simulate)
        rig = backend.rig()
    if dist_env is not None:
        _burnin_cluster(
            dist_env, backend, rig, minutes, rate, profile, db, as_json,
            timeout or DEFAULT_TIMEOUT_S, every_node,
        )  # fmt: skip
        return
    with one_line_errors():
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
                vram=PROFILES[profile].vram if vram is None and profile is not None else bool(vram),
                on_live=on_live,
            )
    except BaseException:
        if run.status == "running":
            store.finish_run(run, "failed")
        raise
    finally:
        if live_display is not None:
            live_display.stop()
    code = _exit_code(outcome)
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


def _exit_code(outcome: Any) -> int:
    """A finished burn-in's exit code: interrupted 130; nothing tested (void) 2, neither a
    pass nor a fault; any other verdict than pass 1."""
    if outcome.interrupted:
        return EXIT_INTERRUPTED
    if outcome.verdict.verdict == "void":
        return EXIT_ERROR
    return 0 if outcome.verdict.verdict == "pass" else EXIT_FAILED


CLUSTER_TIMEOUT_S = 600.0  # a collective's wait: ranks end their loads minutes apart at most


def _burnin_cluster(
    env: object,
    backend: object,
    rig: object,
    minutes: float,
    rate: float,
    profile: str | None,
    db: Path | None,
    as_json: bool,
    reach_s: float,
    every_node: bool,
) -> None:
    """`burnin` in one rank of a torchrun job: each rank burns in its own device; rank 0
    gathers every rank's verdict and telemetry and writes one run (a lost node: one line
    naming it, what was measured kept)."""
    import os

    from rigbench.bench.cluster import Cluster, DistEnv
    from rigbench.burnin.cluster import gather, merge, rank_devices, run_rank
    from rigbench.burnin.profiles import gate
    from rigbench.machine import new_run
    from rigbench.report.burnin import render_burnin
    from rigbench.store import Store

    assert isinstance(env, DistEnv)
    with one_line_errors():
        rank_devices(rig, env.local_rank, env.local_world_size)  # type: ignore[arg-type]
        store = Store.open(db) if env.rank == 0 else None
    interrupt_on_signals()
    with one_line_errors(), quiet_interrupt(env.rank):
        cluster = Cluster(env, on_gpu=False, timeout_s=CLUSTER_TIMEOUT_S, reach_s=reach_s)
    run = new_run("burnin", backend.kind, rig)  # type: ignore[attr-defined,arg-type]
    if store is not None:
        store.start_run(run)
        if not as_json:
            err.print(
                f"torchrun: burn-in for {minutes:g} min on {env.world_size} ranks over "
                f"{len(cluster.nodes)} node(s); run #{run.id}",
                highlight=False,
            )
    try:
        with one_line_errors():
            mine, watch = run_rank(
                cluster,
                backend,  # type: ignore[arg-type]
                rig,  # type: ignore[arg-type]
                minutes=minutes,
                rate_hz=rate,
                run=run,
            )
    except KeyboardInterrupt:  # a second Ctrl-C, or the agent's SIGTERM while stopping
        if store is not None:
            store.finish_run(run, "incomplete")
            err.print(f"interrupted: run #{run.id} marked incomplete")
            sys.stderr.flush()
        os._exit(EXIT_INTERRUPTED)
    except BaseException:
        if store is not None and run.status == "running":
            store.finish_run(run, "failed")
        raise
    reports, lost, error = gather(cluster, mine, watch)
    if env.rank != 0:
        if error:
            if env.local_rank == 0 and "rank 0" in error:
                err.print(f"[red]error:[/red] node {env.node_rank}: {escape(error)}")
                sys.stderr.flush()
            os._exit(EXIT_ERROR)  # no teardown: it could wait on the lost peers
        follow_rank_0(cluster, env, every_node, db)
        return
    assert store is not None and run.id is not None
    broken = bool(lost or error)
    code = EXIT_ERROR  # what the other ranks hear if merging or storing fails
    try:
        with one_line_errors():
            merged = merge(store, run, cluster.nodes, reports, lost, error)
        outcome = merged.outcome
        store.finish_run(run, "incomplete" if broken or outcome.interrupted else "complete")
        code = EXIT_ERROR if broken else _exit_code(outcome)
    finally:
        if not broken:  # a broken run's other ranks have already ended in error
            cluster.share_end(code, stored_run(store, run.id) if every_node else None)
    if as_json:
        doc = outcome.to_dict()
        doc["nodes"] = [n.name for n in cluster.nodes]
        doc["lost_nodes"] = [n.name for n in lost]
        doc["gate"] = gate(profile, minutes, doc, code)
        print_json(doc)
    else:
        render_burnin(outcome, out)
        out.print(f"[dim]run #{run.id} saved to {store.path}[/dim]")
    if broken:
        what = f"lost node {'; '.join(n.name for n in lost)}" if lost else "the run stopped"
        err.print(
            f"[red]error:[/red] {escape(what)}: {escape(error or 'no answer')}; the "
            f"{merged.ranks} rank(s) that answered kept in run #{run.id} ({store.path}), "
            "marked incomplete",
            highlight=False,
            soft_wrap=True,
        )
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)  # no process-group teardown: it could wait on the lost node
    cluster.shutdown()
    if code:
        raise typer.Exit(code)


def _find_trip(
    build: Path | None,
    stagger: float | None,
    simulate: Path | None,
    as_json: bool,
    asked: bool,
    gpus: str | None,
    db: Path | None,
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
        build_obj = build_check.load(build)
        backend = select_backend(simulate)
        if backend.kind == "nvml":
            report = _find_trip_live(backend, build_obj, stagger, gpus, db, as_json)
        else:
            source = backend.telemetry()
            try:
                report = run_finder(source, build_obj, stagger)
            finally:
                source.close()
    if as_json:
        print_json(report.to_dict())
    else:
        render_trip(report, out)
    if report.interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)
    if not report.simultaneous and not report.staggered:
        raise typer.Exit(EXIT_ERROR)  # nothing measured: neither holds nor trips
    if report.trips:
        raise typer.Exit(EXIT_FAILED)


def _find_trip_live(
    backend: Any, build_obj: Any, stagger: float | None, gpus: str | None,
    db: Path | None, as_json: bool,
) -> TripReport:  # fmt: skip
    """Ramp the real GPUs (burnin.psutrip_live), each step stored as it is measured."""
    from rigbench.bench.suite import parse_gpus
    from rigbench.burnin.psutrip import TripStep
    from rigbench.burnin.psutrip_live import WARNING, run_live_finder
    from rigbench.burnin.run import plan_devices
    from rigbench.machine import new_run
    from rigbench.needs import require_torch
    from rigbench.report.psutrip import step_line
    from rigbench.store import Store

    require_torch("burnin")
    rig = backend.rig()
    selected = parse_gpus(gpus, rig)
    if not selected:
        raise BadInput("--find-trip needs NVIDIA GPUs to ramp (none here), or --simulate FILE")
    devices, on_gpu = plan_devices(rig, selected, backend_kind="nvml", lost_at={})
    store = Store.open(db)
    run = new_run("burnin", "nvml", rig)
    store.start_run(run)
    assert run.id is not None
    err.print(WARNING.format(n=len(devices), db=store.path), highlight=False)

    def progress(step: TripStep, state: str) -> None:
        if not as_json:
            err.print(step_line(step), highlight=False)

    interrupt_on_signals()
    try:
        report = run_live_finder(
            backend, devices, on_gpu, build_obj, stagger, store, run.id, on_step=progress
        )
    except BaseException:
        store.finish_run(run, "failed")
        raise
    store.finish_run(run, "incomplete" if report.stopped else "complete")
    return report


def _sweep(
    spec: str, gpus: str | None, simulate: Path | None, as_json: bool, db: Path | None
) -> None:
    from rigbench.bench.suite import parse_gpus
    from rigbench.burnin.plots import save_sweep_plot, sweep_plot_path
    from rigbench.burnin.sweep import SweepPoint, parse_sweep, results_of, run_sweep
    from rigbench.errors import one_line
    from rigbench.hw.backend import select_backend
    from rigbench.machine import new_run
    from rigbench.needs import require_torch
    from rigbench.report.sweep import point_line, render_sweep
    from rigbench.store import Store

    with one_line_errors():
        limits = parse_sweep(spec)
        require_torch("burnin")
        backend = select_backend(simulate)
        rig = backend.rig()
        selected = parse_gpus(gpus, rig)
        if not selected:
            raise BadInput("--sweep-power: no GPU to sweep (it measures GPUs at power limits)")
        store = Store.open(db)
        run = new_run("burnin", backend.kind, rig)
        store.start_run(run)
    assert run.id is not None
    run_id = run.id

    def progress(p: SweepPoint) -> None:
        for r in results_of([p]):  # stored as measured: a crash loses none
            store.add_result(run_id, r)
        if not as_json:
            err.print(point_line(p), highlight=False)

    interrupt_on_signals()
    try:
        with one_line_errors():
            report = run_sweep(backend, limits, selected, on_point=progress)
    except BaseException as exc:
        store.finish_run(run, "incomplete" if isinstance(exc, KeyboardInterrupt) else "failed")
        raise
    path = sweep_plot_path(store, run_id)
    sim = " (simulated rig: CPU stand-in rates)" if report.simulated else ""
    if path is not None and report.points:
        try:
            report.plot = str(
                save_sweep_plot(path, report.points, f"rigbench power sweep, run #{run_id}{sim}")
            )
        except ImportError:
            report.notes.append("plot not saved: matplotlib is not installed")
        except (OSError, ValueError, RuntimeError) as exc:
            report.notes.append(f"plot not saved: {one_line(exc)}")
    store.finish_run(run, "complete")
    if as_json:
        print_json({"run_id": run_id, **report.to_dict()})
    else:
        render_sweep(report, out)
        out.print(f"[dim]run #{run_id} saved to {store.path}[/dim]")
