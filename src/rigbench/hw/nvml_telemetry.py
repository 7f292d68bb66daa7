"""Live telemetry through NVML: one nvmlInit for the session, handles cached, the fast
figures of each GPU read every tick and the slow ones spread over the ticks, and Xid/ECC
events watched through NVML's event API in a thread of their own.

What is read, per GPU (a query the GPU refuses when sampling starts is dropped, and the
reason kept in the channel's `unavailable`):

* every tick (hw.telemetry.FAST_FIELDS): instantaneous power (NVML_FI_DEV_POWER_INSTANT in
  a one-field nvmlDeviceGetFieldValues call, or nvmlDeviceGetPowerUsage on GA100 and
  older), the SM clock, the clocks event (throttle) reasons;
* once every SLOW_EVERY_S, each read on a tick of its own (hw.telemetry.SlowSchedule):
  averaged power, energy, memory temperature, PCIe replay counter, volatile ECC totals
  (one field each), memory clock, GPU temperature, fan, utilisation, memory used, PCIe
  link generation and width, the compute processes; on GDDR6/GDDR6X cards, whose memory
  temperature NVML lacks, the VRAM junction register through hw.gddr (root only); between
  reads the last value is repeated.

NVML on the H200 VM of benchmarks/2026-11-23-h200-1gpu-monitor-burnin.md took 5.6 ms for
a tick of every figure of one GPU, so reading everything every tick caps one GPU near
90 Hz and eight near 20 Hz; the split keeps a tick to three reads per GPU.

A GPU that answers NVML_ERROR_GPU_IS_LOST is reported once as a "lost" event and not read
again.
"""

from __future__ import annotations

import contextlib
import ctypes
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pynvml

from rigbench.errors import HardwareError
from rigbench.hw.gddr import SYSFS, GddrReader, GddrUnavailable, gddr_device, open_gddr_reader
from rigbench.hw.telemetry import (
    SLOW_EVERY_S,
    GpuChannel,
    SlowSchedule,
    TelemetryEvent,
    TelemetrySample,
    TemperatureLimits,
    memory_temperature_unavailable,
    power_usage_kind,
)

EVENT_WAIT_MS = 200

# (sample attribute, NVML field id name); fields this nvidia-ml-py lacks are skipped.
_FIELDS: tuple[tuple[str, str], ...] = (
    ("power_instant_w", "NVML_FI_DEV_POWER_INSTANT"),
    ("power_avg_w", "NVML_FI_DEV_POWER_AVERAGE"),
    ("energy_mj", "NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION"),
    ("temp_mem_c", "NVML_FI_DEV_MEMORY_TEMP"),
    ("pcie_replay_count", "NVML_FI_DEV_PCIE_REPLAY_COUNTER"),
    ("ecc_corrected", "NVML_FI_DEV_ECC_SBE_VOL_TOTAL"),
    ("ecc_uncorrected", "NVML_FI_DEV_ECC_DBE_VOL_TOTAL"),
)
_MILLI = {"power_instant_w", "power_avg_w"}  # NVML gives mW
# plain queries read on the slow schedule (the fast ones are in _read_one)
_SLOW_QUERIES = (
    "mem_clock_mhz",
    "temp_gpu_c",
    "fan_pct",
    "util",
    "mem_used_bytes",
    "pcie_gen",
    "pcie_width",
    "compute_pids",
)

_EVENT_TYPES: tuple[tuple[str, str], ...] = (
    ("xid", "nvmlEventTypeXidCriticalError"),
    ("ecc_uncorrected", "nvmlEventTypeDoubleBitEccError"),
    ("unavailable", "nvmlEventTypeGpuUnavailableError"),
)

_VALUE_MEMBER = {
    0: "dVal",
    1: "uiVal",
    2: "ulVal",
    3: "ullVal",
    4: "sllVal",
    5: "siVal",
    6: "usVal",
}


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _field_value(fv: Any) -> float | int | None:
    member = _VALUE_MEMBER.get(int(fv.valueType))
    return getattr(fv.value, member) if member else None


