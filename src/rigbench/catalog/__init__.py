"""Hardware catalog: vendor figures for GPUs, each with its source.

>>> from rigbench.catalog import find_gpu
>>> find_gpu("NVIDIA H100 80GB HBM3").peak_tflops["bf16"]
989.4
"""

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
