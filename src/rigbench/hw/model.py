"""What the hardware layer reports: plain dataclasses, identical for live and simulated rigs.

A figure a GPU or platform does not expose is `None`; the reason, where known, goes in
`unavailable` (field name -> why), never a guess.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

# nvidia-smi topo -m codes, from nearest to farthest. NV# is expressed by `nvlink_count`.
PciePath = Literal["SELF", "PIX", "PXB", "PHB", "NODE", "SYS"]
PCIE_PATH_MEANING: dict[str, str] = {
    "PIX": "at most one PCIe bridge",
    "PXB": "several PCIe bridges, no host bridge",
    "PHB": "through a PCIe host bridge (the CPU)",
    "NODE": "across host bridges within one NUMA node",
    "SYS": "across the inter-socket link (QPI/UPI/Infinity Fabric)",
}
# What the driver says about peer access; what actually happens on a transfer is measured.
P2PState = Literal["ok", "unsupported", "disabled", "unknown"]


# What NVML-backed rigbench says when it may not set a power limit (hw.nvml), and what a
# simulated rig with `power_limit_set = "needs_root"` replays.
POWER_LIMIT_NEEDS_ROOT = "setting a GPU power limit needs root (nvmlDeviceSetPowerManagementLimit)"


@dataclass(kw_only=True, slots=True)
class PcieLink:
    """A GPU's PCIe link. `gen_max`/`width_max` are what the GPU and slot together allow;
    `gpu_gen_max`/`gpu_width_max` what the GPU alone can do (a riser shows as the gap).
    `gen_current`/`width_current` are read whenever asked (an idle GPU trains its link down
    to save power); `gen_loaded`/`width_loaded` are the highest readings while the GPU was
    busy, when such a reading exists (doctor's load probe takes it on a live rig)."""

    gen_current: int | None = None
    width_current: int | None = None
    gen_loaded: int | None = None
    width_loaded: int | None = None
    gen_max: int | None = None
    width_max: int | None = None
    gpu_gen_max: int | None = None
    gpu_width_max: int | None = None
    replay_count: int | None = None


@dataclass(kw_only=True, slots=True)
class GpuInfo:
    index: int
    name: str
    uuid: str | None = None
    bus_id: str | None = None
    memory_total_bytes: int | None = None
    compute_capability: str | None = None  # "9.0"
    pcie: PcieLink = field(default_factory=PcieLink)
    power_limit_w: float | None = None
    power_default_limit_w: float | None = None
    sm_clock_mhz: int | None = None
    mem_clock_mhz: int | None = None
    sm_clock_max_mhz: int | None = None
    mem_clock_max_mhz: int | None = None
    numa_node: int | None = None
    nvlink_version: int | None = None
    nvlink_active_links: int | None = None
    unavailable: dict[str, str] = field(default_factory=dict)


@dataclass(kw_only=True, slots=True)
class PairLink:
    """How two GPUs reach each other."""

    a: int
    b: int
    nvlink_count: int = 0
    nvlink_version: int | None = None
    via_nvswitch: bool = False
    pcie_path: PciePath | None = None
    p2p: P2PState = "unknown"
    p2p_detail: str | None = None

    @property
    def topo_code(self) -> str:
        """The cell nvidia-smi topo -m would print for this pair."""
        if self.nvlink_count:
            return f"NV{self.nvlink_count}"
        return self.pcie_path or "?"


@dataclass(kw_only=True, slots=True)
class SystemInfo:
    hostname: str | None = None
    os: str | None = None
    kernel: str | None = None
    cpu_model: str | None = None
    cpu_cores: int | None = None
    cpu_sockets: int | None = None
    numa_nodes: int | None = None
    process_numa_nodes: list[int] | None = None  # the nodes this process may run on
    ram_bytes: int | None = None
    driver_version: str | None = None
    cuda_driver_version: str | None = None
    torch_version: str | None = None
    torch_cuda_version: str | None = None
    nccl_version: str | None = None
    python_version: str | None = None
    unavailable: dict[str, str] = field(default_factory=dict)


@dataclass(kw_only=True, slots=True)
class Rig:
    """A snapshot of the whole machine as the tool sees it."""

    source: str  # "nvml", "simulated:<file>", "none"
    gpus: list[GpuInfo] = field(default_factory=list)
    pairs: list[PairLink] = field(default_factory=list)
    system: SystemInfo = field(default_factory=SystemInfo)
    # Faults a simulated rig plays when benchmarks run on its CPU stand-ins, keyed "a-b".
    p2p_faults: dict[str, str] = field(default_factory=dict)
    # A simulated bad VRAM range per GPU index: (offset bytes, length bytes, flipped bit).
    vram_faults: dict[int, tuple[int, int, int]] = field(default_factory=dict)
    # What a copy between the pair measured on the real rig (GB/s one way), keyed "a-b": a
    # simulated rig's stand-ins copy at CPU speed, so its file gives the real figure.
    p2p_measured_gbps: dict[str, float] = field(default_factory=dict)

    def pair(self, a: int, b: int) -> PairLink | None:
        lo, hi = min(a, b), max(a, b)
        for p in self.pairs:
            if (p.a, p.b) == (lo, hi):
                return p
        return None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(kw_only=True, slots=True)
class XidEvent:
    """One Xid line of the kernel log."""

    code: int
    pci: str | None  # "0000:41:00" as the driver prints it
    gpu: int | None = None  # the rig's index of that GPU, when known
    line: str = ""
    time_s: float | None = None  # seconds since boot, from the line's "[  123.456]"


# Kernel-log lines besides Xid that point at a GPU problem:
# aer: a PCIe Advanced Error Reporting line (corrected or uncorrected link error);
# iommu_fault: an AMD-Vi / DMAR IO_PAGE_FAULT (DMA the IOMMU refused: seed 004's P2P hang);
# api_mismatch: NVRM "API mismatch" (user-space driver and kernel module differ).
KernelEventKind = Literal["aer", "iommu_fault", "api_mismatch"]


@dataclass(kw_only=True, slots=True)
class KernelEvent:
    kind: KernelEventKind
    pci: str | None  # the device the line names ("0000:41:00.0"), when it names one
    gpu: int | None = None
    line: str = ""
    time_s: float | None = None
    severity: str | None = None  # aer: "Corrected" / "Uncorrected (Non-Fatal)" / "Fatal"


@dataclass(kw_only=True, slots=True)
class AcsBridge:
    """A PCIe bridge on the path between GPUs and its ACS control register
    (PCIe base spec, ACS Extended Capability, offset 06h)."""

    bridge: str  # "0000:40:01.1"
    control: int | None  # None: the bridge has no ACS capability
    gpus: list[int] = field(default_factory=list)  # GPUs whose P2P traffic crosses it
    source: str = ""  # "sysfs config", "setpci", "lspci", "simulated"
