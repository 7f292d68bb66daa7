"""Commands that never run a GPU kernel start without importing torch (it takes seconds):
`--help`, `plan`, `cost`, `catalog`, `info` (which reads torch's versions from the
installed packages)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

BUILD = Path(__file__).resolve().parents[1] / "examples" / "builds" / "minerva.toml"

PROBE = """
import sys
from rigbench.cli import app
try:
    app(sys.argv[1:])
except SystemExit:
    pass
print("torch imported" if "torch" in sys.modules else "no torch", file=sys.stderr)
"""


@pytest.mark.parametrize(
    "args",
    [["--help"], ["plan", str(BUILD)], ["cost", str(BUILD)], ["catalog", "gpus"], ["info"]],
    ids=["help", "plan", "cost", "catalog", "info"],
)
def test_command_does_not_import_torch(args: list[str]) -> None:
    res = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=120
    )
    assert res.stderr.strip().splitlines()[-1] == "no torch", res.stderr


def test_info_reads_torch_versions_from_the_installed_packages() -> None:
    from importlib import metadata

    from rigbench.hw.system import torch_versions

    assert torch_versions()[0] == metadata.version("torch")


PLAN_EVERY_BENCHMARK = """
import sys
from rigbench.bench.suite import BENCHMARKS, build_plan
from rigbench.hw.simulated import SimulatedBackend
rig = SimulatedBackend.from_file(sys.argv[1]).rig()
plan = build_plan(rig, gpus=[g.index for g in rig.gpus], only=list(BENCHMARKS), mode="full",
                  cuda_available=False)
assert plan.total_steps > 0
print("torch imported" if "torch" in sys.modules else "no torch", file=sys.stderr)
"""


def test_planning_every_benchmark_does_not_import_torch() -> None:
    # rigbench plans a run in its own process and measures in workers forked from a fork
    # server that imported torch: a torch import in the planning process is one more
    # (1-2 CPU-s) before the first step, on every bench and doctor run.
    rig = Path(__file__).resolve().parents[1] / "examples" / "simulated" / "minerva-4x3090.toml"
    res = subprocess.run(
        [sys.executable, "-c", PLAN_EVERY_BENCHMARK, str(rig)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert res.stderr.strip().splitlines()[-1] == "no torch", res.stderr


def _imported(node: ast.AST) -> set[str]:
    names: set[str] = set()
    for stmt in ast.walk(node):
        if isinstance(stmt, ast.Import):
            names |= {(a.asname or a.name).split(".")[0] for a in stmt.names}
        elif isinstance(stmt, ast.ImportFrom):
            names |= {a.asname or a.name for a in stmt.names}
    return names


def _loaded_at_run_time(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    """Names a function's body and defaults load (annotations are strings here: left out;
    nested functions are checked on their own)."""
    names: set[str] = set()
    stack: list[ast.AST] = [*fn.body, *fn.args.defaults, *filter(None, fn.args.kw_defaults)]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.arg)):
            continue
        if isinstance(node, ast.AnnAssign):
            stack += [node.target, *([node.value] if node.value else [])]
            continue
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            names.add(node.id)
        stack += ast.iter_child_nodes(node)
    return names


def test_what_a_module_imports_for_typing_only_its_functions_import_where_they_use_it() -> None:
    # The benchmark modules import torch under TYPE_CHECKING only (the process that plans
    # a run imports no torch): a function that uses torch without importing it fails only
    # when it runs, and some run only on a GPU (CUDA events, L2 flush), which CI has not.
    src = Path(__file__).resolve().parents[1] / "src" / "rigbench"
    missing = []
    checked = 0
    for path in sorted(src.rglob("*.py")):
        tree = ast.parse(path.read_text())
        typing_only = set()
        for stmt in tree.body:
            if isinstance(stmt, ast.If) and getattr(stmt.test, "id", "") == "TYPE_CHECKING":
                typing_only |= _imported(stmt)
        if not typing_only:
            continue
        checked += 1
        todo: list[tuple[ast.AST, set[str]]] = [(tree, set())]
        while todo:
            node, have = todo.pop()
            for child in ast.iter_child_nodes(node):
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    here = have | _imported(child)
                    where = f"{path.relative_to(src)}:{child.lineno} {child.name}"
                    for name in sorted((_loaded_at_run_time(child) & typing_only) - here):
                        missing.append(f"{where}: {name}")
                    todo.append((child, here))
                elif isinstance(child, ast.ClassDef):
                    todo.append((child, have))
    assert checked >= 8  # the benchmark modules that import torch where they use it
    assert missing == []


# At exit, an interpreter that imported torch spent 0.9 of its 2.2 CPU-s collecting garbage
# among torch's objects (CPython 3.11, torch 2.13, the 2-core CI machine): rigbench, its
# torchrun ranks and its fork server freeze what is alive at exit, so those collections skip
# it. The probe's own exit handler is registered first, so it runs last and sees the freeze.
EXIT_PROBE = """
import atexit, gc, sys
atexit.register(lambda: print("frozen" if gc.get_freeze_count() else "not frozen", file=sys.stderr))
{start}
"""


@pytest.mark.parametrize(
    "start",
    [
        "sys.argv = ['rigbench', '--help']\nfrom rigbench.__main__ import run\nrun()",
        "import rigbench.forkserver_signals",  # the fork server's first preload import
    ],
    ids=["rigbench", "fork-server"],
)
def test_what_is_alive_at_exit_is_frozen_so_the_last_collections_skip_it(start: str) -> None:
    res = subprocess.run(
        [sys.executable, "-c", EXIT_PROBE.format(start=start)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert res.stderr.strip().splitlines()[-1] == "frozen", res.stderr


def test_a_command_leaves_its_database_whole_in_the_one_file(tmp_path: Path) -> None:
    # What is alive at exit is left to the OS (above), the store too: its connection is
    # closed all the same, and the last close folds the write-ahead log into the file, so
    # copying the .db alone copies every run.
    db = tmp_path / "runs.db"
    res = subprocess.run(
        [sys.executable, "-m", "rigbench", "show", "--db", str(db)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert db.exists(), res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs.db"], res.stderr
