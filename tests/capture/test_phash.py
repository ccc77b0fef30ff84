"""Tests for perceptual hashing (capture.phash) on real images drawn with Pillow."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFile

from capture.phash import (
    MAX_PIXELS,
    HashFailure,
    HashResult,
    ImageHashes,
    hamming,
    hash_bytes,
    hash_file,
    image_hashes,
)
from tests.support.images import encode, hashes_of, picture


def png_header(width: int, height: int, *, idat: bytes = b"") -> bytes:
    """A PNG whose header declares width x height; the pixel data is not really there."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body)))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat_chunk = chunk(b"IDAT", idat) if idat else b""
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + idat_chunk + chunk(b"IEND", b"")


def test_hashes_are_16_lowercase_hex_digits() -> None:
    result = hash_bytes(encode(picture(0)))
    assert result.ok and result.failure is None and result.error is None
    assert (result.width, result.height) == (640, 480)
    assert result.hashes is not None
    for value in (result.hashes.phash, result.hashes.dhash):
        assert len(value) == 16
        assert value == value.lower()
        int(value, 16)


def test_the_same_picture_recompressed_as_jpeg_is_close() -> None:
    original = hashes_of(encode(picture(0)))
    recompressed = hashes_of(encode(picture(0), "JPEG", quality=40))
    assert hamming(original.phash, recompressed.phash) <= 4
    assert hamming(original.dhash, recompressed.dhash) <= 4


def test_the_same_picture_resized_and_recompressed_is_close() -> None:
    original = hashes_of(encode(picture(0)))
    smaller = hashes_of(encode(picture(0).resize((320, 240)), "JPEG", quality=70))
    assert hamming(original.phash, smaller.phash) <= 4
    assert hamming(original.dhash, smaller.dhash) <= 4


def test_a_different_picture_is_far() -> None:
    first = hashes_of(encode(picture(0)))
    second = hashes_of(encode(picture(1)))
    assert hamming(first.phash, second.phash) >= 15
    assert hamming(first.dhash, second.dhash) >= 10


def test_hashing_is_deterministic_and_a_file_hashes_like_its_bytes(tmp_path: Path) -> None:
    data = encode(picture(3), "JPEG", quality=85)
    path = tmp_path / "photo.jpg"
    path.write_bytes(data)
    assert hash_file(path) == hash_bytes(data) == hash_bytes(data)
    assert hash_file(str(path)).hashes == image_hashes(data)


def test_transparent_pixels_are_hashed_as_seen_on_white() -> None:
    opaque = picture(4)
    mask = Image.new("L", opaque.size, 255)
    ImageDraw.Draw(mask).rectangle([0, 0, 200, 480], fill=0)
    transparent = opaque.convert("RGBA")
    transparent.putalpha(mask)
    # The hidden pixels hold the picture's colours; a viewer shows white there instead.
    seen = Image.new("RGB", opaque.size, "white")
    seen.paste(opaque, (0, 0), mask)
    assert hashes_of(encode(transparent)) == hashes_of(encode(seen))


def test_exif_rotation_is_applied_before_hashing() -> None:
    upright = picture(5)
    stored_sideways = upright.rotate(90, expand=True)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: turn 90 degrees clockwise to display
    rotated_by_tag = encode(stored_sideways, "JPEG", quality=95, exif=exif)
    baked = encode(upright, "JPEG", quality=95)
    a, b = hashes_of(rotated_by_tag), hashes_of(baked)
    assert hamming(a.phash, b.phash) <= 2
    assert hamming(a.dhash, b.dhash) <= 2


@pytest.mark.parametrize("data", [
    b"",
    b"not an image at all",
    b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect/></svg>',
    b"<!doctype html><html><body>404</body></html>",
])
def test_what_is_not_an_image_gives_none_and_a_reason(data: bytes) -> None:
    result = hash_bytes(data)
    assert result.hashes is None and not result.ok
    assert result.failure is HashFailure.UNDECODABLE
    assert result.error is not None and "Pillow" in result.error
    assert image_hashes(data) is None


def test_a_truncated_image_gives_none_and_a_reason() -> None:
    data = encode(picture(0))
    result = hash_bytes(data[: len(data) // 3])
    assert result.hashes is None
    assert result.failure is HashFailure.UNDECODABLE
    assert (result.width, result.height) == (640, 480)
    assert result.error is not None and "PNG" in result.error


def test_a_60_megapixel_header_is_refused_without_decoding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loads: list[object] = []
    real_load = ImageFile.ImageFile.load

    def spy(self: ImageFile.ImageFile) -> object:
        loads.append(self)
        return real_load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy)
    # The IDAT holds almost nothing: decoding it would fail as "undecodable", not "too large".
    result = hash_bytes(png_header(10_000, 6_000, idat=zlib.compress(b"\0" * 64)))
    assert result.hashes is None
    assert result.failure is HashFailure.TOO_LARGE
    assert (result.width, result.height) == (10_000, 6_000)
    assert result.error is not None and "60000000 pixels" in result.error
    assert str(MAX_PIXELS) in result.error
    assert loads == []


def test_a_header_past_pillows_own_bomb_limit_is_refused_too() -> None:
    result = hash_bytes(png_header(20_000, 10_000))
    assert result.hashes is None
    assert result.failure is HashFailure.TOO_LARGE


def test_the_pixel_bound_can_be_lowered(tmp_path: Path) -> None:
    path = tmp_path / "photo.png"
    path.write_bytes(encode(picture(0)))
    assert hash_file(path, max_pixels=640 * 480).ok
    refused = hash_file(path, max_pixels=640 * 480 - 1)
    assert refused.failure is HashFailure.TOO_LARGE and refused.hashes is None


def test_a_missing_file_is_unreadable(tmp_path: Path) -> None:
    result = hash_file(tmp_path / "nothing.png")
    assert result == HashResult(None, failure=HashFailure.UNREADABLE, error=result.error)
    assert result.error is not None and "nothing.png" in result.error


def test_hamming_counts_differing_bits() -> None:
    assert hamming("0000000000000000", "0000000000000000") == 0
    assert hamming("0000000000000000", "ffffffffffffffff") == 64
    assert hamming("00000000000000f0", "0000000000000001") == 5
    assert hamming("ABCDEF0123456789", "abcdef0123456789") == 0


@pytest.mark.parametrize(("a", "b"), [
    ("00", "0000"),
    ("", ""),
    ("zz00000000000000", "0000000000000000"),
    ("0x00000000000000", "0000000000000000"),
])
def test_hamming_refuses_malformed_hashes(a: str, b: str) -> None:
    with pytest.raises(ValueError, match="cannot compare"):
        hamming(a, b)


@pytest.mark.parametrize("bad", ["", "abc", "ABCDEF0123456789", "g000000000000000",
                                 "00000000000000000"])
def test_image_hashes_refuse_malformed_hex(bad: str) -> None:
    with pytest.raises(ValueError, match="16 lowercase hex digits"):
        ImageHashes(phash=bad, dhash="0" * 16)
