"""One burn-in, start to verdict: telemetry sampled and recorded throughout, the load
workers and the all_reduce crew run on the schedule, then the evidence is gathered from
what was recorded, judged (burnin.verdict), plotted and stored as results.

Ctrl-C stops the load; what was sampled and measured up to then is kept and judged, and
the run is marked incomplete.
"""

from __future__ import annotations

import os
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rigbench.burnin import build as build_check
from rigbench.burnin.coordinator import GO_LEAD_S, Coordinator, CrewRun, WorkerOutcome
from rigbench.burnin.load import JobCrew, LoadConfig, LoadDevice
from rigbench.burnin.schedule import Phase, build_schedule, phases_run, steps_count
from rigbench.burnin.verdict import (
    DeviceEvidence,
    LoadEvidence,
    RigVerdict,
    VramEvidence,
    finding,
    judge,
    reason_dict,
)
from rigbench.errors import BadInput, one_line
from rigbench.hw.backend import Backend
from rigbench.hw.model import Rig
from rigbench.hw.telemetry import GpuChannel, TelemetryEvent
from rigbench.hw.throttle import REASONS
from rigbench.records import Finding, Result, Run, Status
from rigbench.stats import summarize
from rigbench.store import Store
from rigbench.telemetry.aggregate import AggregateView, Aggregator
from rigbench.telemetry.recorder import FLUSH_EVERY_S, Recorder, load_columns, load_events
from rigbench.telemetry.sampler import Sampler, SamplerStats


class StopRun(KeyboardInterrupt):
    """Raised by an on_live hook to end the load early (a node of the job was lost):
    handled as a Ctrl-C (what ran is judged), its message saying why."""


MIN_RATE_HZ = 50.0  # the burn-in samples at least this fast: transients last milliseconds
CPU_STAND_INS = 2
RAMP_SHARE = 0.1  # the first tenth of a gemm phase is the ramp, left out of clock figures
_BIT = {r.name: r.bit for r in REASONS}


@dataclass(kw_only=True)
class BurninOutcome:
    run: Run
    verdict: RigVerdict
    plot: Path | None
    interrupted: bool
    notes: list[str] = field(default_factory=list)
    sampler: SamplerStats | None = None
    phases: list[Phase] = field(default_factory=list)
    gemm_rates: dict[str, list[float]] = field(default_factory=dict)  # sustained, per device

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run.id,
            "run": self.run.to_dict(),
            **self.verdict.to_dict(),
            "plot": str(self.plot) if self.plot else None,
            "interrupted": self.interrupted,
            "notes": self.notes,
        }


@dataclass(kw_only=True)
class LiveState:
    """What a progress view can show while the burn-in runs."""

    view: Callable[[], AggregateView] | None
    stats: Callable[[], SamplerStats] | None
    workers: list[WorkerOutcome]
    phase: str = "starting"
    ends_at: float | None = None  # monotonic


def plan_devices(
    rig: Rig,
    selected: list[int],
    *,
    backend_kind: str,
    lost_at: dict[int, float],
    bit_flip_at: dict[int, float] | None = None,
    stand_ins: int = CPU_STAND_INS,
) -> tuple[list[LoadDevice], bool]:
    """The devices to load and whether they are GPUs (else CPU stand-ins)."""
    if backend_kind == "nvml" and selected:
        import torch

        if not torch.cuda.is_available():
            raise BadInput(
                f"torch {torch.__version__} cannot use CUDA here: install the CUDA build of "
                "torch that matches the driver to burn in the GPUs"
            )
        from rigbench.hw.cuda_order import cuda_index

        devices = []
        for g in rig.gpus:
            if g.index not in selected:
                continue
            cuda = cuda_index(g.index)
            if cuda is None:
                raise BadInput(f"GPU {g.index} is hidden by CUDA_VISIBLE_DEVICES")
            devices.append(
                LoadDevice(
                    label=f"GPU{g.index}",
                    torch_device=f"cuda:{cuda}",
                    name=g.name,
                    gpu_index=g.index,
                )
            )
        return devices, True
    if selected:  # a simulated rig: one CPU stand-in per simulated GPU
        return [
            LoadDevice(
                label=f"GPU{g.index}",
                torch_device="cpu",
                name=g.name,
                gpu_index=g.index,
                lost_at=lost_at.get(g.index),
                bit_flip_at=(bit_flip_at or {}).get(g.index),
            )
            for g in rig.gpus
            if g.index in selected
        ], False
    name = rig.system.cpu_model or "CPU"
    return [
        LoadDevice(label=f"cpu{k}", torch_device="cpu", name=name) for k in range(stand_ins)
    ], False


