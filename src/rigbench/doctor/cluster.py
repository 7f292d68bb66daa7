"""Checks across the nodes of a torchrun job: what must be equal or present on every node
for a multi-node run to start and to use the network it should.

Each node's local rank 0 reads its facts (`NodeFacts`, through hw/ and machine.py); rank 0
gathers them (bench.cluster.gather_facts) and judges them here:

* versions: driver, CUDA, torch, NCCL, rigbench, Python equal on every node. A mismatch
  is an error: ranks of different NCCL versions failed to connect in NVIDIA/nccl#1267 (fixed
  by one version on every node), and NCCL's maintainer reads such errors as "a version or
  configuration mismatch between two ranks" (NVIDIA/nccl#1328).
* NCCL_SOCKET_IFNAME / GLOO_SOCKET_IFNAME name an interface that exists and is up on each
  node, NCCL_IB_HCA an HCA port that is active: a name that matches nothing, or ports that
  are down, make NCCL fail at set-up ("no socket interface found") or fall back to sockets.
* RDMA on each node: active InfiniBand/RoCE ports with a limited memlock (RDMA registers
  pinned memory under it), or with NCCL_IB_DISABLE=1 (NCCL then crosses nodes over
  sockets), are warnings naming the node.
* InfiniBand/RoCE present on a node but no port active there while other nodes have one
  (NCCL then crosses to it over sockets): a warning naming the node and its ports' states.
* the port each node's inter-node traffic takes (bench.network.node_port, as bench expects
  it): one trained below what it and its link partner can do is a warning naming the node
  and both rates (a 100 GbE NIC at 25); different rates between nodes are reported, the
  slowest sets the job's inter-node rate.
* clock skew between nodes, measured after a barrier: reported (info) with its bound; no
  threshold is known to matter for NCCL or torch, so none is invented.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rigbench.bench.network import NodeNet, matches_ifname, node_port
from rigbench.hw.health import NetPort
from rigbench.records import Finding

VERSION_KEYS = ("driver", "cuda_driver", "torch", "torch_cuda", "nccl", "rigbench", "python")
NCCL_ENV_SOURCE = "NCCL documentation, Environment Variables (NCCL_SOCKET_IFNAME, NCCL_IB_HCA)"
VERSION_SOURCE = (
    "github.com/NVIDIA/nccl/issues/1267 (nodes on different NCCL versions could not "
    "connect); github.com/NVIDIA/nccl/issues/1328 (version mismatch between ranks)"
)


@dataclass(kw_only=True, slots=True)
class NodeFacts:
    node: str  # "gpu-b (node 1)"
    versions: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    ports: list[NetPort] | None = None
    clock_s: float | None = None  # time.time() right after a barrier
    memlock_bytes: int | None = None  # soft RLIMIT_MEMLOCK; -1 unlimited
    backend: str = "nccl"  # what carries the node's data: nccl (GPUs) or gloo (CPU only)


def check_versions_equal(facts: list[NodeFacts]) -> list[Finding]:
    differ = {}
    for key in VERSION_KEYS:
        values = {f.node: f.versions.get(key) for f in facts}
        if len({v for v in values.values() if v is not None}) > 1:
            differ[key] = values
    if not differ:
        return [
            Finding(
                id="cluster.versions.ok",
                severity="ok",
                title=f"versions equal on all {len(facts)} nodes",
                evidence={k: facts[0].versions.get(k) for k in VERSION_KEYS},
                source=VERSION_SOURCE,
                origin="reading",
            )
        ]
    out = []
    for key, values in differ.items():
        counts: dict[Any, int] = {}
        for v in values.values():
            counts[v] = counts.get(v, 0) + 1
        common = max(counts, key=lambda v: counts[v])
        odd = [n for n, v in values.items() if v != common]
        out.append(
            Finding(
                id=f"cluster.versions.{key}",
                severity="error",
                title=f"{key} differs between nodes: {', '.join(odd)} not {common}",
                evidence={f"{key} on {n}": v for n, v in values.items()},
                why="ranks built against different versions can fail to connect, hang in a "
                "collective or compute differently",
                fix=f"install the same {key} on every node (one container image or one "
                "environment for the job)",
                source=VERSION_SOURCE,
                origin="reading",
            )
        )
    return out


def check_interfaces(facts: list[NodeFacts]) -> list[Finding]:
    out = []
    for f in facts:
        if f.ports is None:
            continue
        sockets = [p for p in f.ports if "/" not in p.name]
        for var in ("NCCL_SOCKET_IFNAME", "GLOO_SOCKET_IFNAME"):
            spec = f.env.get(var)
            if not spec:
                continue
            named = [p for p in sockets if matches_ifname(spec, p.name)]
            up = [p for p in named if (p.state or "").lower() == "up"]
            if up:
                continue
            have = ", ".join(f"{p.name} ({p.state or '?'})" for p in sockets) or "none"
            out.append(
                Finding(
                    id=f"cluster.{var.lower()}",
                    severity="error",
                    title=f"{var}={spec} on {f.node} names no interface that is up",
                    evidence={"node": f.node, var: spec, "interfaces": have},
                    why="NCCL/gloo on that node then finds no socket interface and the job "
                    "fails at set-up, or uses another network",
                    fix=f"set {var} to the data-network interface of {f.node} (one of: {have})",
                    source=NCCL_ENV_SOURCE,
                    origin="reading",
                )
            )
        hca = f.env.get("NCCL_IB_HCA")
        if hca:
            found = _hca_finding(f, hca)
            if found is not None:
                out.append(found)
    if not out and any(f.env for f in facts):
        out.append(
            Finding(
                id="cluster.interfaces.ok",
                severity="ok",
                title="network variables name interfaces that are up on every node",
                evidence={f.node: dict(f.env) for f in facts},
                source=NCCL_ENV_SOURCE,
                origin="reading",
            )
        )
    return out


MEMLOCK_SOURCE = (
    "InfiniBand registers pinned memory under this limit ('NET/IB/OFI Unable to register "
    "memory': https://github.com/NVIDIA/nccl/issues/563); NCCL networking troubleshooting, "
    "https://docs.nvidia.com/deeplearning/nccl/user-guide/docs/troubleshooting/"
    "networking_troubleshooting.html"
)


def _rdma_ports(f: NodeFacts) -> list[NetPort]:
    """The node's InfiniBand/RoCE ports, whatever their state."""
    return [p for p in f.ports or [] if p.kind in ("infiniband", "roce")]


