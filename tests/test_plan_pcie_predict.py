"""PCIe, GPU-mix and fit checks with rigs that pass and fail each, and the predictions'
formulas against hand arithmetic and the seeds' measurements."""

from __future__ import annotations

from pathlib import Path

import pytest

from rigbench.catalog.models import find_model
from rigbench.links import pcie_gbs
from rigbench.plan import load_build, plan_build
from rigbench.plan.pcie import HOST_STAGED_EFFICIENCY, allreduce_s, ring
from rigbench.plan.predict import MFU, REFERENCE_TOKENS
from rigbench.plan.records import Finding, PlanReport, Prediction

BUILDS = Path(__file__).resolve().parent.parent / "examples" / "builds"
RIG = '[rig]\nname = "test"\n'
DESKTOP = (
    RIG + '[[gpu]]\nmodel = "RTX 3060"\n[[gpu]]\nmodel = "GTX 1060"\n'
    '[cpu]\nmodel = "i7-12700F"\n[motherboard]\nmodel = "Gigabyte B660M"\n'
)


def _plan(tmp_path: Path, text: str) -> PlanReport:
    path = tmp_path / "rig.toml"
    path.write_text(text)
    return plan_build(load_build(path))


def _one(findings: list[Finding]) -> Finding:
    assert len(findings) == 1, findings
    return findings[0]


def _pred(report: PlanReport, pid: str) -> Prediction:
    p = report.prediction(pid)
    assert p is not None and p.value is not None, pid
    return p


# ------------------------------------------------------------------ lanes


def test_lanes_asked_against_the_cpu(tmp_path: Path) -> None:
    # four full-width GPUs on a 20-lane desktop CPU, no board: a warning
    r = _plan(tmp_path, RIG + '[[gpu]]\nmodel = "RTX 3090"\ncount = 4\n[cpu]\nmodel = "5900X"\n')
    f = _one(r.finding("pcie.lanes"))
    assert f.severity == "warning"
    assert (f.evidence["lanes_asked"], f.evidence["cpu_lanes"]) == (64, 20)
    # the same GPUs on a 7955WX: 64 of 128
    ok = _plan(tmp_path, RIG + '[[gpu]]\nmodel = "RTX 3090"\ncount = 4\n[cpu]\nmodel = "7955WX"\n')
    assert _one(ok.finding("pcie.lanes")).severity == "info"
    # two sockets of E5-2680 v4 give 80; the T180's two switch uplinks ask 32
    v100 = plan_build(load_build(BUILDS / "v100-sxm2-server.toml"))
    lanes = _one(v100.finding("pcie.lanes"))
    assert (lanes.evidence["lanes_asked"], lanes.evidence["cpu_lanes"]) == (32, 80)
    # no CPU: said, not guessed
    none = _plan(tmp_path, RIG + '[[gpu]]\nmodel = "RTX 3090"\n')
    assert none.finding("pcie.no_cpu")


# ------------------------------------------------------------------ links


def test_an_x1_slot_costs_data_parallel_time(tmp_path: Path) -> None:
    # seed 001's desktop: 3060 in the x16 slot, 1060 in an x1 PCIe 3.0 slot
    r = _plan(
        tmp_path, DESKTOP.replace('model = "GTX 1060"\n', 'model = "GTX 1060"\nlink = "PCIEX1_1"\n')
    )
    f = _one(r.finding("pcie.narrow_link"))
    assert f.severity == "warning" and f.evidence["gpu"] == 1
    # 1B reference params, fp32 gradients: 2 x (1/2) x 4 GB, staged through host memory (no
    # P2P on GeForce): two copies in series, x1 Gen3 and the 3060's link, at seed 000's 0.72
    other = r.gpus[0]["host_gbs"]
    staged = HOST_STAGED_EFFICIENCY / (1 / pcie_gbs(3, 1) + 1 / other)
    assert f.evidence["allreduce_s"] == pytest.approx(4e9 / (staged * 1e9))
    assert f.evidence["allreduce_s"] > 10 * f.evidence["allreduce_s_at_best"]
    assert _one(r.finding("pcie.chipset_slot")).evidence["slot"] == "PCIEX1_1"
    # Iva's x8/x8 Gen4 links are not narrow
    iva = plan_build(load_build(BUILDS / "iva-2x3090.toml"))
    assert not iva.finding("pcie.narrow_link")


