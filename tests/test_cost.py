"""`rigbench cost` and rigbench.plan.cost against the Minerva write-up (seeds/000): its NPV
table to the cent and its break-even of about 5,503 hours."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rigbench.cli import app
from rigbench.errors import BadInput
from rigbench.plan.cost import (
    CostInputs,
    analyse,
    break_even_hours,
    electricity_per_hour,
    outcome,
    throughputs_from_results,
)
from rigbench.records import Result

runner = CliRunner()

# The write-up's printed table: hours/year → return % → (year-0, "year 6", "year 31") cells.
SEED_TABLE = {
    1300: {
        5: ("-8,200.00", "1,854.94", "2,485.80"),
        10: ("-8,200.00", "616.14", "1,091.54"),
        15: ("-8,200.00", "-378.20", "-874.79"),
        20: ("-8,200.00", "-1,187.44", "-3,545.68"),
    },
    1400: {
        5: ("-8,200.00", "2,628.40", "3,522.30"),
        10: ("-8,200.00", "1,294.31", "2,292.95"),
        15: ("-8,200.00", "223.48", "516.93"),
        20: ("-8,200.00", "-648.01", "-1,934.96"),
    },
    2800: {
        5: ("-8,200.00", "13,456.79", "18,033.39"),
        10: ("-8,200.00", "10,788.62", "19,112.69"),
        15: ("-8,200.00", "8,646.96", "20,000.95"),
        20: ("-8,200.00", "6,903.97", "20,615.15"),
    },
}
SEED = CostInputs(
    price_usd=8200,
    cloud_per_hour_usd=2.00,
    electricity_per_hour_usd=0.51,
    hours_per_year=(1300, 1400, 2800),
    returns_pct=(5, 10, 15, 20),
    use_years=6,
    invest_years=25,
)
SEED_FLAGS = [
    "--price", "8200", "--cloud-per-hour", "2", "--hours-per-year", "1300,1400,2800",
    "--returns", "5,10,15,20", "--use-years", "6", "--invest-years", "25",
]  # fmt: skip


SEED_E = [*SEED_FLAGS, "--electricity-per-hour", "0.5"]


def _invoke(*args: str) -> tuple[int, str, str]:
    res = runner.invoke(app, ["cost", *args], env={"COLUMNS": "200"})
    return res.exit_code, res.stdout, res.stderr


def _seed_script(price, cloud, elec, hours, annual_return, initial_years, investment_years):
    """The write-up's calculate_pure_investment_outcome, trimmed but with its arithmetic as is."""
    monthly_return = (1 + annual_return) ** (1 / 12) - 1
    monthly_savings = (cloud - elec) * (hours / 12)

    def position_at_month(month):
        investment_value = price * (1 + monthly_return) ** month
        if monthly_return == 0:
            return monthly_savings * month - investment_value
        g = (1 + monthly_return) ** month
        return monthly_savings * (g - 1) / monthly_return - investment_value

    months = initial_years * 12
    final = position_at_month(months)
    npv_at_initial = final / (1 + monthly_return) ** months if monthly_return > 0 else final
    m = investment_years * 12
    year_31 = final * (1 + monthly_return) ** m / (1 + monthly_return) ** m
    return npv_at_initial, year_31


def _cells(report_usage: list[dict[str, object]]) -> dict[int, dict[int, tuple[str, ...]]]:
    return {
        int(level["hours_per_year"]): {
            int(o["return_pct"]): (
                f"{o['paid_at_purchase_usd']:,.2f}",
                f"{o['npv_at_purchase_usd']:,.2f}",
                f"{o['value_at_end_of_use_usd']:,.2f}",
            )
            for o in level["outcomes"]
        }
        for level in report_usage
    }


def test_seed_table_every_cell() -> None:
    report = analyse(SEED)
    cells = {
        int(level.hours_per_year): {
            int(o.return_pct): (
                f"{o.paid_at_purchase_usd:,.2f}",
                f"{o.npv_at_purchase_usd:,.2f}",  # the write-up's "year 6"
                f"{o.value_at_end_of_use_usd:,.2f}",  # the write-up's "year 31"
            )
            for o in level.outcomes
        }
        for level in report.levels
    }
    assert cells == SEED_TABLE
    assert report.end_of_use_year == 6 and report.end_of_investing_year == 31


