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
