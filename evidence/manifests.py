"""Sealing a capture manifest: its SHA-256, an Ed25519 signature and an RFC 3161 timestamp.

The manifest is canonical JSON, so anyone can recompute its hash from the same fields; the
signature says this system made it, and the timestamp token says it existed at that time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple, Protocol

from evidence import timestamping
from evidence.canonical import canonical_json
from evidence.errors import InvalidInput
from evidence.settings import Settings
from evidence.signing import Signer


class TimestampAuthority(Protocol):
    def timestamp(self, digest: bytes) -> timestamping.TimestampToken: ...


def timestamp_authority(settings: Settings) -> TimestampAuthority:
    """External authorities when configured, else the built-in one made by `evidence init`."""
    if settings.tsa_url_list:
        return timestamping.HttpTimestampAuthority(settings.tsa_url_list)
    material = timestamping.load_local_tsa(settings.tsa_path)
    return timestamping.LocalTimestampAuthority.from_material(material)


def timestamper(
    settings: Settings, failures: list[str] | None = None
) -> Callable[[bytes], bytes | None]:
    """For checkpoints: an RFC 3161 token (DER) for a digest, or None when no authority
    answered, the reason then appended to `failures`."""

    def stamp(digest: bytes) -> bytes | None:
        try:
            return timestamp_authority(settings).timestamp(digest).response_der
        except timestamping.TimestampError as exc:
            if failures is not None:
                failures.append(str(exc))
            return None

    return stamp


class TsaRoot(NamedTuple):
    name: str  # the file's name
    pem: bytes
    local: bool  # the home's own authority


def tsa_trust(settings: Settings) -> list[TsaRoot]:
    """The root certificate of each authority whose timestamps this system trusts: the home's
    local authority, then those named in EVIDENCE_TSA_TRUST."""
    anchors: list[TsaRoot] = []
    local = settings.tsa_path / timestamping.TSA_CA_CERT_FILENAME
    if local.exists():
        anchors.append(TsaRoot(local.name, local.read_bytes(), local=True))
    for path in settings.tsa_trust_paths:
        try:
            pem = path.read_bytes()
        except OSError as exc:
            raise InvalidInput(f"EVIDENCE_TSA_TRUST names {path}, which cannot be read: "
                               f"{exc.strerror}") from exc
        anchors.append(TsaRoot(path.name, pem, local=False))
    return anchors


def trusted_roots(settings: Settings) -> list[bytes]:
    """The PEMs of `tsa_trust`, as timestamp checks take them."""
    return [root.pem for root in tsa_trust(settings)]


@dataclass(frozen=True)
class SealedManifest:
    data: bytes
    sha256: str
    signature: bytes
    key_id: str
    token: bytes | None
    timestamp_time: datetime | None
    timestamp_authority: str | None
    timestamp_note: str | None
    timestamp_error: str | None


def seal(
    manifest: dict[str, object], signer: Signer, authority: TimestampAuthority | None
) -> SealedManifest:
    """Hash, sign and timestamp; a timestamp that cannot be had is recorded, not hidden."""
    data = canonical_json(manifest)
    digest = hashlib.sha256(data).digest()
    token: timestamping.TimestampToken | None = None
    error: str | None = None
    if authority is not None:
        try:
            token = authority.timestamp(digest)
        except timestamping.TimestampError as exc:
            error = str(exc)
    else:
        error = "no timestamp authority configured"
    return SealedManifest(
        data=data,
        sha256=digest.hex(),
        signature=signer.sign(data),
        key_id=signer.key_id,
        token=None if token is None else token.response_der,
        timestamp_time=None if token is None else token.gen_time,
        timestamp_authority=None if token is None else (token.authority_url or token.tsa_name),
        timestamp_note=None if token is None else token.clock_notice,
        timestamp_error=error,
    )
