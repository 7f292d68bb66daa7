"""The write-up as data: sections of tables, charts and lines of text, before any markup.
The HTML and Markdown templates render the same document.

Text in a document is plain: the templates escape it (user strings such as a rig's name,
a path or a note are never markup)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Tone = Literal["", "ok", "info", "warning", "error", "skipped"]


@dataclass(slots=True)
class Cell:
    text: str
    tone: Tone = ""
    numeric: bool = False


@dataclass(slots=True)
class Table:
    headers: list[str]
    rows: list[list[Cell]]
    caption: str | None = None
    kind: Literal["table"] = "table"


@dataclass(slots=True)
class Chart:
    """One SVG picture; `name` is unique in the document (the Markdown file's name)."""

    name: str
    title: str
    svg: bytes
    kind: Literal["chart"] = "chart"


@dataclass(slots=True)
class Text:
    text: str
    tone: Tone = ""
    kind: Literal["text"] = "text"


@dataclass(slots=True)
class Facts:
    """Label: value pairs (the machine, versions, a run's envelope)."""

    items: list[tuple[str, str]]
    title: str | None = None
    kind: Literal["facts"] = "facts"


Block = Table | Chart | Text | Facts


@dataclass(slots=True)
class Section:
    id: str
    title: str
    blocks: list[Block] = field(default_factory=list)
    empty: str | None = None
    """One line said instead of the blocks when there is nothing to show."""

    def charts(self) -> list[Chart]:
        return [b for b in self.blocks if isinstance(b, Chart)]


@dataclass(slots=True)
class Document:
    title: str
    generated_at: str
    sections: list[Section]
    meta: dict[str, Any] = field(default_factory=dict)

    def charts(self) -> list[Chart]:
        return [c for s in self.sections for c in s.charts()]


SECTIONS: tuple[tuple[str, str], ...] = (
    ("machine", "Machine"),
    ("build", "Parts list and plan"),
    ("benchmarks", "Benchmarks"),
    ("workloads", "Workloads"),
    ("doctor", "Doctor"),
    ("burnin", "Burn-in"),
    ("comparison", "Comparison"),
    ("cost", "Cost"),
    ("provenance", "Provenance"),
)
"""Every report has these sections, in this order (ids are the HTML anchors)."""
