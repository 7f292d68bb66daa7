"""Open, migrate and write the results database."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from platformdirs import user_data_dir

from rigbench.errors import StoreError
from rigbench.records import Finding, Result, Run, RunStatus, utc_now
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
        self._in_transaction = False

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

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Every write inside is one transaction: all of it is stored, or none (an import)."""
        self._in_transaction = True
        try:
            with self.db:
                yield
        except sqlite3.Error as exc:
            raise StoreError(f"cannot write to database {self.path}: {exc}") from exc
        finally:
            self._in_transaction = False

    def _write(self, sql: str, args: tuple[Any, ...]) -> int:
        try:
            if self._in_transaction:
                cur = self.db.execute(sql, args)
            else:
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
            " spread, expected, peak, basis, status, message, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                utc_now(),
            ),
        )

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
            " basis, status, message FROM results WHERE run_id = ? ORDER BY id",
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
            )
            for r in rows
        ]

    def run_origin(self, run_id: int) -> dict[str, Any] | None:
        """Where an imported run came from (see migrations.m115_run_origin); None: measured
        here."""
        row = self.db.execute("SELECT origin FROM runs WHERE id = ?", (run_id,)).fetchone()
        return json.loads(row[0]) if row and row[0] else None

    def latest_run_id(self, command: str | None = None) -> int | None:
        sql = "SELECT max(id) FROM runs" + (" WHERE command = ?" if command else "")
        row = self.db.execute(sql, (command,) if command else ()).fetchone()
        return row[0] if row else None
