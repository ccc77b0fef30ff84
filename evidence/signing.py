"""The system's Ed25519 signing key: made once by `evidence init`, loaded at start-up, passed in.

The key id is the SHA-256 of the raw 32-byte public key, written in hex, so a verifier holding
only a public key file can tell which signatures it is meant to check.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from evidence.errors import ConfigurationError


class SignatureInvalid(ValueError):
    """A signature does not verify under the key it names."""


def key_id_of(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


@dataclass(frozen=True)
class Verifier:
    """A public key that checks signatures; all an offline verifier needs."""

    public_key: Ed25519PublicKey

    @property
    def key_id(self) -> str:
        return key_id_of(self.public_key)

    def public_pem(self) -> bytes:
        return self.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def verify(self, signature: bytes, message: bytes) -> None:
        try:
            self.public_key.verify(signature, message)
        except InvalidSignature as exc:
            raise SignatureInvalid("signature does not verify with this key") from exc

    @classmethod
    def from_pem(cls, pem: bytes) -> Verifier:
        key = serialization.load_pem_public_key(pem)
        if not isinstance(key, Ed25519PublicKey):
            raise ConfigurationError("public key is not an Ed25519 key")
        return cls(key)

    @classmethod
    def load(cls, path: Path) -> Verifier:
        try:
            return cls.from_pem(path.read_bytes())
        except FileNotFoundError as exc:
            raise ConfigurationError(f"no public key at {path}") from exc


@dataclass(frozen=True)
class Signer:
    """The private half; never leaves the process that loaded it."""

    private_key: Ed25519PrivateKey

    @property
    def verifier(self) -> Verifier:
        return Verifier(self.private_key.public_key())

    @property
    def key_id(self) -> str:
        return self.verifier.key_id

    def sign(self, message: bytes) -> bytes:
        return self.private_key.sign(message)

    @classmethod
    def generate(cls) -> Signer:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def load(cls, path: Path) -> Signer:
        try:
            data = path.read_bytes()
        except FileNotFoundError as exc:
            raise ConfigurationError(
                f"no signing key at {path}; run `evidence init` to make the data home"
            ) from exc
        key = serialization.load_pem_private_key(data, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigurationError(f"{path} does not hold an Ed25519 private key")
        return cls(key)

    def save(self, private_path: Path, public_path: Path) -> None:
        """Write the key (mode 0600, created exclusively so an existing key is never replaced)."""
        private_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        pem = self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
            fh.flush()
            os.fsync(fh.fileno())
        public_path.write_bytes(self.verifier.public_pem())
