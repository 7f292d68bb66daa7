"""Host facts from procfs, the platform module and the installed libraries."""

from __future__ import annotations

import os
import platform
import socket
from pathlib import Path

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
    """(torch, the CUDA it was built with, NCCL) or Nones when torch is not installed."""
    try:
        import torch
    except ImportError:
        return None, None, None
    nccl = None
    try:
        if torch.cuda.is_available():
            v = torch.cuda.nccl.version()
            nccl = ".".join(str(x) for x in v) if isinstance(v, tuple) else str(v)
    except Exception:  # NCCL missing from this build
        nccl = None
    return torch.__version__, torch.version.cuda, nccl


def host_system_info() -> SystemInfo:
    """Everything about the host that does not come from the GPU driver."""
    cpu_model, sockets = _cpu_model_and_sockets()
    torch_v, torch_cuda, nccl = torch_versions()
    info = SystemInfo(
        hostname=socket.gethostname(),
        os=_os_name(),
        kernel=platform.release(),
        cpu_model=cpu_model,
        cpu_cores=os.cpu_count(),
        cpu_sockets=sockets,
        ram_bytes=_ram_bytes(),
        torch_version=torch_v,
        torch_cuda_version=torch_cuda,
        nccl_version=nccl,
        python_version=platform.python_version(),
    )
    if torch_v is None:
        info.unavailable["torch_version"] = "torch is not installed"
    return info
