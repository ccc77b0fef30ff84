"""What the direct requests to (mostly US) providers share: a letter laid out in sections."""

from __future__ import annotations

from legal_forms.instruments.base import (
    FieldSpec,
    RequestInput,
    Section,
    SourceRef,
    authority_block,
    category_lines,
    computed,
    date_range_text,
    identifier_lines,
    non_eu_addressee,
)

USC_2703 = "https://www.law.cornell.edu/uscode/text/18/2703"
USC_2702 = "https://www.law.cornell.edu/uscode/text/18/2702"
S2703 = SourceRef(
    "18 U.S.C. 2703(f) (requirement to preserve evidence)", USC_2703, True,
    "Text of (f)(1)-(2) read in quotations of the statute (Volokh Conspiracy, GPO quotation); "
    "90 days, extended by 90 on a renewed request.",
)
S2702 = SourceRef(
    "18 U.S.C. 2702 (voluntary disclosure of customer communications or records)", USC_2702,
    False, "Paragraph letters (b)(8), (c)(4), (c)(6) not read in the current official text.",
)
REGISTRY = SourceRef("Platform registry (legal_forms/platforms.toml) and its sources",
                     "https://github.com/OpenTermsArchive", True)


def provider_sections(kind_source: str) -> tuple[Section, ...]:
    return (
        Section("to", "Addressee", "platform registry: entity and channel", True),
        Section("basis", "Legal basis and request", kind_source, True),
        Section("accounts", "Accounts and identifiers", kind_source, True),
        Section("records", "Records requested", kind_source, True),
        Section("case", "Investigation", "platform guidelines: offence, legal basis", True),
        Section("confidentiality", "Non-disclosure to the user", kind_source, True),
        Section("from", "Requesting authority and contact", "platform guidelines", True),
    )


def addressee(r: RequestInput) -> str:
    channel = r.platform.channel
    via = f"\nVia: {channel.name} <{channel.url}>" if channel.name != "unknown" else ""
    return non_eu_addressee(r) + via


def provider_fields(source: str, *, us: bool = True) -> tuple[FieldSpec, ...]:
    return (
        FieldSpec("addressee", "Addressee", "to", True,
                  computed("platform.non_eu_entities[0], platform.channel", addressee),
                  "platform registry"),
        FieldSpec("identifiers", "Account identifiers", "accounts", True,
                  computed("targets[].identifiers", identifier_lines), source),
        FieldSpec("date_range", "Date range (UTC)", "accounts", True,
                  computed("request.date_range", date_range_text), source),
        FieldSpec("records", "Records", "records", True,
                  computed("request.categories (US mapping)",
                           lambda r: category_lines(r, us=us)), source),
        FieldSpec("offence", "Offence and provision", "case", True,
                  computed("case.offence, case.offence_provision",
                           lambda r: f"{r.case.offence} ({r.case.offence_provision})"),
                  "platform guidelines (e.g. TikTok: offence articles)"),
        FieldSpec("case_reference", "Case reference", "case", True,
                  computed("case.reference", lambda r: r.case.reference), "platform guidelines"),
        FieldSpec("non_disclosure", "Request not to notify the user", "confidentiality", False,
                  computed("request.do_not_notify", lambda r: (
                      "Please do not notify the account holder or any other person of this "
                      "request: disclosure could jeopardise the investigation."
                      if r.do_not_notify else "The user may be notified.")), source),
        FieldSpec("requesting_authority", "Requesting authority", "from", True,
                  computed("settings: issuing authority", lambda r: authority_block(r.issuing)),
                  "platform guidelines (official email, direct phone)"),
    )
