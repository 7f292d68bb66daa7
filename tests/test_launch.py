"""`rigbench cluster`: torchrun in one process, its failures in one line, the ranks' code."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from pathlib import Path

from typer.testing import CliRunner

from procs import child_env, free_port
from rigbench.bench import rollcall
from rigbench.bench.launch import Launch, closed, not_joined
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


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "rigbench", "cluster", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env(), cwd=ROOT,
    )  # fmt: skip


def _errors(proc: subprocess.Popen[str]) -> tuple[int, list[str], str]:
    _out, err = proc.communicate(timeout=60)
    assert "Traceback" not in err and "frame #" not in err, err
    return proc.returncode, [ln for ln in err.splitlines() if ln.startswith("error:")], err


ADVICE = (
    "start `rigbench cluster` with --rdzv-id rigbench on every node, and check that each can "
    "reach the endpoint (README, Several machines)"
)


def test_a_node_that_never_joins_is_named_by_every_node_that_did() -> None:
    # a 3-node job: the endpoint's host and a second node start, the third never does. The
    # host gives up first: it closes the rendezvous and its store ends with it, under the
    # second node (torchrun's RendezvousClosedError or, once the store is gone, its
    # RendezvousConnectionError, whichever the second node meets first). Both name the
    # missing node from the roll-call. The host waits 12 s: the second node starts once the
    # host listens, and on a loaded 2-core machine (CI) its start-up took over 4 s; a node
    # that comes after the host gave up is, rightly, named as not joined.
    here = socket.gethostname()
    port = free_port()
    endpoint = f"127.0.0.1:{port}"

    def node(join_timeout: int) -> subprocess.Popen[str]:
        return _start("--nnodes", "3", "--rdzv-endpoint", endpoint, "--nproc-per-node", "1",
                      "--join-timeout", str(join_timeout), "--hosts",
                      "localhost,127.0.0.1,node-c.invalid", "--", "info")  # fmt: skip

    nodes = [(node(12), 12)]
    try:
        deadline = time.monotonic() + 60
        while True:  # the first node to listen on the endpoint hosts the store
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert nodes[0][0].poll() is None and time.monotonic() < deadline
                time.sleep(0.1)
        nodes.append((node(20), 20))
        for proc, waited in nodes:
            code, errors, err = _errors(proc)
            assert code == 2, err
            assert errors == [
                f"error: node-c.invalid did not join at {endpoint} within {waited} s (joined: "
                f"{here}, {here}): {ADVICE}"
            ], err
    finally:
        for proc, _ in nodes:  # a failed assertion leaves none running
            if proc.poll() is None:
                proc.kill()
            proc.communicate()


def test_without_hosts_the_nodes_that_joined_are_named() -> None:
    job = Launch("2", 1, "gpu-a:29400", "rigbench", 300, ("info",))
    joined = [rollcall.Node("gpu-a", "10.0.0.5")]
    assert not_joined(job, joined) == (
        "1 of the 2 node(s) joined at gpu-a:29400 within 300 s (gpu-a); name the nodes with "
        f"--hosts to see which did not: {ADVICE}"
    )
    # the roll-call unread (the host node's store went first): the count alone
    assert not_joined(job, []).startswith("not all of the 2 node(s) joined at gpu-a:29400")
    # a rendezvous closed under a node that had every node it needed: the job ended there
    assert closed(job, joined * 2).startswith(
        "the rendezvous rigbench at gpu-a:29400 was closed by another node"
    )


def test_hosts_are_matched_by_name_or_address_and_counted_against_nnodes() -> None:
    me = rollcall.Node("gpu-a", "10.0.0.5")
    assert rollcall.matches("gpu-a.cluster.local", me) and rollcall.matches("GPU-A", me)
    assert rollcall.matches("10.0.0.5", me) and not rollcall.matches("10.0.0.6", me)
    assert rollcall.matches("localhost", rollcall.Node("vm", "127.0.0.1"))
    assert rollcall.missing(["gpu-a", "gpu-b"], [me]) == ["gpu-b"]
    assert rollcall.missing(["gpu-a", "gpu-a"], [me]) == ["gpu-a"]  # one node, one host
    res = CliRunner().invoke(
        app, ["cluster", "--nnodes", "2", "--rdzv-endpoint", "x:1", "--hosts", "a,b,c", "--",
              "info"],
    )  # fmt: skip
    assert res.exit_code == 2
    assert res.stderr == (
        "error: --hosts must name up to 2 node(s) (--nnodes 2), comma-separated (got 'a,b,c')\n"
    )


class _Store:
    """The calls the roll-call makes on torchrun's TCPStore."""

    def __init__(self) -> None:
        self.lines = "gpu-a 10.0.0.5\n"
        self.reads = 0

    def check(self, keys: list[str]) -> bool:
        self.reads += 1
        return True

    def get(self, key: str) -> bytes:
        return self.lines.encode()


