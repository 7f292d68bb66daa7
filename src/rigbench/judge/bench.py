"""The verdict on each benchmark figure: normal, below normal (with the likely cause read
from the conditions it ran under), fault, or no reference.

A figure is judged against the healthy-hardware reference set (catalog/references.py),
never against the datasheet: the datasheet ratio stays a column, the verdict drives the
colour and the exit code. Simulated rigs run their benchmarks on CPU stand-ins, which are
judged as what they are (the CPU backend's references) while the conditions the rig file
plays (a power cap, a throttle, a slow link, another process) give the cause.

Cause thresholds (why these and not others):
- power_capped: the limit is set under 90 % of the card's default, the power-cap reason
  is active a quarter of the time or more, and the cap costs clock (mean SM clock under 90 %
  of the maximum; where the maximum is unknown, a limit under 75 % of the default). Seed
  004's 3090s at 285 of 350 W held full clocks: capped, but normal. A card at its default
  limit runs power-capped by design under a sustained GEMM (an H200 at 700 W: SM clock
  1980 -> ~1470 MHz,
  benchmarks/2026-11-23-h200-1gpu.md), which is normal and never a cause.
- thermal: a thermal or hardware-slowdown reason active 10 % of the time or more (NVML
  clock-event reasons; healthy cards under load show none of them).
- clocks_locked: the application-clocks reason half the time or more with the mean SM clock
  under 90 % of the maximum, or (compute benchmarks) a mean SM clock under 75 % of the
  maximum with no power or thermal reason to explain it.
- power_capped is not a cause of a copy-engine figure (hostlink, p2p): a copy draws far
  under any cap (H100 host copies at 125-142 W of 700: benchmarks/2026-12-06-h100/
  *-summary.txt, 2026-12-07-h100/stop17-summary.txt; P2P copies run on the same copy
  engines), so a cap the conditions show was held by other work, not by the copy. A simulated trace
  plays its cap over every benchmark alike; this keeps its replay to what the real rig shows.
- numa_remote: a host-link copy whose process may not run on the GPU's NUMA node (the host
  buffers cross the inter-socket link); where it is the only cause and no reference judges
  the figure, it is said, not judged.
- link_degraded: a link figure whose PCIe link ran below the generation or width GPU and slot
  allow (as `doctor` checks at rest, here during the transfer).
- other_process: a compute process of another program on the GPU during the measurement.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from rigbench.bench.suite import Plan
from rigbench.catalog.references import Reference, find_references, load_references
from rigbench.errors import RigbenchError
from rigbench.hw.backend import Backend
from rigbench.hw.model import Rig
from rigbench.hw.telemetry import NoGpuTelemetry, TelemetrySource
from rigbench.links import pcie_gbs
from rigbench.records import Conditions, GpuConditions, Judgement, Result
from rigbench.telemetry.conditions import WINDOW_KEYS, ConditionsMonitor, now

POWER_CAP_LIMIT_FRACTION = 0.9
POWER_CAP_SHARE = 0.25
CAPPED_CLOCK_FRACTION = 0.9
FAR_BELOW_DEFAULT = 0.75
THERMAL_SHARE = 0.10
APP_CLOCKS_SHARE = 0.5
APP_CLOCKS_FRACTION = 0.9
LOW_CLOCK_FRACTION = 0.75
THERMAL_REASONS = ("sw_thermal", "hw_thermal", "hw_slowdown")
COMPUTE_BENCHMARKS = ("gemm", "train", "infer", "nbody")
LINK_BENCHMARKS = ("hostlink", "p2p", "collectives")
COPY_BENCHMARKS = ("hostlink", "p2p")  # copy engines, not SMs: the power cap is not theirs


@dataclass(kw_only=True, slots=True)
class Subject:
    """What a device under test is, for looking up references: the GPU model (or "cpu"
    for a CPU stand-in or the CPU backend), its power limit and its host link."""

    gpu: str
    stand_in: bool = False
    power_limit_w: float | None = None
    link: str | None = None  # "gen5x16"


@dataclass(kw_only=True, slots=True)
class JudgeContext:
    """Device label -> Subject, and per GPU pair the link kind ("nvlink4x18", "gen4x16")."""

    subjects: dict[str, Subject] = field(default_factory=dict)
    # per pair of device labels, the link a copy between them takes: "nvswitch",
    # "nvlink<version>x<links>" for direct NVLink, else the slower host link ("gen4x16")
    pair_links: dict[frozenset[str], str] = field(default_factory=dict)
    topology: str | None = None
    references: tuple[Reference, ...] | None = None  # None: the shipped set


def reference_metric(r: Result, *, largest: bool = True) -> str | None:
    """The schema's metric name for a result, or None when the vocabulary has none.
    `largest`: a collective's figure is at the largest message size measured (the
    references are busbw at large messages)."""
    if r.benchmark == "gemm":
        return r.metric if "." in r.metric else None
    if r.benchmark == "memory" and r.metric == "copy":
        return "copy"
    if r.benchmark == "hostlink" and r.params.get("host_memory") == "pinned":
        # one device's copy: the references are one link's; several at once have none
        return None if r.params.get("at_once") else f"{r.metric}.pinned"
    if r.benchmark == "p2p" and r.metric in ("unidir", "bidir"):
        return r.metric
    if r.benchmark == "collectives" and r.metric == "busbw" and r.params.get("op") == "all_reduce":
        return "all_reduce.busbw" if largest else None
    if r.benchmark == "train" and r.metric == "mfu":
        # the references are single-GPU GPT-2 124M-class runs
        single = r.params.get("world_size") == 1 and r.params.get("size") in (None, "124m")
        return "mfu" if single else None
    if r.benchmark == "train" and r.metric == "scaling_efficiency":
        return r.metric
    if r.benchmark == "infer" and r.metric == "decode_tokens_per_s":
        # the references are batch-1 decode against the memory-bandwidth bound
        return "decode.roofline_ratio" if r.params.get("batch") == 1 else None
    return None


def _judged_value(r: Result, metric: str) -> float | None:
    if metric == "decode.roofline_ratio":
        return r.ratio
    return r.value


def likely_causes(r: Result) -> list[tuple[str, str]]:
    """(cause, words) read from the result's conditions and placement, most telling first."""
    out = _numa_cause(r)
    cond = r.conditions
    if cond is None:
        return out
    for g in cond.gpus:
        out += _gpu_causes(r.benchmark, g, played=cond.source == "simulated")
    seen: set[str] = set()
    unique = []
    for cause, words in out:
        if cause not in seen:
            seen.add(cause)
            unique.append((cause, words))
    return unique


