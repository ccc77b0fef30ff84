"""Perceptual hashes of images, so two captures can say whether a picture still looks the same.

A screenshot re-taken a week later, or a photo a platform has recompressed, has different bytes
and a different SHA-256 but nearly the same pHash and dHash (64 bits each, written as 16
lowercase hex digits); the Hamming distance between two hashes says how far apart they look.

Images come from pages we do not control, so nothing here raises on bad input: a file Pillow
cannot decode (SVG, truncated, corrupt) or one whose header declares more than
`MAX_PIXELS` pixels gives a `HashResult` whose `hashes` is None and whose `failure` and `error`
say why. The pixel bound is checked on the header, before any pixel is decoded, so a small file
claiming to be a gigapixel image costs nothing.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import BinaryIO

import imagehash
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_PIXELS = 50_000_000
HASH_HEX_DIGITS = 16

_HEX = re.compile(r"[0-9a-f]+")
_WHITE = (255, 255, 255, 255)


class HashFailure(StrEnum):
    TOO_LARGE = "too_large"
    UNDECODABLE = "undecodable"
    UNREADABLE = "unreadable"


@dataclass(frozen=True)
class ImageHashes:
    """The pHash and dHash of one image, each 64 bits as 16 lowercase hex digits."""

    phash: str
    dhash: str

    def __post_init__(self) -> None:
        # Hashes also come back from stored JSON; refuse a malformed one here rather than
        # let it turn into a silently wrong distance later.
        for name, value in (("phash", self.phash), ("dhash", self.dhash)):
            if len(value) != HASH_HEX_DIGITS or not _HEX.fullmatch(value):
                raise ValueError(f"{name} must be {HASH_HEX_DIGITS} lowercase hex digits, "
                                 f"not {value!r}")


@dataclass(frozen=True)
class HashResult:
    """What hashing one image gave: the hashes, or the reason there are none."""

    hashes: ImageHashes | None
    width: int | None = None
    height: int | None = None
    failure: HashFailure | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.hashes is not None


def hash_bytes(data: bytes, *, max_pixels: int = MAX_PIXELS) -> HashResult:
    """Hash an image held in memory."""
    return _hash(io.BytesIO(data), max_pixels)


def hash_file(path: str | Path, *, max_pixels: int = MAX_PIXELS) -> HashResult:
    """Hash an image file, reading only its header before the pixel bound is checked."""
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below whatever happens
    except OSError as exc:
        return HashResult(None, failure=HashFailure.UNREADABLE,
                          error=f"cannot read {path}: {exc.strerror or exc}")
    with handle:
        return _hash(handle, max_pixels)


def image_hashes(data: bytes) -> ImageHashes | None:
    """The hashes of an image in memory, or None when it cannot be hashed."""
    return hash_bytes(data).hashes


def hamming(a_hex: str, b_hex: str) -> int:
    """How many bits differ between two hashes written as hex of the same length."""
    a, b = a_hex.lower(), b_hex.lower()
    if len(a) != len(b) or not a or not _HEX.fullmatch(a) or not _HEX.fullmatch(b):
        raise ValueError(f"cannot compare hashes {a_hex!r} and {b_hex!r}: "
                         "they must be hex digits of the same length")
    return (int(a, 16) ^ int(b, 16)).bit_count()


def _hash(source: BinaryIO, max_pixels: int) -> HashResult:
    # Pillow's decoders raise many unrelated exception types on hostile input (OSError,
    # SyntaxError, ValueError, struct.error, EOFError, its DecompressionBombError ...), and a
    # page's image must never stop a comparison, so every failure becomes a reason.
    try:
        image = Image.open(source)
    except Image.DecompressionBombError as exc:
        return HashResult(None, failure=HashFailure.TOO_LARGE, error=f"refused: {exc}")
    except UnidentifiedImageError:
        return HashResult(None, failure=HashFailure.UNDECODABLE,
                          error="not an image format Pillow can read (SVG, HTML, corrupt?)")
    except Exception as exc:
        return HashResult(None, failure=HashFailure.UNDECODABLE,
                          error=f"not an image Pillow can read: {_describe(exc)}")
    with image:
        width, height = image.size
        if width * height > max_pixels:
            return HashResult(None, width, height, HashFailure.TOO_LARGE,
                              f"refused: {width}x{height} is {width * height} pixels, over the "
                              f"bound of {max_pixels}; not decoded")
        try:
            grey = _prepare(image)
            return HashResult(ImageHashes(str(imagehash.phash(grey)), str(imagehash.dhash(grey))),
                              width, height)
        except Exception as exc:
            return HashResult(None, width, height, HashFailure.UNDECODABLE,
                              f"cannot decode the {image.format or 'unknown'} image: "
                              f"{_describe(exc)}")


def _prepare(image: Image.Image) -> Image.Image:
    # A platform that bakes the EXIF rotation into a re-encoded copy must still match the
    # original, so hash the image the way a viewer shows it.
    upright = ImageOps.exif_transpose(image)
    if upright.mode in ("RGBA", "LA", "PA") or "transparency" in upright.info:
        # Transparent pixels carry arbitrary colour values; hash what a viewer sees on white.
        rgba = upright.convert("RGBA")
        backdrop = Image.new("RGBA", rgba.size, _WHITE)
        upright = Image.alpha_composite(backdrop, rgba)
    return upright.convert("L")


def _describe(exc: Exception) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
