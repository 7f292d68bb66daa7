"""Run every check of a build and collect the report: power (rigbench.plan.power), PCIe
and GPU mix (rigbench.plan.pcie), model fit (rigbench.plan.fit) and the predictions
(rigbench.plan.predict).

>>> from rigbench.plan import load_build, plan_build
>>> report = plan_build(load_build("examples/builds/v100-sxm2-server.toml"))
>>> report.finding("power.psu_transient")[0].severity
'warning'
"""

from __future__ import annotations

from typing import Any

from rigbench.errors import BadInput
from rigbench.plan import pcie, power, predict, spacing
from rigbench.plan.build import Build, BuildFileError, GpuUnit, ModelEntry
from rigbench.plan.fit import FitPlan, fit_inference, fit_training
from rigbench.plan.records import SEVERITIES, Finding, PlanReport, Prediction

# fit_training's sharding for our `parallel` values ("none": every GPU holds everything).
_SHARDING = {"fsdp": "fsdp", "zero2": "zero2", "zero1": "zero1", "ddp": "ddp", "none": "ddp"}


def plan_build(build: Build) -> PlanReport:
    """Every finding and prediction for `build`, errors first."""
    if not build.gpus:
        raise BuildFileError(f"{build.path}: gpu: plan needs at least one [[gpu]] entry")
    findings: list[Finding] = [
        *power.check_psus(build),
        *power.check_circuits(build),
        *pcie.check_lanes(build),
        *pcie.check_links(build),
        *pcie.check_p2p(build),
        *pcie.check_mix(build),
        *spacing.check_spacing(build),
    ]
    fit_findings, fits = check_fit(build)
    findings += fit_findings
    order = {s: i for i, s in enumerate(reversed(SEVERITIES))}
    findings.sort(key=lambda f: order[f.severity])
    predictions: list[Prediction] = [*power.predictions(build), *predict.all_predictions(build)]
    return PlanReport(
        rig=build.name,
        path=str(build.path),
        gpus=tuple(_gpu_summary(build, g) for g in build.gpus),
        findings=tuple(findings),
        predictions=tuple(predictions),
        fit=tuple(fits),
    )


def _gpu_summary(build: Build, g: GpuUnit) -> dict[str, Any]:
    psu = next((p.label for p in build.psus if g.index in p.gpus), None)
    return {
        "index": g.index,
        "model": g.spec.name,
        "power_w": g.power_w,
        "power_limited": g.power_limit_w is not None,
        "link": f"Gen{g.link_gen} x{g.link_width}",
        "link_gbs": g.link_gbs,
        "host_gbs": g.host_gbs,
        "slot": g.slot,
        "link_basis": g.link_basis,
        "nvlink": g.nvlink,
        "psu": psu,
    }


def check_fit(build: Build) -> tuple[list[Finding], list[dict[str, Any]]]:
    """Run the fit engine on every [[model]]: one finding each, and its machine-readable
    plan (what goes on which GPU, with what margin; GPU indices are the build's)."""
    findings: list[Finding] = []
    plans: list[dict[str, Any]] = []
    for m, (entry, spec) in enumerate(zip(build.models, build.model_specs, strict=False)):
        gpus = [build.gpus[i] for i in entry.gpus] if entry.gpus else list(build.gpus)
        label = spec.id if spec is not None else entry.name
        where = f"model[{m}] ({label})" if label else f"model[{m}]"
        if spec is None:
            findings.append(
                Finding(
                    id="fit.incomplete",
                    source="rigbench.plan.fit",
                    origin="plan",
                    severity="info",
                    title=f"{where}: only params given, memory fit not computed",
                    why="the KV cache and activations need layers, hidden, heads and kv_heads",
                    fix="name a preset (`rigbench.catalog.models`) or give those keys",
                )
            )
            continue
        try:
            plan = _fit(entry, spec, [g.spec.memory_gib for g in gpus])
        except BadInput as exc:
            findings.append(
                Finding(
                    id="fit.invalid",
                    source="rigbench.plan.fit",
                    origin="plan",
                    severity="error",
                    title=f"{where}: {exc}",
                    why="the fit engine cannot place the model as described",
                    fix="change parallel, the GPU count (gpus) or the model's settings",
                )
            )
            continue
        d = plan.to_dict()
        d["entry"] = m
        for p in d["gpus"]:
            p["gpu"] = gpus[p["gpu"]].index
        plans.append(d)
        findings.append(_fit_finding(where, entry, plan, gpus))
    return findings, plans


