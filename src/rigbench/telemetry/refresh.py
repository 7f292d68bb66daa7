"""How often each telemetry figure is read and how often its value actually changes.

A sampler sink: per GPU and figure it counts the ticks on which the value differed from
the tick before. The changes per second are a lower bound on how often the driver
refreshes the figure (a refresh that gives the same value is not seen); they also show
where reading faster adds nothing (instantaneous power changed 9.1 times a second on the
H200 of benchmarks/2026-11-23-h200-1gpu-monitor-burnin.md, read at 88 Hz).

    refresh = FieldRefresh()
    sampler = Sampler(source, rate_hz, [refresh.add, ...]); ...
    refresh.rates(sampler.stats().achieved_hz)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from rigbench.hw.telemetry import (
    FAST_FIELDS,
    SAMPLE_FIELDS,
    SLOW_EVERY_S,
    TelemetryEvent,
    TelemetrySample,
)

FIELDS: tuple[str, ...] = tuple(f for f in SAMPLE_FIELDS if f not in ("t", "gpu"))


@dataclass(kw_only=True, slots=True)
class FieldRate:
    """One figure: how often it was read (Hz) and how often its value changed (per second,
    the most-changing GPU's figure, and per GPU)."""

    field: str
    cadence: str  # "fast" (every tick) or "slow" (every SLOW_EVERY_S)
    read_hz: float | None
    changes_hz: float | None
    changes_hz_by_gpu: dict[int, float]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class FieldRefresh:
    def __init__(self) -> None:
        self._last: dict[int, dict[str, Any]] = {}
        self._changes: dict[int, dict[str, int]] = {}
        self._span: dict[int, tuple[float, float]] = {}

    def add(self, t: float, samples: list[TelemetrySample], events: list[TelemetryEvent]) -> None:
        for s in samples:
            last = self._last.setdefault(s.gpu, {})
            changes = self._changes.setdefault(s.gpu, {})
            first = self._span.get(s.gpu, (s.t, s.t))[0]
            self._span[s.gpu] = (first, s.t)
            for name in FIELDS:
                v = getattr(s, name)
                if v is None:
                    continue
                if name in last:
                    if v != last[name]:
                        changes[name] = changes.get(name, 0) + 1
                else:
                    changes.setdefault(name, 0)
                last[name] = v

    def rates(self, tick_hz: float | None) -> list[FieldRate]:
        """Every figure some GPU reported, fast ones first; `tick_hz` is the rate the
        sampler achieved (None before two ticks)."""
        slow_hz = min(tick_hz, 1 / SLOW_EVERY_S) if tick_hz is not None else None
        out = []
        for name in sorted(FIELDS, key=lambda f: (f not in FAST_FIELDS, FIELDS.index(f))):
            by_gpu: dict[int, float] = {}
            for gpu, changes in self._changes.items():
                first, last = self._span[gpu]
                if name in changes and last > first:
                    by_gpu[gpu] = changes[name] / (last - first)
            if not by_gpu and not any(name in c for c in self._changes.values()):
                continue
            fast = name in FAST_FIELDS
            out.append(
                FieldRate(
                    field=name,
                    cadence="fast" if fast else "slow",
                    read_hz=tick_hz if fast else slow_hz,
                    changes_hz=max(by_gpu.values()) if by_gpu else None,
                    changes_hz_by_gpu=by_gpu,
                )
            )
        return out