def _numa_cause(r: Result) -> list[tuple[str, str]]:
    """A host-link copy whose host buffers sat on another NUMA node than the GPU's
    (bench.hostlink's params["numa"]): the copy crosses the inter-socket link. The gearshifft
    run in references.toml (P100, Gen3 x16) gave 3.8 GB/s from the remote node against 12.2
    from the local one."""
    if r.benchmark != "hostlink" or r.params.get("numa") != "remote":
        return []
    gpus = r.params.get("gpu_numa_nodes") or []
    allowed = r.params.get("process_numa_nodes")
    on = ", ".join(f"{d} on node {n}" for d, n in zip(r.devices, gpus, strict=False))
    return [
        (
            "numa_remote",
            f"{on or 'the GPU'}, but this process may run only on NUMA node(s) "
            f"{', '.join(str(n) for n in allowed or []) or '?'}: its host buffers cross the "
            "inter-socket link (run it with numactl --cpunodebind=N --membind=N for the "
            "GPU's node N, or widen the cpuset)",
        )
    ]


def _gpu_causes(benchmark: str, g: GpuConditions, *, played: bool) -> list[tuple[str, str]]:
    """Causes on one GPU; `played`: the readings are a simulated trace (exact, never idle)."""
    out: list[tuple[str, str]] = []
    t = g.throttle
    if g.other_processes:
        out.append(
            (
                "other_process",
                f"GPU {g.gpu}: {g.other_processes} other program(s) held the GPU while it ran",
            )
        )
    thermal = min(1.0, sum(t.get(k, 0.0) for k in THERMAL_REASONS))
    if thermal >= THERMAL_SHARE:
        hot = f", up to {g.temp_max_c:.0f} °C" if g.temp_max_c is not None else ""
        out.append(
            ("thermal", f"GPU {g.gpu}: thermal slowdown {100 * thermal:.0f} % of the time{hot}")
        )
    if t.get("hw_power_brake", 0.0) >= THERMAL_SHARE:
        out.append(("power_brake", f"GPU {g.gpu}: hardware power brake asserted"))
    lim, default = g.power_limit_w, g.power_default_limit_w
    mean, top = g.sm_clock_mean_mhz, g.sm_clock_max_mhz
    if (
        benchmark not in COPY_BENCHMARKS
        and lim is not None
        and default
        and lim < POWER_CAP_LIMIT_FRACTION * default
        and t.get("sw_power_cap", 0.0) >= POWER_CAP_SHARE
        # the cap must cost clock: seed 004's 3090s at 285 of 350 W held full clocks
        and (
            mean < CAPPED_CLOCK_FRACTION * top
            if mean is not None and top
            else lim < FAR_BELOW_DEFAULT * default
        )
    ):
        out.append(
            (
                "power_capped",
                f"GPU {g.gpu}: held at a {lim:.0f} W power limit (default {default:.0f} W)"
                f" {100 * t['sw_power_cap']:.0f} % of the time",
            )
        )
    mean, top = g.sm_clock_mean_mhz, g.sm_clock_max_mhz
    if mean is not None and top:
        app = t.get("applications_clocks", 0.0)
        explained = (
            t.get("sw_power_cap", 0.0) + thermal + t.get("hw_power_brake", 0.0) >= THERMAL_SHARE
        )
        if (app >= APP_CLOCKS_SHARE and mean < APP_CLOCKS_FRACTION * top) or (
            benchmark in COMPUTE_BENCHMARKS and not explained and mean < LOW_CLOCK_FRACTION * top
        ):
            out.append(
                (
                    "clocks_locked",
                    f"GPU {g.gpu}: SM clock {mean:.0f} MHz of its {top} MHz maximum",
                )
            )
    # Two readings at least: one reading near a short transfer may be of the idle link,
    # which trains down to save power.
    enough = played or g.samples >= 2
    if benchmark in LINK_BENCHMARKS and g.pcie_gen and g.pcie_width and enough:
        gen_max, width_max = g.pcie_gen_max, g.pcie_width_max
        if (gen_max and g.pcie_gen < gen_max) or (width_max and g.pcie_width < width_max):
            out.append(
                (
                    "link_degraded",
                    f"GPU {g.gpu}: PCIe Gen{g.pcie_gen} x{g.pcie_width} during the transfer"
                    f" (GPU and slot allow Gen{gen_max} x{width_max})",
                )
            )
    return out


