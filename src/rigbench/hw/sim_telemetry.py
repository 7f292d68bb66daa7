"""A simulated rig's telemetry: the `[telemetry]` section of its TOML file, played back.

Times are seconds since sampling started. Without a `[telemetry]` section every GPU reads a
steady, healthy state (the baseline below). The format (see examples/simulated/README.md):

    [[telemetry.segment]]     from `t` (to `until`, if given) set these GPUs' figures
      gpus = [0, 1]           default: every GPU
      t = 1.0                 start, seconds
      until = 3.0             end (the GPU goes back to what earlier segments set)
      power_w = 350           a number, or [from, to]: a linear ramp from t to until
      pulse = { low_w = 150, period_s = 1.0, duty = 0.5 }
                              power alternates: low_w for the first (1 - duty) of each
                              period, power_w for the rest; all GPUs of the segment in phase
      temp_c, mem_temp_c, sm_mhz, mem_mhz, fan_pct, util_pct, mem_util_pct, mem_used_gib
                              numbers or [from, to] ramps, as power_w
      throttle = ["hw_thermal"]   reason names of rigbench.hw.throttle (replaces the set)
      pcie_replay, ecc_corrected, ecc_uncorrected     cumulative counters (whole numbers)
      pcie_gen, pcie_width    the link under load (default: the GPU's pcie gen/width_loaded,
                              else gen/width_current)
      processes = 1           compute processes of other programs holding the GPU
    [[telemetry.event]]       t, gpu, xid: an Xid reported at t
    [[telemetry.gpu]]         index, lost_at (drops off the bus: no readings after it),
                              limits = { gpu_max_c, slowdown_c, shutdown_c, mem_max_c },
                              bit_flip_at (from then on one bit of one element of each of
                              its burn-in matmul results is flipped: silent corruption)
    [telemetry]
      nvml_read_ms = 0.35     what one NVML read costs: each tick then takes as long as the
                              reads it makes would on a real GPU (default: no cost)

Reads follow the live NVML source: the fast figures (hw.telemetry.FAST_FIELDS) every tick,
every other figure once per SLOW_EVERY_S on the same spread schedule, repeated in between.

When several segments set a figure at the same time, the one that starts last wins (the
later one in the file on a tie). The averaged power is the mean of the instantaneous power
over the last second, as NVML's average is; energy is its integral.

The section is validated with the rest of the file (hw.simulated); `check_trace` adds the
checks that need the rig (GPU indices).
"""

from __future__ import annotations

import math
import threading
import time
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from rigbench.hw.gddr import NOT_GDDR, gddr_device_by_name
from rigbench.hw.model import GpuInfo, Rig
from rigbench.hw.telemetry import (
    FAST_FIELDS,
    SLOW_EVERY_S,
    GpuChannel,
    SlowSchedule,
    TelemetryEvent,
    TelemetrySample,
    TemperatureLimits,
    memory_temperature_unavailable,
)
from rigbench.hw.throttle import REASONS
from rigbench.hw.xid import xid_info

THROTTLE_BITS = {r.name: r.bit for r in REASONS}
# One NVML read on the H200 VM of benchmarks/2026-11-23-h200-1gpu-monitor-burnin.md: a tick
# read ~16 figures of one GPU in 5.6-5.9 ms (5.6 ms mean in that write-up), ~0.35 ms each.
# Whether a field inside one nvmlDeviceGetFieldValues call costs as much as a plain query
# was not measured; this model charges every figure read the same.
NVML_READ_MS_H200_VM = 0.35
# What the slow schedule reads per GPU (as hw.nvml_telemetry does); util is one query
# for two figures, and GeForce cards have no ECC or NVML memory temperature reads.
SLOW_READS: tuple[str, ...] = (
    "power_avg_w",
    "energy_mj",
    "temp_mem_c",
    "pcie_replay_count",
    "ecc_corrected",
    "ecc_uncorrected",
    "mem_clock_mhz",
    "temp_gpu_c",
    "fan_pct",
    "util",
    "mem_used_bytes",
    "pcie_gen",
    "pcie_width",
    "compute_pids",
)
_GEFORCE_NO_READ = {"temp_mem_c", "ecc_corrected", "ecc_uncorrected"}

AVERAGE_WINDOW_S = 1.0
AVERAGE_POINTS = 20
SIM_PID_BASE = 1 << 23


def _finite(v: float) -> float:
    if not math.isfinite(v):
        raise ValueError("must be a finite number")
    return v


def _not_negative(v: float) -> float:
    _finite(v)
    if v < 0:
        raise ValueError("must be 0 or more")
    return v