def plot_path(store: Store, run_id: int) -> Path | None:
    """Beside the database, named after it and the run: two databases in one folder keep
    their own pictures."""
    if store.path is None:
        return None
    return store.path.parent / f"{store.path.name}.plots" / f"run{run_id}-burnin.png"


def run_burnin(
    backend: Backend,
    rig: Rig,
    selected: list[int],
    store: Store,
    run: Run,
    *,
    minutes: float,
    rate_hz: float,
    build: Any = None,
    vram: bool = False,
    on_live: Callable[[LiveState], None] | None = None,
    stand_ins: int = CPU_STAND_INS,
    job: JobCrew | None = None,
    on_ready: Callable[[], None] | None = None,
) -> BurninOutcome:
    """`job`: this one device's all_reduce crew spans every rank of a torchrun job;
    `on_ready`: called once the load workers are up, before the schedule starts (the job's
    ranks line their schedules up there)."""
    assert run.id is not None
    # Children are forked from a server that starts with this environment.
    os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    os.environ.setdefault("NCCL_NVLS_ENABLE", "0")
    notes: list[str] = []
    source = backend.telemetry(selected)
    try:
        channels = source.channels()
        lost_at = dict(getattr(source, "lost_at", {}) or {})
        flips = dict(getattr(source, "bit_flip_at", {}) or {})
        devices, on_gpu = plan_devices(
            rig,
            selected,
            backend_kind=backend.kind,
            lost_at=lost_at,
            bit_flip_at=flips,
            stand_ins=stand_ins,
        )
        if not on_gpu:
            where = "simulated rig" if rig.source.startswith("simulated") else "no NVIDIA GPU here"
            notes.append(f"{where}: the load runs on CPU stand-ins at small sizes")
        if not channels:
            notes.append("no GPU telemetry on this machine: the verdict rests on the load alone")
        aggregator = Aggregator(channels, 1.0 / rate_hz)
        recorder = Recorder(store, run.id, channels, time.time())
        sampler = Sampler(source, rate_hz, [aggregator.add, recorder.add])
        t0 = sampler.start()
        coord = Coordinator(devices, LoadConfig(t0=t0), on_gpu=on_gpu, collectives=True, job=job)
        live = LiveState(
            view=aggregator.view if channels else None,
            stats=sampler.stats if channels else None,
            workers=coord.workers,
        )
        last_flush = [time.monotonic()]

        def tick() -> None:
            now = time.monotonic()
            if now - last_flush[0] >= FLUSH_EVERY_S:
                recorder.flush()
                last_flush[0] = now
            sampler.check()
            if on_live is not None:
                on_live(live)

        interrupted = False
        stopped_why: str | None = None  # a StopRun's message (not the user's Ctrl-C)
        stopped_t: float | None = None  # seconds after t0 the user stopped the run
        phases: list[Phase] = []
        try:
            coord.start()
            live.phase = "starting workers"
            coord.wait_ready(on_tick=tick)
            if coord.job is not None:
                live.phase = "joining the job's all_reduce"
                coord.wait_crew(on_tick=tick)
            if on_ready is not None:
                on_ready()
            start = time.monotonic() + GO_LEAD_S
            phases = build_schedule(start, minutes * 60, collectives=coord.collectives)
            live.ends_at = phases[-1].end if phases else start
            coord.go(phases)

            def tick_with_phase() -> None:
                now = time.monotonic()
                current = next((p for p in phases if p.start <= now < p.end), None)
                live.phase = current.kind if current else "finishing"
                tick()

            coord.supervise(live.ends_at, on_tick=tick_with_phase)
            live.phase = "stopping"
            coord.shutdown()
        except KeyboardInterrupt as exc:
            interrupted = True
            stopped_why = str(exc) if isinstance(exc, StopRun) else None
            stopped_t = time.monotonic() - t0
            try:
                coord.shutdown(grace_s=3.0)
            except KeyboardInterrupt:
                coord.kill_all()
        except BaseException:
            coord.kill_all()  # no child outlives a failed run
            raise
        finally:
            ended = time.monotonic()
            stats = sampler.stop()
            recorder.flush()
        sampler.check()
    finally:
        source.close()

    planned_s = minutes * 60
    phases = phases_run(phases, ended)  # an interrupted run is judged on what it ran

    t0_phases = [(p.kind, p.start - t0, p.end - t0) for p in phases]
    view = aggregator.view()
    found: dict[str, VramEvidence] = {}
    if vram and not interrupted:
        lost = {e.gpu for e in view.events if e.kind in ("lost", "unavailable")}
        try:
            found = _vram_step(rig, [g for g in selected if g not in lost], on_gpu, live, on_live)
        except KeyboardInterrupt:
            interrupted = True
            notes.append("stopped with Ctrl-C during the VRAM test: not every GPU was tested")
    evidence = _evidence(
        store, run.id, devices, coord.workers, channels, view, phases, t0, stopped_t
    )
    for e in evidence:
        e.vram = found.get(e.label)
    totals = _totals(view, stats, phases, coord.crews, t0)
    totals["planned_s"] = planned_s
    crew_size = coord.job.world if coord.job is not None else len(devices)
    rig_reasons = _crew_reasons(coord.crews, crew_size, stopped_t)
    if build is not None:
        rig_reasons += build_check.reasons(build, _ticks(store, run.id, channels), selected)
    if interrupted:
        rig_reasons.append(
            finding(
                code="interrupted",
                severity="info",
                message=f"stopped {stopped_why or 'with Ctrl-C'} after "
                f"{totals['duration_s']:.1f} s of the {planned_s:.1f} s planned: judged on "
                "what ran until then",
            )
        )
    verdict = judge(evidence, totals=totals, rig_reasons=rig_reasons)
    plot = None
    path = plot_path(store, run.id)
    if path is not None and channels:
        # A plot that cannot be drawn costs the picture, never the verdict.
        try:
            from rigbench.burnin.plots import save_plot

            series = {ch.gpu: _series(store, run.id, ch.gpu) for ch in channels}
            plot = save_plot(
                path,
                series,
                {ch.gpu: ch.name for ch in channels},
                t0_phases,
                load_events(store, run.id),
                f"rigbench burnin run #{run.id}: {verdict.verdict.upper()}",
            )
        except ImportError:
            notes.append("plot not saved: matplotlib is not installed (pip install matplotlib)")
        except (OSError, ValueError, RuntimeError) as exc:
            notes.append(f"plot not saved: {one_line(exc)}")
    outcome = BurninOutcome(
        run=run,
        verdict=verdict,
        plot=plot,
        interrupted=interrupted,
        notes=notes,
        sampler=stats,
        phases=phases,
        gemm_rates={e.label: e.load.gemm_tflops for e in evidence},
    )
    for r in results_of(outcome):
        store.add_result(run.id, r)
    store.finish_run(run, "incomplete" if interrupted else "complete")
    return outcome


