"""The motherboard catalog: slot and lane layouts (electrical width, generation, whether a
slot hangs off the CPU, the chipset or a PCIe switch, and which slots share lanes), so
`plan` can say what link each GPU of a build gets.

The data lives in `data/boards.toml` (its header documents the format) and is validated
when first loaded; a malformed file raises `CatalogError` naming the entry and the key.

>>> find_board("X570 Unify").slot("PCI_E3").width
8
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from rigbench.catalog._names import (
    NameIndex,
    check_unique_names,
    matches_query,
    normalize,
    read_data_toml,
    validation_message,
)
from rigbench.catalog.gpus import CatalogError

_FILE = "boards.toml"
_BRAND_WORDS = frozenset(
    {"gigabyte", "msi", "asus", "asrock", "supermicro", "motherboard", "board", "mainboard"}
)

Slug = Annotated[str, Field(pattern=r"^[a-z0-9]+(?:-[a-z0-9]+)*$")]
Text = Annotated[str, Field(min_length=1)]
Gen = Annotated[int, Field(ge=1, le=6)]
Width = Literal[1, 2, 4, 8, 16]
SlotKind = Literal["pcie", "sxm2", "sxm4", "sxm5"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Uplink(_Strict):
    """A link shared by the slots behind it: the chipset's or a PCIe switch's."""

    name: Text
    gen: Gen
    width: Width


class Sharing(_Strict):
    """When any slot of `when` holds a card, this slot runs at x`width` (0: disabled)."""

    when: tuple[Text, ...] = Field(min_length=1, strict=False)
    width: Literal[0, 1, 2, 4, 8, 16]


class Slot(_Strict):
    name: Text
    kind: SlotKind = "pcie"
    physical: Width | None = None  # slot length in lanes (pcie slots)
    gen: Gen
    width: Width  # electrical
    via: Text = "cpu"  # "cpu" or the name of one of the board's uplinks
    shares: tuple[Sharing, ...] = Field(default=(), strict=False)
    bifurcation: tuple[Text, ...] = Field(default=(), strict=False)
    # expansion-slot position from the top (1 = nearest the CPU), where the board's
    # documentation gives it: a card `slot_width` slots thick covers position..position+w-1
    position: Annotated[int, Field(ge=1, le=12)] | None = None

    def width_with(self, populated: Iterable[str]) -> int:
        """The slot's electrical width once the `populated` slots hold cards."""
        taken = set(populated)
        width: int = self.width
        for rule in self.shares:
            if taken & set(rule.when):
                width = min(width, rule.width)
        return width


class BoardSpec(_Strict):
    id: Slug
    name: Text
    vendor: Text
    aliases: tuple[Text, ...] = Field(default=(), strict=False)
    socket: Text
    chipset: Text
    form_factor: Text
    cpu_sockets: Annotated[int, Field(ge=1, le=8)] = 1
    gpu_order: tuple[Text, ...] = Field(default=(), strict=False)
    source: Annotated[str, Field(pattern=r"https?://")]
    notes: Text | None = None
    uplinks: tuple[Uplink, ...] = Field(default=(), alias="uplink", strict=False)
    slots: tuple[Slot, ...] = Field(min_length=1, alias="slot", strict=False)

    @model_validator(mode="after")
    def _consistent(self) -> BoardSpec:
        names = [s.name for s in self.slots]
        if len(set(names)) != len(names):
            raise ValueError("slot names must be unique")
        uplinks = {u.name for u in self.uplinks}
        if "cpu" in uplinks:
            raise ValueError('"cpu" is not an uplink name')
        for s in self.slots:
            if s.via != "cpu" and s.via not in uplinks:
                raise ValueError(f"slot {s.name}: via {s.via!r} is not 'cpu' or an uplink")
            if s.kind == "pcie" and s.physical is None:
                raise ValueError(f"slot {s.name}: a pcie slot needs physical")
            if s.physical is not None and s.width > s.physical:
                raise ValueError(f"slot {s.name}: width x{s.width} exceeds physical x{s.physical}")
            for rule in s.shares:
                for other in rule.when:
                    if other not in names or other == s.name:
                        raise ValueError(f"slot {s.name}: shares names unknown slot {other!r}")
        for g in self.gpu_order:
            if g not in names:
                raise ValueError(f"gpu_order names unknown slot {g!r}")
        return self

    def slot_named(self, name: str) -> Slot | None:
        """The slot called `name` (case-, space- and dash-insensitive), or None."""
        key = normalize(name)
        return next((s for s in self.slots if normalize(s.name) == key), None)

    def slot(self, name: str) -> Slot:
        found = self.slot_named(name)
        if found is None:
            raise KeyError(name)
        return found

    def uplink_named(self, name: str) -> Uplink | None:
        return next((u for u in self.uplinks if u.name == name), None)

    @property
    def slots_for_gpus(self) -> tuple[Slot, ...]:
        """Slots in the order GPUs should fill them: gpu_order, then the rest."""
        first = [self.slot(n) for n in self.gpu_order]
        return (*first, *(s for s in self.slots if s not in first))

    @property
    def lookup_names(self) -> tuple[str, ...]:
        return (self.id, self.name, *self.aliases)


class _BoardFile(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    board: list[BoardSpec] = Field(min_length=1)


def parse_boards(data: Any, *, origin: str = _FILE) -> tuple[BoardSpec, ...]:
    """Validate a parsed board catalog document; errors name the entry and the key."""
    try:
        specs = tuple(_BoardFile.model_validate(data).board)
    except ValidationError as exc:
        raise CatalogError(validation_message(origin, "board", data, exc)) from None
    check_unique_names(specs, origin, CatalogError)
    return specs


@functools.cache
def load_boards() -> tuple[BoardSpec, ...]:
    """The shipped board catalog, validated; read once per process."""
    data, origin = read_data_toml(_FILE, CatalogError)
    return parse_boards(data, origin=origin)


@functools.cache
def _index() -> NameIndex[BoardSpec]:
    return NameIndex.build(((b, b.lookup_names, b.name) for b in load_boards()), _BRAND_WORDS)


def find_board(name: str) -> BoardSpec | None:
    """The board whose id, name or alias is `name` (vendor words optional), or None."""
    return _index().find(name)


def closest_board_names(name: str, n: int = 3) -> list[str]:
    """Up to `n` catalog board names that look like `name`, best first."""
    return _index().closest(name, n)


def search_boards(query: str) -> list[BoardSpec]:
    """Boards matching every word of `query` (id, name, alias, vendor, socket, chipset)."""
    return [
        b
        for b in load_boards()
        if matches_query(query, (*b.lookup_names, b.vendor, b.socket, b.chipset))
    ]
