"""GPU health checks: Xid errors in the kernel log, ECC counts, retired pages and
remapped rows, throttle reasons (now and accumulated), temperatures against their
limits, power limits, and application clocks."""

from __future__ import annotations

import re
import statistics
from typing import Any

from rigbench.doctor.context import (
    DoctorInput,
    common_reason,
    gpus_text,
    gpus_without,
    ok,
    skipped,
    unknown,
    with_gaps,
)
from rigbench.doctor.inventory import LOST_GPU_FIX
from rigbench.hw.throttle import decode
from rigbench.hw.xid import xid_info
from rigbench.records import Finding

XID_SOURCE = "NVIDIA Xid catalogue, https://docs.nvidia.com/deploy/xid-errors/"
_RECOVERY_RE = re.compile(r"to 0x[0-9a-fA-F]+ \(([^)]+)\)")
# Xids spread over this long, this many times, are an intermittent fault, not one event
INTERMITTENT_MIN_EVENTS = 3
INTERMITTENT_MIN_SPAN_H = 1.0
VIOLATION_MIN_S = 1.0  # accumulated throttle time below this is noise
HOT_MARGIN_C = 5  # warn this close to the slowdown / memory limit
OUTLIER_C = 15  # a GPU this much hotter than its identical neighbours is suspect
OUTLIER_MIN_C = 60
POWER_LOW_RATIO = 0.6
# A clock lock below this share of the GPU's top clock costs real speed: seed 001 locked its
# V100s at 1005 of 1530 MHz (66 %) and lost ~13 % of training speed; seed 000 (Minerva)
# locks near 1750 MHz on its 3090s on purpose, close to their boost, at no visible cost.
LOCK_DEEP_RATIO = 0.75
POWER_UNEVEN_W = 5.0


def _all_missing(d: DoctorInput, check: str, fields: tuple[str, ...]) -> Finding | None:
    """A skipped finding when no GPU has any of `fields`, else None."""
    missing = []
    for g in d.rig.gpus:
        h = d.gpu_health(g.index)
        if all(getattr(h, f) is None for f in fields):
            missing.append((g.index, unknown(h, fields[0])))
    if len(missing) == len(d.rig.gpus):
        return skipped(check, common_reason(missing) if missing else "no GPU")
    return None


# --- Xid --------------------------------------------------------------------------------------


def check_xid(d: DoctorInput) -> list[Finding]:
    host = d.health.host
    if host.xids is None:
        return [skipped("xid", unknown(host, "xids"))]
    if not host.xids:
        return [
            ok("xid", "No Xid error in the kernel log since boot", {"log": host.kernel_log_source})
        ]
    by_code: dict[int, list[Any]] = {}
    for e in host.xids:
        by_code.setdefault(e.code, []).append(e)
    found = []
    for code in sorted(by_code):
        events = by_code[code]
        info = xid_info(code)
        gpus = sorted({e.gpu for e in events if e.gpu is not None})
        lost = sorted({e.pci for e in events if e.gpu is None and e.pci})
        where = []
        if gpus:
            where.append(gpus_text(gpus))
        if lost:
            where.append("PCI " + ", ".join(lost) + " (not seen by the driver now)")
        fix = info.action[:1].upper() + info.action[1:] + "."
        if code == 79:
            fix = LOST_GPU_FIX
        evidence: dict[str, Any] = {
            "count": len(events),
            "pci": sorted({e.pci for e in events if e.pci}),
            "last_lines": [e.line for e in events[-3:]],
            "log": host.kernel_log_source,
        }
        if code == 154:
            actions = sorted({m.group(1) for e in events if (m := _RECOVERY_RE.search(e.line))})
            if actions:
                evidence["recovery_action"] = actions
        times = [e.time_s for e in events if e.time_s is not None]
        why = f"The NVIDIA driver logged Xid {code}: {info.meaning}."
        if len(times) >= INTERMITTENT_MIN_EVENTS:
            span_h = (max(times) - min(times)) / 3600
            evidence["first_s_after_boot"], evidence["last_s_after_boot"] = min(times), max(times)
            evidence["span_hours"] = round(span_h, 2)
            if span_h >= INTERMITTENT_MIN_SPAN_H:
                why += (
                    f" It came back {len(times)} times over {span_h:.1f} h: an intermittent "
                    "fault (a marginal connector, riser or PSU, or failing hardware), not a "
                    "one-off; it will recur under load."
                )
        found.append(
            Finding(
                id=f"xid.{code}",
                severity=info.severity,
                title=f"Xid {code} ({info.meaning}) x{len(events)}"
                + (f" on {' and '.join(where)}" if where else ""),
                evidence=evidence,
                why=why,
                fix=fix,
                source=XID_SOURCE,
                origin="reading",
                gpus=gpus,
            )
        )
    return found


