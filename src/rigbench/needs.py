"""What a measuring command needs installed, checked before it starts: a missing torch is a
broken install (one line saying how to fix it), never a GPU fault."""

from __future__ import annotations

import importlib.util

from rigbench.errors import BadInput


def require_torch(command: str) -> None:
    """Raise BadInput when torch cannot be found, without importing it (slow)."""
    try:
        found = importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):  # a broken or blocked install
        found = False
    if not found:
        raise BadInput(
            f"{command} runs on torch, which is not installed in this Python: "
            "pip install -e . (or pip install rigbench) installs it"
        )
