"""`dsa-art9-order`: an order to act against illegal content, Art. 9 of Regulation (EU) 2022/2065.

Verified: the elements of Art. 9(2)(a)(i)-(vi), (b) territorial scope, (c) language and the
provider's point of contact (Art. 11). The DSA does not itself give the power to issue the order
(recital 31): the legal basis is national or other Union law.
"""

from __future__ import annotations

from legal_forms.instruments.base import (
    TARGETS,
    FieldSpec,
    Instrument,
    Problem,
    RequestInput,
    Section,
    authority_block,
    case_value,
    channel_text,
    computed,
    entity_text,
    issuing,
    user_field,
)
from legal_forms.instruments.dsa_common import DSA, DSA_SOURCE, has_exact_urls, urls
from legal_forms.instruments.eu_common import EU_MEMBER_STATES
from legal_forms.platforms import UNKNOWN

ART = f"{DSA}, Art. 9(2)"
# The official languages of the Union (Regulation No 1 of 1958, as amended), by ISO 639-1
# code: an order is in a language the provider declared (Art. 9(2)(c), Art. 11(3)), one of
# them in practice.
LANGUAGE_NAMES = {
    "bg": "Bulgarian", "cs": "Czech", "da": "Danish", "de": "German", "el": "Greek",
    "en": "English", "es": "Spanish", "et": "Estonian", "fi": "Finnish", "fr": "French",
    "ga": "Irish", "hr": "Croatian", "hu": "Hungarian", "it": "Italian", "lt": "Lithuanian",
    "lv": "Latvian", "mt": "Maltese", "nl": "Dutch", "pl": "Polish", "pt": "Portuguese",
    "ro": "Romanian", "sk": "Slovak", "sl": "Slovenian", "sv": "Swedish",
}


def language_names(codes: str) -> str:
    """The codes "en, fr" as "English (en), French (fr)"; anything else is kept as written."""
    named = []
    for part in (p.strip() for p in codes.split(",")):
        name = LANGUAGE_NAMES.get(part.lower())
        named.append(f"{name} ({part.lower()})" if name else part)
    return ", ".join(p for p in named if p)


def _recipient(r: RequestInput) -> str | None:
    p = r.platform
    contact = p.dsa_contact or channel_text(p.channel.name, p.channel.url)
    entity = p.eu_entity if p.eu_entity.name != UNKNOWN else p.non_eu_entities[0]
    lines = [entity_text(entity), contact and f"Point of contact (Art. 11): {contact}"]
    return "\n".join(line for line in lines if line) or None


class DsaArt9Order(Instrument):
    kind = "dsa-art9-order"
    title = "Order to act against illegal content (Art. 9 DSA)"
    legal_basis = f"{DSA}, Art. 9; national legal basis stated below"
    preamble = (
        "The provider is to inform the issuing authority, without undue delay, of any effect "
        "given to this order, specifying if and when effect was given to it (Art. 9(1))."
    )
    sections = (
        Section("to", "Provider and point of contact", f"{ART}(c); Art. 11", True,
                "Art. 9(2)(c)"),
        Section("i", "Legal basis for the order", ART + "(a)(i)", True, "Art. 9(2)(a)(i)"),
        Section("ii", "Statement of reasons", ART + "(a)(ii)", True, "Art. 9(2)(a)(ii)"),
        Section("iii", "Issuing authority", ART + "(a)(iii)", True, "Art. 9(2)(a)(iii)"),
        Section("iv", "Illegal content: exact URLs", ART + "(a)(iv)", True, "Art. 9(2)(a)(iv)"),
        Section("v", "Redress", ART + "(a)(v)", True, "Art. 9(2)(a)(v)"),
        Section("vi", "Authority to receive information on the effect given", ART + "(a)(vi)",
                True, "Art. 9(2)(a)(vi)"),
        Section("b", "Territorial scope", ART + "(b)", True, "Art. 9(2)(b)"),
    )
    fields = (
        FieldSpec("provider", "Provider and point of contact", "to", True,
                  computed("platform.eu_entity, platform.dsa_contact", _recipient), ART + "(c)"),
        FieldSpec("language", "Language of the order", "to", True, computed(
            "platform.languages", lambda r: ", ".join(
                x for x in r.platform.languages if x != UNKNOWN) or None), ART + "(c)",
            shown=language_names),
        FieldSpec("legal_basis", "Legal basis under Union or national law", "i", True,
                  user_field(), ART + "(a)(i)"),
        FieldSpec("reasons", "Why the information is illegal content, by reference to the "
                  "provisions infringed", "ii", True, user_field(), ART + "(a)(ii)"),
        FieldSpec("provisions", "Provision(s) infringed", "ii", True, computed(
            "case.offence_provision", lambda r: r.case.offence_provision,
            case_value("offence_provision")), ART + "(a)(ii)"),
        FieldSpec("issuing_authority", "Issuing authority", "iii", True,
                  computed("settings: issuing authority", lambda r: authority_block(r.issuing),
                           issuing("name")),
                  ART + "(a)(iii)"),
        FieldSpec("urls", "Exact URLs", "iv", True, computed("targets[].url", urls, TARGETS),
                  ART + "(a)(iv)"),
        FieldSpec("redress", "Redress available to the provider and to the recipient who "
                  "provided the content", "v", True, user_field(), ART + "(a)(v)"),
        FieldSpec("effect_to", "Authority to be informed of the effect given", "vi", False,
                  computed("settings: issuing authority email",
                           lambda r: f"{r.issuing.name} <{r.issuing.email}>",
                           issuing("email")), ART + "(a)(vi)"),
        FieldSpec("territorial_scope", "Territorial scope (no more than strictly necessary)",
                  "b", True, user_field(), ART + "(b)"),
    )
    sources = (DSA_SOURCE,)

    def check(self, r: RequestInput) -> list[Problem]:
        problems: list[Problem] = []
        if not has_exact_urls(r):
            problems.append(Problem("every item needs its exact URL (Art. 9(2)(a)(iv))", "urls"))
        if r.issuing.country.upper() not in EU_MEMBER_STATES:
            problems.append(Problem("an Art. 9 order is issued by a judicial or administrative "
                                    "authority of a Member State", "issuing_authority"))
        p = r.platform
        if p.eu_entity.name == UNKNOWN and not p.dsa_contact:
            problems.append(Problem(
                f"the registry knows no EU entity or DSA point of contact for {p.display_name}; "
                "find the provider's Art. 11 point of contact first", "provider", "warning"))
        if r.platform.languages == (UNKNOWN,) and not r.user("language"):
            problems.append(Problem("the provider's declared languages are unknown: state the "
                                    "language used (Art. 9(2)(c))", "language"))
        return problems
