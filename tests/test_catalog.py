"""The GPU catalog: the shipped data validates, lookups resolve the names real machines
report, and the figures obey relations that would catch a typo."""

from __future__ import annotations

import copy
import dataclasses
from importlib import resources
from typing import Any

import pytest

from rigbench.catalog import (
    DTYPES,
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
from rigbench.errors import RigbenchError

GPUS = load_gpus()
BY_ID = {g.id: g for g in GPUS}


def _ids(specs: list[GpuSpec]) -> list[str]:
    return [s.id for s in specs]


# ----------------------------------------------------------------- the shipped file


def test_shipped_catalog_is_package_data_and_validates() -> None:
    data = resources.files("rigbench.catalog").joinpath("data").joinpath("gpus.toml")
    assert data.is_file()
    assert parse_catalog_bytes(data.read_bytes()) == GPUS
    assert load_gpus() is GPUS  # cached


def test_catalog_covers_the_required_gpus() -> None:
    required = {
        "gtx-1060-6gb",
        "rtx-3060-12gb",
        "rtx-3090",
        "rtx-3090-ti",
        "rtx-4080",
        "rtx-4090",
        "rtx-5090",
        "rtx-a6000",
        "rtx-6000-ada",
        "l4",
        "l40",
        "l40s",
        "v100-sxm2-16gb",
        "v100-sxm2-32gb",
        "v100-pcie-16gb",
        "v100-pcie-32gb",
        "a100-pcie-40gb",
        "a100-pcie-80gb",
        "a100-sxm4-40gb",
        "a100-sxm4-80gb",
        "h100-pcie",
        "h100-sxm",
        "h100-nvl",
        "h200",
        "h200-nvl",
        "mi60",
    }
    assert required <= set(BY_ID)
    assert len(BY_ID) == len(GPUS)


def test_specs_are_immutable() -> None:
    spec = BY_ID["h100-sxm"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.tdp_w = 1.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        spec.peak_tflops["bf16"] = 1.0  # type: ignore[index]
    assert len({spec, BY_ID["h100-sxm"]}) == 1
    assert "sources" not in repr(spec)


# ----------------------------------------------------------------------- lookups


@pytest.mark.parametrize(
    ("nvml_name", "expected"),
    [
        ("NVIDIA H100 80GB HBM3", "h100-sxm"),
        ("NVIDIA H100 PCIe", "h100-pcie"),
        ("NVIDIA H100 NVL", "h100-nvl"),
        ("NVIDIA H200", "h200"),
        ("NVIDIA H200 NVL", "h200-nvl"),
        ("Tesla V100-SXM2-16GB", "v100-sxm2-16gb"),
        ("Tesla V100-SXM2-32GB", "v100-sxm2-32gb"),
        ("Tesla V100-PCIE-32GB", "v100-pcie-32gb"),
        ("NVIDIA A100-SXM4-80GB", "a100-sxm4-80gb"),
        ("NVIDIA A100-SXM4-40GB", "a100-sxm4-40gb"),
        ("NVIDIA A100 80GB PCIe", "a100-pcie-80gb"),
        ("NVIDIA A100-PCIE-40GB", "a100-pcie-40gb"),
        ("NVIDIA GeForce RTX 3090", "rtx-3090"),
        ("NVIDIA GeForce RTX 3090 Ti", "rtx-3090-ti"),
        ("GeForce RTX 3090", "rtx-3090"),  # older drivers drop the NVIDIA prefix
        ("NVIDIA GeForce RTX 4090", "rtx-4090"),
        ("NVIDIA GeForce RTX 5090", "rtx-5090"),
        ("NVIDIA RTX A6000", "rtx-a6000"),
        ("NVIDIA RTX 6000 Ada Generation", "rtx-6000-ada"),
        ("NVIDIA L40S", "l40s"),
        ("NVIDIA GeForce GTX 1060 6GB", "gtx-1060-6gb"),
    ],
)
def test_nvml_names_resolve(nvml_name: str, expected: str) -> None:
    spec = find_gpu(nvml_name)
    assert spec is not None and spec.id == expected


def test_3090_and_3090_ti_are_not_confused() -> None:
    plain, ti = find_gpu("NVIDIA GeForce RTX 3090"), find_gpu("NVIDIA GeForce RTX 3090 Ti")
    assert plain is BY_ID["rtx-3090"] and ti is BY_ID["rtx-3090-ti"]
    assert find_gpu("3090") is plain and find_gpu("3090 Ti") is ti


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("3090", "rtx-3090"),
        ("h100", "h100-sxm"),
        ("H100-SXM", "h100-sxm"),
        ("h100_sxm", "h100-sxm"),
        ("v100 sxm2", "v100-sxm2-16gb"),
        ("V100-SXM2-32GB", "v100-sxm2-32gb"),
        ("a100", "a100-sxm4-80gb"),
        ("a100 pcie", "a100-pcie-80gb"),
        ("a6000", "rtx-a6000"),
        ("rtx 6000 ada", "rtx-6000-ada"),
        ("MI60", "mi60"),
        ("Radeon Instinct MI60", "mi60"),
        ("l40s", "l40s"),
        ("  nvidia-h100-80gb-hbm3 ", "h100-sxm"),
        ("RTX 4090", "rtx-4090"),
        ("NVIDIA RTX 4090", "rtx-4090"),  # brand words are optional
        ("GeForce RTX 4090", "rtx-4090"),
        ("nvidia-rtx-4090", "rtx-4090"),
        ("NVIDIA Tesla V100-SXM2-16GB", "v100-sxm2-16gb"),
        ("RTX 6000 Ada Generation", "rtx-6000-ada"),
    ],
)
def test_aliases_ids_and_spelling_variants_resolve(typed: str, expected: str) -> None:
    spec = find_gpu(typed)
    assert spec is not None and spec.id == expected


