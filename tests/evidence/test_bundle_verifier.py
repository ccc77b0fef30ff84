"""The offline bundle verifier: DER and RFC 3161, Merkle proofs, the bag, and whole bundles.

Bundles here are built by `make_bundle`, a small spec-conforming builder from the project's own
parts (BagWriter, Signer, MerkleTree, the local TSA, canonical_json, build_case_graph); it is not
the exporter, whose end-to-end tests live beside it.
"""

from __future__ import annotations

import ast
import base64
import contextlib
import dataclasses
import datetime as dt
import functools
import hashlib
import io
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import tracemalloc
import uuid
import warnings
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from evidence import bundle_verifier as bv
from evidence.bagit import BagWriter
from evidence.bundles import bag_signature
from evidence.canonical import canonical_json
from evidence.caseuco import CaptureInfo, FileInfo, InvestigationInfo, build_case_graph
from evidence.merkle import MerkleTree, leaf_hash
from evidence.signing import Signer
from evidence.timestamping import (
    LocalTimestampAuthority,
    LocalTsaMaterial,
    generate_local_tsa,
)
from tests.support.zips import (
    END_RECORD_FIELDS,
    central_record,
    set_crc,
    set_end_record,
    shadowed_local_name,
)

MODULE = Path(bv.__file__)
OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"
BAG = "OP-TEST-export-2026-11-22T2043Z"
DECLARATION = b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n"


# ---------------------------------------------------------------------------------------------
# Shared material


@pytest.fixture(scope="module")
def tsa() -> LocalTsaMaterial:
    return generate_local_tsa("Test Local TSA")


def anchors_of(material: LocalTsaMaterial) -> list[bv.TrustAnchor]:
    return bv.load_anchors(material.ca_certificate_pem, "keys/tsa/local-tsa-ca.pem")


def local_token(material: LocalTsaMaterial, data: bytes) -> bytes:
    authority = LocalTimestampAuthority.from_material(material)
    return authority.timestamp(hashlib.sha256(data).digest()).response_der


def flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


def token_parts(response: bytes) -> tuple[bytes, bytes, bytes]:
    """(signature, genTime text, hashed message) of a TimeStampResp, to find them in the bytes."""
    parsed = tsp.TimeStampResp.load(response)
    signed = parsed["time_stamp_token"]["content"]
    signature = signed["signer_infos"][0]["signature"].native
    tst = signed["encap_content_info"]["content"].parsed
    gen_time = tst["gen_time"].contents
    imprint = tst["message_imprint"]["hashed_message"].native
    return signature, gen_time, imprint


# ---------------------------------------------------------------------------------------------
# RFC 3161: tokens from the built-in authority


def test_local_token_verifies_and_reports_time_tsa_and_local_policy(tsa: LocalTsaMaterial) -> None:
    data = b"the capture manifest"
    result = bv.verify_timestamp(local_token(tsa, data), hashlib.sha256(data).digest(),
                                 anchors_of(tsa))  # fmt: skip
    assert result.is_local
    assert "Test Local TSA" in result.tsa_name
    assert result.anchor == "keys/tsa/local-tsa-ca.pem"
    assert abs(result.gen_time - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=5)


def test_bare_token_without_the_response_wrapper_verifies(tsa: LocalTsaMaterial) -> None:
    data = b"bare"
    token = LocalTimestampAuthority.from_material(tsa).timestamp(hashlib.sha256(data).digest())
    bv.verify_timestamp(token.der, hashlib.sha256(data).digest(), anchors_of(tsa))


def _tamper_signature(response: bytes) -> bytes:
    signature, _, _ = token_parts(response)
    at = response.rfind(signature)
    return flip(response, at + len(signature) // 2)


def _tamper_gen_time(response: bytes) -> bytes:
    _, gen_time, _ = token_parts(response)
    at = response.find(gen_time)
    seconds = at + 13  # YYYYMMDDHHMMS|S|: the last digit of the seconds stays a valid time
    digit = response[seconds] - 0x30
    return response[:seconds] + str((digit + 1) % 10).encode() + response[seconds + 1 :]


def _tamper_imprint(response: bytes) -> bytes:
    _, _, imprint = token_parts(response)
    return flip(response, response.find(imprint) + 5)


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (_tamper_signature, "signature does not verify"),
        (_tamper_gen_time, "altered after signing"),
        (_tamper_imprint, "message imprint does not match"),
        (lambda r: r[:-10], "malformed timestamp token"),
        (lambda r: r[: len(r) // 2], "malformed timestamp token"),
        (lambda r: r + b"\x00", "trailing bytes"),
        (lambda r: b"\x30\x80" + r[2:], "malformed timestamp token"),
        (lambda r: b"", "malformed timestamp token"),
    ],
    ids=["signature", "genTime", "imprint", "truncated-end", "truncated-half", "trailing",
         "indefinite-length", "empty"],
)  # fmt: skip
def test_tampered_local_token_fails_with_a_clear_message(
    tsa: LocalTsaMaterial, tamper: Callable[[bytes], bytes], message: str
) -> None:
    data = b"sealed manifest bytes"
    good = local_token(tsa, data)
    with pytest.raises(bv.TimestampInvalid, match=message):
        bv.verify_timestamp(tamper(good), hashlib.sha256(data).digest(), anchors_of(tsa))


def test_token_for_other_data_fails(tsa: LocalTsaMaterial) -> None:
    with pytest.raises(bv.TimestampInvalid, match="message imprint does not match"):
        bv.verify_timestamp(local_token(tsa, b"a"), hashlib.sha256(b"b").digest(), anchors_of(tsa))


def test_token_under_a_wrong_anchor_fails(tsa: LocalTsaMaterial) -> None:
    other = generate_local_tsa("Another TSA")
    data = b"x"
    with pytest.raises(bv.TimestampInvalid, match="does not chain to a trust anchor"):
        bv.verify_timestamp(local_token(tsa, data), hashlib.sha256(data).digest(),
                            anchors_of(other))  # fmt: skip
    with pytest.raises(bv.TimestampInvalid, match="does not chain"):
        bv.verify_timestamp(local_token(tsa, data), hashlib.sha256(data).digest(), [])


def test_rejection_response_names_the_status(tsa: LocalTsaMaterial) -> None:
    authority = LocalTimestampAuthority.from_material(tsa)
    rejection = authority.respond(b"not a request")
    with pytest.raises(bv.TimestampInvalid, match="did not grant a timestamp: status 2"):
        bv.verify_timestamp(rejection, hashlib.sha256(b"").digest(), anchors_of(tsa))


def test_random_garbage_never_raises_anything_but_timestamp_invalid(
    tsa: LocalTsaMaterial,
) -> None:
    good = local_token(tsa, b"fuzz")
    digest = hashlib.sha256(b"fuzz").digest()
    rng = random.Random(7)
    for _ in range(300):
        data = bytearray(good)
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        with contextlib.suppress(bv.TimestampInvalid):
            bv.verify_timestamp(bytes(data), digest, anchors_of(tsa))


# ---------------------------------------------------------------------------------------------
# RFC 3161: tokens from `openssl ts -reply` with an RSA authority


@dataclass
class OpensslTsa:
    folder: Path
    ca_pem: bytes

    def reply(self, data: bytes, *, ess_alg: str = "sha256") -> bytes:
        (self.folder / "data.bin").write_bytes(data)
        config = self.folder / "tsa.cnf"
        config.write_text(
            "[ tsa ]\ndefault_tsa = tsa_config1\n[ tsa_config1 ]\n"
            f"dir = {self.folder}\nserial = $dir/serial\ncrypto_device = builtin\n"
            "signer_cert = $dir/tsa.pem\ncerts = $dir/ca.pem\nsigner_key = $dir/tsa.key\n"
            "signer_digest = sha256\ndefault_policy = 1.2.3.4.1\ndigests = sha256, sha384\n"
            "accuracy = secs:1\nordering = yes\ntsa_name = yes\n"
            f"ess_cert_id_chain = no\ness_cert_id_alg = {ess_alg}\n"
        )
        run = [OPENSSL, "ts"]
        subprocess.run([*run, "-query", "-data", str(self.folder / "data.bin"), "-sha256",
                        "-cert", "-out", str(self.folder / "req.tsq")],
                       check=True, capture_output=True)  # fmt: skip
        subprocess.run([*run, "-reply", "-config", str(config), "-queryfile",
                        str(self.folder / "req.tsq"), "-out", str(self.folder / "resp.tsr")],
                       check=True, capture_output=True)  # fmt: skip
        return (self.folder / "resp.tsr").read_bytes()


def _rsa_certificates(folder: Path) -> bytes:
    now = dt.datetime.now(dt.UTC)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, "OpenSSL Test TSA Root"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Test Authority"),
    ])  # fmt: skip
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "OpenSSL Test TSA")]))
        .issuer_name(ca_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    pem = serialization.Encoding.PEM
    (folder / "tsa.key").write_bytes(key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))  # fmt: skip
    (folder / "tsa.pem").write_bytes(cert.public_bytes(pem))
    (folder / "ca.pem").write_bytes(ca.public_bytes(pem))
    (folder / "serial").write_text("01\n")
    return ca.public_bytes(pem)


@pytest.fixture(scope="module")
def openssl_tsa(tmp_path_factory: pytest.TempPathFactory) -> OpensslTsa:
    folder = tmp_path_factory.mktemp("openssl-tsa")
    return OpensslTsa(folder, _rsa_certificates(folder))


@pytest.mark.parametrize("ess_alg", ["sha256", "sha1"])
def test_openssl_rsa_token_verifies(openssl_tsa: OpensslTsa, ess_alg: str) -> None:
    data = b"manifest made elsewhere"
    response = openssl_tsa.reply(data, ess_alg=ess_alg)
    anchors = bv.load_anchors(openssl_tsa.ca_pem, "root.pem")
    result = bv.verify_timestamp(response, hashlib.sha256(data).digest(), anchors)
    assert result.policy_oid == "1.2.3.4.1"
    assert not result.is_local
    assert "OpenSSL Test TSA" in result.tsa_name
    assert result.anchor == "root.pem"


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (_tamper_signature, "signature does not verify"),
        (_tamper_gen_time, "altered after signing"),
        (_tamper_imprint, "message imprint does not match"),
        (lambda r: r[:-1], "malformed timestamp token"),
    ],
    ids=["signature", "genTime", "imprint", "truncated"],
)
def test_tampered_openssl_token_fails(
    openssl_tsa: OpensslTsa, tamper: Callable[[bytes], bytes], message: str
) -> None:
    data = b"openssl tamper"
    good = openssl_tsa.reply(data)
    anchors = bv.load_anchors(openssl_tsa.ca_pem, "root.pem")
    with pytest.raises(bv.TimestampInvalid, match=message):
        bv.verify_timestamp(tamper(good), hashlib.sha256(data).digest(), anchors)


def test_openssl_token_under_the_local_anchor_fails(
    openssl_tsa: OpensslTsa, tsa: LocalTsaMaterial
) -> None:
    data = b"cross"
    with pytest.raises(bv.TimestampInvalid, match="does not chain"):
        bv.verify_timestamp(openssl_tsa.reply(data), hashlib.sha256(data).digest(),
                            anchors_of(tsa))  # fmt: skip


def test_openssl_itself_accepts_what_we_accept(openssl_tsa: OpensslTsa) -> None:
    data = b"cross-check with openssl ts -verify"
    response = openssl_tsa.reply(data)
    (openssl_tsa.folder / "check.tsr").write_bytes(response)
    result = subprocess.run(
        [OPENSSL, "ts", "-verify", "-data", str(openssl_tsa.folder / "data.bin"), "-in",
         str(openssl_tsa.folder / "check.tsr"), "-CAfile", str(openssl_tsa.folder / "ca.pem")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert "Verification: OK" in result.stdout
    bv.verify_timestamp(response, hashlib.sha256(data).digest(),
                        bv.load_anchors(openssl_tsa.ca_pem, "root.pem"))  # fmt: skip


# ---------------------------------------------------------------------------------------------
# RFC 3161: RSA-PSS and Ed25519 signers, named by subjectKeyIdentifier (built with asn1crypto)


def _tsa_pair(
    key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey, *, eku_critical: bool = True
) -> tuple[x509.Certificate, x509.Certificate]:
    now = dt.datetime.now(dt.UTC)
    ca_key = ed25519.Ed25519PrivateKey.generate()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Builder Root")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=9))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, None)
    )  # fmt: skip
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Builder TSA")]))
        .issuer_name(ca_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=9))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]),
                       critical=eku_critical)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .sign(ca_key, None)
    )  # fmt: skip
    return cert, ca


def built_token(
    key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey, cert: x509.Certificate, digest: bytes
) -> bytes:
    der = cert.public_bytes(serialization.Encoding.DER)
    tst = tsp.TSTInfo({
        "version": "v1", "policy": "1.2.3.4.9",
        "message_imprint": {"hash_algorithm": {"algorithm": "sha256"}, "hashed_message": digest},
        "serial_number": 7, "gen_time": dt.datetime.now(dt.UTC), "nonce": 42,
    }).dump()  # fmt: skip
    attrs = cms.CMSAttributes([
        {"type": "content_type", "values": ["tst_info"]},
        {"type": "message_digest", "values": [hashlib.sha256(tst).digest()]},
        {"type": "signing_certificate_v2",
         "values": [{"certs": [{"cert_hash": hashlib.sha256(der).digest()}]}]},
    ])  # fmt: skip
    if isinstance(key, rsa.RSAPrivateKey):
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
        signature = key.sign(attrs.dump(), pss, hashes.SHA256())
        algorithm: dict[str, Any] = {"algorithm": "rsassa_pss", "parameters": {
            "hash_algorithm": {"algorithm": "sha256"},
            "mask_gen_algorithm": {"algorithm": "mgf1",
                                   "parameters": {"algorithm": "sha256"}},
            "salt_length": 32}}  # fmt: skip
    else:
        signature = key.sign(attrs.dump())
        algorithm = {"algorithm": "ed25519"}
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    signed = cms.SignedData({
        "version": "v3", "digest_algorithms": [{"algorithm": "sha256"}],
        "encap_content_info": {"content_type": "tst_info", "content": tsp.TSTInfo.load(tst)},
        "certificates": [cms.CertificateChoices(
            name="certificate", value=asn1_x509.Certificate.load(der))],
        "signer_infos": [{
            "version": "v3",
            "sid": cms.SignerIdentifier(name="subject_key_identifier", value=ski),
            "digest_algorithm": {"algorithm": "sha256"}, "signed_attrs": attrs,
            "signature_algorithm": algorithm, "signature": signature,
        }],
    })  # fmt: skip
    token = cms.ContentInfo({"content_type": "signed_data", "content": signed}).dump()
    status = core.Sequence.load(b"\x30\x03\x02\x01\x00").dump()  # PKIStatusInfo, granted
    body = status + token
    return b"\x30" + bytes([0x82]) + len(body).to_bytes(2, "big") + body


@pytest.mark.parametrize("kind", ["rsa-pss", "ed25519"])
def test_pss_and_ed25519_tokens_named_by_key_identifier_verify(kind: str) -> None:
    key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048) if kind == "rsa-pss"
        else ed25519.Ed25519PrivateKey.generate()
    )  # fmt: skip
    cert, ca = _tsa_pair(key)
    anchors = [bv.TrustAnchor("root", ca, ca.public_bytes(serialization.Encoding.DER))]
    digest = hashlib.sha256(b"data").digest()
    token = built_token(key, cert, digest)
    result = bv.verify_timestamp(token, digest, anchors)
    assert result.policy_oid == "1.2.3.4.9"
    assert result.tsa_name == "CN=Builder TSA"
    with pytest.raises(bv.TimestampInvalid, match="signature does not verify"):
        bv.verify_timestamp(_tamper_signature(token), digest, anchors)


def test_signer_without_critical_time_stamping_usage_is_refused() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    cert, ca = _tsa_pair(key, eku_critical=False)
    anchors = [bv.TrustAnchor("root", ca, ca.public_bytes(serialization.Encoding.DER))]
    digest = hashlib.sha256(b"data").digest()
    with pytest.raises(bv.TimestampInvalid, match="not critical"):
        bv.verify_timestamp(built_token(key, cert, digest), digest, anchors)


# ---------------------------------------------------------------------------------------------
# Merkle proofs against evidence.merkle


