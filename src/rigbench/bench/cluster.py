"""Benchmarks across several machines, launched by torchrun: one rank per GPU (a gloo rank
per CPU stand-in) on every node, the process group torchrun's rendezvous set up.

rigbench starts no process here and carries no data: torchrun (torch.distributed.elastic,
c10d rendezvous) starts the ranks, NCCL (gloo on the CPU) moves the bytes. Every rank runs
the same sequence (SPMD); a measurement runs on one *scope* of ranks (a process group):

* "cluster": every rank of every node;
* "node": the ranks of one node, each node in turn (a slow node shows as its own row);
* "inter-node": one rank a node (local rank 0): the figure the network alone gives.

Collectives use bench.collectives' rank handler and figures (nccl-tests busbw); training
runs bench.train's DDP rank on one device, on one node's devices, and on every device, so
its rows give the 1 node → N nodes scaling. Rank 0 collects every rank's replies over a
gloo group (`all_gather_object`) and alone turns them into Results; the other ranks
return none.

A node that dies: the process group's timeout (`timeout_s`) bounds how long a rank waits
in a collective; a heartbeat thread in every rank counts in the rendezvous store, and
rank 0, once a collective failed, names the nodes whose ranks stopped counting. Another
rank that sees the failure says so in the store (alive, not the cause) and exits at once:
its closed connections free a rank 0 blocked on it without waiting for the timeout.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from rigbench.bench.network import (
    NodeNet,
    expected_inter_node,
    port_facts,
    recorded_transport,
    slowest_port,
)
from rigbench.errors import JoinError, one_line
from rigbench.hw.health import NetPort
from rigbench.records import Result

# torchrun sets all of these in every worker (torch.distributed.elastic's agent).
TORCHRUN_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR")
CLUSTER_BENCHMARKS = ("collectives", "train")
# What picks the NIC between nodes (recorded for each node).
NET_ENV = ("NCCL_SOCKET_IFNAME", "GLOO_SOCKET_IFNAME", "NCCL_IB_DISABLE", "NCCL_IB_HCA")
DEFAULT_TIMEOUT_S = 60.0  # a collective that waits longer names the node it waits for
HEARTBEAT_S = 0.5
# A rank whose heartbeat did not move for this long is lost. Unknown (no published figure
# for such a watchdog): 5 missed beats, which covers a beat delayed by three TCP
# retransmissions at Linux's 200 ms minimum timeout (0.2 + 0.4 + 0.8 s); a dead node is
# usually seen at once, by its closed connections. In bench it is read only after a failure,
# to name the node; in burnin it stops the run.
LOST_AFTER_S = 2.5


@dataclass(frozen=True, slots=True)
class DistEnv:
    """What torchrun told this process: its place in the job."""

    rank: int
    local_rank: int
    world_size: int
    local_world_size: int
    node_rank: int
    master_addr: str
    master_port: int
    run_id: str
    restart: int


def torchrun_env(environ: Mapping[str, str] | None = None) -> DistEnv | None:
    """The torchrun environment of this process, or None when torchrun did not start it."""
    env = os.environ if environ is None else environ
    if not all(env.get(k) for k in TORCHRUN_VARS):
        return None
    try:
        rank, local = int(env["RANK"]), int(env["LOCAL_RANK"])
        world, local_world = int(env["WORLD_SIZE"]), int(env["LOCAL_WORLD_SIZE"])
        node = int(env.get("GROUP_RANK") or rank // max(1, local_world))
        port = int(env.get("MASTER_PORT") or 29500)
        restart = int(env.get("TORCHELASTIC_RESTART_COUNT") or 0)
    except ValueError:
        return None
    return DistEnv(
        rank=rank,
        local_rank=local,
        world_size=world,
        local_world_size=local_world,
        node_rank=node,
        master_addr=env["MASTER_ADDR"],
        master_port=port,
        run_id=env.get("TORCHELASTIC_RUN_ID") or "none",
        restart=restart,
    )


@dataclass(frozen=True, slots=True)
class Member:
    rank: int
    local_rank: int
    node_rank: int
    host: str
    device: str
    ports: tuple[NetPort, ...] | None = None  # this node's NICs (hw/), None: unknown
    net_env: tuple[tuple[str, str], ...] = ()  # NET_ENV variables that are set

    @property
    def label(self) -> str:
        dev = f"GPU{self.local_rank}" if self.device.startswith("cuda") else f"cpu{self.local_rank}"
        return f"node{self.node_rank}/{dev}"


@dataclass(slots=True)
class Node:
    node_rank: int
    host: str
    ranks: list[int] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.host} (node {self.node_rank}, ranks {_span(self.ranks)})"


def _span(ranks: list[int]) -> str:
    return f"{ranks[0]}-{ranks[-1]}" if len(ranks) > 1 else str(ranks[0])


@dataclass(slots=True)
class Scope:
    kind: str  # "cluster", "node", "inter-node", "device"
    ranks: list[int]
    group: Any
    node: Node | None = None
    transport: dict[str, Any] | None = None  # node -> what NCCL said it uses

    def label(self) -> str:
        if self.kind == "node" and self.node is not None:
            return f"node {self.node.node_rank} ({self.node.host})"
        return self.kind


class Cluster:
    """This rank's handle on the job: the process group, the nodes, the heartbeat."""

    def __init__(
        self,
        env: DistEnv,
        *,
        on_gpu: bool,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        ports: list[NetPort] | None = None,
        simulated: bool = False,
        reach_s: float | None = None,
    ):
        import torch
        import torch.distributed as dist

        self.env = env
        self.on_gpu = on_gpu
        self.nccl_log: str | None = None
        self.user_nccl_debug: str | None = None
        self.backend = "nccl" if on_gpu else "gloo"
        if on_gpu:
            self.device = f"cuda:{env.local_rank}"
            torch.cuda.set_device(self.device)
            os.environ.setdefault("NCCL_NVLS_ENABLE", "0")  # NVLink multicast stays off
            # A timed-out NCCL op aborts its communicator and raises (2, "clean up only"),
            # rather than the watchdog ending the process before rank 0 has written.
            os.environ.setdefault("TORCH_NCCL_ASYNC_ERROR_HANDLING", "2")
            self.user_nccl_debug = os.environ.get("NCCL_DEBUG")
            if self.user_nccl_debug is None:  # the transport NCCL picks, into a file we read
                self.nccl_log = os.path.join(
                    tempfile.mkdtemp(prefix="rigbench-nccl-"), f"rank{env.rank}.log"
                )
                os.environ.update(
                    NCCL_DEBUG="INFO", NCCL_DEBUG_SUBSYS="INIT,NET", NCCL_DEBUG_FILE=self.nccl_log
                )
        else:
            self.device = "cpu"
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(1, env.local_world_size)))
        self.timeout = timedelta(seconds=timeout_s)
        # Nodes on one host (tests, a rehearsal) talk over loopback: no NIC to expect, unless
        # the NICs are a simulated rig's (what the user asked to see).
        self.simulated = simulated
        join_process_group(env, self.backend, timeout_s, reach_s)
        # Replies travel over gloo whatever carries the data (objects, not GPU tensors).
        self.control = dist.new_group(backend="gloo", timeout=self.timeout) if on_gpu else None
        self.prefix = self._prefix = f"rigbench/{env.run_id}/{env.restart}"
        self._stop = threading.Event()
        # Two clients of the rendezvous store: the heartbeat thread's own, so that it never
        # waits behind this thread's reads (a client serves one call at a time).
        self.store: Any = dist.TCPStore(
            env.master_addr, env.master_port, is_master=False, timeout=timedelta(seconds=10)
        )
        self._beat_store: Any = dist.TCPStore(
            env.master_addr, env.master_port, is_master=False, timeout=timedelta(seconds=10)
        )
        self._thread = threading.Thread(target=self._beat, name="rigbench-heartbeat", daemon=True)
        self._thread.start()
        me = Member(
            env.rank,
            env.local_rank,
            env.node_rank,
            socket.gethostname(),
            self.device,
            tuple(ports) if ports is not None else None,
            tuple((k, os.environ[k]) for k in NET_ENV if os.environ.get(k)),
        )
        self.members: list[Member] = self.all_gather(me)
        nodes: dict[int, Node] = {}
        for m in self.members:
            nodes.setdefault(m.node_rank, Node(m.node_rank, m.host)).ranks.append(m.rank)
        self.nodes = [nodes[k] for k in sorted(nodes)]
        # Every rank creates every group, in the same order (torch.distributed's rule).
        self.scopes: dict[str, Scope] = {}
        world = list(range(env.world_size))
        self.scopes["cluster"] = Scope("cluster", world, None)
        self.scopes["device"] = Scope("device", [0], dist.new_group([0]))
        for node in self.nodes:
            grp = dist.new_group(node.ranks) if len(self.nodes) > 1 else None
            self.scopes[f"node{node.node_rank}"] = Scope("node", node.ranks, grp, node)
        heads = [node.ranks[0] for node in self.nodes]
        self.scopes["inter-node"] = Scope("inter-node", heads, dist.new_group(heads))

    @property
    def rank(self) -> int:
        return self.env.rank

    def transport(self) -> dict[str, object] | None:
        """What NCCL said it uses for the network (this rank's NCCL_DEBUG_FILE)."""
        return recorded_transport(self.nccl_log, self.user_nccl_debug)

    def _node_nets(self) -> list[NodeNet] | None:
        hosts = {n.host for n in self.nodes}
        if len(hosts) < len(self.nodes) and not self.simulated:
            return None  # two "nodes" on one host talk over loopback, not a NIC
        nets = []
        for node in self.nodes:
            head = self.members[node.ranks[0]]
            if head.ports is None:
                return None
            nets.append(NodeNet(node.name, head.ports, dict(head.net_env)))
        return nets

    def expected_inter_node(self) -> tuple[float, str] | None:
        nets = self._node_nets()
        return expected_inter_node(nets, self.backend) if nets is not None else None

    def inter_node_nic(self) -> dict[str, object] | None:
        """The slowest node's port that inter-node traffic takes (network.port_facts)."""
        nets = self._node_nets()
        slowest = slowest_port(nets, self.backend) if nets is not None else None
        return port_facts(*slowest) if slowest is not None else None

    def all_gather(self, obj: Any) -> list[Any]:
        import torch.distributed as dist

        out: list[Any] = [None] * self.env.world_size
        dist.all_gather_object(out, obj, group=self.control)
        return out

    def _key(self, what: str) -> str:
        return f"{self._prefix}/{what}"

    def _beat(self) -> None:
        key = self._key(f"beat/{self.rank}")
        while not self._stop.wait(HEARTBEAT_S):
            with contextlib.suppress(Exception):
                self._beat_store.add(key, 1)

    def lost_nodes(self) -> list[Node]:
        """The nodes some of whose ranks' heartbeats stopped (rank 0, after a failure)."""

        def counts() -> dict[int, int]:
            out = {}
            for r in range(self.env.world_size):
                try:
                    out[r] = int(self.store.add(self._key(f"beat/{r}"), 0))
                except Exception:
                    out[r] = -1
            return out

        before = counts()
        time.sleep(LOST_AFTER_S)
        after = counts()
        lost = {
            r
            for r in after
            if r != self.rank and (after[r] == before[r] or after[r] < 0) and not self._reported(r)
        }
        return [n for n in self.nodes if lost & set(n.ranks)]

    def beats(self, rank: int) -> int:
        """How many times `rank` has beaten (-1: the store cannot be read)."""
        try:
            return int(self.store.add(self._key(f"beat/{rank}"), 0))
        except Exception:
            return -1

    def arrive(self, what: str) -> int:
        """Count this rank in at `what` (a barrier kept in the store); how many are in."""
        return int(self.store.add(self._key(f"count/{what}"), 1))

    def arrived(self, what: str) -> int:
        try:
            return int(self.store.add(self._key(f"count/{what}"), 0))
        except Exception:
            return -1

    def say(self, what: str, value: str) -> None:
        """Rank 0's word to the other ranks (a decision they wait for), in the store."""
        with contextlib.suppress(Exception):
            self.store.set(self._key(f"say/{what}"), value)

    def heard(self, what: str) -> str | None:
        """What rank 0 said (`say`), or None when it has said nothing yet."""
        key = self._key(f"say/{what}")
        try:
            return bytes(self.store.get(key)).decode() if self.store.check([key]) else None
        except Exception:
            return None

    def share_exit_code(self, code: int | None) -> int | None:
        """Rank 0's exit code (`code` there; the others pass None) on every rank, or None
        where rank 0 cannot be heard. Every rank exits with it: torchrun's agent whose
        workers all exit 0 waits up to 300 s at an exit barrier for the agents whose
        workers failed, which never come to it (torch/distributed/elastic/agent/server/
        api.py, `_invoke_run` and `_exit_barrier`), so a rank 0 that alone exits non-zero
        holds every other node's torchrun for five minutes."""
        return self.share_end(code)[0]

    def share_end(self, code: int | None, copy: Any = None) -> tuple[int | None, Any]:
        """share_exit_code, with what rank 0 passes as `copy` (the stored run, for the
        nodes asked to keep it too: `--db-on-every-node`) on every rank."""
        import torch.distributed as dist

        box = [code, copy] if self.rank == 0 else [None, None]
        try:
            dist.broadcast_object_list(box, src=0, group=self.control)
        except Exception:
            return None, None
        return (box[0] if isinstance(box[0], int) else None), box[1]

    def report_failure(self) -> None:
        with contextlib.suppress(Exception):
            self.store.set(self._key(f"failed/{self.rank}"), "1")

    def _reported(self, rank: int) -> bool:
        try:
            return bool(self.store.check([self._key(f"failed/{rank}")]))
        except Exception:
            return False

    def shutdown(self) -> None:
        import torch.distributed as dist

        self._stop.set()
        self._thread.join(timeout=5 * HEARTBEAT_S)
        self.store = self._beat_store = None
        with contextlib.suppress(Exception):
            dist.destroy_process_group()
        if self.nccl_log:
            shutil.rmtree(os.path.dirname(self.nccl_log), ignore_errors=True)


