"""The build file: a rig as a parts list (TOML), checked before anything is bought.

`load_build(path)` reads and validates the file with pydantic (every table strict: unknown
keys, wrong types and impossible values are errors), resolves the catalog names (GPUs,
CPU, motherboard) and works out what each GPU is plugged into and which PSU feeds it.
Every problem is one `BuildFileError` line, `<file>: <key path>: <what is wrong>`, with
the closest catalog names for a model that is not in the catalog. `build_json_schema()`
is the JSON Schema published as `schemas/build.schema.json` for editors; regenerate it
with `python -c "import rigbench.plan as p; p.write_build_schema()"` from the repo root.

    [rig]          name, description
    [[gpu]]        model, count, power_limit_w, link ({gen, width} or slot name(s)), nvlink
    [cpu]          model, count (sockets)
    [motherboard]  model
    [[psu]]        model, watts, count, redundant, efficiency, kind, atx3, feeds, system, bus,
                   circuit
    [power]        workload, other_w, cpu_w
    [wall]         volts, amps, circuits, phases, continuous_factor
    [costs]        price_usd, cloud_per_hour_usd, electricity_per_kwh_usd,
                   electricity_per_hour_usd, watts
    [usage]        hours_per_year, returns (percent per year), use_years, invest_years,
                   train_tokens_per_s, generate_tokens_per_s
    [[model]]      name (preset) or params/layers/heads/kv_heads/head_dim..., bits_per_weight,
                   context, batch, kv_dtype, mode, parallel, lora_rank, max_context,
                   qkv_bias, cpu_offload, activation_offload, chunked_loss, gpus

`examples/builds/` holds the rigs of our users' write-ups; the schema's descriptions say
what each key means and its unit. The schema lives in rigbench.plan.schema, slots and
links in rigbench.plan.links, PSU groups in rigbench.plan.psu_groups, [[model]] entries in
rigbench.plan.model_entries; this module reads a file and ties them together.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from rigbench.catalog import find_board, find_cpu
from rigbench.plan.efficiency import DEFAULT_EFFICIENCY, EFFICIENCY_TIERS, tier_name
from rigbench.plan.links import resolve_gpus, socket_key
from rigbench.plan.model_entries import resolve_models
from rigbench.plan.psu_groups import resolve_psus
from rigbench.plan.rig import Build, GpuUnit, PsuGroup
from rigbench.plan.schema import (
    ARCH_FIELDS,
    DEFAULT_OTHER_W,
    INFERENCE_SPLITS,
    MAX_GPUS,
    NVLINK_KINDS,
    TRAINING_SHARDINGS,
    BoardSection,
    BuildFile,
    BuildFileError,
    CostsSection,
    CpuSection,
    GpuEntry,
    LinkSpec,
    ModelEntry,
    PowerSection,
    PsuEntry,
    RigSection,
    UsageSection,
    WallSection,
)
from rigbench.tomlfile import FileSchema, describe, key_path, read_toml, validation_failure

__all__ = [
    "ARCH_FIELDS",
    "DEFAULT_EFFICIENCY",
    "DEFAULT_OTHER_W",
    "EFFICIENCY_TIERS",
    "INFERENCE_SPLITS",
    "MAX_GPUS",
    "NVLINK_KINDS",
    "TRAINING_SHARDINGS",
    "BoardSection",
    "Build",
    "BuildFile",
    "BuildFileError",
    "CostsSection",
    "CpuSection",
    "GpuEntry",
    "GpuUnit",
    "LinkSpec",
    "ModelEntry",
    "PowerSection",
    "PsuEntry",
    "PsuGroup",
    "RigSection",
    "UsageSection",
    "WallSection",
    "build_json_schema",
    "load_build",
    "tier_name",
    "with_models",
    "write_build_schema",
]

_SCHEMA = FileSchema(
    root=BuildFile,
    kind="build file",
    array_tables=frozenset({"gpu", "psu", "model"}),
    tables=frozenset({"rig", "cpu", "motherboard", "power", "wall", "costs", "usage"}),
    show_checked_value=False,
)


def _fail(path: Path, where: str | None, what: str) -> BuildFileError:
    """`<file>: <key path>: <what is wrong>`, or `<file>: <what>` for the file as a whole."""
    text = f"{path}: {where}: {what}" if where else f"{path}: {what}"
    return BuildFileError(re.sub(r"[\r\n]+", " ", text))


def load_build(path: str | Path) -> Build:
    """Read, validate and resolve a build file; raises BuildFileError (one line)."""
    path = Path(path)
    data = read_toml(path, lambda where, what: _fail(path, where, what))
    try:
        file = BuildFile.model_validate(data)
    except ValidationError as exc:
        raise validation_failure(
            exc, _SCHEMA, lambda where, what: _fail(path, where, what)
        ) from None
    return _resolve(path, file)


def with_models(
    build: Build,
    names: list[str],
    *,
    context: int | None = None,
    bits: str | None = None,
    mode: str = "inference",
) -> Build:
    """`build` with more [[model]] entries: presets named on the command line, checked
    like the file's own (errors name `--model`)."""
    entries = []
    for name in names:
        raw: dict[str, Any] = {"name": name, "mode": mode}
        if context is not None:
            raw["context"] = context
        if bits is not None:
            try:
                raw["bits_per_weight"] = float(bits)
            except ValueError:
                raw["bits_per_weight"] = bits
        try:
            entries.append(ModelEntry.model_validate(raw))
        except ValidationError as exc:
            err = exc.errors()[0]
            key = key_path(tuple(err["loc"]))
            what = describe(err, _SCHEMA)
            opt = {"mode": "--mode", "bits_per_weight": "--bits-per-weight"}.get(key, "--model")
            if opt == "--model" and "bits_per_weight" in what:
                opt = "--bits-per-weight"
            raise BuildFileError(f"{opt}: {what}") from None
    file = build.file.model_copy(update={"model": [*build.file.model, *entries]})
    try:
        specs = resolve_models(
            file, len(build.gpus), lambda where, what: _fail(build.path, where, what)
        )
    except BuildFileError as exc:
        first = len(build.file.model)
        text = str(exc).removeprefix(f"{build.path}: ")
        for k in range(len(entries)):
            text = text.replace(f"model[{first + k}].name", "--model")
        raise BuildFileError(text) from None
    return replace(build, file=file, model_specs=tuple(specs))


