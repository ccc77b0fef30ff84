"""Crafted ZIP files for the tests of the bag readers (verify.py and the service's)."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest


def shadowed_local_name(source: Path, path: Path, real: str, shadow: str) -> Path:
    """A copy of `source` with one more entry whose local header says `real` but whose central
    directory record says `shadow`: a streaming extractor writes it over `real`."""
    shutil.copy(source, path)
    with zipfile.ZipFile(path, "a") as archive, pytest.warns(UserWarning, match="Duplicate"):
        archive.writestr(zipfile.ZipInfo(real, date_time=(2026, 11, 22, 20, 43, 0)), b"forged")
    data = bytearray(path.read_bytes())
    at = data.rfind(real.encode())
    assert data[at - 46 : at - 42] == b"PK\x01\x02"  # the last entry's central directory name
    data[at : at + len(real)] = shadow.encode()
    path.write_bytes(bytes(data))
    return path
