"""Typed result records: one schema for the store, JSON output and every renderer."""

from __future__ import annotations

import datetime as _dt
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from rigbench.stats import Spread

Status = Literal["ok", "failed", "skipped"]
RunStatus = Literal["running", "complete", "incomplete", "failed"]
Severity = Literal["ok", "info", "warning", "error", "skipped"]


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


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
        d["ratio"] = self.ratio
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Result:
        d = dict(d)
        d.pop("ratio", None)
        spread = d.pop("spread", None)
        return cls(spread=Spread(**spread) if spread else None, **d)

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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(kw_only=True, slots=True)
class Finding:
    """One thing `rigbench doctor` found about a rig.

    `id` is stable ("pcie.link_degraded", "xid.79", "<check>.ok", "<check>.skipped"):
    scripts match on it. `severity`: ok (checked, fine), info (worth knowing, nothing to
    do), warning (costs speed or will bite), error (broken, or data at risk), skipped
    (could not be checked; `why` says why). `evidence` holds the figures read, `why` why
    it matters, `fix` what to do, `gpus` the NVML indices concerned.
    """

    id: str
    severity: Severity
    title: str
    evidence: dict[str, Any] = field(default_factory=dict)
    why: str | None = None
    fix: str | None = None
    gpus: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Finding:
        return cls(**d)
