"""`python -m rigbench` and the `rigbench` command."""

import atexit
import gc
import sys


def run() -> None:
    # Registered first, so it runs after every other exit handler: the interpreter's last
    # garbage collections then skip the objects alive now (torch's hundreds of thousands,
    # which are freed all the same). A process that imported torch spent 0.9 of its 2.2
    # CPU-s in those collections (CPython 3.11, torch 2.13; benchmarks/2026-12-07-cpu-2core.md).
    # What must not be left to the OS closes in a handler of its own (the store's
    # connection: rigbench.store.db).
    atexit.register(gc.freeze)
    # A Ctrl-C while the command's modules import (the first few tenths of a second) ends
    # like one a moment later does: exit 130, no traceback.
    try:
        from rigbench.cli import main
    except KeyboardInterrupt:
        sys.exit(130)
    main()


if __name__ == "__main__":
    run()
