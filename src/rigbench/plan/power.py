"""Power checks of a build: sustained draw and millisecond spikes per PSU group, the
risk that a spike trips the PSU, wall draw per circuit against its breaker, and the GPU
power limit that would make each one safe.

Per PSU group (one ATX PSU, or server PSUs paralleled on one 12 V bus):

* sustained DC load `S = sum(P_i) + C + O`: each fed GPU's power limit (its catalog TDP
  when none is set), and on the group that feeds the system the CPUs' draw under the
  workload `C` (rigbench.plan.cpu_load: a share of their rating, not their TDP) and the
  rest `O` ([power] other_w);
* capacity: rated watts of the units not held in reserve (`redundant`), times
  `SHARE_FACTOR` when several units share a bus. A sustained load over it is an error: the
  PSU shuts down (the Minerva 4×3090 workstation write-up: "limits ... to prevent triggering PSU
  safety stops");
* spikes: each GPU goes `e_i = (k_i - 1) * TDP_i` above its sustained draw for
  milliseconds (`spike_factor`). The excursion follows the card's TDP, not its power limit:
  the limiter acts on a ~100 ms average, and the 4×V100 SXM2 server write-up saw >300 W peaks on
  V100s limited to
  200 W. Cards' spikes last 0.1-10 ms and are not phase-locked even when their steps are,
  so they add as independent peaks: `K = S + sqrt(sum(e_i^2))`; the full sum (every card
  at its peak at once) is shown as the worst case;
* risk that `K` trips the group, by how far it goes over what the group carries for
  milliseconds (`transient_risk`): ATX 3.x units are rated to excursions (160 % for 10 ms,
  200 % for 100 us); older ATX units publish no excursion rating but carry their
  over-power margin; a paralleled server bus is counted at one unit less for transients
  (the 4×V100 SXM2 server write-up: two Dell 1100 W units dropped GPUs on DDP ramps even at 200 W
  per GPU, three
  carried the same GPUs at 300 W).

Per wall circuit: `W = sum(S_g / eff_g(S_g / rated_g))` over the groups plugged into it,
against `volts * amps` (the breaker) and `continuous_factor` of it (a training run is a
continuous load: 3 hours or more under the US NEC; 1.0 where breakers carry their rating
continuously, as IEC 60898 breakers in 230 V countries). Spikes of milliseconds do not
trip breakers, whose fastest (magnetic) trip needs several times their rating.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from rigbench.catalog.spikes import spike_factor
from rigbench.plan.build import Build, GpuUnit, PsuGroup
from rigbench.plan.records import Finding, Prediction

# ATX 3.0 power excursion ratings, share of rated power the PSU carries for each duration
# (Intel ATX Version 3.0 Multi Rail Desktop Platform Power Supply Design Guide, doc 336521,
# Table 3-3, PSUs over 450 W with a 12VHPWR connector):
# https://edc.intel.com/content/www/us/en/design/ipla/software-development-platforms/client/platforms/alder-lake-desktop/atx-version-3-0-multi-rail-desktop-platform-power-supply-design-guide/2.1a/pcie-add-in-card-and-psu-power-budgets/
ATX3_EXCURSIONS = {"100us": 2.0, "1ms": 1.8, "10ms": 1.6, "100ms": 1.2}
ATX3_EXCURSION = ATX3_EXCURSIONS["10ms"]  # the tightest row a millisecond spike falls in
ATX3_SOURCE = (
    "Intel ATX 3.0 PSU Design Guide (doc 336521) Table 3-3: 200 % for 100 us, 180 % for"
    " 1 ms, 160 % for 10 ms, 120 % for 100 ms"
)
# A pre-ATX 3.0 unit publishes no excursion rating; its over-power protection sits above
# its rating by a margin its maker rarely states. Up to this share of the rating the risk is
# called moderate: the calibration set's older ATX units ran at estimated peaks of 1.1-1.23x
# (seed 000 Minerva 1.23, seed 004's 750 W unit 1.22, WOPR's RM1000x units 1.22, Puget's
# 4x RTX 3090 on 1,600 W 1.12; examples/calibration/), one tripped at 1.08x
# (tensorflow#8858). The bound between moderate and high is an assumption: no unit's OPP
# set point is published. Above it: high.
PRE_ATX3_MARGIN = 1.5


# Paralleled supplies share current within about 10 % at best (a current-share bus balances
# them, it does not make them equal): the bus is counted at 90 % of the sum. An assumption.
SHARE_FACTOR = 0.9
# Sustained load above this share of a PSU's capacity leaves no room: a warning.
HEADROOM = 0.9

RISK_LEVELS = ("low", "moderate", "high")
POWER_SOURCE = (
    "rigbench.plan.power: PSU ratings; CPU load per workload (the Minerva write-up's wall"
    " measurement);"
    " spike factors per GPU (catalog, the V100 server, Iva and 3×3090 ex-mining rig write-ups,"
    " Igor's Lab); ATX 3.0 excursions"
    " (Intel doc 336521 Table 3-3); paralleled bus (the 4×V100 SXM2 server write-up); checked"
    " against"
    " examples/calibration/"
)

_LIMIT_CAVEAT = (
    "a power limit acts on an average over ~100 ms; millisecond spikes shrink less than the"
    " limit (the 4×V100 SXM2 server write-up saw >300 W peaks at a 200 W limit), and locking "
    "clocks (nvidia-smi -lgc,"
    " -ac on V100) cuts them more"
)


def excursion_w(gpu: GpuUnit) -> float:
    """How far one GPU's millisecond spikes go above its sustained draw: (k - 1) x TDP."""
    k = spike_factor(gpu.spec)[0]
    tdp = gpu.spec.tdp_w or gpu.power_w
    return (k - 1) * tdp


