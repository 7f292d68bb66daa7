"""Summary statistics of repeated measurements (pure functions, no dependencies)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass


@dataclass(frozen=True, slots=True)
class Spread:
    """Distribution of one metric over its repeats, in the metric's own unit."""

    n: int
    min: float
    p10: float
    p50: float
    p90: float
    p99: float
    max: float
    mean: float
    stdev: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @property
    def rel_spread(self) -> float:
        """(p90 - p10) / p50: how noisy the measurement was."""
        return (self.p90 - self.p10) / self.p50 if self.p50 else math.nan


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100) of an already sorted sequence."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    pos = (len(sorted_values) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    frac = pos - lo
    return sorted_values[lo] * (1 - frac) + sorted_values[hi] * frac


def summarize(values: Sequence[float]) -> Spread:
    """Spread of a non-empty list of samples."""
    s = sorted(values)
    n = len(s)
    mean = sum(s) / n
    var = sum((v - mean) ** 2 for v in s) / (n - 1) if n > 1 else 0.0
    return Spread(
        n=n,
        min=s[0],
        p10=percentile(s, 10),
        p50=percentile(s, 50),
        p90=percentile(s, 90),
        p99=percentile(s, 99),
        max=s[-1],
        mean=mean,
        stdev=math.sqrt(var),
    )


def thin(
    ts: Sequence[float], vs: Sequence[float], keep_max: bool, limit: int
) -> tuple[list[float], list[float]]:
    """A series cut to at most `limit` points for a plot: each bucket's maximum (keep_max,
    so power peaks survive) or its middle sample."""
    n = len(ts)
    if n <= limit:
        return list(ts), list(vs)
    step = n / limit
    out_t, out_v = [], []
    for k in range(limit):
        lo, hi = int(k * step), max(int((k + 1) * step), int(k * step) + 1)
        chunk = vs[lo:hi]
        j = max(range(len(chunk)), key=chunk.__getitem__) if keep_max else len(chunk) // 2
        out_t.append(ts[lo + j])
        out_v.append(chunk[j])
    return out_t, out_v
