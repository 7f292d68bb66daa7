"""Open, migrate and write the results database."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from platformdirs import user_data_dir

from rigbench.errors import StoreError
from rigbench.records import Conditions, Finding, Judgement, Result, Run, RunStatus, utc_now
from rigbench.stats import Spread
from rigbench.store.migrations import MIGRATIONS


def default_db_path() -> Path:
    """`$RIGBENCH_DB`, else rigbench.db in the user data dir."""
    import os

    env = os.environ.get("RIGBENCH_DB")
    if env:
        return Path(env)
    return Path(user_data_dir("rigbench", appauthor=False)) / "rigbench.db"


def _migrate(db: sqlite3.Connection) -> None:
    db.execute("CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at TEXT)")
    done = {row[0] for row in db.execute("SELECT name FROM migrations")}
    for migration in MIGRATIONS:
        if migration.__name__ in done:
            continue
        with db:
            migration(db)
            db.execute("INSERT INTO migrations VALUES (?, ?)", (migration.__name__, utc_now()))


class Store:
    """One connection. Each write is its own transaction, so a crash loses nothing
    already measured."""

    def __init__(self, db: sqlite3.Connection, path: Path | None) -> None:
        self.db = db
        self.path = path

    @classmethod
    def open(cls, path: Path | str | None = None) -> Store:
        """Open (creating folders and schema); ":memory:" for tests."""
        if path == ":memory:":
            db = sqlite3.connect(":memory:")
            store = cls(db, None)
        else:
            p = Path(path) if path is not None else default_db_path()
            try:
                p.parent.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(p)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                _migrate(db)
            except (OSError, sqlite3.Error) as exc:
                raise StoreError(f"cannot open database {p}: {exc}") from exc
            return cls(db, p)
        _migrate(db)
        return store

    def close(self) -> None:
        self.db.close()

    def _write(self, sql: str, args: tuple[Any, ...]) -> int:
        try:
            with self.db:
                cur = self.db.execute(sql, args)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot write to database {self.path}: {exc}") from exc
        return int(cur.lastrowid or 0)

    def start_run(self, run: Run) -> int:
        run.id = self._write(
            "INSERT INTO runs (command, argv, backend, machine, versions, started_at, status)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                run.command,
                json.dumps(run.argv),
                run.backend,
                json.dumps(run.machine),
                json.dumps(run.versions),
                run.started_at,
                run.status,
            ),
        )
        return run.id

    def finish_run(self, run: Run, status: RunStatus) -> None:
        run.status = status
        run.finished_at = utc_now()
        self._write(
            "UPDATE runs SET status = ?, finished_at = ? WHERE id = ?",
            (status, run.finished_at, run.id),
        )

    def add_result(self, run_id: int, r: Result) -> int:
        return self._write(
            "INSERT INTO results (run_id, benchmark, metric, value, unit, params, devices,"
            " spread, expected, peak, basis, status, message, reason, created_at, conditions,"
            " judgement) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                run_id,
                r.benchmark,
                r.metric,
                r.value,
                r.unit,
                json.dumps(r.params),
                json.dumps(r.devices),
                json.dumps(r.spread.to_dict()) if r.spread else None,
                r.expected,
                r.peak,
                r.basis,
                r.status,
                r.message,
                r.reason,
                utc_now(),
                json.dumps(r.conditions.to_dict()) if r.conditions else None,
                json.dumps(r.judgement.to_dict()) if r.judgement else None,
            ),
        )

    def update_judgements(self, run_id: int, results: list[Result]) -> None:
        """Store the verdicts of a run's results again (a collective's size sweep is judged
        once all its sizes are in). `results` are the run's results in stored order."""
        ids = [
            row[0]
            for row in self.db.execute(
                "SELECT id FROM results WHERE run_id = ? ORDER BY id", (run_id,)
            )
        ]
        try:
            with self.db:
                for rid, r in zip(ids, results, strict=False):
                    self.db.execute(
                        "UPDATE results SET judgement = ? WHERE id = ?",
                        (json.dumps(r.judgement.to_dict()) if r.judgement else None, rid),
                    )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot write to database {self.path}: {exc}") from exc

    def add_finding(self, run_id: int, f: Finding) -> int:
        return self._write(
            "INSERT INTO findings (run_id, finding, severity, title, evidence, why, fix, gpus,"
            " source, origin, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                run_id,
                f.id,
                f.severity,
                f.title,
                json.dumps(f.evidence, default=str),
                f.why,
                f.fix,
                json.dumps(f.gpus),
                f.source,
                f.origin,
                utc_now(),
            ),
        )

    def findings(self, run_id: int) -> list[Finding]:
        rows = self.db.execute(
            "SELECT finding, severity, title, evidence, why, fix, gpus, source, origin"
            " FROM findings"
            " WHERE run_id = ? ORDER BY id",
            (run_id,),
        ).fetchall()
        return [
            Finding(
                id=r[0],
                severity=r[1],
                title=r[2],
                evidence=json.loads(r[3]),
                why=r[4],
                fix=r[5],
                gpus=json.loads(r[6]),
                source=r[7],
                origin=r[8],
            )
            for r in rows
        ]

    def get_run(self, run_id: int) -> Run | None:
        row = self.db.execute(
            "SELECT id, command, argv, backend, machine, versions, started_at, finished_at,"
            " status FROM runs WHERE id = ?",
            (run_id,),
        ).fetchone()
        if row is None:
            return None
        return Run(
            id=row[0],
            command=row[1],
            argv=json.loads(row[2]),
            backend=row[3],
            machine=json.loads(row[4]),
            versions=json.loads(row[5]),
            started_at=row[6],
            finished_at=row[7],
            status=row[8],
        )

    def results(self, run_id: int) -> list[Result]:
        rows = self.db.execute(
            "SELECT benchmark, metric, value, unit, params, devices, spread, expected, peak,"
            " basis, status, message, conditions, judgement, reason FROM results"
            " WHERE run_id = ? ORDER BY id",
            (run_id,),
        ).fetchall()
        return [
            Result(
                benchmark=r[0],
                metric=r[1],
                value=r[2],
                unit=r[3],
                params=json.loads(r[4]),
                devices=json.loads(r[5]),
                spread=Spread(**json.loads(r[6])) if r[6] else None,
                expected=r[7],
                peak=r[8],
                basis=r[9],
                status=r[10],
                message=r[11],
                conditions=Conditions.from_dict(json.loads(r[12])) if r[12] else None,
                judgement=Judgement.from_dict(json.loads(r[13])) if r[13] else None,
                reason=r[14],
            )
            for r in rows
        ]

    def latest_run_id(self, command: str | None = None) -> int | None:
        sql = "SELECT max(id) FROM runs" + (" WHERE command = ?" if command else "")
        row = self.db.execute(sql, (command,) if command else ()).fetchone()
        return row[0] if row else None
