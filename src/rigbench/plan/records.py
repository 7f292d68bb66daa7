"""What `plan` reports: findings (a check's verdict with what, why and the fix) and
predictions (a figure the rig should reach, with its basis). Both are typed records that
serialise to JSON; renderers read them, never the checks' internals."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from rigbench.judge import EXIT_ERRORS, EXIT_OK, EXIT_WARNINGS, Finding, Severity, exit_code_for
from rigbench.records import json_ready

# plan's findings use three of the scale's severities: a parts list has nothing "ok" or
# "skipped" to say per check.
SEVERITIES: tuple[Severity, ...] = ("info", "warning", "error")
__all__ = ["EXIT_ERRORS", "EXIT_OK", "EXIT_WARNINGS", "Finding", "Prediction", "PlanReport"]


def _frozen(d: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(d or {}))


@dataclass(frozen=True, slots=True, kw_only=True)
class Prediction:
    """A figure the rig should reach (an upper bound unless the basis says otherwise)."""

    id: str
    what: str
    value: float | None
    unit: str
    basis: str
    evidence: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "evidence", _frozen(self.evidence))

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "what": self.what,
            "value": None if self.value is None else round(self.value, 4),
            "unit": self.unit,
            "basis": self.basis,
            "evidence": json_ready(self.evidence),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanReport:
    """Everything `plan` says about one build file."""

    rig: str
    path: str
    gpus: tuple[Mapping[str, Any], ...]
    findings: tuple[Finding, ...]
    predictions: tuple[Prediction, ...]
    fit: tuple[Mapping[str, Any], ...] = ()  # FitPlan.to_dict() per [[model]] that ran

    @property
    def worst(self) -> Severity:
        sev = {f.severity for f in self.findings}
        return "error" if "error" in sev else "warning" if "warning" in sev else "info"

    @property
    def exit_code(self) -> int:
        """0: nothing to fix; 1: warnings; 2: errors."""
        return exit_code_for(self.findings)

    def finding(self, finding_id: str) -> list[Finding]:
        return [f for f in self.findings if f.id == finding_id]

    def prediction(self, prediction_id: str) -> Prediction | None:
        return next((p for p in self.predictions if p.id == prediction_id), None)

    def to_dict(self) -> dict[str, Any]:
        counts = {s: sum(1 for f in self.findings if f.severity == s) for s in SEVERITIES}
        return {
            "rig": self.rig,
            "path": self.path,
            "verdict": self.worst,
            "exit_code": self.exit_code,
            "counts": counts,
            "gpus": [json_ready(g) for g in self.gpus],
            "findings": [f.to_dict() for f in self.findings],
            "predictions": [p.to_dict() for p in self.predictions],
            "fit": [json_ready(f) for f in self.fit],
        }
