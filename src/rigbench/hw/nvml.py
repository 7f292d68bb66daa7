"""The live backend: NVML (nvidia-ml-py) for GPUs and links, procfs for the host.

Every NVML query goes through `_query`, so a figure a GPU does not expose becomes
`None` plus a reason in `unavailable`, never an exception.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pynvml

from rigbench.errors import HardwareError
from rigbench.hw.health import HealthInfo
from rigbench.hw.model import (
    POWER_LIMIT_NEEDS_ROOT,
    GpuInfo,
    PairLink,
    PcieLink,
    PciePath,
    Rig,
)
from rigbench.hw.system import host_system_info
from rigbench.hw.telemetry import TelemetrySource

T = TypeVar("T")

_TOPOLOGY: dict[int, PciePath] = {
    pynvml.NVML_TOPOLOGY_INTERNAL: "SELF",
    pynvml.NVML_TOPOLOGY_SINGLE: "PIX",
    pynvml.NVML_TOPOLOGY_MULTIPLE: "PXB",
    pynvml.NVML_TOPOLOGY_HOSTBRIDGE: "PHB",
    pynvml.NVML_TOPOLOGY_NODE: "NODE",
    pynvml.NVML_TOPOLOGY_SYSTEM: "SYS",
}

# nvmlNvlinkVersion_t -> NVLink generation (2.2 is Volta's second NVLink 2 variant).
_NVLINK_GENERATION = {1: 1, 2: 2, 3: 2, 4: 3, 5: 3, 6: 4, 7: 5, 8: 6}

_P2P_STATUS = {
    pynvml.NVML_P2P_STATUS_OK: ("ok", None),
    pynvml.NVML_P2P_STATUS_CHIPSET_NOT_SUPPORED: ("unsupported", "chipset does not support P2P"),
    pynvml.NVML_P2P_STATUS_GPU_NOT_SUPPORTED: ("unsupported", "GPU does not support P2P"),
    pynvml.NVML_P2P_STATUS_IOH_TOPOLOGY_NOT_SUPPORTED: (
        "unsupported",
        "P2P not supported across this PCIe topology (e.g. between CPU sockets)",
    ),
    pynvml.NVML_P2P_STATUS_DISABLED_BY_REGKEY: ("disabled", "disabled by a driver registry key"),
    pynvml.NVML_P2P_STATUS_NOT_SUPPORTED: ("unsupported", "not supported"),
}


def nvml_available() -> bool:
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return False
    pynvml.nvmlShutdown()
    return True


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


class _Reader:
    """Collects reasons for figures NVML would not give."""

    def __init__(self) -> None:
        self.unavailable: dict[str, str] = {}

    def query(self, field: str, fn: Callable[..., T], *args: Any) -> T | None:
        try:
            return fn(*args)
        except pynvml.NVMLError as exc:
            self.unavailable[field] = f"NVML: {exc}"
        except AttributeError:
            self.unavailable[field] = "this nvidia-ml-py has no such query"
        return None


def _numa_node(bus_id: str | None) -> int | None:
    if not bus_id:
        return None
    # NVML bus ids carry 8 domain digits; sysfs uses 4.
    sysfs_id = bus_id.lower()[-12:]
    try:
        node = int(Path(f"/sys/bus/pci/devices/{sysfs_id}/numa_node").read_text())
    except (OSError, ValueError):
        return None
    return node if node >= 0 else None


def _gpu(index: int, handle: Any) -> tuple[GpuInfo, dict[int, str]]:
    """The GPU and, per active NVLink, the bus id of what is at the other end
    ("switch" for an NVSwitch)."""
    r = _Reader()
    pci = r.query("bus_id", pynvml.nvmlDeviceGetPciInfo, handle)
    bus_id = _text(pci.busId) if pci is not None else None
    mem = r.query("memory_total_bytes", pynvml.nvmlDeviceGetMemoryInfo, handle)
    cc = r.query("compute_capability", pynvml.nvmlDeviceGetCudaComputeCapability, handle)
    limit = r.query("power_limit_w", pynvml.nvmlDeviceGetEnforcedPowerLimit, handle)
    default = r.query(
        "power_default_limit_w", pynvml.nvmlDeviceGetPowerManagementDefaultLimit, handle
    )
    link = PcieLink(
        gen_current=r.query("pcie.gen_current", pynvml.nvmlDeviceGetCurrPcieLinkGeneration, handle),
        width_current=r.query("pcie.width_current", pynvml.nvmlDeviceGetCurrPcieLinkWidth, handle),
        gen_max=r.query("pcie.gen_max", pynvml.nvmlDeviceGetMaxPcieLinkGeneration, handle),
        width_max=r.query("pcie.width_max", pynvml.nvmlDeviceGetMaxPcieLinkWidth, handle),
        gpu_gen_max=r.query(
            "pcie.gpu_gen_max", pynvml.nvmlDeviceGetGpuMaxPcieLinkGeneration, handle
        ),
        replay_count=r.query("pcie.replay_count", pynvml.nvmlDeviceGetPcieReplayCounter, handle),
    )
    remotes: dict[int, str] = {}
    nvlink_version = None
    for link_id in range(pynvml.NVML_NVLINK_MAX_LINKS):
        try:
            if pynvml.nvmlDeviceGetNvLinkState(handle, link_id) != pynvml.NVML_FEATURE_ENABLED:
                continue
            code = pynvml.nvmlDeviceGetNvLinkVersion(handle, link_id)
            nvlink_version = _NVLINK_GENERATION.get(code, code)
            remote_type = pynvml.nvmlDeviceGetNvLinkRemoteDeviceType(handle, link_id)
            if remote_type == pynvml.NVML_NVLINK_DEVICE_TYPE_SWITCH:
                remotes[link_id] = "switch"
            else:
                remote = pynvml.nvmlDeviceGetNvLinkRemotePciInfo(handle, link_id)
                remotes[link_id] = _text(remote.busId)
        except pynvml.NVMLError:
            continue  # the link does not exist on this GPU, or NVLink is not supported
    info = GpuInfo(
        index=index,
        name=_text(pynvml.nvmlDeviceGetName(handle)),
        uuid=r.query("uuid", lambda h: _text(pynvml.nvmlDeviceGetUUID(h)), handle),
        bus_id=bus_id,
        memory_total_bytes=int(mem.total) if mem is not None else None,
        compute_capability=f"{cc[0]}.{cc[1]}" if cc else None,
        pcie=link,
        power_limit_w=limit / 1000 if limit is not None else None,
        power_default_limit_w=default / 1000 if default is not None else None,
        sm_clock_mhz=r.query("sm_clock_mhz", pynvml.nvmlDeviceGetClockInfo, handle, 1),
        mem_clock_mhz=r.query("mem_clock_mhz", pynvml.nvmlDeviceGetClockInfo, handle, 2),
        sm_clock_max_mhz=r.query("sm_clock_max_mhz", pynvml.nvmlDeviceGetMaxClockInfo, handle, 1),
        mem_clock_max_mhz=r.query("mem_clock_max_mhz", pynvml.nvmlDeviceGetMaxClockInfo, handle, 2),
        numa_node=_numa_node(bus_id),
        nvlink_version=nvlink_version,
        nvlink_active_links=len(remotes) or None,
        unavailable=r.unavailable,
    )
    return info, remotes


def _pair(
    a: GpuInfo, ha: Any, ra: dict[int, str], b: GpuInfo, hb: Any, rb: dict[int, str]
) -> PairLink:
    direct = sum(1 for bus in ra.values() if b.bus_id and bus.lower() == b.bus_id.lower())
    via_switch = "switch" in ra.values() and "switch" in rb.values()
    count = direct
    if via_switch:
        count = min(
            sum(1 for v in ra.values() if v == "switch"),
            sum(1 for v in rb.values() if v == "switch"),
        )
    path: PciePath | None = None
    try:
        path = _TOPOLOGY.get(pynvml.nvmlDeviceGetTopologyCommonAncestor(ha, hb))
    except pynvml.NVMLError:
        path = None
    p2p, detail = "unknown", None
    try:
        # 0 is NVML_P2P_CAPS_INDEX_READ (pynvml defines that constant as a tuple).
        status = pynvml.nvmlDeviceGetP2PStatus(ha, hb, 0)
        p2p, detail = _P2P_STATUS.get(status, ("unknown", f"NVML P2P status {status}"))
    except pynvml.NVMLError as exc:
        detail = f"NVML: {exc}"
    return PairLink(
        a=a.index,
        b=b.index,
        nvlink_count=count,
        nvlink_version=a.nvlink_version if count else None,
        via_nvswitch=via_switch,
        pcie_path=path,
        p2p=p2p,  # type: ignore[arg-type]
        p2p_detail=detail,
    )


class NvmlBackend:
    kind = "nvml"

    def rig(self) -> Rig:
        pynvml.nvmlInit()
        try:
            system = host_system_info()
            system.driver_version = _text(pynvml.nvmlSystemGetDriverVersion())
            try:
                v = pynvml.nvmlSystemGetCudaDriverVersion_v2()
                system.cuda_driver_version = f"{v // 1000}.{(v % 1000) // 10}"
            except pynvml.NVMLError as exc:
                system.unavailable["cuda_driver_version"] = f"NVML: {exc}"
            handles = [
                pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())
            ]
            gpus, remotes = [], []
            for i, h in enumerate(handles):
                g, rem = _gpu(i, h)
                gpus.append(g)
                remotes.append(rem)
            pairs = [
                _pair(gpus[i], handles[i], remotes[i], gpus[j], handles[j], remotes[j])
                for i in range(len(gpus))
                for j in range(i + 1, len(gpus))
            ]
        finally:
            pynvml.nvmlShutdown()
        return Rig(source="nvml", gpus=gpus, pairs=pairs, system=system)

    def power_limit_settable(self) -> str | None:
        """None when this process may set power limits, else why not (one line)."""
        if os.geteuid() != 0:
            return POWER_LIMIT_NEEDS_ROOT
        return None

    def set_power_limit(self, gpu: int, watts: float) -> None:
        """Set GPU `gpu`'s power limit (root only; the driver clamps it to the GPU's range)."""
        pynvml.nvmlInit()
        try:
            handle = pynvml.nvmlDeviceGetHandleByIndex(gpu)
            pynvml.nvmlDeviceSetPowerManagementLimit(handle, int(round(watts * 1000)))
        except pynvml.NVMLError as exc:
            raise HardwareError(
                f"GPU {gpu}: cannot set the power limit to {watts:g} W: {exc}"
            ) from exc
        finally:
            pynvml.nvmlShutdown()

    def health(self, rig: Rig) -> HealthInfo:
        from rigbench.hw.health import read_host_health
        from rigbench.hw.nvml_health import read_gpu_health

        return HealthInfo(gpus=read_gpu_health(), host=read_host_health(rig))

    def telemetry(self, gpus: list[int] | None = None) -> TelemetrySource:
        from rigbench.hw.nvml_telemetry import NvmlTelemetry

        return NvmlTelemetry(gpus)
