"""What an owner's job did to the rig, as findings: GPUs lost or reporting Xids, throttling
that costs speed and why, VRAM above its range (judge.vram), GPUs mostly idle (a note: the
job is input-bound, nothing is wrong with the rig), and with a build file the measured peaks
against its PSUs and circuits (burnin.build's comparison).
"""

from __future__ import annotations

from rigbench.hw.telemetry import GpuChannel
from rigbench.hw.throttle import REASONS
from rigbench.hw.xid import xid_info
from rigbench.judge.vram import vram_findings
from rigbench.records import Finding
from rigbench.telemetry.aggregate import AggregateView
from rigbench.telemetry.job import JobReport, JobSeries

# Throttling that a healthy, cooled GPU under load does not show (the power cap is normal
# under full load and is a note). Half a second in total, as burn-in's verdict requires.
COSTLY = ("sw_thermal", "hw_thermal", "hw_slowdown", "hw_power_brake")
COSTLY_MIN_S = 0.5
# "Mostly idle": busy less than half the time the job ran.
IDLE_UTIL_PCT = 50.0
WORDS = {r.name: r.words for r in REASONS}


def job_findings(
    report: JobReport,
    channels: list[GpuChannel],
    view: AggregateView,
    *,
    series: JobSeries | None = None,
) -> list[Finding]:
    out: list[Finding] = []
    by_gpu = {g.gpu: g for g in report.gpus}
    for e in report.events:
        if e.kind == "xid" and e.code is not None:
            info = xid_info(e.code)
            out.append(
                Finding(
                    id=f"xid.{e.code}",
                    severity="error",
                    title=f"GPU {e.gpu}: Xid {e.code} at t={e.t:.1f} s during the job",
                    evidence={"t_s": e.t, "xid": e.code},
                    why=info.meaning,
                    fix=info.action,
                    origin="reading",
                    gpus=[e.gpu],
                )
            )
    for ch in channels:
        g = by_gpu.get(ch.gpu)
        agg = view.gpus.get(ch.gpu)
        if g is None:
            continue
        if g.lost_at is not None:
            out.append(
                Finding(
                    id="gpu.lost",
                    severity="error",
                    title=f"GPU {ch.gpu} fell off the bus at t={g.lost_at:.1f} s",
                    evidence={"lost_at_s": g.lost_at},
                    why="the driver lost the GPU: the job on it failed or hung",
                    fix="check power transients (PSU, cables), the riser and the card's seating",
                    origin="reading",
                    gpus=[ch.gpu],
                )
            )
        costly_s = {
            n: s for n, s in (agg.throttle_s.items() if agg else []) if n in COSTLY and s > 0
        }
        total = sum(costly_s.values())
        if total >= COSTLY_MIN_S:
            share = total / g.watched_s if g.watched_s else None
            words = ", ".join(WORDS[n] for n in costly_s)
            out.append(
                Finding(
                    id="throttle.costly",
                    severity="warning",
                    title=f"GPU {ch.gpu} throttled for {total:.1f} s"
                    + (f" ({100 * share:.0f} % of the job)" if share is not None else "")
                    + f": {words}",
                    evidence={"throttle_s": costly_s, "share": share},
                    why="the GPU slowed its clocks to protect itself: the job ran slower than "
                    "the card can",
                    fix="thermal: more airflow, space between cards, a lower power limit; "
                    "hardware slowdown or power brake: the PSU and its cables",
                    source="NVML clocks event reasons (nvml.h)",
                    origin="measurement",
                    gpus=[ch.gpu],
                )
            )
        cap = g.throttle_share.get("sw_power_cap", 0.0)
        if cap > 0:
            limit = f" at its {ch.power_limit_w:.0f} W limit" if ch.power_limit_w else ""
            out.append(
                Finding(
                    id="throttle.power_cap",
                    severity="info",
                    title=f"GPU {ch.gpu} power-capped{limit} {100 * cap:.0f} % of the job",
                    evidence={"share": cap, "power_limit_w": ch.power_limit_w},
                    why="normal under full load: the card runs at its power limit",
                    origin="measurement",
                    gpus=[ch.gpu],
                )
            )
        out.extend(vram_findings(ch, agg))
    utils = [(g.gpu, g.util_mean_pct) for g in report.gpus if g.util_mean_pct is not None]
    idle = [(gpu, u) for gpu, u in utils if u < IDLE_UTIL_PCT]
    if idle:
        out.append(
            Finding(
                id="job.gpus_idle",
                severity="info",
                title="GPU "
                + ", ".join(f"{gpu} busy {u:.0f} %" for gpu, u in idle)
                + " of the time: mostly idle",
                evidence={"util_mean_pct": dict(idle)},
                why="the job is likely input-bound (data loading, CPU preprocessing, I/O) or "
                "runs on fewer GPUs than the rig has; nothing is wrong with the rig",
                fix="more data-loader workers, pinned memory, data on a faster disk, or a "
                "larger batch",
                origin="measurement",
                gpus=[gpu for gpu, _ in idle],
            )
        )
    return out
