"""Temporary folders a process owns: those a process ended at once left are swept by the next
one, and never one whose process still runs (the capture worker's end-to-end case is in
tests/capture/test_worker.py)."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from evidence import processes

# A process that makes an owned folder, says where, and waits to be killed.
OWNER = """
import sys, time
from evidence import processes
folder = processes.OwnedFolder(sys.argv[1])
(folder.path / "page.png").write_bytes(b"half a screenshot")
print(folder.path, flush=True)
time.sleep(600)
"""


@pytest.fixture
def tmpdir_(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """TMPDIR for this process and the ones it starts."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)  # found again, from TMPDIR
    return tmp_path


def _owner(kind: str) -> tuple[subprocess.Popen[str], Path]:
    proc = subprocess.Popen([sys.executable, "-c", OWNER, kind], stdout=subprocess.PIPE,
                            text=True, cwd=Path(__file__).resolve().parents[2])
    assert proc.stdout is not None
    return proc, Path(proc.stdout.readline().strip())


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_folders_a_killed_process_left_are_swept_and_live_ones_kept(tmpdir_: Path) -> None:
    killed, left = _owner("capture")
    killed.kill()
    killed.wait()
    living, held = _owner("capture")
    other_kind, other = _owner("other")
    other_kind.kill()
    other_kind.wait()
    try:
        # Named after a pid that is gone, yet locked: its process lives, seen under another pid
        # (a worker in another pid namespace sharing the folder).
        elsewhere = tmpdir_ / f"evidence-capture-{_dead_pid()}-elsewhere"
        elsewhere.mkdir()
        lock = os.open(elsewhere, os.O_RDONLY | os.O_DIRECTORY)
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        # Not ours to judge: no pid in its name, or a link in the place of a folder.
        unnamed = tmpdir_ / "evidence-capture-notapid"
        unnamed.mkdir()
        target = tmpdir_ / "kept"
        target.mkdir()
        (target / "file").write_text("mine")
        link = tmpdir_ / f"evidence-capture-{_dead_pid()}-link"
        link.symlink_to(target)

        assert left.is_dir() and held.is_dir()
        assert processes.sweep_owned_folders(["capture", "downloads"]) == 1

        assert not left.exists()
        assert sorted(p.name for p in tmpdir_.iterdir()) == sorted(
            [held.name, other.name, elsewhere.name, unnamed.name, "kept", link.name])
        assert (held / "page.png").read_bytes() == b"half a screenshot"
        assert (target / "file").read_text() == "mine"
        os.close(lock)
        # Its lock gone (the process that held it ended), the folder is swept.
        assert processes.sweep_owned_folders(["capture"]) == 1
        assert not elsewhere.exists() and held.exists()
    finally:
        living.kill()
        living.wait()
    assert processes.sweep_owned_folders(["capture"]) == 1
    assert not held.exists()


def test_an_owned_folder_is_named_for_its_process_and_removed_at_its_end(tmpdir_: Path) -> None:
    with processes.OwnedFolder("capture") as path:
        assert path.parent == tmpdir_
        assert path.name.startswith(f"evidence-capture-{os.getpid()}-")
        (path / "dom.html").write_text("<p>")
        # Its own process's folder is never swept, however it is asked.
        assert processes.sweep_owned_folders(["capture"]) == 0
    assert list(tmpdir_.iterdir()) == []
