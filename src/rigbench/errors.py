"""Named errors. Only the CLI turns them into one-line messages and exit codes."""


class RigbenchError(Exception):
    """Base class: the message is shown to the user as one line."""

    exit_code = 2


class BadInput(RigbenchError):
    """The user asked for something that cannot be: unknown names, bad ids, bad files."""


class SimulationFileError(BadInput):
    """A simulated-rig file that cannot be read or does not validate."""


class StoreError(RigbenchError):
    """The results database cannot be opened or written."""


class JoinError(RigbenchError):
    """A rank of a torchrun job could not join the job's process group (its rendezvous
    cannot be reached, or the other ranks never came)."""


class HardwareError(RigbenchError):
    """The hardware layer failed in a way that stops the command."""


def one_line(exc: BaseException) -> str:
    """An exception as one line of at most 300 characters: its type and first line (for
    a failure record or a message, where a traceback would not fit)."""
    text = f"{type(exc).__name__}: {exc}".strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


class Interrupted(RigbenchError):
    """Stopped by a signal (Ctrl-C, SIGTERM) where the one line is ours to say: exit 130,
    the shell's code for a SIGINT."""

    exit_code = 130
