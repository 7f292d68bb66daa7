"""What the CPUs draw while the rig does its work: a share of their rated power per
workload, not their full TDP/PL2 (a training rig's CPU mostly waits on and feeds the GPUs).

Shares, each with where it comes from:

* ``train`` and ``inference``: 0.3. Seed 000 (Minerva): ~1,550 W measured at the wall
  with four GPUs limited to 1,200 W in all, about 100 W for board, RAM, drives and fans,
  through a Platinum PSU at ~90 % (80 PLUS Platinum's 115 V minimum near full load): the
  DC left for the 350 W Threadripper PRO 7955WX is ~95-110 W, 0.27-0.31 of its rating.
  Seed 001 agrees in kind: "only a quarter of the cores of one CPU are required" to keep
  four V100s busy.
* ``cpu-bound`` (tokenizing, augmenting, decoding data on the CPU while the GPUs run): 1.0,
  the rating itself (AMD TDP or Intel PL2 as the catalog holds it).
"""

from __future__ import annotations

WORKLOADS = ("train", "inference", "cpu-bound")
DEFAULT_WORKLOAD = "train"
CPU_LOAD_SHARE = {"train": 0.3, "inference": 0.3, "cpu-bound": 1.0}
CPU_LOAD_SOURCE = {
    "train": (
        "seed 000: ~1,550 W at the wall with 1,200 W of GPU limits leaves ~0.3 of the"
        " 7955WX's 350 W for the CPU while it feeds the GPUs"
    ),
    "inference": "as for training: the CPU feeds the GPUs (seed 000's measurement)",
    "cpu-bound": "CPU-bound preprocessing: the CPU's full rating (TDP, or Intel PL2)",
}


def cpu_load_w(rated_w: float, workload: str) -> float:
    """The CPUs' draw under `workload`, from their rated power (all sockets)."""
    return rated_w * CPU_LOAD_SHARE[workload]
