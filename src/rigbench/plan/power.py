"""Power checks of a build: sustained draw and millisecond spikes per PSU group, the
PSU's transient rating, wall draw per circuit against its breaker, and the GPU power limit
that would make each one safe.

Per PSU group (one ATX PSU, or server PSUs paralleled on one 12 V bus):

* sustained DC load `S = sum(P_i) + C + O` where `P_i` is each fed GPU's power limit (its
  catalog TDP when none is set), and the CPU `C` and the rest `O` ([power] cpu_w, other_w)
  count on the group that feeds the system;
* spike `K = sum(k_i * P_i) + C + O`: data-parallel GPUs step in lockstep, so their
  millisecond spikes coincide (the 4×V100 SXM2 server write-up: four V100s ramping together dropped
  off the bus);
  `k_i` is the GPU's spike factor (`spike_factor`);
* capacity: rated watts, times `SHARE_FACTOR` when several units share a bus; against the
  spike, an ATX 3.0 unit counts `ATX3_EXCURSION` (160 %, its 10 ms rating) of that, any
  other unit 100 %;
* the limit that makes it safe, the same for every GPU of the group:
  `L = min((cap_spike - C - O) / sum(k_i), (HEADROOM * cap - C - O) / n)`.

Per wall circuit: `W = sum(S_g / eff_g(S_g / rated_g))` over the groups plugged into it,
against `volts * amps` (the breaker) and `continuous_factor` of it (a training run is a
continuous load: 3 hours or more under the US NEC). Spikes of milliseconds do not trip
breakers, whose fastest (magnetic) trip needs several times their rating.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rigbench.catalog import GpuSpec
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

# Spike factor of GeForce Ampere GA102 cards (RTX 3080/3090/3090 Ti) when the catalog has no
# measurement: millisecond peaks of about 1.7x board power. An assumption anchored on three
# owners' reports in our seeds (3090s "peaking up to 500 watts" (001), "spikes up to 600W"
# (002, 004) from a 350 W card) and on Igor's Lab's interval measurements of the RTX 3090
# FE that made NVIDIA's 750 W PSU advice (reported by
# https://hardzone.es/noticias/tarjetas-graficas/nvidia-rtx-3090-fuente-alimentacion-750-vatios/).
GA102_SPIKE_FACTOR = 1.7
# Any other GPU without a measurement: 1.5x. An assumption within the measured range of a
# recent card (RTX 5090 FE, Igor's Lab: 738 W for up to 10 ms = 1.28x and 901 W under 1 ms =
# 1.57x of its 575 W) and far below the 3x for 100 us that PCIe CEM 5.0 allows a card.
DEFAULT_SPIKE_FACTOR = 1.5

# Paralleled supplies share current within about 10 % at best (a current-share bus balances
# them, it does not make them equal): the bus is counted at 90 % of the sum. An assumption.
SHARE_FACTOR = 0.9
# Sustained load above this share of a PSU's capacity leaves no room: a warning.
HEADROOM = 0.9

_LIMIT_CAVEAT = (
    "a power limit acts on an average over ~100 ms; millisecond spikes shrink less than the"
    " limit (the 4×V100 SXM2 server write-up saw >300 W peaks at a 200 W limit), and locking "
    "clocks (nvidia-smi -lgc,"
    " -ac on V100) cuts them more"
)


def spike_factor(spec: GpuSpec) -> tuple[float, str]:
    """How far one GPU's millisecond spikes go above its power limit, and why we think so."""
    if spec.transient_peak_w is not None and spec.tdp_w:
        k = spec.transient_peak_w / spec.tdp_w
        return k, (
            f"catalog: {spec.transient_peak_w:g} W measured at {spec.tdp_w:g} W"
            f" ({spec.source_for('transient_peak_w')})"
        )
    if spec.vendor == "NVIDIA" and "GA102" in spec.architecture and spec.form_factor == "pcie":
        return GA102_SPIKE_FACTOR, (
            f"assumption: GeForce Ampere (GA102) spikes to ~{GA102_SPIKE_FACTOR:g}x for"
            " milliseconds (owners report 500-600 W from 350 W 3090s; Igor's Lab interval"
            " measurements)"
        )
    return DEFAULT_SPIKE_FACTOR, (
        f"assumption: no spike measurement for the {spec.name}; {DEFAULT_SPIKE_FACTOR:g}x"
        " (measured cards: 1.3-1.6x at 1-10 ms)"
    )


@dataclass(frozen=True, slots=True)
class GroupLoad:
    group: PsuGroup
    gpus: tuple[GpuUnit, ...]
    system_w: float
    sustained_w: float
    spike_w: float
    capacity_w: float  # against sustained load
    spike_capacity_w: float  # against spikes
    spike_basis: str

    @property
    def spike_sum_k(self) -> float:
        return sum(spike_factor(g.spec)[0] for g in self.gpus)

    def safe_limit_w(self) -> float | None:
        """The power limit, the same for every GPU of the group, under which both the
        spike and the sustained load fit; None when no GPU is fed or nothing would."""
        if not self.gpus:
            return None
        by_spike = (self.spike_capacity_w - self.system_w) / self.spike_sum_k
        by_sustained = (HEADROOM * self.capacity_w - self.system_w) / len(self.gpus)
        limit = min(by_spike, by_sustained)
        return math.floor(limit / 5) * 5 if limit > 0 else None


