"""Peaks and aggregates since sampling started, per GPU and for the rig, updated tick by tick.

Averages are time-weighted: each sample counts for the time since the GPU's previous one
(at most MAX_GAP_PERIODS sampling periods, so a gap is not filled with a stale value).
Throttle time is the same weight summed per reason set in the sample's mask. A "rise" is
the largest increase of power within RISE_WINDOW_S: the load transient a PSU must carry
(the 4×V100 SXM2 server write-up's V100s went from 150 W to 350 W each, all four at once, in a
fraction of a
second).
"""

from __future__ import annotations

import copy
import threading
from collections import deque
from dataclasses import dataclass, field

from rigbench.hw.telemetry import GpuChannel, TelemetryEvent, TelemetrySample
from rigbench.hw.throttle import REASONS

RISE_WINDOW_S = 0.25
MAX_GAP_PERIODS = 3.0


@dataclass(kw_only=True, slots=True)
class Peak:
    value: float | None = None
    t: float | None = None

    def update(self, value: float | None, t: float) -> None:
        if value is not None and (self.value is None or value > self.value):
            self.value, self.t = value, t


@dataclass(kw_only=True, slots=True)
class Rise:
    """The largest rise of a value within `window_s`: from `low` at `t_from` to `high` at
    `t_to`."""

    window_s: float = RISE_WINDOW_S
    rise: float = 0.0
    low: float | None = None
    high: float | None = None
    t_from: float | None = None
    t_to: float | None = None
    _window: deque[tuple[float, float]] = field(default_factory=deque, repr=False)

    def add(self, t: float, value: float) -> None:
        w = self._window
        while w and t - w[0][0] > self.window_s:
            w.popleft()
        # w holds increasing values: its head is the window's minimum
        if w and value - w[0][1] > self.rise:
            self.rise, self.low, self.high = value - w[0][1], w[0][1], value
            self.t_from, self.t_to = w[0][0], t
        while w and w[-1][1] >= value:
            w.pop()
        w.append((t, value))


@dataclass(kw_only=True, slots=True)
class Mean:
    total: float = 0.0
    weight: float = 0.0

    def add(self, value: float | None, dt: float) -> None:
        if value is not None and dt > 0:
            self.total += value * dt
            self.weight += dt

    @property
    def value(self) -> float | None:
        return self.total / self.weight if self.weight > 0 else None


@dataclass(kw_only=True, slots=True)
class GpuAggregate:
    gpu: int
    samples: int = 0
    first_t: float | None = None
    last_t: float | None = None
    power: Peak = field(default_factory=Peak)  # the best reading: instantaneous if there is one
    power_avg: Peak = field(default_factory=Peak)  # NVML's averaged reading
    power_mean: Mean = field(default_factory=Mean)
    energy_first_mj: int | None = None
    energy_first_t: float | None = None
    energy_last_mj: int | None = None
    energy_last_t: float | None = None
    temp_gpu: Peak = field(default_factory=Peak)
    temp_mem: Peak = field(default_factory=Peak)
    # seconds spent at each whole °C of memory temperature (floor): time above any threshold
    temp_mem_s_at: dict[int, float] = field(default_factory=dict)
    fan: Peak = field(default_factory=Peak)
    sm_clock_min: int | None = None
    sm_clock_max: int | None = None
    util_mean: Mean = field(default_factory=Mean)
    throttle_s: dict[str, float] = field(default_factory=dict)  # per reason; they overlap
    throttle_mask_s: dict[int, float] = field(default_factory=dict)  # per distinct mask
    replay_first: int | None = None
    replay_last: int | None = None
    ecc_corrected_first: int | None = None
    ecc_corrected_last: int | None = None
    ecc_uncorrected_first: int | None = None
    ecc_uncorrected_last: int | None = None
    rise: Rise = field(default_factory=Rise)
    lost_at: float | None = None
    latest: TelemetrySample | None = None

    def temp_mem_s_from(self, limit_c: float) -> float:
        """Seconds the memory temperature was at or above `limit_c` (whole °C)."""
        return sum(s for c, s in self.temp_mem_s_at.items() if c >= limit_c)

    def throttle_any_s(self, names: tuple[str, ...]) -> float:
        """Seconds with any of the named throttle reasons set, each sample counted once
        (reasons come together: a power brake also sets hardware slowdown)."""
        bits = 0
        for r in REASONS:
            if r.name in names:
                bits |= r.bit
        return sum(s for mask, s in self.throttle_mask_s.items() if mask & bits)

    @property
    def energy_avg_w(self) -> float | None:
        """Mean power from the energy counter (the most faithful average there is)."""
        if (
            self.energy_first_mj is None
            or self.energy_last_mj is None
            or self.energy_first_t is None
            or self.energy_last_t is None
            or self.energy_last_t <= self.energy_first_t
        ):
            return None
        joules = (self.energy_last_mj - self.energy_first_mj) / 1000
        return joules / (self.energy_last_t - self.energy_first_t)