def test_seed_break_even() -> None:
    assert electricity_per_hour(1500, 0.34) == pytest.approx(0.51)
    hours = break_even_hours(8200, 2.00, 0.51)
    assert hours == pytest.approx(8200 / 1.49) and round(hours) == 5503
    assert round(hours / 24) == 229  # the write-up's "about 230 days"
    years = [lv.break_even_years for lv in analyse(SEED).levels]
    assert years == pytest.approx([5503.356 / 1300, 5503.356 / 1400, 5503.356 / 2800], rel=1e-5)


@pytest.mark.parametrize(
    ("price", "cloud", "elec", "hours", "ret", "use", "invest"),
    list(
        itertools.product(
            (1800, 8200), (1.5, 6.0), (0.0, 0.51), (500, 8760), (0, 7.5, 20), (6,), (0, 25)
        )
    ),
)
def test_matches_seed_script(
    price: float, cloud: float, elec: float, hours: float, ret: float, use: int, invest: int
) -> None:
    inputs = CostInputs(
        price_usd=price,
        cloud_per_hour_usd=cloud,
        electricity_per_hour_usd=elec,
        hours_per_year=(hours,),
        returns_pct=(ret,) if ret else (0, 10),
        use_years=use,
        invest_years=invest,
    )
    o = outcome(inputs, hours, ret)
    npv, year_31 = _seed_script(price, cloud, elec, hours, ret / 100, use, invest)
    assert o.npv_at_purchase_usd == npv
    assert round(o.value_at_end_of_use_usd, 2) == round(year_31, 2)


def test_the_three_figures_are_one_position_at_three_dates() -> None:
    o = outcome(SEED, 1300, 10)
    growth_per_year = 1.10
    assert o.npv_at_purchase_usd * growth_per_year**6 == pytest.approx(o.value_at_end_of_use_usd)
    assert o.value_at_end_of_use_usd * growth_per_year**25 == pytest.approx(
        o.value_at_end_of_investing_usd
    )
    assert o.value_at_end_of_investing_usd == pytest.approx(11_826.47, abs=0.005)


def test_zero_return_is_plain_arithmetic() -> None:
    inputs = CostInputs(
        price_usd=8200,
        cloud_per_hour_usd=2,
        electricity_per_hour_usd=0.51,
        hours_per_year=(1300,),
        returns_pct=(0,),
        use_years=6,
        invest_years=25,
    )
    o = outcome(inputs, 1300, 0)
    plain = 1.49 * 1300 * 6 - 8200
    assert o.npv_at_purchase_usd == pytest.approx(plain)
    assert o.value_at_end_of_use_usd == pytest.approx(plain)
    assert o.value_at_end_of_investing_usd == pytest.approx(plain)


def test_cli_table_reproduces_the_seed() -> None:
    code, out, err = _invoke(*SEED_FLAGS, "--watts", "1500", "--kwh-price", "0.34")
    assert code == 0, err
    assert "Electricity: $0.51 per hour of use (1500 W × $0.34/kWh)" in out
    assert "Break-even: 5,503 hours of use" in out
    blocks = re.split(r"^(?=[\d,]+ h/year: )", out, flags=re.M)[1:]
    assert [b.split(" h/year")[0] for b in blocks] == ["1,300", "1,400", "2,800"]
    for block, by_return in zip(blocks, SEED_TABLE.values(), strict=True):
        for paid, npv, end_of_use in by_return.values():
            for year, value, stage in (
                (0, paid, "price paid"),
                (0, npv, "NPV: value at end of use discounted to year 0"),
                (6, end_of_use, "net position at end of use"),
            ):
                row = rf"│\s+{year} │\s+{re.escape(value)} │ {re.escape(stage)}\s+│"
                assert re.search(row, block), (value, stage)
    assert re.search(r"│\s+31 │\s+1,966,607\.12 │ end of investing", out)


