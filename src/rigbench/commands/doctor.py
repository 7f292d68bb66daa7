"""`rigbench doctor`."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from rigbench.commands.common import (
    EXIT_INTERRUPTED,
    DbOpt,
    EveryNodeOpt,
    JsonOpt,
    SimulateOpt,
    check_every_node,
    check_timeout,
    err,
    interrupt_on_signals,
    one_line_errors,
    out,
    print_json,
    quiet_interrupt,
    say_kept,
)

app = typer.Typer()


@app.command()
def doctor(
    as_json: JsonOpt = False,
    simulate: SimulateOpt = None,
    only: Annotated[
        str | None,
        typer.Option(
            "--only",
            help="Comma-separated checks: inventory, versions, driver, pcie, p2p, nvlink, "
            "fabricmanager, collectives, iommu, acs, env, persistence, shm, memlock, governor, "
            "numa, network, xid, kernel, ecc, memory, throttle, temperature, power, clocks, "
            "sanity.",
            metavar="LIST",
        ),
    ] = None,
    db: DbOpt = None,
    every_node: EveryNodeOpt = False,
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout",
            help="Seconds a probe (a GPU pair's copy, the all_reduce) may make no progress "
            "before it counts as hung (default 10 and 30 on GPUs, 5 and 20 on CPU stand-ins).",
            metavar="SECONDS",
        ),
    ] = None,
) -> None:
    """Find what is wrong with the rig and say how to fix it. Exit code 0 healthy,
    1 warnings, 2 errors."""
    from rigbench.doctor.run import parse_checks, run_doctor
    from rigbench.hw.backend import select_backend
    from rigbench.machine import machine_summary, software_versions
    from rigbench.records import Run
    from rigbench.report.findings import render_findings
    from rigbench.store import Store

    with one_line_errors():
        check_timeout(timeout)
        checks = parse_checks(only)
        backend = select_backend(simulate)
        from rigbench.bench.cluster import torchrun_env

        dist_env = torchrun_env()
        check_every_node(every_node, dist_env is not None)
        if dist_env is not None:
            _doctor_cluster(dist_env, backend, timeout, db, as_json, every_node)
            return
        store = Store.open(db)
    sampler = None
    if backend.kind == "nvml":
        from rigbench.hw.nvml_health import PcieLinkSampler

        sampler = PcieLinkSampler
    interrupt_on_signals()
    run = Run(command="doctor", argv=sys.argv[1:], backend=backend.kind)
    try:
        with (
            one_line_errors(),
            Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                console=err,
                transient=True,
                disable=as_json or not err.is_terminal,
            ) as progress,
        ):
            task = progress.add_task("reading the rig", total=None)

            def on_progress(stage: str, what: str) -> None:
                label = "probing" if stage == "probes" else "checked"
                progress.update(task, description=f"{label} {what}")

            report = run_doctor(
                backend,
                checks,
                timeout_s=timeout,
                sampler_factory=sampler,
                on_progress=on_progress,
            )
    except KeyboardInterrupt:
        err.print("interrupted: no report")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    run.machine = machine_summary(report.rig)
    run.versions = software_versions(report.rig)
    with one_line_errors():
        store.start_run(run)
        for finding in report.findings:
            store.add_finding(run.id, finding)  # type: ignore[arg-type]
        store.finish_run(run, "complete")
    code = report.exit_code
    if as_json:
        print_json(
            {
                "run": run.to_dict(),
                "findings": [f.to_dict() for f in report.findings],
                "summary": {
                    **report.counts(),
                    "exit_code": code,
                    "checks": checks,
                    "seconds": round(report.seconds, 2),
                    "probe_seconds": round(report.probes.seconds, 2),
                },
            }
        )
    else:
        gpus = report.rig.gpus
        names = sorted({g.name for g in gpus})
        header = (
            f"rigbench doctor: {report.rig.source}, {len(gpus)} GPU(s)"
            + (f" ({', '.join(names)})" if names else "")
            + f", {report.seconds:.1f} s"
        )
        render_findings(report.findings, out, header=header, exit_code=code)
    if code:
        raise typer.Exit(code)


def _doctor_cluster(
    env: object,
    backend: object,
    timeout: float | None,
    db: object,
    as_json: bool,
    every_node: bool,
) -> None:
    """`doctor` in one rank of a torchrun job: each node's local rank 0 reads its facts,
    every rank judges them across nodes and exits with the same code; rank 0 alone stores
    and shows the findings."""
    import os
    import socket

    from rigbench.bench.cluster import DEFAULT_TIMEOUT_S, NET_ENV, DistEnv, gather_facts
    from rigbench.doctor.cluster import NodeFacts, cluster_findings
    from rigbench.judge import exit_code_for
    from rigbench.machine import new_run, software_versions
    from rigbench.report.findings import render_findings
    from rigbench.store import Store

    assert isinstance(env, DistEnv)
    facts = None
    with one_line_errors():
        rig = backend.rig()  # type: ignore[attr-defined]
        if env.local_rank == 0:
            host = backend.health(rig).host  # type: ignore[attr-defined]
            facts = NodeFacts(
                node=f"{socket.gethostname()} (node {env.node_rank})",
                versions=software_versions(rig),
                env={k: os.environ[k] for k in NET_ENV if os.environ.get(k)},
                ports=host.net_ports,
                memlock_bytes=host.memlock_bytes,
                backend="nccl" if rig.gpus else "gloo",
            )
        keeps = env.rank == 0 or (every_node and env.local_rank == 0)
        store = Store.open(db) if keeps else None  # type: ignore[arg-type]
    interrupt_on_signals()
    with one_line_errors(), quiet_interrupt(env.rank):
        nodes, bound = gather_facts(env, facts, timeout or DEFAULT_TIMEOUT_S)
    findings = cluster_findings(nodes, bound)
    code = exit_code_for(findings)
    if store is None:  # every rank judged the same facts: each exits with rank 0's code
        if code:
            raise typer.Exit(code)
        return
    run = new_run("doctor", backend.kind, rig)  # type: ignore[attr-defined]
    with one_line_errors():
        store.start_run(run)
        for finding in findings:
            store.add_finding(run.id, finding)  # type: ignore[arg-type]
        store.finish_run(run, "complete")
    if env.rank != 0:  # a node asked to keep the run too (every rank judged the same facts)
        say_kept(env.node_rank, run.id, store.path)
        if code:
            raise typer.Exit(code)
        return
    if as_json:
        print_json(
            {
                "run": run.to_dict(),
                "findings": [f.to_dict() for f in findings],
                "summary": {"exit_code": code, "nodes": [n.node for n in nodes]},
            }
        )
    else:
        header = f"rigbench doctor across {len(nodes)} node(s) (torchrun)"
        render_findings(findings, out, header=header, exit_code=code)
    if code:
        raise typer.Exit(code)
