"""Which NIC carries traffic between nodes, what it should give, and what NCCL said."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rigbench.bench.network import (
    NodeNet,
    expected_inter_node,
    nccl_transport,
    node_port,
    port_facts,
)
from rigbench.hw.health import NetPort
from rigbench.judge.bench import judge_inter_node_results
from rigbench.records import Result

ETH25 = NetPort(name="eno1", kind="ethernet", state="up", rate_gbps=25.0)
ETH100 = NetPort(name="ens1f0", kind="ethernet", state="up", rate_gbps=100.0)
IB = NetPort(name="mlx5_0/1", kind="infiniband", state="ACTIVE", rate_gbps=400.0)
IB_SLOW = NetPort(
    name="mlx5_0/1", kind="infiniband", state="ACTIVE", rate_gbps=100.0, max_rate_gbps=400.0
)


def _node(name: str, *ports: NetPort, **env: str) -> NodeNet:
    return NodeNet(node=name, ports=ports, env=env)


def test_port_follows_nccl_settings() -> None:
    both = _node("a", ETH25, ETH100, IB)
    assert node_port(both, "nccl") == IB
    assert node_port(both, "gloo") == ETH100  # gloo does not use InfiniBand verbs
    assert node_port(_node("a", ETH25, ETH100, IB, NCCL_IB_DISABLE="1"), "nccl") == ETH100
    assert node_port(_node("a", ETH25, ETH100, IB, NCCL_SOCKET_IFNAME="eno"), "nccl") == ETH25
    assert node_port(_node("a", ETH25, ETH100, NCCL_SOCKET_IFNAME="^eno"), "gloo") == ETH100
    assert node_port(_node("a", ETH25, NCCL_SOCKET_IFNAME="=eno"), "gloo") is None  # no such name
    down = NetPort(name="ens1f0", kind="ethernet", state="down", rate_gbps=100.0)
    assert node_port(_node("a", ETH25, down), "gloo") == ETH25


def test_slowest_node_sets_the_expectation_and_a_trained_down_port_shows() -> None:
    exp = expected_inter_node([_node("a (node 0)", IB), _node("b (node 1)", IB_SLOW)], "nccl")
    assert exp is not None
    value, basis = exp
    assert value == pytest.approx(400 / 8)  # what the port can do, not what it trained to
    assert "b (node 1) mlx5_0/1" not in basis or "trained at 100 Gb/s" in basis
    exp = expected_inter_node([_node("a (node 0)", ETH100), _node("b (node 1)", IB_SLOW)], "nccl")
    assert exp is not None
    assert exp[0] == pytest.approx(100 / 8) and "a (node 0) ens1f0" in exp[1]
    slow_only = expected_inter_node([_node("a", IB_SLOW), _node("b", IB_SLOW)], "nccl")
    assert slow_only is not None and "400 Gb/s, trained at 100 Gb/s" in slow_only[1]
    unknown = NetPort(name="eth0", kind="ethernet", state="up")  # a VM: no speed in sysfs
    assert expected_inter_node([_node("a", ETH25), _node("b", unknown)], "gloo") is None
    assert expected_inter_node([_node("a", ETH25)], "gloo") is None


def test_nccl_transport_from_debug_lines() -> None:
    ib = [
        "gpu-a:12:12 [0] NCCL INFO NET/IB : Using [0]mlx5_0:1/IB [1]mlx5_1:1/RoCE [RO]; "
        "OOB ens1f0:10.0.0.1<0>",
        "gpu-a:12:12 [0] NCCL INFO Using network IB",
    ]
    assert nccl_transport(ib) == {"network": "IB", "devices": ["mlx5_0:1", "mlx5_1:1"]}
    sock = [
        "gpu-a:12:12 [0] NCCL INFO NET/Socket : Using [0]eno1:10.0.0.1<0>",
        "gpu-a:12:12 [0] NCCL INFO Using network Socket",
    ]
    assert nccl_transport(sock) == {"network": "Socket", "devices": ["eno1"]}
    assert nccl_transport(["gpu-a NCCL INFO Bootstrap : Using eno1:10.0.0.1<0>"]) is None


def test_a_users_nccl_debug_leaves_the_transport_unknown_and_says_why(tmp_path: Path) -> None:
    from rigbench.bench.network import recorded_transport

    log = tmp_path / "rank0.log"
    log.write_text("gpu-a:12:12 [0] NCCL INFO Using network Socket\n")
    assert recorded_transport(str(log), None) == {"network": "Socket", "devices": []}
    assert recorded_transport(None, None) is None  # gloo: nothing to say
    said = recorded_transport(None, "WARN")
    assert said is not None and said["network"] is None
    assert "NCCL_DEBUG=WARN was set" in str(said["unknown"])


def test_the_sbatch_script_leaves_nccl_debug_to_rigbench(examples: Path) -> None:
    # rigbench records NCCL's transport only where NCCL_DEBUG is unset
    script = (examples / ".." / "slurm" / "rigbench-cluster.sbatch").read_text()
    assert not re.search(r"^\s*export\s+NCCL_DEBUG=", script, re.M)


def test_cluster_doctor_quiet_when_nodes_agree_and_names_a_missing_hca() -> None:
    from rigbench.doctor.cluster import NodeFacts, cluster_findings

    versions = {"driver": "550.54.15", "torch": "2.13.0", "nccl": "2.27.5"}
    same = [
        NodeFacts(node=f"n{i} (node {i})", versions=dict(versions), env={}, ports=[IB, ETH25])
        for i in range(2)
    ]
    found = cluster_findings(same)
    assert {f.severity for f in found} == {"ok"}, found
    bad = [
        NodeFacts(node="a (node 0)", versions=versions, env={"NCCL_IB_HCA": "mlx5_0"}, ports=[IB]),
        NodeFacts(node="b (node 1)", versions=versions, env={"NCCL_IB_HCA": "mlx5_4"}, ports=[IB]),
    ]
    errors = [f for f in cluster_findings(bad) if f.severity == "error"]
    assert [(f.id, f.evidence["node"]) for f in errors] == [("cluster.nccl_ib_hca", "b (node 1)")]
    skew = cluster_findings(
        [
            NodeFacts(node="a", versions=versions, clock_s=100.0),
            NodeFacts(node="b", versions=versions, clock_s=100.25),
        ],
        0.002,
    )
    rdma = cluster_findings(
        [
            NodeFacts(node="a", versions=versions, ports=[IB], memlock_bytes=-1),
            NodeFacts(node="b", versions=versions, ports=[IB], memlock_bytes=64 << 10),
            NodeFacts(node="c", versions=versions, ports=[IB], env={"NCCL_IB_DISABLE": "1"}),
            NodeFacts(node="d", versions=versions, ports=[ETH25], memlock_bytes=64 << 10),
        ]
    )
    warned = sorted((f.id, f.evidence["node"]) for f in rdma if f.severity == "warning")
    assert warned == [("cluster.ib_disabled", "c"), ("cluster.memlock", "b")]
    (clock,) = [f for f in skew if f.id == "cluster.clock_skew"]
    assert clock.severity == "info" and clock.evidence["skew_ms"] == 250.0


def _inter(value: float, nic: NetPort, *, nbytes: int = 1 << 28, **params: object) -> Result:
    facts = port_facts(_node("b (node 1)", nic), nic)
    return Result(
        benchmark="collectives",
        metric="busbw",
        value=value,
        unit="GB/s",
        devices=["node0/GPU0", "node1/GPU0"],
        expected=(nic.max_rate_gbps or nic.rate_gbps or 0) / 8,
        params={"op": "all_reduce", "bytes": nbytes, "scope": "inter-node", "nic": facts,
                **params},
    )  # fmt: skip


def test_inter_node_busbw_is_judged_against_the_nics_line_rate() -> None:
    ib100 = NetPort(name="mlx5_0/1", kind="infiniband", state="ACTIVE", rate_gbps=100.0)
    healthy = _inter(12.2, ib100)  # NVIDIA/nccl-tests#29: "as good as you can get"
    small = _inter(1.0, ib100, nbytes=1 << 10)
    judge_inter_node_results([healthy, small])
    assert healthy.judgement is not None and healthy.judgement.verdict == "normal"
    assert healthy.judgement.reference == "any.collectives.all_reduce.busbw.inter-node-infiniband"
    assert healthy.judgement.low == pytest.approx(0.91 * 12.5)
    assert small.judgement is not None and small.judgement.verdict == "no_reference"
    slow = _inter(9.0, ib100)
    judge_inter_node_results([slow])
    assert slow.judgement is not None and slow.judgement.verdict == "below_normal"
    # NCCL fell back to sockets although the port is InfiniBand: that is the cause named
    fell = _inter(3.0, ib100, nccl_transport={"node0": {"network": "Socket", "devices": []}})
    judge_inter_node_results([fell])
    assert fell.judgement is not None and fell.judgement.cause == "socket_fallback"


def test_ethernet_between_nodes_has_no_reference_but_a_trained_down_link_is_named() -> None:
    eth = NetPort(name="ens1f0", kind="ethernet", state="up", rate_gbps=100.0)
    row = _inter(9.0, eth)
    judge_inter_node_results([row])
    assert row.judgement is not None and row.judgement.verdict == "no_reference"
    assert "unknown" in (row.judgement.note or "")
    down = NetPort(name="ens1f0", kind="ethernet", state="up", rate_gbps=25.0, max_rate_gbps=100.0)
    row = _inter(2.9, down)
    judge_inter_node_results([row])
    j = row.judgement
    assert j is not None and j.verdict == "below_normal" and j.cause == "link_degraded"
    assert "trained at 25 Gb/s of its 100 Gb/s" in (j.note or "")
    intra = Result(benchmark="collectives", metric="busbw", value=1.0, unit="GB/s",
                   params={"op": "all_reduce", "bytes": 1, "scope": "node"})  # fmt: skip
    judge_inter_node_results([intra])
    assert intra.judgement is None  # only the rows between nodes are judged here


# `ethtool IFACE` as it prints link modes (layout as in the kernel's ethtool "lanes" patch
# posting by NVIDIA, net/ethtool/linkmodes.c): a section head, then continuation lines.
ETHTOOL = """Settings for ens1f0:
\tSupported ports: [ FIBRE ]
\tSupported link modes:   10000baseKR/Full
\t                        25000baseCR/Full
\t\t\t\t100000baseCR4/Full
\tSupported pause frame use: Symmetric
\tSupported FEC modes: Not reported
\tAdvertised link modes:  10000baseKR/Full
\t                        25000baseCR/Full
\t\t\t\t100000baseCR4/Full
\tLink partner advertised link modes:  {partner}
\tSpeed: 25000Mb/s
"""


def test_ethtool_gives_what_both_ends_of_a_link_can_run() -> None:
    from rigbench.hw.health import ethtool_max_gbps

    # the NIC and its partner can do 100: a link at 25 trained down
    assert ethtool_max_gbps(ETHTOOL.format(partner="100000baseCR4/Full")) == 100.0
    assert ethtool_max_gbps(ETHTOOL.format(partner="Not reported")) == 100.0
    # a 25 G switch port: 25 is all the link can be, not a fault
    assert ethtool_max_gbps(ETHTOOL.format(partner="25000baseCR/Full")) == 25.0
    limited = ETHTOOL.replace("\t\t\t\t100000baseCR4/Full\n\tLink", "\tLink")
    assert ethtool_max_gbps(limited.format(partner="Not reported")) == 25.0  # admin's choice
    assert ethtool_max_gbps("Settings for eth0:\n\tLink detected: yes\n") is None


def test_inter_node_busbw_above_one_port_is_no_fault_where_the_node_has_several() -> None:
    ib = NetPort(name="mlx5_0/1", kind="infiniband", state="ACTIVE", rate_gbps=100.0)
    one = _inter(20.0, ib)
    judge_inter_node_results([one])
    assert one.judgement is not None and one.judgement.verdict == "fault"  # one port: 12.5 max
    two = _inter(20.0, ib)
    two.params["nic"]["ports"] = 2
    judge_inter_node_results([two])
    assert two.judgement is not None and two.judgement.verdict == "normal"


def test_nccl_ib_hca_is_read_as_nccl_reads_it_and_its_ports_must_be_active() -> None:
    from rigbench.doctor.cluster import NodeFacts, cluster_findings, hca_ports

    p0 = NetPort(name="mlx5_0/1", kind="infiniband", state="ACTIVE", rate_gbps=400.0)
    p1 = NetPort(name="mlx5_1/1", kind="infiniband", state="DOWN", rate_gbps=None)
    p10 = NetPort(name="mlx5_10/1", kind="infiniband", state="ACTIVE", rate_gbps=400.0)
    ports = [ETH25, p0, p1, p10]
    assert hca_ports("mlx5_1", ports) == [p1, p10]  # a prefix, as NCCL matches it
    assert hca_ports("=mlx5_1", ports) == [p1]
    assert hca_ports("^mlx5_0", ports) == [p1, p10]
    assert hca_ports("mlx5_0:1,mlx5_1:2", ports) == [p0]
    versions = {"driver": "550.54.15"}

    def errors(hca: str) -> list[str]:
        node = NodeFacts(
            node="b (node 1)", versions=versions, env={"NCCL_IB_HCA": hca}, ports=ports
        )
        ok = NodeFacts(node="a (node 0)", versions=versions, env={}, ports=[p0])
        return [f.title for f in cluster_findings([ok, node]) if f.severity == "error"]

    assert errors("mlx5_0") == [] and errors("^mlx5_1") == []
    # the HCA exists, its one port is down: NCCL crosses nodes over sockets
    assert errors("=mlx5_1") == [
        "NCCL_IB_HCA==mlx5_1 on b (node 1) selects only ports that are not active"
    ]
    assert errors("mlx5_4") == ["NCCL_IB_HCA=mlx5_4 on b (node 1) names no HCA port there"]


def test_doctor_names_a_node_whose_port_trained_down_and_the_slowest_node() -> None:
    from rigbench.doctor.cluster import NodeFacts, cluster_findings

    slow = NetPort(name="ens1f0", kind="ethernet", state="up", rate_gbps=25.0, max_rate_gbps=100.0)
    versions = {"driver": "550.54.15"}
    nodes = [
        NodeFacts(node="a (node 0)", versions=versions, ports=[ETH25, ETH100], backend="gloo"),
        NodeFacts(node="b (node 1)", versions=versions, ports=[ETH25, slow], backend="gloo"),
    ]
    by_id = {f.id: f for f in cluster_findings(nodes)}
    assert by_id["cluster.link_degraded"].severity == "warning"
    assert by_id["cluster.link_degraded"].title == (
        "b (node 1): ens1f0 (ethernet) trained at 25 Gb/s of its 100 Gb/s"
    )
    assert by_id["cluster.link_rates"].severity == "info"
    assert "b (node 1) ens1f0 at 25 Gb/s is the slowest" in by_id["cluster.link_rates"].title
    # every node on a healthy 100 GbE port, or only 25 GbE where that is all it can do: quiet
    same = [
        NodeFacts(node=f"n{i}", versions=versions, ports=[ETH25], backend="gloo") for i in range(2)
    ]
    assert not [f for f in cluster_findings(same) if f.id.startswith("cluster.link")]


def test_doctor_warns_where_a_nodes_infiniband_is_down_and_the_others_is_up() -> None:
    from rigbench.doctor.cluster import NodeFacts, cluster_findings

    down = NetPort(name="mlx5_0/1", kind="infiniband", state="DOWN", rate_gbps=None)
    versions = {"driver": "550.54.15"}
    nodes = [
        NodeFacts(node="a (node 0)", versions=versions, ports=[ETH25, IB]),
        NodeFacts(node="b (node 1)", versions=versions, ports=[ETH25, down]),
    ]
    (f,) = [f for f in cluster_findings(nodes) if f.id == "cluster.rdma_down"]
    assert f.severity == "warning"
    assert f.title == (
        "b (node 1): no InfiniBand/RoCE port is active (mlx5_0/1 (DOWN)) while a (node 0) has one"
    )
    # every node's IB down, or a CPU-only (gloo) node: nothing to compare, nothing said
    both = [NodeFacts(node=f"n{i}", versions=versions, ports=[ETH25, down]) for i in range(2)]
    assert not [f for f in cluster_findings(both) if f.id == "cluster.rdma_down"]
