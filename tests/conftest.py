from __future__ import annotations

import atexit
import functools
import gc
import os
from pathlib import Path
from typing import Any

import pytest
import typer.testing

from rigbench import supervisor

# rigbench's consoles are made at import and keep a COLUMNS they find then (pytest-xdist's
# workers have COLUMNS=80): the tests give each command its width through CliRunner's env.
for _name in ("COLUMNS", "LINES"):
    os.environ.pop(_name, None)

# Three workers share the CI machine's two cores: each process's torch computes on one
# thread (as torchrun's ranks do; torchrun sets the same), unless the environment says
# otherwise. Two threads a worker oversubscribed the cores and their OpenMP threads spun
# while waiting: the suite took 128.6-130.7 s without this, 120.5-124.7 s with it (same
# machine, the same hour).
# rigbench's own thread settings (stand-ins, ranks, CPU workloads) still apply over it.
os.environ.setdefault("OMP_NUM_THREADS", "1")

# Each worker's fork server serves the workers of the tests that run in it, about 80 each: a
# dozen train (torch.optim imports torch._dynamo at its first use, 1.1 CPU-s a process here),
# and each imports the benchmark module it runs (0.1-0.2 CPU-s for these four). The fork
# servers import them once instead (measured: 8 such _dynamo imports in forked workers,
# against 3 fork servers).
if supervisor.context().get_start_method() == "forkserver":
    supervisor.context().set_forkserver_preload(
        [*supervisor.PRELOAD, "torch._dynamo"]
        + [f"rigbench.bench.{m}" for m in ("collectives", "train", "infer", "nbody")]
    )

# This worker's own exit, as rigbench's (rigbench.__main__): the interpreter's last garbage
# collections skip the objects alive then (torch's), about 0.9 CPU-s.
atexit.register(gc.freeze)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "simulated"

# Typer's CliRunner builds the click command again, evaluating every option's annotation, on
# each invoke (15 ms a time, about 400 invokes in the suite): once per app here. The command
# a test runs is the same object rigbench's entry point builds.
typer.testing._get_command = functools.cache(typer.testing._get_command)  # type: ignore[attr-defined]


# Under pytest-xdist (`-n 3`), each of these modules runs whole on one worker: their
# module-scoped fixtures (real runs, a browser) are then made once, not once per worker.
ONE_WORKER_MODULES = {"tests/test_report_html.py"}

# Tests of one module that share a module-scoped fixture of whole runs (the prefix of their
# node ids): handed to one worker together, so that the fixture is made once, not once per
# worker that happens to get one of them (two torchrun "nodes", ~15 s on 2 cores).
ONE_WORKER_GROUPS = ("tests/test_cluster.py::test_two_nodes_",)


# Modules whose tests run whole commands in worker processes, seconds each, handed out
# first so that the workers end together on the quick tests. Those that keep the cores busy
# (several processes importing torch, real runs) alternate with those that mostly wait
# (simulated traces replayed in real time, timeouts, signals), so that one worker's waiting
# overlaps another's work. A third of the suite's time is such waiting: with two workers and
# the waiting modules last, the second half ran the 2 cores at 55-65 % (130 s); three
# workers in this order keep them at about 90 % (111-115 s).
BUSY_FIRST = (
    "tests/test_cluster.py",
    "tests/test_crash.py",
    "tests/test_burnin.py",
    "tests/test_report_html.py",
    "tests/test_workloads.py",
    "tests/test_power_sweep.py",
    "tests/test_bench_collectives.py",
)
# The longest waits first (test_launch: join timeouts of 7-15 s), the many quick doctor
# tests last: their waits had come after the busy modules were done, with the cores at
# 62-86 % from 50 s on; in this order the suite took 105.3-107.5 s against 109.3-112.0 s
# (alternating, the same hour).
WAITING_FIRST = (
    "tests/test_launch.py",
    "tests/test_psutrip_live.py",
    "tests/test_interrupt.py",
    "tests/test_monitor_job.py",
    "tests/test_runner.py",
    "tests/test_monitor.py",
    "tests/test_cli.py",
    "tests/test_doctor.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def module(item: pytest.Item) -> str:
        return item.nodeid.split("::", 1)[0]

    def in_order(modules: tuple[str, ...]) -> list[pytest.Item]:
        rank = {m: i for i, m in enumerate(modules)}
        return sorted((i for i in items if module(i) in rank), key=lambda i: rank[module(i)])

    busy, waiting = in_order(BUSY_FIRST), in_order(WAITING_FIRST)
    mixed: list[pytest.Item] = []
    for k in range(max(len(busy), len(waiting))):
        mixed += busy[k : k + 1] + waiting[k : k + 1]
    first = set(BUSY_FIRST + WAITING_FIRST)
    items[:] = mixed + [i for i in items if module(i) not in first]


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
