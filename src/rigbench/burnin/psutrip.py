"""The PSU-trip finder (`burnin --find-trip --build FILE [--stagger MS]`): step the number of
GPUs that ramp from idle to full load together, 1, 2, ... N, and say at which step the
combined spike goes past what the build's PSU groups carry for milliseconds: the step at
which the supply trips or the 12 V bus sags and GPUs fall off it.

Each GPU's ramp is: idle, then its peak for `spike_ms`, then its sustained draw. Ramping
GPUs start together, or `stagger_ms` apart; the others stay idle. The combined draw per PSU
group (plus the build's budget for CPU and the rest on the group that feeds them) is taken
at its highest instant and compared with the capacity of rigbench.plan.power: what the
group carries for milliseconds (`spike_capacity_w`; a paralleled server bus counts one unit
less, since its current sharing is slower than a GPU's ramp) and above which a trip is
likely (`high_risk_w`). Circuits get the sustained wall draw of the step against their
continuous rating (breakers ride through millisecond spikes).

Where the figures come from: on a simulated rig, its trace (`[telemetry] idle_w`,
`spike_ms`, the highest power_w of its segments as the peak, the power limit as the
sustained draw), stepped through this model. On real GPUs (burnin.psutrip_live) each step
is run: the GPUs ramp, the parent reads their instantaneous power at 100 Hz, and the step's
highest summed instant is compared the same way; a GPU that falls off the bus or a load
worker that dies ends the finder at that step (`observed`), and a measured load above what a
group is rated for that nothing dropped at is `at_risk`, not `trips`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from rigbench.records import Finding, Origin

if TYPE_CHECKING:
    from rigbench.plan.power import SpikeOutcome as Outcome
TRIP_SOURCE = (
    "rigbench.plan.power (PSU group capacity for millisecond ramps; the 4x V100 SXM2 server "
    "write-up: two paralleled 1100 W units dropped GPUs on DDP ramps, three held)"
)


@dataclass(frozen=True, slots=True)
class GpuRamp:
    gpu: int
    idle_w: float
    peak_w: float  # the millisecond overshoot of a ramp
    sustained_w: float
    spike_ms: float | None  # None: not resolved (a measured ramp at 100 Hz)
    source: str


@dataclass(kw_only=True, slots=True)
class GroupAtStep:
    label: str
    load_w: float  # the highest instant: GPUs fed + the system budget where it is fed
    spike_capacity_w: float
    high_risk_w: float
    outcome: Outcome

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(kw_only=True, slots=True)
class TripStep:
    ramping: int  # how many GPUs ramp together at this step
    stagger_ms: float
    gpus_peak_w: float  # the GPUs alone at the highest instant
    groups: list[GroupAtStep]
    circuits: list[dict[str, Any]] = field(default_factory=list)
    measured: bool = False  # run on real GPUs (else the model of a simulated trace)
    observed: str | None = None  # measured: what went wrong (a GPU lost, a worker died)
    gpus_peak_each_w: dict[int, float] = field(default_factory=dict)  # at that instant
    gpus_settled_w: dict[int, float] = field(default_factory=dict)  # measured: once settled
    samples: int | None = None  # measured: telemetry ticks in the step

    @property
    def outcome(self) -> Outcome:
        order: tuple[Outcome, ...] = ("holds", "at_risk", "trips")
        modelled: Outcome = max((g.outcome for g in self.groups), key=order.index, default="holds")
        if not self.measured:
            return modelled
        # measured: a trip is what happened, not what the ratings say would
        if self.observed:
            return "trips"
        return "at_risk" if modelled != "holds" else "holds"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["outcome"] = self.outcome
        return d


def gpu_power_at(r: GpuRamp, start_ms: float | None, t_ms: float) -> float:
    """One GPU's draw at `t_ms` when its ramp starts at `start_ms` (None: stays idle)."""
    if start_ms is None or t_ms < start_ms:
        return r.idle_w
    return r.peak_w if t_ms < start_ms + (r.spike_ms or 0.0) else r.sustained_w


def step_draw(
    ramps: list[GpuRamp], ramping: int, stagger_ms: float
) -> tuple[float, dict[int, float]]:
    """(time in ms, draw per GPU) at the instant the GPUs' summed draw is highest, when the
    first `ramping` GPUs ramp `stagger_ms` apart."""
    starts = {r.gpu: k * stagger_ms if k < ramping else None for k, r in enumerate(ramps)}
    instants = sorted({s for s in starts.values() if s is not None})
    best_t, best = 0.0, {r.gpu: r.idle_w for r in ramps}
    best_sum = -1.0
    for t in instants:
        draw = {r.gpu: gpu_power_at(r, starts[r.gpu], t) for r in ramps}
        if sum(draw.values()) > best_sum:
            best_t, best, best_sum = t, draw, sum(draw.values())
    return best_t, best


