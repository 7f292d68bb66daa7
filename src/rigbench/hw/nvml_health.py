"""NVML's health counters for the doctor (ECC, retired pages and remapped rows, throttle
reasons and their accumulated time, temperatures and their thresholds, application
clocks, NVLink state and errors) and a sampler of PCIe link state while a load runs.

Like `hw.nvml`, every query goes through a reader that turns an NVML error into None
plus a reason; nothing here changes a GPU setting.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pynvml

from rigbench.hw.health import GpuHealth

T = TypeVar("T")

# Violation counters by our name: NVML perf policy (nvmlDeviceGetViolationStatus) or a
# field id (nvmlDeviceGetFieldValues), both in nanoseconds.
_POLICIES = {
    "power": pynvml.NVML_PERF_POLICY_POWER,
    "thermal": pynvml.NVML_PERF_POLICY_THERMAL,
    "sync_boost": pynvml.NVML_PERF_POLICY_SYNC_BOOST,
    "board_limit": pynvml.NVML_PERF_POLICY_BOARD_LIMIT,
    "reliability": pynvml.NVML_PERF_POLICY_RELIABILITY,
}
_VIOLATION_FIELDS = {
    "sw_thermal": getattr(pynvml, "NVML_FI_DEV_CLOCKS_EVENT_REASON_SW_THERM_SLOWDOWN", None),
    "hw_thermal": getattr(pynvml, "NVML_FI_DEV_CLOCKS_EVENT_REASON_HW_THERM_SLOWDOWN", None),
    "hw_power_brake": getattr(
        pynvml, "NVML_FI_DEV_CLOCKS_EVENT_REASON_HW_POWER_BRAKE_SLOWDOWN", None
    ),
}
_NVLINK_COUNTERS = {
    "replay": pynvml.NVML_NVLINK_ERROR_DL_REPLAY,
    "recovery": pynvml.NVML_NVLINK_ERROR_DL_RECOVERY,
    "crc_flit": pynvml.NVML_NVLINK_ERROR_DL_CRC_FLIT,
    "crc_data": pynvml.NVML_NVLINK_ERROR_DL_CRC_DATA,
}


class _Reader:
    def __init__(self, health: GpuHealth) -> None:
        self.unavailable = health.unavailable

    def query(self, field: str, fn: Callable[..., T], *args: Any) -> T | None:
        try:
            return fn(*args)
        except pynvml.NVMLError as exc:
            self.unavailable.setdefault(field, f"NVML: {exc}")
        except (AttributeError, TypeError):
            self.unavailable.setdefault(field, "this nvidia-ml-py has no such query")
        return None


def _field_value(value: Any) -> int | float | None:
    """A nvmlFieldValue_t's number, or None when NVML returned an error for it."""
    if value.nvmlReturn != pynvml.NVML_SUCCESS:
        return None
    kind = value.valueType
    v = value.value
    if kind == pynvml.NVML_VALUE_TYPE_DOUBLE:
        return float(v.dVal)
    if kind == pynvml.NVML_VALUE_TYPE_UNSIGNED_INT:
        return int(v.uiVal)
    if kind == pynvml.NVML_VALUE_TYPE_UNSIGNED_LONG:
        return int(v.ulVal)
    if kind == pynvml.NVML_VALUE_TYPE_SIGNED_LONG_LONG:
        return int(v.sllVal)
    if kind == pynvml.NVML_VALUE_TYPE_SIGNED_INT:
        return int(v.siVal)
    if kind == pynvml.NVML_VALUE_TYPE_UNSIGNED_SHORT:
        return int(v.usVal)
    return int(v.ullVal)


def _fields(r: _Reader, handle: Any, ids: dict[str, int | None]) -> dict[str, int | float | None]:
    wanted = {k: v for k, v in ids.items() if v is not None}
    out: dict[str, int | float | None] = dict.fromkeys(ids)
    if not wanted:
        return out
    values = r.query("field_values", pynvml.nvmlDeviceGetFieldValues, handle, list(wanted.values()))
    if values is None:
        return out
    for name, value in zip(wanted, values, strict=False):
        out[name] = _field_value(value)
    return out


def _ecc(r: _Reader, h: GpuHealth, handle: Any) -> None:
    mode = r.query("ecc_enabled", pynvml.nvmlDeviceGetEccMode, handle)
    if mode is None:
        return
    h.ecc_enabled = bool(mode[0])
    if not h.ecc_enabled:
        return
    for attr, err_type, counter in (
        ("ecc_volatile_corrected", 0, pynvml.NVML_VOLATILE_ECC),
        ("ecc_volatile_uncorrected", 1, pynvml.NVML_VOLATILE_ECC),
        ("ecc_aggregate_corrected", 0, pynvml.NVML_AGGREGATE_ECC),
        ("ecc_aggregate_uncorrected", 1, pynvml.NVML_AGGREGATE_ECC),
    ):
        value = r.query(attr, pynvml.nvmlDeviceGetTotalEccErrors, handle, err_type, counter)
        setattr(h, attr, int(value) if value is not None else None)