class GroupPool:
    """A scope's ranks as bench.collectives drives them (`command`, `world`, `backend`):
    members run the command in their handler, every rank of the job gets every member's
    reply (so each takes the same next step), in the scope's rank order."""

    def __init__(self, cluster: Cluster, scope: Scope, handler: Any) -> None:
        self.cluster = cluster
        self.scope = scope
        self.world = len(scope.ranks)
        self.backend = cluster.backend
        self.handler = handler if cluster.rank in scope.ranks else None

    def command(self, *cmd: Any) -> list[tuple[Any, ...]]:
        from rigbench.bench.rankpool import _safe_handle

        mine = _safe_handle(self.handler, self.cluster.rank, cmd) if self.handler else None
        replies = self.cluster.all_gather(mine)
        return [replies[r] for r in self.scope.ranks]

    def close(self) -> None:
        if self.handler is not None:
            self.handler.close()


# ------------------------------------------------------------------------- measure


def _collectives(
    cluster: Cluster,
    scopes: list[Scope],
    ops: tuple[str, ...],
    sizes_of: Callable[[str, int], list[int]],
) -> Any:
    """Yield (scope, Measured) for every op, scope and size."""
    from rigbench.bench import collectives as col

    target = col.TARGET_S if cluster.on_gpu else col.TARGET_S_CPU
    for scope in scopes:
        if len(scope.ranks) < 2:
            continue
        me = scope.ranks.index(cluster.rank) if cluster.rank in scope.ranks else -1
        handler = col._Rank(me, len(scope.ranks), cluster.device, scope.group) if me >= 0 else None
        pool = GroupPool(cluster, scope, handler)
        try:
            scope.transport = _scope_transport(cluster, scope)
            for op in ops:
                for count in sizes_of(op, len(scope.ranks)):
                    try:
                        yield scope, col._measure(pool, op, count, target)
                    except col._Unsupported:
                        break
        finally:
            pool.close()