def test_inclusion_proofs_from_merkle_tree_verify_and_flipped_bits_fail() -> None:
    rng = random.Random(1)
    for size in [1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 31, 33, *rng.sample(range(34, 300), 8)]:
        leaves = [leaf_hash(f"entry {i}".encode()) for i in range(size)]
        tree = MerkleTree(leaves)
        root = tree.root()
        for index in {0, size - 1, rng.randrange(size)}:
            proof = tree.inclusion_proof(index)
            bv.verify_inclusion(leaves[index], index, size, proof, root)
            if proof:
                which = rng.randrange(len(proof))
                bad = [*proof]
                bad[which] = flip(bad[which], rng.randrange(32))
                with pytest.raises(bv.ProofInvalid):
                    bv.verify_inclusion(leaves[index], index, size, bad, root)
                with pytest.raises(bv.ProofInvalid):
                    bv.verify_inclusion(leaves[index], index, size, proof[:-1], root)
            with pytest.raises(bv.ProofInvalid):
                bv.verify_inclusion(flip(leaves[index], 0), index, size, proof, root)
            if size > 1:
                with pytest.raises(bv.ProofInvalid):
                    bv.verify_inclusion(leaves[index], (index + 1) % size, size, proof, root)


def test_consistency_proofs_from_merkle_tree_verify_and_flipped_bits_fail() -> None:
    rng = random.Random(2)
    leaves = [leaf_hash(f"e{i}".encode()) for i in range(200)]
    tree = MerkleTree(leaves)
    pairs = [(1, 1), (1, 2), (2, 3), (3, 7), (4, 8), (5, 200), (128, 200), (199, 200)]
    pairs += [tuple(sorted(rng.sample(range(1, 201), 2))) for _ in range(20)]  # type: ignore[misc]
    for old, new in pairs:
        proof = tree.consistency_proof(old, new)
        old_root, new_root = tree.root(old), tree.root(new)
        bv.verify_consistency(old, new, old_root, new_root, proof)
        for index in range(len(proof)):
            bad = [*proof]
            bad[index] = flip(bad[index], rng.randrange(32))
            with pytest.raises(bv.ProofInvalid):
                bv.verify_consistency(old, new, old_root, new_root, bad)
        if old != new:
            with pytest.raises(bv.ProofInvalid):
                bv.verify_consistency(old, new, flip(old_root, 3), new_root, proof)
            with pytest.raises(bv.ProofInvalid):
                bv.verify_consistency(old, new, old_root, flip(new_root, 3), proof)


# ---------------------------------------------------------------------------------------------
# A small spec-conforming bundle


WARC = b"WARC/1.1\r\nWARC-Type: response\r\n\r\n" + bytes(range(256)) * 64
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 32
HTML = b"<html><body>post</body></html>\n" * 40


def make_wacz(warc_name: str, warc: bytes, *, inner_warc: bytes | None = None) -> bytes:
    """A WACZ with the members the verifier checks; `inner_warc` puts other bytes inside."""
    inside = warc if inner_warc is None else inner_warc
    members = {
        f"archive/{warc_name}": inside,
        "indexes/index.cdx": b"com,example)/ 20261122204324 {}\n",
        "pages/pages.jsonl": b'{"format": "json-pages-1.0"}\n',
    }
    resources = [
        {"name": Path(p).name, "path": p, "hash": "sha256:" + hashlib.sha256(d).hexdigest(),
         "bytes": len(d)}
        for p, d in members.items()
    ]  # fmt: skip
    package = json.dumps({"profile": "data-package", "resources": resources}).encode()
    digest = json.dumps({"path": "datapackage.json",
                         "hash": "sha256:" + hashlib.sha256(package).hexdigest()}).encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data, zipfile.ZIP_STORED)
        archive.writestr("datapackage.json", package, zipfile.ZIP_DEFLATED)
        archive.writestr("datapackage-digest.json", digest, zipfile.ZIP_DEFLATED)
    return out.getvalue()


class _Pipe:
    """A write-only sink with no seek or tell, like the exporter's hashing stream."""

    def __init__(self, out: io.BufferedWriter) -> None:
        self.out = out

    def write(self, data: bytes) -> int:
        return self.out.write(data)

    def flush(self) -> None:
        pass


@dataclass
class Bundle:
    files: dict[str, bytes]  # path under data/ -> bytes
    signer: Signer
    tsa: LocalTsaMaterial
    tree: MerkleTree
    log: list[bytes]
    checkpoint: dict[str, Any]
    extra_tag_files: dict[str, bytes] = field(default_factory=dict)
    seal: Signer | None = None  # signs the bag as a whole, as the exporter does from revision 3

    def write(self, path: Path, *, piped: bool = False) -> Path:
        """`piped`: through a stream that cannot seek, as the exporter writes (each entry's
        sizes in a data descriptor after its data, ZIP64 local headers for streamed files)."""
        with path.open("wb") as handle:
            sink: Any = _Pipe(handle) if piped else handle
            writer = BagWriter(sink, bag_name=BAG,
                               bagging_time=dt.datetime(2026, 11, 22, 20, 43, tzinfo=dt.UTC))
            for name, data in self.files.items():
                writer.add_file(name, iter([data]) if piped else data)
            writer.close({"Source-Organization": "Test Unit", "External-Identifier": "export"},
                         seal=functools.partial(bag_signature, self.seal) if self.seal
                         else None)  # fmt: skip
        return path

    def copy(self, **changes: Any) -> Bundle:
        return dataclasses.replace(self, files=dict(self.files), **changes)

    def sign_checkpoint(self, size: int) -> dict[str, Any]:
        root = self.tree.root(size)
        body = bv.checkpoint_body("evidence-locker test", size, root)
        return {"origin": "evidence-locker test", "tree_size": size, "root_hash": root.hex(),
                "key_id": self.signer.key_id,
                "signature": base64.b64encode(self.signer.sign(body)).decode(),
                "created_at": "2026-11-22T20:43:24.000000Z"}  # fmt: skip

    def set_json(self, path: str, value: Any) -> None:
        self.files[path] = json.dumps(value, indent=2).encode()

    def get_json(self, path: str) -> Any:
        return json.loads(self.files[path])


def make_bundle(
    tsa: LocalTsaMaterial, *, with_checkpoint_token: bool = True, warc: bytes = WARC
) -> Bundle:
    signer = Signer.generate()
    authority = LocalTimestampAuthority.from_material(tsa)
    case_id, other_case = str(uuid.uuid4()), str(uuid.uuid4())
    capture_id, export_id = str(uuid.uuid4()), str(uuid.uuid4())
    folder = "exhibits/EX-001"
    artifacts = [("screenshot", "screenshot.png", "image/png", PNG),
                 ("warc", "capture.warc", "application/warc", warc),
                 ("dom", "page.html", "text/html", HTML)]  # fmt: skip
    manifest = canonical_json({
        "type": "evidence-locker/capture-manifest", "capture_id": capture_id,
        "case": {"id": case_id, "ref": "OP-TEST"}, "status": "complete",
        "requested_url": "https://example.org/post/1", "final_url": "https://example.org/post/1",
        "started_at": "2026-11-22T20:00:00.000000Z", "finished_at": "2026-11-22T20:00:09.000000Z",
        "artifacts": [{"kind": k, "name": n, "media_type": m, "size": len(d),
                       "sha256": hashlib.sha256(d).hexdigest()} for k, n, m, d in artifacts],
    })  # fmt: skip
    manifest_sha = hashlib.sha256(manifest).hexdigest()

    # The global log: entries of another case interleave with this case's chain.
    log: list[bytes] = []
    chain: list[bytes] = []
    heads: dict[str, tuple[int, str | None]] = {}

    def append(case: str, action: str, obj: dict[str, Any] | None, sha: str | None,
               details: dict[str, Any] | None = None) -> None:
        case_seq, prev = heads.get(case, (0, None))
        entry = canonical_json({
            "v": 1, "seq": len(log) + 1, "at": "2026-11-22T20:00:00.000000Z",
            "actor": {"id": str(uuid.UUID(int=1)), "name": "alice"}, "action": action,
            "case": {"id": case, "ref": "OP-TEST" if case == case_id else "OTHER"},
            "case_seq": case_seq + 1, "prev_case_hash": prev, "object": obj, "sha256": sha,
            "details": details or {},
        })  # fmt: skip
        log.append(entry)
        heads[case] = (case_seq + 1, leaf_hash(entry).hex())
        if case == case_id:
            chain.append(entry)

    append(other_case, "case.created", None, None)
    append(case_id, "case.created", {"type": "case", "id": case_id}, None)
    append(other_case, "note.added", None, None)
    append(case_id, "capture.recorded", {"type": "capture", "id": capture_id}, manifest_sha)
    append(case_id, "export.started", {"type": "export", "id": export_id}, None, {
        "targets": [],
        "exhibits": [{"number": "EX-001", "capture": capture_id, "manifest_sha256": manifest_sha}],
    })  # fmt: skip
    tree = MerkleTree([leaf_hash(e) for e in log])
    bundle = Bundle(files={}, signer=signer, tsa=tsa, tree=tree, log=log, checkpoint={})
    checkpoint = bundle.sign_checkpoint(len(log))
    bundle.checkpoint = checkpoint
    body = bv.checkpoint_body(checkpoint["origin"], len(log), tree.root())

    files: dict[str, bytes] = {}
    files["README.txt"] = b"An evidence bundle. Run: python verify.py BUNDLE.zip\n"
    files["verify.py"] = MODULE.read_bytes()
    files["report.pdf"] = b"%PDF-1.4\n% not a real report\n"
    files["keys/signing-key.pem"] = signer.verifier.public_pem()
    files["keys/tsa/local-tsa-ca.pem"] = tsa.ca_certificate_pem
    files["custody/entries.jsonl"] = b"".join(e + b"\n" for e in chain)
    files["custody/proofs.json"] = json.dumps({
        "tree_size": len(log), "root": tree.root().hex(),
        "proofs": [{"seq": json.loads(e)["seq"], "leaf_index": json.loads(e)["seq"] - 1,
                    "path": [h.hex() for h in tree.inclusion_proof(json.loads(e)["seq"] - 1)]}
                   for e in chain],
    }).encode()  # fmt: skip
    files["custody/checkpoint.json"] = json.dumps(checkpoint).encode()
    if with_checkpoint_token:
        files["custody/checkpoint.tsr"] = authority.timestamp(
            hashlib.sha256(body).digest()).response_der  # fmt: skip
    files[f"{folder}/manifest.json"] = manifest
    files[f"{folder}/manifest.sig"] = signer.sign(manifest)
    files[f"{folder}/manifest.tsr"] = authority.timestamp(
        hashlib.sha256(manifest).digest()).response_der  # fmt: skip
    files[f"{folder}/archive.wacz"] = make_wacz("capture.warc", warc)
    for _, name, _, data in artifacts:
        files[f"{folder}/files/{name}"] = data
    graph = build_case_graph(
        InvestigationInfo(id=uuid.UUID(case_id), reference="OP-TEST", title="Test"),
        [CaptureInfo(
            id=uuid.UUID(capture_id), requested_url="https://example.org/post/1",
            started_at=dt.datetime(2026, 11, 22, 20, tzinfo=dt.UTC), tool_name="evidence-locker",
            tool_version="0.1.0", status="complete", exhibit_number="EX-001",
            manifest_sha256=manifest_sha,
            artifacts=tuple(FileInfo(f"{folder}/files/{n}", k, m, len(d),
                                     hashlib.sha256(d).hexdigest()) for k, n, m, d in artifacts),
        )],
    )  # fmt: skip
    files["case.jsonld"] = json.dumps(graph, indent=1).encode()
    files["bundle.json"] = json.dumps({
        "format": "evidence-locker/bundle", "version": 1, "export_id": export_id,
        "created_at": "2026-11-22T20:43:24.123456Z", "tool": "evidence-locker 0.1.0",
        "case": {"id": case_id, "reference": "OP-TEST", "title": "Test", "offence": None,
                 "jurisdiction": "DE"},
        "exported_by": {"id": str(uuid.UUID(int=1)), "name": "alice", "unit": "Unit"},
        "signing_key": {"path": "keys/signing-key.pem", "key_id": signer.key_id},
        "tsa_certificates": ["keys/tsa/local-tsa-ca.pem"],
        "custody": {"entries": "custody/entries.jsonl", "proofs": "custody/proofs.json",
                    "checkpoint": "custody/checkpoint.json",
                    "checkpoint_token": "custody/checkpoint.tsr" if with_checkpoint_token
                    else None},
        "case_graph": "case.jsonld", "report": "report.pdf", "verifier": "verify.py",
        "exhibits": [{
            "number": "EX-001", "capture_id": capture_id, "target_id": str(uuid.uuid4()),
            "url": "https://example.org/post/1", "final_url": "https://example.org/post/1",
            "status": "complete", "manifest_sha256": manifest_sha,
            "manifest": f"{folder}/manifest.json", "signature": f"{folder}/manifest.sig",
            "timestamp_token": f"{folder}/manifest.tsr", "wacz": f"{folder}/archive.wacz",
            "files": [{"path": f"{folder}/files/{n}", "kind": k, "name": n, "media_type": m,
                       "size": len(d), "sha256": hashlib.sha256(d).hexdigest()}
                      for k, n, m, d in artifacts],
        }],
    }, indent=2).encode()  # fmt: skip
    bundle.files = files
    return bundle


def rewrite_zip(source: Path, target: Path, mutate: Callable[[dict[str, bytes]], object]) -> Path:
    with zipfile.ZipFile(source) as original:
        entries = {info.filename: original.read(info) for info in original.infolist()}
    mutate(entries)
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as copy:
        for name, content in entries.items():
            copy.writestr(name, content, zipfile.ZIP_STORED if name.endswith(".wacz")
                          else zipfile.ZIP_DEFLATED)  # fmt: skip
    return target


def check(report: bv.VerificationReport, name: str) -> bv.Check:
    found = [c for c in report.checks if c.name == name]
    assert found, f"no check {name!r} in {[c.name for c in report.checks]}"
    return found[0]


def assert_no_internal_error(report: bv.VerificationReport) -> None:
    assert not any("internal error" in p for p in report.problems), report.problems


def has_problem(report: bv.VerificationReport, *parts: str) -> bool:
    return any(all(part in p for part in parts) for p in report.problems)


@pytest.fixture(scope="module")
def good(tsa: LocalTsaMaterial, tmp_path_factory: pytest.TempPathFactory) -> tuple[Bundle, Path]:
    bundle = make_bundle(tsa)
    return bundle, bundle.write(tmp_path_factory.mktemp("good") / f"{BAG}.zip")


# ---------------------------------------------------------------------------------------------
# Whole bundles


def test_good_bundle_verifies_with_every_check_named(good: tuple[Bundle, Path]) -> None:
    bundle, path = good
    messages: list[str] = []
    report = bv.verify_bundle(path, progress=messages.append)
    assert report.ok, report.render()
    names = [c.name for c in report.checks]
    assert names == [
        "bag", "index", "signing key", "bag signature", "timestamp trust anchors",
        "EX-001 manifest",
        "EX-001 signature", "EX-001 files",
        "EX-001 timestamp", "EX-001 WACZ", "custody entries", "custody checkpoint",
        "custody proofs", "custody checkpoint timestamp", "custody capture records",
        "custody export record", "case graph",
    ]  # fmt: skip
    assert bundle.signer.key_id in check(report, "signing key").detail
    assert "timestamped" in check(report, "EX-001 timestamp").detail
    assert any("capturing system's clock" in n for n in report.notes)
    assert any(bundle.signer.key_id in n and "publishes" in n for n in report.notes)
    fingerprint = bv.load_anchors(bundle.tsa.ca_certificate_pem, "x")[0].fingerprint
    assert any(fingerprint in n for n in report.notes)
    assert any("records the request for this export" in n for n in report.notes)
    assert messages
    rendered = report.render()
    assert rendered.splitlines()[-1].startswith("VERIFIED")
    as_json = report.to_json()
    assert set(as_json) == {"ok", "bundle", "checks", "problems", "warnings", "notes",
                            "not_run"}
    assert as_json["warnings"] == [] and "Warnings" not in rendered
    assert as_json["ok"] is True and as_json["bundle"] == path.name
    json.dumps(as_json)


