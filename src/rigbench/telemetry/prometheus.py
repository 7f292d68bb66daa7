"""A Prometheus text endpoint (exposition format 0.0.4) over the aggregates, served by the
standard library's http.server on loopback only: `GET /metrics` on 127.0.0.1:PORT.

Port 0 lets the OS pick a free port; `url` says which. For Grafana, point a Prometheus
scrape job at it (scrape_interval 1s or more: the gauges are the latest tick's values, the
peaks are since the monitor started).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from rigbench.errors import BadInput
from rigbench.hw.throttle import REASONS
from rigbench.telemetry.aggregate import AggregateView

HOST = "127.0.0.1"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# (metric, type, help, sample attribute)
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


def _label(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render_metrics(view: AggregateView, achieved_hz: float | None = None) -> str:
    names = {c.gpu: c.name for c in view.channels}
    lines: list[str] = []

    def family(name: str, kind: str, help_text: str) -> None:
        lines.append(f"# HELP rigbench_gpu_{name} {help_text}")
        lines.append(f"# TYPE rigbench_gpu_{name} {kind}")

    def labels(gpu: int, **extra: object) -> str:
        parts = {"gpu": gpu, "name": names.get(gpu, "?"), **extra}
        return "{" + ",".join(f'{k}="{_label(v)}"' for k, v in parts.items()) + "}"

    for metric, help_text, attr in _GAUGES:
        family(metric, "gauge", help_text)
        for gpu, agg in sorted(view.gpus.items()):
            value = getattr(agg.latest, attr) if agg.latest is not None else None
            if value is not None and agg.lost_at is None:
                lines.append(f"rigbench_gpu_{metric}{labels(gpu)} {float(value):g}")
    family("power_peak_watts", "gauge", "Highest power read since the monitor started (W)")
    for gpu, agg in sorted(view.gpus.items()):
        if agg.power.value is not None:
            lines.append(f"rigbench_gpu_power_peak_watts{labels(gpu)} {agg.power.value:g}")
    family("temperature_peak_celsius", "gauge", "Highest GPU temperature since start (C)")
    for gpu, agg in sorted(view.gpus.items()):
        if agg.temp_gpu.value is not None:
            lines.append(
                f"rigbench_gpu_temperature_peak_celsius{labels(gpu)} {agg.temp_gpu.value:g}"
            )
    family("energy_joules_total", "counter", "Energy since the driver loaded (J)")
    for gpu, agg in sorted(view.gpus.items()):
        if agg.energy_last_mj is not None and agg.lost_at is None:
            lines.append(
                f"rigbench_gpu_energy_joules_total{labels(gpu)} {agg.energy_last_mj / 1000:g}"
            )
    family("pcie_replay_total", "counter", "PCIe replays since the driver loaded")
    for gpu, agg in sorted(view.gpus.items()):
        if agg.replay_last is not None:
            lines.append(f"rigbench_gpu_pcie_replay_total{labels(gpu)} {agg.replay_last}")
    family("throttle_active", "gauge", "1 while a clock throttle reason is set")
    for gpu, agg in sorted(view.gpus.items()):
        mask = agg.latest.throttle_mask if agg.latest is not None else None
        if mask is None or agg.lost_at is not None:
            continue
        for r in REASONS:
            active = int(bool(mask & r.bit))
            lines.append(f"rigbench_gpu_throttle_active{labels(gpu, reason=r.name)} {active}")
    family("throttle_seconds_total", "counter", "Seconds each throttle reason was set")
    for gpu, agg in sorted(view.gpus.items()):
        for reason, secs in sorted(agg.throttle_s.items()):
            lines.append(
                f"rigbench_gpu_throttle_seconds_total{labels(gpu, reason=reason)} {secs:g}"
            )
    family("xid_events_total", "counter", "Xid events seen since the monitor started")
    xids: dict[int, int] = {}
    for e in view.events:
        if e.kind == "xid":
            xids[e.gpu] = xids.get(e.gpu, 0) + 1
    for gpu in sorted(view.gpus):
        lines.append(f"rigbench_gpu_xid_events_total{labels(gpu)} {xids.get(gpu, 0)}")
    family("lost", "gauge", "1 once the GPU has fallen off the bus")
    for gpu, agg in sorted(view.gpus.items()):
        lines.append(f"rigbench_gpu_lost{labels(gpu)} {int(agg.lost_at is not None)}")
    lines.append(
        "# HELP rigbench_rig_power_peak_watts Highest sum of the GPUs' power in one tick (W)"
    )
    lines.append("# TYPE rigbench_rig_power_peak_watts gauge")
    if view.total_power.value is not None:
        lines.append(f"rigbench_rig_power_peak_watts {view.total_power.value:g}")
    lines.append("# HELP rigbench_sampler_rate_hz Ticks per second the sampler achieved")
    lines.append("# TYPE rigbench_sampler_rate_hz gauge")
    if achieved_hz is not None:
        lines.append(f"rigbench_sampler_rate_hz {achieved_hz:g}")
    return "\n".join(lines) + "\n"


class PrometheusExporter:
    """Serves `render()`'s text at /metrics from a daemon thread until `close()`."""

    def __init__(self, render: Callable[[], str], port: int) -> None:
        if not 0 <= port <= 65535:
            raise BadInput(f"--prometheus port must be 0-65535 (got {port})")
        self._render = render

        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                if self.path.split("?", 1)[0] not in ("/metrics", "/"):
                    self.send_error(404, "only /metrics is served here")
                    return
                body = exporter._render().encode()
                self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPE)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass  # the terminal belongs to the live view

        try:
            self._server = ThreadingHTTPServer((HOST, port), Handler)
        except OSError as exc:
            raise BadInput(
                f"cannot serve Prometheus metrics on {HOST}:{port}: {exc.strerror or exc}"
                " (choose another --prometheus port, or 0 for any free one)"
            ) from None
        self._server.daemon_threads = True
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
