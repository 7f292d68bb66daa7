"""Whether owning a rig beats renting: electricity per hour, break-even hours, net position and
NPV after years of use then years of investing, and cost per million tokens. Pure functions.

    from rigbench.plan.cost import CostInputs, analyse
    report = analyse(CostInputs(price_usd=8200, cloud_per_hour_usd=2.0,
                                electricity_per_hour_usd=0.51, hours_per_year=(1300,),
                                returns_pct=(10,), use_years=6, invest_years=25))

Formulas (all money in USD; prices and usage assumed constant, the rig has no resale value):

* electricity per hour  ``e = W × p_kWh / 1000`` (W: wall watts under load).
* break-even hours      ``H = price / (cloud − e)``; never when ``e ≥ cloud``. Not discounted.
* monthly rate          ``m = (1 + r)^(1/12) − 1`` for an annual return ``r`` (−100 % < r).
* monthly saving        ``s = (cloud − e) × hours_per_year / 12`` (renting avoided, less power).
* net position after n months of use, as if every saving were invested and the price had been
  invested instead of spent: ``P(n) = s × ((1 + m)^n − 1) / m − price × (1 + m)^n``
  (``s × n − price`` when m = 0). With ``N = 12 × use_years``:

  - value at end of use      ``P(N)``, in dollars of year ``use_years``;
  - NPV at purchase          ``P(N) / (1 + m)^N``, discounted to year 0 at the same return;
  - value at end of investing ``P(N) × (1 + m)^(12 × invest_years)``, in dollars of year
    ``use_years + invest_years``.

The Minerva write-up's script (seeds/000) computes exactly these, in this order of float
operations, but labels them differently: its "year 6, End of computer usage" figure is the NPV at
purchase, and its "year 31, End of investment period" figure is the value at end of use (it
compounds P(N) forward 25 years and discounts it back 25 years, which cancels). The value at end
of investing is not in its table. (For r < 0 the script does not discount; here it does.)

* cost per million tokens at a throughput T tokens/s:
  owning ``(price / (hours_per_year × use_years) + e) / (3600 T) × 10^6`` (purchase spread over
  the hours of use, not discounted); cloud ``cloud / (3600 T) × 10^6``, assuming the rented
  machine reaches the same throughput.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from rigbench.errors import BadInput
from rigbench.records import Result

HOURS_PER_YEAR_MAX = 8784.0
"""A leap year of 366 days: more hours of use a year cannot be."""

# Hook for throughput from a stored bench run: (benchmark, unit) pairs whose median is a token
# rate. No `train`/`infer` workload exists yet; when one stores results under these names,
# `tokens_per_s_from_results` picks them up and the CLI can offer `--run`.
# Stored results that are token throughputs: (benchmark, metric) -> what the tokens are for.
THROUGHPUT_RESULTS = {
    ("train", "tokens_per_s"): "train",
    ("infer", "decode_tokens_per_s"): "generate",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class CostInputs:
    """What the cost comparison needs; validated when built (BadInput, one line)."""

    price_usd: float
    """What the rig cost, paid at year 0."""
    cloud_per_hour_usd: float
    """Rent of a comparable cloud machine per hour."""
    electricity_per_hour_usd: float
    """Electricity of the rig per hour of use (see `electricity_per_hour`)."""
    hours_per_year: tuple[float, ...]
    """Usage levels to compare: hours of use a year."""
    returns_pct: tuple[float, ...]
    """Annual returns on invested money, in percent (5 means 5 %)."""
    use_years: int
    """Years the rig is used."""
    invest_years: int
    """Years the net position is then left invested."""
    throughputs: tuple[tuple[str, float], ...] = ()
    """(what, tokens/s) pairs, e.g. ("train", 2800.0), for cost per million tokens."""

    def __post_init__(self) -> None:
        _finite_at_least("price", self.price_usd, 0.0, strict=True)
        _finite_at_least("cloud price per hour", self.cloud_per_hour_usd, 0.0, strict=True)
        _finite_at_least("electricity per hour", self.electricity_per_hour_usd, 0.0)
        if not self.hours_per_year:
            raise BadInput("hours per year: give at least one usage level")
        for h in self.hours_per_year:
            _finite_at_least("hours per year", h, 0.0, strict=True)
            if h > HOURS_PER_YEAR_MAX:
                raise BadInput(f"hours per year: {h:g} is more than a year has (8784)")
        if not self.returns_pct:
            raise BadInput("returns: give at least one annual return in percent")
        for r in self.returns_pct:
            # as the build file: a losing market is allowed, losing everything or more is not
            _finite_at_least("return", r, -100.0, strict=True)
            if r > 1000:
                raise BadInput(f"return: {r:g} % a year is not plausible (at most 1000)")
        if all(0 < abs(r) < 1 for r in self.returns_pct):
            shown = ", ".join(f"{r:g}" for r in self.returns_pct)
            raise BadInput(
                f"returns are in percent (5 means 5 %); got {shown}: did you mean "
                + ", ".join(f"{r * 100:g}" for r in self.returns_pct)
                + "?"
            )
        if self.use_years < 1:
            raise BadInput(f"use years must be at least 1, got {self.use_years}")
        if self.invest_years < 0:
            raise BadInput(f"invest years must be 0 or more, got {self.invest_years}")
        for what, rate in self.throughputs:
            _finite_at_least(f"{what} tokens per second", rate, 0.0, strict=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """One usage level at one annual return. Money in USD."""

    hours_per_year: float
    return_pct: float
    paid_at_purchase_usd: float
    """Year 0: the price, negative."""
    npv_at_purchase_usd: float
    """Value at end of use discounted to year 0 (the write-up's "year 6" figure)."""
    value_at_end_of_use_usd: float
    """Net position at the end of use, year `use_years` (the write-up's "year 31" figure)."""
    value_at_end_of_investing_usd: float
    """Value at end of use compounded `invest_years` more, year `use_years + invest_years`."""
    savings_at_end_of_use_usd: float
    """The invested savings alone at the end of use (before subtracting the forgone price)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenCost:
    """Cost per million tokens at one throughput and usage level."""

    what: str
    """What the throughput is of: "train", "generate", or "tokens" when not said."""
    tokens_per_s: float
    owning_per_hour_usd: float
    """Purchase spread over the hours of use, plus electricity."""
    owning_per_million_usd: float
    cloud_per_million_usd: float


@dataclass(frozen=True, slots=True, kw_only=True)
class UsageLevel:
    """Everything for one usage level."""

    hours_per_year: float
    break_even_years: float | None
    """Years of use at this level until the savings pay the price; None: never."""
    outcomes: tuple[Outcome, ...]
    tokens: tuple[TokenCost, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class CostReport:
    """Break-even and the outcomes of every usage level, for one set of inputs."""

    inputs: CostInputs
    break_even_hours: float | None
    """Hours of use until the savings pay the price, not discounted; None: never."""
    levels: tuple[UsageLevel, ...]

    @property
    def end_of_use_year(self) -> int:
        return self.inputs.use_years

    @property
    def end_of_investing_year(self) -> int:
        return self.inputs.use_years + self.inputs.invest_years


def _finite_at_least(name: str, value: float, low: float, *, strict: bool = False) -> None:
    if not math.isfinite(value):
        raise BadInput(f"{name} must be a number, got {value}")
    if value < low or (strict and value == low):
        bound = "more than" if strict else "at least"
        raise BadInput(f"{name} must be {bound} {low:g}, got {value:g}")


def electricity_per_hour(watts: float, kwh_price_usd: float) -> float:
    """USD per hour of use for a rig drawing `watts` at the wall at `kwh_price_usd` per kWh."""
    _finite_at_least("watts", watts, 0.0, strict=True)
    _finite_at_least("price per kWh", kwh_price_usd, 0.0)
    return watts * kwh_price_usd / 1000


def break_even_hours(
    price_usd: float, cloud_per_hour_usd: float, electricity_usd: float
) -> float | None:
    """Hours of use after which owning has cost less than renting; None when it never does
    (electricity per hour at or above the cloud price)."""
    saving = cloud_per_hour_usd - electricity_usd
    if saving <= 0:
        return None
    return price_usd / saving


def monthly_rate(annual_return: float) -> float:
    """The monthly rate that compounds to `annual_return` (a fraction) in twelve months."""
    return (1 + annual_return) ** (1 / 12) - 1


def outcome(inputs: CostInputs, hours_per_year: float, return_pct: float) -> Outcome:
    """Net position and NPV for one usage level and return, with the write-up's float operations
    in the same order so that its table is reproduced to the cent."""
    m = monthly_rate(return_pct / 100)
    monthly_saving = (inputs.cloud_per_hour_usd - inputs.electricity_per_hour_usd) * (
        hours_per_year / 12
    )
    months = inputs.use_years * 12
    growth = (1 + m) ** months
    forgone = inputs.price_usd * growth
    savings = monthly_saving * months if m == 0 else monthly_saving * (growth - 1) / m
    position = savings - forgone
    # The write-up skips discounting when m <= 0; for m < 0 that is wrong, so only m == 0 is.
    npv = position / growth if m != 0 else position
    later = position * (1 + m) ** (inputs.invest_years * 12)
    return Outcome(
        hours_per_year=hours_per_year,
        return_pct=return_pct,
        paid_at_purchase_usd=-inputs.price_usd,
        npv_at_purchase_usd=npv,
        value_at_end_of_use_usd=position,
        value_at_end_of_investing_usd=later,
        savings_at_end_of_use_usd=savings,
    )


def token_cost(
    inputs: CostInputs, hours_per_year: float, tokens_per_s: float, what: str = "tokens"
) -> TokenCost:
    """Owning (purchase amortised over the hours of use, plus electricity) and renting, per
    million tokens at `tokens_per_s`."""
    tokens_per_hour = tokens_per_s * 3600
    owning = inputs.price_usd / (hours_per_year * inputs.use_years)
    owning += inputs.electricity_per_hour_usd
    return TokenCost(
        what=what,
        tokens_per_s=tokens_per_s,
        owning_per_hour_usd=owning,
        owning_per_million_usd=owning / tokens_per_hour * 1e6,
        cloud_per_million_usd=inputs.cloud_per_hour_usd / tokens_per_hour * 1e6,
    )


def analyse(inputs: CostInputs) -> CostReport:
    """Break-even and every (usage level, return) outcome."""
    hours = break_even_hours(
        inputs.price_usd, inputs.cloud_per_hour_usd, inputs.electricity_per_hour_usd
    )
    levels = tuple(
        UsageLevel(
            hours_per_year=h,
            break_even_years=None if hours is None else hours / h,
            outcomes=tuple(outcome(inputs, h, r) for r in inputs.returns_pct),
            tokens=tuple(token_cost(inputs, h, rate, what) for what, rate in inputs.throughputs),
        )
        for h in inputs.hours_per_year
    )
    return CostReport(inputs=inputs, break_even_hours=hours, levels=levels)


def throughputs_from_results(results: Iterable[Result]) -> tuple[tuple[str, float], ...]:
    """("train", best training tokens/s) and ("generate", best decode tokens/s) from a stored
    run's `train` and `infer` results; empty when the run measured neither."""
    best: dict[str, float] = {}
    for r in results:
        what = THROUGHPUT_RESULTS.get((r.benchmark, r.metric))
        if what and r.status == "ok" and r.value:
            best[what] = max(best.get(what, 0.0), r.value)
    return tuple((what, best[what]) for what in ("train", "generate") if what in best)
