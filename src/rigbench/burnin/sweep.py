"""The power-limit sweep (`burnin --sweep-power LO:HI:STEP`): at each power limit, per chosen
GPU, the sustained GEMM rate and a short training run's tokens/s (bench.train, one device),
each against the GPU's mean power over that measurement's own timed window, so an owner
picks the limit the seeds picked by hand (300 W on a 3090 Ti, 280-285 W on 3090s) from a
measured curve: work per watt, and what each step down costs in speed.

Setting a limit needs root: without it the sweep says so in one line and measures at the
current limit only. On a simulated rig the limits are set in memory (its traced draw follows
them) and the load runs on CPU stand-ins: the curve exercises the code, the figures are not a
GPU's. Every limit changed is put back as it was, whatever happens.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from rigbench.errors import BadInput, HardwareError
from rigbench.records import Result

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
    enforced_limit_w: float | None  # what the GPU reported while measuring (the x axis)
    gpu: int
    tflops: float | None  # sustained GEMM, the best dtype's
    dtype: str | None
    power_mean_w: float | None  # over the sustained GEMM's timed window
    tflops_per_w: float | None
    tokens_per_s: float | None = None  # training, one device (bench.train)
    train_size: str | None = None
    train_power_mean_w: float | None = None  # over the training run's timed steps
    tokens_per_s_per_w: float | None = None  # = tokens per joule
    problems: list[str] = field(default_factory=list)  # a measurement that failed, and why


@dataclass(kw_only=True, slots=True)
class SweepReport:
    points: list[SweepPoint] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    simulated: bool = False
    limits_set: bool = False  # False: measured at the current limit only
    plot: str | None = None

    def best(self) -> dict[int, dict[str, float | None]]:
        """Per GPU swept over two limits or more, the limit with the most GEMM work and the
        most training tokens per W (one limit measured has no "best")."""
        out: dict[int, dict[str, float | None]] = {}
        for gpu in sorted({p.gpu for p in self.points}):
            if len({p.enforced_limit_w for p in self.points if p.gpu == gpu}) < 2:
                continue
            g = best_per_watt(self, gpu)
            t = best_per_watt(self, gpu, "tokens_per_s_per_w")
            out[gpu] = {
                "tflops_per_w_at_w": g.enforced_limit_w if g else None,
                "tokens_per_s_per_w_at_w": t.enforced_limit_w if t else None,
            }
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "points": [asdict(p) for p in self.points],
            "best_per_watt": {str(k): v for k, v in self.best().items()},
            "notes": self.notes,
            "simulated": self.simulated,
            "limits_set": self.limits_set,
            "plot": self.plot,
        }


def _sustained(results: list[Result], label: str) -> Result | None:
    """The best dtype's sustained GEMM result of one device."""
    best: Result | None = None
    for r in results:
        if (
            r.benchmark == "gemm"
            and r.metric.endswith(".sustained")
            and r.value is not None
            and label in r.devices
            and (best is None or best.value is None or r.value > best.value)
        ):
            best = r
    return best


def _tokens(results: list[Result], label: str) -> Result | None:
    return next(
        (
            r
            for r in results
            if r.benchmark == "train"
            and r.metric == "tokens_per_s"
            and r.devices == [label]
            and r.value is not None
        ),
        None,
    )


def _failures(results: list[Result], label: str) -> list[str]:
    return [
        f"{r.benchmark} {r.metric}: {r.message}"
        for r in results
        if r.value is None and label in r.devices and r.status != "skipped" and r.message
    ]


def _window_power(monitor: Any, r: Result | None, gpu: int) -> float | None:
    """The GPU's mean power over the result's timed window (None: no window or no power)."""
    if r is None or monitor is None or not monitor.available:
        return None
    t0, t1 = r.params.get("window_t0"), r.params.get("window_t1")
    if t0 is None or t1 is None:
        return None
    c = monitor.conditions(float(t0), float(t1), [gpu])
    return c.gpus[0].power_mean_w if c.gpus else None


