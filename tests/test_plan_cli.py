"""`rigbench plan` and `rigbench catalog` as a user meets them: the example builds through
the CLI with their exit codes, JSON for scripts, one-line errors, and speed."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rigbench.cli import app

BUILDS = Path(__file__).resolve().parent.parent / "examples" / "builds"
runner = CliRunner()

# what `plan` says about each example, as examples/builds/README.md tells it
EXPECTED = {
    "iva-2x3090.toml": (0, set()),
    "minerva.toml": (1, {"power.circuit_continuous", "mix.models", "pcie.slot_spacing"}),
    "tr1920x-3x3090.toml": (0, set()),
    "v100-sxm2-server.toml": (1, {"power.psu_transient"}),
    "v100-sxm2-server-3psu.toml": (0, set()),
}


def _invoke(*args: str) -> tuple[int, str, str]:
    res = runner.invoke(app, list(args), env={"COLUMNS": "200"})
    return res.exit_code, res.stdout, res.stderr


def test_the_readme_lists_every_example() -> None:
    readme = (BUILDS / "README.md").read_text()
    for path in BUILDS.glob("*.toml"):
        assert f"`{path.name}`" in readme, path.name
    assert set(EXPECTED) == {p.name for p in BUILDS.glob("*.toml")}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_examples_through_the_cli(name: str) -> None:
    code, out, err = _invoke("plan", str(BUILDS / name))
    expected_code, expected_warnings = EXPECTED[name]
    assert code == expected_code, out + err
    assert "Findings" in out and "Predictions" in out and "Traceback" not in out + err
    code, out, _ = _invoke("plan", "--json", str(BUILDS / name))
    assert code == expected_code
    report = json.loads(out)
    warnings = {f["id"] for f in report["findings"] if f["severity"] == "warning"}
    assert warnings == expected_warnings
    assert report["exit_code"] == expected_code
    assert {"rig", "gpus", "findings", "predictions", "fit", "verdict"} <= set(report)
    for f in report["findings"]:
        assert {
            "id",
            "severity",
            "title",
            "why",
            "fix",
            "evidence",
            "source",
            "origin",
            "gpus",
        } == set(f)


def test_plan_takes_under_a_second() -> None:
    for name in EXPECTED:
        start = time.perf_counter()
        code, _, _ = _invoke("plan", str(BUILDS / name))
        assert code in (0, 1)
        assert time.perf_counter() - start < 1.0, name


def test_errors_exit_2(tmp_path: Path) -> None:
    text = (BUILDS / "minerva.toml").read_text().replace("context = 60000", "context = 131072")
    path = tmp_path / "minerva-131k.toml"
    path.write_text(text)
    code, out, _ = _invoke("plan", "--json", str(path))
    assert code == 2 and json.loads(out)["verdict"] == "error"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (
            '[rig]\nname = "x"\n[[gpu]]\nmodel = "RTX 3900"\n',
            'gpu[0].model: unknown GPU "RTX 3900"',
        ),
        ('[rig]\nname = "x"\n[[gpu]]\nmodel = "RTX 3090"\n[[psu]]\nwatts = -1\n', "psu[0].watts"),
        ('[rig]\nname = "x"\n', "gpu: plan needs at least one [[gpu]] entry"),
    ],
)
def test_bad_build_file_is_one_line_exit_2(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    code, out, err = _invoke("plan", str(path))
    assert code == 2
    assert needle in err and str(path) in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in out + err


def test_missing_file_is_one_line(tmp_path: Path) -> None:
    code, _, err = _invoke("plan", str(tmp_path / "nope.toml"))
    assert code == 2 and "no such file" in err and len(err.strip().splitlines()) == 1


def test_models_from_the_command_line() -> None:
    code, out, _ = _invoke(
        "plan",
        "--json",
        "--model",
        "llama-3-8b",
        "--context",
        "8192",
        str(BUILDS / "iva-2x3090.toml"),
    )
    assert code == 0
    (fit,) = json.loads(out)["fit"]
    assert fit["model"] == "llama-3-8b" and fit["fits"]
    code, _, err = _invoke("plan", "--model", "llama-9", str(BUILDS / "iva-2x3090.toml"))
    assert code == 2 and err.count("\n") == 1 and "--model: unknown model preset" in err
    code, _, err = _invoke(
        "plan", "--model", "llama-3-8b", "--mode", "train", str(BUILDS / "iva-2x3090.toml")
    )
    assert code == 2 and "--mode" in err


def test_catalog_lists_and_searches() -> None:
    code, out, _ = _invoke("catalog")
    assert code == 0 and "GPUs" in out and "CPUs" in out and "Motherboards" in out
    code, out, _ = _invoke("catalog", "x570")
    assert code == 0 and "MSI MEG X570 UNIFY" in out and "GPUs" not in out
    code, out, _ = _invoke("catalog", "--json", "--kind", "cpu", "threadripper")
    data = json.loads(out)
    assert code == 0 and data["gpus"] == [] and data["boards"] == []
    assert {c["id"] for c in data["cpus"]} == {
        "threadripper-1920x",
        "threadripper-pro-7955wx",
        "threadripper-3960x",
        "threadripper-3970x",
        "threadripper-pro-5975wx",
        "threadripper-pro-3975wx",
    }
    assert all("http" in c["source"] for c in data["cpus"])
    code, out, _ = _invoke("catalog", "--json", "3090")
    assert {g["id"] for g in json.loads(out)["gpus"]} == {"rtx-3090", "rtx-3090-ti"}


def test_catalog_misses_and_bad_kind() -> None:
    code, _, err = _invoke("catalog", "threadriper")
    assert code == 0 and "nothing in the catalog matches" in err and "Threadripper" in err
    code, _, err = _invoke("catalog", "--kind", "disk")
    assert code == 2 and "--kind must be one of gpu, cpu, board" in err
