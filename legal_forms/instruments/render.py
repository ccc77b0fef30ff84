"""Rendering a request: a PDF people sign and send, and JSON for systems that take it.

The PDF follows the instrument's sections in the official order, prints the request's reference
and "page n of m" on every page, ends with signature blocks (issuing and, where the kind has one,
validating authority; none for a notice typed into a provider's web form, `Instrument.signed`)
and an annex listing every identifier with the SHA-256 of the capture manifest it came from and
the capture time in UTC. Text is escaped and drawn with embedded fonts
(see `evidence.pdftext`); the document is laid out twice so the page count is known.
"""

# ReportLab ships no type information.
# mypy: disable-error-code="import-untyped"

from __future__ import annotations

import io
from datetime import UTC
from pathlib import Path
from typing import Any, BinaryIO

from reportlab.lib import colors
from reportlab.lib.enums import TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    BaseDocTemplate,
    CondPageBreak,
    Flowable,
    Frame,
    KeepTogether,
    PageTemplate,
    Paragraph,
    Spacer,
    Table,
    TableStyle,
)

from evidence.pdftext import Text, starts_right_to_left
from evidence.report import INK, MUTED, NOTICE, RULE, SHADE
from evidence.times import to_the_second
from legal_forms.instruments import get_instrument
from legal_forms.instruments.base import Instrument, RequestInput, TargetIdentifier

PAGE_WIDTH, PAGE_HEIGHT = A4
MARGIN = 18 * mm
TEXT_WIDTH = PAGE_WIDTH - 2 * MARGIN
LABEL_WIDTH = 52 * mm
CELL_PADDING = 3  # a table cell's left and right padding (`_table`)
VALUE_WIDTH = TEXT_WIDTH - LABEL_WIDTH - 2 * CELL_PADDING


def _style(name: str, **kw: Any) -> ParagraphStyle:
    base: dict[str, Any] = {"fontName": "Helvetica", "fontSize": 9, "leading": 12,
                            "textColor": INK, "splitLongWords": 1}
    base.update(kw)
    return ParagraphStyle(name, **base)


TITLE = _style("title", fontName="Helvetica-Bold", fontSize=15, leading=19, spaceAfter=4)
META = _style("meta", fontSize=9, leading=12, textColor=MUTED)
H2 = _style("h2", fontName="Helvetica-Bold", fontSize=10.5, leading=14, spaceBefore=9,
            spaceAfter=4, keepWithNext=1)
LABEL = _style("label", fontName="Helvetica-Bold", fontSize=8.5, leading=11)
VALUE = _style("value", fontSize=9, leading=12)
VALUE_RTL = _style("valuertl", parent=VALUE, alignment=TA_RIGHT)
EMPTY = _style("empty", fontSize=9, leading=12, textColor=MUTED)
SMALL = _style("small", fontSize=7.5, leading=9.5, textColor=MUTED)
SMALL_HEAD = _style("smallhead", parent=SMALL, keepWithNext=1)  # never ends a page alone
CELL = _style("cell", fontSize=7.5, leading=9.5)
CELL_HEAD = _style("cellhead", fontName="Helvetica-Bold", fontSize=7.5, leading=9.5)
HASH = _style("hash", fontName="Courier", fontSize=7, leading=9)
FOOT = _style("foot", fontSize=7.5, leading=9, textColor=MUTED)
FOOT_RIGHT = _style("footright", fontSize=7.5, leading=9, textColor=MUTED, alignment=TA_RIGHT)


def _instrument(request: RequestInput) -> Instrument:
    return get_instrument(request.kind)