def _vram_step(
    rig: Rig,
    gpus: list[int],
    on_gpu: bool,
    live: LiveState,
    on_live: Callable[[LiveState], None] | None,
) -> dict[str, VramEvidence]:
    from rigbench.burnin.vramcheck import run_vram

    def step(label: str) -> None:
        live.phase = label
        if on_live is not None:
            on_live(live)

    return run_vram(rig, gpus, on_gpu=on_gpu, on_step=step)


# --- gathering the evidence -------------------------------------------------------------


def _series(store: Store, run_id: int, gpu: int) -> dict[str, list[Any]]:
    cols = ["t", "power_instant_w", "power_avg_w", "sm_clock_mhz", "temp_gpu_c", "temp_mem_c"]
    rows = load_columns(store, run_id, gpu, cols)
    out: dict[str, list[Any]] = {c: [r[k] for r in rows] for k, c in enumerate(cols)}
    out["power_w"] = [
        i if i is not None else a
        for i, a in zip(out["power_instant_w"], out["power_avg_w"], strict=True)
    ]
    return out


def _ticks(store: Store, run_id: int, channels: list[GpuChannel]) -> dict[float, dict[int, float]]:
    """Per tick (its t), each GPU's power: all GPUs of a tick are read together."""
    ticks: dict[float, dict[int, float]] = defaultdict(dict)
    for ch in channels:
        for t, inst, avg in load_columns(
            store, run_id, ch.gpu, ["t", "power_instant_w", "power_avg_w"]
        ):
            p = inst if inst is not None else avg
            if p is not None:
                ticks[t][ch.gpu] = p
    return ticks


