"""The backend of a machine with no NVIDIA GPU (or no driver): host facts only."""

from __future__ import annotations

from rigbench.hw.model import Rig
from rigbench.hw.system import host_system_info


class CpuOnlyBackend:
    kind = "none"

    def rig(self) -> Rig:
        system = host_system_info()
        system.unavailable["driver_version"] = "no NVIDIA driver (NVML did not load)"
        return Rig(source="none", system=system)
