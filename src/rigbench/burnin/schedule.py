"""The burn-in's timetable: which load runs when, the same for every GPU.

One cycle of CYCLE_S seconds (scaled so that whole cycles fill the run):

    gemm       40 %  matmuls of fixed inputs back to back, every output checksummed
    memory     10 %  device-to-device copies of a large buffer, verified
    allreduce  15 %  all_reduce across all GPUs (NCCL; gloo on CPU stand-ins), verified;
                     with one GPU this time goes to gemm
    steps      35 %  idle and full (gemm) alternating on all GPUs at once, with periods
                     cycling through STEP_PERIODS_S, like data-parallel step boundaries:
                     the largest power transients a rig sees

Phase times are on the host's monotonic clock (CLOCK_MONOTONIC on Linux, shared by every
process), so workers start and stop each phase together without waiting on each other:
a GPU that hangs or dies cannot hold the others back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

PhaseKind = Literal["gemm", "memory", "allreduce", "idle", "full"]

CYCLE_S = 60.0
SHARES: tuple[tuple[str, float], ...] = (
    ("gemm", 0.40),
    ("memory", 0.10),
    ("allreduce", 0.15),
    ("steps", 0.35),
)
STEP_PERIODS_S = (2.0, 1.0, 0.5, 1.5, 0.5, 1.0)
MIN_STEP_PERIOD_S = 0.1
# Fewest telemetry samples a phase is judged on: below this, one late tick is the phase.
MIN_SAMPLES_PER_PHASE = 5


def shortest_run_s(rate_hz: float) -> float:
    """The shortest run whose shortest phase still holds MIN_SAMPLES_PER_PHASE samples at
    `rate_hz`: below it nothing is tested, whatever the verdict would say."""
    return MIN_SAMPLES_PER_PHASE / rate_hz / min(share for _, share in SHARES)


@dataclass(frozen=True, slots=True)
class Phase:
    index: int
    kind: PhaseKind
    start: float  # monotonic seconds
    end: float

    @property
    def length(self) -> float:
        return self.end - self.start


def build_schedule(start: float, total_s: float, *, collectives: bool) -> list[Phase]:
    """Phases from `start` to `start + total_s`, back to back."""
    if total_s <= 0:
        return []
    cycles = max(1, round(total_s / CYCLE_S))
    cycle = total_s / cycles
    # Runs shorter than one cycle (tests, a quick look) shrink the step periods with it.
    period_scale = 1.0 if total_s >= CYCLE_S else total_s / CYCLE_S
    phases: list[Phase] = []
    t = start

    def add(kind: PhaseKind, length: float) -> None:
        nonlocal t
        if length <= 0:
            return
        if phases and phases[-1].kind == kind:  # merge neighbours of one kind
            last = phases.pop()
            phases.append(Phase(last.index, kind, last.start, t + length))
        else:
            phases.append(Phase(len(phases), kind, t, t + length))
        t += length

    for _ in range(cycles):
        for name, share in SHARES:
            length = share * cycle
            if name == "allreduce" and not collectives:
                add("gemm", length)
            elif name == "steps":
                end = t + length
                k = 0
                while end - t > 1e-9:
                    base = STEP_PERIODS_S[k % len(STEP_PERIODS_S)]
                    period = max(MIN_STEP_PERIOD_S, base * period_scale)
                    half = period / 2 if end - t >= period else (end - t) / 2
                    add("idle", half)
                    add("full", half)
                    k += 1
            else:
                add(name, length)  # type: ignore[arg-type]
    # the last phase ends exactly at the end
    last = phases[-1]
    phases[-1] = Phase(last.index, last.kind, last.start, start + total_s)
    return phases


def steps_count(phases: list[Phase]) -> int:
    """How many idle->full steps the schedule has."""
    return sum(
        1 for a, b in zip(phases, phases[1:], strict=False) if a.kind == "idle" and b.kind == "full"
    )


def phases_run(phases: list[Phase], end: float) -> list[Phase]:
    """The phases that had begun by `end` (monotonic), the last cut there: what a run
    stopped early really ran."""
    ran = [p for p in phases if p.start < end]
    if ran and ran[-1].end > end:
        last = ran[-1]
        ran[-1] = Phase(last.index, last.kind, last.start, end)
    return ran
