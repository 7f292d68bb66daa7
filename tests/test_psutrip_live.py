"""The PSU-trip finder's measured path (burnin.psutrip_live): its timetable, how a step is
read from the telemetry, what ends it, and whole runs on simulated rigs (CPU stand-ins
under the rig's trace, the code a real GPU runs) with every step stored as it is measured."""

from __future__ import annotations

from pathlib import Path

import pytest

from rigbench.burnin.psutrip_live import measure_step, observed, phases_for, plan_steps
from rigbench.hw.telemetry import TelemetryEvent

BUILDS = Path(__file__).resolve().parent.parent / "examples" / "builds"


def test_each_count_ramps_staggered_first_then_together() -> None:
    steps = plan_steps(2, 50.0, first=100.0, hold_s=3.0, rest_s=2.0)
    assert [(s.ramping, s.stagger_ms) for s in steps] == [(1, 50), (1, 0), (2, 50), (2, 0)]
    assert [s.start for s in steps] == [100.0, 105.0, 110.0, 115.05]
    gpu0, gpu1 = phases_for(steps, 2)
    assert [p.index for p in gpu0] == [0, 1, 2, 3]  # GPU 0 ramps in every step
    assert [p.index for p in gpu1] == [2, 3]  # GPU 1 stays idle while one GPU ramps
    staggered = next(p for p in gpu1 if p.index == 2)
    assert staggered.start == pytest.approx(110.05) and staggered.end == steps[2].end
    assert next(p for p in gpu1 if p.index == 3).start == 115.05
    assert all(p.kind == "full" for p in gpu0 + gpu1)
    assert [(s.ramping, s.stagger_ms) for s in plan_steps(2, None, 0, 1, 1)] == [(1, 0), (2, 0)]


def test_a_step_is_its_highest_summed_tick_and_its_settled_tail() -> None:
    rows = [
        {0: 60.0, 1: 60.0},
        {0: 700.0, 1: 100.0},  # GPU 0's spike while GPU 1 has not ramped yet
        {0: 500.0, 1: 450.0},  # the highest sum: this tick is the step's peak
        {1: 900.0},  # GPU 0 not read this tick: not summed (it would read low)
        {0: 400.0, 1: 400.0},
        {0: 380.0, 1: 420.0},
    ]
    draw, settled = measure_step(rows, [0, 1])
    assert draw == {0: 500.0, 1: 450.0}
    assert settled == {0: 1280 / 3, 1: 1270 / 3}  # the last half of the 6 complete ticks
    assert measure_step([], [0]) == ({}, {})


def test_what_ends_the_finder_a_lost_gpu_first_then_an_xid_then_a_dead_worker() -> None:
    labels = {0: "GPU0", 3: "GPU3"}
    lost = TelemetryEvent(t=1.0, gpu=3, kind="lost")
    xid = TelemetryEvent(t=1.0, gpu=0, kind="xid", code=79)
    assert observed([], {}, labels) is None
    assert observed([xid, lost], {"GPU0": "x"}, labels) == "GPU0, GPU3 fell off the bus (Xid 79)"
    assert observed([lost], {"GPU0": "x"}, labels) == "GPU3 fell off the bus"
    xid48 = TelemetryEvent(t=1.0, gpu=0, kind="xid", code=48)
    assert observed([xid48], {"GPU0": "x"}, labels) == "GPU0 Xid 48"
    assert observed([], {"GPU0": "worker died (exit code -9)"}, labels) == (
        "GPU0 load worker died (exit code -9)"
    )


def _live(
    rig: Path, build: str, stagger: float | None, db: Path, hold_s: float = 0.6, rest_s: float = 0.4
) -> tuple[object, list[dict]]:
    from rigbench.burnin.psutrip_live import run_live_finder
    from rigbench.burnin.run import plan_devices
    from rigbench.hw.simulated import SimulatedBackend
    from rigbench.plan.build import load_build
    from rigbench.records import Run
    from rigbench.store import Store

    backend = SimulatedBackend.from_file(rig)
    source = backend.telemetry()
    lost = dict(source.lost_at)  # type: ignore[attr-defined]
    source.close()
    r = backend.rig()
    devices, on_gpu = plan_devices(
        r, [g.index for g in r.gpus], backend_kind=backend.kind, lost_at=lost
    )
    store = Store.open(db)
    run = Run(command="burnin")
    store.start_run(run)
    assert run.id is not None
    report = run_live_finder(
        backend, devices, on_gpu, load_build(BUILDS / build), stagger, store, run.id,
        hold_s=hold_s, rest_s=rest_s,
    )  # fmt: skip
    return report, [x.params for x in store.results(run.id)]


