"""`rigbench export` and `rigbench import`: runs as a versioned JSON file others can read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from rigbench.commands.common import DbOpt, IncludeIdsOpt, JsonOpt, one_line_errors, out, print_json
from rigbench.errors import BadInput

app = typer.Typer()


@app.command()
def export(
    runs: Annotated[
        list[int],
        typer.Argument(help="Run numbers to export.", metavar="RUN...", show_default=False),
    ],
    dest: Annotated[
        Path | None,
        typer.Option("--out", help="File to write (default: standard output).", metavar="FILE"),
    ] = None,
    include_ids: IncludeIdsOpt = False,
    db: DbOpt = None,
) -> None:
    """Write runs (results, findings, machine, telemetry summary) as JSON in the documented
    format of schemas/export.schema.json, for another rigbench to import, compare or report."""
    from rigbench.report.exchange import export_runs
    from rigbench.store import Store

    with one_line_errors():
        doc = export_runs(Store.open(db), runs, include_ids=include_ids)
        if dest is None:
            print_json(doc)
            return
        try:
            dest.write_text(json.dumps(doc, indent=1, default=str) + "\n", encoding="utf-8")
        except OSError as exc:
            raise BadInput(f"cannot write {dest}: {exc.strerror or exc}") from exc
    out.print(f"wrote {len(doc['runs'])} run(s) to {dest}", highlight=False)


@app.command("import")
def import_(
    file: Annotated[
        Path, typer.Argument(help="An export file (rigbench export).", metavar="FILE.json")
    ],
    as_json: JsonOpt = False,
    db: DbOpt = None,
) -> None:
    """Add the runs of an export file to the database, marked with where they came from. The
    file is validated first: a bad value or a newer format imports nothing."""
    from rigbench.report.exchange import import_runs
    from rigbench.store import Store

    with one_line_errors():
        store = Store.open(db)
        ids = import_runs(store, file)
    if as_json:
        print_json({"imported": ids})
    else:
        out.print(
            f"imported {len(ids)} run(s) from {file.name}: " + ", ".join(f"#{i}" for i in ids),
            highlight=False,
        )
