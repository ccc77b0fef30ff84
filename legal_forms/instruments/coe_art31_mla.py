"""`coe-art31-mla`: mutual assistance for stored data (subscriber information) under Art. 31 of
the Budapest Convention, laid out as the T-CY(2018)10 template.

Verified: items 1-11 of T-CY(2018)10 (numbers and headings), read in the template at rm.coe.int
(see `coe_common`), and Art. 31(1) of the Convention. Not verified: the items after 11 (offence,
facts, data sought) were not in the copy read; they are printed by heading only, without numbers.
"""

from __future__ import annotations

from legal_forms.instruments.base import (
    CATEGORIES,
    PERIOD,
    TARGETS,
    DataCategory,
    FieldSpec,
    Instrument,
    Problem,
    RequestInput,
    Section,
    case_field,
    category_lines,
    computed,
    date_range_text,
    identifier_lines,
    identifier_problems,
    period_problems,
    user_field,
)
from legal_forms.instruments.coe_common import (
    CONVENTION,
    CONVENTION_SOURCE,
    PARTIES_UNVERIFIED,
    TCY_2018_10,
    TCY_2018_10_SOURCE,
    TCY_2018_10_URL,
    party_problem_note,
    template_fields,
    template_sections,
)

TEMPLATE = TCY_2018_10
_T = f"{TEMPLATE}, items after 11 (not in the copy read; heading only)"


def _item(n: int) -> str:
    return f"{TEMPLATE}, item {n} ({TCY_2018_10_URL})"


def _previous_preservation(r: RequestInput) -> str | None:
    if not r.previous_reference:
        return None
    sent = (f", sent {r.previous_issued_at.strftime('%Y-%m-%d')}" if r.previous_issued_at
            else "")
    return f"{r.previous_reference}{sent}"


class CoeArt31Mla(Instrument):
    kind = "coe-art31-mla"
    title = "Request for mutual assistance: subscriber information (Art. 31)"
    legal_basis = f"{CONVENTION}, Art. 31 (with Art. 25 and 27)"
    preamble = (
        "The requesting authority asks the requested Party to search or similarly access, seize "
        "or similarly secure, and disclose the stored data described below (Art. 31(1))."
    )
    sections = (
        *template_sections(TEMPLATE),
        Section("t8", "Prosecution office or court in charge (if applicable)", _item(8), True,
                "Item 8"),
        Section("t9", "Information on previous MLA request (if applicable)", _item(9), True,
                "Item 9"),
        Section("t10", "Information on previous preservation request (if applicable)",
                _item(10), True, "Item 10"),
        Section("t11", "Domestic legal basis for the request", _item(11), True, "Item 11"),
        Section("offence", "Offence and facts", _T, False),
        Section("data", "Data sought", _T, False),
    )
    fields = (
        *template_fields(TEMPLATE),
        FieldSpec("prosecution_office", "Prosecution office or court in charge, with case "
                  "numbers and related decisions", "t8", False, user_field(), _item(8)),
        FieldSpec("previous_mla", "Date and reference of the previous MLA request; authorities "
                  "and channel", "t9", False, user_field(), _item(9)),
        FieldSpec("previous_preservation", "Date and reference of the preservation request",
                  "t10", False, computed("request.previous_reference, previous_issued_at",
                                         _previous_preservation), _item(10)),
        FieldSpec("domestic_legal_basis", "Domestic legal basis for the request", "t11", True,
                  user_field(), _item(11)),
        FieldSpec("offence", "Offence", "offence", True, case_field("offence"), _T, False),
        FieldSpec("offence_provision", "Provision", "offence", True,
                  case_field("offence_provision"), _T, False),
        FieldSpec("max_penalty_years", "Maximum penalty (years)", "offence", False,
                  case_field("max_penalty_years"), _T, False),
        FieldSpec("facts", "Summary of the facts", "offence", True, case_field("facts"), _T,
                  False),
        FieldSpec("identifiers", "Accounts concerned", "data", True,
                  computed("targets[].identifiers", identifier_lines, TARGETS), _T, False),
        FieldSpec("categories", "Data sought", "data", True,
                  computed("request.categories (US mapping)",
                           lambda r: category_lines(r, us=True), CATEGORIES), _T, False),
        FieldSpec("time_range", "Period (UTC)", "data", True,
                  computed("request.date_range", date_range_text, PERIOD), _T, False),
    )
    sources = (CONVENTION_SOURCE, TCY_2018_10_SOURCE)
    unverified = (
        "T-CY(2018)10 items after 11 (offence, facts, data sought) not in the copy read: given "
        "by heading only, without numbers.",
        PARTIES_UNVERIFIED,
    )

    def check(self, r: RequestInput) -> list[Problem]:
        problems = identifier_problems(r) + period_problems(r)
        if DataCategory.CONTENT in r.categories:
            problems.append(Problem(
                "the T-CY(2018)10 template is for subscriber information; ask for content in a "
                "full MLA request", "categories", "warning"))
        note = party_problem_note(r.issuing.country)
        if note:
            problems.append(Problem(f"{note}: check the Treaty Office chart of signatures and "
                                    "ratifications of CETS No. 185", "issuing_state", "warning"))
        return problems
