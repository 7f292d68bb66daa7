"""The backend of a machine with no NVIDIA GPU (or no driver): host facts only."""

from __future__ import annotations

from rigbench.hw.health import HealthInfo
from rigbench.hw.model import Rig
from rigbench.hw.system import host_system_info
from rigbench.hw.telemetry import TelemetrySource


class CpuOnlyBackend:
    kind = "none"

    def rig(self) -> Rig:
        system = host_system_info()
        system.unavailable["driver_version"] = "no NVIDIA driver (NVML did not load)"
        return Rig(source="none", system=system)

    def health(self, rig: Rig) -> HealthInfo:
        from rigbench.hw.health import read_host_health

        return HealthInfo(host=read_host_health(rig))

    def telemetry(self, gpus: list[int] | None = None) -> TelemetrySource:
        from rigbench.hw.telemetry import NoGpuTelemetry

        return NoGpuTelemetry()