def test_a_narrow_link_on_a_lone_gpu_is_only_info(tmp_path: Path) -> None:
    r = _plan(tmp_path, RIG + '[[gpu]]\nmodel = "RTX 3090"\nlink = { gen = 3, width = 1 }\n')
    assert _one(r.finding("pcie.narrow_link")).severity == "info"


def test_link_predictions_per_gpu() -> None:
    tr = plan_build(load_build(BUILDS / "tr1920x-3x3090.toml"))
    assert [round(_pred(tr, f"link.gpu{i}").value or 0, 2) for i in range(3)] == [
        15.75,
        15.75,
        7.88,
    ]


# ------------------------------------------------------------------ P2P and NVLink


def test_p2p_reported_for_geforce_not_for_nvlink(tmp_path: Path) -> None:
    iva = plan_build(load_build(BUILDS / "iva-2x3090.toml"))
    assert _one(iva.finding("pcie.no_p2p")).evidence["gpus"] == [0, 1]
    a6000 = _plan(tmp_path, RIG + '[[gpu]]\nmodel = "RTX A6000"\ncount = 2\n')
    assert not a6000.finding("pcie.no_p2p")
    v100 = plan_build(load_build(BUILDS / "v100-sxm2-server.toml"))
    assert not v100.finding("pcie.no_p2p")  # the ring runs over NVLink


def test_ring_paths() -> None:
    v100 = load_build(BUILDS / "v100-sxm2-server.toml")
    r = ring(v100)
    assert r is not None and r.over == "nvlink"
    assert r.gbs == 2 * 25.0  # 6 links // 3 peers = 2 links per pair x 25 GB/s
    tr = load_build(BUILDS / "tr1920x-3x3090.toml")
    r = ring(tr)
    assert r is not None and r.over == "host" and r.slowest is not None
    # no P2P on GeForce: x8 and x16 Gen3 hops in series through host memory
    two_hops = 1 / (1 / pcie_gbs(3, 8) + 1 / pcie_gbs(3, 16))
    assert r.slowest.index == 2 and r.gbs == pytest.approx(HOST_STAGED_EFFICIENCY * two_hops)


def test_nvlink_bridge_pairs_two_cards(tmp_path: Path) -> None:
    path = tmp_path / "rig.toml"
    path.write_text(RIG + '[[gpu]]\nmodel = "RTX 3090"\ncount = 2\nnvlink = "bridge"\n')
    r = ring(load_build(path))
    assert r is not None and r.over == "nvlink" and r.gbs == pytest.approx(4 * 14.0625)
    path.write_text(RIG + '[[gpu]]\nmodel = "RTX 3090"\ncount = 4\nnvlink = "bridge"\n')
    r = ring(load_build(path))
    assert r is not None and r.over == "host"  # bridges link pairs only; no PCIe P2P


def test_sxm_without_a_board_is_noted(tmp_path: Path) -> None:
    r = _plan(tmp_path, RIG + '[[gpu]]\nmodel = "V100 SXM2 16GB"\ncount = 4\n')
    assert r.finding("pcie.sxm_baseboard")
    v100 = plan_build(load_build(BUILDS / "v100-sxm2-server.toml"))
    assert not v100.finding("pcie.sxm_baseboard")


# ------------------------------------------------------------------ mix


def test_mixed_models_warn(tmp_path: Path) -> None:
    m = plan_build(load_build(BUILDS / "minerva.toml"))
    f = _one(m.finding("mix.models"))
    assert f.severity == "warning" and "GeForce RTX 3090's pace" in f.why
    assert f.evidence["idle_share"] == pytest.approx(1 - 4 * 71 / (2 * 80 + 2 * 71))
    desk = _plan(tmp_path, DESKTOP)
    f = _one(desk.finding("mix.models"))
    assert f.evidence["dtype"] == "fp32"  # the 1060 has no bf16/fp16 tensor rate
    assert "smallest memory (6 GiB)" in f.why
    assert not plan_build(load_build(BUILDS / "iva-2x3090.toml")).finding("mix.models")


