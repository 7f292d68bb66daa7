"""`rigbench cost`: whether owning the rig beats renting, from a build file and/or flags."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from rigbench.commands.common import DbOpt, JsonOpt, one_line_errors, out, print_json

app = typer.Typer()


def _usd_opt(flag: str, text: str) -> Any:
    return typer.Option(flag, help=text, metavar="USD")


@app.command()
def cost(
    build: Annotated[
        Path | None,
        typer.Argument(
            help="Build file (TOML; see `plan`): its [costs] and [usage]. Flags override it.",
            metavar="BUILD.toml",
        ),
    ] = None,
    price: Annotated[float | None, _usd_opt("--price", "What the rig cost.")] = None,
    cloud_per_hour: Annotated[
        float | None, _usd_opt("--cloud-per-hour", "Rent of a comparable cloud machine per hour.")
    ] = None,
    electricity_per_hour_usd: Annotated[
        float | None,
        _usd_opt(
            "--electricity-per-hour", "Electricity per hour of use (or --watts, --kwh-price)."
        ),
    ] = None,
    watts: Annotated[
        float | None,
        typer.Option("--watts", help="Wall draw under load, in watts.", metavar="W"),
    ] = None,
    kwh_price: Annotated[
        float | None, _usd_opt("--kwh-price", "Electricity price per kWh.")
    ] = None,
    hours_per_year: Annotated[
        str | None,
        typer.Option(
            "--hours-per-year",
            help="Comma-separated usage levels, hours of use a year (e.g. 1300,1400,2800).",
            metavar="LIST",
        ),
    ] = None,
    returns: Annotated[
        str | None,
        typer.Option(
            "--returns",
            help="Comma-separated annual returns in percent (e.g. 5,10,15,20).",
            metavar="LIST",
        ),
    ] = None,
    use_years: Annotated[
        int | None, typer.Option("--use-years", help="Years the rig is used.", metavar="N")
    ] = None,
    invest_years: Annotated[
        int | None,
        typer.Option(
            "--invest-years",
            help="Years the net position is then left invested (default 0).",
            metavar="N",
        ),
    ] = None,
    tokens_per_s: Annotated[
        float | None,
        typer.Option(
            "--tokens-per-s",
            help="Training or generation throughput in tokens/s, for cost per million tokens"
            " (replaces the build file's train_tokens_per_s and generate_tokens_per_s).",
            metavar="N",
        ),
    ] = None,
    run: Annotated[
        int | None,
        typer.Option(
            "--run",
            help="A stored run whose train/infer results give the token throughputs.",
            metavar="ID",
        ),
    ] = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Whether owning the rig beats renting: electricity per hour, break-even hours, and net
    position and NPV over years of use then of investing, for each usage level and return."""
    from rigbench.plan.cost_inputs import cost_report
    from rigbench.report.cost import render_report, report_to_dict

    with one_line_errors():
        report, electricity = cost_report(
            build,
            run=run,
            db=db,
            price=price,
            cloud_per_hour=cloud_per_hour,
            electricity_per_hour_usd=electricity_per_hour_usd,
            watts=watts,
            kwh_price=kwh_price,
            hours_per_year=hours_per_year,
            returns=returns,
            use_years=use_years,
            invest_years=invest_years,
            tokens_per_s=tokens_per_s,
        )
    if as_json:
        print_json(report_to_dict(report, electricity))
    else:
        render_report(report, electricity, out)