def _memory(r: _Reader, h: GpuHealth, handle: Any) -> None:
    rows = r.query("remapped_rows_correctable", pynvml.nvmlDeviceGetRemappedRows, handle)
    if rows is not None:
        corr, unc, pending, failed = rows
        h.remapped_rows_correctable, h.remapped_rows_uncorrectable = int(corr), int(unc)
        h.remapped_rows_pending, h.remapped_rows_failed = bool(pending), bool(failed)
    else:
        for k in ("remapped_rows_uncorrectable", "remapped_rows_pending", "remapped_rows_failed"):
            h.unavailable[k] = h.unavailable["remapped_rows_correctable"]
    sbe = r.query(
        "retired_pages_single_bit",
        pynvml.nvmlDeviceGetRetiredPages,
        handle,
        pynvml.NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS,
    )
    dbe = r.query(
        "retired_pages_double_bit",
        pynvml.nvmlDeviceGetRetiredPages,
        handle,
        pynvml.NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR,
    )
    pending = r.query(
        "retired_pages_pending", pynvml.nvmlDeviceGetRetiredPagesPendingStatus, handle
    )
    h.retired_pages_single_bit = len(sbe) if sbe is not None else None
    h.retired_pages_double_bit = len(dbe) if dbe is not None else None
    h.retired_pages_pending = bool(pending) if pending is not None else None


def _throttle(r: _Reader, h: GpuHealth, handle: Any) -> None:
    fn = getattr(pynvml, "nvmlDeviceGetCurrentClocksEventReasons", None) or getattr(
        pynvml, "nvmlDeviceGetCurrentClocksThrottleReasons", None
    )
    if fn is not None:
        mask = r.query("throttle_reasons", fn, handle)
        h.throttle_reasons = int(mask) if mask is not None else None
    violations: dict[str, float] = {}
    for name, policy in _POLICIES.items():
        try:
            v = pynvml.nvmlDeviceGetViolationStatus(handle, policy)
        except (pynvml.NVMLError, AttributeError):
            continue
        violations[name] = int(v.violationTime) / 1e9
    for name, ns in _fields(r, handle, _VIOLATION_FIELDS).items():
        if ns is not None:
            violations[name] = float(ns) / 1e9
    h.unavailable.pop("field_values", None)
    if violations:
        h.violation_s = violations
    else:
        h.unavailable["violation_s"] = "NVML gives no violation counters for this GPU"


def _temperatures(r: _Reader, h: GpuHealth, handle: Any) -> None:
    h.temperature_c = r.query(
        "temperature_c", pynvml.nvmlDeviceGetTemperature, handle, pynvml.NVML_TEMPERATURE_GPU
    )
    for attr, threshold in (
        ("temperature_slowdown_c", pynvml.NVML_TEMPERATURE_THRESHOLD_SLOWDOWN),
        ("temperature_shutdown_c", pynvml.NVML_TEMPERATURE_THRESHOLD_SHUTDOWN),
        ("memory_temperature_max_c", pynvml.NVML_TEMPERATURE_THRESHOLD_MEM_MAX),
    ):
        value = r.query(attr, pynvml.nvmlDeviceGetTemperatureThreshold, handle, threshold)
        setattr(h, attr, int(value) if value else None)
        if not value:
            h.unavailable.setdefault(attr, "NVML reports no such threshold for this GPU")
    mem = _fields(r, handle, {"memory": pynvml.NVML_FI_DEV_MEMORY_TEMP})["memory"]
    h.unavailable.pop("field_values", None)
    if mem:
        h.memory_temperature_c = int(mem)
    else:
        h.unavailable["memory_temperature_c"] = (
            "NVML has no memory temperature for this GPU (GDDR6X cards do not report it)"
        )


def _clocks(r: _Reader, h: GpuHealth, handle: Any) -> None:
    for attr, fn, clock in (
        ("app_clock_sm_mhz", pynvml.nvmlDeviceGetApplicationsClock, pynvml.NVML_CLOCK_SM),
        ("app_clock_mem_mhz", pynvml.nvmlDeviceGetApplicationsClock, pynvml.NVML_CLOCK_MEM),
        (
            "default_app_clock_sm_mhz",
            pynvml.nvmlDeviceGetDefaultApplicationsClock,
            pynvml.NVML_CLOCK_SM,
        ),
        (
            "default_app_clock_mem_mhz",
            pynvml.nvmlDeviceGetDefaultApplicationsClock,
            pynvml.NVML_CLOCK_MEM,
        ),
    ):
        value = r.query(attr, fn, handle, clock)
        setattr(h, attr, int(value) if value else None)


