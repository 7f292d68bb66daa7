"""The PSU-trip finder on real GPUs (`burnin --find-trip --build FILE [--stagger MS]`): step
the number of GPUs that ramp from idle to full matmul load together, 1, 2, ... N, measure the
combined spike from the parent's telemetry (each GPU's instantaneous power at RATE_HZ, summed
tick by tick), compare it with the build's PSU groups and circuit (burnin.psutrip.step_at),
and stop at the first step where a GPU falls off the bus, an Xid is logged or a load worker
dies.

Each step is written to the database as it is measured (a "started" record before the ramp,
the measured one after, the samples flushed with it): a real trip powers the machine off, and
what was measured before must be there after the reboot. With `--stagger MS` every step is
first run with the ramps MS apart, then together, so the last record before a trip says
whether staggering held at that count.

Timetable of one step: every ramping GPU idle -> full (matmuls back to back) for HOLD_S,
then REST_S idle for the supply and the GPUs to settle. The load workers are
burnin.load's, one per GPU, started once; each gets its own phases (burnin.coordinator
`go_each`). On a simulated rig the same code runs CPU stand-ins against the rig's trace (what
tests use); `burnin --find-trip --simulate` itself steps the model instead.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rigbench.burnin.coordinator import GO_LEAD_S, Coordinator
from rigbench.burnin.load import LoadConfig
from rigbench.burnin.psutrip import GpuRamp, TripReport, TripStep, step_at
from rigbench.burnin.schedule import Phase
from rigbench.hw.telemetry import TelemetryEvent, TelemetrySample
from rigbench.records import Result
from rigbench.store import Store
from rigbench.telemetry.recorder import Recorder
from rigbench.telemetry.sampler import Sampler

RATE_HZ = 100.0  # the fast fields hold 100 Hz on 8 GPUs (issue 18's sampler work)
HOLD_S = 3.0  # full load per step: the ramp's spike is in its first few hundred ms
REST_S = 3.0  # idle between steps: power back to idle before the next ramp
IDLE_S = 1.0  # idle before the first step, read as each GPU's idle draw
SUSTAINED_SHARE = 0.5  # the last half of a hold is the settled draw
WARNING = (
    "warning: --find-trip ramps up to {n} GPU(s) from idle to full load at once to find where "
    "the power supply gives out: a real trip can power this machine off. Each step is saved "
    "to {db} as it is measured."
)


@dataclass(frozen=True, slots=True)
class PlannedStep:
    ramping: int
    stagger_ms: float
    start: float  # monotonic, the first GPU's ramp
    end: float  # the hold's end

    def starts(self, n: int) -> list[float | None]:
        """Each of `n` GPUs' ramp start (None: stays idle this step)."""
        return [
            self.start + k * self.stagger_ms / 1000 if k < self.ramping else None for k in range(n)
        ]


def plan_steps(
    n: int, stagger_ms: float | None, first: float, hold_s: float, rest_s: float
) -> list[PlannedStep]:
    """1..n GPUs ramping; with a stagger, each count staggered first, then together."""
    out: list[PlannedStep] = []
    t = first
    for k in range(1, n + 1):
        modes = ([stagger_ms] if stagger_ms else []) + [0.0]
        for ms in modes:
            spread = (k - 1) * ms / 1000
            out.append(PlannedStep(ramping=k, stagger_ms=ms, start=t, end=t + spread + hold_s))
            t += spread + hold_s + rest_s
    return out


def phases_for(steps: list[PlannedStep], n: int) -> list[list[Phase]]:
    """Per GPU position, its "full" phases (one per step it ramps in); idle otherwise."""
    out: list[list[Phase]] = [[] for _ in range(n)]
    for idx, s in enumerate(steps):
        for k, start in enumerate(s.starts(n)):
            if start is not None:
                out[k].append(Phase(index=idx, kind="full", start=start, end=s.end))
    return out