def build_json_schema() -> dict[str, Any]:
    """The JSON Schema of the build file (published as schemas/build.schema.json)."""
    schema = BuildFile.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def write_build_schema(path: str | Path = "schemas/build.schema.json") -> None:
    """Write build_json_schema() where the repository publishes it."""
    Path(path).write_text(json.dumps(build_json_schema(), indent=2) + "\n", encoding="utf-8")


def _resolve(path: Path, file: BuildFile) -> Build:
    """Cross-table checks and resolution; errors name the key they come from."""

    def fail(where: str | None, what: str) -> BuildFileError:
        return _fail(path, where, what)

    f = file
    cpu = find_cpu(f.cpu.model) if f.cpu else None
    cpu_count = f.cpu.count if f.cpu else 0
    board = find_board(f.motherboard.model) if f.motherboard else None
    if cpu is not None and f.cpu is not None and cpu_count > cpu.max_sockets:
        raise fail("cpu.count", f"the {cpu.name} runs in at most {cpu.max_sockets} socket(s)")
    if board is not None:
        if cpu is not None and socket_key(cpu.socket) != socket_key(board.socket):
            raise fail(
                "motherboard.model",
                f"the {board.name} has socket {board.socket}; the {cpu.name} needs {cpu.socket}",
            )
        if cpu_count > board.cpu_sockets:
            raise fail("cpu.count", f"the {board.name} has {board.cpu_sockets} CPU socket(s)")
    n_gpus = sum(e.count for e in f.gpu)
    if n_gpus > MAX_GPUS:
        raise fail("gpu", f"{n_gpus} GPUs; at most {MAX_GPUS}")
    gpus = resolve_gpus(f, cpu, board, fail)
    psus = resolve_psus(f, n_gpus, fail)
    models = resolve_models(f, n_gpus, fail)
    return Build(
        path=path,
        file=f,
        gpus=tuple(gpus),
        cpu=cpu,
        cpu_count=cpu_count,
        board=board,
        psus=tuple(psus),
        model_specs=tuple(models),
    )


# -- GPUs and their links
