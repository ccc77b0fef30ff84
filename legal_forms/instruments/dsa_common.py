"""What the DSA instruments (Regulation (EU) 2022/2065) share."""

from __future__ import annotations

from legal_forms.instruments.base import RequestInput, SourceRef

DSA = "Regulation (EU) 2022/2065 (Digital Services Act)"
DSA_URL = "https://eur-lex.europa.eu/legal-content/EN/TXT/HTML/?uri=CELEX:32022R2065"
DSA_SOURCE = SourceRef(
    DSA, DSA_URL, True,
    "Art. 9(2) and Art. 16(2) read in copies of the official text (EN, RO, SV).",
)


def urls(r: RequestInput) -> str:
    seen: dict[str, None] = {}
    for ident in r.identifiers:
        seen.setdefault(ident.source_url, None)
    return "\n".join(seen)


def has_exact_urls(r: RequestInput) -> bool:
    return bool(r.identifiers) and all(
        i.source_url.startswith(("https://", "http://")) and len(i.source_url) > 10
        for i in r.identifiers
    )