def _sustained(
    store: Store, run_id: int, gpu: int, phases: list[Phase], t0: float
) -> tuple[list[float], float | None]:
    """SM clocks under sustained matmul load (gemm phases after their ramp, not idle) and
    the share of those samples with the power cap set."""
    windows = [
        (p.start - t0 + RAMP_SHARE * p.length, p.end - t0) for p in phases if p.kind == "gemm"
    ]
    if not windows:
        return [], None
    clocks: list[float] = []
    capped = 0
    rows = load_columns(store, run_id, gpu, ["t", "sm_clock_mhz", "throttle_mask"])
    for t, clock, mask in rows:
        if clock is None or not any(a <= t < b for a, b in windows):
            continue
        if mask is not None and mask & _BIT["gpu_idle"]:
            continue
        clocks.append(float(clock))
        if mask is not None and mask & _BIT["sw_power_cap"]:
            capped += 1
    return clocks, (capped / len(clocks) if clocks else None)


def _evidence(
    store: Store,
    run_id: int,
    devices: list[LoadDevice],
    workers: list[WorkerOutcome],
    channels: list[GpuChannel],
    view: AggregateView,
    phases: list[Phase],
    t0: float,
    stopped_t: float | None,
) -> list[DeviceEvidence]:
    kinds = {p.index: p.kind for p in phases}
    by_gpu = {ch.gpu: ch for ch in channels}
    out = []
    for dev, w in zip(devices, workers, strict=True):
        gemm = [r for idx, rates in w.gemm.items() if kinds.get(idx) == "gemm" for r in rates]
        memory = [r for rates in w.memory.values() for r in rates]
        status: str = w.status
        error = w.error
        if _after_stop(w.error_t, stopped_t):  # stopped by the user, not failed
            status, error = "stopped", None
        load = LoadEvidence(
            status=status,
            error=error,
            error_t=w.error_t if error else None,
            gemm_tflops=gemm,
            memory_gbps=memory,
            wrong=list(w.wrong),
            checksum=w.info.get("checksum"),
            checks=w.checks,
            dtype=w.info.get("dtype"),
            n=w.info.get("n"),
        )
        gpu = dev.gpu_index
        ch = by_gpu.get(gpu) if gpu is not None else None
        clocks: list[float] = []
        capped: float | None = None
        if ch is not None and gpu is not None:
            clocks, capped = _sustained(store, run_id, gpu, phases, t0)
        events: list[TelemetryEvent] = [e for e in view.events if e.gpu == gpu]
        out.append(
            DeviceEvidence(
                label=dev.label,
                name=dev.name,
                gpu=gpu,
                stand_in=dev.torch_device == "cpu",
                load=load,
                channel=ch,
                agg=view.gpus.get(gpu) if gpu is not None else None,
                events=events,
                sustained_clocks=clocks,
                capped_share=capped,
            )
        )
    return out


def _totals(
    view: AggregateView,
    stats: SamplerStats,
    phases: list[Phase],
    crews: list[CrewRun],
    t0: float,
) -> dict[str, Any]:
    busbw = [b for c in crews for rates in c.busbw.values() for b in rates]
    return {
        "duration_s": (phases[-1].end - phases[0].start) if phases else 0.0,
        "power_peak_w": view.total_power.value,
        "power_peak_t": view.total_power.t,
        "power_mean_w": view.total_mean.value,
        "power_rise_w": view.total_rise.rise,
        "power_rise_window_s": view.total_rise.window_s,
        "power_rise_t": view.total_rise.t_to,
        "idle_to_full_steps": steps_count(phases),
        "allreduce_busbw_gbps_median": statistics.median(busbw) if busbw else None,
        "sampler": stats.to_dict(),
        "phases": [
            {"kind": p.kind, "start_s": round(p.start - t0, 3), "end_s": round(p.end - t0, 3)}
            for p in phases
            if p.kind != "idle"
        ][:200],
    }


