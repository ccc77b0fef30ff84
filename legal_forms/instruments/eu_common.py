"""What the e-Evidence instruments (Regulation (EU) 2023/1543) share: sources, states, checks.

What was read where (checks of 3 and 5 Dec 2026): the official EUR-Lex text could be reached
only as far as its header and recitals 1-3 (`REG_SOURCE`). Article and Annex facts were
cross-checked in unofficial reproductions of the CELEX text (`REPRODUCTIONS_SOURCE`), which do
not make a fact verified. Denmark's and Ireland's position rests on their governments' documents.

Messages a user reads state the rule and its article only. Whether that article was read in the
official text is said once per instrument, in its `unverified` facts, which the request page and
the generated document list apart from the problems to fix.
"""

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
    f"{REG} (OJ L 191, 28.7.2023, p. 118-180)", REG_URL, True,
    "Official EUR-Lex text as reached in the check of 3 Dec 2026: only the header (title, "
    "12 July 2023, OJ L 191, 28.7.2023, p. 118-180, ELI eli/reg/2023/1543/oj, legal basis "
    "Art. 82(1) TFEU) and recitals 1-3; the stored copy ends there. An earlier check recorded "
    "Art. 4(1)-(2), 10, 11 and the openings of Annexes I and II as read in the official text "
    "(EN and DE). Re-checked on 5 Dec 2026 through three EUR-Lex addresses of the act (the "
    "TXT/HTML page and two AUTO views): each stored copy ends in the recitals, so no "
    "further Article or Annex could be read. Applies from 18 August 2026.",
)
# Unofficial reproductions of the CELEX text: used only to cross-check, never to mark a fact
# verified. They agree with everything marked verified here.
REPRODUCTIONS_SOURCE = SourceRef(
    f"Unofficial reproductions of the text of {REG} (gesetze.legal, DE; fantasticsearch.net "
    "and eumonitor.eu, EN)", "https://gesetze.legal/eu/vo_eu_2023_1543/10", False,
    "Not an official text. Read there: Art. 3(1)-(2) (a European Preservation Order is issued "
    "or validated in accordance with Art. 4(3)-(5)), 4(1)-(2), 5(1)-(3) and the first words of "
    "5(4), 10(1)-(4), 11(1)-(3), 12(1); the openings of Annexes I (Sections A-B) and II "
    "(Section A) and of Annex III. Not reached in any copy: the words of Art. 4(3), the rest of "
    "Art. 5(4), the later sections of Annexes I and II, Annex VI and the recitals on Denmark "
    "and Ireland.",
)
DENMARK_SOURCE = SourceRef(
    "Danish Ministry of Justice, note to the Folketing's Legal Affairs Committee, "
    "1 December 2021 (REU Alm.del Bilag 75)",
    "https://ft.dk/samling/20211/almdel/REU/bilag/75/2491936/index.htm", False,
    "Government source, not the Regulation: states that the proposal COM(2018) 225 is covered "
    "by Denmark's justice opt-out (retsforbeholdet, Protocol No 22).",
)
IRELAND_SOURCE = SourceRef(
    "Government of Ireland, Department of Justice: e-Evidence FAQs",
    "https://www.gov.ie/en/department-of-justice-home-affairs-and-migration/"
    "organisation-information/faqs", False,
    "Government source, not the Regulation: describes the obligations of service providers in "
    "Ireland under Regulation (EU) 2023/1543, so Ireland applies it.",
)

EU_MEMBER_STATES = frozenset(
    {
        "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "IE", "IT", "LV",
        "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE", "HU",
    }
)
# Denmark does not take part in Regulation (EU) 2023/1543 and Ireland does. Neither recital
# (Protocol No 22 / Protocol No 21) was reached in the official text; both facts rest on the
# two governments' own documents (DENMARK_SOURCE, IRELAND_SOURCE), so they stay unverified.
NOT_BOUND = frozenset({"DK"})
E_EVIDENCE_STATES = EU_MEMBER_STATES - NOT_BOUND
PARTICIPATION_UNVERIFIED = (
    "Denmark is treated as not bound and Ireland as bound by Regulation (EU) 2023/1543: the "
    "Regulation's recitals on them were not reached in the official text. Denmark: the Danish "
    "Ministry of Justice stated in 2021 that the proposal falls under Denmark's justice opt-out "
    "(Protocol No 22). Ireland: the Irish Department of Justice's guidance applies the "
    "Regulation to providers in Ireland."
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
        # Said with its source (DENMARK_SOURCE) rather than as "not verified": the recital
        # itself was not reached, which PARTICIPATION_UNVERIFIED states among the unverified
        # facts.
        return [Problem(f"{country} is not bound by {REG}: Denmark does not take part under its "
                        "justice opt-out (Protocol No 22), as the Danish Ministry of Justice "
                        "states. Use a request for mutual assistance or the Budapest Convention "
                        "instead", "issuing_state")]
    if country not in EU_MEMBER_STATES:
        return [Problem(f"{country or '(none)'} is not an EU Member State: only Member States' "
                        f"authorities issue orders under {REG}", "issuing_state")]
    return []


def authority_problems(r: RequestInput, *, preservation: bool) -> list[Problem]:
    """Art. 4: who issues, and who must validate, for the categories asked.

    Art. 4(1) (subscriber and identification data) and 4(2) (traffic and content data) are
    marked verified; Art. 4(3) (preservation) rests on secondary sources, which the EPOC-PR
    states among its unverified facts rather than in this message.
    """
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
    # The roles are quoted as the settings spell them ('police', 'other'), so the user sees
    # which value to change.
    return [Problem(
        f"an order for {what} must be issued by {names}, or validated by one ({REG}, {article}); "
        f"the issuing authority's role is '{r.issuing.role}' and "
        + ("no validating authority is given" if r.validating is None
           else f"the validating authority's role is '{r.validating.role}'"),
        "validating_authority")]
