"""`eu-epoc-pr`: European Preservation Order Certificate, Annex II to Regulation (EU) 2023/1543.

Marked verified (recorded by an earlier check as read in the official text; re-read on 3 Dec 2026
only in unofficial reproductions, which agree): the Annex's opening words and the heading of
Section A; Art. 11(1) (60 days, extension by an additional 30 days with Annex VI, or until
production once a subsequent production request is confirmed with Annex V); Art. 4(1)-(2).

Not verified (the official text was looked for again on 5 Dec 2026 and still ends in the
recitals): the letters and headings of the Annex's later sections (no copy of the Annex was
reached past Section A, so those sections are printed by heading only, in the order of Annex I);
Art. 4(3) on who may issue a preservation order (no copy reached that paragraph); the recitals on
Denmark and Ireland. Problems shown to a user cite Art. 4(3) as the rule; the doubt about its
source is stated in `unverified`.
"""

from __future__ import annotations

from datetime import datetime

from legal_forms.instruments.base import (
    CATEGORIES,
    PERIOD,
    TARGETS,
    Deadline,
    FieldSpec,
    Instrument,
    Problem,
    RequestInput,
    Section,
    add_days,
    authority_block,
    case_field,
    category_lines,
    computed,
    date_range_text,
    eu_addressee,
    identifier_lines,
    identifier_problems,
    issuing,
    issuing_field,
    period_problems,
    user_field,
    validating,
    validating_field,
    zone_of,
)
from legal_forms.instruments.eu_common import (
    DENMARK_SOURCE,
    IRELAND_SOURCE,
    PARTICIPATION_UNVERIFIED,
    REG,
    REG_SOURCE,
    REPRODUCTIONS_SOURCE,
    addressee_problems,
    authority_problems,
    issuing_state_problems,
)

ANNEX = f"{REG}, Annex II"
PRESERVE_DAYS = 60  # Art. 11(1)
EXTENSION_DAYS = 30  # Art. 11(1), Annex VI
# Art. 11(1): "The obligation to preserve the data shall cease after 60 days, unless [...]. During
# that 60-day period, the issuing authority may, using the form set out in Annex VI, extend the
# duration of the obligation to preserve the data by an additional 30-day period": one
# extension (re-read in December 2026 in an unofficial reproduction of the Article).
RENEWALS = 1
RENEWAL_LIMIT = ("Regulation (EU) 2023/1543, Art. 11(1) allows one extension: the obligation to "
                 "preserve \"shall cease after 60 days\", and \"during that 60-day period\" the "
                 "issuing authority may extend it \"by an additional 30-day period\"")

PREAMBLE = (
    f"Under {REG} the addressee of this European Preservation Order Certificate (EPOC-PR) must, "
    "without undue delay after receiving the EPOC-PR, preserve the data requested. The "
    "preservation must cease after 60 days, unless extended by the issuing authority by an "
    "additional 30 days, or the issuing authority confirms that a subsequent request for "
    "production has been issued. If the issuing authority confirms within those time periods that "
    "a subsequent request for production has been issued, the addressee must preserve the data "
    "for as long as necessary to produce the data once the subsequent request for production is "
    "received. The addressee must take necessary measures to ensure the confidentiality, secrecy "
    "and integrity of the EPOC-PR and of the data preserved."
)

_U = "heading from a secondary outline of Annex I; letter not verified"


def eu_sections(annex: str) -> tuple[Section, ...]:
    return (
        Section("A", "Issuing/validating authority", f"{annex}, Section A", True, "Section A"),
        Section("addressee", "Addressee", f"{annex} ({_U})", False),
        Section("earlier", "Link to earlier orders", f"{annex} ({_U})", False),
        Section("data_id", "Identifiers of the data", f"{annex} ({_U})", False),
        Section("categories", "Data requested", f"{annex}; categories of Art. 3(9)-(12)", False),
        Section("offence", "Offence", f"{annex}; Art. 5 ({_U})", False),
        Section("issuing_details", "Details of the issuing authority", f"{annex} ({_U})", False),
        Section("validating_details", "Details of the validating authority",
                f"{annex} ({_U})", False),
    )


