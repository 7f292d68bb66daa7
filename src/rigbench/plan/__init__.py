"""`rigbench plan`: check a parts list before buying it.

`load_build` reads a build file (TOML, validated); `plan_build` runs the checks (power,
PCIe, mixed GPUs, model fit) and the predictions (peak compute, memory bandwidth, decode
and data-parallel bounds) and returns a `PlanReport` of typed findings and predictions.

>>> from rigbench.plan import load_build, plan_build
>>> report = plan_build(load_build("examples/builds/iva-2x3090.toml"))
>>> report.exit_code
0
"""

from __future__ import annotations

import importlib
from typing import Any

# Exported lazily (PEP 562): `rigbench.plan.cost` and the CLI import this package, and the
# build-file models (pydantic) should load only when a build file is read.
_EXPORTS = {
    "Build": "build",
    "BuildFile": "build",
    "BuildFileError": "build",
    "GpuUnit": "build",
    "PsuGroup": "build",
    "build_json_schema": "build",
    "load_build": "build",
    "write_build_schema": "build",
    "plan_build": "checks",
    "Finding": "records",
    "PlanReport": "records",
    "Prediction": "records",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"rigbench.plan.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'rigbench.plan' has no attribute {name!r}")


__all__ = [
    "Build",
    "BuildFile",
    "BuildFileError",
    "GpuUnit",
    "PsuGroup",
    "build_json_schema",
    "Finding",
    "PlanReport",
    "Prediction",
    "load_build",
    "plan_build",
    "write_build_schema",
]