# --- ECC and memory ---------------------------------------------------------------------------


def check_ecc(d: DoctorInput) -> list[Finding]:
    if not d.rig.gpus:
        return [skipped("ecc", "no GPU")]
    missing = _all_missing(d, "ecc", ("ecc_enabled",))
    if missing:
        return [missing]
    found: list[Finding] = []
    for g in d.rig.gpus:
        h = d.gpu_health(g.index)
        counts = {
            k: getattr(h, k)
            for k in (
                "ecc_volatile_corrected",
                "ecc_volatile_uncorrected",
                "ecc_aggregate_corrected",
                "ecc_aggregate_uncorrected",
            )
        }
        vol_unc, agg_unc = h.ecc_volatile_uncorrected or 0, h.ecc_aggregate_uncorrected or 0
        if vol_unc or agg_unc:
            now = vol_unc > 0
            found.append(
                Finding(
                    id="ecc.uncorrectable",
                    severity="error" if now else "warning",
                    title=f"{{gpus}}: {vol_unc if now else agg_unc} uncorrectable "
                    f"ECC error(s) {'since the driver loaded' if now else 'in its lifetime'}",
                    evidence=counts,
                    why="An uncorrectable error means data in GPU memory was wrong: the "
                    "process that used it got corrupted results or was killed.",
                    fix="Drain the GPU and reset it (nvidia-smi -r, or reboot) so its memory "
                    "is remapped; if errors come back, the GPU needs service.",
                    gpus=[g.index],
                )
            )
        elif h.ecc_volatile_corrected or h.ecc_aggregate_corrected:
            found.append(
                Finding(
                    id="ecc.correctable",
                    severity="info",
                    title="{gpus}: corrected "
                    f"{h.ecc_aggregate_corrected or h.ecc_volatile_corrected} single-bit "
                    "ECC errors",
                    evidence=counts,
                    why="Corrected errors cost nothing by themselves; a count that keeps "
                    "rising points at memory wearing out.",
                    fix="Watch the count over weeks.",
                    gpus=[g.index],
                )
            )
        if h.ecc_enabled is False:
            found.append(
                Finding(
                    id="ecc.disabled",
                    severity="info",
                    title=f"ECC is turned off on GPU {g.index}",
                    why="Memory errors go unnoticed (a little more memory and speed in return).",
                    fix="sudo nvidia-smi -e 1 and a reset turn it back on.",
                    gpus=[g.index],
                )
            )
    if not any(f.severity in ("warning", "error") for f in found):
        found.append(
            with_gaps(ok("ecc", "No uncorrectable ECC error"), gpus_without(d, ("ecc_enabled",)))
        )
    return found


