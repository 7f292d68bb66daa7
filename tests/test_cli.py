"""The CLI as a user meets it: help everywhere, one-line errors, exit codes, JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from rigbench.cli import app
from rigbench.store import Store

runner = CliRunner()


def _invoke(*args: str) -> tuple[int, str, str]:
    res = runner.invoke(app, list(args), env={"COLUMNS": "200"})
    return res.exit_code, res.stdout, res.stderr


def test_every_command_and_option_has_help() -> None:
    root = get_command(app)
    commands = root.commands  # type: ignore[attr-defined]
    assert {"info", "bench", "show"} <= set(commands)
    for name, cmd in commands.items():
        assert cmd.help, f"{name} has no help"
        for param in cmd.params:
            if param.param_type_name == "option" and not getattr(param, "hidden", False):
                assert param.help, f"{name} {param.opts} has no help"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["bench", "--only", "gemm,flops"], "unknown benchmark 'flops'"),
        (["bench", "--gpus", "0,9"], "GPU 0, 9 does not exist"),
        (["bench", "--gpus", "zero"], "--gpus takes GPU indices"),
        (["bench", "--quick", "--full"], "choose one of --quick and --full"),
        (["info", "--simulate", "no-such-rig.toml"], "no-such-rig.toml"),
        (["show", "42"], "no run #42"),
        (["bench", "--only", ","], "--only names no benchmark"),
        (["bench", "--gpus", ","], "--gpus names no GPU"),
        *(
            ([cmd, "--db-on-every-node"], "--db-on-every-node: only under torchrun")
            for cmd in ("bench", "doctor", "burnin")
        ),
    ],
)
def test_bad_input_is_one_line_exit_2(args: list[str], needle: str) -> None:
    code, out, err = _invoke(*args)
    assert code == 2
    assert needle in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err + out


@pytest.mark.parametrize(("columns", "one_line"), [(None, True), ("80", False)])
def test_a_table_written_to_a_pipe_keeps_each_row_on_one_line(
    columns: str | None, one_line: bool
) -> None:
    """`rigbench ... | tee log`: the row is whole in the log, unless COLUMNS asks otherwise."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    if columns:
        env["COLUMNS"] = columns
    res = subprocess.run(
        [sys.executable, "-m", "rigbench", "catalog", "--kind", "gpu", "2080 ti"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    row = next(line for line in res.stdout.splitlines() if "2080" in line or "GeForc" in line)
    assert ("GeForce RTX 2080 Ti" in row and "Gen3 x16" in row) == one_line, res.stdout


def test_unwritable_db_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "f"
    blocker.write_text("")
    code, _, err = _invoke("bench", "--only", "memory", "--db", str(blocker / "x" / "r.db"))
    assert code == 2 and "cannot open database" in err
    assert len(err.strip().splitlines()) == 1


def test_malformed_simulation_file_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "rig.toml"
    bad.write_text('[rig]\nname = "x"\n[[gpu]]\nname = "NVIDIA H100 80GB HBM3"\nmemory_gib = -1\n')
    code, _, err = _invoke("bench", "--simulate", str(bad))
    assert code == 2 and "rig.toml" in err and "memory_gib" in err
    assert len(err.strip().splitlines()) == 1


def test_info_json_from_a_simulated_rig(examples: Path) -> None:
    code, out, _ = _invoke("info", "--json", "--simulate", str(examples / "v100-sxm2-server.toml"))
    assert code == 0
    rig = json.loads(out)
    assert [g["name"] for g in rig["gpus"]] == ["Tesla V100-SXM2-16GB"] * 4
    assert {p["nvlink_count"] for p in rig["pairs"]} == {2}


def test_info_table_names_slot_limit(examples: Path) -> None:
    code, out, _ = _invoke("info", "--simulate", str(examples / "desktop-3060-1060-x1.toml"))
    assert code == 0
    assert "GTX 1060" in out and "Gen3 x1" in out


def test_bench_on_cpu_stores_and_prints_json(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    code, out, _ = _invoke(
        "bench", "--only", "memory,p2p", "--json", "--db", str(db), "--scale", "0.05"
    )
    assert code == 0, out
    doc = json.loads(out)
    assert doc["run"]["status"] == "complete"
    benches = {r["benchmark"] for r in doc["results"]}
    assert benches == {"memory", "p2p"}
    stored = Store.open(db).results(doc["run"]["id"])
    assert len(stored) == len(doc["results"])
    code, out, _ = _invoke("show", "--json", "--db", str(db))
    assert code == 0 and json.loads(out)["run"]["id"] == doc["run"]["id"]


def test_simulated_hang_is_a_fault_and_exit_2(tmp_path: Path, examples: Path) -> None:
    rig = tmp_path / "hang.toml"
    text = (examples / "tr1920x-3x3090-p2p-hang.toml").read_text()
    rig.write_text(text)
    db = tmp_path / "r.db"
    code, out, _ = _invoke(
        "bench", "--only", "p2p", "--gpus", "0,1", "--simulate", str(rig), "--db", str(db),
        "--scale", "0.02", "--timeout", "2", "--json",
    )  # fmt: skip
    assert code == 2  # a hang is a fault: judge.exit_code_for maps it to 2
    doc = json.loads(out)
    failed = [r for r in doc["results"] if r["status"] == "failed"]
    assert len(failed) == 1 and "hung" in failed[0]["message"]
    assert failed[0]["judgement"]["verdict"] == "fault"
    assert doc["run"]["status"] == "incomplete"


def test_doctor_run_is_stored_and_shown_again(tmp_path: Path, examples: Path) -> None:
    db = tmp_path / "r.db"
    rig = examples / "desktop-3060-1060-x1.toml"
    code, out, _ = _invoke("doctor", "--simulate", str(rig), "--db", str(db), "--json",
                           "--only", "pcie,power")  # fmt: skip
    found = json.loads(out)["findings"]
    code2, out2, _ = _invoke("show", "--json", "--db", str(db))
    assert code2 == 0
    doc = json.loads(out2)
    assert doc["run"]["command"] == "doctor"
    assert doc["findings"] == found
    code3, out3, _ = _invoke("show", "--db", str(db))
    assert code3 == 0 and found[0]["title"] in out3


def test_a_bench_that_measures_nothing_is_an_error(tmp_path: Path, examples: Path) -> None:
    db = tmp_path / "r.db"
    rig = str(examples / "v100-sxm2-server.toml")
    code, out, err = _invoke("bench", "--only", "p2p", "--gpus", "0", "--simulate", rig,
                             "--db", str(db), "--scale", "0.02")  # fmt: skip
    assert code == 2, out + err
    assert "nothing was measured" in err and "needs at least 2 GPUs" in err
    store = Store.open(db)
    run = store.get_run(store.latest_run_id())  # type: ignore[arg-type]
    assert run is not None and run.status == "failed"