@pytest.mark.parametrize(
    "name", ["NVIDIA GeForce RTX 4070", "RTX 4090 Ti", "B200", "V100S", "", "   ", "NVIDIA"]
)
def test_unknown_names_give_none(name: str) -> None:
    assert find_gpu(name) is None


def test_suggestions_for_unknown_names() -> None:
    assert "GeForce RTX 4090" in closest_gpu_names("RTX 4090 Ti")
    assert closest_gpu_names("H100 SXM5 94GB")[0] == "H100 SXM5 80GB"
    assert closest_gpu_names("NVIDIA A100-SXM4-80G")[0] == "A100 80GB SXM4"
    assert closest_gpu_names("v100s")[0].startswith("Tesla V100")
    assert len(closest_gpu_names("NVIDIA GeForce RTX 4070", n=2)) == 2
    assert closest_gpu_names("RTX 4090", n=0) == []
    assert closest_gpu_names("qqqqqq") == []
    names = closest_gpu_names("RTX 3090")
    assert len(names) == len(set(names))


def test_search() -> None:
    hopper = _ids(search_gpus("hopper"))
    assert hopper == ["h100-pcie", "h100-sxm", "h100-nvl", "h200", "h200-nvl"]
    assert _ids(search_gpus("h100")) == ["h100-pcie", "h100-sxm", "h100-nvl"]
    assert set(_ids(search_gpus("rtx 30"))) == {
        "rtx-3060-12gb",
        "rtx-3070-ti",
        "rtx-3080",
        "rtx-3090",
        "rtx-3090-ti",
    }
    assert _ids(search_gpus("ada 6000")) == ["rtx-6000-ada"]
    assert _ids(search_gpus("AMD")) == ["mi60"]
    assert _ids(search_gpus("gfx906")) == ["mi60"]
    assert "rtx-4090" in _ids(search_gpus("lovelace"))
    assert search_gpus("") == list(GPUS)
    assert search_gpus("no-such-gpu") == []


# ---------------------------------------------------------------------- sources


@pytest.mark.parametrize("spec", GPUS, ids=lambda g: g.id)
def test_every_gpu_cites_its_figures(spec: GpuSpec) -> None:
    for group in ("peak_tflops", "memory"):
        citation = spec.source_for(group)
        assert citation is not None and "https://" in citation
    for group, fields in SOURCE_GROUPS.items():
        has_value = any(getattr(spec, f) not in (None, {}) for f in fields)
        assert has_value == (spec.source_for(group) is not None), group
        if has_value:
            assert "https://" in (spec.source_for(group) or "")
    assert spec.source_for("no-such-group") is None


def test_halved_sparsity_and_derived_figures_say_so() -> None:
    assert "halved" in (BY_ID["h100-nvl"].source_for("peak_tflops") or "")
    assert "halved" in (BY_ID["l4"].source_for("peak_tflops") or "")
    assert "derived" in (BY_ID["rtx-3060-12gb"].source_for("peak_tflops") or "").lower()
    assert "derived" in (BY_ID["rtx-3090-ti"].source_for("peak_tflops") or "").lower()


# -------------------------------------------------------------- sanity relations


def _tensor_cores(spec: GpuSpec) -> bool:
    cc = spec.compute_capability
    return cc is not None and float(cc) >= 7.0


