from __future__ import annotations

import pytest

from rigbench.hw.model import GpuInfo, PairLink, PcieLink
from rigbench.links import expected_host_link, expected_pair, pcie_gbs
from rigbench.stats import percentile, summarize


def test_summarize_known_values() -> None:
    s = summarize([4.0, 1.0, 3.0, 2.0, 5.0])
    assert (s.n, s.min, s.p50, s.max, s.mean) == (5, 1.0, 3.0, 5.0, 3.0)
    assert s.p10 == pytest.approx(1.4)
    assert s.stdev == pytest.approx(1.5811, rel=1e-4)


def test_percentile_of_one_value() -> None:
    assert percentile([7.0], 99) == 7.0
    with pytest.raises(ValueError):
        percentile([], 50)


@pytest.mark.parametrize(
    ("gen", "width", "gbs"),
    [(1, 16, 4.0), (2, 16, 8.0), (3, 16, 15.75), (4, 16, 31.51), (5, 16, 63.02), (3, 1, 0.985)],
)
def test_pcie_rates(gen: int, width: int, gbs: float) -> None:
    assert pcie_gbs(gen, width) == pytest.approx(gbs, rel=1e-3)


def _gpu(i: int, gen: int, width: int, **kw: int) -> GpuInfo:
    return GpuInfo(
        index=i,
        name="NVIDIA GeForce RTX 3090",
        pcie=PcieLink(gen_current=gen, width_current=width, gen_max=gen, width_max=width, **kw),
    )


def test_host_link_says_when_the_slot_limits_the_gpu() -> None:
    exp = expected_host_link(_gpu(1, 3, 1, gpu_width_max=16))
    assert exp is not None
    assert exp.value == pytest.approx(0.985, rel=1e-3)
    assert "slot or riser limits it" in exp.basis


def test_pcie_pair_is_its_slowest_hop() -> None:
    a, b = _gpu(0, 4, 16), _gpu(1, 4, 8)
    exp = expected_pair(PairLink(a=0, b=1, pcie_path="PHB", p2p="unsupported"), a, b)
    assert exp is not None
    assert exp.value == pytest.approx(pcie_gbs(4, 8))
    assert "GPU1" in exp.basis and "staged through host memory" in exp.basis


def test_nvlink_pair_counts_links() -> None:
    a = GpuInfo(index=0, name="Tesla V100-SXM2-16GB")
    b = GpuInfo(index=1, name="Tesla V100-SXM2-16GB")
    exp = expected_pair(PairLink(a=0, b=1, nvlink_count=2, nvlink_version=2, p2p="ok"), a, b)
    assert exp is not None and exp.value == pytest.approx(50.0)
    assert "NVLink2 x2" in exp.basis
