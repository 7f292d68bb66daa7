"""Telemetry: the sampler's timing, the simulated trace, aggregates, recording, the
Prometheus endpoint and the NVML source's decoding (against a stand-in NVML library)."""

from __future__ import annotations

import importlib
import re
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from rigbench.errors import SimulationFileError
from rigbench.hw.simulated import SimulatedBackend
from rigbench.hw.telemetry import (
    SAMPLE_FIELDS,
    GpuChannel,
    TelemetryEvent,
    TelemetrySample,
    memory_temperature_unavailable,
    power_usage_kind,
)
from rigbench.store import Store
from rigbench.telemetry.aggregate import Aggregator, Rise
from rigbench.telemetry.prometheus import PrometheusExporter, render_metrics
from rigbench.telemetry.recorder import Recorder, load_events, load_samples
from rigbench.telemetry.sampler import Sampler

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "simulated"
HEAD = (
    '[rig]\nname = "t"\n[[gpu]]\nname = "NVIDIA H100 80GB HBM3"\ncount = 2\npower_limit_w = 700\n'
)


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "rig.toml"
    p.write_text(HEAD + text)
    return p


# --- schema ------------------------------------------------------------------------------


def test_telemetry_tables_have_the_columns_the_code_writes(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "r.db")

    def cols(table: str) -> list[str]:
        return [row[1] for row in store.db.execute(f"PRAGMA table_info({table})")]

    assert cols("telemetry_samples") == [
        "run_id", "t", "gpu", "power_instant_w", "power_avg_w", "energy_mj", "sm_clock_mhz",
        "mem_clock_mhz", "temp_gpu_c", "temp_mem_c", "fan_pct", "util_gpu_pct", "util_mem_pct",
        "mem_used_bytes", "throttle_mask", "pcie_replay_count", "ecc_corrected",
        "ecc_uncorrected",
    ]  # fmt: skip
    assert cols("telemetry_samples")[1:] == list(SAMPLE_FIELDS)
    assert cols("telemetry_gpus") == [
        "run_id", "gpu", "name", "uuid", "t0_unix", "power_instant_source", "power_avg_source",
        "facts",
    ]  # fmt: skip
    assert cols("telemetry_events") == ["run_id", "t", "gpu", "kind", "code", "message"]
    names = [r[0] for r in store.db.execute("SELECT name FROM migrations ORDER BY rowid")]
    assert names[:1] == ["m001_runs_and_results"] and "m002_telemetry" in names


# --- what NVML's power reading is --------------------------------------------------------


def test_power_usage_kind_and_memory_temperature_reason() -> None:
    assert power_usage_kind("7.0") == "instant"  # V100
    assert power_usage_kind("8.0") == "instant"  # GA100
    assert power_usage_kind("8.6") == "average_1s"  # RTX 3090
    assert power_usage_kind("9.0") == "average_1s"  # H100
    assert power_usage_kind(None) is None
    why = memory_temperature_unavailable("NVIDIA GeForce RTX 3090", "needs root")
    assert why == "not exposed by NVML on GeForce cards; needs root"
    assert "GeForce" not in memory_temperature_unavailable("Tesla V100-SXM2-16GB")


# --- the simulated trace -----------------------------------------------------------------


