"""The run envelope's description of the machine and software a run measured."""

from __future__ import annotations

from typing import Any

from rigbench import __version__
from rigbench.hw.model import Rig


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
