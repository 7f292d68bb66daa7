"""Power checks: every check with a rig that passes it and one that fails it, and the seeds'
rigs reported as their builders found them."""

from __future__ import annotations

from pathlib import Path

import pytest

from rigbench.catalog.spikes import DEFAULT_SPIKE_FACTOR, GA102_SPIKE_FACTOR, spike_factor
from rigbench.plan import load_build, plan_build
from rigbench.plan.power import ATX3_EXCURSION, sustained_wall_w
from rigbench.plan.records import PlanReport

BUILDS = Path(__file__).resolve().parent.parent / "examples" / "builds"
RIG = '[rig]\nname = "test"\n'


def _plan(tmp_path: Path, text: str) -> PlanReport:
    path = tmp_path / "rig.toml"
    path.write_text(RIG + text)
    return plan_build(load_build(path))


def _ids(report: PlanReport, severity: str) -> set[str]:
    return {f.id for f in report.findings if f.severity == severity}


def _gpus(model: str, count: int, limit: float | None = None) -> str:
    text = f'[[gpu]]\nmodel = "{model}"\ncount = {count}\n'
    return text + (f"power_limit_w = {limit}\n" if limit is not None else "")


# ------------------------------------------------------------------ spike factors


def test_spike_factors_and_their_sources() -> None:
    from rigbench.catalog import find_gpu

    k, why = spike_factor(find_gpu("RTX 3090"))  # type: ignore[arg-type]
    assert k == GA102_SPIKE_FACTOR and "GA102" in why
    k, why = spike_factor(find_gpu("RTX 5090"))  # type: ignore[arg-type]
    assert k == pytest.approx(738 / 575) and "catalog" in why
    k, why = spike_factor(find_gpu("V100 SXM2 16GB"))  # type: ignore[arg-type]
    assert k == DEFAULT_SPIKE_FACTOR and "assumption" in why
    k, why = spike_factor(find_gpu("RTX A6000"))  # type: ignore[arg-type]
    assert k == DEFAULT_SPIKE_FACTOR and "GeForce" not in why  # a workstation GA102 card


# ------------------------------------------------------------------ the seeds


def test_v100_server_two_psus_fail_on_transients_three_pass(tmp_path: Path) -> None:
    # seed 001: two Dell 1100 W units on one bus drop GPUs on DDP ramps, even at 200 W per GPU
    two = plan_build(load_build(BUILDS / "v100-sxm2-server.toml"))
    (t,) = two.finding("power.psu_transient")
    assert t.severity == "warning" and t.evidence["spike_risk"] == "high"
    # 4 x 300 W + 0.3 x 2 x 120 W CPUs + 200 W other, plus sqrt(4) x (1.5 - 1) x 300 W
    assert t.evidence["spike_w"] == pytest.approx(1200 + 72 + 200 + 2 * 150)
    # the bus is counted one unit short for millisecond ramps
    assert t.evidence["spike_capacity_w"] == pytest.approx(1100)
    assert "3 x 1100 W PSUs on the bus" in t.fix
    assert not two.finding("power.psu_sustained") and not two.finding("power.psu_headroom")
    assert two.exit_code == 1
    text = (BUILDS / "v100-sxm2-server.toml").read_text()
    limited = tmp_path / "v100-200w.toml"
    limited.write_text(text.replace("count = 4 ", "count = 4\npower_limit_w = 200 "))
    at_200 = plan_build(load_build(limited))
    (t200,) = at_200.finding("power.psu_transient")
    assert t200.evidence["spike_risk"] == "high"  # "even with ... lower power levels"

    three = plan_build(load_build(BUILDS / "v100-sxm2-server-3psu.toml"))
    assert not three.finding("power.psu_transient")
    (ok,) = three.finding("power.psu")
    assert ok.severity == "info" and ok.evidence["spike_capacity_w"] == pytest.approx(2200)
    assert three.exit_code == 0


def test_one_server_psu_alone_is_an_error(tmp_path: Path) -> None:
    # seed 001: a single unit "results in a reset of the PSU and system crash"
    text = (BUILDS / "v100-sxm2-server.toml").read_text().replace("count = 2", "count = 1")
    path = tmp_path / "one.toml"
    path.write_text(text)
    r = plan_build(load_build(path))
    assert r.finding("power.psu_sustained") and r.exit_code == 2


def test_iva_1600w_psu_carries_two_3090s() -> None:
    r = plan_build(load_build(BUILDS / "iva-2x3090.toml"))
    (ok,) = r.finding("power.psu")
    # 700 W + 0.3 x 105 W + 100 W, plus sqrt(2) x 0.7 x 350 W
    assert ok.evidence["spike_w"] == pytest.approx(831.5 + 2**0.5 * 245)
    assert ok.evidence["spike_risk"] == "low"
    assert r.exit_code == 0


