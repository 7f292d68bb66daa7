"""The health sections of a simulated rig file, read by `hw.simulated`:

    [gpu.health]   after a [[gpu]] entry: that entry's GpuHealth fields
    [health]       host facts: pci_extra_gpus, dev_shm_mib, memlock_kib, cpu_governor,
                   process_numa_nodes, kernel_module_version, fabric_manager,
                   cuda_init_error, nccl_conf = {VAR = value}, and [[health.net]] ports
                   (name, kind = ethernet/infiniband/roce, state, rate_gbps, max_rate_gbps)
    [kernel]       cmdline, iommu_groups, iommu_group_type, log (kernel log text), [[kernel.acs]]
    [env]          environment variables as the rig's user had them

A fact the file leaves out is None with the reason "not in the simulation file", so the
doctor reports its check as skipped rather than guessing. The kernel log is real log
text, parsed by the same code as the live one.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from rigbench.hw.health import (
    AcsBridge,
    GpuHealth,
    HealthInfo,
    HostHealth,
    NetPort,
    Violation,
)
from rigbench.hw.kernel import match_gpus, parse_kernel_events, parse_xids
from rigbench.hw.model import Rig
from rigbench.hw.throttle import REASONS

NOT_IN_FILE = "not in the simulation file"
_BUS_ID_RE = re.compile(
    r"^(?:(?P<domain>[0-9A-Fa-f]{1,8}):)?(?P<bus>[0-9A-Fa-f]{2}):"
    r"(?P<dev>[0-9A-Fa-f]{2})\.(?P<fn>[0-7])$"
)
_GPU_HEALTH_FIELDS = [f.name for f in dataclasses.fields(GpuHealth) if f.name != "index"]
_HOST_FIELDS = [f.name for f in dataclasses.fields(HostHealth) if f.name != "unavailable"]


def _not_negative(v: int) -> int:
    if v < 0:
        raise ValueError("must be 0 or more")
    return v


def _not_negative_float(v: float) -> float:
    if not v >= 0:
        raise ValueError("must be 0 or more")
    return float(v)


def _percent(v: int) -> int:
    if not 0 <= v <= 100:
        raise ValueError("must be between 0 and 100 (percent)")
    return v


def _celsius(v: int) -> int:
    if not -40 <= v <= 150:
        raise ValueError("must be between -40 and 150 (degrees C)")
    return v


def _positive(v: int) -> int:
    if v <= 0:
        raise ValueError("must be greater than 0")
    return v


def _register(v: int) -> int:
    if not 0 <= v <= 0xFFFF:
        raise ValueError("must be a 16-bit register value (0 to 0xffff)")
    return v


Count = Annotated[int, AfterValidator(_not_negative)]
Percent = Annotated[int, AfterValidator(_percent)]
Watts = Annotated[float, AfterValidator(_not_negative_float)]
Register = Annotated[int, AfterValidator(_register)]
Seconds = Annotated[float, AfterValidator(_not_negative_float)]
Celsius = Annotated[int, AfterValidator(_celsius)]
Mhz = Annotated[int, AfterValidator(_positive)]
NvlinkCounter = Literal["replay", "recovery", "crc_flit", "crc_data"]


def _check_keys(value: dict[str, str], allowed: list[str], what: str) -> dict[str, str]:
    for key in value:
        if key not in allowed:
            raise ValueError(f"{key!r} is not a {what} field (one of: {', '.join(allowed)})")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class GpuHealthSection(_Strict):
    persistence_mode: bool | None = None
    ecc_enabled: bool | None = None
    ecc_volatile_corrected: Count | None = None
    ecc_volatile_uncorrected: Count | None = None
    ecc_aggregate_corrected: Count | None = None
    ecc_aggregate_uncorrected: Count | None = None
    retired_pages_single_bit: Count | None = None
    retired_pages_double_bit: Count | None = None
    retired_pages_pending: bool | None = None
    remapped_rows_correctable: Count | None = None
    remapped_rows_uncorrectable: Count | None = None
    remapped_rows_pending: bool | None = None
    remapped_rows_failed: bool | None = None
    throttle_reasons: list[str] | None = None  # names from hw.throttle, active now
    violation_s: dict[Violation, Seconds] | None = None
    temperature_c: Celsius | None = None
    temperature_slowdown_c: Celsius | None = None
    temperature_shutdown_c: Celsius | None = None
    memory_temperature_c: Celsius | None = None
    memory_temperature_max_c: Celsius | None = None
    app_clock_sm_mhz: Mhz | None = None
    app_clock_mem_mhz: Mhz | None = None
    default_app_clock_sm_mhz: Mhz | None = None
    default_app_clock_mem_mhz: Mhz | None = None
    nvlink_links: Count | None = None
    nvlink_links_up: Count | None = None  # default: the GPU's nvlink_active_links
    nvlink_errors: dict[NvlinkCounter, Count] | None = None
    utilization_pct: Percent | None = None  # when the readings above were taken
    power_draw_w: Watts | None = None
    fan_speed_pct: Percent | None = None
    vbios_version: str | None = None
    bar1_total_mib: Mhz | None = None
    locked_sm_clock_mhz: list[Mhz] | None = None  # [min, max], nvidia-smi -lgc
    unavailable: dict[str, str] = Field(default_factory=dict)

    @field_validator("locked_sm_clock_mhz")
    @classmethod
    def _range(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and (len(v) != 2 or v[0] > v[1]):
            raise ValueError("must be [min, max] MHz with min <= max")
        return v

    @field_validator("throttle_reasons")
    @classmethod
    def _reasons(cls, v: list[str] | None) -> list[str] | None:
        names = [r.name for r in REASONS]
        for name in v or []:
            if name not in names:
                raise ValueError(f"unknown throttle reason {name!r} (one of: {', '.join(names)})")
        return v

    @field_validator("unavailable")
    @classmethod
    def _unavailable(cls, v: dict[str, str]) -> dict[str, str]:
        return _check_keys(v, _GPU_HEALTH_FIELDS, "GPU health")


class NetEntry(_Strict):
    """[[health.net]]: a network port (Ethernet interface or InfiniBand/RoCE port)."""

    name: str
    kind: Literal["ethernet", "infiniband", "roce", "other"] = "ethernet"
    state: str | None = None
    rate_gbps: Watts | None = None
    max_rate_gbps: Watts | None = None


class HealthSection(_Strict):
    """[health]: host facts."""

    pci_extra_gpus: list[str] = Field(default_factory=list)  # on PCI, not seen by NVML
    dev_shm_mib: Count | None = None
    memlock_kib: Count | Literal["unlimited"] | None = None
    cpu_governor: str | None = None  # the governor of every CPU
    cpu_scaling_driver: str | None = None
    numa_nodes: Annotated[int, AfterValidator(_positive)] | None = None
    process_numa_nodes: list[Count] | None = None
    net: list[NetEntry] | None = None
    nccl_conf: dict[str, str] | None = None
    kernel_module_version: str | None = None
    fabric_manager: Literal["running", "stopped", "failed", "not installed"] | None = None
    cuda_init_error: Count | None = None
    unavailable: dict[str, str] = Field(default_factory=dict)

    @field_validator("pci_extra_gpus")
    @classmethod
    def _bus_ids(cls, v: list[str]) -> list[str]:
        out = []
        for bus in v:
            m = _BUS_ID_RE.match(bus)
            if not m:
                raise ValueError(f'{bus!r} must look like "00000000:04:00.0"')
            domain = int(m["domain"] or "0", 16)
            out.append(f"{domain:08X}:{m['bus'].upper()}:{m['dev'].upper()}.{m['fn']}")
        return out

    @field_validator("unavailable")
    @classmethod
    def _unavailable(cls, v: dict[str, str]) -> dict[str, str]:
        return _check_keys(v, _HOST_FIELDS, "host health")


class AcsEntry(_Strict):
    """[[kernel.acs]]: a bridge between GPUs and its ACS control register."""

    bridge: str
    control: Register | None = None  # absent: the bridge has no ACS capability
    gpus: list[int]  # the GPUs whose traffic crosses it

    @field_validator("bridge")
    @classmethod
    def _bdf(cls, v: str) -> str:
        if not re.match(r"^[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$", v):
            raise ValueError('must look like "0000:40:01.1"')
        return v.lower()


class KernelSection(_Strict):
    cmdline: str | None = None
    iommu_groups: Count | None = None
    iommu_group_type: Literal["identity", "DMA", "DMA-FQ"] | None = None
    log: str | None = None  # kernel log text, as dmesg prints it
    acs: list[AcsEntry] | None = None
    unavailable: dict[str, str] = Field(default_factory=dict)

    @field_validator("unavailable")
    @classmethod
    def _unavailable(cls, v: dict[str, str]) -> dict[str, str]:
        return _check_keys(v, ["cmdline", "iommu_groups", "acs", "xids", "kernel_events"], "kernel")


def gpu_health(index: int, section: GpuHealthSection | None, rig: Rig) -> GpuHealth:
    h = GpuHealth(index=index)
    if section is not None:
        values = section.model_dump(exclude={"throttle_reasons", "unavailable"})
        for key, value in values.items():
            setattr(h, key, value)
        if section.throttle_reasons is not None:
            names = set(section.throttle_reasons)
            h.throttle_reasons = sum(r.bit for r in REASONS if r.name in names)
        h.unavailable.update(section.unavailable)
        if h.nvlink_links_up is None and h.nvlink_links is not None:
            gpu = next((g for g in rig.gpus if g.index == index), None)
            h.nvlink_links_up = (gpu.nvlink_active_links or 0) if gpu else None
    for name in _GPU_HEALTH_FIELDS:
        if name != "unavailable" and getattr(h, name) is None:
            h.unavailable.setdefault(name, NOT_IN_FILE)
    return h


def host_health(
    health: HealthSection | None,
    kernel: KernelSection | None,
    env: dict[str, str] | None,
    rig: Rig,
) -> HostHealth:
    host = HostHealth()
    if health is not None:
        host.pci_gpus = [g.bus_id for g in rig.gpus if g.bus_id] + health.pci_extra_gpus
        host.pci_gpu_drivers = dict.fromkeys(host.pci_gpus, "nvidia")
        if health.dev_shm_mib is not None:
            host.dev_shm_bytes = health.dev_shm_mib * 2**20
        if health.memlock_kib == "unlimited":
            host.memlock_bytes = -1
        elif health.memlock_kib is not None:
            host.memlock_bytes = health.memlock_kib * 1024
        if health.cpu_governor is not None:
            host.cpu_governors = {health.cpu_governor: rig.system.cpu_cores or 1}
        host.cpu_scaling_driver = health.cpu_scaling_driver
        host.numa_nodes = health.numa_nodes
        host.process_numa_nodes = health.process_numa_nodes
        if health.net is not None:
            host.net_ports = [NetPort(**n.model_dump()) for n in health.net]
        host.nccl_conf = health.nccl_conf
        if health.nccl_conf is not None:
            host.nccl_conf_path = "/etc/nccl.conf"
        host.kernel_module_version = health.kernel_module_version
        host.fabric_manager = health.fabric_manager
        host.cuda_init_error = health.cuda_init_error
        host.unavailable.update(health.unavailable)
    if kernel is not None:
        host.cmdline = kernel.cmdline
        host.iommu_groups = kernel.iommu_groups
        host.iommu_group_type = kernel.iommu_group_type
        if kernel.log is not None:
            host.kernel_log_source = "simulated"
            gpu_bus = {g.index: g.bus_id for g in rig.gpus if g.bus_id}
            host.xids = match_gpus(parse_xids(kernel.log), gpu_bus)
            host.kernel_events = match_gpus(parse_kernel_events(kernel.log), gpu_bus)
        if kernel.acs is not None:
            host.acs = [
                AcsBridge(bridge=a.bridge, control=a.control, gpus=a.gpus, source="simulated")
                for a in kernel.acs
            ]
        host.unavailable.update(kernel.unavailable)
    host.env = env
    for name in _HOST_FIELDS:
        if getattr(host, name) is None:
            host.unavailable.setdefault(name, NOT_IN_FILE)
    return host


class HealthSpecError(ValueError):
    """A health section that names something the rig does not have."""

    def __init__(self, where: str, what: str) -> None:
        super().__init__(f"{where}: {what}")
        self.where, self.what = where, what


def build_health(
    rig: Rig,
    gpu_sections: list[GpuHealthSection | None],
    health: HealthSection | None,
    kernel: KernelSection | None,
    env: dict[str, str] | None,
) -> HealthInfo:
    """The HealthInfo of a simulated rig; `gpu_sections` is per GPU index."""
    n = len(rig.gpus)
    for k, entry in enumerate(kernel.acs or [] if kernel else []):
        for g in entry.gpus:
            if not 0 <= g < n:
                raise HealthSpecError(f"kernel.acs[{k}].gpus", f"GPU {g} does not exist")
    return HealthInfo(
        gpus=[gpu_health(g.index, gpu_sections[g.index], rig) for g in rig.gpus],
        host=host_health(health, kernel, env, rig),
    )
