"""The conditions a measurement ran under: telemetry sampled by the parent process (the
benchmark's worker never samples itself) and summarised over the measurement's window.

    monitor = ConditionsMonitor(backend.telemetry(gpus), rig)
    monitor.start()
    ...  # workers measure; each result says when (WINDOW_KEYS in its params)
    result.conditions = monitor.conditions(t_from, t_to, gpus=[0])
    monitor.stop()

Times are `time.monotonic()` seconds: on Linux CLOCK_MONOTONIC is one clock for every
process, so a worker's timestamps and the sampler's compare directly.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable

from rigbench.hw.model import Rig
from rigbench.hw.telemetry import GpuChannel, TelemetryEvent, TelemetrySample, TelemetrySource
from rigbench.hw.throttle import REASONS
from rigbench.records import Conditions, GpuConditions
from rigbench.telemetry.sampler import Sampler

# 50 Hz: a burst GEMM measurement lasts tens of milliseconds; NVML's own power average is
# over one second, so faster sampling would not sharpen the power figure.
RATE_HZ = 50.0
KEEP_S = 3600.0  # samples older than this are dropped (a --full run takes minutes)
NEAREST_S = 1.0  # a window shorter than one period takes the nearest sample within this
# Keys a worker puts in a result's params: monotonic start and end of the timed part.
WINDOW_KEYS = ("window_t0", "window_t1")
CPU_UNAVAILABLE = "the CPU backend has no clock, power or throttle readings"
_IDLE_BIT = next(r.bit for r in REASONS if r.name == "gpu_idle")


class ConditionsMonitor:
    """Samples every GPU of `source` from a thread of this (the parent) process and keeps
    the samples, so that any window can be summarised afterwards."""

    def __init__(self, source: TelemetrySource, rig: Rig, rate_hz: float = RATE_HZ) -> None:
        self.source = source
        # The link trains up within milliseconds of a transfer, and a transfer can be shorter
        # than the slow cadence: a bench needs every tick's reading of it, not the last one.
        if hasattr(source, "fast_extra"):
            source.fast_extra = ("pcie_gen", "pcie_width")
        self.channels: dict[int, GpuChannel] = {c.gpu: c for c in source.channels()}
        self.rig = rig
        self._samples: dict[int, deque[tuple[float, TelemetrySample]]] = {
            g: deque(maxlen=int(KEEP_S * rate_hz)) for g in self.channels
        }
        # Compute processes on each GPU before any worker started: other programs'.
        self._before: dict[int, set[int]] = {}
        self._lock = threading.Lock()
        self._sampler = Sampler(source, rate_hz, [self._add]) if self.channels else None

    @property
    def available(self) -> bool:
        return self._sampler is not None

    def start(self) -> None:
        if self._sampler is not None:
            self._sampler.start()

    def stop(self) -> None:
        if self._sampler is not None:
            self._sampler.stop()
        self.source.close()

    def _add(self, t: float, samples: list[TelemetrySample], events: list[TelemetryEvent]) -> None:
        assert self._sampler is not None
        t0 = self._sampler.t0
        with self._lock:
            for s in samples:
                if s.gpu not in self._samples:
                    continue
                self._samples[s.gpu].append((t0 + s.t, s))
                if s.gpu not in self._before and s.compute_pids is not None:
                    self._before[s.gpu] = set(s.compute_pids)

    def _window(self, gpu: int, t_from: float, t_to: float) -> list[TelemetrySample]:
        with self._lock:
            rows = list(self._samples.get(gpu, ()))
        inside = [s for t, s in rows if t_from <= t <= t_to]
        if inside or not rows:
            return inside
        mid = (t_from + t_to) / 2
        t, s = min(rows, key=lambda ts: abs(ts[0] - mid))
        return [s] if abs(t - mid) <= NEAREST_S else []

    def conditions(self, t_from: float, t_to: float, gpus: Iterable[int]) -> Conditions:
        """The summary of each of `gpus` over [t_from, t_to] (monotonic seconds)."""
        seconds = max(0.0, t_to - t_from)
        if not self.available:
            why = getattr(self.source, "why", None)
            return Conditions(
                seconds=seconds,
                unavailable=why if why and "unavailable" in why else CPU_UNAVAILABLE,
            )
        out = []
        for g in gpus:
            if g in self.channels:
                out.append(
                    summarize(
                        g,
                        self._window(g, t_from, t_to),
                        seconds,
                        self.channels[g],
                        self._rig_gpu(g),
                    )
                )
                out[-1].other_processes = self._others(g, t_from, t_to)
        return Conditions(seconds=seconds, gpus=out, source=self.source.kind)

    def _rig_gpu(self, gpu: int) -> tuple[int | None, int | None]:
        for info in self.rig.gpus:
            if info.index == gpu:
                return info.pcie.gen_max, info.pcie.width_max
        return None, None

    def _others(self, gpu: int, t_from: float, t_to: float) -> int | None:
        """Processes on the GPU during the window that were there before rigbench started
        any worker. (NVML lists host pids, which a container cannot map to its own, so
        "there before us" is the test, not "not one of our pids".)"""
        before = self._before.get(gpu)
        if before is None:
            return None
        seen: set[int] = set()
        for s in self._window(gpu, t_from, t_to):
            seen |= set(s.compute_pids or ())
        return len(seen & before)


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def summarize(
    gpu: int,
    samples: list[TelemetrySample],
    seconds: float,
    channel: GpuChannel,
    pcie_max: tuple[int | None, int | None] = (None, None),
) -> GpuConditions:
    """One GPU's conditions from its samples over a window of `seconds`. Clocks and
    throttle shares count only the samples where the GPU was busy (not flagged idle),
    when there are any: a window that opens while a worker still loads is not "idle"."""
    busy = [s for s in samples if not (s.throttle_mask or 0) & _IDLE_BIT] or samples
    n = len(busy)
    sm = [float(s.sm_clock_mhz) for s in busy if s.sm_clock_mhz is not None]
    mem = [float(s.mem_clock_mhz) for s in busy if s.mem_clock_mhz is not None]
    power = [p for s in samples if (p := s.power_w) is not None]
    temps = [s.temp_gpu_c for s in samples if s.temp_gpu_c is not None]
    mem_temps = [s.temp_mem_c for s in samples if s.temp_mem_c is not None]
    throttle: dict[str, float] = {}
    for r in REASONS:
        hits = sum(1 for s in busy if (s.throttle_mask or 0) & r.bit)
        if hits and r.name != "gpu_idle":
            throttle[r.name] = hits / n
    # The highest link seen: an idle link drops to Gen1 to save power and trains up under
    # load, so the lowest reading would cry "degraded" on every healthy GPU.
    gens = [s.pcie_gen for s in samples if s.pcie_gen is not None]
    widths = [s.pcie_width for s in samples if s.pcie_width is not None]
    mean_power = _mean(power)
    return GpuConditions(
        gpu=gpu,
        samples=len(samples),
        seconds=seconds,
        sm_clock_mean_mhz=_mean(sm),
        sm_clock_min_mhz=int(min(sm)) if sm else None,
        sm_clock_max_mhz=channel.sm_clock_max_mhz,
        mem_clock_mean_mhz=_mean(mem),
        power_mean_w=mean_power,
        power_peak_w=max(power) if power else None,
        power_limit_w=channel.power_limit_w,
        power_default_limit_w=channel.power_default_limit_w,
        energy_j=mean_power * seconds if mean_power is not None and seconds > 0 else None,
        temp_max_c=max(temps) if temps else None,
        temp_mem_max_c=max(mem_temps) if mem_temps else None,
        throttle=throttle,
        pcie_gen=max(gens) if gens else None,
        pcie_width=max(widths) if widths else None,
        pcie_gen_max=pcie_max[0],
        pcie_width_max=pcie_max[1],
    )


def now() -> float:
    """The clock windows are measured on."""
    return time.monotonic()
