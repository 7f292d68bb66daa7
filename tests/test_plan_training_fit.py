"""Training fit with the memory savers seed 001's owner used, and the CLI traps of issue 12."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rigbench.cli import app
from rigbench.plan import BuildFileError, load_build, plan_build
from rigbench.plan.build import with_models
from rigbench.plan.fit import fit_training

V100_16 = [16.0] * 4  # seed 001: 4x V100 SXM2 16GB
BUILDS = Path(__file__).resolve().parents[1] / "examples" / "builds"
runner = CliRunner()


def test_seed_001_full_fine_tune_of_an_8b_needs_cpu_offload() -> None:
    # seed 001: "a full parameter finetune of [Llama 3.1 8B] using context windows of 2048"
    # on 4x V100 16 GB with FSDP. 16 bytes/param / 4 GPUs = 30 GiB per GPU: not without offload
    plain = fit_training("llama-3.1-8b", gpus_gib=V100_16, mode="full", context=2048)
    assert not plain.fits
    assert plain.placements[0].weights_gib + plain.placements[0].optimizer_gib > 16
    offloaded = fit_training(
        "llama-3.1-8b", gpus_gib=V100_16, mode="full", context=2048, cpu_offload="all"
    )
    assert offloaded.fits
    # everything but two gathered layers lives in host memory: 16 bytes x 8.03e9 params
    assert offloaded.settings["host_gib"] == pytest.approx(16 * 8_030_261_248 / 2**30)
    optimizer_only = fit_training(
        "llama-3.1-8b", gpus_gib=V100_16, mode="full", context=2048, cpu_offload="optimizer"
    )
    assert optimizer_only.fits and optimizer_only.placements[0].optimizer_gib == 0


def test_seed_001_70b_qlora_at_8k_fits_with_offload_and_a_chunked_loss() -> None:
    # seed 001: "train a 70b parameter model using qLoRA on an 8,192 token context window"
    plain = fit_training("llama-3.1-70b", gpus_gib=V100_16, mode="qlora", context=8192)
    assert not plain.fits
    saved = fit_training(
        "llama-3.1-70b",
        gpus_gib=V100_16,
        mode="qlora",
        context=8192,
        cpu_offload="all",
        chunked_loss=True,
    )
    assert saved.fits
    # fp32 logits of 8,192 tokens x 128,256 vocab are 7.8 GiB; chunked, an eighth
    full_logits = 8 * 8192 * 128_256 / 2**30
    assert plain.placements[0].activations_gib - saved.placements[0].activations_gib > (
        full_logits * 7 / 8 - 0.01
    )


def test_activation_offload_needs_checkpointing() -> None:
    with pytest.raises(Exception, match="checkpointing"):
        fit_training(
            "llama-3-8b",
            gpus_gib=[24.0],
            mode="lora",
            checkpointing=False,
            activation_offload=True,
        )


def test_training_findings_do_not_reuse_inference_wording(tmp_path: Path) -> None:
    path = tmp_path / "rig.toml"
    path.write_text(
        '[rig]\nname = "t"\n[[gpu]]\nmodel = "V100 SXM2 16GB"\ncount = 4\n'
        '[[model]]\nname = "llama-3.1-8b"\nmode = "full"\ncontext = 2048\n'
    )
    r = plan_build(load_build(path))
    (f,) = r.finding("fit.does_not_fit")
    assert "KV cache" not in (f.fix or "") and "tokens/s" not in (f.why or "")
    assert "cpu_offload" in (f.fix or "")
    text = path.read_text() + 'cpu_offload = "all"\n'
    path.write_text(text)
    ok = plan_build(load_build(path))
    (g,) = ok.finding("fit.fits")
    assert g.evidence["host_gib"] > 100


def test_bits_per_weight_is_refused_for_training() -> None:
    build = load_build(BUILDS / "iva-2x3090.toml")
    with pytest.raises(BuildFileError, match=r"^--bits-per-weight: .*qlora"):
        with_models(build, ["llama-3-8b"], bits="4", mode="full")


def test_a_context_beyond_the_model_is_one_answer_not_two() -> None:
    build = with_models(load_build(BUILDS / "iva-2x3090.toml"), ["llama-3-8b"], context=16384)
    r = plan_build(build)
    assert not r.finding("fit.fits")
    (f,) = r.finding("fit.beyond_model_context")
    assert f.severity == "warning" and "8,192" in f.title and "16,384" in f.title
    within = plan_build(
        with_models(load_build(BUILDS / "iva-2x3090.toml"), ["llama-3-8b"], context=8192)
    )
    (ok,) = within.finding("fit.fits")
    assert "largest context" not in (ok.why or "") and "8,192" in (ok.why or "")


def test_q4_k_m_is_a_format_and_q4_k_is_its_alias() -> None:
    build = load_build(BUILDS / "iva-2x3090.toml")
    a = plan_build(with_models(build, ["llama-3-70b"], bits="q4_k_m"))
    b = plan_build(with_models(build, ["llama-3-70b"], bits="q4_k"))
    assert a.fit[0]["total_gib"] == b.fit[0]["total_gib"]


def test_custom_models_take_max_context_and_qkv_bias(tmp_path: Path) -> None:
    path = tmp_path / "rig.toml"
    path.write_text(
        '[rig]\nname = "t"\n[[gpu]]\nmodel = "RTX 3090"\n'
        '[[model]]\nname = "my-qwen"\nparams = "7.6B"\nlayers = 28\nhidden = 3584\n'
        "heads = 28\nkv_heads = 4\nhead_dim = 128\nvocab = 152064\nintermediate = 18944\n"
        "qkv_bias = true\nmax_context = 32768\nbits_per_weight = 4\ncontext = 65536\n"
    )
    build = load_build(path)
    spec = build.model_specs[0]
    assert spec is not None and spec.qkv_bias and spec.max_context == 32768
    assert plan_build(build).finding("fit.beyond_model_context")


def test_unknown_part_hint_names_a_catalog_listing_that_finds_it(tmp_path: Path) -> None:
    path = tmp_path / "rig.toml"
    path.write_text(
        '[rig]\nname = "t"\n[[gpu]]\nmodel = "RTX 3090"\n[motherboard]\nmodel = "zzzz"\n'
    )
    with pytest.raises(BuildFileError, match="rigbench catalog --kind board") as exc:
        load_build(path)
    res = runner.invoke(app, ["catalog", "--kind", "board", "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout), str(exc.value)
