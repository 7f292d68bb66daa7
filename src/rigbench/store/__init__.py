"""SQLite store of runs and results (WAL; every result committed as it is measured)."""

from rigbench.store.db import Store, default_db_path

__all__ = ["Store", "default_db_path"]
