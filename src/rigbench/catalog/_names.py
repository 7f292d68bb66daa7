"""Name lookups shared by the GPU, CPU and motherboard catalogs: exact matches ignoring
case, spaces, dashes and underscores, optional brand words, and close names for error
messages."""

from __future__ import annotations

import difflib
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any, Generic, Protocol, TypeVar

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

T = TypeVar("T")

_SUGGEST_CUTOFF = 0.6  # difflib ratio below which a name is not offered as a suggestion


def normalize(name: str) -> str:
    """Case-, space-, dash- and underscore-insensitive form of a name."""
    return re.sub(r"[\s\-_]+", "", name.casefold())


def strip_words(name: str, words: frozenset[str]) -> str:
    parts = re.split(r"[\s\-_]+", name.casefold())
    return "".join(p for p in parts if p not in words)


@dataclass(frozen=True)
class NameIndex(Generic[T]):
    """Exact and near lookups over (item, lookup names, display name) triples."""

    exact: Mapping[str, T]
    branded: Mapping[str, T | None]  # brand words dropped; None where ambiguous
    candidates: tuple[tuple[str, str, str], ...]  # (normalized, brand-stripped, display)
    brand_words: frozenset[str]
    cutoff: float = _SUGGEST_CUTOFF  # difflib ratio below which a name is not suggested

    @classmethod
    def build(
        cls,
        items: Iterable[tuple[T, Iterable[str], str]],
        brand_words: frozenset[str],
        cutoff: float = _SUGGEST_CUTOFF,
    ) -> NameIndex[T]:
        exact: dict[str, T] = {}
        branded: dict[str, T | None] = {}
        candidates: list[tuple[str, str, str]] = []
        for item, names, display in items:
            for name in names:
                exact[normalize(name)] = item
                key = strip_words(name, brand_words)
                candidates.append((normalize(name), key, display))
                if key:
                    seen = branded.get(key, item)
                    branded[key] = item if seen is item else None
        return cls(exact, branded, tuple(candidates), brand_words, cutoff)

    def find(self, name: str) -> T | None:
        item = self.exact.get(normalize(name))
        if item is not None:
            return item
        key = strip_words(name, self.brand_words)
        return self.branded.get(key) if key else None

    def closest(self, name: str, n: int = 3) -> list[str]:
        if n <= 0:
            return []
        query, stripped = normalize(name), strip_words(name, self.brand_words)
        scored: dict[str, float] = {}
        for key, key_stripped, display in self.candidates:
            ratio = difflib.SequenceMatcher(None, query, key).ratio()
            if stripped and key_stripped:
                ratio = max(ratio, difflib.SequenceMatcher(None, stripped, key_stripped).ratio())
            if ratio >= self.cutoff and ratio > scored.get(display, 0.0):
                scored[display] = ratio
        ranked = sorted(scored.items(), key=lambda item: (-item[1], item[0]))
        return [display for display, _ in ranked[:n]]


def matches_query(query: str, haystack: Iterable[str]) -> bool:
    """Every word of `query` is a substring of one of the (normalized) haystack strings."""
    words = [w for w in (normalize(w) for w in query.split()) if w]
    joined = "|".join(normalize(h) for h in haystack)
    return all(w in joined for w in words)


class _Named(Protocol):
    id: str

    @property
    def lookup_names(self) -> tuple[str, ...]: ...


def check_unique_names(specs: Iterable[_Named], origin: str, error: type[Exception]) -> None:
    """Every id, name and alias must lead to one entry only."""
    seen: dict[str, str] = {}
    for spec in specs:
        for name in spec.lookup_names:
            other = seen.setdefault(normalize(name), spec.id)
            if other != spec.id:
                raise error(f"{origin}: {name!r} of {spec.id!r} already names {other!r}")


def read_data_toml(filename: str, error: type[Exception]) -> tuple[dict[str, Any], str]:
    """A TOML file of `rigbench/catalog/data/`, parsed, and the name errors should use."""
    origin = f"rigbench/catalog/data/{filename}"
    resource = resources.files("rigbench.catalog").joinpath("data").joinpath(filename)
    try:
        text = resource.read_bytes().decode("utf-8")
        return tomllib.loads(text), origin
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise error(f"{origin}: cannot be read as TOML: {exc}") from exc


def validation_message(origin: str, table: str, data: Any, exc: Any) -> str:
    """One line for a pydantic error in a catalog file: `<file>: <table>[i] (id): key: msg`."""
    first = exc.errors()[0]
    loc = list(first["loc"])
    where = table
    if loc and loc[0] == table and len(loc) > 1 and isinstance(loc[1], int):
        index = loc[1]
        entries = data.get(table) if isinstance(data, dict) else None
        entry_id = None
        if isinstance(entries, list) and index < len(entries) and isinstance(entries[index], dict):
            entry_id = entries[index].get("id")
        where = f"{table}[{index}]" + (f" ({entry_id!r})" if entry_id else "")
        loc = loc[2:]
    else:
        loc = loc[1:] if loc and loc[0] == table else loc
    key = ".".join(str(p) for p in loc)
    return f"{origin}: {where}{': ' + key if key else ''}: {first['msg']}"
