"""The legal instruments: fields, validation, deadlines, routing, rendering and the CLI."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import subprocess
import unicodedata
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from legal_forms.cli import request as request_cli
from legal_forms.instruments import (
    INSTRUMENTS,
    Authority,
    AuthorityRole,
    CaseInfo,
    DataCategory,
    DateRange,
    RequestInput,
    RequestInvalid,
    TargetIdentifier,
    extension_of,
    get_instrument,
    route,
)
from legal_forms.instruments.base import UnknownKind, add_days, add_hours
from legal_forms.instruments.render import render_json, render_pdf
from legal_forms.platforms import Registry, load_registry
from tests.support.pdfwords import arabic_lines, placed_words

SAMPLES = Path("/tmp/legal-forms-sample")
ARABIC_HANDLE = "مهرب_الحدود"
BERLIN = ZoneInfo("Europe/Berlin")
HASH_1 = hashlib.sha256(b"capture manifest 1").hexdigest()
HASH_2 = hashlib.sha256(b"capture manifest 2").hexdigest()


@pytest.fixture(scope="module")
def registry() -> Registry:
    return load_registry()


USER_FIELDS = {
    "addressee_type": "Designated establishment",
    "relationship": "The accounts posted the adverts offering border crossings for payment.",
    "necessity": "Adverts are deleted within days; the account data are needed to identify "
                 "the organisers.",
    "mla_intention": "A request for mutual assistance for disclosure of the data will follow.",
    "requested_authority": "24/7 Point of Contact, Garda National Cyber Crime Bureau",
    "investigative_authority": "Bundespolizeidirektion Pirna, Inspektion Kriminalitätsbekämpfung",
    "prosecution_office": "Staatsanwaltschaft Dresden, 412 Js 1234/26",
    "domestic_legal_basis": "§§ 100g, 100j StPO",
    "legal_basis": "§ 96 AufenthG in connection with national takedown powers",
    "reasons": "The posts advertise smuggling of foreigners across the border for payment "
               "(§ 96 AufenthG).",
    "redress": "Objection to the Amtsgericht Dresden within one month of receipt.",
    "territorial_scope": "Germany (access to be disabled for users in Germany)",
    "explanation": "The adverts offer to smuggle people into the EU for money (§ 96 AufenthG).",
    "enforcing_authority": "Ireland: Department of Justice (enforcing authority)",
    "domestic_process": "Order of the Amtsgericht Dresden of 2 March 2026",
    "danger": "A boat with 30 people is reported missing; the account organises the crossing.",
    "why_urgent": "Lives at sea; every hour counts.",
    "emergency_reasons": "Imminent danger to life.",
    "language": "en",
}


def make_request(registry: Registry, kind: str, **overrides: Any) -> RequestInput:
    platform = overrides.pop("platform", registry.get("instagram"))
    issuing = Authority(
        name="Staatsanwaltschaft Dresden", role=AuthorityRole.PROSECUTOR, country="DE",
        address="Lothringer Straße 1, 01069 Dresden, Germany", phone="+49 351 446 0",
        email="poststelle@sta-dd.justiz.sachsen.de", time_zone="Europe/Berlin",
        person="Dr. Anna Weber", position="Staatsanwältin", file_number="412 Js 1234/26",
        office_hours="Mon-Fri 08:00-16:00")
    validating = Authority(
        name="Amtsgericht Dresden", role=AuthorityRole.INVESTIGATING_JUDGE, country="DE",
        address="Roßbachstraße 6, 01069 Dresden, Germany", phone="+49 351 446 3000",
        email="verwaltung@agdd.justiz.sachsen.de", time_zone="Europe/Berlin",
        person="Richter Jonas Krüger", position="Ermittlungsrichter", file_number="270 Gs 88/26")
    first = datetime(2026, 3, 2, 13, 5, 9, tzinfo=UTC)
    identifiers = (
        TargetIdentifier("username", ARABIC_HANDLE, "https://www.instagram.com/p/CxYz123AbC/",
                         "cap-0001", HASH_1, first, date(2026, 3, 2), "Instagram"),
        TargetIdentifier("username", "border.crossing.eu", "https://www.instagram.com/border.crossing.eu/",
                         "cap-0002", HASH_2, first + timedelta(hours=5), date(2026, 3, 2),
                         "Instagram"),
    )
    base = RequestInput(
        kind=kind, reference=f"LR-2026-0042-{kind}",
        case=CaseInfo(
            reference="BPOL-PIR-2026-117", title="Smuggling adverts on Instagram",
            offence="Smuggling of foreigners for financial gain (Einschleusen von Ausländern)",
            offence_provision="§ 96 Abs. 1, 2 AufenthG", max_penalty_years=10,
            facts="Since February 2026 the accounts advertise crossings into Germany for EUR "
                  "3,000 per person, with phone numbers and meeting points.", jurisdiction="DE"),
        issuing=issuing, validating=validating, platform=platform, identifiers=identifiers,
        categories=frozenset({DataCategory.SUBSCRIBER, DataCategory.TRAFFIC}),
        date_range=DateRange(datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC)),
        emergency=kind == "emergency-disclosure",
        issued_at=datetime(2026, 3, 3, 9, 0, tzinfo=UTC),
        user_fields=dict(USER_FIELDS),
    )
    if kind in ("provider-voluntary-disclosure", "coe-art31-mla"):
        base = dataclasses.replace(base, categories=frozenset({DataCategory.SUBSCRIBER}))
    if kind == "eu-epoc-pr-extension":
        base = extension_of(dataclasses.replace(base, kind="eu-epoc-pr",
                                                reference="LR-2026-0042-eu-epoc-pr"),
                            reference="LR-2026-0042-ext",
                            issued_at=datetime(2026, 4, 20, 9, 0, tzinfo=UTC))
    return dataclasses.replace(base, **overrides)


def errors(registry: Registry, kind: str, **overrides: Any) -> list[str]:
    r = make_request(registry, kind, **overrides)
    return [str(p) for p in get_instrument(kind).validate(r) if p.severity == "error"]


# --- every kind: valid sample, PDF, JSON ---------------------------------------------------------


@pytest.mark.parametrize("kind", list(INSTRUMENTS))
def test_sample_request_is_valid(registry: Registry, kind: str) -> None:
    assert errors(registry, kind) == []


# The kinds that ask for records of a period: not the takedown orders and notices (DSA), nor
# an EPOC-PR's extension (which keeps the order's own period).
DATED_KINDS = [kind for kind in INSTRUMENTS
               if not kind.startswith("dsa-") and kind != "eu-epoc-pr-extension"]


@pytest.mark.parametrize("kind", DATED_KINDS)
def test_a_period_that_ends_before_it_starts_or_after_the_request_is_refused(
        registry: Registry, kind: str) -> None:
    """Stored records only: a period in the future is an interception order, not this."""
    issued = make_request(registry, kind).issued_at
    assert issued is not None
    start, end = issued - timedelta(days=1), issued - timedelta(days=30)
    said = [e for e in errors(registry, kind, date_range=DateRange(start, end))
            if "date range" in e]
    assert len(said) == 1, said
    assert (f"the date range ends ({end:%Y-%m-%d %H:%M:%S} UTC) before it starts "
            f"({start:%Y-%m-%d %H:%M:%S} UTC)") in said[0]
    future = DateRange(issued - timedelta(days=30), issued + timedelta(days=2))
    assert any("after the request is issued" in e and "interception order" in e
               for e in errors(registry, kind, date_range=future))
    # Up to a day past the moment of issue is "until today" typed in another time zone.
    today = DateRange(issued - timedelta(days=30), issued + timedelta(hours=23))
    assert not [e for e in errors(registry, kind, date_range=today) if "date range" in e]


def _pdftotext(path: Path) -> str:
    return subprocess.run(["pdftotext", "-raw", str(path), "-"], check=True,
                          capture_output=True, text=True).stdout


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text)


@pytest.mark.parametrize("kind", list(INSTRUMENTS))
def test_pdf_has_sections_in_order_and_values(registry: Registry, kind: str,
                                              tmp_path: Path) -> None:
    r = make_request(registry, kind)
    inst = get_instrument(kind)
    SAMPLES.mkdir(parents=True, exist_ok=True)
    out = SAMPLES / f"{kind}.pdf"
    render_pdf(r, out)
    text = _squash(_pdftotext(out))
    position = 0
    for section in inst.sections:
        found = text.find(_squash(section.title), position)
        assert found >= 0, f"{section.title!r} missing or out of order"
        position = found
    assert r.reference in text
    pages = int(re.findall(r"page \d+ of (\d+)", text)[0])
    assert all(f"page {n} of {pages}" in text for n in range(1, pages + 1))
    compact = text.replace(" ", "")
    assert HASH_1 in compact and HASH_2 in compact
    assert "2026-03-02 13:05:09 UTC" in text
    assert r.issuing.name in text
    if inst.has_validating_authority:
        assert "Validating authority" in text
    for name, value in inst.values(r).items():
        first_line = value.split("\n")[0][:40]
        if first_line and name not in ("identifiers", "data", "urls"):
            assert _squash(first_line) in text, (name, first_line)


def test_arabic_handle_is_drawn_with_an_embedded_font(registry: Registry, tmp_path: Path) -> None:
    out = tmp_path / "pr.pdf"
    render_pdf(make_request(registry, "eu-epoc-pr"), out)
    fonts = subprocess.run(["pdffonts", str(out)], capture_output=True, text=True).stdout
    assert "DejaVuSans" in fonts
    text = _pdftotext(out)
    # Glyphs are present (no code-point placeholders), letters joined: extracted as
    # presentation forms, which NFKC maps back to the letters.
    assert "U+" not in text
    assert all(ch in unicodedata.normalize("NFKC", text) for ch in "مهرب")
    assert any(0xFE70 <= ord(c) <= 0xFEFF for c in text)
    assert "Right-to-left text" in text


def test_render_json_has_the_same_fields(registry: Registry) -> None:
    r = make_request(registry, "eu-epoc-pr")
    data = render_json(r)
    names = [f["name"] for s in data["sections"] for f in s["fields"]]
    assert names == [f.name for f in get_instrument("eu-epoc-pr").ordered_fields()]
    assert data["sections"][0]["letter"] == "Section A"
    assert data["annex"][0]["value"] == ARABIC_HANDLE
    assert data["annex"][0]["captured_at"] == "2026-03-02T13:05:09+00:00"
    assert data["unverified"]
    json.dumps(data, ensure_ascii=False)


@pytest.mark.parametrize("kind", sorted(INSTRUMENTS))
def test_a_field_filled_from_the_users_input_says_from_which_part(kind: str) -> None:
    # A problem with a computed field is placed at the input its value comes from
    # (`Fill.source`); a field that says for people it comes from the settings, the case, the
    # targets, the period or the categories but not for the code would lose its problems' link.
    parts = {"settings:": "authority", "case.": "case", "targets[]": "targets",
             "request.date_range": "period", "request.categories": "categories"}
    for spec in INSTRUMENTS[kind].fields:
        said = spec.fill.description
        part = next((part for prefix, part in parts.items() if said.startswith(prefix)), None)
        source = spec.fill.source
        assert (source.part if source else None) == part, (spec.name, said, source)
        if source is not None and source.part == "authority":  # the authority it names
            assert source.name.split(".")[0] in said, (spec.name, said, source)
        if source is not None and source.part == "case":
            assert f"case.{source.name}" in said, (spec.name, said, source)


LONG_ARABIC_FACTS = (
    "البداية: منذ فبراير يعرض الحساب رحلات عبور إلى ألمانيا مقابل ثلاثة آلاف يورو للشخص مع أرقام "
    "هواتف ونقاط لقاء في المدينة ويطلب الدفع مسبقاً عبر وسيط مالي ويعد بوثائق سفر مزورة لمن يدفع "
    "أكثر ويغير اسم الحساب كل أسبوع النهاية")


def test_long_right_to_left_facts_read_from_their_first_words(
    registry: Registry, tmp_path: Path,
) -> None:
    """Broken into printed lines before they are reordered: the first words are at the right
    end of the top line, the last words on the bottom line."""
    r = make_request(registry, "coe-art29-preservation")
    r = dataclasses.replace(r, case=dataclasses.replace(r.case, facts=LONG_ARABIC_FACTS))
    out = tmp_path / "facts.pdf"
    render_pdf(r, out)
    lines = next(found for found in (arabic_lines(out, page=n) for n in (1, 2, 3))
                 if any(w.text == "البداية:" for line in found for w in line))
    top = next(i for i, line in enumerate(lines) if any(w.text == "البداية:" for w in line))
    bottom = next(i for i, line in enumerate(lines) if any(w.text == "النهاية" for w in line))
    assert lines[top][0].text == "البداية:", [w.text for w in lines[top]]
    assert bottom > top and lines[bottom][-1].text == "النهاية"


LONG_ARABIC_HANDLE = "مهرب_الحدود_الشمالية_للعبور_إلى_أوروبا_بالقارب"


def test_a_handle_wider_than_its_annex_cell_reads_from_its_start(
        registry: Registry, tmp_path: Path) -> None:
    """A right-to-left handle too long for the annex's identifier column is cut in reading
    order: its start on the top line, its end below (cut after reordering, the top line held
    its end, and a platform would look up a handle that does not exist)."""
    r = make_request(registry, "eu-epoc-pr")
    r = dataclasses.replace(r, identifiers=(
        dataclasses.replace(r.identifiers[0], value=LONG_ARABIC_HANDLE), *r.identifiers[1:]))
    out = tmp_path / "handle.pdf"
    render_pdf(r, out)
    page = next(n for n, text in enumerate(_pdftotext(out).split("\f"), start=1)
                if "Annex: identifiers" in text)
    words = [w for line in arabic_lines(out, page=page) for w in line]
    start = [w for w in words if w.text.startswith("مهرب_") and "بالقارب" not in w.text]
    end = [w for w in words if w.text.endswith("_بالقارب") and "مهرب" not in w.text]
    assert start and end, [w.text for w in words]
    assert start[0].top < end[0].top
    assert "".join(w.text for w in sorted(start + end, key=lambda w: w.top)) == LONG_ARABIC_HANDLE


LONG_URL = ("https://www.instagram.com/p/CxYz123AbC/?"
            + "&".join(f"utm{n}=x{n}" for n in range(150)))  # 1,500 characters
NUMBER_COLUMN_RIGHT = 18 * 72 / 25.4 + 7 * 72 / 25.4  # the page margin and the # column


def test_every_piece_of_an_annex_row_is_under_its_number_and_identifier(
        registry: Registry, tmp_path: Path) -> None:
    """Annex rows long enough to reach the foot of a page are not split: split, the rest of a
    row (its URL's end, "capture cap-0003") stood alone at the top of the next page under a
    blank # and identifier, and no one could tell whose it was."""
    r = make_request(registry, "eu-epoc-pr")
    r = dataclasses.replace(r, identifiers=tuple(
        dataclasses.replace(r.identifiers[1], value=f"account.{n}", source_url=LONG_URL,
                            capture_id=f"cap-{n:04d}") for n in range(1, 7)))
    out = tmp_path / "annex.pdf"
    render_pdf(r, out)
    pages = _pdftotext(out).rstrip("\f").split("\f")
    annex = next(n for n, text in enumerate(pages, start=1) if "Annex: identifiers" in text)
    seen = []
    for page in range(annex, len(pages) + 1):
        words = placed_words(out, page=page)
        numbers = [w for w in words if w.left < NUMBER_COLUMN_RIGHT and w.text.isdigit()]
        for capture in (w for w in words if w.text.startswith("cap-")):
            above = [w for w in numbers if w.top <= capture.top]
            assert above, f"{capture.text} on page {page} is under no row number"
            row = int(max(above, key=lambda w: w.top).text)
            assert capture.text == f"cap-{row:04d}", (page, row, capture.text)
            identifier = max((w for w in words if w.text.startswith("account.")
                              and w.top <= capture.top), key=lambda w: w.top)
            assert identifier.text == f"account.{row}", (page, identifier.text)
            seen.append(row)
    assert seen == [1, 2, 3, 4, 5, 6]
    text = _squash(" ".join(pages[annex - 1:]))
    assert LONG_URL[:100] in text.replace(" ", "")
    assert "more characters not shown here; the whole value is in the JSON rendering" in text


@pytest.mark.parametrize("value", ["x" * 50_000, "\ue000" * 50_000, ARABIC_HANDLE * 5_000],
                         ids=["latin", "code points", "arabic"])
def test_an_annex_value_longer_than_a_page_is_cut_and_said_where_it_is_whole(
        registry: Registry, value: str, tmp_path: Path) -> None:
    """A row that is not split must fit a page (ReportLab refuses the request otherwise): a
    huge identifier or URL is cut, even where each character prints as a code point."""
    r = make_request(registry, "eu-epoc-pr")
    r = dataclasses.replace(r, identifiers=(
        dataclasses.replace(r.identifiers[0], value=value, source_url=LONG_URL + value),
        *r.identifiers[1:]))
    out = tmp_path / "huge.pdf"
    render_pdf(r, out)
    text = _squash(_pdftotext(out))
    annex = text[text.index("Annex: identifiers"):text.index("Sources")]
    assert "the whole value is in the JSON rendering" in annex
    assert "cap-0001" in annex and "cap-0002" in annex
    assert render_json(r)["annex"][0]["value"] == value


@pytest.mark.parametrize("kind", list(INSTRUMENTS))
def test_values_longer_than_a_page_run_on_to_the_next_pages(
    registry: Registry, kind: str, tmp_path: Path,
) -> None:
    """A field's value taller than a page is split across pages (reportlab refused the whole
    request before: a table row must fit on one page unless it may split inside)."""
    r = make_request(registry, kind)
    facts = " ".join(f"fact{i}" for i in range(800))  # 6,689 characters: over a page
    address = "\n".join(f"floor {i}" for i in range(400))
    issuing = dataclasses.replace(r.issuing, address=address, name="Authority " * 100)
    r = dataclasses.replace(r, issuing=issuing, case=dataclasses.replace(r.case, facts=facts),
                            user_fields={**r.user_fields, "explanation": facts})
    out = tmp_path / f"{kind}.pdf"
    render_pdf(r, out)
    text = _pdftotext(out)
    values = " ".join(get_instrument(kind).values(r).values())
    assert "fact799" in values or "floor 399" in values
    for last in ("fact799", "floor 399"):  # the whole value is printed, to its last word
        assert (last in text) == (last in values), last
    assert int(re.findall(r"page \d+ of (\d+)", text)[0]) > 2


# What a registry entry does not know is "unknown" there: a letter to a platform must not
# read "Addressee: WhatsApp LLC, unknown" or "Channel: unknown <unknown>".
UNKNOWN_FACTS = [("whatsapp", "provider-preservation", "WhatsApp LLC"),
                 ("whatsapp", "emergency-disclosure", "WhatsApp LLC"),
                 ("whatsapp", "dsa-art9-order", "WhatsApp Ireland Limited"),
                 ("whatsapp", "coe-art29-preservation", "WhatsApp LLC"),
                 ("telegram", "coe-art29-preservation", "Telegram Messenger Inc."),
                 ("microsoft", "provider-preservation", "Microsoft Corporation")]


@pytest.mark.parametrize(("platform", "kind", "entity"), UNKNOWN_FACTS)
def test_what_the_registry_does_not_know_is_left_out_not_printed_as_unknown(
        registry: Registry, platform: str, kind: str, entity: str, tmp_path: Path) -> None:
    p = registry.get(platform)
    ids = tuple(dataclasses.replace(i, kind=p.identifiers[0].kind)
                for i in make_request(registry, kind).identifiers)
    r = make_request(registry, kind, platform=p, identifiers=ids)
    out = tmp_path / "request.pdf"
    render_pdf(r, out)
    text = _squash(_pdftotext(out))
    assert entity in text
    assert not re.search(r"\bunknown\b", text, re.IGNORECASE), re.findall(
        r".{60}\bunknown\b.{20}", text, re.IGNORECASE)
    # The operator's name is printed once, not "WhatsApp LLC; WhatsApp LLC".
    assert f"{entity}; {entity}" not in text


def test_an_addressee_the_registry_does_not_know_is_asked_for(registry: Registry,
                                                              tmp_path: Path) -> None:
    """The generic provider: the liaison names the addressee; nothing is sent to "unknown"."""
    generic = registry.get("generic")
    ids = tuple(dataclasses.replace(i, kind="url")
                for i in make_request(registry, "provider-preservation").identifiers)
    assert "addressee: required field 'Addressee' is empty" in errors(
        registry, "provider-preservation", platform=generic, identifiers=ids)
    assert "custodian: required field 'Custodian / location of the computer system' is empty" in (
        errors(registry, "coe-art29-preservation", platform=generic, identifiers=ids))
    r = make_request(registry, "provider-preservation", platform=generic, identifiers=ids)
    named = "Example Hosting B.V., Keizersgracht 1, 1015 Amsterdam, Netherlands"
    r = dataclasses.replace(r, user_fields={**r.user_fields, "addressee": named})
    out = tmp_path / "generic.pdf"
    render_pdf(r, out)
    text = _squash(_pdftotext(out))
    assert named in text and "unknown" not in text


@pytest.mark.parametrize("kind", ["eu-epoc-pr", "coe-art31-mla"])
def test_the_maximum_penalty_reads_as_written(registry: Registry, kind: str,
                                              tmp_path: Path) -> None:
    """The database holds years as a float; the form says "10", not "10.0"."""
    r = make_request(registry, kind)
    for years, shown in ((10.0, "10"), (0.5, "0.5")):
        r = dataclasses.replace(r, case=dataclasses.replace(r.case, max_penalty_years=years))
        out = tmp_path / f"{kind}.pdf"
        render_pdf(r, out)
        text = _squash(_pdftotext(out))
        found = re.search(r"Maximum penalty \(years[^)]*\) \(optional\) (\S+)", text)
        assert found is not None and found[1] == shown, text


def test_render_pdf_refuses_an_invalid_request(registry: Registry, tmp_path: Path) -> None:
    r = make_request(registry, "eu-epoc-pr", identifiers=())
    with pytest.raises(RequestInvalid, match="no identifiers"):
        render_pdf(r, tmp_path / "x.pdf")


def test_unknown_kind() -> None:
    with pytest.raises(UnknownKind, match="eu-epoc-pr"):
        get_instrument("fax")


# --- validation: one test per rule ---------------------------------------------------------------


def test_problems_are_collected_not_first_fail(registry: Registry) -> None:
    found = errors(registry, "eu-epoc", identifiers=(),
                   issuing=dataclasses.replace(make_request(registry, "eu-epoc").issuing,
                                               role=AuthorityRole.POLICE),
                   validating=None, user_fields={})
    assert len(found) >= 4
    assert any("no identifiers" in p for p in found)
    assert any("judge" in p for p in found)
    assert any("addressee_type" in p for p in found)


def test_epoc_traffic_data_needs_a_judge(registry: Registry) -> None:
    r = make_request(registry, "eu-epoc")
    found = errors(registry, "eu-epoc", validating=None)
    assert any("Art. 4(2)" in p and "prosecutor" in p for p in found)
    assert errors(registry, "eu-epoc") == []  # validated by the investigating judge
    subscriber_only = errors(registry, "eu-epoc", validating=None,
                             categories=frozenset({DataCategory.SUBSCRIBER}))
    assert subscriber_only == []
    assert r.validating is not None


def test_epoc_traffic_data_needs_three_year_offence(registry: Registry) -> None:
    r = make_request(registry, "eu-epoc")
    minor = dataclasses.replace(r.case, max_penalty_years=2)
    found = errors(registry, "eu-epoc", case=minor)
    assert any("at least 3 years" in p for p in found)
    fields = {**USER_FIELDS, "listed_offence": "Art. 5(4)(b)"}
    assert errors(registry, "eu-epoc", case=minor, user_fields=fields) == []


def test_epoc_traffic_data_names_the_enforcing_authority(registry: Registry) -> None:
    fields = {k: v for k, v in USER_FIELDS.items() if k != "enforcing_authority"}
    assert any("enforcing authority" in p for p in errors(registry, "eu-epoc",
                                                          user_fields=fields))


def test_epoc_emergency_needs_reasons(registry: Registry) -> None:
    fields = {k: v for k, v in USER_FIELDS.items() if k != "emergency_reasons"}
    assert any("emergency" in p for p in errors(registry, "eu-epoc", emergency=True,
                                                user_fields=fields))


def test_epoc_pr_allows_a_prosecutor_but_not_police(registry: Registry) -> None:
    assert errors(registry, "eu-epoc-pr", validating=None) == []
    police = dataclasses.replace(make_request(registry, "eu-epoc-pr").issuing,
                                 role=AuthorityRole.POLICE)
    assert any("Art. 4(3)" in p for p in errors(registry, "eu-epoc-pr", issuing=police,
                                                validating=None))


def test_eu_authority_problem_names_the_roles_as_the_settings_spell_them(
        registry: Registry) -> None:
    base = make_request(registry, "eu-epoc-pr")
    other = dataclasses.replace(base.issuing, role=AuthorityRole.OTHER)
    [alone] = errors(registry, "eu-epoc-pr", issuing=other, validating=None)
    assert ("must be issued by a judge, a court, an investigating judge or a prosecutor, or "
            "validated by one (Regulation (EU) 2023/1543, Art. 4(3))") in alone
    assert "the issuing authority's role is 'other' and no validating authority is given" in alone
    assert " a other" not in alone
    police = dataclasses.replace(base.issuing, role=AuthorityRole.POLICE)
    [checked] = errors(registry, "eu-epoc-pr", issuing=other, validating=police)
    assert "the validating authority's role is 'police'" in checked
    # Traffic or content data: a prosecutor is not enough, whoever validates (Art. 4(2)).
    epoc = make_request(registry, "eu-epoc")
    found = errors(registry, "eu-epoc",
                   validating=dataclasses.replace(epoc.issuing, role=AuthorityRole.PROSECUTOR))
    assert any("(Regulation (EU) 2023/1543, Art. 4(2)); the issuing authority's role is "
               "'prosecutor' and the validating authority's role is 'prosecutor'" in p
               for p in found), found


def test_eu_problems_state_the_rule_not_doubts_about_its_source(registry: Registry) -> None:
    # What was not read in the official text is listed once, in `unverified`; a problem the
    # user has to fix says the rule and its article, not "not yet verified".
    r = make_request(registry, "eu-epoc")
    police = dataclasses.replace(r.issuing, role=AuthorityRole.POLICE)
    shown = [
        *errors(registry, "eu-epoc", issuing=police, validating=None,
                case=dataclasses.replace(r.case, max_penalty_years=2)),
        *errors(registry, "eu-epoc-pr", issuing=police, validating=None),
        *errors(registry, "eu-epoc-pr", issuing=dataclasses.replace(r.issuing, country="DK")),
    ]
    assert any("Art. 5(4)" in p for p in shown) and any("Art. 4(3)" in p for p in shown)
    assert any("Protocol No 22" in p for p in shown)
    for message in shown:
        assert not re.search(r"verified|not read|secondary source", message), message
    assert "Art. 4(3)" in " ".join(get_instrument("eu-epoc-pr").unverified)
    assert "Art. 5(4)" in " ".join(get_instrument("eu-epoc").unverified)


def test_instagram_username_needs_a_date(registry: Registry) -> None:
    r = make_request(registry, "eu-epoc-pr")
    undated = (dataclasses.replace(r.identifiers[0], relevant_date=None), r.identifiers[1])
    found = errors(registry, "eu-epoc-pr", identifiers=undated)
    assert any("Instagram username" in p and "date" in p for p in found)


def test_identifier_kind_must_be_accepted_by_the_platform(registry: Registry) -> None:
    r = make_request(registry, "provider-preservation")
    phone = (dataclasses.replace(r.identifiers[0], kind="phone", value="+491701234567"),)
    assert any("does not list 'phone'" in p
               for p in errors(registry, "provider-preservation", identifiers=phone))


def test_epoc_needs_an_eu_establishment(registry: Registry) -> None:
    for name in ("snap", "telegram"):
        found = errors(registry, "eu-epoc-pr", platform=registry.get(name))
        assert any("no EU establishment" in p for p in found), name
    # Microsoft Ireland Operations Limited provides the service in the EEA (registry source).
    found = errors(registry, "eu-epoc-pr", platform=registry.get("microsoft"))
    assert not any("no EU establishment" in p for p in found)


def test_epoc_unknown_designated_establishment_is_a_warning(registry: Registry) -> None:
    r = make_request(registry, "eu-epoc-pr")
    warnings = [p for p in get_instrument("eu-epoc-pr").validate(r) if p.severity == "warning"]
    assert any("Directive (EU) 2023/1544" in p.message for p in warnings)


def test_epoc_issuing_state_must_be_bound(registry: Registry) -> None:
    r = make_request(registry, "eu-epoc-pr")
    for country, text in (("DK", "not bound"), ("US", "not an EU Member State")):
        issuing = dataclasses.replace(r.issuing, country=country)
        assert any(text in p for p in errors(registry, "eu-epoc-pr", issuing=issuing))
    denmark = dataclasses.replace(r.issuing, country="DK")
    assert any("Protocol No 22" in p for p in errors(registry, "eu-epoc-pr", issuing=denmark))


@pytest.mark.parametrize(("kind", "needles"), [
    ("eu-epoc", ("Art. 5(4)", "Annex I ", "Denmark", "Ireland")),
    ("eu-epoc-pr", ("Art. 4(3)", "Annex II", "Denmark", "Ireland")),
    ("eu-epoc-pr-extension", ("Annex VI",)),
])
def test_eu_unverified_facts_are_stated(kind: str, needles: tuple[str, ...]) -> None:
    inst = get_instrument(kind)
    stated = " ".join(inst.unverified)
    assert all(n in stated for n in needles), stated
    # Only the official EUR-Lex text counts as verified; reproductions and government notes
    # are listed as sources but not as checked.
    for src in inst.sources:
        assert src.verified == src.url.startswith("https://eur-lex.europa.eu/"), src.title
    if kind == "eu-epoc-pr-extension":
        assert not any(s.verified for s in inst.sections if s.key != "extension")


def test_art29_must_state_the_mla_intention(registry: Registry) -> None:
    fields = {k: v for k, v in USER_FIELDS.items() if k != "mla_intention"}
    assert any("mla_intention" in p for p in errors(registry, "coe-art29-preservation",
                                                    user_fields=fields))
    vague = {**USER_FIELDS, "mla_intention": "We will be in touch."}
    assert any("mutual assistance" in p
               for p in errors(registry, "coe-art29-preservation", user_fields=vague))


def test_provider_preservation_needs_identifiers_and_dates(registry: Registry) -> None:
    found = errors(registry, "provider-preservation", identifiers=(), date_range=None)
    assert any("no identifiers" in p for p in found)
    assert any("date range" in p for p in found)


def test_dsa_art9_needs_urls_reasons_scope_and_redress(registry: Registry) -> None:
    r = make_request(registry, "dsa-art9-order")
    bad_url = (dataclasses.replace(r.identifiers[0], source_url="instagram"),)
    fields = {k: v for k, v in USER_FIELDS.items()
              if k not in ("reasons", "territorial_scope", "redress")}
    found = errors(registry, "dsa-art9-order", identifiers=bad_url, user_fields=fields)
    for needle in ("exact URL", "reasons", "territorial_scope", "redress"):
        assert any(needle in p for p in found), needle


def test_dsa_art16_needs_good_faith_name_and_email(registry: Registry) -> None:
    r = make_request(registry, "dsa-art16-notice")
    anonymous = dataclasses.replace(r.issuing, name="", person="", email="")
    fields = {**USER_FIELDS, "good_faith": "Please remove."}
    found = errors(registry, "dsa-art16-notice", issuing=anonymous, user_fields=fields)
    assert any("name is required" in p for p in found)
    assert any("email" in p for p in found)
    assert any("bona fide" in p for p in found)
    # Art. 16(2)(c): name and email may be left out for offences of Directive 2011/93/EU.
    csam = {**USER_FIELDS, "directive_2011_93_offence": "yes"}
    assert errors(registry, "dsa-art16-notice", issuing=anonymous, user_fields=csam) == []


@pytest.mark.parametrize(("platform", "given", "printed"), [
    ("x", None, "English (en)"),
    ("instagram", "en", "English (en)"),
    ("instagram", "de, fr", "German (de), French (fr)"),
    ("instagram", "Deutsch", "Deutsch"),  # what the table does not know is printed as given
])
def test_dsa_art9_order_names_its_language(registry: Registry, platform: str,
                                           given: str | None, printed: str,
                                           tmp_path: Path) -> None:
    """Art. 9(2)(c): the order is in a language the provider declared; a reader is told which
    by its name, not by a code such as "en"."""
    p = registry.get(platform)
    fields = {k: v for k, v in USER_FIELDS.items() if k != "language"}
    if given is not None:
        fields["language"] = given
    ids = tuple(dataclasses.replace(i, kind=p.identifiers[0].kind)
                for i in make_request(registry, "dsa-art9-order").identifiers)
    r = make_request(registry, "dsa-art9-order", platform=p, identifiers=ids,
                     user_fields=fields)
    out = tmp_path / "order.pdf"
    render_pdf(r, out)
    assert f"Language of the order {printed}" in _squash(_pdftotext(out))


@pytest.mark.parametrize("kind", list(INSTRUMENTS))
def test_only_a_document_that_is_signed_has_a_signature_block(
        registry: Registry, kind: str, tmp_path: Path) -> None:
    """An Art. 16 notice is typed into the provider's web form (Art. 16(1): notices are
    submitted exclusively by electronic means) and Art. 16(2) asks for the sender's name and
    email, not a signature: a "Signature and stamp" block has no place there."""
    r = make_request(registry, kind)
    out = tmp_path / "request.pdf"
    render_pdf(r, out)
    text = _squash(_pdftotext(out))
    signed = kind != "dsa-art16-notice"
    assert ("Signature and stamp" in text) == signed
    assert get_instrument(kind).signed == signed
    if not signed:  # the sender is still named, in the notice's own section
        sender = text.split("Name and email address of the sender", 1)[1]
        assert f"Dr. Anna Weber, {r.issuing.name}" in sender and r.issuing.email in sender


def test_voluntary_disclosure_refuses_content(registry: Registry) -> None:
    found = errors(registry, "provider-voluntary-disclosure",
                   categories=frozenset({DataCategory.CONTENT}))
    assert any("MLAT" in p for p in found)


def test_emergency_disclosure_needs_the_flag(registry: Registry) -> None:
    assert any("emergency flag" in p
               for p in errors(registry, "emergency-disclosure", emergency=False))


def test_extension_must_be_sent_within_60_days(registry: Registry) -> None:
    late = datetime(2026, 5, 10, tzinfo=UTC)
    assert any("60-day period" in p
               for p in errors(registry, "eu-epoc-pr-extension", issued_at=late))


def test_extension_of_carries_the_original(registry: Registry) -> None:
    original = make_request(registry, "eu-epoc-pr")
    ext = extension_of(original, reference="LR-X")
    assert ext.kind == "eu-epoc-pr-extension"
    assert ext.previous_reference == original.reference
    assert ext.previous_issued_at == original.issued_at
    assert ext.identifiers == original.identifiers


# --- deadlines -----------------------------------------------------------------------------------


def test_emergency_hours_are_elapsed_time_across_dst() -> None:
    # 29 March 2026, clocks go 02:00 CET -> 03:00 CEST in Berlin.
    sent = datetime(2026, 3, 29, 0, 30, tzinfo=BERLIN)
    due = add_hours(sent, 8)
    assert due == datetime(2026, 3, 29, 7, 30, tzinfo=UTC)
    assert due.astimezone(BERLIN).hour == 9  # 9 wall-clock hours later: one hour skipped


def test_days_are_counted_on_the_authoritys_calendar() -> None:
    sent = datetime(2026, 3, 20, 12, 0, tzinfo=BERLIN)  # CET, 11:00 UTC
    due = add_days(sent, 10, BERLIN)
    assert due.astimezone(BERLIN) == datetime(2026, 3, 30, 12, 0, tzinfo=BERLIN)
    assert due == datetime(2026, 3, 30, 10, 0, tzinfo=UTC)  # CEST
    assert due.tzinfo == UTC


def test_same_instant_different_zones() -> None:
    sent = datetime(2026, 10, 20, 23, 30, tzinfo=UTC)
    tokyo, new_york = ZoneInfo("Asia/Tokyo"), ZoneInfo("America/New_York")
    # Day-counting follows the authority's calendar, so the results differ by zone only through
    # DST (New York leaves DST on 1 Nov 2026).
    assert add_days(sent, 30, tokyo) == sent + timedelta(days=30)
    assert add_days(sent, 30, new_york) == sent + timedelta(days=30, hours=1)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(Exception, match="timezone-aware"):
        add_hours(datetime(2026, 1, 1), 8)


def test_epoc_deadlines(registry: Registry) -> None:
    r = make_request(registry, "eu-epoc")
    sent = datetime(2026, 3, 20, 11, 0, tzinfo=UTC)
    normal = get_instrument("eu-epoc").deadlines(r, sent)
    assert normal[0].due == datetime(2026, 3, 30, 10, 0, tzinfo=UTC)
    urgent = get_instrument("eu-epoc").deadlines(dataclasses.replace(r, emergency=True), sent)
    assert urgent[0].due == sent + timedelta(hours=8)
    assert urgent[1].due == sent + timedelta(hours=96)


def test_epoc_pr_deadlines(registry: Registry) -> None:
    r = make_request(registry, "eu-epoc-pr")
    sent = datetime(2026, 3, 3, 9, 0, tzinfo=UTC)  # 10:00 CET
    end, extended = get_instrument("eu-epoc-pr").deadlines(r, sent)
    assert end.due == datetime(2026, 5, 2, 8, 0, tzinfo=UTC)  # 10:00 CEST
    assert extended.due == datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
    ext = make_request(registry, "eu-epoc-pr-extension")
    before, after = get_instrument("eu-epoc-pr-extension").deadlines(ext, sent)
    assert before.due == end.due and after.due == extended.due


def test_art29_deadline(registry: Registry) -> None:
    r = make_request(registry, "coe-art29-preservation")
    sent = datetime(2026, 1, 10, 9, 0, tzinfo=UTC)
    (due,) = get_instrument("coe-art29-preservation").deadlines(r, sent)
    assert due.due == sent + timedelta(days=60)
    assert due.basis.endswith("Art. 29(7)")  # verified: "not less than sixty days"


def test_coe_verified_numbering() -> None:
    art29 = get_instrument("coe-art29-preservation")
    letters = [s.letter for s in art29.sections if s.verified]
    # T-CY(2018)11 read up to item 7 (rm.coe.int): its numbers, then the Convention's letters.
    assert letters == [f"Item {n}" for n in range(1, 8)] + [f"Art. 29(2)({c})" for c in "abcdef"]
    assert all(s.verified for s in art29.sections)
    assert not any("60 days" in u or "29(7)" in u for u in art29.unverified)
    assert any("T-CY(2018)11 after item 7" in u for u in art29.unverified)
    assert [f.name for f in art29.fields if not f.verified] == ["investigative_authority"]
    assert all(src.verified for src in art29.sources)
    art31 = get_instrument("coe-art31-mla")
    numbered = [s.letter for s in art31.sections if s.verified]
    assert numbered == [f"Item {n}" for n in range(1, 12)]
    assert [s.key for s in art31.sections if not s.verified] == ["offence", "data"]


def test_coe_parties() -> None:
    from legal_forms.instruments.coe_common import (
        PARTIES,
        PARTIES_NOT_RECHECKED,
        PARTY_SOURCES,
        party_problem_note,
    )
    assert "IE" not in PARTIES  # signed 2002, not ratified (Dail answers 2024-2025)
    assert {"NZ", "BJ", "CI", "NG", "DE", "JP"} <= set(PARTY_SOURCES)
    assert not PARTIES_NOT_RECHECKED & set(PARTY_SOURCES)
    assert party_problem_note("de") is None
    assert "not ratified" in (party_problem_note("IE") or "")
    assert "not re-checked" in (party_problem_note("US") or "")


def test_coe_warns_about_ireland(registry: Registry) -> None:
    r = make_request(registry, "coe-art29-preservation")
    r = dataclasses.replace(r, issuing=dataclasses.replace(r.issuing, country="IE"))
    warnings = [str(p) for p in get_instrument("coe-art29-preservation").validate(r)
                if p.severity == "warning"]
    assert any("signed the Convention but not ratified" in w for w in warnings)


def test_us_statutes_are_verified(registry: Registry) -> None:
    for kind in ("provider-voluntary-disclosure", "emergency-disclosure", "provider-preservation"):
        inst = get_instrument(kind)
        assert inst.unverified == ()
        assert all(s.verified for s in inst.sources)
        assert all(f.verified for f in inst.fields), kind
    basis = get_instrument("provider-voluntary-disclosure").values(
        make_request(registry, "provider-voluntary-disclosure"))["basis"]
    assert "2702(c)(6)" in basis and "2711(4)" in basis


# 18 U.S.C. 2703(c)(2)(A)-(F): what a US provider discloses as a subscriber's records.
SUBSCRIBER_RECORDS = ("(A) name", "(B) address", "(C) records of session times and durations",
                      "(D) length of service", "(E) ", "(F) means and source of payment")


@pytest.mark.parametrize("kind", ["provider-preservation", "emergency-disclosure",
                                  "coe-art31-mla"])
def test_us_records_name_each_subscriber_record_once(
        registry: Registry, kind: str, tmp_path: Path) -> None:
    """Subscriber data and the data identifying the user are both records of 2703(c)(2): asked
    for together, the list named "Basic subscriber information" twice over."""
    both = frozenset({DataCategory.SUBSCRIBER, DataCategory.USER_IDENTIFICATION})
    r = make_request(registry, kind, categories=both)
    out = tmp_path / "records.pdf"
    render_pdf(r, out)
    text = _squash(_pdftotext(out))
    assert text.count("Basic subscriber information") == 1, text
    assert text.count("2703(c)(2)") == 1
    assert text.count("network address") == 1
    assert all(text.count(record) == 1 for record in SUBSCRIBER_RECORDS), text
    assert ("(E) telephone or instrument number or other subscriber number or identity, "
            "including any temporarily assigned network address (IP address)") in text


def test_us_records_identifying_the_user_are_its_sessions_and_network_addresses(
        registry: Registry) -> None:
    records = get_instrument("provider-preservation").values(make_request(
        registry, "provider-preservation",
        categories=frozenset({DataCategory.USER_IDENTIFICATION})))["records"]
    assert records.splitlines() == [
        "Basic subscriber information (18 U.S.C. 2703(c)(2)):",
        "(C) records of session times and durations",
        "(E) temporarily assigned network address (IP address)"]
    subscriber = get_instrument("provider-preservation").values(make_request(
        registry, "provider-preservation", categories=frozenset({DataCategory.SUBSCRIBER})))
    assert "(C)" not in subscriber["records"] and "network" not in subscriber["records"]
    assert "(E) telephone or instrument number or other subscriber number or identity" in (
        subscriber["records"])


def test_provider_preservation_uses_the_registry(registry: Registry) -> None:
    sent = datetime(2026, 4, 10, 9, 0, tzinfo=UTC)  # no DST change within 180 days
    inst = get_instrument("provider-preservation")
    tiktok = make_request(registry, "provider-preservation", platform=registry.get("tiktok"),
                          identifiers=())
    ends = [d.due for d in inst.deadlines(tiktok, sent)]
    assert ends == [sent + timedelta(days=90), sent + timedelta(days=180)]
    x = make_request(registry, "provider-preservation", platform=registry.get("x"))
    end, ask = inst.deadlines(x, sent)
    assert end.due == sent + timedelta(days=90)
    assert ask.due == sent + timedelta(days=83) and "7 days" in ask.note
    generic = make_request(registry, "provider-preservation", platform=registry.get("generic"))
    end, renewed = inst.deadlines(generic, sent)
    assert end.basis == "18 U.S.C. 2703(f)(2)"
    assert renewed.due == sent + timedelta(days=180)


def test_a_provider_renewal_runs_on_from_the_end_it_renews(registry: Registry) -> None:
    inst = get_instrument("provider-preservation")
    renewed_end = datetime(2027, 3, 3, 9, 0, tzinfo=UTC)  # 10:00 in Berlin
    sent = datetime(2027, 2, 20, 9, 0, tzinfo=UTC)
    # Snap: one extension of 180 days (registry), from 3 March 2027 to 30 August, 10:00 in
    # Berlin (summer time): not 180 days from sending (19 August).
    snap = make_request(registry, "provider-preservation", platform=registry.get("snap"),
                        previous_reference="LR-1", previous_issued_at=datetime(
                            2026, 3, 3, 9, 0, tzinfo=UTC), previous_ends_at=renewed_end)
    assert inst.preservation_end(snap, sent) == datetime(2027, 8, 30, 8, 0, tzinfo=UTC)
    assert [(d.name, d.due) for d in inst.deadlines(snap, sent)] == [
        ("send the renewal before", renewed_end),
        ("preservation ends", datetime(2027, 8, 30, 8, 0, tzinfo=UTC)),
    ]
    assert "ends 2027-03-03 09:00:00 UTC" in inst.values(snap)["basis"]
    assert not [p for p in inst.validate(snap) if "extension length" in str(p)]
    # No period in the registry: the statute's additional 90 days.
    generic = dataclasses.replace(snap, platform=registry.get("generic"))
    (_send, end) = inst.deadlines(generic, sent)
    assert end.due == datetime(2027, 6, 1, 8, 0, tzinfo=UTC) and end.basis == (
        "18 U.S.C. 2703(f)(2)")
    # X states 90 days but no extension length: 90 more are assumed, said in a warning, and X
    # wants the renewal 7 days before the end.
    x = dataclasses.replace(snap, platform=registry.get("x"))
    send_by, end, _ask = inst.deadlines(x, sent)
    assert send_by.due == datetime(2027, 2, 24, 9, 0, tzinfo=UTC)
    assert end.due == datetime(2027, 6, 1, 8, 0, tzinfo=UTC) and end.basis.startswith("assumed")
    assert any("no extension length for X" in str(p) for p in inst.validate(x)
               if p.severity == "warning")


# --- routing -------------------------------------------------------------------------------------


def _kinds(registry: Registry, platform: str, country: str | None) -> list[tuple[str, str]]:
    return [(s.kind, str(s.timing)) for s in route(registry.get(platform), country)]


def test_route_eu_state_and_eu_establishment(registry: Registry) -> None:
    kinds = _kinds(registry, "instagram", "DE")
    assert kinds[:2] == [("eu-epoc-pr", "now"), ("eu-epoc", "next")]
    assert ("dsa-art9-order", "takedown") in kinds
    assert ("dsa-art16-notice", "takedown") in kinds
    assert all(s.reason for s in route(registry.get("instagram"), "DE"))


def test_route_us_provider_from_outside_the_eu(registry: Registry) -> None:
    kinds = _kinds(registry, "snap", "GB")
    assert kinds[0] == ("provider-preservation", "now")
    assert ("provider-voluntary-disclosure", "next") in kinds
    assert ("coe-art31-mla", "next") in kinds
    assert ("coe-art29-preservation", "alternative") in kinds
    assert ("dsa-art9-order", "takedown") not in kinds
    assert ("dsa-art16-notice", "takedown") in kinds


def test_route_denmark_does_not_get_epoc(registry: Registry) -> None:
    kinds = _kinds(registry, "instagram", "DK")
    assert ("eu-epoc-pr", "now") not in kinds
    assert kinds[0] == ("coe-art29-preservation", "now")
    # The reason says where the fact comes from, not a bare "(unverified)".
    reason = route(registry.get("instagram"), "DK")[0].reason
    assert "justice opt-out, as the Danish Ministry of Justice states" in reason
    assert "unverified" not in reason


def test_route_without_country(registry: Registry) -> None:
    kinds = [k for k, _ in _kinds(registry, "telegram", None)]
    assert "eu-epoc-pr" not in kinds and kinds[-1] == "dsa-art16-notice"


# --- fields and the CLI --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(INSTRUMENTS))
def test_every_field_has_a_section_and_a_source(kind: str) -> None:
    inst = get_instrument(kind)
    keys = [s.key for s in inst.sections]
    assert len(keys) == len(set(keys))
    for f in inst.fields:
        assert f.section in keys and f.source and f.fill.description
    for s in inst.sections:
        assert s.verified or s.letter is None, f"unverified section {s.key} has a letter"


def invoke(*args: str) -> Any:
    return CliRunner().invoke(request_cli, list(args))


def test_cli_fields() -> None:
    result = invoke("fields", "eu-epoc-pr")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("European Preservation Order Certificate")
    assert "Section A: Issuing/validating authority" in result.output
    assert "from: case.offence" in result.output


def test_cli_fields_json() -> None:
    result = invoke("fields", "coe-art29-preservation", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    mla = next(f for f in data["fields"] if f["name"] == "mla_intention")
    assert mla["required"] and mla["section"] == "f" and mla["filled_from"].startswith("user")


def test_cli_fields_unknown_kind() -> None:
    result = invoke("fields", "fax")
    assert result.exit_code == 1 and "unknown request kind" in result.output


def test_cli_route() -> None:
    result = invoke("route", "--platform", "Twitter", "--issuing-country", "fr")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0].split()[:2] == ["now", "eu-epoc-pr"]


@pytest.mark.parametrize(("country", "message"), [
    ("ZZ", "issuing country 'ZZ' is not an ISO 3166-1 country code"),
    ("el", "issuing country 'EL' is written 'GR' in ISO 3166-1"),
])
def test_cli_route_refuses_a_country_that_is_none(country: str, message: str) -> None:
    result = invoke("route", "--platform", "Twitter", "--issuing-country", country)
    assert result.exit_code == 1 and message in result.output
    assert "Traceback" not in result.output


def test_cli_route_json() -> None:
    # `--case` reads the case from a data home: tests/legal_forms/test_request_cli.py.
    result = invoke("route", "--platform", "snap", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data[0]["kind"] == "provider-preservation" and data[0]["reason"]


def test_cli_route_unknown_platform() -> None:
    result = invoke("route", "--platform", "myspace")
    assert result.exit_code == 1 and "myspace" in result.output


OFFENCE_KINDS = [kind for kind, instrument in INSTRUMENTS.items()
                 if any(f.name == "offence" for f in instrument.fields)]


@pytest.mark.parametrize("kind", OFFENCE_KINDS)
def test_an_offence_without_its_provision_is_written_without_empty_brackets(
        registry: Registry, kind: str) -> None:
    sample = make_request(registry, kind)
    offence = next(f for f in get_instrument(kind).fields if f.name == "offence")
    no_provision = make_request(
        registry, kind, case=dataclasses.replace(sample.case, offence_provision=""))
    assert offence.value(no_provision) == sample.case.offence
    neither = dataclasses.replace(sample.case, offence=" ", offence_provision="")
    assert any(f"required field '{offence.label}' is empty" in problem
               for problem in errors(registry, kind, case=neither))
