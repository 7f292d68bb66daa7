"""`rigbench cost`: whether owning the rig beats renting, from a build file and/or flags."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from rigbench.commands.common import DbOpt, JsonOpt, one_line_errors, out, print_json
from rigbench.errors import BadInput
from rigbench.plan.cost import (
    CostInputs,
    CostReport,
    analyse,
    electricity_per_hour,
    throughputs_from_results,
)

if TYPE_CHECKING:  # the build-file models load pydantic: only when a file is read
    from rigbench.plan.build import Build, CostsSection

app = typer.Typer()


def _usd(v: float) -> str:
    return f"{v:,.2f}"


def _pct(v: float) -> str:
    return f"{v:g} %"


# --- inputs -----------------------------------------------------------------------------------


def _wall_watts_estimate(build: Build) -> float | None:
    """`[costs] watts` defaults to plan's sustained wall estimate (GPU limits, CPU and the
    rest through each PSU's efficiency); None when the build has no GPUs to estimate from."""
    from rigbench.plan.power import sustained_wall_w

    return sustained_wall_w(build) if build.gpus else None


def _stored_throughputs(run_id: int, db: Path | None) -> tuple[tuple[str, float], ...]:
    from rigbench.store import Store

    store = Store.open(db)
    if store.get_run(run_id) is None:
        raise BadInput(f"no run #{run_id} in {store.path}")
    found = throughputs_from_results(store.results(run_id))
    if not found:
        raise BadInput(
            f"run #{run_id} has no train or infer throughput"
            " (rigbench bench --only train,infer measures them)"
        )
    return found


def _number_list(text: str, flag: str) -> tuple[float, ...]:
    """'1300,1400, 2800' → (1300.0, 1400.0, 2800.0)."""
    try:
        values = tuple(float(p) for p in (s.strip() for s in text.split(",")) if p)
    except ValueError:
        raise BadInput(f"{flag} takes comma-separated numbers, got '{text}'") from None
    if not values:
        raise BadInput(f"{flag} takes comma-separated numbers, got '{text}'")
    return values


def _need(value: Any, flag: str, where: str) -> Any:
    if value is None:
        raise BadInput(f"missing {flag}{where}")
    return value


def _either(flag: Any, file: Any) -> Any:
    return flag if flag is not None else file


def _check_flags(
    price: float | None,
    cloud_per_hour: float | None,
    electricity_per_hour_usd: float | None,
    watts: float | None,
    kwh_price: float | None,
    tokens_per_s: float | None,
) -> None:
    for flag, v in (
        ("--price", price),
        ("--cloud-per-hour", cloud_per_hour),
        ("--watts", watts),
        ("--tokens-per-s", tokens_per_s),
    ):
        if v is not None and (not math.isfinite(v) or v <= 0):
            raise BadInput(f"{flag} must be a positive number, got {v}")
    for flag, v in (
        ("--electricity-per-hour", electricity_per_hour_usd),
        ("--kwh-price", kwh_price),
    ):
        if v is not None and (not math.isfinite(v) or v < 0):
            raise BadInput(f"{flag} must be 0 or more, got {v}")
    if electricity_per_hour_usd is not None and (watts is not None or kwh_price is not None):
        raise BadInput("give --electricity-per-hour or --watts with --kwh-price, not both")


def _electricity(
    costs: CostsSection,
    build: Build | None,
    where: str,
    *,
    per_hour: float | None,
    watts: float | None,
    kwh_price: float | None,
) -> dict[str, Any]:
    """Electricity per hour and where it came from: a flag beats the file, an hourly price
    beats watts × kWh price. The file holds one of electricity_per_hour_usd and _per_kwh_usd."""
    if per_hour is not None:
        return {"per_hour_usd": per_hour, "from": "--electricity-per-hour"}
    if watts is None and kwh_price is None and costs.electricity_per_hour_usd is not None:
        return {"per_hour_usd": costs.electricity_per_hour_usd, "from": "build file"}
    w = _either(watts, costs.watts)
    if w is None and build is not None:
        w = _wall_watts_estimate(build)
    kwh = _either(kwh_price, costs.electricity_per_kwh_usd)
    if w is None and kwh is None:
        raise BadInput(f"missing --electricity-per-hour, or --watts with --kwh-price{where}")
    if w is None:
        raise BadInput(
            f"missing --watts: the wall draw in use is needed with {kwh:g} USD/kWh{where}"
        )
    kwh = _need(kwh, "--kwh-price", where)
    return {
        "per_hour_usd": electricity_per_hour(w, kwh),
        "from": "watts × kWh price",
        "watts": w,
        "kwh_price_usd": kwh,
    }


