"""The live NVML health reader without a GPU: nvidia-ml-py's functions are replaced by a
fake device, so the mapping of NVML's answers (and of its errors) to GpuHealth is checked
on CPU. Every query a GPU does not support must become None with a reason."""

from __future__ import annotations

import importlib
import time
from types import SimpleNamespace
from typing import Any

import pytest

from rigbench.hw import nvml_health
from rigbench.hw.throttle import decode

nv: Any = importlib.import_module("pynvml")  # the module itself, as hw.nvml_health uses it


def _unsupported(*args: object) -> Any:
    raise nv.NVMLError(nv.NVML_ERROR_NOT_SUPPORTED)


@pytest.fixture
def bare_gpu(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """One GPU on which every per-device NVML query is "Not Supported"."""
    for name in dir(nv):
        if name.startswith("nvmlDeviceGet"):
            monkeypatch.setattr(nv, name, _unsupported)
    monkeypatch.setattr(nv, "nvmlInit", lambda: None)
    monkeypatch.setattr(nv, "nvmlShutdown", lambda: None)
    monkeypatch.setattr(nv, "nvmlDeviceGetCount", lambda: 1)
    monkeypatch.setattr(nv, "nvmlDeviceGetHandleByIndex", lambda i: f"gpu{i}")
    return monkeypatch


def test_unsupported_queries_become_none_with_a_reason(bare_gpu: pytest.MonkeyPatch) -> None:
    (h,) = nvml_health.read_gpu_health()
    assert h.persistence_mode is None and "Not Supported" in h.unavailable["persistence_mode"]
    assert h.ecc_enabled is None and "ecc_enabled" in h.unavailable
    assert h.remapped_rows_failed is None and "remapped_rows_failed" in h.unavailable
    assert h.temperature_c is None and "temperature_c" in h.unavailable
    assert h.memory_temperature_c is None and "memory_temperature_c" in h.unavailable
    assert h.violation_s is None and "violation_s" in h.unavailable
    assert h.nvlink_links == 0  # no link answered: no NVLink


def test_answers_are_mapped(bare_gpu: pytest.MonkeyPatch) -> None:
    m = bare_gpu
    m.setattr(nv, "nvmlDeviceGetPersistenceMode", lambda h: 1)
    m.setattr(nv, "nvmlDeviceGetEccMode", lambda h: [1, 1])
    counts = {(1, nv.NVML_VOLATILE_ECC): 2, (1, nv.NVML_AGGREGATE_ECC): 3}
    m.setattr(nv, "nvmlDeviceGetTotalEccErrors", lambda h, t, c: counts.get((t, c), 0))
    m.setattr(nv, "nvmlDeviceGetRemappedRows", lambda h: (1, 2, 0, 1))
    m.setattr(nv, "nvmlDeviceGetCurrentClocksEventReasons", lambda h: 0x80 | 0x8)
    m.setattr(
        nv,
        "nvmlDeviceGetViolationStatus",
        lambda h, p: SimpleNamespace(referenceTime=0, violationTime=3_000_000_000 * (p == 1)),
    )

    def fields(h: object, ids: list[int]) -> list[Any]:
        def value(ns: int) -> Any:
            return SimpleNamespace(
                nvmlReturn=nv.NVML_SUCCESS,
                valueType=nv.NVML_VALUE_TYPE_UNSIGNED_LONG_LONG,
                value=SimpleNamespace(ullVal=ns, uiVal=ns),
            )

        brake = nv.NVML_FI_DEV_CLOCKS_EVENT_REASON_HW_POWER_BRAKE_SLOWDOWN
        out = {brake: value(7_500_000_000), nv.NVML_FI_DEV_MEMORY_TEMP: value(88)}
        return [out.get(i, SimpleNamespace(nvmlReturn=nv.NVML_ERROR_NOT_SUPPORTED)) for i in ids]

    m.setattr(nv, "nvmlDeviceGetFieldValues", fields)
    m.setattr(nv, "nvmlDeviceGetTemperature", lambda h, s: 71)
    limits = {
        nv.NVML_TEMPERATURE_THRESHOLD_SLOWDOWN: 87,
        nv.NVML_TEMPERATURE_THRESHOLD_SHUTDOWN: 90,
        nv.NVML_TEMPERATURE_THRESHOLD_MEM_MAX: 95,
    }
    m.setattr(nv, "nvmlDeviceGetTemperatureThreshold", lambda h, t: limits[t])
    m.setattr(nv, "nvmlDeviceGetApplicationsClock", lambda h, c: 1005)
    m.setattr(nv, "nvmlDeviceGetDefaultApplicationsClock", lambda h, c: 1290)

    def link_state(h: object, link: int) -> int:
        if link >= 6:
            raise nv.NVMLError(nv.NVML_ERROR_INVALID_ARGUMENT)
        return nv.NVML_FEATURE_ENABLED if link < 4 else nv.NVML_FEATURE_DISABLED

    m.setattr(nv, "nvmlDeviceGetNvLinkState", link_state)
    m.setattr(nv, "nvmlDeviceGetNvLinkErrorCounter", lambda h, link, c: 10 if c == 2 else 0)

    (h,) = nvml_health.read_gpu_health()
    assert h.persistence_mode is True and h.ecc_enabled is True
    assert (h.ecc_volatile_uncorrected, h.ecc_aggregate_uncorrected) == (2, 3)
    assert (h.remapped_rows_correctable, h.remapped_rows_uncorrectable) == (1, 2)
    assert h.remapped_rows_pending is False and h.remapped_rows_failed is True
    assert {r.name for r in decode(h.throttle_reasons or 0)} == {"hw_slowdown", "hw_power_brake"}
    assert h.violation_s is not None
    assert h.violation_s["thermal"] == pytest.approx(3.0)
    assert h.violation_s["hw_power_brake"] == pytest.approx(7.5)
    assert (h.temperature_c, h.temperature_slowdown_c, h.temperature_shutdown_c) == (71, 87, 90)
    assert (h.memory_temperature_c, h.memory_temperature_max_c) == (88, 95)
    assert (h.app_clock_sm_mhz, h.default_app_clock_sm_mhz) == (1005, 1290)
    assert (h.nvlink_links, h.nvlink_links_up) == (6, 4)
    assert h.nvlink_errors == {"replay": 0, "recovery": 0, "crc_flit": 60, "crc_data": 0}


def test_pcie_sampler_keeps_the_highest_link_seen(bare_gpu: pytest.MonkeyPatch) -> None:
    gens = iter([1, 1, 4, 4, 2] + [1] * 1000)
    bare_gpu.setattr(nv, "nvmlDeviceGetCurrPcieLinkGeneration", lambda h: next(gens))
    bare_gpu.setattr(nv, "nvmlDeviceGetCurrPcieLinkWidth", lambda h: 16)
    with nvml_health.PcieLinkSampler(interval_s=0.001) as sampler:
        deadline = time.monotonic() + 5
        while sampler.samples < 6 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert sampler.seen == {0: (4, 16)}
    assert sampler.error is None
