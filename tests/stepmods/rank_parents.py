"""A benchmark module for tests/test_supervisor.py: one step whose RankPool of two CPU
ranks reports each process's parent."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from rigbench.bench.context import Step
from rigbench.bench.rankpool import RankPool
from rigbench.records import Result

NAME = "rank_parents"


class Parent:
    """A rank handler: its process's parent."""

    def __init__(self, rank: int, world_size: int, device: str) -> None:
        pass

    def handle(self, cmd: tuple[Any, ...]) -> tuple[Any, ...]:
        return ("ok", os.getppid())

    def close(self) -> None:
        pass


def plan(ctx: Any) -> list[Step]:
    return [Step(key="parents", label="parents", metric="parents", unit="", startup_s=120.0)]


def run(ctx: Any, step: Step) -> Iterator[Result]:
    pool = RankPool(["cpu", "cpu"], "gloo", "stepmods.rank_parents:Parent")
    try:
        replies = pool.command("parent")
    finally:
        pool.shutdown()
    yield Result(
        benchmark=NAME,
        metric="parents",
        value=None,
        unit="",
        params={"parents": [r[1] for r in replies]},
    )
