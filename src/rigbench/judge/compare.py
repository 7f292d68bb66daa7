"""Two runs side by side, or a run against the healthy-hardware references: per figure both
values, the difference, and whether it is outside the noise of the two spreads; warnings
when what ran differs (GPU, driver, torch, power limit), since then a difference may be the
setup and not the hardware.

Noise: half the p10–p90 width of each side, added, and never less than NOISE_FLOOR of the
value (timing jitter of repeated runs: rigbench's two H200 --quick runs differed by up to
2 % on gemm, benchmarks/2026-11-23-h200-1gpu.md). Against a reference the healthy range is
the other side's spread.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from rigbench.judge.bench import reference_metric
from rigbench.records import Result, Run

NOISE_FLOOR = 0.02
# Parameters that tell two figures of the same benchmark and metric apart.
VARIANT_KEYS = (
    "dtype",
    "bytes",
    "host_memory",
    "op",
    "world_size",
    "engine",
    "context",
    "batch",
    "compile",
    "mode",
    "model",
)


@dataclass(kw_only=True, slots=True)
class MetricDiff:
    """One figure in both runs. `diff` is b - a, `rel` (b - a) / a. `beyond_noise` is
    None when one side has no value."""

    benchmark: str
    metric: str
    devices: list[str]
    variant: dict[str, Any]
    unit: str
    a: float | None
    b: float | None
    diff: float | None = None
    rel: float | None = None
    noise: float | None = None
    beyond_noise: bool | None = None
    note: str | None = None


@dataclass(kw_only=True, slots=True)
class Comparison:
    a: str  # "run #12"
    b: str  # "run #14" or "references"
    warnings: list[str] = field(default_factory=list)
    rows: list[MetricDiff] = field(default_factory=list)

    @property
    def differing(self) -> list[MetricDiff]:
        return [r for r in self.rows if r.beyond_noise]

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "warnings": self.warnings,
            "rows": [asdict(r) for r in self.rows],
            "differing": len(self.differing),
        }


def _key(r: Result) -> tuple[Any, ...]:
    variant = tuple((k, r.params[k]) for k in VARIANT_KEYS if k in r.params)
    return (r.benchmark, r.metric, tuple(r.devices), variant)


def _half_width(r: Result) -> float:
    return (r.spread.p90 - r.spread.p10) / 2 if r.spread else 0.0


def _diff_row(r: Result, a: float | None, b: float | None) -> MetricDiff:
    """The row of `r`'s figure (benchmark, metric, devices, variant, unit): a against b."""
    return MetricDiff(
        benchmark=r.benchmark,
        metric=r.metric,
        devices=list(r.devices),
        variant={k: r.params[k] for k in VARIANT_KEYS if k in r.params},
        unit=r.unit,
        a=a,
        b=b,
    )


def _row(ra: Result | None, rb: Result | None) -> MetricDiff:
    r = ra or rb
    assert r is not None
    row = _diff_row(r, ra.value if ra else None, rb.value if rb else None)
    if row.a is None or row.b is None:
        row.note = "only in one run" if ra is None or rb is None else "not measured in both"
        return row
    row.diff = row.b - row.a
    row.rel = row.diff / row.a if row.a else None
    noise = _half_width(ra) + _half_width(rb)  # type: ignore[arg-type]
    row.noise = max(noise, NOISE_FLOOR * abs(row.a))
    row.beyond_noise = abs(row.diff) > row.noise
    return row


def _gpus(run: Run) -> list[str]:
    return [str(g.get("name")) for g in run.machine.get("gpus", [])]


def _power_limits(results: list[Result]) -> dict[int, float]:
    out: dict[int, float] = {}
    for r in results:
        for g in r.conditions.gpus if r.conditions else []:
            if g.power_limit_w is not None:
                out[g.gpu] = g.power_limit_w
    return out


def setup_warnings(
    run_a: Run, results_a: list[Result], run_b: Run, results_b: list[Result]
) -> list[str]:
    """What differs between the two setups, each in one line."""
    out = []
    if _gpus(run_a) != _gpus(run_b):
        out.append(
            f"GPUs differ: {', '.join(_gpus(run_a)) or 'none'} against"
            f" {', '.join(_gpus(run_b)) or 'none'}"
        )
    for key, words in (("driver", "driver"), ("torch", "torch")):
        va, vb = run_a.versions.get(key), run_b.versions.get(key)
        if va != vb:
            out.append(f"{words} differs: {va or 'unknown'} against {vb or 'unknown'}")
    pa, pb = _power_limits(results_a), _power_limits(results_b)
    for gpu in sorted(set(pa) & set(pb)):
        if abs(pa[gpu] - pb[gpu]) > 1.0:
            out.append(f"GPU {gpu} power limit differs: {pa[gpu]:.0f} W against {pb[gpu]:.0f} W")
    if run_a.backend != run_b.backend:
        out.append(f"backend differs: {run_a.backend} against {run_b.backend}")
    return out


def compare_runs(
    run_a: Run, results_a: list[Result], run_b: Run, results_b: list[Result]
) -> Comparison:
    """Every figure measured (or attempted) in either run, matched by benchmark, metric,
    devices and variant, in the order of run A and then what only B has."""
    by_b = {_key(r): r for r in results_b if r.status != "skipped"}
    seen = set()
    rows = []
    for ra in results_a:
        if ra.status == "skipped":
            continue
        k = _key(ra)
        seen.add(k)
        rows.append(_row(ra, by_b.get(k)))
    rows += [_row(None, rb) for k, rb in by_b.items() if k not in seen]
    return Comparison(
        a=f"run #{run_a.id}",
        b=f"run #{run_b.id}",
        warnings=setup_warnings(run_a, results_a, run_b, results_b),
        rows=rows,
    )


def compare_to_references(run: Run, results: list[Result]) -> Comparison:
    """Each judged figure against the typical value of its reference; beyond noise when
    outside the healthy range. Figures without a reference say so."""
    rows = []
    for r in results:
        if r.status == "skipped":
            continue
        j = r.judgement
        value = r.ratio if reference_metric(r) == "decode.roofline_ratio" else r.value
        row = _diff_row(r, value, j.typical if j else None)
        if j is None or j.reference is None:
            row.note = "no reference"
        elif value is not None:
            if row.b is not None:
                row.diff = value - row.b
                row.rel = row.diff / row.b if row.b else None
            low = j.low if j.low is not None else float("-inf")
            high = j.high if j.high is not None else float("inf")
            row.beyond_noise = not low <= value <= high
            row.note = f"healthy {j.low if j.low is not None else '—'}–"
            row.note += f"{j.high if j.high is not None else '—'} ({j.reference})"
        rows.append(row)
    return Comparison(a=f"run #{run.id}", b="references", rows=rows)
