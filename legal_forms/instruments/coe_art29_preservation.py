"""`coe-art29-preservation`: expedited preservation under Art. 29 of the Budapest Convention,
laid out as the T-CY(2018)11 template (its items 1-7) followed by the contents Art. 29(2)
requires.

Verified in the Convention text (see `coe_common`): Art. 29(2)(a)-(f), printed with their letters,
and Art. 29(7): preservation lasts not less than sixty days so that the request for mutual
assistance can be submitted, and continues after that request is received until it is decided.
Verified in T-CY(2018)11 at rm.coe.int (see `coe_common`): its title, items 1-6 and the number
and first words of item 7. Not verified: the rest of the template after item 7 (the copy read
ends there); the contents of Art. 29(2) follow under the Convention's own letters instead.
"""

from __future__ import annotations

from datetime import datetime

from legal_forms.instruments.base import (
    TARGETS,
    Deadline,
    FieldSpec,
    Instrument,
    Problem,
    RequestInput,
    Section,
    add_days,
    case_value,
    category_lines,
    computed,
    date_range_text,
    eu_addressee,
    identifier_lines,
    identifier_problems,
    issuing,
    non_eu_addressee,
    offence_text,
    period_problems,
    platform_known,
    user_field,
    zone_of,
)
from legal_forms.instruments.coe_common import (
    CONVENTION,
    CONVENTION_SOURCE,
    PARTIES_UNVERIFIED,
    TCY_2018_11,
    TCY_2018_11_SOURCE,
    party_problem_note,
    template_fields,
    template_sections,
)

TEMPLATE = TCY_2018_11
ART = f"{CONVENTION}, Art. 29(2)"
MIN_DAYS = 60  # Art. 29(7): "for a period not less than sixty days" (verified)


def _custodian(r: RequestInput) -> str | None:
    """The operator, then the entity with its address (the operator's name once where the
    entity is the operator), then the EU entity; what the registry does not know left out."""
    entity = non_eu_addressee(r)
    operator = r.platform.operator
    first = entity if not platform_known(operator) or (
        entity or "").startswith(operator) else "; ".join(p for p in (operator, entity) if p)
    eu_entity = eu_addressee(r)
    lines = [first, eu_entity and f"EU entity: {eu_entity}"]
    return "\n".join(line for line in lines if line) or None


def _data(r: RequestInput) -> str:
    parts = [identifier_lines(r), category_lines(r)]
    period = date_range_text(r)
    if period:
        parts.append(f"Period: {period}")
    return "\n".join(p for p in parts if p)


class CoeArt29Preservation(Instrument):
    kind = "coe-art29-preservation"
    title = "Data Preservation Request under Articles 29 and 30 Budapest Convention on Cybercrime"
    legal_basis = f"{CONVENTION}, Art. 29 (and Art. 35: 24/7 Network)"
    preamble = (
        "The requesting authority asks the requested Party to order or otherwise obtain the "
        "expeditious preservation, for not less than sixty days (Art. 29(7)), of the stored "
        "computer data described below, in respect of which it intends to submit a request for "
        "mutual assistance (Art. 29(1))."
    )
    sections = (
        *template_sections(TEMPLATE),
        Section("a", "The authority seeking the preservation", ART + "(a)", True, "Art. 29(2)(a)"),
        Section("b", "The offence and a brief summary of the related facts", ART + "(b)", True,
                "Art. 29(2)(b)"),
        Section("c", "The stored computer data to be preserved and its relationship to the "
                "offence", ART + "(c)", True, "Art. 29(2)(c)"),
        Section("d", "Information identifying the custodian of the stored computer data or the "
                "location of the computer system", ART + "(d)", True, "Art. 29(2)(d)"),
        Section("e", "The necessity of the preservation", ART + "(e)", True, "Art. 29(2)(e)"),
        Section("f", "Intention to submit a request for mutual assistance", ART + "(f)", True,
                "Art. 29(2)(f)"),
    )
    fields = (
        *template_fields(TEMPLATE),
        FieldSpec("seeking_authority", "Authority seeking the preservation", "a", True,
                  computed("settings: issuing authority name and country",
                           lambda r: f"{r.issuing.name} ({r.issuing.country})",
                           issuing("name")), ART + "(a)"),
        FieldSpec("offence", "Offence", "b", True, computed(
            "case.offence + case.offence_provision", offence_text,
            case_value("offence")), ART + "(b)"),
        FieldSpec("facts", "Brief summary of the facts", "b", True,
                  computed("case.facts", lambda r: r.case.facts, case_value("facts")), ART + "(b)"),
        FieldSpec("data", "Data to be preserved", "c", True,
                  computed("targets[].identifiers, request.categories, request.date_range",
                           _data, TARGETS), ART + "(c)"),
        FieldSpec("relationship", "Relationship of the data to the offence", "c", True,
                  user_field(), ART + "(c)"),
        FieldSpec("custodian", "Custodian / location of the computer system", "d", True,
                  computed("platform.operator, platform entities", _custodian), ART + "(d)"),
        FieldSpec("necessity", "Why preservation is necessary", "e", True, user_field(),
                  ART + "(e)"),
        FieldSpec("mla_intention", "Statement that a mutual assistance request will follow",
                  "f", True, user_field(), ART + "(f)"),
    )
    sources = (CONVENTION_SOURCE, TCY_2018_11_SOURCE)
    unverified = (
        "T-CY(2018)11 after item 7 (and the rest of item 7's heading) was not in the copy read: "
        "what Art. 29(2) requires follows under the Convention's letters, not the template's "
        "numbers.",
        PARTIES_UNVERIFIED,
    )

    def check(self, r: RequestInput) -> list[Problem]:
        problems = identifier_problems(r) + period_problems(r)
        statement = r.user("mla_intention").lower()
        if statement and not any(w in statement for w in ("mutual", "mla", "assistance")):
            problems.append(Problem(
                "the statement must say that a request for mutual assistance will be submitted "
                f"({ART}(f))", "mla_intention"))
        note = party_problem_note(r.issuing.country)
        if note:
            problems.append(Problem(f"{note}: check the Treaty Office chart of signatures and "
                                    "ratifications of CETS No. 185", "issuing_state", "warning"))
        return problems

    def deadlines(self, r: RequestInput, sent_at: datetime) -> tuple[Deadline, ...]:
        return (Deadline("mutual assistance request due before preservation may end",
                         add_days(sent_at, MIN_DAYS, zone_of(r.issuing.time_zone)),
                         f"{CONVENTION}, Art. 29(7)",
                         "Preservation lasts not less than sixty days, counted here from sending; "
                         "once the request for mutual assistance is received, the data stay "
                         "preserved until it is decided."),)
