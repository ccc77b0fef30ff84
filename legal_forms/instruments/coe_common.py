"""What the Budapest Convention (CETS No. 185) instruments share.

Sources read (December 2026, through the stored copies the project's search tool reaches):

- The Convention text, English authentic version, as published in the Netherlands treaty series
  (Tractatenblad 2002, 18, corrections in Trb. 2004, 290; wetten.overheid.nl BWBV0001839, read in
  the mirror github.com/statengeneraal/laws-markdown), cross-checked for Art. 29(2) with the
  inview.nl copy of the same text. Checked there: Art. 29(1), (2)(a)-(f), (3), (7) (preservation
  "for a period not less than sixty days"), Art. 31(1), Art. 35.
- The T-CY template for mutual assistance requests for subscriber information under Art. 31,
  T-CY(2018)10, "Adopted by the T-CY at its 19th Plenary, Strasbourg, 9 July 2018"
  (rm.coe.int/template-article31-mla-subscriber/1680a273d9): items 1-11 read; the items after 11
  were not in the stored copy.
- The T-CY template for preservation requests under Art. 29/30, T-CY(2018)11, "Data Preservation
  Request under Articles 29 and 30 Budapest Convention on Cybercrime", adopted at the same
  plenary (rm.coe.int/0900001680a33478, an English/Azerbaijani edition; check of 3 Dec 2026):
  items 1-6 read (numbers, headings, sub-fields; item 5 marked mandatory) and item 7 up to
  "Investigative/Operational authority"; the copy ends there, so what follows item 7 is not
  numbered here.
- The Parties: see `PARTY_SOURCES` below.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from legal_forms.instruments.base import (
    FieldSpec,
    RequestInput,
    Section,
    SourceRef,
    authority_block,
    computed,
    issuing,
    issuing_field,
    user_field,
    utc_or_none,
)

CONVENTION = "Convention on Cybercrime (CETS No. 185)"
CONVENTION_URL = "https://www.coe.int/en/web/conventions/full-list?module=treaty-detail&treatynum=185"
CONVENTION_SOURCE = SourceRef(
    CONVENTION, CONVENTION_URL, True,
    "Art. 29(1)-(3), (7) (preservation for not less than sixty days), Art. 31 and Art. 35 read in "
    "the English authentic text as published in the Netherlands treaty series (Trb. 2002, 18; "
    "corrections Trb. 2004, 290; wetten.overheid.nl BWBV0001839); Art. 29(2)(a)-(f) also in the "
    "inview.nl copy of the same text.",
)

TCY_2018_10 = "T-CY(2018)10"
TCY_2018_11 = "T-CY(2018)11"
TCY_2018_10_URL = "https://rm.coe.int/template-article31-mla-subscriber/1680a273d9"
TCY_2018_10_SOURCE = SourceRef(
    "T-CY(2018)10 (Art. 31 MLA template), items 1-11",
    TCY_2018_10_URL, True,
    "Read at rm.coe.int: header 'Adopted by the T-CY at its 19th Plenary, Strasbourg, 9 July "
    "2018' (the iPROCEEDS news page at coe.int says 9 July 2019); items 1-11 checked (numbers and "
    "headings); the items after 11 were not in the copy read.",
)
TCY_2018_11_URL = "https://rm.coe.int/0900001680a33478"
TCY_2018_11_SOURCE = SourceRef(
    "T-CY(2018)11 (Art. 29/30 preservation template), items 1-7",
    TCY_2018_11_URL, True,
    "Read at rm.coe.int (English/Azerbaijani edition): header 'Adopted by the T-CY at its 19th "
    "Plenary, Strasbourg, 9 July 2018', title 'Data Preservation Request under Articles 29 and "
    "30 Budapest Convention on Cybercrime'; items 1-6 checked (numbers, headings, sub-fields; "
    "item 5 marked mandatory) and item 7 up to 'Investigative/Operational authority'; the items "
    "after 7 were not in the copy read.",
)
TEMPLATES_SOURCE = (TCY_2018_10_SOURCE, TCY_2018_11_SOURCE)

# --- Parties (routing hints only; the Treaty Office chart is the authority) ---------------------

_COE_LIST = (
    "coe.int/en/web/cybercrime/the-budapest-convention, list of Parties (a state of the page after "
    "the accessions of June-July 2024; read from Albania to Kiribati only)"
)
_NL_TREATY_DB = (
    "Netherlands treaty database, Convention on Cybercrime (treatydatabase.overheid.nl 009852), "
    "change log up to 14-01-2026"
)
_TCY_2017 = "T-CY 17th Plenary meeting report, 9 June 2017 (ratifications and accessions welcomed)"
_TCY_NEWS = "coe.int/en/web/cybercrime/tcy news, 2022 (Nigeria: in force 1 November 2022)"
_TRB_2007 = ("Tractatenblad 2007, 10 (zoek.officielebekendmakingen.nl/trb-2007-10): ratified "
             "18-03-2004, in force 01-07-2004")

# Each Party with the source in which it was seen as a Party (not merely a signatory).
PARTY_SOURCES: Mapping[str, str] = MappingProxyType(
    {
        **dict.fromkeys(
            ("AL", "AD", "AR", "AM", "AU", "AT", "AZ", "BE", "BJ", "BA", "BR", "BG", "CV", "CA",
             "CM", "CL", "CO", "CR", "CI", "HR", "CY", "CZ", "DK", "DO", "EE", "FI", "FJ", "FR",
             "GE", "DE", "GH", "GR", "GD", "HU", "IS", "IL", "IT", "JP", "KI"),
            _COE_LIST),
        "MC": _TCY_2017, "SN": _TCY_2017, "TO": _TCY_2017,
        "NG": _TCY_NEWS,
        "LT": _TRB_2007,
        "NL": _NL_TREATY_DB + " (extension to Curacao, 2024)",
        "NO": _NL_TREATY_DB + " (declarations of 10-12-2025)",
        "NZ": _NL_TREATY_DB + " (accession 28-08-2025, in force 01-12-2025)",
        "EC": _NL_TREATY_DB + " (declarations of 04-12-2025; entry into force not read)",
    }
)
# Kept from the earlier list (general knowledge) but not seen as Parties in a source read this
# time: the part of the coe.int list after Kiribati was not in the stored copy.
PARTIES_NOT_RECHECKED = frozenset(
    {
        "LV", "LI", "LU", "MT", "MD", "ME", "MK", "PL", "PT", "RO", "SM", "RS", "SK", "SI",
        "ES", "SE", "CH", "TR", "UA", "GB", "US",
    }
)
PARTIES = frozenset(PARTY_SOURCES) | PARTIES_NOT_RECHECKED
# Signatory, not a Party: the Minister for Justice's written answers to the Dail (9 July 2024,
# 25 March and 8 October 2025, kildarestreet.com / oireachtas.ie) say Ireland "remains fully
# committed to ratification"; Ireland is absent from the coe.int list of Parties read above.
NOT_PARTIES = frozenset({"IE"})
PARTIES_UNVERIFIED = (
    f"Parties to CETS No. 185 (routing hints only): {len(PARTIES_NOT_RECHECKED)} of the "
    f"{len(PARTIES)} listed not re-checked; the Treaty Office chart is the authority."
)


def party_problem_note(country: str) -> str | None:
    """Why `country` may not be a Party, for a warning; None when a source shows it is one."""
    code = country.strip().upper()
    if code in PARTY_SOURCES:
        return None
    if code in NOT_PARTIES:
        return f"{code} has signed the Convention but not ratified it"
    if code in PARTIES_NOT_RECHECKED:
        return (f"{code} is kept in the list of Parties but was not re-checked in an official "
                "source")
    return f"{code} is not in the list of Parties used here"


# --- template items 1-7 (shared by both templates) -----------------------------------------------

_T10 = f"{TCY_2018_10}, item"
_T11 = f"{TCY_2018_11}, item"

# Headings as in T-CY(2018)10, items 1-7 (read). T-CY(2018)11 has the same items 1-6 (read); of
# its item 7 only the words "Investigative/Operational authority" were in the copy read.
_ITEMS = (
    ("t1", "Date"),
    ("t2", "Reference / case number"),
    ("t3", "Request status"),
    ("t4", "Requested authority"),
    ("t5", "Requesting authority"),
    ("t6", "Contact for additional confirmation from the requesting authority"),
    ("t7", "Investigative/operational authority in charge of the case (if different from the "
           "requesting authority)"),
)
_T11_ITEM_7 = "Investigative/operational authority"


def _item_source(template: str, number: str) -> str:
    if template == TCY_2018_10:
        return f"{_T10} {number} ({TCY_2018_10_URL})"
    if number == "7":
        return (f"{_T11} 7 ({TCY_2018_11_URL}; read up to 'Investigative/Operational "
                "authority', the rest of the item was not in the copy read)")
    return f"{_T11} {number} ({TCY_2018_11_URL})"


def template_sections(template: str) -> tuple[Section, ...]:
    """Items 1-7, numbered as in the template (both were read that far)."""
    return tuple(
        Section(key, _T11_ITEM_7 if template == TCY_2018_11 and key == "t7" else heading,
                _item_source(template, key[1:]), True, f"Item {key[1:]}")
        for key, heading in _ITEMS)


def _status_mla(r: RequestInput) -> str:
    return (f"Follow-up to previous request {r.previous_reference}" if r.previous_reference
            else "New request")


def _status_preservation(r: RequestInput) -> str:
    # T-CY(2018)11, item 3: "New request" / "Extension of previous request", "Ticket/reference
    # number of previous request".
    return (f"Extension of previous request; ticket/reference number of previous request: "
            f"{r.previous_reference}" if r.previous_reference else "New request")


def _contact(r: RequestInput) -> str:
    who = ", ".join(p for p in (r.issuing.person, r.issuing.position) if p)
    return f"{who} <{r.issuing.email}>" if who else r.issuing.email


def template_fields(template: str) -> tuple[FieldSpec, ...]:
    mla = template == TCY_2018_10
    first = f"{template}, items 1-6 ({TCY_2018_10_URL if mla else TCY_2018_11_URL})"
    return (
        FieldSpec("date", "Date of the request (UTC)", "t1", True,
                  computed("request.issued_at", lambda r: utc_or_none(r.issued_at)), first),
        FieldSpec("reference", "Reference / case number", "t2", True,
                  computed("request.reference", lambda r: r.reference), first),
        FieldSpec("status", "Status (new request, or follow-up with the previous reference)"
                  if mla else "Status (new request, or extension of a previous request with its "
                  "reference)", "t3", True,
                  computed("request.previous_reference",
                           _status_mla if mla else _status_preservation), first),
        FieldSpec("requested_authority", "Requested authority (24/7 point of contact or central "
                  "authority of the requested Party)", "t4", True, user_field(), first),
        FieldSpec("requesting_authority", "Requesting authority: organisation, person in charge, "
                  "address, phones, email, time zone", "t5", True,
                  computed("settings: issuing authority", lambda r: authority_block(r.issuing),
                           issuing("name")),
                  first),
        FieldSpec("office_hours", "Office hours", "t5", False, issuing_field("office_hours"),
                  first),
        FieldSpec("preferred_channel", "Response preferred by means of", "t5", False,
                  user_field(), first),
        FieldSpec("confirmation_contact", "Name, job title and email of the contact", "t6",
                  True, computed("settings: issuing authority person, position and email",
                                 _contact, issuing("person")), first),
        # T-CY(2018)10 item 7 was read whole; of T-CY(2018)11 item 7, only its first words.
        FieldSpec("investigative_authority", "Investigative/operational authority in charge of "
                  "the case", "t7", False, user_field(), _item_source(template, "7"), mla),
    )
