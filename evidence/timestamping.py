"""RFC 3161 trusted timestamps for preserved evidence.

A timestamp token is a timestamp authority's (TSA's) signed statement that a
SHA-256 digest existed no later than a given time. It lets a court check *when*
evidence was captured without trusting the capturing system's clock.

This module:

* builds TimeStampReq messages (:func:`make_request`);
* fetches tokens from external TSAs over HTTP, falling back from one URL to
  the next (:class:`HttpTimestampAuthority`);
* issues tokens from a built-in authority when no external TSA is available
  (:class:`LocalTimestampAuthority`, :func:`generate_local_tsa`). Such tokens
  are marked ``is_local``: their time rests only on this system's clock;
* verifies tokens offline (:func:`verify_token`).

The certificate checks (hash names, RFC 3161 signer certificate, who may issue
whom) are the offline verifier's (:mod:`evidence.bundle_verifier`), called from
here. The token itself is still read with ``asn1crypto``, which the shipped
verifier cannot import: this module also builds and re-wraps tokens with it, and
checks more at acceptance than the verifier does when reading old bundles (the
ESS signing-certificate attribute is required, and an HTTP reply is checked even
without trust anchors).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import http.client
import os
import secrets
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asn1crypto import cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from evidence.bundle_verifier import _CRYPTO_HASHES as _HASHES
from evidence.bundle_verifier import TimestampInvalid
from evidence.bundle_verifier import _check_tsa_certificate as _check_rfc3161_signer
from evidence.bundle_verifier import _issued_by as _certificate_issued_by

# UUID-derived OID (ITU-T X.667 arc 2.25): unique without registering anything,
# so it cannot collide with a real TSA's policy. It identifies tokens issued by
# the built-in local authority, whose time rests on this system's clock only.
LOCAL_TSA_POLICY_OID = "2.25.105080062447526380206053475928912169171"

LOCAL_CLOCK_NOTICE = (
    "This timestamp was issued by the system's built-in timestamp authority: "
    "its time rests only on this system's clock, not on an independent "
    "timestamp authority."
)

TIMESTAMP_QUERY_MEDIA_TYPE = "application/timestamp-query"
TIMESTAMP_REPLY_MEDIA_TYPE = "application/timestamp-reply"
# Some older TSAs still answer with the pre-RFC media type.
_ACCEPTED_REPLY_MEDIA_TYPES = frozenset(
    {TIMESTAMP_REPLY_MEDIA_TYPE, "application/timestamp-response"}
)

TSA_KEY_FILENAME = "tsa-key.pem"
TSA_CERT_FILENAME = "tsa-cert.pem"
TSA_CA_CERT_FILENAME = "tsa-ca-cert.pem"

SHA256_DIGEST_SIZE = 32
# A token with a certificate chain is a few kilobytes; anything far larger is
# not a timestamp reply and must not be buffered without limit.
MAX_RESPONSE_BYTES = 1024 * 1024
_MAX_CHAIN_LENGTH = 8
_NONCE_BITS = 64


# asn1crypto's tsp.TimeStampResp makes timeStampToken mandatory, but RFC 3161
# leaves it out of every rejection; this spec follows the RFC. Built with type()
# because asn1crypto has no type stubs and mypy refuses to subclass Any.
_TimeStampResp: Any = type(
    "_TimeStampResp",
    (core.Sequence,),
    {
        "_fields": [
            ("status", tsp.PKIStatusInfo),
            ("time_stamp_token", cms.ContentInfo, {"optional": True}),
        ]
    },
)


class TimestampError(Exception):
    """A timestamp could not be obtained, or a token failed verification."""


class AllAuthoritiesFailed(TimestampError):
    """Every configured TSA URL failed; ``failures`` holds (url, reason) pairs."""

    def __init__(self, failures: Sequence[tuple[str, str]]) -> None:
        self.failures: tuple[tuple[str, str], ...] = tuple(failures)
        detail = "; ".join(f"{url}: {reason}" for url, reason in self.failures)
        super().__init__(f"no timestamp authority issued a token ({detail})")


@dataclass(frozen=True)
class TimestampToken:
    """A TimeStampToken as received, plus its unverified TSTInfo fields.

    ``der`` is the CMS ContentInfo exactly as the authority produced it; keep
    those bytes, since re-encoding could invalidate the signature.
    """

    der: bytes
    gen_time: dt.datetime
    serial_number: int
    policy_oid: str
    tsa_name: str
    imprint_algorithm: str
    message_imprint: bytes
    nonce: int | None
    is_local: bool
    authority_url: str | None = None

    @classmethod
    def from_der(cls, der: bytes, *, authority_url: str | None = None) -> TimestampToken:
        """Parse a TimeStampToken or a granted TimeStampResp without verifying it."""
        return _token_from_parsed(_parse_token(der), authority_url=authority_url)

    @property
    def response_der(self) -> bytes:
        """The token wrapped in a granted TimeStampResp (an ``.tsr`` file)."""
        return _granted_response(self.der)

    @property
    def clock_notice(self) -> str | None:
        return LOCAL_CLOCK_NOTICE if self.is_local else None


@dataclass(frozen=True)
class TimestampInfo:
    """What :func:`verify_token` established about a token."""

    gen_time: dt.datetime
    serial_number: int
    policy_oid: str
    tsa_name: str
    message_imprint: bytes
    nonce: int | None
    is_local: bool
    signer_subject: str
    signer_certificate_der: bytes
    trust_anchor_subject: str

    @property
    def clock_notice(self) -> str | None:
        return LOCAL_CLOCK_NOTICE if self.is_local else None


@dataclass(frozen=True)
class LocalTsaMaterial:
    """Key and certificates of a built-in authority.

    The CA's private key is not kept: the CA only exists to give verifiers a
    trust anchor distinct from the signing key, and a key that is never stored
    cannot leak and be used to mint a second, rogue TSA certificate.
    """

    private_key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate
    ca_certificate: x509.Certificate

    @property
    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def ca_certificate_pem(self) -> bytes:
        return self.ca_certificate.public_bytes(serialization.Encoding.PEM)


# --------------------------------------------------------------------------
# Requests
# --------------------------------------------------------------------------


def _check_digest(digest: bytes) -> None:
    if not isinstance(digest, bytes) or len(digest) != SHA256_DIGEST_SIZE:
        raise ValueError("digest must be the 32 bytes of a SHA-256 hash")


def make_request(digest: bytes, *, nonce: int | None = None, cert_req: bool = True) -> bytes:
    """DER TimeStampReq for a SHA-256 digest; ``nonce=None`` sends no nonce."""
    _check_digest(digest)
    fields: dict[str, Any] = {
        "version": "v1",
        "message_imprint": {
            "hash_algorithm": {"algorithm": "sha256"},
            "hashed_message": digest,
        },
        "cert_req": cert_req,
    }
    if nonce is not None:
        if nonce < 0:
            raise ValueError("nonce must not be negative")
        fields["nonce"] = nonce
    der: bytes = tsp.TimeStampReq(fields).dump()
    return der


# --------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Cert:
    der: bytes
    crypto: x509.Certificate
    asn1: Any


def _load_cert_der(der: bytes) -> _Cert:
    return _Cert(
        der=der,
        crypto=x509.load_der_x509_certificate(der),
        asn1=asn1_x509.Certificate.load(der),
    )


@dataclass(frozen=True)
class _ParsedToken:
    token_der: bytes
    signed_data: Any
    signer_info: Any
    tst_der: bytes
    gen_time: dt.datetime
    serial_number: int
    policy_oid: str
    tsa_name: str
    imprint_algorithm: str
    message_imprint: bytes
    nonce: int | None
    certificates: tuple[_Cert, ...]


def _der_header_length(der: bytes) -> int:
    if len(der) < 2:
        raise TimestampError("malformed timestamp token: too short")
    first_length_byte = der[1]
    if first_length_byte < 0x80:
        return 2
    return 2 + (first_length_byte & 0x7F)


def _status_description(status_info: Any) -> str:
    status = str(status_info["status"].native)
    parts = [f"status {status}"]
    texts = status_info["status_string"].native
    if texts:
        parts.append(f"'{' '.join(texts)}'")
    failures = status_info["fail_info"].native
    if failures:
        parts.append(f"failure {', '.join(sorted(failures))}")
    return ", ".join(parts)


def _token_from_response_or_token(der: bytes) -> Any:
    # A TimeStampResp starts with the PKIStatusInfo SEQUENCE, a ContentInfo with
    # the content-type OID; accepting both spares callers the unwrapping.
    if not der or der[0] != 0x30:
        raise TimestampError("malformed timestamp token: not a DER SEQUENCE")
    inner_tag = der[_der_header_length(der) : _der_header_length(der) + 1]
    if inner_tag == b"\x30":
        response = _TimeStampResp.load(der, strict=True)
        status_info = response["status"]
        if status_info["status"].native not in ("granted", "granted_with_mods"):
            raise TimestampError(
                "authority refused the request: " + _status_description(status_info)
            )
        token = response["time_stamp_token"]
        if isinstance(token, core.Void):
            raise TimestampError("granted response carries no timestamp token")
        return token
    return cms.ContentInfo.load(der, strict=True)


def _name_to_string(name: Any) -> str:
    try:
        rdns = []
        for rdn in name.chosen:
            attributes = [
                x509.NameAttribute(
                    x509.ObjectIdentifier(atv["type"].dotted), str(atv["value"].native)
                )
                for atv in rdn
            ]
            rdns.append(x509.RelativeDistinguishedName(attributes))
        return x509.Name(rdns).rfc4514_string()
    except (ValueError, TypeError):
        # Names that cryptography refuses to model (odd lengths, types) are
        # still worth showing to a human.
        human: str = name.human_friendly
        return human


def _general_name_to_string(general_name: Any) -> str:
    if general_name.name == "directory_name":
        return _name_to_string(general_name.chosen)
    return str(general_name.native)


def _token_certificates(signed_data: Any) -> tuple[_Cert, ...]:
    certs = []
    if signed_data["certificates"].native is not None:
        for choice in signed_data["certificates"]:
            if choice.name == "certificate":
                certs.append(_load_cert_der(choice.chosen.dump()))
    return tuple(certs)


def _parse_token(der: bytes) -> _ParsedToken:
    try:
        return _parse_token_unchecked(der)
    except TimestampError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, OverflowError) as exc:
        # asn1crypto parses lazily and reports structure errors in many forms.
        raise TimestampError(f"malformed timestamp token: {exc}") from exc


def _parse_token_unchecked(der: bytes) -> _ParsedToken:
    token = _token_from_response_or_token(der)
    if token["content_type"].native != "signed_data":
        raise TimestampError("malformed timestamp token: not CMS SignedData")
    signed_data = token["content"]
    encap = signed_data["encap_content_info"]
    if encap["content_type"].native != "tst_info":
        raise TimestampError("malformed timestamp token: content is not a TSTInfo")
    if encap["content"].native is None:
        raise TimestampError("malformed timestamp token: TSTInfo is missing")
    tst_der = bytes(encap["content"])
    tst = tsp.TSTInfo.load(tst_der, strict=True)
    if tst["version"].native != "v1":
        raise TimestampError("malformed timestamp token: TSTInfo version is not 1")
    signer_infos = signed_data["signer_infos"]
    if len(signer_infos) != 1:
        raise TimestampError("malformed timestamp token: expected exactly one signer")

    gen_time = tst["gen_time"].native
    if not isinstance(gen_time, dt.datetime) or gen_time.tzinfo is None:
        raise TimestampError("malformed timestamp token: genTime is not in UTC")
    certificates = _token_certificates(signed_data)
    signer_info = signer_infos[0]
    if tst["tsa"].native is not None:
        tsa_name = _general_name_to_string(tst["tsa"])
    else:
        # The tsa field is optional; the signer's subject is the next best name.
        signer = next((c for c in certificates if _sid_matches(signer_info["sid"], c)), None)
        tsa_name = "" if signer is None else signer.crypto.subject.rfc4514_string()
    imprint = tst["message_imprint"]
    token_der: bytes = token.dump()
    return _ParsedToken(
        token_der=token_der,
        signed_data=signed_data,
        signer_info=signer_info,
        tst_der=tst_der,
        gen_time=gen_time.astimezone(dt.UTC),
        serial_number=int(tst["serial_number"].native),
        policy_oid=str(tst["policy"].dotted),
        tsa_name=tsa_name,
        imprint_algorithm=str(imprint["hash_algorithm"]["algorithm"].native),
        message_imprint=bytes(imprint["hashed_message"].native),
        nonce=None if tst["nonce"].native is None else int(tst["nonce"].native),
        certificates=certificates,
    )


def _token_from_parsed(parsed: _ParsedToken, *, authority_url: str | None) -> TimestampToken:
    return TimestampToken(
        der=parsed.token_der,
        gen_time=parsed.gen_time,
        serial_number=parsed.serial_number,
        policy_oid=parsed.policy_oid,
        tsa_name=parsed.tsa_name,
        imprint_algorithm=parsed.imprint_algorithm,
        message_imprint=parsed.message_imprint,
        nonce=parsed.nonce,
        is_local=parsed.policy_oid == LOCAL_TSA_POLICY_OID,
        authority_url=authority_url,
    )


def _granted_response(token_der: bytes) -> bytes:
    response = _TimeStampResp(
        {
            "status": {"status": "granted"},
            "time_stamp_token": cms.ContentInfo.load(token_der),
        }
    )
    der: bytes = response.dump()
    return der


# --------------------------------------------------------------------------
# Verification
# --------------------------------------------------------------------------


def _hash(name: str, data: bytes) -> bytes:
    digest = hashes.Hash(_hash_algorithm(name))
    digest.update(data)
    return digest.finalize()


def _load_trusted(trusted_certs: Sequence[bytes]) -> list[_Cert]:
    loaded: list[_Cert] = []
    for blob in trusted_certs:
        try:
            if b"-----BEGIN" in blob:
                for cert in x509.load_pem_x509_certificates(blob):
                    loaded.append(_load_cert_der(cert.public_bytes(serialization.Encoding.DER)))
            else:
                loaded.append(_load_cert_der(blob))
        except ValueError as exc:
            raise TimestampError(f"a trusted certificate cannot be read: {exc}") from exc
    return loaded


def _single_attribute_values(signed_attrs: Any) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for attribute in signed_attrs:
        name = attribute["type"].native
        if name in values:
            raise TimestampError(f"signed attribute {name} appears more than once")
        if len(attribute["values"]) != 1:
            raise TimestampError(f"signed attribute {name} must have exactly one value")
        values[name] = attribute["values"][0]
    return values


def _sid_matches(sid: Any, cert: _Cert) -> bool:
    if sid.name == "issuer_and_serial_number":
        wanted = sid.chosen
        return bool(
            cert.asn1.issuer.hashable == wanted["issuer"].hashable
            and cert.asn1.serial_number == wanted["serial_number"].native
        )
    return bool(cert.asn1.key_identifier == sid.chosen.native)


def _ess_cert_id_matches(attribute_name: str, attribute: Any, cert: _Cert) -> bool:
    # The first ESSCertID names the signer (RFC 2634 / RFC 5035).
    cert_ids = attribute["certs"]
    if len(cert_ids) == 0:
        return False
    cert_id = cert_ids[0]
    if attribute_name == "signing_certificate_v2":
        hash_name = str(cert_id["hash_algorithm"]["algorithm"].native)
    else:
        hash_name = "sha1"
    if _hash(hash_name, cert.der) != cert_id["cert_hash"].native:
        return False
    issuer_serial = cert_id["issuer_serial"]
    if issuer_serial.native is None:
        return True
    if issuer_serial["serial_number"].native != cert.asn1.serial_number:
        return False
    return any(
        general_name.name == "directory_name"
        and general_name.chosen.hashable == cert.asn1.issuer.hashable
        for general_name in issuer_serial["issuer"]
    )


def _find_signer(
    parsed: _ParsedToken, ess_name: str, ess_value: Any, extra: Sequence[_Cert]
) -> _Cert:
    sid = parsed.signer_info["sid"]
    candidates = [c for c in (*parsed.certificates, *extra) if _sid_matches(sid, c)]
    if not candidates:
        raise TimestampError(
            "signer certificate not found in the token or the trusted certificates"
        )
    for candidate in candidates:
        if _ess_cert_id_matches(ess_name, ess_value, candidate):
            return candidate
    raise TimestampError("signer certificate does not match the ESS signing-certificate attribute")


def _check_signature(signer_info: Any, signed_bytes: bytes, cert: _Cert) -> None:
    signature_algorithm = signer_info["signature_algorithm"]
    try:
        kind = signature_algorithm.signature_algo
    except ValueError as exc:
        raise TimestampError(f"unsupported signature algorithm: {exc}") from exc
    try:
        hash_name = str(signature_algorithm.hash_algo)
    except ValueError:
        # Plain rsaEncryption/ecdsa OIDs leave the hash to digestAlgorithm.
        hash_name = str(signer_info["digest_algorithm"]["algorithm"].native)
    signature: bytes = signer_info["signature"].native
    public_key = cert.crypto.public_key()
    try:
        if kind == "ecdsa" and isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signature, signed_bytes, ec.ECDSA(_hash_algorithm(hash_name)))
        elif kind == "rsassa_pkcs1v15" and isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(
                signature,
                signed_bytes,
                padding.PKCS1v15(),
                _hash_algorithm(hash_name),
            )
        elif kind == "rsassa_pss" and isinstance(public_key, rsa.RSAPublicKey):
            params = signature_algorithm["parameters"]
            mgf_hash = str(params["mask_gen_algorithm"]["parameters"]["algorithm"].native)
            public_key.verify(
                signature,
                signed_bytes,
                padding.PSS(
                    mgf=padding.MGF1(_hash_algorithm(mgf_hash)),
                    salt_length=int(params["salt_length"].native),
                ),
                _hash_algorithm(hash_name),
            )
        elif kind in ("ed25519", "ed448") and isinstance(
            public_key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey
        ):
            public_key.verify(signature, signed_bytes)
        else:
            raise TimestampError(
                f"signature algorithm {kind} does not fit the signer certificate's key"
            )
    except InvalidSignature as exc:
        raise TimestampError("signature does not verify") from exc


def _hash_algorithm(name: str) -> hashes.HashAlgorithm:
    factory = _HASHES.get(name)
    if factory is None:
        raise TimestampError(f"unsupported digest algorithm {name}")
    return factory()


def _check_tsa_certificate(cert: x509.Certificate, gen_time: dt.datetime) -> None:
    # RFC 3161 section 2.3 as the offline verifier checks it (EKU, key usage, validity), then
    # OpenSSL's timestamp purpose on top: where a token is first accepted, a signer key that may
    # also encipher or certify is refused, which the verifier (reading old bundles) only tolerates.
    try:
        _check_rfc3161_signer(cert, gen_time)
    except TimestampInvalid as exc:
        raise TimestampError(str(exc)) from exc
    except ValueError as exc:
        raise TimestampError(f"signer certificate extensions are malformed: {exc}") from exc
    try:
        key_usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return
    if (
        key_usage.key_encipherment
        or key_usage.data_encipherment
        or key_usage.key_agreement
        or key_usage.key_cert_sign
        or key_usage.crl_sign
    ):
        raise TimestampError("signer certificate's key usage does not allow timestamp signing")


def _issued_by(child: _Cert, issuer: _Cert) -> bool:
    return _certificate_issued_by(child.crypto, issuer.crypto)


def _chain_to_trust(
    signer: _Cert, intermediates: Sequence[_Cert], trusted: Sequence[_Cert]
) -> _Cert:
    trusted_ders = {cert.der for cert in trusted}
    current = signer
    visited = {signer.der}
    for _ in range(_MAX_CHAIN_LENGTH):
        if current.der in trusted_ders:
            return current
        for anchor in trusted:
            if _issued_by(current, anchor):
                return anchor
        next_cert = next(
            (
                cert
                for cert in intermediates
                if cert.der not in visited and _issued_by(current, cert)
            ),
            None,
        )
        if next_cert is None:
            break
        visited.add(next_cert.der)
        current = next_cert
    raise TimestampError("signer certificate not issued by a trusted certificate")


def _verify_signed(parsed: _ParsedToken, digest: bytes, extra_certs: Sequence[_Cert]) -> _Cert:
    """Check everything but the chain of trust; return the signer certificate."""
    try:
        return _verify_signed_unchecked(parsed, digest, extra_certs)
    except TimestampError:
        raise
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise TimestampError(f"malformed timestamp token: {exc}") from exc


def _verify_signed_unchecked(
    parsed: _ParsedToken, digest: bytes, extra_certs: Sequence[_Cert]
) -> _Cert:
    if parsed.imprint_algorithm != "sha256" or not secrets.compare_digest(
        parsed.message_imprint, digest
    ):
        raise TimestampError("message imprint does not match the data")

    signer_info = parsed.signer_info
    signed_attrs = signer_info["signed_attrs"]
    if signed_attrs.native is None:
        raise TimestampError("token has no signed attributes")
    attributes = _single_attribute_values(signed_attrs)
    content_type = attributes.get("content_type")
    if content_type is None or content_type.native != "tst_info":
        raise TimestampError("content-type attribute is missing or not id-ct-TSTInfo")
    message_digest = attributes.get("message_digest")
    if message_digest is None:
        raise TimestampError("message-digest attribute is missing")
    digest_name = str(signer_info["digest_algorithm"]["algorithm"].native)
    if _hash(digest_name, parsed.tst_der) != message_digest.native:
        raise TimestampError(
            "message-digest attribute does not match the TSTInfo (content altered)"
        )

    if "signing_certificate_v2" in attributes:
        ess_name = "signing_certificate_v2"
    elif "signing_certificate" in attributes:
        ess_name = "signing_certificate"
    else:
        raise TimestampError("ESS signing-certificate attribute is missing (signer not bound)")
    signer = _find_signer(parsed, ess_name, attributes[ess_name], extra_certs)

    # The signature covers the DER SET OF, not the [0] IMPLICIT form on the wire.
    raw_attrs: bytes = signed_attrs.dump()
    _check_signature(signer_info, b"\x31" + raw_attrs[1:], signer)
    _check_tsa_certificate(signer.crypto, parsed.gen_time)
    return signer


def verify_token(
    token_der: bytes, *, digest: bytes, trusted_certs: Sequence[bytes]
) -> TimestampInfo:
    """Verify a TimeStampToken (or TimeStampResp) for ``digest`` offline.

    ``trusted_certs`` are DER or PEM certificates; the signer must chain to one
    of them (or be one of them). Raises :class:`TimestampError` on any failure.
    """
    _check_digest(digest)
    trusted = _load_trusted(trusted_certs)
    if not trusted:
        raise TimestampError("no trusted certificates were given")
    parsed = _parse_token(token_der)
    signer = _verify_signed(parsed, digest, trusted)
    anchor = _chain_to_trust(signer, parsed.certificates, trusted)
    return TimestampInfo(
        gen_time=parsed.gen_time,
        serial_number=parsed.serial_number,
        policy_oid=parsed.policy_oid,
        tsa_name=parsed.tsa_name,
        message_imprint=parsed.message_imprint,
        nonce=parsed.nonce,
        is_local=parsed.policy_oid == LOCAL_TSA_POLICY_OID,
        signer_subject=signer.crypto.subject.rfc4514_string(),
        signer_certificate_der=signer.der,
        trust_anchor_subject=anchor.crypto.subject.rfc4514_string(),
    )


# --------------------------------------------------------------------------
# HTTP client
# --------------------------------------------------------------------------


def _describe_failure(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        if isinstance(exc.reason, TimeoutError):
            return f"no answer within {timeout:g} s"
        return f"cannot connect ({exc.reason})"
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g} s"
    if isinstance(exc, TimestampError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


class HttpTimestampAuthority:
    """Client for external RFC 3161 TSAs, tried in order until one grants a token."""

    def __init__(
        self,
        urls: Sequence[str],
        timeout: float = 10.0,
        *,
        trusted_certs: Sequence[bytes] | None = None,
    ) -> None:
        if isinstance(urls, str):
            raise TypeError("urls must be a list of URLs, not one string")
        if not urls:
            raise ValueError("at least one TSA URL is required")
        for url in urls:
            # urllib would also open file: and ftp: URLs from a bad config.
            if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
                raise ValueError(f"TSA URL must be http or https: {url!r}")
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.urls: tuple[str, ...] = tuple(urls)
        self.timeout = timeout
        # Checked only when given: without anchors a response can still be
        # checked for internal consistency, but not for who signed it.
        self._trusted = None if trusted_certs is None else _load_trusted(trusted_certs)

    def timestamp(self, digest: bytes) -> TimestampToken:
        _check_digest(digest)
        failures: list[tuple[str, str]] = []
        for url in self.urls:
            try:
                return self._ask(url, digest)
            except (
                TimestampError,
                OSError,
                http.client.HTTPException,
                ValueError,
            ) as exc:
                failures.append((url, _describe_failure(exc, self.timeout)))
        raise AllAuthoritiesFailed(failures)

    def _ask(self, url: str, digest: bytes) -> TimestampToken:
        nonce = secrets.randbits(_NONCE_BITS)
        # S310: __init__ admits only http and https URLs.
        request = urllib.request.Request(  # noqa: S310
            url,
            data=make_request(digest, nonce=nonce, cert_req=True),
            method="POST",
            headers={
                "Content-Type": TIMESTAMP_QUERY_MEDIA_TYPE,
                "Accept": TIMESTAMP_REPLY_MEDIA_TYPE,
            },
        )
        with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
            media_type = response.headers.get_content_type()
            body: bytes = response.read(MAX_RESPONSE_BYTES + 1)
        if len(body) > MAX_RESPONSE_BYTES:
            raise TimestampError("response is too large to be a timestamp reply")
        if media_type not in _ACCEPTED_REPLY_MEDIA_TYPES:
            raise TimestampError(f"unexpected response content type {media_type}")
        return self._check_response(url, body, digest, nonce)

    def _check_response(self, url: str, body: bytes, digest: bytes, nonce: int) -> TimestampToken:
        parsed = _parse_token(body)
        token = _token_from_parsed(parsed, authority_url=url)
        # A stale or replayed reply carries someone else's nonce.
        if token.nonce != nonce:
            raise TimestampError("response nonce does not match the request")
        if token.imprint_algorithm != "sha256" or token.message_imprint != digest:
            raise TimestampError("response message imprint does not match the requested digest")
        if not parsed.certificates:
            raise TimestampError("response lacks the TSA certificate it was asked for")
        signer = _verify_signed(parsed, digest, self._trusted or ())
        if self._trusted is not None:
            _chain_to_trust(signer, parsed.certificates, self._trusted)
        return token


# --------------------------------------------------------------------------
# Built-in local authority
# --------------------------------------------------------------------------


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _rejection(text: str, failure: str) -> bytes:
    response = _TimeStampResp(
        {
            "status": {
                "status": "rejection",
                "status_string": [text],
                "fail_info": {failure},
            }
        }
    )
    der: bytes = response.dump()
    return der


def _public_key_der(key: Any) -> bytes:
    der: bytes = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return der


class LocalTimestampAuthority:
    """Issues RFC 3161 tokens signed on this system, against this system's clock."""

    def __init__(
        self,
        private_key: ec.EllipticCurvePrivateKey,
        certificate: x509.Certificate,
        ca_certificate: x509.Certificate,
        *,
        clock: Callable[[], dt.datetime] = _utcnow,
    ) -> None:
        # OpenSSL 3.0's timestamp verifier (PKCS7 code) cannot check EdDSA.
        if not isinstance(private_key, ec.EllipticCurvePrivateKey):
            raise TypeError("the local TSA key must be an ECDSA key")
        if _public_key_der(private_key.public_key()) != _public_key_der(certificate.public_key()):
            raise ValueError("private key does not belong to the TSA certificate")
        self._key = private_key
        self._certificate = certificate
        self._ca_certificate = ca_certificate
        self._clock = clock
        der = serialization.Encoding.DER
        self._cert = _load_cert_der(certificate.public_bytes(der))
        self._ca = _load_cert_der(ca_certificate.public_bytes(der))

    @classmethod
    def from_material(
        cls,
        material: LocalTsaMaterial,
        *,
        clock: Callable[[], dt.datetime] = _utcnow,
    ) -> LocalTimestampAuthority:
        return cls(
            material.private_key,
            material.certificate,
            material.ca_certificate,
            clock=clock,
        )

    @property
    def certificate_der(self) -> bytes:
        return self._cert.der

    @property
    def ca_certificate_der(self) -> bytes:
        return self._ca.der

    def timestamp(self, digest: bytes) -> TimestampToken:
        _check_digest(digest)
        return TimestampToken.from_der(self._issue(digest, None, include_certs=True))

    def respond(self, request_der: bytes) -> bytes:
        """Answer a DER TimeStampReq with a DER TimeStampResp, as a TSA server does."""
        try:
            request = tsp.TimeStampReq.load(request_der, strict=True)
            version = request["version"].native
            algorithm = request["message_imprint"]["hash_algorithm"]["algorithm"].native
            digest = request["message_imprint"]["hashed_message"].native
            policy = request["req_policy"].dotted if request["req_policy"].native else None
            nonce = request["nonce"].native
            cert_req = bool(request["cert_req"].native)
            has_extensions = request["extensions"].native is not None
        except (ValueError, TypeError, KeyError) as exc:
            return _rejection(f"malformed request: {exc}", "bad_request")
        if version != "v1":
            return _rejection("unsupported request version", "bad_request")
        if algorithm != "sha256":
            return _rejection("only SHA-256 message imprints are accepted", "bad_alg")
        if not isinstance(digest, bytes) or len(digest) != SHA256_DIGEST_SIZE:
            return _rejection("message imprint is not a SHA-256 digest", "bad_data_format")
        if policy is not None and policy != LOCAL_TSA_POLICY_OID:
            return _rejection(f"policy {policy} is not offered", "unaccepted_policy")
        if has_extensions:
            return _rejection("request extensions are not supported", "unaccepted_extensions")
        try:
            token_der = self._issue(digest, nonce, include_certs=cert_req)
        except TimestampError as exc:
            return _rejection(str(exc), "time_not_available")
        return _granted_response(token_der)

    def _issue(self, digest: bytes, nonce: int | None, *, include_certs: bool) -> bytes:
        gen_time = self._clock().astimezone(dt.UTC)
        certificate = self._certificate
        if not certificate.not_valid_before_utc <= gen_time <= certificate.not_valid_after_utc:
            raise TimestampError(f"local TSA certificate is not valid at {gen_time.isoformat()}")
        tst_fields: dict[str, Any] = {
            "version": "v1",
            "policy": LOCAL_TSA_POLICY_OID,
            "message_imprint": {
                "hash_algorithm": {"algorithm": "sha256"},
                "hashed_message": digest,
            },
            # 128 random bits cannot collide in practice, so no counter state
            # has to survive restarts.
            "serial_number": secrets.randbits(128) | 1,
            "gen_time": gen_time,
            "tsa": asn1_x509.GeneralName(name="directory_name", value=self._cert.asn1.subject),
        }
        if nonce is not None:
            tst_fields["nonce"] = nonce
        tst_der: bytes = tsp.TSTInfo(tst_fields).dump()

        ess_cert_id = {
            # sha256 is the DEFAULT hash, so DER leaves it out.
            "cert_hash": hashlib.sha256(self._cert.der).digest(),
            "issuer_serial": {
                "issuer": [
                    asn1_x509.GeneralName(name="directory_name", value=self._cert.asn1.issuer)
                ],
                "serial_number": self._cert.asn1.serial_number,
            },
        }
        # CMSAttributes is a SET OF: asn1crypto sorts it into DER order, which
        # matters because OpenSSL re-encodes the set before verifying.
        signed_attrs = cms.CMSAttributes(
            [
                {"type": "content_type", "values": ["tst_info"]},
                {"type": "message_digest", "values": [hashlib.sha256(tst_der).digest()]},
                {
                    "type": "signing_time",
                    "values": [cms.Time(name="utc_time", value=gen_time.replace(microsecond=0))],
                },
                {
                    "type": "signing_certificate_v2",
                    "values": [{"certs": [ess_cert_id]}],
                },
            ]
        )
        signature = self._key.sign(signed_attrs.dump(), ec.ECDSA(hashes.SHA256()))
        signer_info = {
            "version": "v1",
            "sid": cms.SignerIdentifier(
                name="issuer_and_serial_number",
                value={
                    "issuer": self._cert.asn1.issuer,
                    "serial_number": self._cert.asn1.serial_number,
                },
            ),
            "digest_algorithm": {"algorithm": "sha256"},
            "signed_attrs": signed_attrs,
            "signature_algorithm": {"algorithm": "sha256_ecdsa"},
            "signature": signature,
        }
        signed_data: dict[str, Any] = {
            # v3 because the encapsulated content is not id-data (RFC 5652 5.1).
            "version": "v3",
            "digest_algorithms": [{"algorithm": "sha256"}],
            "encap_content_info": {
                "content_type": "tst_info",
                "content": tsp.TSTInfo.load(tst_der),
            },
            "signer_infos": [signer_info],
        }
        if include_certs:
            signed_data["certificates"] = [
                cms.CertificateChoices(name="certificate", value=self._cert.asn1),
                cms.CertificateChoices(name="certificate", value=self._ca.asn1),
            ]
        token = cms.ContentInfo(
            {"content_type": "signed_data", "content": cms.SignedData(signed_data)}
        )
        der: bytes = token.dump()
        return der