def _active(p: NetPort) -> bool:
    return (p.state or "").upper() == "ACTIVE"


def check_rdma(facts: list[NodeFacts]) -> list[Finding]:
    out = []
    for f in facts:
        rdma = [p.name for p in _rdma_ports(f) if _active(p)]
        if not rdma:
            continue
        if f.env.get("NCCL_IB_DISABLE") == "1":
            out.append(
                Finding(
                    id="cluster.ib_disabled",
                    severity="warning",
                    title=f"{f.node} has active InfiniBand/RoCE ports but NCCL_IB_DISABLE=1",
                    evidence={"node": f.node, "rdma_ports": rdma, "NCCL_IB_DISABLE": "1"},
                    why="NCCL then crosses nodes over TCP sockets, at a fraction of the "
                    "ports' rate",
                    fix=f"unset NCCL_IB_DISABLE on {f.node}",
                    source=NCCL_ENV_SOURCE,
                    origin="reading",
                )
            )
        if f.memlock_bytes is not None and f.memlock_bytes >= 0:
            out.append(
                Finding(
                    id="cluster.memlock",
                    severity="warning",
                    title=f"{f.node}: locked memory limited to "
                    f"{f.memlock_bytes / 2**20:g} MiB with RDMA ports",
                    evidence={"node": f.node, "memlock_bytes": f.memlock_bytes, "rdma_ports": rdma},
                    why="RDMA for multi-node NCCL registers pinned memory under this limit",
                    fix="ulimit -l unlimited on every node (limits.conf memlock; Slurm: "
                    "PropagateResourceLimits; docker --ulimit memlock=-1)",
                    source=MEMLOCK_SOURCE,
                    origin="reading",
                )
            )
    return out


def check_clock_skew(facts: list[NodeFacts], bound_s: float | None) -> list[Finding]:
    clocks: Mapping[str, float] = {f.node: f.clock_s for f in facts if f.clock_s is not None}
    if len(clocks) < 2:
        return []
    skew = max(clocks.values()) - min(clocks.values())
    return [
        Finding(
            id="cluster.clock_skew",
            severity="info",
            title=f"clocks differ by {skew * 1e3:.0f} ms between nodes",
            evidence={
                "skew_ms": round(skew * 1e3, 1),
                "measurement_bound_ms": round(bound_s * 1e3, 1) if bound_s else None,
                **{f"offset_ms {n}": round((t - min(clocks.values())) * 1e3, 1)
                   for n, t in clocks.items()},
            },
            why="logs and telemetry of different nodes line up only as well as their clocks; "
            "no skew threshold is known to matter for NCCL or torch (none is applied)",
            fix="run chrony or NTP against one server on every node",
            source="measured: time.time() on each node after a barrier",
            origin="measurement",
        )
    ]  # fmt: skip


def cluster_findings(facts: list[NodeFacts], clock_bound_s: float | None = None) -> list[Finding]:
    return (
        check_versions_equal(facts)
        + check_interfaces(facts)
        + check_rdma(facts)
        + check_links(facts)
        + check_clock_skew(facts, clock_bound_s)
    )