def test_cli_json_reproduces_the_seed_and_has_its_shape() -> None:
    code, out, _ = _invoke(*SEED_FLAGS, "--electricity-per-hour", "0.51", "--json")
    assert code == 0
    doc = json.loads(out)
    assert set(doc) == {
        "inputs",
        "electricity_per_hour_usd",
        "break_even_hours",
        "end_of_use_year",
        "end_of_investing_year",
        "usage",
    }
    assert doc["inputs"]["returns_pct"] == [5, 10, 15, 20]
    assert doc["inputs"]["electricity"] == {"per_hour_usd": 0.51, "from": "--electricity-per-hour"}
    assert doc["electricity_per_hour_usd"] == 0.51
    assert round(doc["break_even_hours"]) == 5503
    assert (doc["end_of_use_year"], doc["end_of_investing_year"]) == (6, 31)
    assert _cells(doc["usage"]) == SEED_TABLE
    level = doc["usage"][0]
    assert set(level) == {"hours_per_year", "break_even_years", "outcomes", "tokens"}
    assert level["tokens"] == []
    assert doc["inputs"]["throughputs"] == []
    assert set(level["outcomes"][0]) == {
        "return_pct",
        "paid_at_purchase_usd",
        "npv_at_purchase_usd",
        "value_at_end_of_use_usd",
        "value_at_end_of_investing_usd",
    }


def test_cost_per_million_tokens() -> None:
    code, out, _ = _invoke(*SEED_FLAGS, "--electricity-per-hour", "0.51", "--tokens-per-s", "2800")
    assert code == 0
    assert "At 2,800 tokens/s: owning $0.1549 per million tokens" in out
    code, out, _ = _invoke(
        *SEED_FLAGS, "--electricity-per-hour", "0.51", "--tokens-per-s", "2800", "--json"
    )
    (t,) = json.loads(out)["usage"][0]["tokens"]
    assert t["what"] == "tokens" and t["tokens_per_s"] == 2800
    owning_per_hour = 8200 / (1300 * 6) + 0.51
    assert t["owning_per_hour_usd"] == pytest.approx(owning_per_hour)
    assert t["owning_per_million_usd"] == pytest.approx(owning_per_hour / (2800 * 3600) * 1e6)
    assert t["cloud_per_million_usd"] == pytest.approx(2.0 / (2800 * 3600) * 1e6)


def test_throughputs_come_from_train_and_decode_results() -> None:
    results = [
        Result(benchmark="gemm", metric="matmul", value=100.0, unit="TFLOP/s"),
        Result(benchmark="train", metric="tokens_per_s", value=2800.0, unit="tokens/s"),
        Result(benchmark="train", metric="tokens_per_s", value=2500.0, unit="tokens/s"),
        Result(benchmark="infer", metric="prefill_tokens_per_s", value=9e4, unit="tokens/s"),
        Result(benchmark="infer", metric="decode_tokens_per_s", value=71.0, unit="tokens/s"),
    ]
    assert throughputs_from_results(results) == (("train", 2800.0), ("generate", 71.0))
    assert throughputs_from_results(results[:1]) == ()


