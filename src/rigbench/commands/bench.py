"""`rigbench info`, `rigbench bench` and `rigbench show`."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from rigbench.commands.common import (
    EXIT_ERROR,
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
from rigbench.errors import BadInput, RigbenchError

if TYPE_CHECKING:
    from rigbench.hw.model import Rig
    from rigbench.records import Result, Run
    from rigbench.store import Store

app = typer.Typer()

# Listed from the options model without importing pydantic's model at CLI start-up cost:
# the keys and their meaning live in rigbench/bench/options.py.
_SETTINGS_HELP = (
    "train.size, train.compile, train.fsdp, train.batch, infer.model, infer.engine,"
    " infer.attn, infer.contexts, infer.batches, nbody.engines, collectives.ops (see the README)."
)


@app.command()
def info(simulate: SimulateOpt = None, as_json: JsonOpt = False) -> None:
    """Show the machine as rigbench sees it: GPUs, links, P2P, CPU, driver and versions."""
    from rigbench.hw.backend import select_backend
    from rigbench.report.rig import render_rig

    with one_line_errors():
        rig = select_backend(simulate).rig()
    if as_json:
        print_json(rig.to_dict())
    else:
        render_rig(rig, out)


@app.command()
def bench(
    quick: Annotated[
        bool, typer.Option("--quick", help="A few sizes per benchmark (default).")
    ] = False,
    full: Annotated[
        bool, typer.Option("--full", help="Size sweeps and a GEMM shape search (minutes).")
    ] = False,
    only: Annotated[
        str | None,
        typer.Option(
            "--only",
            help="Comma-separated benchmarks: gemm, memory, hostlink, p2p, collectives"
            " (the default set), and the workloads train, infer, nbody.",
            metavar="LIST",
        ),
    ] = None,
    gpus: Annotated[
        str | None,
        typer.Option("--gpus", help="Comma-separated GPU indices (default: all).", metavar="LIST"),
    ] = None,
    simulate: SimulateOpt = None,
    as_json: JsonOpt = False,
    db: DbOpt = None,
    every_node: EveryNodeOpt = False,
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout",
            help="Seconds a step may go without progress before it counts as hung.",
            metavar="SECONDS",
        ),
    ] = None,
    settings: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="A workload setting KEY=VALUE (repeatable): " + _SETTINGS_HELP,
            metavar="KEY=VALUE",
        ),
    ] = None,
    scale: Annotated[
        float, typer.Option("--scale", hidden=True, help="Scale problem sizes (tests).")
    ] = 1.0,
) -> None:
    """Measure matmul, memory, host link, GPU-to-GPU and collectives against what the
    hardware should give. Every result is stored as it is measured."""
    from rigbench.bench.context import Step
    from rigbench.bench.options import parse_sets
    from rigbench.bench.suite import build_plan, parse_gpus, parse_only, run_plan
    from rigbench.hw.backend import select_backend
    from rigbench.judge.bench import BenchJudge, judge_results
    from rigbench.machine import new_run
    from rigbench.needs import require_torch
    from rigbench.store import Store

    with one_line_errors():
        if quick and full:
            raise BadInput("choose one of --quick and --full")
        if not 0 < scale <= 16:
            raise BadInput("--scale must be in (0, 16]")
        check_timeout(timeout)
        require_torch("bench")
        names = parse_only(only)
        options = parse_sets(settings)
        backend = select_backend(simulate)
        rig = backend.rig()
        from rigbench.bench.cluster import torchrun_env

        dist_env = torchrun_env()
        check_every_node(every_node, dist_env is not None)
        if dist_env is not None:
            _bench_cluster(
                dist_env, backend, rig, names, full, scale, timeout, options, db, as_json,
                every_node,
            )  # fmt: skip
            return
        selected = parse_gpus(gpus, rig)
        store = Store.open(db)
        cuda = False
        if rig.source == "nvml" and selected:
            import torch

            cuda = torch.cuda.is_available()
        plan = build_plan(
            rig,
            gpus=selected,
            only=names,
            mode="full" if full else "quick",
            cuda_available=cuda,
            size_scale=scale,
            step_timeout_s=timeout,
            options=options,
        )
        run = new_run("bench", backend.kind, rig)
        assert run.id is None
        run_id = store.start_run(run)

    if plan.stand_ins and not as_json:
        where = "simulated rig" if rig.source.startswith("simulated") else "no GPU here"
        err.print(f"[yellow]{where}: benchmarks run on the CPU at small sizes[/yellow]")
    results: list[Result] = []
    with one_line_errors():
        judge = BenchJudge.for_plan(backend, rig, plan, selected)

    def on_result(r: Result) -> None:
        judge(r)
        with one_line_errors():
            store.add_result(run_id, r)
        results.append(r)

    def on_step(step: Step) -> None:
        judge.mark()
        progress.update(task, advance=1, description=step.label)

    status = "complete"
    interrupt_on_signals()
    try:
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            transient=True,
            disable=as_json or not err.is_terminal,
        ) as progress:
            task = progress.add_task("bench", total=plan.total_steps)
            judge.monitor.start()
            aborted = run_plan(plan, on_result, on_step=on_step)
        if aborted:
            status = "incomplete"
        judge_results(results, judge.ctx)
        with one_line_errors():
            store.update_judgements(run_id, results)
    except KeyboardInterrupt:
        store.finish_run(run, "incomplete")
        err.print(
            f"interrupted: {len(results)} results kept in run #{run_id} "
            f"({store.path or 'memory'}), marked incomplete"
        )
        raise typer.Exit(EXIT_INTERRUPTED) from None
    finally:
        judge.monitor.stop()
    _fail_if_nothing_measured(store, run, run_id, results)
    store.finish_run(run, status)  # type: ignore[arg-type]
    _show_and_exit(run, results, f"run #{run_id} ({status}) saved to {store.path}", as_json)


def _fail_if_nothing_measured(store: Store, run: Run, run_id: int, results: list[Result]) -> None:
    """A run with nothing measured is no evidence of anything: never a success. A figure, or
    a fault (a hang, wrong data) is evidence; a step that never started is not."""
    if any(r.status == "ok" or r.judgement is not None for r in results):
        return
    store.finish_run(run, "failed")
    why = "; ".join(sorted({f"{r.benchmark}: {r.message}" for r in results if r.message}))
    err.print(
        f"[red]error:[/red] nothing was measured in run #{run_id}"
        + (f" ({escape(why)})" if why else ""),
        highlight=False,
        soft_wrap=True,
    )
    raise typer.Exit(EXIT_ERROR)


def _show(run: Run, results: list[Result], saved: str, as_json: bool) -> None:
    """A finished bench run: its JSON (run, findings, results) or its table."""
    from rigbench.judge.bench_findings import bench_findings
    from rigbench.report.results import render_results

    if as_json:
        print_json(
            {
                "run": run.to_dict(),
                "findings": [f.to_dict() for f in bench_findings(results)],
                "results": [r.to_dict() for r in results],
            }
        )
    else:
        render_results(results, out)
        out.print(f"[dim]{saved}[/dim]")


def _show_and_exit(run: Run, results: list[Result], saved: str, as_json: bool) -> None:
    """Show the run, then exit with the code of its worst verdict (0 when all is normal)."""
    from rigbench.judge import exit_code_for

    _show(run, results, saved, as_json)
    code = exit_code_for(r.judgement.severity for r in results if r.judgement is not None)
    if code:
        raise typer.Exit(code)


def _bench_cluster(
    env: object,
    backend: object,
    rig: Rig,
    names: list[str],
    full: bool,
    scale: float,
    timeout: float | None,
    options: object,
    db: object,
    as_json: bool,
    every_node: bool,
) -> None:
    """`bench` in one rank of a torchrun job: rank 0 stores and shows the one run, the
    other ranks measure, print nothing (a lost node: one line on rank 0) and exit with
    rank 0's code."""
    from rigbench.bench.cluster import (
        CLUSTER_BENCHMARKS,
        DEFAULT_TIMEOUT_S,
        Cluster,
        DistEnv,
        cluster_context,
        run_cluster,
    )
    from rigbench.judge import exit_code_for
    from rigbench.judge.bench import judge_device_rows, judge_inter_node_results
    from rigbench.machine import new_run
    from rigbench.store import Store

    assert isinstance(env, DistEnv)
    with one_line_errors():
        other = [n for n in names if n not in CLUSTER_BENCHMARKS]
        if other:
            raise BadInput(
                f"under torchrun, bench runs {' and '.join(CLUSTER_BENCHMARKS)} "
                f"(--only {','.join(CLUSTER_BENCHMARKS)}); run {', '.join(other)} without it"
            )
        on_gpu = False
        if rig.source == "nvml":
            import torch

            on_gpu = torch.cuda.is_available()
            have = torch.cuda.device_count() if on_gpu else 0
            if on_gpu and env.local_world_size > have:
                # every rank says it alike, so that local rank 0 (the one that speaks) does
                raise BadInput(
                    f"{env.local_world_size} ranks on a node with {have} GPU(s): start "
                    f"torchrun with --nproc-per-node {have} or fewer (one rank a GPU)"
                )
        ctx = cluster_context(
            rig,
            env,
            on_gpu=on_gpu,
            mode="full" if full else "quick",
            size_scale=scale,
            options=options,
        )
        store = Store.open(db) if env.rank == 0 else None  # type: ignore[arg-type]
    interrupt_on_signals()
    with one_line_errors():
        ports = backend.health(rig).host.net_ports  # type: ignore[attr-defined]
    with one_line_errors(), quiet_interrupt(env.rank):
        cluster = Cluster(
            env,
            on_gpu=on_gpu,
            timeout_s=timeout or DEFAULT_TIMEOUT_S,
            ports=ports,
            simulated=backend.kind == "simulated",  # type: ignore[attr-defined]
        )
    run = new_run("bench", backend.kind, rig)  # type: ignore[attr-defined]
    results: list[Result] = []
    run_id = store.start_run(run) if store is not None else None
    if store is not None and not as_json:
        err.print(
            f"torchrun: {len(cluster.nodes)} node(s), {env.world_size} ranks "
            f"({cluster.backend}); rank 0 on {cluster.nodes[0].host}",
            highlight=False,
        )

    def on_result(r: Result) -> None:
        assert store is not None and run_id is not None
        store.add_result(run_id, r)
        results.append(r)
        if not as_json:
            err.print(
                f"  {r.benchmark} {r.metric} {r.params.get('scope', '')} "
                f"{r.params.get('op', '')} {r.params.get('bytes', '')}",
                highlight=False,
            )

    try:
        outcome = run_cluster(cluster, ctx, names, on_result)
    except KeyboardInterrupt:  # SIGTERM from torchrun's agent, or Ctrl-C
        if store is None or run_id is None:
            os._exit(EXIT_INTERRUPTED)
        store.finish_run(run, "incomplete")
        err.print(
            f"interrupted: {len(results)} results kept in run #{run_id} "
            f"({store.path}), marked incomplete"
        )
        os._exit(EXIT_INTERRUPTED)
    if outcome.error and env.rank != 0:
        # Out at once: closing this rank's connections frees a rank 0 blocked on it (a
        # process-group teardown here could wait on the lost peers).
        os._exit(EXIT_ERROR)
    if store is None or run_id is None:  # measured, no error: exit with rank 0's code
        follow_rank_0(cluster, env, every_node, db)  # type: ignore[arg-type]
        return
    if outcome.error:
        judge_inter_node_results(results)
        with contextlib.suppress(RigbenchError):  # the kept results matter more
            store.update_judgements(run_id, results)
        store.finish_run(run, "incomplete")
        lost = "; ".join(n.name for n in outcome.lost)
        what = f"lost node {lost}" if lost else "the run stopped (every node still answers)"
        err.print(
            f"[red]error:[/red] {escape(what)}: {escape(outcome.error)}; "
            f"{len(results)} results kept in run #{run_id} ({store.path}), marked incomplete",
            highlight=False,
            soft_wrap=True,
        )
        sys.stderr.flush()
        os._exit(EXIT_ERROR)  # no process-group teardown: it could wait on the lost node
    # The rows between nodes are judged against their NICs, one rank's own rows as a run
    # without torchrun judges them; the others (intra-node, a node, the training scaling)
    # have no reference here: a failed one makes the exit code.
    code = EXIT_ERROR  # what the other ranks hear if judging or storing fails
    try:
        judge_inter_node_results(results)
        judge_device_rows(results, rig, ctx.devices[0].gpu_index)
        with one_line_errors():
            store.update_judgements(run_id, results)
        _fail_if_nothing_measured(store, run, run_id, results)
        store.finish_run(run, "complete")
        if any(r.status == "failed" for r in results):
            code = EXIT_ERROR
        else:
            code = exit_code_for(r.judgement.severity for r in results if r.judgement)
    finally:
        cluster.share_end(code, stored_run(store, run_id) if every_node else None)
        cluster.shutdown()
    _show(run, results, f"run #{run_id} (complete) saved to {store.path}", as_json)
    if code:
        raise typer.Exit(code)


@app.command()
def show(
    run_id: Annotated[int | None, typer.Argument(help="Run number (default: the latest).")] = None,
    as_json: JsonOpt = False,
    db: DbOpt = None,
) -> None:
    """Show everything a stored run holds: results, findings and recorded telemetry,
    whatever state it ended in (complete, incomplete, failed, crashed)."""
    from rigbench.report.stored_run import render_stored_run, stored_run_to_dict
    from rigbench.store import Store
    from rigbench.telemetry.stored import stored_telemetry

    with one_line_errors():
        store = Store.open(db)
        rid = run_id if run_id is not None else store.latest_run_id()
        run = store.get_run(rid) if rid is not None else None
        if run is None or rid is None:
            raise BadInput(f"no run #{run_id} in {store.path}" if run_id else "no runs stored yet")
        results = store.results(rid)
        findings = store.findings(rid)
        telemetry = stored_telemetry(store, rid)
    if as_json:
        print_json(stored_run_to_dict(run, results, findings, telemetry))
    else:
        render_stored_run(run, results, findings, telemetry, out)
