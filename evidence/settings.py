"""Runtime settings, read once from `EVIDENCE_*` variables and passed to whoever needs them."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DATABASE_FILE = "evidence.db"
BLOB_FOLDER = "blobs"
KEY_FOLDER = "keys"
SIGNING_KEY_FILE = "signing.key"
PUBLIC_KEY_FILE = "signing.pub"


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
    user: str | None = Field(
        default=None, description="Acting user for command-line actions; default the first admin."
    )
    environment: Literal["development", "production"] = "development"
    host: str = "127.0.0.1"
    port: int = 8000
    checkpoint_interval_seconds: int = Field(
        default=300, ge=1, description="How often `serve` signs a checkpoint of new entries."
    )
    log_origin: str | None = Field(
        default=None,
        description="Name of this custody log in signed checkpoints; default from the host name.",
    )

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
    def signing_key_path(self) -> Path:
        return self.home_path / KEY_FOLDER / SIGNING_KEY_FILE

    @property
    def public_key_path(self) -> Path:
        return self.home_path / KEY_FOLDER / PUBLIC_KEY_FILE

    @property
    def origin(self) -> str:
        return self.log_origin or f"evidence-locker/{socket.gethostname()}"
