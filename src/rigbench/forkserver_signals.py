"""Imported first in the supervisor's fork server: it ignores Ctrl-C while it imports torch,
and keeps a worker whose parent stopped while it was being started from printing a traceback.

A terminal's Ctrl-C goes to the whole foreground process group, the fork server included.
multiprocessing protects the fork server from SIGINT only after its preload imports; a
Ctrl-C during the seconds torch takes to import printed a traceback under rigbench's own
one-line message. The parent stops and kills the workers itself.

A worker forked just before its parent stopped (Ctrl-C, a hang killed) unpickles its start-up
arguments after the parent's semaphores were unlinked or its pipe closed; multiprocessing
prints that failure through sys.excepthook in the forked child. The parent already says how
the run ended, so that one failure is dropped; every other error still prints.
"""

import atexit
import gc
import signal
import sys
import traceback
from types import TracebackType

signal.signal(signal.SIGINT, signal.SIG_IGN)

# The fork server ends with rigbench, through a normal interpreter exit: the last garbage
# collections then skip the objects alive (torch's), as rigbench's own exit does
# (rigbench.__main__). Its workers end with os._exit and never run this.
atexit.register(gc.freeze)

_LOST_PARENT = (FileNotFoundError, EOFError, ConnectionResetError, BrokenPipeError)


def parent_gone_during_start(exc: BaseException, tb: TracebackType | None) -> bool:
    """The failure of a worker's start-up unpickling once its parent's resources are gone."""
    if not isinstance(exc, _LOST_PARENT):
        return False
    frames = [f.filename.replace("\\", "/") for f in traceback.extract_tb(tb)]
    in_bootstrap = any(f.endswith("multiprocessing/spawn.py") for f in frames)
    in_unpickle = any(
        f.endswith(("multiprocessing/synchronize.py", "multiprocessing/connection.py"))
        for f in frames
    ) or isinstance(exc, EOFError)
    return in_bootstrap and in_unpickle


def _excepthook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    if not parent_gone_during_start(exc, tb):
        sys.__excepthook__(kind, exc, tb)


sys.excepthook = _excepthook
