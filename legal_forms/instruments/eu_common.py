"""What the e-Evidence instruments (Regulation (EU) 2023/1543) share: sources, states, checks."""

from __future__ import annotations

from legal_forms.instruments.base import (
    JUDICIAL,
    JUDICIAL_OR_PROSECUTOR,
    DataCategory,
    Problem,
    RequestInput,
    SourceRef,
)
from legal_forms.platforms import UNKNOWN, Platform

REG_URL = "https://eur-lex.europa.eu/legal-content/EN/TXT/HTML/?uri=CELEX:32023R1543"
REG = "Regulation (EU) 2023/1543"
DIRECTIVE_URL = "https://eur-lex.europa.eu/legal-content/EN/TXT/HTML/?uri=CELEX:32023L1544"

REG_SOURCE = SourceRef(
    f"{REG} (OJ L 191, 28.7.2023, p. 118)", REG_URL, True,
    "Art. 4(1)-(2), 10, 11 and the openings of Annexes I and II read in the official text "
    "(EN and DE); applies from 18 August 2026.",
)

EU_MEMBER_STATES = frozenset(
    {
        "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "IE", "IT", "LV",
        "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE", "HU",
    }
)
# Denmark does not take part in Regulation (EU) 2023/1543 (Protocol No 22): kept from a secondary
# source, not read in the Regulation's recitals (unverified).
NOT_BOUND = frozenset({"DK"})
E_EVIDENCE_STATES = EU_MEMBER_STATES - NOT_BOUND
DENMARK_UNVERIFIED = (
    "Denmark is treated as not bound by Regulation (EU) 2023/1543 (secondary source; the "
    "recital was not read in the official text)."
)


def has_eu_establishment(platform: Platform) -> bool:
    """An EU entity that is the provider itself (not only a DSA legal representative)."""
    entity = platform.eu_entity
    if entity.name == UNKNOWN:
        return False
    return "not the service provider" not in entity.role.lower()


def addressee_problems(r: RequestInput) -> list[Problem]:
    problems: list[Problem] = []
    if not has_eu_establishment(r.platform):
        problems.append(Problem(
            f"{r.platform.display_name} has no EU establishment or legal representative in the "
            f"registry that could receive an order under {REG} (Art. 7; Directive (EU) "
            "2023/1544)", "addressee"))
    elif r.platform.e_evidence.addressee == UNKNOWN:
        problems.append(Problem(
            f"the registry names no designated establishment or legal representative of "
            f"{r.platform.display_name} under Directive (EU) 2023/1544; the order is addressed "
            f"to {r.platform.eu_entity.name} pending one", "addressee", "warning"))
    return problems


def issuing_state_problems(r: RequestInput) -> list[Problem]:
    country = r.issuing.country.upper()
    if country in NOT_BOUND:
        return [Problem(f"{country} is not bound by {REG} (unverified: Denmark does not take "
                        "part); use an MLA request or the Budapest Convention", "issuing_state")]
    if country not in EU_MEMBER_STATES:
        return [Problem(f"{country or '(none)'} is not an EU Member State: only Member States' "
                        f"authorities issue orders under {REG}", "issuing_state")]
    return []


def authority_problems(r: RequestInput, *, preservation: bool) -> list[Problem]:
    """Art. 4: who issues, and who must validate, for the categories asked."""
    strict = not preservation and bool(r.categories & {DataCategory.TRAFFIC, DataCategory.CONTENT})
    allowed, names, article = (
        (JUDICIAL, "a judge, a court or an investigating judge", "Art. 4(2)")
        if strict
        else (JUDICIAL_OR_PROSECUTOR, "a judge, a court, an investigating judge or a prosecutor",
              "Art. 4(3)" if preservation else "Art. 4(1)")
    )
    if r.issuing.role in allowed:
        return []
    if r.validating is not None and r.validating.role in allowed:
        return []
    what = "traffic or content data" if strict else (
        "preservation" if preservation else "subscriber or identification data")
    return [Problem(
        f"an order for {what} must be issued by {names}, or validated by one ({REG} {article}); "
        f"the issuing authority is a {r.issuing.role} and "
        + ("there is no validating authority" if r.validating is None
           else f"the validating authority is a {r.validating.role}"),
        "validating_authority")]