@dataclass(kw_only=True)
class _Ticks:
    """What the sampler read, kept for the step evaluations (the sampler's thread appends)."""

    rows: list[tuple[float, dict[int, float]]] = field(default_factory=list)  # (monotonic, W)
    events: list[TelemetryEvent] = field(default_factory=list)
    t0: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, t: float, samples: list[TelemetrySample], events: list[TelemetryEvent]) -> None:
        draw = {s.gpu: p for s in samples if (p := s.power_w) is not None}
        with self.lock:
            self.rows.append((self.t0 + t, draw))
            self.events.extend(events)

    def window(self, a: float, b: float) -> list[dict[int, float]]:
        with self.lock:
            return [d for t, d in self.rows if a <= t <= b]

    def events_until(self, b: float) -> list[TelemetryEvent]:
        with self.lock:
            return [e for e in self.events if self.t0 + e.t <= b]


def measure_step(
    rows: list[dict[int, float]], gpus: list[int]
) -> tuple[dict[int, float], dict[int, float]]:
    """(each GPU's draw at the tick where the sum of all is highest, each GPU's settled
    draw: the mean over the hold's last SUSTAINED_SHARE; idle GPUs included). Only ticks
    that read every GPU count: a sum with one missing would read low."""
    full = [r for r in rows if all(g in r for g in gpus)]
    if not full:
        return {}, {}
    peak = max(full, key=lambda r: sum(r[g] for g in gpus))
    tail = full[int(len(full) * (1 - SUSTAINED_SHARE)) :] or full
    settled = {g: sum(r[g] for r in tail) / len(tail) for g in gpus}
    return {g: peak[g] for g in gpus}, settled


def observed(
    events: list[TelemetryEvent], failed: dict[str, str], labels: dict[int, str]
) -> str | None:
    """What went wrong: a GPU lost, an Xid, a load worker failed (`failed`: label -> error);
    None when nothing did."""
    xid79 = {e.gpu for e in events if e.kind == "xid" and e.code == 79}  # "fallen off the bus"
    lost = sorted({e.gpu for e in events if e.kind in ("lost", "unavailable")} | xid79)
    if lost:
        names = ", ".join(labels.get(g, f"GPU{g}") for g in lost)
        return f"{names} fell off the bus" + (" (Xid 79)" if xid79 else "")
    xids = sorted({(e.gpu, e.code or 0) for e in events if e.kind == "xid"})
    if xids:
        return ", ".join(f"{labels.get(g, f'GPU{g}')} Xid {c}" for g, c in xids)
    if failed:
        return "; ".join(f"{label} load {why}" for label, why in sorted(failed.items()))
    return None


class _News:
    """Events and worker failures not yet accounted to a step."""

    def __init__(self, coord: Coordinator, ticks: _Ticks) -> None:
        self.coord = coord
        self.ticks = ticks
        self.seen_events = 0
        self.seen_failed: set[str] = set()

    def take(self, until: float) -> tuple[list[TelemetryEvent], dict[str, str]]:
        events = self.ticks.events_until(until)
        new, self.seen_events = events[self.seen_events :], len(events)
        failed = {
            w.device.label: w.error or "failed"
            for w in self.coord.workers
            if w.status == "failed" and w.device.label not in self.seen_failed
        }
        self.seen_failed |= set(failed)
        return new, failed


def _record(store: Store, run_id: int, step: TripStep, state: str) -> None:
    store.add_result(
        run_id,
        Result(
            benchmark="burnin.find_trip",
            metric="gpus_peak_w",
            value=step.gpus_peak_w if state == "measured" else None,
            unit="W",
            devices=[f"GPU{g}" for g in step.gpus_peak_each_w] or [],
            params={"state": state, **step.to_dict()},
            status="failed" if step.observed else ("ok" if state == "measured" else "skipped"),
            message=step.observed,
        ),
    )


