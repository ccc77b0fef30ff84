"""Fixtures the capture tests share."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A worker's or capture's temporary folders (its TMPDIR), where the test can look at them
    afterwards (a short path: Chromium's sockets in it must stay within the 108 characters a
    socket's name has)."""
    folder = Path(tempfile.mkdtemp(prefix="scratch-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
