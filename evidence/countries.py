"""Country codes: ISO 3166-1 alpha-2, the codes cases, requests and platforms are filed under.

A code that merely looks like one (two letters, ``ZZ``) would put a case under no state at all
and route its requests nowhere; so the assigned codes are listed here (from Debian's iso-codes,
ISO 3166-1 as of 2026), with ``XK`` for Kosovo, the code the EU and most registries use for it.
"""

from __future__ import annotations

from evidence.errors import InvalidInput

_ASSIGNED = """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO
    BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ
    DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP
    GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG
    KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML
    MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE
    PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL
    SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM
    US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW
"""
ISO_3166_1_ALPHA_2 = frozenset(_ASSIGNED.split()) | {"XK"}

# Codes people write that ISO 3166-1 spells otherwise: the EU's own for Greece, the common one
# for the United Kingdom.
USUAL_MISTAKES = {"EL": "GR", "UK": "GB"}


def country_code(value: str, what: str = "country") -> str:
    """``value`` as an upper-case ISO 3166-1 alpha-2 code, or a clear error."""
    code = value.strip().upper()
    if code in ISO_3166_1_ALPHA_2:
        return code
    if code in USUAL_MISTAKES:
        raise InvalidInput(f"{what} {code!r} is written {USUAL_MISTAKES[code]!r} in ISO 3166-1")
    raise InvalidInput(f"{what} {code!r} is not an ISO 3166-1 country code (such as DE or GR)")
