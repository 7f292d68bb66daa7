"""Renderers read records only; driven by a real run captured on an H200."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console

from rigbench.records import Result
from rigbench.report.results import render_results

DATA = Path(__file__).parent / "data"


def _render(results: list[Result]) -> str:
    console = Console(width=200, record=True, color_system=None)
    render_results(results, console)
    return console.export_text()


def test_real_h200_run_renders_every_figure_with_its_reference() -> None:
    doc = json.loads((DATA / "h200-1gpu-quick.json").read_text())
    results = [Result.from_dict(r) for r in doc["results"]]
    text = _render(results)
    bf16 = next(r for r in results if r.params.get("dtype") == "bf16")
    assert bf16.peak == 989.4 and bf16.ratio is not None and 0.5 < bf16.ratio < 1
    assert f"{bf16.value:.0f}" in text
    assert "8192×8192×8192" in text
    assert "needs at least 2 GPUs" in text  # p2p and collectives on a one-GPU machine
    copy = next(r for r in results if r.benchmark == "memory")
    assert f"{copy.ratio * 100:.0f}%" in text  # type: ignore[operator]


def test_failed_pair_shows_in_both_directions() -> None:
    results = [
        Result.failure("p2p", "unidir", "GB/s", "p2p GPU0<->GPU1: hung", devices=["GPU0", "GPU1"]),
        Result(benchmark="p2p", metric="unidir", value=20.0, unit="GB/s",
               devices=["GPU0", "GPU2"], expected=25.0),
        Result(benchmark="p2p", metric="unidir", value=21.0, unit="GB/s",
               devices=["GPU2", "GPU0"], expected=25.0),
    ]  # fmt: skip
    text = _render(results)
    row0 = next(line for line in text.splitlines() if line.startswith("│ GPU0"))
    row1 = next(line for line in text.splitlines() if line.startswith("│ GPU1"))
    assert "FAIL" in row0 and "FAIL" in row1
    assert "20.0 80%" in row0
    assert "hung" in text