@pytest.mark.parametrize("spec", GPUS, ids=lambda g: g.id)
def test_figures_are_plausible(spec: GpuSpec) -> None:
    assert set(spec.peak_tflops) <= set(DTYPES)
    assert "fp32" in spec.peak_tflops
    assert 100 <= (spec.memory_bandwidth_gbs or 0) <= 10_000
    assert 4 <= spec.memory_gib <= 200
    assert spec.tdp_w is not None and 50 <= spec.tdp_w <= 1000
    if spec.transient_peak_w is not None:
        assert spec.tdp_w < spec.transient_peak_w <= 3 * spec.tdp_w
    peaks = spec.peak_tflops
    if "fp64" in peaks:
        assert peaks["fp64"] <= peaks["fp32"]
    if _tensor_cores(spec):
        assert peaks["fp16"] >= peaks["fp32"]
    if "int8" in peaks and "fp16" in peaks:
        assert peaks["int8"] >= peaks["fp16"]
    if "bf16" in peaks and "fp16" in peaks:
        assert peaks["bf16"] == peaks["fp16"]
    # Tensor-core ladders: TF32 is half of FP16, FP8 twice FP16 (2% slack for rounding).
    if "tf32" in peaks:
        assert 1.95 <= peaks["fp16"] / peaks["tf32"] <= 2.05
    if "fp8" in peaks:
        assert 1.95 <= peaks["fp8"] / peaks["fp16"] <= 2.05
    if spec.form_factor is not None and spec.form_factor.startswith("sxm"):
        assert spec.slot_width is None
    elif spec.form_factor == "pcie":
        assert spec.slot_width is not None and 1 <= spec.slot_width <= 4


@pytest.mark.parametrize("spec", GPUS, ids=lambda g: g.id)
def test_dtypes_match_the_architecture(spec: GpuSpec) -> None:
    cc = float(spec.compute_capability) if spec.compute_capability else None
    peaks = spec.peak_tflops
    if cc is None or cc < 8.0:  # Pascal, Volta, GCN: no BF16 or TF32 in hardware
        assert "bf16" not in peaks and "tf32" not in peaks
    if cc is None or cc < 8.9:  # FP8 arrived with Ada and Hopper
        assert "fp8" not in peaks


def test_volta_has_no_bf16() -> None:
    for spec in GPUS:
        if spec.architecture.startswith("Volta"):
            assert "bf16" not in spec.peak_tflops
            assert spec.peak_tflops["fp16"] >= 7 * spec.peak_tflops["fp32"]  # tensor cores


def test_h200_compute_equals_h100_sxm() -> None:
    h100, h200 = BY_ID["h100-sxm"], BY_ID["h200"]
    assert h200.peak_tflops == h100.peak_tflops
    assert BY_ID["h200-nvl"].peak_tflops == BY_ID["h100-nvl"].peak_tflops
    assert h200.memory_gib > h100.memory_gib
    assert h200.memory_bandwidth_gbs is not None and h100.memory_bandwidth_gbs is not None
    assert h200.memory_bandwidth_gbs > h100.memory_bandwidth_gbs


def test_variants_share_compute() -> None:
    a100s = [g for g in GPUS if g.id.startswith("a100-")]
    assert len(a100s) == 4 and all(g.peak_tflops == a100s[0].peak_tflops for g in a100s)
    assert BY_ID["v100-sxm2-16gb"].peak_tflops == BY_ID["v100-sxm2-32gb"].peak_tflops
    assert BY_ID["v100-pcie-16gb"].peak_tflops == BY_ID["v100-pcie-32gb"].peak_tflops


def test_well_known_headline_figures() -> None:
    assert BY_ID["h100-sxm"].peak_tflops["bf16"] == 989.4
    assert BY_ID["rtx-3090"].peak_tflops["fp16"] == 71  # FP32 accumulate, not 142
    assert BY_ID["rtx-4090"].peak_tflops["bf16"] == 165.2
    assert BY_ID["a100-sxm4-80gb"].peak_tflops["fp64"] == 19.5  # FP64 tensor core


def test_nvlink_bandwidth_per_direction() -> None:
    expected = {
        "v100-sxm2-16gb": 150.0,
        "a100-sxm4-80gb": 300.0,
        "h100-sxm": 450.0,
        "h200": 450.0,
        "rtx-3090": 56.25,
        "rtx-a6000": 56.25,
    }
    for gpu_id, gbs in expected.items():
        assert BY_ID[gpu_id].nvlink_gbs_per_direction == pytest.approx(gbs)
    for spec in GPUS:
        linked = spec.nvlink_version is not None
        assert linked == (spec.nvlink_gbs_per_direction is not None)
    assert BY_ID["rtx-4090"].nvlink_gbs_per_direction is None


