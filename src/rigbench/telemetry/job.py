"""`rigbench monitor -- CMD`: run an owner's own job under the sampler and measure what it did
to the rig: per GPU power (mean, p99, peak), energy, throttle shares, SM clock, maximum core
and VRAM temperature, utilisation; the job's throughput from its output (telemetry.metric).

The command runs in rigbench's process group with its own stdin, so Ctrl-C from the terminal
reaches it first; rigbench keeps watching until it exits, then summarises. SIGTERM and SIGHUP
sent to rigbench are passed on to the command (as is a second SIGINT). Its stdout and stderr
pass through a pipe (to read the metric) to rigbench's stdout and stderr; under --json its
stdout goes to stderr, so that rigbench's stdout is one JSON document.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from array import array
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import IO, Any

from rigbench.errors import RigbenchError
from rigbench.hw.telemetry import GpuChannel, TelemetryEvent, TelemetrySample, TelemetrySource
from rigbench.records import Result, Run
from rigbench.store import Store
from rigbench.telemetry.aggregate import AggregateView, Aggregator, GpuAggregate
from rigbench.telemetry.metric import MetricParser, MetricResult
from rigbench.telemetry.recorder import FLUSH_EVERY_S, Recorder
from rigbench.telemetry.sampler import Sampler, SamplerStats

REFRESH_S = 0.25
PIPE_JOIN_S = 2.0  # a grandchild may keep the pipes open after the command exits
J_PER_KWH = 3.6e6
EXIT_NOT_FOUND = 127  # as a shell exits for a command it cannot find
EXIT_NOT_EXECUTABLE = 126


class JobStartError(RigbenchError):
    """The command could not be started; `exit_code` is what a shell would return."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class JobSeries:
    """A sampler sink keeping what the aggregates do not: every power and SM clock reading
    (for p99 and median; 8 bytes a sample, 14 MB for 4 GPUs over 8 h at 20 Hz), and per tick
    the power of each GPU when a build is compared (a few hundred bytes a tick)."""

    def __init__(self, keep_ticks: bool = False) -> None:
        self.power: dict[int, array[float]] = {}
        self.sm_clock: dict[int, array[int]] = {}
        self.ticks: dict[float, dict[int, float]] | None = {} if keep_ticks else None
        self._lock = threading.Lock()

    def add(self, t: float, samples: list[TelemetrySample], events: list[TelemetryEvent]) -> None:
        with self._lock:
            tick: dict[int, float] = {}
            for s in samples:
                p = s.power_w
                if p is not None:
                    self.power.setdefault(s.gpu, array("f")).append(p)
                    tick[s.gpu] = p
                if s.sm_clock_mhz is not None:
                    self.sm_clock.setdefault(s.gpu, array("I")).append(int(s.sm_clock_mhz))
            if self.ticks is not None and tick:
                self.ticks[t] = tick


def _quantile(xs: array[float] | None, q: float) -> float | None:
    """The q-quantile, nearest rank."""
    if not xs:
        return None
    ordered = sorted(xs)
    # stored as float32: rounded back to the 10 mW NVML resolves
    return round(float(ordered[max(0, math.ceil(q * len(ordered)) - 1)]), 2)


@dataclass(kw_only=True, slots=True)
class GpuJobSummary:
    gpu: int
    name: str
    samples: int
    watched_s: float
    power_mean_w: float | None
    power_p99_w: float | None
    power_peak_w: float | None  # the highest reading: instantaneous where the GPU gives one
    power_peak_kind: str | None
    energy_j: float | None
    energy_source: str | None  # "NVML energy counter" or "integral of the power readings"
    throttle_share: dict[str, float]  # reason -> share of the watched time
    sm_clock_median_mhz: float | None
    sm_clock_min_mhz: int | None
    temp_gpu_max_c: float | None
    temp_mem_max_c: float | None
    temp_mem_source: str | None
    util_mean_pct: float | None
    lost_at: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(kw_only=True, slots=True)
