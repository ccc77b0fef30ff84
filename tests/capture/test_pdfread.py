"""Reading a captured PDF's text: its words, page by page, within bounds, in a child process."""

from __future__ import annotations

from pathlib import Path

import pytest
from pypdf import PdfReader, PdfWriter
from reportlab.lib.pagesizes import A4
from reportlab.pdfgen.canvas import Canvas

from capture.errors import CaptureError
from capture.pdfread import read_pdf_text


def _pdf(path: Path, pages: list[str]) -> Path:
    canvas = Canvas(str(path), pagesize=A4)
    for words in pages:
        if words:
            canvas.drawString(72, 770, words)
        canvas.showPage()
    canvas.save()
    return path


def test_the_words_of_every_page_are_read_in_order(tmp_path: Path) -> None:
    found = read_pdf_text(_pdf(tmp_path / "prices.pdf", [
        "Crossing to Italy 3000 EUR", "Passports 800 EUR, call +30 690 000 0000"]))
    assert [page.strip() for page in found.text.split("\f")] == [
        "Crossing to Italy 3000 EUR", "Passports 800 EUR, call +30 690 000 0000"]
    assert (found.pages, found.read) == (2, 2)
    assert found.note == "text read from the PDF's 2 pages"


def test_pages_past_the_bound_are_not_read_and_the_note_says_so(tmp_path: Path) -> None:
    found = read_pdf_text(_pdf(tmp_path / "long.pdf", [f"page {n}" for n in range(1, 6)]),
                          max_pages=2)
    assert [page.strip() for page in found.text.split("\f")] == ["page 1", "page 2"]
    assert found.note == "text read from the first 2 of the PDF's 5 pages"


def test_a_scan_without_text_is_said_to_hold_none(tmp_path: Path) -> None:
    found = read_pdf_text(_pdf(tmp_path / "scan.pdf", [""]))
    assert found.text.strip() == ""
    assert found.note == ("text read from the PDF's one page; they hold no text (a scan has "
                          "only images of its words)")


def test_a_pdf_locked_against_copying_is_read_and_one_needing_a_password_is_not(
    tmp_path: Path,
) -> None:
    plain = _pdf(tmp_path / "plain.pdf", ["Boat leaves Friday"])
    for name, user_password in (("no-copy.pdf", ""), ("secret.pdf", "s3cret")):
        writer = PdfWriter(clone_from=PdfReader(plain))
        writer.encrypt(user_password=user_password, owner_password="owner",
                       algorithm="AES-256")
        writer.write(tmp_path / name)
    assert read_pdf_text(tmp_path / "no-copy.pdf").text.strip() == "Boat leaves Friday"
    with pytest.raises(CaptureError, match="the PDF is encrypted with a password"):
        read_pdf_text(tmp_path / "secret.pdf")


def test_a_file_that_is_no_pdf_is_a_reason_not_a_crash(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pdf"
    junk.write_bytes(b"%PDF-1.7\n" + b"\x00\xff" * 4000)
    with pytest.raises(CaptureError,
                       match=r"^the PDF's text could not be read: Pdf(Read|Stream)Error: "):
        read_pdf_text(junk)


def test_reading_past_the_time_bound_is_stopped(tmp_path: Path) -> None:
    """A crafted file can keep a parser busy; the reader is killed at the bound (here too short
    for even starting Python), and the capture says so."""
    with pytest.raises(CaptureError, match="took longer than 0 s; the file is kept"):
        read_pdf_text(_pdf(tmp_path / "slow.pdf", ["x"]), timeout=0.001)
