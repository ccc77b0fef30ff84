"""Tests for the PDF evidence report (evidence.report).

The report is read back the way a person or a court expert would get at it: text extracted with
poppler's ``pdftotext``, page size and count from ``pdfinfo``, embedded fonts from ``pdffonts``.
Hostile page text (markup characters, right-to-left and unsupported scripts, invisible
direction overrides, a 3000-character URL) must print as written, never crash the report.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import sys
import textwrap
import unicodedata
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from evidence.captures import outcome_of
from evidence.report import (
    PREVIEW_WIDTH_PX,
    CustodyLine,
    ReportData,
    ReportExhibit,
    ReportFile,
    ReportLeftOut,
    ReportReceived,
    _preview,
    _years,
    write_report,
)
from evidence.times import to_the_second
from tests.support.pdfwords import arabic_lines, placed_words

POPPLER = ("pdftotext", "pdfinfo", "pdffonts")
# `./dev test` installs poppler-utils where it is missing; a run without it fails, not skips.
_MISSING = [tool for tool in POPPLER if not shutil.which(tool)]
if _MISSING:
    raise RuntimeError(f"the report tests need poppler-utils ({', '.join(_MISSING)}): "
                       "run ./dev test, or apt-get install poppler-utils")

ROOT = Path(__file__).resolve().parents[2]
START = datetime(2026, 11, 22, 18, 5, 12, 250000, tzinfo=UTC)
KEY_ID = "5f1c0b7e9a3d4c2b8e6f1a0d3c5b7e9f2a4c6e8b0d1f3a5c7e9b2d4f6a8c0e1b"
ROOT_HASH = "0e4f8a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7"
VERIFIER_SHA = "ab" * 32
TSA_FINGERPRINT = "cd" * 32
ARABIC = "إعلان: رحلة إلى أوروبا"
PERSIAN = "می‌خواهم بروم"  # with a zero-width non-joiner, as Persian is spelled
RUSSIAN = "Перевозка людей"
GREEK = "Μεταφορά"
TIGRINYA = "ትግርኛ"  # Ethiopic: no font on a stock Debian machine has it
HOSTILE_TITLE = f'<b>&amp; "x" </font><para> & {ARABIC} \u202eevil'
LONG_URL = "https://example.org/ads?" + "&".join(f"k{i}=v{i:04d}" for i in range(300))
PROVISION = "§ 96 Abs. 1 Nr. 1a, Abs. 2 Nr. 1 AufenthG"
# A right-to-left paragraph long enough to be broken over several printed lines: it must read
# from its first words at the top, not from its last.
ARABIC_FACTS = ("الفقرة الأولى: عرض المشتبه به عبر قناة على تلغرام رحلات بالقارب من إزمير إلى"
                " جزر بحر إيجة مقابل ثلاثة آلاف يورو للشخص الواحد، ونشر مواعيد الانطلاق"
                " وأرقام الهواتف للتواصل، ثم طلب الدفع مسبقاً عبر وسيط مالي. الفقرة الأخيرة")
FACTS = ("Between 3 and 21 November 2026 the suspect offered crossings from Izmir to the"
         " Greek islands for EUR 3,000 a person on a public Telegram channel.\n"
         "\n"
         "The adverts quoted below were posted in Arabic:\n" + ARABIC_FACTS)


def sha(seed: str) -> str:
    return (seed.encode().hex() * 64)[:64]


def tall_png(path: Path, size: tuple[int, int] = (1280, 20000)) -> Path:
    """A full-page screenshot: a header band, then stripes all the way down."""
    image = Image.new("RGBA", size, (250, 250, 250, 255))
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, 0, size[0], 90], fill=(24, 119, 242, 255))
    draw.text((40, 30), "Marketplace - travel offers", fill=(255, 255, 255, 255))
    for y in range(140, size[1], 260):
        draw.rectangle([40, y, size[0] - 40, y + 200], outline=(180, 180, 180, 255), width=3)
        draw.rectangle([60, y + 20, 300, y + 180], fill=((y * 7) % 255, 120, 160, 255))
        draw.text((330, y + 30), f"Offer at {y} px", fill=(20, 20, 20, 255))
    image.save(path, compress_level=1)
    return path


def small_jpeg(path: Path) -> Path:
    image = Image.new("RGB", (1366, 900), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, 0, 1366, 70], fill=(40, 40, 40))
    draw.ellipse([200, 200, 700, 700], fill=(200, 60, 60))
    image.save(path, "JPEG", quality=90)
    return path


def custody(capture_seq: int, manifest: str, *, actor: str | None = "alice") -> tuple[
        CustodyLine, ...]:
    at = START + timedelta(minutes=capture_seq)
    return (
        CustodyLine(capture_seq, capture_seq - 3, at.isoformat().replace("+00:00", "Z"), actor,
                    "capture.requested", None, "capture of the address requested"),
        CustodyLine(capture_seq + 1, capture_seq - 2,
                    (at + timedelta(seconds=40)).isoformat().replace("+00:00", "Z"), None,
                    "capture.recorded", manifest, "manifest sealed, signed and timestamped"),
        CustodyLine(capture_seq + 9, capture_seq + 6,
                    (at + timedelta(days=1)).isoformat().replace("+00:00", "Z"), "bob",
                    "exhibit.annotated", None, "note added: " + RUSSIAN),
    )


def files(number: str, *, extra: tuple[ReportFile, ...] = ()) -> tuple[ReportFile, ...]:
    base = f"exhibits/{number}/files/"
    return (
        ReportFile(base + "screenshot.png", "screenshot", "image/png", 3_481_220,
                   sha(number + "png")),
        ReportFile(base + "page.mhtml", "mhtml", "multipart/related", 912_004,
                   sha(number + "mhtml")),
        ReportFile(base + "capture.warc.gz", "warc", "application/warc", 12_770_113,
                   sha(number + "warc")),
        ReportFile(f"exhibits/{number}/archive.wacz", "wacz", "application/wacz", 12_901_555,
                   sha(number + "wacz")),
        *extra,
    )


def sample(tmp_path: Path) -> ReportData:
    first = ReportExhibit(
        number="EX-001", capture_id="0d9f3c1e-6a1b-4f0e-9c55-1a2b3c4d5e6f",
        url="https://www.facebook.com/marketplace/item/1234567890/",
        final_url="https://www.facebook.com/marketplace/item/1234567890/?ref=share",
        status="complete", http_status=200, title=f"{RUSSIAN} — {GREEK} | Marketplace",
        started_at=START, finished_at=START + timedelta(seconds=41, microseconds=5),
        manifest_sha256=sha("manifest-1"), key_id=KEY_ID,
        timestamp_time=START + timedelta(seconds=42), timestamp_authority="freetsa.org",
        timestamp_local=False, timestamp_note=None,
        thumbnail=tall_png(tmp_path / "tall.png"), files=files("EX-001"),
        custody=custody(10, sha("manifest-1")), steps_failed=(),
    )
    second = ReportExhibit(
        number="EX-002", capture_id="7c2e1f0a-1111-4222-8333-944455556666",
        url=LONG_URL, final_url=None, status="partial", http_status=None,
        title=HOSTILE_TITLE + " " + PERSIAN,
        started_at=START.replace(tzinfo=None) + timedelta(hours=1),  # naive: UTC by convention
        finished_at=None, manifest_sha256=sha("manifest-2"), key_id=KEY_ID,
        timestamp_time=START + timedelta(hours=1, seconds=30),
        timestamp_authority="evidence-locker built-in TSA", timestamp_local=True,
        timestamp_note=None, thumbnail=small_jpeg(tmp_path / "shot.jpg"),
        files=files("EX-002", extra=(ReportFile(
            "exhibits/EX-002/files/" + "a" * 120 + ".html", "dom", "text/html", 1,
            sha("long")),)),
        custody=custody(20, sha("manifest-2"), actor="<script>&amp;"),
        steps_failed=("pdf: timed out after 30 s", "warc: <proxy> refused & closed"),
    )
    third = ReportExhibit(
        number="EX-003", capture_id="99999999-aaaa-4bbb-8ccc-dddddddddddd",
        url=f"https://t.me/s/{TIGRINYA}_channel", final_url=f"https://t.me/s/{TIGRINYA}_channel",
        status="complete", http_status=451, title=f"{TIGRINYA} ተጓዝ",
        started_at=START + timedelta(hours=2), finished_at=START + timedelta(hours=2, seconds=9),
        manifest_sha256=sha("manifest-3"), key_id=KEY_ID, timestamp_time=None,
        timestamp_authority=None, timestamp_local=False,
        timestamp_note="no authority answered: connection refused", thumbnail=None,
        files=files("EX-003"), custody=custody(30, sha("manifest-3")), steps_failed=(),
    )
    return ReportData(
        bundle_name="OP-HARBOUR-export-2026-11-22T2043Z",
        export_id="3b8f6a52-0c1d-4e7f-a9b2-6d4c3e2f1a0b",
        created_at=datetime(2026, 11, 22, 20, 43, 24, 123456, tzinfo=UTC),
        tool="evidence-locker 0.1.0", case_reference="OP-HARBOUR",
        case_title="Smuggling adverts, Aegean route", offence="§ 96 AufenthG (Einschleusen)",
        offence_provision=PROVISION, max_penalty_years=10.0, facts=FACTS, jurisdiction="DE",
        exported_by="alice", exported_by_unit="LKA 12 Online",
        key_id=KEY_ID, checkpoint_origin="evidence-locker/lka12 custody log",
        checkpoint_tree_size=4711, checkpoint_root=ROOT_HASH,
        checkpoint_timestamp=datetime(2026, 11, 22, 20, 43, 25, tzinfo=UTC),
        checkpoint_timestamp_authority="freetsa.org",
        exhibits=(first, second, third),
        tsa_fingerprints=(("keys/tsa/freetsa-ca.pem", TSA_FINGERPRINT),
                          ("keys/tsa/local-tsa-ca.pem", "ef" * 32)),
        verifier_sha256=VERIFIER_SHA,
        received=(ReportReceived(
            number="RM-001", path="received/RM-001-ip_log.csv", filename="ip_log.csv",
            media_type="text/csv", size=78, sha256=sha("ip_log"),
            origin="request OP-HARBOUR-EPOC-1", via="portal", registered_by="alice",
            # Entered with microseconds: the report shows the second, bundle.json all of it.
            received_at=datetime(2026, 11, 20, 14, 33, 7, 123456, tzinfo=UTC)),),
    )


def run(*args: str | Path) -> str:
    return subprocess.run([str(a) for a in args], check=True, capture_output=True,
                          text=True).stdout


def pages(pdf: Path) -> list[str]:
    """The text of each page, as pdftotext extracts it."""
    return run("pdftotext", "-enc", "UTF-8", pdf, "-").split("\f")[:-1]


# The line heading a page that carries on a part begun on an earlier page.
CONTINUED = re.compile(r"^OP-HARBOUR · (.+), continued$", re.M)


def bodies(pdf: Path) -> str:
    """The text of all pages without their footers and the lines saying a page continues a
    part, so a value split over pages reads whole."""
    footer = re.compile(r"^(OP-HARBOUR-export\S* · export \S+|page \d+ of \d+)$", re.M)
    return "".join(CONTINUED.sub("", footer.sub("", page)) for page in pages(pdf))


def printed(text: str) -> str:
    """The sample's text as the report prints it: Ethiopic has no font, so code points."""
    return text.replace(TIGRINYA, "[U+1275 U+130D U+122D U+129B]")


