"""Crafted ZIP files for the tests of the bag readers (verify.py and the service's)."""

from __future__ import annotations

import io
import shutil
import struct
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


def central_record(data: bytes, name: str) -> tuple[zipfile.ZipInfo, int]:
    """Entry `name` of the ZIP `data`, and where its central directory record starts."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        info, record = archive.getinfo(name), archive.start_dir
        for other in archive.infolist():
            if other is info:
                break
            record += 46 + sum(struct.unpack_from("<3H", data, record + 28))
    assert data[record : record + 4] == b"PK\x01\x02"
    return info, record


def set_crc(data: bytes, name: str, crc: int) -> bytes:
    """The ZIP `data` with entry `name`'s CRC-32 set to `crc` wherever the archive records it
    (its central directory record, and its local header or its data descriptor), the bytes
    left as they are: zip tools then report the entry as damaged, and nothing else is amiss."""
    out = bytearray(data)
    info, record = central_record(data, name)
    struct.pack_into("<L", out, record + 16, crc)
    if not info.flag_bits & 0x08:
        struct.pack_into("<L", out, info.header_offset + 14, crc)
        return bytes(out)
    end = info.header_offset + 30 + sum(struct.unpack_from("<HH", data, info.header_offset + 26))
    end += info.compress_size
    struct.pack_into("<L", out, end + (4 if out[end : end + 4] == b"PK\x07\x08" else 0), crc)
    return bytes(out)


# Where the end-of-central-directory record keeps what it declares of the central directory.
END_RECORD_FIELDS = {"entries on this disk": (8, "<H"), "entries": (10, "<H"),
                     "central directory size": (12, "<L"), "central directory offset": (16, "<L")}


def set_end_record(data: bytes, which: str, value: int) -> bytes:
    """The ZIP `data` with one field of its (32-bit) end-of-central-directory record set."""
    offset, fmt = END_RECORD_FIELDS[which]
    out = bytearray(data)
    struct.pack_into(fmt, out, data.rfind(b"PK\x05\x06") + offset, value)
    return bytes(out)
