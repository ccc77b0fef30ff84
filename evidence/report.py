"""The PDF evidence report that goes into every bundle as ``data/report.pdf``.

The report is a reading aid for the court, the prosecution and the defence: a cover page with
the case (what it is about: offence, statutory provision, maximum penalty, jurisdiction and the
summary of the facts, each "not recorded" where the case holds none), the export and the signing
key; one section per exhibit (a preview of the top of the screenshot, what was captured, when,
its hashes, its files and its custody history); and a last page saying in plain words how to
check the bundle without this system. The files, signatures and timestamps in the bundle are the
evidence; the report only describes them, and says so.

The exporter fills the frozen dataclasses below from the database and calls `write_report`.

Decisions a reader may ask about:

* Text the captured page or a user controls (page titles, URLs, names, notes) is escaped for
  ReportLab's paragraph markup, so a title such as ``<b>&`` prints as written.
* ReportLab's built-in fonts (Helvetica, Courier) only hold Western European letters. Other
  characters (Arabic, Persian, Cyrillic, Greek, Ethiopic ...) are drawn, run by run, in the first
  TrueType font found on this machine that has them (DejaVu Sans and friends, see
  `FALLBACK_FONTS`). A character no font has, and any invisible control or direction-override
  character, is printed as its code point, ``[U+202E]``, so nothing turns into a black box or
  hides. ReportLab itself neither reorders right-to-left text nor joins Arabic letters;
  `evidence.pdftext` puts each line in display order with joined letters. A line is reordered
  only after it is broken, so a long right-to-left paragraph (the summary of the facts) is
  broken into lines here, in reading order, before each line is reordered; otherwise its first
  printed line would hold its last words. The exact text is in ``bundle.json`` and the manifests.
* The screenshot preview is the top of the page (what a visitor saw first), cropped to 4:3 and
  scaled down to at most `PREVIEW_WIDTH_PX` pixels wide. A full-page screenshot may be
  1280 x 20000 pixels or more (100 MB decoded), so only the top rows of a PNG are decoded,
  a JPEG is decoded at a reduced scale (``Image.draft``), other formats are decoded whole only
  under `PREVIEW_MAX_PIXELS`, and the preview is embedded as a small JPEG.
* A page that carries on a part begun on an earlier page (an exhibit's files and custody
  history often do) says at its top which one, with the case: read alone, or cited by its
  page number, it is not taken for another exhibit's.
* "page N of M" needs M before the first page is drawn, so the document is laid out twice;
  the preview images are made once. With ReportLab's ``invariant`` mode the output is
  byte-identical for the same data and fonts.
* Every cell and paragraph wraps, splitting long words (hashes, URLs) where needed, and table
  rows may split across pages, so no value runs off the page or breaks the layout. A value
  longer than `MAX_VALUE_CHARS` is cut with a note saying how much was left out and where the
  whole value is.
"""

# ReportLab ships no type information; types-reportlab (typeshed) provides it where installed.

from __future__ import annotations

import functools
import io
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO
from xml.sax.saxutils import escape

from PIL import Image, ImageFile
from reportlab.lib import colors
from reportlab.lib.enums import TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    BaseDocTemplate,
    Flowable,
    Frame,
    KeepTogether,
    PageBreak,
    PageTemplate,
    Paragraph,
    Spacer,
    Table,
    TableStyle,
)
from reportlab.platypus import Image as PdfImage

from evidence.captures import http_answer, outcome_of
from evidence.models import CaptureStatus
from evidence.pdftext import (
    FALLBACK_FONTS,
    FONT_DIRS,
    MAX_VALUE_CHARS,
    MONO_FALLBACK_FONTS,
    Text,
    load_fonts,
    starts_right_to_left,
)
from evidence.times import to_the_second
from evidence.timestamping import LOCAL_CLOCK_NOTICE

# --- what the exporter hands over ---------------------------------------------------------------


@dataclass(frozen=True)
class CustodyLine:
    """One custody entry of an exhibit, as the report shows it."""

    seq: int
    case_seq: int
    at: str  # UTC ISO 8601, as logged
    actor: str | None
    action: str
    sha256: str | None
    summary: str  # a short human detail


@dataclass(frozen=True)
class ReportFile:
    """One file of an exhibit; `path` is relative to ``data/``."""

    path: str
    kind: str
    media_type: str
    size: int
    sha256: str


@dataclass(frozen=True)
class ReportExhibit:
    number: str  # "EX-001"
    capture_id: str
    url: str
    final_url: str | None
    status: str
    http_status: int | None
    title: str | None
    started_at: datetime
    finished_at: datetime | None
    manifest_sha256: str
    key_id: str
    timestamp_time: datetime | None
    timestamp_authority: str | None
    timestamp_local: bool  # the time rests only on this system's own clock
    timestamp_note: str | None
    thumbnail: Path | None  # the screenshot file; any size
    files: tuple[ReportFile, ...]
    custody: tuple[CustodyLine, ...]
    steps_failed: tuple[str, ...]  # "pdf: timed out"


@dataclass(frozen=True)
class ReportReceived:
    """A file the unit received (a platform's answer, or material from another source)."""

    number: str  # "RM-001"
    path: str  # under data/
    filename: str  # as given; hostile text, shown escaped
    media_type: str
    size: int
    sha256: str
    origin: str  # "request OP-1-EPOC-1 (platform reference X)" or "source: ..."
    received_at: datetime
    via: str  # "portal", "medium", "other: courier"
    registered_by: str | None


@dataclass(frozen=True)
class ReportLeftOut:
    """Received material of the case a chosen-targets bundle does not carry, and why."""

    number: str  # "RM-002", its number in the case
    filename: str  # as given; hostile text, shown escaped
    size: int
    sha256: str
    why: str  # "answers request OP-1-EPOC-2, which concerns none of the chosen targets"


