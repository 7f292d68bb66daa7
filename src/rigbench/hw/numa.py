"""This host's NUMA layout, from sysfs: its nodes and their CPUs, the nodes this process may
run on, and binding the calling thread to one node while host memory is placed there.

Linux only: elsewhere, or in a kernel built without NUMA, the layout is None (unknown).
"""

from __future__ import annotations

import contextlib
import glob
import os
from collections.abc import Iterator
from pathlib import Path

NODE_GLOB = "/sys/devices/system/node/node[0-9]*"


def parse_cpulist(text: str) -> set[int]:
    """ "0-3,8,10-11" (a sysfs cpulist) -> {0, 1, 2, 3, 8, 10, 11}."""
    cpus: set[int] = set()
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        cpus.update(range(int(lo), int(hi or lo) + 1))
    return cpus


def node_cpus() -> dict[int, set[int]] | None:
    """Each NUMA node's CPUs; None where sysfs lists no node."""
    nodes: dict[int, set[int]] = {}
    for path in glob.glob(NODE_GLOB):
        try:
            text = Path(path, "cpulist").read_text()
        except OSError:
            continue
        nodes[int(path.rsplit("node", 1)[1])] = parse_cpulist(text)
    return nodes or None


def allowed_cpus() -> set[int] | None:
    """The CPUs this process may run on (its affinity: taskset, a cgroup cpuset)."""
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


def process_nodes(
    nodes: dict[int, set[int]] | None = None, allowed: set[int] | None = None
) -> list[int] | None:
    """The NUMA nodes holding a CPU this process may run on; None where unknown."""
    nodes = node_cpus() if nodes is None else nodes
    allowed = allowed_cpus() if allowed is None else allowed
    if not nodes or allowed is None:
        return None
    return sorted(n for n, cpus in nodes.items() if cpus & allowed) or None


@contextlib.contextmanager
def on_node(node: int | None) -> Iterator[bool]:
    """Run the calling thread on the CPUs of `node` that it may use, then as before; yields
    whether it could. Memory a thread first touches (pinned host buffers included) is placed
    on the node it runs on, so buffers made inside sit next to that node's devices."""
    nodes = node_cpus() if node is not None and node >= 0 else None
    before = allowed_cpus()
    cpus = (nodes or {}).get(node if node is not None else -1, set()) & (before or set())
    if not cpus or before is None or cpus == before:
        yield bool(cpus) and cpus == before
        return
    try:
        os.sched_setaffinity(0, cpus)
    except OSError:  # a CPU taken offline, or a cpuset changed since it was read
        yield False
        return
    try:
        yield True
    finally:
        os.sched_setaffinity(0, before)
