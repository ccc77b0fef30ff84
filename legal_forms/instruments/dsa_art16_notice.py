"""`dsa-art16-notice`: a notice of illegal content through a hosting provider's notice and
action mechanism, Art. 16 of Regulation (EU) 2022/2065. Anyone may send one; it is judged by the
provider and creates actual knowledge (Art. 16(3)).

Verified: the elements of Art. 16(2)(a)-(d), including the exception in (c): name and email may
be left out only for offences under Articles 3 to 7 of Directive 2011/93/EU (child sexual abuse
and exploitation), which smuggling adverts are not.
"""

from __future__ import annotations

from legal_forms.instruments.base import (
    TARGETS,
    FieldSpec,
    Instrument,
    Problem,
    RequestInput,
    Section,
    case_value,
    computed,
    issuing,
    user_field,
)
from legal_forms.instruments.dsa_common import DSA, DSA_SOURCE, has_exact_urls, urls

ART = f"{DSA}, Art. 16(2)"
GOOD_FAITH = ("I confirm my bona fide belief that the information and allegations contained in "
              "this notice are accurate and complete.")


def _sender_name(r: RequestInput) -> str:
    return f"{r.issuing.person}, {r.issuing.name}" if r.issuing.person else r.issuing.name


class DsaArt16Notice(Instrument):
    kind = "dsa-art16-notice"
    title = "Notice of illegal content (Art. 16 DSA)"
    legal_basis = f"{DSA}, Art. 16"
    preamble = ("Notice submitted through the provider's notice and action mechanism. "
                "Please confirm receipt to the email address below (Art. 16(4)).")
    sections = (
        Section("a", "Explanation of why the information is illegal content", ART + "(a)", True,
                "Art. 16(2)(a)"),
        Section("b", "Exact electronic location", ART + "(b)", True, "Art. 16(2)(b)"),
        Section("c", "Name and email address of the sender", ART + "(c)", True, "Art. 16(2)(c)"),
        Section("d", "Statement of good faith", ART + "(d)", True, "Art. 16(2)(d)"),
    )
    fields = (
        FieldSpec("explanation", "Substantiated explanation", "a", True, user_field(),
                  ART + "(a)"),
        FieldSpec("provisions", "Provision(s) infringed", "a", False, computed(
            "case.offence_provision", lambda r: r.case.offence_provision,
            case_value("offence_provision")), ART + "(a)"),
        FieldSpec("urls", "Exact URL(s)", "b", True, computed("targets[].url", urls, TARGETS),
                  ART + "(b)"),
        FieldSpec("sender_name", "Name", "c", False,
                  computed("settings: issuing authority person and name", _sender_name,
                           issuing("person")),
                  ART + "(c)"),
        FieldSpec("sender_email", "Email address", "c", False, computed(
            "settings: issuing authority email", lambda r: r.issuing.email,
            issuing("email")), ART + "(c)"),
        FieldSpec("good_faith", "Statement of bona fide belief", "d", True,
                  computed("fixed text; override with --field good_faith=...",
                           lambda r: GOOD_FAITH), ART + "(d)"),
    )
    sources = (DSA_SOURCE,)
    # Submitted through the provider's mechanism "exclusively by electronic means" (Art. 16(1)),
    # with the sender's name and email (Art. 16(2)(c)) and no signature among its elements.
    signed = False

    def check(self, r: RequestInput) -> list[Problem]:
        problems: list[Problem] = []
        if not has_exact_urls(r):
            problems.append(Problem("every item needs its exact URL (Art. 16(2)(b))", "urls"))
        csam = r.user("directive_2011_93_offence").lower() in ("yes", "true", "1")
        values = self.values(r)
        if not csam:
            if not values["sender_name"]:
                problems.append(Problem("the sender's name is required (Art. 16(2)(c)); it may "
                                        "be left out only for offences under Articles 3 to 7 of "
                                        "Directive 2011/93/EU", "sender_name"))
            if "@" not in values["sender_email"]:
                problems.append(Problem("the sender's email address is required "
                                        "(Art. 16(2)(c))", "sender_email"))
        statement = values["good_faith"].lower()
        if statement and not ("bona fide" in statement or "good faith" in statement):
            problems.append(Problem("the statement must confirm the sender's bona fide belief "
                                    "that the notice is accurate and complete (Art. 16(2)(d))",
                                    "good_faith"))
        return problems