def check_memory(d: DoctorInput) -> list[Finding]:
    if not d.rig.gpus:
        return [skipped("memory", "no GPU")]
    fields = (
        "remapped_rows_correctable",
        "remapped_rows_uncorrectable",
        "remapped_rows_pending",
        "remapped_rows_failed",
        "retired_pages_single_bit",
        "retired_pages_double_bit",
        "retired_pages_pending",
    )
    missing = _all_missing(d, "memory", fields)
    if missing:
        return [missing]
    found: list[Finding] = []
    for g in d.rig.gpus:
        h = d.gpu_health(g.index)
        evidence = {f: getattr(h, f) for f in fields if getattr(h, f) is not None}
        if h.remapped_rows_failed:
            found.append(
                Finding(
                    id="memory.remap_failed",
                    severity="error",
                    title="{gpus}: a failing memory row could not be remapped",
                    evidence=evidence,
                    why="Row remapping ran out of spare rows: bad memory stays in use and "
                    "uncorrectable errors will recur (Xid 64).",
                    fix="The GPU needs service (RMA); keep it out of jobs meanwhile.",
                    gpus=[g.index],
                )
            )
        if h.remapped_rows_pending or h.retired_pages_pending:
            found.append(
                Finding(
                    id="memory.remap_pending",
                    severity="warning",
                    title="{gpus}: a memory "
                    + ("row remap" if h.remapped_rows_pending else "page retirement")
                    + " waiting for a reset",
                    evidence=evidence,
                    why="The faulty memory stays in use until the GPU is reset (Xid 63).",
                    fix=f"When the GPU is idle: sudo nvidia-smi -r -i {g.index} (or reboot).",
                    gpus=[g.index],
                )
            )
        unc = (h.remapped_rows_uncorrectable or 0) + (h.retired_pages_double_bit or 0)
        corr = (h.remapped_rows_correctable or 0) + (h.retired_pages_single_bit or 0)
        if unc or corr:
            found.append(
                Finding(
                    id="memory.rows_remapped",
                    severity="warning" if unc else "info",
                    title=f"{{gpus}}: {unc + corr} memory rows or pages replaced "
                    f"({unc} after uncorrectable errors)",
                    evidence=evidence,
                    why="The GPU swapped out memory that failed; it keeps working, but "
                    "uncorrectable ones mean jobs already hit bad data.",
                    fix="Watch the counts; NVIDIA's guidance is service when remapping "
                    "fails or errors keep coming.",
                    gpus=[g.index],
                )
            )
    if not any(f.severity in ("warning", "error") for f in found):
        found.append(
            with_gaps(
                ok("memory", "No failed or pending memory remapping"), gpus_without(d, fields)
            )
        )
    return found


# --- throttling and temperature --------------------------------------------------------------


def check_throttle(d: DoctorInput) -> list[Finding]:
    if not d.rig.gpus:
        return [skipped("throttle", "no GPU")]
    missing = _all_missing(d, "throttle", ("throttle_reasons", "violation_s"))
    if missing:
        return [missing]
    found: list[Finding] = []
    for g in d.rig.gpus:
        h = d.gpu_health(g.index)
        active = {r.name for r in decode(h.throttle_reasons or 0)}
        spent = {k: v for k, v in (h.violation_s or {}).items() if v >= VIOLATION_MIN_S}
        evidence: dict[str, Any] = {
            "active_now": sorted(active),
            "seconds_since_driver_load": {k: round(v, 1) for k, v in spent.items()},
        }
        before = len(found)
        if "hw_power_brake" in active or "hw_power_brake" in spent:
            found.append(
                Finding(
                    id="throttle.power_brake",
                    severity="error",
                    title="{gpus}: slowed by the hardware power brake",
                    evidence=evidence,
                    why="The board's power-brake input was asserted (by the PSU or the "
                    "server's power controller): the GPU drops to a fraction of its clock.",
                    fix="Check the power supply: capacity for all GPUs' peaks, a failed or "
                    "missing redundant PSU, loose 12 V cables; the BMC's event log says "
                    "who asserted it.",
                    gpus=[g.index],
                )
            )
        thermal = active & {"hw_thermal", "sw_thermal"} or {
            k for k in spent if k in ("thermal", "hw_thermal", "sw_thermal")
        }
        if thermal:
            found.append(
                Finding(
                    id="throttle.thermal",
                    severity="warning",
                    title="{gpus}: slowed down for heat"
                    + (" now" if active & {"hw_thermal", "sw_thermal"} else ""),
                    evidence={**evidence, "temperature_c": h.temperature_c},
                    why="At its thermal limit the GPU cuts its clocks: the job runs slower "
                    "than the hardware can.",
                    fix="Airflow and cooler contact: fans, dust, a case that recirculates hot "
                    "air, a heatsink not seated evenly (the V100 server write-up's hot GPU "
                    "had an "
                    "under-torqued heatsink), old thermal paste.",
                    gpus=[g.index],
                )
            )
        elif "hw_slowdown" in active and "hw_power_brake" not in active:
            found.append(
                Finding(
                    id="throttle.hw_slowdown",
                    severity="warning",
                    title="{gpus}: in hardware slowdown",
                    evidence=evidence,
                    why="Hardware slowdown halves the clock or more: temperature, a power "
                    "brake, or power draw spiking past what the board allows.",
                    fix="Check temperature and the power supply (cables, capacity).",
                    gpus=[g.index],
                )
            )
        capped = bool(
            g.power_limit_w
            and g.power_default_limit_w
            and g.power_limit_w < g.power_default_limit_w - 0.5
        )
        if "power" in spent and len(found) == before and capped:
            found.append(
                Finding(
                    id="throttle.power_cap",
                    severity="info",
                    title="{gpus}: at the power limit for "
                    f"{spent['power']:.0f} s since the driver loaded",
                    evidence=evidence,
                    why="The power limit, set below default, holds the clocks down under "
                    "load: the price of the cap (see the power check).",
                    gpus=[g.index],
                )
            )
    if not any(f.severity in ("warning", "error") for f in found):
        found.append(
            with_gaps(
                ok("throttle", "No thermal or power-brake slowdown"),
                gpus_without(d, ("throttle_reasons", "violation_s")),
            )
        )
    return found


