"""Which instruments fit a platform and an issuing state, each with the reason."""

from __future__ import annotations

from legal_forms.instruments.base import Suggestion, Timing
from legal_forms.instruments.coe_common import PARTIES, PARTY_SOURCES
from legal_forms.instruments.eu_common import (
    E_EVIDENCE_STATES,
    EU_MEMBER_STATES,
    NOT_BOUND,
    has_eu_establishment,
)
from legal_forms.platforms import UNKNOWN, Platform


def is_us_provider(platform: Platform) -> bool:
    return any("United States" in e.address for e in platform.non_eu_entities)


def route(platform: Platform, issuing_country: str | None) -> list[Suggestion]:
    """Suggestions in the order to act on them; `issuing_country` is ISO 3166-1 alpha-2."""
    country = (issuing_country or "").strip().upper() or None
    eu = country in EU_MEMBER_STATES
    out: list[Suggestion] = []
    name = platform.display_name
    if country in E_EVIDENCE_STATES and has_eu_establishment(platform):
        entity = platform.eu_entity.name
        out.append(Suggestion("eu-epoc-pr", Timing.NOW,
                              f"{country} is bound by Reg. (EU) 2023/1543 and {name} has an EU "
                              f"establishment ({entity}): preserve now (60 days, +30)"))
        out.append(Suggestion("eu-epoc", Timing.NEXT,
                              "then produce with an EPOC (10 days; 8 hours in an emergency); "
                              "or extend the EPOC-PR (eu-epoc-pr-extension) within 60 days"))
    elif country in NOT_BOUND:
        out.append(Suggestion("coe-art29-preservation", Timing.NOW,
                              f"{country} does not take part in Reg. (EU) 2023/1543 "
                              "(Denmark's justice opt-out, as the Danish Ministry of Justice "
                              "states): use the Budapest Convention or MLA"))
    if platform.preservation.days is not None or is_us_provider(platform):
        why = (f"{name} preserves on a direct request ({platform.preservation.summary})"
               if platform.preservation.days is not None
               else f"{name} is a US provider: ask for preservation in the manner of "
               "18 U.S.C. 2703(f) (honoured as a courtesy for foreign authorities)")
        timing = Timing.ALTERNATIVE if out and out[0].timing == Timing.NOW else Timing.NOW
        out.append(Suggestion("provider-preservation", timing, why))
    if is_us_provider(platform) and not (country in E_EVIDENCE_STATES
                                         and has_eu_establishment(platform)):
        out.append(Suggestion("provider-voluntary-disclosure", Timing.NEXT,
                              "non-content records may be disclosed voluntarily by a US "
                              "provider to a foreign authority (18 U.S.C. 2702(c))"))
        out.append(Suggestion("coe-art31-mla", Timing.NEXT,
                              "content needs an MLA request (or MLAT / CLOUD Act agreement): "
                              f"{platform.content_requires}" if platform.content_requires != UNKNOWN
                              else "content needs an MLA request (or MLAT / CLOUD Act agreement)"))
    if country in PARTIES and not any(s.kind == "coe-art29-preservation" for s in out):
        seen = ("" if country in PARTY_SOURCES
                else " (not re-checked in an official source)")
        out.append(Suggestion("coe-art29-preservation", Timing.ALTERNATIVE,
                              f"{country} is a Party to the Budapest Convention{seen}: expedited "
                              "preservation through the 24/7 Network (Art. 29, 35), kept for "
                              "not less than sixty days (Art. 29(7))"))
    if platform.emergency.url != UNKNOWN:
        out.append(Suggestion("emergency-disclosure", Timing.ALTERNATIVE,
                              f"only if life or limb is at risk: {platform.emergency.channel}"))
    if eu and (platform.eu_entity.name != UNKNOWN or platform.dsa_contact):
        out.append(Suggestion("dsa-art9-order", Timing.TAKEDOWN,
                              f"an authority of {country} may order {name}, which offers "
                              "services in the EU, to act against illegal content (Art. 9 DSA); "
                              "after preservation"))
    out.append(Suggestion("dsa-art16-notice", Timing.TAKEDOWN,
                          "anyone may notify illegal content to a hosting provider (Art. 16 DSA);"
                          " after preservation"))
    return out