# ------------------------------------------------------------------ predictions


def test_compute_and_memory_sum_the_catalog() -> None:
    m = plan_build(load_build(BUILDS / "minerva.toml"))
    assert _pred(m, "compute.bf16").value == pytest.approx(2 * 80 + 2 * 71)
    assert _pred(m, "memory.total_gib").value == 96
    assert _pred(m, "memory.bandwidth_gbs").value == pytest.approx(2 * 1008 + 2 * 936)
    v100 = plan_build(load_build(BUILDS / "v100-sxm2-server.toml"))
    assert v100.prediction("compute.bf16") is None  # Volta has no bf16
    assert _pred(v100, "compute.fp64").value == pytest.approx(4 * 7.8)


def test_decode_bound_is_above_what_owners_measured() -> None:
    # Minerva, deepseek-r1:70b Q4_K_M over 4 GPUs (layers split): measured 13.33 tokens/s
    m = plan_build(load_build(BUILDS / "minerva.toml"))
    p = _pred(m, "decode.deepseek-r1-distill-llama-70b")
    preset = find_model("deepseek-r1:70b")
    assert preset is not None
    weights = preset.params * 4.85 / 8
    expected = 1 / sum(weights / 4 / (bw * 1e9) for bw in (1008, 1008, 936, 936))
    assert p.value == pytest.approx(expected, rel=0.01)
    assert 13.33 < (p.value or 0) < 30
    # the V100 server, Llama 3 70B at 5.5 bits: measured ~14 tokens/s
    v = _pred(plan_build(load_build(BUILDS / "v100-sxm2-server.toml")), "decode.llama-3-70b")
    assert 14 < (v.value or 0) < 25


def test_decode_splits(tmp_path: Path) -> None:
    base = RIG + '[[gpu]]\nmodel = "RTX 3090"\ncount = 2\n[[model]]\nparams = 8e9\n'
    tp = _pred(_plan(tmp_path, base + 'parallel = "tp"\n'), "decode.model0")
    pp = _pred(_plan(tmp_path, base + 'parallel = "pp"\n'), "decode.model0")
    one = _pred(_plan(tmp_path, base + 'parallel = "none"\n'), "decode.model0")
    assert tp.value == pytest.approx(936e9 / (16e9 / 2))
    assert pp.value == pytest.approx(one.value or 0) == pytest.approx(936e9 / 16e9)


def test_data_parallel_scaling_matches_the_v100_measurement() -> None:
    # seed 001: a ~300M-parameter model, 1 GPU 361 s, 4 GPUs 92 s = 3.92x
    v = _pred(
        plan_build(load_build(BUILDS / "v100-sxm2-server.toml")), "scaling.language-mixer-300m"
    )
    e = v.evidence
    assert e["compute_s"] == pytest.approx(6 * 300e6 * REFERENCE_TOKENS / (125e12 * MFU))
    assert e["allreduce_s"] == pytest.approx(allreduce_s(300e6 * 4, 4, 50.0))
    assert e["speedup_no_overlap"] < 3.92 <= e["speedup_full_overlap"]


def test_scaling_over_a_narrow_link_is_poor(tmp_path: Path) -> None:
    fast = _pred(plan_build(load_build(BUILDS / "iva-2x3090.toml")), "scaling.reference-1b")
    slow = _plan(
        tmp_path,
        RIG + '[[gpu]]\nmodel = "RTX 3090"\n'
        '[[gpu]]\nmodel = "RTX 3090"\nlink = { gen = 3, width = 1 }\n',
    )
    s = _pred(slow, "scaling.reference-1b")
    assert (fast.value or 0) > 1.6 and (s.value or 0) < 1.0


def test_no_p2p_is_priced_as_host_staged_copies() -> None:
    # seed 000 measured 11.3 GB/s GPU-to-GPU through the host, four cards on Gen4 x16
    r = ring(load_build(BUILDS / "minerva.toml"))
    assert r is not None and r.over == "host"
    assert r.gbs == pytest.approx(11.3, rel=0.05)
    # the same cards with P2P (data-center cards) would ring at the link's rate
    assert r.gbs < pcie_gbs(4, 16) / 2