def test_a_healthy_rig_is_stepped_and_every_step_is_stored_as_measured(
    tmp_path: Path, examples: Path
) -> None:
    from rigbench.plan.build import load_build
    from rigbench.plan.power import group_loads

    report, stored = _live(examples / "iva-2x3090.toml", "iva-2x3090.toml", 50.0, tmp_path / "r.db")
    doc = report.to_dict()  # type: ignore[attr-defined]
    (budget,) = group_loads(load_build(BUILDS / "iva-2x3090.toml"))  # one PSU: CPU and the rest
    assert doc["measured"] and doc["stopped"] is None
    assert [(s["ramping"], s["stagger_ms"]) for s in doc["staggered"]] == [(1, 50), (2, 50)]
    assert [s["ramping"] for s in doc["simultaneous"]] == [1, 2]
    # a "started" record before each ramp, the measured one after: a trip leaves the last
    for step in doc["simultaneous"] + doc["staggered"]:
        assert step["samples"] > 10 and step["outcome"] == "holds" and step["observed"] is None
        # the trace: every GPU at 85 % of its 350 W limit, ramping or not (it is not loaded)
        assert step["gpus_peak_w"] == pytest.approx(2 * 0.85 * 350)
        assert step["groups"][0]["load_w"] == pytest.approx(2 * 0.85 * 350 + budget.system_w)
    assert [p["state"] for p in stored] == ["started", "measured"] * 4
    assert [p["ramping"] for p in stored] == [1, 1, 1, 1, 2, 2, 2, 2]
    assert [f["id"] for f in doc["findings"]] == ["psu.trip_finder.ok"]
    assert {r["source"] for r in doc["ramps"]} == {"measured (instantaneous power at 100 Hz)"}


def test_a_gpu_lost_before_any_ramp_is_not_called_a_trip(tmp_path: Path, examples: Path) -> None:
    text = (examples / "v100-sxm2-server-transients.toml").read_text()
    rig = tmp_path / "lost-at-once.toml"
    rig.write_text(
        text.replace("lost_at = 2.5", "lost_at = 0.0").replace("t = 2.5\ngpu", "t = 0.0\ngpu")
    )
    report, stored = _live(rig, "v100-sxm2-server.toml", None, tmp_path / "r.db")
    doc = report.to_dict()  # type: ignore[attr-defined]
    assert doc["simultaneous"] == [] and stored == []
    assert "GPU3 fell off the bus (Xid 79) before the first ramp" in doc["stopped"]
    (f,) = doc["findings"]
    assert f["id"] == "psu.trip_finder.not_run" and "not a PSU trip" in f["title"]


def test_the_finder_stops_at_the_step_a_gpu_falls_off_and_keeps_what_came_before(
    tmp_path: Path, examples: Path
) -> None:
    text = (examples / "v100-sxm2-server-transients.toml").read_text()
    rig = tmp_path / "lost-later.toml"
    rig.write_text(text.replace("2.5", "6.0"))  # the Xid 79 and the loss, later
    report, stored = _live(rig, "v100-sxm2-server.toml", None, tmp_path / "r.db", 1.2, 0.6)
    doc = report.to_dict()  # type: ignore[attr-defined]
    steps = doc["simultaneous"]
    if not steps:  # the stand-ins took over 6 s to start: lost before any ramp
        assert "before the first ramp" in doc["stopped"]
        return
    # nothing dropped in the steps before the loss (the trace's pulses put them at_risk on the
    # two-unit bus, measured, not tripped); the step the GPU was lost in ends the finder,
    # and nothing runs after it
    *before, last = steps
    assert last["observed"] == "GPU3 fell off the bus (Xid 79)" and last["outcome"] == "trips"
    assert all(s["observed"] is None and s["outcome"] != "trips" for s in before)
    assert len(steps) < 4
    assert doc["stopped"] == f"stopped at {last['ramping']} GPU(s) ramping: {last['observed']}"
    assert [p["state"] for p in stored] == ["started", "measured"] * len(steps)
    assert doc["first_trip"]["simultaneous"] == last["ramping"]
