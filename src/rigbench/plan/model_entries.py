"""The [[model]] entries of a build resolved to architectures: a preset of the model
catalog, or one built from the figures the entry gives."""

from __future__ import annotations

import json

from rigbench.catalog.models import (
    ModelSpec,
    closest_model_names,
    find_model,
    sliding_window_layers,
)
from rigbench.errors import BadInput
from rigbench.plan.links import Fail
from rigbench.plan.schema import BuildFile, ModelEntry


def resolve_models(file: BuildFile, n_gpus: int, fail: Fail) -> list[ModelSpec | None]:
    """Each [[model]]'s architecture: a preset, one built from the entry's figures, or
    None when the entry gives only params (enough for bandwidth bounds, not for fit)."""
    specs: list[ModelSpec | None] = []
    for m, entry in enumerate(file.model):
        where = f"model[{m}]"
        for i in entry.gpus or []:
            if not 0 <= i < n_gpus:
                raise fail(
                    f"{where}.gpus",
                    f"GPU {i} does not exist (the build has {n_gpus}; indices from 0)",
                )
        preset = find_model(entry.name) if entry.name is not None else None
        if preset is not None:
            if entry.arch_given:
                raise fail(
                    f"{where}.{entry.arch_given[0]}",
                    f"{json.dumps(entry.name)} is a preset: leave out its architecture,"
                    " or name the model differently to describe your own",
                )
            specs.append(preset)
            continue
        needed = ("params", "layers", "hidden", "heads", "kv_heads")
        if entry.params is None:
            assert entry.name is not None  # the model validator wants one of them
            close = closest_model_names(entry.name)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise fail(
                f"{where}.name",
                f"unknown model preset {json.dumps(entry.name)}{hint} (or describe it:"
                " params, layers, hidden, heads, kv_heads)",
            )
        if any(getattr(entry, k) is None for k in needed):
            specs.append(None)
            continue
        specs.append(_custom_model(m, entry, fail))
    return specs


def _custom_model(m: int, entry: ModelEntry, fail: Fail) -> ModelSpec:
    assert entry.layers is not None and entry.hidden is not None
    assert entry.heads is not None and entry.kv_heads is not None
    sliding: tuple[int, ...] | None = None
    if isinstance(entry.sliding_layers, str):
        sliding = sliding_window_layers(entry.sliding_layers, entry.layers)
    elif isinstance(entry.sliding_layers, list):
        sliding = tuple(entry.sliding_layers)
    try:
        return ModelSpec(
            name=entry.name or f"model[{m}]",
            params=round(entry.params),
            layers=entry.layers,
            hidden=entry.hidden,
            heads=entry.heads,
            kv_heads=entry.kv_heads,
            head_dim=entry.head_dim or 0,
            vocab=entry.vocab or 0,
            intermediate=entry.intermediate or 0,
            experts=entry.experts or 1,
            experts_per_token=entry.experts_per_token or 1,
            tie_embeddings=bool(entry.tie_embeddings),
            qkv_bias=bool(entry.qkv_bias),
            max_context=entry.max_context,
            sliding_window=entry.sliding_window,
            sliding_layers=sliding,
        )
    except BadInput as exc:
        message = str(exc).split(": ", 1)[-1]
        raise fail(f"model[{m}]", message) from None