def squeezed(text: str) -> str:
    """Text without any whitespace, so a hash or URL wrapped over lines reads as one word."""
    return "".join(text.split())


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[ReportData, Path]:
    tmp_path = tmp_path_factory.mktemp("report")
    data = sample(tmp_path)
    pdf = tmp_path / "report.pdf"
    write_report(data, pdf)
    return data, pdf


def test_cover_shows_case_key_checkpoint_and_every_exhibit(made: tuple[ReportData, Path]) -> None:
    data, pdf = made
    cover = pages(pdf)[0]
    assert "Evidence report" in cover
    for expected in ("OP-HARBOUR", "Smuggling adverts, Aegean route", "§ 96 AufenthG", "DE",
                     data.export_id, "2026-11-22 20:43:24 UTC", "alice",
                     "LKA 12 Online", "evidence-locker/lka12 custody log", "4711"):
        assert expected in cover, expected
    flat = squeezed(cover)
    assert KEY_ID in flat and ROOT_HASH in flat
    assert "2026-11-2220:43:25UTC,byfreetsa.org" in flat
    # The exhibit index may run on past the cover page; it lists every exhibit.
    index = squeezed("".join(pages(pdf)[:2]))
    for exhibit in data.exhibits:
        assert squeezed(printed(exhibit.url)[:300]) in index, exhibit.number
        assert exhibit.manifest_sha256 in index, exhibit.number