BUSY_PCT, IDLE_PCT = 50, 10  # utilisation that counts as busy / idle


def _load_state(d: DoctorInput, index: int, limit_w: float | None) -> str | None:
    """ "busy", "idle" or None (in between, or not known) when the readings were taken:
    utilisation, else power draw against the limit."""
    h = d.gpu_health(index)
    u: float
    if h.utilization_pct is not None:
        u = h.utilization_pct
    elif h.power_draw_w is not None and limit_w:
        u = 100 * h.power_draw_w / limit_w
    else:
        return None
    if u >= BUSY_PCT:
        return "busy"
    if u <= IDLE_PCT:
        return "idle"
    return None


def check_temperature(d: DoctorInput) -> list[Finding]:
    if not d.rig.gpus:
        return [skipped("temperature", "no GPU")]
    missing = _all_missing(d, "temperature", ("temperature_c", "memory_temperature_c"))
    if missing:
        return [missing]
    found: list[Finding] = []
    temps: dict[str, int] = {}
    for g in d.rig.gpus:
        h = d.gpu_health(g.index)
        t, slow = h.temperature_c, h.temperature_slowdown_c
        if t is not None:
            temps[f"GPU {g.index}"] = t
        if t is not None and slow and t >= slow - HOT_MARGIN_C:
            found.append(
                Finding(
                    id="temperature.gpu_hot",
                    severity="error" if t >= slow else "warning",
                    title=f"{{gpus}}: {t} °C; the GPU slows down at {slow} °C",
                    evidence={
                        "temperature_c": t,
                        "slowdown_c": slow,
                        "shutdown_c": h.temperature_shutdown_c,
                    },
                    why="At the slowdown temperature the GPU cuts its clocks; near shutdown "
                    "it stops.",
                    fix="Improve airflow and cooler contact (fans, dust, paste, heatsink "
                    "mounting); a passive datacenter card needs server-grade airflow.",
                    gpus=[g.index],
                )
            )
        mt, mmax = h.memory_temperature_c, h.memory_temperature_max_c
        if mt is not None and mmax and mt >= mmax - HOT_MARGIN_C:
            found.append(
                Finding(
                    id="temperature.memory_hot",
                    severity="error" if mt >= mmax else "warning",
                    title=f"{{gpus}}: memory at {mt} °C; its limit is {mmax} °C",
                    evidence={"memory_temperature_c": mt, "memory_max_c": mmax},
                    why="Memory at its limit throttles the GPU and wears faster; hot memory "
                    "is where ECC errors start.",
                    fix="More airflow over the card (HBM sits under the same heatsink as the "
                    "GPU; GDDR6X on consumer cards needs its pads in contact, the 3×3090 "
                    "ex-mining rig write-up saw "
                    "104 °C against a 110 °C limit).",
                    gpus=[g.index],
                )
            )
    for name, gs in d.same_model_groups().items():
        states = {g.index: _load_state(d, g.index, g.power_limit_w) for g in gs}
        readings = {
            g.index: t
            for g in gs
            if (t := d.gpu_health(g.index).temperature_c) is not None
            and states[g.index] is not None
        }
        if len(readings) < 2:
            continue
        for i, t in readings.items():
            # only GPUs doing the same (idle or busy): a busy GPU is rightly hotter
            others = [v for j, v in readings.items() if j != i and states[j] == states[i]]
            if not others:
                continue
            median = statistics.median(others)
            if t >= OUTLIER_MIN_C and t - median >= OUTLIER_C:
                found.append(
                    Finding(
                        id="temperature.outlier",
                        severity="warning",
                        title=f"{{gpus}}: {t - median:.0f} °C hotter than the other "
                        f"{name} GPUs ({t} °C against {median:.0f} °C)",
                        evidence={
                            "temperatures_c": readings,
                            "load": {k: v for k, v in states.items() if k in readings},
                        },
                        source=(
                            "the V100 server write-up (V100 SXM2 server, GPU 2's under-torqued"
                            " heatsink)"
                        ),
                        origin="reading",
                        why="Identical GPUs in one machine should run within a few degrees; "
                        "one much hotter has a cooling problem of its own and will throttle "
                        "first, holding back every data-parallel step.",
                        fix="Check that GPU's cooler: the V100 server write-up's GPU in "
                        "position 2 ran hot "
                        "from an incorrectly torqued heatsink and tightening it fixed it; "
                        "else its fan, dust, paste or a blocked air path.",
                        gpus=[i],
                    )
                )
    if not any(f.severity in ("warning", "error") for f in found):
        found.append(
            with_gaps(
                ok("temperature", "Temperatures well below their limits", temps),
                gpus_without(d, ("temperature_c", "memory_temperature_c")),
            )
        )
    return found


