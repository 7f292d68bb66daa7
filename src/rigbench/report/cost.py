"""`rigbench cost` as text and as JSON."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from rigbench.plan.cost import CostReport
from rigbench.tables import Table


def _usd(v: float) -> str:
    return f"{v:,.2f}"


def _pct(v: float) -> str:
    return f"{v:g} %"


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


def render_report(report: CostReport, electricity: dict[str, Any], out: Console) -> None:
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
