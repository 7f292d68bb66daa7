"""The burn-in's verdict: per GPU and for the rig, pass or fail with reasons (pure functions
of what was measured; no hardware, no I/O).

A GPU fails for: an Xid; falling off the bus; its load worker erroring, hanging or dying;
wrong results (a matmul checksum that changes over time, differs from the other GPUs of its
model, or a first product off its float64 reference; a device copy that does not match);
a median matmul rate more than SLOWER_LIMIT below the best GPU of the same model (not
judged on CPU stand-ins, which share the host's cores); thermal or hardware (power-brake)
slowdown for THROTTLE_FAIL_S or more; a power cap that holds its SM clock more than
CLOCK_GAP_LIMIT below the same model's best while the others run free; SM clocks under
sustained load falling by more than CLOCK_FALL_LIMIT from the start of the run to its end;
a temperature at or over the limit the GPU reports; ECC error counts rising. Warnings (not
a failure): within TEMP_MARGIN_C of a limit, GDDR6/GDDR6X VRAM kept at its limit
(judge.vram), PCIe replays rising, an instantaneous power peak above the power limit. The
rig fails when a GPU fails, when all_reduce across the GPUs failed (wrong sums, a hang), or
when a build file's PSU or circuit is exceeded.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from rigbench.catalog.gpus import find_gpu
from rigbench.catalog.spikes import DEFAULT_SPIKE_FACTOR, spike_factor
from rigbench.hw.telemetry import GpuChannel, TelemetryEvent
from rigbench.hw.throttle import REASONS
from rigbench.hw.xid import xid_info
from rigbench.judge.vram import vram_findings
from rigbench.records import Finding
from rigbench.records import Severity as FindingSeverity
from rigbench.telemetry.aggregate import GpuAggregate

Severity = Literal["fail", "warn", "info"]
# void: nothing was tested (no checked matmul finished in a sustained phase: a run too short,
# or stopped before the load began), so neither pass nor fail can be said.
Verdict = Literal["pass", "fail", "void"]

# Each threshold's source, or "unknown" with why the value was kept (pinned commits of the
# repositories cited: docs/references.md, "Burn-in thresholds").
#
# A GPU whose checked matmul rate is this far below the best GPU of its model fails: the
# default of gpu-fryer's --tflops-tolerance, which compares with the best GPU too
# (huggingface/gpu-fryer src/main.rs L73-76, L610-616). GPUs of one SKU vary about 8 % on
# average (Sinha et al., "Not All GPUs Are Created Equal", SC22, arXiv 2208.11035), so a
# tighter limit would fail healthy parts.
SLOWER_LIMIT = 0.10
# Seconds of thermal slowdown or HW slowdown / power brake under load that fail a GPU. DCGM's
# diagnostic fails on any sample of these reasons (NVIDIA/DCGM nvvs/src/DcgmRecorder.cpp
# L956-1020), as gpu-fryer does; NVML may set HW slowdown for a moment during a P-state
# change (dcgm_fields.h: "may be also reported during PState or clock change"), so 0.5 s
# (25 samples at 50 Hz) ignores a lone flag and nothing longer.
THROTTLE_FAIL_S = 0.5
# A power-capped GPU's SM clock this far below the best GPU of its model fails: DCGM's
# diagnostic has the check (clocks_tolerance_pcnt, SM clock against the peers' mean; off by
# default, PluginStrings.h L330) and gpu-fryer's 10 % on throughput (SLOWER_LIMIT) sizes it:
# under a cap the clock sets the matmul rate.
CLOCK_GAP_LIMIT = 0.10
# Unknown: the share of sustained-load samples with the power cap set before a clock gap is
# put down to the cap (a majority). DCGM's failure mask and Azure's health checks treat the
# power cap alone as benign (DcgmRecorder.cpp L956; azurehpc-health-checks
# customTests/azure_gpu_clock_throttling.nhc); it never fails a GPU by itself.
CAPPED_SHARE = 0.5
# Unknown: no published drift limit. Healthy heat soak moves clocks 1-2 % (Llama 3 paper,
# arXiv 2407.21783 s. 3.3.4: "a diurnal 1-2% throughput variation" from DVFS); a 15 % fall
# over one run is cooling or power delivery failing, not drift.
CLOCK_FALL_LIMIT = 0.15
# Unknown, and a warning only: NVML reports the distance to the slowdown temperature (DCGM
# field 153) but NVIDIA gives no warning band; 5 degC is a warmer room or a longer soak away.
TEMP_MARGIN_C = 5.0
# A 1 s-average power reading over the limit by more than NVML's stated accuracy of the
# reading ("+/- 5% of current power draw", nvmlDeviceGetPowerUsage) means the limiter is not
# holding. Instantaneous peaks are judged against the spike factor instead (_power_peak).
POWER_OVER_LIMIT = 1.05

THERMAL = ("sw_thermal", "hw_thermal")
BRAKE = ("hw_slowdown", "hw_power_brake")
WORDS = {r.name: r.words for r in REASONS}


# A burn-in's findings are the judgement layer's one type, rigbench.records.Finding, with
# ids "burnin.<code>" (xid, lost, worker, wrong_result, slower, thermal, power_brake,
# power_cap, clocks_falling, temperature, ecc, pcie_replay, power_peak, all_reduce, psu,
# circuit, ...). The --json keeps the documented `reasons` (code, severity fail / warn /
# info, message) beside `findings`: `reason_dict` reads them off the Finding.
FINDING_SEVERITY: dict[Severity, FindingSeverity] = {
    "fail": "error",
    "warn": "warning",
    "info": "info",
}
REASON_SEVERITY: dict[FindingSeverity, Severity] = {v: k for k, v in FINDING_SEVERITY.items()}


def finding(*, code: str, severity: Severity, message: str) -> Finding:
    """A burn-in finding, measured: `code` is its id without the "burnin." prefix."""
    return Finding(
        id=f"burnin.{code}",
        severity=FINDING_SEVERITY[severity],
        title=message,
        origin="measurement",
    )


def code_of(f: Finding) -> str:
    """The burn-in reason code of a finding ("burnin.thermal" -> "thermal")."""
    return f.id.split(".", 1)[1]


def any_failure(findings: list[Finding]) -> bool:
    return any(f.severity == "error" for f in findings)


def reason_dict(f: Finding) -> dict[str, Any]:
    """The finding as the --json `reasons` entry: code, severity (fail, warn, info), message."""
    return {"code": code_of(f), "severity": REASON_SEVERITY[f.severity], "message": f.title}


@dataclass(kw_only=True, slots=True)
class LoadEvidence:
    """What a device's load worker reported (burnin.coordinator.WorkerOutcome, flattened)."""

    status: str
    error: str | None = None
    error_t: float | None = None
    gemm_tflops: list[float] = field(default_factory=list)  # sustained gemm phases only
    memory_gbps: list[float] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)
    checksum: int | None = None
    checks: int = 0
    dtype: str | None = None
    n: int | None = None