# --- power and clocks -------------------------------------------------------------------------


def check_power(d: DoctorInput) -> list[Finding]:
    if not d.rig.gpus:
        return [skipped("power", "no GPU")]
    known = [g for g in d.rig.gpus if g.power_limit_w is not None]
    if not known:
        reason = d.rig.gpus[0].unavailable.get("power_limit_w", "not read")
        return [skipped("power", f"power limits not available: {reason}")]
    found: list[Finding] = []
    low = [
        g
        for g in known
        if g.power_default_limit_w
        and g.power_limit_w is not None
        and g.power_limit_w < g.power_default_limit_w - 0.5
    ]
    if low:
        ratios = {g.index: g.power_limit_w / g.power_default_limit_w for g in low}  # type: ignore[operator]
        worst = min(ratios.values())
        found.append(
            Finding(
                id="power.below_default",
                severity="warning" if worst < POWER_LOW_RATIO else "info",
                title="Power limit below default on "
                + "; ".join(
                    f"GPU {g.index} {g.power_limit_w:g} of {g.power_default_limit_w:g} W"
                    for g in low
                ),
                evidence={
                    f"GPU {g.index}": {
                        "limit_w": g.power_limit_w,
                        "default_w": g.power_default_limit_w,
                    }
                    for g in low
                },
                why="A lower cap trades speed for power: a moderate cap (70-85 %) costs a few "
                "percent (the 3×3090 rig write-up ran its 3090s at 285 of 350 W, 'a "
                "couple of percentage "
                "slower'); a deep one costs much more"
                + (f" ({worst:.0%} of default here)." if worst < POWER_LOW_RATIO else ".")
                + " Often set on purpose against PSU trips.",
                fix="If not on purpose: sudo nvidia-smi -pl <watts> -i <gpu> (the default is "
                "shown above); a cap left over from a previous owner (mining) is common.",
                gpus=[g.index for g in low],
            )
        )
    for name, gs in d.same_model_groups().items():
        limits = {g.index: g.power_limit_w for g in gs if g.power_limit_w is not None}
        if len(limits) > 1 and max(limits.values()) - min(limits.values()) > POWER_UNEVEN_W:
            found.append(
                Finding(
                    id="power.uneven",
                    severity="warning",
                    title=f"The {name} GPUs have different power limits: "
                    + ", ".join(f"GPU {i} {w:g} W" for i, w in limits.items()),
                    evidence={"limits_w": limits},
                    why="A data-parallel step waits for the slowest GPU: the lowest limit "
                    "sets the pace and the others' extra watts buy nothing.",
                    fix="Give them the same limit: sudo nvidia-smi -pl <watts> (all GPUs).",
                    gpus=sorted(limits),
                )
            )
    if not found:
        found.append(
            ok(
                "power",
                "Power limits at default and equal across identical GPUs",
                {f"GPU {g.index}": g.power_limit_w for g in known},
            )
        )
    return found


