"""The PSU-trip finder on the V100 server write-up's simulated server: two paralleled PSUs trip
when 3 of its 4 GPUs ramp together, three hold; staggering lowers the peak."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from rigbench.burnin.psutrip import GpuRamp, step_draw
from rigbench.cli import app

BUILDS = Path(__file__).resolve().parent.parent / "examples" / "builds"


def _find(examples: Path, build: str, *extra: str) -> tuple[int, dict[str, Any]]:
    res = CliRunner().invoke(
        app,
        ["burnin", "--find-trip", "--build", str(BUILDS / build), "--json",
         "--simulate", str(examples / "v100-sxm2-server-transients.toml"), *extra],
    )  # fmt: skip
    return res.exit_code, json.loads(res.stdout) if res.stdout.startswith("{") else {}


def test_two_psus_trip_at_three_gpus_ramping_together_three_hold(examples: Path) -> None:
    code, doc = _find(examples, "v100-sxm2-server.toml", "--stagger", "20")
    assert code == 1
    assert doc["first_trip"]["simultaneous"] in (3, 4)  # the write-up: DDP ramps on 4 GPUs
    steps = doc["simultaneous"]
    assert [s["outcome"] for s in steps][:2] != ["trips", "trips"]
    assert steps[-1]["groups"][0]["spike_capacity_w"] == 1100  # plan: 2 units count as 1
    # staggering: every peak at most the simultaneous one, lower once 2+ GPUs ramp
    stag = doc["staggered"]
    assert all(a["gpus_peak_w"] <= b["gpus_peak_w"] for a, b in zip(stag, steps, strict=True))
    assert stag[-1]["gpus_peak_w"] < steps[-1]["gpus_peak_w"]
    (finding,) = doc["findings"]
    assert finding["id"] == "psu.trip_finder.trips" and finding["severity"] == "error"
    assert finding["evidence"]["gpus_ramping"] == doc["first_trip"]["simultaneous"]
    code, doc = _find(examples, "v100-sxm2-server-3psu.toml", "--stagger", "20")
    assert code == 0 and doc["first_trip"] == {"simultaneous": None, "staggered": None}
    assert [f["id"] for f in doc["findings"]] == ["psu.trip_finder.ok"]


def test_stagger_longer_than_the_spike_never_stacks_two_peaks() -> None:
    ramps = [GpuRamp(gpu=i, idle_w=50, peak_w=400, sustained_w=300, spike_ms=10, source="t")
             for i in range(3)]  # fmt: skip
    assert sum(step_draw(ramps, 3, 0.0)[1].values()) == 1200
    assert sum(step_draw(ramps, 3, 20.0)[1].values()) == 400 + 300 + 300
    assert sum(step_draw(ramps, 3, 5.0)[1].values()) == 400 + 400 + 300  # overlap: 2 peaks


def test_find_trip_needs_a_build_and_a_simulated_rig(examples: Path) -> None:
    res = CliRunner().invoke(app, ["burnin", "--find-trip"])
    assert res.exit_code == 2 and "--find-trip needs --build" in res.stderr
    res = CliRunner().invoke(
        app,
        ["burnin", "--find-trip", "--build", str(BUILDS / "v100-sxm2-server.toml"),
         "--simulate", str(examples / "iva-2x3090.toml")],
    )  # fmt: skip
    assert res.exit_code == 2 and "sets no idle_w" in res.stderr


def test_without_gpus_the_finder_says_it_needs_them_in_one_line() -> None:
    import pytest

    from rigbench.burnin.psutrip import ramps_from_source
    from rigbench.errors import BadInput
    from rigbench.hw.cpu_only import CpuOnlyBackend

    with pytest.raises(BadInput, match="--find-trip needs NVIDIA GPUs to ramp"):
        ramps_from_source(CpuOnlyBackend().telemetry())


def test_the_one_gpu_check_build_holds_on_a_simulated_h100(examples: Path) -> None:
    """The build file the GPU check script ramps one real H100 against."""
    from rigbench.burnin.psutrip import find_trip
    from rigbench.plan.build import load_build

    ramp = GpuRamp(gpu=0, idle_w=70, peak_w=945, sustained_w=700, spike_ms=10, source="t")
    (step,) = find_trip(load_build(BUILDS / "checks" / "h100-sxm-1gpu.toml"), [ramp], 0.0)
    assert step.outcome == "holds" and step.groups[0].spike_capacity_w == 3300