def resolve_inputs(
    build_path: Path | None,
    *,
    price: float | None,
    cloud_per_hour: float | None,
    electricity_per_hour_usd: float | None,
    watts: float | None,
    kwh_price: float | None,
    hours_per_year: str | None,
    returns: str | None,
    use_years: int | None,
    invest_years: int | None,
    tokens_per_s: float | None,
) -> tuple[CostInputs, dict[str, Any]]:
    """Flags over the build file's [costs] and [usage]. Returns the inputs and how
    electricity per hour was found."""
    _check_flags(price, cloud_per_hour, electricity_per_hour_usd, watts, kwh_price, tokens_per_s)
    from rigbench.plan.build import CostsSection, UsageSection, load_build

    build = load_build(build_path) if build_path is not None else None
    costs = (build.costs if build else None) or CostsSection()
    usage = (build.usage if build else None) or UsageSection()
    where = f" (not in {build_path} either)" if build_path else " (or give a build file)"

    electricity = _electricity(
        costs, build, where, per_hour=electricity_per_hour_usd, watts=watts, kwh_price=kwh_price
    )
    hours = _number_list(hours_per_year, "--hours-per-year") if hours_per_year else None
    rets = _number_list(returns, "--returns") if returns else None
    if tokens_per_s is not None:
        throughputs: tuple[tuple[str, float], ...] = (("tokens", tokens_per_s),)
    else:
        throughputs = tuple(
            (what, rate)
            for what, rate in (
                ("train", usage.train_tokens_per_s),
                ("generate", usage.generate_tokens_per_s),
            )
            if rate is not None
        )
    inputs = CostInputs(
        price_usd=_need(_either(price, costs.price_usd), "--price", where),
        cloud_per_hour_usd=_need(
            _either(cloud_per_hour, costs.cloud_per_hour_usd), "--cloud-per-hour", where
        ),
        electricity_per_hour_usd=electricity["per_hour_usd"],
        hours_per_year=tuple(
            _need(_either(hours, usage.hours_per_year), "--hours-per-year", where)
        ),
        returns_pct=tuple(_need(_either(rets, usage.returns), "--returns", where)),
        use_years=_need(_either(use_years, usage.use_years), "--use-years", where),
        invest_years=_either(invest_years, usage.invest_years) or 0,
        throughputs=throughputs,
    )
    return inputs, electricity


# --- output -----------------------------------------------------------------------------------


def report_to_dict(report: CostReport, electricity: dict[str, Any]) -> dict[str, Any]:
    i = report.inputs
    return {
        "inputs": {
            "price_usd": i.price_usd,
            "cloud_per_hour_usd": i.cloud_per_hour_usd,
            "electricity": electricity,
            "hours_per_year": list(i.hours_per_year),
            "returns_pct": list(i.returns_pct),
            "use_years": i.use_years,
            "invest_years": i.invest_years,
            "throughputs": [{"what": w, "tokens_per_s": r} for w, r in i.throughputs],
        },
        "electricity_per_hour_usd": i.electricity_per_hour_usd,
        "break_even_hours": report.break_even_hours,
        "end_of_use_year": report.end_of_use_year,
        "end_of_investing_year": report.end_of_investing_year,
        "usage": [
            {
                "hours_per_year": level.hours_per_year,
                "break_even_years": level.break_even_years,
                "outcomes": [
                    {
                        "return_pct": o.return_pct,
                        "paid_at_purchase_usd": o.paid_at_purchase_usd,
                        "npv_at_purchase_usd": o.npv_at_purchase_usd,
                        "value_at_end_of_use_usd": o.value_at_end_of_use_usd,
                        "value_at_end_of_investing_usd": o.value_at_end_of_investing_usd,
                    }
                    for o in level.outcomes
                ],
                "tokens": [
                    {
                        "what": t.what,
                        "tokens_per_s": t.tokens_per_s,
                        "owning_per_hour_usd": t.owning_per_hour_usd,
                        "owning_per_million_usd": t.owning_per_million_usd,
                        "cloud_per_million_usd": t.cloud_per_million_usd,
                    }
                    for t in level.tokens
                ],
            }
            for level in report.levels
        ],
    }


