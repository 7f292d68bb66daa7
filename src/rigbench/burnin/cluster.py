"""The burn-in across the nodes of a torchrun job: every rank burns in its one device (GPU
LOCAL_RANK, or a CPU stand-in) with the one-machine burn-in (burnin.run) into a database
of its own in memory, then rank 0 gathers every rank's verdict, results and telemetry
(bench.cluster's Cluster: `all_gather_object` over gloo) and writes one run, each device
labelled with its node ("gpu-b:GPU3").

A node lost mid-run: every rank beats in the rendezvous store (Cluster's heartbeat); rank
0 watches the others' beats while its own load runs and, once a rank's stopped for
LOST_AFTER_S, stops its load (what ran is judged), tells the other ranks to stop, gathers
from the ranks still alive only (a gloo group of those ranks) and writes the run with a
reason naming the lost node. A rank that loses rank 0 stops: nothing can write the run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

from rigbench.bench.cluster import LOST_AFTER_S, Cluster, Node, short_error
from rigbench.burnin.load import JobCrew
from rigbench.burnin.run import BurninOutcome, StopRun, results_of, run_burnin
from rigbench.burnin.verdict import DeviceVerdict, RigVerdict, Verdict, finding
from rigbench.errors import BadInput
from rigbench.hw.backend import Backend
from rigbench.hw.model import Rig
from rigbench.records import Finding, Result, Run
from rigbench.store import Store

TELEMETRY_TABLES = ("telemetry_gpus", "telemetry_samples", "telemetry_events")
WATCH_S = 0.5  # how often a rank reads the others' heartbeats while its load runs
# Samples a rank sends rank 0 at most: 30 min at 100 Hz; a longer run's are thinned
MAX_GATHERED_SAMPLES = 180_000


@dataclass(kw_only=True)
class RankReport:
    """What one rank measured, as rank 0 gathers it."""

    rank: int
    node_rank: int
    host: str
    verdict: RigVerdict
    results: list[Result]
    telemetry: dict[str, tuple[list[str], list[tuple[Any, ...]]]]  # table -> (columns, rows)
    notes: list[str] = field(default_factory=list)
    interrupted: bool = False


@dataclass(kw_only=True)
class ClusterBurnin:
    """Rank 0's outcome: the one run written, its merged verdict, the nodes lost."""

    outcome: BurninOutcome
    lost: list[Node] = field(default_factory=list)
    ranks: int = 0


def rank_devices(rig: Rig, local_rank: int, local_world: int) -> list[int]:
    """The GPU (NVML index) a rank burns in: the LOCAL_RANK-th; none on a machine
    without GPUs (a CPU stand-in). More ranks than GPUs on the node is bad input, said by
    every rank alike (so that local rank 0, the one that speaks, says it)."""
    if not rig.gpus:
        return []
    gpus = sorted(rig.gpus, key=lambda g: g.index)
    if local_world > len(gpus):
        raise BadInput(
            f"{local_world} ranks on a node with {len(gpus)} GPU(s): start torchrun with "
            f"--nproc-per-node {len(gpus)} or fewer (one rank a GPU)"
        )
    return [gpus[local_rank].index]