def test_trace_plays_pulses_ramps_events_and_a_lost_gpu(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
[[telemetry.segment]]
t = 0
power_w = 600
temp_c = [40, 80]
until = 4
throttle = ["sw_power_cap"]
[[telemetry.segment]]
gpus = [1]
t = 1
power_w = 700
pulse = { low_w = 100, period_s = 1.0, duty = 0.5 }
[[telemetry.event]]
t = 2
gpu = 1
xid = 79
[[telemetry.gpu]]
index = 1
lost_at = 3
limits = { gpu_max_c = 87 }
""",
    )
    source = SimulatedBackend.from_file(path).telemetry()
    chans = {c.gpu: c for c in source.channels()}
    assert chans[1].limits.gpu_max_c == 87 and chans[0].limits.gpu_max_c is None
    assert chans[0].power_instant_kind == "instant"
    s0, s1 = source.read(1.25)
    assert s0.power_instant_w == 600 and s0.temp_gpu_c == pytest.approx(52.5)
    assert s1.power_instant_w == 100  # first half of the pulse period: low
    assert source.read(1.75)[1].power_instant_w == 700
    assert s0.throttle_mask == 0x4
    # the average is the last second's mean: 600 until t=1, then the pulse's low half
    # (a slow figure: a fresh source reads it on its first tick)
    avg = SimulatedBackend.from_file(path).telemetry().read(1.5)[1].power_avg_w
    assert avg is not None and 330 < avg < 420
    assert source.events() == []
    source.read(2.0)
    assert [(e.kind, e.code) for e in source.events()] == [("xid", 79)]
    assert [s.gpu for s in source.read(3.5)] == [0]
    lost = source.events()
    assert [(e.kind, e.gpu, e.t) for e in lost] == [("lost", 1, 3.0)]
    # energy is the integral of the played power, a slow figure: repeated until read again
    assert source.read(3.6)[0].energy_mj == source.read(3.5)[0].energy_mj
    e0 = source.read(4.6)[0].energy_mj
    assert e0 == pytest.approx(600 * 4.6 * 1000, rel=0.01)


def test_without_a_trace_gpus_read_a_steady_healthy_state() -> None:
    source = SimulatedBackend.from_file(EXAMPLES / "iva-2x3090.toml").telemetry([1])
    (s,) = source.read(0.5)
    assert s.gpu == 1 and s.power_instant_w == pytest.approx(0.85 * 350)
    assert s.temp_mem_c is None and s.throttle_mask == 0
    assert "temp_mem_c" in source.channels()[0].unavailable  # GeForce: said, not left blank


@pytest.mark.parametrize(
    ("text", "where", "words"),
    [
        ("[[telemetry.segment]]\nt = 0\npower_w = [1, 2]\n", "telemetry.segment[0]", "until"),
        (
            '[[telemetry.segment]]\nt = 0\nthrottle = ["too_hot"]\n',
            "telemetry.segment[0].throttle",
            "unknown throttle reason",
        ),
        ("[[telemetry.event]]\nt = 1\ngpu = 5\nxid = 79\n", "telemetry.event[0].gpu", "GPU 5"),
        ("[[telemetry.segment]]\nt = 2\nuntil = 1\n", "telemetry.segment[0]", "after t"),
        ("[telemetry]\nspeed = 2\n", "telemetry.speed", "unknown key"),
    ],
)
def test_bad_traces_fail_with_one_line(tmp_path: Path, text: str, where: str, words: str) -> None:
    with pytest.raises(SimulationFileError) as exc:
        SimulatedBackend.from_file(_write(tmp_path, text))
    msg = str(exc.value)
    assert f": {where}" in msg and words in msg and "\n" not in msg


# --- the sampler -------------------------------------------------------------------------


class _SlowSource:
    """A source whose reads take `delay` seconds."""

    kind = "test"
    events_unavailable = None

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.times: list[float] = []

    def channels(self) -> list[GpuChannel]:
        return [GpuChannel(gpu=0, name="x")]

    def start(self, t0: float) -> None:
        pass

    def read(self, t: float) -> list[TelemetrySample]:
        self.times.append(t)
        time.sleep(self.delay)
        return [TelemetrySample(t=t, gpu=0, power_instant_w=100.0)]

    def events(self) -> list[TelemetryEvent]:
        return []

    def close(self) -> None:
        pass


def test_sampler_keeps_its_rate_without_drift() -> None:
    source = _SlowSource(0.002)
    sampler = Sampler(source, 100.0, [])
    before_start = time.monotonic()
    sampler.start()
    started = time.monotonic()
    time.sleep(1.0)  # on a busy machine this sleep itself may run long: measured below
    stopping = time.monotonic()
    stats = sampler.stop()
    stopped = time.monotonic()
    # every tick is either taken or counted missed (CI machines are busy): the schedule holds,
    # one tick per 10 ms of the time the sampler ran
    slots = stats.ticks + stats.missed
    assert (stopping - started) * 100 - 3 <= slots <= (stopped - before_start) * 100 + 3
    assert stats.achieved_hz is not None and stats.achieved_hz > 70
    # tick k is due at k/rate: after a second of reads the ticks are still on the grid (the
    # median of the last 20; one tick a busy machine ran late is not drift, while a schedule
    # that slept a period after each 2 ms read would spread them over the whole period)
    late = sorted(abs(t * 100 - round(t * 100)) for t in source.times[-20:])
    assert late[len(late) // 2] < 0.3
    assert stats.read_ms_mean is not None and stats.read_ms_mean >= 2.0


def test_a_slow_read_skips_ticks_instead_of_bunching_them() -> None:
    source = _SlowSource(0.025)
    sampler = Sampler(source, 100.0, [])
    sampler.start()
    time.sleep(0.5)
    stats = sampler.stop()
    assert stats.missed > 0
    times = source.times[1:]  # tick 0 is read before the clock starts, as t = 0
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert min(gaps) >= 0.025


def test_a_sink_error_stops_the_sampler_and_is_raised() -> None:
    def broken(t: float, s: list[TelemetrySample], e: list[TelemetryEvent]) -> None:
        raise RuntimeError("sink broke")

    sampler = Sampler(_SlowSource(0.0), 50.0, [broken])
    sampler.start()
    time.sleep(0.1)
    sampler.stop()
    from rigbench.errors import HardwareError

    with pytest.raises(HardwareError, match="telemetry sampling stopped: RuntimeError: sink broke"):
        sampler.check()


# --- aggregates --------------------------------------------------------------------------


def test_rise_finds_the_largest_step_within_the_window() -> None:
    r = Rise(window_s=0.25)
    for t, v in [(0.0, 600), (0.1, 600), (0.2, 1400), (0.3, 600), (1.0, 600), (1.5, 1000)]:
        r.add(t, v)
    assert r.rise == 800 and (r.t_from, r.t_to) == (0.1, 0.2)


def test_aggregator_peaks_means_throttle_time_and_counters() -> None:
    chans = [GpuChannel(gpu=0, name="a"), GpuChannel(gpu=1, name="b")]
    agg = Aggregator(chans, period_s=0.1)
    for k in range(20):
        t = k * 0.1
        hot = k >= 10
        agg.add(
            t,
            [
                TelemetrySample(
                    t=t,
                    gpu=0,
                    power_instant_w=300.0 if hot else 100.0,
                    power_avg_w=150.0,
                    energy_mj=int(1000 * 200 * t),
                    temp_gpu_c=50.0 + k,
                    sm_clock_mhz=1500 - 10 * k,
                    throttle_mask=0x40 if hot else 0,
                    pcie_replay_count=k // 5,
                ),
                TelemetrySample(t=t, gpu=1, power_instant_w=50.0),
            ],
            [TelemetryEvent(t=t, gpu=1, kind="lost")] if k == 19 else [],
        )
    v = agg.view()
    g0 = v.gpus[0]
    assert g0.power.value == 300 and g0.power.t == pytest.approx(1.0)
    assert g0.power_mean.value == pytest.approx(200.0)
    assert g0.energy_avg_w == pytest.approx(200.0)
    assert g0.throttle_s["hw_thermal"] == pytest.approx(1.0)
    assert (g0.sm_clock_min, g0.sm_clock_max) == (1310, 1500)
    assert (g0.replay_first, g0.replay_last) == (0, 3)
    assert g0.rise.rise == 200
    assert v.total_power.value == 350 and v.gpus[1].lost_at == pytest.approx(1.9)


# --- recording and the endpoint ----------------------------------------------------------


def test_recorder_batches_samples_and_events(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "r.db")
    from rigbench.records import Run

    run = Run(command="monitor")
    rid = store.start_run(run)
    chans = [GpuChannel(gpu=0, name="a", power_instant_source="NVML_FI_DEV_POWER_INSTANT")]
    rec = Recorder(store, rid, chans, time.time())
    rec.add(0.0, [TelemetrySample(t=0.0, gpu=0, power_instant_w=1.5, throttle_mask=4)], [])
    rec.add(
        0.1, [TelemetrySample(t=0.1, gpu=0)], [TelemetryEvent(t=0.1, gpu=0, kind="xid", code=79)]
    )
    assert load_samples(store, rid) == []  # nothing until flushed
    assert rec.flush() == 2
    got = load_samples(Store.open(tmp_path / "r.db"), rid)  # another connection sees it
    assert [s.power_instant_w for s in got] == [1.5, None] and got[0].throttle_mask == 4
    assert [e.code for e in load_events(store, rid)] == [79]


def test_prometheus_endpoint_serves_metrics_on_loopback() -> None:
    source = SimulatedBackend.from_file(EXAMPLES / "v100-sxm2-server-transients.toml").telemetry()
    agg = Aggregator(source.channels(), 0.02)
    sampler = Sampler(source, 50.0, [agg.add])
    exporter = PrometheusExporter(lambda: render_metrics(agg.view(), 50.0), 0)
    try:
        assert exporter.url.startswith("http://127.0.0.1:") and exporter.port > 0
        sampler.start()
        time.sleep(0.3)
        with urllib.request.urlopen(exporter.url, timeout=5) as resp:
            assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            text = resp.read().decode()
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(exporter.url.replace("/metrics", "/nope"), timeout=5)
    finally:
        sampler.stop()
        exporter.close()
    assert "# TYPE rigbench_gpu_power_instant_watts gauge" in text

    # labels in prometheus-client's order: dcgm-exporter's UUID, gpu, modelName, then ours
    def labels(gpu: int) -> str:
        v100 = "Tesla V100-SXM2-16GB"
        return f'UUID="GPU-[0-9a-f-]+",gpu="{gpu}",modelName="{v100}",name="{v100}"'

    assert re.search(r"rigbench_gpu_power_instant_watts\{" + labels(3) + r"\} 250.0", text)
    assert re.search(
        r"rigbench_gpu_throttle_active\{" + labels(0) + r',reason="hw_thermal"\} 0.0', text
    )
    assert re.search(r'rigbench_gpu_lost\{UUID="[^"]+",gpu="3"', text)


def test_the_endpoint_port_must_be_free() -> None:
    import socket

    from rigbench.errors import BadInput

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(BadInput, match=f"127.0.0.1:{port}"):
            PrometheusExporter(lambda: "", port)


# --- the NVML source, against a stand-in library ------------------------------------------


class _FV:
    def __init__(self, field: int, ret: int, value: int) -> None:
        self.fieldId = field
        self.nvmlReturn = ret
        self.valueType = 1  # unsigned int

        class V:
            uiVal = value

        self.value = V()


class _Pci:
    def __init__(self, bus_id: str, device: int) -> None:
        self.busId = bus_id.encode()
        self.pciDeviceId = (device << 16) | 0x10DE


@pytest.fixture
def fake_nvml(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Two GPUs: an RTX 3090 (no instant power field, no memory temperature) and an H100."""
    pynvml: Any = importlib.import_module("pynvml")  # the module hw.nvml_telemetry uses

    state: dict[str, Any] = {
        "lost": set(),
        "flaky": set(),
        "names": ["NVIDIA GeForce RTX 3090", "NVIDIA H100"],
        "pci": [_Pci("00000000:41:00.0", 0x2204), _Pci("00000000:61:00.0", 0x2330)],
    }
    supported = {
        0: {pynvml.NVML_FI_DEV_PCIE_REPLAY_COUNTER: 2},
        1: {
            pynvml.NVML_FI_DEV_POWER_INSTANT: 690_500,
            pynvml.NVML_FI_DEV_POWER_AVERAGE: 650_000,
            pynvml.NVML_FI_DEV_MEMORY_TEMP: 61,
            pynvml.NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION: 123_456,
        },
    }

    def check(h: int) -> None:
        if h in state["lost"]:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)
        if h in state["flaky"]:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_UNKNOWN)

    def field_values(h: int, ids: list[int]) -> list[_FV]:
        check(h)
        out = []
        for f in ids:
            v = supported[h].get(f)
            ret = pynvml.NVML_SUCCESS if v is not None else pynvml.NVML_ERROR_NOT_SUPPORTED
            out.append(_FV(f, ret, v or 0))
        return out

    def not_supported(*_: Any) -> Any:
        raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)

    def plain(value: Any) -> Any:
        def fn(h: int, *_: Any) -> Any:
            check(h)
            return value

        return fn

    class Util:
        gpu, memory = 99, 40

    class Mem:
        used = 10 * 2**30

    fakes = {
        "nvmlInit": lambda: None,
        "nvmlShutdown": lambda: None,
        "nvmlDeviceGetCount": lambda: 2,
        "nvmlDeviceGetHandleByIndex": lambda i: i,
        "nvmlDeviceGetName": lambda h: state["names"][h],
        "nvmlDeviceGetUUID": lambda h: f"GPU-{h}",
        "nvmlDeviceGetEnforcedPowerLimit": lambda h: [350_000, 700_000][h],
        "nvmlDeviceGetPowerManagementDefaultLimit": lambda h: [350_000, 700_000][h],
        "nvmlDeviceGetMaxClockInfo": lambda h, k: 1980,
        "nvmlDeviceGetCudaComputeCapability": lambda h: [(8, 6), (9, 0)][h],
        "nvmlDeviceGetTemperatureThreshold": lambda h, k: {3: 87, 1: 92, 0: 95, 2: 95}[k],
        "nvmlDeviceGetFieldValues": field_values,
        "nvmlDeviceGetPowerUsage": plain(340_000),
        "nvmlDeviceGetClockInfo": plain(1755),
        "nvmlDeviceGetTemperature": plain(71),
        "nvmlDeviceGetCurrentClocksEventReasons": plain(0x4),
        "nvmlDeviceGetFanSpeed": plain(80),
        "nvmlDeviceGetUtilizationRates": plain(Util()),
        "nvmlDeviceGetMemoryInfo": plain(Mem()),
        "nvmlEventSetCreate": not_supported,
        "nvmlDeviceGetPciInfo": lambda h: state["pci"][h],
    }
    for name, fn in fakes.items():
        monkeypatch.setattr(pynvml, name, fn)
    return state