def test_unzipped_folder_and_its_parent_verify(good: tuple[Bundle, Path], tmp_path: Path) -> None:
    _, path = good
    with zipfile.ZipFile(path) as archive:
        archive.extractall(tmp_path)
    assert bv.verify_bundle(tmp_path / BAG).ok
    report = bv.verify_bundle(tmp_path)
    assert report.ok, report.render()


def test_key_pinning(good: tuple[Bundle, Path]) -> None:
    bundle, path = good
    report = bv.verify_bundle(path, key_pem=bundle.signer.verifier.public_pem())
    assert report.ok
    assert "pinned" in check(report, "signing key").detail
    other = Signer.generate()
    report = bv.verify_bundle(path, key_pem=other.verifier.public_pem())
    assert not report.ok
    assert has_problem(report, "keys/signing-key.pem", "not the pinned key", other.key_id)
    # Signatures are then checked under the pinned key, so they fail too.
    assert has_problem(report, "exhibits/EX-001/manifest.sig", "does not verify")
    assert has_problem(report, "custody/checkpoint.json", "signed by key")
    report = bv.verify_bundle(path, key_pem=b"not a key")
    assert has_problem(report, "--key", "not a PEM public key")


def test_extra_trust_anchor_is_listed_with_its_fingerprint(
    good: tuple[Bundle, Path], openssl_tsa: OpensslTsa
) -> None:
    _, path = good
    report = bv.verify_bundle(path, trusted_tsa_pems=[openssl_tsa.ca_pem])
    assert report.ok
    fingerprint = bv.load_anchors(openssl_tsa.ca_pem, "x")[0].fingerprint
    assert any("--trust-tsa #1" in n and fingerprint in n for n in report.notes)


def test_checkpoint_without_token_is_noted_not_failed(
    tsa: LocalTsaMaterial, tmp_path: Path
) -> None:
    bundle = make_bundle(tsa, with_checkpoint_token=False)
    report = bv.verify_bundle(bundle.write(tmp_path / "b.zip"))
    assert report.ok, report.render()
    assert "no timestamp token" in check(report, "custody checkpoint timestamp").detail


# -- bag-level tampering, on the ZIP after it was written ----------------------------------------


def _payload(name: str) -> str:
    return f"{BAG}/data/{name}"


@pytest.mark.parametrize(
    ("mutate", "where", "what"),
    [
        (lambda e: e.__setitem__(_payload("report.pdf"), e[_payload("report.pdf")] + b"x"),
         "report.pdf", "manifest-sha256.txt says"),
        (lambda e: e.__setitem__(_payload("exhibits/EX-001/files/added.txt"), b"new"),
         "exhibits/EX-001/files/added.txt", "not listed in manifest-sha256.txt"),
        (lambda e: e.pop(_payload("README.txt")), "README.txt", "missing from the bundle"),
        (lambda e: e.__setitem__(f"{BAG}/bag-info.txt", b"Payload-Oxum: 1.1\n"),
         "bag-info.txt", "tagmanifest-sha256.txt says"),
        (lambda e: e.__setitem__(f"{BAG}/bagit.txt", b"BagIt-Version: 0.97\n"),
         "bagit.txt", "BagIt"),
    ],
    ids=["byte-flipped", "file-added", "file-deleted", "bag-info-edited", "declaration"],
)  # fmt: skip
def test_bag_tampering_is_named(
    good: tuple[Bundle, Path], tmp_path: Path, mutate: Callable[[dict[str, bytes]], object],
    where: str, what: str,
) -> None:
    _, path = good
    report = bv.verify_bundle(rewrite_zip(path, tmp_path / "t.zip", mutate))
    assert not report.ok
    assert not check(report, "bag").ok
    assert has_problem(report, where, what), report.problems
    assert_no_internal_error(report)


def test_deleted_file_also_fails_the_exhibit(good: tuple[Bundle, Path], tmp_path: Path) -> None:
    _, path = good
    name = _payload("exhibits/EX-001/files/screenshot.png")
    report = bv.verify_bundle(rewrite_zip(path, tmp_path / "t.zip", lambda e: e.pop(name)))
    assert has_problem(report, "exhibits/EX-001/files/screenshot.png", "missing from the bundle")
    assert not check(report, "index").ok
    assert not check(report, "case graph").ok


def test_percent_escaped_names_and_oxum(tmp_path: Path) -> None:
    path = tmp_path / "bag.zip"
    with path.open("wb") as handle:
        writer = BagWriter(handle, bag_name="bag")
        writer.add_file("100% sure.txt", b"percent")
        writer.add_file("odd%0Aname.txt", b"looks escaped")
        writer.close({})
    with zipfile.ZipFile(path) as archive:
        manifest = archive.read("bag/manifest-sha256.txt").decode()
    assert "100%25 sure.txt" in manifest and "odd%250Aname.txt" in manifest
    report = bv.verify_bundle(path)
    assert check(report, "bag").ok, report.problems
    assert "2 payload files" in check(report, "bag").detail
    assert not check(report, "index").ok  # no bundle.json: a bag, but not a bundle


def test_a_large_file_deflated_a_thousandfold_inflates_whole(tmp_path: Path) -> None:
    """zlib may have read all of an entry's input and still hold output for it."""
    path = tmp_path / "bag.zip"
    with path.open("wb") as handle:
        writer = BagWriter(handle, bag_name="bag")
        # 8 MiB that deflate about 250:1, after a head that puts the stream's end where zlib
        # has read the last input byte with output still to give.
        writer.add_file("log.txt", b"W" * 64 + bytes(range(256)) * (32 * 1024),
                        compress=False)
        writer.close({})
    report = bv.verify_bundle(rewrite_zip(path, tmp_path / "deflated.zip", lambda _: None))
    assert check(report, "bag").ok, report.problems
    assert "8.4 MB" in check(report, "bag").detail


def test_oxum_mismatch_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bag.zip"
    with path.open("wb") as handle:
        writer = BagWriter(handle, bag_name="bag")
        writer.add_file("a.txt", b"aaaa")
        writer.close({})

    def lie(entries: dict[str, bytes]) -> None:
        entries["bag/bag-info.txt"] = entries["bag/bag-info.txt"].replace(b"4.1", b"5.1")
        tag = hashlib.sha256(entries["bag/bag-info.txt"]).hexdigest()
        lines = [line if not line.endswith(" bag-info.txt") else f"{tag}  bag-info.txt"
                 for line in entries["bag/tagmanifest-sha256.txt"].decode().splitlines()]
        entries["bag/tagmanifest-sha256.txt"] = ("\n".join(lines) + "\n").encode()

    report = bv.verify_bundle(rewrite_zip(path, tmp_path / "t.zip", lie))
    # Worded for an expert witness, not a programmer: what the number is, and that no other
    # change accounts for it.
    assert check(report, "bag").detail == (
        "bag-info.txt: the files under data/ add up to 4 bytes in 1 file, but the exporter "
        "recorded 5 bytes in 1 file (Payload-Oxum 5.1); no file under data/ is named above as "
        "missing, added or altered, so the record itself does not match the files the manifest "
        "lists: bag-info.txt was edited, or the files and manifest-sha256.txt were both changed")


def test_a_payload_oxum_that_follows_from_another_change_says_so(
    good: tuple[Bundle, Path], tmp_path: Path
) -> None:
    def add(entries: dict[str, bytes]) -> None:
        entries[_payload("notes.txt")] = b"x" * 1000

    report = bv.verify_bundle(rewrite_zip(good[1], tmp_path / "added.zip", add))
    [oxum] = [p for p in report.problems if "Payload-Oxum" in p]
    assert "bytes.files" not in oxum
    assert oxum.endswith("this follows from the file(s) named above as missing, added, altered "
                         "or unreadable (notes.txt), not from a further change")
    assert report.problems.index(oxum) > next(
        n for n, p in enumerate(report.problems) if p.startswith("notes.txt: "))


# -- deeper tampering: the bag is re-made, so only the inner checks can catch it ------------------


def _rebag(
    bundle: Bundle, tmp_path: Path, change: Callable[[Bundle], None]
) -> bv.VerificationReport:
    changed = Bundle(dict(bundle.files), bundle.signer, bundle.tsa, bundle.tree, bundle.log,
                     bundle.checkpoint)  # fmt: skip
    change(changed)
    report = bv.verify_bundle(changed.write(tmp_path / "rebagged.zip"))
    assert check(report, "bag").ok, report.problems
    assert not report.ok
    assert_no_internal_error(report)
    return report


def test_altered_manifest_fails_signature_hash_and_timestamp(
    good: tuple[Bundle, Path], tmp_path: Path
) -> None:
    path = "exhibits/EX-001/manifest.json"

    def change(b: Bundle) -> None:
        b.files[path] = b.files[path].replace(b"example.org", b"example.com")

    report = _rebag(good[0], tmp_path, change)
    assert has_problem(report, "exhibits/EX-001/manifest.sig", "does not verify")
    assert has_problem(report, path, "manifest_sha256 says")
    assert has_problem(report, "exhibits/EX-001/manifest.tsr", "message imprint does not match")


def test_altered_artifact_fails_against_the_signed_manifest(
    good: tuple[Bundle, Path], tmp_path: Path
) -> None:
    path = "exhibits/EX-001/files/page.html"

    def change(b: Bundle) -> None:
        b.files[path] = b.files[path].replace(b"post", b"p0st")

    report = _rebag(good[0], tmp_path, change)
    assert has_problem(report, path, "the signed manifest says")
    assert has_problem(report, path, "the case graph says")


def test_unlisted_file_under_files_fails(good: tuple[Bundle, Path], tmp_path: Path) -> None:
    report = _rebag(good[0], tmp_path,
                    lambda b: b.files.__setitem__("exhibits/EX-001/files/x.png", b"x"))
    assert has_problem(report, "exhibits/EX-001/files/x.png", "not listed in the capture manifest")


def test_other_warc_inside_the_wacz_fails(good: tuple[Bundle, Path], tmp_path: Path) -> None:
    def change(b: Bundle) -> None:
        b.files["exhibits/EX-001/archive.wacz"] = make_wacz(
            "capture.warc", WARC, inner_warc=WARC + b"x")

    report = _rebag(good[0], tmp_path, change)
    assert has_problem(report, "archive.wacz", "archive/capture.warc", "not the capture's WARC")


def test_wacz_member_not_matching_its_datapackage_fails(
    good: tuple[Bundle, Path], tmp_path: Path
) -> None:
    def change(b: Bundle) -> None:
        source = io.BytesIO(b.files["exhibits/EX-001/archive.wacz"])
        out = io.BytesIO()
        with zipfile.ZipFile(source) as old, zipfile.ZipFile(out, "w") as new:
            for info in old.infolist():
                data = old.read(info)
                if info.filename == "pages/pages.jsonl":
                    data += b"{}\n"
                new.writestr(info, data)
        b.files["exhibits/EX-001/archive.wacz"] = out.getvalue()

    report = _rebag(good[0], tmp_path, change)
    assert has_problem(report, "archive.wacz", "pages/pages.jsonl", "datapackage.json says")


def _entries(b: Bundle) -> list[bytes]:
    return b.files["custody/entries.jsonl"].splitlines()


def test_altered_custody_entry_is_named_by_seq(good: tuple[Bundle, Path], tmp_path: Path) -> None:
    def change(b: Bundle) -> None:
        lines = _entries(b)
        lines[0] = lines[0].replace(b'"alice"', b'"mallory"')
        b.files["custody/entries.jsonl"] = b"\n".join(lines) + b"\n"

    report = _rebag(good[0], tmp_path, change)
    assert has_problem(report, "custody entry seq 2", "not in the checkpoint's tree")
    assert has_problem(report, "custody entry seq 4", "prev_case_hash")


def test_removed_custody_entry_breaks_the_chain(good: tuple[Bundle, Path], tmp_path: Path) -> None:
    def change(b: Bundle) -> None:
        lines = _entries(b)
        del lines[1]
        b.files["custody/entries.jsonl"] = b"\n".join(lines) + b"\n"

    report = _rebag(good[0], tmp_path, change)
    assert has_problem(report, "custody entry seq 5", "case_seq is 3 where 2 comes next")
    assert has_problem(report, "EX-001", "no capture.recorded custody entry")
    assert has_problem(report, "custody/proofs.json", "3 proofs for 2 entries")


def test_entry_of_another_case_and_malformed_lines_are_named(
    good: tuple[Bundle, Path], tmp_path: Path
) -> None:
    def change(b: Bundle) -> None:
        lines = _entries(b)
        lines.insert(1, b"{not json")
        lines.append(b"[1, 2]")
        b.files["custody/entries.jsonl"] = b"\n".join(lines)  # and no final newline

    report = _rebag(good[0], tmp_path, change)
    assert has_problem(report, "custody/entries.jsonl line 2", "not valid JSON")
    assert has_problem(report, "custody/entries.jsonl line 5", "does not end with a newline")
    assert has_problem(report, "custody/entries.jsonl line 5", "not a JSON object")


def test_forged_checkpoint_fails(good: tuple[Bundle, Path], tmp_path: Path) -> None:
    def change(b: Bundle) -> None:
        checkpoint = dict(b.checkpoint)
        checkpoint["root_hash"] = "00" * 32
        b.set_json("custody/checkpoint.json", checkpoint)

    report = _rebag(good[0], tmp_path, change)
    assert has_problem(report, "custody/checkpoint.json", "signature does not verify")


def test_checkpoint_token_over_other_body_fails(good: tuple[Bundle, Path], tmp_path: Path) -> None:
    def change(b: Bundle) -> None:
        b.files["custody/checkpoint.tsr"] = b.files["exhibits/EX-001/manifest.tsr"]

    report = _rebag(good[0], tmp_path, change)
    assert has_problem(report, "custody/checkpoint.tsr", "message imprint does not match")


def test_capture_record_with_another_hash_is_named(
    good: tuple[Bundle, Path], tsa: LocalTsaMaterial, tmp_path: Path
) -> None:
    def change(b: Bundle) -> None:
        index = b.get_json("bundle.json")
        index["exhibits"][0]["capture_id"] = str(uuid.uuid4())
        b.set_json("bundle.json", index)

    report = _rebag(good[0], tmp_path, change)
    assert has_problem(report, "EX-001", "no capture.recorded custody entry")
    assert has_problem(report, "exhibits/EX-001/manifest.json", "is the manifest of capture")


def test_case_graph_that_disagrees_is_named(good: tuple[Bundle, Path], tmp_path: Path) -> None:
    def change(b: Bundle) -> None:
        b.files["case.jsonld"] = b.files["case.jsonld"].replace(
            hashlib.sha256(PNG).hexdigest().encode(), b"ab" * 32)

    report = _rebag(good[0], tmp_path, change)
    assert has_problem(report, "exhibits/EX-001/files/screenshot.png", "the case graph says")


def test_case_graph_reads_full_iris_and_referenced_nodes() -> None:
    uco = "https://ontology.unifiedcyberontology.org/uco/"
    graph = {
        "@context": {"obs": uco + "observable/"},
        "@graph": [
            {"@id": "urn:file", "@type": "obs:File",
             uco + "core/hasFacet": [{"@id": "urn:ff"}, {"@id": "urn:cf"}]},
            {"@id": "urn:ff", "@type": "obs:FileFacet", "obs:filePath": "a/b.txt",
             "obs:sizeInBytes": {"@type": "xsd:integer", "@value": "3"}},
            {"@id": "urn:cf", "@type": "obs:ContentDataFacet", "obs:hash": {"@id": "urn:h"}},
            {"@id": "urn:h", uco + "types/hashMethod": "SHA256",
             uco + "types/hashValue": {"@value": "AB" * 32}},
        ],
    }  # fmt: skip
    problems: list[str] = []
    assert bv._graph_files(graph, problems) == {"a/b.txt": ("ab" * 32, 3)}
    assert not problems


# -- older checkpoints -----------------------------------------------------------------------------