@dataclass(frozen=True)
class ReportData:
    bundle_name: str
    export_id: str
    created_at: datetime
    tool: str
    case_reference: str
    case_title: str
    offence: str | None
    offence_provision: str | None  # the statutory provision, e.g. "§ 96 AufenthG"
    max_penalty_years: float | None  # maximum custodial penalty
    facts: str | None  # summary of the facts; several lines, any script
    jurisdiction: str | None
    exported_by: str
    exported_by_unit: str | None
    key_id: str
    checkpoint_origin: str
    checkpoint_tree_size: int
    checkpoint_root: str  # hex
    checkpoint_timestamp: datetime | None
    checkpoint_timestamp_authority: str | None
    exhibits: tuple[ReportExhibit, ...]
    tsa_fingerprints: tuple[tuple[str, str], ...]  # (file path, SHA-256 fingerprint)
    verifier_sha256: str
    received: tuple[ReportReceived, ...] = ()
    # A chosen-targets bundle: which received material it carries and leaves out; None when
    # the whole case was exported.
    received_scope: str | None = None
    targets_chosen: int | None = None  # exported for this many chosen targets; None: all
    received_left_out: tuple[ReportLeftOut, ...] = ()


# --- layout constants ---------------------------------------------------------------------------

PAGE_WIDTH, PAGE_HEIGHT = A4
MARGIN_X = 18 * mm
MARGIN_TOP = 16 * mm
MARGIN_BOTTOM = 20 * mm
TEXT_WIDTH = PAGE_WIDTH - 2 * MARGIN_X

PREVIEW_ASPECT = 4 / 3  # width / height of the part of the screenshot shown
PREVIEW_WIDTH_PX = 1000
PREVIEW_MAX_PIXELS = 40_000_000  # decode a non-PNG, non-JPEG image whole only below this
PREVIEW_BOX = (130 * mm, 97.5 * mm)
INDEX_URL_CHARS = 300
MAX_TITLE_CHARS = 2000

INK = colors.HexColor("#1a1a1a")
MUTED = colors.HexColor("#555555")
RULE = colors.HexColor("#9a9a9a")
SHADE = colors.HexColor("#eeeeee")
NOTICE = colors.HexColor("#fff4d6")


def write_report(data: ReportData, out: Path | BinaryIO, *,
                 font_dirs: Sequence[Path] = FONT_DIRS) -> None:
    """Write the evidence report for `data` as a PDF to a path or a binary stream."""
    text = Text(load_fonts(font_dirs, FALLBACK_FONTS),
                load_fonts(font_dirs, MONO_FALLBACK_FONTS), where="in bundle.json")
    previews = {exhibit.number: _preview(exhibit.thumbnail) for exhibit in data.exhibits}

    # First pass counts the pages for "page N of M"; the second writes the PDF.
    counter = _Document(io.BytesIO(), data, text, total_pages=None)
    counter.build(_story(data, text, previews))
    document = _Document(str(out) if isinstance(out, Path) else out, data, text,
                         total_pages=counter.page)
    document.build(_story(data, text, previews))


# --- styles -------------------------------------------------------------------------------------


def _style(name: str, **overrides: Any) -> ParagraphStyle:
    base: dict[str, Any] = {"fontName": "Helvetica", "fontSize": 9, "leading": 11.5,
                            "textColor": INK, "splitLongWords": 1}
    base.update(overrides)
    return ParagraphStyle(name, **base)


BODY = _style("body", fontSize=9.5, leading=13, spaceAfter=5)
SMALL = _style("small", fontSize=8, leading=10, textColor=MUTED)
LABEL = _style("label", fontName="Helvetica-Bold", fontSize=8.5, leading=11)
VALUE = _style("value")
VALUE_RTL = _style("valuertl", parent=VALUE, alignment=TA_RIGHT)
MONO = _style("mono", fontName="Courier", fontSize=8.5, leading=10.5)
CELL = _style("cell", fontSize=7.5, leading=9.5)
CELL_MONO = _style("cellmono", fontName="Courier", fontSize=7.5, leading=9.5)
CELL_HASH = _style("cellhash", fontName="Courier", fontSize=7.5, leading=9.5,
                   textColor=colors.HexColor("#333333"))
CELL_HEAD = _style("cellhead", fontName="Helvetica-Bold", fontSize=7.5, leading=9.5)
CELL_RIGHT = _style("cellright", fontSize=7.5, leading=9.5, alignment=TA_RIGHT)
TITLE = _style("title", fontName="Helvetica-Bold", fontSize=24, leading=30, spaceAfter=4)
SUBTITLE = _style("subtitle", fontSize=13, leading=17, spaceAfter=12)
H1 = _style("h1", fontName="Helvetica-Bold", fontSize=16, leading=20, spaceAfter=6)
H2 = _style("h2", fontName="Helvetica-Bold", fontSize=11, leading=14, spaceBefore=10,
            spaceAfter=5, keepWithNext=1)
FACTS = _style("facts", fontSize=9.5, leading=13, spaceAfter=4)
FACTS_RTL = _style("factsrtl", parent=FACTS, alignment=TA_RIGHT)
STEP = _style("step", fontSize=9.5, leading=13, leftIndent=14, firstLineIndent=-14,
              spaceAfter=6)
STEP_MORE = _style("stepmore", parent=STEP, firstLineIndent=0)
COMMAND = _style("command", fontName="Courier", fontSize=9, leading=12, leftIndent=28,
                 spaceAfter=6, textColor=colors.black)
FOOTER = _style("footer", fontSize=7.5, leading=9, textColor=MUTED)
FOOTER_RIGHT = _style("footerright", fontSize=7.5, leading=9, textColor=MUTED,
                      alignment=TA_RIGHT)


# --- the document -------------------------------------------------------------------------------