def test_nvml_source_reads_fields_says_what_is_missing_and_loses_a_gpu(
    fake_nvml: dict[str, Any],
) -> None:
    from rigbench.hw.nvml_telemetry import NvmlTelemetry

    source = NvmlTelemetry()
    try:
        geforce, hopper = source.channels()
        # Ampere without the instant field: nvmlDeviceGetPowerUsage is a 1 s average there
        assert geforce.power_instant_kind is None and geforce.power_avg_kind == "average_1s"
        assert "average" in (geforce.power_avg_source or "")
        assert "hide shorter transients" in geforce.unavailable["power_instant_w"]
        assert geforce.unavailable["temp_mem_c"].startswith("not exposed by NVML on GeForce")
        assert hopper.power_instant_source == "NVML_FI_DEV_POWER_INSTANT"
        assert hopper.limits.gpu_max_c == 87 and hopper.limits.mem_max_c == 95
        source.start(time.monotonic())
        assert source.events_unavailable is not None
        a, b = source.read(0.0)
        assert a.power_avg_w == 340.0 and a.power_instant_w is None and a.temp_mem_c is None
        assert a.pcie_replay_count == 2 and a.util_gpu_pct == 99
        assert b.power_instant_w == 690.5 and b.temp_mem_c == 61 and b.energy_mj == 123_456
        assert b.sm_clock_mhz == 1755 and b.throttle_mask == 0x4 and b.fan_pct == 80
        fake_nvml["flaky"].add(0)  # a passing error: no sample this tick, not lost
        assert [s.gpu for s in source.read(0.05)] == [1]
        assert source.read_errors == {0: 1} and source.events() == []
        fake_nvml["flaky"].clear()
        fake_nvml["lost"].add(1)
        assert [s.gpu for s in source.read(0.1)] == [0]
        assert [(e.kind, e.gpu) for e in source.events()] == [("lost", 1)]
        assert [s.gpu for s in source.read(0.2)] == [0]  # not asked again
    finally:
        source.close()