def test_against_older_checkpoint_with_consistency_proof(good: tuple[Bundle, Path]) -> None:
    bundle, path = good
    size = bundle.tree.size
    old = bundle.sign_checkpoint(3)
    proof: dict[str, Any] = {"old_size": 3, "new_size": size,
             "path": [h.hex() for h in bundle.tree.consistency_proof(3, size)]}  # fmt: skip
    report = bv.verify_bundle(path, against_checkpoint=old, consistency_proof=proof)
    assert report.ok, report.problems
    assert "prefix" in check(report, "custody consistency with older checkpoint").detail

    assert not bv.verify_bundle(path, against_checkpoint=old).ok
    bad = dict(proof, path=[flip(bytes.fromhex(proof["path"][0]), 1).hex(), *proof["path"][1:]])
    report = bv.verify_bundle(path, against_checkpoint=old, consistency_proof=bad)
    assert has_problem(report, "consistency proof", "does not lead")
    forged = dict(old, signature=base64.b64encode(b"\x00" * 64).decode())
    report = bv.verify_bundle(path, against_checkpoint=forged, consistency_proof=proof)
    assert has_problem(report, "older checkpoint", "does not verify")


def test_against_checkpoint_of_the_same_size(good: tuple[Bundle, Path]) -> None:
    bundle, path = good
    assert bv.verify_bundle(path, against_checkpoint=bundle.checkpoint).ok
    other = Bundle({}, bundle.signer, bundle.tsa,
                   MerkleTree([leaf_hash(b"x")] * bundle.tree.size), [], {})  # fmt: skip
    forked = other.sign_checkpoint(bundle.tree.size)
    report = bv.verify_bundle(path, against_checkpoint=forked)
    assert has_problem(report, "older checkpoint", "different root")
    larger = Bundle({}, bundle.signer, bundle.tsa,
                    MerkleTree([leaf_hash(b"x")] * 9), [], {}).sign_checkpoint(9)  # fmt: skip
    report = bv.verify_bundle(path, against_checkpoint=larger)
    assert has_problem(report, "older checkpoint", "cut short or forked")


# ---------------------------------------------------------------------------------------------
# Hostile input: problems, never exceptions


def test_not_a_zip(tmp_path: Path) -> None:
    path = tmp_path / "junk.zip"
    path.write_bytes(os.urandom(5000))
    report = bv.verify_bundle(path)
    assert report.unreadable and not report.ok
    assert has_problem(report, "junk.zip", "not a ZIP")
    assert bv.verify_bundle(tmp_path / "absent.zip").unreadable
    empty = tmp_path / "empty"
    empty.mkdir()
    assert bv.verify_bundle(empty).unreadable


def test_zip_with_unsafe_names_refuses_them_unread(
    good: tuple[Bundle, Path], tmp_path: Path
) -> None:
    _, path = good

    def add(entries: dict[str, bytes]) -> None:
        entries[f"{BAG}/../../evil.txt"] = b"x"
        entries["/etc/evil"] = b"x"
        entries[f"{BAG}/data\\evil.txt"] = b"x"

    report = bv.verify_bundle(rewrite_zip(path, tmp_path / "t.zip", add))
    assert has_problem(report, "../../evil.txt", "refused unread")
    assert has_problem(report, "/etc/evil", "absolute path")
    assert has_problem(report, "evil.txt", "backslash")
    assert not (tmp_path / "evil.txt").exists()
    assert_no_internal_error(report)


def test_bundle_json_not_json(good: tuple[Bundle, Path], tmp_path: Path) -> None:
    bundle = good[0]
    for content, message in [(b"{not json", "not valid JSON"), (b"[]", "not a JSON object"),
                             (b'{"a": 1, "a": 2}', "appears twice"), (b"\xff\xfe", "not UTF-8"),
                             (b"[" * 100_000, "nested too deeply"),
                             (b'{"format": NaN}', "not a JSON number")]:  # fmt: skip
        changed = Bundle(dict(bundle.files), bundle.signer, bundle.tsa, bundle.tree, [], {})
        changed.files["bundle.json"] = content
        report = bv.verify_bundle(changed.write(tmp_path / "b.zip"))
        assert has_problem(report, "bundle.json", message), (message, report.problems)
        assert_no_internal_error(report)


def test_without_bundle_json_the_report_says_which_checks_were_never_run(
    good: tuple[Bundle, Path], tmp_path: Path
) -> None:
    """A short list of problems must not read as if the signatures, timestamps and custody log
    had been checked: each check not run is named, with why, and the last line says so."""
    gone = rewrite_zip(good[1], tmp_path / "gone.zip", lambda e: e.pop(_payload("bundle.json")))
    report = bv.verify_bundle(gone)
    assert not report.ok and not report.unreadable
    assert [c.name for c in report.checks] == ["bag", "index"]
    names = [name for name, _ in report.not_run]
    for name in ("signing key", "bag signature", "custody proofs",
                 "custody checkpoint timestamp", "case graph"):  # fmt: skip
        assert name in names
    assert any("exhibit" in name and "signature" in name and "timestamp" in name
               for name in names)  # fmt: skip
    text = report.render()
    assert (f"Not run ({len(names)}), because bundle.json, which names the files they check, "
            "could not be used: missing from the bundle:\n  - signing key\n") in text
    assert text.splitlines()[-1] == (
        f"NOT VERIFIED: {len(report.problems)} problem(s) in 2 of the 2 checks run; "
        f"{len(names)} more checks were not run at all (listed above under 'Not run'), so this "
        "report says nothing of what they check.")
    assert report.to_json()["not_run"][0] == {
        "name": "signing key", "why": "bundle.json, which names the files they check, could not "
        "be used: missing from the bundle"}
    assert bv.main([str(gone), "--quiet"]) == 1
    bundle = good[0]
    broken = Bundle(dict(bundle.files), bundle.signer, bundle.tsa, bundle.tree, [], {})
    broken.files["bundle.json"] = b"{not json"
    unread = bv.verify_bundle(broken.write(tmp_path / "broken.zip"),
                              against_checkpoint=bundle.sign_checkpoint(3))
    assert ("custody consistency with older checkpoint",
            "bundle.json, which names the files they check, could not be used: not valid JSON "
            "(Expecting property name enclosed in double quotes: line 1 column 2 (char 1))",
            ) in unread.not_run
    assert bv.verify_bundle(good[1]).not_run == []


def test_bundle_json_with_wrong_types_gives_problems(
    good: tuple[Bundle, Path], tmp_path: Path
) -> None:
    bundle = good[0]
    index = bundle.get_json("bundle.json")
    variants = [
        {**index, "exhibits": "none"},
        {**index, "exhibits": [1, None, {"number": 5}]},
        {**index, "custody": None, "signing_key": [], "tsa_certificates": {}},
        {**index, "case_graph": "../../etc/passwd"},
        {**index, "exhibits": [{**index["exhibits"][0], "files": [{"path": 7}],
                                "manifest": "bundle.json"}]},
    ]  # fmt: skip
    for variant in variants:
        changed = Bundle(dict(bundle.files), bundle.signer, bundle.tsa, bundle.tree, [], {})
        changed.set_json("bundle.json", variant)
        report = bv.verify_bundle(changed.write(tmp_path / "b.zip"))
        assert not report.ok
        assert_no_internal_error(report)


def test_hostile_json_inside_gives_problems(good: tuple[Bundle, Path], tmp_path: Path) -> None:
    bundle = good[0]
    for name in ["custody/proofs.json", "custody/checkpoint.json", "case.jsonld",
                 "exhibits/EX-001/manifest.json", "custody/checkpoint.tsr",
                 "exhibits/EX-001/manifest.tsr", "keys/signing-key.pem",
                 "keys/tsa/local-tsa-ca.pem", "exhibits/EX-001/archive.wacz"]:  # fmt: skip
        for content in [b"", b"{}", b"[[[[", b"\x30\x82\xff\xff" + b"\x00" * 10, b'{"proofs": 5}']:
            changed = Bundle(dict(bundle.files), bundle.signer, bundle.tsa, bundle.tree, [], {})
            changed.files[name] = content
            report = bv.verify_bundle(changed.write(tmp_path / "b.zip"))
            assert not report.ok, (name, content)
            assert_no_internal_error(report)


def _patch_central_directory(data: bytes, name: bytes, file_size: int) -> bytes:
    """Sets the uncompressed size an entry declares, in its central directory record and its
    local header alike (headers that disagree are refused before anything is read)."""
    out = bytearray(data)
    for signature, name_at, size_at in ((b"PK\x01\x02", 46, 24), (b"PK\x03\x04", 30, 22)):
        at = data.find(signature)
        while data[at + name_at : at + name_at + len(name)] != name:
            at = data.find(signature, at + 4)
            assert at >= 0, "entry not found"
        struct.pack_into("<L", out, at + size_at, file_size)
    return bytes(out)


