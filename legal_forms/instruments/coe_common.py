"""What the Budapest Convention (CETS No. 185) instruments share."""

from __future__ import annotations

from legal_forms.instruments.base import (
    FieldSpec,
    Section,
    SourceRef,
    authority_block,
    computed,
    issuing_field,
    user_field,
    utc_or_none,
)

CONVENTION = "Convention on Cybercrime (CETS No. 185)"
CONVENTION_URL = "https://www.coe.int/en/web/conventions/full-list?module=treaty-detail&treatynum=185"
CONVENTION_SOURCE = SourceRef(
    CONVENTION, CONVENTION_URL, True,
    "Art. 29(2)(a)-(f) read in copies of the treaty text (Dutch treaty series, Turkish police "
    "site); Art. 29(7) '60 days' from a secondary source.",
)
TEMPLATES_SOURCE = SourceRef(
    "T-CY templates for requests under Articles 29/30 (T-CY(2018)11) and 31 (T-CY(2018)10), "
    "approved at the 19th T-CY plenary, 9 July 2019",
    "https://www.coe.int/fr/web/cybercrime/-/iproceeds-multi-language-templates-for-data-"
    "preservation-request-and-access-to-stored-data", False,
    "Only the approval was verified; the item numbers and fields come from the project's "
    "legal-instruments.md (secondary).",
)

# Parties to CETS No. 185 used for routing hints only: kept from general knowledge, not checked
# against the Treaty Office's chart of signatures and ratifications (unverified). Ireland is
# left out because its status was not confirmed.
PARTIES = frozenset(
    {
        "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "IT", "LV", "LT",
        "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE", "HU", "US", "GB", "CH", "NO",
        "IS", "CA", "JP", "AU", "TR", "UA", "MD", "GE", "AM", "AZ", "AL", "BA", "ME", "MK", "RS",
        "LI", "MC", "AD", "SM",
    }
)
PARTIES_UNVERIFIED = (
    "The list of Parties to CETS No. 185 used for routing (not checked against the Treaty "
    "Office chart)."
)
_T = "T-CY template item (numbering from a secondary source)"


def template_sections(template: str) -> tuple[Section, ...]:
    return (
        Section("t1", "Date", f"{template}, item 1 ({_T})", False),
        Section("t2", "Reference number", f"{template}, item 2 ({_T})", False),
        Section("t3", "Status of the request", f"{template}, item 3 ({_T})", False),
        Section("t4", "Requested authority", f"{template}, item 4 ({_T})", False),
        Section("t5", "Requesting authority", f"{template}, item 5 ({_T})", False),
        Section("t6", "Contact for confirmation", f"{template}, item 6 ({_T})", False),
        Section("t7", "Investigative authority", f"{template}, item 7 ({_T})", False),
    )


def _status(r: object) -> str:
    previous = getattr(r, "previous_reference", None)
    return f"Follow-up / extension of request {previous}" if previous else "New request"


def template_fields(template: str) -> tuple[FieldSpec, ...]:
    s = f"{template} ({_T})"
    return (
        FieldSpec("date", "Date of the request (UTC)", "t1", True,
                  computed("request.issued_at", lambda r: utc_or_none(r.issued_at)),
                  s, False),
        FieldSpec("reference", "Reference number", "t2", True,
                  computed("request.reference", lambda r: r.reference), s, False),
        FieldSpec("status", "Status (new / extension or follow-up, with previous reference)",
                  "t3", True, computed("request.previous_reference", _status), s, False),
        FieldSpec("requested_authority", "Requested authority (24/7 point of contact or central "
                  "authority of the requested Party)", "t4", True, user_field(), s, False),
        FieldSpec("requesting_authority", "Requesting authority: organisation, person in charge, "
                  "address, phones, email, time zone", "t5", True,
                  computed("settings: issuing authority", lambda r: authority_block(r.issuing)),
                  s, False),
        FieldSpec("office_hours", "Office hours", "t5", False, issuing_field("office_hours"),
                  s, False),
        FieldSpec("preferred_channel", "Preferred channel of communication", "t5", False,
                  user_field(), s, False),
        FieldSpec("confirmation_contact", "Contact for the confirmation of receipt", "t6",
                  True, computed("settings: issuing authority email",
                                 lambda r: f"{r.issuing.person} <{r.issuing.email}>".strip()),
                  s, False),
        FieldSpec("investigative_authority", "Investigative authority", "t7", True,
                  user_field(), s, False),
    )