def test_geforce_cards_do_not_do_pcie_p2p() -> None:
    geforce = [g for g in GPUS if g.name.startswith("GeForce")]
    assert len(geforce) == 10
    assert all(g.p2p_over_pcie is False for g in geforce)
    assert BY_ID["h100-sxm"].p2p_over_pcie is True


# ------------------------------------------------------------------- validation


def _entry(**overrides: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": "test-gpu",
        "name": "Test GPU",
        "vendor": "NVIDIA",
        "nvml_names": ["NVIDIA Test GPU"],
        "aliases": ["tgpu"],
        "architecture": "Testwell",
        "compute_capability": "9.0",
        "memory_gib": 24,
        "memory_bandwidth_gbs": 1000,
        "tdp_w": 300,
        "peak_tflops": {"fp32": 10, "bf16": 100},
        "sources": {
            "peak_tflops": "datasheet https://example.com/a",
            "memory": "datasheet https://example.com/b",
            "power": "datasheet https://example.com/c",
            "architecture": "https://example.com/d",
        },
    }
    entry.update(overrides)
    return entry


def _parse(*entries: dict[str, Any]) -> tuple[GpuSpec, ...]:
    return parse_catalog({"gpu": [copy.deepcopy(e) for e in entries]}, origin="test.toml")


def test_minimal_entry_parses() -> None:
    (spec,) = _parse(_entry())
    assert spec.memory_gib == 24.0 and spec.peak_tflops == {"fp32": 10.0, "bf16": 100.0}
    assert spec.form_factor is None and spec.p2p_over_pcie is None


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (_entry(memroy_gib=24), "did you mean 'memory_gib'"),
        ({k: v for k, v in _entry().items() if k != "memory_gib"}, "missing required"),
        (_entry(peak_tflops={"fp32": 10, "fp4": 20}), "unknown dtype"),
        (_entry(peak_tflops={"fp32": -1}), "peak_tflops.fp32"),
        (_entry(peak_tflops={}), "non-empty"),
        (_entry(sources={"memory": "x", "power": "x", "architecture": "x"}), "peak_tflops"),
        (_entry(sources={"peak_tflops": "x", "power": "x", "architecture": "x"}), "memory"),
        (
            _entry(
                sources={"peak_tflops": "x", "memory": "x", "power": "x", "architecture": "x"},
                transient_peak_w=450,
            ),
            "without sources.transient_peak_w",
        ),
        (
            _entry(
                sources={
                    "peak_tflops": "x",
                    "memory": "x",
                    "power": "x",
                    "architecture": "x",
                    "interconnect": "x",
                }
            ),
            "does not give",
        ),
        (_entry(sources={"peak_tflops": "x", "memory": "x", "speed": "x"}), "unknown field group"),
        (_entry(id="Not A Slug"), "slug"),
        (_entry(compute_capability="sm_90"), "compute_capability"),
        (_entry(form_factor="oam"), "form_factor"),
        (_entry(pcie_width=3), "pcie_width"),
        (_entry(memory_gib="24"), "memory_gib"),
        (_entry(p2p_over_pcie="yes"), "p2p_over_pcie"),
        (_entry(nvml_names="NVIDIA Test GPU"), "nvml_names"),
        (_entry(nvlink_links=4), "go together"),
        (_entry(transient_peak_w=200), "should exceed"),
    ],
)
def test_bad_entries_raise_clear_errors(entry: dict[str, Any], message: str) -> None:
    with pytest.raises(CatalogError, match=message) as info:
        _parse(entry)
    assert "test.toml: gpu[0]" in str(info.value)


def test_lookup_names_must_be_unique_across_gpus() -> None:
    other = _entry(id="other-gpu", name="Other GPU", nvml_names=[], aliases=["T-GPU"])
    with pytest.raises(CatalogError, match="already names 'test-gpu'"):
        _parse(_entry(), other)
    with pytest.raises(CatalogError, match="duplicate id"):
        _parse(_entry(), _entry(nvml_names=[], aliases=[], name="Twin"))


def test_malformed_documents() -> None:
    with pytest.raises(CatalogError, match="not valid TOML"):
        parse_catalog_bytes(b"[[gpu]\nid = ")
    with pytest.raises(CatalogError, match="unknown top-level"):
        parse_catalog({"gpu": [_entry()], "gpus": []})
    with pytest.raises(CatalogError, match="non-empty list"):
        parse_catalog({})
    assert issubclass(CatalogError, RigbenchError)
