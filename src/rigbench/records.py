"""Typed result records: one schema for the store, JSON output and every renderer."""

from __future__ import annotations

import datetime as _dt
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from rigbench.stats import Spread, summarize

Status = Literal["ok", "failed", "skipped"]
# crashed: the process running it is gone without finishing it (kill -9, power loss)
RunStatus = Literal["running", "complete", "incomplete", "failed", "crashed"]
# One severity scale for every command (judge/exit_codes.py maps it to exit codes):
# error (broken, or data at risk), warning (costs speed or will bite), info (worth knowing,
# nothing to do), ok (checked, fine), skipped (could not be checked; `why` says why).
Severity = Literal["ok", "info", "warning", "error", "skipped"]
# Why a supervised step (a benchmark step, a doctor probe, a burn-in load) did not finish:
# judged by code, never by the wording of a message. `hang`: no progress within the work's
# timeout; `timeout_startup`: the workers never reported ready (a slow or overloaded machine,
# not a GPU fault); `crash`: a worker died; `wrong_data`: a result failed its check;
# `unsupported`: the hardware or build cannot do it; `oom`: out of memory; `interrupted`:
# stopped by the user; `skipped_dependency`: not run because an earlier step it needs failed.
FailureReason = Literal[
    "hang",
    "timeout_startup",
    "crash",
    "wrong_data",
    "unsupported",
    "oom",
    "interrupted",
    "skipped_dependency",
]
SEVERITY_RANK: dict[str, int] = {"error": 0, "warning": 1, "info": 2, "ok": 3, "skipped": 4}
# Where a finding's evidence came from: a measurement (rigbench made the hardware work), a
# reading (a counter, a setting, a log line), a plan (a parts list and models), or an
# assumption stated in the finding.
Origin = Literal["measurement", "reading", "plan", "assumption"]
# A measurement against what healthy hardware of that kind gives: normal, below normal
# (slower than healthy, with a likely cause), fault (wrong data, a hang, a crash), or no
# reference (nothing sourced to judge it against: never a guess).
Verdict = Literal["normal", "below_normal", "fault", "no_reference"]
VERDICT_SEVERITY: dict[str, Severity] = {
    "normal": "ok",
    "below_normal": "warning",
    "fault": "error",
    "no_reference": "info",
}


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


@dataclass(kw_only=True, slots=True)
class GpuConditions:
    """What one GPU ran under during a measurement, summarised from telemetry sampled by
    the parent process (never by the worker that does the work).

    Clocks in MHz, power in W, temperature in °C. `throttle` maps each clock-event reason
    seen (names of rigbench.hw.throttle) to the share of the time it was active (0..1);
    `energy_j` is power integrated over the window. `pcie_gen`/`pcie_width` are the highest
    seen during the window (an idle link trains down; under a transfer it trains up as far
    as it can), `*_max` what GPU and slot allow.
    `other_processes` counts compute processes on the GPU that rigbench did not start.
    """

    gpu: int
    samples: int = 0
    seconds: float = 0.0
    sm_clock_mean_mhz: float | None = None
    sm_clock_min_mhz: int | None = None
    sm_clock_max_mhz: int | None = None  # the GPU's maximum (boost) SM clock
    mem_clock_mean_mhz: float | None = None
    power_mean_w: float | None = None
    power_peak_w: float | None = None
    power_limit_w: float | None = None
    power_default_limit_w: float | None = None
    energy_j: float | None = None
    temp_max_c: float | None = None
    # VRAM: HBM from NVML, GDDR6/6X from the BAR0 register where rigbench can read it
    temp_mem_max_c: float | None = None
    throttle: dict[str, float] = field(default_factory=dict)
    pcie_gen: int | None = None
    pcie_width: int | None = None
    pcie_gen_max: int | None = None
    pcie_width_max: int | None = None
    other_processes: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(json_ready(asdict(self)))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GpuConditions:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)


@dataclass(kw_only=True, slots=True)
class Conditions:
    """The conditions of one measurement: its window (`seconds`, from the worker's own
    timestamps or, lacking them, from the messages around it) and one summary per GPU.
    `unavailable` says why there are none (the CPU backend has no clocks or power)."""

    seconds: float | None = None
    gpus: list[GpuConditions] = field(default_factory=list)
    source: str | None = None  # "nvml", "simulated trace"
    unavailable: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "seconds": round(self.seconds, 4) if self.seconds is not None else None,
            "gpus": [g.to_dict() for g in self.gpus],
            "source": self.source,
            "unavailable": self.unavailable,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Conditions:
        return cls(
            seconds=d.get("seconds"),
            gpus=[GpuConditions.from_dict(g) for g in d.get("gpus", [])],
            source=d.get("source"),
            unavailable=d.get("unavailable"),
        )


@dataclass(kw_only=True, slots=True)
class Expectation:
    """A figure the hardware should reach, and where it comes from."""

    value: float
    unit: str
    basis: str  # "PCIe 4.0 x16, 31.5 GB/s per direction", "H100 SXM datasheet, dense bf16"


