"""Fast and slow telemetry figures: what a tick reads, what 8 GPUs cost at 100 Hz under the
measured NVML read cost, and the per-figure refresh rates monitor reports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from rigbench.cli import app
from rigbench.hw.simulated import SimulatedBackend
from rigbench.hw.telemetry import FAST_FIELDS, SLOW_EVERY_S, SlowSchedule, TelemetrySample
from rigbench.telemetry.refresh import FieldRefresh

RATE_RIG = "h100-8x-monitor-rate.toml"


def test_slow_reads_are_spread_over_the_period_and_each_comes_once() -> None:
    items = [(g, n) for g in range(8) for n in range(13)]
    sched = SlowSchedule(items, 1.0)
    assert sorted(sched.due(0.0)) == sorted(items)  # every figure on the first tick
    per_tick = [len(sched.due(k / 100)) for k in range(1, 201)]
    assert max(per_tick) <= 2 and sum(per_tick) == 2 * len(items)  # two periods, evenly


def test_8_simulated_gpus_fit_a_100_hz_tick_at_the_measured_read_cost(examples: Path) -> None:
    backend = SimulatedBackend.from_file(examples / RATE_RIG)
    source = backend.telemetry()
    per_read_ms = source.read_ms
    assert per_read_ms == 0.35  # the rig carries the H200 VM's measured cost
    source.read_ms = None  # count the reads instead of sleeping them
    reads, temps, powers = [], set(), []
    for k in range(300):  # three seconds at 100 Hz
        samples = source.read(k / 100)
        if k:
            reads.append(source.reads_last)
        temps.add((samples[0].t, samples[0].temp_gpu_c))
        powers.append(samples[0].power_instant_w)
    # the fast figures of 8 GPUs every tick plus the slow reads that fall on it
    assert min(reads) >= 8 * len(FAST_FIELDS)
    assert max(reads) * per_read_ms < 10.0, max(reads)
    # reading every figure every tick, as before, would not fit
    assert 8 * (len(FAST_FIELDS) + 13) * per_read_ms > 10.0
    # the power pulse (0.2 s period) is seen on every edge; slow figures repeat between reads
    changes = sum(1 for a, b in zip(powers, powers[1:], strict=False) if a != b)
    assert changes >= 28
    assert sum(reads) / len(reads) < 8 * len(FAST_FIELDS) + 8 * 13 / SLOW_EVERY_S / 100 + 1


def _sample(t: float, power: float, temp: float) -> TelemetrySample:
    return TelemetrySample(t=t, gpu=0, power_instant_w=power, temp_gpu_c=temp, sm_clock_mhz=1980)


def test_refresh_counts_value_changes_per_figure() -> None:
    refresh = FieldRefresh()
    for k in range(201):  # 2 s at 100 Hz: power moves every 10th tick, temperature never
        t = k / 100
        refresh.add(t, [_sample(t, 300.0 + (k // 10) % 2, 60.0)], [])
    rates = {r.field: r for r in refresh.rates(100.0)}
    assert rates["power_instant_w"].changes_hz == 10.0
    assert rates["power_instant_w"].cadence == "fast" and rates["power_instant_w"].read_hz == 100
    assert rates["temp_gpu_c"].changes_hz == 0 and rates["temp_gpu_c"].cadence == "slow"
    assert rates["temp_gpu_c"].read_hz == 1 / SLOW_EVERY_S
    assert "fan_pct" not in rates  # never reported: not listed


def test_monitor_prints_and_returns_the_rate_of_every_figure(examples: Path) -> None:
    res = CliRunner().invoke(
        app,
        ["monitor", "--simulate", str(examples / RATE_RIG), "--rate", "100", "--seconds", "0.6"],
        env={"COLUMNS": "200"},
    )
    assert res.exit_code == 0, res.stderr
    assert "refresh (value changes/s of reads/s" in res.stdout and "power " in res.stdout
    res = CliRunner().invoke(
        app,
        ["monitor", "--simulate", str(examples / RATE_RIG), "--seconds", "0.6", "--json"],
    )
    assert res.exit_code == 0, res.stderr
    fields: dict[str, Any] = json.loads(res.stdout)["fields"]
    assert fields["power_instant_w"]["cadence"] == "fast"
    assert fields["power_instant_w"]["changes_hz"] > 0
    assert fields["temp_gpu_c"]["cadence"] == "slow"
    assert set(FAST_FIELDS) <= set(fields)