class _Document(BaseDocTemplate):
    def __init__(self, out: str | BinaryIO, data: ReportData, text: Text, *,
                 total_pages: int | None) -> None:
        super().__init__(
            out, pagesize=A4, leftMargin=MARGIN_X, rightMargin=MARGIN_X,
            topMargin=MARGIN_TOP, bottomMargin=MARGIN_BOTTOM, invariant=1,
            title=f"Evidence report {data.case_reference}", author=data.exported_by,
            subject=f"Evidence bundle {data.bundle_name}, export {data.export_id}",
            creator=data.tool, producer=data.tool,
        )
        self.data = data
        self.text = text
        self.total_pages = total_pages
        # The part of the report (outline title) the page in hand continues, if any: set by
        # each outline heading (`afterFlowable`), each of which starts a page.
        self.part: str | None = None
        self.part_page = 0
        frame = Frame(self.leftMargin, self.bottomMargin, self.width, self.height,
                      leftPadding=0, rightPadding=0, topPadding=0, bottomPadding=0, id="body")
        self.addPageTemplates([PageTemplate("page", [frame], onPage=self._footer,
                                            onPageEnd=self._continued)])

    def _continued(self, canvas: Canvas, doc: BaseDocTemplate) -> None:
        """A page that carries on an exhibit (its files, its custody history) or another part
        begun on an earlier page says which, so a page read alone is not taken for another."""
        if self.part is None or self.part_page == doc.page:
            return
        header = Paragraph(self.text.markup(self.data.case_reference, limit=200) + " &middot; "
                           + self.text.markup(self.part) + ", continued", FOOTER)
        canvas.saveState()
        header.wrap(TEXT_WIDTH, MARGIN_TOP)
        header.drawOn(canvas, MARGIN_X, PAGE_HEIGHT - MARGIN_TOP + 3 * mm)
        canvas.restoreState()

    def _footer(self, canvas: Canvas, doc: BaseDocTemplate) -> None:
        total = "?" if self.total_pages is None else str(self.total_pages)
        left = Paragraph(
            self.text.markup(self.data.bundle_name, limit=200) + " &middot; export "
            + self.text.markup(self.data.export_id, limit=200), FOOTER)
        right = Paragraph(f"page {doc.page} of {total}", FOOTER_RIGHT)
        canvas.saveState()
        canvas.setStrokeColor(RULE)
        canvas.setLineWidth(0.5)
        canvas.line(MARGIN_X, 14 * mm, PAGE_WIDTH - MARGIN_X, 14 * mm)
        _, left_height = left.wrap(TEXT_WIDTH - 32 * mm, 12 * mm)
        left.drawOn(canvas, MARGIN_X, 12.5 * mm - left_height)
        _, right_height = right.wrap(30 * mm, 12 * mm)
        right.drawOn(canvas, PAGE_WIDTH - MARGIN_X - 30 * mm, 12.5 * mm - right_height)
        canvas.restoreState()

    def afterFlowable(self, flowable: Flowable) -> None:
        outline = getattr(flowable, "outline_entry", None)
        if outline is not None:
            key, title = outline
            self.part, self.part_page = title, self.page
            self.canv.bookmarkPage(key)
            self.canv.addOutlineEntry(title, key, level=0)


class _Heading(Paragraph):
    """A heading that also gets an entry in the PDF's outline (bookmarks)."""

    def __init__(self, text: str, style: ParagraphStyle, outline: tuple[str, str]) -> None:
        super().__init__(text, style)
        self.outline_entry = outline  # read by _Document.afterFlowable


def _heading(text: str, style: ParagraphStyle, *, outline: tuple[str, str]) -> Paragraph:
    return _Heading(text, style, outline)


def _story(data: ReportData, text: Text,
           previews: dict[str, _Preview]) -> list[Flowable]:
    text.right_to_left_seen = False
    exhibits: list[Flowable] = []
    for exhibit in data.exhibits:
        exhibits.append(PageBreak())
        exhibits.extend(_exhibit(exhibit, text, previews[exhibit.number]))
    if data.received or data.received_scope:
        exhibits += [PageBreak(), *_received(data, text)]
    verify = [PageBreak(), *_how_to_verify(data, text)]
    # The cover is made last: its notes depend on what the rest of the report had to print.
    return [*_cover(data, text), *exhibits, *verify]


# --- cover --------------------------------------------------------------------------------------


