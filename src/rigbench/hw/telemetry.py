"""Telemetry: what a GPU reports many times a second, and the source protocol every backend
implements (`NvmlTelemetry` in hw.nvml_telemetry, `SimulatedTelemetry` in hw.sim_telemetry,
`NoGpuTelemetry` here for a machine without NVIDIA GPUs).

A figure a GPU does not expose is `None` in every sample and its reason is in the channel's
`unavailable` (field name -> why), said once rather than left blank.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

PowerKind = Literal["instant", "average_1s"]
EventKind = Literal["xid", "lost", "ecc_uncorrected", "ecc_corrected", "unavailable"]

# nvml.h, nvmlDeviceGetPowerUsage: "On Ampere (except GA100) or newer GPUs, the API returns
# power averaged over 1 sec interval. On GA100 and older architectures, instantaneous power
# is returned."
USAGE_AVERAGED_FROM_CC = (8, 0)


def power_usage_kind(compute_capability: str | None) -> PowerKind | None:
    """What nvmlDeviceGetPowerUsage returns on a GPU of this compute capability
    (None when the capability is unknown)."""
    if not compute_capability:
        return None
    major, _, minor = compute_capability.partition(".")
    cc = (int(major), int(minor or 0))
    if cc > USAGE_AVERAGED_FROM_CC:
        return "average_1s"
    return "instant"  # GA100 (8.0) and older


def memory_temperature_unavailable(name: str, gddr_why: str | None = None) -> str:
    """Why a GPU's memory temperature is missing, in words (`gddr_why`: why rigbench's
    GDDR register reader, hw.gddr, could not stand in for NVML)."""
    if "geforce" in name.lower() or "titan" in name.lower():
        nvml = "not exposed by NVML on GeForce cards"
    else:
        nvml = "NVML reports no memory temperature for this GPU"
    return f"{nvml}; {gddr_why}" if gddr_why else nvml


# Read every tick: what moves within milliseconds and what a power transient shows in.
# Everything else in a sample is read every SLOW_EVERY_S, spread over the ticks, and
# repeated between reads (temperatures, fans, ECC, PCIe counters and link, memory used,
# the averaged power and the energy counter).
FAST_FIELDS: tuple[str, ...] = ("power_instant_w", "sm_clock_mhz", "throttle_mask")
SLOW_EVERY_S = 1.0  # 1 Hz: temperatures and fans move over seconds; ECC/PCIe are counters


class SlowSchedule:
    """When each slow read is due: all of them on the first tick (a sample has every figure
    from the start), then each once per `period_s`, spread evenly over the period so that no
    tick carries all of them (one tick of every slow read on 8 GPUs takes longer than a
    100 Hz period)."""

    def __init__(self, items: list[Any], period_s: float = SLOW_EVERY_S) -> None:
        self.period_s = period_s
        self.items = list(items)
        self._due: dict[Any, float] | None = None

    def due(self, t: float) -> list[Any]:
        """The items to read at `t` (seconds); each is then due again one period later."""
        if self._due is None:
            n = max(1, len(self.items))
            self._due = {item: t + self.period_s * (k + 1) / n for k, item in enumerate(self.items)}
            return list(self.items)
        out = [item for item, at in self._due.items() if at <= t]
        for item in out:
            at = self._due[item] + self.period_s
            self._due[item] = at if at > t else t + self.period_s
        return out


@dataclass(kw_only=True, slots=True)
class TelemetrySample:
    """One reading of one GPU. `t` is seconds since sampling started (monotonic clock).

    Power comes twice because the ordinary NVML reading is a one-second average on Ampere
    and newer, which hides millisecond transients: `power_instant_w` is the instantaneous
    reading (NVML_FI_DEV_POWER_INSTANT, or nvmlDeviceGetPowerUsage on GA100 and older),
    `power_avg_w` the averaged one (NVML_FI_DEV_POWER_AVERAGE, or nvmlDeviceGetPowerUsage
    on Ampere and newer); `power_instant_kind`/`power_avg_kind` say what each really is.
    """

    t: float
    gpu: int
    power_instant_w: float | None = None  # W; nvidia-smi: power.draw.instant
    power_avg_w: float | None = None  # W; nvidia-smi: power.draw.average
    power_instant_kind: PowerKind | None = None
    power_avg_kind: PowerKind | None = None
    energy_mj: int | None = None  # mJ since the driver loaded (NVML total energy)
    sm_clock_mhz: int | None = None  # nvidia-smi: clocks.sm
    mem_clock_mhz: int | None = None  # nvidia-smi: clocks.mem
    temp_gpu_c: float | None = None  # °C; nvidia-smi: temperature.gpu
    # °C; nvidia-smi: temperature.memory on HBM GPUs; on GDDR6/GDDR6X cards the VRAM
    # junction temperature read by hw.gddr (no nvidia-smi equivalent)
    temp_mem_c: float | None = None
    fan_pct: float | None = None  # % of the fan's maximum; nvidia-smi: fan.speed
    util_gpu_pct: float | None = None  # %; nvidia-smi: utilization.gpu
    util_mem_pct: float | None = None  # %; nvidia-smi: utilization.memory
    mem_used_bytes: int | None = None  # nvidia-smi: memory.used
    throttle_mask: int | None = None  # NVML clocks event reasons; see hw.throttle
    pcie_replay_count: int | None = None  # cumulative; nvidia-smi: pcie.link.replay
    ecc_corrected: int | None = None  # volatile single-bit ECC errors since the driver loaded
    ecc_uncorrected: int | None = None  # volatile double-bit ECC errors
    # Read for bench conditions, not recorded by monitor (not in SAMPLE_FIELDS):
    pcie_gen: int | None = None  # link generation now; nvidia-smi: pcie.link.gen.current
    pcie_width: int | None = None  # lanes now; nvidia-smi: pcie.link.width.current
    compute_pids: list[int] | None = None  # processes with a compute context on the GPU

    @property
    def power_w(self) -> float | None:
        """The best power figure there is: instantaneous where available."""
        return self.power_instant_w if self.power_instant_w is not None else self.power_avg_w

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


SAMPLE_FIELDS: tuple[str, ...] = tuple(
    f
    for f in TelemetrySample.__dataclass_fields__
    if f not in ("power_instant_kind", "power_avg_kind", "pcie_gen", "pcie_width", "compute_pids")
)


@dataclass(kw_only=True, slots=True)
class TelemetryEvent:
    """Something that happened to a GPU: an Xid, an ECC error event, the GPU lost."""

    t: float
    gpu: int
    kind: EventKind
    code: int | None = None  # the Xid number for kind "xid"
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(kw_only=True, slots=True)
class TemperatureLimits:
    """°C thresholds the GPU reports (NVML temperature thresholds); None when unknown."""

    gpu_max_c: float | None = None  # "GPU max operating temp": throttles below base clock
    slowdown_c: float | None = None  # hardware slowdown starts
    shutdown_c: float | None = None  # the GPU shuts down to protect itself
    mem_max_c: float | None = None  # memory max operating temp (HBM GPUs)


@dataclass(kw_only=True, slots=True)
class GpuChannel:
    """The fixed facts of one sampled GPU, read once when sampling starts."""

    gpu: int
    name: str
    uuid: str | None = None
    power_limit_w: float | None = None
    power_default_limit_w: float | None = None
    sm_clock_max_mhz: int | None = None
    power_instant_kind: PowerKind | None = None
    power_avg_kind: PowerKind | None = None
    power_instant_source: str | None = None  # the NVML call or field read
    power_avg_source: str | None = None
    limits: TemperatureLimits = field(default_factory=TemperatureLimits)
    memory_type: str | None = None  # "GDDR6X", "GDDR6" (hw.gddr's table); None when unknown
    temp_mem_source: str | None = None  # what temp_mem_c is: NVML's field or the GDDR register
    unavailable: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class TelemetrySource(Protocol):
    """Reads every sampled GPU at once; the sampler calls `read` from its own thread."""

    kind: str
    # Why Xid/critical events cannot be watched here (None when they are).
    events_unavailable: str | None

    def channels(self) -> list[GpuChannel]:
        """The GPUs this source samples (empty on a machine without NVIDIA GPUs)."""
        ...

    def start(self, t0: float) -> None:
        """Sampling starts at monotonic time `t0`; event watching starts here. The sampler
        takes its first read (every figure) just before, as the sample at t = 0."""
        ...

    def read(self, t: float) -> list[TelemetrySample]:
        """One sample per GPU still on the bus, taken now (`t` seconds after `t0`)."""
        ...

    def events(self) -> list[TelemetryEvent]:
        """Events since the last call, oldest first."""
        ...

    def close(self) -> None: ...


class NoGpuTelemetry:
    """A machine without NVIDIA GPUs (or without the driver): nothing to sample."""

    kind = "none"
    events_unavailable: str | None = "no NVIDIA GPU here"

    def __init__(self, why: str = "no NVIDIA GPU here (NVML did not load)") -> None:
        self.why = why

    def channels(self) -> list[GpuChannel]:
        return []

    def start(self, t0: float) -> None:
        pass

    def read(self, t: float) -> list[TelemetrySample]:
        return []

    def events(self) -> list[TelemetryEvent]:
        return []

    def close(self) -> None:
        pass
