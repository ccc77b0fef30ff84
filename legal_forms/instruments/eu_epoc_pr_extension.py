"""`eu-epoc-pr-extension`: extending an EPOC-PR by 30 days, Annex VI to Regulation (EU) 2023/1543.

Verified: Art. 11(1) - during the 60-day preservation period the issuing authority may, using the
form in Annex VI, extend the obligation to preserve by an additional 30 days where needed to
allow a subsequent request for production (recorded by an earlier check as read in the official
text; re-read on 3 Dec 2026 in unofficial reproductions, which agree).

Not verified: Annex VI itself. No copy of the Annex (official or not) was reached, so its title,
section letters and headings are unknown: the title and headings here are descriptive, printed
without letters, and marked unverified. Looked for again on 5 Dec 2026: the official text still
ends in the recitals, and no reproduction reached shows Annex VI.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime

from evidence.times import to_the_second
from legal_forms.instruments.base import (
    Deadline,
    FieldSpec,
    Instrument,
    Problem,
    RequestInput,
    Section,
    add_days,
    authority_block,
    computed,
    eu_addressee,
    identifier_lines,
    issuing,
    issuing_field,
    utc_or_none,
    zone_of,
)
from legal_forms.instruments.eu_common import (
    REG,
    REG_SOURCE,
    REPRODUCTIONS_SOURCE,
    addressee_problems,
)
from legal_forms.instruments.eu_epoc_pr import EXTENSION_DAYS, PRESERVE_DAYS

ANNEX = f"{REG}, Annex VI"
_U = "descriptive heading; Annex VI was not reached in any copy"


def extension_of(original: RequestInput, *, reference: str,
                 issued_at: datetime | None = None) -> RequestInput:
    """The Annex VI extension of an EPOC-PR, carrying the original's case, parties and data."""
    ends = (None if original.issued_at is None
            else add_days(original.issued_at, PRESERVE_DAYS, zone_of(original.issuing.time_zone)))
    return dataclasses.replace(
        original, kind=EuEpocPrExtension.kind, reference=reference, issued_at=issued_at,
        previous_reference=original.reference, previous_issued_at=original.issued_at,
        previous_ends_at=ends,
    )


def current_end(r: RequestInput) -> datetime | None:
    """When the EPOC-PR's 60 days end: the extension's 30 days run on from there."""
    if r.previous_ends_at is not None:
        return r.previous_ends_at
    if r.previous_issued_at is None:
        return None
    return add_days(r.previous_issued_at, PRESERVE_DAYS, zone_of(r.issuing.time_zone))


def new_end(r: RequestInput) -> datetime | None:
    end = current_end(r)
    return None if end is None else add_days(end, EXTENSION_DAYS, zone_of(r.issuing.time_zone))


def sent_too_late(r: RequestInput, sent_at: datetime) -> bool:
    """Sent once the 60 days had ended: Art. 11(1) allows the extension only during them."""
    end = current_end(r)
    return end is not None and sent_at >= end


def _original_end(r: RequestInput) -> str | None:
    end = current_end(r)
    return None if end is None else to_the_second(end)


def _new_end(r: RequestInput) -> str | None:
    end = new_end(r)
    return None if end is None else to_the_second(end)


