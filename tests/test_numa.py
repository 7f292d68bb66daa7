"""The host's NUMA layout (rigbench.hw.numa) and where it reaches a rig's system facts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rigbench.hw import numa
from rigbench.hw.simulated import SimulatedBackend
from rigbench.hw.system import host_system_info

linux_numa = pytest.mark.skipif(numa.node_cpus() is None, reason="no NUMA nodes in sysfs")


@pytest.mark.parametrize(
    ("text", "cpus"),
    [("0-3,8,10-11\n", {0, 1, 2, 3, 8, 10, 11}), ("5", {5}), ("", set()), ("\n", set())],
)
def test_a_sysfs_cpulist_is_read_as_cpus(text: str, cpus: set[int]) -> None:
    assert numa.parse_cpulist(text) == cpus


def test_the_process_nodes_are_those_holding_an_allowed_cpu() -> None:
    nodes = {0: {0, 1, 2, 3}, 1: {4, 5, 6, 7}}
    assert numa.process_nodes(nodes, {0, 1}) == [0]
    assert numa.process_nodes(nodes, {3, 4}) == [0, 1]
    assert numa.process_nodes(nodes, {9}) is None
    assert numa.process_nodes({}, {0}) is None


@linux_numa
def test_on_a_node_the_thread_runs_there_and_as_before_after() -> None:
    before = os.sched_getaffinity(0)
    node, cpus = next(iter(sorted((numa.node_cpus() or {}).items())))
    with numa.on_node(node) as bound:
        assert bound
        assert os.sched_getaffinity(0) <= cpus
    assert os.sched_getaffinity(0) == before
    for unknown in (None, -1, 4096):
        with numa.on_node(unknown) as bound:
            assert not bound
            assert os.sched_getaffinity(0) == before


@linux_numa
def test_the_live_system_facts_carry_the_numa_layout() -> None:
    info = host_system_info()
    assert info.numa_nodes == len(numa.node_cpus() or {})
    assert info.process_numa_nodes and set(info.process_numa_nodes) <= set(numa.node_cpus() or {})


def test_a_rig_file_gives_its_numa_layout_once_for_doctor_and_bench(examples: Path) -> None:
    backend = SimulatedBackend.from_file(examples / "h100-8x-nvswitch-pinned-numa0.toml")
    rig = backend.rig()
    host = backend.health(rig).host
    assert (rig.system.numa_nodes, rig.system.process_numa_nodes) == (2, [0])
    assert (host.numa_nodes, host.process_numa_nodes) == (2, [0])
    assert [g.numa_node for g in rig.gpus] == [0, 0, 0, 0, 1, 1, 1, 1]
