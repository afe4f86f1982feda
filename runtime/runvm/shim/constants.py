"""Names the two halves of the vm-shim (set-up and resident) and the exec-shim agree on."""

from __future__ import annotations

import signal

TAP = "vmtap0"
INIT_STREAMS = {"stdin": 1, "stdout": 2, "stderr": 3}
"""Stream ids of the container's init process; exec'd processes get the next triples."""
FORWARDED_SIGNALS = [s for s in signal.Signals if s not in (signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD,
                                                             signal.SIGWINCH, signal.SIGPIPE, signal.SIGTTIN,
                                                             signal.SIGTTOU, signal.SIGTSTP, signal.SIGCONT)]
IMAGES_DIR = "ckpt"
"""Where checkpoint images appear inside the share (and so in the guest's /run/share)."""
STAND_IN_DIR = "/run/runvm-stand-ins"
"""Shared by all containers and readable by all: a stand-in runs with its guest process's uid."""