def step_at(
    build: Any,
    loads: list[Any],
    ramping: int,
    stagger_ms: float,
    draw: dict[int, float],
    sustained: dict[int, float],
) -> TripStep:
    """One step: `draw` is each GPU's draw at the highest instant, `sustained` its draw once
    settled (build GPU i is GPU i), against the build's PSU groups and circuits."""
    groups: list[GroupAtStep] = []
    per_circuit: dict[int, float] = {}
    for load in loads:
        g = load.group
        total = sum(draw.get(i, 0.0) for i in g.gpus) + load.system_w
        groups.append(
            GroupAtStep(
                label=g.label,
                load_w=total,
                spike_capacity_w=load.spike_capacity_w,
                high_risk_w=load.high_risk_w,
                outcome=load.outcome(total),
            )
        )
        settled = sum(sustained.get(i, 0.0) for i in g.gpus) + load.system_w
        share = min(settled / g.rated_w, 1.0)
        per_circuit[g.circuit] = per_circuit.get(g.circuit, 0.0) + settled / g.efficiency_at(share)
    circuits = []
    wall = build.wall
    if wall is not None:
        continuous = float(wall.volts) * float(wall.amps) * float(wall.continuous_factor)
        circuits = [
            {
                "circuit": c,
                "wall_sustained_w": round(w, 1),
                "continuous_w": continuous,
                "over": w >= continuous,
            }
            for c, w in sorted(per_circuit.items())
        ]
    return TripStep(
        ramping=ramping,
        stagger_ms=stagger_ms,
        gpus_peak_w=sum(draw.values()),
        groups=groups,
        circuits=circuits,
    )


def find_trip(build: Any, ramps: list[GpuRamp], stagger_ms: float) -> list[TripStep]:
    """One step per number of GPUs ramping together (1..N), build GPU i as ramp GPU i."""
    from rigbench.plan.power import group_loads

    loads = group_loads(build)
    steps = []
    for k in range(1, len(ramps) + 1):
        _, draw = step_draw(ramps, k, stagger_ms)
        sustained = {r.gpu: (r.sustained_w if n < k else r.idle_w) for n, r in enumerate(ramps)}
        steps.append(step_at(build, loads, k, stagger_ms, draw, sustained))
    return steps


def first_trip(steps: list[TripStep]) -> int | None:
    """The fewest GPUs ramping together at which a group trips (None: every step holds)."""
    return next((s.ramping for s in steps if s.outcome == "trips"), None)