# ------------------------------------------------------------------ fit


def test_fit_runs_for_each_model() -> None:
    m = plan_build(load_build(BUILDS / "minerva.toml"))
    f = _one(m.finding("fit.fits"))
    assert f.severity == "info" and f.evidence["max_context"] >= 60000
    (plan,) = m.fit
    assert plan["fits"] and [g["gpu"] for g in plan["gpus"]] == [0, 1, 2, 3]


def test_minerva_at_131k_context_does_not_fit(tmp_path: Path) -> None:
    # seed 000: num_ctx 131072 "spills over into 80gb of RAM"
    text = (BUILDS / "minerva.toml").read_text().replace("context = 60000", "context = 131072")
    r = _plan(tmp_path, text)
    f = _one(r.finding("fit.does_not_fit"))
    assert f.severity == "error" and r.exit_code == 2
    assert "a context of at most" in f.fix


def test_fit_problems_are_findings(tmp_path: Path) -> None:
    base = RIG + '[[gpu]]\nmodel = "RTX 3090"\ncount = 3\n'
    # 64 heads of Llama 3 70B do not split over 3 GPUs by tensor parallelism
    bad = _plan(tmp_path, base + '[[model]]\nname = "llama-3-70b"\nparallel = "tp"\n')
    assert _one(bad.finding("fit.invalid")).severity == "error"
    partial = _plan(tmp_path, base + '[[model]]\nparams = "7B"\n')
    assert _one(partial.finding("fit.incomplete")).severity == "info"
    train = _plan(
        tmp_path,
        base + '[[model]]\nname = "llama-3.1-8b"\nmode = "qlora"\ncontext = 2048\nbatch = 1\n',
    )
    assert _one(train.finding("fit.fits")).severity == "info"
    assert train.fit[0]["kind"] == "training"


def test_moe_decode_reads_only_the_active_parameters(tmp_path: Path) -> None:
    # Mixtral 8x7B: 12.9B of 46.7B parameters per token (its config.json); at 4 bits on one
    # RTX 3090 (936 GB/s) the bound is 936e9 / (12.88e9 x 0.5) = ~145 tokens/s, not the ~40
    # the total weights would give
    r = _plan(
        tmp_path,
        RIG + '[[gpu]]\nmodel = "RTX 3090"\n[[model]]\nname = "mixtral-8x7b"\n'
        'bits_per_weight = 4\nparallel = "none"\n',
    )
    p = _pred(r, "decode.mixtral-8x7b")
    assert p.evidence["params_read"] == 12_879_925_248
    assert p.value == pytest.approx(936e9 / (12_879_925_248 * 0.5))
    assert "12.9B of 46.7B" in p.basis


def test_decode_expectation_is_within_25_percent_of_the_seeds() -> None:
    # seed 000: deepseek-r1:70b Q4_K_M at num_ctx 60000 on 4 GPUs, 13.33 tokens/s
    m = _pred(
        plan_build(load_build(BUILDS / "minerva.toml")), "decode.deepseek-r1-distill-llama-70b"
    )
    assert m.evidence["expected_tokens_per_s"] == pytest.approx(13.33, rel=0.25)
    # seed 001: Llama 3 70B at 5.5 bits on 4 V100s, ~14 tokens/s
    v = _pred(plan_build(load_build(BUILDS / "v100-sxm2-server.toml")), "decode.llama-3-70b")
    assert v.evidence["expected_tokens_per_s"] == pytest.approx(14, rel=0.25)


def test_adjacent_triple_slot_cards_do_not_fit(tmp_path: Path) -> None:
    # RTX 3090: 3 slots thick (catalog slot_width, TechPowerUp); WRX90E-SAGE SE: seven x16
    # slots in consecutive positions (ASUS specifications)
    board = '[cpu]\nmodel = "7955WX"\n[motherboard]\nmodel = "WRX90E-SAGE SE"\n'
    tight = _plan(
        tmp_path,
        RIG + board + '[[gpu]]\nmodel = "RTX 3090"\ncount = 4\n',
    )
    spacing = tight.finding("pcie.slot_spacing")
    assert len(spacing) == 3 and all(f.severity == "warning" for f in spacing)
    assert spacing[0].evidence["upper_position"] == 1 and spacing[0].evidence["lower_position"] == 2
    spread = _plan(
        tmp_path,
        RIG
        + board
        + '[[gpu]]\nmodel = "RTX 3090"\ncount = 3\n'
        + 'link = ["PCIEX16(G5)_1", "PCIEX16(G5)_4", "PCIEX16(G5)_7"]\n',
    )
    assert not spread.finding("pcie.slot_spacing")