def check_clocks(d: DoctorInput) -> list[Finding]:
    if not d.rig.gpus:
        return [skipped("clocks", "no GPU")]
    found: list[Finding] = []
    read_any = False
    for g in d.rig.gpus:
        h = d.gpu_health(g.index)
        app = (h.app_clock_sm_mhz, h.app_clock_mem_mhz)
        default = (h.default_app_clock_sm_mhz, h.default_app_clock_mem_mhz)
        held = "applications_clocks" in {r.name for r in decode(h.throttle_reasons or 0)}
        locked = h.locked_sm_clock_mhz
        top = g.sm_clock_max_mhz
        if locked and top and locked[1] < top:
            read_any = True
            deep = locked[1] < LOCK_DEEP_RATIO * top
            found.append(
                Finding(
                    id="clocks.locked_range",
                    severity="warning" if deep else "info",
                    title=f"{{gpus}}: SM clock locked to {locked[0]}-{locked[1]} MHz "
                    f"(the GPU boosts to {top} MHz)",
                    evidence={"locked_sm_mhz": locked, "sm_max_mhz": top},
                    why="nvidia-smi -lgc caps every kernel's clock: a deliberate trade of "
                    "speed for power or stability (the V100 server write-up measured ~13 % slower"
                    " training "
                    "at 1005 MHz on V100s), or a leftover from a test.",
                    fix="If it is not on purpose: sudo nvidia-smi -rgc -i <gpu>.",
                    source=(
                        "the V100 server write-up (V100 SXM2 server); nvidia-smi documentation"
                        " (-lgc, -rgc)"
                    ),
                    origin="reading",
                    gpus=[g.index],
                )
            )
        if all(v is None for v in app) and h.throttle_reasons is None:
            continue
        read_any = True
        lower = [
            (kind, a, b)
            for kind, a, b in (("SM", app[0], default[0]), ("memory", app[1], default[1]))
            if a is not None and b is not None and a < b
        ]
        if lower or held:
            text = ", ".join(f"{kind} {a} MHz (default {b})" for kind, a, b in lower)
            found.append(
                Finding(
                    id="clocks.locked",
                    severity="warning",
                    title="{gpus}: clocks held down"
                    + (f": application clocks {text}" if text else " by a clock setting"),
                    evidence={
                        "app_clocks_mhz": app,
                        "default_app_clocks_mhz": default,
                        "driver_reports_clock_setting_active": held,
                    },
                    why="Every kernel runs at most at that clock. The V100 server write-up set"
                    " 1005 MHz on its V100s on purpose to stop power-sag bus drops and measured"
                    " a ~13 % drop in training speed for it.",
                    source="the V100 server write-up (V100 SXM2 server: nvidia-smi -ac 877,1005,"
                    " '~13% decline in training speed')",
                    origin="reading",
                    fix="If it is not on purpose: sudo nvidia-smi -rac (application clocks) "
                    "and sudo nvidia-smi -rgc (locked GPU clocks).",
                    gpus=[g.index],
                )
            )
    if not read_any:
        reasons = [
            (g.index, unknown(d.gpu_health(g.index), "app_clock_sm_mhz")) for g in d.rig.gpus
        ]
        why = common_reason(reasons) if reasons else "no GPU"
        if not d.simulated:
            why += " (and NVML does not report clocks locked with nvidia-smi -lgc)"
        return [skipped("clocks", why)]
    if not found:
        found.append(
            with_gaps(
                ok("clocks", "No application-clock or clock-lock setting holds the GPUs"),
                gpus_without(d, ("app_clock_sm_mhz", "throttle_reasons")),
            )
        )
    return found


# --- fans, BAR1 and VBIOS ----------------------------------------------------------------------