def test_cover_states_what_the_case_is_about(made: tuple[ReportData, Path]) -> None:
    _, pdf = made
    cover = pages(pdf)[0]
    flat = squeezed(cover)
    assert "Offence§96AufenthG(Einschleusen)" in flat
    assert squeezed("Statutory provision " + PROVISION) in flat
    assert "Maximumpenalty10years" in flat
    assert "JurisdictionDE" in flat
    # The summary of the facts, its line breaks kept: each stored line its own paragraph.
    summary = cover.split("Summary of the facts", 1)[1].split("Custody log checkpoint", 1)[0]
    assert squeezed(FACTS.split("\n")[0]) in squeezed(summary)
    assert "posted in Arabic:\n" in summary
    letters = unicodedata.normalize("NFKC", summary)
    assert all(word in letters for word in ("تلغرام", "يورو", "وسيط"))


def test_a_long_right_to_left_summary_reads_from_its_first_words(
        made: tuple[ReportData, Path]) -> None:
    """Broken into printed lines before it is reordered: the first words are on the top line,
    at its right end, and the last words on the bottom line."""
    _, pdf = made
    words = [word for word in placed_words(pdf, page=1)
             if any("\u0600" <= c <= "\u06ff" for c in word.text)]
    lines = sorted({round(word.top) for word in words})
    assert len(lines) >= 2, "the Arabic paragraph was not broken over several lines"
    first = [word for word in words if round(word.top) == lines[0]]
    assert max(first, key=lambda word: word.left).text == "الفقرة"
    top_of = {word.text: round(word.top) for word in words}
    assert top_of["عرض"] == lines[0] and top_of["مالي."] == lines[-1]