class _Watch:
    """The on_live hook of a rank's burn-in: reads heartbeats every WATCH_S and stops the
    load (StopRun) when a rank is lost (rank 0) or rank 0 says stop or is lost (others)."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.lost: set[int] = set()
        self.reason: str | None = None
        self._next = 0.0
        self._seen: dict[int, tuple[int, float]] = {}

    def _silent(self, ranks: list[int]) -> set[int]:
        now = time.monotonic()
        out = set()
        for r in ranks:
            count = self.cluster.beats(r)
            last = self._seen.get(r)
            if last is None or count != last[0]:
                self._seen[r] = (count, now)
            elif now - last[1] >= LOST_AFTER_S:
                out.add(r)
        return out

    def __call__(self, _state: object) -> None:
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + WATCH_S
        c = self.cluster
        if c.rank == 0:
            others = [r for r in range(c.env.world_size) if r != 0]
            silent = self._silent(others)
            if silent:
                self.lost = silent
                nodes = [n.name for n in c.nodes if silent & set(n.ranks)]
                self.reason = f"lost node {'; '.join(nodes)}"
                c.say("stop", ",".join(str(r) for r in sorted(silent)))
                raise StopRun(f"{self.reason}: the load stopped")
            return
        said = c.heard("stop")
        if said is not None:
            self.reason = "rank 0 stopped the run (a node was lost)"
            raise StopRun(self.reason)
        if self._silent([0]):
            self.reason = "lost rank 0's node: nothing can write the run"
            raise StopRun(self.reason)


def telemetry_rows(
    store: Store, run_id: int, notes: list[str]
) -> dict[str, tuple[list[str], list[tuple[Any, ...]]]]:
    """A rank's recorded telemetry, to send to rank 0; samples beyond MAX_GATHERED_SAMPLES
    (a long run) are thinned to every k-th, said in `notes` (this rank's verdict was drawn
    from all of them)."""
    out = {}
    for table in TELEMETRY_TABLES:
        cur = store.db.execute(f"SELECT * FROM {table} WHERE run_id = ?", (run_id,))  # noqa: S608
        rows = cur.fetchall()
        if table == "telemetry_samples" and len(rows) > MAX_GATHERED_SAMPLES:
            k = -(-len(rows) // MAX_GATHERED_SAMPLES)
            rows = rows[::k]
            notes.append(
                f"telemetry kept in the run: one sample in {k} of each rank (the verdicts "
                "were drawn from all)"
            )
        out[table] = ([d[0] for d in cur.description], rows)
    return out


def run_rank(
    cluster: Cluster,
    backend: Backend,
    rig: Rig,
    *,
    minutes: float,
    rate_hz: float,
    run: Run,
) -> tuple[RankReport, _Watch]:
    """This rank's burn-in of its device into an in-memory database, as a RankReport."""
    env = cluster.env
    selected = rank_devices(rig, env.local_rank, env.local_world_size)
    store = Store.open(":memory:")
    local = Run(command="burnin", argv=run.argv, backend=run.backend)
    store.start_run(local)
    assert local.id is not None
    watch = _Watch(cluster)
    job = JobCrew(
        rank=env.rank,
        world=env.world_size,
        host=env.master_addr,
        port=env.master_port,
        prefix=f"{cluster.prefix}/crew/",
    )

    def line_up() -> None:
        """Every rank's load is up: start the schedules together (the allreduce phases
        must meet), watching for a lost rank meanwhile."""
        cluster.arrive("ready")
        while cluster.arrived("ready") < env.world_size:
            watch(None)
            time.sleep(0.05)

    outcome = run_burnin(
        backend,
        rig,
        selected,
        store,
        local,
        minutes=minutes,
        rate_hz=rate_hz,
        on_live=watch,
        stand_ins=1,
        job=job if env.world_size > 1 else None,
        on_ready=line_up,
    )
    report = RankReport(
        rank=env.rank,
        node_rank=env.node_rank,
        host=cluster.members[env.rank].host,
        verdict=outcome.verdict,
        results=results_of(outcome),
        telemetry=telemetry_rows(store, local.id, outcome.notes),
        notes=outcome.notes,
        interrupted=outcome.interrupted,
    )
    store.close()
    return report, watch


def gather(
    cluster: Cluster, mine: RankReport, watch: _Watch
) -> tuple[list[RankReport], list[Node], str | None]:
    """Rank 0: every reachable rank's report, the nodes lost, and the error that ended the
    run (None when every rank answered). Other ranks return ([], [], None) once sent, or
    an error where a node was lost (the run then ends in error on every rank)."""
    import torch.distributed as dist

    c = cluster
    if c.rank == 0:
        # whom to gather: every rank, or those still alive after a loss
        lost = watch.lost | watch._silent([r for r in range(1, c.env.world_size)])
        c.say("gather", ",".join(str(r) for r in sorted(lost)) or "-")
    else:
        # rank 0 may still be loading its device: wait for its word while it beats
        said = None
        if not (watch.reason or "").startswith("lost rank 0"):
            while True:
                said = c.heard("gather")
                if said is not None or watch._silent([0]):
                    break
                time.sleep(WATCH_S)
        if said is None:
            return [], [], "lost rank 0's node: nothing can write the run"
        lost = {int(r) for r in said.split(",")} if said != "-" else set()
    alive = [r for r in range(c.env.world_size) if r not in lost]
    lost_nodes = [n for n in c.nodes if lost & set(n.ranks)]
    try:
        if lost:
            group = dist.new_group(alive, backend="gloo", use_local_synchronization=True)
            out: list[Any] = [None] * len(alive)
            dist.all_gather_object(out, mine, group=group)
        else:
            out = c.all_gather(mine)
    except Exception as exc:  # a node lost while gathering
        if c.rank != 0:
            return [], [], short_error(exc)
        lost_nodes = c.lost_nodes()
        return [mine], lost_nodes, short_error(exc)
    if c.rank != 0:
        return [], [], (f"{len(lost_nodes)} node(s) lost" if lost_nodes else None)
    return [r for r in out if r is not None], lost_nodes, (watch.reason if lost_nodes else None)


