"""Moved to rigbench.formatting (the plan renderer needs it too, and plan sits below report);
kept only so that branches written against the old path still import. Import
rigbench.formatting in new code."""

from rigbench.formatting import VERDICT_STYLE, gib, num, ratio_cell, size, verdict_cell

__all__ = ["VERDICT_STYLE", "gib", "num", "ratio_cell", "size", "verdict_cell"]