def _nvlink(h: GpuHealth, handle: Any) -> None:
    links = up = 0
    errors = dict.fromkeys(_NVLINK_COUNTERS, 0)
    counted = False
    for link in range(pynvml.NVML_NVLINK_MAX_LINKS):
        try:
            state = pynvml.nvmlDeviceGetNvLinkState(handle, link)
        except pynvml.NVMLError:
            continue  # no such link on this GPU, or no NVLink at all
        links += 1
        if state == pynvml.NVML_FEATURE_ENABLED:
            up += 1
        for name, counter in _NVLINK_COUNTERS.items():
            try:
                errors[name] += int(pynvml.nvmlDeviceGetNvLinkErrorCounter(handle, link, counter))
                counted = True
            except pynvml.NVMLError:
                continue
    h.nvlink_links, h.nvlink_links_up = links, up
    if counted:
        h.nvlink_errors = errors
    elif links:
        h.unavailable["nvlink_errors"] = "NVML gives no NVLink error counters for this GPU"


def _activity(r: _Reader, h: GpuHealth, handle: Any) -> None:
    """Utilisation, power draw, fan, VBIOS and BAR1 size: what the GPU was doing when read."""
    util = r.query("utilization_pct", pynvml.nvmlDeviceGetUtilizationRates, handle)
    h.utilization_pct = int(util.gpu) if util is not None else None
    mw = r.query("power_draw_w", pynvml.nvmlDeviceGetPowerUsage, handle)
    h.power_draw_w = mw / 1000 if mw is not None else None
    h.fan_speed_pct = r.query("fan_speed_pct", pynvml.nvmlDeviceGetFanSpeed, handle)
    vbios = r.query("vbios_version", pynvml.nvmlDeviceGetVbiosVersion, handle)
    h.vbios_version = vbios.decode() if isinstance(vbios, bytes) else vbios
    bar1 = r.query("bar1_total_mib", pynvml.nvmlDeviceGetBAR1MemoryInfo, handle)
    h.bar1_total_mib = int(bar1.bar1Total) >> 20 if bar1 is not None else None
    h.unavailable.setdefault(
        "locked_sm_clock_mhz", "NVML does not report clocks locked with nvidia-smi -lgc"
    )


def _gpu_health(index: int, handle: Any) -> GpuHealth:
    h = GpuHealth(index=index)
    r = _Reader(h)
    mode = r.query("persistence_mode", pynvml.nvmlDeviceGetPersistenceMode, handle)
    h.persistence_mode = bool(mode) if mode is not None else None
    _ecc(r, h, handle)
    _memory(r, h, handle)
    _throttle(r, h, handle)
    _temperatures(r, h, handle)
    _clocks(r, h, handle)
    _nvlink(h, handle)
    _activity(r, h, handle)
    return h


def read_gpu_health() -> list[GpuHealth]:
    """Every GPU's health counters, in NVML index order."""
    pynvml.nvmlInit()
    try:
        count = pynvml.nvmlDeviceGetCount()
        return [_gpu_health(i, pynvml.nvmlDeviceGetHandleByIndex(i)) for i in range(count)]
    finally:
        pynvml.nvmlShutdown()


class PcieLinkSampler:
    """Reads every GPU's current PCIe generation and width on a thread while something
    else loads the GPUs; links train down at idle, so the highest seen is the link's
    real state. Use as a context manager; `seen` maps GPU index -> (gen, width)."""

    def __init__(self, interval_s: float = 0.05) -> None:
        self.interval_s = interval_s
        self.seen: dict[int, tuple[int | None, int | None]] = {}
        self.samples = 0
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="pcie-sampler", daemon=True)

    def __enter__(self) -> PcieLinkSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as exc:
            self.error = f"NVML: {exc}"
            return
        try:
            handles = [
                pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())
            ]
            while True:
                for i, h in enumerate(handles):
                    try:
                        gen = int(pynvml.nvmlDeviceGetCurrPcieLinkGeneration(h))
                        width = int(pynvml.nvmlDeviceGetCurrPcieLinkWidth(h))
                    except pynvml.NVMLError as exc:
                        self.error = f"NVML: {exc}"
                        continue
                    old_gen, old_width = self.seen.get(i, (None, None))
                    self.seen[i] = (max(gen, old_gen or 0), max(width, old_width or 0))
                self.samples += 1
                if self._stop.wait(self.interval_s):
                    break
                time.sleep(0)
        except pynvml.NVMLError as exc:
            self.error = f"NVML: {exc}"
        finally:
            pynvml.nvmlShutdown()