def test_the_readme_trace_sample_is_a_valid_trace(tmp_path: Path) -> None:
    import re

    readme = (EXAMPLES / "README.md").read_text()
    section = readme.split("## Telemetry traces", 1)[1]
    sample = re.search(r"```toml\n(.*?)```", section, re.S)
    assert sample is not None
    head = '[rig]\nname = "t"\n[[gpu]]\nname = "Tesla V100-SXM2-16GB"\ncount = 4\n'
    path = tmp_path / "rig.toml"
    path.write_text(head + sample.group(1))
    source = SimulatedBackend.from_file(path).telemetry()
    assert source.lost_at == {3: 2.5}


def test_nvml_source_reads_gddr6x_vram_from_the_register_and_hbm_from_nvml(
    fake_nvml: dict[str, Any], tmp_path: Path
) -> None:
    import struct

    from rigbench.hw.nvml_telemetry import NvmlTelemetry

    for bdf, device in (("0000:41:00.0", 0x2204), ("0000:61:00.0", 0x2330)):
        dev = tmp_path / "bus" / "pci" / "devices" / bdf
        dev.mkdir(parents=True)
        (dev / "vendor").write_text("0x10de\n")
        (dev / "device").write_text(f"0x{device:04x}\n")
        bar = bytearray(0x10000)
        struct.pack_into("<I", bar, 0xE2A8, 104 * 32)
        (dev / "resource0").write_bytes(bytes(bar))
    source = NvmlTelemetry(sysfs=tmp_path)
    try:
        geforce, hopper = source.channels()
        assert "temp_mem_c" not in geforce.unavailable
        assert geforce.memory_type == "GDDR6X" and "0xE2A8" in (geforce.temp_mem_source or "")
        assert hopper.temp_mem_source == "NVML_FI_DEV_MEMORY_TEMP"
        source.start(time.monotonic())
        a, b = source.read(0.0)
        assert a.temp_mem_c == 104.0  # the planted register value
        assert b.temp_mem_c == 61  # NVML's HBM reading stays
    finally:
        source.close()


