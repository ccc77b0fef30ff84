"""What the direct requests to (mostly US) providers share: a letter laid out in sections.

Statute text read (December 2026) in a chunked copy of the current United States Code as
published by the Office of the Law Revision Counsel (github.com/codexstanford/
markdonw-chunck-of-the-usa-code, chuncks/title-18/chunck-1539..1541 for section 2702,
chunck-1547 for 2703(f), chunck-1578 for 2711). The copy includes the CLOUD Act amendments of 2018
(2702(b)(9), (c)(7)) and the court-martial clause of 2711(3)(C), so it postdates both. It agrees
word for word, for the paragraphs used here, with a GPO Access quotation of 2703(f) and with a
printed compilation of 2702(b)(8) and (c)(4)-(6). The law.cornell.edu and uscode.house.gov pages
themselves were seen only in part (their opening), so they are cited as the official addresses,
not as what was read.

- 2702(b)(8): a provider may divulge the contents of a communication to a governmental entity if
  it believes in good faith that an emergency involving danger of death or serious physical
  injury to any person requires disclosure without delay of communications relating to the
  emergency. 2702(c)(4): the same for records and other non-content information.
- 2702(c)(6): records and other non-content information may be divulged "to any person other than
  a governmental entity".
- 2711(4): "governmental entity" means a department or agency of the United States or any State or
  political subdivision thereof; a foreign authority is therefore not one, which is why
  (c)(6) lets a provider disclose non-content records to it voluntarily, and why (b)(8)/(c)(4)
  speak of US authorities only: providers answer foreign emergency requests under their own
  policies.
- 2703(f)(1)-(2): on the request of a governmental entity a provider takes all necessary steps to
  preserve records and other evidence in its possession pending a court order or other process;
  they are retained for 90 days, extended for a further 90 days on a renewed request.
"""

from __future__ import annotations

from legal_forms.instruments.base import (
    CATEGORIES,
    PERIOD,
    TARGETS,
    FieldSpec,
    RequestInput,
    Section,
    SourceRef,
    authority_block,
    case_value,
    category_lines,
    channel_text,
    computed,
    date_range_text,
    identifier_lines,
    issuing,
    non_eu_addressee,
    offence_text,
)

USC_2703 = "https://www.law.cornell.edu/uscode/text/18/2703"
USC_2702 = "https://www.law.cornell.edu/uscode/text/18/2702"
USC_COPY = ("US Code text (Office of the Law Revision Counsel) read in the copy "
            "github.com/codexstanford/markdonw-chunck-of-the-usa-code")
S2703 = SourceRef(
    "18 U.S.C. 2703(f) (requirement to preserve evidence)", USC_2703, True,
    f"(f)(1)-(2) read in the {USC_COPY} (title-18 chunck-1547), identical to a GPO Access "
    "quotation: 90 days, extended for an additional 90 days upon a renewed request.",
)
S2702 = SourceRef(
    "18 U.S.C. 2702 (voluntary disclosure of customer communications or records) and 2711(4) "
    "(governmental entity)", USC_2702, True,
    f"(b)(8), (c)(4) and (c)(6) read in the {USC_COPY} (title-18 chunck-1539, -1540; 2711: "
    "chunck-1578), which includes the 2018 CLOUD Act paragraphs (b)(9) and (c)(7).",
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


def addressee(r: RequestInput) -> str | None:
    channel = channel_text(r.platform.channel.name, r.platform.channel.url)
    lines = [non_eu_addressee(r), channel and f"Via: {channel}"]
    return "\n".join(line for line in lines if line) or None


def provider_fields(source: str, *, us: bool = True) -> tuple[FieldSpec, ...]:
    return (
        FieldSpec("addressee", "Addressee", "to", True,
                  computed("platform.non_eu_entities[0], platform.channel", addressee),
                  "platform registry"),
        FieldSpec("identifiers", "Account identifiers", "accounts", True,
                  computed("targets[].identifiers", identifier_lines, TARGETS), source),
        FieldSpec("date_range", "Date range (UTC)", "accounts", True,
                  computed("request.date_range", date_range_text, PERIOD), source),
        FieldSpec("records", "Records", "records", True,
                  computed("request.categories (US mapping)",
                           lambda r: category_lines(r, us=us), CATEGORIES), source),
        FieldSpec("offence", "Offence and provision", "case", True,
                  computed("case.offence, case.offence_provision", offence_text,
                           case_value("offence")),
                  "platform guidelines (e.g. TikTok: offence articles)"),
        FieldSpec("case_reference", "Case reference", "case", True,
                  computed("case.reference", lambda r: r.case.reference,
                           case_value("reference")), "platform guidelines"),
        FieldSpec("non_disclosure", "Request not to notify the user", "confidentiality", False,
                  computed("request.do_not_notify", lambda r: (
                      "Please do not notify the account holder or any other person of this "
                      "request: disclosure could jeopardise the investigation."
                      if r.do_not_notify else "The user may be notified.")), source),
        FieldSpec("requesting_authority", "Requesting authority", "from", True,
                  computed("settings: issuing authority", lambda r: authority_block(r.issuing),
                           issuing("name")),
                  "platform guidelines (official email, direct phone)"),
    )
