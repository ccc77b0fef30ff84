"""`eu-epoc`: European Production Order Certificate, Annex I to Regulation (EU) 2023/1543.

Marked verified (recorded by an earlier check as read in the official text; re-read on 3 Dec 2026
only in unofficial reproductions, which agree): the Annex's opening, which names Sections C
(deadlines), I and J (details of the issuing and validating authority) and point (a) of Section L
(the authority the data go to); the headings of Sections A (issuing/validating authority) and
B (addressee); Art. 4(1)-(2) (who issues); Art. 10 (10 days from receipt, 8 hours in emergencies;
enforcing authority 10 days, or 96 hours from its notification in emergencies).

Not verified (the official text was looked for again on 5 Dec 2026 and still ends in the
recitals): the letters of the other sections (no copy of the Annex was reached past Section B, so
they are printed by heading only); Art. 5(4) past its first words (the 3-year threshold and the
listed offences come from secondary sources, among them the Council Presidency's note on the
proposal, 15020/18 of 30 Nov 2018, which describes the same threshold for the draft); the recitals
on Denmark and Ireland. Problems shown to a user cite Art. 5(4)
as the rule; the doubt about its source is stated in `unverified`.
"""

from __future__ import annotations

from datetime import datetime

from legal_forms.instruments.base import (
    DataCategory,
    Deadline,
    FieldSpec,
    Instrument,
    Problem,
    RequestInput,
    Section,
    add_days,
    add_hours,
    computed,
    identifier_problems,
    issuing,
    period_problems,
    user_field,
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
from legal_forms.instruments.eu_epoc_pr import eu_fields, eu_sections

ANNEX = f"{REG}, Annex I"
PRODUCE_DAYS = 10  # Art. 10(3)
EMERGENCY_HOURS = 8  # Art. 10(4)
ENFORCING_DAYS = 10  # Art. 10(2)
ENFORCING_EMERGENCY_HOURS = 96  # Art. 10(4)
MIN_PENALTY_YEARS = 3  # Art. 5(4)

PREAMBLE = (
    f"Under {REG} the addressee of this European Production Order Certificate (EPOC) must "
    "execute this EPOC and must transmit the requested data in accordance with the deadline(s) "
    "specified in Section C of this EPOC to the competent authority indicated under point (a) of "
    "Section L of this EPOC. In all cases, the addressee must, upon receipt of the EPOC, act "
    "expeditiously to preserve the data requested, unless the information in the EPOC does not "
    "allow it to identify those data. The data must continue to be preserved until the data are "
    "produced or until the issuing authority or, where applicable, the enforcing authority, "
    "indicates that it is no longer necessary to preserve and produce the data. The addressee "
    "must take the necessary measures to ensure the confidentiality, secrecy and integrity of the "
    "EPOC and of the data produced or preserved."
)


def _strict(r: RequestInput) -> bool:
    return bool(r.categories & {DataCategory.TRAFFIC, DataCategory.CONTENT})


def _deadline_text(r: RequestInput) -> str:
    if r.emergency:
        return ("Emergency case: without undue delay, at the latest within 8 hours of receipt "
                "(Art. 10(4)).")
    return "At the latest within 10 days of receipt (Art. 10(3))."


def _sections() -> tuple[Section, ...]:
    base = eu_sections(ANNEX)
    verified = {
        "addressee": Section("addressee", "Addressee", f"{ANNEX}, Section B", True, "Section B"),
        "issuing_details": Section("issuing_details", "Details of the issuing authority",
                                   f"{ANNEX}, Section I", True, "Section I"),
        "validating_details": Section("validating_details", "Details of the validating authority",
                                      f"{ANNEX}, Section J", True, "Section J"),
    }
    out = [verified.get(s.key, s) for s in base]
    out.insert(2, Section("C", "Deadlines", f"{ANNEX}, Section C; Art. 10", True, "Section C"))
    out.insert(-2, Section("user_info", "Information to the user", f"{ANNEX}; Art. 13",
                           False))
    out.insert(-2, Section("enforcing", "Notification of the enforcing authority",
                           f"{ANNEX}; Art. 8", False))
    out.append(Section("L", "Transfer of the data", f"{ANNEX}, Section L, point (a)", True,
                       "Section L"))
    return tuple(out)


class EuEpoc(Instrument):
    kind = "eu-epoc"
    title = "European Production Order Certificate (EPOC)"
    legal_basis = f"{REG}, Art. 5, 9 and 10; form in Annex I"
    preamble = PREAMBLE
    sections = _sections()
    fields = (
        *eu_fields(ANNEX),
        FieldSpec("deadline", "Deadline for producing the data", "C", True,
                  computed("request.emergency (10 days or 8 hours)", _deadline_text),
                  f"{ANNEX}, Section C; Art. 10(3)-(4)"),
        FieldSpec("emergency_reasons", "Reasons for the emergency", "C", False, user_field(),
                  f"{REG}, Art. 3(18), 10(4)", False),
        FieldSpec("listed_offence", "Listed offence under Art. 5(4), if any", "offence",
                  False, user_field(), f"{REG}, Art. 5(4)", False),
        FieldSpec("user_information", "Information to the user / reasons for delaying it",
                  "user_info", False, user_field(), f"{REG}, Art. 13", False),
        FieldSpec("enforcing_authority", "Enforcing authority notified", "enforcing", False,
                  user_field(), f"{REG}, Art. 8", False),
        FieldSpec("transfer_to", "Authority to which the data are to be transferred", "L", True,
                  computed("settings: issuing authority name and email",
                           lambda r: f"{r.issuing.name} <{r.issuing.email}>", issuing("name")),
                  f"{ANNEX}, Section L, point (a)"),
    )
    sources = (REG_SOURCE, REPRODUCTIONS_SOURCE, DENMARK_SOURCE, IRELAND_SOURCE)
    unverified = (
        "Annex I section letters other than A, B, C, I, J and L: no copy of the Annex was read "
        "past Section B, so those sections are printed without letters.",
        "Art. 5(4): that traffic data (other than data requested only to identify the user) and "
        "content data may be ordered only for offences punishable by a maximum custodial "
        "sentence of at least 3 years or for listed offences comes from a secondary source; "
        "only the paragraph's first words were read, in an unofficial reproduction.",
        PARTICIPATION_UNVERIFIED,
    )
    has_validating_authority = True

    def check(self, r: RequestInput) -> list[Problem]:
        problems = issuing_state_problems(r) + addressee_problems(r)
        problems += authority_problems(r, preservation=False) + identifier_problems(r)
        problems += period_problems(r)
        if not r.categories:
            problems.append(Problem("name at least one data category", "categories"))
        if _strict(r):
            years = r.case.max_penalty_years
            if (years is None or years < MIN_PENALTY_YEARS) and not r.user("listed_offence"):
                problems.append(Problem(
                    "traffic or content data may be ordered only for an offence punishable by a "
                    "maximum custodial sentence of at least 3 years or a listed offence "
                    f"({REG}, Art. 5(4)); maximum given: "
                    f"{'none' if years is None else f'{years:g} years'}", "max_penalty_years"))
            if not r.user("enforcing_authority"):
                problems.append(Problem(
                    "an EPOC for traffic or content data is notified to the enforcing authority "
                    f"unless Art. 8(2) applies ({REG}, Art. 8): name it or state the exception",
                    "enforcing_authority"))
        if r.emergency and not r.user("emergency_reasons"):
            problems.append(Problem("an emergency EPOC must give the reasons for the emergency",
                                    "emergency_reasons"))
        return problems

    def deadlines(self, r: RequestInput, sent_at: datetime) -> tuple[Deadline, ...]:
        zone = zone_of(r.issuing.time_zone)
        if r.emergency:
            due = add_hours(sent_at, EMERGENCY_HOURS)
            out = [Deadline("data due (emergency)", due, f"{REG}, Art. 10(4)")]
            if _strict(r):
                out.append(Deadline("enforcing authority may object until",
                                    add_hours(sent_at, ENFORCING_EMERGENCY_HOURS),
                                    f"{REG}, Art. 10(4)"))
            return tuple(out)
        out = [Deadline("data due", add_days(sent_at, PRODUCE_DAYS, zone), f"{REG}, Art. 10(3)",
                        "Counted from receipt; the sending time is used as the receipt time.")]
        if _strict(r):
            out.append(Deadline("enforcing authority's grounds for refusal until",
                                add_days(sent_at, ENFORCING_DAYS, zone), f"{REG}, Art. 10(2)"))
        return tuple(out)