def test_huge_declared_sizes_are_refused_before_inflating(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("bag/bagit.txt", DECLARATION)
        archive.writestr("bag/data/zeros.bin", b"\x00" * 100_000)
    path = tmp_path / "bomb.zip"
    path.write_bytes(_patch_central_directory(buffer.getvalue(), b"bag/data/zeros.bin", 2**32 - 9))
    report = bv.verify_bundle(path)
    assert report.unreadable
    assert has_problem(report, "bomb.zip", "more than deflate can produce (zip bomb?)")
    # Within the archive's bound, one entry claiming more than deflate can give is refused alone.
    path.write_bytes(_patch_central_directory(buffer.getvalue(), b"bag/data/zeros.bin", 10**7))
    report = bv.verify_bundle(path)
    assert has_problem(report, "zeros.bin", "refused unread", "more than deflate can produce")
    assert_no_internal_error(report)


def test_lying_small_size_is_cut_at_the_declared_size(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("bag/bagit.txt", DECLARATION)
        archive.writestr("bag/data/zeros.bin", b"\x00" * 5_000_000)
    data = _patch_central_directory(buffer.getvalue(), b"bag/data/zeros.bin", 1000)
    path = tmp_path / "liar.zip"
    path.write_bytes(data)
    report = bv.verify_bundle(path)
    assert has_problem(report, "zeros.bin", "inflates past the 1000 bytes")
    assert_no_internal_error(report)


def test_overlapping_entries_are_refused(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("bag/bagit.txt", DECLARATION)
        archive.writestr("bag/data/a.bin", os.urandom(1000))
    data = buffer.getvalue()
    # Duplicate the central directory record of a.bin many times (same data, new names).
    cd_at = data.find(b"PK\x01\x02")
    eocd_at = data.rfind(b"PK\x05\x06")
    records = data[cd_at:eocd_at]
    second = records.find(b"PK\x01\x02", 4)
    record = records[second:]
    extra = b"".join(record.replace(b"bag/data/a.bin", f"bag/data/{i:03d}.bin".encode()[:14])
                     for i in range(20))  # fmt: skip
    directory = records + extra
    eocd = bytearray(data[eocd_at:])
    count = 2 + 20
    eocd[8:12] = struct.pack("<HH", count, count)
    eocd[12:16] = struct.pack("<L", len(directory))
    path = tmp_path / "overlap.zip"
    path.write_bytes(data[:cd_at] + directory + bytes(eocd))
    report = bv.verify_bundle(path)
    assert has_problem(report, "overlap.zip", "overlap")
    assert_no_internal_error(report)


def _deflate_all(source: Path, target: Path) -> Path:
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(target, "w") as copy:
        for info in original.infolist():
            copy.writestr(info.filename, original.read(info), zipfile.ZIP_DEFLATED)
    return target


def test_wacz_deflated_inside_the_bundle_zip_is_inflated_and_checked(
    good: tuple[Bundle, Path], tmp_path: Path
) -> None:
    report = bv.verify_bundle(_deflate_all(good[1], tmp_path / "deflated.zip"))
    assert report.ok, report.render()
    assert "checked from a temporary copy" in check(report, "EX-001 WACZ").detail
    assert any("re-packed" in n and "archive.wacz deflated" in n for n in report.notes)


def test_a_large_deflated_wacz_is_checked_in_bounded_memory_and_leaves_no_copy(
    tsa: LocalTsaMaterial, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = make_bundle(tsa, warc=WARC[:64] + bytes(range(256)) * (256 * 1024))  # 64 MiB
    deflated = _deflate_all(bundle.write(tmp_path / "b.zip"), tmp_path / "deflated.zip")
    assert deflated.stat().st_size < 4 * 1024 * 1024
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    tracemalloc.start()
    try:
        report = bv.verify_bundle(deflated)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.ok, report.render()
    assert "checked from a temporary copy" in check(report, "EX-001 WACZ").detail
    assert peak < 24 * 1024 * 1024, f"peak {peak} bytes while checking a 64 MiB WARC"
    assert list(scratch.iterdir()) == []


def test_wacz_deflated_inside_the_bundle_zip_still_fails_when_its_members_do(
    good: tuple[Bundle, Path], tmp_path: Path
) -> None:
    def change(b: Bundle) -> None:
        b.files["exhibits/EX-001/archive.wacz"] = make_wacz("capture.warc", WARC,
                                                            inner_warc=WARC + b"x")

    changed = Bundle(dict(good[0].files), good[0].signer, good[0].tsa, good[0].tree, [], {})
    change(changed)
    report = bv.verify_bundle(_deflate_all(changed.write(tmp_path / "b.zip"), tmp_path / "d.zip"))
    assert check(report, "bag").ok, report.problems
    assert has_problem(report, "archive.wacz", "archive/capture.warc", "not the capture's WARC")
    assert_no_internal_error(report)


def test_the_bundle_as_written_has_no_repacking_note(good: tuple[Bundle, Path]) -> None:
    assert not any("re-packed" in n for n in bv.verify_bundle(good[1]).notes)


def test_bag_zipped_without_its_folder_verifies_with_a_note(
    good: tuple[Bundle, Path], tmp_path: Path
) -> None:
    def unwrap(entries: dict[str, bytes]) -> None:
        for name in list(entries):
            entries[name.split("/", 1)[1]] = entries.pop(name)

    report = bv.verify_bundle(rewrite_zip(good[1], tmp_path / "flat.zip", unwrap))
    assert report.ok, report.render()
    assert any("re-packed" in n and "at the top of the ZIP" in n for n in report.notes)

    def two_bags(entries: dict[str, bytes]) -> None:
        entries["bagit.txt"] = DECLARATION

    report = bv.verify_bundle(rewrite_zip(good[1], tmp_path / "two.zip", two_bags))
    assert has_problem(report, "two.zip", "one folder holding bagit.txt")


def test_a_bundle_whose_bagit_txt_was_removed_fails_that_check_and_runs_every_other(
    good: tuple[Bundle, Path], tmp_path: Path
) -> None:
    """The rest is plainly an evidence-locker bag: one failed check naming bagit.txt (exit 1),
    not 'not a bundle' (exit 2) with nothing else checked; as a ZIP and unzipped alike."""
    def no_declaration(entries: dict[str, bytes]) -> None:
        del entries[f"{BAG}/bagit.txt"]

    zipped = rewrite_zip(good[1], tmp_path / "undeclared.zip", no_declaration)
    folder = tmp_path / "unzipped"
    with zipfile.ZipFile(zipped) as archive:
        archive.extractall(folder)
    for given in (zipped, folder, folder / BAG):
        report = bv.verify_bundle(given)
        assert not report.unreadable and not report.ok, report.render()
        assert [c.name for c in report.checks if not c.ok] == ["bag"], report.render()
        assert report.problems == [
            "bagit.txt: missing: evidence-locker writes this declaration (BagIt version and "
            "tag-file encoding) into every bundle, so it was removed after export; the bag's "
            "other files and every other check were still run"]
        assert check(report, "custody proofs").ok and check(report, "EX-001 signature").ok
        assert not any("re-packed" in note for note in report.notes), report.notes
    assert bv.main([str(zipped), "--quiet"]) == 1

    def no_bag_either(entries: dict[str, bytes]) -> None:
        del entries[f"{BAG}/bagit.txt"], entries[f"{BAG}/manifest-sha256.txt"]

    unbagged = bv.verify_bundle(rewrite_zip(good[1], tmp_path / "nobag.zip", no_bag_either))
    assert unbagged.unreadable and has_problem(unbagged, "one folder holding bagit.txt")


# -- bytes outside the ZIP archive ---------------------------------------------------------------

STUB = b"MZ" + bytes(range(256)) * 8  # the head of a self-extracting or polyglot file


def _prepended(good: Path, path: Path) -> Path:
    path.write_bytes(STUB + good.read_bytes())
    return path


def _self_extracting(good: Path, path: Path) -> Path:
    """A stub in front with the archive's offsets moved past it, as `zip -A` makes an SFX."""
    _prepended(good, path)
    subprocess.run(["zip", "-q", "-A", str(path)], check=True)
    return path


def _appended(good: Path, path: Path) -> Path:
    path.write_bytes(good.read_bytes() + b"appended after export\n")
    return path


def _commented(good: Path, path: Path) -> Path:
    shutil.copy(good, path)
    with zipfile.ZipFile(path, "a") as archive:
        archive.comment = b"a comment the exporter never writes"
    return path


@pytest.mark.parametrize(
    ("make", "said"),
    [
        (_prepended, f"{len(STUB)} bytes before the ZIP archive (ahead of its first entry)"),
        (_self_extracting, f"{len(STUB)} bytes before the ZIP archive (ahead of its first entry)"),
        (_appended, "22 bytes after the ZIP archive (past its end record)"),
        (_commented, "35 bytes in the ZIP archive's comment"),
    ],
    ids=["prepended", "self-extracting", "appended", "comment"],
)
def test_bytes_outside_the_zip_archive_fail_the_bundle_though_its_files_are_checked(
    good: tuple[Bundle, Path], tmp_path: Path, make: Callable[[Path, Path], Path], said: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """zip tools read past a stub in front of the archive (a self-extracting or polyglot file)
    and past bytes after it, so every file inside may hold while the file is not the one the
    exporter wrote: the report fails it, says how many bytes and where, and what still holds."""
    path = make(good[1], tmp_path / "outside.zip")
    with zipfile.ZipFile(path) as archive:  # what any zip tool makes of it: the bundle's files
        assert archive.testzip() is None
    report = bv.verify_bundle(path)
    assert not report.ok and not report.unreadable
    [problem] = report.problems
    assert problem.startswith(f"outside.zip: {said}, which the exporter never writes: this is "
                              "not the file that was exported"), problem
    assert "The files inside the archive were still checked as usual; they hold: 18 payload files" \
        in problem  # fmt: skip
    assert check(report, "bag").detail == problem
    assert [c.name for c in report.checks if not c.ok] == ["bag"]  # the rest holds, as shown
    assert check(report, "custody checkpoint").ok
    assert bv.main([str(path), "--quiet"]) == 1
    shown = capsys.readouterr().out
    assert f"[FAIL] bag: outside.zip: {said}" in shown and "NOT VERIFIED: 1 problem(s)" in shown


def test_the_bundle_as_written_holds_nothing_outside_its_zip_archive(
    good: tuple[Bundle, Path]
) -> None:
    data = good[1].read_bytes()
    assert data[:4] == b"PK\x03\x04"  # the first entry at byte 0
    assert data[-22:-18] == b"PK\x05\x06" and data[-2:] == b"\x00\x00"  # no comment, no tail
    report = bv.verify_bundle(good[1])
    assert report.ok, report.render()
    assert not any("exporter never writes" in p for p in report.problems)


def test_bytes_outside_the_archive_are_reported_beside_the_bag_s_own_problems(
    good: tuple[Bundle, Path], tmp_path: Path
) -> None:
    def alter(entries: dict[str, bytes]) -> None:
        entries[f"{BAG}/data/report.pdf"] += b"appended to the report"

    altered = rewrite_zip(good[1], tmp_path / "altered.zip", alter)
    path = _appended(altered, tmp_path / "both.zip")
    report = bv.verify_bundle(path)
    assert report.problems[0].startswith("both.zip: 22 bytes after the ZIP archive"), \
        report.problems  # fmt: skip
    assert report.problems[0].endswith("still checked as usual; see the other problems listed")
    assert has_problem(report, "report.pdf", "SHA-256 is", "(altered?)")


def insert_bytes(data: bytes, at: int, junk: bytes) -> bytes:
    """The ZIP `data` with `junk` put in at byte `at` (a local header's or the central
    directory's offset) and every offset past it moved on, ZIP64's too: zip tools then read
    the same entries and never see the junk."""
    def moved(offset: int) -> int:
        return offset + len(junk) if offset >= at else offset

    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        pos = archive.start_dir
    out = bytearray(data)
    while out[pos : pos + 4] == b"PK\x01\x02":
        sizes = struct.unpack_from("<LL", out, pos + 20)
        name_length, extra_length, comment_length = struct.unpack_from("<3H", out, pos + 28)
        (offset,) = struct.unpack_from("<L", out, pos + 42)
        if offset != 0xFFFFFFFF:
            struct.pack_into("<L", out, pos + 42, moved(offset))
        else:  # in the ZIP64 field, after whichever sizes the record leaves to it
            extra = pos + 46 + name_length
            while struct.unpack_from("<H", out, extra)[0] != 0x0001:
                extra += 4 + struct.unpack_from("<H", out, extra + 2)[0]
            at_offset = extra + 4 + 8 * sum(size == 0xFFFFFFFF for size in sizes)
            struct.pack_into("<Q", out, at_offset, moved(*struct.unpack_from("<Q", out, at_offset)))
        pos += 46 + name_length + extra_length + comment_length
    if out[pos : pos + 4] == b"PK\x06\x06":  # ZIP64 end record (cd offset), then its locator
        struct.pack_into("<Q", out, pos + 48, moved(*struct.unpack_from("<Q", out, pos + 48)))
        pos += 56
        assert out[pos : pos + 4] == b"PK\x06\x07"
        struct.pack_into("<Q", out, pos + 8, moved(*struct.unpack_from("<Q", out, pos + 8)))
        pos += 20
    assert out[pos : pos + 4] == b"PK\x05\x06"
    (offset,) = struct.unpack_from("<L", out, pos + 16)
    if offset != 0xFFFFFFFF:
        struct.pack_into("<L", out, pos + 16, moved(offset))
    return bytes(out[:at] + junk + out[at:])


def entries_in_order(path: Path) -> list[zipfile.ZipInfo]:
    with zipfile.ZipFile(path) as archive:
        return sorted(archive.infolist(), key=lambda info: info.header_offset)


def central_directory_at(path: Path) -> int:
    with zipfile.ZipFile(path) as archive:
        return archive.start_dir


@pytest.fixture(scope="module", params=["written", "piped", "zip64"])
def variant(
    request: pytest.FixtureRequest, good: tuple[Bundle, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """The good bundle as BagWriter writes it to a file; through a stream that cannot seek, as
    the exporter writes it (data descriptors, ZIP64 local headers); and with ZIP64 everywhere
    (offsets in the central directory's ZIP64 fields, a ZIP64 end record), as zipfile writes
    an archive past 4 GiB."""
    return write_variant(good[0], tmp_path_factory.mktemp(request.param) / f"{BAG}.zip",
                         request.param)


def write_variant(bundle: Bundle, path: Path, kind: str) -> Path:
    if kind != "zip64":
        return bundle.write(path, piped=kind == "piped")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(zipfile, "ZIP64_LIMIT", 1)
        patch.setattr(zipfile, "ZIP_FILECOUNT_LIMIT", 1)
        return bundle.write(path)


def test_each_way_of_writing_the_bundle_holds_nothing_between_its_entries(variant: Path) -> None:
    infos = entries_in_order(variant)
    if variant.parent.name.startswith("piped"):
        assert all(info.flag_bits & 0x08 for info in infos if not info.is_dir())
    if variant.parent.name.startswith("zip64"):
        data = variant.read_bytes()
        assert b"PK\x06\x06" in data and all(0x0001 in set(bv._extra_field_ids(info.extra))
                                              for info in infos if info.header_offset > 1)
    report = bv.verify_bundle(variant)
    assert report.ok, report.render()
    with variant.open("rb") as handle:
        assert bv.outside_archive(handle, variant.stat().st_size, infos,
                                  central_directory_at(variant)) == []  # fmt: skip


@pytest.mark.parametrize("where", ["between entries", "before the central directory"])
def test_bytes_between_entries_fail_the_bundle_saying_how_many_and_where(
    variant: Path, tmp_path: Path, where: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """zip tools follow the central directory's offsets, so bytes between one entry's data (or
    data descriptor) and the next local header, or before the central directory, are read past:
    a place to hide data that no manifest covers."""
    infos = entries_in_order(variant)
    junk = b"hidden between the entries of the archive\n" * 3
    if where == "between entries":
        after, before = infos[len(infos) // 2 - 1], infos[len(infos) // 2]
        at = before.header_offset
        said = f"{len(junk)} bytes between entries {after.filename!r} and {before.filename!r}"
    else:
        at = central_directory_at(variant)
        said = f"{len(junk)} bytes between entry {infos[-1].filename!r} and the central directory"
    path = tmp_path / "between.zip"
    path.write_bytes(insert_bytes(variant.read_bytes(), at, junk))
    with zipfile.ZipFile(path) as archive:  # what any zip tool makes of it: the bundle's files
        assert archive.testzip() is None
    report = bv.verify_bundle(path)
    assert not report.ok and not report.unreadable
    [problem] = report.problems
    assert problem.startswith(f"between.zip: {said}, which the exporter never writes: this is "
                              "not the file that was exported"), problem
    assert "still checked as usual; they hold: 18 payload files" in problem
    assert [c.name for c in report.checks if not c.ok] == ["bag"]
    assert bv.main([str(path), "--quiet"]) == 1
    assert f"[FAIL] bag: between.zip: {said}" in capsys.readouterr().out


def test_many_gaps_are_counted_after_the_first_few_and_beside_bytes_outside(
    good: tuple[Bundle, Path], tmp_path: Path
) -> None:
    data = good[1].read_bytes()
    infos = entries_in_order(good[1])
    for info in reversed(infos[1:6]):  # from the back, so the offsets still hold
        data = insert_bytes(data, info.header_offset, b"x" * 10)
    path = tmp_path / "gaps.zip"
    path.write_bytes(data + b"tail")
    [problem] = bv.verify_bundle(path).problems
    names = [info.filename for info in infos]
    assert problem.startswith(
        f"gaps.zip: 10 bytes between entries {names[0]!r} and {names[1]!r}; 10 bytes between "
        f"entries {names[1]!r} and {names[2]!r}; 10 bytes between entries {names[2]!r} and "
        f"{names[3]!r}; 20 bytes in 2 more gaps between entries; 4 bytes after the ZIP archive "
        "(past its end record), which the exporter never writes"
    ), problem


# -- Bytes hidden inside entries, in overlaps, around the end records -------------------------

# Where a local header keeps each field; its central directory record keeps it 2 bytes further.
LOCAL_FIELDS = {"flags": (6, "<H"), "compression method": (8, "<H"), "CRC-32": (14, "<L"),
                "compressed size": (18, "<L"), "size": (22, "<L")}


def patch_header(data: bytes, name: str, which: str, value: int, *,
                 local: bool = True, central: bool = False) -> bytes:
    """The ZIP `data` with one field of entry `name` set in its local header, its central
    directory record or both (entries without ZIP64 fields)."""
    offset, fmt = LOCAL_FIELDS[which]
    out = bytearray(data)
    info, record = central_record(data, name)
    if local:
        struct.pack_into(fmt, out, info.header_offset + offset, value)
    if central:
        struct.pack_into(fmt, out, record + offset + 2, value)
    return bytes(out)


def data_span(data: bytes, name: str) -> tuple[int, int]:
    """Where entry `name`'s data starts and ends in the ZIP `data`."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        info = archive.getinfo(name)
    start = info.header_offset + 30 + sum(struct.unpack_from("<HH", data, info.header_offset + 26))
    return start, start + info.compress_size


def pad_entry(data: bytes, name: str, junk: bytes) -> bytes:
    """`junk` put after entry `name`'s data and counted in its compressed size (both headers)
    and every offset past it moved on: zip tools stop at the end of a deflate stream, and at
    a stored entry's size, and never read it."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        compressed = archive.getinfo(name).compress_size
    padded = insert_bytes(data, data_span(data, name)[1], junk)
    return patch_header(padded, name, "compressed size", compressed + len(junk), central=True)


def nest_entry(data: bytes, outer: str, inner: str, content: bytes) -> bytes:
    """The ZIP `data` with entry `outer` added, stored, its data the local header and data of
    an entry `inner`, and a central directory record for `inner` too: two entries in the
    same bytes, each read whole by zip tools (the trick of overlapping zip bombs)."""
    when = (2026, 11, 22, 20, 43, 0)
    single = io.BytesIO()
    with zipfile.ZipFile(single, "w") as archive:
        archive.writestr(zipfile.ZipInfo(inner, date_time=when), content)
        record_at = archive.start_dir
    inner_zip = single.getvalue()
    record = bytearray(inner_zip[record_at : inner_zip.rfind(b"PK\x05\x06")])
    buffer = io.BytesIO(data)
    with zipfile.ZipFile(buffer, "a") as archive:
        archive.writestr(zipfile.ZipInfo(outer, date_time=when), inner_zip[:record_at])
    out = buffer.getvalue()
    struct.pack_into("<L", record, 42, data_span(out, outer)[0])
    end = out.rfind(b"PK\x05\x06")
    entries, _, cd_size = struct.unpack_from("<HHL", out, end + 8)
    out = out[:end] + record + out[end:]
    patched = bytearray(out)
    struct.pack_into("<HHL", patched, end + len(record) + 8, entries + 1, entries + 1,
                     cd_size + len(record))
    return bytes(patched)


def readable_by_zip_tools(path: Path, *, unzip: bool = True) -> None:
    """What zipfile (and Info-ZIP unzip) make of `path`: every entry reads, CRC-32 and all."""
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None
    if unzip:
        subprocess.run(["unzip", "-tqq", str(path)], check=True)


HIDDEN = b"hidden where zip tools stop reading\n"


@pytest.mark.parametrize(("name", "after"), [
    ("README.txt", "after the end of its compressed data (its compressed size is 91), which "
                   "zip tools stop before (archive crafted?)"),
    ("report.pdf", "after the end of its data (stored: its compressed size is 65, its size 29),"
                   " which zip tools disagree on (archive crafted?)"),
], ids=["deflated", "stored"])
def test_bytes_after_an_entry_s_data_within_its_compressed_size_fail_it(
    good: tuple[Bundle, Path], tmp_path: Path, name: str, after: str
) -> None:
    """zlib, zipfile and unzip stop at the end of a deflate stream, and zipfile at a stored
    entry's size (unzip reads on, and finds the CRC-32 wrong), so bytes the entry's compressed
    size still counts are read as no part of the file: its bytes hold, and what is hidden
    after them no manifest covers. The file fails, and the bag with it."""
    path = tmp_path / "padded.zip"
    path.write_bytes(pad_entry(good[1].read_bytes(), f"{BAG}/data/{name}", HIDDEN))
    readable_by_zip_tools(path, unzip=name.endswith(".txt"))
    report = bv.verify_bundle(path)
    assert report.problems[0] == f"{name}: {len(HIDDEN)} bytes {after}", report.problems
    assert [c.name for c in report.checks if not c.ok] == ["bag"]
    assert_no_internal_error(report)


def test_an_entry_whose_data_runs_into_the_next_local_header_fails_naming_both(
    good: tuple[Bundle, Path], tmp_path: Path
) -> None:
    first, second = f"{BAG}/data/report.pdf", f"{BAG}/data/keys/signing-key.pem"
    data = good[1].read_bytes()
    with zipfile.ZipFile(good[1]) as archive:
        size = archive.getinfo(first).file_size
        assert archive.getinfo(first).compress_type == zipfile.ZIP_STORED
    assert data_span(data, first)[1] == archive.getinfo(second).header_offset
    for which in ("compressed size", "size"):
        data = patch_header(data, first, which, size + 12, central=True)
    path = tmp_path / "overlap.zip"
    path.write_bytes(data)
    report = bv.verify_bundle(path)
    assert report.problems[0].startswith(
        f"overlap.zip: 12 bytes where entries {first!r} and {second!r} overlap, which the "
        "exporter never writes"), report.problems  # fmt: skip
    assert has_problem(report, "report.pdf", "SHA-256 is")  # it now ends in the next header


def test_two_entries_in_the_same_bytes_fail_naming_both(
    good: tuple[Bundle, Path], tmp_path: Path
) -> None:
    """Desktop metadata is set aside unchecked: an AppleDouble file whose data holds a whole
    second entry, a '.DS_Store' the central directory points into it, would pass as two such
    files. Overlapping entries are what the exporter never writes."""
    outer, inner = f"{BAG}/data/._notes", f"{BAG}/data/.DS_Store"
    path = tmp_path / "nested.zip"
    path.write_bytes(nest_entry(good[1].read_bytes(), outer, inner, b"hidden inside another"))
    readable_by_zip_tools(path, unzip=False)  # unzip refuses it ("possible zip bomb")
    with zipfile.ZipFile(path) as archive:
        assert archive.read(inner) == b"hidden inside another"
        assert archive.read(inner) in archive.read(outer)
    report = bv.verify_bundle(path)
    [problem] = report.problems
    shared = 30 + len(inner) + len(b"hidden inside another")
    assert problem.startswith(f"nested.zip: {shared} bytes where entries {outer!r} and "
                              f"{inner!r} overlap, which the exporter never writes"), problem
    assert "still checked as usual; they hold: 18 payload files" in problem
    assert "data/._notes" in " ".join(report.warnings)  # set aside, as desktop metadata is


@pytest.fixture(scope="module")
def zip64_good(good: tuple[Bundle, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_variant(good[0], tmp_path_factory.mktemp("zip64") / f"{BAG}.zip", "zip64")


def _cd_end_record_gap(data: bytes) -> bytes:
    return insert_bytes(data, data.rfind(b"PK\x05\x06"), HIDDEN)


def _zip64_extensible_data(data: bytes) -> bytes:
    at = data.rfind(b"PK\x06\x06")
    out = bytearray(data)
    struct.pack_into("<Q", out, at + 4, 44 + len(HIDDEN))
    return bytes(out[: at + 56] + HIDDEN + out[at + 56 :])


def _zip64_locator_gap(data: bytes) -> bytes:
    at = data.rfind(b"PK\x06\x07")
    return data[:at] + HIDDEN + data[at:]


def _zip64_locator_elsewhere(data: bytes) -> bytes:
    out = bytearray(data)
    struct.pack_into("<Q", out, data.rfind(b"PK\x06\x07") + 8, 0)
    return bytes(out)


@pytest.mark.parametrize(("zip64", "make", "said"), [
    (False, _cd_end_record_gap,
     f"{len(HIDDEN)} bytes between the central directory and its end record"),
    (True, _zip64_extensible_data,
     f"{len(HIDDEN)} bytes in the ZIP64 end record's extensible data sector"),
    (True, _zip64_locator_gap,
     f"{len(HIDDEN)} bytes between the ZIP64 end record and its locator"),
    (True, _zip64_locator_elsewhere,
     "a ZIP64 end locator that points to byte 0, not to its ZIP64 end record (byte "),
], ids=["before-end-record", "zip64-extensible-data", "before-zip64-locator",
        "zip64-locator-elsewhere"])
def test_bytes_around_the_end_records_fail_the_bundle(
    good: tuple[Bundle, Path], zip64_good: Path, tmp_path: Path, zip64: bool,
    make: Callable[[bytes], bytes], said: str
) -> None:
    """Between the central directory and the end record (and around a ZIP64 end record and
    its locator) the exporter writes nothing. Readers that follow the records' offsets (unzip,
    libzip, newer Pythons) read past such bytes; others (older Pythons, which look for the
    ZIP64 end record right before its locator) find another archive or none: the rule says
    where the bytes are, as the archive's records place its central directory, and the bundle
    fails whichever way this Python's zipfile reads it."""
    original = zip64_good if zip64 else good[1]
    path = tmp_path / "tail.zip"
    path.write_bytes(make(original.read_bytes()))
    with path.open("rb") as handle:  # the entries and directory the records point to
        found = bv.outside_archive(handle, path.stat().st_size, entries_in_order(original),
                                   central_directory_at(original))
    assert len(found) == 1 and found[0].startswith(said), found
    report = bv.verify_bundle(path)
    assert not report.ok
    assert report.unreadable or report.problems[0].startswith(f"tail.zip: {said}")
    with original.open("rb") as handle:  # the bundle as written holds none of it
        assert bv.outside_archive(handle, original.stat().st_size, entries_in_order(original),
                                  central_directory_at(original)) == []


def test_a_comment_on_an_entry_fails_the_bundle(
    good: tuple[Bundle, Path], tmp_path: Path
) -> None:
    name = f"{BAG}/data/bundle.json"
    path = tmp_path / "commented.zip"
    shutil.copy(good[1], path)
    with zipfile.ZipFile(path, "a") as archive:
        archive.getinfo(name).comment = HIDDEN
        archive.comment = b""  # so the central directory is written again on close
    readable_by_zip_tools(path)
    [problem] = bv.verify_bundle(path).problems
    assert problem.startswith(f"commented.zip: {len(HIDDEN)} bytes in the comment of entry "
                              f"{name!r}, which the exporter never writes"), problem


@pytest.mark.parametrize(("which", "value", "said"), [
    ("compression method", 0, "compression method 0 where the central directory gives 8"),
    ("flags", 0x08, "data descriptor flag set where the central directory gives clear"),
    ("CRC-32", 0x12345678, "CRC-32 12345678 where the central directory gives "),
    ("compressed size", 10, "compressed size 10 where the central directory gives "),
    ("size", 10, "size 10 where the central directory gives "),
])
def test_an_entry_whose_local_header_disagrees_with_the_central_directory_is_refused(
    good: tuple[Bundle, Path], tmp_path: Path, which: str, value: int, said: str
) -> None:
    """zipfile and unzip take an entry's compression method, sizes and CRC-32 from the central
    directory; a streaming extractor takes them from the local header, and so reads other
    bytes as the file than those checked."""
    name = f"{BAG}/bag-info.txt"
    path = tmp_path / "disagree.zip"
    path.write_bytes(patch_header(good[1].read_bytes(), name, which, value))
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None  # zipfile reads by the central directory
    report = bv.verify_bundle(path)
    assert has_problem(report, f"entry {name!r} refused unread: its local header gives {said}",
                       "an extractor reading the archive in order reads other bytes")
    assert_no_internal_error(report)


def test_a_folder_entry_holding_bytes_is_refused(
    good: tuple[Bundle, Path], tmp_path: Path
) -> None:
    name = f"{BAG}/data/notes/"
    path = tmp_path / "folder.zip"
    shutil.copy(good[1], path)
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr(zipfile.ZipInfo(name, date_time=(2026, 11, 22, 20, 43, 0)), HIDDEN)
    with zipfile.ZipFile(path) as archive:
        assert archive.getinfo(name).is_dir() and archive.read(name) == HIDDEN
    report = bv.verify_bundle(path)
    assert has_problem(report, f"entry {name!r} refused unread: a folder entry, yet it holds "
                       f"{len(HIDDEN)} bytes")


@pytest.mark.parametrize("flat", [False, True], ids=["in-folder", "flat"])
def test_desktop_metadata_in_a_zip_is_warned_of_by_name_and_verifies(
    good: tuple[Bundle, Path], tmp_path: Path, flat: bool
) -> None:
    def add(entries: dict[str, bytes]) -> None:
        if flat:
            for name in list(entries):
                entries[name.split("/", 1)[1]] = entries.pop(name)
        top = "" if flat else f"{BAG}/"
        entries[f"__MACOSX/{top}._bagit.txt"] = b"\x00\x05\x16\x07 fork"
        entries[f"__MACOSX/{top}data/._bundle.json"] = b"\x00\x05\x16\x07 fork"
        entries[f"{top}data/exhibits/.DS_Store"] = b"Bud1 finder"
        entries[f"{top}Thumbs.db"] = b"windows"

    report = bv.verify_bundle(rewrite_zip(good[1], tmp_path / "mac.zip", add))
    assert report.ok, report.render()
    top = "" if flat else f"{BAG}/"
    named = {w.split(": ", 1)[0]: w for w in report.warnings}
    assert set(named) == {f"__MACOSX/{top}._bagit.txt", f"__MACOSX/{top}data/._bundle.json",
                          "data/exhibits/.DS_Store", "Thumbs.db"}, report.warnings
    assert "macOS Finder folder settings" in named["data/exhibits/.DS_Store"]
    assert "not part of the sealed bundle" in named["data/exhibits/.DS_Store"]
    assert "Windows Explorer folder data" in named["Thumbs.db"]
    rendered = report.render()
    assert "Warnings (4):" in rendered
    assert rendered.splitlines()[-1].startswith("VERIFIED") and "4 warning(s)" in rendered
    assert check(report, "EX-001 files").ok and check(report, "custody proofs").ok
    assert_no_internal_error(report)

    # Any other file the manifests do not list still fails.
    def smuggle(entries: dict[str, bytes]) -> None:
        add(entries)
        entries[f"{top}data/exhibits/notes.txt"] = b"added"

    report = bv.verify_bundle(rewrite_zip(good[1], tmp_path / "added.zip", smuggle))
    assert not report.ok
    assert has_problem(report, "exhibits/notes.txt", "not listed in manifest-sha256.txt")


def test_an_unzipped_folder_a_mac_opened_verifies_with_its_finder_files_warned_of(
    good: tuple[Bundle, Path], tmp_path: Path
) -> None:
    with zipfile.ZipFile(good[1]) as archive:
        archive.extractall(tmp_path)
    bag = tmp_path / BAG
    # The Finder writes .DS_Store into every folder opened, ._ files beside copied ones.
    opened = [bag, bag / "data", *sorted(p for p in (bag / "data").rglob("*") if p.is_dir())]
    for folder in opened:
        (folder / ".DS_Store").write_bytes(b"Bud1 finder")
    (bag / "data" / "._bundle.json").write_bytes(b"\x00\x05\x16\x07 fork")
    (bag / "desktop.ini").write_bytes(b"[.ShellClassInfo]")
    report = bv.verify_bundle(bag)
    assert report.ok, report.render()
    expected = {(f.relative_to(bag) / ".DS_Store").as_posix() for f in opened}
    expected |= {"data/._bundle.json", "desktop.ini"}
    assert {w.split(": ", 1)[0] for w in report.warnings} == expected
    assert all("written by a desktop after export" in w for w in report.warnings)
    assert check(report, "EX-001 files").ok  # the exhibit's own .DS_Store is set aside

    # Not a desktop's file: fails in a folder as in a ZIP.
    (bag / "data" / "exhibits" / "extra.txt").write_bytes(b"added")
    report = bv.verify_bundle(bag)
    assert not report.ok
    assert has_problem(report, "exhibits/extra.txt", "not listed in manifest-sha256.txt")


def test_folder_with_a_symlink_reports_it(good: tuple[Bundle, Path], tmp_path: Path) -> None:
    _, path = good
    with zipfile.ZipFile(path) as archive:
        archive.extractall(tmp_path)
    (tmp_path / BAG / "data" / "link").symlink_to("/etc/hostname")
    report = bv.verify_bundle(tmp_path / BAG)
    assert has_problem(report, "link", "symbolic link")


# ---------------------------------------------------------------------------------------------
# Standalone: the stdlib and cryptography only, and the command line


def test_module_imports_only_the_standard_library_and_cryptography() -> None:
    tree = ast.parse(MODULE.read_text())
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "relative import"
            roots.add((node.module or "").split(".")[0])
    allowed = set(sys.stdlib_module_names) | {"cryptography", "__future__"}
    assert roots <= allowed, roots - allowed


def test_module_runs_in_an_isolated_interpreter_that_refuses_other_imports(
    good: tuple[Bundle, Path], tmp_path: Path
) -> None:
    script = tmp_path / "verify.py"
    script.write_bytes(MODULE.read_bytes())
    guard = f"""
import sys, importlib.util
import cryptography.x509, cryptography.hazmat.primitives.asymmetric.rsa
import cryptography.hazmat.primitives.asymmetric.ec, cryptography.hazmat.primitives.serialization
allowed = set(sys.stdlib_module_names) | {{"cryptography"}}
class Guard:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] not in allowed:
            raise ImportError("verify.py imported " + name)
        return None
sys.meta_path.insert(0, Guard())
spec = importlib.util.spec_from_file_location("verify", {str(script)!r})
module = importlib.util.module_from_spec(spec)
sys.modules["verify"] = module
spec.loader.exec_module(module)
sys.exit(module.main([{str(good[1])!r}, "--quiet"]))
"""
    result = subprocess.run([sys.executable, "-I", "-c", guard], capture_output=True, text=True,
                            cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().splitlines()[-1].startswith("VERIFIED")


def test_without_what_it_needs_verify_py_says_so_in_one_line_and_checks_nothing(
    good: tuple[Bundle, Path], tmp_path: Path
) -> None:
    """A defence expert's fresh machine may lack `cryptography` or have an older Python: one line
    naming what is missing and exit 2 (not checked), never a traceback or exit 1 (not verified)."""
    script = tmp_path / "verify.py"
    script.write_bytes(MODULE.read_bytes())
    # -S: no site-packages, so this interpreter cannot import cryptography.
    bare = subprocess.run([sys.executable, "-I", "-S", str(script), str(good[1])],
                          capture_output=True, text=True, cwd=tmp_path)  # fmt: skip
    assert bare.returncode == 2
    assert "Traceback" not in bare.stderr and bare.stdout == ""
    assert bare.stderr.strip().splitlines() == [
        f"verify: this verifier needs the Python package 'cryptography' (pip install "
        f"cryptography), which {sys.executable} cannot import: No module named 'cryptography'; "
        f"nothing was checked"]
    # As Python 3.10 runs it (the check reads sys.version_info before anything 3.11-only).
    older = subprocess.run([sys.executable, "-I", "-c", f"""
import runpy, sys
sys.version_info = (3, 10, 13, "final", 0)
sys.argv = ["verify.py", {str(good[1])!r}]
runpy.run_path({str(script)!r}, run_name="__main__")
"""], capture_output=True, text=True, cwd=tmp_path)  # fmt: skip
    assert older.returncode == 2
    assert older.stderr.strip() == (f"verify: this verifier needs Python 3.11 or newer, and this "
                                    f"is Python 3.10 ({sys.executable}); nothing was checked")


def test_command_line_exit_codes_and_json(good: tuple[Bundle, Path], tmp_path: Path) -> None:
    bundle, path = good
    script = tmp_path / "verify.py"
    script.write_bytes(MODULE.read_bytes())

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-I", str(script), *args], capture_output=True,
                              text=True, cwd=tmp_path)  # fmt: skip

    ok = run(str(path), "--json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["ok"] is True
    assert "hashed" in ok.stderr or "reading" in ok.stderr  # progress goes to stderr
    key = tmp_path / "key.pem"
    key.write_bytes(Signer.generate().verifier.public_pem())
    pinned = run(str(path), "--key", str(key), "--quiet")
    assert pinned.returncode == 1
    assert pinned.stderr == ""
    assert pinned.stdout.strip().splitlines()[-1].startswith("NOT VERIFIED")
    old = tmp_path / "old.json"
    old.write_text(json.dumps(bundle.sign_checkpoint(3)))
    proof = tmp_path / "proof.json"
    proof.write_text(json.dumps({"old_size": 3, "new_size": bundle.tree.size, "path": [
        h.hex() for h in bundle.tree.consistency_proof(3, bundle.tree.size)]}))  # fmt: skip
    assert run(str(path), "--against-checkpoint", str(old), "--consistency-proof", str(proof),
               "--quiet").returncode == 0  # fmt: skip
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"junk")
    assert run(str(junk), "--quiet").returncode == 2
    assert run(str(tmp_path / "missing.zip")).returncode == 2
    assert run(str(path), "--key", str(tmp_path / "missing.pem")).returncode == 2
    assert run("--no-such-option").returncode == 2
    assert bv.main([str(path), "--quiet"]) == 0


def test_command_line_refuses_a_pipe_or_a_device_instead_of_waiting_on_it(
    good: tuple[Bundle, Path], tmp_path: Path,
) -> None:
    """Opening a named pipe waits for a writer that may never come, and a device may never end:
    given one for the bundle or any file it reads, verify.py says so in one line and exits 2."""
    _bundle, path = good
    script = tmp_path / "verify.py"
    script.write_bytes(MODULE.read_bytes())
    pipe = tmp_path / "pipe.zip"
    os.mkfifo(pipe)
    cases = [
        ((str(pipe),), f"{pipe}: is a named pipe (FIFO), not a regular file or folder"),
        (("/dev/zero",), "/dev/zero: is a character device, not a regular file or folder"),
        ((str(path), "--key", str(pipe)),
         f"--key {pipe}: is a named pipe (FIFO), not a regular file; not read; nothing was "
         "checked"),
        ((str(path), "--trust-tsa", "/dev/zero"),
         "--trust-tsa /dev/zero: is a character device, not a regular file; not read; nothing "
         "was checked"),
        ((str(path), "--against-checkpoint", str(pipe)),
         f"--against-checkpoint {pipe}: is a named pipe (FIFO), not a regular file; not read; "
         "nothing was checked"),
        ((str(path), "--consistency-proof", str(pipe)),
         f"--consistency-proof {pipe}: is a named pipe (FIFO), not a regular file; not read; "
         "nothing was checked"),
    ]
    for args, said in cases:
        result = subprocess.run([sys.executable, "-I", str(script), *args, "--quiet"],
                                capture_output=True, text=True, cwd=tmp_path, timeout=60)
        assert (result.returncode, result.stdout) == (2, ""), result.stdout + result.stderr
        said = said if said.endswith("checked") else said + "; not read"
        assert result.stderr == f"verify: {said}\n"


def test_verify_bundle_refuses_a_pipe_without_opening_it(tmp_path: Path) -> None:
    pipe = tmp_path / "pipe.zip"
    os.mkfifo(pipe)
    reports: list[bv.VerificationReport] = []
    # In a thread: were the pipe opened, the open would wait for a writer for ever.
    reader = threading.Thread(target=lambda: reports.append(bv.verify_bundle(pipe)), daemon=True)
    reader.start()
    reader.join(timeout=30)
    if reader.is_alive():
        with open(pipe, "wb"):  # the writer it waits for: let the thread end
            pass
        pytest.fail("verify_bundle opened the named pipe and waited on it")
    (report,) = reports
    assert report.unreadable and not report.ok
    assert report.problems == [
        "pipe.zip: is a named pipe (FIFO), not a regular file or folder; not read"]



# -- what the bag manifests do not seal: held to the export's own custody entry ------------------


def _drop_exhibit(b: Bundle) -> None:
    index = b.get_json("bundle.json")
    index["exhibits"] = []
    b.set_json("bundle.json", index)
    for name in [n for n in b.files if n.startswith("exhibits/")]:
        del b.files[name]

    def strip(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items()}
        if isinstance(node, list):
            return [strip(x) for x in node
                    if not (isinstance(x, dict) and "exhibits/" in json.dumps(x))]
        return node

    b.set_json("case.jsonld", strip(b.get_json("case.jsonld")))


def _renumber_exhibit(b: Bundle) -> None:
    index = b.get_json("bundle.json")
    index["exhibits"][0]["number"] = "EX-007"
    b.set_json("bundle.json", index)


def _other_exporter(b: Bundle) -> None:
    index = b.get_json("bundle.json")
    index["exported_by"]["name"] = "mallory"
    b.set_json("bundle.json", index)


def _cut_export_entry(b: Bundle) -> None:
    b.files["custody/entries.jsonl"] = b"\n".join(_entries(b)[:-1]) + b"\n"
    proofs = b.get_json("custody/proofs.json")
    proofs["proofs"] = proofs["proofs"][:-1]
    b.set_json("custody/proofs.json", proofs)


def _older_checkpoint(b: Bundle) -> None:
    """A checkpoint of the same log, signed before the export: the case's entries up to it
    still prove, its last ones (the export's own) are cut off."""
    size = 4
    b.set_json("custody/checkpoint.json", b.sign_checkpoint(size))
    kept = [line for line in _entries(b) if json.loads(line)["seq"] <= size]
    b.files["custody/entries.jsonl"] = b"".join(line + b"\n" for line in kept)
    b.set_json("custody/proofs.json", {"tree_size": size, "root": b.tree.root(size).hex(),
                                       "proofs": [{"seq": s, "leaf_index": s - 1, "path": [
                                           h.hex() for h in b.tree.inclusion_proof(s - 1, size)]}
                                           for s in (json.loads(x)["seq"] for x in kept)]})
    del b.files["custody/checkpoint.tsr"]
    index = b.get_json("bundle.json")
    index["custody"]["checkpoint_token"] = None
    b.set_json("bundle.json", index)


@pytest.mark.parametrize(
    ("change", "where", "what"),
    [
        (_drop_exhibit, "bundle.json", "exhibit EX-001"),
        (_renumber_exhibit, "EX-007", "records as EX-007"),
        (_other_exporter, "bundle.json", "exported_by.name is 'mallory'"),
        (_cut_export_entry, "bundle.json", "no export.started custody entry"),
        (_older_checkpoint, "bundle.json", "no export.started custody entry"),
    ],
    ids=["exhibit-dropped", "exhibit-renumbered", "exporter-renamed", "export-entry-cut",
         "older-checkpoint"],
)  # fmt: skip
def test_a_rebagged_bundle_must_agree_with_its_export_started_entry(
    good: tuple[Bundle, Path], tmp_path: Path, change: Callable[[Bundle], None], where: str,
    what: str,
) -> None:
    """A forger who rewrites the bag manifests can change bundle.json and drop files at will;
    the export.started entry the signed checkpoint covers says what the export held."""
    report = _rebag(good[0], tmp_path, change)
    assert has_problem(report, where, what), report.problems
    assert not check(report, "custody export record").ok


def test_a_revision_2_bundle_without_its_received_list_fails(
    good: tuple[Bundle, Path], tmp_path: Path
) -> None:
    def scoped(b: Bundle) -> None:
        index = b.get_json("bundle.json")
        index.update(revision=2, targets=None, received=[], received_left_out=[])
        b.set_json("bundle.json", index)

    bundle = Bundle(dict(good[0].files), good[0].signer, good[0].tsa, good[0].tree, good[0].log,
                    good[0].checkpoint)  # fmt: skip
    scoped(bundle)
    assert bv.verify_bundle(bundle.write(tmp_path / "scoped.zip")).ok

    def dropped(b: Bundle) -> None:
        scoped(b)
        index = b.get_json("bundle.json")
        del index["received"]
        b.set_json("bundle.json", index)

    report = _rebag(good[0], tmp_path, dropped)
    assert has_problem(report, "bundle.json", "received is missing, which revision 2 requires")


# -- ZIP entries whose other names point at a checked file ----------------------------------------


def _unicode_path_field(name: str, header_name: str) -> bytes:
    body = struct.pack("<B", 1) + struct.pack("<L", zlib.crc32(header_name.encode())) + \
        name.encode()
    return struct.pack("<HH", 0x7075, len(body)) + body


def test_an_entry_unzip_would_write_over_a_checked_file_is_refused(
    good: tuple[Bundle, Path], tmp_path: Path
) -> None:
    """`unzip` names an entry after its Unicode Path field: a '._report.pdf' (desktop
    metadata, set aside unchecked) whose field says report.pdf overwrites the checked one."""
    shadow, real = f"{BAG}/data/._report.pdf", f"{BAG}/data/report.pdf"
    path = tmp_path / "shadow.zip"
    shutil.copy(good[1], path)
    with zipfile.ZipFile(path, "a") as archive:
        info = zipfile.ZipInfo(shadow, date_time=(2026, 11, 22, 20, 43, 0))
        info.extra = _unicode_path_field(real, shadow)
        archive.writestr(info, b"%PDF-1.4 forged report")
    out = tmp_path / "unzipped"
    subprocess.run(["unzip", "-q", "-o", str(path), "-d", str(out)], check=False)
    assert (out / real).read_bytes() == b"%PDF-1.4 forged report"  # what the defence would open
    report = bv.verify_bundle(path)
    assert not report.ok
    assert has_problem(report, "._report.pdf", "refused unread", "Unicode Path field", real)
    assert_no_internal_error(report)


def test_an_entry_whose_local_header_names_a_checked_file_is_refused(
    good: tuple[Bundle, Path], tmp_path: Path
) -> None:
    """A streaming extractor names entries after their local headers: an entry the central
    directory calls '._port.pdf' (set aside unchecked) but whose header says report.pdf."""
    real, shadow = f"{BAG}/data/report.pdf", f"{BAG}/data/._port.pdf"
    path = shadowed_local_name(good[1], tmp_path / "local.zip", real, shadow)
    report = bv.verify_bundle(path)
    assert not report.ok
    assert has_problem(report, "._port.pdf", "refused unread", "local header names", real)
    assert_no_internal_error(report)


def test_the_report_says_what_is_not_sealed_and_whether_verify_py_is_this_verifier(
    good: tuple[Bundle, Path], tmp_path: Path
) -> None:
    """A forger who rewrites the bag can swap verify.py for one that always passes: the bundle
    still verifies (nothing signs it), so the report must say so and compare it with itself."""
    report = bv.verify_bundle(good[1])
    assert report.ok
    assert any("Not sealed" in n and "report.pdf" in n and "verify.py" in n for n in report.notes)
    assert any("is this verifier, byte for byte" in n for n in report.notes)

    def swap(b: Bundle) -> None:
        b.files["verify.py"] = b"print('VERIFIED')\n"

    changed = Bundle(dict(good[0].files), good[0].signer, good[0].tsa, good[0].tree, good[0].log,
                     good[0].checkpoint)  # fmt: skip
    swap(changed)
    report = bv.verify_bundle(changed.write(tmp_path / "swapped.zip"))
    assert report.ok  # nothing signs verify.py: see docs/bundle-format.md, "What is sealed"
    digest = hashlib.sha256(b"print('VERIFIED')\n").hexdigest()
    assert any(digest in n and "is not this verifier" in n and "Do not rely on it" in n
               for n in report.notes), report.notes


# -- revision 3: the bag as a whole is signed ----------------------------------------------------


SIG = f"{BAG}/{bv.BAG_SIGNATURE}"


@pytest.fixture(scope="module")
def sealed(good: tuple[Bundle, Path], tmp_path_factory: pytest.TempPathFactory
           ) -> tuple[Bundle, Path]:
    """The good bundle as the exporter writes it from revision 3: the tag manifest signed."""
    bundle = good[0].copy(seal=good[0].signer)
    index = bundle.get_json("bundle.json")
    index.update(revision=3, targets=None, received=[], received_left_out=[])
    bundle.set_json("bundle.json", index)
    return bundle, bundle.write(tmp_path_factory.mktemp("sealed") / f"{BAG}.zip")


def test_a_revision_3_bundle_is_signed_as_a_whole(sealed: tuple[Bundle, Path]) -> None:
    bundle, path = sealed
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        doc = json.loads(archive.read(SIG))
        tagmanifest = archive.read(f"{BAG}/tagmanifest-sha256.txt")
    assert names[-2:] == [f"{BAG}/tagmanifest-sha256.txt", SIG]
    assert doc["tagmanifest_sha256"] == hashlib.sha256(tagmanifest).hexdigest()
    assert (doc["bag"], doc["key_id"], doc["algorithm"]) == (BAG, bundle.signer.key_id,
                                                               "Ed25519")
    for key_pem in (None, bundle.signer.verifier.public_pem()):
        report = bv.verify_bundle(path, key_pem=key_pem)
        assert report.ok, report.render()
        assert bundle.signer.key_id in check(report, "bag signature").detail
        assert any("The bag as a whole is signed" in n for n in report.notes), report.notes
        assert not any("Not sealed" in n or "re-packed" in n for n in report.notes)


def test_a_signed_bag_unzipped_or_zipped_without_its_folder_still_verifies(
    sealed: tuple[Bundle, Path], tmp_path: Path
) -> None:
    with zipfile.ZipFile(sealed[1]) as archive:
        archive.extractall(tmp_path / "unzipped")
    report = bv.verify_bundle(tmp_path / "unzipped" / BAG)
    assert report.ok, report.render()
    assert check(report, "bag signature").ok

    def unwrap(entries: dict[str, bytes]) -> None:
        for name in list(entries):
            entries[name.removeprefix(f"{BAG}/")] = entries.pop(name)

    report = bv.verify_bundle(rewrite_zip(sealed[1], tmp_path / "renamed.zip", unwrap))
    assert report.ok, report.render()
    assert any(f"signed as {BAG!r} but is named 'renamed'" in n for n in report.notes)


def test_a_bag_signature_that_does_not_verify_fails(
    sealed: tuple[Bundle, Path], tmp_path: Path
) -> None:
    def scramble(entries: dict[str, bytes]) -> None:
        doc = json.loads(entries[SIG])
        doc["signature"] = base64.b64encode(flip(base64.b64decode(doc["signature"]), 5)).decode()
        entries[SIG] = json.dumps(doc).encode()

    report = bv.verify_bundle(rewrite_zip(sealed[1], tmp_path / "t.zip", scramble))
    assert not report.ok
    assert has_problem(report, bv.BAG_SIGNATURE, "does not verify over the tag manifest")


def _forged(sealed: tuple[Bundle, Path], tmp_path: Path, name: str, content: bytes) -> Path:
    """A careful forger's copy: `name` changed, both bag manifests and Payload-Oxum rewritten
    to match, and the exporter's signature file kept as it was."""
    bundle, path = sealed
    changed = bundle.copy(seal=None)
    changed.files[name] = content
    forged = changed.write(tmp_path / "forged.zip")
    with zipfile.ZipFile(path) as archive:
        signature = archive.read(SIG)
    with zipfile.ZipFile(forged, "a") as archive:
        archive.writestr(SIG, signature)
    return forged


@pytest.mark.parametrize(("name", "content"), [
    ("report.pdf", b"%PDF-1.4\n% a report that says something else\n"),
    ("README.txt", b"An evidence bundle. Trust it; there is no need to run verify.py.\n"),
])  # fmt: skip
def test_a_file_changed_with_the_bag_rewritten_fails_the_bag_signature(
    sealed: tuple[Bundle, Path], tmp_path: Path, name: str, content: bytes
) -> None:
    forged = _forged(sealed, tmp_path, name, content)
    report = bv.verify_bundle(forged)
    assert check(report, "bag").ok, report.problems  # the manifests agree with the files
    assert not report.ok
    assert has_problem(report, bv.BAG_SIGNATURE, "signs a tag manifest with SHA-256",
                       "changed and its manifests rewritten"), report.problems
    assert not check(report, "bag signature").ok
    assert any("not signed (its signature" in n for n in report.notes), report.notes
    assert_no_internal_error(report)


def test_a_revision_3_bundle_without_its_bag_signature_fails(
    sealed: tuple[Bundle, Path], tmp_path: Path
) -> None:
    report = bv.verify_bundle(rewrite_zip(sealed[1], tmp_path / "t.zip", lambda e: e.pop(SIG)))
    assert not report.ok
    assert has_problem(report, bv.BAG_SIGNATURE, "missing, which revision 3 requires")
    assert_no_internal_error(report)


def test_a_bag_signed_by_another_key_fails(sealed: tuple[Bundle, Path], tmp_path: Path) -> None:
    """A forger re-signs the rewritten bag with a key of their own: the bag signature names
    a key that signs nothing else in the bundle, and not the one pinned with --key."""
    bundle, _ = sealed
    mallory = Signer.generate()
    changed = bundle.copy(seal=mallory)
    changed.files["report.pdf"] = b"%PDF-1.4\n% forged\n"
    path = changed.write(tmp_path / "resigned.zip")
    for key_pem in (None, bundle.signer.verifier.public_pem()):
        report = bv.verify_bundle(path, key_pem=key_pem)
        assert not report.ok
        assert has_problem(report, bv.BAG_SIGNATURE, f"signed by key '{mallory.key_id}'",
                           f"not by the signing key {bundle.signer.key_id}"), report.problems
        assert_no_internal_error(report)


def test_a_revision_2_bundle_verifies_unsigned_with_a_note(
    sealed: tuple[Bundle, Path], tmp_path: Path
) -> None:
    changed = sealed[0].copy(seal=None)
    index = changed.get_json("bundle.json")
    index["revision"] = 2
    changed.set_json("bundle.json", index)
    report = bv.verify_bundle(changed.write(tmp_path / "rev2.zip"))
    assert report.ok, report.render()
    assert "do not sign the bag as a whole" in check(report, "bag signature").detail
    assert any("The bag as a whole is not signed (revision 2" in n and "report.pdf" in n
               for n in report.notes), report.notes


def test_a_signed_bag_with_a_file_changed_is_not_said_to_be_as_exported(
    sealed: tuple[Bundle, Path], tmp_path: Path
) -> None:
    """README.txt edited after export, the bag manifests left alone: the signature still holds
    over them, but the report must not then say README.txt is as the key holder exported it."""
    def edit(entries: dict[str, bytes]) -> None:
        entries[_payload("README.txt")] = b"An evidence bundle. It always verifies.\n"

    report = bv.verify_bundle(rewrite_zip(sealed[1], tmp_path / "t.zip", edit))
    assert has_problem(report, "README.txt", "manifest-sha256.txt says"), report.problems
    assert check(report, "bag signature").ok
    assert not any("all of bundle.json are as the holder" in n for n in report.notes), \
        report.notes  # fmt: skip
    assert any("The bag's signature holds over its manifests" in n
               and "the files the bag check names differ from what they list" in n
               for n in report.notes), report.notes


def test_with_its_signatures_failing_the_bundle_s_files_are_not_said_to_be_sealed(
    sealed: tuple[Bundle, Path],
) -> None:
    report = bv.verify_bundle(sealed[1], key_pem=Signer.generate().verifier.public_pem())
    assert not report.ok
    unsealed = [n for n in report.notes if "The bag as a whole is not signed" in n]
    assert unsealed and "did not verify: see the bag signature check" in unsealed[0], \
        report.notes  # fmt: skip
    assert "received files are sealed." not in unsealed[0]
    assert "have seals of their own, checked above" in unsealed[0]


# -- what the ZIP records of each entry and of itself, which other zip tools go by ------------


@pytest.mark.parametrize("name", ["report.pdf", "README.txt", "tagmanifest-sha256.txt",
                                  bv.BAG_SIGNATURE])
def test_an_entry_whose_crc_32_is_wrong_fails_though_its_bytes_hold(
    sealed: tuple[Bundle, Path], tmp_path: Path, name: str
) -> None:
    """zipfile, unzip and Windows Explorer check each entry's CRC-32 and call the entry
    damaged when it is wrong; the report must not call intact what they refuse. The tag
    manifest and the bag signature are listed in no manifest, so their CRC-32 was all that
    noticed accidental damage to them before the signature was checked."""
    entry = f"{BAG}/{name}" if name in ("tagmanifest-sha256.txt", bv.BAG_SIGNATURE) \
        else _payload(name)  # fmt: skip
    with zipfile.ZipFile(sealed[1]) as archive:
        real = archive.getinfo(entry).CRC
    path = tmp_path / "crc.zip"
    path.write_bytes(set_crc(sealed[1].read_bytes(), entry, real ^ 0x1))
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() == entry  # what zip tools make of it
    report = bv.verify_bundle(path, key_pem=sealed[0].signer.verifier.public_pem())
    assert report.problems == [
        f"{name}: its bytes have CRC-32 {real:08x} but its ZIP entry records {real ^ 1:08x}, "
        "so zip tools report it as damaged: its bytes changed after the archive was written "
        "(a faulty disk or transfer?) or the entry's record was altered"
    ], report.problems
    assert [c.name for c in report.checks if not c.ok] == ["bag"]
    assert check(report, "bag signature").ok  # the bytes are the ones signed
    assert bv.main([str(path), "--quiet"]) == 1


def test_bytes_damaged_in_place_are_named_by_their_crc_32_and_their_sha_256(
    sealed: tuple[Bundle, Path], tmp_path: Path
) -> None:
    """One byte of a stored file changed inside the ZIP, which was not rewritten: the CRC-32
    says the archive was damaged after it was written, the SHA-256 that the file is not the
    one exported. A file changed and zipped again has a right CRC-32: only the SHA-256 fails."""
    entry = _payload("report.pdf")
    data = bytearray(sealed[1].read_bytes())
    start, _ = data_span(bytes(data), entry)
    data[start + 3] ^= 0x20
    path = tmp_path / "damaged.zip"
    path.write_bytes(bytes(data))
    report = bv.verify_bundle(path)
    assert has_problem(report, "report.pdf: its bytes have CRC-32", "zip tools report it as "
                       "damaged"), report.problems  # fmt: skip
    assert has_problem(report, "report.pdf: SHA-256 is", "(altered?)"), report.problems

    def alter(entries: dict[str, bytes]) -> None:
        entries[entry] = entries[entry][:3] + b"X" + entries[entry][4:]

    rezipped = bv.verify_bundle(rewrite_zip(sealed[1], tmp_path / "rezipped.zip", alter))
    assert has_problem(rezipped, "report.pdf: SHA-256 is", "(altered?)"), rezipped.problems
    assert not has_problem(rezipped, "CRC-32")


@pytest.mark.parametrize(("zip64", "which", "value", "said"), [
    (False, "entries on this disk+entries", -1, "its end record declares {n} entries but its "
                                                "central directory holds {n1}"),
    (False, "entries on this disk", -1, "its end record declares {n} entries on this disk but "
                                        "{n1} in all, as if the archive were split"),
    (True, "central directory size", +1, "its end record gives central directory size {n} "
                                         "where its ZIP64 end record gives {n1}"),
    (True, "entries", -1, "its end record gives entry count {n} where its ZIP64 end record "
                          "gives {n1}"),
], ids=["count", "count-on-disk", "zip64-size", "zip64-count"])
def test_end_records_that_disagree_fail_the_bundle_saying_so(
    good: tuple[Bundle, Path], zip64_good: Path, tmp_path: Path, zip64: bool, which: str,
    value: int, said: str
) -> None:
    """The end record's entry count and central directory size, and the ZIP64 end record's
    beside it, say the same in an archive the exporter writes. Where they differ, tools that go
    by one and tools that go by the other (or that count the records) see different archives:
    zipfile reads the records the ZIP64 size spans, whatever the count."""
    original = zip64_good if zip64 else good[1]
    data = original.read_bytes()
    offset, fmt = END_RECORD_FIELDS[which.split("+")[-1]]
    (real,) = struct.unpack_from(fmt, data, data.rfind(b"PK\x05\x06") + offset)
    for field_name in which.split("+"):  # both counts: only the records' number differs
        data = set_end_record(data, field_name, real + value)
    path = tmp_path / "records.zip"
    path.write_bytes(data)
    with zipfile.ZipFile(path) as archive:  # what zipfile makes of it: the bundle's files
        assert archive.testzip() is None
    report = bv.verify_bundle(path)
    assert not report.ok and not report.unreadable
    [problem] = report.problems
    assert problem.startswith("records.zip: " + said.format(n=real + value, n1=real)), problem
    assert "zip tools that trust the one and those that trust the other see different " \
        "archives" in problem  # fmt: skip
    assert problem.endswith("(archive crafted, or damaged?)"), problem
    assert [c.name for c in report.checks if not c.ok] == ["bag"]


def test_end_records_that_leave_their_values_to_the_zip64_record_hold(
    zip64_good: Path, tmp_path: Path
) -> None:
    """Past 65535 entries or 4 GiB the end record says "see the ZIP64 record" (all ones) where
    a value does not fit; some tools write that mark for every value."""
    data = zip64_good.read_bytes()
    for which, (_, fmt) in END_RECORD_FIELDS.items():
        data = set_end_record(data, which, 0xFFFF if fmt == "<H" else 0xFFFFFFFF)
    path = tmp_path / "marks.zip"
    path.write_bytes(data)
    report = bv.verify_bundle(path)
    assert report.ok, report.render()


@pytest.mark.parametrize(("twin", "found"), [
    ("README.TXT", "whose name differs from this one only in letter case (as data/A.txt and "
                   "data/a.txt do). Windows and macOS treat such names as one file, so "
                   "unpacking there writes one over the other, and which of the two is then "
                   "on the disk depends on the tool used."),
    ("README.txt", "the archive holds two entries of this same name. Unpacking keeps one of "
                   "the two and drops the other, and tools differ on which"),
], ids=["case", "same"])
def test_two_entries_one_disk_would_take_for_the_same_file_are_named_plainly(
    good: tuple[Bundle, Path], tmp_path: Path, twin: str, found: str
) -> None:
    path = tmp_path / "twins.zip"
    shutil.copy(good[1], path)
    with zipfile.ZipFile(path, "a") as archive, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns of a duplicate name
        archive.writestr(zipfile.ZipInfo(_payload(twin), date_time=(2026, 11, 22, 20, 43, 0)),
                         b"the other copy")
    report = bv.verify_bundle(path)
    assert report.problems[0] == (
        f"twins.zip: entry {_payload(twin)!r} refused unread: "
        + ("" if twin == "README.txt" else f"the archive also holds {_payload('README.txt')!r}, ")
        + found + ("" if twin == "README.TXT" else " (some keep the first, some the last).")
        + " The exporter never writes two such names; only "
        + ("the first of the two" if twin == "README.txt" else f"the first, "
           f"{_payload('README.txt')!r},") + " was checked"
    ), report.problems[0]
    assert "tools disagree on which copy counts" not in report.render()


def test_names_that_differ_only_in_how_accents_are_encoded_are_named_too() -> None:
    composed, decomposed = "data/caf\u00e9.txt", "data/cafe\u0301.txt"
    assert bv.same_file_key(composed) == bv.same_file_key(decomposed)
    said = bv.name_clash(decomposed, composed)
    assert said.startswith(f"the archive also holds {composed!r}, whose name looks the same as "
                           "this one but spells its accented letters differently (Unicode "
                           "normalisation). macOS treats such names as one file"), said


# -- a sloppy handler: line endings converted by a Windows tool ----------------------------------


def _crlf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def test_line_endings_converted_after_export_are_named_as_such_not_as_forgery(
    sealed: tuple[Bundle, Path], tmp_path: Path
) -> None:
    """A Windows tool (an editor, a text-mode transfer, a Git checkout) turned every LF of the
    text files into CR LF: the bundle fails, and says that is all that changed, once per file,
    rather than calling it a rewritten bag and a broken custody chain."""
    texts = ["README.txt", "exhibits/EX-001/files/page.html", "custody/entries.jsonl"]

    def convert(entries: dict[str, bytes]) -> None:
        for name in [*map(_payload, texts), f"{BAG}/tagmanifest-sha256.txt"]:
            entries[name] = _crlf(entries[name])

    report = bv.verify_bundle(rewrite_zip(sealed[1], tmp_path / "crlf.zip", convert))
    assert not report.ok
    assert_no_internal_error(report)
    for name in texts:
        assert has_problem(report, f"{name}: its line endings were converted after export",
                           "CR LF", "the SHA-256 manifest-sha256.txt lists"), report.problems
    assert has_problem(report, "tagmanifest-sha256.txt: its line endings were converted",
                       "the tag manifest signed"), report.problems
    assert not has_problem(report, "manifests rewritten")
    assert any("4 file(s) had their line endings converted after export" in n
               for n in report.notes), report.notes
    # The page is one problem where it is compared, not a size and a hash in each place.
    page = [p for p in report.problems if p.startswith("exhibits/EX-001/files/page.html")]
    assert len(page) == 3, page  # the bag, the signed manifest, the case graph
    assert has_problem(report, "exhibits/EX-001/files/page.html", "converted back, it is the "
                       "file the signed manifest lists")
    # The custody entries: one problem for the file, and the entries, read with the CR removed,
    # still chain and are proven in the signed checkpoint.
    custody = check(report, "custody entries")
    assert not custody.ok and "(and" not in custody.detail, custody.detail
    assert "line endings were converted" in custody.detail
    assert check(report, "custody proofs").ok
    assert check(report, "custody export record").ok


def test_line_endings_converted_the_other_way_are_named_too(
    sealed: tuple[Bundle, Path], tmp_path: Path
) -> None:
    """A file the platform sent with CR LF line ends, turned to LF by a Unix tool."""
    bundle = sealed[0].copy()
    bundle.files["README.txt"] = b"line one\r\nline two\r\n"
    path = bundle.write(tmp_path / "dos.zip")

    def convert(entries: dict[str, bytes]) -> None:
        entries[_payload("README.txt")] = b"line one\nline two\n"

    report = bv.verify_bundle(rewrite_zip(path, tmp_path / "unix.zip", convert))
    assert has_problem(report, "README.txt: its line endings were converted after export",
                       "LF where the exported file had CR LF, Windows line ends"), report.problems


def test_line_endings_converted_in_a_file_larger_than_the_parsed_files_are_named_too(
    sealed: tuple[Bundle, Path], tmp_path: Path
) -> None:
    """A custody log of a large case, or a transcript, may be larger than any file the
    verifier parses whole: it is read again as a stream, so its size does not matter."""
    bundle = sealed[0].copy()
    line = b"2026-11-22 20:43 message from the suspect account, quoted in full\n"
    bundle.files["notes/transcript.txt"] = line * (bv.MAX_JSON // len(line) + 2)
    assert len(bundle.files["notes/transcript.txt"]) > bv.MAX_JSON
    folder = tmp_path / "unzipped"
    with zipfile.ZipFile(bundle.write(tmp_path / "large.zip")) as archive:
        archive.extractall(folder)
    del bundle
    transcript = folder / BAG / "data" / "notes" / "transcript.txt"
    transcript.write_bytes(_crlf(transcript.read_bytes()))
    said: list[str] = []
    report = bv.verify_bundle(folder / BAG, progress=said.append)
    assert has_problem(report, "notes/transcript.txt: its line endings were converted after "
                       "export", "CR LF"), report.problems  # fmt: skip
    assert not has_problem(report, "(altered?)"), report.problems
    assert any(m.startswith("reading notes/transcript.txt (") and "again: were only its line "
               "endings converted?" in m for m in said), said  # fmt: skip


def test_a_text_file_really_altered_is_not_taken_for_converted_line_endings(
    sealed: tuple[Bundle, Path], tmp_path: Path
) -> None:
    def convert(entries: dict[str, bytes]) -> None:
        entries[_payload("README.txt")] = _crlf(entries[_payload("README.txt")]) + b"more\r\n"

    report = bv.verify_bundle(rewrite_zip(sealed[1], tmp_path / "t.zip", convert))
    assert has_problem(report, "README.txt: SHA-256 is", "(altered?)"), report.problems
    assert not has_problem(report, "line endings")


# -- the command line: what the expert typed wrong is said so, and nothing is blamed on the bundle


@pytest.mark.parametrize(("content", "said"), [
    ("private", "is a private key, not a public key"),
    ("rsa", "is an RSA public key, not the Ed25519 key"),
    ("text", "is not a public key in PEM form"),
])  # fmt: skip
def test_a_key_that_cannot_be_the_unit_s_is_refused_before_checking(
    good: tuple[Bundle, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
    content: str, said: str,
) -> None:
    """--key given the wrong file (the unit's private key, a TLS certificate's RSA key, a
    text file): a usage error, not seven signature failures that read as a forged bundle."""
    key = tmp_path / "key.pem"
    if content == "private":
        key.write_bytes(ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))  # fmt: skip
    elif content == "rsa":
        key.write_bytes(rsa.generate_private_key(65537, 2048).public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    else:
        key.write_text("c9aa5fc312b4a92d8c386f09108cc02e7877c3fc5f817dd08787e7fc0b0f4448\n")
    assert bv.main([str(good[1]), "--key", str(key), "--quiet"]) == 2
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err.startswith(f"verify: --key {key}: {said}"), out.err
    assert "nothing was checked" in out.err and "Traceback" not in out.err


def test_an_argument_file_that_is_not_there_is_named_in_plain_words(
    good: tuple[Bundle, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    missing = tmp_path / "unit-key.pem"
    assert bv.main([str(good[1]), "--key", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err == f"verify: --key {missing}: no such file; nothing was checked\n", err


def test_a_folder_typed_inside_the_bag_is_named_and_data_is_pointed_above(
    good: tuple[Bundle, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Inside data/, the expert types `verify.py ..` (the bag) or `verify.py .` (data/ itself):
    the report names the bundle, not "..", and data/ is pointed to the folder above it."""
    with zipfile.ZipFile(good[1]) as archive:
        archive.extractall(tmp_path)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "bagit.txt").write_text("BagIt-Version: 1.0\n")
    monkeypatch.chdir(tmp_path / BAG / "data")
    report = bv.verify_bundle("..")
    assert report.ok and report.bundle == BAG, report.render()
    report = bv.verify_bundle(".")
    assert report.unreadable and report.bundle == "data"
    assert report.problems == ["data: this is the bundle's data/ folder: give the folder above "
                               "it, which holds bagit.txt (from inside data/: python3 verify.py "
                               "..)"], report.problems
    report = bv.verify_bundle("../..")
    assert report.problems == [
        f"{tmp_path.name}: not a bundle folder: it holds no bagit.txt, and 2 folders in it do "
        f"({BAG!r}, 'other'): give the one to check"], report.problems