@dataclass(kw_only=True, slots=True)
class VramEvidence:
    """One device's VRAM pattern test after the load (bench.vram's result, flattened)."""

    status: str  # ok, failed, skipped
    reason: str | None = None  # the failure's code: wrong_data, hang, crash, oom, ...
    message: str | None = None
    bad_words: int | None = None
    bytes_tested: int | None = None
    bad_ranges: list[dict[str, Any]] = field(default_factory=list)  # bench.vram.BadRange
    bad_ranges_total: int = 0
    seconds: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(kw_only=True, slots=True)
class DeviceEvidence:
    label: str
    name: str
    gpu: int | None  # None for a CPU stand-in of a machine without GPUs
    stand_in: bool
    load: LoadEvidence
    channel: GpuChannel | None = None
    agg: GpuAggregate | None = None
    events: list[TelemetryEvent] = field(default_factory=list)
    # SM clock (MHz) under sustained load, in time order, and the share of those samples
    # with the power cap set
    sustained_clocks: list[float] = field(default_factory=list)
    capped_share: float | None = None
    vram: VramEvidence | None = None  # None: the VRAM test was not run


@dataclass(kw_only=True, slots=True)
class DeviceVerdict:
    label: str
    name: str
    gpu: int | None
    verdict: Verdict
    reasons: list[Finding]  # each with gpus=[gpu]
    figures: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "name": self.name,
            "gpu": self.gpu,
            "verdict": self.verdict,
            "reasons": [reason_dict(r) for r in self.reasons],
            "findings": [r.to_dict() for r in self.reasons],
            "figures": self.figures,
        }

    @property
    def gpus(self) -> list[int]:
        return [self.gpu] if self.gpu is not None else []


