"""What a report reads from the store: runs with their results (as `Result.to_dict()` dicts, so
fields added to results later, such as a judgement, come along), findings, where an imported
run came from, and the telemetry of runs that sampled it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rigbench.errors import BadInput
from rigbench.hw.telemetry import TelemetryEvent
from rigbench.records import Finding, Run
from rigbench.store import Store
from rigbench.telemetry.recorder import load_columns, load_events, load_gpus

TELEMETRY_COLUMNS = [
    "t",
    "power_instant_w",
    "power_avg_w",
    "sm_clock_mhz",
    "temp_gpu_c",
    "temp_mem_c",
]
# Commands whose latest run makes up a report when no run is named.
DEFAULT_COMMANDS = ("bench", "doctor", "burnin", "monitor")


@dataclass(slots=True)
class Telemetry:
    gpus: list[dict[str, Any]]
    """GpuChannel.to_dict() of each sampled GPU."""
    columns: dict[int, dict[str, list[Any]]]
    """Per GPU index: TELEMETRY_COLUMNS as lists, in time order."""
    events: list[TelemetryEvent]

    @property
    def samples(self) -> int:
        return sum(len(c["t"]) for c in self.columns.values())


@dataclass(slots=True)
class RunData:
    run: Run
    results: list[dict[str, Any]]
    findings: list[Finding]
    origin: dict[str, Any] | None = None
    telemetry: Telemetry | None = None


@dataclass(slots=True)
class ReportInput:
    runs: list[RunData] = field(default_factory=list)

    def run_ids(self) -> list[int]:
        return [d.run.id for d in self.runs if d.run.id is not None]

    def results(self, *benchmarks: str) -> list[dict[str, Any]]:
        """Results of the named benchmarks over every run, in run order."""
        return [r for d in self.runs for r in d.results if r["benchmark"] in benchmarks]


def load_telemetry(store: Store, run_id: int) -> Telemetry | None:
    gpus = load_gpus(store, run_id)
    if not gpus:
        return None
    columns: dict[int, dict[str, list[Any]]] = {}
    for g in gpus:
        rows = load_columns(store, run_id, int(g["gpu"]), TELEMETRY_COLUMNS)
        columns[int(g["gpu"])] = {
            c: [row[i] for row in rows] for i, c in enumerate(TELEMETRY_COLUMNS)
        }
    return Telemetry(gpus=gpus, columns=columns, events=load_events(store, run_id))


def default_run_ids(store: Store) -> list[int]:
    """The latest run of each of DEFAULT_COMMANDS that has one, oldest first."""
    ids = {store.latest_run_id(c) for c in DEFAULT_COMMANDS}
    return sorted(i for i in ids if i is not None)


def load_report_input(store: Store, run_ids: list[int]) -> ReportInput:
    """The named runs (or the defaults when none is named); BadInput for a run not stored."""
    ids = run_ids or default_run_ids(store)
    out = ReportInput()
    for rid in dict.fromkeys(ids):
        run = store.get_run(rid)
        if run is None:
            raise BadInput(f"no run #{rid} in {store.path or 'the database'}")
        out.runs.append(
            RunData(
                run=run,
                results=[r.to_dict() for r in store.results(rid)],
                findings=store.findings(rid),
                origin=store.run_origin(rid),
                telemetry=load_telemetry(store, rid),
            )
        )
    return out
