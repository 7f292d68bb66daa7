"""`rigbench cluster`: torchrun, started in this process, with its failures said in one line.

torchrun itself launches, rendezvous and all (torch.distributed.run's own argument parser
and `run`); what this adds is what the torchrun command line cannot give:

* the rendezvous host is resolved first, so a misspelt `--rdzv-endpoint` is one line at once
  instead of a minute of c10d retries and C++ frames (torchrun 2.13, measured: 2 min 18 s
  and 31 lines for an unresolvable name);
* a rendezvous that cannot be reached (RendezvousConnectionError) ends in one line naming
  the endpoint;
* nodes that do not all join within `--join-timeout` (RendezvousTimeoutError) end in one
  line naming the nodes that joined and, where `--hosts` lists the nodes, those that did
  not (rollcall.py);
* the exit code is the ranks' (every rank exits with rank 0's code), not torchrun's 1.

torch's C++ warnings (each c10d retry) are kept to errors with TORCH_CPP_LOG_LEVEL, which
must be set before torch loads: the CLI imports no torch before a command asks for it.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass

from rigbench.bench import rollcall
from rigbench.errors import BadInput, Interrupted, JoinError

DEFAULT_JOIN_TIMEOUT_S = 300.0  # torchrun's own default is 600 s
# Beyond --join-timeout, what a node may take to reach the rendezvous's store before it is
# judged not to be one (a node's own start-up, the client's connection retries)
STORE_GRACE_S = 5.0


@dataclass(frozen=True, slots=True)
class Launch:
    nnodes: str  # "2" or "1:4", as torchrun takes it
    nproc_per_node: int | None  # None: one a GPU, or one on a node without GPUs
    endpoint: str  # HOST:PORT
    rdzv_id: str
    join_timeout_s: float
    command: tuple[str, ...]  # the rigbench command every rank runs
    hosts: tuple[str, ...] = ()  # the nodes expected, to name those that never join

    def torchrun_args(self) -> list[str]:
        return [
            "--nnodes", self.nnodes,
            "--nproc-per-node", str(self.nproc_per_node or _gpus() or 1),
            "--rdzv-backend", rollcall.BACKEND,
            "--rdzv-endpoint", self.endpoint,
            "--rdzv-id", self.rdzv_id,
            "--rdzv-conf", f"join_timeout={self.join_timeout_s:g}",
            "-m", "rigbench", *self.command,
        ]  # fmt: skip


def _gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def node_range(nnodes: str) -> tuple[int, int]:
    """(MIN, MAX) of N or MIN:MAX, as torchrun takes it, with 0 < MIN <= MAX (torchrun
    asserts it)."""
    parts = nnodes.split(":")
    ok = len(parts) in (1, 2) and all(p.strip().isdigit() for p in parts)
    if not ok or not 0 < int(parts[0]) <= int(parts[-1]):
        raise BadInput(f"--nnodes must be N or MIN:MAX with 0 < MIN <= MAX (got {nnodes!r})")
    return int(parts[0]), int(parts[-1])


def split_endpoint(endpoint: str) -> tuple[str, int]:
    host, sep, port = endpoint.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise BadInput(f"--rdzv-endpoint must be HOST:PORT (got {endpoint!r})")
    return host.strip("[]"), int(port)


def check_hosts(hosts: tuple[str, ...], nnodes: str) -> None:
    _fewest, most = node_range(nnodes)
    if len(hosts) > most or any(not h.strip() for h in hosts):
        raise BadInput(
            f"--hosts must name up to {most} node(s) (--nnodes {nnodes}), comma-separated "
            f"(got {','.join(hosts)!r})"
        )


def not_joined(job: Launch, joined: list[rollcall.Node]) -> str:
    """The join timeout's line: the nodes that never joined where --hosts names them."""
    names = ", ".join(n.host for n in joined)
    where = f"at {job.endpoint} within {job.join_timeout_s:g} s"
    advice = (
        f"start `rigbench cluster` with --rdzv-id {job.rdzv_id} on every node, and check that "
        "each can reach the endpoint (README, Several machines)"
    )
    if not joined:  # the roll-call could not be read: the host node's store went first
        return f"not all of the {job.nnodes} node(s) joined {where}: {advice}"
    absent = rollcall.missing(list(job.hosts), joined)
    if job.hosts and absent:
        return f"{', '.join(absent)} did not join {where} (joined: {names}): {advice}"
    return (
        f"{len(joined)} of the {job.nnodes} node(s) joined {where} ({names}); name the nodes "
        f"with --hosts to see which did not: {advice}"
    )


def _short(job: Launch, joined: list[rollcall.Node]) -> bool:
    """The roll-call, where it was read, lacks a node the job needs."""
    fewest, _most = node_range(job.nnodes)
    return bool(joined) and (
        len(joined) < fewest or bool(rollcall.missing(list(job.hosts), joined))
    )


