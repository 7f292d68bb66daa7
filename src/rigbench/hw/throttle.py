"""Clock throttle ("clock event") reasons: NVML's bitmask in words.

Bit values are NVML's nvmlClocksEventReason* constants (nvml.h); they are the same bits
`nvidia-smi -q -d PERFORMANCE` prints as "Clocks Event Reasons".
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ThrottleReason:
    bit: int
    name: str  # stable id
    words: str  # what a user reads
    harmful: bool  # does it mean the GPU runs slower than it should under load


REASONS: tuple[ThrottleReason, ...] = (
    ThrottleReason(0x1, "gpu_idle", "idle", False),
    ThrottleReason(0x2, "applications_clocks", "application clocks set (locked clocks)", False),
    ThrottleReason(0x4, "sw_power_cap", "power cap (at the power limit)", True),
    ThrottleReason(0x8, "hw_slowdown", "hardware slowdown (thermal or power brake)", True),
    ThrottleReason(0x10, "sync_boost", "sync boost (held to a slower GPU of its group)", False),
    ThrottleReason(0x20, "sw_thermal", "software thermal slowdown", True),
    ThrottleReason(0x40, "hw_thermal", "hardware thermal slowdown", True),
    ThrottleReason(0x80, "hw_power_brake", "hardware power brake (external power signal)", True),
    ThrottleReason(0x100, "display_clock", "display clock setting", False),
)


def decode(mask: int) -> list[ThrottleReason]:
    """The reasons set in `mask`, in bit order; unknown bits are ignored."""
    return [r for r in REASONS if mask & r.bit]


def describe(mask: int) -> str:
    """Words for a mask, e.g. "power cap (at the power limit), hardware thermal slowdown"."""
    reasons = decode(mask)
    return ", ".join(r.words for r in reasons) if reasons else "none"