def _scope_transport(cluster: Cluster, scope: Scope) -> dict[str, Any] | None:
    """NCCL's network per node of the scope, read once its communicator is up (a one-element
    all_reduce sets it up); None on gloo or where NCCL_DEBUG was the user's."""
    if not cluster.on_gpu:
        return None
    import torch
    import torch.distributed as dist

    if cluster.rank in scope.ranks:
        t = torch.ones(1, device=cluster.device)
        dist.all_reduce(t, group=scope.group)
        torch.cuda.synchronize(cluster.device)
    seen = cluster.all_gather(cluster.transport() if cluster.rank in scope.ranks else None)
    out: dict[str, Any] = {}
    for r in scope.ranks:
        if seen[r] is not None:
            out.setdefault(f"node{cluster.members[r].node_rank}", seen[r])
    return out or None


def _scope_params(cluster: Cluster, scope: Scope) -> dict[str, Any]:
    nodes = sorted({cluster.members[r].node_rank for r in scope.ranks})
    params: dict[str, Any] = {"scope": scope.kind, "nodes": len(nodes)}
    if scope.node is not None:
        params["node"] = scope.node.node_rank
        params["host"] = scope.node.host
    if scope.transport:
        params["nccl_transport"] = scope.transport
    return params


def _collective_results(cluster: Cluster, scope: Scope, m: Any, smallest: bool) -> list[Result]:
    from rigbench.bench import collectives as col

    labels = [cluster.members[r].label for r in scope.ranks]
    expected = cluster.expected_inter_node() if scope.kind == "inter-node" else None
    out = col.results_for(m, labels, expected, latency=smallest)
    nic = cluster.inter_node_nic() if scope.kind == "inter-node" else None
    for r in out:
        r.params.update(_scope_params(cluster, scope))
        if nic is not None:
            r.params["nic"] = nic
    return out