class EuEpocPrExtension(Instrument):
    kind = "eu-epoc-pr-extension"
    # Descriptive: the official title of the Annex VI form was not reached.
    title = "Extension of an EPOC-PR by 30 days (form of Annex VI)"
    legal_basis = f"{REG}, Art. 11(1); form in Annex VI"
    preamble = (
        "The issuing authority extends, by an additional 30 days, the obligation to preserve the "
        f"data requested by the EPOC-PR identified below ({REG}, Art. 11(1)), where necessary "
        "to allow for the issuing of a subsequent request for production."
    )
    sections = (
        Section("authority", "Issuing authority", f"{ANNEX} ({_U})", False),
        Section("addressee", "Addressee", f"{ANNEX} ({_U})", False),
        Section("original", "EPOC-PR concerned", f"{ANNEX} ({_U})", False),
        Section("extension", "Extension", f"{REG}, Art. 11(1)", True),
    )
    fields = (
        FieldSpec("issuing_authority", "Issuing authority (name, contact)", "authority", True,
                  computed("settings: issuing authority", lambda r: authority_block(r.issuing),
                           issuing("name")),
                  ANNEX, False),
        FieldSpec("issuing_file_number", "File number of the issuing authority", "authority",
                  True, issuing_field("file_number"), ANNEX, False),
        FieldSpec("addressee", "Addressee", "addressee", True,
                  computed("platform.eu_entity", eu_addressee), ANNEX, False),
        FieldSpec("original_reference", "Reference of the EPOC-PR", "original", True,
                  computed("original.reference", lambda r: r.previous_reference), ANNEX, False),
        FieldSpec("original_issued_at", "EPOC-PR sent (UTC)", "original", True,
                  computed("original.issued_at", lambda r: utc_or_none(r.previous_issued_at)),
                  ANNEX, False),
        FieldSpec("identifiers", "Data concerned (identifiers)", "original", True,
                  computed("original identifiers", identifier_lines), ANNEX, False),
        FieldSpec("current_end", "Preservation would end (UTC)", "extension", True,
                  computed("original.issued_at + 60 days", _original_end),
                  f"{REG}, Art. 11(1)"),
        FieldSpec("new_end", "Preservation extended until (UTC)", "extension", True,
                  computed("end of the 60 days + 30 days", _new_end), f"{REG}, Art. 11(1)"),
    )
    sources = (REG_SOURCE, REPRODUCTIONS_SOURCE)
    late_extension_void = (f"{REG}, Art. 11(1) lets the issuing authority extend the "
                           "preservation only \"during that 60-day period\": the 30-day extension "
                           "could not revive a preservation that had already ended")
    unverified = (
        "Annex VI: its title, section letters and headings were not reached in the official "
        "text or in any reproduction; the title and headings used here are descriptive.",
    )

    def check(self, r: RequestInput) -> list[Problem]:
        problems = addressee_problems(r)
        if r.previous_issued_at is None or not r.previous_reference:
            problems.append(Problem("an extension needs the original EPOC-PR's reference and "
                                    "sending time (use extension_of(original))", "original"))
        elif r.issued_at is not None:
            end = current_end(r)
            if end is not None and r.issued_at >= end:
                problems.append(Problem(
                    f"the extension must be sent within the 60-day period ({REG}, Art. 11(1)); "
                    f"it ended {to_the_second(end)}", "issued_at"))
        return problems

    def preservation_end(self, r: RequestInput, sent_at: datetime) -> datetime | None:
        # Sent too late, it extended nothing: the preservation ended with the 60 days, and
        # that end is the only one to show. The 30 days after it would read as data kept
        # until then, which the provider was under no obligation to do.
        return current_end(r) if sent_too_late(r, sent_at) else new_end(r)

    def deadlines(self, r: RequestInput, sent_at: datetime) -> tuple[Deadline, ...]:
        before, after = current_end(r), new_end(r)
        if before is None or after is None:
            return ()
        if sent_too_late(r, sent_at):
            return (
                Deadline("send the extension before", before, f"{REG}, Art. 11(1)"),
                Deadline("preservation ended before the extension was sent", before,
                         f"{REG}, Art. 11(1)",
                         "Not extended: the extension was sent after the 60 days had ended, and "
                         "the 30 days could not revive the preservation. Issue a new EPOC-PR "
                         "(or an EPOC) at once for what may still be held."),
            )
        return (
            Deadline("send the extension before", before, f"{REG}, Art. 11(1)"),
            Deadline("extended preservation ends", after, f"{REG}, Art. 11(1)",
                     "Runs on from the end of the 60 days, whenever the extension is sent. "
                     "Confirm a subsequent production request (Annex V) before this time; an "
                     "EPOC-PR is extended once only."),
        )
