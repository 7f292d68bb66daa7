"""Acceptance profiles for `burnin --profile`: how long, what runs, which thresholds, and the
gate a script reads from the JSON.

The profiles differ in length, not in rules: every profile runs the same load (checked
matmuls compared bit for bit across GPUs of one model, memory traffic, all_reduce, idle->full
steps on all GPUs at once) and judges it with the same thresholds (burnin.verdict), because
a threshold that healthy hardware meets in 2 minutes it meets in 12 hours; what a longer run
adds is time for slow faults to show (heat soak, clocks sagging, ECC errors, an Xid after
hours). Lengths follow NVIDIA DCGM's diagnostic levels: level 2 "medium validation, normally
lasting approximately two minutes", level 3 "long hardware diagnostics, normally lasting
approximately 15 minutes", level 4 "extended, longer-running"
(https://docs.nvidia.com/datacenter/dcgm/latest/reference/command-line-reference/dcgmi/dcgmi-diag.html).

Every profile ends with the VRAM test (bench.vram: walking ones, address in address, random
words with checksums over 90 % of each GPU's free memory), after the load so the memory is
warm and free: the memtest an owner of consumer GPUs otherwise runs as a separate tool, and
DCGM's level 4 runs such a memtest too (since DCGM 2.4). Its cost: NVIDIA gives ~3 s for the
walking-1-bit pattern and under 1 s for the address check per iteration on an A100 40 GB
(https://docs.nvidia.com/datacenter/dcgm/latest/reference/diagnostics/plugins/memtest.html),
so `quick` runs the full pass rather than a sample (ours: 70.80 GiB in 5.7-5.8 s on an H100
SXM 80GB, benchmarks/2026-12-07-h100-1gpu.md); it is not counted in the profile's minutes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rigbench.burnin import verdict as v


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    minutes: float
    purpose: str
    like: str  # the published practice it stands for
    vram: bool = True  # the VRAM pattern test after the load


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            name="quick",
            minutes=2.0,
            purpose="after a change (a new card, a riser, a driver): does every GPU compute "
            "right and hold its clocks under a full-rig power step",
            like="DCGM diagnostic level 2, about two minutes",
        ),
        Profile(
            name="accept",
            minutes=15.0,
            purpose="accepting a new or second-hand rig: long enough for the coolers to "
            "reach a steady temperature and the power steps to repeat many times",
            like="DCGM diagnostic level 3, about 15 minutes",
        ),
        Profile(
            name="soak",
            minutes=12 * 60.0,
            purpose="before leaving a rig to train unattended: slow faults (heat soak, "
            "clocks sagging, ECC errors, an Xid after hours)",
            like="DCGM diagnostic level 4 (extended), a night of load",
        ),
    )
}

RUNS = (
    "checked matmuls on every GPU (the same seeded inputs everywhere: results compared bit "
    "for bit across GPUs of one model, the first product against a float64 reference), "
    "memory traffic, all_reduce across the GPUs and idle->full steps on all GPUs at once"
)
VRAM_RUNS = (
    "then the VRAM test on every GPU (walking ones, address in address, random words with "
    "checksums over 90 % of its free memory; not counted in the minutes, its time is in "
    "--json)"
)


def thresholds() -> dict[str, Any]:
    """The thresholds every profile judges with (from burnin.verdict), by name."""
    return {
        "matmul_slower_than_peers_max": v.SLOWER_LIMIT,
        "thermal_or_brake_throttle_max_s": v.THROTTLE_FAIL_S,
        "capped_clock_gap_max": v.CLOCK_GAP_LIMIT,
        "sm_clock_fall_max": v.CLOCK_FALL_LIMIT,
        "temperature_warn_margin_c": v.TEMP_MARGIN_C,
        "power_1s_average_over_limit_warn": v.POWER_OVER_LIMIT,
        "checksums_across_same_model": "identical",
        "xid_events_max": 0,
        "ecc_errors_rise_max": 0,
        "vram_bad_words_max": 0,
    }


def help_text() -> str:
    """The profiles and thresholds in words, for --help."""
    lines = [f"{p.name}: {p.minutes:g} min, like {p.like}; {p.purpose}." for p in PROFILES.values()]
    t = thresholds()
    lines.append(
        f"Every profile runs {RUNS}, {VRAM_RUNS}, and fails a GPU on: a bad VRAM word (the "
        "failing address ranges in --json), an Xid, falling off the bus, a "
        "result differing from its peers', a matmul rate more than "
        f"{t['matmul_slower_than_peers_max']:.0%} below the best GPU of its model, thermal or "
        f"power-brake slowdown for {t['thermal_or_brake_throttle_max_s']:g} s or more, a "
        f"power-capped SM clock more than {t['capped_clock_gap_max']:.0%} below the best GPU "
        f"of its model, SM clocks falling more than {t['sm_clock_fall_max']:.0%} over the run, "
        "a temperature at its reported limit, ECC errors rising; it warns within "
        f"{t['temperature_warn_margin_c']:g} degC of that limit and on a 1 s power average "
        f"more than {t['power_1s_average_over_limit_warn'] - 1:.0%} over the limit. Sources: "
        "docs/references.md. --minutes overrides the length."
    )
    return " ".join(lines)


def gate(
    profile: str | None, minutes: float, verdict: dict[str, Any], exit_code: int
) -> dict[str, Any]:
    """What a script gates on: `pass` is true only for a pass verdict; `failed` and
    `warnings` are the reason codes (rig and GPUs) behind it; `vram` what each GPU's VRAM
    test found (empty when it did not run), with the bad address ranges."""
    reasons = list(verdict.get("reasons", []))
    for g in verdict.get("gpus", []):
        reasons += [{**r, "gpu": g.get("label")} for r in g.get("reasons", [])]
    return {
        "profile": profile,
        "minutes": minutes,
        "full_length": profile is None or minutes >= PROFILES[profile].minutes,
        "pass": verdict.get("verdict") == "pass",
        "verdict": verdict.get("verdict"),
        "exit_code": exit_code,
        "failed": sorted({r["code"] for r in reasons if r["severity"] == "fail"}),
        "warnings": sorted({r["code"] for r in reasons if r["severity"] == "warn"}),
        "thresholds": thresholds(),
        "vram": {
            g.get("label"): {
                k: g["figures"]["vram"].get(k)
                for k in ("status", "bad_words", "bytes_tested", "bad_ranges", "bad_ranges_total")
            }
            for g in verdict.get("gpus", [])
            if g.get("figures", {}).get("vram") is not None
        },
    }