FAN_STOPPED_HOT_C = 80  # zero-RPM modes stop fans only at low temperature (~50-60 C)
REBAR_SOURCE = (
    "tinygrad/open-gpu-kernel-modules README (the GeForce P2P patch needs large BAR1); NVIDIA "
    "GPUDirect RDMA documentation (BAR1 maps GPU memory for peers)"
)


def check_sanity(d: DoctorInput) -> list[Finding]:
    """Readings that contradict each other: a stopped fan on a hot GPU, identical GPUs on
    different VBIOS versions, a small BAR1 (resizable BAR off)."""
    if not d.rig.gpus:
        return [skipped("sanity", "no GPU")]
    fields = ("fan_speed_pct", "bar1_total_mib", "vbios_version", "power_draw_w")
    missing = _all_missing(d, "sanity", fields)
    if missing:
        return [missing]
    found: list[Finding] = []
    for g in d.rig.gpus:
        h = d.gpu_health(g.index)
        if h.fan_speed_pct == 0 and (h.temperature_c or 0) >= FAN_STOPPED_HOT_C:
            found.append(
                Finding(
                    id="sanity.fan_stopped",
                    severity="warning",
                    title=f"{{gpus}}: fan at 0 % at {h.temperature_c} °C",
                    evidence={"fan_speed_pct": 0, "temperature_c": h.temperature_c},
                    why="Fans stop only when the card is cool (zero-RPM idle); at this "
                    "temperature a fan reading 0 % has failed, is unplugged or is held by a "
                    "fan-control tool.",
                    fix="Look at the fan while the GPU is loaded; check its connector and any "
                    "fan-control software (nvidia-settings GPUFanControlState).",
                    origin="reading",
                    gpus=[g.index],
                )
            )
        mem_mib = (g.memory_total_bytes or 0) >> 20
        if h.bar1_total_mib is not None and h.bar1_total_mib <= 256 < mem_mib:
            found.append(
                Finding(
                    id="sanity.small_bar1",
                    severity="info",
                    title=f"{{gpus}}: BAR1 is {h.bar1_total_mib} MiB (resizable BAR off)",
                    evidence={"bar1_total_mib": h.bar1_total_mib, "memory_mib": mem_mib},
                    why="Training does not need it; GPUDirect RDMA and the community P2P "
                    "patches for GeForce cards map GPU memory through BAR1 and need it large.",
                    fix="Only if you need those: enable Above 4G Decoding and Resizable BAR in "
                    "the BIOS.",
                    source=REBAR_SOURCE,
                    origin="reading",
                    gpus=[g.index],
                )
            )
    busy = [g.index for g in d.rig.gpus if (d.gpu_health(g.index).utilization_pct or 0) >= BUSY_PCT]
    if busy:
        found.append(
            Finding(
                id="sanity.gpu_busy",
                severity="info",
                title=f"{gpus_text(busy)} busy when read: another job runs there",
                evidence={
                    f"GPU {i}": {
                        "utilization_pct": d.gpu_health(i).utilization_pct,
                        "power_draw_w": d.gpu_health(i).power_draw_w,
                    }
                    for i in busy
                },
                why="Its temperatures, clocks and power are those of that job, and doctor's "
                "probes share the GPU with it: a slow copy there is not a fault by itself.",
                origin="reading",
                gpus=busy,
            )
        )
    for name, gs in d.same_model_groups().items():
        versions = {
            g.index: v for g in gs if (v := d.gpu_health(g.index).vbios_version) is not None
        }
        if len(set(versions.values())) > 1:
            found.append(
                Finding(
                    id="sanity.mixed_vbios",
                    severity="info",
                    title=f"The {name} GPUs run different VBIOS versions",
                    evidence={"vbios": versions},
                    why="Different boards or flashes of one model can differ in power limits "
                    "and clocks: a reason one of them behaves differently.",
                    origin="reading",
                    gpus=sorted(versions),
                )
            )
    if not any(f.severity in ("warning", "error") for f in found):
        found.append(
            with_gaps(
                ok("sanity", "Fans, BAR1 and VBIOS readings consistent"), gpus_without(d, fields)
            )
        )
    return found