# A page title as Facebook gives one: the post's own words, longer than a line.
ARABIC_TITLE = ("البداية رحلات بالقارب من إزمير إلى جزر بحر إيجة مقابل ثلاثة آلاف يورو للشخص"
                " الواحد مع مواعيد الانطلاق وأرقام الهواتف للتواصل والدفع مسبقاً عبر وسيط مالي"
                " | فيسبوك النهاية")


def test_a_long_right_to_left_page_title_reads_from_its_first_words(tmp_path: Path) -> None:
    data = sample(tmp_path)
    first = replace(data.exhibits[0], title=ARABIC_TITLE)
    pdf = tmp_path / "title.pdf"
    write_report(replace(data, exhibits=(first, *data.exhibits[1:])), pdf)
    page = next(n for n, text in enumerate(pages(pdf), start=1)
                if text.startswith("Exhibit EX-001"))
    lines = arabic_lines(pdf, page=page)
    assert len(lines) >= 2, "the title was not broken over several lines"
    assert lines[0][0].text == "البداية", [w.text for w in lines[0]]
    assert lines[-1][-1].text == "النهاية", [w.text for w in lines[-1]]


# Right-to-left text as people give it, each longer than its narrow column: a received file's
# name, who sent it, a custody entry's detail. Each starts and ends with a word found nowhere
# else ("first", "last").
ARABIC_FILE_NAME = "بدايتها_محادثة_المهرب_مع_الزبائن_في_إزمير_قبل_الرحلة_نهايتها.pdf"
ARABIC_FROM = "أولها محامي الدفاع عن المتهم الأول في مدينة إزمير عبر البريد المسجل آخرها"
ARABIC_VIA = "أولى طريقة التسليم عبر ساعي البريد إلى مكتب الشرطة آخرة"
ARABIC_DETAIL = ("note added: أولهم قام المحقق بمراجعة الإعلان ومقارنته مع الصور الأخرى في"
                 " القناة نفسها آخرهم")


