"""The fit check: model presets, the memory formulas on hand-computed cases, the splits over
GPUs, training modes and sharding, and the seeds' observations."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rigbench.catalog.gpus import CatalogError
from rigbench.catalog.models import (
    ModelSpec,
    find_model,
    get_model,
    load_models,
    parse_models,
    sliding_window_layers,
)
from rigbench.errors import BadInput
from rigbench.plan.fit import (
    GIB,
    KV_BYTES_PER_ELEMENT,
    QLORA_BITS_PER_PARAM,
    FitPlan,
    bits_per_weight_of,
    default_layer_split,
    fit_inference,
    fit_training,
    kv_bytes_per_element,
    kv_cache_bytes,
    lora_adapter_params,
)

LLAMA_70B = get_model("llama-3-70b")


def _spec(**overrides: Any) -> ModelSpec:
    """A small Llama-style model for hand arithmetic."""
    fields: dict[str, Any] = {
        "name": "toy",
        "params": 1_000_000_000,
        "layers": 4,
        "hidden": 1024,
        "heads": 8,
        "kv_heads": 2,
        "vocab": 1000,
        "intermediate": 4096,
    }
    return ModelSpec(**{**fields, **overrides})


# ----------------------------------------------------------------- presets


def test_presets_cover_the_issue_models_with_their_config_json() -> None:
    ids = {m.id for m in load_models()}
    assert {
        "llama-3-8b",
        "llama-3.1-8b",
        "llama-3-70b",
        "llama-3.1-70b",
        "qwen2.5-7b",
        "qwen2.5-72b",
        "deepseek-r1-distill-llama-70b",
        "mistral-7b-v0.1",
        "mistral-7b-v0.3",
        "mixtral-8x7b",
    } <= ids
    for m in load_models():
        assert m.source and m.source.startswith("https://huggingface.co/")
        assert m.source.endswith("/config.json")
        # the loader checks params against the architecture; here exactly
        assert m.architecture_params() == (m.params, m.active_params)


@pytest.mark.parametrize(
    ("name", "layers", "hidden", "heads", "kv_heads", "head_dim", "vocab", "inter", "params"),
    [
        ("llama-3-8b", 32, 4096, 32, 8, 128, 128256, 14336, 8_030_261_248),
        ("llama-3-70b", 80, 8192, 64, 8, 128, 128256, 28672, 70_553_706_496),
        ("qwen2.5-7b", 28, 3584, 28, 4, 128, 152064, 18944, 7_615_616_512),
        ("qwen2.5-72b", 80, 8192, 64, 8, 128, 152064, 29568, 72_706_203_648),
        ("deepseek-r1:70b", 80, 8192, 64, 8, 128, 128256, 28672, 70_553_706_496),
        ("mistral-7b-v0.1", 32, 4096, 32, 8, 128, 32000, 14336, 7_241_732_096),
    ],
)
def test_preset_architecture(
    name: str,
    layers: int,
    hidden: int,
    heads: int,
    kv_heads: int,
    head_dim: int,
    vocab: int,
    inter: int,
    params: int,
) -> None:
    m = get_model(name)
    got = (m.layers, m.hidden, m.heads, m.kv_heads, m.head_dim, m.vocab, m.intermediate)
    assert got == (layers, hidden, heads, kv_heads, head_dim, vocab, inter)
    assert m.params == params


def test_mixtral_is_moe_with_total_and_active_params() -> None:
    m = get_model("mixtral 8x7b")
    assert (m.experts, m.experts_per_token) == (8, 2)
    assert m.params == 46_702_792_704  # "46.7B total"
    assert m.active_params == 12_879_925_248  # "12.9B active"
    assert m.sliding_window is None


def test_mistral_short_name_is_v03_and_only_v01_slides() -> None:
    assert get_model("mistral-7b").id == "mistral-7b-v0.3"
    assert get_model("mistral:7b").sliding_window is None
    v01 = get_model("Mistral-7B-v0.1")
    assert v01.sliding_window == 4096
    assert v01.sliding_layers == tuple(range(32))
    sliding = {m.id for m in load_models() if m.sliding_window is not None}
    assert sliding == {"mistral-7b-v0.1", "gemma-2-9b", "gemma-2-27b"}


def test_gemma_2_alternates_local_and_global_layers() -> None:
    # google/gemma-2-27b config.json: 46 layers, sliding_window 4096, local layers first
    g = get_model("gemma2:27b")
    assert g.sliding_window == 4096 and g.max_context == 8192
    assert g.sliding_layers == tuple(range(0, 46, 2))


def test_lookup_ignores_case_dashes_and_org_prefix() -> None:
    assert get_model("meta-llama/Meta-Llama-3-70B-Instruct") is LLAMA_70B
    assert get_model("LLAMA 3 70B") is LLAMA_70B
    assert get_model("Llama_3.1_8B").id == "llama-3.1-8b"
    assert find_model("llama-3-80b") is None


def test_unknown_model_is_bad_input_with_the_closest_presets() -> None:
    with pytest.raises(BadInput, match=r"unknown model 'llama-3-80b'; did you mean .*llama-3-8b"):
        get_model("llama-3-80b")
    with pytest.raises(BadInput, match="qwen2.5-72b"):
        get_model("qwen2.5-70b")
    with pytest.raises(BadInput, match="presets: llama-3-8b"):
        get_model("gpt-4")
    with pytest.raises(BadInput, match="unknown model"):
        fit_inference("llama-4-70b", gpus_gib=[24])


def test_model_spec_from_explicit_fields() -> None:
    m = ModelSpec(
        name="My Model 3B", params=3_000_000_000, layers=26, hidden=3072, heads=24, kv_heads=8
    )
    assert (m.id, m.head_dim, m.active_params, m.sliding_layers) == (
        "my-model-3b",
        128,
        m.params,
        (),
    )
    assert m.embedding_params == 0 and m.architecture_params() is None
    plan = fit_inference(m, gpus_gib=[12], bits_per_weight=16, context=1024)
    assert plan.model == "my-model-3b"
    assert plan.placements[0].weights_gib == pytest.approx(3e9 * 2 / GIB)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"kv_heads": 3}, "multiple of kv_heads"),
        ({"layers": 0}, "layers must be a positive integer"),
        ({"active_params": 2_000_000_000}, "exceeds params"),
        ({"sliding_layers": (0,)}, "without sliding_window"),
        ({"sliding_window": 128, "sliding_layers": (9,)}, r"within 0\.\.3"),
        ({"experts": 2, "experts_per_token": 3}, "exceeds experts"),
        ({"hidden": 1000, "heads": 7, "kv_heads": 7}, "give head_dim"),
    ],
)
def test_model_spec_rejects_what_cannot_be(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(BadInput, match=message):
        _spec(**overrides)


def test_catalog_file_errors_name_the_entry_and_field() -> None:
    entry = {
        "id": "x",
        "name": "X",
        "params": 10,
        "layers": 1,
        "hidden": 8,
        "heads": 2,
        "kv_heads": 1,
        "head_dim": 4,
        "vocab": 0,
        "intermediate": 0,
        "source": "s",
    }
    assert parse_models({"model": [entry]})[0].id == "x"
    with pytest.raises(CatalogError, match=r"model\[0\] \('x'\): unknown key\(s\): 'layer'"):
        parse_models({"model": [{**entry, "layer": 3}]})
    with pytest.raises(CatalogError, match="heads must be an integer"):
        parse_models({"model": [{**entry, "heads": "2"}]})
    with pytest.raises(CatalogError, match="not what the architecture gives"):
        parse_models({"model": [{**entry, "vocab": 10, "intermediate": 16}]})


def test_sliding_window_layer_patterns() -> None:
    assert sliding_window_layers("even", 6) == (0, 2, 4)  # Gemma 2: even layers are local
    assert sliding_window_layers("odd", 6) == (1, 3, 5)
    assert sliding_window_layers("all", 3) == (0, 1, 2)
    assert sliding_window_layers([5, 0, 5], 6) == (0, 5)
    with pytest.raises(BadInput, match="not one of all, even, odd"):
        sliding_window_layers("alternate", 6)


# ----------------------------------------------------------------- KV cache


def test_llama_3_70b_kv_at_8k_fp16_is_2_5_gib() -> None:
    expected = 2 * 80 * 8 * 128 * 8192 * 2
    assert kv_cache_bytes(LLAMA_70B, context=8192, kv_dtype="fp16") == expected
    assert expected / GIB == 2.5
    assert kv_cache_bytes(LLAMA_70B, context=8192, batch=4) == 4 * expected


def test_kv_dtypes_count_block_scales() -> None:
    assert kv_bytes_per_element("q8_0") == 34 / 32
    assert kv_bytes_per_element("q4_0") == 18 / 32
    assert kv_bytes_per_element("f16") == kv_bytes_per_element("bf16") == 2
    assert kv_bytes_per_element("fp8_e4m3") == 1
    assert kv_cache_bytes(LLAMA_70B, context=8192, kv_dtype="q8_0") / GIB == 2.5 * 34 / 32 / 2
    assert kv_cache_bytes(LLAMA_70B, context=8192, kv_dtype="q4_0") / GIB == 2.5 * 18 / 32 / 2
    with pytest.raises(BadInput, match=r"kv_dtype 'q8' is not one of .*did you mean 'q8_0'"):
        kv_bytes_per_element("q8")
    assert set(KV_BYTES_PER_ELEMENT) >= {"fp16", "bf16", "fp8", "q8_0", "q4_0"}


def test_gqa_caches_heads_over_kv_heads_times_less_than_mha() -> None:
    gqa = _spec(kv_heads=2)
    mha = _spec(kv_heads=8)
    assert kv_cache_bytes(mha, context=1000) == 4 * kv_cache_bytes(gqa, context=1000)
    assert kv_cache_bytes(gqa, context=1000) == 4 * 2 * 2 * 128 * 1000 * 2


def test_sliding_window_caps_the_cache_on_sliding_layers_only() -> None:
    v01, v03 = get_model("mistral-7b-v0.1"), get_model("mistral-7b-v0.3")
    per_token = 2 * 32 * 8 * 128 * 2
    assert kv_cache_bytes(v01, context=2048) == kv_cache_bytes(v03, context=2048)
    assert kv_cache_bytes(v01, context=32768) == per_token * 4096  # 0.5 GiB, not 4
    assert kv_cache_bytes(v03, context=32768) == per_token * 32768
    # Gemma-2 style: local (window 256) on even layers, global on odd ones
    gemma_like = _spec(sliding_window=256, sliding_layers=sliding_window_layers("even", 4))
    layer_token = 2 * 2 * 128 * 2
    assert kv_cache_bytes(gemma_like, context=10_000) == layer_token * (2 * 256 + 2 * 10_000)
    assert kv_cache_bytes(gemma_like, context=100) == kv_cache_bytes(_spec(), context=100)


# ----------------------------------------------------------------- inference splits


def test_weights_are_params_times_bits_over_8_however_split() -> None:
    want = LLAMA_70B.params * 4.5 / 8 / GIB
    one = fit_inference(LLAMA_70B, gpus_gib=[80], bits_per_weight=4.5, parallel="none")
    pp1 = fit_inference(LLAMA_70B, gpus_gib=[80], bits_per_weight=4.5, parallel="pp")
    pp4 = fit_inference(LLAMA_70B, gpus_gib=[24] * 4, bits_per_weight=4.5, parallel="pp")
    tp4 = fit_inference(LLAMA_70B, gpus_gib=[24] * 4, bits_per_weight=4.5, parallel="tp")
    assert one.placements[0].weights_gib == pytest.approx(want)
    assert pp1.placements[0].weights_gib == pytest.approx(want)
    assert sum(p.weights_gib for p in pp4.placements) == pytest.approx(want)
    assert sum(p.weights_gib for p in tp4.placements) == pytest.approx(want)
    assert bits_per_weight_of("q4_0") == 4.5 and bits_per_weight_of("q8_0") == 8.5
    # llama-quantize: Q4_K is an alias of Q4_K_M, 4.58 GiB for Llama-3-8B's 8.03e9 params
    assert bits_per_weight_of("Q4_K") == bits_per_weight_of("q4_k_m") == 4.9
    assert bits_per_weight_of("Q4_K_M") == pytest.approx(4.58 * 2**30 * 8 / 8.03e9, abs=0.01)
    assert bits_per_weight_of("q5_k") == bits_per_weight_of("q5_k_m") == 5.7
    with pytest.raises(BadInput, match="bits_per_weight"):
        bits_per_weight_of(0)


def test_tensor_parallel_divides_weights_and_kv_heads() -> None:
    plan = fit_inference(LLAMA_70B, gpus_gib=[80] * 4, context=8192, parallel="tp")
    for p in plan.placements:
        assert p.kv_heads == 2 and p.layers == (0, 80)
        assert p.kv_cache_gib == pytest.approx(2.5 / 4)
        assert p.weights_gib == pytest.approx(LLAMA_70B.params * 2 / 4 / GIB)


def test_tensor_parallel_beyond_kv_heads_replicates_the_cache() -> None:
    plan = fit_inference(LLAMA_70B, gpus_gib=[80] * 16, context=8192, parallel="tp")
    k = LLAMA_70B.kv_proj_params * 80  # K and V projections, replicated 2x too
    for p in plan.placements:
        assert p.kv_heads == 1
        assert p.kv_cache_gib == pytest.approx(2.5 / 8)  # one of 8 heads, not 1/16
        assert p.weights_gib == pytest.approx(((LLAMA_70B.params - k) / 16 + k / 8) * 2 / GIB)
    assert sum(p.kv_cache_gib for p in plan.placements) == pytest.approx(2 * 2.5)
    assert any("replicated 2×" in note for note in plan.notes)


def test_tensor_parallel_needs_heads_that_divide() -> None:
    with pytest.raises(BadInput, match="64 attention heads .* do not divide evenly"):
        fit_inference(LLAMA_70B, gpus_gib=[24] * 3, parallel="tp")
    with pytest.raises(BadInput, match="KV heads"):
        fit_inference(_spec(heads=12, kv_heads=4, hidden=1536), gpus_gib=[24] * 6, parallel="tp")


def test_pipeline_split_in_proportion_to_memory_and_uneven() -> None:
    assert default_layer_split(80, [24] * 4) == [20, 20, 20, 20]
    assert default_layer_split(80, [24] * 3) == [27, 27, 26]
    assert default_layer_split(80, [24, 24, 48]) == [20, 20, 40]
    assert default_layer_split(4, [1, 100]) == [1, 3]  # every GPU gets a layer
    plan = fit_inference(LLAMA_70B, gpus_gib=[24] * 3, bits_per_weight=4.5, context=8192)
    assert [p.layers for p in plan.placements] == [(0, 27), (27, 54), (54, 80)]
    assert [p.embeddings for p in plan.placements] == [True, False, False]
    assert [p.output_head for p in plan.placements] == [False, False, True]
    assert sum(p.kv_cache_gib for p in plan.placements) == pytest.approx(2.5)
    assert plan.placements[2].kv_cache_gib == pytest.approx(2.5 * 26 / 80)
    custom = fit_inference(LLAMA_70B, gpus_gib=[24] * 3, layer_split=[30, 30, 20])
    assert [p.layers for p in custom.placements] == [(0, 30), (30, 60), (60, 80)]
    with pytest.raises(BadInput, match="holds 79 layers"):
        fit_inference(LLAMA_70B, gpus_gib=[24] * 3, layer_split=[30, 29, 20])
    with pytest.raises(BadInput, match="only 4 layers"):
        fit_inference(_spec(), gpus_gib=[24] * 5)


def test_plan_is_machine_readable() -> None:
    plan = fit_inference("llama-3-8b", gpus_gib=[24, 24], bits_per_weight="q8_0", context=8192)
    data = json.loads(json.dumps(plan.to_dict()))
    assert data["kind"] == "inference" and data["model"] == "llama-3-8b"
    assert data["fits"] is True and data["settings"]["weight_format"] == "q8_0"
    assert data["max_context"] == 8192 and data["max_context_limit"] == "model"
    gpu = data["gpus"][0]
    assert {"weights_gib", "kv_cache_gib", "activations_gib", "overhead_gib"} <= set(gpu)
    assert {"total_gib", "capacity_gib", "margin_gib", "fits", "layers"} <= set(gpu)
    assert data["total_gib"] == pytest.approx(sum(g["total_gib"] for g in data["gpus"]), abs=0.01)
    assert data["margin_gib"] == min(g["margin_gib"] for g in data["gpus"])


def test_max_context_is_the_largest_that_fits() -> None:
    plan = fit_inference("llama-3.1-8b", gpus_gib=[24], bits_per_weight=16, context=8192)
    best = plan.max_context
    assert 0 < best < 131072 and plan.max_context_limit == "memory"
    assert fit_inference("llama-3.1-8b", gpus_gib=[24], context=best).fits
    assert not fit_inference("llama-3.1-8b", gpus_gib=[24], context=best + 1).fits
    too_small = fit_inference(LLAMA_70B, gpus_gib=[24], bits_per_weight=16)
    assert not too_small.fits and too_small.max_context == 0
    assert any("short by" in note for note in too_small.notes)


# ----------------------------------------------------------------- the seeds


def test_seed_000_r1_distill_70b_on_4x24gb_ollama() -> None:
    """Minerva (seed 000): deepseek-r1:70b in Ollama on 2×3090 + 2×3090 Ti. num_ctx 60000
    fitted in VRAM (~92 GB used); num_ctx 131072 spilled 80 GB into RAM. Ollama (early 2025)
    splits layers over the GPUs, keeps an fp16 KV cache and runs without flash attention."""

    def r1(context: int, bits: float = 4.5, flash: bool = False) -> FitPlan:
        return fit_inference(
            "deepseek-r1:70b",
            gpus_gib=[24] * 4,
            bits_per_weight=bits,
            context=context,
            kv_dtype="fp16",
            parallel="pp",
            flash_attention=flash,
        )

    at_60k, at_128k = r1(60_000), r1(131_072)
    assert at_60k.fits and not at_128k.fits
    assert 84 < at_60k.total_gib < 92  # the owner saw ~92 GB in use
    assert at_128k.total_gib > 96  # well past 4 × 24 GiB: it spills
    assert 60_000 < at_60k.max_context < 131_072
    # the KV cache alone: 80 layers × 8 KV heads × 128 × 2 (K, V) × 2 bytes per token
    assert sum(p.kv_cache_gib for p in at_60k.placements) == pytest.approx(
        2 * 80 * 8 * 128 * 60_000 * 2 / GIB
    )
    # at the Q4_K_M file's real ~4.85 bits per weight it still fits at 60k, closer to 92
    q4km = r1(60_000, bits=4.85)
    assert q4km.fits and at_60k.total_gib < q4km.total_gib < 92
    # with flash attention the score buffers go and 131072 fits with fp16 KV
    assert r1(131_072, flash=True).fits


def test_seed_001_llama_3_70b_at_5_5_bits_on_4x_v100_16gb() -> None:
    """blbadger (seed 001): Llama 3 70B at 5.5 bits (50 GB) ran on 4× V100 16GB at 2k."""
    plan = fit_inference("llama-3-70b", gpus_gib=[16] * 4, bits_per_weight=5.5, context=2048)
    assert plan.fits
    assert sum(p.weights_gib for p in plan.placements) == pytest.approx(45.17, abs=0.01)
    assert plan.max_context == 8192 and plan.max_context_limit == "model"


# ----------------------------------------------------------------- training


def test_full_fine_tune_is_16_bytes_per_param_and_fsdp_divides_by_n() -> None:
    p = LLAMA_70B.params
    ddp = fit_training(LLAMA_70B, gpus_gib=[80] * 8, mode="full", sharding="ddp").placements[0]
    assert (ddp.weights_gib, ddp.gradients_gib, ddp.optimizer_gib) == pytest.approx(
        (2 * p / GIB, 2 * p / GIB, 12 * p / GIB)
    )
    for n in (2, 8):
        fsdp = fit_training(LLAMA_70B, gpus_gib=[80] * n, mode="full", sharding="fsdp")
        g = fsdp.placements[0]
        assert g.weights_gib * n == pytest.approx(ddp.weights_gib)
        assert g.gradients_gib * n == pytest.approx(ddp.gradients_gib)
        assert g.optimizer_gib * n == pytest.approx(ddp.optimizer_gib)
        assert g.activations_gib == pytest.approx(ddp.activations_gib)  # not sharded
        # two layers' bf16 weights gathered + one layer's bf16 gradients
        assert g.overhead_gib - 0.5 == pytest.approx(3 * LLAMA_70B.layer_params * 2 / GIB)
    zero2 = fit_training(LLAMA_70B, gpus_gib=[80] * 8, mode="full", sharding="zero2")
    z = zero2.placements[0]
    assert z.weights_gib == pytest.approx(ddp.weights_gib)
    assert z.gradients_gib * 8 == pytest.approx(ddp.gradients_gib)
    zero1 = fit_training(LLAMA_70B, gpus_gib=[80] * 8, mode="full", sharding="zero1")
    assert zero1.placements[0].gradients_gib == pytest.approx(ddp.gradients_gib)


def test_training_modes_order_full_lora_qlora() -> None:
    for sharding in ("ddp", "fsdp"):
        totals = [
            fit_training(
                "llama-3.1-8b",
                gpus_gib=[24] * 4,
                mode=mode,
                sharding=sharding,
                context=2048,
                lora_rank=16,
            )
            .placements[0]
            .total_gib
            for mode in ("full", "lora", "qlora")
        ]
        assert totals[0] > totals[1] > totals[2]


def test_lora_adapters_and_qlora_base() -> None:
    m = get_model("llama-3-8b")
    # r × (in + out) per module: q 4096→4096, k/v 4096→1024, o 4096→4096,
    # gate/up 4096→14336, down 14336→4096; 32 layers
    per_layer = 16 * (8192 + 5120 + 5120 + 8192 + 3 * 18432)
    assert lora_adapter_params(m, rank=16) == 32 * per_layer
    assert lora_adapter_params(m, rank=8, targets=["q", "v"]) == 32 * 8 * (8192 + 5120)
    with pytest.raises(BadInput, match="lora target 'mlp'"):
        lora_adapter_params(m, rank=8, targets=["mlp"])
    lora = fit_training(m, gpus_gib=[24], mode="lora", sharding="ddp", lora_rank=16)
    qlora = fit_training(m, gpus_gib=[24], mode="qlora", sharding="ddp", lora_rank=16)
    adapters = 32 * per_layer
    assert lora.placements[0].weights_gib == pytest.approx((2 * m.params + 4 * adapters) / GIB)
    assert lora.placements[0].optimizer_gib == pytest.approx(8 * adapters / GIB)
    blocks = m.params - m.embedding_params
    base = blocks * QLORA_BITS_PER_PARAM / 8 + m.embedding_params * 2
    assert abs(QLORA_BITS_PER_PARAM - 4.127) < 1e-3
    assert qlora.placements[0].weights_gib == pytest.approx((base + 4 * adapters) / GIB)
    assert qlora.settings["adapter_params"] == adapters


def test_training_activations_checkpointing_and_flash_attention() -> None:
    m = get_model("llama-3-8b")
    s, h, a, v, layers = 4096, 4096, 32, 128256, 32

    def act(checkpointing: bool, flash_attention: bool = True) -> float:
        plan = fit_training(
            m,
            gpus_gib=[80],
            mode="qlora",
            context=s,
            checkpointing=checkpointing,
            flash_attention=flash_attention,
        )
        return plan.placements[0].activations_gib * GIB

    logits = 8 * s * v
    full_layer = s * h * 34 + 5 * a * s * s
    assert act(checkpointing=False, flash_attention=False) == layers * full_layer + logits
    assert act(checkpointing=False) == layers * s * h * 34 + logits
    assert act(checkpointing=True) == layers * 2 * s * h + s * h * 34 + logits


def test_training_inputs_are_checked() -> None:
    with pytest.raises(BadInput, match="mode 'qlora4' is not one of .*did you mean 'qlora'"):
        fit_training("llama-3-8b", gpus_gib=[24], mode="qlora4")
    with pytest.raises(BadInput, match="sharding 'zero3'"):
        fit_training("llama-3-8b", gpus_gib=[24], mode="full", sharding="zero3")
    with pytest.raises(BadInput, match=r"gpus_gib\[1\] must be a positive number"):
        fit_training("llama-3-8b", gpus_gib=[24, 0], mode="full")
    with pytest.raises(BadInput, match="context must be a positive integer"):
        fit_inference("llama-3-8b", gpus_gib=[24], context=0)
