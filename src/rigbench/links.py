"""What a link should carry: PCIe generation x width, NVLink links x per-link rate, and the
slowest hop on a GPU-to-GPU path. Figures are per direction, GB/s (1e9 bytes/s), the
raw signalling rate after line encoding; real transfers reach about 80-90 % of PCIe's
figure because of packet headers."""

from __future__ import annotations

from rigbench.catalog import find_gpu
from rigbench.hw.model import PCIE_PATH_MEANING, GpuInfo, PairLink
from rigbench.records import Expectation

# GT/s per lane and line-code efficiency (PCI-SIG base specifications 1.0-6.0;
# Gen6 runs FLIT mode, 242 payload bytes of every 256).
_PCIE_LANE = {
    1: (2.5, 8 / 10),
    2: (5.0, 8 / 10),
    3: (8.0, 128 / 130),
    4: (16.0, 128 / 130),
    5: (32.0, 128 / 130),
    6: (64.0, 242 / 256),
}

# Per link, per direction, GB/s, by NVLink generation (NVIDIA P100/V100/A100/H100/B200
# architecture whitepapers). GPUs with narrower links (GA102's bridge) carry their own
# rate in the catalog.
_NVLINK_PER_LINK = {1: 20.0, 2: 25.0, 3: 25.0, 4: 25.0, 5: 50.0}


def pcie_gbs(gen: int, width: int) -> float:
    """Per-direction bandwidth of a PCIe link, GB/s."""
    if gen not in _PCIE_LANE:
        raise ValueError(f"unknown PCIe generation {gen}")
    gts, efficiency = _PCIE_LANE[gen]
    return gts * efficiency / 8 * width


def link_name(gen: int | None, width: int | None) -> str:
    return f"Gen{gen if gen else '?'} x{width if width else '?'}"


def expected_host_link(gpu: GpuInfo) -> Expectation | None:
    """What the GPU's PCIe link to the CPU should carry, from what the GPU and slot allow
    together (a link that trained down under load shows as a low ratio)."""
    p = gpu.pcie
    gen, width = p.gen_max or p.gen_current, p.width_max or p.width_current
    if not gen or not width:
        return None
    basis = f"PCIe {link_name(gen, width)}, {pcie_gbs(gen, width):.1f} GB/s per direction"
    if p.gpu_width_max and p.gpu_width_max > width:
        basis += f" (the GPU can do x{p.gpu_width_max}: the slot or riser limits it)"
    elif p.gpu_gen_max and p.gpu_gen_max > gen:
        basis += f" (the GPU can do Gen{p.gpu_gen_max}: the slot or riser limits it)"
    return Expectation(value=pcie_gbs(gen, width), unit="GB/s", basis=basis)


def nvlink_per_link_gbs(gpu_name: str, version: int | None) -> float | None:
    spec = find_gpu(gpu_name)
    if spec is not None and spec.nvlink_gbs_per_link:
        return spec.nvlink_gbs_per_link
    return _NVLINK_PER_LINK.get(version or 0)


def expected_pair(pair: PairLink, a: GpuInfo, b: GpuInfo) -> Expectation | None:
    """The per-direction bandwidth the path between two GPUs should give."""
    if pair.nvlink_count:
        per_link = nvlink_per_link_gbs(a.name, pair.nvlink_version)
        if per_link is None:
            return None
        via = " via NVSwitch" if pair.via_nvswitch else ""
        version = f"NVLink{pair.nvlink_version}" if pair.nvlink_version else "NVLink"
        value = pair.nvlink_count * per_link
        return Expectation(
            value=value,
            unit="GB/s",
            basis=f"{version} x{pair.nvlink_count}{via}, {per_link:g} GB/s per link per direction",
        )
    ea, eb = expected_host_link(a), expected_host_link(b)
    if ea is None or eb is None:
        return None
    slow, slow_gpu = (ea, a) if ea.value <= eb.value else (eb, b)
    path = pair.pcie_path or "?"
    basis = f"PCIe path {path}"
    if path in PCIE_PATH_MEANING:
        basis += f" ({PCIE_PATH_MEANING[path]})"
    basis += f"; slowest hop GPU{slow_gpu.index} {slow.basis}"
    if pair.p2p != "ok":
        basis += "; no P2P: copies are staged through host memory"
    return Expectation(value=slow.value, unit="GB/s", basis=basis)
