"""The one mapping from what was found to the exit code a script reads.

  0  nothing to fix: every finding ok, info or skipped; every measurement normal
  1  warnings: something costs speed or will bite (below normal, a risk)
  2  errors: something is broken or data is at risk (a fault, a failed burn-in), or the
     input was bad (then one line on stderr says so and nothing was judged)
130  interrupted with Ctrl-C; what was measured is kept
"""

from __future__ import annotations

from collections.abc import Iterable

from rigbench.records import SEVERITY_RANK, Finding, Severity

EXIT_OK, EXIT_WARNINGS, EXIT_ERRORS, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 2, 130

_EXIT = {"error": EXIT_ERRORS, "warning": EXIT_WARNINGS}


def worst(severities: Iterable[Severity]) -> Severity:
    """The most serious of `severities` ("ok" when there are none)."""
    return min(severities, key=lambda s: SEVERITY_RANK[s], default="ok")


def exit_code_for(findings: Iterable[Finding | Severity]) -> int:
    """0, 1 or 2 from the worst severity among findings (or bare severities)."""
    sevs = [f if isinstance(f, str) else f.severity for f in findings]
    return _EXIT.get(worst(sevs), EXIT_OK)