def device_label(report: RankReport, label: str, shared_host: bool) -> str:
    """ "host:GPU3"; where two nodes run on one host (a rehearsal), "host-node1:GPU3"."""
    host = f"{report.host}-node{report.node_rank}" if shared_host else report.host
    if label.startswith("cpu"):
        label = f"cpu{report.rank}"
    return f"{host}:{label}"


def merge(
    store: Store,
    run: Run,
    nodes: list[Node],
    reports: list[RankReport],
    lost: list[Node],
    error: str | None,
) -> ClusterBurnin:
    """Write the one run on rank 0: every rank's results and telemetry under node labels,
    and the cluster's verdict (fail when a rank failed or a node was lost)."""
    assert run.id is not None
    hosts = [n.host for n in nodes]
    devices: list[DeviceVerdict] = []
    reasons: list[Finding] = []
    notes: list[str] = []
    totals: dict[str, Any] = {"ranks": {}}
    for rep in sorted(reports, key=lambda r: r.rank):
        shared = hosts.count(rep.host) > 1
        names: dict[str, str] = {}
        for d in rep.verdict.devices:
            names[d.label] = device_label(rep, d.label, shared)
            d.label = names[d.label]
            d.gpu = rep.rank  # one GPU a rank: its telemetry is stored under the rank
            devices.append(d)
        where = f"{rep.host} (node {rep.node_rank}, rank {rep.rank})"
        for reason in rep.verdict.reasons:
            reasons.append(replace(reason, title=f"{where}: {reason.title}"))
        for n in rep.notes:
            if n not in notes:
                notes.append(n)
        totals["ranks"][str(rep.rank)] = {"node": rep.node_rank, "host": rep.host,
                                          **rep.verdict.totals}  # fmt: skip
        for r in rep.results:
            if r.metric == "rig_verdict":
                continue
            r.devices = [names.get(x, x) for x in r.devices]
            store.add_result(run.id, r)
        _copy_telemetry(store, run.id, rep)
    for node in lost:
        reasons.append(finding(code="lost", severity="fail",
                              message=f"lost node {node.name} mid-run"
                              + (f": {error}" if error else "")))  # fmt: skip
    if error and not lost:
        reasons.append(finding(code="cluster", severity="fail", message=error))
    verdicts = [d.verdict for d in devices]
    verdict: Verdict
    if lost or error or "fail" in verdicts or any(x.severity == "error" for x in reasons):
        verdict = "fail"
    elif verdicts and all(v == "void" for v in verdicts):
        verdict = "void"
    else:
        verdict = "pass"
    rig = RigVerdict(verdict=verdict, reasons=reasons, devices=devices, totals=totals)
    interrupted = any(r.interrupted for r in reports) and not lost
    outcome = BurninOutcome(run=run, verdict=rig, plot=None, interrupted=interrupted, notes=notes)
    merged = [r for r in results_of(outcome) if r.metric == "rig_verdict"]
    for r in merged:
        r.params["nodes"] = sorted({(rep.node_rank, rep.host) for rep in reports})
        r.params["lost_nodes"] = [n.name for n in lost]
        store.add_result(run.id, r)
    return ClusterBurnin(outcome=outcome, lost=lost, ranks=len(reports))


def _copy_telemetry(store: Store, run_id: int, rep: RankReport) -> None:
    with store.db:
        for table, (cols, rows) in rep.telemetry.items():
            if not rows:
                continue
            ri, gi = cols.index("run_id"), cols.index("gpu")
            fixed = []
            for row in rows:
                values = list(row)
                values[ri], values[gi] = run_id, rep.rank
                fixed.append(tuple(values))
            marks = ", ".join("?" for _ in cols)
            store.db.executemany(
                f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({marks})",  # noqa: S608
                fixed,
            )
