"""The judgement layer: one severity scale, one finding type, one measurement verdict and
one exit-code mapping for every command.

bench, doctor, plan, burnin and monitor produce evidence (measurements, readings, a parts
list); the rules that turn evidence into findings and verdicts live here or in the
`doctor/`, `plan/` and `burnin/` rule modules, and all of them speak these types. The types
themselves are plain records (`rigbench.records`) so the store can keep them without
importing anything above it.
"""

from rigbench.judge.exit_codes import (
    EXIT_BAD_INPUT,
    EXIT_ERRORS,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_WARNINGS,
    exit_code_for,
    worst,
)
from rigbench.records import (
    SEVERITY_RANK,
    VERDICT_SEVERITY,
    FailureReason,
    Finding,
    Judgement,
    Origin,
    Severity,
    Verdict,
)

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_ERRORS",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_WARNINGS",
    "SEVERITY_RANK",
    "VERDICT_SEVERITY",
    "FailureReason",
    "Finding",
    "Judgement",
    "Origin",
    "Severity",
    "Verdict",
    "exit_code_for",
    "worst",
]