def _cover(data: ReportData, text: Text) -> list[Flowable]:
    t = text.markup
    exported_by = t(data.exported_by) + (f" ({t(data.exported_by_unit)})"
                                         if data.exported_by_unit else "")
    if data.checkpoint_timestamp is not None:
        checkpoint_time = (to_the_second(data.checkpoint_timestamp) + ", by "
                           + t(data.checkpoint_timestamp_authority or "an unnamed authority"))
    else:
        checkpoint_time = "none: the checkpoint carries no timestamp token"
    facts = [
        ("Case reference", t(data.case_reference), VALUE),
        _line_fact("Case title", data.case_title, text),
        _line_fact("Offence", data.offence, text, none=NOT_RECORDED),
        ("Statutory provision", _or_none(text, data.offence_provision, none=NOT_RECORDED),
         VALUE),
        ("Maximum penalty", _years(data.max_penalty_years), VALUE),
        ("Jurisdiction", _or_none(text, data.jurisdiction, none=NOT_RECORDED), VALUE),
        ("Bundle", t(data.bundle_name), VALUE),
        ("Export id", t(data.export_id), MONO),
        ("Created at", to_the_second(data.created_at), VALUE),
        ("Exported by", exported_by, VALUE),
        ("Made with", t(data.tool), VALUE),
        ("Scope", "the whole case" if data.targets_chosen is None
         else f"{data.targets_chosen} chosen target(s) of the case, not the whole case", VALUE),
        ("Exhibits", str(len(data.exhibits)), VALUE),
        ("Received material", _received_count(data), VALUE),
        ("Signing key id", t(data.key_id), MONO),
    ]
    checkpoint = [
        ("Log origin", t(data.checkpoint_origin), VALUE),
        ("Entries in the log", str(data.checkpoint_tree_size), VALUE),
        ("Root hash", t(data.checkpoint_root), MONO),
        ("Timestamp", checkpoint_time, VALUE),
    ]
    story: list[Flowable] = [
        _heading("Evidence report", TITLE, outline=("cover", "Cover")),
        Paragraph(t(data.case_reference) + " &middot; " + t(data.case_title), SUBTITLE),
        _facts(facts),
        Paragraph("Summary of the facts", H2),
        *_summary(data.facts, text),
        Paragraph("Custody log checkpoint", H2),
        Paragraph("The custody history of the case is a hash-chained, append-only log. The bundle"
                  " carries the signed checkpoint below and a proof that each of the case's"
                  " entries is included in it.", SMALL),
        Spacer(1, 3),
        _facts(checkpoint),
        Paragraph("About this report", H2),
        Paragraph(
            "This report describes the evidence bundle named above, for reading. The evidence"
            " is the bundle's files, their hashes, signatures and timestamps: each exhibit's"
            " capture manifest is signed with the signing key above, and every hash printed"
            " here can be compared with the files. Where this report and the files disagree,"
            " the files and their signatures prevail. The last page says how to check the"
            " bundle without this system. Times are in UTC.", BODY),
    ]
    if text.right_to_left_seen:
        story.append(Paragraph(
            "Right-to-left text (Arabic, Persian, Pashto, Kurdish ...) is shown in reading"
            " order with joined letters; text copied out of this PDF comes out in those"
            " display forms. The exact characters are in bundle.json and the exhibits'"
            " manifests.", SMALL))
    if text.code_points_shown:
        story.append(Paragraph(
            "Characters that no font on the system that made this report could draw, and"
            " invisible control characters such as direction overrides, are written as their"
            " Unicode code points, for example [U+202E].", SMALL))
    if data.exhibits:
        story += [Paragraph("Exhibits", H2), _exhibit_index(data, text)]
    else:
        story.append(Paragraph("The bundle holds no exhibit.", BODY))
    return story


def _exhibit_index(data: ReportData, text: Text) -> Table:
    rows: list[list[Any]] = [[Paragraph(h, CELL_HEAD) for h in
                              ("No.", "Address captured, manifest SHA-256", "Started (UTC)",
                               "Status")]]
    for exhibit in data.exhibits:
        rows.append([
            Paragraph(text.markup(exhibit.number), CELL),
            [Paragraph(text.markup(exhibit.url, mono=True, limit=INDEX_URL_CHARS,
                                   where="on the exhibit's own page"), CELL_MONO),
             Spacer(1, 2),
             Paragraph(text.markup(exhibit.manifest_sha256, mono=True), CELL_MONO)],
            Paragraph(to_the_second(exhibit.started_at, zone=False), CELL),
            # "complete · HTTP 404" for a capture of an error answer, as the pages show it.
            Paragraph(text.markup(outcome_of(exhibit.status, exhibit.http_status).label), CELL),
        ])
    fixed = INDEX_NUMBER_WIDTH + INDEX_STARTED_WIDTH + INDEX_STATUS_WIDTH
    return _table(rows, [INDEX_NUMBER_WIDTH, TEXT_WIDTH - fixed, INDEX_STARTED_WIDTH,
                         INDEX_STATUS_WIDTH], split_rows=False)


# --- one exhibit --------------------------------------------------------------------------------


def _exhibit(exhibit: ReportExhibit, text: Text, preview: _Preview) -> list[Flowable]:
    t = text.markup
    where = f"in exhibits/{exhibit.number}/manifest.json"
    # A complete capture of a 404 is complete, but of the answer, not the page: said so.
    outcome = outcome_of(exhibit.status, exhibit.http_status)
    status = t(outcome.said or exhibit.status)
    if exhibit.steps_failed:
        status += "; steps that failed: " + "; ".join(t(s) for s in exhibit.steps_failed)
    facts = [
        ("Capture id", t(exhibit.capture_id), MONO),
        ("Address requested", t(exhibit.url, mono=True, where=where), MONO),
        ("Address reached", (t(exhibit.final_url, mono=True, where=where)
                             if exhibit.final_url else "none recorded"),
         MONO if exhibit.final_url else VALUE),
        ("HTTP status", t(http_answer(exhibit.http_status) or "none recorded"), VALUE),
        _line_fact("Page title", exhibit.title, text, where=where, limit=MAX_TITLE_CHARS),
        ("Capture started", to_the_second(exhibit.started_at), VALUE),
        ("Capture finished", "not recorded" if exhibit.finished_at is None
         else to_the_second(exhibit.finished_at), VALUE),
        ("Status", status, VALUE),
        ("Manifest SHA-256", t(exhibit.manifest_sha256), MONO),
        ("Signed with key id", t(exhibit.key_id), MONO),
        ("Timestamp", _timestamp(exhibit, text), VALUE),
    ]
    story: list[Flowable] = [
        _heading(f"Exhibit {t(exhibit.number)}", H1,
                 outline=(f"exhibit-{exhibit.number}", f"Exhibit {exhibit.number}")),
        preview.flowable(),
        Spacer(1, 6),
        _facts(facts),
    ]
    if exhibit.timestamp_local:
        story += [Spacer(1, 4), _notice(LOCAL_CLOCK_NOTICE + " It shows when this system"
                                        " believed the capture was sealed, not an independently"
                                        " attested time.")]
    story += [Paragraph("Files", H2), _files(exhibit, text)]
    story += [Paragraph("Custody history", H2), _custody(exhibit, text)]
    return story


