"""RFC 3161 timestamps: what the local authority issues, what the HTTP client
accepts, and that tampering is caught by our verifier and by OpenSSL alike."""

from __future__ import annotations

import datetime as dt
import hashlib
import stat
import subprocess
from pathlib import Path

import pytest
from asn1crypto import cms, tsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from evidence.timestamping import (
    LOCAL_CLOCK_NOTICE,
    LOCAL_TSA_POLICY_OID,
    TSA_KEY_FILENAME,
    AllAuthoritiesFailed,
    HttpTimestampAuthority,
    LocalTimestampAuthority,
    LocalTsaMaterial,
    TimestampError,
    TimestampToken,
    generate_local_tsa,
    load_local_tsa,
    make_request,
    save_local_tsa,
    verify_token,
)
from tests.support.net import free_port
from tests.support.tsa_server import TsaServer

OPENSSL = "/usr/bin/openssl"
DATA = b"screenshot of the seized page, captured 2024-05-01"
DIGEST = hashlib.sha256(DATA).digest()


@pytest.fixture(scope="module")
def material() -> LocalTsaMaterial:
    return generate_local_tsa("Evidence Locker Test TSA")


@pytest.fixture(scope="module")
def authority(material: LocalTsaMaterial) -> LocalTimestampAuthority:
    return LocalTimestampAuthority.from_material(material)


@pytest.fixture(scope="module")
def token(authority: LocalTimestampAuthority) -> TimestampToken:
    return authority.timestamp(DIGEST)


@pytest.fixture()
def files(tmp_path: Path, material: LocalTsaMaterial) -> Path:
    (tmp_path / "data.bin").write_bytes(DATA)
    (tmp_path / "ca.pem").write_bytes(material.ca_certificate_pem)
    (tmp_path / "tsa.pem").write_bytes(material.certificate_pem)
    return tmp_path


def openssl_verify(
    folder: Path,
    der: bytes,
    *,
    token_in: bool = False,
    data: bytes = DATA,
    ca_pem: bytes | None = None,
    untrusted: bool = True,
) -> subprocess.CompletedProcess[str]:
    (folder / "checked.bin").write_bytes(data)
    (folder / "response.der").write_bytes(der)
    ca_path = folder / "ca.pem"
    if ca_pem is not None:
        ca_path = folder / "other-ca.pem"
        ca_path.write_bytes(ca_pem)
    args = [OPENSSL, "ts", "-verify", "-data", str(folder / "checked.bin")]
    args += ["-in", str(folder / "response.der"), "-CAfile", str(ca_path)]
    if token_in:
        args.append("-token_in")
    if untrusted:
        args += ["-untrusted", str(folder / "tsa.pem")]
    return subprocess.run(args, capture_output=True, text=True, timeout=30, check=False)


def assert_openssl_ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stderr
    assert "Verification: OK" in result.stdout


