"""`rigbench doctor` as a user meets it: one-line errors with exit 2, the JSON shape,
help for every option, and simulated health sections checked like the rest of the file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rigbench.cli import app
from rigbench.doctor.run import CHECK_NAMES
from rigbench.records import Finding

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "simulated"
runner = CliRunner()
QUICK = "inventory,pcie,nvlink,xid,ecc,power"  # no probe: no worker process


def invoke(*args: str) -> tuple[int, str, str]:
    res = runner.invoke(app, ["doctor", *args], env={"COLUMNS": "200"})
    return res.exit_code, res.stdout, res.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--only", "pcie,flux"], "unknown check 'flux': choose from inventory, versions"),
        (["--only", ","], "unknown check nothing"),
        (["--timeout", "0"], "--timeout must be a positive number"),
        (["--simulate", "no-such-rig.toml"], "no-such-rig.toml: no such file"),
    ],
)
def test_bad_input_is_one_line_exit_2(args: list[str], needle: str) -> None:
    code, out, err = invoke(*args)
    assert code == 2
    assert needle in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in out + err


@pytest.mark.parametrize(
    ("section", "needle"),
    [
        ("[kernel]\niommu_group_type = 'translated'\n", "kernel.iommu_group_type: must be one of"),
        ("[health]\nmemlock_kib = -1\n", "health.memlock_kib"),
        ("[health]\npci_extra_gpus = ['04:00']\n", "health.pci_extra_gpus"),
        ("[[kernel.acs]]\nbridge = '0000:00:01.0'\ncontrol = 29\ngpus = [0, 5]\n", "GPU 5"),
        ("[[kernel.acs]]\nbridge = '0000:00:01.0'\ncontrol = 70000\ngpus = [0]\n", "16-bit"),
        ("[gpu.health]\nthrottle_reasons = ['too_hot']\n", "unknown throttle reason 'too_hot'"),
        ("[gpu.health]\ntemperature_c = 400\n", "gpu[0].health.temperature_c"),
        ("[gpu.health]\nunavailable = { ecc = 'x' }\n", "not a GPU health field"),
        ("[gpu.health]\npersistence = true\n", "did you mean persistence_mode?"),
        ("[env]\nNCCL_P2P_DISABLE = 1\n", "env.NCCL_P2P_DISABLE: must be a string"),
    ],
)
def test_bad_health_sections_are_one_line(tmp_path: Path, section: str, needle: str) -> None:
    rig = tmp_path / "rig.toml"
    rig.write_text(
        '[rig]\nname = "t"\n[[gpu]]\nname = "NVIDIA GeForce RTX 3090"\ncount = 2\n' + section
    )
    code, _, err = invoke("--simulate", str(rig), "--only", QUICK)
    assert code == 2, err
    assert needle in err and "rig.toml" in err
    assert len(err.strip().splitlines()) == 1


def test_json_shape() -> None:
    code, out, _ = invoke(
        "--json", "--simulate", str(EXAMPLES / "v100-sxm2-server-lost-gpu.toml"), "--only", QUICK
    )
    assert code == 2
    doc = json.loads(out)
    assert set(doc) == {"run", "findings", "summary"}
    assert doc["run"]["command"] == "doctor" and doc["run"]["backend"] == "simulated"
    assert doc["run"]["status"] == "complete"
    assert doc["summary"]["exit_code"] == 2
    assert doc["summary"]["checks"] == QUICK.split(",")
    assert sum(doc["summary"][s] for s in ("error", "warning", "info", "ok", "skipped")) == len(
        doc["findings"]
    )
    for f in doc["findings"]:
        assert set(f) == {
            "id",
            "severity",
            "title",
            "evidence",
            "why",
            "fix",
            "source",
            "origin",
            "gpus",
        }
        assert f["severity"] in ("ok", "info", "warning", "error", "skipped")
        assert f["id"].split(".", 1)[0] in CHECK_NAMES
        assert Finding.from_dict(f).to_dict() == f


def test_table_lists_problems_then_every_check() -> None:
    checks = QUICK + ",throttle"
    code, out, _ = invoke("--simulate", str(EXAMPLES / "l40s-power-brake.toml"), "--only", checks)
    assert code == 2
    assert out.index("ERROR") < out.index("throttle.power_brake") < out.index("ok ")
    for label in ("evidence", "why", "fix"):
        assert label in out
    for name in checks.split(","):
        assert f"{name}:" in out or f"{name}." in out, name
    assert "-> exit 2 (errors)" in out


def test_exit_codes_follow_the_worst_finding() -> None:
    assert invoke("--simulate", str(EXAMPLES / "h100-8x-nvswitch.toml"), "--only", QUICK)[0] == 0
    assert invoke("--simulate", str(EXAMPLES / "riser-x1-gen3.toml"), "--only", QUICK)[0] == 1
    assert invoke("--simulate", str(EXAMPLES / "a100-ecc-errors.toml"), "--only", QUICK)[0] == 2


def test_no_gpu_machine_reports_skipped_with_reasons() -> None:
    code, out, _ = invoke("--json", "--simulate", str(EXAMPLES / "cpu-only.toml"))
    assert code == 0
    findings = json.loads(out)["findings"]
    skipped = {f["id"]: f["why"] for f in findings if f["severity"] == "skipped"}
    assert "needs at least 2 GPUs" in skipped["p2p.skipped"]
    assert "needs at least 2 GPUs" in skipped["collectives.skipped"]
    assert all(skipped.values())


def test_doctor_has_help_for_every_option() -> None:
    code, out, _ = invoke("--help")
    assert code == 0
    for opt in ("--json", "--simulate", "--only", "--timeout"):
        assert opt in out
    assert "exit code" in out.lower() or "Exit code" in out
