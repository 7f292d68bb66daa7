"""What a benchmark is given: the devices under test, the mode and the expected figures.

Built in the parent from the backend and the catalog, pickled into each worker process.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from rigbench.records import Expectation

Mode = Literal["quick", "full"]


@dataclass(kw_only=True, slots=True)
class BenchDevice:
    """One device under test. On a CPU-only machine (or a simulated rig) the stand-in
    is the CPU, and `label` still names the GPU slot it stands for."""

    label: str  # "GPU0", or "cpu0"
    torch_device: str  # "cuda:0" or "cpu"
    name: str
    gpu_index: int | None = None
    compute_capability: tuple[int, int] | None = None
    # dtype ("fp64", "fp32", "tf32", "fp16", "bf16", "fp8", "int8") -> dense peak, TFLOP/s (TOP/s)
    peak_tflops: dict[str, Expectation] = field(default_factory=dict)
    peak_memory_bandwidth: Expectation | None = None  # GB/s
    host_link: Expectation | None = None  # GB/s per direction
    numa_node: int | None = None  # the GPU's NUMA node (None or -1: the firmware gives none)
    # The GPU index its host traffic shares an uplink with, the lowest of the GPUs under one
    # PCIe switch (pair path PIX or PXB), its own where it shares none; None: unknown.
    uplink: int | None = None


@dataclass(kw_only=True, slots=True)
class BenchContext:
    devices: list[BenchDevice]
    mode: Mode = "quick"
    on_gpu: bool = False
    # "i-j" (positions in `devices`, i < j) -> expected GPU-to-GPU bandwidth per direction
    pair_expected: dict[str, Expectation] = field(default_factory=dict)
    # "i-j" -> "hang" | "corrupt": faults a simulated rig plays on its CPU stand-ins
    p2p_faults: dict[str, str] = field(default_factory=dict)
    # device label -> (offset bytes, length bytes, bit): a simulated bad VRAM range (bench.vram)
    vram_faults: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    # The host's NUMA nodes, and those this process may run on (None: unknown)
    numa_nodes: int | None = None
    process_numa_nodes: list[int] | None = None
    seed: int = 0
    # Scales problem sizes down (tests use small ones); 1.0 is the documented size.
    size_scale: float = 1.0
    extra: dict[str, Any] = field(default_factory=dict)

    def pair_key(self, i: int, j: int) -> str:
        return f"{min(i, j)}-{max(i, j)}"

    def device(self, label: str) -> BenchDevice:
        """The device under test called `label` (a step names its devices by label)."""
        for dev in self.devices:
            if dev.label == label:
                return dev
        raise KeyError(f"no device {label!r} in the context")


@dataclass(kw_only=True, slots=True)
class Step:
    """One unit of work that the runner bounds with a timeout and can retry past.

    `metric`/`unit`/`devices`/`params` label the failure record written if the step
    hangs or its worker dies. A step that starts processes of its own (ranks, a
    communicator) has `startup_s` for that, reported apart from a hang, and calls
    `rigbench.supervisor.step_ready()` when they are up; `timeout_s` bounds the silence
    between two messages after that.
    """

    key: str
    label: str
    metric: str
    unit: str
    devices: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    timeout_s: float = 60.0
    startup_s: float = 0.0
