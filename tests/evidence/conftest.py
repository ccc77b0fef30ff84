"""Fixtures the service tests of evidence/ share."""

from __future__ import annotations

from pathlib import Path

import pytest

from evidence.blobstore import FolderStore


@pytest.fixture
def store(tmp_path: Path) -> FolderStore:
    """An empty folder blob store of the test's own."""
    blobs = FolderStore(tmp_path / "blobs")
    blobs.create()
    return blobs
