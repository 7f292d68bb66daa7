"""`rigbench plan`: check a build file (a parts list) before buying it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rigbench.commands.common import JsonOpt, one_line_errors, out, print_json

app = typer.Typer()


@app.command()
def plan(
    build: Annotated[
        Path,
        typer.Argument(
            help="Build file (TOML): GPUs, CPU, board, PSUs, wall circuit, models."
            " Schema: schemas/build.schema.json; examples: examples/builds/.",
            metavar="BUILD.toml",
            show_default=False,
        ),
    ],
    models: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            help="A model preset to fit as well as the file's [[model]] (repeatable).",
            metavar="NAME",
        ),
    ] = None,
    context: Annotated[
        int | None,
        typer.Option("--context", help="Context (tokens) for the --model entries.", min=1),
    ] = None,
    bits: Annotated[
        str | None,
        typer.Option(
            "--bits-per-weight",
            help="Bits per weight (4.8) or a format (q4_k, bf16) for the --model entries.",
            metavar="BITS",
        ),
    ] = None,
    mode: Annotated[
        str,
        typer.Option("--mode", help="inference, full, lora or qlora, for the --model entries."),
    ] = "inference",
    as_json: JsonOpt = False,
) -> None:
    """Check a rig's parts before buying: power and millisecond spikes per PSU, the wall
    circuit, PCIe lanes and links, mixed GPUs, whether models fit; and predict its peak
    compute, memory bandwidth, decode and data-parallel bounds. Exit 0: nothing to fix,
    1: warnings, 2: errors or a bad build file."""
    from rigbench.plan import load_build, plan_build
    from rigbench.plan.build import with_models
    from rigbench.plan.render import render_plan

    with one_line_errors():
        loaded = load_build(build)
        if models:
            loaded = with_models(loaded, models, context=context, bits=bits, mode=mode)
        report = plan_build(loaded)
    if as_json:
        print_json(report.to_dict())
    else:
        render_plan(report, out)
    if report.exit_code:
        raise typer.Exit(report.exit_code)