def render_report(report: CostReport, electricity: dict[str, Any]) -> None:
    i = report.inputs
    e = i.electricity_per_hour_usd
    how = (
        f" ({electricity['watts']:g} W × ${electricity['kwh_price_usd']:g}/kWh)"
        if "watts" in electricity
        else ""
    )
    out.print(f"Electricity: ${e:,.2f} per hour of use{how}", highlight=False)
    if report.break_even_hours is None:
        out.print(
            f"Break-even: never. Electricity (${e:,.2f}/h) is not below the cloud price "
            f"(${i.cloud_per_hour_usd:,.2f}/h): every hour of use costs more than renting.",
            highlight=False,
        )
    else:
        h = report.break_even_hours
        out.print(
            f"Break-even: {h:,.0f} hours of use (${_usd(i.price_usd)} / "
            f"(${i.cloud_per_hour_usd:,.2f} cloud − ${e:,.2f} electricity per hour)), "
            f"{h / 24:,.0f} days around the clock; not discounted",
            highlight=False,
        )
    end_use, end_inv = report.end_of_use_year, report.end_of_investing_year
    for level in report.levels:
        years = level.break_even_years
        title = f"{level.hours_per_year:,g} h/year: " + (
            "never breaks even" if years is None else f"break-even after {years:.1f} years of use"
        )
        table = Table(title=title, title_justify="left")
        table.add_column("Return", justify="right")
        table.add_column("Year", justify="right")
        table.add_column("USD", justify="right")
        table.add_column("stage")
        for o in level.outcomes:
            rows = [
                (0, o.paid_at_purchase_usd, "price paid"),
                (0, o.npv_at_purchase_usd, "NPV: value at end of use discounted to year 0"),
                (end_use, o.value_at_end_of_use_usd, "net position at end of use"),
            ]
            if i.invest_years:
                rows.append(
                    (
                        end_inv,
                        o.value_at_end_of_investing_usd,
                        f"end of investing: position compounded {i.invest_years} more years",
                    )
                )
            for n, (year, value, stage) in enumerate(rows):
                table.add_row(
                    _pct(o.return_pct) if n == 0 else "",
                    str(year),
                    _usd(value),
                    stage,
                    end_section=n == len(rows) - 1,
                )
        out.print(table)
        for t in level.tokens:
            what = "" if t.what == "tokens" else f" ({t.what})"
            out.print(
                f"At {t.tokens_per_s:,g} tokens/s{what}: owning "
                f"${t.owning_per_million_usd:,.4f} per million tokens "
                f"(${t.owning_per_hour_usd:,.2f}/h: price over "
                f"{level.hours_per_year * i.use_years:,.0f} h of use + electricity), "
                f"cloud ${t.cloud_per_million_usd:,.4f}",
                highlight=False,
            )
    note = (
        "Net position: savings (cloud − electricity) invested monthly, less the price had it "
        "been invested instead; no resale value."
    )
    if i.invest_years:
        note += (
            f" Scripts that print the NPV as year {end_use} and the end-of-use position as year "
            f"{end_inv} (the Minerva write-up) show rows 2 and 3."
        )
    out.print(f"[dim]{note}[/dim]", highlight=False)


# --- command ----------------------------------------------------------------------------------


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
    with one_line_errors():
        if run is not None and tokens_per_s is not None:
            raise BadInput("give one of --run and --tokens-per-s")
        inputs, electricity = resolve_inputs(
            build,
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
        if run is not None:
            inputs = replace(inputs, throughputs=_stored_throughputs(run, db))
        report = analyse(inputs)
    if as_json:
        print_json(report_to_dict(report, electricity))
    else:
        render_report(report, electricity)