def generate_local_tsa(
    common_name: str, *, valid_for: dt.timedelta = dt.timedelta(days=3650)
) -> LocalTsaMaterial:
    """Create a self-signed ECDSA P-256 CA and a TSA certificate issued by it."""
    now = _utcnow()
    # Backdated a little so a verifier whose clock lags slightly still accepts.
    not_before = now - dt.timedelta(minutes=5)
    not_after = now + valid_for
    organisation = x509.NameAttribute(
        NameOID.ORGANIZATION_NAME, "Evidence Locker local timestamp authority"
    )
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, f"{common_name} CA"), organisation]
    )
    ca_certificate = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )

    tsa_key = ec.generate_private_key(ec.SECP256R1())
    tsa_certificate = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name), organisation])
        )
        .issuer_name(ca_name)
        .public_key(tsa_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        # RFC 3161 2.3: exactly timeStamping, and critical.
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(tsa_key.public_key()),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return LocalTsaMaterial(
        private_key=tsa_key, certificate=tsa_certificate, ca_certificate=ca_certificate
    )


def save_local_tsa(
    material: LocalTsaMaterial, folder: str | os.PathLike[str], *, password: bytes | None = None
) -> None:
    """Write the material as PEM files; refuses to replace an existing key."""
    directory = Path(folder)
    directory.mkdir(parents=True, exist_ok=True)
    encryption: serialization.KeySerializationEncryption = (
        serialization.NoEncryption()
        if password is None
        else serialization.BestAvailableEncryption(password)
    )
    key_pem = material.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    # O_EXCL: silently replacing a TSA key would orphan every earlier token's
    # trust anchor; the mode is set at creation so the key is never readable
    # by others, not even briefly.
    fd = os.open(directory / TSA_KEY_FILENAME, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as key_file:
        key_file.write(key_pem)
    (directory / TSA_CERT_FILENAME).write_bytes(material.certificate_pem)
    (directory / TSA_CA_CERT_FILENAME).write_bytes(material.ca_certificate_pem)


def load_local_tsa(
    folder: str | os.PathLike[str], *, password: bytes | None = None
) -> LocalTsaMaterial:
    directory = Path(folder)
    try:
        private_key = serialization.load_pem_private_key(
            (directory / TSA_KEY_FILENAME).read_bytes(), password=password
        )
        certificate = x509.load_pem_x509_certificate((directory / TSA_CERT_FILENAME).read_bytes())
        ca_certificate = x509.load_pem_x509_certificate(
            (directory / TSA_CA_CERT_FILENAME).read_bytes()
        )
    except (ValueError, TypeError) as exc:
        # cryptography signals a wrong or missing password with these too.
        raise TimestampError(f"local TSA material in {directory} cannot be read: {exc}") from exc
    if not isinstance(private_key, ec.EllipticCurvePrivateKey):
        raise TimestampError("local TSA key is not an ECDSA key")
    if _public_key_der(private_key.public_key()) != _public_key_der(certificate.public_key()):
        raise TimestampError("local TSA key does not belong to its certificate")
    try:
        certificate.verify_directly_issued_by(ca_certificate)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise TimestampError("local TSA certificate was not issued by the stored CA") from exc
    return LocalTsaMaterial(
        private_key=private_key, certificate=certificate, ca_certificate=ca_certificate
    )
