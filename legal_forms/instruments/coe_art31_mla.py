"""`coe-art31-mla`: mutual assistance for stored data (subscriber information) under Art. 31 of
the Budapest Convention, laid out as the T-CY(2018)10 template.

Not verified: the template's item numbers and wording (items 1-11 from a secondary source).
"""

from __future__ import annotations

from legal_forms.instruments.base import (
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
    user_field,
)
from legal_forms.instruments.coe_common import (
    CONVENTION,
    CONVENTION_SOURCE,
    PARTIES,
    PARTIES_UNVERIFIED,
    TEMPLATES_SOURCE,
    template_fields,
    template_sections,
)

TEMPLATE = "T-CY(2018)10"
_T = f"{TEMPLATE} (item numbering from a secondary source)"


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
        Section("t8", "Prosecution office or court, with case numbers", _T, False),
        Section("t9", "Previous mutual assistance request", _T, False),
        Section("t10", "Previous preservation request", _T, False),
        Section("t11", "Domestic legal basis", _T, False),
        Section("offence", "Offence and facts", _T, False),
        Section("data", "Data sought", _T, False),
    )
    fields = (
        *template_fields(TEMPLATE),
        FieldSpec("prosecution_office", "Prosecution office or court; case numbers", "t8", True,
                  user_field(), _T, False),
        FieldSpec("previous_mla", "Reference of a previous MLA request", "t9", False,
                  user_field(), _T, False),
        FieldSpec("previous_preservation", "Reference of the preservation request", "t10",
                  False, computed("request.previous_reference", lambda r: r.previous_reference),
                  _T, False),
        FieldSpec("domestic_legal_basis", "Domestic legal basis for the measure", "t11", True,
                  user_field(), _T, False),
        FieldSpec("offence", "Offence", "offence", True, case_field("offence"), _T, False),
        FieldSpec("offence_provision", "Provision", "offence", True,
                  case_field("offence_provision"), _T, False),
        FieldSpec("max_penalty_years", "Maximum penalty (years)", "offence", False,
                  case_field("max_penalty_years"), _T, False),
        FieldSpec("facts", "Summary of the facts", "offence", True, case_field("facts"), _T,
                  False),
        FieldSpec("identifiers", "Accounts concerned", "data", True,
                  computed("targets[].identifiers", identifier_lines), _T, False),
        FieldSpec("categories", "Data sought", "data", True,
                  computed("request.categories (US mapping)",
                           lambda r: category_lines(r, us=True)), _T, False),
        FieldSpec("time_range", "Period (UTC)", "data", True,
                  computed("request.date_range", date_range_text), _T, False),
    )
    sources = (CONVENTION_SOURCE, TEMPLATES_SOURCE)
    unverified = ("T-CY(2018)10 item numbers and wording.", PARTIES_UNVERIFIED)

    def check(self, r: RequestInput) -> list[Problem]:
        problems = identifier_problems(r)
        if DataCategory.CONTENT in r.categories:
            problems.append(Problem(
                "the T-CY(2018)10 template is for subscriber information; ask for content in a "
                "full MLA request", "categories", "warning"))
        if r.issuing.country.upper() not in PARTIES:
            problems.append(Problem(f"{r.issuing.country} is not in the list of Parties used "
                                    "here (unverified)", "issuing_state", "warning"))
        return problems