def test_seed_004_750w_psu_is_a_moderate_risk_not_a_warning() -> None:
    r = plan_build(load_build(BUILDS / "tr1920x-3x3090.toml"))
    (t,) = r.finding("power.psu_transient")
    # the owner's "almost 180W of margin" is 750 - 2 x 285 W of sustained load ...
    assert t.evidence["rated_w"] - t.evidence["sustained_w"] == pytest.approx(180)
    # ... and two cards' spikes reach ~916 W; the rig ran: moderate risk, info
    assert t.evidence["spike_w"] == pytest.approx(570 + 2**0.5 * 245)
    assert t.severity == "info" and t.evidence["spike_risk"] == "moderate"
    (other,) = r.finding("power.psu")
    assert other.evidence["psu"] == "psu[1]"
    assert r.exit_code == 0


def test_redundant_units_are_not_capacity(tmp_path: Path) -> None:
    gpus = _gpus("H100 SXM5 80GB", 8)
    psu = '[[psu]]\nwatts = 3000\ncount = 6\nkind = "server"\nbus = "12v-parallel"\n'
    r = _plan(tmp_path, gpus + psu + "redundant = 3\n")
    g = [f for f in r.findings if f.id.startswith("power.psu")][0]
    assert g.evidence["capacity_w"] == pytest.approx(3 * 3000 * 0.9)
    # 8 x 700 W + 300 W per NVSwitch-board GPU for switches, NICs, DIMMs and fans
    assert g.evidence["sustained_w"] == pytest.approx(8 * 700 + 8 * 300)
    full = _plan(tmp_path, gpus + psu)
    h = [f for f in full.findings if f.id.startswith("power.psu")][0]
    assert h.evidence["capacity_w"] == pytest.approx(6 * 3000 * 0.9)


def test_230v_circuit_is_not_given_the_us_80_percent_rule(tmp_path: Path) -> None:
    base = _gpus("RTX 4090", 2) + "[[psu]]\nwatts = 1600\natx3 = true\n"
    eu = _plan(tmp_path, base + "[wall]\nvolts = 230\namps = 10\n")
    (c,) = eu.finding("power.circuit")
    assert c.evidence["continuous_w"] == pytest.approx(2300)
    us = _plan(tmp_path, base + "[wall]\nvolts = 120\namps = 15\n")
    (u,) = [f for f in us.findings if f.id.startswith("power.circuit")]
    assert u.evidence["continuous_w"] == pytest.approx(1440)


def test_minerva_warns_about_the_circuit_and_passes_on_two() -> None:
    r = plan_build(load_build(BUILDS / "minerva.toml"))
    (c,) = r.finding("power.circuit_continuous")
    # the owner measured ~1550 W at full load
    assert 1500 < c.evidence["wall_w"] < 1600
    assert c.evidence["continuous_w"] == pytest.approx(1440)
    assert "another breaker" in c.fix
    assert r.exit_code == 1


def test_minerva_second_psu_on_another_breaker_clears_the_circuit(tmp_path: Path) -> None:
    text = (BUILDS / "minerva.toml").read_text()
    text = text.replace("circuits = 1", "circuits = 2")
    text = text.replace(
        "[power]",
        '[[psu]]\nwatts = 1000\nefficiency = "platinum"\nfeeds = [2, 3]\ncircuit = 1\n\n[power]',
    )
    text = text.replace("atx3 = false", "atx3 = false\nfeeds = [0, 1]")
    path = tmp_path / "minerva-2psu.toml"
    path.write_text(text)
    r = plan_build(load_build(path))
    assert not r.finding("power.circuit_continuous")
    assert len(r.finding("power.circuit")) == 2


# ------------------------------------------------------------------ each check


def test_sustained_over_the_psu_is_an_error(tmp_path: Path) -> None:
    r = _plan(tmp_path, _gpus("RTX 4090", 2) + "[[psu]]\nwatts = 850\n")
    (e,) = r.finding("power.psu_sustained")
    assert e.severity == "error" and r.exit_code == 2
    assert e.evidence["sustained_w"] == pytest.approx(2 * 450 + 100)
    ok = _plan(tmp_path, _gpus("RTX 4090", 2) + "[[psu]]\nwatts = 2000\n")
    assert not ok.finding("power.psu_sustained")


def test_little_headroom_is_a_warning(tmp_path: Path) -> None:
    # 2 x 300 W + 100 W on 750 W: 93 %
    r = _plan(tmp_path, _gpus("RTX A6000", 2) + "[[psu]]\nwatts = 750\natx3 = true\n")
    assert "power.psu_headroom" in _ids(r, "warning")
    ok = _plan(tmp_path, _gpus("RTX A6000", 2) + "[[psu]]\nwatts = 850\natx3 = true\n")
    assert not ok.finding("power.psu_headroom")


