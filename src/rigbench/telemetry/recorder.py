"""Recording telemetry to the results database, in batches.

The sampler thread only appends to a buffer (`add`); `flush` writes what is buffered in one
transaction and is called by the thread that owns the Store's connection (the command's
loop, every FLUSH_EVERY_S), so a 100 Hz sampler costs one commit a second or so, and a
crash loses at most that much. Tables: see store.migrations.m002_telemetry.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from typing import Any

from rigbench.errors import StoreError
from rigbench.hw.telemetry import (
    SAMPLE_FIELDS,
    GpuChannel,
    TelemetryEvent,
    TelemetrySample,
)
from rigbench.store import Store

FLUSH_EVERY_S = 1.0
_COLUMNS = ("run_id", *SAMPLE_FIELDS)
_INSERT_SAMPLE = (
    f"INSERT INTO telemetry_samples ({', '.join(_COLUMNS)})"
    f" VALUES ({', '.join('?' for _ in _COLUMNS)})"
)


class Recorder:
    """A sampler sink that stores samples and events under `run_id`."""

    def __init__(self, store: Store, run_id: int, channels: list[GpuChannel], t0_unix: float):
        self.store = store
        self.run_id = run_id
        self.written = 0
        self._rows: list[tuple[Any, ...]] = []
        self._events: list[TelemetryEvent] = []
        self._lock = threading.Lock()
        self._write(
            "INSERT INTO telemetry_gpus (run_id, gpu, name, uuid, t0_unix, power_instant_source,"
            " power_avg_source, facts) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    run_id,
                    c.gpu,
                    c.name,
                    c.uuid,
                    t0_unix,
                    c.power_instant_source,
                    c.power_avg_source,
                    json.dumps(c.to_dict()),
                )
                for c in channels
            ],
        )

    def add(self, t: float, samples: list[TelemetrySample], events: list[TelemetryEvent]) -> None:
        rows = [(self.run_id, *(getattr(s, f) for f in SAMPLE_FIELDS)) for s in samples]
        with self._lock:
            self._rows.extend(rows)
            self._events.extend(events)

    def _write(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        try:
            with self.store.db:
                self.store.db.executemany(sql, rows)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot write telemetry to {self.store.path}: {exc}") from exc

    def flush(self) -> int:
        """Write what is buffered; returns the number of samples written."""
        with self._lock:
            rows, self._rows = self._rows, []
            events, self._events = self._events, []
        self._write(_INSERT_SAMPLE, rows)
        self._write(
            "INSERT INTO telemetry_events (run_id, t, gpu, kind, code, message)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [(self.run_id, e.t, e.gpu, e.kind, e.code, e.message) for e in events],
        )
        self.written += len(rows)
        return len(rows)


def load_samples(store: Store, run_id: int, gpu: int | None = None) -> list[TelemetrySample]:
    """The stored samples of a run (one GPU or all), in time order."""
    sql = f"SELECT {', '.join(SAMPLE_FIELDS)} FROM telemetry_samples WHERE run_id = ?"
    args: tuple[Any, ...] = (run_id,)
    if gpu is not None:
        sql += " AND gpu = ?"
        args += (gpu,)
    rows = store.db.execute(sql + " ORDER BY t, gpu", args).fetchall()
    return [TelemetrySample(**dict(zip(SAMPLE_FIELDS, r, strict=True))) for r in rows]


def load_columns(store: Store, run_id: int, gpu: int, columns: list[str]) -> list[tuple[Any, ...]]:
    """Chosen columns (sample field names) of one GPU's stored samples, in time order."""
    bad = [c for c in columns if c not in SAMPLE_FIELDS]
    if bad:
        raise ValueError(f"not telemetry columns: {bad}")
    sql = (
        f"SELECT {', '.join(columns)} FROM telemetry_samples WHERE run_id = ? AND gpu = ?"
        " ORDER BY t"
    )
    return list(store.db.execute(sql, (run_id, gpu)).fetchall())


def load_events(store: Store, run_id: int) -> list[TelemetryEvent]:
    rows = store.db.execute(
        "SELECT t, gpu, kind, code, message FROM telemetry_events WHERE run_id = ? ORDER BY t",
        (run_id,),
    ).fetchall()
    return [TelemetryEvent(t=r[0], gpu=r[1], kind=r[2], code=r[3], message=r[4]) for r in rows]


def load_gpus(store: Store, run_id: int) -> list[dict[str, Any]]:
    """Each sampled GPU's fixed facts (GpuChannel.to_dict()) for a run, by GPU index."""
    rows = store.db.execute(
        "SELECT facts FROM telemetry_gpus WHERE run_id = ? ORDER BY gpu", (run_id,)
    ).fetchall()
    return [json.loads(r[0]) for r in rows]