class JobReport:
    """What the job did: the command, how it ended, every GPU's figures and the totals."""

    command: list[str]
    exit_code: int
    signal: int | None  # the signal that ended the command, if one did
    duration_s: float
    gpus: list[GpuJobSummary]
    power_mean_w: float | None  # the GPUs together
    power_peak_w: float | None  # the highest sum of one tick
    energy_j: float | None
    energy_kwh: float | None
    cost: float | None  # energy_kwh x --price-kwh
    price_kwh: float | None
    metric: MetricResult | None
    sampler: SamplerStats
    events: list[TelemetryEvent] = field(default_factory=list)
    interrupted: bool = False  # rigbench received SIGINT/SIGTERM while the command ran
    run: Run | None = None
    samples_written: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "exit_code": self.exit_code,
            "signal": self.signal,
            "duration_s": self.duration_s,
            "gpus": [g.to_dict() for g in self.gpus],
            "total": {
                "power_mean_w": self.power_mean_w,
                "power_peak_w": self.power_peak_w,
                "energy_j": self.energy_j,
                "energy_kwh": self.energy_kwh,
                "cost": self.cost,
                "price_kwh": self.price_kwh,
            },
            "metric": self.metric.to_dict() if self.metric is not None else None,
            "sampler": self.sampler.to_dict(),
            "events": [e.to_dict() for e in self.events],
            "interrupted": self.interrupted,
            "run": self.run.to_dict() if self.run is not None else None,
            "samples_written": self.samples_written,
        }


def _gpu_summary(
    ch: GpuChannel, agg: GpuAggregate, series: JobSeries, period_s: float
) -> GpuJobSummary:
    watched = 0.0
    if agg.first_t is not None and agg.last_t is not None:
        watched = agg.last_t - agg.first_t + period_s
    energy_j, energy_source = None, None
    if (
        agg.energy_first_mj is not None
        and agg.energy_last_mj is not None
        and agg.energy_last_t is not None
        and agg.energy_first_t is not None
        and agg.energy_last_t > agg.energy_first_t
    ):
        # the counter's gain between the first and last reading, scaled to the watched time
        span = agg.energy_last_t - agg.energy_first_t
        energy_j = (agg.energy_last_mj - agg.energy_first_mj) / 1000 * watched / span
        energy_source = "NVML energy counter"
    elif agg.power_mean.value is not None:
        energy_j = agg.power_mean.value * agg.power_mean.weight
        energy_source = "integral of the power readings"
    clocks = series.sm_clock.get(ch.gpu)
    return GpuJobSummary(
        gpu=ch.gpu,
        name=ch.name,
        samples=agg.samples,
        watched_s=watched,
        power_mean_w=agg.power_mean.value,
        power_p99_w=_quantile(series.power.get(ch.gpu), 0.99),
        power_peak_w=agg.power.value,
        power_peak_kind=ch.power_instant_kind or ch.power_avg_kind,
        energy_j=energy_j,
        energy_source=energy_source,
        throttle_share={k: v / watched for k, v in agg.throttle_s.items()} if watched else {},
        sm_clock_median_mhz=statistics.median(clocks) if clocks else None,
        sm_clock_min_mhz=agg.sm_clock_min,
        temp_gpu_max_c=agg.temp_gpu.value,
        temp_mem_max_c=agg.temp_mem.value,
        temp_mem_source=ch.temp_mem_source,
        util_mean_pct=agg.util_mean.value,
        lost_at=agg.lost_at,
    )