def _train(cluster: Cluster, scope: Scope, spec: dict[str, Any]) -> list[dict[str, Any]] | None:
    from rigbench.bench.train import TrainRank

    me = scope.ranks.index(cluster.rank) if cluster.rank in scope.ranks else -1
    handler = TrainRank(me, len(scope.ranks), cluster.device, scope.group) if me >= 0 else None
    pool = GroupPool(cluster, scope, handler)
    try:
        replies = pool.command("train", spec)
    finally:
        pool.close()
    errors = [r[1] for r in replies if r[0] != "ok"]
    if errors:
        raise RuntimeError("; ".join(errors))
    return [r[1] for r in replies]


def node_scaling(tokens_per_s: float, nodes: int, one_node: float) -> float:
    """Percent of N times one node's tokens/s that N nodes give."""
    return 100.0 * tokens_per_s / (nodes * one_node)


def _train_results(cluster: Cluster, ctx: Any, on_result: Callable[[Result], None]) -> None:
    from rigbench.bench import train
    from rigbench.bench.context import BenchDevice, Step
    from rigbench.stats import summarize

    base = train.plan(ctx)[0]  # its model size and micro-batch; here DDP, eager
    # One device; each node alone (a slow node shows as its own row); every node.
    runs = [cluster.scopes["device"]]
    runs += [cluster.scopes[f"node{n.node_rank}"] for n in cluster.nodes]
    if len(cluster.nodes) > 1:
        runs.append(cluster.scopes["cluster"])
    one_node: float | None = None
    for scope in runs:
        w = len(scope.ranks)
        if scope.kind == "node" and w == 1:
            continue  # one device a node: the device run is the node's
        spec = {
            "size": base.params["size"],
            "parallel": "ddp",
            "compile": False,
            "micro_batch": base.params.get("micro_batch"),
            "seed": ctx.seed + 1234,
            "steps": train.GPU_STEPS if cluster.on_gpu else train.CPU_STEPS,
        }
        replies = _train(cluster, scope, spec)
        if cluster.rank != 0 or replies is None:
            continue
        devs = [
            BenchDevice(
                label=cluster.members[r].label,
                torch_device=cluster.members[r].device,
                name=ctx.devices[0].name,
                peak_tflops=ctx.devices[0].peak_tflops,
            )
            for r in scope.ranks
        ]
        step = Step(
            key=f"train:ddp:{w}:eager",
            label=f"train on {w} device(s)",
            metric="tokens_per_s",
            unit="tokens/s",
            devices=[d.label for d in devs],
            params={**base.params, "world_size": w},
        )
        results = train.results_for(step, devs, replies)
        for r in results:
            r.params.update(_scope_params(cluster, scope))
            on_result(r)
        tps = next((r for r in results if r.metric == "tokens_per_s" and r.status == "ok"), None)
        if tps is None or tps.value is None:
            continue
        first_node = cluster.nodes[0]
        if (scope.kind == "node" and scope.node is first_node) or (
            scope.kind == "device" and len(first_node.ranks) == 1
        ):
            one_node = tps.value  # node 0's rate (one device a node: the device run)
        if scope.kind == "cluster" and one_node:
            nodes = len(cluster.nodes)
            eff = node_scaling(tps.value, nodes, one_node)
            on_result(
                Result(
                    benchmark="train",
                    metric="node_scaling_efficiency",
                    value=eff,
                    unit="%",
                    params={**tps.params, "one_node_tokens_per_s": one_node},
                    devices=tps.devices,
                    spread=summarize([node_scaling(v, nodes, one_node) for v in _tps_samples(tps)]),
                    peak=100.0,
                    basis=(
                        f"tokens/s on {nodes} nodes / ({nodes} × {one_node:.4g} tokens/s on "
                        "node 0, same run)"
                    ),
                )
            )


