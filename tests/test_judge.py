"""The judgement layer's one severity scale and one exit-code mapping."""

from __future__ import annotations

import pytest

from rigbench.judge import Finding, Judgement, exit_code_for, worst


def test_worst_orders_error_before_warning_before_info() -> None:
    assert worst(["ok", "info", "warning", "skipped"]) == "warning"
    assert worst(["skipped", "error", "warning"]) == "error"
    assert worst([]) == "ok"


@pytest.mark.parametrize(
    ("severities", "code"),
    [([], 0), (["ok", "info", "skipped"], 0), (["ok", "warning"], 1), (["warning", "error"], 2)],
)
def test_exit_code_follows_the_worst_finding(severities: list[str], code: int) -> None:
    findings = [Finding(id=f"x.{i}", severity=s, title="t") for i, s in enumerate(severities)]  # type: ignore[arg-type]
    assert exit_code_for(findings) == code


def test_a_severity_outside_the_scale_is_refused() -> None:
    with pytest.raises(ValueError, match="severity"):
        Finding(id="x", severity="fatal", title="t")  # type: ignore[arg-type]


def test_verdicts_map_onto_the_severity_scale() -> None:
    assert Judgement(verdict="normal").severity == "ok"
    assert Judgement(verdict="below_normal", cause="power_capped").severity == "warning"
    assert Judgement(verdict="fault", cause="wrong_data").severity == "error"
    assert Judgement(verdict="no_reference").severity == "info"


def test_finding_json_round_trip_keeps_every_field() -> None:
    f = Finding(
        id="power.psu_transient",
        severity="warning",
        title="spikes may trip the PSU",
        evidence={"peak_w": 1234.56789, "gpus": (0, 1)},
        source="Intel ATX 3.0 design guide",
        origin="plan",
    )
    d = f.to_dict()
    assert d["evidence"] == {"peak_w": 1234.5679, "gpus": [0, 1]}
    assert Finding.from_dict(d).to_dict() == d


def test_burnin_reasons_are_findings_on_the_one_scale() -> None:
    from rigbench.burnin.verdict import finding, reason_dict

    f = finding(code="thermal", severity="fail", message="GPU 1: thermal slowdown")
    assert (f.id, f.severity, f.origin) == ("burnin.thermal", "error", "measurement")
    # the --json `reasons` entry is read off the finding
    assert reason_dict(f) == {
        "code": "thermal",
        "severity": "fail",
        "message": "GPU 1: thermal slowdown",
    }
    assert finding(code="power_cap", severity="info", message="capped").severity == "info"
    warn = finding(code="vram", severity="warn", message="hot")
    assert warn.severity == "warning" and reason_dict(warn)["severity"] == "warn"
