"""Imported first in the supervisor's fork server: it ignores Ctrl-C while it imports torch.

A terminal's Ctrl-C goes to the whole foreground process group, the fork server included.
multiprocessing protects the fork server from SIGINT only after its preload imports; a
Ctrl-C during the seconds torch takes to import printed a traceback under rigbench's own
one-line message. The parent stops and kills the workers itself.
"""

import signal

signal.signal(signal.SIGINT, signal.SIG_IGN)
