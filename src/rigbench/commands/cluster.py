"""`rigbench cluster`: one rigbench command on every GPU of several machines, through torchrun."""

from __future__ import annotations

from typing import Annotated

import typer

from rigbench.bench.launch import DEFAULT_JOIN_TIMEOUT_S
from rigbench.commands.common import exit_now, one_line_errors

app = typer.Typer()


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    options_metavar="[OPTIONS] -- COMMAND [ARGS]...",
)
def cluster(
    ctx: typer.Context,
    nnodes: Annotated[
        str, typer.Option("--nnodes", help="Nodes in the job (N, or MIN:MAX).", metavar="N")
    ],
    rdzv_endpoint: Annotated[
        str,
        typer.Option(
            "--rdzv-endpoint",
            help="HOST:PORT of the rendezvous, on one of the nodes; the same on every node.",
            metavar="HOST:PORT",
        ),
    ],
    nproc_per_node: Annotated[
        int | None,
        typer.Option(
            "--nproc-per-node",
            help="Ranks a node (default: one a GPU, or one CPU stand-in without GPUs).",
            metavar="G",
        ),
    ] = None,
    rdzv_id: Annotated[
        str,
        typer.Option("--rdzv-id", help="The job's id, the same on every node.", metavar="ID"),
    ] = "rigbench",
    join_timeout: Annotated[
        float,
        typer.Option(
            "--join-timeout",
            help="Seconds to wait for every node to join before giving up in one line.",
            metavar="SECONDS",
        ),
    ] = DEFAULT_JOIN_TIMEOUT_S,
    hosts: Annotated[
        str,
        typer.Option(
            "--hosts",
            help="The nodes, comma-separated (names or addresses), so that a node that never "
            "joins is named; every node must be started with `rigbench cluster`.",
            metavar="A,B,...",
        ),
    ] = "",
) -> None:
    """Run `rigbench COMMAND` on every node through torchrun (c10d rendezvous), e.g.
    `rigbench cluster --nnodes 2 --rdzv-endpoint node-a:29400 -- bench --only collectives,train`
    on each node. The same as the torchrun line in the README, with its failures in one line
    (an endpoint that does not resolve or cannot be reached, nodes that never join) and the
    ranks' exit code."""
    from rigbench.bench.launch import Launch, launch

    with one_line_errors():
        code = launch(
            Launch(
                nnodes=nnodes,
                nproc_per_node=nproc_per_node,
                endpoint=rdzv_endpoint,
                rdzv_id=rdzv_id,
                join_timeout_s=join_timeout,
                command=tuple(ctx.args),
                hosts=tuple(h.strip() for h in hosts.split(",")) if hosts else (),
            ),
            give_up=exit_now,
        )
        raise typer.Exit(code)
