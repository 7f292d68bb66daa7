"""Power checks: every check with a rig that passes it and one that fails it, and the seeds'
rigs reported as their builders found them."""

from __future__ import annotations

from pathlib import Path

import pytest

from rigbench.plan import load_build, plan_build
from rigbench.plan.power import (
    ATX3_EXCURSION,
    DEFAULT_SPIKE_FACTOR,
    GA102_SPIKE_FACTOR,
    SHARE_FACTOR,
    spike_factor,
    sustained_wall_w,
)
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


# ------------------------------------------------------------------ the seeds


def test_v100_server_two_psus_fail_on_transients_three_pass() -> None:
    two = plan_build(load_build(BUILDS / "v100-sxm2-server.toml"))
    (t,) = two.finding("power.psu_transient")
    assert t.severity == "warning"
    # 4 x 300 W x 1.5 + 2 x 120 W CPUs + 200 W other, on 2 x 1100 W counted at 90 %
    assert t.evidence["spike_w"] == pytest.approx(4 * 300 * 1.5 + 240 + 200)
    assert t.evidence["spike_capacity_w"] == pytest.approx(2 * 1100 * SHARE_FACTOR)
    assert "3 x 1100 W PSUs on the bus" in t.fix
    assert not two.finding("power.psu_sustained") and not two.finding("power.psu_headroom")
    assert two.exit_code == 1

    three = plan_build(load_build(BUILDS / "v100-sxm2-server-3psu.toml"))
    assert not three.finding("power.psu_transient")
    (ok,) = three.finding("power.psu")
    assert ok.severity == "info" and ok.evidence["spike_capacity_w"] == pytest.approx(2970)
    assert three.exit_code == 0


def test_iva_1600w_psu_carries_two_3090s() -> None:
    r = plan_build(load_build(BUILDS / "iva-2x3090.toml"))
    (ok,) = r.finding("power.psu")
    assert ok.evidence["spike_w"] == pytest.approx(2 * 350 * 1.7 + 105 + 100)
    assert ok.evidence["spike_w"] < 1600
    assert r.exit_code == 0


def test_seed_004_750w_psu_warns_about_two_3090_spikes() -> None:
    r = plan_build(load_build(BUILDS / "tr1920x-3x3090.toml"))
    (t,) = r.finding("power.psu_transient")
    # the owner's "almost 180W of margin" is 750 - 2 x 285 W of sustained load ...
    assert t.evidence["rated_w"] - t.evidence["sustained_w"] == pytest.approx(180)
    # ... but two cards spiking together reach ~970 W
    assert t.evidence["spike_w"] == pytest.approx(2 * 285 * 1.7)
    assert t.evidence["safe_power_limit_w"] == 220
    assert "nvidia-smi -pl 220" in t.fix
    # the other PSU (GPU 2 + system) passes
    (other,) = r.finding("power.psu")
    assert other.evidence["psu"] == "psu[1]"


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
    gpus = _gpus("RTX 3090", 2)
    old = _plan(tmp_path, gpus + "[[psu]]\nwatts = 1000\n")
    assert "power.psu_transient" in _ids(old, "warning")
    new = _plan(tmp_path, gpus + "[[psu]]\nwatts = 1000\natx3 = true\n")
    assert not new.finding("power.psu_transient")
    (ok,) = new.finding("power.psu")
    assert ok.evidence["spike_capacity_w"] == pytest.approx(1000 * ATX3_EXCURSION)


def test_a_power_limit_makes_it_safe(tmp_path: Path) -> None:
    bad = _plan(tmp_path, _gpus("RTX 3090", 2) + "[[psu]]\nwatts = 1000\n")
    (t,) = bad.finding("power.psu_transient")
    limit = t.evidence["safe_power_limit_w"]
    assert limit == 260  # (1000 W - 100 W other) / (2 x 1.7), rounded down to 5 W
    good = _plan(tmp_path, _gpus("RTX 3090", 2, limit) + "[[psu]]\nwatts = 1000\n")
    assert good.exit_code == 0


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
    assert sustained_wall_w(m) == pytest.approx(1560, abs=10)
