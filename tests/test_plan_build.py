"""The build file: the examples load, every kind of bad input is one line naming the file
and the key, links and PSU groups resolve as the boards and the file say, and the
published JSON Schema is current."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from rigbench.errors import BadInput
from rigbench.plan import BuildFileError, build_json_schema, load_build
from rigbench.plan.build import with_models

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
BUILDS = ROOT / "examples" / "builds"
EXAMPLES = sorted(BUILDS.glob("*.toml"))
RIG = '[rig]\nname = "test"\n'


def _write(tmp_path: Path, text: str, name: str = "rig.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _error(tmp_path: Path, text: str) -> str:
    path = _write(tmp_path, text)
    with pytest.raises(BuildFileError) as info:
        load_build(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    return message[len(f"{path}: ") :]


def test_every_example_loads() -> None:
    assert {p.name for p in EXAMPLES} >= {
        "minerva.toml",
        "v100-sxm2-server.toml",
        "v100-sxm2-server-3psu.toml",
        "iva-2x3090.toml",
        "tr1920x-3x3090.toml",
    }
    for path in EXAMPLES:
        build = load_build(path)
        assert build.gpus, path


def test_build_file_error_is_bad_input() -> None:
    assert issubclass(BuildFileError, BadInput)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # unknown models, with the closest catalog names
        (
            RIG + '[[gpu]]\nmodel = "RTX 3900"\n',
            'gpu[0].model: unknown GPU "RTX 3900"; did you mean',
        ),
        (RIG + '[cpu]\nmodel = "Ryzen 9 5950X"\n', "cpu.model: unknown CPU"),
        (
            RIG + '[motherboard]\nmodel = "X399 Aorus Gaming"\n',
            "motherboard.model: unknown motherboard",
        ),
        # values
        (RIG + '[[gpu]]\nmodel = "RTX 3090"\n[[psu]]\nwatts = -750\n', "psu[0].watts: must be"),
        (RIG + "[[psu]]\nwatts = nan\n", "psu[0].watts: must be a finite number"),
        (RIG + '[[gpu]]\nmodel = "RTX 3090"\ncount = 0\n', "gpu[0].count: must be 1 or more"),
        (
            RIG + '[[gpu]]\nmodel = "RTX 3090"\nlink = { gen = 4, width = 12 }\n',
            "gpu[0].link: width must be one of 1, 2, 4, 8, 16",
        ),
        (RIG + "[[psu]]\nwatts = 750\nefficiency = 92\n", "psu[0].efficiency: must be a fraction"),
        (RIG + '[[psu]]\nwatts = 750\nefficiency = "diamond"\n', "unknown 80 PLUS tier"),
        (RIG + "[wall]\namps = 0\n", "wall.amps: must be greater than 0"),
        (RIG + "[usage]\nreturns = [0.05, 0.1]\n", "usage.returns: are percent per year"),
        (RIG + '[[model]]\nparams = "seventy"\n', "model[0].params: must be a number"),
        # wrong types
        (
            RIG + '[[gpu]]\nmodel = "RTX 3090"\ncount = "2"\n',
            'gpu[0].count: must be a whole number (got "2")',
        ),
        (RIG + '[[psu]]\nwatts = 750\natx3 = "yes"\n', "psu[0].atx3: must be true or false"),
        (RIG + '[gpu]\nmodel = "RTX 3090"\n', "gpu: must be an array of tables (write [[gpu]]"),
        # missing fields and unknown keys
        (RIG + "[[psu]]\nefficiency = 0.9\n", "psu[0].watts: is required"),
        ('[[gpu]]\nmodel = "RTX 3090"\n', "rig: is required"),
        (RIG + '[[gpu]]\nmodel = "RTX 3090"\npower_limt_w = 300\n', "did you mean power_limit_w?"),
        (RIG + '[[gpus]]\nmodel = "RTX 3090"\n', "gpus: unknown key; did you mean gpu?"),
        # across tables
        (
            RIG + '[cpu]\nmodel = "5900X"\n[motherboard]\nmodel = "X399 AORUS PRO"\n',
            "motherboard.model: the Gigabyte X399 AORUS PRO has socket TR4",
        ),
        (
            RIG + '[cpu]\nmodel = "5900X"\ncount = 2\n',
            "cpu.count: the AMD Ryzen 9 5900X runs in at most 1",
        ),
        (
            RIG + '[[gpu]]\nmodel = "RTX 3090"\nlink = "PCI_E1"\n',
            "gpu[0].link: names a slot, but the build has no [motherboard]",
        ),
        (
            RIG
            + '[[gpu]]\nmodel = "RTX 3090"\nlink = "PCI_E7"\n[motherboard]\nmodel = "X570 Unify"\n',
            'gpu[0].link: the MSI MEG X570 UNIFY has no slot "PCI_E7"',
        ),
        (
            RIG + '[[gpu]]\nmodel = "RTX 3060"\nlink = "PCI_E2"\n[[gpu]]\nmodel = "RTX 3060"\n'
            'link = "PCI_E4"\n[motherboard]\nmodel = "X570 Unify"\n',
            "gpu[0]: slot PCI_E2 of the MSI MEG X570 UNIFY is disabled while PCI_E4 holds a card",
        ),
        (
            RIG + '[[gpu]]\nmodel = "V100 SXM2 16GB"\n[motherboard]\nmodel = "X570 Unify"\n',
            "gpu[0]: no free sxm2 slot left on the MSI MEG X570 UNIFY",
        ),
        (
            RIG + '[[gpu]]\nmodel = "RTX 4090"\nnvlink = "bridge"\n',
            "gpu[0].nvlink: the GeForce RTX 4090 has no NVLink",
        ),
        (
            RIG + '[[gpu]]\nmodel = "RTX 3090"\n[[psu]]\nwatts = 750\nfeeds = [0, 3]\n',
            "psu[0].feeds: GPU 3 does not exist",
        ),
        (
            RIG + "[[psu]]\nwatts = 750\ncount = 2\n",
            "psu[0].count: several PSUs in one entry must share a bus",
        ),
        (RIG + '[[psu]]\nwatts = 750\nbus = "12v-parallel"\n', "psu[0].bus: only server PSUs"),
        (RIG + "[[psu]]\nwatts = 750\ncircuit = 1\n", "psu[0].circuit: circuit 1 does not exist"),
        (
            RIG + '[[gpu]]\nmodel = "RTX 3090"\ncount = 2\n[[psu]]\nwatts = 750\nfeeds = [0]\n'
            "[[psu]]\nwatts = 750\nfeeds = [0]\n",
            "psu[1].feeds: GPU 0 is already fed by psu[0]",
        ),
        (
            RIG + '[[gpu]]\nmodel = "RTX 3090"\ncount = 2\n'
            "[[psu]]\nwatts = 750\n[[psu]]\nwatts = 750\n",
            'psu[1].feeds: only one PSU group can feed "rest"',
        ),
        (
            RIG + '[[model]]\nname = "llama-3-71b"\n',
            'model[0].name: unknown model preset "llama-3-71b"; did you mean',
        ),
        (
            RIG + '[[model]]\nname = "llama-3-70b"\nlayers = 80\n',
            'model[0].layers: "llama-3-70b" is a preset',
        ),
        (
            RIG + "[[model]]\nparams = 7e9\nheads = 32\nkv_heads = 5\n",
            "model[0]: kv_heads 5 must divide heads 32",
        ),
        (
            RIG + '[[model]]\nname = "llama-3-8b"\nparallel = "fsdp"\n',
            'does not apply to mode = "inference"',
        ),
        (
            RIG + '[[model]]\nname = "llama-3-8b"\nkv_dtype = "fp7"\n',
            "model[0].kv_dtype: must be one of",
        ),
        (
            RIG + "[costs]\nelectricity_per_kwh_usd = 0.3\nelectricity_per_hour_usd = 0.5\n",
            "costs: give electricity_per_hour_usd or",
        ),
    ],
)
def test_bad_build_files_are_one_line_with_file_and_key(
    tmp_path: Path, text: str, expected: str
) -> None:
    assert expected in _error(tmp_path, text)


def test_file_level_problems(tmp_path: Path) -> None:
    assert "no such file" in str(
        pytest.raises(BuildFileError, load_build, tmp_path / "x.toml").value
    )
    assert "line 3, column" in _error(tmp_path, RIG + "[[gpu]\n")
    (tmp_path / "dir.toml").mkdir()
    assert "is a directory" in str(
        pytest.raises(BuildFileError, load_build, tmp_path / "dir.toml").value
    )


def test_links_follow_the_board(tmp_path: Path) -> None:
    # Iva: two GPUs on the X570 Unify run x8/x8 (the owner's words).
    iva = load_build(BUILDS / "iva-2x3090.toml")
    assert [(g.slot, g.link_gen, g.link_width) for g in iva.gpus] == [
        ("PCI_E1", 4, 8),
        ("PCI_E3", 4, 8),
    ]
    # A lone GPU keeps PCI_E1 at x16.
    one = load_build(
        _write(
            tmp_path,
            RIG + '[[gpu]]\nmodel = "RTX 3090"\n[cpu]\nmodel = "5900X"\n'
            '[motherboard]\nmodel = "X570 Unify"\n',
        )
    )
    assert (one.gpus[0].link_gen, one.gpus[0].link_width) == (4, 16)
    # Seed 004: x16/x16/x8 at PCIe 3.0 on the X399 board.
    tr = load_build(BUILDS / "tr1920x-3x3090.toml")
    assert [(g.link_gen, g.link_width) for g in tr.gpus] == [(3, 16), (3, 16), (3, 8)]
    # Seed 001's desktop: the second GPU in an x1 PCIe 3.0 slot behind the chipset.
    desk = load_build(
        _write(
            tmp_path,
            RIG + '[[gpu]]\nmodel = "RTX 3060"\n[[gpu]]\nmodel = "GTX 1060"\n'
            'link = "PCIEX1_1"\n[cpu]\nmodel = "i7-12700F"\n'
            '[motherboard]\nmodel = "Gigabyte B660M"\n',
        )
    )
    assert [(g.link_gen, g.link_width, g.via) for g in desk.gpus] == [
        (4, 16, "cpu"),
        (3, 1, "chipset"),
    ]
    assert desk.gpus[1].host_gbs == pytest.approx(0.985, abs=0.001)


def test_links_without_a_board(tmp_path: Path) -> None:
    # An explicit link is taken (and capped by the CPU's generation); none: a full-width slot.
    b = load_build(
        _write(
            tmp_path,
            RIG + '[[gpu]]\nmodel = "RTX 3090"\nlink = { gen = 4, width = 4 }\n'
            '[[gpu]]\nmodel = "RTX 4090"\n[cpu]\nmodel = "E5-2680 v4"\n',
        )
    )
    assert (b.gpus[0].link_gen, b.gpus[0].link_width) == (3, 4)
    assert "Gen3 (the CPU's lanes)" in b.gpus[0].link_basis
    assert (b.gpus[1].link_gen, b.gpus[1].link_width) == (3, 16)
    assert b.gpus[1].link_basis.startswith("assumed")


def test_sxm_gpus_share_the_t180_switches() -> None:
    v100 = load_build(BUILDS / "v100-sxm2-server.toml")
    assert [g.slot for g in v100.gpus] == ["SXM2_1", "SXM2_2", "SXM2_3", "SXM2_4"]
    assert {g.nvlink for g in v100.gpus} == {"mesh"}
    # two GPUs behind each Gen3 x16 switch uplink: half of 15.75 GB/s each
    assert [round(g.host_gbs, 2) for g in v100.gpus] == [7.88] * 4


def test_psu_groups() -> None:
    v100 = load_build(BUILDS / "v100-sxm2-server.toml")
    (bus,) = v100.psus
    assert (bus.units, bus.rated_w, bus.parallel, bus.gpus, bus.system) == (
        2,
        2200,
        True,
        (0, 1, 2, 3),
        True,
    )
    tr = load_build(BUILDS / "tr1920x-3x3090.toml")
    assert [(g.gpus, g.system) for g in tr.psus] == [((0, 1), False), ((2,), True)]
    assert tr.cpu_rated_w == 180 and tr.other_w == 60
    assert tr.cpu_load_w == pytest.approx(0.3 * 180)  # training: the CPU feeds the GPUs


def test_efficiency_tiers_interpolate() -> None:
    iva = load_build(BUILDS / "iva-2x3090.toml")
    (psu,) = iva.psus
    assert psu.efficiency == "gold"
    assert psu.efficiency_at(0.5) == pytest.approx(0.90)
    assert psu.efficiency_at(0.75) == pytest.approx(0.885)
    assert psu.efficiency_at(0.05) == pytest.approx(0.87)  # held flat below 20 %


def test_usage_and_costs_for_the_cost_command() -> None:
    m = load_build(BUILDS / "minerva.toml")
    assert m.costs is not None and m.usage is not None
    assert (m.costs.price_usd, m.costs.cloud_per_hour_usd, m.costs.electricity_per_hour_usd) == (
        8200,
        2.0,
        0.51,
    )
    assert m.usage.hours_per_year == [1300, 1400, 2800]
    assert m.usage.returns == [5, 10, 15, 20]
    assert (m.usage.use_years, m.usage.invest_years) == (6, 25)


def test_models_resolve_presets_and_custom(tmp_path: Path) -> None:
    b = load_build(
        _write(
            tmp_path,
            RIG + '[[gpu]]\nmodel = "RTX 3090"\n'
            '[[model]]\nname = "deepseek-r1:70b"\n'
            '[[model]]\nname = "tiny"\nparams = "1.2B"\nlayers = 16\n'
            "hidden = 2048\nheads = 32\nkv_heads = 8\n"
            '[[model]]\nparams = "30M"\nmode = "full"\n',
        )
    )
    preset, custom, partial = b.model_specs
    assert preset is not None and preset.id == "deepseek-r1-distill-llama-70b"
    assert custom is not None and (custom.params, custom.head_dim) == (1_200_000_000, 64)
    assert partial is None


def test_with_models_adds_command_line_presets(tmp_path: Path) -> None:
    b = load_build(BUILDS / "iva-2x3090.toml")
    more = with_models(b, ["llama-3-8b"], context=8192, bits="q8_0")
    assert [m.name for m in more.models] == ["llama-3-8b"]
    assert more.models[0].bits_per_weight == "q8_0" and more.models[0].context == 8192
    with pytest.raises(BuildFileError, match=r"^--model: unknown model preset"):
        with_models(b, ["llama-9-1t"])


def test_schema_file_is_current() -> None:
    committed = json.loads((ROOT / "schemas" / "build.schema.json").read_text())
    assert committed == build_json_schema(), (
        'regenerate: python -c "import rigbench.plan as p; p.write_build_schema()"'
    )


def test_examples_validate_against_the_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = build_json_schema()
    for path in EXAMPLES:
        jsonschema.validate(tomllib.loads(path.read_text()), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"rig": {"name": "x"}, "gpu": [{"modle": "RTX 3090"}]}, schema)
