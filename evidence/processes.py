"""Stopping cleanly on SIGTERM and SIGINT, and child processes that end with the process
that started them: `evidence serve`'s capture worker, `evidence worker --concurrency N`'s
workers.

systemd and docker stop a service with SIGTERM, whose default action ends a Python process at
once, skipping `finally` blocks: the children it started would be left running, claiming jobs
with nobody to stop them. Turning the signal into an exception raised wherever the main thread
happens to be is no better: it lands in a finalizer or inside the browser driver's dispatch,
where it is printed as ignored or swallowed. So `StopRequest` only records the request; the
command's loop looks at it between jobs and at its waits and ends by itself, exit status 0. A
second signal while stopping ends the process at once (status 128 + the signal), saying so:
safe for a capture worker, whose job under way is taken up again once its lease runs out.
`start_child` also asks Linux to send the child SIGTERM when its parent ends in any way (killed
outright included).

A process ended at once leaves its temporary folders behind. `OwnedFolder` names each after
its kind and the process (`evidence-KIND-PID-...` in TMPDIR) and holds a lock on it while it
lives; `sweep_owned_folders`, run when a worker starts, removes those of its kinds whose process
is gone. Both are checked: the kernel drops the lock of a process that ends in any way (SIGKILL
included), so a pid reused by another program, or a worker in another pid namespace sharing the
folder, never costs a live capture its files; and the pid covers the instant between the
folder's making and its lock.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import FrameType

_PR_SET_PDEATHSIG = 1
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# How long `stop_children` lets a child stop by itself before it kills it.
STOP_GRACE_SECONDS = 15.0


class StopRequest:
    """SIGTERM or SIGINT, once received, asks the process to stop: `requested` says so and
    `wait` wakes at once. A second ends the process at once, writing `at_once` after the
    signal's name ("SIGTERM again: stopping at once; ...").

    With `at_once` None a second signal is ignored: for a child of `start_child`, whose parent
    sends it SIGTERM after a signal that may have reached both (Ctrl-C reaches the terminal's
    process group, `systemctl stop` every process of the service), and kills it after a grace.
    Made before anything slow starts (a browser), so a signal at any moment is heard.
    """

    def __init__(self, at_once: str | None) -> None:
        self.at_once = at_once
        self.signal: signal.Signals | None = None
        # Called in the signal handler on the first signal (to interrupt work that cannot look
        # at `requested` soon, such as a page loading): quick, taking no lock.
        self.on_request: list[Callable[[], None]] = []
        # The handler writes a byte here, which wakes `wait`: an Event set in a handler could
        # deadlock on the lock the interrupted main thread holds inside its own wait.
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_write, False)
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._handle)

    @property
    def requested(self) -> bool:
        return self.signal is not None

    def wait(self, seconds: float) -> bool:
        """Sleep `seconds` or until a stop is requested; whether one is."""
        if not self.requested:
            select.select([self._wake_read], [], [], max(0.0, seconds))
        return self.requested

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.signal is not None:
            if self.at_once is None:
                return
            name = signal.Signals(signum).name
            with contextlib.suppress(OSError):  # no stderr left to say it on
                os.write(2, f"{name} again: stopping at once; {self.at_once}\n".encode())
            os._exit(128 + signum)
        self.signal = signal.Signals(signum)
        with contextlib.suppress(OSError):  # a byte is there already
            os.write(self._wake_write, b"\0")
        for hook in self.on_request:
            hook()


def _end_with_parent() -> None:  # in the child, between fork and exec
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def start_child(args: Sequence[str], env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    """Start `args`; on Linux the child is sent SIGTERM when this process ends."""
    return subprocess.Popen(list(args), env=dict(env), preexec_fn=_end_with_parent)


def wait_children(children: Sequence[subprocess.Popen[bytes]], stop: StopRequest,
                  poll: float = 0.5) -> list[int] | None:
    """The exit status of each child once all have ended, or None if a stop was requested
    before then (the children are left running for `stop_children`)."""
    while any(child.poll() is None for child in children):
        if stop.wait(poll):
            return None
    return [child.wait() for child in children]


def stop_children(children: Sequence[subprocess.Popen[bytes]], *,
                  grace: float = STOP_GRACE_SECONDS) -> None:
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


OWNED_PREFIX = "evidence-"


class OwnedFolder:
    """A temporary folder `evidence-KIND-PID-...` in TMPDIR, locked by this process until
    `remove` (or the end of its `with` block) removes it."""

    def __init__(self, kind: str) -> None:
        self.path = Path(tempfile.mkdtemp(prefix=f"{OWNED_PREFIX}{kind}-{os.getpid()}-"))
        # Not inherited by the browser and its driver (Python opens descriptors
        # non-inheritable): the lock is this process's alone and ends with it.
        self._fd: int | None = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
        fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def remove(self) -> None:
        if self._fd is None:
            return
        shutil.rmtree(self.path, ignore_errors=True)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> Path:
        return self.path

    def __exit__(self, *exc: object) -> None:
        self.remove()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def sweep_owned_folders(kinds: Iterable[str]) -> int:
    """Remove the `OwnedFolder`s of `kinds` in TMPDIR whose process is gone (ended at once by a
    second signal, killed); returns how many. Only this user's, and never one still locked."""
    removed = 0
    root = Path(tempfile.gettempdir())
    for kind in kinds:
        named = re.compile(rf"{re.escape(OWNED_PREFIX + kind)}-(\d+)-[^/]+")
        for path in root.glob(f"{OWNED_PREFIX}{kind}-*"):
            found = named.fullmatch(path.name)
            if found is None or _alive(int(found.group(1))):
                continue
            try:  # not through a link someone put in its place
                fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
            except OSError:
                continue
            try:
                if os.fstat(fd).st_uid != os.getuid():
                    continue
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:  # its process lives, seen under another pid
                    continue
                shutil.rmtree(path, ignore_errors=True)
                if not path.exists():
                    removed += 1
            finally:
                os.close(fd)
    return removed
