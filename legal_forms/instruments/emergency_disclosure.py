"""`emergency-disclosure`: an emergency disclosure request in the manner of 18 U.S.C.
2702(b)(8) (contents) and (c)(4) (records): the provider may disclose if it believes in good
faith that an emergency involving danger of death or serious physical injury requires
disclosure without delay (paragraph letters and wording not read in the official text).
"""

from __future__ import annotations

from legal_forms.instruments.base import (
    FieldSpec,
    Instrument,
    Problem,
    RequestInput,
    Section,
    computed,
    identifier_problems,
    user_field,
)
from legal_forms.instruments.us_common import REGISTRY, S2702, provider_fields, provider_sections


class EmergencyDisclosure(Instrument):
    kind = "emergency-disclosure"
    title = "Emergency disclosure request"
    legal_basis = "18 U.S.C. 2702(b)(8), (c)(4); provider's emergency channel"
    preamble = ("Emergency request: danger of death or serious physical injury requires "
                "disclosure without delay.")
    sections = (
        *provider_sections("18 U.S.C. 2702(b)(8), (c)(4)"),
        Section("emergency", "The emergency", "18 U.S.C. 2702(b)(8), (c)(4)", False),
    )
    fields = (
        FieldSpec("basis", "Request", "basis", True, computed(
            "platform.emergency", lambda r: f"Emergency disclosure under 18 U.S.C. 2702(b)(8) "
            f"and (c)(4). Channel: {r.platform.emergency.channel} <{r.platform.emergency.url}>"),
            "18 U.S.C. 2702(b)(8), (c)(4)", False),
        *provider_fields("18 U.S.C. 2702(b)(8), (c)(4)"),
        FieldSpec("danger", "Nature of the danger of death or serious physical injury",
                  "emergency", True, user_field(), "18 U.S.C. 2702(b)(8)", False),
        FieldSpec("why_urgent", "Why normal process would be too slow", "emergency", True,
                  user_field(), "provider guidelines", False),
    )
    sources = (S2702, REGISTRY)
    unverified = ("18 U.S.C. 2702(b)(8) and (c)(4) wording (not read in the official text).",)

    def check(self, r: RequestInput) -> list[Problem]:
        problems = identifier_problems(r)
        if not r.emergency:
            problems.append(Problem("an emergency disclosure request needs the emergency flag",
                                    "emergency"))
        return problems
