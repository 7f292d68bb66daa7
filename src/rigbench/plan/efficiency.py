"""PSU efficiency: the 80 PLUS tiers' minimum efficiencies by load, and tier names."""

from __future__ import annotations

import re

# 80 PLUS minimum efficiencies, 115 V internal non-redundant, at 10/20/50/100 % load
# (https://en.wikipedia.org/wiki/80_Plus, the CLEAResult program's table). Titanium adds
# a 10 % point; the others are held flat below 20 %.
EFFICIENCY_TIERS: dict[str, tuple[tuple[float, float], ...]] = {
    "80plus": ((0.2, 0.80), (0.5, 0.80), (1.0, 0.80)),
    "bronze": ((0.2, 0.82), (0.5, 0.85), (1.0, 0.82)),
    "silver": ((0.2, 0.85), (0.5, 0.88), (1.0, 0.85)),
    "gold": ((0.2, 0.87), (0.5, 0.90), (1.0, 0.87)),
    "platinum": ((0.2, 0.90), (0.5, 0.92), (1.0, 0.89)),
    "titanium": ((0.1, 0.90), (0.2, 0.92), (0.5, 0.94), (1.0, 0.90)),
}
DEFAULT_EFFICIENCY = "gold"


def tier_name(text: str) -> str | None:
    """The 80 PLUS tier a name means ("80 Plus Gold", "gold", "80+ platinum"), or None."""
    key = re.sub(r"[\s_\-]+", "", text.casefold()).replace("80plus", "").replace("80+", "")
    if key in ("", "white", "standard", "basic"):
        return "80plus"
    return key if key in EFFICIENCY_TIERS else None
