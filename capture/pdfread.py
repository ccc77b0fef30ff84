"""The text of a PDF the capture kept, read in a separate process with bounds.

An address that answers with a PDF (a leaflet, a price list, a scanned passport offered for
sale) has no page for the browser to read its text from. Its words are read from the file with
pypdf, so that search finds them and a re-capture shows what changed.

The file comes from whoever runs the site, so it is read as hostile: in a child process with a
memory bound and a time bound, killed when it exceeds either (a crafted PDF can make a parser
loop or allocate without end), and at most `MAX_PAGES` pages. The stored file stays the
evidence; the text is a reading of it, and what could not be read is said, not guessed.

Run as ``python -m capture.pdfread FILE MAX_PAGES``: prints one JSON object, ``{"text", "pages",
"read"}`` (the pages' text parted by form feeds), or exits non-zero with the reason on stderr.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from capture.errors import CaptureError

MAX_PAGES = 500
TIMEOUT_SECONDS = 60.0
MEMORY_BYTES = 1024**3  # address space of the reading process
MAX_TEXT_CHARS = 5_000_000


@dataclass(frozen=True)
class PdfText:
    text: str
    pages: int  # in the file
    read: int  # of them, read (at most MAX_PAGES)

    @property
    def note(self) -> str:
        note = ("text read from the PDF's one page" if self.pages == 1
                else f"text read from the PDF's {self.pages} pages")
        if self.read < self.pages:
            note = f"text read from the first {self.read} of the PDF's {self.pages} pages"
        if not self.text.strip():
            note += "; they hold no text (a scan has only images of its words)"
        return note


def read_pdf_text(path: Path, *, max_pages: int = MAX_PAGES,
                  timeout: float = TIMEOUT_SECONDS) -> PdfText:
    """The text of the PDF at `path`, read in a bounded child process; CaptureError if the file
    cannot be read as a PDF or the reading runs past its bounds."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", "capture.pdfread", str(path), str(max_pages)],
            capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise CaptureError(f"reading the PDF's text took longer than {timeout:.0f} s; "
                           "the file is kept, its text is not") from exc
    if done.returncode != 0:
        lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
        why = lines[-1] if lines else f"the reader stopped with code {done.returncode}"
        if done.returncode < 0 or "MemoryError" in why:
            why = f"the reader ran out of its {MEMORY_BYTES // 1024**2} MB of memory or was killed"
        raise CaptureError(f"the PDF's text could not be read: {why}")
    found = json.loads(done.stdout)
    return PdfText(text=found["text"], pages=found["pages"], read=found["read"])


def _read(path: str, max_pages: int) -> dict[str, object]:
    from pypdf import PdfReader

    reader = PdfReader(path)
    # Many PDFs are "encrypted" with an empty password, only to forbid copying: those are read;
    # one that needs a password is not.
    if reader.is_encrypted and not reader.decrypt(""):
        raise ValueError("the PDF is encrypted with a password")
    pages = len(reader.pages)
    parts: list[str] = []
    size = 0
    read = 0
    for page in reader.pages[:max_pages]:
        text = page.extract_text() or ""
        read += 1
        parts.append(text)
        size += len(text)
        if size > MAX_TEXT_CHARS:
            break
    # Pages are parted by a form feed, as pdftotext parts them.
    return {"text": "\f".join(parts)[:MAX_TEXT_CHARS], "pages": pages, "read": read}


def main(argv: list[str]) -> int:
    # The bound is set here, in the child, before the file is opened (not with `preexec_fn`,
    # which is unsafe in the threaded server that may run the capture).
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))
    try:
        result = _read(argv[0], int(argv[1]))
    except Exception as exc:  # any failure of a hostile file is a reason, not a crash
        print(f"{type(exc).__name__}: {exc}".splitlines()[0], file=sys.stderr)
        return 1
    sys.stdout.write(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