def _received_count(data: ReportData) -> str:
    carried = f"{len(data.received)} file(s)" if data.received else "none"
    if data.received_left_out:
        carried += (f"; {len(data.received_left_out)} of the case's left out (not about the "
                    "chosen targets: see Received material)")
    return carried


def _left_out(data: ReportData, text: Text) -> list[Flowable]:
    """The received files of the case this bundle leaves out, so no one takes it for all."""
    if not data.received_left_out:
        return []
    t = text.markup
    rows: list[list[Any]] = [[Paragraph(h, CELL_HEAD) for h in
                              ("No.", "File as received and SHA-256", "Why left out",
                               "Size (bytes)")]]
    widths = [16 * mm, TEXT_WIDTH - 16 * mm - 60 * mm - 20 * mm, 60 * mm, 20 * mm]
    for item in data.received_left_out:
        rows.append([
            Paragraph(t(item.number), CELL),
            [_cell(item.filename, text, widths[1], limit=300),
             Paragraph(t(item.sha256, mono=True), CELL_HASH)],
            _cell(item.why, text, widths[2], limit=600),
            Paragraph(str(item.size), CELL_RIGHT),
        ])
    return [
        Spacer(1, 6),
        Paragraph("Left out of this bundle", H2),
        _table(rows, widths),
    ]


def _received(data: ReportData, text: Text) -> list[Flowable]:
    """The files the unit received, as registered: who sent them, when, how, their hashes."""
    t = text.markup
    rows: list[list[Any]] = [[Paragraph(h, CELL_HEAD) for h in
                              ("No.", "File as received, path (under data/) and SHA-256",
                               "From", "Received (UTC), how", "Size (bytes)")]]
    widths = [16 * mm, TEXT_WIDTH - 16 * mm - 38 * mm - 30 * mm - 20 * mm, 38 * mm, 30 * mm,
              20 * mm]
    for item in data.received:
        rows.append([
            Paragraph(t(item.number), CELL),
            [_cell(item.filename, text, widths[1], limit=300),
             Paragraph(t(item.media_type), SMALL),
             Paragraph(t(item.path, mono=True), CELL_MONO),
             Paragraph(t(item.sha256, mono=True), CELL_HASH)],
            _cell(item.origin, text, widths[2], limit=600),
            [Paragraph(to_the_second(item.received_at, zone=False), CELL),
             _cell(item.via, text, widths[3], SMALL, limit=300),
             _cell("registered by " + (item.registered_by or "unknown"), text, widths[3],
                   SMALL)],
            Paragraph(str(item.size), CELL_RIGHT),
        ])
    return [
        _heading("Received material", H1, outline=("received", "Received material")),
        Paragraph("Files the unit received in answer to its legal requests, or from another"
                  " source, kept as they came. Each file's name is the one it was received"
                  " under; its SHA-256 is the one recorded in the case's custody log"
                  " (material.received) when it was registered, and verify.py checks both.",
                  BODY),
        *([Spacer(1, 4), Paragraph(text.markup(data.received_scope), BODY)]
          if data.received_scope else []),
        Spacer(1, 4),
        *([_table(rows, widths)] if data.received
          else [Paragraph("This bundle carries no received material.", BODY)]),
        *_left_out(data, text),
    ]


def _timestamp(exhibit: ReportExhibit, text: Text) -> str:
    if exhibit.timestamp_time is None:
        result = "none: the manifest has no timestamp token"
    else:
        authority = text.markup(exhibit.timestamp_authority or "an unnamed authority")
        result = f"{to_the_second(exhibit.timestamp_time)}, by {authority}"
        if exhibit.timestamp_local:
            result += " (this system's own clock)"
    if exhibit.timestamp_note:
        result += ". " + text.markup(exhibit.timestamp_note)
    return result


def _files(exhibit: ReportExhibit, text: Text) -> Flowable:
    if not exhibit.files:
        return Paragraph("The manifest lists no file.", BODY)
    rows: list[list[Any]] = [[Paragraph(h, CELL_HEAD) for h in
                              ("Path (under data/) and SHA-256", "Kind", "Size (bytes)")]]
    for file in exhibit.files:
        rows.append([
            [Paragraph(text.markup(file.path, mono=True), CELL_MONO),
             Paragraph(text.markup(file.sha256, mono=True), CELL_HASH)],
            [Paragraph(text.markup(file.kind), CELL),
             Paragraph(text.markup(file.media_type), SMALL)],
            Paragraph(str(file.size), CELL_RIGHT),
        ])
    return _table(rows, [TEXT_WIDTH - 36 * mm - 22 * mm, 36 * mm, 22 * mm])


def _custody(exhibit: ReportExhibit, text: Text) -> Flowable:
    if not exhibit.custody:
        return Paragraph("No custody entry names this exhibit.", BODY)
    rows: list[list[Any]] = [[Paragraph(h, CELL_HEAD) for h in
                              ("Case / log no.", "Time (UTC)", "By", "Action", "Detail")]]
    widths = [17 * mm, 33 * mm, 22 * mm, 30 * mm]
    widths.append(TEXT_WIDTH - sum(widths))
    for line in exhibit.custody:
        detail: list[Flowable] = [_cell(line.summary, text, widths[4])]
        if line.sha256:
            detail.append(Paragraph("SHA-256 " + text.markup(line.sha256, mono=True),
                                    CELL_MONO))
        rows.append([
            Paragraph(f"{line.case_seq} / {line.seq}", CELL),
            Paragraph(_logged_time(line.at, text), CELL),
            _cell(line.actor if line.actor and line.actor.strip() else "system", text,
                  widths[2]),
            Paragraph(text.markup(line.action), CELL),
            detail,
        ])
    return _table(rows, widths)