def _top_of(pdf: Path, word: str) -> tuple[int, float]:
    """(page, top) of the printed word (or piece of a word cut over lines) holding `word`."""
    for page in range(1, len(pages(pdf)) + 1):
        for placed in placed_words(pdf, page=page):
            if word in placed.text:
                return page, placed.top
    raise AssertionError(f"{word} is not printed")


def test_right_to_left_text_in_narrow_cells_reads_from_its_start(tmp_path: Path) -> None:
    """Broken into lines before reordering, as the titles are: broken after, a wrapped file
    name, sender or custody detail printed its last words on its top line."""
    data = sample(tmp_path)
    received = replace(data.received[0], filename=ARABIC_FILE_NAME, origin=ARABIC_FROM,
                       via=ARABIC_VIA)
    first = data.exhibits[0]
    note = replace(first.custody[-1], summary=ARABIC_DETAIL)
    first = replace(first, custody=(*first.custody, note))
    left_out = ReportLeftOut("RM-002", ARABIC_FILE_NAME.replace(".pdf", "_2.pdf"), 10,
                             sha("left"), ARABIC_FROM)
    pdf = tmp_path / "cells.pdf"
    write_report(replace(data, received=(received,), received_left_out=(left_out,),
                         exhibits=(first, *data.exhibits[1:])), pdf)
    for start, end in (("بدايتها", "نهايتها"), ("أولها", "آخرها"), ("أولى", "آخرة"),
                       ("أولهم", "آخرهم")):
        assert _top_of(pdf, start) < _top_of(pdf, end), (start, end)
    # Broken, not cut short: the words within the values are printed too.
    text = unicodedata.normalize("NFKC", bodies(pdf))
    assert all(word in text for word in ["محامي", "مدينة", "ساعي", "بمراجعة", "ومقارنته"])


def test_a_case_without_offence_details_says_not_recorded(tmp_path: Path) -> None:
    data = replace(sample(tmp_path), offence=None, offence_provision=None,
                   max_penalty_years=None, facts="  \n ", jurisdiction=None)
    pdf = tmp_path / "bare.pdf"
    write_report(data, pdf)
    flat = squeezed(pages(pdf)[0])
    for label in ("Offence", "Statutoryprovision", "Maximumpenalty", "Jurisdiction",
                  "Summaryofthefacts"):
        assert f"{label}notrecorded" in flat, label


def test_maximum_penalty_in_words() -> None:
    assert [_years(y) for y in (10.0, 1.0, 0.5, 2.5, 100.0, None)] == [
        "10 years", "1 year", "0.5 years", "2.5 years", "100 years", "not recorded"]


def test_each_exhibit_has_its_own_pages_with_the_capture_facts(
        made: tuple[ReportData, Path]) -> None:
    data, pdf = made
    # Each exhibit's section starts a page.
    starts = {text.split("\n", 1)[0] for text in pages(pdf)}
    for exhibit in data.exhibits:
        assert f"Exhibit {exhibit.number}" in starts
        following = f"Exhibit EX-{int(exhibit.number[3:]) + 1:03d}"
        section = squeezed(bodies(pdf).split(f"Exhibit {exhibit.number}\n", 1)[1]
                           .split(following, 1)[0])
        assert squeezed(printed(exhibit.url)) in section
        assert exhibit.manifest_sha256 in section
        assert exhibit.capture_id in section
        for file in exhibit.files:
            assert file.sha256 in section and squeezed(file.path) in section
            assert str(file.size) in section
        for line in exhibit.custody:
            assert line.action in section and f"{line.case_seq}/{line.seq}" in section
        for step in exhibit.steps_failed:
            assert squeezed(step) in section


