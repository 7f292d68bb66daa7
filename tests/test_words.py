"""Words for owners: no project-internal names in what users read, no pointer outside the
repository, and no figure hidden by a narrow terminal."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rigbench.cli import app

ROOT = Path(__file__).resolve().parent.parent
# "seed 001" means something only to this project's authors: name the write-up or machine
INTERNAL = re.compile(r"\bseeds? ?0\d\d\b", re.IGNORECASE)


def _user_text_files() -> list[Path]:
    files = [*(ROOT / "src").rglob("*.py"), *(ROOT / "src").rglob("*.toml")]
    return files + [*(ROOT / "examples").rglob("*.toml"), *(ROOT / "examples").rglob("*.md")]


def test_no_internal_seed_numbers_in_anything_users_read() -> None:
    found = []
    for path in _user_text_files():
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if line.lstrip().startswith("#") or line.lstrip().startswith("id ="):
                continue  # comments are for developers; ids are keys, not words
            if INTERNAL.search(line):
                found.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()[:80]}")
    assert found == []


def test_examples_point_only_inside_the_repository() -> None:
    for readme in (ROOT / "examples").rglob("*.md"):
        for ref in re.findall(r"`(\.\.?/[^`]+)`|\]\((\.\.?/[^)]+)\)", readme.read_text()):
            target = (readme.parent / (ref[0] or ref[1])).resolve()
            assert target.is_relative_to(ROOT), f"{readme.name} points outside: {ref}"
            assert target.exists(), f"{readme.name} points at nothing: {ref}"


@pytest.mark.parametrize("columns", ["80", "100"])
def test_narrow_terminals_fold_cells_instead_of_cutting_them(columns: str, examples: Path) -> None:
    res = CliRunner().invoke(
        app, ["info", "--simulate", str(examples / "minerva-4x3090.toml")], env={"COLUMNS": columns}
    )
    assert res.exit_code == 0
    assert "…" not in res.stdout
    assert "7955WX" in res.stdout.replace("\n", "")