# --- how to verify ------------------------------------------------------------------------------


def _how_to_verify(data: ReportData, text: Text) -> list[Flowable]:
    t = text.markup
    bundle = t(data.bundle_name)
    steps: list[tuple[str, list[str]]] = [
        ("You do not need this system, its servers or the police unit to check the bundle,"
         " and you do not need to unpack it: the verifier reads the ZIP file as it is. You need"
         " Python 3.11 or newer with the <i>cryptography</i> package"
         " (<font name='Courier'>pip install cryptography</font>), and the verifier, which is"
         f" the single readable file <font name='Courier'>{bundle}/data/verify.py</font> in the"
         " bundle. Copy it out of the ZIP with any archive tool, then run:",
         ["python data/verify.py BUNDLE.zip"]),
        ("Where evidence-locker itself is installed, the same checks run with:",
         ["evidence verify BUNDLE.zip"]),
        ("Exit status 0, and the last line of the verifier's report, mean that every check"
         " held: every file matches the bag's manifests, and none is missing or added; the bag"
         " as a whole and each exhibit's manifest are signed by the signing key (the bundled"
         " one, or the one you pin with <font name='Courier'>--key</font>); each timestamp"
         " token covers its manifest and chains to a bundled authority certificate; each"
         " exhibit's files have the sizes and SHA-256 hashes its signed manifest lists; each"
         " received file has the SHA-256 its custody entry recorded; the custody entries are"
         " complete, linked one to the next and included in the signed checkpoint; and the"
         " CASE graph agrees with the files. Any other exit status means something does not"
         " hold, and the verifier names the file or custody entry concerned. Add"
         " <font name='Courier'>--json</font> for a machine-readable report.", []),
        ("A valid signature only shows that whoever holds the signing key signed the manifests."
         " Compare the key id the verifier prints with the one the police unit publishes for"
         " its system, or pin the unit's public key with"
         " <font name='Courier'>--key UNIT-KEY.pem</font>. The key id of this bundle is:",
         [data.key_id]),
        ("The timestamp tokens are checked against the authority certificates in the bundle."
         " Compare their SHA-256 fingerprints with the ones the authorities publish:"
         + ("" if data.tsa_fingerprints
            else " this bundle carries no authority certificate."), []),
    ]
    story: list[Flowable] = [
        _heading("How to verify this bundle", H1, outline=("verify", "How to verify")),
        Paragraph(f"Bundle {bundle}, export {t(data.export_id)}.", SMALL),
        Spacer(1, 6),
    ]
    for number, (sentence, commands) in enumerate(steps, start=1):
        story.append(Paragraph(f"{number}.&nbsp;&nbsp;{sentence}", STEP))
        story.extend(Paragraph(t(command, mono=True), COMMAND) for command in commands)
    if data.tsa_fingerprints:
        rows: list[list[Any]] = [[Paragraph("Certificate (under data/)", CELL_HEAD),
                                  Paragraph("SHA-256 fingerprint", CELL_HEAD)]]
        rows += [[Paragraph(t(path, mono=True), CELL_MONO),
                  Paragraph(t(fingerprint, mono=True), CELL_MONO)]
                 for path, fingerprint in data.tsa_fingerprints]
        hash_width = 64 * pdfmetrics.stringWidth("0", "Courier", CELL_MONO.fontSize) + 9
        story += [_indented(_table(rows, [TEXT_WIDTH - 14 - hash_width, hash_width])),
                  Spacer(1, 6)]
        story.append(Paragraph(
            "A token from the system's built-in authority is valid but its time rests only on"
            " the capturing system's clock; the verifier says so for each such token.",
            STEP_MORE))
    more = [
        ("If you kept a checkpoint from an earlier bundle or from the unit (a file of the same"
         " form as <font name='Courier'>data/custody/checkpoint.json</font>), check that the"
         " log has only grown since:",
         ["python data/verify.py BUNDLE.zip --against-checkpoint OLD.json"],
         "This proves that nothing logged up to the older checkpoint was changed, removed or"
         " reordered afterwards. The consistency proof it needs, asked of the unit (from"
         " <font name='Courier'>evidence custody consistency</font>), is passed with"
         " <font name='Courier'>--consistency-proof FILE</font>; checkpoints of the same size"
         " need none. <font name='Courier'>evidence verify</font> takes the same options."),
        ("Every file can also be checked by hand. Unpack the bundle and, in its top folder,"
         " compare each file's SHA-256 with <font name='Courier'>manifest-sha256.txt</font>:",
         ["sha256sum -c manifest-sha256.txt"],
         "The manifest hashes printed in this report can be compared the same way, for"
         " example with <font name='Courier'>sha256sum data/exhibits/EX-001/manifest.json</font>."),
        ("The verifier is one Python file with no dependency other than <i>cryptography</i>:"
         " an expert can read it in full. A <font name='Courier'>verify.py</font> taken from the"
         " bundle is only as trustworthy as the bundle: whoever could alter the bundle could"
         " alter it, and this report, too. To check a bundle you were handed, run a copy"
         " obtained independently (from evidence-locker, or from a bundle of known origin) and"
         " pin the unit's key with <font name='Courier'>--key</font>; it says whether the"
         " bundle's <font name='Courier'>verify.py</font> is itself, byte for byte. The SHA-256"
         " of the <font name='Courier'>data/verify.py</font> exported with this bundle is:",
         [data.verifier_sha256],
         "A different SHA-256 means another version of the verifier, or an altered one."),
    ]
    for number, (sentence, commands, after) in enumerate(more, start=len(steps) + 1):
        block: list[Flowable] = [Paragraph(f"{number}.&nbsp;&nbsp;{sentence}", STEP)]
        block += [Paragraph(t(command, mono=True), COMMAND) for command in commands]
        block.append(Paragraph(after, STEP_MORE))
        story.append(KeepTogether(block))
    return story