def _tps_samples(r: Result) -> list[float]:
    s = r.spread
    return [v for v in (s.p10, s.p50, s.p90) if v is not None] if s else []


@dataclass(slots=True)
class ClusterOutcome:
    nodes: list[Node]
    lost: list[Node] = field(default_factory=list)
    error: str | None = None


def short_error(exc: BaseException) -> str:
    """The first sentence of a collective's error, without gloo's source location."""
    text = re.sub(r"^\[[^\]]*\.(?:cc|cpp|h|hpp):\d+\]\s*", "", str(exc).strip())
    text = re.split(r"(?<=[a-z0-9\]])\. ", text, maxsplit=1)[0]
    return f"{type(exc).__name__}: {text.splitlines()[0][:300]}" if text else one_line(exc)


def hold_signals() -> None:
    """Ignore SIGTERM and SIGINT from here on (this process is about to write and exit)."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)


def run_cluster(
    cluster: Cluster,
    ctx: Any,
    only: list[str],
    on_result: Callable[[Result], None],
) -> ClusterOutcome:
    """Run the named benchmarks ("collectives", "train") on every rank; `on_result` is
    called on rank 0 only. A failed collective ends the run with the lost nodes named."""
    from rigbench.bench import collectives as col

    outcome = ClusterOutcome(nodes=cluster.nodes)
    sizes = col.planned_sizes(ctx)

    def sizes_of(op: str, n: int) -> list[int]:
        return col.message_counts(op, sizes, ctx.size_scale, n)

    scopes = [cluster.scopes["cluster"]]
    if len(cluster.nodes) > 1:
        scopes += [cluster.scopes[f"node{n.node_rank}"] for n in cluster.nodes]
        scopes.append(cluster.scopes["inter-node"])
    try:
        world = len(cluster.scopes["cluster"].ranks)
        if "collectives" in only and world < 2:
            from rigbench.bench.suite import skipped, too_few_devices

            if cluster.rank == 0:  # the row a run without torchrun gives on one device
                on_result(skipped("collectives", too_few_devices(world)))
        elif "collectives" in only:
            seen: set[tuple[str, str]] = set()
            for scope, m in _collectives(cluster, scopes, col.ops_of(ctx), sizes_of):
                if cluster.rank != 0:
                    continue
                first = (scope.label(), m.op) not in seen  # sizes ascend: the latency row
                seen.add((scope.label(), m.op))
                for r in _collective_results(cluster, scope, m, first):
                    on_result(r)
        if "train" in only:
            _train_results(cluster, ctx, on_result)
    except (Exception, KeyboardInterrupt) as exc:
        if cluster.rank != 0:
            # Said before this rank exits (which frees a rank 0 blocked on it at once):
            # alive, and not what failed.
            cluster.report_failure()
            outcome.error = short_error(exc)
            return outcome
        # torchrun's agent ends rank 0 (SIGTERM, then SIGKILL 30 s later) once another
        # local rank has exited: rank 0 names the lost nodes and writes first.
        hold_signals()
        outcome.lost = cluster.lost_nodes()
        if isinstance(exc, KeyboardInterrupt) and not outcome.lost:
            raise  # an interrupt, no node lost
        outcome.error = "interrupted" if isinstance(exc, KeyboardInterrupt) else short_error(exc)
        return outcome
    return outcome


def cluster_context(
    rig: Any, env: DistEnv, *, on_gpu: bool, mode: Any, size_scale: float, options: Any = None
) -> Any:
    """This rank's BenchContext: its one device (GPU LOCAL_RANK, or the CPU stand-in)."""
    from rigbench.bench.context import BenchContext, BenchDevice
    from rigbench.bench.suite import _peaks

    gpu = rig.gpus[env.local_rank] if on_gpu and env.local_rank < len(rig.gpus) else None
    peaks = _peaks(gpu)[0] if gpu is not None else {}
    dev = BenchDevice(
        label=f"GPU{env.local_rank}" if on_gpu else f"cpu{env.local_rank}",
        torch_device=f"cuda:{env.local_rank}" if on_gpu else "cpu",
        name=gpu.name if gpu is not None else (rig.system.cpu_model or "CPU"),
        gpu_index=gpu.index if gpu is not None else None,
        peak_tflops=peaks,
    )
    return BenchContext(
        devices=[dev],
        mode=mode,
        on_gpu=on_gpu,
        size_scale=size_scale,
        extra={"options": options} if options is not None else {},
    )


