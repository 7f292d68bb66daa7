"""The power-limit sweep (`burnin --sweep-power LO:HI:STEP`): at each power limit, the
sustained GEMM rate of every chosen GPU and its mean power, so an owner picks the limit the
seeds picked by hand (300 W on a 3090 Ti, 280-285 W on 3090s) from a measured curve.

Setting a limit needs root: without it the sweep says so in one line and measures at the
current limit only. On a simulated rig the limits are set in memory (its traced draw follows
them) and the load runs on CPU stand-ins: the curve exercises the code, the figures are not a
GPU's. Every limit changed is put back as it was, whatever happens.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from rigbench.errors import BadInput

MAX_POINTS = 41


def parse_sweep(spec: str) -> list[float]:
    """'150:350:25' -> [150, 175, ..., 350] (W)."""
    parts = spec.split(":")
    try:
        lo, hi, step = (float(p) for p in parts)
    except ValueError:
        raise BadInput(
            f"--sweep-power takes LO:HI:STEP in watts, like 150:350:25 (got {spec!r})"
        ) from None
    if not (0 < lo <= hi and step > 0):
        raise BadInput(f"--sweep-power needs 0 < LO <= HI and STEP > 0 (got {spec!r})")
    n = int((hi - lo) / step + 1e-9) + 1
    if n > MAX_POINTS:
        raise BadInput(f"--sweep-power: {n} limits; at most {MAX_POINTS} (use a larger STEP)")
    return [lo + k * step for k in range(n)]


@dataclass(kw_only=True, slots=True)
class SweepPoint:
    limit_w: float | None  # None: the current limit, not set by the sweep
    gpu: int
    tflops: float | None  # sustained GEMM, median over the GPU's results at this limit
    dtype: str | None
    power_mean_w: float | None
    tflops_per_w: float | None


@dataclass(kw_only=True, slots=True)
class SweepReport:
    points: list[SweepPoint] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    simulated: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "points": [asdict(p) for p in self.points],
            "notes": self.notes,
            "simulated": self.simulated,
        }


def _sustained(results: list[Any], label: str) -> tuple[float | None, str | None]:
    """The best dtype's sustained GEMM rate of one device."""
    best: tuple[float | None, str | None] = (None, None)
    for r in results:
        if (
            r.benchmark == "gemm"
            and r.metric.endswith(".sustained")
            and r.value is not None
            and label in r.devices
            and (best[0] is None or r.value > best[0])
        ):
            best = (r.value, r.metric.split(".")[0])
    return best


def run_sweep(
    backend: Any,
    limits: list[float],
    gpus: list[int],
    *,
    size_scale: float = 1.0,
    on_point: Callable[[SweepPoint], None] | None = None,
) -> SweepReport:
    from rigbench.bench.suite import build_plan, run_plan
    from rigbench.telemetry.aggregate import Aggregator
    from rigbench.telemetry.sampler import Sampler

    report = SweepReport(simulated=backend.kind == "simulated")
    why = (
        backend.power_limit_settable()
        if hasattr(backend, "power_limit_settable")
        else "this backend cannot set power limits"
    )
    rig = backend.rig()
    original = {g.index: g.power_limit_w for g in rig.gpus if g.index in gpus}
    plan_limits: list[float | None] = list(limits)
    if why is not None:
        now = ", ".join(f"GPU {g} {w:g} W" for g, w in original.items() if w is not None)
        report.notes.append(f"{why}: measuring at the current limit only ({now or 'unknown'})")
        plan_limits = [None]
    if report.simulated:
        report.notes.append(
            "simulated rig: limits set in memory, the load on CPU stand-ins (the rate does "
            "not follow the limit; the traced draw does)"
        )
    try:
        for limit in plan_limits:
            if limit is not None:
                for g in gpus:
                    backend.set_power_limit(g, limit)
            rig = backend.rig()
            source = backend.telemetry(gpus)
            agg = Aggregator(source.channels(), 0.05)
            sampler = Sampler(source, 20.0, [agg.add])
            results: list[Any] = []
            plan = build_plan(
                rig,
                gpus=gpus,
                only=["gemm"],
                cuda_available=backend.kind == "nvml",
                size_scale=size_scale,
            )
            sampler.start()
            try:
                run_plan(plan, results.append)
            finally:
                sampler.stop()
                source.close()
            view = agg.view()
            for g in gpus:
                tflops, dtype = _sustained(results, f"GPU{g}")
                ga = view.gpus.get(g)
                power = ga.power_mean.value if ga is not None else None
                point = SweepPoint(
                    limit_w=limit,
                    gpu=g,
                    tflops=tflops,
                    dtype=dtype,
                    power_mean_w=power,
                    tflops_per_w=tflops / power if tflops and power else None,
                )
                report.points.append(point)
                if on_point is not None:
                    on_point(point)
    finally:
        if why is None:
            for g, w in original.items():
                if w is not None:
                    backend.set_power_limit(g, w)
    return report


def best_per_watt(report: SweepReport, gpu: int) -> SweepPoint | None:
    pts = [p for p in report.points if p.gpu == gpu and p.tflops_per_w is not None]
    return max(pts, key=lambda p: p.tflops_per_w or 0.0) if pts else None
