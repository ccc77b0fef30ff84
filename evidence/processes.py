"""Child processes that end with the process that started them: `evidence serve`'s capture
worker, `evidence worker --concurrency N`'s workers.

systemd and docker stop a service with SIGTERM, whose default action ends a Python process at
once, skipping `finally` blocks: the children it started would be left running, claiming jobs
with nobody to stop them. `exit_on_sigterm` turns the signal into `SystemExit`, so the code
that stops the children runs; `start_child` also asks Linux to send the child SIGTERM when its
parent ends in any way (killed outright included).
"""

from __future__ import annotations

import ctypes
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from types import FrameType

_PR_SET_PDEATHSIG = 1


def _exit(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def exit_on_sigterm() -> None:
    """From now on SIGTERM ends this process as SystemExit(143), running its cleanup."""
    signal.signal(signal.SIGTERM, _exit)


def _end_with_parent() -> None:  # in the child, between fork and exec
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def start_child(args: Sequence[str], env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    """Start `args`; on Linux the child is sent SIGTERM when this process ends."""
    return subprocess.Popen(list(args), env=dict(env), preexec_fn=_end_with_parent)


def stop_children(children: Sequence[subprocess.Popen[bytes]], *, grace: float = 15) -> None:
    """SIGTERM each child, wait up to `grace` seconds in all, then kill what still runs."""
    for child in children:
        if child.poll() is None:
            child.terminate()
    for child in children:
        try:
            child.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