def test_the_roll_call_watcher_ends_with_the_launch() -> None:
    # a watcher still inside a store call when the agent exits aborted the agent
    # ("terminate called without an active exception", exit -6, under load)
    call = rollcall.RollCall("gpu-a", 29400, join_timeout_s=300)
    store = _Store()
    call.watch(store, "job")
    deadline = time.monotonic() + 10
    while not call.joined() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert call.joined() == [rollcall.Node("gpu-a", "10.0.0.5")]
    # a node that answers between two polls is in the roll-call read at the join timeout
    store.lines += "gpu-b 10.0.0.6\n"
    assert call.latest() == [rollcall.Node("gpu-a", "10.0.0.5"), rollcall.Node("gpu-b", "10.0.0.6")]
    t0 = time.monotonic()
    call.close()
    assert call.poller is not None and not call.poller.is_alive()
    assert time.monotonic() - t0 < 2  # not the join timeout
    reads = store.reads
    time.sleep(1.2)  # one poll period and more: no read after close
    assert store.reads == reads


def test_an_endpoint_held_by_another_program_is_one_line_within_the_join_timeout() -> None:
    # a listener that accepts and never answers (the port of another service): torchrun's
    # store client waited there for over 140 s, saying nothing
    with socket.create_server(("127.0.0.1", 0)) as silent:
        endpoint = f"127.0.0.1:{silent.getsockname()[1]}"
        t0 = time.monotonic()
        proc = _start("--nnodes", "2", "--rdzv-endpoint", endpoint, "--join-timeout", "1",
                      "--", "info")  # fmt: skip
        code, errors, err = _errors(proc)
    assert code == 2, err
    assert errors == [
        f"error: the rendezvous at {endpoint} did not answer as torchrun's store within 6 s: "
        "check that its node started `rigbench cluster` and that no other program holds that "
        "port (README, Several machines)"
    ], err
    assert time.monotonic() - t0 < 30


def test_the_ranks_code_is_the_exit_code() -> None:
    # both jobs at once: most of each is waiting on torchrun's agent
    def start(ranks: int, *command: str) -> subprocess.Popen[str]:
        return _start("--nnodes", "1", "--nproc-per-node", str(ranks),
                      "--rdzv-endpoint", f"127.0.0.1:{free_port()}", "--", *command)  # fmt: skip

    ok = start(1, "info", "--json")
    bad = start(2, "bench", "--bogus")  # bad input: 2 from every rank
    try:
        out, err = ok.communicate(timeout=120)
        assert ok.returncode == 0, err
        assert out.count('"source": "none"') == 1  # the rank ran the command
        _out, err = bad.communicate(timeout=120)
        assert bad.returncode == 2, err
        assert "ChildFailedError" not in err
        # local rank 0 speaks; torchrun's warnings are gone, its error lines ("E1207 ...")
        # stay
        said = [ln for ln in err.splitlines() if not re.match(r"E\d{4} ", ln)]
        assert said == [
            "error: No such option: --bogus (Possible options: --gpus) (see python -m "
            "rigbench bench --help)"
        ], err
    finally:
        for proc in (ok, bad):  # a failed assertion leaves neither job running
            if proc.poll() is None:
                proc.kill()
            proc.communicate()
