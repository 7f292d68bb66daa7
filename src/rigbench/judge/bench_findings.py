"""A bench run's findings: the figures judged below normal or faulty, as the judgement
layer's one Finding type, so `bench --json` carries `findings` with the fields doctor,
plan and burnin's have. Normal and unjudged figures stay in `results` only."""

from __future__ import annotations

import re
from collections.abc import Iterable

from rigbench.records import Finding, Result

_GPU = re.compile(r"GPU(\d+)$")


def _gpus(devices: Iterable[str]) -> list[int]:
    return sorted({int(m.group(1)) for d in devices if (m := _GPU.search(d))})


def _figure(r: Result) -> str:
    if r.value is None:
        return r.status
    return f"{r.value:.4g} {r.unit}".strip()


def bench_findings(results: Iterable[Result]) -> list[Finding]:
    out: list[Finding] = []
    for r in results:
        j = r.judgement
        if j is None or j.severity not in ("warning", "error"):
            continue
        where = ", ".join(r.devices)
        words = "a fault" if j.verdict == "fault" else "below normal"
        evidence: dict[str, object] = {"value": r.value, "unit": r.unit}
        if j.low is not None or j.high is not None:
            evidence |= {"healthy_low": j.low, "healthy_high": j.high, "typical": j.typical}
        if j.reference:
            evidence["reference"] = j.reference
        if j.cause:
            evidence["cause"] = j.cause
        if r.reason:
            evidence["reason"] = r.reason
        out.append(
            Finding(
                id=f"bench.{r.benchmark}.{r.metric}",
                severity=j.severity,
                title=f"{r.benchmark} {r.metric} {_figure(r)}"
                + (f" on {where}" if where else "")
                + f": {words}",
                evidence=evidence,
                why=j.note or r.message,
                source=j.source,
                origin="measurement",
                gpus=_gpus(r.devices),
            )
        )
    return out
