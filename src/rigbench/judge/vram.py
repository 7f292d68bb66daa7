"""VRAM temperature against the point where the memory stops being safe: GDDR6/GDDR6X cards
(hw.gddr's table) against sourced limits, other GPUs against the memory limit they report
(NVML_TEMPERATURE_THRESHOLD_MEM_MAX, HBM GPUs).

A warning needs the VRAM at or above its limit for SUSTAINED_S in total, not one reading:
the junction temperature follows the load over seconds, so a second at the limit is a real
excursion (at 20 Hz, twenty readings).
"""

from __future__ import annotations

from dataclasses import dataclass

from rigbench.hw.telemetry import GpuChannel
from rigbench.records import Finding, Severity
from rigbench.telemetry.aggregate import GpuAggregate

SUSTAINED_S = 1.0


@dataclass(frozen=True, slots=True)
class VramLimit:
    memory: str
    limit_c: float  # the temperature not to stay at or above
    what: str  # what the limit is, in words
    datasheet_max_c: float | None  # the memory maker's maximum junction temperature
    source: str


LIMITS: dict[str, VramLimit] = {
    "GDDR6X": VramLimit(
        memory="GDDR6X",
        limit_c=110.0,
        what="the point where GDDR6X memory throttles",
        # Micron publishes no junction maximum for GDDR6X; Igor's Lab estimated 105-110 °C.
        datasheet_max_c=None,
        source=(
            "owner measurement with the gddr6 reader: 104 °C at full load on 3x RTX 3090 does "
            "not throttle, throttling starts at 110 °C (users' seed 004); Micron publishes no "
            "GDDR6X junction maximum, Igor's Lab estimates 105-110 °C "
            "(techpowerup.com/forums/goto/post?id=4353476)"
        ),
    ),
    "GDDR6": VramLimit(
        memory="GDDR6",
        limit_c=100.0,
        what="Micron's maximum junction temperature for GDDR6",
        datasheet_max_c=100.0,
        source=(
            "Micron rates GDDR5, GDDR5X and GDDR6 for a 100 °C maximum junction temperature, "
            "0-95 °C recommended (techpowerup.com/forums/goto/post?id=4353476)"
        ),
    ),
}

FIX = (
    "move more air across the card's backplate (a fan on it, space between the cards, an "
    "open frame), renew the memory thermal pads, or lower the power limit "
    "(sudo nvidia-smi -i N -pl WATTS)"
)
FIX_SOURCE = (
    "users' seeds 002 (open frame: the 3090's VRAM is cooled through the backplate), 004 "
    "(repasting and pads give ~10 °C), 000 (power limit per card)"
)


def vram_findings(channel: GpuChannel, agg: GpuAggregate | None) -> list[Finding]:
    """The VRAM finding of one GPU over a watched span: warning when it stayed at or above
    its limit, info when it only touched it, ok below, skipped when it was not read. Nothing
    where no limit is known (a card outside hw.gddr's table that reports no memory limit)."""
    lim = LIMITS.get(channel.memory_type or "")
    if lim is None and channel.memory_type is None and channel.limits.mem_max_c:
        lim = VramLimit(
            memory="HBM",
            limit_c=channel.limits.mem_max_c,
            what="the memory's maximum operating temperature the GPU reports",
            datasheet_max_c=None,
            source="the GPU's own limit (NVML_TEMPERATURE_THRESHOLD_MEM_MAX)",
        )
    if lim is None:
        return []
    gpu = channel.gpu
    peak = agg.temp_mem.value if agg is not None else None
    if peak is None:
        why = channel.unavailable.get("temp_mem_c", "no reading during the run")
        return [
            Finding(
                id="vram.unread",
                severity="skipped",
                title=f"GPU {gpu}: {lim.memory} temperature not read",
                why=why,
                fix="run as root (sudo) on a kernel without lockdown to read it",
                origin="reading",
                gpus=[gpu],
            )
        ]
    assert agg is not None
    above_s = agg.temp_mem_s_from(lim.limit_c)
    evidence = {
        "memory": lim.memory,
        "vram_peak_c": peak,
        "vram_peak_t_s": agg.temp_mem.t,
        "limit_c": lim.limit_c,
        "seconds_at_or_above_limit": above_s,
        "datasheet_max_c": lim.datasheet_max_c,
        "source": channel.temp_mem_source,
    }

    def finding(id: str, severity: Severity, title: str, why: str | None = None) -> Finding:
        return Finding(
            id=id,
            severity=severity,
            title=title,
            evidence=evidence,
            why=why,
            fix=FIX if severity in ("warning", "info") else None,
            source=lim.source,
            origin="measurement",
            gpus=[gpu],
        )

    if above_s >= SUSTAINED_S:
        return [
            finding(
                "vram.hot",
                "warning",
                f"GPU {gpu}: VRAM ({lim.memory}) at {peak:.0f} °C, at or above "
                f"{lim.limit_c:.0f} °C for {above_s:.1f} s",
                f"{lim.limit_c:.0f} °C is {lim.what}; the core temperature does not show it",
            )
        ]
    if peak >= lim.limit_c:
        return [
            finding(
                "vram.touched",
                "info",
                f"GPU {gpu}: VRAM ({lim.memory}) touched {peak:.0f} °C, {lim.what} "
                f"({lim.limit_c:.0f} °C), for {above_s:.1f} s",
                "a brief excursion; a longer or hotter run would keep it there",
            )
        ]
    return [
        finding(
            "vram.ok",
            "ok",
            f"GPU {gpu}: VRAM ({lim.memory}) peaked at {peak:.0f} °C, "
            f"{lim.limit_c - peak:.0f} °C below {lim.what} ({lim.limit_c:.0f} °C)",
        )
    ]
