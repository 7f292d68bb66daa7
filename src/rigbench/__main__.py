"""`python -m rigbench` and the `rigbench` command."""

import sys


def run() -> None:
    # A Ctrl-C while the command's modules import (the first few tenths of a second) ends
    # like one a moment later does: exit 130, no traceback.
    try:
        from rigbench.cli import main
    except KeyboardInterrupt:
        sys.exit(130)
    main()


if __name__ == "__main__":
    run()