def test_nvml_source_says_why_the_vram_register_is_not_read(
    fake_nvml: dict[str, Any], tmp_path: Path
) -> None:
    from rigbench.hw.nvml_telemetry import NvmlTelemetry

    source = NvmlTelemetry(sysfs=tmp_path)  # an empty tree: no such PCI device
    try:
        why = source.channels()[0].unavailable["temp_mem_c"]
        assert why.startswith("not exposed by NVML on GeForce cards; cannot read the PCI ID")
        assert "\n" not in why
        source.start(time.monotonic())
        assert source.read(0.0)[0].temp_mem_c is None
    finally:
        source.close()


def test_nvml_source_reads_fast_figures_every_tick_and_slow_ones_once_a_period(
    fake_nvml: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from rigbench.hw.nvml_telemetry import NvmlTelemetry
    from rigbench.hw.telemetry import SLOW_EVERY_S

    pynvml: Any = importlib.import_module("pynvml")
    calls: dict[str, int] = {}

    def counted(name: str) -> None:
        fn = getattr(pynvml, name)

        def wrapper(*a: Any) -> Any:
            key = name if name != "nvmlDeviceGetFieldValues" else f"fields{sorted(a[1])}"
            calls[key] = calls.get(key, 0) + 1
            return fn(*a)

        monkeypatch.setattr(pynvml, name, wrapper)

    source = NvmlTelemetry()
    try:
        for name in ("nvmlDeviceGetTemperature", "nvmlDeviceGetFieldValues"):
            counted(name)
        source.start(time.monotonic())
        ticks = int(SLOW_EVERY_S * 100)
        for k in range(2 * ticks):  # two periods at 100 Hz; the first tick reads every figure
            if k == ticks:
                calls.clear()  # count the second period, in the steady state
            b = source.read(k / 100)[1]
            assert b.power_instant_w == 690.5 and b.temp_gpu_c == 71  # slow ones repeated
        instant = f"fields{[pynvml.NVML_FI_DEV_POWER_INSTANT]}"
        assert calls[instant] == ticks  # the H100's instantaneous power: every tick
        assert calls["nvmlDeviceGetTemperature"] == 2  # one per GPU in the period
    finally:
        source.close()


def test_bench_conditions_read_the_pcie_link_every_tick(
    fake_nvml: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A link trains up within milliseconds of a transfer: conditions ask for it each tick."""
    from rigbench.hw.model import Rig
    from rigbench.hw.nvml_telemetry import NvmlTelemetry
    from rigbench.telemetry.conditions import ConditionsMonitor

    pynvml: Any = importlib.import_module("pynvml")
    reads: list[int] = []

    def gen(h: int) -> int:
        reads.append(h)
        return 4

    monkeypatch.setattr(pynvml, "nvmlDeviceGetCurrPcieLinkGeneration", gen)
    source = NvmlTelemetry()
    try:
        ConditionsMonitor(source, Rig(source="nvml"))
        assert source.fast_extra == ("pcie_gen", "pcie_width")
        reads.clear()
        for k in range(10):
            assert source.read(k / 100)[0].pcie_gen == 4
        assert len(reads) == 2 * 10  # both GPUs, every tick
    finally:
        source.close()


class _SlowFirstSource(_SlowSource):
    """The first read takes `first` seconds (every slow figure of 8 GPUs), the rest none."""

    def __init__(self, first: float) -> None:
        super().__init__(0.0)
        self.first = first

    def read(self, t: float) -> list[TelemetrySample]:
        if not self.times:
            time.sleep(self.first)
        return super().read(t)


def test_the_first_read_of_every_figure_is_taken_before_the_clock_and_misses_no_tick() -> None:
    # 8 GPUs' slow figures at the measured cost take ~45 ms: inside the schedule they were
    # counted as 4 missed ticks of 100 Hz, so monitor --rate 100 read 98.7-99.0 Hz. Here
    # 0.2 s: 20 periods that the old schedule counted as missed.
    source = _SlowFirstSource(0.2)
    seen: list[float] = []
    sampler = Sampler(source, 100.0, [lambda t, s, e: seen.append(t)])
    sampler.start()
    time.sleep(0.3)
    stats = sampler.stop()
    assert seen[0] == 0.0 and source.times[0] == 0.0  # delivered as the sample at t = 0
    assert stats.missed < 10, stats  # a busy CI machine may miss a few, not 20
    assert stats.ticks >= 20
