"""Open, migrate and write the results database."""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import json
import os
import sqlite3
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from platformdirs import user_data_dir

from rigbench.errors import StoreError
from rigbench.hw import process
from rigbench.records import Conditions, Finding, Judgement, Result, Run, RunStatus, utc_now
from rigbench.stats import Spread
from rigbench.store.migrations import MIGRATIONS
from rigbench.userfile import NotReadable, check_regular


def default_db_path() -> Path:
    """`$RIGBENCH_DB`, else rigbench.db in the user data dir."""

    env = os.environ.get("RIGBENCH_DB")
    if env:
        return Path(env)
    return Path(user_data_dir("rigbench", appauthor=False)) / "rigbench.db"


class NewerSchema(Exception):
    """The database holds migrations this rigbench does not know: a newer version made it."""


def _migrate(db: sqlite3.Connection) -> None:
    known = {m.__name__ for m in MIGRATIONS}
    has_table = db.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'migrations'"
    ).fetchone()
    if has_table:
        done = {row[0] for row in db.execute("SELECT name FROM migrations")}
        unknown = sorted(done - known)
        if unknown:
            raise NewerSchema(", ".join(unknown))
        if done == known:
            return  # nothing to write: a database another run holds locked still opens
    db.execute("CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at TEXT)")
    done = {row[0] for row in db.execute("SELECT name FROM migrations")}
    for migration in MIGRATIONS:
        if migration.__name__ in done:
            continue
        with db:
            migration(db)
            db.execute("INSERT INTO migrations VALUES (?, ?)", (migration.__name__, utc_now()))


def _mark_crashed(db: sqlite3.Connection) -> None:
    """Runs of this host still `running` whose process is gone can never finish: mark them
    crashed. Best effort: a database another program holds locked is left as it is."""
    rows = db.execute(
        "SELECT id, pid, process FROM runs"
        " WHERE status = 'running' AND host = ? AND pid IS NOT NULL",
        (process.host(),),
    ).fetchall()
    gone = [
        (run_id,)
        for run_id, pid, ident in rows
        # a run from another pid namespace (a container sharing the host name) is unknown
        if (ident is None or process.same_namespace(ident)) and process.is_gone(pid, ident)
    ]
    if not gone:
        return
    try:
        with db:
            db.executemany(
                "UPDATE runs SET status = 'crashed' WHERE id = ? AND status = 'running'", gone
            )
    except sqlite3.OperationalError:
        pass  # locked: the next open marks them


def _why(exc: BaseException) -> str:
    text = str(exc)
    if "locked" in text or "busy" in text:
        return f"{text} (another program holds it; try again when it is done)"
    if "disk I/O error" in text or "full" in text or "readonly" in text:
        return f"{text} (is the disk full or read-only?)"
    return text


class _Connection(sqlite3.Connection):
    """sqlite3's own, but one a weak reference can name (3.11's cannot)."""


# Database files open now. Those still open at exit are closed then: the last close folds the
# write-ahead log into the file, so a copy of the .db alone holds every run. rigbench's exit
# leaves what is alive then to the OS, unclosed (rigbench.__main__); a connection that
# another thread made stays as it is.
_OPEN_FILES: weakref.WeakSet[_Connection] = weakref.WeakSet()


@atexit.register
def _close_open_files() -> None:
    for conn in list(_OPEN_FILES):
        with contextlib.suppress(sqlite3.Error):
            conn.close()


class Store:
    """One connection. Each write is its own transaction, so a crash loses nothing
    already measured."""

    # How long a write waits for another run's transaction: rigbench's own last
    # milliseconds, so a longer wait means something else holds the database.
    busy_timeout_s = 5.0

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
                check_regular(p)
            except FileNotFoundError:
                pass  # created below
            except (NotReadable, OSError) as exc:
                raise StoreError(f"cannot open database {p}: {exc}") from None
            conn: sqlite3.Connection | None = None
            try:
                p.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(p, timeout=cls.busy_timeout_s, factory=_Connection)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                _migrate(conn)
                _mark_crashed(conn)
            except NewerSchema as exc:
                if conn is not None:
                    conn.close()
                raise StoreError(
                    f"database {p} was written by a newer rigbench (schema changes {exc}):"
                    " upgrade rigbench to read it, or give another --db"
                ) from None
            except (OSError, sqlite3.Error) as exc:
                if conn is not None:
                    conn.close()
                raise StoreError(f"cannot open database {p}: {_why(exc)}") from None
            _OPEN_FILES.add(conn)
            return cls(conn, p)
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
            raise StoreError(f"cannot write to database {self.path}: {_why(exc)}") from None
        return int(cur.lastrowid or 0)

    def start_run(self, run: Run) -> int:
        if run.pid is None:
            run.pid, ident = os.getpid(), process.identity()
        else:
            ident = process.identity(run.pid)
        run.host = run.host if run.host is not None else process.host()
        run.id = self._write(
            "INSERT INTO runs (command, argv, backend, machine, versions, started_at, status,"
            " pid, host, process) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                run.command,
                json.dumps(run.argv),
                run.backend,
                json.dumps(run.machine),
                json.dumps(run.versions),
                run.started_at,
                run.status,
                run.pid,
                run.host,
                ident,
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

    def copy_run(self, run: Run, results: list[Result], findings: list[Finding]) -> int:
        """Store a run another process stored (its results and findings, as they were), as
        a new run of this database written by this process; its number here."""
        copy = dataclasses.replace(run, id=None, pid=None, host=None, status="running")
        with self.transaction():
            run_id = self.start_run(copy)
            for r in results:
                self.add_result(run_id, r)
            for f in findings:
                self.add_finding(run_id, f)
        self.finish_run(copy, run.status)
        return run_id

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
        if not 0 < run_id < 2**63:  # SQLite's integers: no run can have another id
            return None
        row = self.db.execute(
            "SELECT id, command, argv, backend, machine, versions, started_at, finished_at,"
            " status, pid, host FROM runs WHERE id = ?",
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
            pid=row[9],
            host=row[10],
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

    def run_origin(self, run_id: int) -> dict[str, Any] | None:
        """Where an imported run came from (see migrations.m009_run_origin); None: measured
        here."""
        row = self.db.execute("SELECT origin FROM runs WHERE id = ?", (run_id,)).fetchone()
        return json.loads(row[0]) if row and row[0] else None

    def latest_run_id(self, command: str | None = None) -> int | None:
        sql = "SELECT max(id) FROM runs" + (" WHERE command = ?" if command else "")
        row = self.db.execute(sql, (command,) if command else ()).fetchone()
        return row[0] if row else None
