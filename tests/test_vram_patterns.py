"""The VRAM test: its patterns find a bad range and report it by address; a simulated rig's
bad range is found through `rigbench bench --only vram`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rigbench.bench.vram import merge_ranges, run_patterns, stuck_bit_reader
from rigbench.cli import app


def test_clean_memory_has_no_bad_words() -> None:
    torch = pytest.importorskip("torch")
    assert run_patterns(torch.empty(4096, dtype=torch.int32), seed=1) == {}


@pytest.mark.parametrize("bit", [0, 31])
def test_a_stuck_bit_is_found_by_every_pattern_and_reported_by_address(bit: int) -> None:
    torch = pytest.importorskip("torch")
    buf = torch.empty(8192, dtype=torch.int32)
    bad = run_patterns(buf, seed=1, read=stuck_bit_reader(4096, 64, bit))
    assert sorted(bad) == list(range(1024, 1040))  # 64 bytes from byte 4096: words 1024-1039
    assert all(p == {"walking_ones", "address_in_address", "random_checksum"} for p in bad.values())
    (r,) = merge_ranges(bad, base=0x7F0000000000)
    assert (r.offset, r.length, r.words) == (4096, 64, 16)
    assert r.to_dict()["address_hex"] == "0x7f0000001000"


def test_separate_bad_words_make_separate_ranges() -> None:
    ranges = merge_ranges({10: {"a"}, 11: {"b"}, 500: {"a"}}, base=None)
    assert [(r.offset, r.length, r.patterns) for r in ranges] == [
        (40, 8, ["a", "b"]),
        (2000, 4, ["a"]),
    ]


def test_bench_finds_the_simulated_bad_vram_range(tmp_path: Path, examples: Path) -> None:
    res = CliRunner().invoke(
        app,
        ["bench", "--only", "vram", "--simulate", str(examples / "iva-2x3090-bad-vram.toml"),
         "--gpus", "1", "--json", "--db", str(tmp_path / "r.db")],
    )  # fmt: skip
    assert res.exit_code != 0
    (result,) = [r for r in json.loads(res.stdout)["results"] if r["benchmark"] == "vram"]
    assert result["status"] == "failed" and result["reason"] == "wrong_data"
    (r,) = result["params"]["bad_ranges"]
    assert (r["offset_hex"], r["length"]) == ("0x400000", 64 * 1024)  # the file's 4 MiB + 64 KiB