def _fit(entry: ModelEntry, spec: Any, caps: list[float]) -> FitPlan:
    flash = True if entry.flash_attention is None else entry.flash_attention
    if entry.mode == "inference":
        return fit_inference(
            spec,
            gpus_gib=caps,
            bits_per_weight=entry.bits_per_weight if entry.bits_per_weight is not None else 16,
            context=entry.context or 4096,
            batch=entry.batch or 1,
            kv_dtype=entry.kv_dtype or "fp16",
            parallel=entry.parallel or "pp",
            flash_attention=flash,
        )
    return fit_training(
        spec,
        gpus_gib=caps,
        mode=entry.mode,
        sharding=_SHARDING[entry.parallel or "fsdp"],
        context=entry.context or 2048,
        micro_batch=entry.batch or 1,
        lora_rank=entry.lora_rank or 16,
        checkpointing=True if entry.checkpointing is None else entry.checkpointing,
        flash_attention=flash,
        cpu_offload=entry.cpu_offload or "none",
        activation_offload=bool(entry.activation_offload),
        chunked_loss=bool(entry.chunked_loss),
    )


def _fit_finding(where: str, entry: ModelEntry, plan: FitPlan, gpus: list[GpuUnit]) -> Finding:
    s = plan.settings
    context = s.get("context")
    how = f"{entry.mode}, context {context:,}" if isinstance(context, int) else entry.mode
    tight = min(plan.placements, key=lambda p: p.margin_gib)
    tight_gpu = gpus[tight.gpu].index
    model_max = plan.max_context if plan.max_context_limit == "model" else None
    evidence = {
        "total_gib": plan.total_gib,
        "capacity_gib": plan.capacity_gib,
        "margin_gib": plan.margin_gib,
        "max_context": plan.max_context,
        "max_context_limit": plan.max_context_limit,
        "tightest_gpu": tight_gpu,
    }
    if "host_gib" in s:
        evidence["host_gib"] = s["host_gib"]
    training = entry.mode != "inference"
    beyond = isinstance(context, int) and model_max is not None and context > model_max
    if plan.fits:
        if beyond:
            return Finding(
                id="fit.beyond_model_context",
                severity="warning",
                title=(
                    f"{where} fits in memory at context {context:,}, beyond the"
                    f" {model_max:,} tokens the model was trained on"
                ),
                why=(
                    f"{plan.total_gib:.1f} of {plan.capacity_gib:.0f} GiB; past its trained"
                    " context a model's output degrades unless RoPE scaling extends it"
                ),
                fix=f"a context of at most {model_max:,}, or a long-context variant",
                evidence=evidence,
                source="the model's config.json (max_position_embeddings)",
                origin="plan",
            )
        limit = (
            f"the model's whole {plan.max_context:,}-token context fits"
            if model_max is not None
            else f"largest context that fits: {plan.max_context:,}"
        )
        return Finding(
            id="fit.fits",
            severity="info",
            title=(
                f"{where} fits ({how}): {plan.total_gib:.1f} of {plan.capacity_gib:.0f} GiB,"
                f" {tight.margin_gib:.1f} GiB spare on GPU {tight_gpu}"
            ),
            why=limit,
            evidence=evidence,
            source="rigbench.plan.fit (formulas in the README)",
            origin="plan",
        )
    fix = []
    if plan.max_context:
        fix.append(
            f"a {'sequence length' if training else 'context'} of at most {plan.max_context:,}"
        )
    if training:
        fix.append(
            "shard it (parallel = fsdp), LoRA/QLoRA, checkpointing, CPU offload (cpu_offload ="
            ' "optimizer" or "all"), a chunked loss, or more GPUs'
        )
        why = (
            f"{plan.total_gib:.1f} GiB in all on {plan.capacity_gib:.0f} GiB; training state"
            " that does not fit does not run (out of memory) unless it is offloaded to the CPU"
        )
    else:
        fix.append("fewer bits per weight, a quantized KV cache, or more GPUs")
        why = (
            f"{plan.total_gib:.1f} GiB in all on {plan.capacity_gib:.0f} GiB; what does not fit"
            " spills to system RAM (seed 000: a 70B model at 131k context ran at 2.9 tokens/s)"
        )
    return Finding(
        id="fit.does_not_fit",
        severity="error",
        title=(
            f"{where} does not fit ({how}): GPU {tight_gpu} needs {tight.total_gib:.1f} GiB"
            f" of {tight.capacity_gib:g}"
        ),
        why=why,
        fix="; or ".join(fix),
        evidence=evidence,
        source="rigbench.plan.fit (formulas in the README)",
        origin="plan",
    )
