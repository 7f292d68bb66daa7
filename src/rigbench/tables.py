"""The one table every view prints: rich's, with cells that fold onto more lines when the
terminal is narrow instead of being cut with '…', so no figure is ever hidden."""

from __future__ import annotations

from typing import Any

from rich import table


class Table(table.Table):
    def add_column(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("overflow", "fold")
        super().add_column(*args, **kwargs)
