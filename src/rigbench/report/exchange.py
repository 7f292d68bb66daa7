"""`rigbench export` / `import`: runs as one versioned JSON document another owner's rigbench
can read, compare and report on.

The format is `ExportFile` below; its JSON Schema is `schemas/export.schema.json`
(regenerate with `python -c "import rigbench.report.exchange as e; e.write_export_schema()"`).
A run carries its envelope (command, command line, machine, versions, dates, status), every
result (`Result.to_dict()`: value, spread, expected/peak and basis, params, and a judgement
and conditions where the run has them), its findings, and for runs that sampled telemetry
each GPU's facts, a per-GPU summary and the samples thinned to at most MAX_SERIES_POINTS per
GPU (each bucket keeps its highest-power tick, so peaks survive).

FORMAT_VERSION rises when a reader of the previous version could misread a file; a file of
a newer version is refused, never half-read. Without `include_ids` the hostname, UUIDs,
serial numbers and paths in the owner's home are left out (rigbench.privacy).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from rigbench import __version__
from rigbench.errors import BadInput
from rigbench.hw.telemetry import SAMPLE_FIELDS
from rigbench.privacy import scrub, scrub_argv
from rigbench.records import (
    FailureReason,
    Finding,
    Origin,
    Result,
    Run,
    RunStatus,
    Severity,
    Status,
    Verdict,
    utc_now,
)
from rigbench.store import Store
from rigbench.telemetry.recorder import load_columns, load_events, load_gpus
from rigbench.userfile import NotReadable, read_bytes_limited

FORMAT = "rigbench-export"
FORMAT_VERSION = 1
MAX_SERIES_POINTS = 2000
SCHEMA_PATH = Path(__file__).resolve().parents[3] / "schemas" / "export.schema.json"
SUMMARY_COLUMNS = ("power_instant_w", "power_avg_w", "sm_clock_mhz", "temp_gpu_c", "temp_mem_c")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SpreadModel(_Model):
    n: int = Field(ge=0)
    min: float
    p10: float
    p50: float
    p90: float
    p99: float
    max: float
    mean: float
    stdev: float


class JudgementModel(_Model):
    verdict: Verdict
    low: float | None = None
    high: float | None = None
    typical: float | None = None
    reference: str | None = None
    source: str | None = None
    cause: str | None = None
    note: str | None = None


class ResultModel(_Model):
    """One measured figure (rigbench.records.Result)."""

    benchmark: str = Field(min_length=1)
    metric: str = Field(min_length=1)
    value: float | None
    unit: str
    params: dict[str, Any] = Field(default_factory=dict)
    devices: list[str] = Field(default_factory=list)
    spread: SpreadModel | None = None
    expected: float | None = None
    peak: float | None = None
    basis: str | None = None
    status: Status = "ok"
    message: str | None = None
    reason: FailureReason | None = None
    ratio: float | None = None
    judgement: JudgementModel | None = None
    conditions: dict[str, Any] | list[Any] | None = None

    @field_validator("value", "expected", "peak", "ratio")
    @classmethod
    def _finite(cls, v: float | None) -> float | None:
        if v is not None and not math.isfinite(v):
            raise ValueError("must be a finite number")
        return v


class FindingModel(_Model):
    id: str = Field(min_length=1)
    severity: Severity
    title: str
    evidence: dict[str, Any] = Field(default_factory=dict)
    why: str | None = None
    fix: str | None = None
    source: str | None = None
    origin: Origin | None = None
    gpus: list[int] = Field(default_factory=list)


class EventModel(_Model):
    t: float
    gpu: int
    kind: str
    code: int | None = None
    message: str


class TelemetryModel(_Model):
    """Telemetry of a run that sampled it: `gpus` the facts of each sampled GPU
    (GpuChannel.to_dict()), `summary` per GPU index, `columns` the names of each row of
    `samples` (thinned; `samples_total` is how many were recorded)."""

    t0_unix: float | None = None
    gpus: list[dict[str, Any]]
    summary: dict[str, dict[str, Any]]
    samples_total: int = Field(ge=0)
    columns: list[str]
    samples: list[list[float | int | None]]
    events: list[EventModel] = Field(default_factory=list)

    @field_validator("gpus")
    @classmethod
    def _gpu_facts(cls, v: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for i, g in enumerate(v):
            if not isinstance(g.get("gpu"), int) or not isinstance(g.get("name"), str):
                raise ValueError(f"gpus[{i}] needs an integer 'gpu' and a string 'name'")
        return v

    @model_validator(mode="after")
    def _rows_fit(self) -> TelemetryModel:
        n = len(self.columns)
        if any(len(row) != n for row in self.samples):
            raise ValueError(f"every sample row must have {n} values, one per column")
        return self

    @field_validator("columns")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        bad = [c for c in v if c not in SAMPLE_FIELDS]
        if bad or "t" not in v or "gpu" not in v:
            raise ValueError(f"columns must be telemetry fields including t and gpu, not {bad}")
        return v


class RunModel(_Model):
    """One run: its envelope, results, findings and telemetry. `id` is its number where
    it was measured."""

    id: int | None = None
    command: str = Field(min_length=1)
    argv: list[str] = Field(default_factory=list)
    backend: str
    machine: dict[str, Any] = Field(default_factory=dict)
    versions: dict[str, Any] = Field(default_factory=dict)
    started_at: str
    finished_at: str | None = None
    status: RunStatus
    origin: dict[str, Any] | None = None
    results: list[ResultModel] = Field(default_factory=list)
    findings: list[FindingModel] = Field(default_factory=list)
    telemetry: TelemetryModel | None = None


class ExportFile(_Model):
    """A rigbench export: runs with everything needed to compare and report on them."""

    model_config = ConfigDict(extra="forbid", title="rigbench export")

    format: Literal["rigbench-export"]
    format_version: int = Field(ge=1)
    rigbench: str
    exported_at: str
    includes_ids: bool
    runs: list[RunModel]


def export_schema() -> dict[str, Any]:
    schema = ExportFile.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://github.com/rigbench/rigbench/schemas/export.schema.json"
    return schema


def write_export_schema(path: Path = SCHEMA_PATH) -> Path:
    path.write_text(json.dumps(export_schema(), indent=2) + "\n", encoding="utf-8")
    return path


# --- export -----------------------------------------------------------------------------------


def _thin_rows(rows: list[tuple[Any, ...]], power_at: int, limit: int) -> list[tuple[Any, ...]]:
    if len(rows) <= limit:
        return rows
    step = len(rows) / limit
    out = []
    for k in range(limit):
        chunk = rows[int(k * step) : max(int((k + 1) * step), int(k * step) + 1)]
        out.append(max(chunk, key=lambda r: r[power_at] if r[power_at] is not None else -1.0))
    return out


def _summary(rows: list[tuple[Any, ...]], columns: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"samples": len(rows)}
    if rows:
        out["duration_s"] = rows[-1][0] - rows[0][0]
    for c in SUMMARY_COLUMNS:
        i = columns.index(c)
        vals = [r[i] for r in rows if r[i] is not None]
        if vals:
            out[f"{c}_max"] = max(vals)
            out[f"{c}_mean"] = sum(vals) / len(vals)
    return out


def _telemetry(store: Store, run_id: int, include_ids: bool) -> dict[str, Any] | None:
    gpus = load_gpus(store, run_id)
    if not gpus:
        return None
    columns = list(SAMPLE_FIELDS)
    power_at = columns.index("power_instant_w")
    samples: list[list[Any]] = []
    summary, total = {}, 0
    for g in gpus:
        rows = load_columns(store, run_id, int(g["gpu"]), columns)
        total += len(rows)
        summary[str(g["gpu"])] = _summary(rows, columns)
        samples.extend(list(r) for r in _thin_rows(rows, power_at, MAX_SERIES_POINTS))
    samples.sort(key=lambda r: (r[0], r[1]))
    t0 = store.db.execute(
        "SELECT min(t0_unix) FROM telemetry_gpus WHERE run_id = ?", (run_id,)
    ).fetchone()[0]
    facts = gpus if include_ids else scrub(gpus)
    return {
        "t0_unix": t0,
        "gpus": facts,
        "summary": summary,
        "samples_total": total,
        "columns": columns,
        "samples": samples,
        "events": [
            {"t": e.t, "gpu": e.gpu, "kind": e.kind, "code": e.code, "message": e.message}
            for e in load_events(store, run_id)
        ],
    }


def export_runs(store: Store, run_ids: list[int], *, include_ids: bool = False) -> dict[str, Any]:
    """The export document of the named runs (BadInput for one that is not stored)."""
    if not run_ids:
        raise BadInput("name at least one run to export")
    runs = []
    for rid in dict.fromkeys(run_ids):
        run = store.get_run(rid)
        if run is None:
            raise BadInput(f"no run #{rid} in {store.path or 'the database'}")
        doc: dict[str, Any] = run.to_dict()
        # the process that ran it (pid, host, its identity) only means something on that host
        for local in ("pid", "host", "process"):
            doc.pop(local, None)
        doc["origin"] = store.run_origin(rid)
        doc["results"] = [r.to_dict() for r in store.results(rid)]
        doc["findings"] = [f.to_dict() for f in store.findings(rid)]
        doc["telemetry"] = _telemetry(store, rid, include_ids)
        if not include_ids:
            doc["argv"] = scrub_argv(doc["argv"])
            doc = scrub(doc)
        runs.append(doc)
    out = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "rigbench": __version__,
        "exported_at": utc_now(),
        "includes_ids": include_ids,
        "runs": runs,
    }
    # What we write must be what we read: a value the format cannot carry stops the export.
    try:
        ExportFile.model_validate(out)
    except ValidationError as exc:
        e = exc.errors()[0]
        where = ".".join(str(p) for p in e["loc"])
        raise BadInput(f"cannot export: {where}: {e['msg']}") from None
    return out


# --- import -----------------------------------------------------------------------------------


# An export holds thinned telemetry (at most 2,000 rows per GPU per run): a few MB a run.
MAX_IMPORT_BYTES = 256 << 20


def read_export(path: Path) -> ExportFile:
    """Parse and validate an export file; BadInput (one line) for anything wrong."""
    try:
        raw = json.loads(read_bytes_limited(path, MAX_IMPORT_BYTES).decode("utf-8"))
    except NotReadable as exc:
        raise BadInput(f"{path}: {exc}") from exc
    except OSError as exc:
        raise BadInput(f"cannot read {path}: {exc.strerror or exc}") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInput(f"{path}: not JSON ({exc})") from exc
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise BadInput(f'{path}: not a rigbench export (no "format": "{FORMAT}")')
    version = raw.get("format_version")
    if isinstance(version, int) and version > FORMAT_VERSION:
        raise BadInput(
            f"{path}: written in export format {version} by rigbench {raw.get('rigbench', '?')};"
            f" this rigbench reads format {FORMAT_VERSION} and older: upgrade rigbench"
        )
    try:
        return ExportFile.model_validate(raw)
    except ValidationError as exc:
        e = exc.errors()[0]
        where = ".".join(str(p) for p in e["loc"]) or "(top)"
        more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
        raise BadInput(f"{path}: {where}: {e['msg']}{more}") from None


def _result(m: ResultModel) -> Result:
    d = m.model_dump()
    d["spread"] = m.spread.model_dump() if m.spread else None
    fields = Result.__dataclass_fields__
    # judgement and conditions are kept where this rigbench's Result has them
    return Result.from_dict({k: v for k, v in d.items() if k in fields})


def import_runs(store: Store, path: Path) -> list[int]:
    """Add every run of the export file to the store in one transaction; returns the new
    run numbers. Each is marked with its origin (the file, its run number there)."""
    doc = read_export(path)
    for m in doc.runs:
        row = store.db.execute(
            "SELECT id FROM runs WHERE json_extract(origin, '$.exported_at') = ?"
            " AND json_extract(origin, '$.run_id') IS ? AND command = ? AND started_at = ?",
            (doc.exported_at, m.id, m.command, m.started_at),
        ).fetchone()
        if row is not None:
            raise BadInput(f"{path}: run #{m.id} was imported already, as run #{row[0]}")
    new_ids: list[int] = []
    with store.transaction():
        for m in doc.runs:
            run = Run(
                command=m.command,
                argv=m.argv,
                backend=m.backend,
                machine=m.machine,
                versions=m.versions,
                started_at=m.started_at,
                status=m.status,
            )
            rid = store.start_run(run)
            origin = {
                "file": path.name,
                "format_version": doc.format_version,
                "rigbench": doc.rigbench,
                "exported_at": doc.exported_at,
                "run_id": m.id,
                "imported_at": utc_now(),
                "earlier_origin": m.origin,
            }
            store.db.execute(
                "UPDATE runs SET finished_at = ?, origin = ? WHERE id = ?",
                (m.finished_at, json.dumps(origin), rid),
            )
            for r in m.results:
                store.add_result(rid, _result(r))
            for f in m.findings:
                store.add_finding(rid, Finding.from_dict(f.model_dump()))
            if m.telemetry is not None:
                _import_telemetry(store, rid, m.telemetry)
            new_ids.append(rid)
    return new_ids


def _import_telemetry(store: Store, run_id: int, t: TelemetryModel) -> None:
    store.db.executemany(
        "INSERT INTO telemetry_gpus (run_id, gpu, name, uuid, t0_unix, power_instant_source,"
        " power_avg_source, facts) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                run_id,
                int(g["gpu"]),
                str(g.get("name", "")),
                g.get("uuid"),
                t.t0_unix or 0.0,
                g.get("power_instant_source"),
                g.get("power_avg_source"),
                json.dumps(g),
            )
            for g in t.gpus
        ],
    )
    cols = ["run_id", *t.columns]
    marks = ", ".join("?" for _ in cols)
    store.db.executemany(
        f"INSERT INTO telemetry_samples ({', '.join(cols)}) VALUES ({marks})",
        [(run_id, *row) for row in t.samples],
    )
    store.db.executemany(
        "INSERT INTO telemetry_events (run_id, t, gpu, kind, code, message)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        [(run_id, e.t, e.gpu, e.kind, e.code, e.message) for e in t.events],
    )