@dataclass(kw_only=True, slots=True)
class Result:
    """One measured figure.

    `value` is the median over `spread.n` repeats, in `unit`. `expected` is what the
    hardware path should give (topology), `peak` the catalog's datasheet ceiling; `basis`
    says where either came from. A failed or skipped measurement has `value=None` and a
    `message` saying why.
    """

    benchmark: str
    metric: str
    value: float | None
    unit: str
    params: dict[str, Any] = field(default_factory=dict)
    devices: list[str] = field(default_factory=list)
    spread: Spread | None = None
    expected: float | None = None
    peak: float | None = None
    basis: str | None = None
    status: Status = "ok"
    message: str | None = None
    # What the GPUs ran under while this figure was measured (telemetry/conditions.py).
    conditions: Conditions | None = None
    # The verdict against healthy hardware of the same kind (judge/bench.py).
    judgement: Judgement | None = None
    # Why a failed or skipped result did not measure, as a code (never read the message)
    reason: FailureReason | None = None

    @property
    def ratio(self) -> float | None:
        """Measured over expected (or over peak when no expected is known)."""
        ref = self.expected if self.expected else self.peak
        if self.value is None or not ref:
            return None
        return self.value / ref

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["spread"] = self.spread.to_dict() if self.spread else None
        d["conditions"] = self.conditions.to_dict() if self.conditions else None
        d["judgement"] = self.judgement.to_dict() if self.judgement else None
        d["ratio"] = self.ratio
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Result:
        d = dict(d)
        d.pop("ratio", None)
        spread = d.pop("spread", None)
        cond = d.pop("conditions", None)
        judgement = d.pop("judgement", None)
        return cls(
            spread=Spread(**spread) if spread else None,
            conditions=Conditions.from_dict(cond) if cond else None,
            judgement=Judgement.from_dict(judgement) if judgement else None,
            **d,
        )

    @classmethod
    def failure(
        cls,
        benchmark: str,
        metric: str,
        unit: str,
        message: str,
        *,
        devices: list[str] | None = None,
        params: dict[str, Any] | None = None,
        status: Status = "failed",
        reason: FailureReason | None = None,
    ) -> Result:
        return cls(
            benchmark=benchmark,
            metric=metric,
            value=None,
            unit=unit,
            devices=devices or [],
            params=params or {},
            status=status,
            message=message,
            reason=reason,
        )

    @classmethod
    def checked_rate(
        cls,
        benchmark: str,
        metric: str,
        unit: str,
        rates: list[float],
        *,
        wrong: str | None,
        devices: list[str],
        params: dict[str, Any],
        expected: Expectation | None = None,
        peak: Expectation | None = None,
    ) -> Result:
        """A timed transfer whose data was checked, as one figure: failed (`wrong_data`)
        when `wrong` says what came out wrong, else the median of `rates` with their
        spread, against `expected` (the hardware path) or `peak` (the catalog)."""
        if wrong is not None:
            return cls.failure(
                benchmark, metric, unit, wrong, devices=devices, params=params, reason="wrong_data"
            )
        spread = summarize(rates)
        ref = expected or peak
        return cls(
            benchmark=benchmark,
            metric=metric,
            value=spread.p50,
            unit=unit,
            params=params,
            devices=devices,
            spread=spread,
            expected=expected.value if expected else None,
            peak=peak.value if peak else None,
            basis=ref.basis if ref else None,
        )


@dataclass(kw_only=True, slots=True)
class Run:
    """The envelope of one command's results: what ran, where, when, and how it ended."""

    command: str
    argv: list[str] = field(default_factory=list)
    backend: str = "none"
    machine: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, Any] = field(default_factory=dict)
    started_at: str = field(default_factory=utc_now)
    finished_at: str | None = None
    status: RunStatus = "running"
    id: int | None = None
    pid: int | None = None  # the process that runs it, on `host`
    host: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(kw_only=True, slots=True)
class Finding:
    """One thing a command found: a doctor check, a plan check, a burn-in reason, a bench
    verdict. The same fields everywhere, so `--json` of every command reads alike.

    `id` is stable ("pcie.link_degraded", "power.psu_transient", "xid.79", "<check>.ok"):
    scripts match on it. `evidence` holds the figures behind it (units in the keys), `why`
    why it matters, `fix` what to do, `source` where the rule, threshold or fix comes from
    (a vendor document, a public issue, a write-up, a run in benchmarks/), `origin` whether
    the evidence was measured, read, planned or assumed, `gpus` the indices concerned.
    """

    id: str
    severity: Severity
    title: str
    evidence: dict[str, Any] = field(default_factory=dict)
    why: str | None = None
    fix: str | None = None
    source: str | None = None
    origin: Origin | None = None
    gpus: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.severity not in SEVERITY_RANK:
            raise ValueError(f"severity {self.severity!r} is not one of {tuple(SEVERITY_RANK)}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["evidence"] = json_ready(self.evidence)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Finding:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)


@dataclass(kw_only=True, slots=True)
class Judgement:
    """The verdict on one measured figure against what healthy hardware gives.

    `low`..`high` is the healthy range it was judged against and `typical` the usual value
    (same unit as the figure), `reference` the reference entry's id and `source` where the
    range comes from. `cause` is the likely reason for a figure below normal, read from the
    conditions recorded while it ran ("power_capped", "thermal", "clocks_locked",
    "link_degraded", "other_process", "wrong_data", ...); `note` says it in words.
    """

    verdict: Verdict
    low: float | None = None
    high: float | None = None
    typical: float | None = None
    reference: str | None = None
    source: str | None = None
    cause: str | None = None
    note: str | None = None

    @property
    def severity(self) -> Severity:
        return VERDICT_SEVERITY[self.verdict]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Judgement:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def json_ready(value: Any) -> Any:
    """JSON-ready: mappings to dicts, tuples to lists, floats rounded to 4 places."""
    if isinstance(value, dict) or hasattr(value, "items"):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    if isinstance(value, float):
        return round(value, 4)
    return value