def nic_causes(r: Result) -> list[tuple[str, str]]:
    """Causes read from the NIC an inter-node figure crossed (params "nic", recorded by
    bench.cluster) and the transport NCCL said it used."""
    nic = r.params.get("nic")
    if not isinstance(nic, dict):
        return []
    out: list[tuple[str, str]] = []
    rate, top = nic.get("rate_gbps"), nic.get("max_rate_gbps")
    if rate and top and rate < top:
        out.append(
            (
                "link_degraded",
                f"{nic.get('node')} {nic.get('port')} ({nic.get('kind')}) trained at "
                f"{rate:g} Gb/s of its {top:g} Gb/s",
            )
        )
    said = r.params.get("nccl_transport") or {}
    networks = {v.get("network") for v in said.values() if isinstance(v, dict)}
    if nic.get("kind") in ("infiniband", "roce") and "Socket" in networks:
        out.append(
            (
                "socket_fallback",
                f"NCCL crossed nodes over TCP sockets, not {nic.get('port')} "
                f"({nic.get('kind')}): NCCL_IB_DISABLE, NCCL_IB_HCA or the RDMA stack",
            )
        )
    return out


def judge_device_rows(results: Iterable[Result], rig: Rig, gpu_index: int | None) -> None:
    """Verdicts (in place) on the rows one torchrun rank measured alone (scope "device"),
    against the references a run without torchrun uses for that GPU; on a machine without
    GPUs (gpu_index None) they are judged as the CPU's."""
    rows = [
        r
        for r in results
        if r.params.get("scope") == "device" and r.judgement is None and r.devices
    ]
    labels = {r.devices[0]: gpu_index for r in rows} if gpu_index is not None else {}
    ctx = judge_context(rig, labels, stand_ins=False)
    for r in rows:
        r.judgement = judge_result(r, ctx)


