from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import pytest
import typer.testing

# rigbench's consoles are made at import and keep a COLUMNS they find then (pytest-xdist's
# workers have COLUMNS=80): the tests give each command its width through CliRunner's env.
for _name in ("COLUMNS", "LINES"):
    os.environ.pop(_name, None)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "simulated"

# Typer's CliRunner builds the click command again, evaluating every option's annotation, on
# each invoke (15 ms a time, about 400 invokes in the suite): once per app here. The command
# a test runs is the same object rigbench's entry point builds.
typer.testing._get_command = functools.cache(typer.testing._get_command)  # type: ignore[attr-defined]


# Under pytest-xdist (`-n 2`), each of these modules runs whole on one worker: their
# module-scoped fixtures (real runs, a browser) are then made once, not once per worker.
ONE_WORKER_MODULES = {"tests/test_report_html.py"}

# Tests of one module that share a module-scoped fixture of whole runs (the prefix of their
# node ids): handed to one worker together, so that the fixture is made once, not once per
# worker that happens to get one of them (two torchrun "nodes", ~15 s on 2 cores).
ONE_WORKER_GROUPS = ("tests/test_cluster.py::test_two_nodes_",)


# Modules whose tests run whole commands in worker processes, seconds each: collected (and
# so handed out) first, so that the two workers end together on the quick tests.
SLOW_FIRST = (
    "tests/test_crash.py",
    "tests/test_cluster.py",
    "tests/test_burnin.py",
    "tests/test_doctor.py",
    "tests/test_workloads.py",
    "tests/test_monitor_job.py",
    "tests/test_bench_collectives.py",
    "tests/test_runner.py",
    "tests/test_interrupt.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {module: i for i, module in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Every other test is its own unit of work, handed to whichever worker is free; the
    largest units (the modules above) are handed out first."""
    from xdist.scheduler import LoadScopeScheduling

    class Scheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            if module in ONE_WORKER_MODULES:
                return module
            return next((g for g in ONE_WORKER_GROUPS if nodeid.startswith(g)), nodeid)

    return Scheduling(config, log)


@pytest.fixture(autouse=True)
def _isolated_user_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test touches the real user data dir."""
    monkeypatch.setenv("RIGBENCH_DB", str(tmp_path / "user-data" / "rigbench.db"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))


@pytest.fixture
def examples() -> Path:
    return EXAMPLES