def test_a_page_carrying_on_an_exhibit_names_it(made: tuple[ReportData, Path]) -> None:
    """An exhibit's files and custody history often run on to a page of their own: read alone
    (printed, or cited as "page 4"), it says whose they are; a page that starts a part does
    not repeat it."""
    _, pdf = made
    part = None
    carried = []
    for number, text in enumerate(pages(pdf), start=1):
        first = text.split("\n", 1)[0]
        starts = next((p for p in ("Evidence report", "Received material", "How to verify")
                       if first.startswith(p)), None) or (
            first if re.fullmatch(r"Exhibit EX-\d{3}", first) else None)
        if starts:
            part = {"Evidence report": "Cover", "How to verify": "How to verify"}.get(
                starts, starts)
            assert not CONTINUED.search(text), number
        else:
            assert first == f"OP-HARBOUR · {part}, continued", (number, first)
            carried.append(part)
    # The sample's first two exhibits do not fit on one page each.
    assert {"Exhibit EX-001", "Exhibit EX-002"} <= set(carried), carried


def test_exhibit_facts_and_timestamps(made: tuple[ReportData, Path]) -> None:
    _, pdf = made
    text = squeezed("".join(pages(pdf)[1:]))
    assert "Capturestarted2026-11-2218:05:12UTC" in text
    assert "Capturefinished2026-11-2218:05:53UTC" in text
    assert "HTTPstatusHTTP200OK" in text and "HTTPstatusnonerecorded" in text
    assert "2026-11-2218:05:54UTC,byfreetsa.org" in text
    # EX-002 is timestamped by the built-in authority; EX-003 not at all.
    assert squeezed("its time rests only on this system's clock") in text
    assert "(thissystem'sownclock)" in text
    assert squeezed("none: the manifest has no timestamp token. no authority answered") in text
    assert squeezed("Address reached none recorded") in text
    assert squeezed("steps that failed: pdf: timed out after 30 s; warc: <proxy> refused &"
                    " closed") in text


def test_a_capture_of_an_error_answer_says_what_the_page_answered(
        made: tuple[ReportData, Path]) -> None:
    """EX-003's page answered 451: complete, but a capture of that answer, not of the page, in
    the index and on its own page, as the web pages say it; EX-001's 200 is plainly complete."""
    _, pdf = made
    text = bodies(pdf)
    index = squeezed(text.split("Exhibit EX-001\n", 1)[0])
    assert "complete·HTTP451" in index and "complete·HTTP200" not in index
    sections = {number: squeezed(text.split(f"Exhibit {number}\n", 1)[1].split("Exhibit EX-", 1)[0])
                for number in ("EX-001", "EX-003")}
    assert "HTTPstatusHTTP451UnavailableForLegalReasons" in sections["EX-003"]
    assert squeezed(
        "Status Complete, but the page answered HTTP 451 Unavailable For Legal Reasons (the page "
        "is withheld for legal reasons (a takedown, or a block in this country)): what was "
        "captured is that answer, not the page as it once stood") in sections["EX-003"]
    assert "HTTPstatusHTTP200OK" in sections["EX-001"]
    assert "StatuscompleteManifestSHA-256" in sections["EX-001"]


def test_the_exhibit_index_keeps_each_status_time_and_manifest_hash_on_one_line(
        made: tuple[ReportData, Path]) -> None:
    """The index's status of a capture of a 451 answer broke before "451" on a line of its
    own; its time and its manifest's SHA-256 keep to a line each too."""
    data, pdf = made
    index = run("pdftotext", "-layout", "-enc", "UTF-8", "-f", "1", "-l", "2", pdf, "-")
    lines = index.splitlines()
    for exhibit in data.exhibits:
        [row] = [line for line in lines if line.startswith(exhibit.number)]
        assert to_the_second(exhibit.started_at, zone=False) in row, row
        assert row.rstrip().endswith(outcome_of(exhibit.status, exhibit.http_status).label), row
        assert any(line.strip() == exhibit.manifest_sha256 for line in lines), exhibit.number
    assert "complete · HTTP 451" in index