@dataclass(kw_only=True, slots=True)
class AggregateView:
    """A consistent copy of the aggregates, for a renderer or an exporter."""

    channels: list[GpuChannel]
    gpus: dict[int, GpuAggregate]
    total_power: Peak
    total_mean: Mean
    total_rise: Rise
    events: list[TelemetryEvent]
    ticks: int


class Aggregator:
    """A sampler sink. `view()` may be called from any thread."""

    def __init__(
        self, channels: list[GpuChannel], period_s: float, rise_window_s: float = RISE_WINDOW_S
    ) -> None:
        self.channels = channels
        self.period_s = period_s
        self.gpus = {
            c.gpu: GpuAggregate(gpu=c.gpu, rise=Rise(window_s=rise_window_s)) for c in channels
        }
        self.total_power = Peak()
        self.total_mean = Mean()
        self.total_rise = Rise(window_s=rise_window_s)
        self.events: list[TelemetryEvent] = []
        self.ticks = 0
        self._last_tick: float | None = None
        self._lock = threading.Lock()

    def add(self, t: float, samples: list[TelemetrySample], events: list[TelemetryEvent]) -> None:
        with self._lock:
            self._add(t, samples, events)

    def _weight(self, last: float | None, t: float) -> float:
        if last is None:
            return self.period_s
        return min(t - last, MAX_GAP_PERIODS * self.period_s)

    def _add(self, t: float, samples: list[TelemetrySample], events: list[TelemetryEvent]) -> None:
        self.ticks += 1
        total = 0.0
        have_total = False
        for s in samples:
            g = self.gpus.get(s.gpu)
            if g is None:
                continue
            dt = self._weight(g.last_t, s.t)
            g.samples += 1
            g.first_t = s.t if g.first_t is None else g.first_t
            g.last_t = s.t
            g.latest = s
            p = s.power_w
            g.power.update(p, s.t)
            g.power_avg.update(s.power_avg_w, s.t)
            g.power_mean.add(p, dt)
            if p is not None:
                total += p
                have_total = True
                g.rise.add(s.t, p)
            if s.energy_mj is not None:
                if g.energy_first_mj is None:
                    g.energy_first_mj, g.energy_first_t = s.energy_mj, s.t
                # a slow figure repeats between reads: its time is when it last moved
                if s.energy_mj != g.energy_last_mj:
                    g.energy_last_mj, g.energy_last_t = s.energy_mj, s.t
            g.temp_gpu.update(s.temp_gpu_c, s.t)
            g.temp_mem.update(s.temp_mem_c, s.t)
            if s.temp_mem_c is not None:
                c = int(s.temp_mem_c // 1)
                g.temp_mem_s_at[c] = g.temp_mem_s_at.get(c, 0.0) + dt
            g.fan.update(s.fan_pct, s.t)
            if s.sm_clock_mhz is not None:
                c = s.sm_clock_mhz
                g.sm_clock_min = c if g.sm_clock_min is None else min(g.sm_clock_min, c)
                g.sm_clock_max = c if g.sm_clock_max is None else max(g.sm_clock_max, c)
            g.util_mean.add(s.util_gpu_pct, dt)
            if s.throttle_mask:
                g.throttle_mask_s[s.throttle_mask] = (
                    g.throttle_mask_s.get(s.throttle_mask, 0.0) + dt
                )
                for r in REASONS:
                    if s.throttle_mask & r.bit:
                        g.throttle_s[r.name] = g.throttle_s.get(r.name, 0.0) + dt
            if s.pcie_replay_count is not None:
                if g.replay_first is None:
                    g.replay_first = s.pcie_replay_count
                g.replay_last = s.pcie_replay_count
            if s.ecc_corrected is not None:
                if g.ecc_corrected_first is None:
                    g.ecc_corrected_first = s.ecc_corrected
                g.ecc_corrected_last = s.ecc_corrected
            if s.ecc_uncorrected is not None:
                if g.ecc_uncorrected_first is None:
                    g.ecc_uncorrected_first = s.ecc_uncorrected
                g.ecc_uncorrected_last = s.ecc_uncorrected
        if have_total:
            self.total_power.update(total, t)
            self.total_mean.add(total, self._weight(self._last_tick, t))
            self.total_rise.add(t, total)
        self._last_tick = t
        for e in events:
            self.events.append(e)
            g = self.gpus.get(e.gpu)
            if e.kind == "lost" and g is not None and g.lost_at is None:
                g.lost_at = e.t

    def view(self) -> AggregateView:
        with self._lock:
            return AggregateView(
                channels=self.channels,
                gpus=copy.deepcopy(self.gpus),
                total_power=copy.copy(self.total_power),
                total_mean=copy.copy(self.total_mean),
                total_rise=copy.deepcopy(self.total_rise),
                events=list(self.events),
                ticks=self.ticks,
            )