@dataclass(kw_only=True, slots=True)
class RigVerdict:
    verdict: Verdict
    reasons: list[Finding]
    devices: list[DeviceVerdict]
    totals: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "reasons": [reason_dict(r) for r in self.reasons],
            "findings": [r.to_dict() for r in self.reasons]
            + [r.to_dict() for d in self.devices for r in d.reasons],
            "gpus": [d.to_dict() for d in self.devices],
            "totals": self.totals,
        }


def _median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def _t(t: float | None) -> str:
    return f" at t={t:.1f} s" if t is not None else ""


def _figures(d: DeviceEvidence) -> dict[str, Any]:
    a, ch = d.agg, d.channel
    f: dict[str, Any] = {
        "gemm_tflops_median": _median(d.load.gemm_tflops),
        "gemm_batches": len(d.load.gemm_tflops),
        "gemm_dtype": d.load.dtype,
        "gemm_n": d.load.n,
        "memory_gbps_median": _median(d.load.memory_gbps),
        "checks": d.load.checks,
        "checksum": f"{d.load.checksum:08x}" if d.load.checksum is not None else None,
        "load_status": d.load.status,
    }
    if d.vram is not None:
        f["vram"] = d.vram.to_dict()
    if a is not None:
        f.update(
            samples=a.samples,
            power_peak_w=a.power.value,
            power_peak_t=a.power.t,
            power_peak_kind=(ch.power_instant_kind or ch.power_avg_kind) if ch else None,
            power_avg_1s_peak_w=a.power_avg.value,
            power_mean_w=a.power_mean.value,
            energy_avg_w=a.energy_avg_w,
            power_rise_w=a.rise.rise,
            power_rise_window_s=a.rise.window_s,
            temp_gpu_peak_c=a.temp_gpu.value,
            temp_mem_peak_c=a.temp_mem.value,
            sm_clock_sustained_median_mhz=_median(d.sustained_clocks),
            sm_clock_min_mhz=a.sm_clock_min,
            sm_clock_max_mhz=a.sm_clock_max,
            throttle_s=dict(a.throttle_s),
            throttle_harmful_s=a.throttle_any_s(THERMAL + BRAKE + ("sw_power_cap",)),
            power_capped_share=d.capped_share,
            lost_at=a.lost_at,
        )
    if ch is not None:
        f["power_limit_w"] = ch.power_limit_w
        f["unavailable"] = dict(ch.unavailable)
    return f


def vram_reasons(v: VramEvidence) -> list[Finding]:
    """Bad words fail the GPU, with the first ranges; a test that hung or killed its worker
    fails it too (memory that hangs a kernel is not memory to train on); one that could not
    allocate or was skipped is said, not judged."""
    if v.status == "ok":
        took = f" in {v.seconds:.1f} s" if v.seconds is not None else ""
        tested = f"{(v.bytes_tested or 0) / 2**30:.2f} GiB"
        return [
            finding(
                code="vram",
                severity="info",
                message=f"VRAM patterns over {tested}{took}: 0 bad words",
            )
        ]
    if v.reason == "wrong_data":
        where = ", ".join(
            f"{r.get('address_hex') or 'buffer+' + str(r.get('offset_hex'))} "
            f"({r.get('length')} bytes)"
            for r in v.bad_ranges[:3]
        )
        more = f" (+{v.bad_ranges_total - 3} more)" if v.bad_ranges_total > 3 else ""
        return [
            finding(
                code="vram",
                severity="fail",
                message=f"VRAM: {v.bad_words} bad words in {v.bad_ranges_total} range(s), "
                f"at {where}{more}: the memory does not hold what is written",
            )
        ]
    if v.reason in ("hang", "crash"):
        return [finding(code="vram", severity="fail", message=f"VRAM test: {v.message}")]
    return [finding(code="vram", severity="info", message=f"VRAM test not judged: {v.message}")]


