"""Which CUDA device an NVML GPU is, under CUDA_DEVICE_ORDER=PCI_BUS_ID."""

from __future__ import annotations

import os


def cuda_index(nvml_index: int) -> int | None:
    """CUDA's index of an NVML GPU, given CUDA_DEVICE_ORDER=PCI_BUS_ID (set by the caller)
    and any CUDA_VISIBLE_DEVICES of plain indices; None when the GPU is hidden."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None or visible.strip() == "":
        return nvml_index if visible is None else None
    try:
        order = [int(v) for v in visible.split(",")]
    except ValueError:
        return None  # UUIDs or MIG names: mapping them is left to the user
    return order.index(nvml_index) if nvml_index in order else None