SpikeOutcome = Literal["holds", "at_risk", "trips"]


def circuit_severity(draw_w: float, breaker_w: float, continuous_w: float) -> str:
    """A sustained wall draw against a breaker: over the breaker is an error, over the share
    a continuous load may draw (US NEC 210.19/210.20: 80 %) a warning. Short peaks are not
    judged: a breaker trips on sustained overload, not on milliseconds."""
    if draw_w > breaker_w:
        return "error"
    return "warning" if draw_w > continuous_w else "info"


@dataclass(frozen=True, slots=True)
class GroupLoad:
    group: PsuGroup
    gpus: tuple[GpuUnit, ...]
    system_w: float
    sustained_w: float
    spike_w: float  # sustained + the cards' excursions added as independent peaks
    worst_spike_w: float  # sustained + every card's excursion at once
    capacity_w: float  # against sustained load
    spike_capacity_w: float  # what the group carries for milliseconds at low risk
    high_risk_w: float  # above this, a trip is likely
    spike_basis: str

    def outcome(self, load_w: float) -> SpikeOutcome:
        """What a millisecond load of `load_w` on this group means: it holds, it is at risk
        (past what the group carries at low risk), or a trip is likely."""
        if load_w > self.high_risk_w:
            return "trips"
        return "at_risk" if load_w > self.spike_capacity_w else "holds"

    @property
    def risk(self) -> str:
        """The risk that spikes trip the group: low, moderate or high."""
        if self.spike_w <= self.spike_capacity_w:
            return "low"
        return "moderate" if self.spike_w <= self.high_risk_w else "high"

    def safe_limit_w(self) -> float | None:
        """The power limit, the same for every GPU of the group, under which the sustained
        load keeps its headroom and spikes stay at low risk; None when no GPU is fed or
        nothing would. Excursions follow the TDP, so the limit only lowers the base."""
        if not self.gpus:
            return None
        spread = math.sqrt(sum(excursion_w(g) ** 2 for g in self.gpus))
        by_spike = (self.spike_capacity_w - self.system_w - spread) / len(self.gpus)
        by_sustained = (HEADROOM * self.capacity_w - self.system_w) / len(self.gpus)
        limit = min(by_spike, by_sustained)
        return math.floor(limit / 5) * 5 if limit > 0 else None


def _capacity_units(group: PsuGroup) -> int:
    return max(1, group.units - group.redundant)


