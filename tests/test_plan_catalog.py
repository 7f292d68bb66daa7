"""The CPU and motherboard catalogs: the shipped files validate, cover the seeds' parts,
resolve the names machines report, and reject malformed entries with one line."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from rigbench.catalog import (
    CatalogError,
    closest_board_names,
    closest_cpu_names,
    find_board,
    find_cpu,
    load_boards,
    load_cpus,
    search_boards,
    search_cpus,
)
from rigbench.catalog.boards import parse_boards
from rigbench.catalog.cpus import parse_cpus

CPU: dict[str, Any] = {
    "id": "test-cpu",
    "name": "Test CPU",
    "vendor": "AMD",
    "family": "Test",
    "socket": "AM4",
    "cores": 8,
    "threads": 16,
    "tdp_w": 65,
    "pcie_gen": 4,
    "pcie_lanes": 20,
    "source": "https://example.com/spec",
}


def test_shipped_catalogs_cover_the_seeds() -> None:
    cpus = {c.id for c in load_cpus()}
    assert {
        "threadripper-1920x",
        "threadripper-pro-7955wx",
        "ryzen-9-5900x",
        "core-i7-12700f",
        "xeon-e5-2680-v4",
    } <= cpus
    assert any(c.startswith("epyc-7") and c[6] == "3" for c in cpus)  # 7003
    assert {"epyc-7302", "epyc-7763", "epyc-9654", "xeon-gold-6338"} <= cpus
    boards = {b.id for b in load_boards()}
    assert {
        "msi-meg-x570-unify",
        "gigabyte-x399-aorus-pro",
        "gigabyte-b660m-seed001",
        "gigabyte-t180-g20",
        "asus-pro-ws-wrx90e-sage-se",
    } <= boards
    for c in load_cpus():
        assert c.source.startswith(("AMD", "Intel")) and "http" in c.source
    for b in load_boards():
        assert "http" in b.source


@pytest.mark.parametrize(
    ("name", "cpu_id"),
    [
        ("Threadripper 1920X", "threadripper-1920x"),
        ("AMD Ryzen Threadripper 1920X 12-Core Processor", "threadripper-1920x"),
        ("AMD Ryzen Threadripper PRO 7955WX 16-Cores", "threadripper-pro-7955wx"),
        ("Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz", "xeon-e5-2680-v4"),
        ("12th Gen Intel(R) Core(TM) i7-12700F", "core-i7-12700f"),
        ("ryzen 9 5900x", "ryzen-9-5900x"),
        ("EPYC 7763", "epyc-7763"),
    ],
)
def test_cpu_lookups(name: str, cpu_id: str) -> None:
    spec = find_cpu(name)
    assert spec is not None and spec.id == cpu_id


def test_cpu_figures_and_near_misses() -> None:
    tr = find_cpu("1920x")
    assert tr is not None and (tr.pcie_gen, tr.pcie_lanes, tr.tdp_w) == (3, 60, 180)
    xeon = find_cpu("E5-2680 v4")
    assert xeon is not None and xeon.lanes_for(2) == 80
    epyc = find_cpu("EPYC 9654")
    assert epyc is not None and epyc.lanes_for(2) == 160
    i7 = find_cpu("i7-12700F")
    assert i7 is not None and i7.power_w == 180  # max turbo power, budgeted by plan
    assert find_cpu("i7-12700KF") is None  # never a near miss
    assert closest_cpu_names("i7-12700KF")[0] in ("Intel Core i7-12700K", "Intel Core i7-12700F")
    assert [c.id for c in search_cpus("epyc 9004")] == [
        "epyc-9124",
        "epyc-9354",
        "epyc-9554",
        "epyc-9654",
    ]


def test_board_layouts() -> None:
    x570 = find_board("X570 Unify")
    assert x570 is not None
    assert x570.slot("PCI_E1").width_with(["PCI_E3"]) == 8
    assert x570.slot("PCI_E1").width_with([]) == 16
    assert x570.slot("PCI_E2").width_with(["PCI_E4"]) == 0
    t180 = find_board("T180-G20")
    assert t180 is not None and [s.kind for s in t180.slots_for_gpus[:4]] == ["sxm2"] * 4
    assert find_board("X399 Aorus Gaming 7") is None
    assert closest_board_names("X399 Aorus Gaming 7") == ["Gigabyte X399 AORUS PRO"]
    assert [b.id for b in search_boards("tr4")] == ["gigabyte-x399-aorus-pro"]


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"cores": 0}, "cpu[0] ('test-cpu'): cores"),
        ({"threads": 4}, "threads must be at least cores"),
        ({"pcie_lanes": "20"}, "pcie_lanes"),
        ({"source": "a book"}, "source"),
        ({"colour": "red"}, "colour"),
        ({"pcie_lanes_2s": 128}, "pcie_lanes_2s given for a one-socket CPU"),
    ],
)
def test_malformed_cpu_entries(change: dict[str, Any], needle: str) -> None:
    entry = copy.deepcopy(CPU) | change
    with pytest.raises(CatalogError) as info:
        parse_cpus({"cpu": [entry]}, origin="cpus.toml")
    assert needle in str(info.value) and str(info.value).startswith("cpus.toml: ")
    assert "\n" not in str(info.value)


def test_duplicate_cpu_names_are_rejected() -> None:
    other = copy.deepcopy(CPU) | {"id": "other", "aliases": ["test cpu"]}
    with pytest.raises(CatalogError, match="already names"):
        parse_cpus({"cpu": [CPU, other]})


def _board(**slot: Any) -> dict[str, Any]:
    return {
        "id": "b",
        "name": "B",
        "vendor": "V",
        "socket": "AM4",
        "chipset": "X",
        "form_factor": "ATX",
        "source": "https://example.com",
        "slot": [{"name": "S1", "physical": 16, "gen": 4, "width": 16} | slot],
    }


@pytest.mark.parametrize(
    ("slot", "needle"),
    [
        ({"width": 12}, "width"),
        ({"via": "switch9"}, "via 'switch9' is not 'cpu' or an uplink"),
        ({"physical": 8}, "width x16 exceeds physical x8"),
        ({"shares": [{"when": ["S9"], "width": 8}]}, "shares names unknown slot 'S9'"),
    ],
)
def test_malformed_boards(slot: dict[str, Any], needle: str) -> None:
    with pytest.raises(CatalogError) as info:
        parse_boards({"board": [_board(**slot)]})
    assert needle in str(info.value)
