"""The legal instruments, one module per kind, and the shared framework they stand on."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from legal_forms.instruments.base import (
    Authority,
    AuthorityRole,
    CaseInfo,
    DataCategory,
    DateRange,
    Deadline,
    FieldSpec,
    Instrument,
    Problem,
    RequestInput,
    RequestInvalid,
    Suggestion,
    TargetIdentifier,
    Timing,
    UnknownKind,
)
from legal_forms.instruments.coe_art29_preservation import CoeArt29Preservation
from legal_forms.instruments.coe_art31_mla import CoeArt31Mla
from legal_forms.instruments.dsa_art9_order import DsaArt9Order
from legal_forms.instruments.dsa_art16_notice import DsaArt16Notice
from legal_forms.instruments.emergency_disclosure import EmergencyDisclosure
from legal_forms.instruments.eu_epoc import EuEpoc
from legal_forms.instruments.eu_epoc_pr import EuEpocPr
from legal_forms.instruments.eu_epoc_pr_extension import EuEpocPrExtension, extension_of
from legal_forms.instruments.provider_preservation import ProviderPreservation
from legal_forms.instruments.provider_voluntary_disclosure import ProviderVoluntaryDisclosure
from legal_forms.instruments.routing import route

INSTRUMENTS: Mapping[str, Instrument] = MappingProxyType(
    {
        i.kind: i
        for i in (
            EuEpocPr(), CoeArt29Preservation(), ProviderPreservation(), EuEpoc(), CoeArt31Mla(),
            DsaArt9Order(), DsaArt16Notice(), EuEpocPrExtension(), ProviderVoluntaryDisclosure(),
            EmergencyDisclosure(),
        )
    }
)


def get_instrument(kind: str) -> Instrument:
    try:
        return INSTRUMENTS[kind.strip().lower()]
    except KeyError:
        known = ", ".join(INSTRUMENTS)
        raise UnknownKind(f"unknown request kind {kind!r}; known: {known}") from None


__all__ = [
    "INSTRUMENTS", "Authority", "AuthorityRole", "CaseInfo", "DataCategory", "DateRange",
    "Deadline", "FieldSpec", "Instrument", "Problem", "RequestInput", "RequestInvalid",
    "Suggestion", "TargetIdentifier", "Timing", "UnknownKind", "extension_of", "get_instrument",
    "route",
]
