"""The `rigbench` command. Each module of `rigbench.commands` adds its commands (a
module-level Typer `app`); they parse arguments, call the library and render. No logic here."""

from __future__ import annotations

import contextlib
import importlib
import os
import pkgutil
from typing import Annotated, Any

import typer
from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
from typer.core import TyperGroup

import rigbench.commands
from rigbench import __version__
from rigbench.commands.common import error_line, out


class _BadUsage(ClickException):
    """A usage error as one line, like every other bad input (click prints four)."""

    exit_code = 2

    def __init__(self, exc: UsageError) -> None:
        command = exc.ctx.command_path if exc.ctx is not None else "rigbench"
        super().__init__(f"{exc.format_message()} (see {command} --help)")

    def show(self, file: Any = None) -> None:
        with contextlib.suppress(typer.Exit):
            error_line(self.format_message(), self.exit_code)


class _OneLineUsage(TyperGroup):
    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().make_context(*args, **kwargs)
        except NoArgsIsHelpError:
            raise
        except UsageError as exc:
            raise _BadUsage(exc) from None

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except NoArgsIsHelpError:
            raise
        except UsageError as exc:
            raise _BadUsage(exc) from None


app = typer.Typer(
    cls=_OneLineUsage,
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_show_locals=False,
    help="Plan, doctor, benchmark and burn in self-built deep-learning machines.",
)


def _version(value: bool) -> None:
    if value:
        out.print(f"rigbench {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """Plan, doctor, benchmark and burn in self-built deep-learning machines."""


def _add_commands() -> None:
    """Every module of rigbench.commands with a Typer `app` adds its commands at top level."""
    for mod in pkgutil.iter_modules(rigbench.commands.__path__):
        sub = getattr(importlib.import_module(f"rigbench.commands.{mod.name}"), "app", None)
        if isinstance(sub, typer.Typer):
            app.add_typer(sub)


_add_commands()


# bench.cluster.TORCHRUN_VARS, not imported here: every command's start-up would pay for it
_TORCHRUN_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR")


def main() -> None:
    if all(os.environ.get(k) for k in _TORCHRUN_VARS):
        # c10d's C++ log repeats, with a stack of frames, each connection error that the
        # rank then reports in one line; the user's own setting wins (set before torch loads).
        os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "FATAL")
    app()