def test_every_time_is_shown_to_the_second(made: tuple[ReportData, Path]) -> None:
    data, pdf = made
    text = bodies(pdf)
    # The exhibits' capture, timestamp and custody times, the cover's export time and the
    # received material's time were all entered with fractions of a second.
    assert re.findall(r"\d\d:\d\d:\d\d[.,]\d", text) == []
    assert "2026-11-2014:33:07" in squeezed(text) and "14:33:07.123456" not in text
    # The custody lines' times, as logged with their fractions, come out to the second too.
    logged = datetime.fromisoformat(data.exhibits[0].custody[0].at)
    assert logged.microsecond and logged.strftime("%Y-%m-%d %H:%M:%S") in text


def test_hostile_and_non_latin_text_prints_as_written(made: tuple[ReportData, Path]) -> None:
    _, pdf = made
    raw = bodies(pdf)
    text = squeezed(raw)
    assert squeezed('<b>&amp; "x" </font><para> &') in text
    assert "<script>&amp;" in text
    for script in (RUSSIAN, GREEK):
        assert squeezed(script) in text
    # Arabic and Persian letters come out as letters (drawn in DejaVu Sans, not as boxes),
    # joined: extracted as presentation forms, which NFKC maps back to the letters.
    letters = unicodedata.normalize("NFKC", raw)
    assert all(letter in letters for letter in "إعلنرحةىأوب")
    assert all(letter in letters for letter in "میخواهم")
    assert any(0xFE70 <= ord(c) <= 0xFEFF for c in raw), "Arabic letters were not joined"
    # No installed font has Ethiopic, and a direction override must not hide text: both are
    # shown as code points.
    assert "[U+1275U+130DU+122DU+129B]" in text
    # (pdftotext reorders the Arabic around it, as it takes it for right-to-left text.)
    assert "U+202E]evil" in text
    assert squeezed(LONG_URL) in text
    fonts = run("pdffonts", pdf)
    assert "DejaVuSans" in fonts and "Helvetica" in fonts and "Courier" in fonts


def test_every_page_is_a4_with_a_footer(made: tuple[ReportData, Path]) -> None:
    data, pdf = made
    info = run("pdfinfo", "-f", "1", "-l", "999", pdf)
    total = int(re.search(r"^Pages:\s+(\d+)", info, re.M).group(1))  # type: ignore[union-attr]
    sizes = re.findall(r"^Page\s+\d+ size:\s+(.*)$", info, re.M)
    assert len(sizes) == total and all(s.startswith("595.276 x 841.89 pts (A4)") for s in sizes)
    texts = pages(pdf)
    assert len(texts) == total >= 1 + len(data.exhibits) + 1
    for number, text in enumerate(texts, start=1):
        assert f"page {number} of {total}" in text
        assert f"{data.bundle_name} · export {data.export_id}" in text


def test_verification_page(made: tuple[ReportData, Path]) -> None:
    data, pdf = made
    texts = pages(pdf)
    start = next(n for n, t in enumerate(texts) if t.startswith("How to verify this bundle"))
    text = " ".join("".join(texts[start:]).split())
    flat = squeezed(text)
    for command in ("python data/verify.py BUNDLE.zip", "evidence verify BUNDLE.zip",
                    # The form a defence expert has: verify.py, not evidence-locker.
                    "python data/verify.py BUNDLE.zip --against-checkpoint OLD.json",
                    "--consistency-proof FILE",
                    "sha256sum -c manifest-sha256.txt", "pip install cryptography",
                    f"{data.bundle_name}/data/verify.py"):
        assert command in text, command
    assert "Python 3.11" in text and "Exit status 0" in text
    assert KEY_ID in flat and VERIFIER_SHA in flat
    for path, fingerprint in data.tsa_fingerprints:
        assert path in text and fingerprint in flat
    assert "nothing logged up to the older checkpoint was changed" in text
    # The bundle's own verify.py cannot vouch for the bundle: the page says to run a copy
    # obtained independently, with the unit's key pinned, not to check it against this report.
    assert "came with the bundle" not in text
    assert "only as trustworthy as the bundle" in text
    assert "obtained independently" in text and "--key" in text


