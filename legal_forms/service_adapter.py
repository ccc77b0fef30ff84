"""This package's instruments behind the core's interface (`evidence.legal_instruments`).

`pyproject.toml` names `legal_instruments` in the entry point group `evidence.legal_instruments`;
the request service (`evidence.requests`) loads it from there and so never imports this package.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, BinaryIO

from reportlab.platypus.doctemplate import LayoutError

from evidence.errors import InvalidInput
from evidence.legal_instruments import LegalInstruments
from legal_forms.instruments import (
    INSTRUMENTS,
    Instrument,
    RequestInput,
    UnknownKind,
    extension_of,
    get_instrument,
)
from legal_forms.instruments.render import render_json, render_pdf
from legal_forms.platforms import Registry, load_registry


class LegalForms:
    """`evidence.legal_instruments.LegalInstruments` over `legal_forms`."""

    def kinds(self) -> tuple[str, ...]:
        return tuple(INSTRUMENTS)

    def instrument(self, kind: str) -> Instrument:
        try:
            return get_instrument(kind)
        except UnknownKind as exc:
            # The core's own error: the API names it in its answer.
            raise InvalidInput(exc.message) from exc

    def platforms(self) -> Registry:
        return load_registry()

    def extension_of(self, original: RequestInput, *, reference: str,
                     issued_at: datetime | None) -> RequestInput:
        return extension_of(original, reference=reference, issued_at=issued_at)

    def render_pdf(self, r: RequestInput, out: BinaryIO) -> None:
        try:
            render_pdf(r, out)
        except LayoutError as exc:
            # Values split across pages; should anything still not fit, the request is refused
            # with what is typed kept, never a server error.
            raise InvalidInput(
                "the request cannot be laid out as a PDF: something in it is too large for a "
                "page; shorten the longest values") from exc

    def render_json(self, r: RequestInput) -> dict[str, Any]:
        return render_json(r)


def legal_instruments() -> LegalInstruments:
    # Typed as the interface, so mypy checks that LegalForms implements it.
    return LegalForms()