class _Tee(threading.Thread):
    """Copies one of the command's pipes to `dest` as it comes, feeding whole lines (split at
    \\n and \\r, so progress bars count) to the metric parser."""

    def __init__(
        self, pipe: IO[bytes], dest: IO[bytes], metric: MetricParser, lock: threading.Lock
    ):
        super().__init__(daemon=True, name="rigbench-job-output")
        self.pipe, self.dest, self.metric, self.lock = pipe, dest, metric, lock
        self._partial = b""

    def run(self) -> None:
        fd = self.pipe.fileno()
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            with contextlib.suppress(OSError, ValueError):
                self.dest.write(chunk)
                self.dest.flush()
            self._lines(chunk)
        self._lines(b"\n")

    def _lines(self, chunk: bytes) -> None:
        data = (self._partial + chunk).replace(b"\r", b"\n")
        *lines, self._partial = data.split(b"\n")
        with self.lock:
            for line in lines:
                if line:
                    self.metric.feed(line.decode("utf-8", errors="replace"))


def _store_job(store: Store, run_id: int, report: JobReport) -> None:
    try:
        with store.db:
            store.db.execute(
                "INSERT INTO jobs (run_id, command, exit_code, signal, duration_s, summary)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    json.dumps(report.command),
                    report.exit_code,
                    report.signal,
                    report.duration_s,
                    json.dumps(report.to_dict(), default=str),
                ),
            )
    except Exception as exc:  # sqlite3.Error; the store reports it as one line
        from rigbench.errors import StoreError

        raise StoreError(f"cannot write the job to {store.path}: {exc}") from exc


def watch_job(
    command: list[str],
    *,
    source: TelemetrySource,
    rate_hz: float,
    metric: MetricParser,
    store: Store | None = None,
    run: Run | None = None,
    price_kwh: float | None = None,
    keep_ticks: bool = False,
    stdout: IO[bytes] | None = None,
    stderr: IO[bytes] | None = None,
    on_refresh: Callable[[AggregateView, SamplerStats, float], None] | None = None,
) -> tuple[JobReport, AggregateView, JobSeries]:
    """Start `command`, sample every GPU of `source` while it runs, stop when it exits.
    With a store and a run, the run, every sample and the job are stored (flushed every
    FLUSH_EVERY_S, so a crash of rigbench loses at most that much). The caller closes
    `source`."""
    channels = source.channels()
    aggregator = Aggregator(channels, 1.0 / rate_hz)
    series = JobSeries(keep_ticks)
    recorder = None
    if store is not None and run is not None:
        run_id = store.start_run(run)
        recorder = Recorder(store, run_id, channels, time.time())
    sinks = [aggregator.add, series.add] + ([recorder.add] if recorder is not None else [])
    sampler = Sampler(source, rate_hz, sinks)
    out_dest = stdout or sys.stdout.buffer
    err_dest = stderr or sys.stderr.buffer
    lock = threading.Lock()
    t0 = sampler.start()
    interrupted = {"sigint": 0, "any": False}
    started: list[subprocess.Popen[bytes]] = []

    def _pass_on(signum: int, frame: object) -> None:
        interrupted["any"] = True
        if signum == signal.SIGINT:
            interrupted["sigint"] += 1
            if interrupted["sigint"] == 1:
                return  # the terminal sent it to the command too (same process group)
        for p in started:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signum)

    # The handlers go in before the command starts: a Ctrl-C that comes as soon as the
    # command prints must not find rigbench with Python's default handler.
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            previous[sig] = signal.signal(sig, _pass_on)
    try:
        # the owner's own command, not a rigbench worker: it is not supervised, only watched
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        started.append(proc)
    except OSError as exc:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sampler.stop()
        if store is not None and run is not None and run.id is not None:
            store.finish_run(run, "failed")
        if isinstance(exc, FileNotFoundError):
            raise JobStartError(
                f"cannot run {command[0]!r}: command not found", EXIT_NOT_FOUND
            ) from exc
        raise JobStartError(
            f"cannot run {command[0]!r}: {exc.strerror or exc}", EXIT_NOT_EXECUTABLE
        ) from exc
    assert proc.stdout is not None and proc.stderr is not None
    tees = [_Tee(proc.stdout, out_dest, metric, lock), _Tee(proc.stderr, err_dest, metric, lock)]
    for tee in tees:
        tee.start()
    last_flush = time.monotonic()
    try:
        while True:
            try:
                proc.wait(timeout=REFRESH_S)
                break
            except subprocess.TimeoutExpired:
                pass
            now = time.monotonic()
            if recorder is not None and now - last_flush >= FLUSH_EVERY_S:
                recorder.flush()
                last_flush = now
            if on_refresh is not None:
                on_refresh(aggregator.view(), sampler.stats(), now - t0)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    duration = time.monotonic() - t0
    for tee in tees:
        tee.join(PIPE_JOIN_S)
    for tee in tees:
        if not tee.is_alive():  # one still reading (a grandchild holds the pipe) keeps it
            with contextlib.suppress(OSError):
                tee.pipe.close()
    stats = sampler.stop()
    sampler.check()
    rc = proc.returncode
    sig_no = -rc if rc < 0 else None
    exit_code = 128 + sig_no if sig_no is not None else rc

    view = aggregator.view()
    period = 1.0 / rate_hz
    gpus = [_gpu_summary(ch, view.gpus[ch.gpu], series, period) for ch in channels]
    energies = [g.energy_j for g in gpus if g.energy_j is not None]
    energy_j = sum(energies) if energies else None
    means = [g.power_mean_w for g in gpus if g.power_mean_w is not None]
    mean_w = sum(means) if means else None
    energy_kwh = energy_j / J_PER_KWH if energy_j is not None else None
    with lock:
        found = metric.result(mean_power_w=mean_w, energy_j=energy_j)
    report = JobReport(
        command=list(command),
        exit_code=exit_code,
        signal=sig_no,
        duration_s=duration,
        gpus=gpus,
        power_mean_w=mean_w,
        power_peak_w=view.total_power.value,
        energy_j=energy_j,
        energy_kwh=energy_kwh,
        cost=energy_kwh * price_kwh if energy_kwh is not None and price_kwh is not None else None,
        price_kwh=price_kwh,
        metric=found,
        sampler=stats,
        events=list(view.events),
        interrupted=bool(interrupted["any"]),
        run=run,
    )
    if recorder is not None and store is not None and run is not None and run.id is not None:
        recorder.flush()
        report.samples_written = recorder.written
        _store_job(store, run.id, report)
    return report, view, series


