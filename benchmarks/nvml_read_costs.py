"""What one NVML read costs on this machine, query by query, on GPU 0 (JSON on stdout).

The simulated backend's cost model (hw.sim_telemetry.NVML_READ_MS_H200_VM) charges every
figure read the same; this measures whether that holds: each plain query alone, the
instantaneous power field alone, and one nvmlDeviceGetFieldValues call of 1 and of 7 fields
(per call or per field?). Reads only; changes no GPU setting.

    python benchmarks/nvml_read_costs.py [REPEATS]
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import pynvml  # noqa: TID251 - a measurement of NVML itself

FIELDS = (
    "NVML_FI_DEV_POWER_INSTANT",
    "NVML_FI_DEV_POWER_AVERAGE",
    "NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
    "NVML_FI_DEV_MEMORY_TEMP",
    "NVML_FI_DEV_PCIE_REPLAY_COUNTER",
    "NVML_FI_DEV_ECC_SBE_VOL_TOTAL",
    "NVML_FI_DEV_ECC_DBE_VOL_TOTAL",
)


def timed(fn: Callable[[], Any], repeats: int) -> dict[str, float | str]:
    ms = []
    try:
        fn()
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            ms.append((time.perf_counter() - t) * 1e3)
    except pynvml.NVMLError as exc:
        return {"error": str(exc)}
    return {"median_ms": statistics.median(ms), "mean_ms": statistics.fmean(ms), "max_ms": max(ms)}


def main() -> None:
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    pynvml.nvmlInit()
    h = pynvml.nvmlDeviceGetHandleByIndex(0)
    ids = [getattr(pynvml, f) for f in FIELDS if hasattr(pynvml, f)]
    reasons = getattr(pynvml, "nvmlDeviceGetCurrentClocksEventReasons", None) or (
        pynvml.nvmlDeviceGetCurrentClocksThrottleReasons
    )
    queries: dict[str, Callable[[], Any]] = {
        "field POWER_INSTANT alone": lambda: pynvml.nvmlDeviceGetFieldValues(h, ids[:1]),
        f"fields x{len(ids)} in one call": lambda: pynvml.nvmlDeviceGetFieldValues(h, ids),
        "nvmlDeviceGetPowerUsage": lambda: pynvml.nvmlDeviceGetPowerUsage(h),
        "clock SM": lambda: pynvml.nvmlDeviceGetClockInfo(h, pynvml.NVML_CLOCK_SM),
        "clock MEM": lambda: pynvml.nvmlDeviceGetClockInfo(h, pynvml.NVML_CLOCK_MEM),
        "clocks event reasons": lambda: reasons(h),
        "temperature": lambda: pynvml.nvmlDeviceGetTemperature(h, 0),
        "fan": lambda: pynvml.nvmlDeviceGetFanSpeed(h),
        "utilization": lambda: pynvml.nvmlDeviceGetUtilizationRates(h),
        "memory info": lambda: pynvml.nvmlDeviceGetMemoryInfo(h),
        "pcie gen": lambda: pynvml.nvmlDeviceGetCurrPcieLinkGeneration(h),
        "pcie width": lambda: pynvml.nvmlDeviceGetCurrPcieLinkWidth(h),
        "compute processes": lambda: pynvml.nvmlDeviceGetComputeRunningProcesses(h),
    }
    name = pynvml.nvmlDeviceGetName(h)
    doc = {
        "gpu": name.decode() if isinstance(name, bytes) else name,
        "driver": pynvml.nvmlSystemGetDriverVersion(),
        "repeats": repeats,
        "queries": {k: timed(fn, repeats) for k, fn in queries.items()},
    }
    pynvml.nvmlShutdown()
    print(json.dumps(doc, indent=1, default=str))


if __name__ == "__main__":
    main()
