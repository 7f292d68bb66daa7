"""`rigbench compare`: two stored runs side by side, or one against the references."""

from __future__ import annotations

from typing import Annotated

import typer

from rigbench.commands.common import DbOpt, JsonOpt, one_line_errors, out, print_json
from rigbench.errors import BadInput

app = typer.Typer()


@app.command()
def compare(
    run_a: Annotated[int, typer.Argument(help="A stored run number (rigbench show lists it).")],
    run_b: Annotated[
        int | None, typer.Argument(help="The run to compare with (or use --reference).")
    ] = None,
    reference: Annotated[
        bool,
        typer.Option(
            "--reference", help="Compare RUN_A with the healthy-hardware references instead."
        ),
    ] = False,
    as_json: JsonOpt = False,
    db: DbOpt = None,
) -> None:
    """Per figure, both values, the difference and whether it is outside the noise of the
    two spreads; warns when GPU, driver, torch or power limit differ. Exits 1 when a figure
    differs beyond noise, else 0."""
    from rigbench.judge.compare import compare_runs, compare_to_references
    from rigbench.report.compare import render_comparison
    from rigbench.store import Store

    with one_line_errors():
        if (run_b is None) == (not reference):
            raise BadInput("give a second run number or --reference (not both)")
        store = Store.open(db)
        loaded = []
        for rid in (run_a, run_b) if run_b is not None else (run_a,):
            run = store.get_run(rid)
            if run is None:
                raise BadInput(f"no run #{rid} in {store.path or 'memory'}")
            loaded.append((run, store.results(rid)))
    if run_b is None:
        cmp = compare_to_references(*loaded[0])
    else:
        (ra, rsa), (rb, rsb) = loaded
        cmp = compare_runs(ra, rsa, rb, rsb)
    if as_json:
        print_json(cmp.to_dict())
    else:
        render_comparison(cmp, out)
    if cmp.differing:
        raise typer.Exit(1)
