"""What every command shares: consoles, common options, one-line errors, JSON output."""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from rigbench.errors import BadInput, RigbenchError
from rigbench.judge.exit_codes import EXIT_ERRORS, EXIT_WARNINGS
from rigbench.judge.exit_codes import EXIT_INTERRUPTED as EXIT_INTERRUPTED
from rigbench.judge.exit_codes import EXIT_OK as EXIT_OK

# Written to a file or a pipe (`rigbench bench | tee bench.log`), rich lays lines out in 80
# columns, and a results table of a dozen columns (up to about 190 wide) is cut into slivers
# of three or four characters that no one can read; a log gets up to this width instead. A
# table takes only the width it needs, and COLUMNS, where set, still decides.
LOG_WIDTH = 200


def _console(*, stderr: bool = False) -> Console:
    # No emoji codes: a user's "300:100:10" or a GPU name must print as given, not as an emoji.
    console = Console(stderr=stderr, emoji=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = LOG_WIDTH
    return console


out = _console()
err = _console(stderr=True)

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
EveryNodeOpt = Annotated[
    bool,
    typer.Option(
        "--db-on-every-node",
        help="Under torchrun: every node's first rank also keeps the run rank 0 stored in its "
        "own --db (default: rank 0 alone writes).",
    ),
]


def check_every_node(every_node: bool, under_torchrun: bool) -> None:
    if every_node and not under_torchrun:
        raise BadInput("--db-on-every-node: only under torchrun (one machine keeps its own run)")


def stored_run(store: Any, run_id: int) -> tuple[Any, ...] | None:
    """Rank 0's stored run, as follow_rank_0 hands it on; None where it cannot be read back."""
    try:
        return (store.get_run(run_id), store.results(run_id), store.findings(run_id))
    except RigbenchError:
        return None


def follow_rank_0(cluster: Any, env: Any, every_node: bool, db: Path | None) -> None:
    """A rank other than 0 at the end of a run that measured without error: it exits with
    rank 0's code (Cluster.share_exit_code says why) and, asked, its node's first rank keeps
    the run rank 0 stored."""
    shared, copy = cluster.share_end(None)
    cluster.shutdown()
    if every_node and env.local_rank == 0:
        _keep_copy(copy, db, env.node_rank)
    code = EXIT_ERROR if shared is None else shared
    if code:
        raise typer.Exit(code)


def _keep_copy(copy: Any, db: Path | None, node_rank: int) -> None:
    """On a node's first rank asked to keep the run: store rank 0's `copy` (run, results,
    findings) in this node's database and say where, in one line."""
    from rigbench.store import Store

    if copy is None:
        err.print(f"node {node_rank}: rank 0 sent no run to keep", highlight=False, soft_wrap=True)
        return
    with one_line_errors():
        store = Store.open(db)
        run_id = store.copy_run(*copy)
    say_kept(node_rank, run_id, store.path, rank_0_run=copy[0].id)


def say_kept(
    node_rank: int, run_id: int | None, path: Path | None, rank_0_run: int | None = None
) -> None:
    """The one line a node other than rank 0's prints when it keeps a run in its database:
    rank 0's run copied (`rank_0_run`, its id there) or the node's own judgement."""
    what = "kept" if rank_0_run is None else f"run #{rank_0_run} of rank 0 kept"
    err.print(
        f"node {node_rank}: {what} as run #{run_id} ({path})", highlight=False, soft_wrap=True
    )


# The exit codes are judge's (one mapping); a command whose run failed exits as warnings do.
EXIT_FAILED = EXIT_WARNINGS
EXIT_ERROR = EXIT_ERRORS


# Under torchrun every rank meets the same bad input: each waits this long before it exits,
# so that all have reached their own error (and exit with its code) before the first exit
# makes the agent end the others with SIGTERM.
RANKS_ERROR_WAIT_S = 3.0


def _torchrun_place() -> tuple[int, int, int] | None:
    """(node rank, local rank, ranks on this node) of this process under torchrun."""
    from rigbench.bench.cluster import torchrun_env

    env = torchrun_env()
    return (env.node_rank, env.local_rank, env.local_world_size) if env is not None else None


def _say_error(message: str) -> None:
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)


def error_line(message: str, code: int) -> NoReturn:
    """Say `message` as one line, then exit with `code`. Under torchrun only each node's
    local rank 0 says it (the first node's plainly, another's prefixed with its node), and
    every rank exits with `code`."""
    place = _torchrun_place()
    if place is None:
        _say_error(message)
        raise typer.Exit(code)
    node, local, here = place
    if local == 0:
        _say_error((f"node {node}: " if node != 0 else "") + message)
    sys.stdout.flush()
    sys.stderr.flush()
    if here > 1:  # no other rank of this node for the agent to end: no wait
        signal.signal(signal.SIGTERM, lambda *_: os._exit(code))
        signal.signal(signal.SIGINT, lambda *_: os._exit(code))
        time.sleep(RANKS_ERROR_WAIT_S)
    os._exit(code)


@contextlib.contextmanager
def one_line_errors() -> Iterator[None]:
    """Our named errors become one line on stderr and their exit code."""
    try:
        yield
    except RigbenchError as exc:
        error_line(str(exc), exc.exit_code)


def exit_now(exc: RigbenchError) -> NoReturn:
    """One line and the error's exit code, from any thread: the process ends at once."""
    _say_error(str(exc))
    sys.stderr.flush()
    os._exit(exc.exit_code)


def interrupt_on_signals() -> None:
    """Ctrl-C and SIGTERM raise KeyboardInterrupt, even where the shell started us with
    SIGINT ignored (background jobs), so a long command always stops cleanly."""

    def _raise(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, _raise)
    signal.signal(signal.SIGTERM, _raise)


@contextlib.contextmanager
def quiet_interrupt(rank: int) -> Iterator[None]:
    """A rank of a torchrun job stopped while it joins the job (Ctrl-C, or the agent's
    SIGTERM because another rank exited): rank 0 says so in one line; every rank exits 130."""
    try:
        yield
    except KeyboardInterrupt:
        if rank == 0:
            err.print("interrupted while joining the torchrun job: nothing measured")
            sys.stderr.flush()
        os._exit(EXIT_INTERRUPTED)


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


def check_timeout(timeout: float | None) -> None:
    """--timeout, where given, is a finite number of seconds above 0."""
    if timeout is not None and not 0 < timeout < math.inf:
        raise BadInput(f"--timeout must be a positive number of seconds (got {timeout:g})")
