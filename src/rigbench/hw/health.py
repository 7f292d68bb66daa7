"""Health facts for `rigbench doctor`: what NVML keeps per GPU (ECC, remapped rows,
throttle history, temperatures against their limits, application clocks, NVLink state)
and what the host says (NVIDIA devices on the PCI bus, IOMMU, ACS on the bridges between
GPUs, Xid errors in the kernel log, /dev/shm, memlock, CPU governor, the environment).

Plain dataclasses, the same for live and simulated rigs. As in `hw.model`, a figure that
cannot be read is None and the reason goes in `unavailable` (field name -> why).
Live host facts are read by `read_host_health`; GPU facts by `hw.nvml_health`.
"""

from __future__ import annotations

import glob
import os
import resource
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from rigbench.hw.model import AcsBridge, Rig, XidEvent

# Variables that change how NCCL and CUDA use the GPUs; the doctor judges them.
ENV_VARIABLES = (
    "NCCL_P2P_DISABLE",
    "NCCL_P2P_LEVEL",
    "NCCL_SHM_DISABLE",
    "NCCL_IB_DISABLE",
    "NCCL_NET",
    "NCCL_SOCKET_IFNAME",
    "NCCL_ALGO",
    "NCCL_PROTO",
    "NCCL_DEBUG",
    "NCCL_NVLS_ENABLE",
    "CUDA_VISIBLE_DEVICES",
    "CUDA_DEVICE_ORDER",
    "CUDA_LAUNCH_BLOCKING",
)

# Accumulated clock-reduction time (NVML violation counters), by our name.
VIOLATION_NAMES = (
    "power",  # at the power limit (software power cap)
    "thermal",  # thermal limit
    "sync_boost",
    "board_limit",
    "low_utilization",
    "reliability",
    "sw_thermal",
    "hw_thermal",
    "hw_power_brake",
)

IommuMode = Literal["off", "passthrough", "translated", "unknown"]


@dataclass(kw_only=True, slots=True)
class GpuHealth:
    """One GPU's health counters and limits. Counts are since the driver loaded
    ("volatile") or over the GPU's life ("aggregate"), as nvidia-smi -q -d ECC shows."""

    index: int
    persistence_mode: bool | None = None  # nvidia-smi "Persistence-M"
    ecc_enabled: bool | None = None  # current ECC mode
    ecc_volatile_corrected: int | None = None
    ecc_volatile_uncorrected: int | None = None
    ecc_aggregate_corrected: int | None = None
    ecc_aggregate_uncorrected: int | None = None
    # Page retirement (Pascal/Volta/Turing datacenter GPUs), nvidia-smi -q -d PAGE_RETIREMENT
    retired_pages_single_bit: int | None = None
    retired_pages_double_bit: int | None = None
    retired_pages_pending: bool | None = None
    # Row remapping (A100 and later), nvidia-smi -q -d ROW_REMAPPER
    remapped_rows_correctable: int | None = None
    remapped_rows_uncorrectable: int | None = None
    remapped_rows_pending: bool | None = None  # a reset applies it
    remapped_rows_failed: bool | None = None  # no spare rows were left
    # NVML clocks event ("throttle") reasons active now; decode with hw.throttle
    throttle_reasons: int | None = None
    # Seconds of reduced clocks since the driver loaded, by VIOLATION_NAMES
    violation_s: dict[str, float] | None = None
    temperature_c: int | None = None
    temperature_slowdown_c: int | None = None  # the GPU slows down here
    temperature_shutdown_c: int | None = None  # the GPU shuts down here
    memory_temperature_c: int | None = None  # HBM GPUs; GDDR6X cards do not report it
    memory_temperature_max_c: int | None = None
    app_clock_sm_mhz: int | None = None  # nvidia-smi -ac sets these
    app_clock_mem_mhz: int | None = None
    default_app_clock_sm_mhz: int | None = None
    default_app_clock_mem_mhz: int | None = None
    nvlink_links: int | None = None  # links the GPU has (0: no NVLink)
    nvlink_links_up: int | None = None
    # Summed over links since the driver loaded: replay, recovery, crc_flit, crc_data
    nvlink_errors: dict[str, int] | None = None
    unavailable: dict[str, str] = field(default_factory=dict)


@dataclass(kw_only=True, slots=True)
class HostHealth:
    # Bus ids ("00000000:41:00.0") of NVIDIA display/3D controllers on the PCI bus
    pci_gpus: list[str] | None = None
    # bus id -> the kernel driver bound to it ("nvidia", "vfio-pci", "" for none)
    pci_gpu_drivers: dict[str, str] | None = None
    cmdline: str | None = None
    iommu_groups: int | None = None  # entries of /sys/kernel/iommu_groups (0: IOMMU off)
    iommu_group_type: str | None = None  # of the GPUs' groups: "identity", "DMA", "DMA-FQ"
    acs: list[AcsBridge] | None = None
    xids: list[XidEvent] | None = None
    kernel_log_source: str | None = None
    env: dict[str, str] | None = None  # only ENV_VARIABLES that are set
    dev_shm_bytes: int | None = None
    memlock_bytes: int | None = None  # soft RLIMIT_MEMLOCK; -1 is unlimited
    cpu_governors: dict[str, int] | None = None  # governor -> number of CPUs
    cpu_scaling_driver: str | None = None
    numa_nodes: int | None = None
    unavailable: dict[str, str] = field(default_factory=dict)