def run_live_finder(
    backend: Any,
    devices: list[Any],
    on_gpu: bool,
    build: Any,
    stagger_ms: float | None,
    store: Store,
    run_id: int,
    *,
    hold_s: float = HOLD_S,
    rest_s: float = REST_S,
    on_step: Callable[[TripStep, str], None] | None = None,
) -> TripReport:
    """Ramp `devices` (burnin.load.LoadDevice, GPU i = build GPU i) in steps; a report of
    the steps run, each already stored."""
    from rigbench.plan.power import group_loads

    gpus = [d.gpu_index for d in devices]
    labels = {d.gpu_index: d.label for d in devices}
    loads = group_loads(build)
    source = backend.telemetry(gpus)
    channels = source.channels()
    recorder = Recorder(store, run_id, channels, time.time())
    ticks = _Ticks()
    sampler = Sampler(source, RATE_HZ, [ticks.add, recorder.add])
    simultaneous: list[TripStep] = []
    staggered: list[TripStep] = []
    stopped: str | None = None
    interrupted = False
    idle: dict[int, float] = {}
    coord: Coordinator | None = None
    try:
        ticks.t0 = sampler.start()
        coord = Coordinator(devices, LoadConfig(t0=ticks.t0), on_gpu=on_gpu, collectives=False)
        coord.start()
        coord.wait_ready(on_tick=sampler.check)
        not_ready = [f"{w.device.label}: {w.error}" for w in coord.workers if w.status != "ready"]
        if not_ready:
            stopped = f"the load did not start on {'; '.join(not_ready)}"
            return _report(build, simultaneous, staggered, idle, stopped)
        idle_from = time.monotonic()
        first = idle_from + max(IDLE_S, GO_LEAD_S)
        steps = plan_steps(len(devices), stagger_ms, first, hold_s, rest_s)
        coord.go_each(phases_for(steps, len(devices)))
        coord.supervise(first, on_tick=sampler.check)
        news = _News(coord, ticks)
        before = observed(*news.take(first), labels)
        if before:  # not the finder's doing: nothing had ramped yet
            stopped = f"{before} before the first ramp: not a PSU trip; fix that first"
            return _report(build, simultaneous, staggered, idle, stopped, gpus)
        idle_rows = ticks.window(idle_from, first)
        idle = {
            g: sum(r[g] for r in idle_rows if g in r) / max(1, sum(1 for r in idle_rows if g in r))
            for g in gpus
        }
        for planned in steps:
            blank = step_at(build, loads, planned.ramping, planned.stagger_ms, {}, {})
            _record(store, run_id, blank, "started")
            recorder.flush()
            # judged half-way through the rest: a GPU that drops as the load lets go (the
            # ramp down is a transient too) counts to this step
            settle = planned.end + rest_s / 2
            coord.supervise(settle, on_tick=sampler.check)
            rows = ticks.window(planned.start, planned.end)
            draw, settled = measure_step(rows, gpus)
            step = step_at(build, loads, planned.ramping, planned.stagger_ms, draw, settled)
            step.measured = True
            step.samples = len(rows)
            step.gpus_peak_each_w = {g: round(w, 1) for g, w in draw.items()}
            step.gpus_settled_w = {g: round(w, 1) for g, w in settled.items()}
            step.observed = observed(*news.take(settle), labels)
            (staggered if planned.stagger_ms else simultaneous).append(step)
            recorder.flush()
            _record(store, run_id, step, "measured")
            if on_step is not None:
                on_step(step, "measured")
            if step.observed:
                stopped = f"stopped at {planned.ramping} GPU(s) ramping: {step.observed}"
                break
    except KeyboardInterrupt:
        stopped, interrupted = "stopped with Ctrl-C", True
    finally:
        if coord is not None:
            try:
                coord.shutdown(grace_s=5.0)
            except KeyboardInterrupt:
                coord.kill_all()
        sampler.stop()
        recorder.flush()
        source.close()
    report = _report(build, simultaneous, staggered, idle, stopped, gpus)
    report.interrupted = interrupted
    return report


def _report(
    build: Any,
    simultaneous: list[TripStep],
    staggered: list[TripStep],
    idle: dict[int, float],
    stopped: str | None,
    gpus: list[int] | None = None,
) -> TripReport:
    """The measured ramps (idle, highest single reading, settled draw with all ramping)."""
    ramps = []
    last = simultaneous[-1] if simultaneous else None
    for g in gpus or []:
        peaks = [s.gpus_peak_each_w.get(g, 0.0) for s in simultaneous + staggered]
        ramps.append(
            GpuRamp(
                gpu=g,
                idle_w=round(idle.get(g, 0.0), 1),
                peak_w=max(peaks, default=0.0),
                sustained_w=last.gpus_settled_w.get(g, 0.0) if last else 0.0,
                spike_ms=None,
                source=f"measured (instantaneous power at {RATE_HZ:g} Hz)",
            )
        )
    return TripReport(
        build=str(build.path),
        simultaneous=simultaneous,
        staggered=staggered or None,
        ramps=ramps,
        stopped=stopped,
    )
