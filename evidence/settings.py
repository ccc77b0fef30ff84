"""Runtime settings, read once from `EVIDENCE_*` variables and passed to whoever needs them."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DATABASE_FILE = "evidence.db"
BLOB_FOLDER = "blobs"
BLOB_CACHE_FOLDER = "blob-cache"
KEY_FOLDER = "keys"
SIGNING_KEY_FILE = "signing.key"
PUBLIC_KEY_FILE = "signing.pub"
TSA_FOLDER = "tsa"


class Settings(BaseSettings):
    """Everything the system is configured by; nothing else reads the environment."""

    model_config = SettingsConfigDict(env_prefix="EVIDENCE_", extra="ignore")

    home: Path = Field(
        default=Path("evidence-data"),
        description="Data home: SQLite database, blob store and signing key.",
    )
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default the SQLite file in the home."
    )
    store_url: str | None = Field(
        default=None,
        description="Where blobs are kept: s3://BUCKET[/PREFIX] for S3-compatible object "
        "storage shared by many machines; default the folder `blobs` in the home. Credentials "
        "and region come from the usual AWS_* variables.",
    )
    s3_endpoint_url: str | None = Field(
        default=None, description="Endpoint of an S3-compatible service (MinIO, Ceph, ...); "
        "default AWS's.",
    )
    blob_cache_max_bytes: int = Field(
        default=20 * 1024**3, ge=0,
        description="With an S3 store: how many bytes of local copies (blob-cache/ in the home) "
        "a machine keeps; past it the least recently used copies the bucket holds are removed. "
        "0: no limit.",
    )
    user: str | None = Field(
        default=None, description="Acting user for command-line actions; default the first admin."
    )
    environment: Literal["development", "production"] = "development"
    host: str = "127.0.0.1"
    port: int = 8000
    session_idle_minutes: int = Field(
        default=60, ge=1, le=12 * 60,
        description="A web sign-in ends after this many minutes without a request (and in any "
        "case 12 hours after it was made); a form sent after it ended is kept for sending "
        "after signing in again.",
    )
    checkpoint_interval_seconds: int = Field(
        default=300, ge=1, description="How often `serve` signs a checkpoint of new entries."
    )
    chromium: Path | None = Field(
        default=None, description="Browser executable; default Debian's /usr/bin/chromium."
    )
    capture_allow: str | None = Field(
        default=None,
        description="Comma-separated addresses, networks or hosts captures may reach even "
        "though they are private (tests allow 127.0.0.1).",
    )
    tsa_urls: str | None = Field(
        default=None,
        description="Comma-separated RFC 3161 authorities; without them the built-in local "
        "authority timestamps, on this system's clock.",
    )
    tsa_trust: str | None = Field(
        default=None,
        description="Comma-separated PEM files: root certificates of the authorities in "
        "EVIDENCE_TSA_URLS, shipped in export bundles so their tokens can be checked offline.",
    )
    navigation_timeout_seconds: float = Field(default=30, gt=0)
    capture_timeout_seconds: float = Field(default=180, gt=0)
    max_artifact_bytes: int = Field(default=100 * 1024 * 1024, gt=0)
    max_capture_bytes: int = Field(default=500 * 1024 * 1024, gt=0)
    max_scroll_steps: int = Field(default=40, ge=0)
    received_max_bytes: int = Field(
        default=2 * 1024 * 1024 * 1024, gt=0,
        description="The largest file the API takes as received material (one upload).")
    viewport_width: int = Field(default=1366, gt=0)
    viewport_height: int = Field(default=900, gt=0)
    deconfliction_secret: SecretStr | None = Field(
        default=None,
        description="Key of the HMAC over deconfliction selectors; every instance that should "
        "see another's hits must share it (and the database). Default the key file that "
        "`evidence init` makes in the home (keys/deconfliction.key).",
    )
    log_origin: str | None = Field(
        default=None,
        description="Name of this custody log in signed checkpoints; default from the host name.",
    )
    # The issuing authority's standing details, printed on every legal request it issues
    # (evidence.requests). A request may override any of them with `--field issuing.NAME=VALUE`;
    # EVIDENCE_AUTHORITY_FILE (JSON: {"issuing": {...}, "validating": {...}}, keys as below
    # without the prefix) fills what the variables leave empty.
    authority_name: str | None = Field(default=None, description="e.g. 'Police Directorate X'.")
    authority_role: str | None = Field(
        default=None, description="judge | court | investigating_judge | prosecutor | police | "
        "other: decides whether an EU order needs validation.")
    authority_country: str | None = Field(default=None, description="ISO 3166-1 alpha-2.")
    authority_address: str | None = None
    authority_phone: str | None = None
    authority_email: str | None = None
    authority_time_zone: str | None = Field(
        default=None, description="IANA name, e.g. Europe/Berlin: deadlines in days are counted "
        "on this calendar.")
    authority_person: str | None = Field(default=None, description="Official in charge.")
    authority_position: str | None = None
    authority_office_hours: str | None = None
    authority_file: Path | None = Field(
        default=None, description="JSON file with the standing details of the issuing (and a "
        "usual validating) authority.")

    @property
    def home_path(self) -> Path:
        return self.home.expanduser().absolute()

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.home_path / DATABASE_FILE}"

    @property
    def blob_path(self) -> Path:
        return self.home_path / BLOB_FOLDER

    @property
    def blob_cache_path(self) -> Path:
        """With an S3 store: local copies of the blobs this machine wrote or needed as files."""
        return self.home_path / BLOB_CACHE_FOLDER

    @property
    def signing_key_path(self) -> Path:
        return self.home_path / KEY_FOLDER / SIGNING_KEY_FILE

    @property
    def public_key_path(self) -> Path:
        return self.home_path / KEY_FOLDER / PUBLIC_KEY_FILE

    @property
    def tsa_path(self) -> Path:
        return self.home_path / TSA_FOLDER

    @property
    def tsa_trust_paths(self) -> list[Path]:
        return [Path(p.strip()).expanduser() for p in (self.tsa_trust or "").split(",")
                if p.strip()]

    @property
    def tsa_url_list(self) -> list[str]:
        return [u.strip() for u in (self.tsa_urls or "").split(",") if u.strip()]

    @property
    def origin(self) -> str:
        return self.log_origin or f"evidence-locker/{socket.gethostname()}"
