"""What the network between nodes should give, and what NCCL says it used.

Expected inter-node busbw: with one rank a node, a ring crosses each node's NIC once each
way, so busbw approaches the per-direction line rate of the slowest node's NIC (nccl-tests
doc/PERFORMANCE.md: busbw is the figure to hold against the hardware's bottleneck). The NIC
of a node is the one its traffic takes: the interface `NCCL_SOCKET_IFNAME` names, else (NCCL
with InfiniBand/RoCE not disabled) its fastest active IB/RoCE port, else its fastest Ethernet
port that is up. A port's rate is what it can do where sysfs says so (`max_rate_gbps`), so a
link that trained lower reads as a low ratio; else the rate it trained to. Line rate, not
goodput: headers take a few per cent. No port with a known rate on a node: no expectation.

NCCL's transport: with NCCL_DEBUG=INFO it logs `NET/IB : Using [0]mlx5_0:1/IB ...` or
`NET/Socket : Using [0]eth0:10.0.0.1<0>` and `Using network IB|Socket` at communicator
set-up (as in the logs of github.com/NVIDIA/nccl/issues/726); `nccl_transport` reads them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from rigbench.hw.health import NetPort


@dataclass(frozen=True, slots=True)
class NodeNet:
    """One node's ports and the NCCL settings that choose among them."""

    node: str  # "gpu-b (node 1)"
    ports: tuple[NetPort, ...]
    env: Mapping[str, str]


def matches_ifname(spec: str, name: str) -> bool:
    """NCCL_SOCKET_IFNAME: comma-separated prefixes; '=' exact names; '^' excludes."""
    exclude = spec.startswith("^")
    spec = spec.lstrip("^")
    exact = spec.startswith("=")
    names = [s for s in spec.lstrip("=").split(",") if s]
    hit = any(name == s if exact else name.startswith(s) for s in names)
    return hit != exclude


def _rate(p: NetPort) -> float | None:
    return p.max_rate_gbps or p.rate_gbps


def node_port(net: NodeNet, backend: str) -> NetPort | None:
    """The port a node's inter-node traffic takes (see the module docstring)."""
    ifname = net.env.get("NCCL_SOCKET_IFNAME") or net.env.get("GLOO_SOCKET_IFNAME")
    eth = [p for p in net.ports if p.kind == "ethernet" and (p.state or "").lower() == "up"]
    if ifname:
        named = [p for p in net.ports if "/" not in p.name and matches_ifname(ifname, p.name)]
        named = [p for p in named if _rate(p)]
        return max(named, key=lambda p: _rate(p) or 0.0, default=None)
    if backend == "nccl" and net.env.get("NCCL_IB_DISABLE", "0") != "1":
        ib = [
            p
            for p in net.ports
            if p.kind in ("infiniband", "roce") and (p.state or "").upper() == "ACTIVE" and _rate(p)
        ]
        if ib:
            return max(ib, key=lambda p: _rate(p) or 0.0)
    eth = [p for p in eth if _rate(p)]
    return max(eth, key=lambda p: _rate(p) or 0.0, default=None)


def slowest_port(nodes: Iterable[NodeNet], backend: str) -> tuple[NodeNet, NetPort] | None:
    """The node whose port (node_port) is slowest, and that port; None when a node's rate
    is unknown or there is one node."""
    picked = []
    for net in nodes:
        port = node_port(net, backend)
        rate = _rate(port) if port else None
        if port is None or rate is None:
            return None
        picked.append((rate, net, port))
    if len(picked) < 2:
        return None
    _rate_min, net, port = min(picked, key=lambda t: t[0])
    return net, port


def port_facts(net: NodeNet, port: NetPort) -> dict[str, object]:
    """What a result records of the port its expectation comes from (judge reads it)."""
    up = ("up", "active")
    return {
        "node": net.node,
        "port": port.name,
        "kind": port.kind,
        "rate_gbps": port.rate_gbps,
        "max_rate_gbps": port.max_rate_gbps,
        # ports of that kind up on the node: NCCL may spread one rank over several
        "ports": sum(1 for p in net.ports if p.kind == port.kind and (p.state or "").lower() in up),
    }


def expected_inter_node(nodes: Iterable[NodeNet], backend: str) -> tuple[float, str] | None:
    """(GB/s per direction, basis) for inter-node busbw, or None when a node's rate is
    unknown."""
    slowest = slowest_port(nodes, backend)
    if slowest is None:
        return None
    net, port = slowest
    rate = _rate(port) or 0.0
    trained = (
        f", trained at {port.rate_gbps:g} Gb/s"
        if port.max_rate_gbps and port.rate_gbps and port.rate_gbps < port.max_rate_gbps
        else ""
    )
    basis = (
        f"slowest node NIC: {net.node} {port.name} ({port.kind}) {rate:g} Gb/s{trained} = "
        f"{rate / 8:g} GB/s per direction, line rate; one rank a node, a ring's busbw "
        "approaches it (nccl-tests doc/PERFORMANCE.md)"
    )
    return rate / 8, basis


_NET = re.compile(r"NCCL INFO NET/(\w+)\s*:\s*Using (.*)$")
_NETWORK = re.compile(r"NCCL INFO Using network (\w+)")
_DEVICE = re.compile(r"\[\d+\]([\w.:/-]+?)(?::[\d.]+<\d+>|/\w+)?(?=\s|$|;)")


def nccl_transport(lines: Iterable[str]) -> dict[str, object] | None:
    """{"network": "IB"|"Socket"|..., "devices": [...]} from NCCL_DEBUG=INFO lines, or None."""
    network: str | None = None
    devices: list[str] = []
    for line in lines:
        m = _NETWORK.search(line)
        if m:
            network = m.group(1)
            continue
        m = _NET.search(line)
        if m:
            network = network or m.group(1)
            used = m.group(2).split(";")[0]
            for d in _DEVICE.findall(used):
                if d not in devices:
                    devices.append(d)
    if network is None:
        return None
    return {"network": network, "devices": devices}


def recorded_transport(log_path: str | None, user_debug: str | None) -> dict[str, object] | None:
    """What a rank records of NCCL's network: parsed from the INFO lines rigbench had NCCL
    write to `log_path`, or, where the user's own NCCL_DEBUG (`user_debug`) kept rigbench
    from asking for them, why it is unknown; None where neither applies (gloo)."""
    if log_path is None:
        if user_debug is None:
            return None
        return {
            "network": None,
            "unknown": f"NCCL_DEBUG={user_debug} was set, so NCCL's INFO lines went where the "
            "user sent them: unset NCCL_DEBUG to have rigbench record the transport",
        }
    try:
        with open(log_path, errors="replace") as f:
            return nccl_transport(f)
    except OSError:
        return None
