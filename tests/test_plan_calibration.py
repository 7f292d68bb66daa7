"""`plan` against rigs with published outcomes (examples/calibration/manifest.toml)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rigbench.plan.calibration import TOLERANCE, compare_all, load_manifest, markdown_table

ROOT = Path(__file__).resolve().parents[1]
FOLDER = ROOT / "examples" / "calibration"


@pytest.fixture(scope="module")
def rows():  # type: ignore[no-untyped-def]
    return compare_all(FOLDER)


def test_every_rig_has_a_source_and_an_outcome() -> None:
    cases = load_manifest(FOLDER)
    assert len(cases) >= 16
    assert {c.file for c in cases} == {p.name for p in FOLDER.glob("*.toml")} - {"manifest.toml"}
    for c in cases:
        assert c.source.strip() and c.outcome.strip(), c.file
    public = [c for c in cases if not c.file.startswith("seed")]
    assert len(public) >= 12


def test_verdicts_agree_on_at_least_90_percent(rows) -> None:  # type: ignore[no-untyped-def]
    agree = sum(r.agrees for r in rows)
    assert agree / len(rows) >= 0.9, markdown_table(rows)


def test_every_disagreement_is_listed_with_why_and_only_those(rows) -> None:  # type: ignore[no-untyped-def]
    for r in rows:
        if r.agrees:
            assert r.case.disagreement is None, f"{r.case.file} now agrees: drop its note"
        else:
            assert r.case.disagreement, f"{r.case.file}: plan says {r.verdict} ({r.why})"


def test_every_seed_rig_gets_the_verdict_its_owner_saw(rows) -> None:  # type: ignore[no-untyped-def]
    seeds = [r for r in rows if r.case.file.startswith("seed")]
    assert len(seeds) >= 9
    assert all(r.agrees for r in seeds), [(r.case.file, r.verdict) for r in seeds]
    by_file = {r.case.file: r for r in rows}
    # seed 001: two PSUs fail even at 200 W per GPU, three pass
    assert by_file["seed001-v100-2psu-200w.toml"].verdict == "trips"
    assert by_file["seed001-v100-3psu-300w.toml"].verdict == "runs"
    # seed 000: Minerva as built has no error
    assert by_file["seed000-minerva-300w.toml"].verdict == "runs"


def test_predictions_are_within_25_percent_of_the_measurements(rows) -> None:  # type: ignore[no-untyped-def]
    compared = 0
    for r in rows:
        for c in r.comparisons:
            assert c.error is not None, f"{r.case.file}: plan predicts no {c.what}"
            assert abs(c.error) <= TOLERANCE, (
                f"{r.case.file}: {c.what} {c.predicted} vs {c.measured}"
            )
            compared += 1
    assert compared >= 6


def test_the_readme_shows_the_current_table(rows) -> None:  # type: ignore[no-untyped-def]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("<!-- calibration-table:start -->\n") + len(
        "<!-- calibration-table:start -->\n"
    )
    end = readme.index("<!-- calibration-table:end -->")
    assert readme[start:end].strip() == markdown_table(rows).strip(), (
        "regenerate: python -m rigbench.plan.calibration examples/calibration"
    )


def test_every_finding_says_where_it_comes_from() -> None:
    from rigbench.plan import load_build, plan_build

    for path in [*FOLDER.glob("*.toml"), *(ROOT / "examples" / "builds").glob("*.toml")]:
        if path.name == "manifest.toml":
            continue
        for f in plan_build(load_build(path)).findings:
            assert f.source and f.origin in ("plan", "assumption"), (path.name, f.id)
