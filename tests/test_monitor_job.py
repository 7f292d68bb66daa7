"""`rigbench monitor -- CMD` as an owner meets it (a simulated rig, real child processes), the
job's metric parsing, and the VRAM judgement in monitor and burnin."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from rigbench.burnin.verdict import DeviceEvidence, LoadEvidence, judge
from rigbench.cli import app
from rigbench.hw.telemetry import GpuChannel
from rigbench.judge.vram import vram_findings
from rigbench.store import Store
from rigbench.telemetry.aggregate import Aggregator
from rigbench.telemetry.metric import MetricParser
from rigbench.telemetry.recorder import load_samples

runner = CliRunner()
PY = sys.executable


def _job(tmp_path: Path, rig: Path, *cmd: str, opts: tuple[str, ...] = ()) -> tuple[int, Any, str]:
    res = runner.invoke(
        app,
        ["monitor", "--simulate", str(rig), "--json", "--db", str(tmp_path / "r.db"), *opts,
         "--", *cmd],
        env={"COLUMNS": "200"},
    )  # fmt: skip
    doc = json.loads(res.stdout) if res.stdout.strip().startswith("{") else None
    return res.exit_code, doc, res.stderr


def test_job_exit_0_keeps_the_run_samples_energy_and_the_ollama_rate(
    tmp_path: Path, examples: Path
) -> None:
    script = "import time; time.sleep(1.2); print('eval rate:            13.33 tokens/s')"
    code, doc, err = _job(
        tmp_path, examples / "iva-2x3090-vram-104.toml", PY, "-c", script,
        opts=("--rate", "50", "--price-kwh", "0.30"),
    )  # fmt: skip
    assert code == 0, err
    assert doc["exit_code"] == 0 and doc["signal"] is None
    assert doc["command"] == [PY, "-c", script]
    assert "eval rate" in err  # the job's stdout went to stderr: stdout is the JSON
    # the run and every sample are kept, with the job
    store = Store.open(tmp_path / "r.db")
    run_id = doc["run"]["id"]
    assert store.get_run(run_id).status == "complete"  # type: ignore[union-attr]
    samples = load_samples(store, run_id)
    assert {s.gpu for s in samples} == {0, 1} and len(samples) == doc["samples_written"] > 20
    row = store.db.execute(
        "SELECT command, exit_code, duration_s FROM jobs WHERE run_id = ?", (run_id,)
    ).fetchone()
    assert json.loads(row[0]) == [PY, "-c", script] and row[1] == 0 and row[2] >= 1.2
    # energy: 2 GPUs at 345 W for about the job's duration
    total = doc["total"]
    assert total["power_mean_w"] == pytest.approx(690, rel=0.01)
    assert total["energy_j"] == pytest.approx(690 * doc["duration_s"], rel=0.15)
    assert total["energy_kwh"] == pytest.approx(total["energy_j"] / 3.6e6)
    assert total["cost"] == pytest.approx(total["energy_kwh"] * 0.30)
    g0 = doc["gpus"][0]
    assert g0["throttle_share"]["sw_power_cap"] == pytest.approx(1.0, abs=0.05)
    assert g0["temp_gpu_max_c"] == 68 and g0["temp_mem_max_c"] == 104
    assert g0["power_p99_w"] == 345 and g0["sm_clock_median_mhz"] == 1500
    # throughput: tokens per joule = tokens/s over the GPUs' mean watts
    m = doc["metric"]
    assert m["name"] == "ollama" and m["value"] == 13.33 and m["unit"] == "tokens/s"
    assert m["per_joule"] == pytest.approx(13.33 / total["power_mean_w"])
    assert m["per_kwh"] == pytest.approx(m["per_joule"] * 3.6e6)
    # VRAM at 104 °C: shown, judged below the 110 °C throttle point, no warning
    vram = [f for f in doc["findings"] if f["id"].startswith("vram.")]
    assert {f["id"] for f in vram} == {"vram.ok"} and len(vram) == 2


def test_job_exit_code_3_is_returned(tmp_path: Path, examples: Path) -> None:
    code, doc, _ = _job(tmp_path, examples / "iva-2x3090.toml", PY, "-c", "raise SystemExit(3)")
    assert code == 3 and doc["exit_code"] == 3 and doc["signal"] is None
    assert doc["run"]["status"] == "complete"


def test_job_ended_by_a_signal_exits_128_plus_n(tmp_path: Path, examples: Path) -> None:
    script = "import os, signal; os.kill(os.getpid(), signal.SIGTERM)"
    code, doc, _ = _job(tmp_path, examples / "iva-2x3090.toml", PY, "-c", script)
    assert code == 128 + 15 and doc["signal"] == 15 and doc["exit_code"] == 143


def test_vram_at_112_warns_naming_the_vram_and_the_fixes(tmp_path: Path, examples: Path) -> None:
    code, doc, _ = _job(
        tmp_path, examples / "iva-2x3090-vram-112.toml", PY, "-c", "import time; time.sleep(1.5)"
    )
    assert code == 0  # the command's exit code, whatever was found
    hot = [f for f in doc["findings"] if f["id"] == "vram.hot"]
    assert [f["gpus"] for f in hot] == [[0], [1]]
    f = hot[0]
    assert f["severity"] == "warning" and "VRAM (GDDR6X) at 112 °C" in f["title"]
    for fix in ("backplate", "thermal pads", "power limit"):
        assert fix in f["fix"]
    assert f["evidence"]["limit_c"] == 110 and "3×3090 ex-mining rig" in f["source"]


def test_a_command_that_does_not_exist_is_one_line_exit_127(tmp_path: Path, examples: Path) -> None:
    code, doc, err = _job(tmp_path, examples / "iva-2x3090.toml", "no-such-command-rigbench")
    assert code == 127 and doc is None
    assert "command not found" in err and "Traceback" not in err and err.count("\n") == 1


def test_a_metric_regex_needs_one_group(tmp_path: Path, examples: Path) -> None:
    code, _, err = _job(
        tmp_path, examples / "iva-2x3090.toml", PY, "-c", "pass", opts=("--metric", "(a)(b)")
    )
    assert code == 2 and "one capture group" in err


def test_a_custom_metric_and_an_idle_job(tmp_path: Path, examples: Path) -> None:
    rig = tmp_path / "idle.toml"
    text = (examples / "iva-2x3090.toml").read_text()
    rig.write_text(text + "\n[telemetry]\n[[telemetry.segment]]\nt = 0\nutil_pct = 20\n")
    code, doc, _ = _job(
        tmp_path, rig, PY, "-c", "print('step 9 done: 512 samples')",
        opts=("--metric", r"done: (\d+ samples)"),
    )  # fmt: skip
    assert code == 0
    m = doc["metric"]
    assert m["name"] == "custom" and m["value"] == 512 and not m["is_rate"]
    assert m["per_joule"] == pytest.approx(512 / doc["total"]["energy_j"])
    idle = next(f for f in doc["findings"] if f["id"] == "job.gpus_idle")
    assert idle["severity"] == "info" and idle["gpus"] == [0, 1]


# --- metric presets ----------------------------------------------------------------------


def test_presets_read_what_owners_paste() -> None:
    ollama = MetricParser.from_option(None)
    for line in (
        "prompt eval rate:     367.52 tokens/s",  # not the generation rate
        "eval rate:            8.81 tokens/s",
        "eval rate:            9.19 tokens/s",
    ):
        ollama.feed(line)
    got = ollama.result(mean_power_w=500.0)
    assert got is not None and got.name == "ollama" and got.values == [8.81, 9.19]
    assert got.value == pytest.approx(9.0) and got.per_joule == pytest.approx(9.0 / 500)

    bench = MetricParser.from_option("llama-bench")
    for line in (
        "| model                |       size |  params | backend | ngl |  test |           t/s |",
        "| llama 7B Q4_0        |   3.56 GiB |  6.74 B | CUDA    |  99 | pp512 | 2368.80 ± 93.24 |",
        "| llama 7B Q4_0        |   3.56 GiB |  6.74 B | CUDA    |  99 | tg128 |  131.42 ± 0.59 |",
    ):
        bench.feed(line)
    got = bench.result()
    assert got is not None and got.values == [131.42]

    hf = MetricParser.from_option("hf-trainer")
    hf.feed("{'train_runtime': 61.2, 'train_samples_per_second': 45.61, 'epoch': 1.0}")
    hf.feed("  train_samples_per_second =     46.01")
    got = hf.result(mean_power_w=300.0)
    assert got is not None and got.unit == "samples/s" and got.values == [45.61, 46.01]


# --- the VRAM judgement on its own and in burn-in ------------------------------------------


def _hot_vram(temp_c: float, seconds: float, memory: str | None = "GDDR6X") -> Any:
    from rigbench.hw.telemetry import TelemetrySample

    ch = GpuChannel(gpu=0, name="NVIDIA GeForce RTX 3090", memory_type=memory)
    agg = Aggregator([ch], 0.05)
    for k in range(int(seconds / 0.05)):
        agg.add(k * 0.05, [TelemetrySample(t=k * 0.05, gpu=0, temp_mem_c=temp_c)], [])
    return ch, agg.view().gpus[0]


def test_vram_judgement_needs_time_at_the_limit() -> None:
    ch, agg = _hot_vram(110.0, 2.0)
    assert [f.id for f in vram_findings(ch, agg)] == ["vram.hot"]
    ch, agg = _hot_vram(110.0, 0.5)  # a brief touch is a note
    assert [(f.id, f.severity) for f in vram_findings(ch, agg)] == [("vram.touched", "info")]
    ch, agg = _hot_vram(109.9, 5.0)
    assert [f.id for f in vram_findings(ch, agg)] == ["vram.ok"]
    ch, agg = _hot_vram(101.0, 2.0, memory="GDDR6")  # Micron's GDDR6 maximum is 100 °C
    assert [f.id for f in vram_findings(ch, agg)] == ["vram.hot"]
    ch, agg = _hot_vram(101.0, 2.0, memory=None)  # no memory type and no reported limit
    assert vram_findings(ch, agg) == []
    ch.limits.mem_max_c = 95.0  # an HBM GPU: the limit it reports
    (f,) = vram_findings(ch, agg)
    assert f.id == "vram.hot" and f.evidence["limit_c"] == 95.0


def test_burnin_verdict_warns_on_hot_vram_without_failing() -> None:
    ch, agg = _hot_vram(112.0, 3.0)
    d = DeviceEvidence(
        label="GPU0", name=ch.name, gpu=0, stand_in=False,
        load=LoadEvidence(status="ok", checks=3, gemm_tflops=[10.0, 10.0, 10.0]),
        channel=ch, agg=agg,
    )  # fmt: skip
    v = judge([d], totals={}).devices[0]
    assert v.verdict == "pass"
    vram = [r for r in v.reasons if r.id == "burnin.vram_temperature"]
    assert len(vram) == 1 and vram[0].severity == "warning"
    assert "112 °C" in vram[0].title and "backplate" in vram[0].title
    assert vram[0].source and vram[0].gpus == [0]  # judge.vram's, under the burn-in's id


def test_burnin_on_the_simulated_rig_shows_and_judges_the_vram(
    tmp_path: Path, examples: Path
) -> None:
    def burnin(rig: str) -> dict[str, Any]:
        res = runner.invoke(
            app,
            ["burnin", "--minutes", "0.02", "--json", "--db", str(tmp_path / f"{rig}.db"),
             "--simulate", str(examples / rig)],
            env={"COLUMNS": "200"},
        )  # fmt: skip
        return json.loads(res.stdout)  # type: ignore[no-any-return]

    warm = burnin("iva-2x3090-vram-104.toml")
    assert warm["verdict"] == "pass"
    for g in warm["gpus"]:
        assert g["figures"]["temp_mem_peak_c"] == 104
        assert not [r for r in g["reasons"] if r["code"] == "vram_temperature"]
    hot = burnin("iva-2x3090-vram-112.toml")
    assert hot["verdict"] == "pass"  # a warning, not a failure
    for g in hot["gpus"]:
        (r,) = [r for r in g["reasons"] if r["code"] == "vram_temperature"]
        assert r["severity"] == "warn" and "VRAM (GDDR6X) at 112 °C" in r["message"]


def test_prometheus_exports_the_vram_temperature_of_a_3090(examples: Path) -> None:
    from rigbench.hw.simulated import SimulatedBackend
    from rigbench.telemetry.prometheus import render_metrics

    source = SimulatedBackend.from_file(examples / "iva-2x3090-vram-112.toml").telemetry()
    agg = Aggregator(source.channels(), 0.05)
    agg.add(1.0, source.read(1.0), [])
    text = render_metrics(agg.view())
    assert re.search(
        r'rigbench_gpu_memory_temperature_celsius\{UUID="GPU-[0-9a-f-]+",gpu="1",'
        r'modelName="NVIDIA GeForce RTX 3090",name="NVIDIA GeForce RTX 3090"\} 112',
        text,
    )


def test_ctrl_c_reaches_the_command_first_and_the_run_is_kept(
    tmp_path: Path, examples: Path
) -> None:
    """A terminal's Ctrl-C goes to the whole foreground process group: the command stops on
    it, monitor summarises, stores the run and exits with the command's code (130)."""
    import os
    import signal
    import subprocess

    script = (
        "import sys, time\n"
        "try:\n"
        "    print('ready', flush=True)\n"
        "    time.sleep(60)\n"
        "except KeyboardInterrupt:\n"
        "    print('child got SIGINT', flush=True)\n"
        "    sys.exit(130)\n"
    )
    db = tmp_path / "r.db"
    proc = subprocess.Popen(
        [PY, "-m", "rigbench", "monitor", "--simulate", str(examples / "iva-2x3090.toml"),
         "--json", "--db", str(db), "--", PY, "-c", script],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent / "src")},
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        for line in proc.stderr:  # the command's stdout comes on monitor's stderr
            if b"ready" in line:
                break
        os.killpg(proc.pid, signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, stderr
    doc = json.loads(stdout)
    assert doc["exit_code"] == 130 and doc["interrupted"] is True
    assert b"child got SIGINT" in stderr
    store = Store.open(db)
    assert store.get_run(doc["run"]["id"]).status == "complete"  # type: ignore[union-attr]
    assert load_samples(store, doc["run"]["id"])


def test_job_peaks_against_the_build(tmp_path: Path, examples: Path) -> None:
    builds = examples.parent / "builds"
    code, doc, err = _job(
        tmp_path, examples / "minerva-4x3090.toml", PY, "-c", "import time; time.sleep(1)",
        opts=("--build", str(builds / "minerva.toml")),
    )  # fmt: skip
    assert code == 0, err
    ids = {f["id"] for f in doc["findings"]}
    assert {"build.psu", "build.circuit"} <= ids
    psu = next(f for f in doc["findings"] if f["id"] == "build.psu")
    assert "GPUs 0,1,2,3 peaked at" in psu["title"]


def test_job_options_without_a_job_and_watch_options_with_one_are_bad_input(
    examples: Path,
) -> None:
    rig = str(examples / "iva-2x3090.toml")
    res = runner.invoke(app, ["monitor", "--simulate", rig, "--metric", "ollama"])
    assert res.exit_code == 2 and "--metric: only with a command" in res.stderr
    res = runner.invoke(app, ["monitor", "--simulate", rig, "--seconds", "1", "--", "true"])
    assert res.exit_code == 2 and "--seconds: not with -- CMD" in res.stderr


def test_compare_sets_two_jobs_side_by_side(tmp_path: Path, examples: Path) -> None:
    rig = examples / "iva-2x3090-vram-104.toml"
    ids = []
    for rate in ("13.33", "9.50"):
        script = f"import time; time.sleep(0.6); print('eval rate: {rate} tokens/s')"
        code, doc, err = _job(tmp_path, rig, PY, "-c", script, opts=("--rate", "50"))
        assert code == 0, err
        ids.append(doc["run"]["id"])
    res = runner.invoke(
        app, ["compare", str(ids[0]), str(ids[1]), "--json", "--db", str(tmp_path / "r.db")]
    )
    rows = {(r["metric"], tuple(r["devices"])): r for r in json.loads(res.stdout)["rows"]}
    metric = rows[("metric", ())]
    assert (metric["a"], metric["b"], metric["unit"]) == (13.33, 9.5, "tokens/s")
    assert metric["beyond_noise"] is True
    per_j = rows[("metric_per_joule", ())]
    assert per_j["unit"] == "tokens/J" and per_j["a"] > per_j["b"] > 0
    assert {("power_mean", ("GPU0",)), ("energy", ("GPU1",)), ("duration", ())} <= set(rows)


def test_bench_conditions_carry_the_vram_temperature(tmp_path: Path, examples: Path) -> None:
    res = runner.invoke(
        app,
        ["bench", "--only", "memory", "--json", "--db", str(tmp_path / "b.db"),
         "--simulate", str(examples / "iva-2x3090-vram-104.toml")],
    )  # fmt: skip
    (g, *_) = json.loads(res.stdout)["results"][0]["conditions"]["gpus"]
    # the rig's trace warms the VRAM from 96 to 104 °C while the core stays at 68 °C
    assert 96 <= g["temp_mem_max_c"] <= 104 and g["temp_max_c"] == 68
