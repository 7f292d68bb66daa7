"""`rigbench plan`: check a parts list before buying it.

`load_build` reads a build file (TOML, validated); `plan_build` runs the checks (power,
PCIe, mixed GPUs, model fit) and the predictions (peak compute, memory bandwidth, decode
and data-parallel bounds) and returns a `PlanReport` of typed findings and predictions.

>>> from rigbench.plan import load_build, plan_build
>>> report = plan_build(load_build("examples/builds/iva-2x3090.toml"))
>>> report.exit_code
0
"""

from rigbench.plan.build import (
    Build,
    BuildFile,
    BuildFileError,
    GpuUnit,
    PsuGroup,
    build_json_schema,
    load_build,
    write_build_schema,
)
from rigbench.plan.checks import plan_build
from rigbench.plan.records import Finding, PlanReport, Prediction

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