def group_loads(build: Build) -> list[GroupLoad]:
    loads = []
    system_w = build.cpu_load_w + build.other_w
    for group in build.psus:
        gpus = tuple(build.gpus[i] for i in group.gpus)
        sys_w = system_w if group.system else 0.0
        sustained = sum(g.power_w for g in gpus) + sys_w
        excursions = [excursion_w(g) for g in gpus]
        spike = sustained + math.sqrt(sum(e * e for e in excursions))
        worst = sustained + sum(excursions)
        units = _capacity_units(group)
        each = group.rated_w / group.units
        share = SHARE_FACTOR if group.parallel and units > 1 else 1.0
        capacity = each * units * share
        if group.atx3:
            spike_cap = capacity * ATX3_EXCURSION
            high = capacity * ATX3_EXCURSIONS["100us"]
            basis = f"ATX 3.x: rated for excursions ({ATX3_SOURCE})"
        elif group.kind == "server" and group.units > 1:
            # every installed unit shares the ramp, reserve units included (they are online)
            spike_cap = each * (group.units - 1)
            high = spike_cap
            basis = (
                f"{group.units} server units on one 12 V bus, counted at {group.units - 1}"
                " for millisecond ramps: their current sharing is slower than a GPU's ramp"
                " (the 4×V100 SXM2 server write-up: two Dell 1100 W units dropped GPUs on DDP"
                " ramps even at 200 W"
                " per GPU; three carried them at 300 W)"
            )
        elif group.kind == "server":
            spike_cap = capacity
            high = capacity
            basis = "a server PSU promises its rating and publishes no excursion rating"
        else:
            spike_cap = capacity
            high = capacity * PRE_ATX3_MARGIN
            basis = (
                "a pre-ATX 3.0 unit promises only its rating; its over-power margin is"
                f" unpublished: up to {PRE_ATX3_MARGIN:.0%} counted as moderate risk (older"
                " units in the calibration set ran at estimated peaks of 1.1-1.23x, one"
                " tripped at 1.08x)"
            )
        if group.redundant:
            basis += f"; {group.redundant} unit(s) held in reserve (N+M) not counted"
        if share < 1:
            basis += f"; {units} units on one bus counted at {share:.0%} (uneven sharing)"
        loads.append(
            GroupLoad(group, gpus, sys_w, sustained, spike, worst, capacity, spike_cap, high, basis)
        )
    return loads


def _psu_name(g: PsuGroup) -> str:
    what = f"{g.units}x {g.watts_each[0]:g} W" if g.units > 1 else f"{g.rated_w:g} W"
    model = f" {g.model}" if g.model else ""
    bus = " on one 12 V bus" if g.parallel and g.units > 1 else ""
    return f"{g.label} ({what}{model}{bus})"


def _feeds(load: GroupLoad) -> str:
    parts = []
    if load.gpus:
        parts.append("GPU " + ", ".join(str(g.index) for g in load.gpus))
    if load.group.system:
        parts.append("CPU and the rest")
    return " + ".join(parts) or "nothing"