def closed(job: Launch, joined: list[rollcall.Node]) -> str:
    if _short(job, joined):
        return not_joined(job, joined)  # closed while nodes were still joining
    return (
        f"the rendezvous {job.rdzv_id} at {job.endpoint} was closed by another node: the job "
        "ended there (that node's output says why), or one with this --rdzv-id already ran; "
        "start every node again, with a new --rdzv-id"
    )


def _watch_store(
    seen: rollcall.RollCall, job: Launch, give_up: Callable[[JoinError], object]
) -> None:
    """Give up in one line where the rendezvous's store never answers: a port held by
    another program accepts torchrun's connection and says nothing, and torchrun's client
    then waits past every timeout it has (torch 2.13: over 140 s, measured). Nothing has
    started yet that ending the process here could leave behind: the store comes before any
    rank."""
    if seen.reached.wait(job.join_timeout_s + STORE_GRACE_S):
        return
    give_up(
        JoinError(
            f"the rendezvous at {job.endpoint} did not answer as torchrun's store within "
            f"{job.join_timeout_s + STORE_GRACE_S:g} s: check that its node started "
            "`rigbench cluster` and that no other program holds that port (README, Several "
            "machines)"
        )
    )


def resolve(host: str) -> None:
    """One line where the rendezvous host has no address (a typo, or DNS/hosts missing)."""
    try:
        socket.getaddrinfo(host, None)
    except OSError as exc:
        raise JoinError(
            f"the rendezvous host {host} does not resolve ({exc.strerror or exc}): check "
            "--rdzv-endpoint and the node's DNS or /etc/hosts"
        ) from None


def launch(job: Launch, give_up: Callable[[JoinError], object]) -> int:
    """Run torchrun for `job` in this process; the ranks' exit code (0 when all exit 0).
    `give_up` is called from another thread where the rendezvous's store never answers: it
    must end the process."""
    node_range(job.nnodes)
    host, port = split_endpoint(job.endpoint)
    check_hosts(job.hosts, job.nnodes)
    if not job.command:
        raise BadInput("rigbench cluster: name the command every rank runs after --")
    if job.nproc_per_node is not None and job.nproc_per_node < 1:
        raise BadInput(f"--nproc-per-node must be 1 or more (got {job.nproc_per_node})")
    if not job.join_timeout_s > 0:
        raise BadInput(f"--join-timeout must be above 0 s (got {job.join_timeout_s:g})")
    resolve(host)
    os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")
    # torchrun's warnings (the OMP_NUM_THREADS notice, each SIGTERM it sends) are noise
    # around rigbench's own lines; its errors (a rank that failed, and how) stay. Some of
    # its loggers take their level from LOGLEVEL when imported, the others from their
    # ancestor, which torch's import resets: set after the imports below.
    os.environ.setdefault("LOGLEVEL", "ERROR")
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.elastic.rendezvous.api import (
        RendezvousClosedError,
        RendezvousConnectionError,
        RendezvousTimeoutError,
    )
    from torch.distributed.run import get_args_parser, run

    logging.getLogger("torch.distributed").setLevel(os.environ["LOGLEVEL"])
    args = get_args_parser().parse_args(job.torchrun_args())
    seen = rollcall.RollCall(host, port, job.join_timeout_s)
    rollcall.register(seen)
    threading.Thread(
        target=_watch_store, args=(seen, job, give_up), name="rigbench-store-watch", daemon=True
    ).start()
    try:
        run(args)
    except RendezvousTimeoutError:
        raise JoinError(not_joined(job, seen.latest())) from None
    except RendezvousClosedError:  # another node gave up first and closed the rendezvous
        raise JoinError(closed(job, seen.joined())) from None
    except RendezvousConnectionError as exc:
        joined = seen.joined()
        if seen.reached.is_set() and _short(job, joined):
            # the host node gave up waiting first, and its store went with it
            raise JoinError(not_joined(job, joined)) from None
        cause = exc.__cause__ or exc.__context__ or exc
        first = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
        raise JoinError(
            f"cannot reach the rendezvous at {job.endpoint} ({first[:160]}): check the "
            "endpoint, that its node started, and the firewall (README, Several machines)"
        ) from None
    except SignalException as exc:  # Ctrl-C or a scheduler's SIGTERM: torchrun ended the ranks
        raise Interrupted(f"rigbench cluster: stopped by {exc.sigval.name}") from None
    except ChildFailedError as exc:
        codes = [f.exitcode for f in exc.failures.values() if f.exitcode is not None]
        return max((c for c in codes if c > 0), default=1)
    finally:
        seen.close()
    return 0


__all__ = ["DEFAULT_JOIN_TIMEOUT_S", "Launch", "launch"]