def _per_w(value: float | None, watts: float | None) -> float | None:
    return value / watts if value and watts else None


def measure_point(
    backend: Any,
    limit: float | None,
    gpu: int,
    *,
    size_scale: float,
    train: bool,
    options: Any = None,
) -> SweepPoint:
    """GEMM then training on one GPU at the limit it has now, power from the parent's
    telemetry over each measurement's window."""
    from rigbench.bench.suite import build_plan, run_plan
    from rigbench.telemetry.conditions import ConditionsMonitor

    rig = backend.rig()
    live = backend.kind == "nvml"
    monitor = ConditionsMonitor(backend.telemetry([gpu]), rig)
    results: list[Result] = []
    monitor.start()
    try:
        only = ["gemm", "train"] if train else ["gemm"]
        plan = build_plan(
            rig,
            gpus=[gpu],
            only=only,
            cuda_available=live,
            size_scale=size_scale,
            options=options,
        )
        run_plan(plan, results.append)
    finally:
        monitor.stop()
    label = f"GPU{gpu}"
    gemm, tokens = _sustained(results, label), _tokens(results, label)
    power = _window_power(monitor, gemm, gpu)
    train_power = _window_power(monitor, tokens, gpu)
    enforced = next((g.power_limit_w for g in rig.gpus if g.index == gpu), None)
    tflops = gemm.value if gemm else None
    tps = tokens.value if tokens else None
    return SweepPoint(
        limit_w=limit,
        enforced_limit_w=enforced,
        gpu=gpu,
        tflops=tflops,
        dtype=gemm.metric.split(".")[0] if gemm else None,
        power_mean_w=power,
        tflops_per_w=_per_w(tflops, power),
        tokens_per_s=tps,
        train_size=tokens.params.get("size") if tokens else None,
        train_power_mean_w=train_power,
        tokens_per_s_per_w=_per_w(tps, train_power),
        problems=_failures(results, label),
    )


def run_sweep(
    backend: Any,
    limits: list[float],
    gpus: list[int],
    *,
    size_scale: float = 1.0,
    train: bool = True,
    options: Any = None,
    on_point: Callable[[SweepPoint], None] | None = None,
) -> SweepReport:
    """Every limit in turn, every GPU at each (one GPU measured at a time, all set to the
    limit); the limits are put back as they were."""
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
    if why is None and limits:
        # root may still be refused (a cloud VM's GPUs): then it is the current limit only
        try:
            for g in gpus:
                backend.set_power_limit(g, limits[0])
        except HardwareError as exc:
            why = f"cannot set power limits here ({exc})"
            for g, w in original.items():
                with contextlib.suppress(HardwareError):
                    if w is not None:
                        backend.set_power_limit(g, w)
            now = ", ".join(f"GPU {g} {w:g} W" for g, w in original.items() if w is not None)
            report.notes.append(f"{why}: measuring at the current limit only ({now})")
            plan_limits = [None]
    report.limits_set = why is None
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
            for g in gpus:
                point = measure_point(
                    backend, limit, g, size_scale=size_scale, train=train, options=options
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


def best_per_watt(report: SweepReport, gpu: int, figure: str = "tflops_per_w") -> SweepPoint | None:
    """The point of `gpu` with the highest `figure` (tflops_per_w or tokens_per_s_per_w)."""
    pts = [p for p in report.points if p.gpu == gpu and getattr(p, figure) is not None]
    return max(pts, key=lambda p: getattr(p, figure) or 0.0) if pts else None


def results_of(points: list[SweepPoint]) -> list[Result]:
    """One stored record per GPU and limit (benchmark burnin.sweep)."""
    out = []
    for p in points:
        out.append(
            Result(
                benchmark="burnin.sweep",
                metric="tflops_per_w",
                value=p.tflops_per_w,
                unit="TFLOP/s/W",
                devices=[f"GPU{p.gpu}"],
                params={k: v for k, v in asdict(p).items() if k != "problems"},
                status="ok" if p.tflops_per_w is not None else "skipped",
                message="; ".join(p.problems) or None,
            )
        )
    return out