def _ramp_or_number(v: float | list[float]) -> float | list[float]:
    if isinstance(v, list):
        if len(v) != 2:
            raise ValueError(f"a ramp is [from, to], two numbers (got {len(v)})")
        for x in v:
            _not_negative(x)
        return v
    return _not_negative(v)


def _count(v: int) -> int:
    if v < 0:
        raise ValueError("must be 0 or more")
    return v


def _throttle_names(v: list[str]) -> list[str]:
    for name in v:
        if name not in THROTTLE_BITS:
            raise ValueError(
                f"unknown throttle reason {name!r} (one of: {', '.join(THROTTLE_BITS)})"
            )
    return v


Time = Annotated[float, AfterValidator(_not_negative)]
Value = Annotated[float | list[float], AfterValidator(_ramp_or_number)]
Counter = Annotated[int, AfterValidator(_count)]

# Segment figures: (TOML key, TelemetrySample attribute, scale to the sample's unit).
FIGURES: tuple[tuple[str, str, float], ...] = (
    ("power_w", "power_instant_w", 1.0),
    ("temp_c", "temp_gpu_c", 1.0),
    ("mem_temp_c", "temp_mem_c", 1.0),
    ("sm_mhz", "sm_clock_mhz", 1.0),
    ("mem_mhz", "mem_clock_mhz", 1.0),
    ("fan_pct", "fan_pct", 1.0),
    ("util_pct", "util_gpu_pct", 1.0),
    ("mem_util_pct", "util_mem_pct", 1.0),
    ("mem_used_gib", "mem_used_bytes", float(2**30)),
)
COUNTERS = ("pcie_replay", "ecc_corrected", "ecc_uncorrected")
_INT_ATTRS = {"sm_clock_mhz", "mem_clock_mhz", "mem_used_bytes"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _Pulse(_Strict):
    low_w: Time
    period_s: Annotated[float, AfterValidator(_finite)]
    duty: Annotated[float, AfterValidator(_finite)] = 0.5

    @model_validator(mode="after")
    def _sane(self) -> _Pulse:
        if self.period_s <= 0:
            raise ValueError("period_s must be greater than 0")
        if not 0 < self.duty < 1:
            raise ValueError("duty must be between 0 and 1 (exclusive)")
        return self


class _Segment(_Strict):
    t: Time
    until: Time | None = None
    gpus: list[int] | None = None
    power_w: Value | None = None
    pulse: _Pulse | None = None
    temp_c: Value | None = None
    mem_temp_c: Value | None = None
    sm_mhz: Value | None = None
    mem_mhz: Value | None = None
    fan_pct: Value | None = None
    util_pct: Value | None = None
    mem_util_pct: Value | None = None
    mem_used_gib: Value | None = None
    throttle: Annotated[list[str], AfterValidator(_throttle_names)] | None = None
    pcie_replay: Counter | None = None
    ecc_corrected: Counter | None = None
    ecc_uncorrected: Counter | None = None
    pcie_gen: Annotated[int, Field(ge=1, le=6)] | None = None
    pcie_width: Literal[1, 2, 4, 8, 16] | None = None
    processes: Counter | None = None

    @model_validator(mode="after")
    def _consistent(self) -> _Segment:
        if self.until is not None and self.until <= self.t:
            raise ValueError(f"until ({self.until:g}) must be after t ({self.t:g})")
        for key, _, _ in FIGURES:
            if isinstance(getattr(self, key), list) and self.until is None:
                raise ValueError(f"{key} is a ramp [from, to]: the segment needs an until")
        if self.pulse is not None and self.power_w is None:
            raise ValueError("pulse needs power_w (the high level)")
        return self


class _Event(_Strict):
    t: Time
    gpu: int
    xid: Annotated[int, AfterValidator(_count)]


class _Limits(_Strict):
    gpu_max_c: float | None = None
    slowdown_c: float | None = None
    shutdown_c: float | None = None
    mem_max_c: float | None = None


class _GpuFacts(_Strict):
    index: int
    lost_at: Time | None = None
    bit_flip_at: Time | None = None
    limits: _Limits = Field(default_factory=_Limits)


class TelemetrySection(_Strict):
    """The `[telemetry]` table of a simulated rig file."""

    description: str | None = None
    # ms one NVML read costs on the GPU being modelled (see NVML_READ_MS_H200_VM)
    nvml_read_ms: Annotated[float, AfterValidator(_not_negative)] | None = None
    # for the PSU-trip finder (burnin.psutrip): an idle GPU's draw (W) and how long a ramp's
    # peak lasts (ms); the peak is the highest power_w of the segments
    idle_w: Annotated[float, AfterValidator(_not_negative)] | None = None
    spike_ms: Annotated[float, AfterValidator(_not_negative)] | None = None
    segment: list[_Segment] = Field(default_factory=list)
    event: list[_Event] = Field(default_factory=list)
    gpu: list[_GpuFacts] = Field(default_factory=list)

    @field_validator("gpu")
    @classmethod
    def _unique(cls, v: list[_GpuFacts]) -> list[_GpuFacts]:
        seen: set[int] = set()
        for facts in v:
            if facts.index in seen:
                raise ValueError(f"GPU {facts.index} is listed twice")
            seen.add(facts.index)
        return v


def check_trace(section: TelemetrySection, n_gpus: int) -> tuple[str, str] | None:
    """(key path, what is wrong) for a GPU index the rig does not have, else None."""

    def missing(g: int) -> str:
        have = "the file has no GPUs" if n_gpus == 0 else f"the file has GPUs 0-{n_gpus - 1}"
        if n_gpus == 1:
            have = "the file has only GPU 0"
        return f"GPU {g} does not exist ({have})"

    for k, seg in enumerate(section.segment):
        for g in seg.gpus or []:
            if not 0 <= g < n_gpus:
                return f"telemetry.segment[{k}].gpus", missing(g)
    for k, ev in enumerate(section.event):
        if not 0 <= ev.gpu < n_gpus:
            return f"telemetry.event[{k}].gpu", missing(ev.gpu)
    for k, facts in enumerate(section.gpu):
        if not 0 <= facts.index < n_gpus:
            return f"telemetry.gpu[{k}].index", missing(facts.index)
    return None


# --- playing it --------------------------------------------------------------------------


def _baseline(gpu: GpuInfo) -> dict[str, float | None]:
    """A steady, healthy GPU under load: what a GPU reads where no segment says otherwise."""
    limit = gpu.power_limit_w or gpu.power_default_limit_w or 250.0
    total = gpu.memory_total_bytes
    geforce = "geforce" in gpu.name.lower()
    return {
        "power_instant_w": round(0.85 * limit, 1),
        "temp_gpu_c": 62.0,
        "temp_mem_c": None if geforce else 70.0,
        "sm_clock_mhz": float(gpu.sm_clock_mhz or gpu.sm_clock_max_mhz or 1500),
        "mem_clock_mhz": float(gpu.mem_clock_mhz or gpu.mem_clock_max_mhz or 5000),
        "fan_pct": 55.0,
        "util_gpu_pct": 100.0,
        "util_mem_pct": 60.0,
        "mem_used_bytes": float(int(0.4 * total)) if total else None,
    }


def _at(value: float | list[float], seg: _Segment, t: float) -> float:
    if isinstance(value, list):
        assert seg.until is not None
        frac = min(1.0, max(0.0, (t - seg.t) / (seg.until - seg.t)))
        return value[0] + (value[1] - value[0]) * frac
    return value


def _active(seg: _Segment, t: float) -> bool:
    return seg.t <= t and (seg.until is None or t < seg.until)


class SimulatedTelemetry:
    """Plays a rig's trace against the sampler's clock."""

    kind = "simulated"
    events_unavailable: str | None = None

    def __init__(
        self, rig: Rig, section: TelemetrySection | None, gpus: list[int] | None = None
    ) -> None:
        self._section = section or TelemetrySection()
        selected = [g for g in rig.gpus if gpus is None or g.index in gpus]
        self._gpus = selected
        self._facts = {f.index: f for f in self._section.gpu}
        self.lost_at: dict[int, float] = {
            g.index: f.lost_at
            for g in selected
            if (f := self._facts.get(g.index)) is not None and f.lost_at is not None
        }
        self.bit_flip_at: dict[int, float] = {
            g.index: f.bit_flip_at
            for g in selected
            if (f := self._facts.get(g.index)) is not None and f.bit_flip_at is not None
        }
        self._base = {g.index: _baseline(g) for g in selected}
        # Per GPU, the segments that apply to it, latest start last (file order on ties).
        order = sorted(enumerate(self._section.segment), key=lambda kv: (kv[1].t, kv[0]))
        self._segments = {
            g.index: [s for _, s in order if s.gpus is None or g.index in s.gpus] for g in selected
        }
        self._lost: set[int] = set()
        self._energy: dict[int, tuple[float, float]] = {}  # gpu -> (t, mJ)
        self._pending = sorted(
            (e for e in self._section.event if any(g.index == e.gpu for g in selected)),
            key=lambda e: e.t,
        )
        self._events: list[TelemetryEvent] = []
        self._lock = threading.Lock()
        self.read_ms = self._section.nvml_read_ms
        self._slow = SlowSchedule(
            [
                (g.index, name)
                for g in selected
                for name in SLOW_READS
                if not ("geforce" in g.name.lower() and name in _GEFORCE_NO_READ)
            ],
            SLOW_EVERY_S,
        )
        self._held: dict[int, dict[str, object]] = {g.index: {} for g in selected}
        self.reads_last = 0  # NVML reads the last tick made (fast + slow + process list)

    def channels(self) -> list[GpuChannel]:
        out = []
        for g in self._gpus:
            facts = self._facts.get(g.index)
            lim = facts.limits if facts is not None else _Limits()
            unavailable: dict[str, str] = {}
            gddr = gddr_device_by_name(g.name)
            traced = any(s.mem_temp_c is not None for s in self._segments[g.index])
            mem_source = None
            if traced:
                mem_source = "simulated trace" + (
                    f" ({gddr.memory} junction register)" if gddr is not None else ""
                )
            elif self._base[g.index]["temp_mem_c"] is not None:
                mem_source = "simulated (NVML memory temperature)"
            else:
                unavailable["temp_mem_c"] = memory_temperature_unavailable(
                    g.name,
                    f"the simulated trace sets no mem_temp_c (a live run reads the {gddr.memory} "
                    "junction register, as root)"
                    if gddr is not None
                    else NOT_GDDR,
                )
            if "geforce" in g.name.lower():
                unavailable["ecc_corrected"] = unavailable["ecc_uncorrected"] = (
                    "GeForce cards have no ECC reporting"
                )
            out.append(
                GpuChannel(
                    gpu=g.index,
                    name=g.name,
                    uuid=g.uuid,
                    power_limit_w=g.power_limit_w,
                    power_default_limit_w=g.power_default_limit_w,
                    sm_clock_max_mhz=g.sm_clock_max_mhz,
                    power_instant_kind="instant",
                    power_avg_kind="average_1s",
                    power_instant_source="simulated trace",
                    power_avg_source="simulated trace (mean of the last second)",
                    limits=TemperatureLimits(**lim.model_dump()),
                    memory_type=gddr.memory if gddr is not None else None,
                    temp_mem_source=mem_source,
                    unavailable=unavailable,
                )
            )
        return out

    def start(self, t0: float) -> None:
        pass

    def _power(self, gpu: int, t: float) -> float | None:
        value = self._base[gpu]["power_instant_w"]
        for seg in self._segments[gpu]:
            if seg.power_w is None or not _active(seg, t):
                continue
            value = _at(seg.power_w, seg, t)
            if seg.pulse is not None:
                p = seg.pulse
                phase = ((t - seg.t) % p.period_s) / p.period_s
                if phase < 1 - p.duty:
                    value = p.low_w
        return value

    def _figure(self, gpu: int, attr: str, key: str, scale: float, t: float) -> float | None:
        value = self._base[gpu][attr]
        for seg in self._segments[gpu]:
            v = getattr(seg, key)
            if v is not None and _active(seg, t):
                value = _at(v, seg, t) * scale
        return value

    def _sample(self, gpu: GpuInfo, t: float) -> TelemetrySample:
        i = gpu.index
        s = TelemetrySample(t=t, gpu=i, power_instant_kind="instant", power_avg_kind="average_1s")
        for key, attr, scale in FIGURES:
            if attr == "power_instant_w":
                continue
            v = self._figure(i, attr, key, scale, t)
            setattr(s, attr, (int(v) if attr in _INT_ATTRS else v) if v is not None else None)
        p = self._power(i, t)
        s.power_instant_w = p
        window = [
            self._power(i, t - AVERAGE_WINDOW_S * k / (AVERAGE_POINTS - 1))
            for k in range(AVERAGE_POINTS)
        ]
        known = [w for w in window if w is not None]
        s.power_avg_w = round(sum(known) / len(known), 2) if known else None
        mask = 0
        replay = gpu.pcie.replay_count or 0
        ecc: dict[str, int] = {"ecc_corrected": 0, "ecc_uncorrected": 0}
        for seg in self._segments[i]:
            if not _active(seg, t):
                continue
            if seg.throttle is not None:
                mask = sum(THROTTLE_BITS[n] for n in seg.throttle)
            if seg.pcie_replay is not None:
                replay = seg.pcie_replay
            for k in ecc:
                v = getattr(seg, k)
                if v is not None:
                    ecc[k] = v
        s.throttle_mask = mask
        s.pcie_replay_count = replay
        link = gpu.pcie  # a played trace is of a GPU at work: its link as it trains under load
        s.pcie_gen = link.gen_loaded if link.gen_loaded is not None else link.gen_current
        s.pcie_width = link.width_loaded if link.width_loaded is not None else link.width_current
        others = 0
        for seg in self._segments[i]:
            if _active(seg, t):
                s.pcie_gen = seg.pcie_gen if seg.pcie_gen is not None else s.pcie_gen
                s.pcie_width = seg.pcie_width if seg.pcie_width is not None else s.pcie_width
                others = seg.processes if seg.processes is not None else others
        # pids no real process has (above Linux's pid_max of 2^22)
        s.compute_pids = [SIM_PID_BASE + i * 100 + k for k in range(others)]
        if "geforce" not in gpu.name.lower():
            s.ecc_corrected, s.ecc_uncorrected = ecc["ecc_corrected"], ecc["ecc_uncorrected"]
        # energy: the integral of the played power since sampling started
        last_t, mj = self._energy.get(i, (0.0, 0.0))
        if t > last_t:
            mj += (p or 0.0) * (t - last_t) * 1000
            self._energy[i] = (t, mj)
        s.energy_mj = int(mj)
        return s

    def _hold_slow(self, s: TelemetrySample, due: set[str], t: float) -> int:
        """Keep the slow figures not read this tick at their last read value; the reads made."""
        held = self._held[s.gpu]
        reads = len(FAST_FIELDS)
        for name in SLOW_READS:
            attrs = ("util_gpu_pct", "util_mem_pct") if name == "util" else (name,)
            if name in due:
                reads += 1
                for a in attrs:
                    held[a] = getattr(s, a)
            for a in attrs:
                if a in held:
                    setattr(s, a, held[a])
        return reads

    def read(self, t: float) -> list[TelemetrySample]:
        began = time.monotonic()
        out = []
        due: dict[int, set[str]] = {}
        for gpu, name in self._slow.due(t):
            due.setdefault(gpu, set()).add(name)
        reads = 0
        for g in self._gpus:
            if g.index in self._lost:
                continue
            lost_at = self.lost_at.get(g.index)
            if lost_at is not None and t >= lost_at:
                self._lost.add(g.index)
                with self._lock:
                    self._events.append(
                        TelemetryEvent(
                            t=lost_at,
                            gpu=g.index,
                            kind="lost",
                            message="GPU fell off the bus (simulated: NVML_ERROR_GPU_IS_LOST)",
                        )
                    )
                continue
            sample = self._sample(g, t)
            reads += self._hold_slow(sample, due.get(g.index, set()), t)
            out.append(sample)
        self.reads_last = reads
        if self.read_ms:
            # the tick takes what its reads would cost, computing the trace included
            time.sleep(max(0.0, began + reads * self.read_ms / 1000 - time.monotonic()))
        with self._lock:
            while self._pending and self._pending[0].t <= t:
                e = self._pending.pop(0)
                self._events.append(
                    TelemetryEvent(
                        t=e.t, gpu=e.gpu, kind="xid", code=e.xid, message=xid_info(e.xid).meaning
                    )
                )
            self._events.sort(key=lambda e: e.t)
        return out

    def events(self) -> list[TelemetryEvent]:
        with self._lock:
            out, self._events = self._events, []
        return out

    def ramp_figures(self) -> dict[int, dict[str, float]] | str:
        """Per GPU: idle, peak and sustained W and the peak's length in ms, for the PSU-trip
        finder; or why the trace cannot give them."""
        sec = self._section
        missing = [k for k in ("idle_w", "spike_ms") if getattr(sec, k) is None]
        if missing:
            return f"the simulated rig's [telemetry] sets no {' and no '.join(missing)}"
        out: dict[int, dict[str, float]] = {}
        for g in self._gpus:
            peaks = [
                max(s.power_w) if isinstance(s.power_w, list) else s.power_w
                for s in self._segments[g.index]
                if s.power_w is not None
            ]
            sustained = g.power_limit_w or g.power_default_limit_w
            if not peaks or sustained is None:
                return f"GPU {g.index}: the trace has no power_w or the rig no power limit"
            out[g.index] = {
                "idle_w": float(sec.idle_w or 0.0),
                "peak_w": float(max(peaks)),
                "sustained_w": float(min(sustained, max(peaks))),
                "spike_ms": float(sec.spike_ms or 0.0),
            }
        return out

    def close(self) -> None:
        pass
