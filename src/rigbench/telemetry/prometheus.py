"""A Prometheus endpoint over the aggregates (prometheus-client renders the text format
0.0.4), served on loopback only: `GET /metrics` on 127.0.0.1:PORT.

Port 0 lets the OS pick a free port; `url` says which. For Grafana, point a Prometheus
scrape job at it (scrape_interval 1s or more: the gauges are the latest tick's values, the
peaks are since the monitor started).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, ThreadingWSGIServer

from rigbench.errors import BadInput
from rigbench.hw.throttle import REASONS
from rigbench.telemetry.aggregate import AggregateView

HOST = "127.0.0.1"
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
GPU_LABELS = ("gpu", "name", "UUID", "modelName")

# (metric, help, sample attribute)
_GAUGES: tuple[tuple[str, str, str], ...] = (
    ("power_instant_watts", "Instantaneous board power (W)", "power_instant_w"),
    ("power_average_watts", "NVML's averaged board power, 1 s window (W)", "power_avg_w"),
    ("sm_clock_mhz", "SM clock (MHz)", "sm_clock_mhz"),
    ("memory_clock_mhz", "Memory clock (MHz)", "mem_clock_mhz"),
    ("temperature_celsius", "GPU temperature (C)", "temp_gpu_c"),
    (
        "memory_temperature_celsius",
        "Memory temperature (C): NVML's on HBM GPUs, the VRAM junction register on "
        "GDDR6/GDDR6X cards (read as root)",
        "temp_mem_c",
    ),
    ("fan_percent", "Fan speed, percent of maximum", "fan_pct"),
    ("utilization_percent", "GPU utilisation (%)", "util_gpu_pct"),
    ("memory_utilization_percent", "Memory controller utilisation (%)", "util_mem_pct"),
    ("memory_used_bytes", "Device memory used (bytes)", "mem_used_bytes"),
)


class _ViewCollector:
    """The metric families of one aggregate view (prometheus-client's collector protocol)."""

    def __init__(self, view: AggregateView, achieved_hz: float | None) -> None:
        self.view = view
        self.achieved_hz = achieved_hz

    def collect(self) -> Iterator[Metric]:  # noqa: C901 - one family after another
        view = self.view
        names = {c.gpu: c.name for c in view.channels}
        uuids = {c.gpu: c.uuid or "" for c in view.channels}
        gpus = sorted(view.gpus.items())

        # gpu, UUID and modelName as dcgm-exporter labels its series, so its dashboards'
        # and alerts' label matchers carry over; name kept for rigbench's own
        def gpu_family(kind: type, name: str, help_text: str, extra: Iterable[str] = ()) -> Any:
            return kind(f"rigbench_gpu_{name}", help_text, labels=[*GPU_LABELS, *extra])

        def lbl(gpu: int, *extra: str) -> list[str]:
            name = names.get(gpu, "?")
            return [str(gpu), name, uuids.get(gpu, ""), name, *extra]

        for metric, help_text, attr in _GAUGES:
            fam = gpu_family(GaugeMetricFamily, metric, help_text)
            for gpu, agg in gpus:
                value = getattr(agg.latest, attr) if agg.latest is not None else None
                if value is not None and agg.lost_at is None:
                    fam.add_metric(lbl(gpu), float(value))
            yield fam
        fam = gpu_family(
            GaugeMetricFamily,
            "power_peak_watts",
            "Highest power read since the monitor started (W)",
        )
        for gpu, agg in gpus:
            if agg.power.value is not None:
                fam.add_metric(lbl(gpu), agg.power.value)
        yield fam
        fam = gpu_family(
            GaugeMetricFamily, "temperature_peak_celsius", "Highest GPU temperature since start (C)"
        )
        for gpu, agg in gpus:
            if agg.temp_gpu.value is not None:
                fam.add_metric(lbl(gpu), agg.temp_gpu.value)
        yield fam
        fam = gpu_family(
            CounterMetricFamily, "energy_joules_total", "Energy since the driver loaded (J)"
        )
        for gpu, agg in gpus:
            if agg.energy_last_mj is not None and agg.lost_at is None:
                fam.add_metric(lbl(gpu), agg.energy_last_mj / 1000)
        yield fam
        fam = gpu_family(
            CounterMetricFamily, "pcie_replay_total", "PCIe replays since the driver loaded"
        )
        for gpu, agg in gpus:
            if agg.replay_last is not None:
                fam.add_metric(lbl(gpu), agg.replay_last)
        yield fam
        fam = gpu_family(
            GaugeMetricFamily,
            "throttle_active",
            "1 while a clock throttle reason is set",
            ["reason"],
        )
        for gpu, agg in gpus:
            mask = agg.latest.throttle_mask if agg.latest is not None else None
            if mask is None or agg.lost_at is not None:
                continue
            for r in REASONS:
                fam.add_metric(lbl(gpu, r.name), int(bool(mask & r.bit)))
        yield fam
        fam = gpu_family(
            CounterMetricFamily,
            "throttle_seconds_total",
            "Seconds each throttle reason was set",
            ["reason"],
        )
        for gpu, agg in gpus:
            for reason, secs in sorted(agg.throttle_s.items()):
                fam.add_metric(lbl(gpu, reason), secs)
        yield fam
        fam = gpu_family(
            CounterMetricFamily, "xid_events_total", "Xid events seen since the monitor started"
        )
        xids: dict[int, int] = {}
        for e in view.events:
            if e.kind == "xid":
                xids[e.gpu] = xids.get(e.gpu, 0) + 1
        for gpu, _ in gpus:
            fam.add_metric(lbl(gpu), xids.get(gpu, 0))
        yield fam
        fam = gpu_family(GaugeMetricFamily, "lost", "1 once the GPU has fallen off the bus")
        for gpu, agg in gpus:
            fam.add_metric(lbl(gpu), int(agg.lost_at is not None))
        yield fam
        fam = gpu_family(GaugeMetricFamily, "power_limit_watts", "Enforced power limit (W)")
        for ch in view.channels:
            if ch.power_limit_w is not None:
                fam.add_metric(lbl(ch.gpu), ch.power_limit_w)
        yield fam

        now = GaugeMetricFamily(
            "rigbench_rig_power_watts", "Sum of the GPUs' latest power readings (W)"
        )
        latest = [
            p
            for _, agg in gpus
            if agg.latest is not None and agg.lost_at is None
            if (p := agg.latest.power_w) is not None
        ]
        if latest:
            now.add_metric([], sum(latest))
        yield now

        rig = GaugeMetricFamily(
            "rigbench_rig_power_peak_watts", "Highest sum of the GPUs' power in one tick (W)"
        )
        if view.total_power.value is not None:
            rig.add_metric([], view.total_power.value)
        yield rig
        rate = GaugeMetricFamily(
            "rigbench_sampler_rate_hz", "Ticks per second the sampler achieved"
        )
        if self.achieved_hz is not None:
            rate.add_metric([], self.achieved_hz)
        yield rate


def render_metrics(view: AggregateView, achieved_hz: float | None = None) -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_ViewCollector(view, achieved_hz))
    return generate_latest(registry).decode()


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass  # the terminal belongs to the live view


class PrometheusExporter:
    """Serves `render()`'s text at /metrics from a daemon thread until `close()`."""

    def __init__(self, render: Callable[[], str], port: int) -> None:
        if not 0 <= port <= 65535:
            raise BadInput(f"--prometheus port must be 0-65535 (got {port})")

        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
            if environ.get("PATH_INFO", "/") not in ("/metrics", "/"):
                start_response("404 Not Found", [("Content-Type", "text/plain")])
                return [b"only /metrics is served here\n"]
            body = render().encode()
            start_response(
                "200 OK", [("Content-Type", CONTENT_TYPE), ("Content-Length", str(len(body)))]
            )
            return [body]

        try:
            self._server = make_server(HOST, port, app, ThreadingWSGIServer, handler_class=_Quiet)
        except OSError as exc:
            raise BadInput(
                f"cannot serve Prometheus metrics on {HOST}:{port}: {exc.strerror or exc}"
                " (choose another --prometheus port, or 0 for any free one)"
            ) from None
        self.port = int(self._server.server_address[1])
        self.url = f"http://{HOST}:{self.port}/metrics"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="rigbench-prometheus",
            daemon=True,
        )
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
