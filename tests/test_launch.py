"""`rigbench cluster`: torchrun in one process, its failures in one line, the ranks' code."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

from typer.testing import CliRunner

from procs import child_env, free_port
from rigbench.cli import app

ROOT = Path(__file__).resolve().parents[1]


def _cluster(*args: str, timeout: float = 120) -> tuple[subprocess.CompletedProcess[str], float]:
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "rigbench", "cluster", *args],
        capture_output=True, text=True, env=child_env(), timeout=timeout, cwd=ROOT,
    )  # fmt: skip
    return proc, time.monotonic() - t0


def test_an_endpoint_that_does_not_resolve_or_is_malformed_is_one_line() -> None:
    # torchrun itself: 2 min 18 s of c10d retries, C++ frames and a traceback (torch 2.13)
    for endpoint, said in (
        ("nosuchhost.invalid:29400", "the rendezvous host nosuchhost.invalid does not resolve"),
        ("node-a", "--rdzv-endpoint must be HOST:PORT (got 'node-a')"),
    ):
        res = CliRunner().invoke(
            app, ["cluster", "--nnodes", "2", "--rdzv-endpoint", endpoint, "--", "doctor"]
        )
        assert res.exit_code == 2, res.output
        assert res.stderr.startswith(f"error: {said}") and len(res.stderr.splitlines()) == 1
    res = CliRunner().invoke(app, ["cluster", "--nnodes", "1", "--rdzv-endpoint", "x:1"])
    assert res.exit_code == 2 and "name the command every rank runs after --" in res.stderr
    for nnodes in ("abc", "0", "3:2", "1:2:3"):  # torchrun: a ValueError or AssertionError
        res = CliRunner().invoke(
            app, ["cluster", "--nnodes", nnodes, "--rdzv-endpoint", "x:1", "--", "info"]
        )
        assert res.exit_code == 2, res.output
        assert res.stderr == (
            f"error: --nnodes must be N or MIN:MAX with 0 < MIN <= MAX (got {nnodes!r})\n"
        )


def test_nodes_that_never_join_end_in_one_line_within_the_join_timeout() -> None:
    endpoint = f"127.0.0.1:{free_port()}"
    proc, took = _cluster(
        "--nnodes", "2", "--nproc-per-node", "1", "--rdzv-endpoint", endpoint,
        "--join-timeout", "2", "--", "info",
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert errors == [
        f"error: not all of the 2 node(s) joined at {endpoint} within 2 s: start "
        "`rigbench cluster` with the same --rdzv-id on every node, and check that each can "
        "reach the endpoint (README, Several machines)"
    ]
    assert "Traceback" not in proc.stderr and "frame #" not in proc.stderr
    assert took < 30


def test_the_ranks_code_is_the_exit_code() -> None:
    # both jobs at once: most of each is waiting on torchrun's agent
    def start(ranks: int, *command: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "rigbench", "cluster", "--nnodes", "1", "--nproc-per-node",
             str(ranks), "--rdzv-endpoint", f"127.0.0.1:{free_port()}", "--", *command],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env(), cwd=ROOT,
        )  # fmt: skip

    ok = start(1, "info", "--json")
    bad = start(2, "bench", "--bogus")  # bad input: 2 from every rank
    out, err = ok.communicate(timeout=120)
    assert ok.returncode == 0, err
    assert out.count('"source": "none"') == 1  # the rank ran the command
    _out, err = bad.communicate(timeout=120)
    assert bad.returncode == 2, err
    assert "ChildFailedError" not in err
    # local rank 0 speaks; torchrun's warnings are gone, its error lines ("E1207 ...") stay
    said = [ln for ln in err.splitlines() if not re.match(r"E\d{4} ", ln)]
    assert said == [
        "error: No such option: --bogus (Possible options: --gpus) (see python -m rigbench "
        "bench --help)"
    ], err
