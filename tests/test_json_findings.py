"""bench, doctor, plan and burnin: every --json carries `findings` of the one Finding type,
with the same fields, so a script reads them all alike."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from rigbench.cli import app
from rigbench.records import Finding

FIELDS = set(Finding.__dataclass_fields__)
BUILDS = Path(__file__).resolve().parent.parent / "examples" / "builds"


def _json(args: list[str]) -> dict:
    res = CliRunner().invoke(app, [*args, "--json"])
    return json.loads(res.stdout[res.stdout.index("{") :])


def test_bench_json_names_its_below_normal_figures_as_findings(
    tmp_path: Path, examples: Path
) -> None:
    capped = _json(
        ["bench", "--only", "gemm", "--scale", "0.02", "--db", str(tmp_path / "a.db"),
         "--simulate", str(examples / "bench-h100-power-cap.toml")]
    )  # fmt: skip
    assert capped["findings"], "a GPU held at a 300 W cap gives below-normal figures"
    for f in capped["findings"]:
        assert set(f) == FIELDS
        assert f["id"].startswith("bench.gemm.") and f["severity"] == "warning"
        assert f["evidence"]["cause"] == "power_capped" and f["gpus"] == [0]
    flagged = {r["metric"] for r in capped["results"]
               if (r["judgement"] or {}).get("verdict") in ("below_normal", "fault")}  # fmt: skip
    assert {f["id"].removeprefix("bench.gemm.") for f in capped["findings"]} == flagged
    healthy = _json(
        ["bench", "--only", "gemm", "--scale", "0.02", "--db", str(tmp_path / "b.db"),
         "--simulate", str(examples / "h200-x1.toml")]
    )  # fmt: skip
    assert healthy["findings"] == []


def test_doctor_plan_and_burnin_json_findings_have_the_same_fields(
    tmp_path: Path, examples: Path
) -> None:
    docs = [
        _json(["doctor", "--simulate", str(examples / "iva-2x3090-overheat.toml"),
               "--db", str(tmp_path / "d.db")]),
        _json(["plan", str(BUILDS / "minerva.toml")]),
        _json(["burnin", "--simulate", str(examples / "iva-2x3090-overheat.toml"),
               "--minutes", "0.02", "--db", str(tmp_path / "u.db")]),
    ]  # fmt: skip
    for doc in docs:
        assert doc["findings"]
        for f in doc["findings"]:
            assert set(f) == FIELDS