def _after_stop(t: float | None, stopped_t: float | None) -> bool:
    """Whether something that went wrong at `t` did so because the user stopped the run."""
    return t is not None and stopped_t is not None and t >= stopped_t


def _crew_reasons(
    crews: list[CrewRun], n_devices: int, stopped_t: float | None = None
) -> list[Finding]:
    if n_devices < 2:
        return [
            finding(code="all_reduce", severity="info", message="all_reduce needs 2 or more GPUs")
        ]
    out = []
    for c in crews:
        who = ", ".join(c.members)
        for p in c.problems[:3]:
            out.append(
                finding(code="all_reduce", severity="fail", message=f"all_reduce over {who}: {p}")
            )
        if c.failure and not _after_stop(c.failure_t, stopped_t):
            t = f" at t={c.failure_t:.1f} s" if c.failure_t is not None else ""
            out.append(
                finding(
                    code="all_reduce",
                    severity="fail",
                    message=f"all_reduce over {who} stopped{t}: {c.failure}",
                )
            )
    if len(crews) > 1:
        out.append(
            finding(
                code="all_reduce",
                severity="info",
                message=f"all_reduce restarted over {', '.join(crews[-1].members)}",
            )
        )
    return out


def results_of(outcome: BurninOutcome) -> list[Result]:
    """The typed records stored for a burn-in: per device its verdict and figures, and the
    rig's verdict with the totals and the plot's path."""
    out: list[Result] = []
    v = outcome.verdict
    for d in v.devices:
        fails = [r.title for r in d.reasons if r.severity == "error"]
        out.append(
            Result(
                benchmark="burnin",
                metric="verdict",
                value=_VERDICT_VALUE[d.verdict],
                unit="pass",
                devices=[d.label],
                params={
                    "name": d.name,
                    "verdict": d.verdict,
                    "reasons": [reason_dict(r) for r in d.reasons],
                    **d.figures,
                },
                status=_VERDICT_STATUS[d.verdict],
                message="; ".join(fails) or None,
            )
        )
    for d, w in zip(v.devices, [d.figures for d in v.devices], strict=True):
        rates = outcome.gemm_rates.get(d.label, [])
        if rates:
            out.append(
                Result(
                    benchmark="burnin.matmul",
                    metric="matmul",
                    value=statistics.median(rates),
                    unit="TFLOP/s",
                    devices=[d.label],
                    spread=summarize(rates),
                    params={"dtype": w.get("gemm_dtype"), "n": w.get("gemm_n")},
                )
            )
        if w.get("power_peak_w") is not None:
            out.append(
                Result(
                    benchmark="burnin.power",
                    metric="power_peak",
                    value=w["power_peak_w"],
                    unit="W",
                    devices=[d.label],
                    params={
                        "kind": w.get("power_peak_kind"),
                        "mean_w": w.get("power_mean_w"),
                        "energy_avg_w": w.get("energy_avg_w"),
                        "rise_w": w.get("power_rise_w"),
                    },
                )
            )
    fails = [r.title for r in v.reasons if r.severity == "error"]
    out.append(
        Result(
            benchmark="burnin",
            metric="rig_verdict",
            value=_VERDICT_VALUE[v.verdict],
            unit="pass",
            devices=[d.label for d in v.devices],
            params={
                "verdict": v.verdict,
                "reasons": [reason_dict(r) for r in v.reasons],
                "totals": v.totals,
                "plot": str(outcome.plot) if outcome.plot else None,
                "interrupted": outcome.interrupted,
                "notes": outcome.notes,
            },
            status=_VERDICT_STATUS[v.verdict],
            message="; ".join(fails) or None,
        )
    )
    return out


# A verdict as a result: 1 pass, 0 fail; a void verdict measured nothing, so has no value.
_VERDICT_VALUE: dict[str, float | None] = {"pass": 1.0, "fail": 0.0, "void": None}
_VERDICT_STATUS: dict[str, Status] = {"pass": "ok", "fail": "failed", "void": "skipped"}
