"""Workload settings: `bench --set KEY=VALUE`, typed and validated, replacing the
RIGBENCH_TRAIN_* / RIGBENCH_INFER_* / RIGBENCH_NBODY_* environment variables."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from rigbench.bench import collectives, infer, nbody, train
from rigbench.bench.context import BenchContext, BenchDevice
from rigbench.bench.options import WorkloadOptions, option_keys, parse_sets
from rigbench.cli import app
from rigbench.commands import bench as bench_command
from rigbench.errors import BadInput


def test_every_setting_is_listed_in_the_help() -> None:
    for key in option_keys():
        assert key in bench_command._SETTINGS_HELP, key
    assert all(option_keys().values())  # each has a description


def test_settings_parse_to_typed_values() -> None:
    opts = parse_sets(["train.compile=1", "infer.contexts=512,4096", "nbody.engines=torch"])
    assert opts.train_compile == "1"
    assert opts.infer_contexts == (512, 4096)
    assert opts.nbody_engines == ("torch",)
    assert parse_sets(None) == WorkloadOptions()


@pytest.mark.parametrize(
    ("item", "needle"),
    [
        ("train.colour=red", "KEY one of"),
        ("train.compile", "KEY one of"),
        ("train.compile=2", "train.compile"),
        ("train.batch=0", "train.batch"),
        ("infer.contexts=512,x", "infer.contexts"),
        ("nbody.engines=cuda", "nbody.engines"),
        ("collectives.ops=allreduce", "collectives.ops"),
    ],
)
def test_bad_settings_are_one_line_errors(item: str, needle: str) -> None:
    with pytest.raises(BadInput, match=needle):
        parse_sets([item])
    res = CliRunner().invoke(app, ["bench", "--only", "train", "--set", item])
    assert res.exit_code == 2 and needle in res.stderr and "Traceback" not in res.stderr


def _ctx(opts: WorkloadOptions) -> BenchContext:
    devs = [BenchDevice(label=f"cpu{i}", torch_device="cpu", name="CPU") for i in range(2)]
    return BenchContext(devices=devs, extra={"options": opts})


def test_settings_reach_the_workload_plans() -> None:
    default = train.plan(_ctx(WorkloadOptions()))
    fsdp = train.plan(_ctx(parse_sets(["train.fsdp=1"])))
    assert len(fsdp) > len(default)
    steps = infer.plan(_ctx(parse_sets(["infer.contexts=8", "infer.batches=2"])))
    assert [(s.params["context"], s.params["batches"]) for s in steps] == [(8, [2])]
    assert [s.params.get("engine") for s in nbody.plan(_ctx(WorkloadOptions()))]
    asked = collectives.plan(_ctx(parse_sets(["collectives.ops=all_gather,all_reduce"])))
    assert [s.params["op"] for s in asked] == ["all_reduce", "all_gather"]  # in the usual order
    assert len(collectives.plan(_ctx(WorkloadOptions()))) == 5