def judge_inter_node_results(
    results: Iterable[Result], references: tuple[Reference, ...] | None = None
) -> None:
    """Verdicts (in place) on the rows measured with one rank a node: an all_reduce busbw
    at the largest size against the healthy fraction of the slowest node's NIC line rate
    (`expected`), for the NIC kinds the reference set has a figure for; the other kinds
    read "no reference" (unknown). A NIC that trained below its rate names the cause."""
    rows = [r for r in results if r.params.get("scope") == "inter-node"]
    sizes = [
        int(r.params["bytes"])
        for r in rows
        if r.metric == "busbw" and r.params.get("op") == "all_reduce" and "bytes" in r.params
    ]
    top = max(sizes, default=None)
    for r in rows:
        nic = r.params.get("nic")
        kind = nic.get("kind") if isinstance(nic, dict) else None
        ctx = JudgeContext(
            subjects={d: Subject(gpu="*") for d in r.devices},
            topology=f"inter-node-{kind}" if kind else "inter-node-unknown",
            references=references,
        )
        largest = r.params.get("bytes") == top and r.params.get("op") == "all_reduce"
        j = judge_result(r, ctx, largest=largest)
        ports = nic.get("ports") if isinstance(nic, dict) else None
        if j is not None and j.cause == "implausible" and isinstance(ports, int) and ports > 1:
            # above one port's line rate with several up: NCCL spread the rank over them
            j.verdict, j.cause = "normal", None
            j.note = (
                f"above one {kind} port's line rate; {ports} such ports are up on the node "
                "and NCCL can use several for one rank"
            )
        if j is not None and j.verdict == "no_reference" and largest:
            j.note = (
                f"no sourced healthy figure for all_reduce busbw between nodes over {kind}: unknown"
                if kind
                else "the NIC between the nodes or its rate is unknown: no expectation"
            )
        r.judgement = j


# Reasons a step did not measure anything that say nothing about the hardware: a slow or
# busy machine that never started the workers, a step not run because one it depends on
# failed, a figure this GPU or build cannot give, the user's Ctrl-C.
NOT_JUDGED = ("timeout_startup", "skipped_dependency", "unsupported", "interrupted")


def _fault(r: Result) -> Judgement | None:
    """A failed step's verdict, from its reason code: a hang, a crash, running out of
    memory and wrong data are faults; a step that never started or was not run is not
    judged (None). Results without a code (stored by older versions) fall back to their
    message."""
    if r.reason in NOT_JUDGED:
        return None
    if r.reason is not None:
        return Judgement(verdict="fault", cause=r.reason, note=r.message)
    text = (r.message or "").lower()
    wrong = any(w in text for w in ("wrong", "corrupt", "mismatch", "differ", "non-finite"))
    return Judgement(
        verdict="fault",
        cause="wrong_data" if wrong else "failed",
        note=r.message,
    )


def judge_result(r: Result, ctx: JudgeContext, *, largest: bool = True) -> Judgement | None:
    """The verdict on one result; None for a skipped one (nothing was measured)."""
    if r.status == "skipped":
        return None
    if r.status == "failed" or r.value is None:
        return _fault(r)
    causes = likely_causes(r) + nic_causes(r)
    cause = causes[0][0] if causes else None
    cause_words = "; ".join(w for _, w in causes) or None
    subject = next((ctx.subjects[d] for d in r.devices if d in ctx.subjects), None)
    metric = reference_metric(r, largest=largest)
    stand_in = subject.stand_in if subject else False
    if subject is None:
        subject = Subject(gpu="cpu", stand_in=False)
    refs: list[Reference] = []
    if metric is not None:
        refs = find_references(
            gpu="cpu" if stand_in else subject.gpu,
            benchmark=r.benchmark,
            metric=metric,
            power_limit_w=subject.power_limit_w,
            link=_link_for(r, subject, ctx),
            topology=ctx.topology,
            size=_size(r),
            p2p=r.params.get("p2p_access") if r.benchmark == "p2p" else None,
            engine=_engine(r),
            references=ctx.references,
        )
    if stand_in and causes:
        # The stand-in's figure is the CPU's; what the rig file plays is the conditions.
        return Judgement(
            verdict="below_normal",
            cause=cause,
            note=f"simulated: {cause_words}",
        )
    value = _judged_value(r, metric) if metric else None
    for ref in refs:
        low, typical, high = ref.range_for(r.expected)
        if low is None and high is None:
            continue
        j = Judgement(
            verdict="normal",
            low=low,
            high=high,
            typical=typical,
            reference=ref.id,
            source=ref.source,
        )
        if value is None:
            continue
        if low is not None and value < low:
            j.verdict = "below_normal"
            j.cause = cause or "unknown"
            j.note = cause_words or "below the healthy range; the recorded conditions show no cause"
        elif high is not None and value > high:
            j.verdict = "fault"
            j.cause = "implausible"
            j.note = "above the healthy range: a timing or measurement error is more likely"
        elif causes:
            j.note = f"within the healthy range; ran with: {cause_words}"
        return j
    # With nothing to compare against, a cause that lowers every figure (a clock, a cap, a
    # link) makes it below normal; where the host buffers sat only says where they were.
    if any(c != "numa_remote" for c, _ in causes):
        return Judgement(verdict="below_normal", cause=cause, note=cause_words)
    why = _no_reference_why(r, metric)
    return Judgement(
        verdict="no_reference", note=f"{why}; ran with: {cause_words}" if causes else why
    )