def eu_fields(annex: str) -> tuple[FieldSpec, ...]:
    return (
        FieldSpec("issuing_state", "Issuing State", "A", True, issuing_field("country"),
                  f"{annex}, Section A"),
        FieldSpec("issuing_authority", "Issuing authority", "A", True, issuing_field("name"),
                  f"{annex}, Section A"),
        FieldSpec("validating_authority", "Validating authority (where applicable)", "A", False,
                  validating_field("name"), f"{annex}, Section A"),
        FieldSpec("issuing_file_number", "File number of the issuing authority", "A", True,
                  issuing_field("file_number"), f"{annex}, Section A"),
        FieldSpec("validating_file_number", "File number of the validating authority", "A",
                  False, validating_field("file_number"), f"{annex}, Section A"),
        FieldSpec("addressee", "Addressee", "addressee", True,
                  computed("platform.eu_entity (name, address)", eu_addressee),
                  f"{annex}; Art. 7", False),
        FieldSpec("addressee_type", "Designated establishment or legal representative",
                  "addressee", True, user_field(), f"{annex}; Directive (EU) 2023/1544", False),
        FieldSpec("earlier_order", "Earlier order (reference)", "earlier", False,
                  computed("request.previous_reference", lambda r: r.previous_reference),
                  annex, False),
        FieldSpec("identifiers", "User ID, username or other identifiers", "data_id", True,
                  computed("targets[].identifiers (kind, value, url)", identifier_lines, TARGETS),
                  annex, False),
        FieldSpec("service", "Service concerned", "data_id", True,
                  computed("platform.services", lambda r: ", ".join(r.platform.services)
                           or r.platform.display_name), annex, False),
        FieldSpec("time_range", "Time range (UTC)", "data_id", False,
                  computed("request.date_range", date_range_text, PERIOD), annex, False),
        FieldSpec("categories", "Data categories", "categories", True,
                  computed("request.categories", category_lines, CATEGORIES),
                  f"{REG}, Art. 3(9)-(12)", True),
        FieldSpec("offence", "Nature and legal classification of the offence", "offence", True,
                  case_field("offence"), f"{annex}; Art. 5", False),
        FieldSpec("offence_provision", "Applicable statutory provision", "offence", True,
                  case_field("offence_provision"), f"{annex}; Art. 5", False),
        FieldSpec("max_penalty_years", "Maximum penalty (years of custody)", "offence", False,
                  case_field("max_penalty_years"), f"{REG}, Art. 5(4)", False),
        FieldSpec("facts", "Summary of the facts", "offence", True, case_field("facts"),
                  annex, False),
        FieldSpec("issuing_details", "Issuing authority (name, contact, time zone)",
                  "issuing_details", True,
                  computed("settings: issuing authority", lambda r: authority_block(r.issuing),
                           issuing("name")),
                  annex, False),
        FieldSpec("validating_details", "Validating authority (name, contact)",
                  "validating_details", False,
                  computed("settings: validating authority",
                           lambda r: authority_block(r.validating),
                           validating("name")), annex, False),
    )


class EuEpocPr(Instrument):
    kind = "eu-epoc-pr"
    title = "European Preservation Order Certificate (EPOC-PR)"
    legal_basis = f"{REG}, Art. 6 and 11; form in Annex II"
    preamble = PREAMBLE
    sections = eu_sections(ANNEX)
    fields = eu_fields(ANNEX)
    sources = (REG_SOURCE, REPRODUCTIONS_SOURCE, DENMARK_SOURCE, IRELAND_SOURCE)
    unverified = (
        "Annex II section letters and headings after Section A: no copy of the Annex was read "
        "past Section A, so the later sections are printed without letters, with headings in "
        "the order of Annex I.",
        "Art. 4(3): that a preservation order, for any category of data, is issued by a judge, "
        "a court, an investigating judge or a prosecutor, or validated by one, comes from "
        "secondary sources (a legal commentary; Art. 3(2) in an unofficial reproduction refers "
        "preservation orders to Art. 4(3)-(5)); the paragraph's own words were not reached in "
        "the official text or any copy (Art. 4(1)-(2) verified).",
        PARTICIPATION_UNVERIFIED,
    )
    has_validating_authority = True
    max_renewals = RENEWALS
    renewal_limit = RENEWAL_LIMIT

    def check(self, r: RequestInput) -> list[Problem]:
        problems = issuing_state_problems(r) + addressee_problems(r)
        problems += authority_problems(r, preservation=True) + identifier_problems(r)
        problems += period_problems(r)
        if not r.categories:
            problems.append(Problem("name at least one data category", "categories"))
        return problems

    def preservation_end(self, r: RequestInput, sent_at: datetime) -> datetime:
        return add_days(sent_at, PRESERVE_DAYS, zone_of(r.issuing.time_zone))

    def deadlines(self, r: RequestInput, sent_at: datetime) -> tuple[Deadline, ...]:
        zone = zone_of(r.issuing.time_zone)
        end = self.preservation_end(r, sent_at)
        return (
            Deadline("preservation ends unless extended or production confirmed", end,
                     f"{REG}, Art. 11(1)",
                     "Confirm a subsequent production request (Annex V) or extend (Annex VI) "
                     "before this time."),
            Deadline("preservation ends if extended once", add_days(end, EXTENSION_DAYS, zone),
                     f"{REG}, Art. 11(1), Annex VI"),
        )
