"""The legal instruments as the core sees them: an interface only.

Each kind of legal request (EPOC-PR, Art. 29 preservation, a provider's own form ...) is an
instrument in `legal_forms`: its fields in the official order, its checks, its deadlines and its
renderers. The request service (`evidence.requests`) fills a `RequestInput` from the database and
hands it over; being core, it imports no `legal_forms` (ARCHITECTURE.md). So it names here what it
calls and loads the implementation once per process through the entry point group
`evidence.legal_instruments`, which `legal_forms` fills in `pyproject.toml`, as
`evidence.platforms` does for the platform registry.

Errors stay the core's: an unknown kind is `InvalidInput`, an unknown platform a `NotFound`
(`PlatformRegistry.get`).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, BinaryIO, Protocol

from evidence.platforms import PlatformRegistry
from evidence.plugins import installed
from evidence.request_input import About, RequestInput

ENTRY_POINT_GROUP = "evidence.legal_instruments"


class FieldInfo(Protocol):
    @property
    def name(self) -> str: ...


class ProblemInfo(Protocol):
    """A finding of an instrument's checks; `str()` of it is the message shown to people."""

    @property
    def severity(self) -> str:
        """"error" blocks the request; anything else is a warning, shown and recorded."""
        ...

    @property
    def message(self) -> str:
        """What is wrong, without the field it is about."""
        ...

    @property
    def field(self) -> str | None:
        """The instrument's field it is about (a name of `InstrumentInfo.fields`, or one that
        `about` places); None: the request as a whole."""
        ...

    @property
    def missing(self) -> bool:
        """The field's value is not there at all."""
        ...

    @property
    def about(self) -> About | None:
        """What of the input it is about when that is not the field itself."""
        ...


class DeadlineInfo(Protocol):
    @property
    def name(self) -> str: ...

    def to_dict(self) -> dict[str, str]:
        """name, due (ISO 8601, UTC), basis and note."""
        ...


class InstrumentInfo(Protocol):
    """One kind of legal request. Its methods take any `RequestInput` whose platform came from
    the same implementation's `platforms()`."""

    @property
    def fields(self) -> Sequence[FieldInfo]: ...

    @property
    def max_renewals(self) -> int | None:
        """How often the instrument's own law lets a request be renewed, whatever a platform
        would honour; None: it sets no limit."""
        ...

    @property
    def renewal_limit(self) -> str:
        """The provision behind `max_renewals` and what it says, as a refusal quotes it."""
        ...

    @property
    def late_extension_void(self) -> str:
        """For an extension of this kind sent after the period it extends had ended: why it
        extends nothing (the provision), as the request and what is due say it; empty: it
        still runs on from that end, with a gap."""
        ...

    def validate(self, r: RequestInput[Any]) -> Sequence[ProblemInfo]:
        """Every problem found, errors and warnings."""
        ...

    def deadlines(self, r: RequestInput[Any], sent_at: datetime) -> Sequence[DeadlineInfo]: ...

    def preservation_end(self, r: RequestInput[Any], sent_at: datetime) -> datetime | None:
        """When the preservation this request asks for ends unless extended (UTC), had it been
        sent at `sent_at`; None for a kind that preserves nothing or sets no period."""
        ...

    def values(self, r: RequestInput[Any]) -> dict[str, str]:
        """The filled value of each field by name (the addressee under "addressee")."""
        ...


class LegalInstruments(Protocol):
    def kinds(self) -> Sequence[str]: ...

    def instrument(self, kind: str) -> InstrumentInfo:
        """The instrument of `kind` (any case); raises `InvalidInput` naming the known kinds."""
        ...

    def platforms(self) -> PlatformRegistry:
        """The platform registry whose entries the instruments read from `RequestInput`."""
        ...

    def extension_of(self, original: RequestInput[Any], *, reference: str,
                     issued_at: datetime | None) -> RequestInput[Any]:
        """The EU extension (EPOC-PR, Annex VI) of a preservation order, as a new input."""
        ...

    def render_pdf(self, r: RequestInput[Any], out: BinaryIO) -> None: ...

    def render_json(self, r: RequestInput[Any]) -> Mapping[str, Any]: ...


@functools.cache
def legal_instruments() -> LegalInstruments:
    """The installed instruments, loaded once per process."""
    instruments: LegalInstruments = installed(ENTRY_POINT_GROUP, "set of legal instruments")
    return instruments
