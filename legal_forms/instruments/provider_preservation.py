"""`provider-preservation`: a direct preservation request in the style of 18 U.S.C. 2703(f).

2703(f)(1) binds providers on the request of a governmental entity, which 2711(4) defines as a US
federal or state department or agency; from a foreign authority the same letter is honoured as
the provider's courtesy (see each platform's guidelines in the registry). The preservation period
comes from the registry where it is known, else the statutory one of 2703(f)(2): 90 days, extended
for an additional 90 days upon a renewed request (both read in the current US Code text, see
`us_common`).

A renewal (`previous_ends_at` set) extends the period it follows: its period runs on from the end
of that one, whenever the renewal is sent, for the registry's extension length (TikTok 90 days,
Snap 180), else the statute's 90 days where the registry knows no period at all; where the
registry knows the first period but not the extension's, the first period's length is assumed,
and the request says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from evidence.times import to_the_second
from legal_forms.instruments.base import (
    Deadline,
    FieldSpec,
    Instrument,
    Problem,
    RequestInput,
    add_days,
    computed,
    identifier_problems,
    period_problems,
    platform_known,
    zone_of,
)
from legal_forms.instruments.us_common import REGISTRY, S2703, provider_fields, provider_sections
from legal_forms.platforms import UNKNOWN

STATUTE_DAYS = 90  # 18 U.S.C. 2703(f)(2) (verified)
STATUTE_EXTENSION_DAYS = 90  # 18 U.S.C. 2703(f)(2): "an additional 90-day period" (verified)
# 18 U.S.C. 2703(f)(2): records "shall be retained for a period of 90 days, which shall be
# extended for an additional 90-day period upon a renewed request by the governmental entity":
# one renewal, not a chain of them (the text as read for `us_common`, S2703; quoted word for word
# in copies of the current code seen again in December 2026). A platform may keep data longer as
# a courtesy, but a letter in the manner of the statute asks for no second renewal.
STATUTE_RENEWALS = 1
STATUTE_RENEWAL_LIMIT = ("18 U.S.C. 2703(f)(2) allows one renewal: records are retained for 90 "
                         "days, \"which shall be extended for an additional 90-day period upon a "
                         "renewed request\"")
# Lead time before expiry for an extension request, from the registry's notes (X: "submit each
# as a separate request at least 7 days before the 90 days end").
EXTENSION_LEAD_DAYS = {"x": 7}


def _basis(r: RequestInput) -> str:
    renewal = ""
    if r.previous_reference:
        sent = (f", sent {r.previous_issued_at.strftime('%Y-%m-%d')}"
                if r.previous_issued_at else "")
        ends = (f", whose preservation period ends {to_the_second(r.previous_ends_at)}"
                if r.previous_ends_at else "")
        renewal = (f"Renewal: please extend the preservation requested under our reference "
                   f"{r.previous_reference}{sent}{ends}, for a further period.\n")
    rule = r.platform.preservation.rule
    return renewal + (
        "Request to preserve records and other evidence in your possession pending the issuance "
        "of formal legal process, in the manner of 18 U.S.C. 2703(f). This request covers data "
        "existing at the time it is received; it does not ask for disclosure."
        + (f"\nYour published policy: {rule}" if platform_known(rule) else "")
    )


class ProviderPreservation(Instrument):
    kind = "provider-preservation"
    title = "Preservation request"
    legal_basis = "18 U.S.C. 2703(f) (style); provider's law-enforcement guidelines"
    preamble = ("Request for the preservation of records pending formal legal process. "
                "Nothing is to be disclosed on the basis of this request.")
    sections = provider_sections("18 U.S.C. 2703(f)")
    fields = (
        FieldSpec("basis", "Request", "basis", True,
                  computed("statute + platform.preservation.rule", _basis), "18 U.S.C. 2703(f)(1)"),
        *provider_fields("18 U.S.C. 2703(f)"),
    )
    sources = (S2703, REGISTRY)
    max_renewals = STATUTE_RENEWALS
    renewal_limit = STATUTE_RENEWAL_LIMIT

    def check(self, r: RequestInput) -> list[Problem]:
        problems = identifier_problems(r) + period_problems(r)
        if r.date_range is None:
            problems.append(Problem("a preservation request must give the date range of the "
                                    "records to preserve", "date_range"))
        if not r.categories:
            problems.append(Problem("name the records to preserve", "records"))
        if r.platform.preservation.days is None:
            problems.append(Problem(
                f"the registry has no preservation period for {r.platform.display_name}; the "
                "statutory 90 days are assumed", "platform", "warning"))
        if r.previous_ends_at is not None and _renewal(r).assumed:
            problems.append(Problem(
                f"the registry states no extension length for {r.platform.display_name}; the "
                f"renewal is counted as another {_renewal(r).days} days from the end of the "
                "current period", "platform", "warning"))
        if r.platform.channel.name == UNKNOWN:
            problems.append(Problem(f"the registry knows no request channel for "
                                    f"{r.platform.display_name}", "platform", "warning"))
        return problems

    def preservation_end(self, r: RequestInput, sent_at: datetime) -> datetime:
        zone = zone_of(r.issuing.time_zone)
        if r.previous_ends_at is not None:
            return add_days(r.previous_ends_at, _renewal(r).days, zone)
        return add_days(sent_at, _first(r).days, zone)

    def deadlines(self, r: RequestInput, sent_at: datetime) -> tuple[Deadline, ...]:
        zone = zone_of(r.issuing.time_zone)
        p = r.platform.preservation
        lead = EXTENSION_LEAD_DAYS.get(r.platform.name)
        end = self.preservation_end(r, sent_at)
        out = []
        if r.previous_ends_at is not None:
            renewal = _renewal(r)
            send_by = (r.previous_ends_at if lead is None
                       else add_days(r.previous_ends_at, -lead, zone))
            out.append(Deadline("send the renewal before", send_by,
                                renewal.basis if lead is None
                                else f"platform registry: {r.platform.name} (notes)",
                                "The preservation it renews ends "
                                f"{to_the_second(r.previous_ends_at)}."))
            out.append(Deadline("preservation ends", end, renewal.basis,
                                f"{renewal.days} days from the end of the period renewed, "
                                "whenever the renewal is sent."))
        else:
            out.append(Deadline("preservation ends", end, _first(r).basis))
        if lead is not None:
            out.append(Deadline("ask for an extension before", add_days(end, -lead, zone),
                                f"platform registry: {r.platform.name} (notes)",
                                f"Submit the extension as a separate request at least {lead} "
                                "days before expiry."))
        extension = p.extension_days if p.extension_days is not None else (
            STATUTE_EXTENSION_DAYS if p.days is None else None)
        if extension is not None and r.previous_ends_at is None:
            times = min(p.max_extensions or STATUTE_RENEWALS, STATUTE_RENEWALS)
            out.append(Deadline(
                f"preservation ends if extended ({times}x {extension} days)",
                add_days(end, extension * times, zone),
                _first(r).basis if p.extension_days is not None else "18 U.S.C. 2703(f)(2)"))
        return tuple(out)


@dataclass(frozen=True)
class _Period:
    days: int
    basis: str
    assumed: bool = False  # the registry does not state it; taken from the first period


def _first(r: RequestInput) -> _Period:
    p = r.platform.preservation
    if p.days is not None:
        return _Period(p.days, f"platform registry: {r.platform.name}")
    return _Period(STATUTE_DAYS, "18 U.S.C. 2703(f)(2)")


def _renewal(r: RequestInput) -> _Period:
    """How long a renewal keeps the data, counted from the end of the period it renews."""
    p = r.platform.preservation
    if p.extension_days is not None:
        return _Period(p.extension_days, f"platform registry: {r.platform.name}")
    if p.days is None:
        return _Period(STATUTE_EXTENSION_DAYS, "18 U.S.C. 2703(f)(2)")
    return _Period(p.days, f"assumed: the platform registry states no extension length for "
                           f"{r.platform.name}; its first period", assumed=True)