def test_atx3_rating_carries_spikes_an_older_psu_does_not(tmp_path: Path) -> None:
    gpus = _gpus("RTX 3090 Ti", 4, 200) + "[power]\nother_w = 0\n"
    # 800 W sustained, plus sqrt(4) x 0.7 x 450 W = 1,430 W: 1.68x an older 850 W unit
    old = _plan(tmp_path, gpus + "[[psu]]\nwatts = 850\n")
    (t,) = old.finding("power.psu_transient")
    assert t.severity == "warning" and t.evidence["spike_risk"] == "high"
    assert t.evidence["spike_w"] == pytest.approx(800 + 2 * 315)
    new = _plan(tmp_path, gpus + "[[psu]]\nwatts = 850\natx3 = true\n")
    (n,) = new.finding("power.psu_transient")  # within ATX 3.0's 200 % for 100 us
    assert n.severity == "info" and n.evidence["spike_risk"] == "moderate"
    assert n.evidence["spike_capacity_w"] == pytest.approx(850 * ATX3_EXCURSION)


def test_a_power_limit_lowers_the_base_not_the_spikes(tmp_path: Path) -> None:
    psu = "[[psu]]\nwatts = 1000\n[power]\nother_w = 0\n"
    bad = _plan(tmp_path, _gpus("RTX 3090", 3) + psu)
    (e,) = bad.finding("power.psu_sustained")  # 1,050 W on 1,000 W
    limit = e.evidence["safe_power_limit_w"]
    # (1000 W - sqrt(3) x 245 W) / 3, rounded down to 5 W
    assert limit == 190
    good = _plan(tmp_path, _gpus("RTX 3090", 3, limit) + psu)
    assert good.exit_code == 0 and good.finding("power.psu")


def test_no_limit_helps_when_the_system_alone_is_too_much(tmp_path: Path) -> None:
    r = _plan(
        tmp_path,
        _gpus("RTX 3090", 1) + "[[psu]]\nwatts = 300\n[power]\nother_w = 250\ncpu_w = 100\n",
    )
    (e,) = r.finding("power.psu_sustained")
    assert "safe_power_limit_w" not in e.evidence
    assert "a PSU of at least" in e.fix


def test_circuit_over_the_breaker_is_an_error(tmp_path: Path) -> None:
    text = _gpus("RTX 4090", 4) + '[[psu]]\nwatts = 2400\nkind = "atx"\natx3 = true\n'
    r = _plan(tmp_path, text + "[wall]\nvolts = 120\namps = 15\n")
    (e,) = r.finding("power.circuit_breaker")
    assert e.severity == "error" and e.evidence["wall_w"] > 1800
    ok = _plan(tmp_path, text + "[wall]\nvolts = 230\namps = 16\n")
    assert {f.id for f in ok.findings} >= {"power.circuit"}
    assert not ok.finding("power.circuit_breaker")


def test_without_psu_or_wall_the_checks_say_so(tmp_path: Path) -> None:
    r = _plan(tmp_path, _gpus("RTX 3090", 1))
    assert {"power.no_psu", "power.no_wall"} <= _ids(r, "info")
    assert r.exit_code == 0
    assert r.prediction("power.wall_w") is not None


def test_wall_estimate_for_the_cost_command() -> None:
    m = load_build(BUILDS / "minerva.toml")
    assert sustained_wall_w(m) == pytest.approx(1550, rel=0.05)  # seed 000: ~1,550 W


def test_a_three_phase_feed_spreads_a_server_over_its_phases(tmp_path: Path) -> None:
    # DGX H100 (NVIDIA: six 3.3 kW PSUs, 4+2, 10.2 kW max): two PSUs on each phase of a
    # 400 V feed (230 V line-to-neutral), 16 A per phase
    gpus = _gpus("H100 SXM5 80GB", 8) + '[cpu]\nmodel = "Xeon Platinum 8480+"\ncount = 2\n'
    psu = "".join(
        f'[[psu]]\nwatts = 3300\ncount = 2\nkind = "server"\nbus = "12v-parallel"\n'
        f'efficiency = "titanium"\ncircuit = {c}\n' + ("redundant = 1\n" if c < 2 else "")
        for c in range(3)
    )
    three = _plan(tmp_path, gpus + psu + "[wall]\nvolts = 230\namps = 16\nphases = 3\n")
    phases = three.finding("power.circuit")
    assert len(phases) == 3 and not three.finding("power.circuit_breaker")
    total = sum(f.evidence["wall_w"] for f in phases)
    assert all(f.evidence["wall_w"] == pytest.approx(total / 3) for f in phases)
    assert all(f.evidence["continuous_w"] == pytest.approx(230 * 16) for f in phases)
    one = "".join(
        '[[psu]]\nwatts = 3300\ncount = 2\nkind = "server"\nbus = "12v-parallel"\n'
        'efficiency = "titanium"\n' + ("redundant = 1\n" if c < 2 else "")
        for c in range(3)
    )
    single = _plan(tmp_path, gpus + one + "[wall]\nvolts = 230\namps = 32\n")
    (e,) = single.finding("power.circuit_breaker")
    assert e.evidence["wall_w"] == pytest.approx(total)