def check_psus(build: Build) -> list[Finding]:
    if not build.psus:
        return [
            Finding(
                id="power.no_psu",
                severity="info",
                title="no [[psu]] in the build: PSU capacity not checked",
                why="the draw and spikes are still predicted below",
                fix="add [[psu]] entries (watts, efficiency, kind, atx3) to check them",
                source=POWER_SOURCE,
                origin="assumption",
            )
        ]
    findings = []
    for load in group_loads(build):
        g = load.group
        name = _psu_name(g)
        sus_share = load.sustained_w / load.capacity_w
        spike_share = load.spike_w / load.spike_capacity_w
        evidence: dict[str, object] = {
            "psu": g.label,
            "feeds": _feeds(load),
            "rated_w": g.rated_w,
            "capacity_w": load.capacity_w,
            "spike_capacity_w": load.spike_capacity_w,
            "high_risk_above_w": load.high_risk_w,
            "sustained_w": load.sustained_w,
            "spike_w": load.spike_w,
            "worst_case_spike_w": load.worst_spike_w,
            "spike_risk": load.risk,
            "system_w": load.system_w,
            "cpu_w": build.cpu_load_w if g.system else 0.0,
            "cpu_basis": build.cpu_basis,
            "other_w": build.other_w if g.system else 0.0,
            "other_basis": build.other_basis,
            "gpu_w": [gpu.power_w for gpu in load.gpus],
            "spike_factors": [round(spike_factor(gpu.spec)[0], 3) for gpu in load.gpus],
            "excursions_w": [round(excursion_w(gpu), 1) for gpu in load.gpus],
        }
        limit = load.safe_limit_w()
        if limit is not None:
            evidence["safe_power_limit_w"] = limit
        factors = sorted({spike_factor(gpu.spec)[1] for gpu in load.gpus})
        system = (
            f" + {build.cpu_load_w:,.0f} W of CPU ({build.cpu_basis}) + {build.other_w:,.0f} W"
            f" for the rest ({build.other_basis})"
            if load.system_w
            else ""
        )
        sustained_why = (
            f"{sum(gpu.power_w for gpu in load.gpus):,.0f} W of GPU limits or TDPs{system}"
        )
        spike_why = (
            f"each card spikes (k - 1) x TDP above its draw for milliseconds, whatever its"
            f" power limit; separate cards' spikes add as independent peaks to"
            f" ~{load.spike_w:,.0f} W (all at once, the worst case: {load.worst_spike_w:,.0f}"
            f" W); {load.spike_basis}. Spike factors: {'; '.join(factors)}"
            if load.gpus
            else ""
        )
        problems = False
        if sus_share > 1:
            problems = True
            findings.append(
                Finding(
                    id="power.psu_sustained",
                    severity="error",
                    title=(
                        f"{name} feeds {_feeds(load)}: {load.sustained_w:,.0f} W sustained,"
                        f" over its {load.capacity_w:,.0f} W: it will shut down under load"
                    ),
                    why=f"the steady load alone exceeds the rating: {sustained_why}",
                    fix=_fix(build, load, limit, sustained=True),
                    evidence=evidence,
                    source=POWER_SOURCE,
                    origin="plan",
                )
            )
        elif sus_share > HEADROOM:
            problems = True
            findings.append(
                Finding(
                    id="power.psu_headroom",
                    severity="warning",
                    title=(
                        f"{name}: {load.sustained_w:,.0f} W sustained is {sus_share:.0%} of its"
                        f" {load.capacity_w:,.0f} W"
                    ),
                    why=(
                        f"{sustained_why}; above {HEADROOM:.0%} a PSU runs hot and loud with"
                        " little room for spikes or a hotter day"
                    ),
                    fix=_fix(build, load, limit, sustained=True),
                    evidence=evidence,
                    source=POWER_SOURCE,
                    origin="plan",
                )
            )
        if load.gpus and load.risk != "low" and sus_share <= 1:
            problems = True
            high = load.risk == "high"
            consequence = (
                "a trip is likely under synchronized training: the rig shuts down or, on a"
                " 12 V bus, the voltage sags until GPUs drop off"
                if high
                else "a trip is possible but unlikely: rigs like this run, and a PSU whose"
                " protection trips shuts the rig down"
            )
            findings.append(
                Finding(
                    id="power.psu_transient",
                    severity="warning" if high else "info",
                    title=(
                        f"{name}: {load.risk} risk of a trip on GPU spikes (~"
                        f"{load.spike_w:,.0f} W, {spike_share:.0%} of the"
                        f" {load.spike_capacity_w:,.0f} W it carries for milliseconds)"
                    ),
                    why=f"{consequence}. {spike_why}",
                    fix=_fix(build, load, limit, sustained=False),
                    evidence=evidence,
                    source=POWER_SOURCE,
                    origin="assumption",
                )
            )
        if not problems:
            findings.append(
                Finding(
                    id="power.psu",
                    severity="info",
                    title=(
                        f"{name} feeds {_feeds(load)}: {load.sustained_w:,.0f} W sustained"
                        f" ({sus_share:.0%}), spikes ~{load.spike_w:,.0f} W"
                        f" ({spike_share:.0%} of {load.spike_capacity_w:,.0f} W): low risk"
                    ),
                    why=(f"{sustained_why}; {spike_why}" if load.gpus else "no GPU on this PSU"),
                    evidence=evidence,
                    source=POWER_SOURCE,
                    origin="plan",
                )
            )
    return findings