def hca_ports(spec: str, ports: list[NetPort]) -> list[NetPort]:
    """The InfiniBand/RoCE ports ("mlx5_0/1") an NCCL_IB_HCA value selects, as NCCL reads it:
    `^` excludes the listed HCAs, `=` matches names exactly (else as prefixes), and `:N`
    picks port N of an HCA."""
    ib = [p for p in ports if "/" in p.name]
    exclude, spec = spec.startswith("^"), spec.lstrip("^")
    exact, spec = spec.startswith("="), spec.lstrip("=")
    wanted = [w.strip().partition(":") for w in spec.split(",") if w.strip()]

    def listed(p: NetPort) -> bool:
        dev, _, num = p.name.partition("/")
        return any(
            (dev == w if exact else dev.startswith(w)) and (not n or n == num) for w, _, n in wanted
        )

    return [p for p in ib if listed(p) != exclude]


def _hca_finding(f: NodeFacts, hca: str) -> Finding | None:
    """An error where NCCL_IB_HCA selects no port of the node, or only ports that are not
    active (NCCL then crosses nodes over sockets, or fails)."""
    ports = f.ports or []
    chosen = hca_ports(hca, ports)
    if chosen and any((p.state or "").upper() == "ACTIVE" for p in chosen):
        return None
    have = ", ".join(f"{p.name} ({p.state or '?'})" for p in ports if "/" in p.name) or "none"
    if chosen:
        title = f"NCCL_IB_HCA={hca} on {f.node} selects only ports that are not active"
        listed = ", ".join(f"{p.name} ({p.state or '?'})" for p in chosen)
        fix = f"bring {listed} up (cable, switch port, subnet manager), or name active ports"
    else:
        title = f"NCCL_IB_HCA={hca} on {f.node} names no HCA port there"
        fix = f"set NCCL_IB_HCA to HCAs of {f.node}: {have}"
    return Finding(
        id="cluster.nccl_ib_hca",
        severity="error",
        title=title,
        evidence={"node": f.node, "NCCL_IB_HCA": hca, "ports": have},
        why="NCCL then uses no InfiniBand device on that node (socket fallback, a fraction "
        "of the rate) or fails",
        fix=fix,
        source=NCCL_ENV_SOURCE,
        origin="reading",
    )


def check_links(facts: list[NodeFacts]) -> list[Finding]:
    out = []
    picked = []
    rdma_up = [f.node for f in facts if any(_active(p) for p in _rdma_ports(f))]
    for f in facts:
        if not f.ports:
            continue
        down = _rdma_ports(f)
        if rdma_up and f.backend == "nccl" and down and not any(_active(p) for p in down):
            states = ", ".join(f"{p.name} ({p.state or '?'})" for p in down)
            out.append(
                Finding(
                    id="cluster.rdma_down",
                    severity="warning",
                    title=f"{f.node}: no InfiniBand/RoCE port is active ({states}) while "
                    f"{', '.join(rdma_up)} has one",
                    evidence={"node": f.node, "ports": states, "active_on": rdma_up},
                    why="NCCL then crosses to that node over TCP sockets: every collective "
                    "across nodes runs at the socket's rate",
                    fix="check the cable, the switch port and the subnet manager (ibstat: "
                    "State Active, Physical state LinkUp)",
                    source="the ports' state (/sys/class/infiniband/*/ports/*/state)",
                    origin="reading",
                )
            )
        port = node_port(NodeNet(node=f.node, ports=tuple(f.ports), env=f.env), f.backend)
        if port is None or not port.rate_gbps:
            continue
        picked.append((port.rate_gbps, f.node, port))
        top = port.max_rate_gbps
        if top and port.rate_gbps < top:
            out.append(
                Finding(
                    id="cluster.link_degraded",
                    severity="warning",
                    title=f"{f.node}: {port.name} ({port.kind}) trained at "
                    f"{port.rate_gbps:g} Gb/s of its {top:g} Gb/s",
                    evidence={
                        "node": f.node,
                        "port": port.name,
                        "kind": port.kind,
                        "rate_gbps": port.rate_gbps,
                        "max_rate_gbps": top,
                    },  # fmt: skip
                    why="the node's inter-node traffic takes this port: every collective "
                    "across nodes runs at the slowest node's rate",
                    fix="reseat or replace the cable or transceiver and check the switch "
                    f"port's speed (ethtool {port.name.split('/')[0]}, ibstatus)",
                    source="the port's trained rate (/sys/class/net/*/speed, "
                    "/sys/class/infiniband/*/ports/*/rate) against what it and its link "
                    "partner support (ethtool)",
                    origin="reading",
                )
            )
    if len({rate for rate, _, _ in picked}) > 1:
        rate, node, port = min(picked, key=lambda t: t[0])
        out.append(
            Finding(
                id="cluster.link_rates",
                severity="info",
                title=f"the nodes' inter-node ports differ: {node} {port.name} at {rate:g} "
                "Gb/s is the slowest and sets the job's inter-node rate",
                evidence={n: f"{p.name} {r:g} Gb/s" for r, n, p in picked},
                source="bench.network.node_port: the port NCCL/gloo take on each node",
                origin="reading",
            )
        )
    return out
