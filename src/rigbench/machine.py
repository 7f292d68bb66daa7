"""The run envelope's description of the machine and software a run measured."""

from __future__ import annotations

import sys
from typing import Any

from rigbench import __version__
from rigbench.hw.model import Rig
from rigbench.records import Run


def machine_summary(rig: Rig) -> dict[str, Any]:
    s = rig.system
    return {
        "hostname": s.hostname,
        "cpu": s.cpu_model,
        "cpu_cores": s.cpu_cores,
        "ram_bytes": s.ram_bytes,
        "os": s.os,
        "kernel": s.kernel,
        "gpus": [
            {"index": g.index, "name": g.name, "uuid": g.uuid, "bus_id": g.bus_id} for g in rig.gpus
        ],
        "topology": {f"{p.a}-{p.b}": p.topo_code for p in rig.pairs},
    }


def software_versions(rig: Rig) -> dict[str, Any]:
    s = rig.system
    return {
        "rigbench": __version__,
        "python": s.python_version,
        "driver": s.driver_version,
        "cuda_driver": s.cuda_driver_version,
        "torch": s.torch_version,
        "torch_cuda": s.torch_cuda_version,
        "nccl": s.nccl_version,
    }


def new_run(command: str, backend: str, rig: Rig) -> Run:
    """The envelope of a run this process measures: its command line, the backend (kind),
    the machine and its software."""
    return Run(
        command=command,
        argv=sys.argv[1:],
        backend=backend,
        machine=machine_summary(rig),
        versions=software_versions(rig),
    )