def _error_text(code: int) -> str:
    try:
        return _text(pynvml.nvmlErrorString(code))
    except Exception:  # pragma: no cover - only with a broken library
        return f"NVML error {code}"


def _is_lost(exc: pynvml.NVMLError) -> bool:
    return getattr(exc, "value", None) == pynvml.NVML_ERROR_GPU_IS_LOST


def _handle_key(handle: Any) -> int | None:
    return ctypes.cast(handle, ctypes.c_void_p).value


class _Gpu:
    """One GPU's handle and what was found readable on it."""

    def __init__(self, index: int, handle: Any) -> None:
        self.index = index
        self.handle = handle
        self.channel = GpuChannel(gpu=index, name=_text(pynvml.nvmlDeviceGetName(handle)))
        self.field_ids: list[int] = []
        self.field_attrs: list[str] = []
        self.usage_as: str | None = None  # "power_instant_w" / "power_avg_w" / None
        self.queries: dict[str, Callable[[], Any]] = {}
        self.slow: dict[str, Any] = {}
        self.lost = False
        self.gddr: GddrReader | None = None


class NvmlTelemetry:
    """Samples the GPUs NVML lists (or the `gpus` given), from the sampler's thread."""

    kind = "nvml"

    def __init__(self, gpus: list[int] | None = None, *, sysfs: Path = SYSFS) -> None:
        self._sysfs = sysfs  # where hw.gddr finds the PCI devices (a fake tree in tests)
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as exc:
            raise HardwareError(f"NVML did not start for telemetry: {exc}") from exc
        self._open = True
        self._gpus: list[_Gpu] = []
        self._events: list[TelemetryEvent] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._event_set: Any = None
        self._t0 = time.monotonic()
        self._slow: SlowSchedule | None = None
        # slow queries a caller wants every tick (bench conditions: the PCIe link), set
        # before sampling starts
        self.fast_extra: tuple[str, ...] = ()
        self.events_unavailable: str | None = None
        self.read_errors: dict[int, int] = {}  # GPU -> ticks whose read failed (not lost)
        self.last_error: str | None = None
        try:
            count = pynvml.nvmlDeviceGetCount()
            for i in gpus if gpus is not None else range(count):
                self._gpus.append(self._probe(i, pynvml.nvmlDeviceGetHandleByIndex(i)))
        except pynvml.NVMLError as exc:
            self.close()
            raise HardwareError(f"NVML: cannot open the GPUs for telemetry: {exc}") from exc
        except BaseException:
            self.close()
            raise

    # --- what each GPU can give ----------------------------------------------------------

    def _probe(self, index: int, handle: Any) -> _Gpu:
        g = _Gpu(index, handle)
        ch = g.channel
        why = ch.unavailable

        def once(name: str, fn: Callable[[], Any]) -> Any:
            try:
                return fn()
            except pynvml.NVMLError as exc:
                why[name] = f"NVML: {exc}"
            except AttributeError:
                why[name] = "this nvidia-ml-py has no such query"
            return None

        ch.uuid = once("uuid", lambda: _text(pynvml.nvmlDeviceGetUUID(handle)))
        limit = once("power_limit_w", lambda: pynvml.nvmlDeviceGetEnforcedPowerLimit(handle))
        ch.power_limit_w = limit / 1000 if limit is not None else None
        default = once(
            "power_default_limit_w",
            lambda: pynvml.nvmlDeviceGetPowerManagementDefaultLimit(handle),
        )
        ch.power_default_limit_w = default / 1000 if default is not None else None
        ch.sm_clock_max_mhz = once(
            "sm_clock_max_mhz", lambda: pynvml.nvmlDeviceGetMaxClockInfo(handle, 1)
        )
        cc = once("compute_capability", lambda: pynvml.nvmlDeviceGetCudaComputeCapability(handle))
        usage_kind = power_usage_kind(f"{cc[0]}.{cc[1]}" if cc else None)

        def threshold(name: str, const: str) -> float | None:
            code = getattr(pynvml, const, None)
            if code is None:
                return None
            v = once(
                f"limits.{name}", lambda: pynvml.nvmlDeviceGetTemperatureThreshold(handle, code)
            )
            return float(v) if v else None

        ch.limits = TemperatureLimits(
            gpu_max_c=threshold("gpu_max_c", "NVML_TEMPERATURE_THRESHOLD_GPU_MAX"),
            slowdown_c=threshold("slowdown_c", "NVML_TEMPERATURE_THRESHOLD_SLOWDOWN"),
            shutdown_c=threshold("shutdown_c", "NVML_TEMPERATURE_THRESHOLD_SHUTDOWN"),
            mem_max_c=threshold("mem_max_c", "NVML_TEMPERATURE_THRESHOLD_MEM_MAX"),
        )

        # Field values: ask for all at once and keep the ones that answer.
        wanted = [(attr, getattr(pynvml, const, None), const) for attr, const in _FIELDS]
        present = [(a, fid, c) for a, fid, c in wanted if fid is not None]
        for a, fid, c in wanted:
            if fid is None:
                why[a] = f"this nvidia-ml-py has no {c}"
        try:
            values = pynvml.nvmlDeviceGetFieldValues(handle, [fid for _, fid, _ in present])
            for (attr, fid, const), fv in zip(present, values, strict=True):
                ret = int(fv.nvmlReturn)
                value = _field_value(fv) if ret == pynvml.NVML_SUCCESS else None
                if ret != pynvml.NVML_SUCCESS:
                    reason = f"NVML field {const}: {_error_text(ret)}"
                    if attr == "temp_mem_c":
                        reason = memory_temperature_unavailable(ch.name)
                    why[attr] = reason
                elif attr == "temp_mem_c" and not value:
                    why[attr] = memory_temperature_unavailable(ch.name) + " (NVML reads 0 °C)"
                else:
                    g.field_ids.append(int(fid))
                    g.field_attrs.append(attr)
        except pynvml.NVMLError as exc:
            for attr, _, const in present:
                why[attr] = f"NVML field {const}: {exc}"

        # Power: what is missing from the fields comes from nvmlDeviceGetPowerUsage where
        # that call returns the same kind of figure on this GPU.
        has_instant = "power_instant_w" in g.field_attrs
        has_avg = "power_avg_w" in g.field_attrs
        if has_instant:
            ch.power_instant_kind, ch.power_instant_source = "instant", "NVML_FI_DEV_POWER_INSTANT"
        if has_avg:
            ch.power_avg_kind, ch.power_avg_source = "average_1s", "NVML_FI_DEV_POWER_AVERAGE"
        usage_ok = once("power_usage", lambda: pynvml.nvmlDeviceGetPowerUsage(handle)) is not None
        if usage_ok and usage_kind == "instant" and not has_instant:
            g.usage_as = "power_instant_w"
            ch.power_instant_kind = "instant"
            ch.power_instant_source = "nvmlDeviceGetPowerUsage (instantaneous on GA100 and older)"
            why.pop("power_instant_w", None)
        elif usage_ok and usage_kind == "average_1s" and not has_avg:
            g.usage_as = "power_avg_w"
            ch.power_avg_kind = "average_1s"
            ch.power_avg_source = "nvmlDeviceGetPowerUsage (1 s average on Ampere and newer)"
            why.pop("power_avg_w", None)
        why.pop("power_usage", None)
        if not has_instant and g.usage_as != "power_instant_w":
            why["power_instant_w"] = (
                why.get("power_instant_w", "no instantaneous power reading")
                + "; peaks are of the 1 s average and hide shorter transients"
            )

        # Plain queries, probed once; a refused one is not asked again.
        def clock(kind: int) -> Callable[[], Any]:
            return lambda: pynvml.nvmlDeviceGetClockInfo(handle, kind)

        reasons = getattr(pynvml, "nvmlDeviceGetCurrentClocksEventReasons", None) or (
            pynvml.nvmlDeviceGetCurrentClocksThrottleReasons
        )
        fast: dict[str, Callable[[], Any]] = {
            "sm_clock_mhz": clock(pynvml.NVML_CLOCK_SM),
            "mem_clock_mhz": clock(pynvml.NVML_CLOCK_MEM),
            "temp_gpu_c": lambda: pynvml.nvmlDeviceGetTemperature(handle, 0),
            "throttle_mask": lambda: reasons(handle),
            "fan_pct": lambda: pynvml.nvmlDeviceGetFanSpeed(handle),
            "util": lambda: pynvml.nvmlDeviceGetUtilizationRates(handle),
            "mem_used_bytes": lambda: pynvml.nvmlDeviceGetMemoryInfo(handle).used,
            "pcie_gen": lambda: pynvml.nvmlDeviceGetCurrPcieLinkGeneration(handle),
            "pcie_width": lambda: pynvml.nvmlDeviceGetCurrPcieLinkWidth(handle),
            "compute_pids": lambda: [
                int(p.pid) for p in pynvml.nvmlDeviceGetComputeRunningProcesses(handle)
            ],
        }
        for name, fn in fast.items():
            if once(name, fn) is not None:
                g.queries[name] = fn
        if "util" in why:
            why["util_gpu_pct"] = why["util_mem_pct"] = why.pop("util")
        bus_id: str | None = None
        try:
            pci = pynvml.nvmlDeviceGetPciInfo(handle)
            bus_id = _text(pci.busId)
            known = gddr_device(int(pci.pciDeviceId) >> 16)
            ch.memory_type = known.memory if known is not None else None
        except (pynvml.NVMLError, AttributeError) as exc:
            why["pci"] = f"NVML: {exc}"
        if "temp_mem_c" in g.field_attrs:
            ch.temp_mem_source = "NVML_FI_DEV_MEMORY_TEMP"
        elif bus_id is None:
            why["temp_mem_c"] = memory_temperature_unavailable(
                ch.name, f"no PCI bus id for the GDDR register reader ({why['pci']})"
            )
        else:
            self._open_gddr(g, bus_id)
        return g

    def _open_gddr(self, g: _Gpu, bus_id: str) -> None:
        """The VRAM junction register where NVML has no memory temperature (hw.gddr)."""
        ch, why = g.channel, g.channel.unavailable
        got = open_gddr_reader(bus_id, sysfs=self._sysfs)
        if isinstance(got, GddrUnavailable):
            why["temp_mem_c"] = memory_temperature_unavailable(ch.name, got.why)
            return
        if got.read_c() is None:
            got.close()
            why["temp_mem_c"] = memory_temperature_unavailable(
                ch.name, f"the {got.device.memory} temperature register reads no value"
            )
            return
        g.gddr = got
        ch.memory_type = got.device.memory
        ch.temp_mem_source = got.source
        why.pop("temp_mem_c", None)

    # --- the source protocol -------------------------------------------------------------

    def channels(self) -> list[GpuChannel]:
        return [g.channel for g in self._gpus]

    def start(self, t0: float) -> None:
        self._t0 = t0
        self._start_events()

    def read(self, t: float) -> list[TelemetrySample]:
        out = []
        now = time.monotonic()
        if self._slow is None:
            self._slow = SlowSchedule(self._slow_items(), SLOW_EVERY_S)
        slow: dict[int, set[str]] = {}
        for gpu, name in self._slow.due(t):
            slow.setdefault(gpu, set()).add(name)
        for g in self._gpus:
            if g.lost:
                continue
            try:
                out.append(self._read_one(g, t, now, slow.get(g.index, set())))
            except pynvml.NVMLError as exc:
                if _is_lost(exc):
                    self._lose(g, t, f"NVML: {exc}")
                else:  # a passing error: this GPU has no sample this tick
                    self.read_errors[g.index] = self.read_errors.get(g.index, 0) + 1
                    self.last_error = f"GPU {g.index}: NVML: {exc}"
        return out

    def _lose(self, g: _Gpu, t: float, why: str) -> None:
        g.lost = True
        with self._lock:
            self._events.append(
                TelemetryEvent(
                    t=t, gpu=g.index, kind="lost", message=f"GPU fell off the bus ({why})"
                )
            )

    def _slow_items(self) -> list[tuple[int, str]]:
        """(GPU, what) for every slow read, GPU by GPU."""
        items: list[tuple[int, str]] = []
        for g in self._gpus:
            names = [a for a in g.field_attrs if a != "power_instant_w"]
            if g.usage_as == "power_avg_w":
                names.append("power_usage")
            names += [n for n in _SLOW_QUERIES if n in g.queries and n not in self.fast_extra]
            if g.gddr is not None:
                names.append("gddr")
            items += [(g.index, n) for n in names]
        return items

    def _read_one(self, g: _Gpu, t: float, now: float, slow: set[str]) -> TelemetrySample:
        ch = g.channel
        s = TelemetrySample(
            t=t,
            gpu=g.index,
            power_instant_kind=ch.power_instant_kind,
            power_avg_kind=ch.power_avg_kind,
        )
        if "power_instant_w" in g.field_attrs:
            g.slow.update(self._fields(g, ["power_instant_w"]))
        elif g.usage_as == "power_instant_w":
            g.slow["power_instant_w"] = pynvml.nvmlDeviceGetPowerUsage(g.handle) / 1000
        q = g.queries
        fast: list[str] = [n for n in ("sm_clock_mhz", "throttle_mask") if n in q]
        for name in fast:
            g.slow[name] = self._soft(q[name])
        for name in self.fast_extra:
            if name in q:
                g.slow[name] = self._soft(q[name])
        if fast and "power_instant_w" not in g.slow and all(g.slow[n] is None for n in fast):
            # every fast read failed: a passing error, no sample from this GPU this tick
            raise pynvml.NVMLError(pynvml.NVML_ERROR_UNKNOWN)
        fields = [n for n in g.field_attrs if n in slow]
        if fields:
            g.slow.update(self._fields(g, fields))
        for name in slow:
            if name == "power_usage":
                g.slow["power_avg_w"] = pynvml.nvmlDeviceGetPowerUsage(g.handle) / 1000
            elif name == "gddr" and g.gddr is not None:
                g.slow["temp_mem_c"] = g.gddr.read_c()
            elif name in _SLOW_QUERIES and (fn := q.get(name)) is not None:
                g.slow[name] = self._soft(fn)
        for name, value in g.slow.items():
            if name == "util":
                s.util_gpu_pct, s.util_mem_pct = (value.gpu, value.memory) if value else (None,) * 2
            else:
                setattr(s, name, value)
        return s

    @staticmethod
    def _fields(g: _Gpu, attrs: list[str]) -> dict[str, Any]:
        """These field values of one GPU, in one nvmlDeviceGetFieldValues call."""
        ids = [g.field_ids[g.field_attrs.index(a)] for a in attrs]
        got: dict[str, Any] = {}
        for attr, fv in zip(attrs, pynvml.nvmlDeviceGetFieldValues(g.handle, ids), strict=True):
            ret = int(fv.nvmlReturn)
            if ret == pynvml.NVML_ERROR_GPU_IS_LOST:
                raise pynvml.NVMLError(ret)
            v = _field_value(fv) if ret == pynvml.NVML_SUCCESS else None
            got[attr] = v / 1000 if v is not None and attr in _MILLI else v
        return got

    @staticmethod
    def _soft(fn: Callable[[], Any]) -> Any:
        """A query's value, or None on a passing error; a lost GPU propagates."""
        try:
            return fn()
        except pynvml.NVMLError as exc:
            if _is_lost(exc):
                raise
            return None

    def events(self) -> list[TelemetryEvent]:
        with self._lock:
            out, self._events = self._events, []
        return out

    # --- events --------------------------------------------------------------------------

    def _start_events(self) -> None:
        if not self._gpus or self._thread is not None:
            return
        try:
            self._event_set = pynvml.nvmlEventSetCreate()
        except (pynvml.NVMLError, AttributeError) as exc:
            self.events_unavailable = f"NVML event set: {exc}"
            return
        by_handle: dict[int | None, int] = {}
        refused = []
        for g in self._gpus:
            wanted = 0
            for _, const in _EVENT_TYPES:
                wanted |= int(getattr(pynvml, const, 0))
            try:
                supported = int(pynvml.nvmlDeviceGetSupportedEventTypes(g.handle))
                mask = wanted & supported
                if mask:
                    pynvml.nvmlDeviceRegisterEvents(g.handle, mask, self._event_set)
                    by_handle[_handle_key(g.handle)] = g.index
                else:
                    refused.append(f"GPU {g.index}: supports none of Xid/ECC events")
            except pynvml.NVMLError as exc:
                refused.append(f"GPU {g.index}: {exc}")
        if not by_handle:
            self.events_unavailable = "; ".join(refused) or "no GPU accepted event registration"
            pynvml.nvmlEventSetFree(self._event_set)
            self._event_set = None
            return
        if refused:
            self.events_unavailable = "; ".join(refused)
        self._thread = threading.Thread(
            target=self._watch, args=(by_handle,), name="rigbench-nvml-events", daemon=True
        )
        self._thread.start()

    def _watch(self, by_handle: dict[int | None, int]) -> None:
        xid = int(getattr(pynvml, "nvmlEventTypeXidCriticalError", 0))
        dbe = int(getattr(pynvml, "nvmlEventTypeDoubleBitEccError", 0))
        gone = int(getattr(pynvml, "nvmlEventTypeGpuUnavailableError", 0))
        while not self._stop.is_set():
            try:
                data = pynvml.nvmlEventSetWait_v2(self._event_set, EVENT_WAIT_MS)
            except pynvml.NVMLError as exc:
                if getattr(exc, "value", None) == pynvml.NVML_ERROR_TIMEOUT:
                    continue
                # e.g. a GPU lost while waiting; keep watching the others
                self._stop.wait(EVENT_WAIT_MS / 1000)
                continue
            t = time.monotonic() - self._t0
            gpu = by_handle.get(_handle_key(data.device), -1)
            etype, edata = int(data.eventType), int(data.eventData)
            if etype & xid:
                from rigbench.hw.xid import xid_info

                ev = TelemetryEvent(
                    t=t, gpu=gpu, kind="xid", code=edata, message=xid_info(edata).meaning
                )
            elif etype & dbe:
                ev = TelemetryEvent(
                    t=t, gpu=gpu, kind="ecc_uncorrected", message="double-bit ECC error event"
                )
            elif etype & gone:
                ev = TelemetryEvent(
                    t=t, gpu=gpu, kind="unavailable", message="NVML: GPU unavailable event"
                )
            else:
                continue
            with self._lock:
                self._events.append(ev)

    def close(self) -> None:
        if not self._open:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2 * EVENT_WAIT_MS / 1000 + 1)
        if self._event_set is not None and (self._thread is None or not self._thread.is_alive()):
            with contextlib.suppress(pynvml.NVMLError):
                pynvml.nvmlEventSetFree(self._event_set)
        self._event_set = None
        self._open = False
        for g in self._gpus:
            if g.gddr is not None:
                g.gddr.close()
                g.gddr = None
        with contextlib.suppress(pynvml.NVMLError):
            pynvml.nvmlShutdown()