def _no_reference_why(r: Result, metric: str | None) -> str:
    if metric:
        return "no sourced reference for this GPU and metric"
    if r.benchmark == "hostlink" and r.params.get("at_once") and r.params.get("pinned"):
        return (
            "no sourced healthy figure for host copies to several GPUs at once (host memory "
            "and the root complex can hold them under the sum of the uplinks): unknown; the "
            "ratio compares with the sum of the uplinks the PCIe topology shows"
        )
    return "no reference metric for this figure"


def _link_for(r: Result, subject: Subject, ctx: JudgeContext) -> str | None:
    """A P2P figure is judged against the pair's link, everything else against the host link."""
    if r.benchmark == "p2p" and len(r.devices) == 2:
        return ctx.pair_links.get(frozenset(r.devices), subject.link)
    return subject.link


def _engine(r: Result) -> str | None:
    if r.benchmark != "train" or "compile" not in r.params:
        return None
    return "compiled" if r.params["compile"] else "eager"


def _size(r: Result) -> str | None:
    p = r.params
    if r.benchmark == "gemm" and "m" in p:
        if p["m"] == p.get("n") == p.get("k"):
            return f"{p['m']}^3"
        return f"{p['m']}x{p.get('n')}x{p.get('k')}"
    return None


def judge_results(results: Iterable[Result], ctx: JudgeContext) -> list[Result]:
    """Each result with its judgement set (in place); returned for convenience."""
    out = list(results)
    top: dict[tuple[str, ...], int] = {}
    for r in out:
        if r.benchmark == "collectives" and "bytes" in r.params:
            key = tuple(r.devices)
            top[key] = max(top.get(key, 0), int(r.params["bytes"]))
    for r in out:
        largest = r.benchmark != "collectives" or top.get(tuple(r.devices)) == r.params.get("bytes")
        r.judgement = judge_result(r, ctx, largest=largest)
    return out


def annotate(r: Result, conditions: Conditions | None, *, derive: bool = True) -> Result:
    """Attach the conditions, and (`derive`) the figures derived from them: the ceiling at
    the clock actually observed (gemm), and energy per unit of work (gemm, train, infer).
    A CPU stand-in's figures are not derived: its work and the rig's power are unrelated."""
    r.conditions = conditions
    if conditions is None or not conditions.gpus or r.value is None or not derive:
        return r
    gpus = conditions.gpus
    power = [g.power_mean_w for g in gpus]
    total_w = sum(p for p in power if p is not None) if all(p is not None for p in power) else None
    if r.benchmark == "gemm" and r.peak and len(gpus) == 1:
        g = gpus[0]
        if g.sm_clock_mean_mhz and g.sm_clock_max_mhz:
            at_clock = r.peak * g.sm_clock_mean_mhz / g.sm_clock_max_mhz
            r.params["peak_at_clock"] = round(at_clock, 2)
            r.params["of_peak_at_clock"] = round(r.value / at_clock, 4)
    if total_w is None or r.value <= 0:
        return r
    if r.benchmark == "gemm":
        # W / (TFLOP/s) = J per TFLOP
        r.params["joules_per_tflop"] = round(total_w / r.value, 4)
    elif r.benchmark in ("train", "infer") and r.unit.startswith("tokens/s"):
        r.params["joules_per_token"] = round(total_w / r.value, 6)
        r.params["tokens_per_kwh"] = round(r.value / total_w * 3.6e6, 0)
    return r