def _fix(build: Build, load: GroupLoad, limit: float | None, *, sustained: bool) -> str:
    g = load.group
    spread = load.spike_w - load.sustained_w
    options = []
    if limit is not None and load.gpus and limit < max(gpu.power_w for gpu in load.gpus):
        options.append(
            f"cap each of its GPUs at {limit:g} W (nvidia-smi -pl {limit:g})"
            + ("" if sustained else f"; {_LIMIT_CAVEAT}")
        )
    if g.parallel or g.kind == "server":
        each = g.watts_each[0]
        need_units = max(
            math.ceil(load.sustained_w / (HEADROOM * SHARE_FACTOR * each)),
            math.ceil(load.spike_w / each) + 1,
        )
        units = need_units + g.redundant
        if units > g.units:
            options.append(
                f"put {units} x {each:g} W PSUs on the bus (one more than the spikes need:"
                " the bus is counted one unit short for millisecond ramps)"
            )
    else:
        need = max(load.spike_w, load.sustained_w / HEADROOM)
        options.append(f"a PSU of at least {math.ceil(need / 50) * 50:,} W")
        if not g.atx3:
            atx3_need = max(load.spike_w / ATX3_EXCURSION, load.sustained_w / HEADROOM)
            options.append(
                f"an ATX 3.x PSU of at least {math.ceil(atx3_need / 50) * 50:,} W (rated for"
                f" {ATX3_EXCURSION:.0%} over 10 ms)"
            )
        if len(load.gpus) > 1:
            options.append("feed some of its GPUs from a second PSU")
    del spread
    return "; or ".join(options)


def check_circuits(build: Build) -> list[Finding]:
    wall = build.wall
    if wall is None:
        return [
            Finding(
                id="power.no_wall",
                source="rigbench.plan.power",
                origin="assumption",
                severity="info",
                title="no [wall] in the build: the circuit is not checked",
                why="the wall draw is still predicted below",
                fix="add [wall] volts, amps (the breaker) and circuits",
            )
        ]
    if not build.psus:
        return []
    findings = []
    loads = group_loads(build)
    breaker_w = wall.volts * wall.amps
    continuous_w = breaker_w * wall.continuous_share
    for circuit in range(wall.circuits or 1):
        on = [ld for ld in loads if ld.group.share_on(circuit) > 0]
        if not on:
            continue
        draw = sum(wall_w(ld) * ld.group.share_on(circuit) for ld in on)
        labels = ", ".join(ld.group.label for ld in on)
        evidence = {
            "circuit": circuit,
            "psus": labels,
            "wall_w": draw,
            "breaker_w": breaker_w,
            "continuous_w": continuous_w,
            "volts": wall.volts,
            "amps": wall.amps,
            "continuous_factor": wall.continuous_share,
            "phases": wall.phases,
            "amps_drawn": draw / wall.volts,
        }
        what = (
            f"circuit {circuit} ({wall.volts:g} V, {wall.amps:g} A breaker; {labels}):"
            f" ~{draw:,.0f} W ({draw / wall.volts:.1f} A) from the wall under load"
        )
        why = (
            f"sustained DC load through each PSU's efficiency; the breaker carries"
            f" {breaker_w:,.0f} W, a continuous load (3 h or more) {continuous_w:,.0f} W"
            f" ({wall.continuous_share:.0%})"
        )
        limit = _circuit_limit(on, circuit, continuous_w)
        fix = (
            "split the rig over two circuits: a second PSU on another breaker ([wall]"
            " circuits = 2, circuit = 1 on that [[psu]])"
        )
        if limit is not None:
            evidence["safe_power_limit_w"] = limit
            fix += f"; or cap the GPUs on it at {limit:g} W"
        severity = circuit_severity(draw, breaker_w, continuous_w)
        if severity == "error":
            findings.append(
                Finding(
                    id="power.circuit_breaker",
                    source="breaker = volts x amps; wall draw through the 80 PLUS 115 V minimums",
                    origin="plan",
                    severity="error",
                    title=what + f", over the {breaker_w:,.0f} W breaker",
                    why=why,
                    fix=fix,
                    evidence=evidence,
                )
            )
        elif severity == "warning":
            findings.append(
                Finding(
                    id="power.circuit_continuous",
                    source="US NEC 210.19/210.20: continuous loads at most 80 % of the breaker",
                    origin="plan",
                    severity="warning",
                    title=what + f", over the {continuous_w:,.0f} W a continuous load may draw",
                    why=why + "; a long run can trip it or heat the wiring",
                    fix=fix,
                    evidence=evidence,
                )
            )
        else:
            findings.append(
                Finding(
                    id="power.circuit",
                    severity="info",
                    title=what,
                    why=why,
                    evidence=evidence,
                    source="breaker = volts x amps; wall draw through the 80 PLUS 115 V minimums",
                    origin="plan",
                )
            )
    return findings


