"""`burnin --sweep-power`: its spec, and a sweep on a simulated rig that sets the limits in
memory, measures at each, and puts the limit back (no real GPU setting is touched)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rigbench.burnin.sweep import parse_sweep, run_sweep
from rigbench.errors import BadInput
from rigbench.hw.simulated import SimulatedBackend


def test_sweep_spec() -> None:
    assert parse_sweep("150:350:25") == [150, 175, 200, 225, 250, 275, 300, 325, 350]
    assert parse_sweep("280:285:5") == [280, 285]
    for bad in ("150:350", "350:150:25", "a:b:c", "150:350:0", "1:1000:1"):
        with pytest.raises(BadInput, match="--sweep-power"):
            parse_sweep(bad)


def test_simulated_sweep_measures_each_limit_and_restores_it(examples: Path) -> None:
    backend = SimulatedBackend.from_file(examples / "h200-x1.toml")
    before = backend.rig().gpus[0].power_limit_w
    report = run_sweep(backend, [300.0, 500.0], [0], size_scale=0.25)
    assert report.simulated and any("simulated rig" in n for n in report.notes)
    assert [p.limit_w for p in report.points] == [300.0, 500.0]
    # the traced draw follows the limit (85 % of it, the healthy baseline); the rate is measured
    assert [p.power_mean_w for p in report.points] == [pytest.approx(255), pytest.approx(425)]
    assert all(p.tflops and p.tflops_per_w for p in report.points)
    assert backend.rig().gpus[0].power_limit_w == before
