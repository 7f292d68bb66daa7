"""Bad input to every command: one line on stderr, a non-zero exit, nothing read that was
not needed, nothing stored before lost."""

from __future__ import annotations

import os
import resource
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from rigbench.cli import app
from rigbench.records import Result, Run
from rigbench.store import Store

runner = CliRunner()


def _invoke(*args: str) -> tuple[int, str, str]:
    res = runner.invoke(app, list(args), env={"COLUMNS": "200"})
    return res.exit_code, res.stdout, res.stderr


def _one_line_error(code: int, out: str, err: str) -> None:
    assert code == 2, (code, out, err)
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in out + err


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "pipe.toml"
    os.mkfifo(path)
    return path


@pytest.mark.parametrize("command", ["info", "bench", "doctor", "burnin", "monitor"])
@pytest.mark.parametrize("target", ["fifo", "dev_zero", "directory", "huge"])
def test_simulate_file_that_is_no_rig_file(
    command: str, target: str, fifo: Path, tmp_path: Path
) -> None:
    huge = tmp_path / "huge.toml"
    with open(huge, "wb") as fh:  # sparse: no disk used
        fh.truncate(64 * 2**20)
    path = {"fifo": fifo, "dev_zero": Path("/dev/zero"), "directory": tmp_path, "huge": huge}
    db = [] if command == "info" else ["--db", str(tmp_path / "r.db")]
    code, out, err = _invoke(command, "--simulate", str(path[target]), *db)
    _one_line_error(code, out, err)
    assert {"fifo": "FIFO", "dev_zero": "device", "directory": "directory", "huge": "MiB"}[
        target
    ] in err


@pytest.mark.parametrize("target", ["fifo", "dev_zero", "directory"])
def test_db_that_is_no_database_file(target: str, fifo: Path, tmp_path: Path) -> None:
    path = {"fifo": fifo, "dev_zero": Path("/dev/zero"), "directory": tmp_path}[target]
    code, out, err = _invoke("show", "--db", str(path))
    _one_line_error(code, out, err)
    assert "cannot open database" in err


