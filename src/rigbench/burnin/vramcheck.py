"""The burn-in's VRAM step: bench.vram's patterns on every loaded device after the load (the
memory still warm from it, and free again), each in a worker under the benchmark's timeout;
what each found becomes that device's VramEvidence for the verdict.

On a simulated rig the patterns run on CPU stand-ins (bench.vram.CPU_BYTES each) with the
rig's `[[vram_fault]]` played; on a machine without GPUs, one pass over CPU_BYTES of host
memory exercises the code (it tests no VRAM).
"""

from __future__ import annotations

from collections.abc import Callable

from rigbench.burnin.verdict import VramEvidence
from rigbench.hw.model import Rig
from rigbench.records import Result


def evidence_of(r: Result) -> VramEvidence:
    p = r.params
    return VramEvidence(
        status=r.status,
        reason=r.reason,
        message=r.message,
        bad_words=int(r.value) if r.value is not None else p.get("bad_words"),
        bytes_tested=p.get("bytes_tested"),
        bad_ranges=list(p.get("bad_ranges", [])),
        bad_ranges_total=int(p.get("bad_ranges_total", 0)),
        seconds=p.get("seconds"),
    )


def run_vram(
    rig: Rig,
    selected: list[int],
    *,
    on_gpu: bool,
    on_step: Callable[[str], None] | None = None,
) -> dict[str, VramEvidence]:
    """Device label -> what its VRAM test found (GPU<i>, or cpu0 without GPUs)."""
    from rigbench.bench.suite import build_plan, run_plan

    plan = build_plan(rig, gpus=selected, only=["vram"], cuda_available=on_gpu)
    results: list[Result] = []

    def step(s: object) -> None:
        if on_step is not None:
            on_step(getattr(s, "label", "VRAM"))

    run_plan(plan, results.append, step)
    out: dict[str, VramEvidence] = {}
    for r in results:
        if r.benchmark == "vram" and r.devices:
            out[r.devices[0]] = evidence_of(r)
    return out