def judge_context(rig: Rig, labels: dict[str, int], *, stand_ins: bool) -> JudgeContext:
    """Subjects for the devices under test (label -> NVML index) of `rig`."""
    subjects: dict[str, Subject] = {}
    for label, index in labels.items():
        gpu = next((g for g in rig.gpus if g.index == index), None)
        if gpu is None:
            continue
        p = gpu.pcie
        gen, width = p.gen_max or p.gen_current, p.width_max or p.width_current
        subjects[label] = Subject(
            gpu=gpu.name,
            stand_in=stand_ins,
            power_limit_w=gpu.power_limit_w,
            link=f"gen{gen}x{width}" if gen and width else None,
        )
    pair_links: dict[frozenset[str], str] = {}
    items = list(labels.items())
    for i, (la, a) in enumerate(items):
        for lb, b in items[i + 1 :]:
            link = _pair_link(rig, a, b, subjects.get(la), subjects.get(lb))
            if link:
                pair_links[frozenset((la, lb))] = link
    return JudgeContext(
        subjects=subjects, pair_links=pair_links, topology=_topology(rig, list(labels.values()))
    )


def _pair_link(rig: Rig, a: int, b: int, sa: Subject | None, sb: Subject | None) -> str | None:
    pair = rig.pair(a, b)
    if pair is not None and pair.via_nvswitch:
        return "nvswitch"
    if pair is not None and pair.nvlink_count:
        version = pair.nvlink_version
        return f"nvlink{version}x{pair.nvlink_count}" if version else None
    # over PCIe a pair runs at the slower of the two GPUs' links
    links = [s.link for s in (sa, sb) if s is not None and s.link]
    return min(links, key=_pcie_rate) if links else None


def _pcie_rate(link: str) -> float:
    gen, _, width = link.removeprefix("gen").partition("x")
    try:
        return pcie_gbs(int(gen), int(width))
    except ValueError:
        return 0.0


def _topology(rig: Rig, gpus: list[int]) -> str | None:
    """The collectives topology class of the schema: nvswitch-N, nvlink-bridge-N, pcie-N."""
    if len(gpus) < 2:
        return None
    pairs = [rig.pair(a, b) for i, a in enumerate(gpus) for b in gpus[i + 1 :]]
    if pairs and all(p is not None and p.via_nvswitch for p in pairs):
        return f"nvswitch-{len(gpus)}"
    if pairs and all(p is not None and p.nvlink_count for p in pairs):
        return f"nvlink-bridge-{len(gpus)}"
    if pairs and all(p is not None and not p.nvlink_count for p in pairs):
        return f"pcie-{len(gpus)}"
    return None


class BenchJudge:
    """Turns each streamed result into a judged one: its conditions from the monitor over
    its window (the worker's own timestamps when it gave them, else the time since the
    previous result or step), the figures derived from them, and its verdict."""

    def __init__(self, monitor: ConditionsMonitor, ctx: JudgeContext, gpus: dict[str, int]):
        self.monitor = monitor
        self.ctx = ctx
        self.gpus = gpus
        self.last = now()

    @classmethod
    def for_plan(cls, backend: Backend, rig: Rig, plan: Plan, gpus: list[int]) -> BenchJudge:
        """A judge for `plan`, its monitor sampling the backend's telemetry of `gpus` (not
        started yet). Telemetry that cannot start leaves the conditions "unavailable"; a
        malformed reference set raises CatalogError here, before anything runs."""
        load_references()
        try:
            source: TelemetrySource = backend.telemetry(gpus or None)
        except RigbenchError as exc:  # no readings: the results say so, the bench still runs
            source = NoGpuTelemetry(f"GPU telemetry unavailable: {exc}")
        labels = {
            d.label: d.gpu_index
            for ctx in plan.contexts.values()
            for d in ctx.devices
            if d.gpu_index is not None
        }
        ctx = judge_context(rig, labels, stand_ins=plan.stand_ins)
        return cls(ConditionsMonitor(source, rig), ctx, labels)

    def mark(self) -> None:
        """A step ended: the next result's window starts here."""
        self.last = now()

    def __call__(self, r: Result) -> Result:
        t0, t1 = self.last, now()
        w0, w1 = (r.params.get(k) for k in WINDOW_KEYS)
        r.params = {k: v for k, v in r.params.items() if k not in WINDOW_KEYS}
        if isinstance(w0, float) and isinstance(w1, float) and w1 >= w0:
            t0, t1 = w0, w1
        gpus = [self.gpus[d] for d in r.devices if d in self.gpus]
        stand_in = any(s.stand_in for d, s in self.ctx.subjects.items() if d in r.devices)
        if r.status != "skipped" and (gpus or not self.monitor.available):
            annotate(r, self.monitor.conditions(t0, t1, gpus), derive=not stand_in)
        # a collective's size sweep is judged once all sizes are in (judge_results)
        r.judgement = judge_result(r, self.ctx, largest=r.benchmark != "collectives")
        self.last = now()
        return r
