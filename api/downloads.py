"""Streaming stored evidence to a client: the bytes, their SHA-256, and headers that keep a
browser from running or sniffing them (captured pages and bundles are hostile content)."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from typing import Any

from fastapi.responses import StreamingResponse

from evidence.blobstore import CHUNK

SHA256_HEADER = "X-Content-SHA256"
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def safe_filename(name: str | None, fallback: str) -> str:
    return _UNSAFE_NAME.sub("_", name or "")[:100].strip("._") or fallback


def stream_stored(reader: Any, *, sha256: str, size: int | None, media_type: str,
                  filename: str) -> StreamingResponse:
    """Stream `reader` (closed at the end) with its hash in `X-Content-SHA256` and
    `Repr-Digest` (RFC 9530)."""

    def chunks() -> Iterator[bytes]:
        try:
            while chunk := reader.read(CHUNK):
                yield chunk
        finally:
            reader.close()

    digest = base64.b64encode(bytes.fromhex(sha256)).decode()
    headers = {
        SHA256_HEADER: sha256,
        "Repr-Digest": f"sha-256=:{digest}:",
        "Content-Disposition": f'attachment; filename="{filename}"',
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "sandbox; default-src 'none'",
        "Cache-Control": "no-store",
    }
    if size is not None:
        headers["Content-Length"] = str(size)
    return StreamingResponse(chunks(), media_type=media_type, headers=headers)
