"""Schema changes, append-only. Each runs once, in order, recorded in `migrations`."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

Migration = Callable[[sqlite3.Connection], None]


def m001_runs_and_results(db: sqlite3.Connection) -> None:
    db.executescript(
        """
        CREATE TABLE runs (
            id INTEGER PRIMARY KEY,
            command TEXT NOT NULL,
            argv TEXT NOT NULL,
            backend TEXT NOT NULL,
            machine TEXT NOT NULL,
            versions TEXT NOT NULL,
            started_at TEXT NOT NULL,
            finished_at TEXT,
            status TEXT NOT NULL
        );
        CREATE TABLE results (
            id INTEGER PRIMARY KEY,
            run_id INTEGER NOT NULL REFERENCES runs(id),
            benchmark TEXT NOT NULL,
            metric TEXT NOT NULL,
            value REAL,
            unit TEXT NOT NULL,
            params TEXT NOT NULL,
            devices TEXT NOT NULL,
            spread TEXT,
            expected REAL,
            peak REAL,
            basis TEXT,
            status TEXT NOT NULL,
            message TEXT,
            created_at TEXT NOT NULL
        );
        CREATE INDEX results_run ON results(run_id);
        CREATE INDEX results_bench ON results(benchmark, metric);
        """
    )


MIGRATIONS: list[Migration] = [m001_runs_and_results]
