"""Commands that never run a GPU kernel start without importing torch (it takes seconds):
`--help`, `plan`, `cost`, `catalog`, `info` (which reads torch's versions from the
installed packages)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BUILD = Path(__file__).resolve().parents[1] / "examples" / "builds" / "minerva.toml"

PROBE = """
import sys
from rigbench.cli import app
try:
    app(sys.argv[1:])
except SystemExit:
    pass
print("torch imported" if "torch" in sys.modules else "no torch", file=sys.stderr)
"""


@pytest.mark.parametrize(
    "args",
    [["--help"], ["plan", str(BUILD)], ["cost", str(BUILD)], ["catalog", "gpus"], ["info"]],
    ids=["help", "plan", "cost", "catalog", "info"],
)
def test_command_does_not_import_torch(args: list[str]) -> None:
    res = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=120
    )
    assert res.stderr.strip().splitlines()[-1] == "no torch", res.stderr


def test_info_reads_torch_versions_from_the_installed_packages() -> None:
    from importlib import metadata

    from rigbench.hw.system import torch_versions

    assert torch_versions()[0] == metadata.version("torch")


PLAN_EVERY_BENCHMARK = """
import sys
from rigbench.bench.suite import BENCHMARKS, build_plan
from rigbench.hw.simulated import SimulatedBackend
rig = SimulatedBackend.from_file(sys.argv[1]).rig()
plan = build_plan(rig, gpus=[g.index for g in rig.gpus], only=list(BENCHMARKS), mode="full",
                  cuda_available=False)
assert plan.total_steps > 0
print("torch imported" if "torch" in sys.modules else "no torch", file=sys.stderr)
"""


def test_planning_every_benchmark_does_not_import_torch() -> None:
    # rigbench plans a run in its own process and measures in workers forked from a fork
    # server that imported torch: a torch import in the planning process is one more
    # (1-2 CPU-s) before the first step, on every bench and doctor run.
    rig = Path(__file__).resolve().parents[1] / "examples" / "simulated" / "minerva-4x3090.toml"
    res = subprocess.run(
        [sys.executable, "-c", PLAN_EVERY_BENCHMARK, str(rig)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert res.stderr.strip().splitlines()[-1] == "no torch", res.stderr