def render_json(request: RequestInput) -> dict[str, Any]:
    """The same fields as the PDF, in section order, with sources and the annex."""
    inst = _instrument(request)
    values = inst.values(request)
    sections = []
    for section in inst.sections:
        sections.append({
            "key": section.key,
            "letter": section.letter,
            "heading": section.heading,
            "source": section.source,
            "verified": section.verified,
            "fields": [
                {**f.describe(), "value": values[f.name]}
                for f in inst.fields if f.section == section.key
            ],
        })
    return {
        "kind": inst.kind,
        "title": inst.title,
        "reference": request.reference,
        "legal_basis": inst.legal_basis,
        "platform": request.platform.name,
        "issued_at": request.issued_at.astimezone(UTC).isoformat() if request.issued_at else None,
        "sections": sections,
        "annex": [
            {
                "kind": i.kind,
                "value": i.value,
                "service": i.service,
                "relevant_date": i.relevant_date.isoformat() if i.relevant_date else None,
                "source_url": i.source_url,
                "capture_id": i.capture_id,
                "manifest_sha256": i.manifest_sha256,
                "captured_at": i.captured_at.astimezone(UTC).isoformat(),
            }
            for i in request.identifiers
        ],
        "problems": [
            {"field": p.field, "message": p.message, "severity": p.severity}
            for p in inst.validate(request)
        ],
        "sources": [
            {"title": s.title, "url": s.url, "verified": s.verified, "note": s.note}
            for s in inst.sources
        ],
        "unverified": list(inst.unverified),
    }


def _text() -> Text:
    return Text(where="in the JSON rendering", line_breaks=True)


def render_pdf(request: RequestInput, out: Path | BinaryIO) -> None:
    """Write the request as a PDF; refuses a request with validation errors."""
    inst = _instrument(request)
    inst.ensure_valid(request)
    counter = _Document(io.BytesIO(), inst, request, _text(), total=None)
    counter.build(_story(inst, request, counter.text))
    document = _Document(str(out) if isinstance(out, Path) else out, inst, request, _text(),
                         total=counter.page)
    document.build(_story(inst, request, document.text))


class _Document(BaseDocTemplate):
    def __init__(self, out: str | BinaryIO, inst: Instrument, request: RequestInput,
                 text: Text, *, total: int | None) -> None:
        super().__init__(out, pagesize=A4, leftMargin=MARGIN, rightMargin=MARGIN,
                         topMargin=16 * mm, bottomMargin=20 * mm, invariant=1,
                         title=f"{inst.title} {request.reference}",
                         author=request.issuing.name, subject=inst.legal_basis,
                         creator="evidence-locker legal_forms")
        self.inst = inst
        self.request = request
        self.text = text
        self.total = total
        frame = Frame(self.leftMargin, self.bottomMargin, self.width, self.height,
                      leftPadding=0, rightPadding=0, topPadding=0, bottomPadding=0)
        self.addPageTemplates([PageTemplate("page", [frame], onPage=self._footer)])

    def _footer(self, canvas: Canvas, doc: BaseDocTemplate) -> None:
        total = "?" if self.total is None else str(self.total)
        left = Paragraph(self.text(f"{self.inst.title} - reference {self.request.reference}",
                                   limit=200), FOOT)
        right = Paragraph(f"page {doc.page} of {total}", FOOT_RIGHT)
        canvas.saveState()
        canvas.setStrokeColor(RULE)
        canvas.setLineWidth(0.5)
        canvas.line(MARGIN, 14 * mm, PAGE_WIDTH - MARGIN, 14 * mm)
        _, h = left.wrap(TEXT_WIDTH - 32 * mm, 12 * mm)
        left.drawOn(canvas, MARGIN, 12.5 * mm - h)
        _, h = right.wrap(30 * mm, 12 * mm)
        right.drawOn(canvas, PAGE_WIDTH - MARGIN - 30 * mm, 12.5 * mm - h)
        canvas.restoreState()


def _story(inst: Instrument, r: RequestInput, text: Text) -> list[Flowable]:
    story: list[Flowable] = [
        Paragraph(text(inst.title), TITLE),
        Paragraph("Reference: <b>" + text(r.reference) + "</b> &nbsp; Case: "
                  + text(r.case.reference) + " &nbsp; Platform: " + text(r.platform.display_name),
                  META),
        Paragraph("Legal basis: " + text(inst.legal_basis), META),
    ]
    if r.issued_at:
        story.append(Paragraph("Issued: " + text(to_the_second(r.issued_at)), META))
    story.append(Spacer(1, 4 * mm))
    if inst.preamble:
        story.append(_boxed(Paragraph(text(inst.preamble), VALUE), SHADE))
        story.append(Spacer(1, 1.5 * mm))
    if any(not s.verified for s in inst.sections):
        story.append(Paragraph(
            "Section letters are printed only where they were checked against the official "
            "text; other sections are given by heading, in the order of the official form.",
            SMALL))
    story.append(Spacer(1, 2 * mm))
    values = inst.values(r)
    for section in inst.sections:
        rows = [
            [Paragraph(text(f.label) + ("" if f.required else " <i>(optional)</i>"), LABEL),
             _value(values[f.name], text) if values[f.name]
             else Paragraph("-", EMPTY)]
            for f in inst.fields if f.section == section.key
        ]
        if not rows:
            continue
        story.append(Paragraph(text(section.title), H2))
        story.append(_table(rows, [LABEL_WIDTH, TEXT_WIDTH - LABEL_WIDTH]))
    if inst.signed:
        story += _signatures(inst, r, text)
    story += _annex(r, text)
    story += _sources(inst, text)
    return story