def test_stream_output_is_deterministic(made: tuple[ReportData, Path]) -> None:
    data, pdf = made
    buffer = io.BytesIO()
    write_report(data, buffer)
    assert buffer.getvalue() == pdf.read_bytes()
    assert buffer.getvalue().startswith(b"%PDF-")


def test_without_fallback_fonts_non_latin_text_becomes_code_points(tmp_path: Path) -> None:
    data = sample(tmp_path)
    pdf = tmp_path / "plain.pdf"
    write_report(data, pdf, font_dirs=[tmp_path / "no-fonts-here"])
    text = squeezed(run("pdftotext", "-enc", "UTF-8", pdf, "-"))
    assert "[U+0625U+0639U+0644U+0627U+0646]" in text  # the start of the Arabic title
    assert "are written as their Unicode code points" in " ".join(
        run("pdftotext", "-enc", "UTF-8", pdf, "-").split())
    assert "DejaVu" not in run("pdffonts", pdf)


def test_enormous_values_are_cut_with_a_note_and_bad_screenshots_tolerated(
        tmp_path: Path) -> None:
    data = sample(tmp_path)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    exhibits = (
        replace(data.exhibits[0], title="T" * 30_000, thumbnail=broken,
                custody=data.exhibits[0].custody * 40),
        replace(data.exhibits[1], thumbnail=tmp_path / "missing.png",
                url="https://x.example/" + "y" * 20_000),
    )
    pdf = tmp_path / "big.pdf"
    write_report(replace(data, exhibits=exhibits, tsa_fingerprints=(),
                         offence=None, jurisdiction=None, facts="a long summary " * 2000), pdf)
    text = " ".join(run("pdftotext", "-enc", "UTF-8", pdf, "-").split())
    assert "more characters not shown here; the whole value is in" in text
    assert "22000 more characters not shown here; the whole summary is in bundle.json" in text
    assert "the screenshot could not be read" in text
    assert "this bundle carries no authority certificate" in text
    assert "none recorded" in text


def test_empty_bundle(tmp_path: Path) -> None:
    data = replace(sample(tmp_path), exhibits=(), received=())
    pdf = tmp_path / "empty.pdf"
    write_report(data, pdf)
    text = run("pdftotext", pdf, "-")
    assert "The bundle holds no exhibit." in text and "page 2 of 2" in text


def test_preview_is_the_top_of_the_screenshot_downscaled(tmp_path: Path) -> None:
    tall = tall_png(tmp_path / "tall.png")
    preview = _preview(tall)
    assert preview.jpeg is not None and preview.source_size == (1280, 20000)
    assert preview.width == PREVIEW_WIDTH_PX and preview.height == 750
    with Image.open(io.BytesIO(preview.jpeg)) as image:
        assert image.format == "JPEG" and image.size == (1000, 750)
        # The blue header band of the page is at the top of the preview.
        red, _, blue = image.convert("RGB").getpixel((500, 20))  # type: ignore[misc]
        assert blue > 200 and red < 60
    assert len(preview.jpeg) < 300_000
    jpeg = _preview(small_jpeg(tmp_path / "shot.jpg"))
    assert jpeg.jpeg is not None and jpeg.source_size == (1366, 900)
    # Wider than 4:3 already, so nothing is cropped.
    assert (jpeg.width, jpeg.height) == (1000, 659)


def test_preview_of_a_tall_png_decodes_only_its_top(tmp_path: Path) -> None:
    # Decoded whole, this RGBA screenshot is 1280 x 20000 x 4 = 102 MB; the preview must stay
    # far below that. Measured in a fresh process, by its peak resident size.
    tall = tall_png(tmp_path / "tall.png")
    script = textwrap.dedent(f"""
        import resource
        from pathlib import Path
        from evidence.report import _preview
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        preview = _preview(Path({str(tall)!r}))
        assert preview.jpeg is not None, preview.problem
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print((after - before) // 1024)
    """)
    grown = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True,
                           text=True, cwd=ROOT).stdout
    assert int(grown) < 40, f"peak memory grew by {grown.strip()} MB"
