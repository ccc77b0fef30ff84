"""Large file uploads (received material): a multipart body streamed to a file in the data home
as it arrives, never held in memory nor spooled to the system's temporary folder, and bounded.

The body-size middleware (api/limits.py) lets these routes' bodies grow to the upload bound
plus `UPLOAD_OVERHEAD_BYTES`; the parser here bounds the file part itself, the number and size
of the other fields, and takes exactly one file. The temporary folder lies in the home under the
prefix of export leftovers, so what a dead process left is swept by the same cleaning
(`export_leases.clean_leftovers`).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import FormParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from evidence.errors import InvalidInput
from evidence.export_leases import LEFTOVER_PREFIX
from evidence.home import Runtime

# Boundaries, part headers and the form's other fields.
UPLOAD_OVERHEAD_BYTES = 256 * 1024
MAX_FIELDS = 30
MAX_FIELD_BYTES = 20_000
# A part's headers: room for a file name of a few thousand characters (it is cut when kept).
MAX_HEADER_BYTES = 64 * 1024
FILE_FIELD = "file"


@dataclass
class Upload:
    """The posted form: its one file (on disk, in the home) and its other fields."""

    path: Path | None = None
    filename: str = ""
    content_type: str | None = None
    size: int = 0
    fields: dict[str, str] = field(default_factory=dict)

    def get(self, name: str) -> str:
        return self.fields.get(name, "")


async def stream_upload(request: Request, runtime: Runtime) -> AsyncIterator[Upload]:
    """Parse the multipart body into an `Upload`; the file is removed when the caller is done."""
    limit = runtime.settings.received_max_bytes
    mime, params = parse_options_header(request.headers.get("content-type", ""))
    if mime != b"multipart/form-data" or not params.get(b"boundary"):
        raise InvalidInput("send the file as multipart/form-data (a form with a file field "
                           f"named {FILE_FIELD!r})", status_code=415)
    folder = Path(tempfile.mkdtemp(prefix=f"{LEFTOVER_PREFIX}upload-",
                                   dir=runtime.settings.home_path))
    upload = Upload()
    files: list[Any] = []

    def on_field(f: Any) -> None:
        name = (f.field_name or b"").decode("utf-8", "replace")
        value = f.value or b""
        upload.fields[name] = value.decode("utf-8", "replace")

    def on_file(f: Any) -> None:
        files.append(f)

    parser = FormParser(
        "multipart/form-data", on_field, on_file, boundary=params[b"boundary"],
        config={"UPLOAD_DIR": str(folder), "MAX_MEMORY_FILE_SIZE": 0,
                "MAX_FIELDS": MAX_FIELDS, "MAX_FIELD_SIZE": MAX_FIELD_BYTES,
                "MAX_HEADER_SIZE": MAX_HEADER_BYTES, "UPLOAD_DELETE_TMP": False})
    try:
        try:
            async for chunk in request.stream():
                # The body as a whole is bounded in front (api/limits.py): at most the bound
                # and the overhead reach the disk.
                parser.write(chunk)
            parser.finalize()
        except ClientDisconnect:
            raise InvalidInput("the upload broke off before its end; nothing was kept") from None
        except (FormParserError, ValueError) as exc:
            raise InvalidInput(f"the form could not be read: {exc}") from None
        uploaded = [f for f in files if (f.field_name or b"") == FILE_FIELD.encode()]
        if len(uploaded) != 1 or len(files) != 1:
            raise InvalidInput(f"send exactly one file, in the field {FILE_FIELD!r}")
        part = uploaded[0]
        if part.size > limit:
            raise InvalidInput(f"the file is larger than this server takes ({limit} bytes; "
                               "the setting EVIDENCE_RECEIVED_MAX_BYTES)", status_code=413)
        part.file_object.flush()
        upload.path = Path(part.actual_file_name.decode() if isinstance(
            part.actual_file_name, bytes) else part.actual_file_name)
        upload.filename = (part.file_name or b"").decode("utf-8", "replace")
        upload.content_type = part.content_type
        upload.size = part.size
        yield upload
    finally:
        for f in files:
            f.close()
        shutil.rmtree(folder, ignore_errors=True)