def _value(value: str, text: Text) -> Paragraph:
    """A field's value, aligned to the right where its first words are right-to-left."""
    style = VALUE_RTL if starts_right_to_left(value) else VALUE
    return Paragraph(text.wrapped(value, style, VALUE_WIDTH), style)


def _table(rows: list[list[Any]], widths: list[float], *, header: bool = False,
           split_rows: bool = True) -> Table:
    table = Table(rows, colWidths=widths, splitByRow=1, splitInRow=int(split_rows),
                  repeatRows=1 if header else 0)
    commands = [
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("LINEBELOW", (0, 0), (-1, -1), 0.25, RULE),
        ("LEFTPADDING", (0, 0), (-1, -1), CELL_PADDING),
        ("RIGHTPADDING", (0, 0), (-1, -1), CELL_PADDING),
        ("TOPPADDING", (0, 0), (-1, -1), 2.5),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 2.5),
    ]
    if header:
        commands.append(("BACKGROUND", (0, 0), (-1, 0), SHADE))
    table.setStyle(TableStyle(commands))
    return table


def _boxed(flowable: Flowable, colour: colors.Color) -> Table:
    box = Table([[flowable]], colWidths=[TEXT_WIDTH], splitInRow=1)
    box.setStyle(TableStyle([("BACKGROUND", (0, 0), (-1, -1), colour),
                             ("BOX", (0, 0), (-1, -1), 0.5, RULE),
                             ("LEFTPADDING", (0, 0), (-1, -1), 6),
                             ("RIGHTPADDING", (0, 0), (-1, -1), 6),
                             ("TOPPADDING", (0, 0), (-1, -1), 5),
                             ("BOTTOMPADDING", (0, 0), (-1, -1), 5)]))
    return box


def _signature(title: str, name: str, person: str, position: str, text: Text) -> Table:
    rows = [
        [Paragraph(text(title), LABEL), ""],
        [Paragraph("Authority", SMALL), Paragraph(text(name), VALUE)],
        [Paragraph("Name and position", SMALL),
         Paragraph(text(", ".join(p for p in (person, position) if p)) or "&nbsp;", VALUE)],
        [Paragraph("Date", SMALL), Paragraph("&nbsp;", VALUE)],
        [Paragraph("Signature and stamp", SMALL), Spacer(1, 16 * mm)],
    ]
    table = Table(rows, colWidths=[LABEL_WIDTH, TEXT_WIDTH - LABEL_WIDTH], splitInRow=1)
    table.setStyle(TableStyle([("SPAN", (0, 0), (-1, 0)),
                               ("BOX", (0, 0), (-1, -1), 0.5, RULE),
                               ("LINEBELOW", (0, 1), (-1, -2), 0.25, RULE),
                               ("BACKGROUND", (0, 0), (-1, 0), SHADE),
                               ("VALIGN", (0, 0), (-1, -1), "TOP")]))
    return table


def _signatures(inst: Instrument, r: RequestInput, text: Text) -> list[Flowable]:
    a = r.issuing
    out: list[Flowable] = [KeepTogether([
        Paragraph("Signature", H2),
        _signature("Issuing authority", a.name, a.person, a.position, text),
        Spacer(1, 4 * mm),
    ])]
    if inst.has_validating_authority:
        v = r.validating
        out.append(KeepTogether([_signature(
            "Validating authority (where applicable)", v.name if v else "not applicable",
            v.person if v else "", v.position if v else "", text)]))
    return out


