"""Is each number normal: the reference set, the conditions a result ran under, the verdict
and its cause, and what the simulated rigs of each cause give through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rigbench.catalog.gpus import CatalogError
from rigbench.catalog.references import find_references, load_references, parse_references
from rigbench.cli import app
from rigbench.hw.telemetry import GpuChannel, TelemetrySample
from rigbench.judge.bench import JudgeContext, Subject, annotate, judge_result
from rigbench.records import Conditions, GpuConditions, Judgement, Result
from rigbench.store import Store
from rigbench.telemetry.conditions import summarize

runner = CliRunner()

ENTRY = """
[[reference]]
id = "h200-sxm.gemm.bf16.sustained"
gpu = "H200 SXM"
benchmark = "gemm"
metric = "bf16.sustained"
unit = "TFLOP/s"
typical = 685.0
low = 635.0
high = 790.0
power_limit_w = 700
source = "benchmarks/2026-11-23-h200-1gpu.md"
note = "one card"
"""


# --- the reference set ------------------------------------------------------------------


def test_shipped_references_load_and_each_has_a_source_and_note() -> None:
    refs = load_references()
    assert refs, "the shipped reference set is empty"
    for r in refs:
        assert r.source.strip() and r.note.strip(), r.id
    assert any(r.gpu_key == "h200" for r in refs)


def test_an_entry_without_source_is_refused() -> None:
    text = "\n".join(line for line in ENTRY.splitlines() if not line.startswith("source"))
    with pytest.raises(CatalogError, match="source"):
        parse_references(text)


@pytest.mark.parametrize(
    ("old", "new", "needle"),
    [
        ('metric = "bf16.sustained"', 'metric = "bf16.peak"', "vocabulary"),
        ('gpu = "H200 SXM"', 'gpu = "H900 Ultra"', "not in the GPU catalog"),
        ("low = 635.0", "low = 900.0", "above high"),
        ('note = "one card"', 'note = ""', "note"),
    ],
)
def test_bad_entries_are_refused_with_one_line(old: str, new: str, needle: str) -> None:
    with pytest.raises(CatalogError, match=needle):
        parse_references(ENTRY.replace(old, new))


def test_duplicate_ids_are_refused() -> None:
    with pytest.raises(CatalogError, match="used twice"):
        parse_references(ENTRY + ENTRY)


def test_lookup_by_nvml_name_and_power_limit() -> None:
    refs = parse_references(ENTRY)
    found = find_references(
        gpu="NVIDIA H200", benchmark="gemm", metric="bf16.sustained", power_limit_w=700,
        references=refs,
    )  # fmt: skip
    assert [r.id for r in found] == ["h200-sxm.gemm.bf16.sustained"]
    # a card capped at 350 W is not judged against the 700 W figure
    assert not find_references(
        gpu="NVIDIA H200", benchmark="gemm", metric="bf16.sustained", power_limit_w=350,
        references=refs,
    )  # fmt: skip
    assert not find_references(
        gpu="NVIDIA H100 80GB HBM3", benchmark="gemm", metric="bf16.sustained",
        power_limit_w=700, references=refs,
    )  # fmt: skip


def test_ratio_entries_scale_with_the_link_rate() -> None:
    (ref,) = [r for r in load_references() if r.id == "any.hostlink.h2d.pinned.gen5x16"]
    low, typical, high = ref.range_for(63.0)
    assert ref.ratio_low is not None and ref.ratio_high is not None
    assert low == pytest.approx(ref.ratio_low * 63.0) and high == pytest.approx(
        ref.ratio_high * 63.0
    )
    assert typical is not None and low < typical < high
    assert ref.range_for(None) == (None, None, None)


# --- verdicts ---------------------------------------------------------------------------


def _h200_ctx() -> JudgeContext:
    return JudgeContext(
        subjects={"GPU0": Subject(gpu="NVIDIA H200", power_limit_w=700.0, link="gen5x16")},
        references=parse_references(ENTRY),
    )


def _gemm(value: float | None, **cond: object) -> Result:
    g = GpuConditions(gpu=0, **cond)  # type: ignore[arg-type]
    return Result(
        benchmark="gemm",
        metric="bf16.sustained",
        value=value,
        unit="TFLOP/s",
        params={"dtype": "bf16", "m": 8192, "n": 8192, "k": 8192},
        devices=["GPU0"],
        peak=989.4,
        conditions=Conditions(seconds=3.0, gpus=[g], source="nvml"),
    )


HEALTHY_H200 = {
    "power_limit_w": 700.0,
    "power_default_limit_w": 700.0,
    "sm_clock_mean_mhz": 1470.0,
    "sm_clock_max_mhz": 1980,
    "throttle": {"sw_power_cap": 1.0},
}


def test_a_healthy_h200_at_its_default_power_cap_is_normal() -> None:
    j = judge_result(_gemm(680.0, **HEALTHY_H200), _h200_ctx())
    assert j is not None and j.verdict == "normal" and j.cause is None
    assert (j.low, j.high, j.reference) == (635.0, 790.0, "h200-sxm.gemm.bf16.sustained")
    assert j.source and "benchmarks/" in j.source


def test_below_the_range_names_the_cause_from_the_conditions() -> None:
    hot = {**HEALTHY_H200, "throttle": {"sw_thermal": 0.6}, "temp_max_c": 91.0}
    j = judge_result(_gemm(560.0, **hot), _h200_ctx())
    assert j is not None and (j.verdict, j.cause) == ("below_normal", "thermal")
    assert j.note and "91 °C" in j.note
    j = judge_result(_gemm(560.0, **HEALTHY_H200), _h200_ctx())
    assert j is not None and (j.verdict, j.cause) == ("below_normal", "unknown")


def test_above_the_range_is_a_fault_and_a_failure_is_a_fault() -> None:
    j = judge_result(_gemm(1500.0, **HEALTHY_H200), _h200_ctx())
    assert j is not None and (j.verdict, j.cause) == ("fault", "implausible")
    why = "GPU0: wrong result: bf16: relative error 0.5 against float64 exceeds 0.02"
    bad = Result.failure("gemm", "bf16.burst", "TFLOP/s", why, devices=["GPU0"])
    j = judge_result(bad, _h200_ctx())
    assert j is not None and (j.verdict, j.cause) == ("fault", "wrong_data")
    skipped = Result.failure("gemm", "fp8.burst", "TFLOP/s", "no fp8", status="skipped")
    assert judge_result(skipped, _h200_ctx()) is None


def test_no_reference_says_so_and_never_guesses() -> None:
    r = _gemm(680.0, **HEALTHY_H200)
    r.metric = "fp16.sustained"
    j = judge_result(r, _h200_ctx())
    assert j is not None and j.verdict == "no_reference" and j.low is None


def test_a_cap_that_costs_no_clock_is_not_a_cause() -> None:
    # seed 004: 3090s at 285 of 350 W held full clocks under their cap
    capped = {
        "power_limit_w": 285.0,
        "power_default_limit_w": 350.0,
        "sm_clock_mean_mhz": 1740.0,
        "sm_clock_max_mhz": 1860,
        "throttle": {"sw_power_cap": 1.0},
    }
    ctx = JudgeContext(subjects={"GPU0": Subject(gpu="NVIDIA GeForce RTX 3090")})
    j = judge_result(_gemm(60.0, **capped), ctx)
    assert j is not None and j.verdict == "no_reference"
    j = judge_result(_gemm(60.0, **{**capped, "sm_clock_mean_mhz": 1350.0}), ctx)
    assert j is not None and (j.verdict, j.cause) == ("below_normal", "power_capped")


def test_energy_and_the_ceiling_at_the_observed_clock() -> None:
    r = _gemm(700.0)
    cond = Conditions(
        seconds=10.0,
        gpus=[
            GpuConditions(
                gpu=0, power_mean_w=700.0, sm_clock_mean_mhz=1485.0, sm_clock_max_mhz=1980
            )
        ],  # fmt: skip
    )
    annotate(r, cond)
    assert r.params["joules_per_tflop"] == pytest.approx(1.0)
    assert r.params["peak_at_clock"] == pytest.approx(989.4 * 0.75, rel=1e-4)
    train = Result(benchmark="train", metric="tokens_per_s", value=500_000.0, unit="tokens/s")
    annotate(train, cond)
    assert train.params["joules_per_token"] == pytest.approx(700.0 / 500_000.0)
    assert train.params["tokens_per_kwh"] == pytest.approx(500_000.0 / 700.0 * 3.6e6, rel=1e-6)


def test_conditions_leave_out_idle_samples_and_take_the_link_under_load() -> None:
    ch = GpuChannel(gpu=0, name="x", power_limit_w=700.0, sm_clock_max_mhz=1980)
    samples = [
        TelemetrySample(
            t=0.0,
            gpu=0,
            sm_clock_mhz=345,
            throttle_mask=0x1,
            pcie_gen=1,
            pcie_width=16,
            power_instant_w=80.0,
        ),  # fmt: skip
        TelemetrySample(
            t=0.1,
            gpu=0,
            sm_clock_mhz=1500,
            throttle_mask=0x4,
            pcie_gen=5,
            pcie_width=16,
            power_instant_w=700.0,
            temp_gpu_c=70.0,
        ),  # fmt: skip
        TelemetrySample(
            t=0.2,
            gpu=0,
            sm_clock_mhz=1440,
            throttle_mask=0x0,
            pcie_gen=5,
            pcie_width=16,
            power_instant_w=690.0,
        ),  # fmt: skip
    ]
    g = summarize(0, samples, 0.3, ch, (5, 16))
    assert g.sm_clock_mean_mhz == pytest.approx(1470.0) and g.sm_clock_min_mhz == 1440
    assert g.throttle == {"sw_power_cap": pytest.approx(0.5)}
    assert (g.pcie_gen, g.pcie_width) == (5, 16)
    assert g.power_peak_w == 700.0 and g.temp_max_c == 70.0


def test_conditions_and_judgement_are_stored_with_the_result() -> None:
    store = Store.open(":memory:")
    from rigbench.records import Run

    rid = store.start_run(Run(command="bench"))
    r = _gemm(680.0, **HEALTHY_H200)
    r.judgement = Judgement(verdict="normal", low=635.0, high=790.0, reference="x", source="y")
    store.add_result(rid, r)
    (got,) = store.results(rid)
    assert got.conditions == r.conditions and got.judgement == r.judgement
    assert Result.from_dict(json.loads(json.dumps(r.to_dict()))) == r


# --- simulated rigs of each cause, through the CLI --------------------------------------


@pytest.mark.parametrize(
    ("rig", "only", "cause"),
    [
        ("bench-h100-power-cap.toml", "gemm", "power_capped"),
        ("bench-v100-thermal.toml", "gemm", "thermal"),
        ("bench-v100-clocks-locked.toml", "gemm", "clocks_locked"),
        ("bench-3090-gen3x4.toml", "hostlink", "link_degraded"),
        ("bench-4090-other-process.toml", "gemm", "other_process"),
    ],
)
def test_simulated_rigs_are_below_normal_with_their_cause(
    tmp_path: Path, examples: Path, rig: str, only: str, cause: str
) -> None:
    res = runner.invoke(
        app,
        [
            "bench",
            "--simulate",
            str(examples / rig),
            "--only",
            only,
            "--scale",
            "0.05",
            "--json",
            "--db",
            str(tmp_path / "r.db"),
        ],  # fmt: skip
    )
    assert res.exit_code == 1, res.stderr
    measured = [r for r in json.loads(res.stdout)["results"] if r["status"] == "ok"]
    assert measured
    for r in measured:
        assert r["judgement"]["verdict"] == "below_normal", r
        assert r["judgement"]["cause"] == cause
        assert r["conditions"]["source"] == "simulated"


def test_a_healthy_simulated_rig_is_not_below_normal(tmp_path: Path, examples: Path) -> None:
    res = runner.invoke(
        app,
        [
            "bench",
            "--simulate",
            str(examples / "iva-2x3090.toml"),
            "--only",
            "gemm,hostlink",
            "--gpus",
            "0",
            "--scale",
            "0.05",
            "--json",
            "--db",
            str(tmp_path / "r.db"),
        ],  # fmt: skip
    )
    assert res.exit_code == 0, res.stdout
    for r in json.loads(res.stdout)["results"]:
        if r["status"] == "ok":
            assert r["judgement"]["verdict"] == "no_reference", r
            # CPU stand-ins are not measured against the PCIe link they imitate
            assert r["expected"] is None


@pytest.mark.parametrize(
    ("rig", "degraded"),
    [("rtx4090-x1-idle.toml", set()), ("riser-gen4-trained-gen3.toml", {"GPU2"})],
)
def test_a_rig_read_at_rest_plays_its_link_as_it_trains_under_load(
    tmp_path: Path, examples: Path, rig: str, degraded: set[str]
) -> None:
    """The file's gen_current is the idle reading (Gen1 on a healthy 4090); a bench's played
    trace is of a GPU at work, so the link is gen_loaded where the file gives it."""
    res = runner.invoke(
        app,
        ["bench", "--simulate", str(examples / rig), "--only", "hostlink", "--scale", "0.05",
         "--json", "--db", str(tmp_path / "r.db")],
    )  # fmt: skip
    rows = [r for r in json.loads(res.stdout)["results"] if r["status"] == "ok"]
    assert rows, res.stderr
    one = [r for r in rows if len(r["devices"]) == 1]
    assert {r["devices"][0] for r in one if r["judgement"]["cause"] == "link_degraded"} == degraded


def test_a_power_cap_is_the_cause_of_compute_figures_not_of_copies(
    tmp_path: Path, examples: Path
) -> None:
    """GPU 2 of this rig is held by its cap under a GEMM; its P2P copies (copy engines, far
    under any cap) are not."""
    res = runner.invoke(
        app,
        ["bench", "--simulate", str(examples / "tr1920x-3x3090-power-cap.toml"),
         "--only", "gemm,p2p", "--scale", "0.05", "--json", "--db", str(tmp_path / "r.db")],
    )  # fmt: skip
    rows = [r for r in json.loads(res.stdout)["results"] if r["status"] == "ok"]
    capped = {(r["benchmark"], *r["devices"]) for r in rows
              if r["judgement"]["cause"] == "power_capped"}  # fmt: skip
    assert capped and all(b == "gemm" and d == "GPU2" for b, d in capped), capped
    assert any(r["benchmark"] == "p2p" and "GPU2" in r["devices"] for r in rows)


def test_a_corrupt_result_is_a_fault(tmp_path: Path, examples: Path) -> None:
    res = runner.invoke(
        app,
        [
            "bench",
            "--simulate",
            str(examples / "p2p-corrupt.toml"),
            "--only",
            "p2p",
            "--scale",
            "0.02",
            "--json",
            "--db",
            str(tmp_path / "r.db"),
        ],  # fmt: skip
    )
    assert res.exit_code == 2
    failed = [r for r in json.loads(res.stdout)["results"] if r["status"] == "failed"]
    assert failed
    assert {r["judgement"]["verdict"] for r in failed} == {"fault"}
    assert "wrong_data" in {r["judgement"]["cause"] for r in failed}


def test_on_the_cpu_backend_conditions_are_unavailable(tmp_path: Path, examples: Path) -> None:
    res = runner.invoke(
        app,
        [
            "bench",
            "--simulate",
            str(examples / "cpu-only.toml"),
            "--only",
            "gemm",
            "--scale",
            "0.05",
            "--json",
            "--db",
            str(tmp_path / "r.db"),
        ],  # fmt: skip
    )
    measured = [r for r in json.loads(res.stdout)["results"] if r["status"] == "ok"]
    assert measured
    for r in measured:
        assert r["conditions"]["gpus"] == [] and "CPU" in r["conditions"]["unavailable"]


def test_workload_figures_map_to_the_reference_vocabulary() -> None:
    from rigbench.judge.bench import reference_metric

    def res(benchmark: str, metric: str, **params: object) -> Result:
        return Result(benchmark=benchmark, metric=metric, value=1.0, unit="", params=params)

    assert reference_metric(res("train", "mfu", world_size=1, size="124m")) == "mfu"
    assert reference_metric(res("train", "mfu", world_size=2, size="124m")) is None
    assert reference_metric(res("train", "mfu", world_size=1, size="1.5b")) is None
    assert reference_metric(res("infer", "decode_tokens_per_s", batch=1)) == (
        "decode.roofline_ratio"
    )
    assert reference_metric(res("infer", "decode_tokens_per_s", batch=16)) is None
    assert reference_metric(res("hostlink", "h2d", host_memory="pinned")) == "h2d.pinned"
    assert reference_metric(res("hostlink", "h2d", host_memory="pageable")) is None
    assert reference_metric(res("gemm", "bf16.burst", dtype="bf16")) == "bf16.burst"


def test_decode_is_judged_as_a_fraction_of_its_bound() -> None:
    r = Result(benchmark="infer", metric="decode_tokens_per_s", value=150.0, unit="tokens/s",
               params={"batch": 1}, devices=["GPU0"], expected=250.0)  # fmt: skip
    ctx = JudgeContext(subjects={"GPU0": Subject(gpu="NVIDIA H200", power_limit_w=700.0)})
    (ref,) = [x for x in load_references() if x.id == "h200-sxm.infer.decode.roofline_ratio"]
    assert ref.typical is not None and ref.low is not None
    r.value = ref.typical * 250.0
    j = judge_result(r, ctx)
    assert j is not None and j.verdict == "normal"
    assert j.reference == ref.id
    r.value = 0.8 * ref.low * 250.0
    j = judge_result(r, ctx)
    assert j is not None and j.verdict == "below_normal"


def test_one_reading_of_an_idle_link_is_not_a_degraded_link() -> None:
    g = GpuConditions(gpu=0, samples=1, pcie_gen=1, pcie_width=16, pcie_gen_max=4,
                      pcie_width_max=16)  # fmt: skip
    r = Result(benchmark="hostlink", metric="h2d", value=20.0, unit="GB/s",
               params={"host_memory": "pinned"}, devices=["GPU0"],
               conditions=Conditions(gpus=[g], source="nvml"))  # fmt: skip
    ctx = JudgeContext(subjects={"GPU0": Subject(gpu="NVIDIA GeForce RTX 4090")})
    j = judge_result(r, ctx)
    assert j is not None and j.verdict == "no_reference"
    g.samples = 3
    j = judge_result(r, ctx)
    assert j is not None and (j.verdict, j.cause) == ("below_normal", "link_degraded")


def _pinned_h2d(value: float, numa: str) -> Result:
    g = GpuConditions(gpu=4, samples=20, pcie_gen=5, pcie_width=16, pcie_gen_max=5,
                      pcie_width_max=16)  # fmt: skip
    return Result(benchmark="hostlink", metric="h2d", value=value, unit="GB/s",
                  params={"host_memory": "pinned", "numa": numa, "gpu_numa_nodes": [1],
                          "process_numa_nodes": [0]},
                  devices=["GPU4"], expected=63.0,
                  conditions=Conditions(gpus=[g], source="nvml"))  # fmt: skip


def test_a_host_copy_from_the_other_numa_node_names_it() -> None:
    ctx = JudgeContext(subjects={"GPU4": Subject(gpu="NVIDIA H100 80GB HBM3", link="gen5x16")})
    j = judge_result(_pinned_h2d(38.0, "remote"), ctx)
    assert j is not None and (j.verdict, j.cause) == ("below_normal", "numa_remote")
    assert j.note and "GPU4 on node 1" in j.note and "node(s) 0" in j.note
    assert "numactl --cpunodebind" in j.note
    # the same figure with the buffers next to the GPU has no cause to name
    j = judge_result(_pinned_h2d(38.0, "local"), ctx)
    assert j is not None and (j.verdict, j.cause) == ("below_normal", "unknown")
    # remote and still healthy: normal, with the placement said
    j = judge_result(_pinned_h2d(55.0, "remote"), ctx)
    assert j is not None and j.verdict == "normal" and j.note and "node 1" in j.note


def test_host_copies_to_several_gpus_at_once_have_no_healthy_figure_to_fail() -> None:
    """A shared uplink, host memory or the root complex can hold them under the sum of the
    links on a healthy rig; nothing sourced says by how much."""
    ctx = JudgeContext(subjects={"GPU4": Subject(gpu="NVIDIA H100 80GB HBM3", link="gen5x16")})
    r = _pinned_h2d(60.0, "local")
    r.params |= {"at_once": 2, "pinned": True}
    r.expected = 126.0
    j = judge_result(r, ctx)
    assert j is not None and j.verdict == "no_reference" and j.note and "unknown" in j.note
    # where the buffers sat is said, not judged, when there is no figure to judge it by
    r.params["numa"] = "remote"
    j = judge_result(r, ctx)
    assert j is not None and j.verdict == "no_reference"
    assert j.note and "ran with" in j.note and "node 1" in j.note


def test_a_rig_whose_launcher_is_pinned_to_one_socket_replays_it(
    tmp_path: Path, examples: Path
) -> None:
    """GPU 3 sits on node 0, GPU 4 on node 1, and the process may run on node 0 only."""
    res = runner.invoke(
        app,
        ["bench", "--simulate", str(examples / "h100-8x-nvswitch-pinned-numa0.toml"),
         "--only", "hostlink", "--gpus", "3,4", "--scale", "0.05", "--json",
         "--db", str(tmp_path / "r.db")],
    )  # fmt: skip
    assert res.exit_code == 1, res.stderr
    rows = [r for r in json.loads(res.stdout)["results"] if r["status"] == "ok"]
    assert {tuple(r["devices"]) for r in rows} == {("GPU3",), ("GPU4",), ("GPU3", "GPU4")}
    for r in rows:
        remote = "GPU4" in r["devices"]
        assert r["params"]["numa"] == ("remote" if remote else "local")
        assert (r["judgement"]["cause"] == "numa_remote") == remote, r["judgement"]


def test_p2p_is_judged_against_the_pair_link_and_peer_access() -> None:
    from pathlib import Path

    from rigbench.hw.simulated import SimulatedBackend
    from rigbench.judge.bench import judge_context

    examples = Path(__file__).parent.parent / "examples" / "simulated"
    rig = SimulatedBackend.from_file(examples / "h100-8x-nvswitch.toml").rig()
    ctx = judge_context(rig, {"GPU0": 0, "GPU1": 1}, stand_ins=False)
    assert ctx.pair_links[frozenset(("GPU0", "GPU1"))] == "nvswitch"
    r = Result(benchmark="p2p", metric="unidir", value=370.0, unit="GB/s",
               params={"p2p_access": True}, devices=["GPU0", "GPU1"], expected=450.0)  # fmt: skip
    j = judge_result(r, ctx)
    # an NVSwitch pair is never judged against a PCIe entry (63 GB/s would read "implausible")
    assert j is not None and j.verdict == "normal" and j.reference is not None
    assert "nvswitch" in j.reference

    refs = load_references()
    on = find_references(gpu="*", benchmark="p2p", metric="unidir", link="gen4x16", p2p=True,
                         references=refs)  # fmt: skip
    off = find_references(gpu="*", benchmark="p2p", metric="unidir", link="gen4x16", p2p=False,
                          references=refs)  # fmt: skip
    assert on and off and on[0].p2p is True and off[0].p2p is False


@pytest.mark.parametrize(
    ("reason", "verdict"),
    [("hang", "fault"), ("crash", "fault"), ("wrong_data", "fault"), ("oom", "fault"),
     ("timeout_startup", None), ("skipped_dependency", None), ("unsupported", None)],
)  # fmt: skip
def test_a_failed_step_is_judged_by_its_reason_code(reason: str, verdict: str | None) -> None:
    r = Result.failure("p2p", "unidir", "GB/s", "the words do not matter", devices=["GPU0"])
    r.reason = reason  # type: ignore[assignment]
    j = judge_result(r, JudgeContext())
    if verdict is None:
        assert j is None  # a slow machine or a skipped step is not a GPU fault
    else:
        assert j is not None and j.verdict == verdict and j.cause == reason