def test_db_from_a_newer_rigbench_is_refused_and_left_alone(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    Store.open(db).close()
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO migrations VALUES ('m999_from_the_future', 'x')")
    before = db.read_bytes()
    code, out, err = _invoke("show", "--db", str(db))
    _one_line_error(code, out, err)
    assert "newer rigbench" in err
    assert db.read_bytes() == before


# --- the sweep: every command, inputs cut short, enormous, of the wrong type, a directory,
# a FIFO, a device, an unwritable place, a locked or newer database ----------------------

RIG = "{examples}/iva-2x3090.toml"
BUILD = "{builds}/iva-2x3090.toml"
COST = ["--price", "5000", "--cloud-per-hour", "2", "--electricity-per-hour", "0.3",
        "--hours-per-year", "2000", "--returns", "5", "--use-years", "3"]  # fmt: skip

SWEEP: list[tuple[str, list[str]]] = [
    # the root
    ("unknown command", ["frobnicate"]),
    ("unknown root option", ["--bogus"]),
    # info
    ("info: rig file cut short", ["info", "--simulate", "{cut_rig}"]),
    ("info: rig file is binary", ["info", "--simulate", "{binary}"]),
    ("info: rig file is empty", ["info", "--simulate", "{empty}"]),
    ("info: wrong type in the rig", ["info", "--simulate", "{wrong_type_rig}"]),
    ("info: --simulate without a value", ["info", "--simulate"]),
    ("info: an option it does not have", ["info", "--db", "{stored}"]),
    # bench
    ("bench: --only ,", ["bench", "--only", ",", "--db", "{stored}"]),
    ("bench: --only with an unknown name", ["bench", "--only", "gemm,,x", "--db", "{stored}"]),
    ("bench: --gpus negative", ["bench", "--gpus", "-1", "--simulate", RIG, "--db", "{stored}"]),
    ("bench: --gpus fraction", ["bench", "--gpus", "1.5", "--simulate", RIG, "--db", "{stored}"]),
    ("bench: --timeout 0", ["bench", "--timeout", "0", "--db", "{stored}"]),
    ("bench: --timeout nan", ["bench", "--timeout", "nan", "--db", "{stored}"]),
    ("bench: --timeout text", ["bench", "--timeout", "soon", "--db", "{stored}"]),
    ("bench: --scale 0", ["bench", "--scale", "0", "--db", "{stored}"]),
    ("bench: --scale huge", ["bench", "--scale", "1e9", "--db", "{stored}"]),
    ("bench: --db not a database", ["bench", "--simulate", RIG, "--db", "{not_db}"]),
    ("bench: --db from a newer rigbench", ["bench", "--simulate", RIG, "--db", "{newer}"]),
    ("bench: --db locked by another program",
     ["bench", "--only", "memory", "--simulate", RIG, "--db", "{locked}"]),
    ("bench: --db /dev/full", ["bench", "--simulate", RIG, "--db", "/dev/full"]),
    ("bench: --db under a file", ["bench", "--simulate", RIG, "--db", "{not_db}/x/r.db"]),
    ("bench: --db where nothing can be created",
     ["bench", "--simulate", RIG, "--db", "/proc/rigbench-test/r.db"]),
    ("bench: rig file cut short", ["bench", "--simulate", "{cut_rig}", "--db", "{stored}"]),
    # show
    ("show: a run number that is text", ["show", "abc", "--db", "{stored}"]),
    ("show: a run that does not exist", ["show", "99999999", "--db", "{stored}"]),
    ("show: a run number past 64 bits", ["show", "99999999999999999999", "--db", "{stored}"]),
    ("show: an empty database", ["show", "--db", "{fresh}"]),
    ("show: --db not a database", ["show", "--db", "{not_db}"]),
    ("show: --db cut short", ["show", "--db", "{cut_db}"]),
    # burnin
    ("burnin: --minutes 0", ["burnin", "--minutes", "0", "--db", "{stored}"]),
    ("burnin: --minutes negative", ["burnin", "--minutes", "-1", "--db", "{stored}"]),
    ("burnin: --minutes nan", ["burnin", "--minutes", "nan", "--db", "{stored}"]),
    ("burnin: --minutes inf", ["burnin", "--minutes", "inf", "--db", "{stored}"]),
    ("burnin: --minutes too short to test", ["burnin", "--minutes", "0.001", "--db", "{stored}"]),
    ("burnin: --rate 0", ["burnin", "--rate", "0", "--db", "{stored}"]),
    ("burnin: --rate huge", ["burnin", "--rate", "1e9", "--db", "{stored}"]),
    ("burnin: --build cut short", ["burnin", "--build", "{cut_build}", "--db", "{stored}"]),
    ("burnin: --build a directory", ["burnin", "--build", "{dir}", "--db", "{stored}"]),
    ("burnin: --build a FIFO", ["burnin", "--build", "{fifo}", "--db", "{stored}"]),
    ("burnin: --build /dev/zero", ["burnin", "--build", "/dev/zero", "--db", "{stored}"]),
    ("burnin: --gpus that do not exist",
     ["burnin", "--gpus", "7", "--simulate", RIG, "--db", "{stored}"]),
    ("burnin: --db from a newer rigbench", ["burnin", "--simulate", RIG, "--db", "{newer}"]),
    # catalog
    ("catalog: --kind unknown", ["catalog", "--kind", "xyz"]),
    ("catalog: --kind empty", ["catalog", "--kind", ""]),
    # cost
    ("cost: build file cut short", ["cost", "{cut_build}"]),
    ("cost: build file a FIFO", ["cost", "{fifo}"]),
    ("cost: build file /dev/zero", ["cost", "/dev/zero"]),
    ("cost: build file a directory", ["cost", "{dir}"]),
    ("cost: build file enormous", ["cost", "{huge}"]),
    ("cost: --price text", ["cost", *COST, "--price", "abc"]),
    ("cost: --returns empty", ["cost", *COST, "--returns", ","]),
    ("cost: --use-years 1e6", ["cost", *COST, "--use-years", "1000000"]),
    ("cost: --price 1e300", ["cost", *COST, "--price", "1e300"]),
    ("cost: --run text", ["cost", *COST[:8], "--use-years", "3", "--run", "abc"]),
    ("cost: --run in a newer database", ["cost", *COST, "--run", "1", "--db", "{newer}"]),
    ("cost: --run past 64 bits",
     ["cost", *COST, "--run", "99999999999999999999", "--db", "{stored}"]),
    # doctor
    ("doctor: --only unknown", ["doctor", "--only", "xyz", "--db", "{stored}"]),
    ("doctor: --timeout 0", ["doctor", "--timeout", "0", "--db", "{stored}"]),
    ("doctor: --timeout nan", ["doctor", "--timeout", "nan", "--db", "{stored}"]),
    ("doctor: rig file binary", ["doctor", "--simulate", "{binary}", "--db", "{stored}"]),
    ("doctor: --db from a newer rigbench", ["doctor", "--simulate", RIG, "--db", "{newer}"]),
    # monitor
    ("monitor: --rate 0", ["monitor", "--rate", "0"]),
    ("monitor: --rate nan", ["monitor", "--rate", "nan"]),
    ("monitor: --rate huge", ["monitor", "--rate", "1e9"]),
    ("monitor: --seconds 0", ["monitor", "--seconds", "0"]),
    ("monitor: --seconds negative", ["monitor", "--seconds", "-1"]),
    ("monitor: --prometheus past 65535",
     ["monitor", "--simulate", RIG, "--seconds", "0.1", "--prometheus", "99999"]),
    ("monitor: --record into a newer database",
     ["monitor", "--simulate", RIG, "--seconds", "0.1", "--record", "--db", "{newer}"]),
    ("monitor: --record into a locked database",
     ["monitor", "--simulate", RIG, "--seconds", "0.1", "--record", "--db", "{locked}"]),
    # plan
    ("plan: no build file", ["plan"]),
    ("plan: build file cut short", ["plan", "{cut_build}"]),
    ("plan: build file binary", ["plan", "{binary}"]),
    ("plan: build file empty", ["plan", "{empty}"]),
    ("plan: build file a directory", ["plan", "{dir}"]),
    ("plan: build file a FIFO", ["plan", "{fifo}"]),
    ("plan: build file /dev/zero", ["plan", "/dev/zero"]),
    ("plan: build file enormous", ["plan", "{huge}"]),
    ("plan: a key given twice", ["plan", "{twice_build}"]),
    ("plan: wrong type in the build", ["plan", "{wrong_type_build}"]),
    ("plan: --context 0", ["plan", BUILD, "--context", "0"]),
    ("plan: --mode unknown", ["plan", BUILD, "--mode", "xyz", "--model", "llama"]),
]  # fmt: skip


@pytest.fixture
def inputs(tmp_path: Path, fifo: Path, examples: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Every bad input the sweep uses, and a database holding a run that must survive."""
    rig_text = (examples / "iva-2x3090.toml").read_text()
    builds = examples.parent / "builds"
    build_text = (builds / "iva-2x3090.toml").read_text()
    files = {
        "cut_rig": rig_text[: len(rig_text) // 2 - 7],
        "cut_build": build_text[: len(build_text) // 2 - 7],
        "empty": "",
        "wrong_type_rig": rig_text.replace("[[gpu]]", '[[gpu]]\nmemory_gib = "lots"', 1),
        "twice_build": build_text.replace("[[gpu]]", '[[gpu]]\ncount = "two"', 1),
        "wrong_type_build": build_text.replace("watts = 1600", 'watts = "lots"', 1),
        "not_db": "this is a text file, not a database\n",
    }
    paths = {"examples": str(examples), "builds": str(builds), "fifo": str(fifo),
             "dir": str(tmp_path)}  # fmt: skip
    for name, text in files.items():
        (tmp_path / name).write_text(text)
        paths[name] = str(tmp_path / name)
    (tmp_path / "binary").write_bytes(bytes(range(256)) * 64)
    paths["binary"] = str(tmp_path / "binary")
    with open(tmp_path / "huge.toml", "wb") as fh:  # sparse: no disk used
        fh.truncate(64 * 2**20)
    paths["huge"] = str(tmp_path / "huge.toml")
    stored = tmp_path / "stored.db"
    store = Store.open(stored)
    rid = store.start_run(Run(command="bench"))
    store.add_result(rid, Result(benchmark="memory", metric="copy", value=1.0, unit="GB/s"))
    store.finish_run(Run(command="bench", id=rid), "complete")
    store.close()
    paths["stored"] = str(stored)
    Store.open(tmp_path / "fresh.db").close()
    paths["fresh"] = str(tmp_path / "fresh.db")
    (tmp_path / "cut.db").write_bytes(stored.read_bytes()[:1000])
    paths["cut_db"] = str(tmp_path / "cut.db")
    newer = tmp_path / "newer.db"
    Store.open(newer).close()
    with sqlite3.connect(newer) as conn:
        conn.execute("INSERT INTO migrations VALUES ('m999_from_the_future', 'x')")
    paths["newer"] = str(newer)
    locked = tmp_path / "locked.db"
    Store.open(locked).close()
    paths["locked"] = str(locked)
    holder = sqlite3.connect(locked, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another program holds the write lock
    # rigbench waits this long for another writer; the default (seconds) is for real runs
    monkeypatch.setattr(Store, "busy_timeout_s", 0.05)
    yield paths
    holder.execute("ROLLBACK")
    holder.close()


def _survived(path: str) -> tuple[str, int]:
    store = Store.open(path)
    run = store.get_run(1)
    assert run is not None
    return run.status, len(store.results(1))


@pytest.mark.parametrize(("case", "argv"), SWEEP, ids=[c for c, _ in SWEEP])
def test_sweep_bad_input_is_one_line_and_loses_nothing(
    case: str, argv: list[str], inputs: dict[str, str]
) -> None:
    args = [a.format(**inputs) for a in argv]
    newer_before = Path(inputs["newer"]).read_bytes()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    cpu_before = time.process_time()
    res = runner.invoke(app, args, env={"COLUMNS": "200"})
    cpu_s = time.process_time() - cpu_before
    rss_grew_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    assert res.exit_code != 0, (res.stdout, res.stderr)
    assert res.exit_code == 2, (res.exit_code, res.stderr)
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "Traceback" not in res.stdout + res.stderr
    # CPU seconds, not wall: the sweep checks for runaway work, not for a busy machine
    assert cpu_s < 1.0, f"{case}: {cpu_s:.2f} s of CPU"
    assert rss_grew_mib < 200, f"{case}: memory grew {rss_grew_mib:.0f} MiB"
    assert _survived(inputs["stored"]) == ("complete", 1)
    assert Path(inputs["newer"]).read_bytes() == newer_before


def test_the_sweep_has_sixty_cases_or_more() -> None:
    assert len(SWEEP) >= 60


@pytest.mark.parametrize(
    "argv",
    [
        ["bench", "--only", "memory", "--simulate", RIG, "--scale", "0.02"],
        ["doctor", "--only", "pcie", "--simulate", RIG],
        ["monitor", "--record", "--seconds", "0.1", "--simulate", RIG],
        ["burnin", "--minutes", "0.05", "--simulate", RIG],
        ["show"],
    ],
    ids=["bench", "doctor", "monitor", "burnin", "show"],
)
def test_a_full_disk_is_one_line_and_loses_nothing(argv: list[str], inputs: dict[str, str]) -> None:
    """No byte can be written (RLIMIT_FSIZE 0 fails every write as a full disk does)."""
    args = [*(a.format(**inputs) for a in argv), "--db", inputs["stored"]]
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a kill
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, limits[1]))
    try:
        res = runner.invoke(app, args, env={"COLUMNS": "200"})
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        signal.signal(signal.SIGXFSZ, old_handler)
    assert res.exit_code == 2, (res.stdout, res.stderr)
    assert len(res.stderr.strip().splitlines()) == 1 and "disk full" in res.stderr
    assert _survived(inputs["stored"]) == ("complete", 1)


def test_an_error_line_repeats_the_input_as_given() -> None:
    """rich read ':100:' in "300:100:10" as an emoji code and printed 300💯10."""
    res = runner.invoke(app, ["burnin", "--sweep-power", "300:100:10"], env={"COLUMNS": "200"})
    assert res.exit_code == 2
    assert "'300:100:10'" in res.stderr, res.stderr