# The annex's rows are never split across pages: a row's rest alone at the top of the next
# page, its # and identifier blank, would not say whose it is. So a row is kept well under a
# page: a value is cut at `ANNEX_VALUE_CHARS` (the JSON rendering has it whole), and cut
# shorter where its characters print wide (shown as code points).
ANNEX_VALUE_CHARS = 300
ANNEX_ROW_MAX_HEIGHT = 400  # points: about half the page's frame
ANNEX_WIDTHS = [7 * mm, 38 * mm, 48 * mm, 51 * mm, TEXT_WIDTH - 144 * mm]


def _annex_row(n: int, i: TargetIdentifier, text: Text) -> list[Paragraph]:
    """The annex's row for an identifier, its values cut so that the row fits well on a page."""
    limit = ANNEX_VALUE_CHARS
    while True:
        ident = text.wrapped(f"{i.kind}: {i.value}", CELL, ANNEX_WIDTHS[1] - 2 * CELL_PADDING,
                             limit=limit)
        if i.relevant_date:
            ident += "<br/>" + text(f"in use on {i.relevant_date.isoformat()}")
        row = [
            Paragraph(str(n), CELL),
            Paragraph(ident, CELL),
            Paragraph(text(i.source_url, limit=limit) + "<br/>"
                      + text(f"capture {i.capture_id}", limit=limit), CELL),
            Paragraph(text(i.manifest_sha256[:32]) + "<br/>" + text(i.manifest_sha256[32:]),
                      HASH),
            Paragraph(text(to_the_second(i.captured_at)), CELL),
        ]
        height = max(cell.wrap(width - 2 * CELL_PADDING, PAGE_HEIGHT)[1]
                     for cell, width in zip(row, ANNEX_WIDTHS, strict=True))
        if height <= ANNEX_ROW_MAX_HEIGHT or limit < 20:
            return row
        limit //= 2


def _annex(r: RequestInput, text: Text) -> list[Flowable]:
    head = ["#", "Identifier", "Source URL and capture", "SHA-256 of the capture manifest",
            "Captured (UTC)"]
    rows: list[list[Any]] = [[Paragraph(h, CELL_HEAD) for h in head]]
    rows += [_annex_row(n, i, text) for n, i in enumerate(r.identifiers, 1)]
    lead: list[Flowable] = [
        Paragraph("Annex: identifiers and the captures they come from", H2),
        Paragraph("Each identifier was read from a sealed capture; the SHA-256 names the "
                  "capture's signed manifest. Times are UTC (Coordinated Universal Time). "
                  f"A value longer than {ANNEX_VALUE_CHARS} characters is cut here; the JSON "
                  "rendering has it whole.", SMALL),
        Spacer(1, 2 * mm),
    ]
    # The heading goes to the next page with the first row, rather than end a page alone.
    first = sum(f.wrap(TEXT_WIDTH, PAGE_HEIGHT)[1] + f.getSpaceBefore() + f.getSpaceAfter()
                for f in [*lead, _table(rows[:2], ANNEX_WIDTHS, header=True)])
    return [CondPageBreak(first), *lead,
            _table(rows, ANNEX_WIDTHS, header=True, split_rows=False)]


def _sources(inst: Instrument, text: Text) -> list[Flowable]:
    out: list[Flowable] = []
    if text.right_to_left_seen:
        out.append(Spacer(1, 3 * mm))
        out.append(_boxed(Paragraph(
            "Right-to-left text (e.g. Arabic) is shown in reading order with joined letters; "
            "text copied out of this PDF comes out in those display forms. The exact "
            "characters are in the JSON rendering and the capture manifests.", SMALL), NOTICE))
    out.append(Paragraph("Sources", H2))
    for s in inst.sources:
        state = "checked" if s.verified else "NOT checked against the official text"
        out.append(Paragraph(text(f"{s.title} ({state}): {s.url}"), SMALL))
    if inst.unverified:
        out.append(Spacer(1, 2 * mm))
        out.append(Paragraph("Not verified against an official text:", SMALL_HEAD))
        for fact in inst.unverified:
            out.append(Paragraph(text(f"- {fact}"), SMALL))
    return out

