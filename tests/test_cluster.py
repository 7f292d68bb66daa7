"""`bench` under torchrun: two torchrun agents on localhost as two "nodes" of two gloo ranks
each, a node killed mid-run, one node against no torchrun, and the sbatch script's line."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from procs import TORCHRUN, child_env, free_port
from rigbench.bench.cluster import DistEnv, node_scaling, short_error, torchrun_env

ROOT = Path(__file__).resolve().parents[1]
SBATCH = ROOT / "examples" / "slurm" / "rigbench-cluster.sbatch"
SIM = ROOT / "examples" / "simulated" / "h100-8x-nvswitch.toml"
BENCH = ["-m", "rigbench", "bench", "--only", "collectives,train", "--scale", "0.05"]


def _agent(
    port: int,
    db: Path,
    log: Path,
    extra: list[str] | None = None,
    *,
    command: list[str] = BENCH,
    ranks: int = 2,
    env: dict[str, str] | None = None,
    local_addr: str = "127.0.0.1",
) -> subprocess.Popen:
    cmd = [
        *TORCHRUN,
        "--nnodes", "2", "--nproc-per-node", str(ranks),
        "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}",
        "--rdzv-id", f"t{port}", "--local-addr", local_addr,
        *command, "--db", str(db), *(extra or []),
    ]  # fmt: skip
    with log.open("w") as err:  # the child keeps its own descriptor
        return subprocess.Popen(
            cmd,
            stdout=subprocess.DEVNULL,
            stderr=err,
            env={**child_env(), **(env or {})},
            cwd=log.parent,
            start_new_session=True,
        )


def _two_agents(
    tmp: Path,
    extra: list[str] | None = None,
    per_node: list[dict] | None = None,
    *,
    zero: int = 0,
) -> list[subprocess.Popen]:
    """Agent 0 first (it hosts the rendezvous store, as the --rdzv-endpoint host does),
    then agent 1 once the store listens. `per_node`: _agent's keywords for each. `zero`:
    the agent whose node is node 0 (rank 0's). torchrun numbers nodes in the order of
    their --local-addr, then of their agents' pids, which wrap: left to the pids, the order
    changes from run to run."""
    port = free_port()
    kw = [dict(k) for k in (per_node or [{}, {}])]
    for i, k in enumerate(kw):
        k["local_addr"] = "127.0.0.1" if i == zero else "localhost"  # "1" sorts before "l"
    first = _agent(port, tmp / "db0.db", tmp / "err0.txt", extra, **kw[0])
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if first.poll() is not None or time.monotonic() > deadline:
                first.kill()
                pytest.fail((tmp / "err0.txt").read_text()[-2000:])
            time.sleep(0.1)
    return [first, _agent(port, tmp / "db1.db", tmp / "err1.txt", extra, **kw[1])]


def _wait_all(agents: list[subprocess.Popen], tmp: Path, timeout: float) -> list[int]:
    """Every agent's exit code; one that outlives `timeout` fails the test with the logs
    (and its tree killed), never hangs the suite."""
    deadline = time.monotonic() + timeout
    try:
        return [a.wait(timeout=max(0.1, deadline - time.monotonic())) for a in agents]
    except subprocess.TimeoutExpired:
        alive = [i for i, a in enumerate(agents) if a.poll() is None]
        for a in agents:
            _kill_tree(a.pid)
            a.wait(timeout=30)
        logs = [(tmp / f"err{i}.txt").read_text()[-1500:] for i in range(len(agents))]
        pytest.fail(f"agent(s) {alive} still running after {timeout:g} s: {logs}")


def _rows(db: Path) -> tuple[str, list[dict]]:
    with sqlite3.connect(db) as con:
        (status,) = con.execute("SELECT status FROM runs").fetchone()
        rows = con.execute(
            "SELECT benchmark, metric, status, params, expected, basis, judgement FROM results"
        ).fetchall()
    return status, [
        {"benchmark": b, "metric": m, "status": s, **json.loads(p), "expected": e, "basis": bs,
         "judgement": json.loads(j) if j else None}
        for b, m, s, p, e, bs, j in rows
    ]  # fmt: skip


def _kill_tree(pid: int) -> None:
    """The agent and its workers (torchrun starts each worker in a session of its own)."""
    kids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = Path(f"/proc/{d}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(d))
    for p in [pid, *kids]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGKILL)


def test_torchrun_env_is_detected_only_under_torchrun() -> None:
    assert torchrun_env({}) is None
    assert torchrun_env({"RANK": "0", "WORLD_SIZE": "4"}) is None  # not torchrun's full set
    env = torchrun_env(
        {
            "RANK": "3",
            "LOCAL_RANK": "1",
            "WORLD_SIZE": "4",
            "LOCAL_WORLD_SIZE": "2",
            "GROUP_RANK": "1",
            "MASTER_ADDR": "node-a",
            "MASTER_PORT": "29400",
        }
    )
    assert env == DistEnv(
        rank=3,
        local_rank=1,
        world_size=4,
        local_world_size=2,
        node_rank=1,
        master_addr="node-a",
        master_port=29400,
        run_id="none",
        restart=0,
    )
    assert node_scaling(150.0, 2, 100.0) == pytest.approx(75.0)


def test_short_error_drops_gloo_location_and_advice() -> None:
    exc = RuntimeError(
        "[/x/gloo/transport/tcp/pair.cc:537] Read error [10.0.0.2]:16792: Connection reset"
        " by peer. This is typically caused by a remote worker hanging"
    )
    assert short_error(exc) == "RuntimeError: Read error [10.0.0.2]:16792: Connection reset by peer"


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One `bench --only collectives,train` over two torchrun agents on localhost as two
    "nodes" of two gloo ranks, shared by the tests that read it. The simulated rig gives
    each node its NICs; here eno1 trained at 25 Gb/s of its 100 (InfiniBand ports that gloo
    does not use): the inter-node rows expect 100 Gb/s / 8 and name the trained-down link."""
    tmp = tmp_path_factory.mktemp("two-nodes")
    sim = tmp / "eno1-at-25.toml"
    text = SIM.read_text()
    eno1 = '{ name = "eno1", kind = "ethernet", state = "up", rate_gbps = 25.0 }'
    assert eno1 in text
    sim.write_text(text.replace(eno1, eno1[:-2] + ", max_rate_gbps = 100.0 }"))
    # micro-batch 2: a quarter of the CPU default's work, the loss still falls (checked)
    # node 0 on the agent that does not host the store: the order in which a rank 0
    # that alone exited non-zero held the other node's torchrun for 5 minutes
    # two of the five collectives: the rows' scopes, sizes and judgement are the same code
    agents = _two_agents(
        tmp,
        ["--simulate", str(sim), "--set", "train.batch=2",
         "--set", "collectives.ops=all_reduce,all_gather", "--db-on-every-node"],
        zero=1,
    )  # fmt: skip
    codes = _wait_all(agents, tmp, 240)
    logs = [(tmp / f"err{i}.txt").read_text() for i in range(2)]
    # rank 0 (on agent 1) writes the run; asked, node 1's first rank keeps a copy of it
    status, rows = _rows(tmp / "db1.db")
    assert _rows(tmp / "db0.db") == (status, rows), logs
    kept = [ln for ln in logs[0].splitlines() if ln.startswith("node 1: run #1 of rank 0")]
    assert kept == [f"node 1: run #1 of rank 0 kept as run #1 ({tmp / 'db0.db'})"], logs[0]
    return {"codes": codes, "zero": 1, "logs": logs, "status": status, "rows": rows}


def test_two_nodes_one_run_with_intra_inter_node_rows_and_scaling(two_nodes: dict) -> None:
    rows = two_nodes["rows"]
    assert two_nodes["status"] == "complete", two_nodes["logs"]
    busbw = [r for r in rows if r["metric"] == "busbw" and r["status"] == "ok"]
    scopes = {(r["scope"], r.get("node")) for r in busbw}
    assert scopes == {("cluster", None), ("node", 0), ("node", 1), ("inter-node", None)}
    for r in busbw:
        assert r["world_size"] == {"cluster": 4, "node": 2, "inter-node": 2}[r["scope"]]
    inter = [r for r in busbw if r["scope"] == "inter-node"]
    assert {r["op"] for r in inter} == {"all_reduce", "all_gather"}  # as asked
    assert all(r["expected"] is None for r in busbw if r["scope"] != "inter-node")
    sizes = {r["bytes"] for r in busbw if r["scope"] == "cluster" and r["op"] == "all_reduce"}
    assert len(sizes) >= 3  # all_reduce busbw against message size
    train = {(r["metric"], r["scope"], r.get("node")) for r in rows if r["benchmark"] == "train"}
    assert {("tokens_per_s", "device", None), ("tokens_per_s", "node", 0)} <= train
    assert ("tokens_per_s", "node", 1) in train  # each node alone: a slow node shows
    assert {
        ("tokens_per_s", "cluster", None),
        ("node_scaling_efficiency", "cluster", None),
    } <= train
    assert all(r["status"] == "ok" for r in rows if r["metric"] == "loss_drop")
    # one rank's own rows are judged as a run without torchrun judges them (the CPU: no
    # reference), not left without a verdict
    (alone,) = [r for r in rows if r["metric"] == "tokens_per_s" and r.get("scope") == "device"]
    assert alone["judgement"]["verdict"] == "no_reference"


def test_two_nodes_inter_node_rows_expect_the_nic_and_name_a_trained_down_link(
    two_nodes: dict,
) -> None:
    inter = [r for r in two_nodes["rows"] if r["scope"] == "inter-node" and r["metric"] == "busbw"]
    assert {r["expected"] for r in inter} == {100.0 / 8}
    assert all("eno1" in r["basis"] and "trained at 25 Gb/s" in r["basis"] for r in inter)
    top = max(r["bytes"] for r in inter if r["op"] == "all_reduce")
    (judged,) = [r for r in inter if r["op"] == "all_reduce" and r["bytes"] == top]
    j = judged["judgement"]
    assert j["verdict"] == "below_normal" and j["cause"] == "link_degraded"
    assert "trained at 25 Gb/s of its 100 Gb/s" in j["note"]
    # below normal is a warning: rank 0 exits 1, and so does every rank (each node's
    # torchrun says the same; none waits at torchrun's exit barrier for the others)
    assert two_nodes["codes"] == [1, 1], two_nodes["logs"]
    assert all(re.search(r"exitcode\s*:\s*1 ", log) for log in two_nodes["logs"])


def _kill_the_other_node(
    tmp_path: Path,
    agents: list,
    banner: str,
    ready: Callable[[str], bool],
    wait_s: float,
    settle_s: float = 0.0,
) -> tuple[int, int, str]:
    """Wait for rank 0's banner and `ready(its log)` (then `settle_s` more), kill the agent
    of the other node, and return rank 0's node, its agent's exit code and its log."""
    zero = None
    deadline = time.monotonic() + wait_s
    try:
        while time.monotonic() < deadline:
            logs = [(tmp_path / f"err{i}.txt").read_text() for i in range(2)]
            if zero is None:
                zero = next((i for i in range(2) if banner in logs[i]), None)
            if zero is not None and ready(logs[zero]):
                break
            assert all(a.poll() is None for a in agents), logs
            time.sleep(0.1)
        assert zero is not None
        time.sleep(settle_s)
        _kill_tree(agents[1 - zero].pid)
        code = agents[zero].wait(timeout=60)
    finally:
        for a in agents:
            if a.poll() is None:
                _kill_tree(a.pid)
            a.wait(timeout=30)  # reaped here, not warned about when collected
    return zero, code, (tmp_path / f"err{zero}.txt").read_text()


def test_a_killed_node_is_named_and_what_was_measured_is_kept(tmp_path: Path) -> None:
    # one rank a node: the cluster-scope collectives run across the two nodes all the same
    one = {"ranks": 1}
    agents = _two_agents(tmp_path, per_node=[one, one])
    # rank 0's banner, then a few results
    zero, code, log = _kill_the_other_node(
        tmp_path, agents, "torchrun:", lambda log: log.count("  collectives") >= 8, 180
    )
    assert code != 0
    lost = [line for line in log.splitlines() if line.startswith("error: lost node")]
    assert len(lost) == 1, log[-3000:]
    assert f"(node {1 - zero}, ranks" in lost[0] and f"(node {zero}," not in lost[0]
    status, rows = _rows(tmp_path / f"db{zero}.db")
    assert status == "incomplete"
    assert len(rows) >= 8 and f"{len(rows)} results kept" in lost[0]


def test_one_node_under_torchrun_gives_the_rows_of_a_run_without_it(tmp_path: Path) -> None:
    args = ["-m", "rigbench", "bench", "--only", "collectives", "--scale", "0.05", "--json",
            "--set", "collectives.ops=all_reduce,all_to_all"]  # fmt: skip
    # Both at once (they take turns on the cores; only the rows are compared).
    with (tmp_path / "a.out").open("w") as a_out, (tmp_path / "b.out").open("w") as b_out:
        plain = subprocess.Popen(
            [sys.executable, *args, "--db", str(tmp_path / "a.db")],
            stdout=a_out, stderr=subprocess.DEVNULL, env=child_env(),
        )  # fmt: skip
        launched = subprocess.Popen(
            [
                *TORCHRUN, "--nnodes", "1", "--nproc-per-node", "2", "--rdzv-backend", "c10d",
                "--rdzv-endpoint", f"127.0.0.1:{free_port()}", *args,
                "--db", str(tmp_path / "b.db"),
            ],
            stdout=b_out, stderr=subprocess.PIPE, text=True, env=child_env(),
        )  # fmt: skip
        _out, launched_err = launched.communicate(timeout=240)
        plain.wait(timeout=240)
    assert launched.returncode == 0, launched_err[-3000:]

    def keys(stdout: str) -> set[tuple]:
        res = json.loads(stdout[stdout.index("{") :])["results"]
        return {
            (r["metric"], r["status"], r["params"]["op"], r["params"]["bytes"],
             r["params"]["world_size"], r["params"]["backend"])
            for r in res
        }  # fmt: skip

    rows = keys((tmp_path / "b.out").read_text())
    assert rows == keys((tmp_path / "a.out").read_text())
    assert {op for _m, _s, op, *_ in rows} == {"all_reduce", "all_to_all"}


def test_one_rank_under_torchrun_skips_collectives_as_one_device_does(tmp_path: Path) -> None:
    # The GPU run of `--nnodes 1` on one H100 (benchmarks/2026-12-07-h100-1gpu.md) had the
    # "needs at least 2 GPUs" row without torchrun and no row at all with it.
    args = ["-m", "rigbench", "bench", "--only", "collectives", "--json"]
    one_gpu = str(ROOT / "examples" / "simulated" / "h200-x1.toml")
    plain = subprocess.Popen(
        [sys.executable, *args, "--simulate", one_gpu, "--db", str(tmp_path / "a.db")],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=child_env(),
    )  # fmt: skip
    launched = subprocess.run(
        [*TORCHRUN, "--nnodes", "1", "--nproc-per-node", "1", "--rdzv-backend", "c10d",
         "--rdzv-endpoint", f"127.0.0.1:{free_port()}", *args, "--db", str(tmp_path / "b.db")],
        capture_output=True, text=True, env=child_env(), timeout=240, check=False,
    )  # fmt: skip
    _, plain_err = plain.communicate(timeout=240)
    said = "error: nothing was measured in run #1 (collectives: needs at least 2 GPUs (1 selected))"
    assert plain.returncode == 2 and plain_err.strip() == said
    assert launched.returncode != 0 and said in launched.stderr.splitlines(), launched.stderr
    assert re.findall(r"^\s*exitcode\s*:\s*(-?\d+)", launched.stderr, re.M) == ["2"]
    for db in ("a.db", "b.db"):
        status, rows = _rows(tmp_path / db)
        assert status == "failed"
        assert [(r["benchmark"], r["status"]) for r in rows] == [("collectives", "skipped")]


def test_sbatch_script_names_only_options_torchrun_has() -> None:
    text = SBATCH.read_text()
    joined = text.replace("\\\n", " ")
    line = next(ln for ln in joined.splitlines() if "torchrun" in ln and "srun" in ln)
    words = shlex.split(line)
    start = words.index("torchrun") + 1
    module = words.index("-m", start)
    options = [w.split("=")[0] for w in words[start:module] if w.startswith("--")]
    assert {"--nnodes", "--nproc-per-node", "--rdzv-backend", "--rdzv-endpoint"} <= set(options)
    from torch.distributed.run import get_args_parser  # torchrun's own parser

    known = {o for action in get_args_parser()._actions for o in action.option_strings}
    for opt in options:
        assert opt in known, f"torchrun has no option {opt}"
    assert words[module + 1 : module + 3] == ["rigbench", "bench"]
    assert "collectives,train" in words


def test_doctor_across_nodes_finds_a_version_mismatch_and_a_wrong_ifname(tmp_path: Path) -> None:
    other = tmp_path / "other-driver.toml"
    text = SIM.read_text()
    assert 'driver_version = "550.54.15"' in text
    other.write_text(text.replace('driver_version = "550.54.15"', 'driver_version = "535.104.05"'))
    doctor = ["-m", "rigbench", "doctor", "--only", "net", "--json", "--db-on-every-node"]
    node = [
        {"command": [*doctor, "--simulate", str(SIM)], "ranks": 1,
         "env": {"NCCL_SOCKET_IFNAME": "eno1"}},
        {"command": [*doctor, "--simulate", str(other)], "ranks": 1,
         "env": {"NCCL_SOCKET_IFNAME": "ens9f1"}},
    ]  # fmt: skip
    agents = _two_agents(tmp_path, per_node=node, zero=1)  # rank 0 off the store's host
    codes = _wait_all(agents, tmp_path, 120)
    logs = [(tmp_path / f"err{i}.txt").read_text() for i in range(2)]
    assert codes == [1, 1], logs  # errors: every rank exits 2, each torchrun 1
    assert all(re.search(r"exitcode\s*:\s*2 ", log) for log in logs), logs
    with sqlite3.connect(tmp_path / "db1.db") as con:
        rows = con.execute("SELECT finding, severity, title FROM findings").fetchall()
    with sqlite3.connect(tmp_path / "db0.db") as con:  # asked: node 1 keeps the run too
        assert con.execute("SELECT finding, severity, title FROM findings").fetchall() == rows
    by_id = {i: (sev, title) for i, sev, title in rows}
    assert by_id["cluster.versions.driver"][0] == "error"
    assert "node" in by_id["cluster.versions.driver"][1]
    sev, title = by_id["cluster.nccl_socket_ifname"]
    assert sev == "error" and "ens9f1" in title and "(node " in title
    assert [i for i in by_id if i == "cluster.nccl_socket_ifname"] == ["cluster.nccl_socket_ifname"]
    assert by_id["cluster.clock_skew"][0] == "info"


BURNIN = ["-m", "rigbench", "burnin", "--simulate", str(SIM)]


def test_burnin_on_two_nodes_writes_one_run_with_node_labels(tmp_path: Path) -> None:
    one = {"command": [*BURNIN, "--minutes", "0.02", "--json"], "ranks": 1}
    agents = _two_agents(tmp_path, per_node=[one, one], zero=1)
    codes = _wait_all(agents, tmp_path, 180)
    logs = [(tmp_path / f"err{i}.txt").read_text() for i in range(2)]
    assert codes == [0, 0], logs
    written = [db for db in (tmp_path / f"db{i}.db" for i in range(2)) if db.exists()]
    assert len(written) == 1, "rank 0 alone writes the run"
    with sqlite3.connect(written[0]) as con:
        (status,) = con.execute("SELECT status FROM runs").fetchone()
        rows = con.execute("SELECT metric, devices, params FROM results").fetchall()
        gpus = con.execute("SELECT DISTINCT gpu FROM telemetry_samples").fetchall()
    assert status == "complete"
    labels = sorted(json.loads(d)[0] for m, d, _ in rows if m == "verdict")
    host = socket.gethostname()
    assert labels == [f"{host}-node0:GPU0", f"{host}-node1:GPU0"]  # two "nodes" on one host
    (rig,) = [json.loads(p) for m, _d, p in rows if m == "rig_verdict"]
    assert rig["verdict"] == "pass" and len(rig["nodes"]) == 2
    # the all_reduce load ran over both nodes: each rank timed it
    ranks = rig["totals"]["ranks"]
    assert sorted(ranks) == ["0", "1"]
    assert all(r["allreduce_busbw_gbps_median"] for r in ranks.values()), ranks
    assert sorted(g for (g,) in gpus) == [0, 1]  # every rank's telemetry, one run


def test_burnin_a_killed_node_is_named_and_the_rest_is_kept(tmp_path: Path) -> None:
    one = {"command": [*BURNIN, "--minutes", "2"], "ranks": 1}
    agents = _two_agents(tmp_path, per_node=[one, one])
    # the banner, then a second for the loads to run
    zero, code, log = _kill_the_other_node(
        tmp_path, agents, "torchrun: burn-in", lambda log: True, 120, settle_s=1.0
    )
    assert code != 0 and re.search(r"exitcode\s*:\s*2 ", log), log[-3000:]  # rank 0's
    lost = [line for line in log.splitlines() if line.startswith("error: lost node")]
    assert len(lost) == 1, log[-3000:]
    assert f"(node {1 - zero}, ranks" in lost[0] and "rigbench/" not in log
    with sqlite3.connect(tmp_path / f"db{zero}.db") as con:
        (status,) = con.execute("SELECT status FROM runs").fetchone()
        rows = con.execute("SELECT metric, devices, params FROM results").fetchall()
    assert status == "incomplete"
    kept = [json.loads(d)[0] for m, d, _ in rows if m == "verdict"]
    assert kept == [f"{socket.gethostname()}-node{zero}:GPU0"]
    (rig,) = [json.loads(p) for m, _d, p in rows if m == "rig_verdict"]
    assert rig["verdict"] == "fail" and rig["lost_nodes"]


def test_bad_input_under_torchrun_is_one_line_and_exit_2_from_every_rank(tmp_path: Path) -> None:
    # a named error (one_line_errors), a usage error (click), and more ranks than the node
    # has GPUs (one simulated GPU, two ranks), all before the ranks join: they start with
    # the environment torchrun gives them (the agent itself, with the exit code it passes
    # on: tests/test_launch.py::test_the_ranks_code_is_the_exit_code)
    one_gpu = str(ROOT / "examples" / "simulated" / "h200-x1.toml")
    cases = [
        ["burnin", "--minutes", "0"],
        ["bench", "--bogus"],
        ["burnin", "--minutes", "0.1", "--simulate", one_gpu],
    ]
    expected = ["--minutes", "--bogus", "2 ranks on a node with 1 GPU"]

    def rank(args: list[str], local: int) -> subprocess.Popen[str]:
        env = {**child_env(), "RANK": str(local), "LOCAL_RANK": str(local), "WORLD_SIZE": "2",
               "LOCAL_WORLD_SIZE": "2", "GROUP_RANK": "0", "MASTER_ADDR": "127.0.0.1",
               "MASTER_PORT": str(free_port()), "TORCHELASTIC_RUN_ID": "bad-input",
               "TORCHELASTIC_USE_AGENT_STORE": "True"}  # fmt: skip
        return subprocess.Popen(
            [sys.executable, "-m", "rigbench", *args, "--db", str(tmp_path / "x.db")],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
        )  # fmt: skip

    jobs = [[rank(args, local) for local in (0, 1)] for args in cases]
    for ranks, words in zip(jobs, expected, strict=True):
        said = []
        for proc in ranks:
            _out, stderr = proc.communicate(timeout=120)
            assert proc.returncode == 2, stderr
            said.append(stderr.splitlines())
        # local rank 0 speaks for the node, once; the other says nothing more
        assert len(said[0]) == 1 and said[0][0].startswith("error:"), said
        assert words in said[0][0] and said[1] == [], said


def test_a_rendezvous_that_cannot_be_reached_is_one_line(tmp_path: Path) -> None:
    env = {**child_env(), "RANK": "1", "LOCAL_RANK": "0", "WORLD_SIZE": "2",
           "LOCAL_WORLD_SIZE": "1", "GROUP_RANK": "1", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(free_port())}  # fmt: skip
    res = subprocess.run(
        [sys.executable, "-m", "rigbench", "doctor", "--timeout", "1", "--db", str(tmp_path / "d")],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0, res.stderr
    assert "cannot join the job at 127.0.0.1:" in res.stderr


def test_a_burnin_rank_that_cannot_reach_the_store_says_so_within_its_timeout(
    tmp_path: Path,
) -> None:
    # the burn-in's group waits minutes (its ranks end their loads apart): reaching the
    # store has its own, short limit (--timeout), here a closed port of torchrun's agent
    env = {**child_env(), "RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "2",
           "LOCAL_WORLD_SIZE": "1", "GROUP_RANK": "0", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(free_port()),
           "TORCHELASTIC_USE_AGENT_STORE": "True"}  # fmt: skip
    t0 = time.monotonic()
    res = subprocess.run(
        [sys.executable, "-m", "rigbench", "burnin", "--timeout", "1", "--minutes", "0.1",
         "--db", str(tmp_path / "b.db")],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip().count("\n") == 0, res.stderr
    assert "rank 0 cannot reach the job's store at 127.0.0.1:" in res.stderr
    assert "within 1 s" in res.stderr
    assert time.monotonic() - t0 < 60  # not the group's 600 s
    res = subprocess.run(
        [sys.executable, "-m", "rigbench", "burnin", "--timeout", "5"],
        capture_output=True, text=True, env=child_env(), timeout=60, check=False,
    )  # fmt: skip
    assert res.returncode == 2 and "--timeout: only under torchrun" in res.stderr
