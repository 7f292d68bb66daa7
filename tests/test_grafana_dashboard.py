"""The shipped Grafana dashboard asks only for metrics and labels `monitor --prometheus`
actually serves."""

from __future__ import annotations

import json
import re
from pathlib import Path

from rigbench.hw.simulated import SimulatedBackend
from rigbench.telemetry.aggregate import Aggregator
from rigbench.telemetry.prometheus import render_metrics

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "dashboards" / "grafana-rigbench-monitor.json"
PROMQL_WORDS = {"sum", "rate", "increase", "vector", "by", "without", "max", "min", "avg"}


def _served() -> tuple[set[str], set[str]]:
    """(sample names, label names) of the endpoint's text for a simulated 4-GPU rig."""
    rig = ROOT / "examples" / "simulated" / "v100-sxm2-server-transients.toml"
    source = SimulatedBackend.from_file(rig).telemetry()
    agg = Aggregator(source.channels(), 0.05)
    for k in range(4):
        agg.add(k / 20, source.read(k / 20), [])
    names, labels = set(), set()
    for line in render_metrics(agg.view(), 20.0).splitlines():
        # a family with no series yet (no throttling so far) is still served: its TYPE line
        if m := re.match(r"# TYPE (\S+) (counter|gauge)", line):
            name, kind = m.groups()
            names.add(
                name + ("_total" if kind == "counter" and not name.endswith("_total") else "")
            )
        if line.startswith("#") or not line:
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? ", line)
        assert m, line
        names.add(m.group(1))
        labels |= set(re.findall(r'([a-zA-Z_]+)="', m.group(3) or ""))
    return names, labels


def test_every_panel_queries_a_metric_the_endpoint_serves() -> None:
    served, labels = _served()
    doc = json.loads(DASHBOARD.read_text())
    assert doc["__inputs"][0]["pluginId"] == "prometheus"  # importable with a data source
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids)) and len(ids) >= 6
    asked: set[str] = set()
    for panel in doc["panels"]:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            expr = target["expr"]
            metrics = set(re.findall(r"\brigbench_[a-z_]+", expr))
            if not expr.startswith("vector($"):
                assert metrics, f"{panel['title']}: {expr} names no rigbench metric"
            missing = metrics - served
            assert not missing, f"{panel['title']}: {expr} asks for {missing}, not served"
            asked |= metrics
            for label in re.findall(r"\{\{(\w+)\}\}", target.get("legendFormat", "")):
                assert label in labels, f"{panel['title']}: legend label {label} not served"
    # what the issue asks to see: power per GPU and in total, clocks, temperatures,
    # throttle reasons, Xid events
    for needed in ("rigbench_gpu_power_instant_watts", "rigbench_rig_power_watts",
                   "rigbench_gpu_sm_clock_mhz", "rigbench_gpu_temperature_celsius",
                   "rigbench_gpu_throttle_active", "rigbench_gpu_xid_events_total"):  # fmt: skip
        assert needed in asked
    assert {"gpu", "UUID", "modelName"} <= labels  # dcgm-exporter's label names
