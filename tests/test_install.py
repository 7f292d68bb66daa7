"""The README's two commands are what a fresh machine needs: every package rigbench imports
to measure is a required dependency, and CI runs the README's test command as written."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent


def _requirement_names(reqs: list[str]) -> set[str]:
    return {re.split(r"[<>=!~ ;\[]", r, maxsplit=1)[0].lower() for r in reqs}


def test_torch_is_a_required_dependency() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "torch" in _requirement_names(project["dependencies"])


def test_readme_commands_are_what_ci_runs() -> None:
    # torch is pinned in the commands: unpinned, pip on a machine without torch picks the
    # newest CUDA build (gigabytes) where the tested CPU release would do
    readme = (ROOT / "README.md").read_text()
    block = readme.split("```bash", 1)[1].split("```", 1)[0]
    commands = [line for line in block.splitlines() if line and not line.startswith("#")]
    assert commands == [
        "pip install torch==2.13.0 -e . && rigbench bench --quick",
        "pip install torch==2.13.0 -e '.[dev]' && python -m pytest -q -n 3",
    ]
    ci = (ROOT / ".ci" / "run").read_text()
    # the same packages; CI leaves compiling to the first import (.ci/run says why)
    assert "pip install -q --no-compile torch==2.13.0 -e '.[dev]'\n" in ci
    assert "python -m pytest -q -n 3" in ci


def test_dev_extra_holds_what_the_tests_import() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    dev = _requirement_names(project["optional-dependencies"]["dev"])
    assert {"pytest", "pytest-xdist", "ruff", "mypy", "jsonschema", "import-linter"} <= dev


def test_without_torch_measuring_commands_say_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from rigbench.cli import app

    monkeypatch.setitem(sys.modules, "torch", None)  # as if it were not installed
    for command in (["bench", "--quick"], ["burnin", "--minutes", "1"]):
        res = CliRunner().invoke(app, [*command, "--db", str(tmp_path / "r.db")])
        assert res.exit_code == 2, res.output
        assert "torch" in res.stderr and "pip install" in res.stderr
        assert len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r.db").exists()  # refused before any run was started
