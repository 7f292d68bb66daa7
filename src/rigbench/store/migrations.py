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


def m002_telemetry(db: sqlite3.Connection) -> None:
    """GPU telemetry of `monitor --record` and `burnin`: one row per GPU per tick (t in
    seconds since sampling began, units in the column names), each sampled GPU's fixed
    facts, and events (Xid, lost GPU, ECC)."""
    db.executescript(
        """
        CREATE TABLE telemetry_gpus (
            run_id INTEGER NOT NULL REFERENCES runs(id),
            gpu INTEGER NOT NULL,
            name TEXT NOT NULL,
            uuid TEXT,
            t0_unix REAL NOT NULL,
            power_instant_source TEXT,
            power_avg_source TEXT,
            facts TEXT NOT NULL,
            PRIMARY KEY (run_id, gpu)
        );
        CREATE TABLE telemetry_samples (
            run_id INTEGER NOT NULL REFERENCES runs(id),
            t REAL NOT NULL,
            gpu INTEGER NOT NULL,
            power_instant_w REAL,
            power_avg_w REAL,
            energy_mj INTEGER,
            sm_clock_mhz INTEGER,
            mem_clock_mhz INTEGER,
            temp_gpu_c REAL,
            temp_mem_c REAL,
            fan_pct REAL,
            util_gpu_pct REAL,
            util_mem_pct REAL,
            mem_used_bytes INTEGER,
            throttle_mask INTEGER,
            pcie_replay_count INTEGER,
            ecc_corrected INTEGER,
            ecc_uncorrected INTEGER
        );
        CREATE INDEX telemetry_samples_run ON telemetry_samples(run_id, gpu, t);
        CREATE TABLE telemetry_events (
            run_id INTEGER NOT NULL REFERENCES runs(id),
            t REAL NOT NULL,
            gpu INTEGER NOT NULL,
            kind TEXT NOT NULL,
            code INTEGER,
            message TEXT NOT NULL
        );
        CREATE INDEX telemetry_events_run ON telemetry_events(run_id);
        """
    )


def m003_findings(db: sqlite3.Connection) -> None:
    db.executescript(
        """
        CREATE TABLE findings (
            id INTEGER PRIMARY KEY,
            run_id INTEGER NOT NULL REFERENCES runs(id),
            finding TEXT NOT NULL,
            severity TEXT NOT NULL,
            title TEXT NOT NULL,
            evidence TEXT NOT NULL,
            why TEXT,
            fix TEXT,
            gpus TEXT NOT NULL,
            created_at TEXT NOT NULL
        );
        CREATE INDEX findings_run ON findings(run_id);
        """
    )


def m004_finding_source(db: sqlite3.Connection) -> None:
    """Findings carry where their rule comes from and whether it was measured or read."""
    db.executescript(
        """
        ALTER TABLE findings ADD COLUMN source TEXT;
        ALTER TABLE findings ADD COLUMN origin TEXT;
        """
    )


def m005_result_conditions(db: sqlite3.Connection) -> None:
    """Results carry the conditions they ran under (clocks, power, throttle, link) and
    their verdict against healthy hardware, both as JSON."""
    db.executescript(
        """
        ALTER TABLE results ADD COLUMN conditions TEXT;
        ALTER TABLE results ADD COLUMN judgement TEXT;
        """
    )


def m006_jobs(db: sqlite3.Connection) -> None:
    """`monitor -- CMD`: the job a monitor run watched (its samples are the run's telemetry);
    `summary` is the job's JSON (telemetry.job.JobReport)."""
    db.executescript(
        """
        CREATE TABLE jobs (
            run_id INTEGER PRIMARY KEY REFERENCES runs(id),
            command TEXT NOT NULL,
            exit_code INTEGER NOT NULL,
            signal INTEGER,
            duration_s REAL NOT NULL,
            summary TEXT NOT NULL
        );
        """
    )


def m007_result_reason(db: sqlite3.Connection) -> None:
    """A failed result carries its reason code (hang, timeout_startup, crash, ...)."""
    db.executescript("ALTER TABLE results ADD COLUMN reason TEXT;")


MIGRATIONS: list[Migration] = [
    m001_runs_and_results,
    m002_telemetry,
    m003_findings,
    m004_finding_source,
    m005_result_conditions,
    m006_jobs,
    m007_result_reason,
]