def test_cost_reads_throughputs_from_a_stored_run(tmp_path: Path) -> None:
    from rigbench.records import Run
    from rigbench.store import Store

    db = tmp_path / "r.db"
    store = Store.open(db)
    rid = store.start_run(Run(command="bench"))
    store.add_result(
        rid, Result(benchmark="infer", metric="decode_tokens_per_s", value=200.0, unit="tokens/s")
    )
    res = CliRunner().invoke(
        app,
        ["cost", "--price", "8200", "--cloud-per-hour", "2", "--electricity-per-hour", "0.51",
         "--hours-per-year", "1300", "--returns", "5", "--use-years", "6",
         "--run", str(rid), "--db", str(db), "--json"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    tokens = json.loads(res.stdout)["usage"][0]["tokens"]
    assert [(t["what"], t["tokens_per_s"]) for t in tokens] == [("generate", 200.0)]
    res = CliRunner().invoke(
        app,
        ["cost", "--price", "8200", "--cloud-per-hour", "2", "--electricity-per-hour", "0.51",
         "--hours-per-year", "1300", "--returns", "5", "--use-years", "6",
         "--run", "99", "--db", str(db)],
        env={"COLUMNS": "200"},
    )  # fmt: skip
    assert res.exit_code == 2 and "no run #99" in res.stderr


def test_electricity_at_or_above_cloud_never_breaks_even() -> None:
    assert break_even_hours(8200, 2.0, 2.0) is None
    assert break_even_hours(8200, 2.0, 2.5) is None
    flags = [*SEED_FLAGS[:2], "--cloud-per-hour", "0.4", *SEED_FLAGS[4:]]
    code, out, _ = _invoke(*flags, "--electricity-per-hour", "0.51")
    assert code == 0
    assert "Break-even: never" in out and "1,300 h/year: never breaks even" in out
    code, out, _ = _invoke(*flags, "--electricity-per-hour", "0.51", "--json")
    doc = json.loads(out)
    assert doc["break_even_hours"] is None
    assert all(level["break_even_years"] is None for level in doc["usage"])
    assert all(o["npv_at_purchase_usd"] < -8200 for o in doc["usage"][0]["outcomes"])


MINERVA_BUILD = """
[rig]
name = "Minerva"

[costs]
price_usd = 8200
cloud_per_hour_usd = 2.0
electricity_per_kwh_usd = 0.34
watts = 1500

[usage]
hours_per_year = [1300, 1400, 2800]
returns = [5, 10, 15, 20]
use_years = 6
invest_years = 25
"""


def test_build_file_reproduces_the_seed(tmp_path: Path) -> None:
    build = tmp_path / "minerva.toml"
    build.write_text(MINERVA_BUILD)
    code, out, err = _invoke(str(build), "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert _cells(doc["usage"]) == SEED_TABLE
    assert doc["inputs"]["electricity"] == {
        "per_hour_usd": 0.51,
        "from": "watts × kWh price",
        "watts": 1500,
        "kwh_price_usd": 0.34,
    }


def test_flags_override_the_build_file(tmp_path: Path) -> None:
    build = tmp_path / "minerva.toml"
    build.write_text(MINERVA_BUILD)
    code, out, _ = _invoke(
        str(build), "--hours-per-year", "2800", "--electricity-per-hour", "1", "--json"
    )
    doc = json.loads(out)
    assert [lv["hours_per_year"] for lv in doc["usage"]] == [2800]
    assert doc["electricity_per_hour_usd"] == 1 and doc["break_even_hours"] == 8200
    code, out, _ = _invoke(str(build), "--watts", "3000", "--json")
    assert json.loads(out)["electricity_per_hour_usd"] == pytest.approx(1.02)


def test_build_file_throughputs_and_missing_wall_draw(tmp_path: Path) -> None:
    build = tmp_path / "b.toml"
    build.write_text(
        MINERVA_BUILD.replace("watts = 1500\n", "").replace(
            "invest_years = 25",
            "invest_years = 25\ntrain_tokens_per_s = 2800\ngenerate_tokens_per_s = 71",
        )
    )
    code, _, err = _invoke(str(build))
    assert code == 2 and "missing --watts" in err and "0.34 USD/kWh" in err
    code, out, _ = _invoke(str(build), "--watts", "1500", "--json")
    tokens = json.loads(out)["usage"][0]["tokens"]
    assert [(t["what"], t["tokens_per_s"]) for t in tokens] == [("train", 2800), ("generate", 71)]
    code, out, _ = _invoke(str(build), "--watts", "1500", "--tokens-per-s", "10", "--json")
    assert [t["what"] for t in json.loads(out)["usage"][0]["tokens"]] == ["tokens"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--cloud-per-hour", "2", "--electricity-per-hour", "0.5"], "missing --price"),
        (["--price", "8200", "--electricity-per-hour", "0.5"], "missing --cloud-per-hour"),
        (["--price", "8200", "--cloud-per-hour", "2"], "missing --electricity-per-hour"),
        ([*SEED_FLAGS, "--watts", "1500"], "missing --kwh-price"),
        ([*SEED_FLAGS[:4], "--electricity-per-hour", "0.5"], "missing --hours-per-year"),
        ([*SEED_FLAGS[:6], "--electricity-per-hour", "0.5"], "missing --returns"),
        ([*SEED_FLAGS[:8], "--electricity-per-hour", "0.5"], "missing --use-years"),
        (
            [*SEED_E, "--watts", "1500"],
            "not both",
        ),
        ([*SEED_E, "--price", "-5"], "--price must be"),
        ([*SEED_E, "--price", "nan"], "--price must be"),
        ([*SEED_FLAGS, "--electricity-per-hour", "-1"], "--electricity-per-hour must be"),
        ([*SEED_FLAGS, "--watts", "0", "--kwh-price", "0.3"], "--watts must be"),
        ([*SEED_E, "--tokens-per-s", "0"], "--tokens-per-s"),
        ([*SEED_E, "--returns", "0.05,0.1"], "did you mean 5, 10"),
        ([*SEED_E, "--returns", "5,-100"], "return must be more than -100"),
        ([*SEED_E, "--returns", "five"], "--returns takes"),
        ([*SEED_E, "--hours-per-year", "9000"], "more than a year"),
        ([*SEED_E, "--hours-per-year", ","], "--hours-per-year"),
        ([*SEED_E, "--use-years", "0"], "use-years must be"),
        ([*SEED_E, "--invest-years", "-1"], "invest-years"),
        ([*SEED_E, "--use-years", "1000000"], "--use-years must be from 1 to 100"),
        ([*SEED_E, "--use-years", "1e6"], "--use-years"),
        ([*SEED_E, "--invest-years", "1000000"], "--invest-years must be from 0 to 100"),
        ([*SEED_E, "--price", "1e300"], "--price must be a number above 0 and at most"),
        ([*SEED_E, "--cloud-per-hour", "1e300"], "--cloud-per-hour must be"),
        ([*SEED_FLAGS, "--electricity-per-hour", "1e300"], "--electricity-per-hour must be"),
        ([*SEED_FLAGS, "--watts", "1e300", "--kwh-price", "0.3"], "--watts must be"),
        ([*SEED_FLAGS, "--watts", "500", "--kwh-price", "inf"], "--kwh-price must be"),
        ([*SEED_E, "--tokens-per-s", "1e300"], "--tokens-per-s must be"),
        ([*SEED_E, "--hours-per-year", "0"], "hours per year must be more than 0"),
        (["no-such-build.toml", "--electricity-per-hour", "0.5"], "no-such-build.toml"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_exit_2(args: list[str], needle: str) -> None:
    code, out, err = _invoke(*args)
    assert code == 2, out
    assert needle in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err + out


def test_malformed_build_file_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "b.toml"
    bad.write_text("[rig]\nname = 'x'\n[usage]\nhours_per_year = 'lots'\n")
    code, _, err = _invoke(str(bad), *SEED_FLAGS[:4], "--electricity-per-hour", "0.5")
    assert code == 2 and "b.toml" in err and "hours_per_year" in err
    assert len(err.strip().splitlines()) == 1
    bad.write_text("[costs\n")
    code, _, err = _invoke(str(bad))
    assert code == 2 and "not valid TOML" in err
    assert len(err.strip().splitlines()) == 1


def test_negative_return_is_discounted() -> None:
    o = outcome(SEED, 1300, -5)
    assert o.npv_at_purchase_usd * 0.95**6 == pytest.approx(o.value_at_end_of_use_usd)
    assert o.npv_at_purchase_usd != o.value_at_end_of_use_usd


def test_library_validates_inputs() -> None:
    with pytest.raises(BadInput, match="returns are in percent"):
        CostInputs(
            price_usd=1,
            cloud_per_hour_usd=1,
            electricity_per_hour_usd=0,
            hours_per_year=(1,),
            returns_pct=(0.05,),
            use_years=1,
            invest_years=0,
        )
