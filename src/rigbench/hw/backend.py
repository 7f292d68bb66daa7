"""The Backend protocol and how a command picks one."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from rigbench.hw.health import HealthInfo
from rigbench.hw.model import Rig
from rigbench.hw.telemetry import TelemetrySource


class Backend(Protocol):
    """Reads the rig. Live (NVML), simulated (a TOML file) or none (CPU-only machine)."""

    kind: str

    def rig(self) -> Rig:
        """A fresh snapshot of GPUs, pairs and system facts."""
        ...

    def health(self, rig: Rig) -> HealthInfo:
        """Health counters of `rig`'s GPUs and the host facts `rigbench doctor` judges."""
        ...

    def telemetry(self, gpus: list[int] | None = None) -> TelemetrySource:
        """A telemetry source for `gpus` (default: every GPU) that `monitor` and `burnin`
        sample from their own thread (see hw.telemetry)."""
        ...


def select_backend(simulate: Path | None = None) -> Backend:
    """The simulated rig if a file is given, else NVML if it loads, else the CPU-only one."""
    if simulate is not None:
        from rigbench.hw.simulated import SimulatedBackend

        return SimulatedBackend.from_file(simulate)
    from rigbench.hw.nvml import NvmlBackend, nvml_available

    if nvml_available():
        return NvmlBackend()
    from rigbench.hw.cpu_only import CpuOnlyBackend

    return CpuOnlyBackend()
