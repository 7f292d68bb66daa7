"""What every command shares: consoles, common options, one-line errors, JSON output."""

from __future__ import annotations

import contextlib
import json
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from rigbench.errors import RigbenchError
from rigbench.judge.exit_codes import EXIT_ERRORS, EXIT_WARNINGS
from rigbench.judge.exit_codes import EXIT_INTERRUPTED as EXIT_INTERRUPTED
from rigbench.judge.exit_codes import EXIT_OK as EXIT_OK

out = Console()
err = Console(stderr=True)

SimulateOpt = Annotated[
    Path | None,
    typer.Option(
        "--simulate",
        help="Read a simulated rig from this TOML file instead of the hardware.",
        metavar="FILE",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of tables.")]
IncludeIdsOpt = Annotated[
    bool,
    typer.Option(
        "--include-ids",
        help="Keep the hostname, UUIDs, serial numbers and paths (left out by default).",
    ),
]
DbOpt = Annotated[
    Path | None,
    typer.Option(
        "--db", help="SQLite database for results (default: the user data dir).", metavar="PATH"
    ),
]

# The exit codes are judge's (one mapping); a command whose run failed exits as warnings do.
EXIT_FAILED = EXIT_WARNINGS
EXIT_ERROR = EXIT_ERRORS


@contextlib.contextmanager
def one_line_errors() -> Iterator[None]:
    """Our named errors become one line on stderr and their exit code."""
    try:
        yield
    except RigbenchError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(exc.exit_code) from None


def interrupt_on_signals() -> None:
    """Ctrl-C and SIGTERM raise KeyboardInterrupt, even where the shell started us with
    SIGINT ignored (background jobs), so a long command always stops cleanly."""

    def _raise(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, _raise)
    signal.signal(signal.SIGTERM, _raise)


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")
