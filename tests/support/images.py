"""Pictures made in the test, for perceptual-hash and change-detection tests."""

from __future__ import annotations

import io
import random

from PIL import Image, ImageDraw

from capture.phash import ImageHashes, hash_bytes


def picture(seed: int, size: tuple[int, int] = (640, 480), *, ellipses: int = 25,
            largest: int = 200) -> Image.Image:
    """A photo-like picture: coloured ellipses on a dark ground, different for each seed."""
    rng = random.Random(seed)
    image = Image.new("RGB", size, (30, 60, 90))
    draw = ImageDraw.Draw(image)
    for _ in range(ellipses):
        x, y = rng.randrange(size[0]), rng.randrange(size[1])
        draw.ellipse([x, y, x + rng.randrange(20, largest), y + rng.randrange(20, largest)],
                     fill=(rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    return image


def encode(image: Image.Image, fmt: str = "PNG", **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def hashes_of(data: bytes) -> ImageHashes:
    result = hash_bytes(data)
    assert result.hashes is not None, result.error
    return result.hashes
