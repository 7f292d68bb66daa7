"""What `rigbench cost` compares, from a build file's [costs] and [usage] and the flags that
override them: every number checked against a range it can have, then analysed."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

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

# Ranges a flag can take. Not figures about hardware: bounds past which an input is a typo
# (1e300 for a price) or overflows the compounding (a return compounded a million years).
MAX_USD = 1e9  # a price, or a cloud or electricity price per hour
MAX_WATTS = 1e6  # a megawatt at the wall
MAX_KWH_USD = 100.0
MAX_TOKENS_PER_S = 1e9
MAX_YEARS = 100  # as the build file's [usage] use_years and invest_years


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
    for flag, v, most in (
        ("--price", price, MAX_USD),
        ("--cloud-per-hour", cloud_per_hour, MAX_USD),
        ("--watts", watts, MAX_WATTS),
        ("--tokens-per-s", tokens_per_s, MAX_TOKENS_PER_S),
    ):
        if v is not None and (not math.isfinite(v) or not 0 < v <= most):
            raise BadInput(f"{flag} must be a number above 0 and at most {most:g}, got {v:g}")
    for flag, v, most in (
        ("--electricity-per-hour", electricity_per_hour_usd, MAX_USD),
        ("--kwh-price", kwh_price, MAX_KWH_USD),
    ):
        if v is not None and (not math.isfinite(v) or not 0 <= v <= most):
            raise BadInput(f"{flag} must be a number from 0 to {most:g}, got {v:g}")
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


def _check_years(use_years: int | None, invest_years: int | None) -> None:
    if use_years is not None and not 1 <= use_years <= MAX_YEARS:
        raise BadInput(f"--use-years must be from 1 to {MAX_YEARS}, got {use_years}")
    if invest_years is not None and not 0 <= invest_years <= MAX_YEARS:
        raise BadInput(f"--invest-years must be from 0 to {MAX_YEARS}, got {invest_years}")


def cost_report(
    build_path: Path | None,
    *,
    run: int | None,
    db: Path | None,
    **flags: Any,
) -> tuple[CostReport, dict[str, Any]]:
    """The analysis `rigbench cost` prints: flags (see `resolve_inputs`) over the build file,
    token throughputs from a stored run when `run` is given. Returns the report and how
    electricity per hour was found."""
    if run is not None and flags.get("tokens_per_s") is not None:
        raise BadInput("give one of --run and --tokens-per-s")
    _check_years(flags.get("use_years"), flags.get("invest_years"))
    inputs, electricity = resolve_inputs(build_path, **flags)
    if run is not None:
        inputs = replace(inputs, throughputs=_stored_throughputs(run, db))
    try:
        return analyse(inputs), electricity
    except OverflowError:
        raise BadInput(
            "the figures overflow: fewer years or a smaller return would give a result"
        ) from None