# --- the summary of the facts ------------------------------------------------------------------

NOT_RECORDED = "not recorded"


def _years(years: float | None) -> str:
    if years is None:
        return NOT_RECORDED
    return f"{years:g} year" + ("" if years == 1 else "s")


def _summary(facts: str | None, text: Text) -> list[Flowable]:
    """The case's summary of the facts, one paragraph per stored line, each in its direction."""
    if facts is None or not facts.strip():
        return [Paragraph(NOT_RECORDED, FACTS)]
    story: list[Flowable] = []
    shown = facts[:MAX_VALUE_CHARS]
    for line in shown.replace("\r\n", "\n").split("\n"):
        if not line.strip():
            story.append(Spacer(1, 4))
        else:
            style = FACTS_RTL if starts_right_to_left(line) else FACTS
            story.append(Paragraph(text.wrapped(line, style, TEXT_WIDTH), style))
    if len(facts) > len(shown):
        story.append(Paragraph(
            f"[... {len(facts) - len(shown)} more characters not shown here; the whole summary"
            " is in bundle.json]", SMALL))
    return story


# --- building blocks ----------------------------------------------------------------------------


FACT_LABEL_WIDTH = 40 * mm
CELL_PADDING = 3  # a table cell's left and right padding (`_facts`, `_table`)
FACT_VALUE_WIDTH = TEXT_WIDTH - FACT_LABEL_WIDTH - 2 * CELL_PADDING


def _one_line(text: str, style: ParagraphStyle) -> float:
    """The width of a table column that holds `text` in `style` on one line."""
    return pdfmetrics.stringWidth(text, style.fontName, style.fontSize) + 2 * CELL_PADDING + 1


# The exhibit index's columns each keep their value on one line: an exhibit's number (up to
# EX-99999), its time to the second and the widest status, "complete · HTTP 451" (it broke
# before "451"); the address column, the rest, holds a manifest SHA-256 on a line.
INDEX_NUMBER_WIDTH = _one_line("EX-00000", CELL)
INDEX_STARTED_WIDTH = _one_line("0000-00-00 00:00:00", CELL)
INDEX_STATUS_WIDTH = max(_one_line(outcome_of(status, 599).label, CELL)
                         for status in CaptureStatus)


def _line_fact(label: str, value: str | None, text: Text, *, none: str = "none recorded",
               where: str = "in bundle.json",
               limit: int = MAX_VALUE_CHARS) -> tuple[str, str, ParagraphStyle]:
    """A row of `_facts` for text anyone may have written in any script (a page title, the
    case's title): a right-to-left value longer than a line is broken in reading order, so its
    top line holds its first words, and aligned to the right."""
    if value is None or not value.strip():
        return label, none, VALUE
    style = VALUE_RTL if starts_right_to_left(value) else VALUE
    return label, text.wrapped(value, style, FACT_VALUE_WIDTH, limit=limit, where=where), style


def _cell(value: str, text: Text, width: float, style: ParagraphStyle = CELL, *,
          where: str = "in bundle.json", limit: int = MAX_VALUE_CHARS) -> Paragraph:
    """A cell of a column `width` wide (`_table`) for text anyone may have written in any
    script (a received file's name, who sent it, a custody entry's detail): broken in reading
    order as `_line_fact` is, so a right-to-left value's top line holds its start, and aligned
    to the right when it starts right-to-left."""
    if starts_right_to_left(value):
        style = _right_aligned(style)
    return Paragraph(text.wrapped(value, style, width - 2 * CELL_PADDING, limit=limit,
                                  where=where), style)


@functools.cache
def _right_aligned(style: ParagraphStyle) -> ParagraphStyle:
    return ParagraphStyle(style.name + "rtl", parent=style, alignment=TA_RIGHT)


def _facts(rows: Iterable[tuple[str, str, ParagraphStyle]]) -> Table:
    cells = [[Paragraph(label, LABEL), Paragraph(value, style)] for label, value, style in rows]
    table = Table(cells, colWidths=[FACT_LABEL_WIDTH, TEXT_WIDTH - FACT_LABEL_WIDTH],
                  splitInRow=1)
    table.setStyle(TableStyle([
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("LINEBELOW", (0, 0), (-1, -1), 0.25, RULE),
        ("LEFTPADDING", (0, 0), (-1, -1), CELL_PADDING),
        ("RIGHTPADDING", (0, 0), (-1, -1), CELL_PADDING),
        ("TOPPADDING", (0, 0), (-1, -1), 3),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 3),
    ]))
    return table


def _table(rows: list[list[Any]], widths: list[float], *, split_rows: bool = True) -> Table:
    table = Table(rows, colWidths=widths, repeatRows=1, splitInRow=int(split_rows))
    table.setStyle(TableStyle([
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("BACKGROUND", (0, 0), (-1, 0), SHADE),
        ("LINEBELOW", (0, 0), (-1, 0), 0.6, RULE),
        ("LINEBELOW", (0, 1), (-1, -1), 0.25, RULE),
        ("LEFTPADDING", (0, 0), (-1, -1), CELL_PADDING),
        ("RIGHTPADDING", (0, 0), (-1, -1), CELL_PADDING),
        ("TOPPADDING", (0, 0), (-1, -1), 2.5),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 3),
    ]))
    return table


def _indented(flowable: Flowable) -> Flowable:
    table = Table([[flowable]], colWidths=[TEXT_WIDTH - 14])
    table.setStyle(TableStyle([("LEFTPADDING", (0, 0), (-1, -1), 0),
                               ("RIGHTPADDING", (0, 0), (-1, -1), 0)]))
    table.hAlign = "RIGHT"
    return table