def group_loads(build: Build) -> list[GroupLoad]:
    loads = []
    system_w = build.cpu_w + build.other_w
    for group in build.psus:
        gpus = tuple(build.gpus[i] for i in group.gpus)
        sys_w = system_w if group.system else 0.0
        sustained = sum(g.power_w for g in gpus) + sys_w
        spike = sum(spike_factor(g.spec)[0] * g.power_w for g in gpus) + sys_w
        share = SHARE_FACTOR if group.parallel and group.units > 1 else 1.0
        capacity = group.rated_w * share
        if group.atx3:
            spike_cap = capacity * ATX3_EXCURSION
            basis = f"ATX 3.0: {ATX3_EXCURSION:.0%} of rated for 10 ms ({ATX3_SOURCE})"
        elif group.kind == "server":
            spike_cap = capacity
            basis = "a server PSU promises its rating, no more: no excursion rating"
        else:
            spike_cap = capacity
            basis = (
                "a pre-ATX 3.0 PSU promises only its rating; its over-current protection may"
                " trip on a spike above it"
            )
        if share < 1:
            basis += f"; {group.units} units on one bus counted at {share:.0%} (uneven sharing)"
        loads.append(GroupLoad(group, gpus, sys_w, sustained, spike, capacity, spike_cap, basis))
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
            )
        ]
    findings = []
    for load in group_loads(build):
        g = load.group
        name = _psu_name(g)
        sus_share = load.sustained_w / load.capacity_w
        spike_share = load.spike_w / load.spike_capacity_w
        evidence = {
            "psu": g.label,
            "feeds": _feeds(load),
            "rated_w": g.rated_w,
            "capacity_w": load.capacity_w,
            "spike_capacity_w": load.spike_capacity_w,
            "sustained_w": load.sustained_w,
            "spike_w": load.spike_w,
            "system_w": load.system_w,
            "gpu_w": [gpu.power_w for gpu in load.gpus],
            "spike_factors": [round(spike_factor(gpu.spec)[0], 3) for gpu in load.gpus],
        }
        limit = load.safe_limit_w()
        if limit is not None:
            evidence["safe_power_limit_w"] = limit
        factors = sorted({spike_factor(gpu.spec)[1] for gpu in load.gpus})
        limits = " + ".join(f"{gpu.power_w:g}" for gpu in load.gpus)
        system = f", plus {load.system_w:g} W of CPU and the rest," if load.system_w else ""
        spike_why = (
            f"GPUs training together spike at once: {limits} W of GPU limits x spike"
            f" factor{system} reach {load.spike_w:,.0f} W; {load.spike_basis}. Spike factors:"
            f" {'; '.join(factors)}"
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
                        f" over its {load.capacity_w:,.0f} W"
                    ),
                    why="the PSU cannot carry the steady load: it will shut down under training",
                    fix=_fix(build, load, limit, sustained=True),
                    evidence=evidence,
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
                        f"above {HEADROOM:.0%} a PSU runs hot and loud with no room for spikes"
                        " or a hotter day"
                    ),
                    fix=_fix(build, load, limit, sustained=True),
                    evidence=evidence,
                )
            )
        if spike_share > 1 and load.gpus:
            problems = True
            findings.append(
                Finding(
                    id="power.psu_transient",
                    severity="warning",
                    title=(
                        f"{name}: GPU spikes reach ~{load.spike_w:,.0f} W,"
                        f" {spike_share:.0%} of the {load.spike_capacity_w:,.0f} W it"
                        " carries for milliseconds"
                    ),
                    why=spike_why + ". A trip shuts the rig down or, on a 12 V bus, sags"
                    " the voltage until GPUs drop off",
                    fix=_fix(build, load, limit, sustained=False),
                    evidence=evidence,
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
                        f" ({spike_share:.0%} of {load.spike_capacity_w:,.0f} W)"
                    ),
                    why=spike_why or "no GPU on this PSU",
                    evidence=evidence,
                )
            )
    return findings


def _fix(build: Build, load: GroupLoad, limit: float | None, *, sustained: bool) -> str:
    g = load.group
    need = max(
        load.spike_w if not g.atx3 else load.spike_w / ATX3_EXCURSION, load.sustained_w / HEADROOM
    )
    options = []
    if limit is not None and load.gpus and limit < max(gpu.power_w for gpu in load.gpus):
        options.append(
            f"cap each of its GPUs at {limit:g} W (nvidia-smi -pl {limit:g})"
            + ("" if sustained else f"; {_LIMIT_CAVEAT}")
        )
    if g.parallel or g.kind == "server":
        each = g.watts_each[0]
        share = SHARE_FACTOR
        units = math.ceil(max(load.spike_w, load.sustained_w / HEADROOM) / (each * share))
        if units > g.units:
            options.append(
                f"put {units} x {each:g} W PSUs on the bus (counted at {share:.0%} each)"
            )
    else:
        options.append(f"a PSU of at least {math.ceil(need / 50) * 50:,} W")
        if not g.atx3:
            atx3_need = max(load.spike_w / ATX3_EXCURSION, load.sustained_w / HEADROOM)
            options.append(
                f"an ATX 3.0 PSU of at least {math.ceil(atx3_need / 50) * 50:,} W (rated for"
                f" {ATX3_EXCURSION:.0%} over 10 ms)"
            )
        if len(load.gpus) > 1:
            options.append("feed some of its GPUs from a second PSU")
    return "; or ".join(options)


