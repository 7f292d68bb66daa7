"""Hardware catalog: vendor figures for GPUs, CPUs and motherboard layouts, each with its
source.

>>> from rigbench.catalog import find_gpu
>>> find_gpu("NVIDIA H100 80GB HBM3").peak_tflops["bf16"]
989.4
"""

from rigbench.catalog.boards import (
    BoardSpec,
    Slot,
    closest_board_names,
    find_board,
    load_boards,
    search_boards,
)
from rigbench.catalog.cpus import CpuSpec, closest_cpu_names, find_cpu, load_cpus, search_cpus
from rigbench.catalog.gpus import (
    DTYPES,
    FORM_FACTORS,
    REQUIRED_SOURCES,
    SOURCE_GROUPS,
    CatalogError,
    GpuSpec,
    closest_gpu_names,
    find_gpu,
    load_gpus,
    parse_catalog,
    parse_catalog_bytes,
    search_gpus,
)

__all__ = [
    "BoardSpec",
    "CpuSpec",
    "Slot",
    "closest_board_names",
    "closest_cpu_names",
    "find_board",
    "find_cpu",
    "load_boards",
    "load_cpus",
    "search_boards",
    "search_cpus",
    "DTYPES",
    "FORM_FACTORS",
    "REQUIRED_SOURCES",
    "SOURCE_GROUPS",
    "CatalogError",
    "GpuSpec",
    "closest_gpu_names",
    "find_gpu",
    "load_gpus",
    "parse_catalog",
    "parse_catalog_bytes",
    "search_gpus",
]
