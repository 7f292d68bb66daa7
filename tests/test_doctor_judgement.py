"""Issue 13: doctor judges like a careful colleague. Idle readings are not faults, a busy
GPU is not an outlier against idle ones, fixes are the narrowest that work, and inputs
that were not judged before (kernel-log lines, NCCL environment, network ports) are."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from rigbench.cli import app
from rigbench.doctor.context import DoctorInput
from rigbench.doctor.platform import _socket_ifname_matches, check_env
from rigbench.doctor.probes import ProbeResults
from rigbench.doctor.run import CHECKS, run_doctor
from rigbench.hw.health import HealthInfo, HostHealth
from rigbench.hw.kernel import api_mismatch_versions, parse_kernel_events, parse_xids
from rigbench.hw.model import GpuInfo, Rig
from rigbench.hw.simulated import SimulatedBackend

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "simulated"
runner = CliRunner()
NO_PROBES = [c.name for c in CHECKS if not ({"p2p", "all_reduce"} & set(c.probes))]


def findings(rig: str, checks: list[str]) -> dict[str, dict]:  # type: ignore[type-arg]
    report = run_doctor(SimulatedBackend.from_file(EXAMPLES / rig), checks)
    return {f.id: f.to_dict() for f in report.findings}


def cli(*args: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    res = runner.invoke(app, ["doctor", "--json", *args])
    return res.exit_code, json.loads(res.stdout)


# --- idle vs under load --------------------------------------------------------------------


def test_a_link_at_gen1_at_idle_is_power_saving_not_a_fault() -> None:
    found = findings("rtx4090-x1-idle.toml", ["pcie"])
    assert set(found) == {"pcie.ok"}
    assert found["pcie.ok"]["evidence"]["links_at_idle"] == {"GPU 0": "Gen1 x16"}
    assert found["pcie.ok"]["evidence"]["links_under_load"] == {"GPU 0": "Gen4 x16 of Gen4 x16"}


def test_only_the_link_under_load_is_judged() -> None:
    found = findings("tr1920x-3x3090-riser-idle-gen1-load-gen2.toml", ["pcie"])
    bad = found["pcie.link_degraded"]
    assert bad["gpus"] == [2]  # GPUs 0-1 also read Gen1 at idle, Gen3 under load: fine
    assert bad["evidence"]["now"] == "Gen2 x8" and bad["evidence"]["idle"] == "Gen1 x8"


def test_a_busy_gpu_is_not_an_outlier_against_idle_ones() -> None:
    found = findings("a100-4x-sxm4-nvlink.toml", ["temperature"])
    assert "temperature.outlier" not in found  # 68 C busy vs 33 C idle
    hot = findings("v100-sxm2-server-hot-gpu.toml", ["temperature"])
    assert hot["temperature.outlier"]["gpus"] == [2]  # all four busy: 85 vs 58 C


# --- the right fixes ---------------------------------------------------------------------------


def test_corruption_on_pcie_pairs_of_a_mixed_rig_keeps_nvlink() -> None:
    code, out = cli("--simulate", str(EXAMPLES / "mixed-nvlink-pcie-corrupt.toml"), "--only", "p2p")
    assert code == 2
    (bad,) = [f for f in out["findings"] if f["id"] == "p2p.corrupt"]
    assert bad["evidence"]["pairs"] == ["0-2", "0-3", "1-2", "1-3"]  # not the NVLink pairs
    assert "NCCL_P2P_LEVEL=NVL" in bad["fix"] and "iommu=pt" in bad["fix"]
    assert "NCCL_P2P_DISABLE=1" not in bad["fix"]
    assert bad["origin"] == "measurement" and "nccl-p2p-level" in bad["source"]


def test_clocks_locked_quotes_seed_001_as_a_drop() -> None:
    f = findings("v100-sxm2-server-capped.toml", ["clocks"])["clocks.locked"]
    assert "13 % drop" in (f["why"] or "") and "13 % of" not in (f["why"] or "")
    assert "V100 server write-up" in f["source"]


def test_driver_library_mismatch_says_reboot_not_reinstall() -> None:
    found = findings("driver-library-mismatch.toml", ["inventory", "kernel"])
    for key in ("inventory.driver_not_loaded", "kernel.driver_api_mismatch"):
        assert found[key]["fix"].startswith("Reboot"), key
        assert "Install the NVIDIA driver" not in found[key]["fix"]
    assert found["kernel.driver_api_mismatch"]["evidence"]["kernel_module"] == "550.107.02"
    assert found["kernel.driver_api_mismatch"]["evidence"]["user_space"] == "550.120"


def test_a_deep_clock_lock_warns_a_lock_near_boost_does_not() -> None:
    f = findings("tr1920x-3x3090-clocks-locked-low.toml", ["clocks"])["clocks.locked_range"]
    assert f["severity"] == "warning" and f["evidence"]["locked_sm_mhz"] == [210, 1200]


def test_fabric_manager_and_error_802_on_an_nvswitch_rig() -> None:
    found = findings("h100-8x-nvswitch-no-fabricmanager.toml", ["fabricmanager", "driver"])
    assert "nvidia-fabricmanager" in found["fabricmanager.not_running"]["fix"]
    assert "550.54.15" in found["fabricmanager.not_running"]["fix"]  # the driver's version
    assert "fabricmanager" in found["driver.cuda_init_802"]["fix"]
    healthy = findings("h100-8x-nvswitch.toml", ["fabricmanager"])
    assert set(healthy) == {"fabricmanager.ok"}


def test_an_unused_port_of_a_dual_port_card_is_not_a_fault() -> None:
    found = findings("l40s-4x-ib-port-slow.toml", ["network"])
    assert found["network.rdma_port_down"]["severity"] == "info"  # two other ports are up
    assert found["network.rdma_port_slow"]["evidence"]["rate_gbps"] == 200.0


def test_one_gpu_with_its_nvlinks_down_is_not_a_warning() -> None:
    f = findings("h200-x1.toml", ["nvlink"])["nvlink.down"]
    assert f["severity"] == "info" and f["fix"] is None


# --- kernel log -------------------------------------------------------------------------------

LOG = """\
[   12.000100] pcieport 0000:40:01.1: AER: Corrected error received: 0000:41:00.0
[   12.000110] nvidia 0000:41:00.0: PCIe Bus Error: severity=Corrected, type=Physical Layer, (Receiver ID)
[   13.000000] AMD-Vi: Event logged [IO_PAGE_FAULT device=41:00.0 domain=0x000e address=0xfd0000 flags=0x0020]
[   13.500000] nvidia 0000:42:00.0: AMD-Vi: Event logged [IO_PAGE_FAULT domain=0x0000 address=0x0 flags=0x0020]
[   14.000000] DMAR: [DMA Read NO_PASID] Request device [43:00.0] fault addr 0x7b8000 [fault reason 0x06] PTE Read access is not set
[   15.000000] NVRM: API mismatch: the client has the version 535.104.05, but
[   15.000000] NVRM: this kernel module has the version 535.86.10.  Please
[   15.000000] NVRM: make sure that this kernel module and all NVIDIA driver
[ 3600.500000] NVRM: Xid (PCI:0000:41:00): 154, GPU recovery action changed from 0x0 (None) to 0x2 (Node Reboot Required)
"""


def test_kernel_log_lines_besides_xid() -> None:
    events = parse_kernel_events(LOG)
    assert [(e.kind, e.pci) for e in events] == [
        ("aer", "0000:41:00.0"),  # the two lines of one error count once
        ("iommu_fault", "0000:41:00.0"),  # AMD-Vi, old format
        ("iommu_fault", "0000:42:00.0"),  # AMD-Vi, device prefix
        ("iommu_fault", "0000:43:00.0"),  # Intel DMAR
        ("api_mismatch", None),
    ]
    assert api_mismatch_versions(events[-1].line) == ("535.104.05", "535.86.10")
    (xid,) = parse_xids(LOG)
    assert (xid.code, xid.time_s) == (154, 3600.5)


def test_xid_154_names_the_recovery_action_and_counts_over_time() -> None:
    found = findings("l40s-4x-xid154-intermittent.toml", ["xid"])
    assert found["xid.154"]["evidence"]["recovery_action"] == ["GPU Reset Required"]
    assert found["xid.154"]["severity"] == "error"
    again = found["xid.119"]
    assert again["evidence"]["count"] == 3 and again["evidence"]["span_hours"] > 8
    assert "intermittent" in again["why"]


def test_seed_004_iommu_page_faults_point_at_iommu_pt() -> None:
    f = findings("tr1920x-3x3090-iommu-page-fault.toml", ["kernel"])["kernel.iommu_page_fault"]
    assert f["severity"] == "error" and f["gpus"] == [0, 1]
    assert "iommu=pt" in f["fix"] and "pytorch/pytorch/issues/52142" in f["source"]


# --- environment -----------------------------------------------------------------------------


def test_socket_ifname_follows_nccl_prefix_rules() -> None:
    names = ["eno1", "enp65s0f0", "ib0"]
    assert _socket_ifname_matches("eno", names) == []  # a prefix
    assert _socket_ifname_matches("=eno", names) == ["eno"]  # '=': the exact name
    assert _socket_ifname_matches("^docker", names) == []  # exclusions name nothing missing
    assert _socket_ifname_matches("eth0,ib", names) == ["eth0"]


def _env_findings(env: dict[str, str], n: int = 4) -> dict[str, dict]:  # type: ignore[type-arg]
    rig = Rig(
        source="nvml",
        gpus=[
            GpuInfo(index=i, name="A", uuid=f"GPU-{i}aaaaaaa-0000-0000-0000-000000000000")
            for i in range(n)
        ],
    )
    host = HostHealth(env=env, net_ports=[])
    d = DoctorInput(rig=rig, health=HealthInfo(host=host), probes=ProbeResults())
    return {f.id: f.to_dict() for f in check_env(d)}


def test_cuda_visible_devices_that_match_no_gpu() -> None:
    past_end = _env_findings({"CUDA_VISIBLE_DEVICES": "0,7"})["env.cuda_visible_devices_invalid"]
    assert past_end["severity"] == "warning" and past_end["evidence"]["not_matching"] == ["7"]
    foreign = _env_findings({"CUDA_VISIBLE_DEVICES": "GPU-deadbeef"})
    assert foreign["env.cuda_visible_devices_invalid"]["severity"] == "error"  # CUDA sees none
    by_uuid = _env_findings({"CUDA_VISIBLE_DEVICES": "GPU-1aaa,0"})
    assert "env.cuda_visible_devices_invalid" not in by_uuid  # UUID prefixes are valid


def test_nccl_conf_is_judged_like_the_environment() -> None:
    found = findings("l40s-4x-nccl-env-wrong.toml", ["env"])
    assert "(in /etc/nccl.conf)" in found["env.nccl_algo"]["title"]
    assert found["env.nccl_ib_disable"]["severity"] == "warning"  # the host has IB ports
    assert found["env.nccl_socket_ifname"]["severity"] == "error"


# --- every finding carries its origin; warnings and errors their source ------------------------


def test_json_findings_carry_source_and_origin() -> None:
    for path in sorted(EXAMPLES.glob("*.toml")):
        report = run_doctor(SimulatedBackend.from_file(path), NO_PROBES)
        for f in report.findings:
            d = f.to_dict()
            assert {"id", "severity", "evidence", "fix", "source", "origin"} <= set(d)
            if f.severity in ("warning", "error"):
                assert f.source and f.origin, (path.name, f.id)


# --- measured pairs and the bench after a hang -------------------------------------------------


def test_a_pair_at_half_the_rate_of_identical_paths_is_slow() -> None:
    code, out = cli("--simulate", str(EXAMPLES / "minerva-4x3090-slow-pair.toml"), "--only", "p2p")
    (slow,) = [f for f in out["findings"] if f["id"] == "p2p.slow_pair"]
    assert slow["gpus"] == [1, 2] and slow["evidence"]["median_same_path_gbps"] == 11.3
    assert code == 1
    code, out = cli("--simulate", str(EXAMPLES / "minerva-4x3090.toml"), "--only", "p2p")
    assert code == 0 and not [f for f in out["findings"] if f["id"] == "p2p.slow_pair"]


def test_bench_skips_what_depends_on_a_hung_pair() -> None:
    from rigbench.bench.suite import build_plan, run_plan
    from rigbench.records import Result

    rig = SimulatedBackend.from_file(EXAMPLES / "tr1920x-3x3090-p2p-hang.toml").rig()
    plan = build_plan(
        rig,
        gpus=[0, 1, 2],
        only=["p2p", "collectives"],
        mode="quick",
        cuda_available=False,
        step_timeout_s=1,  # the hung pair's; every other step is skipped, none runs
    )
    results: list[Result] = []
    aborted = run_plan(plan, results.append)
    p2p = [r for r in results if r.benchmark == "p2p"]
    assert [r.reason for r in p2p] == ["hang", "skipped_dependency", "skipped_dependency"]
    assert aborted == ["p2p:0-1"]
    coll = [r for r in results if r.benchmark == "collectives"]
    assert coll and all(r.reason == "skipped_dependency" for r in coll)
    assert coll[0].message == "not run: P2P hangs between GPU0 and GPU1"


def test_no_hang_fix_disables_nvlink() -> None:
    from rigbench.doctor.links import check_p2p
    from rigbench.doctor.probes import PairProbe

    for rig_file, hung in (
        ("v100-sxm2-server-loose-socket.toml", (0, 1)),  # NVLink pair
        ("mixed-nvlink-pcie-corrupt.toml", (0, 2)),  # PCIe pair on a rig with NVLink
    ):
        backend = SimulatedBackend.from_file(EXAMPLES / rig_file)
        rig = backend.rig()
        pairs = [
            PairProbe(a=p.a, b=p.b, status="hang" if (p.a, p.b) == hung else "ok", reason=None)
            for p in rig.pairs
        ]
        d = DoctorInput(rig=rig, health=backend.health(rig), probes=ProbeResults(pairs=pairs))
        (f,) = [f for f in check_p2p(d) if f.id == "p2p.hang"]
        assert "NCCL_P2P_DISABLE=1" not in (f.fix or ""), rig_file
    assert "NCCL_P2P_LEVEL=NVL" in (f.fix or "")


def test_new_rig_file_keys_are_checked(tmp_path: Path) -> None:
    import pytest

    from rigbench.errors import SimulationFileError

    base = '[rig]\nname = "x"\n[[gpu]]\nname = "NVIDIA GeForce RTX 3090"\n'
    bad = {
        "utilization_pct": "[gpu.health]\nutilization_pct = 150\n",
        "locked_sm_clock_mhz": "[gpu.health]\nlocked_sm_clock_mhz = [1200, 210]\n",
        "gen_loaded": "pcie = { gen_loaded = 4, gen_max = 3 }\n",
        "fabric_manager": '[health]\nfabric_manager = "maybe"\n',
        "kind": '[health]\nnet = [{ name = "ib0", kind = "token-ring" }]\n',
    }
    for key, text in bad.items():
        path = tmp_path / f"{key}.toml"
        path.write_text(base + text)
        with pytest.raises(SimulationFileError, match=key):
            SimulatedBackend.from_file(path)
