"""`emergency-disclosure`: an emergency disclosure request in the manner of 18 U.S.C.
2702(b)(8) (contents) and (c)(4) (records).

Both paragraphs (read in the current US Code text, see `us_common`) let a provider divulge to a
governmental entity if it believes in good faith that an emergency involving danger of death or
serious physical injury to any person requires disclosure without delay of communications (b)(8),
or information (c)(4), relating to the emergency. A "governmental entity" is a US federal or state
department or agency (2711(4)): a foreign authority relies on the provider applying the same test
under its own emergency policy, which the letter says.
"""

from __future__ import annotations

from legal_forms.instruments.base import (
    FieldSpec,
    Instrument,
    Problem,
    RequestInput,
    Section,
    channel_text,
    computed,
    identifier_problems,
    period_problems,
    user_field,
)
from legal_forms.instruments.us_common import REGISTRY, S2702, provider_fields, provider_sections

STATUTE = "18 U.S.C. 2702(b)(8), (c)(4)"


def _basis(r: RequestInput) -> str:
    channel = channel_text(r.platform.emergency.channel, r.platform.emergency.url)
    return (
        "Emergency disclosure request in the manner of 18 U.S.C. 2702(b)(8) (contents) and "
        "(c)(4) (records): we ask you to disclose, on your good-faith belief that the emergency "
        "described below involves danger of death or serious physical injury to a person and "
        "requires disclosure without delay, the information relating to it. As a foreign "
        "authority we are not a governmental entity within 18 U.S.C. 2711(4) and rely on your "
        "emergency disclosure policy."
        + (f"\nChannel: {channel}" if channel else ""))


class EmergencyDisclosure(Instrument):
    kind = "emergency-disclosure"
    title = "Emergency disclosure request"
    legal_basis = "18 U.S.C. 2702(b)(8), (c)(4) (in their manner); provider's emergency channel"
    preamble = ("Emergency request: an emergency involving danger of death or serious physical "
                "injury to a person requires disclosure without delay of the information "
                "relating to it.")
    sections = (
        *provider_sections(STATUTE),
        Section("emergency", "The emergency", STATUTE, True),
    )
    fields = (
        FieldSpec("basis", "Request", "basis", True, computed("platform.emergency", _basis),
                  f"{STATUTE}; 18 U.S.C. 2711(4)"),
        *provider_fields(STATUTE),
        FieldSpec("danger", "Nature of the danger of death or serious physical injury, and to "
                  "whom", "emergency", True, user_field(), STATUTE),
        FieldSpec("why_urgent", "Why disclosure is needed without delay (normal process too "
                  "slow)", "emergency", True, user_field(), f"{STATUTE}; provider guidelines"),
    )
    sources = (S2702, REGISTRY)

    def check(self, r: RequestInput) -> list[Problem]:
        problems = identifier_problems(r) + period_problems(r)
        if not r.emergency:
            problems.append(Problem("an emergency disclosure request needs the emergency flag",
                                    "emergency"))
        return problems