def _judge_device(d: DeviceEvidence, peers: list[DeviceEvidence]) -> list[Finding]:
    reasons: list[Finding] = vram_reasons(d.vram) if d.vram is not None else []
    a, ch = d.agg, d.channel
    # Events and a lost GPU
    seen_xid: set[int] = set()
    for e in d.events:
        if e.kind == "xid" and e.code is not None and e.code not in seen_xid:
            seen_xid.add(e.code)
            info = xid_info(e.code)
            n = sum(1 for x in d.events if x.kind == "xid" and x.code == e.code)
            times = f" ({n} times)" if n > 1 else ""
            reasons.append(
                finding(
                    code="xid",
                    severity="fail",
                    message=f"Xid {e.code}{_t(e.t)}{times}: {info.meaning}; {info.action}",
                )
            )
        elif e.kind == "ecc_uncorrected":
            reasons.append(finding(code="ecc", severity="fail", message=f"{e.message}{_t(e.t)}"))
    lost_t = a.lost_at if a is not None else None
    lost_t = next((e.t for e in d.events if e.kind in ("lost", "unavailable")), lost_t)
    if lost_t is not None:
        reasons.append(
            finding(
                code="lost",
                severity="fail",
                message=f"fell off the bus{_t(lost_t)}: no telemetry after it"
                + ("" if 79 in seen_xid else " (check power transients, PSU, riser, seating)"),
            )
        )
    # The load worker
    if d.load.status == "failed":
        reasons.append(
            finding(
                code="worker",
                severity="fail",
                message=f"load worker failed{_t(d.load.error_t)}: {d.load.error}",
            )
        )
    for w in d.load.wrong[:3]:
        reasons.append(finding(code="wrong_result", severity="fail", message=w))
    if len(d.load.wrong) > 3:
        reasons.append(
            finding(
                code="wrong_result",
                severity="fail",
                message=f"{len(d.load.wrong) - 3} more wrong results",
            )
        )
    same = [p for p in peers if p.name == d.name and p is not d]
    if d.load.checksum is not None:
        others = [p for p in same if p.load.checksum is not None]
        agree = [p for p in others if p.load.checksum == d.load.checksum]
        differ = [p for p in others if p.load.checksum != d.load.checksum]
        if differ and len(agree) + 1 <= len(differ):
            reasons.append(
                finding(
                    code="wrong_result",
                    severity="fail",
                    message=f"matmul of the same inputs gives a different result from "
                    f"{', '.join(p.label for p in differ)} (same model)",
                )
            )
    # Speed against the same model
    mine = _median(d.load.gemm_tflops)
    if mine is not None and not d.stand_in:
        rates = [(r, p.label) for p in same if (r := _median(p.load.gemm_tflops)) is not None]
        if rates:
            best, who = max(rates)
            if best > mine and mine < (1 - SLOWER_LIMIT) * best:
                reasons.append(
                    finding(
                        code="slower",
                        severity="fail",
                        message=f"matmul {mine:.1f} TFLOP/s is {100 * (1 - mine / best):.0f} % "
                        f"below {who} ({best:.1f} TFLOP/s, same model)",
                    )
                )
    if a is None:
        return reasons
    # Throttling
    for code, names, what in (
        ("thermal", THERMAL, "thermal slowdown"),
        ("power_brake", BRAKE, "hardware slowdown / power brake"),
    ):
        secs = a.throttle_any_s(names)
        if secs >= THROTTLE_FAIL_S:
            which = ", ".join(WORDS[n] for n in names if a.throttle_s.get(n))
            reasons.append(
                finding(code=code, severity="fail", message=f"{what} for {secs:.1f} s ({which})")
            )
    capped = a.throttle_s.get("sw_power_cap", 0.0)
    my_clock = _median(d.sustained_clocks)
    if capped > 0:
        peer_clocks = [(c, p.label) for p in same if (c := _median(p.sustained_clocks)) is not None]
        best_clock = max(peer_clocks) if peer_clocks else None
        limit = f" at its {ch.power_limit_w:.0f} W limit" if ch and ch.power_limit_w else ""
        if (
            best_clock is not None
            and my_clock is not None
            and (d.capped_share or 0) >= CAPPED_SHARE
            and my_clock < (1 - CLOCK_GAP_LIMIT) * best_clock[0]
        ):
            reasons.append(
                finding(
                    code="power_cap",
                    severity="fail",
                    message=f"power cap{limit} holds the SM clock at {my_clock:.0f} MHz, "
                    f"{100 * (1 - my_clock / best_clock[0]):.0f} % below {best_clock[1]} "
                    f"({best_clock[0]:.0f} MHz, same model)",
                )
            )
        else:
            reasons.append(
                finding(
                    code="power_cap",
                    severity="info",
                    message=f"power-capped{limit} for {capped:.1f} s (normal under full load)",
                )
            )
    if (
        ch
        and ch.power_limit_w
        and ch.power_default_limit_w
        and ch.power_limit_w < ch.power_default_limit_w - 1
    ):
        reasons.append(
            finding(
                code="power_limit",
                severity="info",
                message=f"power limit {ch.power_limit_w:.0f} W is below the default "
                f"{ch.power_default_limit_w:.0f} W",
            )
        )
    # Clocks falling over the run
    clocks = d.sustained_clocks
    if len(clocks) >= 8:
        q = max(1, len(clocks) // 4)
        early, late = statistics.median(clocks[:q]), statistics.median(clocks[-q:])
        if early > 0 and late < (1 - CLOCK_FALL_LIMIT) * early:
            reasons.append(
                finding(
                    code="clocks_falling",
                    severity="fail",
                    message=f"SM clock under sustained load fell from {early:.0f} to "
                    f"{late:.0f} MHz ({100 * (1 - late / early):.0f} %)",
                )
            )
    # Temperatures
    lim = ch.limits if ch is not None else None
    for code, peak, limit_c, limit_name, what in (
        (
            "temperature",
            a.temp_gpu.value,
            (lim.gpu_max_c or lim.slowdown_c) if lim else None,
            "max operating" if lim and lim.gpu_max_c else "slowdown",
            "GPU",
        ),
        (
            "temperature",
            a.temp_mem.value,
            lim.mem_max_c if lim else None,
            "max operating",
            "memory",
        ),
    ):
        if peak is None or limit_c is None:
            continue
        if peak >= limit_c:
            reasons.append(
                finding(
                    code=code,
                    severity="fail",
                    message=f"{what} temperature reached {peak:.0f} °C, at or over its "
                    f"{limit_name} limit of {limit_c:.0f} °C",
                )
            )
        elif peak >= limit_c - TEMP_MARGIN_C:
            reasons.append(
                finding(
                    code=code,
                    severity="warn",
                    message=f"{what} temperature reached {peak:.0f} °C, within "
                    f"{TEMP_MARGIN_C:.0f} °C of its {limit_name} limit ({limit_c:.0f} °C)",
                )
            )
    # VRAM of GDDR6/GDDR6X cards (judge.vram): a warning, never a failure on its own (HBM
    # is judged above, against the limit the GPU reports)
    for f in vram_findings(ch, a) if ch is not None and ch.memory_type else []:
        if f.severity in ("warning", "info"):
            # judge.vram's finding with its why, fix and source, under the burn-in's id
            message = f"{f.title.split(': ', 1)[-1]} ({f.why}); fix: {f.fix}"
            reasons.append(replace(f, id="burnin.vram_temperature", title=message))
    # Counters
    for code, first, last, what, sev in (
        ("ecc", a.ecc_uncorrected_first, a.ecc_uncorrected_last, "uncorrected ECC errors", "fail"),
        ("ecc", a.ecc_corrected_first, a.ecc_corrected_last, "corrected ECC errors", "fail"),
        ("pcie_replay", a.replay_first, a.replay_last, "PCIe replays", "warn"),
    ):
        if first is not None and last is not None and last > first:
            reasons.append(
                finding(
                    code=code,
                    severity=sev,  # type: ignore[arg-type]
                    message=f"{what} rose by {last - first} during the run ({first} -> {last})",
                )
            )
    if (
        ch
        and ch.power_limit_w
        and a.power.value
        and a.power.value > POWER_OVER_LIMIT * ch.power_limit_w
    ):
        reasons.append(_power_peak(d.name, ch, a.power.value, a.power.t))
    return reasons


def _power_peak(name: str, ch: GpuChannel, peak: float, t: float | None) -> Finding:
    """A peak over the power limit. Healthy cards spike over it for milliseconds (the limiter
    acts on a ~100 ms average): an instantaneous peak within the spike factor `plan` sizes
    PSUs with is information; beyond it, or a 1 s average over the limit, is a warning."""
    limit = ch.power_limit_w or 0.0
    instant = ch.power_instant_kind == "instant"
    kind = "instantaneous" if instant else "1 s average"
    message = (
        f"{kind} power peaked at {peak:.0f} W{_t(t)}, {100 * (peak / limit - 1):.0f} % over "
        f"its {limit:.0f} W limit: the transient the PSU must carry"
    )
    if not instant:
        return finding(code="power_peak", severity="warn", message=message)
    spec = find_gpu(name)
    tdp = spec.tdp_w if spec and spec.tdp_w else limit
    k, why = spike_factor(spec) if spec else (DEFAULT_SPIKE_FACTOR, "no catalog entry")
    within = peak <= k * tdp
    return finding(
        code="power_peak",
        severity="info" if within else "warn",
        message=f"{message}; {'within' if within else 'beyond'} the {k:.2g}x of its "
        f"{tdp:.0f} W TDP ({k * tdp:.0f} W) that plan sizes PSUs for ({why})",
    )


def judge(
    devices: list[DeviceEvidence],
    *,
    totals: dict[str, Any],
    rig_reasons: list[Finding] | None = None,
) -> RigVerdict:
    """Each device against itself and its peers; the rig fails when a device fails or a
    rig-level reason (all_reduce, PSU, circuit) is a failure."""
    out: list[DeviceVerdict] = []
    for d in devices:
        reasons = _judge_device(d, devices)
        mine: Verdict = "fail" if any_failure(reasons) else "pass"
        if mine == "pass" and not (d.load.checks and d.load.gemm_tflops):
            mine = "void"
            reasons.append(
                finding(
                    code="untested",
                    severity="info",
                    message="no checked matmul finished under sustained load: nothing was "
                    "tested (run longer with --minutes)",
                )
            )
        out.append(
            DeviceVerdict(
                label=d.label,
                name=d.name,
                gpu=d.gpu,
                verdict=mine,
                reasons=[replace(r, gpus=[d.gpu] if d.gpu is not None else []) for r in reasons],
                figures=_figures(d),
            )
        )
    rig_reasons = list(rig_reasons or [])
    failed = [v.label for v in out if v.verdict == "fail"]
    if failed:
        rig_reasons.insert(
            0, finding(code="gpus", severity="fail", message=f"failed: {', '.join(failed)}")
        )
    if not devices:
        rig_reasons.append(finding(code="nothing", severity="fail", message="no device ran"))
    untested = [v.label for v in out if v.verdict == "void"]
    verdict: Verdict = "fail" if any_failure(rig_reasons) else "pass"
    if verdict == "pass" and untested:
        verdict = "void"
        rig_reasons.append(
            finding(
                code="untested",
                severity="info",
                message=f"nothing was tested on {', '.join(untested)}: the verdict is void",
            )
        )
    return RigVerdict(verdict=verdict, reasons=rig_reasons, devices=out, totals=totals)