def wall_w(load: GroupLoad) -> float:
    """AC draw of a group under its sustained load."""
    g = load.group
    return load.sustained_w / g.efficiency_at(load.sustained_w / g.rated_w)


def _circuit_limit(on: list[GroupLoad], circuit: int, continuous_w: float) -> float | None:
    gpus = sum(len(ld.gpus) * ld.group.share_on(circuit) for ld in on)
    if not gpus:
        return None
    draw = sum(wall_w(ld) * ld.group.share_on(circuit) for ld in on)
    dc = sum(ld.sustained_w * ld.group.share_on(circuit) for ld in on)
    efficiency = dc / draw
    system = sum(ld.system_w * ld.group.share_on(circuit) for ld in on)
    limit = (continuous_w * efficiency - system) / gpus
    return math.floor(limit / 5) * 5 if limit > 0 else None


def sustained_dc_w(build: Build) -> float:
    """The whole rig's sustained DC load: GPU limits (or TDPs) + CPU + the rest."""
    return sum(g.power_w for g in build.gpus) + build.cpu_load_w + build.other_w


def sustained_wall_w(build: Build) -> float:
    """The rig's sustained draw at the wall: through each PSU group's efficiency, or at
    the default 80 PLUS Gold efficiency at half load when the build has no [[psu]]."""
    if build.psus:
        return sum(wall_w(ld) for ld in group_loads(build))
    from rigbench.plan.build import DEFAULT_EFFICIENCY, EFFICIENCY_TIERS

    half_load = dict(EFFICIENCY_TIERS[DEFAULT_EFFICIENCY])[0.5]
    return sustained_dc_w(build) / half_load


def predictions(build: Build) -> list[Prediction]:
    spike = math.sqrt(sum(excursion_w(g) ** 2 for g in build.gpus)) + sum(
        g.power_w for g in build.gpus
    )
    dc = sustained_dc_w(build)
    wall = sustained_wall_w(build)
    gpu_w = sum(g.power_w for g in build.gpus)
    return [
        Prediction(
            id="power.sustained_dc_w",
            what="sustained DC load",
            value=dc,
            unit="W",
            basis=(
                f"GPU limits or TDPs {gpu_w:g} W + CPU {build.cpu_load_w:g} W + the rest"
                f" {build.other_w:g} W"
            ),
        ),
        Prediction(
            id="power.spike_dc_w",
            what="millisecond spike, GPUs' spikes added as independent peaks",
            value=spike + build.cpu_load_w + build.other_w,
            unit="W",
            basis="sustained + root-sum-square of each GPU's (k - 1) x TDP excursion",
        ),
        Prediction(
            id="power.wall_w",
            what="sustained draw at the wall",
            value=wall,
            unit="W",
            basis=(
                "DC load through each PSU's efficiency at its load"
                if build.psus
                else "DC load at 80 PLUS Gold's 90 % (no [[psu]] given)"
            ),
        ),
    ]
