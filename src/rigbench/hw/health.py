"""Health facts for `rigbench doctor`: what NVML keeps per GPU (ECC, remapped rows,
throttle history, temperatures against their limits, application clocks, NVLink state)
and what the host says (NVIDIA devices on the PCI bus, IOMMU, ACS on the bridges between
GPUs, Xid errors in the kernel log, /dev/shm, memlock, CPU governor, the environment).

Plain dataclasses, the same for live and simulated rigs. As in `hw.model`, a figure that
cannot be read is None and the reason goes in `unavailable` (field name -> why).
Live host facts are read by `read_host_health`; GPU facts by `hw.nvml_health`.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import resource
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from rigbench.hw.model import AcsBridge, KernelEvent, Rig, SystemInfo, XidEvent

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
Violation = Literal[
    "power",  # at the power limit (software power cap)
    "thermal",  # thermal limit
    "sync_boost",
    "board_limit",
    "low_utilization",
    "reliability",
    "sw_thermal",
    "hw_thermal",
    "hw_power_brake",
]
VIOLATION_NAMES: tuple[Violation, ...] = get_args(Violation)

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
    # What the GPU was doing when the readings above were taken (nvidia-smi "GPU-Util"):
    # temperatures of an idle and a busy GPU are not comparable.
    utilization_pct: int | None = None
    power_draw_w: float | None = None
    fan_speed_pct: int | None = None  # None on passive (datacenter) cards
    vbios_version: str | None = None
    bar1_total_mib: int | None = None  # 256 MiB: resizable BAR off (or not offered)
    # nvidia-smi -lgc: [min, max] MHz the SM clock is locked to (None: not locked)
    locked_sm_clock_mhz: list[int] | None = None
    unavailable: dict[str, str] = field(default_factory=dict)


@dataclass(kw_only=True, slots=True)
class NetPort:
    """A network port: an Ethernet interface (/sys/class/net) or an InfiniBand/RoCE port
    (/sys/class/infiniband/<dev>/ports/<n>)."""

    name: str  # "eth0", "mlx5_0/1"
    kind: Literal["ethernet", "infiniband", "roce", "other"]
    state: str | None = None  # "up", "down", "ACTIVE", "DOWN", ...
    rate_gbps: float | None = None  # link rate the port trained to
    max_rate_gbps: float | None = None  # what the port can do, when known


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
    # NUMA nodes of the CPUs this process may run on (sched_getaffinity)
    process_numa_nodes: list[int] | None = None
    kernel_events: list[KernelEvent] | None = None  # from the same log as `xids`
    net_ports: list[NetPort] | None = None
    nccl_conf: dict[str, str] | None = None  # /etc/nccl.conf and ~/.nccl.conf, merged
    nccl_conf_path: str | None = None
    # the NVIDIA kernel module's version (/proc/driver/nvidia/version), to compare with the
    # user-space driver NVML reports
    kernel_module_version: str | None = None
    # nvidia-fabricmanager: "running", "stopped", "failed", "not installed"
    fabric_manager: str | None = None
    # the CUDA error cuInit returned (802: system not yet initialised), 0 when it worked
    cuda_init_error: int | None = None
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


def _numa(host: HostHealth, system: SystemInfo) -> None:
    """The NUMA layout as the rig's system facts read it (hw.system, one reading for bench
    and doctor), with the reason where one is unknown."""
    for name in ("numa_nodes", "process_numa_nodes"):
        value = getattr(system, name)
        setattr(host, name, value)
        if value is None:
            host.unavailable[name] = system.unavailable.get(name, "not read with the rig")


_ETHTOOL_MODES = (
    "Supported link modes",
    "Advertised link modes",
    "Link partner advertised link modes",
)
_MODE_MBPS = re.compile(r"\b(\d+)base[\w-]+/Full\b")


def ethtool_max_gbps(text: str) -> float | None:
    """The fastest rate both ends of an Ethernet link agree they can run, from `ethtool
    IFACE`: the highest of its 'Supported link modes', capped by the highest 'Advertised'
    (a speed the admin limited is not a fault) and 'Link partner advertised' one where the
    partner reports them (a 100 G NIC on a 25 G switch port is not degraded); None when
    ethtool lists no supported mode."""
    best: dict[str, int] = {}
    current: str | None = None
    for line in text.splitlines():
        head, sep, rest = line.partition(":")
        if sep and head.strip():
            current = head.strip() if head.strip() in _ETHTOOL_MODES else None
            chunk = rest
        else:
            chunk = line
        if current is None:
            continue
        for mbps in _MODE_MBPS.findall(chunk):
            best[current] = max(best.get(current, 0), int(mbps))
    if not best.get(_ETHTOOL_MODES[0]):
        return None
    return min(best.values()) / 1000


def _ethtool_max(name: str) -> float | None:
    """ethtool_max_gbps of an interface; None without ethtool or an answer."""
    import shutil
    import subprocess

    if not shutil.which("ethtool"):
        return None
    try:
        proc = subprocess.run(
            ["ethtool", name], capture_output=True, text=True, timeout=3, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return ethtool_max_gbps(proc.stdout)


def _net_ports(host: HostHealth) -> None:
    ports: list[NetPort] = []
    for path in sorted(glob.glob("/sys/class/net/*")):
        name = path.rsplit("/", 1)[-1]
        if name == "lo" or not os.path.exists(f"{path}/device"):
            continue  # virtual interfaces (docker0, bridges, veth) have no device
        speed = _read(f"{path}/speed")
        mbps = None
        with contextlib.suppress(ValueError, TypeError):
            mbps = int((speed or "").strip())
        # type 32: IPoIB, a socket interface on an InfiniBand port (listed below as its HCA
        # port too)
        kind: Literal["ethernet", "infiniband", "roce", "other"] = (
            "other" if (_read(f"{path}/type") or "").strip() == "32" else "ethernet"
        )
        speed_gbps = mbps / 1000 if mbps and mbps > 0 else None
        ports.append(
            NetPort(
                name=name,
                kind=kind,
                state=(_read(f"{path}/operstate") or "").strip() or None,
                rate_gbps=speed_gbps,
                # what the link could run at (a 100 GbE port trained at 25 reads as such)
                max_rate_gbps=_ethtool_max(name) if speed_gbps and kind == "ethernet" else None,
            )
        )
    for path in sorted(glob.glob("/sys/class/infiniband/*/ports/*")):
        dev, port = path.split("/")[-3], path.split("/")[-1]
        rate = (_read(f"{path}/rate") or "").split()
        layer = (_read(f"{path}/link_layer") or "").strip()
        gbps = None
        with contextlib.suppress(ValueError, IndexError):
            gbps = float(rate[0])  # "200 Gb/sec (4X HDR)"
        state = (_read(f"{path}/state") or "").strip()
        ports.append(
            NetPort(
                name=f"{dev}/{port}",
                kind="roce" if layer == "Ethernet" else "infiniband",
                state=state.split(":")[-1].strip() or None,
                rate_gbps=gbps,
            )
        )
    host.net_ports = ports


def _nccl_conf(host: HostHealth) -> None:
    """NCCL reads $NCCL_CONF_FILE, else ~/.nccl.conf, else /etc/nccl.conf (NCCL docs,
    'Environment Variables')."""
    candidates = [os.environ.get("NCCL_CONF_FILE"), os.path.expanduser("~/.nccl.conf")]
    candidates.append("/etc/nccl.conf")
    for path in candidates:
        if not path:
            continue
        text = _read(path)
        if text is None:
            continue
        conf = {}
        for line in text.splitlines():
            key, eq, value = line.split("#", 1)[0].partition("=")
            if eq and key.strip():
                conf[key.strip()] = value.strip()
        host.nccl_conf, host.nccl_conf_path = conf, path
        return
    host.nccl_conf = {}


def _driver_module(host: HostHealth, rig: Rig) -> None:
    text = _read("/proc/driver/nvidia/version")
    if text is None:
        host.unavailable["kernel_module_version"] = "no /proc/driver/nvidia/version"
    else:
        import re

        m = re.search(r"Kernel Module(?: for [\w-]+)?\s+(\d+\.\d+(?:\.\d+)?)", text)
        host.kernel_module_version = m.group(1) if m else None
    if not any(p.via_nvswitch for p in rig.pairs):
        host.unavailable["fabric_manager"] = "no NVSwitch on this rig"
        return
    import shutil
    import subprocess

    if not shutil.which("systemctl"):
        host.unavailable["fabric_manager"] = "no systemctl to ask"
        return
    try:
        proc = subprocess.run(
            ["systemctl", "is-active", "nvidia-fabricmanager"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        host.unavailable["fabric_manager"] = f"systemctl: {exc}"
        return
    state = proc.stdout.strip()
    host.fabric_manager = {"active": "running", "failed": "failed"}.get(
        state, "not installed" if proc.returncode == 4 else "stopped"
    )


_CUINIT = (
    "import ctypes,sys\n"
    "try:\n lib = ctypes.CDLL('libcuda.so.1')\n"
    "except OSError as e:\n print('none', e); sys.exit(0)\n"
    "print('code', lib.cuInit(0))\n"
)


def _cuda_init(host: HostHealth, rig: Rig) -> None:
    """What cuInit returns, on NVSwitch rigs only (error 802 there means the fabric manager
    is not running); asked in a child process so this one keeps no CUDA state."""
    if not any(p.via_nvswitch for p in rig.pairs):
        host.unavailable["cuda_init_error"] = "asked on NVSwitch rigs only"
        return
    import subprocess
    import sys

    try:
        proc = subprocess.run(
            [sys.executable, "-c", _CUINIT], capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        host.unavailable["cuda_init_error"] = f"cuInit: {exc}"
        return
    words = proc.stdout.split()
    if len(words) >= 2 and words[0] == "code" and words[1].isdigit():
        host.cuda_init_error = int(words[1])
    else:
        host.unavailable["cuda_init_error"] = (proc.stdout or proc.stderr).strip()[:200] or (
            "cuInit gave no answer"
        )


def read_env() -> dict[str, str]:
    return {k: os.environ[k] for k in ENV_VARIABLES if k in os.environ}


def read_host_health(rig: Rig) -> HostHealth:
    """Host facts of this machine for the GPUs of `rig`; never raises for a fact it
    cannot read (the reason goes in `unavailable`)."""
    from rigbench.hw.kernel import (
        iommu_state,
        match_gpus,
        parse_kernel_events,
        parse_xids,
        read_kernel_log,
    )
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
        host.kernel_events = match_gpus(parse_kernel_events(log.text), gpu_bus)
    if log.text is None:
        host.unavailable["kernel_events"] = host.unavailable["xids"]
    _cuda_init(host, rig)
    _net_ports(host)
    _nccl_conf(host)
    _driver_module(host, rig)
    _shm(host)
    _memlock(host)
    _governors(host)
    _numa(host, rig.system)
    return host