def assert_openssl_refuses(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode != 0
    assert "Verification: FAILED" in result.stdout


def flip_last_byte_of(der: bytes, part: bytes) -> bytes:
    assert der.count(part) == 1, "the part to alter must be unambiguous"
    end = der.index(part) + len(part)
    return der[: end - 1] + bytes([der[end - 1] ^ 0x01]) + der[end:]


def unused_local_url() -> str:
    return f"http://127.0.0.1:{free_port()}/tsa"


# --- the local authority's tokens -------------------------------------------


def test_local_token_verifies_in_python_and_openssl(
    token: TimestampToken, material: LocalTsaMaterial, files: Path
) -> None:
    info = verify_token(token.der, digest=DIGEST, trusted_certs=[material.ca_certificate_pem])
    assert info.gen_time == token.gen_time
    assert info.serial_number == token.serial_number
    assert "CN=Evidence Locker Test TSA" in info.signer_subject
    assert "CN=Evidence Locker Test TSA CA" in info.trust_anchor_subject

    (files / "response.tsr").write_bytes(token.response_der)
    result = subprocess.run(
        [
            *(OPENSSL, "ts", "-verify", "-data", str(files / "data.bin")),
            *("-in", str(files / "response.tsr"), "-CAfile", str(files / "ca.pem")),
            *("-untrusted", str(files / "tsa.pem")),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert_openssl_ok(result)
    assert_openssl_ok(openssl_verify(files, token.der, token_in=True))
    # The certificates travel inside the token, so a verifier needs only the CA.
    assert_openssl_ok(openssl_verify(files, token.der, token_in=True, untrusted=False))


def test_local_token_says_its_time_rests_on_this_clock(
    token: TimestampToken, authority: LocalTimestampAuthority, material: LocalTsaMaterial
) -> None:
    assert token.is_local
    assert token.clock_notice == LOCAL_CLOCK_NOTICE
    assert "this system's clock" in LOCAL_CLOCK_NOTICE
    assert token.policy_oid == LOCAL_TSA_POLICY_OID
    assert token.gen_time.tzinfo is not None
    assert token.gen_time.utcoffset() == dt.timedelta(0)
    assert abs(dt.datetime.now(dt.UTC) - token.gen_time) < dt.timedelta(minutes=1)
    assert token.message_imprint == DIGEST
    assert "CN=Evidence Locker Test TSA" in token.tsa_name
    info = verify_token(token.der, digest=DIGEST, trusted_certs=[material.ca_certificate_pem])
    assert info.is_local and info.clock_notice == LOCAL_CLOCK_NOTICE
    serials = {authority.timestamp(DIGEST).serial_number for _ in range(20)}
    assert len(serials) == 20
    assert token.serial_number.bit_length() > 64


def test_response_and_der_trust_anchor_forms_are_accepted(
    token: TimestampToken, material: LocalTsaMaterial
) -> None:
    ca_der = material.ca_certificate.public_bytes(Encoding.DER)
    info = verify_token(token.response_der, digest=DIGEST, trusted_certs=[ca_der])
    assert info.serial_number == token.serial_number
    assert TimestampToken.from_der(token.response_der) == token


def test_generated_tsa_certificate_is_fit_for_timestamping(material: LocalTsaMaterial) -> None:
    eku = material.certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert eku.critical
    assert list(eku.value) == [ExtendedKeyUsageOID.TIME_STAMPING]
    key_usage = material.certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    assert key_usage.digital_signature and not key_usage.key_cert_sign
    assert material.certificate.issuer == material.ca_certificate.subject
    material.certificate.verify_directly_issued_by(material.ca_certificate)


def test_request_answered_by_local_authority_passes_openssl_queryfile_check(
    authority: LocalTimestampAuthority, files: Path
) -> None:
    request = make_request(DIGEST, nonce=0x1234_5678_9ABC_DEF0)
    response = authority.respond(request)
    (files / "request.tsq").write_bytes(request)
    (files / "response.tsr").write_bytes(response)
    result = subprocess.run(
        [
            *(OPENSSL, "ts", "-verify", "-queryfile", str(files / "request.tsq")),
            *("-in", str(files / "response.tsr"), "-CAfile", str(files / "ca.pem")),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert_openssl_ok(result)
    assert TimestampToken.from_der(response).nonce == 0x1234_5678_9ABC_DEF0


def test_local_authority_rejects_non_sha256_requests(
    authority: LocalTimestampAuthority, files: Path
) -> None:
    result = subprocess.run(
        [
            *(OPENSSL, "ts", "-query", "-data", str(files / "data.bin")),
            *("-sha1", "-out", str(files / "sha1.tsq")),
        ],
        capture_output=True,
        timeout=30,
        check=True,
    )
    assert result.returncode == 0
    response = authority.respond((files / "sha1.tsq").read_bytes())
    with pytest.raises(TimestampError, match=r"status rejection.*failure bad_alg"):
        TimestampToken.from_der(response)


def test_local_authority_refuses_to_sign_outside_its_certificate_validity(
    material: LocalTsaMaterial,
) -> None:
    def far_future() -> dt.datetime:
        return material.certificate.not_valid_after_utc + dt.timedelta(days=1)

    late = LocalTimestampAuthority.from_material(material, clock=far_future)
    with pytest.raises(TimestampError, match="not valid at"):
        late.timestamp(DIGEST)


def test_material_round_trips_through_pem_files(material: LocalTsaMaterial, tmp_path: Path) -> None:
    save_local_tsa(material, tmp_path / "tsa")
    key_mode = stat.S_IMODE((tmp_path / "tsa" / TSA_KEY_FILENAME).stat().st_mode)
    assert key_mode == 0o600
    loaded = load_local_tsa(tmp_path / "tsa")
    assert loaded.certificate == material.certificate
    assert loaded.ca_certificate == material.ca_certificate
    token = LocalTimestampAuthority.from_material(loaded).timestamp(DIGEST)
    verify_token(token.der, digest=DIGEST, trusted_certs=[material.ca_certificate_pem])
    with pytest.raises(FileExistsError):
        save_local_tsa(material, tmp_path / "tsa")


def test_encrypted_key_needs_its_password(material: LocalTsaMaterial, tmp_path: Path) -> None:
    save_local_tsa(material, tmp_path, password=b"correct horse")
    assert load_local_tsa(tmp_path, password=b"correct horse").certificate == material.certificate
    with pytest.raises(TimestampError, match="cannot be read"):
        load_local_tsa(tmp_path)
    with pytest.raises(TimestampError, match="cannot be read"):
        load_local_tsa(tmp_path, password=b"wrong")


# --- the HTTP client ---------------------------------------------------------


def test_http_client_gets_a_token_from_a_tsa_server(
    authority: LocalTimestampAuthority, material: LocalTsaMaterial, files: Path
) -> None:
    server = TsaServer(authority)
    with server as url:
        token = HttpTimestampAuthority([url], timeout=5).timestamp(DIGEST)
    assert token.authority_url == url
    assert token.message_imprint == DIGEST
    assert token.nonce is not None
    assert [r.content_type for r in server.requests] == ["application/timestamp-query"]
    request = tsp.TimeStampReq.load(server.requests[0].body)
    assert request["nonce"].native == token.nonce
    assert request["cert_req"].native is True
    verify_token(token.der, digest=DIGEST, trusted_certs=[material.ca_certificate_pem])
    assert_openssl_ok(openssl_verify(files, token.response_der))


def test_http_client_falls_back_to_the_next_authority(
    authority: LocalTimestampAuthority, material: LocalTsaMaterial
) -> None:
    failing = TsaServer(authority, behaviour="http_error")
    working = TsaServer(authority)
    with failing as failing_url, working as working_url:
        client = HttpTimestampAuthority(
            [unused_local_url(), failing_url, working_url],
            timeout=5,
            trusted_certs=[material.ca_certificate_pem],
        )
        token = client.timestamp(DIGEST)
    assert token.authority_url == working_url
    assert len(failing.requests) == 1 and len(working.requests) == 1


def test_http_client_names_every_failed_authority(authority: LocalTimestampAuthority) -> None:
    closed_url = unused_local_url()
    with (
        TsaServer(authority, behaviour="http_error") as error_url,
        TsaServer(authority, behaviour="reject") as reject_url,
        TsaServer(authority, behaviour="garbage") as garbage_url,
        TsaServer(authority, behaviour="hang") as hang_url,
    ):
        client = HttpTimestampAuthority(
            [error_url, reject_url, closed_url, garbage_url, hang_url], timeout=0.5
        )
        with pytest.raises(AllAuthoritiesFailed) as caught:
            client.timestamp(DIGEST)
    message = str(caught.value)
    for url in (error_url, reject_url, closed_url, garbage_url, hang_url):
        assert url in message
    reasons = dict(caught.value.failures)
    assert reasons[error_url] == "HTTP 500 Internal Server Error"
    assert "status rejection" in reasons[reject_url]
    assert "test authority is out of service" in reasons[reject_url]
    assert "cannot connect" in reasons[closed_url]
    assert "malformed" in reasons[garbage_url]
    assert "no answer within 0.5 s" in reasons[hang_url]
    assert isinstance(caught.value, TimestampError)


def test_http_client_refuses_a_response_with_another_nonce(
    authority: LocalTimestampAuthority,
) -> None:
    with (
        TsaServer(authority, behaviour="wrong_nonce") as url,
        pytest.raises(TimestampError) as caught,
    ):
        HttpTimestampAuthority([url], timeout=5).timestamp(DIGEST)
    assert f"{url}: response nonce does not match the request" in str(caught.value)


def test_http_client_refuses_a_token_for_other_data(authority: LocalTimestampAuthority) -> None:
    expected = "message imprint does not match the requested digest"
    with (
        TsaServer(authority, behaviour="wrong_imprint") as url,
        pytest.raises(TimestampError, match=expected),
    ):
        HttpTimestampAuthority([url], timeout=5).timestamp(DIGEST)


def test_http_client_refuses_an_authority_outside_its_trust(
    authority: LocalTimestampAuthority,
) -> None:
    stranger = generate_local_tsa("Evidence Locker Test TSA")
    with TsaServer(authority) as url:
        client = HttpTimestampAuthority(
            [url], timeout=5, trusted_certs=[stranger.ca_certificate_pem]
        )
        with pytest.raises(TimestampError, match="not issued by a trusted certificate"):
            client.timestamp(DIGEST)


def test_http_client_refuses_non_http_urls() -> None:
    with pytest.raises(ValueError, match="http or https"):
        HttpTimestampAuthority(["file:///etc/passwd"])


# --- tampering ---------------------------------------------------------------


def _signature(token_der: bytes) -> bytes:
    signed_data = cms.ContentInfo.load(token_der)["content"]
    value: bytes = signed_data["signer_infos"][0]["signature"].native
    return value


def verify_with(material: LocalTsaMaterial, der: bytes, digest: bytes = DIGEST) -> None:
    verify_token(der, digest=digest, trusted_certs=[material.ca_certificate_pem])


def test_other_data_is_refused(
    token: TimestampToken, material: LocalTsaMaterial, files: Path
) -> None:
    other = b"a different screenshot"
    with pytest.raises(TimestampError, match="message imprint does not match the data"):
        verify_with(material, token.der, hashlib.sha256(other).digest())
    assert_openssl_refuses(openssl_verify(files, token.response_der, data=other))


def test_flipped_signature_byte_is_refused(
    token: TimestampToken, material: LocalTsaMaterial, files: Path
) -> None:
    altered = flip_last_byte_of(token.der, _signature(token.der))
    with pytest.raises(TimestampError, match=r"^signature does not verify$"):
        verify_with(material, altered)
    assert_openssl_refuses(openssl_verify(files, altered, token_in=True))


def test_flipped_tstinfo_byte_is_refused(
    token: TimestampToken, material: LocalTsaMaterial, files: Path
) -> None:
    serial = token.serial_number.to_bytes((token.serial_number.bit_length() + 7) // 8, "big")
    altered = flip_last_byte_of(token.der, serial)
    assert TimestampToken.from_der(altered).serial_number != token.serial_number
    with pytest.raises(TimestampError, match="message-digest attribute does not match the TSTInfo"):
        verify_with(material, altered)
    assert_openssl_refuses(openssl_verify(files, altered, token_in=True))


def test_flipped_certificate_byte_is_refused(
    token: TimestampToken, material: LocalTsaMaterial, files: Path
) -> None:
    tsa_der = material.certificate.public_bytes(Encoding.DER)
    altered = flip_last_byte_of(token.der, tsa_der)
    with pytest.raises(
        TimestampError, match="signer certificate does not match the ESS signing-certificate"
    ):
        verify_with(material, altered)
    # Without -untrusted, OpenSSL must use the altered certificate in the token.
    assert_openssl_ok(openssl_verify(files, token.der, token_in=True, untrusted=False))
    assert_openssl_refuses(openssl_verify(files, altered, token_in=True, untrusted=False))


def test_token_checked_against_an_unrelated_ca_is_refused(
    token: TimestampToken, files: Path
) -> None:
    # Same names as the real CA: only the signatures tell them apart.
    stranger = generate_local_tsa("Evidence Locker Test TSA")
    with pytest.raises(TimestampError, match="signer certificate not issued by a trusted"):
        verify_token(token.der, digest=DIGEST, trusted_certs=[stranger.ca_certificate_pem])
    result = openssl_verify(
        files, token.der, token_in=True, ca_pem=stranger.ca_certificate_pem, untrusted=False
    )
    assert_openssl_refuses(result)


def test_garbage_is_refused_as_malformed(material: LocalTsaMaterial) -> None:
    with pytest.raises(TimestampError, match="malformed timestamp token"):
        verify_with(material, b"\x30\x03\x02\x01\x01")


# --- tokens from another implementation ---------------------------------------

OPENSSL_TSA_CONFIG = """
[ tsa ]
default_tsa = tsa_config
[ tsa_config ]
serial = {folder}/serial
crypto_device = builtin
signer_cert = {folder}/rsa-tsa.pem
certs = {folder}/rsa-ca.pem
signer_key = {folder}/rsa-tsa.key
signer_digest = sha256
default_policy = 1.2.3.4.1
digests = sha256
accuracy = secs:1
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = {ess_alg}
"""


def _rsa_tsa(folder: Path) -> None:
    now = dt.datetime.now(dt.UTC)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "OpenSSL Test Root")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    tsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    tsa = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "OpenSSL TSA")]))
        .issuer_name(ca_name)
        .public_key(tsa_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    (folder / "rsa-ca.pem").write_bytes(ca.public_bytes(Encoding.PEM))
    (folder / "rsa-tsa.pem").write_bytes(tsa.public_bytes(Encoding.PEM))
    (folder / "rsa-tsa.key").write_bytes(
        tsa_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    )


@pytest.mark.parametrize("ess_alg", ["sha1", "sha256"])
def test_token_issued_by_openssl_verifies_offline(files: Path, ess_alg: str) -> None:
    # OpenSSL as the TSA: RSA signatures and (with sha1) the older ESS
    # signing-certificate attribute, as many public TSAs still produce.
    _rsa_tsa(files)
    config = files / "tsa.cnf"
    config.write_text(OPENSSL_TSA_CONFIG.format(folder=files, ess_alg=ess_alg))
    (files / "request.tsq").write_bytes(make_request(DIGEST, nonce=42))
    subprocess.run(
        [
            *(OPENSSL, "ts", "-reply", "-config", str(config)),
            *("-queryfile", str(files / "request.tsq"), "-out", str(files / "reply.tsr")),
        ],
        capture_output=True,
        timeout=30,
        check=True,
    )
    reply = (files / "reply.tsr").read_bytes()
    ca_pem = (files / "rsa-ca.pem").read_bytes()
    info = verify_token(reply, digest=DIGEST, trusted_certs=[ca_pem])
    assert info.nonce == 42
    assert info.policy_oid == "1.2.3.4.1"
    assert not info.is_local and info.clock_notice is None
    assert info.signer_subject == "CN=OpenSSL TSA"

    token = TimestampToken.from_der(reply)
    altered = flip_last_byte_of(token.der, _signature(token.der))
    with pytest.raises(TimestampError, match=r"^signature does not verify$"):
        verify_token(altered, digest=DIGEST, trusted_certs=[ca_pem])