def job_results(report: JobReport) -> list[Result]:
    """The job's figures as results (benchmark "job"), stored with its run so that
    `rigbench compare` sets two jobs side by side: per GPU mean and peak power, energy,
    median SM clock, and for the whole job its duration, energy and the metric parsed from
    its output with that metric per joule. None of them has a spread: one job is one sample."""
    out: list[Result] = []

    def add(metric: str, value: float | None, unit: str, devices: list[str], **params: Any) -> None:
        if value is not None:
            out.append(
                Result(
                    benchmark="job",
                    metric=metric,
                    value=float(value),
                    unit=unit,
                    devices=devices,
                    params=params,
                )  # fmt: skip
            )

    for g in report.gpus:
        dev = [f"GPU{g.gpu}"]
        add("power_mean", g.power_mean_w, "W", dev)
        add("power_peak", g.power_peak_w, "W", dev, kind=g.power_peak_kind)
        add("energy", g.energy_j, "J", dev)
        add("sm_clock_median", g.sm_clock_median_mhz, "MHz", dev)
    add("duration", report.duration_s, "s", [])
    add("energy", report.energy_j, "J", [])
    add("power_mean", report.power_mean_w, "W", [])
    m = report.metric
    if m is not None and m.value is not None:
        unit = m.unit or ""
        add("metric", m.value, unit, [], name=m.name)
        per = unit.removesuffix("/s") if m.is_rate else unit
        add("metric_per_joule", m.per_joule, f"{per}/J".strip("/"), [], name=m.name)
    return out
