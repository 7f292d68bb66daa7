"""The calibration set: `plan` run on rigs whose outcome is published, and compared.

`examples/calibration/manifest.toml` lists each rig's build file, its source, what happened
(`expected`: "runs" or "trips") and the figures its owner measured; `compare_all(folder)`
plans every rig and returns one `CalibrationRow` each: plan's power verdict, whether it
agrees, and each prediction beside its measurement. `markdown_table(rows)` is the table
README.md shows; regenerate it with

    python -m rigbench.plan.calibration examples/calibration
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import tomllib

from rigbench.plan.build import Build, load_build
from rigbench.plan.checks import plan_build
from rigbench.plan.pcie import ring
from rigbench.plan.records import PlanReport

VERDICTS = ("runs", "trips")
# measured key -> what it is compared with, for the table
MEASURED = {
    "wall_w": "wall W",
    "wall_max_w": "wall W (vs vendor max)",
    "decode_tokens_per_s": "decode tok/s",
    "ring_gbs": "GPU-GPU GB/s",
    "ddp_speedup": "DDP speedup",
}
TOLERANCE = 0.25  # a prediction within 25 % of a measurement agrees


@dataclass(frozen=True, slots=True, kw_only=True)
class CalibrationCase:
    file: str
    source: str
    outcome: str
    expected: str
    measured: dict[str, float] = field(default_factory=dict)
    disagreement: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Comparison:
    what: str
    predicted: float | None
    measured: float

    @property
    def error(self) -> float | None:
        """Relative error of the prediction, or None when plan predicts nothing."""
        if self.predicted is None:
            return None
        return (self.predicted - self.measured) / self.measured


@dataclass(frozen=True, slots=True, kw_only=True)
class CalibrationRow:
    case: CalibrationCase
    rig: str
    verdict: str
    why: str
    comparisons: tuple[Comparison, ...]

    @property
    def agrees(self) -> bool:
        return self.verdict == self.case.expected


def load_manifest(folder: str | Path) -> list[CalibrationCase]:
    """The cases of `folder`/manifest.toml."""
    path = Path(folder) / "manifest.toml"
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    cases = []
    for raw in data.get("rig", []):
        if raw.get("expected") not in VERDICTS:
            raise ValueError(f"{path}: {raw.get('file')}: expected must be one of {VERDICTS}")
        unknown = set(raw.get("measured", {})) - set(MEASURED)
        if unknown:
            raise ValueError(f"{path}: {raw['file']}: unknown measured key {sorted(unknown)[0]}")
        cases.append(
            CalibrationCase(
                file=raw["file"],
                source=raw["source"],
                outcome=raw["outcome"],
                expected=raw["expected"],
                measured={k: float(v) for k, v in raw.get("measured", {}).items()},
                disagreement=raw.get("disagreement"),
            )
        )
    return cases


def power_verdict(report: PlanReport) -> tuple[str, str]:
    """("trips", the finding that says so) when a PSU's sustained load is over its rating,
    spikes put it at high risk, or a breaker is overloaded; else ("runs", "")."""
    for f in report.findings:
        tripping = (
            f.id in ("power.psu_sustained", "power.circuit_breaker")
            or f.id == "power.psu_transient"
            and f.evidence.get("spike_risk") == "high"
        )
        if tripping:
            return "trips", f.title
    return "runs", ""


def _predicted(key: str, build: Build, report: PlanReport) -> float | None:
    if key in ("wall_w", "wall_max_w"):
        p = report.prediction("power.wall_w")
        return p.value if p is not None else None
    if key == "decode_tokens_per_s":
        p = next((p for p in report.predictions if p.id.startswith("decode.")), None)
        return p.evidence.get("expected_tokens_per_s") if p is not None else None
    if key == "ddp_speedup":
        p = next((p for p in report.predictions if p.id.startswith("scaling.")), None)
        return p.value if p is not None else None
    if key == "ring_gbs":
        r = ring(build)
        return r.gbs if r is not None else None
    raise KeyError(key)  # pragma: no cover - load_manifest checks the keys


def compare(folder: str | Path, case: CalibrationCase) -> CalibrationRow:
    build = load_build(Path(folder) / case.file)
    report = plan_build(build)
    verdict, why = power_verdict(report)
    comparisons = tuple(
        Comparison(what=key, predicted=_predicted(key, build, report), measured=value)
        for key, value in case.measured.items()
    )
    return CalibrationRow(
        case=case, rig=build.name, verdict=verdict, why=why, comparisons=comparisons
    )


def compare_all(folder: str | Path) -> list[CalibrationRow]:
    return [compare(folder, case) for case in load_manifest(folder)]


def _number(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 else f"{v:.3g}"


def _figures(row: CalibrationRow) -> str:
    parts = []
    for c in row.comparisons:
        predicted = "—" if c.predicted is None else _number(c.predicted)
        err = "" if c.error is None else f" ({c.error:+.0%})"
        parts.append(f"{MEASURED[c.what]}: {predicted} vs {_number(c.measured)}{err}")
    return "; ".join(parts) or "—"


def markdown_table(rows: list[CalibrationRow]) -> str:
    """The README table: rig, outcome, plan's verdict, prediction vs measurement."""
    agree = sum(r.agrees for r in rows)
    lines = [
        "| rig | outcome (source) | expected | plan | agrees | prediction vs measurement |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        outcome = r.case.outcome.replace("|", "/")
        lines.append(
            f"| {r.rig} (`{r.case.file}`) | {outcome} ({r.case.source}) | {r.case.expected}"
            f" | {r.verdict} | {'yes' if r.agrees else 'NO'} | {_figures(r)} |"
        )
    lines.append("")
    lines.append(f"{agree} of {len(rows)} verdicts agree ({agree / len(rows):.0%}).")
    off = [r for r in rows if not r.agrees]
    if off:
        lines.append("")
        lines.append("Disagreements:")
        lines.append("")
        for r in off:
            lines.append(f"- {r.rig}: {r.case.disagreement or 'not explained'}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    folder = Path(args[0]) if args else Path("examples/calibration")
    sys.stdout.write(markdown_table(compare_all(folder)))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