def check_circuits(build: Build) -> list[Finding]:
    wall = build.wall
    if wall is None:
        return [
            Finding(
                id="power.no_wall",
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
    continuous_w = breaker_w * wall.continuous_factor
    for circuit in range(wall.circuits):
        on = [ld for ld in loads if ld.group.circuit == circuit]
        if not on:
            continue
        draw = sum(wall_w(ld) for ld in on)
        labels = ", ".join(ld.group.label for ld in on)
        evidence = {
            "circuit": circuit,
            "psus": labels,
            "wall_w": draw,
            "breaker_w": breaker_w,
            "continuous_w": continuous_w,
            "volts": wall.volts,
            "amps": wall.amps,
            "continuous_factor": wall.continuous_factor,
            "amps_drawn": draw / wall.volts,
        }
        what = (
            f"circuit {circuit} ({wall.volts:g} V, {wall.amps:g} A breaker; {labels}):"
            f" ~{draw:,.0f} W ({draw / wall.volts:.1f} A) from the wall under load"
        )
        why = (
            f"sustained DC load through each PSU's efficiency; the breaker carries"
            f" {breaker_w:,.0f} W, a continuous load (3 h or more) {continuous_w:,.0f} W"
            f" ({wall.continuous_factor:.0%})"
        )
        limit = _circuit_limit(build, on, continuous_w)
        fix = (
            "split the rig over two circuits: a second PSU on another breaker ([wall]"
            " circuits = 2, circuit = 1 on that [[psu]])"
        )
        if limit is not None:
            evidence["safe_power_limit_w"] = limit
            fix += f"; or cap the GPUs on it at {limit:g} W"
        if draw > breaker_w:
            findings.append(
                Finding(
                    id="power.circuit_breaker",
                    severity="error",
                    title=what + f", over the {breaker_w:,.0f} W breaker",
                    why=why,
                    fix=fix,
                    evidence=evidence,
                )
            )
        elif draw > continuous_w:
            findings.append(
                Finding(
                    id="power.circuit_continuous",
                    severity="warning",
                    title=what + f", over the {continuous_w:,.0f} W a continuous load may draw",
                    why=why + "; a long run can trip it or heat the wiring",
                    fix=fix,
                    evidence=evidence,
                )
            )
        else:
            findings.append(
                Finding(id="power.circuit", severity="info", title=what, why=why, evidence=evidence)
            )
    return findings


def wall_w(load: GroupLoad) -> float:
    """AC draw of a group under its sustained load."""
    g = load.group
    return load.sustained_w / g.efficiency_at(load.sustained_w / g.rated_w)


def _circuit_limit(build: Build, on: list[GroupLoad], continuous_w: float) -> float | None:
    gpus = [gpu for ld in on for gpu in ld.gpus]
    if not gpus:
        return None
    draw = sum(wall_w(ld) for ld in on)
    dc = sum(ld.sustained_w for ld in on)
    efficiency = dc / draw
    system = sum(ld.system_w for ld in on)
    limit = (continuous_w * efficiency - system) / len(gpus)
    return math.floor(limit / 5) * 5 if limit > 0 else None


def sustained_dc_w(build: Build) -> float:
    """The whole rig's sustained DC load: GPU limits (or TDPs) + CPU + the rest."""
    return sum(g.power_w for g in build.gpus) + build.cpu_w + build.other_w


def sustained_wall_w(build: Build) -> float:
    """The rig's sustained draw at the wall: through each PSU group's efficiency, or at
    the default 80 PLUS Gold efficiency at half load when the build has no [[psu]]."""
    if build.psus:
        return sum(wall_w(ld) for ld in group_loads(build))
    from rigbench.plan.build import DEFAULT_EFFICIENCY, EFFICIENCY_TIERS

    half_load = dict(EFFICIENCY_TIERS[DEFAULT_EFFICIENCY])[0.5]
    return sustained_dc_w(build) / half_load


def predictions(build: Build) -> list[Prediction]:
    spike = sum(spike_factor(g.spec)[0] * g.power_w for g in build.gpus)
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
                f"GPU limits or TDPs {gpu_w:g} W + CPU {build.cpu_w:g} W + the rest"
                f" {build.other_w:g} W"
            ),
        ),
        Prediction(
            id="power.spike_dc_w",
            what="millisecond spike, all GPUs at once",
            value=spike + build.cpu_w + build.other_w,
            unit="W",
            basis="each GPU's limit x its spike factor, plus CPU and the rest",
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