@dataclass(kw_only=True, slots=True)
class HealthInfo:
    """Everything the doctor reads besides the Rig snapshot."""

    gpus: list[GpuHealth] = field(default_factory=list)
    host: HostHealth = field(default_factory=HostHealth)

    def gpu(self, index: int) -> GpuHealth | None:
        for g in self.gpus:
            if g.index == index:
                return g
        return None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def iommu_mode(host: HostHealth) -> tuple[IommuMode, str]:
    """Whether DMA from the GPUs is translated by an IOMMU, and the evidence in words.

    The group type (kernel 5.11+) is the truth; without it the kernel command line
    decides between passthrough and translation."""
    from rigbench.hw.kernel import parse_cmdline_iommu

    groups = host.iommu_groups
    if groups == 0:
        return "off", "no IOMMU groups in /sys/kernel/iommu_groups"
    gtype = (host.iommu_group_type or "").upper()
    if gtype:  # a group type means the IOMMU is on
        count = f"{groups} IOMMU groups, " if groups else ""
        if gtype == "IDENTITY":
            return "passthrough", f"{count}the GPUs' group type is identity"
        return "translated", f"{count}the GPUs' group type is {host.iommu_group_type}"
    if host.cmdline is not None:
        flags = parse_cmdline_iommu(host.cmdline)
        if flags.get("passthrough"):
            words = "kernel command line sets passthrough"
            return "passthrough", words + (f"; {groups} IOMMU groups" if groups else "")
        if flags.get("off"):
            return "off", "kernel command line turns the IOMMU off"
        if groups:
            return "translated", f"{groups} IOMMU groups and no passthrough on the command line"
    return "unknown", "neither IOMMU groups nor the kernel command line could be read"


# --- live host facts -----------------------------------------------------------------------


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text()
    except OSError:
        return None


def _shm(host: HostHealth) -> None:
    try:
        st = os.statvfs("/dev/shm")
    except OSError as exc:
        host.unavailable["dev_shm_bytes"] = f"/dev/shm: {exc.strerror or exc}"
        return
    host.dev_shm_bytes = st.f_blocks * st.f_frsize


def _memlock(host: HostHealth) -> None:
    soft, _ = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    host.memlock_bytes = -1 if soft == resource.RLIM_INFINITY else int(soft)


def _governors(host: HostHealth) -> None:
    counts: dict[str, int] = {}
    for path in glob.glob("/sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_governor"):
        text = _read(path)
        if text:
            counts[text.strip()] = counts.get(text.strip(), 0) + 1
    if not counts:
        host.unavailable["cpu_governors"] = (
            "no cpufreq in sysfs (a virtual machine, or the firmware controls CPU frequency)"
        )
        return
    host.cpu_governors = counts
    driver = _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_driver")
    host.cpu_scaling_driver = driver.strip() if driver else None


def _numa(host: HostHealth) -> None:
    nodes = glob.glob("/sys/devices/system/node/node[0-9]*")
    if nodes:
        host.numa_nodes = len(nodes)
    else:
        host.unavailable["numa_nodes"] = "no /sys/devices/system/node (kernel without NUMA)"


def read_env() -> dict[str, str]:
    return {k: os.environ[k] for k in ENV_VARIABLES if k in os.environ}


def read_host_health(rig: Rig) -> HostHealth:
    """Host facts of this machine for the GPUs of `rig`; never raises for a fact it
    cannot read (the reason goes in `unavailable`)."""
    from rigbench.hw.kernel import iommu_state, match_gpus, parse_xids, read_kernel_log
    from rigbench.hw.pci import acs_bridges, nvidia_gpus_on_pci

    host = HostHealth(env=read_env())
    gpu_bus = {g.index: g.bus_id for g in rig.gpus if g.bus_id}
    listed = nvidia_gpus_on_pci()
    if isinstance(listed, str):
        host.unavailable["pci_gpus"] = listed
        host.unavailable["pci_gpu_drivers"] = listed
    else:
        host.pci_gpus = list(listed)
        host.pci_gpu_drivers = listed
    host.cmdline = _read("/proc/cmdline")
    if host.cmdline is None:
        host.unavailable["cmdline"] = "/proc/cmdline cannot be read"
    else:
        host.cmdline = host.cmdline.strip()
    host.iommu_groups, host.iommu_group_type = iommu_state(list(gpu_bus.values()))
    bridges = acs_bridges(gpu_bus)
    if isinstance(bridges, str):
        host.unavailable["acs"] = bridges
    else:
        host.acs = bridges
    log = read_kernel_log()
    if log.text is None:
        host.unavailable["xids"] = log.why or "kernel log unreadable"
    else:
        host.kernel_log_source = log.source
        host.xids = match_gpus(parse_xids(log.text), gpu_bus)
    _shm(host)
    _memlock(host)
    _governors(host)
    _numa(host)
    return host