def join_process_group(
    env: DistEnv, backend: str, timeout_s: float, reach_s: float | None = None
) -> None:
    """torch.distributed's default group from torchrun's environment; a rendezvous that
    cannot be reached, or ranks that never come, is one line (JoinError), not a traceback.
    `reach_s`: where the group's timeout is long (a burn-in's gathers wait for minutes),
    the store is first reached within this many seconds, so a rank that cannot reach it
    says so then rather than after `timeout_s`."""
    import torch.distributed as dist

    if reach_s is not None:
        _reach_store(env, reach_s)
    try:
        dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
    except (RuntimeError, ValueError, OSError) as exc:  # DistStoreError, DistNetworkError
        raise _cannot(env, "join the job", timeout_s, exc) from None


def _cannot(env: DistEnv, what: str, seconds: float, exc: BaseException) -> JoinError:
    return JoinError(
        f"rank {env.rank} cannot {what} at {env.master_addr}:{env.master_port} within "
        f"{seconds:g} s ({short_error(exc).rstrip('.')}): check the rendezvous endpoint, that "
        "every node started, and the firewall (README, Several machines)"
    )


def _reach_store(env: DistEnv, reach_s: float) -> None:
    """Connect to the job's store as a client within `reach_s`. Only where the store is
    already up before any rank starts (torchrun's agent holds it), or from a rank other than
    0 (rank 0 may be the one about to create it)."""
    import torch.distributed as dist

    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True" and env.rank == 0:
        return
    try:
        dist.TCPStore(
            env.master_addr,
            env.master_port,
            is_master=False,
            timeout=timedelta(seconds=reach_s),
            wait_for_workers=False,
        )
    except (RuntimeError, ValueError, OSError) as exc:  # DistStoreError, DistNetworkError
        raise _cannot(env, "reach the job's store", reach_s, exc) from None


def gather_facts(
    env: DistEnv, facts: Any, timeout_s: float = DEFAULT_TIMEOUT_S
) -> tuple[list[Any], float | None]:
    """Every node's `facts` (from its local rank 0) on every rank, in node order, with
    `time.time()` read on each right after a barrier (set as `facts.clock_s`); also the
    longest barrier any rank saw, which bounds how far apart those reads are. Gloo only:
    no GPU is touched. Every rank gets the same, so each judges alike and exits with the
    same code (see Cluster.share_exit_code for why that matters under torchrun)."""
    import torch.distributed as dist

    join_process_group(env, "gloo", timeout_s)
    try:
        dist.barrier()
        now = time.time()
        t0 = time.perf_counter()
        dist.barrier()
        took = time.perf_counter() - t0
        if facts is not None and env.local_rank == 0:
            facts.clock_s = now
        mine = (env.node_rank, facts if env.local_rank == 0 else None, took)
        out: list[Any] = [None] * env.world_size
        dist.all_gather_object(out, mine)
    finally:
        dist.destroy_process_group()
    heads = sorted((n, f) for n, f, _ in out if f is not None)
    return [f for _n, f in heads], max(t for _n, _f, t in out)
