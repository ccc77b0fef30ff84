"""What the pages' forms call their fields, for the pages that define those forms and for one
that shows a posted form back to its user by its labels, not its field names (a form kept across
a sign-in, api/ui/kept.py).

The generate-request form's `field.*` inputs are labelled as that form labels them: the kind's
own fields by `legal_forms`, the case's and the authorities' by the mappings here.
"""

from __future__ import annotations

from legal_forms.instruments import INSTRUMENTS

# The case's fields the case forms take, with their labels, in the order shown.
CASE_FIELDS = (
    ("title", "Title"),
    ("offence", "Offence"),
    ("offence_provision", "Statutory provision"),
    ("max_penalty_years", "Maximum penalty (years)"),
    ("facts", "Facts"),
    ("jurisdiction", "Jurisdiction"),
    ("handling_code", "Handling code"),
    ("contact", "Contact"),
)
# The case's values a legal request may state otherwise (`field.offence`, ...).
REQUEST_CASE_FIELDS = {
    "offence": "Offence",
    "offence_provision": "Statutory provision of the offence",
    "max_penalty_years": "Maximum custodial penalty (years)",
    "facts": "Summary of the facts",
}
AUTHORITY_HEADINGS = {"issuing": "Issuing authority", "validating": "Validating authority"}
AUTHORITY_LABELS = {
    "name": "Name",
    "role": "Role (judge, court, investigating_judge, prosecutor, police, other)",
    "country": "Country (ISO 3166-1 code, e.g. DE)",
    "address": "Postal address",
    "phone": "Telephone",
    "email": "Email",
    "time_zone": "Time zone (IANA name, e.g. Europe/Berlin)",
    "person": "Official in charge",
    "position": "Position",
    "file_number": "File number",
    "office_hours": "Office hours",
}
# The other fields of the pages' forms, as their labels say (a name used by several forms
# with different words: the words that fit them all).
FIELD_LABELS = {
    **dict(CASE_FIELDS),
    "reference": "Reference",
    "reason": "Reason",
    "url": "URL",
    "body": "Note",
    "note": "Note",
    "kind": "Kind",
    "rationale": "Rationale",
    "preservation_waiver": "Preservation waiver",
    "every": "Watch every",
    "action": "Action",
    "platform": "Platform",
    "profile_url": "Profile URL",
    "handle": "Handle",
    "platform_account_id": "Platform's account id",
    "target": "Target",
    "target_id": "Target",
    "category": "Data category",
    "date_from": "From (date, UTC)",
    "date_to": "To (date, UTC, the whole day)",
    "notify_user": "The platform may notify the user",
    "emergency": "Emergency",
    "extra": "Other values",
    "status": "Status",
    "from_status": "Status before",
    "at": "When",
    "platform_reference": "Platform's reference",
    "answer": "What the platform answered",
    "refusal": "Reasons for refusing",
    "source": "From",
    "received_at": "Received (UTC)",
    "via": "How",
    "via_detail": "How, in words",
    "fulfil": "Fulfils the request",
    "name": "User name",
    "user": "User name",
    "display_name": "Display name",
    "role": "Role",
    "unit": "Unit",
    "access": "Access",
    "q": "Words",
    "case": "Case",
}
# Inputs that only keep the page's place (which page of a list it showed): not what was typed.
PLACE_FIELDS = frozenset({"captures_cursor", "notes_cursor", "cursor", "show"})
REQUEST_FIELD_PREFIX = "field."


def readable(name: str) -> str:
    """A field's name as words, for a field no form labels: `issuing_state` → 'Issuing state'."""
    words = " ".join(name.replace(".", " ").replace("_", " ").split())
    return words[:1].upper() + words[1:] if words else name


def _request_field(name: str, kind: str | None) -> str:
    instrument = INSTRUMENTS.get(kind or "")
    own = {f.name: f.label for f in instrument.fields} if instrument is not None else {}
    which, _dot, attr = name.partition(".")
    if name in own:
        return own[name]
    if name in REQUEST_CASE_FIELDS:
        return REQUEST_CASE_FIELDS[name]
    if which in AUTHORITY_HEADINGS and attr in AUTHORITY_LABELS:
        return f"{AUTHORITY_HEADINGS[which]}: {AUTHORITY_LABELS[attr]}"
    return readable(name)


def field_label(name: str, *, kind: str | None = None) -> str:
    """The label the form gave the field `name`; `kind`: the legal request's, for `field.*`."""
    if name.startswith(REQUEST_FIELD_PREFIX):
        return _request_field(name[len(REQUEST_FIELD_PREFIX):], kind)
    return FIELD_LABELS.get(name) or readable(name)
