"""`report RUN --against OTHER_RUN|reference`: the comparison the judge makes
(rigbench.judge.compare), fetched for the report as its `Comparison.to_dict()`."""

from __future__ import annotations

import importlib
from typing import Any

from rigbench.errors import BadInput
from rigbench.store import Store


def comparison_for(store: Store, run_id: int, against: str) -> dict[str, Any]:
    """Run `run_id` against another stored run (its number) or against the references
    ("reference"); BadInput for a run that is not stored or a word that is neither."""
    try:  # imported by name: the module arrives with the judge's comparison (issue 11)
        compare = importlib.import_module("rigbench.judge.compare")
    except ImportError:  # the comparison arrives with the judge's compare module
        raise BadInput("--against needs rigbench.judge.compare, not in this version") from None
    run = store.get_run(run_id)
    if run is None:
        raise BadInput(f"no run #{run_id} in {store.path or 'the database'}")
    results = store.results(run_id)
    if against.strip().lower() in ("reference", "references"):
        return compare.compare_to_references(run, results).to_dict()
    try:
        other_id = int(against.lstrip("#"))
    except ValueError:
        raise BadInput(f"--against takes a run number or 'reference', not {against!r}") from None
    other = store.get_run(other_id)
    if other is None:
        raise BadInput(f"no run #{other_id} in {store.path or 'the database'}")
    return compare.compare_runs(run, results, other, store.results(other_id)).to_dict()