def _notice(markup: str) -> Table:
    table = Table([[Paragraph(markup, VALUE)]], colWidths=[TEXT_WIDTH])
    table.setStyle(TableStyle([
        ("BACKGROUND", (0, 0), (-1, -1), NOTICE),
        ("BOX", (0, 0), (-1, -1), 0.5, colors.HexColor("#c9a227")),
        ("LEFTPADDING", (0, 0), (-1, -1), 6),
        ("RIGHTPADDING", (0, 0), (-1, -1), 6),
        ("TOPPADDING", (0, 0), (-1, -1), 4),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 5),
    ]))
    return table


def _or_none(text: Text, value: str | None, *, none: str = "none recorded",
             where: str = "in bundle.json", limit: int = MAX_VALUE_CHARS) -> str:
    if value is None or not value.strip():
        return none
    return text.markup(value, where=where, limit=limit)


def _logged_time(at: str, text: Text) -> str:
    try:
        return to_the_second(datetime.fromisoformat(at), zone=False)
    except ValueError:  # not ISO 8601: shown as logged
        return text.markup(at)


# --- the screenshot preview ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Preview:
    jpeg: bytes | None
    width: int = 0  # of the preview, pixels
    height: int = 0
    source_size: tuple[int, int] | None = None
    problem: str | None = None

    def flowable(self) -> Flowable:
        if self.jpeg is None:
            return _notice(escape(self.problem or "No screenshot."))
        box_width, box_height = PREVIEW_BOX
        scale = min(box_width / self.width, box_height / self.height)
        image = PdfImage(io.BytesIO(self.jpeg), width=self.width * scale,
                         height=self.height * scale)
        framed = Table([[image]], colWidths=[self.width * scale + 2])
        framed.setStyle(TableStyle([("BOX", (0, 0), (-1, -1), 0.5, RULE),
                                    ("LEFTPADDING", (0, 0), (-1, -1), 1),
                                    ("RIGHTPADDING", (0, 0), (-1, -1), 1),
                                    ("TOPPADDING", (0, 0), (-1, -1), 1),
                                    ("BOTTOMPADDING", (0, 0), (-1, -1), 1)]))
        assert self.source_size is not None
        width, height = self.source_size
        caption = Paragraph(
            f"The top of the screenshot ({width} x {height} pixels), reduced for this report;"
            " the full screenshot is among the files listed below.", SMALL)
        caption.hAlign = "CENTER"
        return KeepTogether([framed, Spacer(1, 2), _centred(caption)])


def _centred(paragraph: Paragraph) -> Paragraph:
    paragraph.style = _style("centred", parent=paragraph.style, alignment=1)
    return paragraph


def _preview(path: Path | None) -> _Preview:
    """A small JPEG of the top of a screenshot, or why there is none."""
    if path is None:
        return _Preview(None, problem="No screenshot was captured for this exhibit.")
    # Pillow raises many unrelated exception types on hostile or broken input; a screenshot
    # that cannot be read must not stop the report, so each becomes a sentence.
    try:
        with Image.open(path) as image:
            return _shrink(image)
    except Image.DecompressionBombError:
        return _Preview(None, problem="No preview: the screenshot is too large to decode"
                                      " safely. The full screenshot is among the files below.")
    except Exception as exc:
        return _Preview(None, problem=f"No preview: the screenshot could not be read"
                                      f" ({type(exc).__name__}). The file is listed below.")


def _shrink(image: ImageFile.ImageFile) -> _Preview:
    source_size = image.size
    width, height = source_size
    if width < 1 or height < 1:
        raise ValueError("empty image")
    top = min(height, max(1, round(width / PREVIEW_ASPECT)))
    if image.format == "JPEG":
        # Decode at 1/2, 1/4 or 1/8 scale straight from the DCT data.
        image.draft("RGB", (min(width, PREVIEW_WIDTH_PX), max(1, height * PREVIEW_WIDTH_PX
                                                                // max(width, 1))))
        scale = image.size[0] / width
        width, height = image.size
        top = min(height, max(1, round(top * scale)))
    elif not _decode_top_only(image, top) and width * height > PREVIEW_MAX_PIXELS:
        return _Preview(None, source_size=source_size,
                        problem=f"No preview: the screenshot ({width} x {height} pixels) is too"
                                " large to decode for a preview. The full screenshot is among"
                                " the files below.")
    image.load()
    part = image.crop((0, 0, width, top)) if image.size[1] > top else image
    part = _on_white(part)
    part.thumbnail((PREVIEW_WIDTH_PX, PREVIEW_WIDTH_PX), Image.Resampling.LANCZOS,
                   reducing_gap=2.0)
    buffer = io.BytesIO()
    part.save(buffer, "JPEG", quality=82, subsampling=0)
    return _Preview(buffer.getvalue(), part.size[0], part.size[1], source_size)


def _decode_top_only(image: ImageFile.ImageFile, rows: int) -> bool:
    """Make Pillow decode only the first rows of a non-interlaced PNG (a few MB, not 100)."""
    # Pillow decodes a PNG as one "zip" tile row by row from the top; shrinking the tile and
    # the image size makes the decoder stop after `rows`. Any other layout is left alone.
    if image.format != "PNG" or image.info.get("interlace") or len(image.tile) != 1:
        return False
    tile = image.tile[0]
    width, height = image.size
    if tile[0] != "zip" or tile[1] != (0, 0, width, height) or rows >= height:
        return False
    replace: Callable[..., Any] | None = getattr(tile, "_replace", None)
    if replace is None:
        return False
    image._size = (width, rows)
    image.tile = [replace(extents=(0, 0, width, rows))]
    return True


def _on_white(image: Image.Image) -> Image.Image:
    if image.mode in ("RGBA", "LA", "PA", "P") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        backdrop = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(backdrop, rgba).convert("RGB")
    return image.convert("RGB")
