"""`provider-voluntary-disclosure`: asking a US provider to disclose non-content records
voluntarily to a foreign authority.

18 U.S.C. 2702(c)(6) lets a provider divulge records and other non-content information "to any
person other than a governmental entity"; a "governmental entity" is a US federal or state
department or agency (2711(4)), so a foreign authority falls under (c)(6). Both read in the current
US Code text (see `us_common`). Content is never asked for: for contents, 2702(b) names a foreign
government only in (b)(9), for orders subject to an executive agreement under section 2523 (the
CLOUD Act); otherwise content needs an MLAT.
"""

from __future__ import annotations

from legal_forms.instruments.base import (
    DataCategory,
    FieldSpec,
    Instrument,
    Problem,
    RequestInput,
    computed,
    identifier_problems,
    period_problems,
    user_field,
)
from legal_forms.instruments.us_common import REGISTRY, S2702, provider_fields, provider_sections

STATUTE = "18 U.S.C. 2702(c)(6)"


class ProviderVoluntaryDisclosure(Instrument):
    kind = "provider-voluntary-disclosure"
    title = "Request for voluntary disclosure of non-content records"
    legal_basis = ("18 U.S.C. 2702(c)(6) (voluntary disclosure of records to a person other than "
                   "a governmental entity); provider guidelines")
    preamble = ("Request for the voluntary disclosure of subscriber and other non-content "
                "records. No contents of communications are requested.")
    sections = provider_sections(STATUTE)
    fields = (
        FieldSpec("basis", "Request", "basis", True, computed(
            "statute", lambda r: "Voluntary disclosure of subscriber information and other "
            "non-content records to a foreign law enforcement authority, which is not a "
            "governmental entity within 18 U.S.C. 2711(4): 18 U.S.C. 2702(c)(6). The records are "
            "sought for a criminal investigation under the law of the requesting State."),
            f"{STATUTE}; 18 U.S.C. 2711(4)"),
        *provider_fields(STATUTE),
        FieldSpec("domestic_process", "Domestic legal process authorising the request", "case",
                  True, user_field(),
                  "platform guidelines (e.g. Snap: process duly authorised in the requesting "
                  "country)"),
    )
    sources = (S2702, REGISTRY)

    def check(self, r: RequestInput) -> list[Problem]:
        problems = identifier_problems(r) + period_problems(r)
        if DataCategory.CONTENT in r.categories:
            problems.append(Problem("content cannot be disclosed voluntarily to a foreign "
                                    "authority: use an MLAT or a CLOUD Act agreement",
                                    "records"))
        if not r.categories:
            problems.append(Problem("name the records requested", "records"))
        return problems
