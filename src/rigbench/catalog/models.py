"""The model catalog: the architecture of common open LLMs (presets), each with its source.

`plan`'s fit check needs what a model's `config.json` says (layers, hidden size, heads, KV heads,
head size, vocabulary, MLP width, sliding window) to size its weights, KV cache and activations.
The presets live in `data/models.toml` and are validated when first loaded; a model that is not a
preset is a `ModelSpec` built from explicit fields.

>>> from rigbench.catalog.models import get_model
>>> m = get_model("llama 3 70b")
>>> (m.layers, m.kv_heads, m.head_dim)
(80, 8, 128)
"""

from __future__ import annotations

import difflib
import functools
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

from rigbench.catalog._names import NameIndex, normalize
from rigbench.catalog.gpus import CatalogError
from rigbench.errors import BadInput

_DATA_FILE = "models.toml"
_ID_RE = re.compile(r"^[a-z0-9]+(?:[.-][a-z0-9]+)*$")
_SUGGEST_CUTOFF = 0.5  # difflib ratio below which a name is not offered as a suggestion
# A preset's `params` may differ this much from the count its architecture gives (norms and
# biases of unusual blocks); more is a typo in the file.
_PARAMS_TOLERANCE = 0.01

# Sliding-window layer patterns a file may name instead of listing layer indices.
SLIDING_PATTERNS: tuple[str, ...] = ("all", "even", "odd")
# Module names `linear_shapes` knows: attention projections and the gated MLP.
LINEAR_MODULES: tuple[str, ...] = ("q", "k", "v", "o", "gate", "up", "down")


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelSpec:
    """A decoder-only transformer as its `config.json` describes it (names in brackets).

    Only `name`, `params`, `layers`, `hidden`, `heads` and `kv_heads` are required; a field
    left at 0 or None is unknown or takes its usual default, as documented per field. Invalid
    values raise `BadInput`.

    Sliding-window attention: a layer that uses it attends to (and caches) only the last
    `sliding_window` tokens. `sliding_layers` lists the layer indices (0-based) that do; left
    None with a window, every layer does (Mistral 7B v0.1). Models that alternate local and
    global layers list only the local ones: Gemma 2 (window 4096) uses it on the even layers
    0, 2, 4, ... (`sliding_window_layers("even", layers)`); Gemma 3 on five of every six.
    """

    name: str
    params: int
    """Total parameters, embeddings and every expert included (safetensors total)."""
    layers: int
    """Transformer blocks [num_hidden_layers]."""
    hidden: int
    """Model width [hidden_size]."""
    heads: int
    """Query heads [num_attention_heads]."""
    kv_heads: int
    """Key/value heads [num_key_value_heads]: = heads for MHA, fewer for GQA, 1 for MQA."""
    head_dim: int = 0
    """Size of one head [head_dim]; 0: hidden // heads."""
    vocab: int = 0
    """Vocabulary [vocab_size]; 0: unknown (embeddings and logits are then not counted)."""
    intermediate: int = 0
    """MLP inner width [intermediate_size], per expert for MoE; 0: unknown."""
    active_params: int = 0
    """Parameters used per token (MoE: shared + experts_per_token experts); 0: = params."""
    experts: int = 1
    """MoE experts per layer [num_local_experts]; 1: dense."""
    experts_per_token: int = 1
    """Experts each token is routed to [num_experts_per_tok]."""
    tie_embeddings: bool = False
    """Output head shares the input embedding matrix [tie_word_embeddings]."""
    qkv_bias: bool = False
    """Q, K and V projections have biases (Qwen 2.x)."""
    sliding_window: int | None = None
    """Tokens a sliding-window layer attends to [sliding_window]; None: full attention."""
    sliding_layers: tuple[int, ...] | None = None
    """Layer indices using the window; None with a window: all. Empty without a window."""
    max_context: int | None = None
    """Longest context the model was trained for [max_position_embeddings]; None: unknown."""
    source: str | None = None
    """Where the architecture comes from (the config.json URL)."""
    id: str = ""
    """Catalog id; "": derived from the name."""
    aliases: tuple[str, ...] = ()
    """Other names `get_model` resolves: hub repo names, Ollama tags."""
    notes: str = field(default="", repr=False)
    """Choices made for the preset (which revision, what was left out)."""

    def __post_init__(self) -> None:
        def fail(message: str) -> BadInput:
            return BadInput(f"model {self.name!r}: {message}")

        if not isinstance(self.name, str) or not self.name.strip():
            raise BadInput("model: name must be a non-empty string")
        for key in ("params", "layers", "hidden", "heads", "kv_heads"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise fail(f"{key} must be a positive integer, got {value!r}")
        for key in ("head_dim", "vocab", "intermediate", "active_params"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise fail(f"{key} must be a non-negative integer, got {value!r}")
        for key in ("experts", "experts_per_token"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise fail(f"{key} must be a positive integer, got {value!r}")
        if self.kv_heads > self.heads or self.heads % self.kv_heads:
            raise fail(f"heads ({self.heads}) must be a multiple of kv_heads ({self.kv_heads})")
        if self.experts_per_token > self.experts:
            raise fail(
                f"experts_per_token ({self.experts_per_token}) exceeds experts ({self.experts})"
            )
        if self.head_dim == 0:
            if self.hidden % self.heads:
                raise fail(f"hidden ({self.hidden}) is not a multiple of heads; give head_dim")
            object.__setattr__(self, "head_dim", self.hidden // self.heads)
        if self.active_params == 0:
            object.__setattr__(self, "active_params", self.params)
        if self.active_params > self.params:
            raise fail(f"active_params ({self.active_params}) exceeds params ({self.params})")
        for key in ("sliding_window", "max_context"):
            value = getattr(self, key)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 1
            ):
                raise fail(f"{key} must be a positive integer or absent, got {value!r}")
        if self.sliding_window is None:
            if self.sliding_layers:
                raise fail("sliding_layers given without sliding_window")
            object.__setattr__(self, "sliding_layers", ())
        else:
            given = self.sliding_layers
            if given is not None and any(
                isinstance(i, bool) or not isinstance(i, int) for i in given
            ):
                raise fail("sliding_layers must be integer layer indices")
            layers = tuple(range(self.layers)) if given is None else tuple(sorted(set(given)))
            if layers and not 0 <= layers[0] <= layers[-1] < self.layers:
                raise fail(f"sliding_layers must be within 0..{self.layers - 1}")
            object.__setattr__(self, "sliding_layers", layers)
        if not self.id:
            object.__setattr__(self, "id", _slug(self.name))
        object.__setattr__(self, "aliases", tuple(self.aliases))

    # -------------------------------------------------------------- derived sizes

    @property
    def is_moe(self) -> bool:
        return self.experts > 1

    @property
    def embedding_params(self) -> int:
        """Input embedding plus output head: `vocab × hidden × (1 if tied else 2)`."""
        return self.vocab * self.hidden * (1 if self.tie_embeddings else 2)

    @property
    def layer_params(self) -> float:
        """Parameters of one transformer block, on average: `(params − embeddings) / layers`."""
        return (self.params - self.embedding_params) / self.layers

    @property
    def kv_proj_params(self) -> int:
        """K and V projection weights of one layer: `2 × hidden × kv_heads × head_dim`."""
        return 2 * self.hidden * self.kv_heads * self.head_dim

    def is_sliding(self, layer: int) -> bool:
        """Whether `layer` uses the sliding window."""
        return layer in (self.sliding_layers or ())

    def cached_tokens(self, layer: int, context: int) -> int:
        """Tokens whose K and V `layer` keeps: `min(context, sliding_window)` on a
        sliding-window layer, `context` elsewhere."""
        if self.sliding_window is not None and self.is_sliding(layer):
            return min(context, self.sliding_window)
        return context

    def linear_shapes(self) -> dict[str, tuple[int, int, int]]:
        """Per layer, each linear module's `(in_features, out_features, copies)` for a
        Llama-style block: q, k, v, o always; gate, up and down (the gated MLP, `copies` =
        experts for an MoE) only when `intermediate` is known."""
        h, q, kv = self.hidden, self.heads * self.head_dim, self.kv_heads * self.head_dim
        shapes = {"q": (h, q, 1), "k": (h, kv, 1), "v": (h, kv, 1), "o": (q, h, 1)}
        if self.intermediate:
            i, e = self.intermediate, self.experts
            shapes.update({"gate": (h, i, e), "up": (h, i, e), "down": (i, h, e)})
        return shapes

    def architecture_params(self) -> tuple[int, int] | None:
        """`(total, active)` parameters counted from the architecture of a Llama-style block
        (2 RMSNorms, gated MLP, router `hidden × experts` for MoE, Q/K/V biases if any), plus
        embeddings, head and final norm; None when vocab or intermediate is unknown. The
        presets' `params` are checked against it."""
        if self.vocab == 0 or self.intermediate == 0:
            return None
        shapes = self.linear_shapes()
        attention = sum(a * b for m, (a, b, _) in shapes.items() if m in ("q", "k", "v", "o"))
        if self.qkv_bias:
            attention += (self.heads + 2 * self.kv_heads) * self.head_dim
        expert = sum(a * b for m, (a, b, _) in shapes.items() if m in ("gate", "up", "down"))
        router = self.hidden * self.experts if self.is_moe else 0
        norms = 2 * self.hidden
        total = self.layers * (attention + self.experts * expert + router + norms)
        active = self.layers * (attention + self.experts_per_token * expert + router + norms)
        rest = self.embedding_params + self.hidden
        return total + rest, active + rest


def sliding_window_layers(pattern: str | Sequence[int], layers: int) -> tuple[int, ...]:
    """Layer indices from a pattern: "all", "even" (0, 2, 4, ...: Gemma 2), "odd", or an
    explicit list of indices. Raises BadInput for anything else."""
    if isinstance(pattern, str):
        if pattern == "all":
            return tuple(range(layers))
        if pattern == "even":
            return tuple(range(0, layers, 2))
        if pattern == "odd":
            return tuple(range(1, layers, 2))
        raise BadInput(
            f"sliding_layers {pattern!r} is not one of {', '.join(SLIDING_PATTERNS)} "
            "or a list of layer indices"
        )
    indices = list(pattern)
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in indices):
        raise BadInput("sliding_layers must be a list of integer layer indices")
    return tuple(sorted(set(indices)))


# ----------------------------------------------------------------------------- loading

_INT_FIELDS = (
    "params",
    "layers",
    "hidden",
    "heads",
    "kv_heads",
    "head_dim",
    "vocab",
    "intermediate",
    "active_params",
    "experts",
    "experts_per_token",
    "sliding_window",
    "max_context",
)
_BOOL_FIELDS = ("tie_embeddings", "qkv_bias")
_STR_FIELDS = ("id", "name", "source", "notes")
_FIELDS = (*_STR_FIELDS, *_INT_FIELDS, *_BOOL_FIELDS, "aliases", "sliding_layers")
_REQUIRED = (
    "id",
    "name",
    "params",
    "layers",
    "hidden",
    "heads",
    "kv_heads",
    "head_dim",
    "vocab",
    "intermediate",
    "source",
)


@functools.cache
def load_models() -> tuple[ModelSpec, ...]:
    """The shipped presets, validated; read once per process."""
    resource = resources.files("rigbench.catalog").joinpath("data").joinpath(_DATA_FILE)
    origin = f"rigbench/catalog/data/{_DATA_FILE}"
    try:
        raw = resource.read_bytes()
    except OSError as exc:
        raise CatalogError(f"{origin}: cannot read the model catalog: {exc}") from exc
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise CatalogError(f"{origin}: not valid TOML: {exc}") from exc
    return parse_models(data, origin=origin)


def parse_models(data: Mapping[str, Any], *, origin: str = "models.toml") -> tuple[ModelSpec, ...]:
    """Validate a parsed model catalog document and build the specs; errors name the entry
    and the field."""
    unknown_top = sorted(set(data) - {"model"})
    if unknown_top:
        raise CatalogError(f"{origin}: unknown top-level key(s): {', '.join(unknown_top)}")
    entries = data.get("model")
    if not isinstance(entries, list) or not entries:
        raise CatalogError(f"{origin}: expected a non-empty list of [[model]] tables")
    specs = [_build(entry, f"{origin}: model[{i}]") for i, entry in enumerate(entries)]
    _check_unique(specs, origin)
    return tuple(specs)


def _build(entry: Any, label: str) -> ModelSpec:
    if not isinstance(entry, dict):
        raise CatalogError(f"{label}: expected a table, got {type(entry).__name__}")
    if isinstance(entry.get("id"), str):
        label = f"{label} ({entry['id']!r})"
    unknown = sorted(set(entry) - set(_FIELDS))
    if unknown:
        raise CatalogError(f"{label}: unknown key(s): {_with_hints(unknown, _FIELDS)}")
    missing = [k for k in _REQUIRED if k not in entry]
    if missing:
        raise CatalogError(f"{label}: missing required field(s): {', '.join(missing)}")
    for key in _STR_FIELDS:
        if key in entry and (not isinstance(entry[key], str) or not entry[key].strip()):
            raise CatalogError(f"{label}: {key} must be a non-empty string")
    for key in _BOOL_FIELDS:
        if key in entry and not isinstance(entry[key], bool):
            raise CatalogError(f"{label}: {key} must be true or false")
    for key in _INT_FIELDS:
        value = entry.get(key)
        if key in entry and (isinstance(value, bool) or not isinstance(value, int)):
            raise CatalogError(f"{label}: {key} must be an integer, got {value!r}")
    aliases = entry.get("aliases", [])
    if not isinstance(aliases, list) or not all(isinstance(a, str) and a.strip() for a in aliases):
        raise CatalogError(f"{label}: aliases must be a list of non-empty strings")
    if not _ID_RE.match(entry["id"]):
        raise CatalogError(
            f"{label}: id {entry['id']!r} must be a lowercase slug like 'llama-3-8b'"
        )
    fields = {k: v for k, v in entry.items() if k not in ("aliases", "sliding_layers")}
    try:
        sliding: tuple[int, ...] | None = None
        if "sliding_layers" in entry:
            sliding = sliding_window_layers(entry["sliding_layers"], entry["layers"])
        spec = ModelSpec(**fields, aliases=tuple(aliases), sliding_layers=sliding)
    except BadInput as exc:
        raise CatalogError(f"{label}: {exc}") from exc
    counted = spec.architecture_params()
    if counted is not None:
        for what, given, derived in (
            ("params", spec.params, counted[0]),
            ("active_params", spec.active_params, counted[1]),
        ):
            if abs(given - derived) > _PARAMS_TOLERANCE * derived:
                raise CatalogError(
                    f"{label}: {what} {given:,} is not what the architecture gives "
                    f"({derived:,}); check the fields"
                )
    return spec


def _check_unique(specs: list[ModelSpec], origin: str) -> None:
    owner: dict[str, str] = {}
    for spec in specs:
        for name in (spec.id, spec.name, *spec.aliases):
            other = owner.setdefault(normalize(_bare(name)), spec.id)
            if other != spec.id:
                raise CatalogError(
                    f"{origin}: {name!r} of {spec.id!r} already names {other!r}; "
                    "a lookup name must be unique"
                )


# ----------------------------------------------------------------------------- lookups


def _bare(name: str) -> str:
    """A name without its org prefix ("meta-llama/Llama-3.1-8B" -> "Llama-3.1-8B")."""
    return name.rsplit("/", 1)[-1]


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "-", name.casefold()).strip("-.") or "model"


@functools.cache
def _index() -> NameIndex[ModelSpec]:
    return NameIndex.build(
        (
            (spec, [_bare(n) for n in (spec.id, spec.name, *spec.aliases)], spec.id)
            for spec in load_models()
        ),
        brand_words=frozenset(),
        cutoff=_SUGGEST_CUTOFF,
    )


def find_model(name: str) -> ModelSpec | None:
    """The preset whose id, name or alias is `name` (ignoring case, spaces, dashes,
    underscores and an org prefix such as "meta-llama/"), or None. Never a near miss."""
    return _index().find(_bare(name))


def closest_model_names(name: str, n: int = 3) -> list[str]:
    """Up to `n` preset ids that look like `name`, best first, for error messages."""
    return _index().closest(_bare(name), n)


def get_model(name: str) -> ModelSpec:
    """The preset called `name`; raises BadInput naming the closest presets when there is
    none."""
    spec = find_model(name)
    if spec is not None:
        return spec
    close = closest_model_names(name)
    if close:
        hint = f"did you mean {', '.join(close)}?"
    else:
        hint = f"presets: {', '.join(m.id for m in load_models())}"
    raise BadInput(
        f"unknown model {name!r}; {hint} (or describe it: params, layers, hidden, heads, kv_heads)"
    )


def _with_hints(names: list[str], known: Sequence[str]) -> str:
    parts = []
    for name in names:
        close = difflib.get_close_matches(name, list(known), n=1)
        parts.append(f"{name!r} (did you mean {close[0]!r}?)" if close else repr(name))
    return ", ".join(parts)