@dataclass(kw_only=True, slots=True)
class TripReport:
    build: str
    simultaneous: list[TripStep]
    staggered: list[TripStep] | None
    ramps: list[GpuRamp]
    stopped: str | None = None  # measured: why the finder ended before its last step
    interrupted: bool = False  # measured: stopped with Ctrl-C (or SIGTERM)

    @property
    def trips(self) -> bool:
        return first_trip(self.simultaneous) is not None or (
            self.measured and bool(self.staggered) and first_trip(self.staggered or []) is not None
        )

    @property
    def measured(self) -> bool:
        return any(s.measured for s in self.simultaneous + (self.staggered or []))

    def staggered_step(self, k: int) -> TripStep:
        assert self.staggered is not None
        return next(s for s in self.staggered if s.ramping == k)

    def findings(self) -> list[Finding]:
        """One finding: the first step that trips (an error), or that every step holds."""
        k = first_trip(self.simultaneous)
        ks = first_trip(self.staggered) if self.staggered else None
        simulated = bool(self.ramps) and self.ramps[0].source == "simulated trace"
        origin: Origin = "assumption" if simulated else "measurement"
        if not self.simultaneous and not self.staggered:
            return [
                Finding(
                    id="psu.trip_finder.not_run",
                    severity="error",
                    title=f"no step was measured: {self.stopped or 'no GPU to ramp'}",
                    source=TRIP_SOURCE,
                    origin=origin,
                )
            ]
        if k is None and ks is not None and self.staggered:  # measured: staggered runs first
            st = self.staggered_step(ks)
            return [
                Finding(
                    id="psu.trip_finder.trips",
                    severity="error",
                    title=f"{st.observed or 'a PSU group trips'} when {ks} GPUs ramped "
                    f"{st.stagger_ms:g} ms apart",
                    evidence={"gpus_ramping": ks, "stagger_ms": st.stagger_ms},
                    why="a supply or a shared 12 V bus that cannot follow the ramp sags: GPUs "
                    "fall off the bus (Xid 79) or the PSU shuts down",
                    fix="add a unit to the PSU group, or put fewer GPUs on it",
                    source=TRIP_SOURCE,
                    origin=origin,
                    gpus=list(range(ks)),
                )
            ]
        if k is None:
            held = len(self.simultaneous)
            risky = [s for s in self.simultaneous if s.outcome == "at_risk"]
            if risky and self.measured:
                s0 = risky[0]
                worst = max(s0.groups, key=lambda g: g.load_w / g.spike_capacity_w)
                return [
                    Finding(
                        id="psu.trip_finder.at_risk",
                        severity="warning",
                        title=f"{worst.label}: {worst.load_w:.0f} W measured when {s0.ramping} "
                        f"GPUs ramped together, above the {worst.spike_capacity_w:.0f} W it "
                        "is rated to carry for milliseconds; it held this time",
                        evidence={"gpus_ramping": s0.ramping, "load_w": round(worst.load_w, 1)},
                        source=TRIP_SOURCE,
                        origin=origin,
                    )
                ]
            return [
                Finding(
                    id="psu.trip_finder.ok",
                    severity="ok",
                    title=f"every PSU group holds {held} GPUs ramping together",
                    source=TRIP_SOURCE,
                    origin=origin,
                )
            ]
        step = self.simultaneous[k - 1]
        worst = max(step.groups, key=lambda g: g.load_w / g.spike_capacity_w)
        # not "lower the power limits": the limiter acts on a ~100 ms average and spikes follow
        # the TDP (rigbench.plan.power); the V100 server's GPUs dropped at 200 W limits too
        fix = "add a unit to the PSU group (a third unit fixed the V100 server write-up's rig)"
        if self.staggered and ks is None:
            fix = f"stagger the GPUs' ramps by {self.staggered[0].stagger_ms:g} ms, or " + fix
        title = f"{worst.label} trips when {k} GPUs ramp together"
        if step.observed:
            title = f"{step.observed} when {k} GPUs ramped together ({worst.label})"
        return [
            Finding(
                id="psu.trip_finder.trips",
                severity="error",
                title=title,
                evidence={
                    "gpus_ramping": k,
                    "load_w": round(worst.load_w, 1),
                    "spike_capacity_w": worst.spike_capacity_w,
                    "staggered_trips_at": ks,
                },
                why="a supply or a shared 12 V bus that cannot follow the ramp sags: GPUs fall "
                "off the bus (Xid 79) or the PSU shuts down",
                fix=fix,
                source=TRIP_SOURCE,
                origin=origin,
                gpus=list(range(k)),
            )
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "build": self.build,
            "measured": self.measured,
            "stopped": self.stopped,
            "findings": [f.to_dict() for f in self.findings()],
            "ramps": [asdict(r) for r in self.ramps],
            "simultaneous": [s.to_dict() for s in self.simultaneous],
            "staggered": [s.to_dict() for s in self.staggered] if self.staggered else None,
            "first_trip": {
                "simultaneous": first_trip(self.simultaneous),
                "staggered": first_trip(self.staggered) if self.staggered else None,
            },
        }


def ramps_from_source(source: Any) -> list[GpuRamp]:
    """Each GPU's ramp from a telemetry source that can give it (a simulated rig's trace)."""
    from rigbench.errors import BadInput

    figures = getattr(source, "ramp_figures", None)
    if figures is None:
        raise BadInput(
            "--find-trip needs NVIDIA GPUs to ramp (none here), or a simulated rig "
            "(--simulate FILE) to step through the model"
        )
    got = figures()
    if isinstance(got, str):
        raise BadInput(f"--find-trip: {got}")
    return [GpuRamp(gpu=g, source="simulated trace", **f) for g, f in sorted(got.items())]


def run_finder(source: Any, build: Any, stagger_ms: float | None) -> TripReport:
    ramps = ramps_from_source(source)
    return TripReport(
        build=str(build.path),
        simultaneous=find_trip(build, ramps, 0.0),
        staggered=find_trip(build, ramps, stagger_ms) if stagger_ms else None,
        ramps=ramps,
    )
