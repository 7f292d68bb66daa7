"""The sampler: a thread that reads every GPU of a telemetry source at a fixed rate.

Ticks are scheduled at t0 + k/rate (not "sleep one period after each read"), so slow reads
do not make the rate drift; a tick that is due while the previous one is still reading
is taken as soon as that one ends, and once a whole period behind the ticks whose time has
passed are skipped and counted as missed, never bunched up. What each tick read goes to
the sinks, in the sampler's thread: they must be quick (append to a buffer, update peaks).

A thread, not a rigbench.supervisor worker: its sinks live in this process (the live view,
the recorder's buffer) and NVML reads return or fail, they do not hang like a P2P copy.

    sampler = Sampler(source, rate_hz=100, sinks=[aggregator.add, recorder.add])
    sampler.start(); ...; stats = sampler.stop()
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from rigbench.errors import HardwareError, RigbenchError, one_line
from rigbench.hw.telemetry import TelemetryEvent, TelemetrySample, TelemetrySource

Sink = Callable[[float, list[TelemetrySample], list[TelemetryEvent]], None]

MAX_RATE_HZ = 1000.0


@dataclass(kw_only=True, slots=True)
class SamplerStats:
    """How the sampling went. `elapsed_s` runs from the first tick to the start of the last;
    `achieved_hz` is the ticks taken per second over it."""

    rate_hz: float
    ticks: int = 0
    missed: int = 0  # ticks skipped because a read ran late
    elapsed_s: float = 0.0
    read_ms_mean: float | None = None  # time one tick's read of every GPU took
    read_ms_max: float | None = None

    @property
    def achieved_hz(self) -> float | None:
        return (self.ticks - 1) / self.elapsed_s if self.elapsed_s > 0 else None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["achieved_hz"] = self.achieved_hz
        return d


class Sampler:
    def __init__(self, source: TelemetrySource, rate_hz: float, sinks: Sequence[Sink]) -> None:
        if not 0 < rate_hz <= MAX_RATE_HZ:
            raise ValueError(f"rate must be in (0, {MAX_RATE_HZ:g}] Hz")
        self.source = source
        self.rate_hz = rate_hz
        self.period = 1.0 / rate_hz
        self.sinks = list(sinks)
        self.t0 = 0.0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._ticks = 0
        self._missed = 0
        self._read_sum = 0.0
        self._read_max = 0.0
        self._last = 0.0

    def start(self) -> float:
        """Take tick 0, then start sampling; returns t0 (time.monotonic() at tick 0's end).

        Tick 0 reads every slow figure as well (a sample has every figure from the start):
        on 8 GPUs that is about 45 ms of NVML reads (128 reads at the H200's 0.35 ms), four
        100 Hz periods, which inside the schedule would be counted as four missed ticks. So it
        is read before the clock starts and delivered as the sample at t = 0."""
        before = time.monotonic()
        try:
            first: list[TelemetrySample] | None = self.source.read(0.0)
        except Exception as exc:  # as a read inside the loop would: surfaced by stop()/check()
            self.error, first = exc, None
        self.t0 = time.monotonic()
        self.source.start(self.t0)
        self._last = self.t0
        if first is not None:
            self._thread = threading.Thread(
                target=self._loop,
                args=(first, self.t0 - before),
                name="rigbench-sampler",
                daemon=True,
            )
            self._thread.start()
        return self.t0

    def now(self) -> float:
        """Seconds since t0."""
        return time.monotonic() - self.t0

    def _loop(self, first: list[TelemetrySample], took: float) -> None:
        k = 1  # tick 0 was read by start(); its sinks run here, in the sampler's thread
        try:
            self._deliver(0.0, first, self.source.events(), took, self.t0)
            while True:
                due = self.t0 + k * self.period
                wait = due - time.monotonic()
                if wait > 0 and self._stop.wait(wait):
                    break
                if self._stop.is_set():
                    break
                before = time.monotonic()
                samples = self.source.read(before - self.t0)
                events = self.source.events()
                took = time.monotonic() - before
                self._deliver(before - self.t0, samples, events, took, before)
                k += 1
                # A whole period behind schedule: skip the ticks whose time has passed
                # (counted as missed). Less late, the next tick is taken at once: a read
                # that takes a little over a period costs a little of the rate, not half.
                late = time.monotonic() - (self.t0 + k * self.period)
                if late >= self.period:
                    skip = int(late / self.period)
                    k += skip
                    with self._lock:
                        self._missed += skip
        except BaseException as exc:  # surfaced to the caller by stop()/check()
            self.error = exc

    def _deliver(
        self,
        t: float,
        samples: list[TelemetrySample],
        events: list[TelemetryEvent],
        took: float,
        at: float,
    ) -> None:
        """One tick's samples to the sinks, and its read counted."""
        for sink in self.sinks:
            sink(t, samples, events)
        with self._lock:
            self._ticks += 1
            self._read_sum += took
            self._read_max = max(self._read_max, took)
            self._last = at

    def check(self) -> None:
        """Raise what stopped the sampler thread, if anything did (as a HardwareError
        unless it is already one of rigbench's named errors)."""
        if self.error is None:
            return
        if isinstance(self.error, RigbenchError):
            raise self.error
        raise HardwareError(f"telemetry sampling stopped: {one_line(self.error)}") from self.error

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stats(self) -> SamplerStats:
        with self._lock:
            ticks = self._ticks
            return SamplerStats(
                rate_hz=self.rate_hz,
                ticks=ticks,
                missed=self._missed,
                elapsed_s=(self._last - self.t0) if ticks else 0.0,
                read_ms_mean=self._read_sum / ticks * 1e3 if ticks else None,
                read_ms_max=self._read_max * 1e3 if ticks else None,
            )

    def stop(self) -> SamplerStats:
        """Stop after the tick in progress; the source stays open (the caller closes it)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        return self.stats()
