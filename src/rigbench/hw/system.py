"""Host facts from procfs, the platform module and the installed libraries."""

from __future__ import annotations

import importlib.util
import os
import platform
import re
import socket
from importlib import metadata
from pathlib import Path

from rigbench.hw import numa
from rigbench.hw.model import SystemInfo


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text()
    except OSError:
        return None


def _os_name() -> str | None:
    text = _read("/etc/os-release")
    if text:
        for line in text.splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"')
    return platform.platform()


def _cpu_model_and_sockets() -> tuple[str | None, int | None]:
    text = _read("/proc/cpuinfo")
    if not text:
        return platform.processor() or None, None
    model = None
    sockets: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and model is None:
            model = value.strip()
        elif key == "physical id":
            sockets.add(value.strip())
    return model, (len(sockets) or None)


def _ram_bytes() -> int | None:
    text = _read("/proc/meminfo")
    if text:
        for line in text.splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return None


def torch_versions() -> tuple[str | None, str | None, str | None]:
    """(torch, the CUDA it was built with, NCCL) or Nones where unknown, read from the
    installed packages without importing torch (that takes seconds): torch's own
    `torch/version.py` for the CUDA it was built with, and the NCCL wheel that pip
    builds of torch depend on (`nvidia-nccl-cu*`). A build with NCCL linked in statically
    has no such package: its NCCL version is unknown here."""
    try:
        torch_v = metadata.version("torch")
    except metadata.PackageNotFoundError:
        return None, None, None
    spec = importlib.util.find_spec("torch")
    cuda = None
    if spec is not None and spec.submodule_search_locations:
        text = _read(os.path.join(list(spec.submodule_search_locations)[0], "version.py"))
        m = re.search(r"^cuda\s*(?::[^=]*)?=\s*'([^']+)'", text or "", re.MULTILINE)
        cuda = m.group(1) if m else None
    nccl = None
    for dist in metadata.distributions():
        name = (dist.metadata["Name"] or "").lower().replace("_", "-")
        if name.startswith("nvidia-nccl-cu"):
            nccl = dist.version
            break
    return torch_v, cuda, nccl


def host_system_info() -> SystemInfo:
    """Everything about the host that does not come from the GPU driver."""
    cpu_model, sockets = _cpu_model_and_sockets()
    torch_v, torch_cuda, nccl = torch_versions()
    nodes, allowed = numa.node_cpus(), numa.allowed_cpus()
    info = SystemInfo(
        hostname=socket.gethostname(),
        os=_os_name(),
        kernel=platform.release(),
        cpu_model=cpu_model,
        cpu_cores=os.cpu_count(),
        cpu_sockets=sockets,
        numa_nodes=len(nodes) if nodes else None,
        process_numa_nodes=numa.process_nodes(nodes, allowed) if allowed is not None else None,
        ram_bytes=_ram_bytes(),
        torch_version=torch_v,
        torch_cuda_version=torch_cuda,
        nccl_version=nccl,
        python_version=platform.python_version(),
    )
    if torch_v is None:
        info.unavailable["torch_version"] = "torch is not installed"
    if nodes is None:
        info.unavailable["numa_nodes"] = "no /sys/devices/system/node (kernel without NUMA)"
    if info.process_numa_nodes is None:
        info.unavailable["process_numa_nodes"] = (
            "this OS has no sched_getaffinity" if allowed is None else "no NUMA CPU lists in sysfs"
        )
    return info