def test_a_physical_x1_slot_needs_a_riser(tmp_path: Path) -> None:
    r = _plan(
        tmp_path, DESKTOP.replace('model = "GTX 1060"\n', 'model = "GTX 1060"\nlink = "PCIEX1_1"\n')
    )
    (f,) = r.finding("pcie.riser_needed")
    assert f.evidence["physical"] == 1 and f.gpus == [1]


def test_a_gpu_behind_the_chipset_in_a_ring_is_a_warning(tmp_path: Path) -> None:
    # MSI X570 Unify manual: PCI_E5 hangs off the X570 chipset, whose link to the CPU is
    # PCIe 4.0 x4 (7.88 GB/s per direction), shared with the M.2 drives, USB and LAN
    rig = RIG + '[cpu]\nmodel = "5900X"\n[motherboard]\nmodel = "X570 Unify"\n'
    r = _plan(
        tmp_path,
        rig + '[[gpu]]\nmodel = "RTX 3090"\nlink = "PCI_E1"\n'
        '[[gpu]]\nmodel = "RTX 3090"\nlink = "PCI_E5"\n',
    )
    (f,) = r.finding("pcie.chipset_slot")
    assert f.severity == "warning" and f.evidence["uplink_gbs"] == pytest.approx(pcie_gbs(4, 4))
    alone = _plan(tmp_path, rig + '[[gpu]]\nmodel = "RTX 3090"\nlink = "PCI_E5"\n')
    (g,) = alone.finding("pcie.chipset_slot")
    assert g.severity == "info"  # one GPU: no data-parallel ring waits on it


@pytest.mark.parametrize(
    ("cpu", "board", "third_width"),
    [
        ("Ryzen 9 7950X", "ProArt X670E-CREATOR", 2),  # ASUS: X670 chipset slot x2
        ("i9-14900K", "ProArt Z790-CREATOR", 4),  # ASUS: Z790 chipset slot x4
    ],
)
def test_desktop_platforms_split_x8_x8_and_put_a_third_gpu_behind_the_chipset(
    tmp_path: Path, cpu: str, board: str, third_width: int
) -> None:
    rig = RIG + f'[cpu]\nmodel = "{cpu}"\n[motherboard]\nmodel = "{board}"\n'
    r = _plan(tmp_path, rig + '[[gpu]]\nmodel = "RTX 4090"\ncount = 3\n')
    links = [(g["link"], g["slot"]) for g in r.gpus]
    assert links[0][0] == links[1][0] == "Gen4 x8"  # the CPU's x16 split, a 4090 is Gen4
    assert links[2][0] == f"Gen4 x{third_width}"
    (f,) = r.finding("pcie.chipset_slot")
    assert f.severity == "warning" and f.evidence["gpu"] == 2


def test_wrx80_gives_four_gpus_x16_from_the_cpu(tmp_path: Path) -> None:
    # AMD: Threadripper PRO 5975WX, 128 PCIe 4.0 lanes; ASUS WRX80E-SAGE SE: seven x16 slots
    rig = RIG + '[cpu]\nmodel = "5975WX"\n[motherboard]\nmodel = "WRX80E-SAGE SE"\n'
    r = _plan(
        tmp_path,
        rig + '[[gpu]]\nmodel = "RTX 3090"\ncount = 4\n'
        'link = ["PCIE_1", "PCIE_3", "PCIE_5", "PCIE_7"]\n',
    )
    assert all(g["link"] == "Gen4 x16" for g in r.gpus)
    (lanes,) = r.finding("pcie.lanes")
    assert lanes.severity == "info" and "64 of the 128" in lanes.title
    # every other slot leaves one position free: not enough for 3-slot coolers
    assert len(r.finding("pcie.slot_spacing")) == 3
