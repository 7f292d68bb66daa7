"""A benchmark module for tests/test_supervisor.py: one step that starts a RankPool of
three CPU ranks, says its worker's and ranks' pids on stdout, then waits to be killed."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

from rigbench.bench.context import Step
from rigbench.bench.rankpool import RankPool
from rigbench.records import Result

NAME = "ranks_then_wait"


def plan(ctx: Any) -> list[Step]:
    return [Step(key="wait", label="wait", metric="pids", unit="", startup_s=120.0)]


def run(ctx: Any, step: Step) -> Iterator[Result]:
    pool = RankPool(["cpu", "cpu", "cpu"], "gloo", "stepmods.rank_parents:Parent")
    pool.command("parent")  # the ranks are up and in the process group
    print("pids", os.getpid(), *(p.pid for p in pool.peers), flush=True)
    time.sleep(600)
    yield from ()
