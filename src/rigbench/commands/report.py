"""`rigbench report`: the rig's write-up as one self-contained HTML page (or Markdown)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from rigbench.commands.common import DbOpt, IncludeIdsOpt, err, one_line_errors, out
from rigbench.errors import BadInput, RigbenchError

if TYPE_CHECKING:
    from rigbench.plan.cost import CostReport
    from rigbench.report.collect import ReportInput

app = typer.Typer()


@app.command()
def report(
    runs: Annotated[
        list[int] | None,
        typer.Argument(
            help="Run numbers (default: the latest bench, doctor, burnin and monitor runs).",
            metavar="RUN...",
            show_default=False,
        ),
    ] = None,
    build: Annotated[
        Path | None,
        typer.Option(
            "--build",
            help="A build file: adds the parts list, the plan's findings and the cost section.",
            metavar="BUILD.toml",
        ),
    ] = None,
    html_out: Annotated[
        Path | None,
        typer.Option("--out", help="HTML file to write (default: report.html).", metavar="FILE"),
    ] = None,
    markdown: Annotated[
        Path | None,
        typer.Option(
            "--markdown",
            help="Also write Markdown, with the charts as SVG files in FILE_files/ beside it.",
            metavar="FILE.md",
        ),
    ] = None,
    include_ids: IncludeIdsOpt = False,
    against: Annotated[
        str | None,
        typer.Option(
            "--against",
            help="Put RUN side by side with another run (its number) or with the references"
            " ('reference'), differences beyond noise highlighted.",
            metavar="OTHER_RUN|reference",
        ),
    ] = None,
    db: DbOpt = None,
) -> None:
    """Write the rig's write-up: the machine, parts and plan (--build), every benchmark against
    its reference with charts, workloads, doctor findings, burn-in plots, cost and provenance.
    One HTML file with nothing to fetch; --markdown also writes a Markdown version."""
    from rigbench.report.build import build_document
    from rigbench.report.collect import load_report_input
    from rigbench.report.html import render_html, render_markdown
    from rigbench.store import Store

    with one_line_errors():
        store = Store.open(db)
        data = load_report_input(store, list(runs or []))
        comparison = None
        if against is not None:
            from rigbench.report.against import comparison_for

            if len(runs or []) != 1:
                raise BadInput("--against compares one run: name it (rigbench report RUN ...)")
            comparison = comparison_for(store, (runs or [0])[0], against)
        plan = loaded = cost = None
        cost_note = None
        if build is not None:
            from rigbench.plan import load_build, plan_build

            loaded = load_build(build)
            plan = plan_build(loaded)
            cost, cost_note = _cost(build, data)
        doc = build_document(
            data,
            plan=plan,
            build=loaded,
            cost=cost,
            cost_note=cost_note,
            include_ids=include_ids,
            comparison=comparison,
        )
        target = html_out or Path("report.html")
        try:
            target.write_text(render_html(doc), encoding="utf-8")
            written = [target]
            if markdown is not None:
                written += render_markdown(doc, markdown)[:1]
        except OSError as exc:
            raise BadInput(f"cannot write the report: {exc}") from exc
    for p in written:
        out.print(f"wrote {p}", highlight=False)


def _cost(build: Path, data: ReportInput) -> tuple[CostReport | None, str | None]:
    """The build's [costs] and [usage] analysed (throughput from the runs when the build has
    none); None and why when the build lacks what cost needs."""
    from dataclasses import replace

    from rigbench.plan.cost import analyse, throughputs_from_results
    from rigbench.plan.cost_inputs import resolve_inputs
    from rigbench.records import Result

    try:
        inputs, _ = resolve_inputs(
            build,
            price=None,
            cloud_per_hour=None,
            electricity_per_hour_usd=None,
            watts=None,
            kwh_price=None,
            hours_per_year=None,
            returns=None,
            use_years=None,
            invest_years=None,
            tokens_per_s=None,
        )
    except RigbenchError as exc:
        err.print(f"cost section left out: {exc}", highlight=False, markup=False)
        return None, f"No cost analysis: {exc}."
    if not inputs.throughputs:
        results = [
            Result.from_dict(r)
            for d in data.runs
            for r in d.results
            if r["benchmark"] in ("train", "infer")
        ]
        inputs = replace(inputs, throughputs=throughputs_from_results(results))
    return analyse(inputs), None
