"""`provider-voluntary-disclosure`: asking a US provider to disclose non-content records
voluntarily to a foreign authority (18 U.S.C. 2702(c)(6): to any person other than a governmental
entity, which foreign authorities are; paragraph letters unverified). Content is never asked for:
it needs an MLAT or a CLOUD Act agreement.
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
    user_field,
)
from legal_forms.instruments.us_common import REGISTRY, S2702, provider_fields, provider_sections


class ProviderVoluntaryDisclosure(Instrument):
    kind = "provider-voluntary-disclosure"
    title = "Request for voluntary disclosure of non-content records"
    legal_basis = "18 U.S.C. 2702(c) (voluntary disclosure of records); provider guidelines"
    preamble = ("Request for the voluntary disclosure of subscriber and other non-content "
                "records. No contents of communications are requested.")
    sections = provider_sections("18 U.S.C. 2702(c)")
    fields = (
        FieldSpec("basis", "Request", "basis", True, computed(
            "statute", lambda r: "Voluntary disclosure of non-content records to a foreign law "
            "enforcement authority (18 U.S.C. 2702(c)); the records are sought for a criminal "
            "investigation under the law of the requesting State."), "18 U.S.C. 2702(c)", False),
        *provider_fields("18 U.S.C. 2702(c)"),
        FieldSpec("domestic_process", "Domestic legal process authorising the request", "case",
                  True, user_field(),
                  "platform guidelines (e.g. Snap: process duly authorised in the requesting "
                  "country)"),
    )
    sources = (S2702, REGISTRY)
    unverified = ("18 U.S.C. 2702(c)(6) paragraph number (not read in the official text).",)

    def check(self, r: RequestInput) -> list[Problem]:
        problems = identifier_problems(r)
        if DataCategory.CONTENT in r.categories:
            problems.append(Problem("content cannot be disclosed voluntarily to a foreign "
                                    "authority: use an MLAT or a CLOUD Act agreement",
                                    "records"))
        if not r.categories:
            problems.append(Problem("name the records requested", "records"))
        return problems
