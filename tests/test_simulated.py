"""The simulated backend: the shipped rigs load, the format's rules hold, bad files fail well."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rigbench.errors import SimulationFileError
from rigbench.hw.model import PairLink, Rig
from rigbench.hw.simulated import SimulatedBackend

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "simulated"
SHIPPED = sorted(EXAMPLES.glob("*.toml"))

HEAD = '[rig]\nname = "test rig"\n'
GPU = '[[gpu]]\nname = "NVIDIA GeForce RTX 3090"\n'


def load(path: Path) -> Rig:
    return SimulatedBackend.from_file(path).rig()


def pair_of(rig: Rig, a: int, b: int) -> PairLink:
    pair = rig.pair(a, b)
    assert pair is not None
    return pair


def write(tmp_path: Path, text: str, name: str = "rig.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --- the shipped examples ------------------------------------------------------------------


def test_the_expected_examples_ship() -> None:
    names = {p.name for p in SHIPPED}
    assert names >= {
        "minerva-4x3090.toml",
        "v100-sxm2-server.toml",
        "v100-sxm2-server-lost-gpu.toml",
        "desktop-3060-1060-x1.toml",
        "iva-2x3090.toml",
        "tr1920x-3x3090-p2p-hang.toml",
        "tr1920x-3x3090-fixed.toml",
        "riser-x1-gen3.toml",
        "p2p-corrupt.toml",
        "h100-8x-nvswitch.toml",
        "cpu-only.toml",
    }


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_example_loads(path: Path) -> None:
    backend = SimulatedBackend.from_file(path)
    assert backend.kind == "simulated"
    rig = backend.rig()
    assert rig.source == f"simulated:{path.name}"
    n = len(rig.gpus)
    assert [g.index for g in rig.gpus] == list(range(n))
    assert len(rig.pairs) == n * (n - 1) // 2
    assert [(p.a, p.b) for p in rig.pairs] == [(a, b) for a in range(n) for b in range(a + 1, n)]
    assert len({g.uuid for g in rig.gpus}) == n
    assert len({g.bus_id for g in rig.gpus}) == n
    for gpu in rig.gpus:
        assert gpu.uuid and re.fullmatch(r"GPU-[0-9a-f-]{36}", gpu.uuid)
        assert gpu.bus_id and re.fullmatch(
            r"[0-9A-F]{8}:[0-9A-F]{2}:[0-9A-F]{2}\.[0-7]", gpu.bus_id
        )
    for key in rig.p2p_faults:
        a, b = (int(x) for x in key.split("-"))
        assert rig.pair(a, b) is not None


def test_every_example_is_in_the_readme() -> None:
    readme = (EXAMPLES / "README.md").read_text()
    for path in SHIPPED:
        assert f"`{path.name}`" in readme


def test_the_readme_sample_is_a_valid_file(tmp_path: Path) -> None:
    readme = (EXAMPLES / "README.md").read_text()
    sample = re.search(r"```toml\n(.*?)```", readme, re.S)
    assert sample is not None
    rig = load(write(tmp_path, sample.group(1)))
    assert [g.index for g in rig.gpus] == [0, 1]
    assert pair_of(rig, 0, 1).topo_code == "NV4"
    assert rig.p2p_faults == {"0-1": "hang"}


def test_minerva_matches_the_write_up() -> None:
    rig = load(EXAMPLES / "minerva-4x3090.toml")
    assert [g.name for g in rig.gpus] == [
        "NVIDIA GeForce RTX 3090 Ti",
        "NVIDIA GeForce RTX 3090",
        "NVIDIA GeForce RTX 3090",
        "NVIDIA GeForce RTX 3090 Ti",
    ]
    assert [g.bus_id for g in rig.gpus] == [
        "00000000:01:00.0",
        "00000000:21:00.0",
        "00000000:C1:00.0",
        "00000000:E1:00.0",
    ]
    assert all(g.power_limit_w == 300 for g in rig.gpus)
    assert [g.power_default_limit_w for g in rig.gpus] == [450, 350, 350, 450]
    assert all(g.pcie.gen_current == 4 and g.pcie.width_current == 16 for g in rig.gpus)
    assert all(p.p2p == "unsupported" and p.nvlink_count == 0 for p in rig.pairs)
    assert rig.system.driver_version == "560.35.03"
    assert rig.system.kernel == "6.8.0-52-generic"
    assert rig.p2p_faults == {}


def test_v100_server_and_its_lost_gpu() -> None:
    healthy = load(EXAMPLES / "v100-sxm2-server.toml")
    lost = load(EXAMPLES / "v100-sxm2-server-lost-gpu.toml")
    assert len(healthy.gpus) == 4 and len(healthy.pairs) == 6
    assert all(g.name == "Tesla V100-SXM2-16GB" for g in healthy.gpus)
    assert all(p.topo_code == "NV2" and p.nvlink_version == 2 for p in healthy.pairs)
    assert all(g.pcie.gen_current == 3 and g.pcie.width_current == 16 for g in healthy.gpus)
    assert healthy.system.driver_version == "535.172.04"
    assert healthy.system.cuda_driver_version == "12.2"
    assert len(lost.gpus) == 3 and len(lost.pairs) == 3
    # Same rig name: the survivors keep their UUIDs.
    assert [g.uuid for g in lost.gpus] == [g.uuid for g in healthy.gpus[:3]]
    assert all(g.nvlink_active_links == 4 for g in lost.gpus)


def test_x1_slot_and_riser_show_as_the_gap_to_the_max() -> None:
    desktop = load(EXAMPLES / "desktop-3060-1060-x1.toml")
    gtx = desktop.gpus[1].pcie
    assert (gtx.width_current, gtx.width_max, gtx.gpu_width_max) == (1, 1, 16)
    riser = load(EXAMPLES / "riser-x1-gen3.toml").gpus[1].pcie
    assert (riser.gen_current, riser.width_current) == (3, 1)
    assert (riser.gen_max, riser.width_max, riser.gpu_gen_max, riser.gpu_width_max) == (
        4,
        16,
        4,
        16,
    )


def test_tr1920x_hang_and_fix() -> None:
    hang = load(EXAMPLES / "tr1920x-3x3090-p2p-hang.toml")
    fixed = load(EXAMPLES / "tr1920x-3x3090-fixed.toml")
    assert hang.p2p_faults == {"0-1": "hang", "0-2": "hang", "1-2": "hang"}
    assert all(p.p2p == "ok" for p in hang.pairs)
    assert hang.system.driver_version is not None and hang.system.driver_version.startswith("545")
    assert fixed.p2p_faults == {}
    assert fixed.system.driver_version is not None and fixed.system.driver_version.startswith("535")
    assert all(g.power_limit_w == 285 and g.power_default_limit_w == 350 for g in fixed.gpus)


def test_p2p_corrupt() -> None:
    rig = load(EXAMPLES / "p2p-corrupt.toml")
    assert rig.p2p_faults == {"0-1": "corrupt"}
    assert rig.pairs[0].p2p == "ok"


def test_h100_node() -> None:
    rig = load(EXAMPLES / "h100-8x-nvswitch.toml")
    assert len(rig.gpus) == 8 and len(rig.pairs) == 28
    assert all(g.name == "NVIDIA H100 80GB HBM3" for g in rig.gpus)
    assert all(p.via_nvswitch and p.nvlink_count == 18 and p.nvlink_version == 4 for p in rig.pairs)
    assert all(g.pcie.gen_current == 5 and g.power_limit_w == 700 for g in rig.gpus)
    assert [g.numa_node for g in rig.gpus] == [0, 0, 0, 0, 1, 1, 1, 1]
    assert pair_of(rig, 0, 4).pcie_path == "SYS"
    assert pair_of(rig, 0, 1).pcie_path == "NODE"


def test_cpu_only() -> None:
    rig = load(EXAMPLES / "cpu-only.toml")
    assert rig.gpus == [] and rig.pairs == [] and rig.p2p_faults == {}
    assert "driver_version" in rig.system.unavailable


# --- the format's rules --------------------------------------------------------------------


def test_count_expands_and_indices_follow_file_order(tmp_path: Path) -> None:
    text = HEAD + GPU + "count = 3\n" + '[[gpu]]\nname = "NVIDIA GeForce RTX 3060"\n'
    rig = load(write(tmp_path, text))
    assert [(g.index, g.name) for g in rig.gpus] == [
        (0, "NVIDIA GeForce RTX 3090"),
        (1, "NVIDIA GeForce RTX 3090"),
        (2, "NVIDIA GeForce RTX 3090"),
        (3, "NVIDIA GeForce RTX 3060"),
    ]
    assert len(rig.pairs) == 6


def test_pair_defaults_apply_and_listed_pairs_override(tmp_path: Path) -> None:
    text = (
        HEAD
        + GPU
        + "count = 3\n"
        + '[pairs]\npcie_path = "PHB"\np2p = "unsupported"\nfault = "hang"\n'
        + '[[pair]]\ngpus = [2, 0]\nnvlink_count = 4\nnvlink_version = 3\np2p = "ok"\n'
        + 'fault = "none"\np2p_detail = "bridge"\n'
    )
    rig = load(write(tmp_path, text))
    p01, p02 = pair_of(rig, 0, 1), pair_of(rig, 0, 2)
    assert (p01.pcie_path, p01.p2p, p01.nvlink_count, p01.topo_code) == (
        "PHB",
        "unsupported",
        0,
        "PHB",
    )
    assert (p02.pcie_path, p02.p2p, p02.nvlink_count, p02.topo_code) == ("PHB", "ok", 4, "NV4")
    assert p02.nvlink_version == 3 and p02.p2p_detail == "bridge"
    assert rig.p2p_faults == {"0-1": "hang", "1-2": "hang"}


def test_defaults_without_pairs_tables(tmp_path: Path) -> None:
    rig = load(write(tmp_path, HEAD + GPU + "count = 2\n"))
    pair = rig.pairs[0]
    assert (pair.nvlink_count, pair.via_nvswitch, pair.p2p, pair.pcie_path) == (
        0,
        False,
        "unknown",
        None,
    )
    assert rig.p2p_faults == {}
    gpu = rig.gpus[0]
    assert gpu.memory_total_bytes is None and gpu.pcie.gen_current is None
    assert rig.system.hostname is None and rig.system.ram_bytes is None


def test_units_and_fields_convert(tmp_path: Path) -> None:
    text = (
        HEAD
        + '[system]\nram_gib = 64\ncpu_cores = 24\ndriver_version = "535.154.05"\n'
        + GPU
        + "memory_gib = 24\npower_limit_w = 285\n"
        + "clocks = { sm_mhz = 1005, mem_mhz = 877, sm_max_mhz = 1530, mem_max_mhz = 877 }\n"
        + 'unavailable = { numa_node = "not reported" }\n'
        + '[[gpu]]\nname = "Tesla V100-SXM2-16GB"\nmemory_mib = 16160\nbus_id = "3b:00.0"\n'
    )
    rig = load(write(tmp_path, text))
    assert rig.system.ram_bytes == 64 * 2**30
    assert rig.system.cpu_cores == 24
    g0, g1 = rig.gpus
    assert g0.memory_total_bytes == 24 * 2**30
    assert g0.power_limit_w == 285.0
    assert (g0.sm_clock_mhz, g0.mem_clock_mhz, g0.sm_clock_max_mhz, g0.mem_clock_max_mhz) == (
        1005,
        877,
        1530,
        877,
    )
    assert g0.unavailable == {"numa_node": "not reported"}
    assert g1.memory_total_bytes == 16160 * 2**20
    assert g1.bus_id == "00000000:3B:00.0"


def test_generated_ids_are_unique_and_stable(tmp_path: Path) -> None:
    text = HEAD + GPU + "count = 3\n" + GPU + 'bus_id = "00000000:01:00.0"\n'
    first = load(write(tmp_path, text, "a.toml"))
    again = load(write(tmp_path, text, "b.toml"))
    assert [g.uuid for g in first.gpus] == [g.uuid for g in again.gpus]
    assert [g.bus_id for g in first.gpus] == [g.bus_id for g in again.gpus]
    assert len({g.uuid for g in first.gpus}) == 4
    assert len({g.bus_id for g in first.gpus}) == 4
    assert first.gpus[3].bus_id == "00000000:01:00.0"
    other = load(write(tmp_path, text.replace("test rig", "another rig"), "c.toml"))
    assert other.gpus[0].uuid != first.gpus[0].uuid


def test_rig_returns_a_fresh_snapshot(tmp_path: Path) -> None:
    backend = SimulatedBackend.from_file(write(tmp_path, HEAD + GPU + "count = 2\n"))
    rig = backend.rig()
    rig.gpus[0].name = "changed"
    rig.p2p_faults["0-1"] = "hang"
    again = backend.rig()
    assert again.gpus[0].name == "NVIDIA GeForce RTX 3090"
    assert again.p2p_faults == {}


def test_backend_keeps_name_and_description(tmp_path: Path) -> None:
    backend = SimulatedBackend.from_file(write(tmp_path, HEAD + 'description = "two cards"\n'))
    assert backend.name == "test rig"
    assert backend.description == "two cards"


def test_select_backend_picks_the_simulated_one() -> None:
    from rigbench.hw.backend import select_backend

    backend = select_backend(EXAMPLES / "iva-2x3090.toml")
    assert backend.kind == "simulated"
    assert backend.rig().source == "simulated:iva-2x3090.toml"


# --- bad files -----------------------------------------------------------------------------

BAD: list[tuple[str, str, str, str]] = [
    # (id, file text, key path expected in the message, words expected in the message)
    ("not-toml", "[rig\nname = 1\n", "line 1", "not valid TOML"),
    ("no-rig", GPU, "rig", "is required"),
    ("rig-no-name", "[rig]\n", "rig.name", "is required"),
    ("blank-name", '[rig]\nname = " "\n', "rig.name", "must not be empty"),
    (
        "bad-width",
        HEAD + GPU * 2 + GPU + "pcie = { width_current = 12 }\n",
        "gpu[2].pcie.width_current",
        "must be one of 1, 2, 4, 8, 16",
    ),
    (
        "width-as-text",
        HEAD + GPU + 'pcie = { width_current = "16" }\n',
        "gpu[0].pcie.width_current",
        "whole number",
    ),
    (
        "width-as-bool",
        HEAD + GPU + "pcie = { width_current = true }\n",
        "gpu[0].pcie.width_current",
        "whole number",
    ),
    ("bad-gen", HEAD + GPU + "pcie = { gen_max = 7 }\n", "gpu[0].pcie.gen_max", "between 1 and 6"),
    (
        "current-above-max",
        HEAD + GPU + "pcie = { width_current = 16, width_max = 8 }\n",
        "gpu[0].pcie",
        "width_current (16) cannot be above width_max (8)",
    ),
    ("negative-memory", HEAD + GPU + "memory_gib = -24\n", "gpu[0].memory_gib", "greater than 0"),
    ("nan-memory", HEAD + GPU + "memory_gib = nan\n", "gpu[0].memory_gib", "finite"),
    ("zero-memory-mib", HEAD + GPU + "memory_mib = 0\n", "gpu[0].memory_mib", "between 1"),
    ("both-memories", HEAD + GPU + "memory_gib = 24\nmemory_mib = 24576\n", "gpu[0]", "not both"),
    (
        "negative-power",
        HEAD + GPU + "power_limit_w = -300\n",
        "gpu[0].power_limit_w",
        "greater than 0",
    ),
    ("memory-as-text", HEAD + GPU + 'memory_gib = "24"\n', "gpu[0].memory_gib", "must be a number"),
    (
        "unknown-gpu-key",
        HEAD + GPU + "memry_gib = 24\n",
        "gpu[0].memry_gib",
        "did you mean memory_gib",
    ),
    ("unknown-top-key", HEAD + '[[gpus]]\nname = "x"\n', "gpus", "unknown key"),
    (
        "unknown-pcie-key",
        HEAD + GPU + "pcie = { lanes = 16 }\n",
        "gpu[0].pcie.lanes",
        "unknown key",
    ),
    (
        "unknown-system-key",
        HEAD + "[system]\nram_gb = 64\n",
        "system.ram_gb",
        "did you mean ram_gib",
    ),
    ("gpus-in-defaults", HEAD + "[pairs]\ngpus = [0, 1]\n", "pairs.gpus", "unknown key"),
    ("gpu-as-table", HEAD + '[gpu]\nname = "x"\n', "gpu", "[[gpu]]"),
    ("pairs-as-array", HEAD + '[[pairs]]\np2p = "ok"\n', "pairs", "[pairs]"),
    ("no-gpu-name", HEAD + "[[gpu]]\ncount = 2\n", "gpu[0].name", "is required"),
    ("zero-count", HEAD + GPU + "count = 0\n", "gpu[0].count", "between 1 and 64"),
    ("too-many", HEAD + GPU + "count = 40\n" + GPU + "count = 40\n", "gpu", "at most 64"),
    (
        "cc-as-number",
        HEAD + GPU + "compute_capability = 8.6\n",
        "gpu[0].compute_capability",
        "string",
    ),
    ("cc-shape", HEAD + GPU + 'compute_capability = "sm_86"\n', "gpu[0].compute_capability", "8.6"),
    ("bad-bus-id", HEAD + GPU + 'bus_id = "slot 1"\n', "gpu[0].bus_id", "00000000:01:00.0"),
    ("bad-uuid", HEAD + GPU + 'uuid = "1234"\n', "gpu[0].uuid", "GPU-"),
    (
        "duplicate-bus-id",
        HEAD + GPU + 'bus_id = "01:00.0"\n' + GPU + 'bus_id = "0000:01:00.0"\n',
        "gpu[1].bus_id",
        "already used by GPU 0",
    ),
    (
        "id-with-count",
        HEAD + GPU + 'count = 2\nbus_id = "00000000:01:00.0"\n',
        "gpu[0]",
        "count > 1",
    ),
    (
        "unknown-unavailable",
        HEAD + GPU + 'unavailable = { powr_limit_w = "n/a" }\n',
        "gpu[0].unavailable.powr_limit_w",
        "did you mean power_limit_w",
    ),
    ("negative-numa", HEAD + GPU + "numa_node = -1\n", "gpu[0].numa_node", "0 or more"),
    ("ram-as-text", HEAD + '[system]\nram_gib = "lots"\n', "system.ram_gib", "must be a number"),
    (
        "pair-missing-gpu",
        HEAD + GPU + "count = 2\n[[pair]]\ngpus = [0, 2]\n",
        "pair[0].gpus",
        "GPU 2 does not exist",
    ),
    ("pair-on-cpu-only", HEAD + "[[pair]]\ngpus = [0, 1]\n", "pair[0].gpus", "no GPUs"),
    ("pair-self", HEAD + GPU + "count = 2\n[[pair]]\ngpus = [1, 1]\n", "pair[0].gpus", "twice"),
    (
        "pair-three",
        HEAD + GPU + "count = 3\n[[pair]]\ngpus = [0, 1, 2]\n",
        "pair[0].gpus",
        "exactly two",
    ),
    (
        "pair-duplicate",
        HEAD + GPU + "count = 2\n[[pair]]\ngpus = [0, 1]\n[[pair]]\ngpus = [1, 0]\n",
        "pair[1].gpus",
        "already listed as pair[0]",
    ),
    (
        "pair-no-gpus",
        HEAD + GPU + 'count = 2\n[[pair]]\np2p = "ok"\n',
        "pair[0].gpus",
        "is required",
    ),
    ("bad-p2p", HEAD + GPU + 'count = 2\n[pairs]\np2p = "yes"\n', "pairs.p2p", "must be one of"),
    (
        "bad-fault",
        HEAD + GPU + 'count = 2\n[[pair]]\ngpus = [0, 1]\nfault = "explode"\n',
        "pair[0].fault",
        '"hang", "corrupt", "crash", "none"',
    ),
    ("bad-path", HEAD + GPU + 'count = 2\n[pairs]\npcie_path = "NV4"\n', "pairs.pcie_path", "PIX"),
    (
        "nvswitch-without-links",
        HEAD + GPU + "count = 2\n[pairs]\nvia_nvswitch = true\n",
        "pairs.via_nvswitch",
        "nvlink_count > 0",
    ),
    (
        "too-many-links",
        HEAD + GPU + "count = 2\n[pairs]\nnvlink_count = 19\n",
        "pairs.nvlink_count",
        "between 0 and 18",
    ),
]


@pytest.mark.parametrize(("text", "where", "words"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_file_fails_with_one_line(tmp_path: Path, text: str, where: str, words: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(SimulationFileError) as info:
        SimulatedBackend.from_file(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: {where}: ") or message.startswith(f"{path}: {where},")
    assert words in message
    assert "pydantic" not in message and "errors.pydantic.dev" not in message
    assert "Input should" not in message and "Value error" not in message


def test_several_problems_still_make_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + GPU + "memory_gib = -1\npower_limit_w = -3\nfoo = 1\n")
    with pytest.raises(SimulationFileError, match=r"\(and 2 more problems\)$") as info:
        SimulatedBackend.from_file(path)
    assert "\n" not in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(SimulationFileError) as info:
        SimulatedBackend.from_file(path)
    assert str(info.value) == f"{path}: no such file"


def test_directory_and_binary_files(tmp_path: Path) -> None:
    with pytest.raises(SimulationFileError, match="is a directory"):
        SimulatedBackend.from_file(tmp_path)
    path = tmp_path / "blob.toml"
    path.write_bytes(b"\xff\xfe[rig]\x00")
    with pytest.raises(SimulationFileError, match="not UTF-8") as info:
        SimulatedBackend.from_file(path)
    assert str(info.value).startswith(str(path))


def test_error_is_a_bad_input() -> None:
    from rigbench.errors import BadInput

    assert issubclass(SimulationFileError, BadInput)
