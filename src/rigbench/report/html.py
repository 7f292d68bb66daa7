"""Render a report `Document` as one self-contained HTML file (charts inline as data: URIs,
styles inline, no scripts, nothing fetched) or as Markdown with the charts as SVG files beside
it. jinja2 templates are package data (`report/templates/`); HTML autoescapes every string."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import jinja2

from rigbench.report.document import Document, Table

_MD_SPECIAL = re.compile(r"([\\`*_\[\]|<>#])")


def _env(autoescape: bool) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("rigbench.report", "templates"),
        autoescape=autoescape,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["b64"] = lambda data: base64.b64encode(data).decode("ascii")
    env.filters["md"] = md_escape
    env.filters["md_table"] = md_table
    return env


def md_escape(text: object) -> str:
    """Plain text for Markdown: characters Markdown or HTML would act on are escaped, so a
    user's `<script>` or `|` stays text in a forum post."""
    s = str(text).replace("\r", " ").replace("\n", " ")
    return _MD_SPECIAL.sub(r"\\\1", s)


def md_table(t: Table) -> str:
    lines = ["| " + " | ".join(md_escape(h) for h in t.headers) + " |"]
    lines.append(
        "|"
        + "|".join(
            "---:" if t.rows and t.rows[0][i].numeric else "---" for i in range(len(t.headers))
        )
        + "|"
    )
    for row in t.rows:
        lines.append("| " + " | ".join(md_escape(c.text) or " " for c in row) + " |")
    return "\n".join(lines)


def render_html(doc: Document) -> str:
    return _env(True).get_template("report.html.j2").render(doc=doc)


def render_markdown(doc: Document, path: Path) -> list[Path]:
    """Write `path` and its charts into `<stem>_files/` beside it; returns the files written."""
    files_dir = path.parent / f"{path.stem}_files"
    written = []
    if doc.charts():
        files_dir.mkdir(parents=True, exist_ok=True)
        for chart in doc.charts():
            p = files_dir / f"{chart.name}.svg"
            p.write_bytes(chart.svg)
            written.append(p)
    text = _env(False).get_template("report.md.j2").render(doc=doc, files=files_dir.name)
    path.write_text(re.sub(r"\n{3,}", "\n\n", text), encoding="utf-8")
    return [path, *written]
