"""The data home: made once by `evidence init`, opened by every command that works on it.

`Runtime` gathers what a process builds at start-up from the settings (database engine and
sessions, blob store, signing key) so that services receive them instead of finding globals.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine, func, inspect, select
from sqlalchemy.orm import Session, sessionmaker

from evidence import custody, deconfliction, migrate, timestamping, users
from evidence.blobstore import BlobStore, FolderStore, S3Store
from evidence.db import (
    is_sqlite,
    make_engine,
    make_session_factory,
    read_only_scope,
    session_scope,
)
from evidence.errors import ConfigurationError, NotInitialised
from evidence.models import Checkpoint, Role, utcnow
from evidence.settings import Settings
from evidence.signing import Signer, Verifier


def make_store(settings: Settings) -> FolderStore | S3Store:
    """The blob store the settings name: a bucket (EVIDENCE_STORE_URL) or the home's folder."""
    if settings.store_url:
        return S3Store.from_url(settings.store_url, settings.blob_cache_path,
                                endpoint_url=settings.s3_endpoint_url,
                                cache_limit=settings.blob_cache_max_bytes or None)
    return FolderStore(settings.blob_path)


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    store: BlobStore
    signer: Signer
    # What time it is for the login throttle's waits; tests move it instead of sleeping.
    clock: Callable[[], datetime] = utcnow

    @property
    def verifier(self) -> Verifier:
        return self.signer.verifier

    @contextmanager
    def session(self, *, lock_wait: float | None = None) -> Iterator[Session]:
        """A unit of work (`db.session_scope`)."""
        with session_scope(self.sessions, lock_wait=lock_wait) as session:
            yield session

    @contextmanager
    def read_session(self) -> Iterator[Session]:
        """A transaction that only reads, for long reads (see `db.read_only_scope`)."""
        with read_only_scope(self.sessions) as session:
            yield session

    def close(self) -> None:
        self.engine.dispose()


def open_runtime(settings: Settings) -> Runtime:
    """Open an initialised home; refuses with a clear message when `init` has not run."""
    home = settings.home_path
    url = settings.effective_database_url
    if is_sqlite(url) and not (home / "evidence.db").exists() and settings.database_url is None:
        raise NotInitialised(f"no data home at {home}; run `evidence init --home {home}` first")
    engine = make_engine(url)
    head = migrate.head_revision()
    current = migrate.current_revision(engine)
    if current != head:
        engine.dispose()
        raise NotInitialised(
            f"database is at revision {current or 'none'}, the code needs {head}; "
            "run `evidence db upgrade`"
        )
    try:
        secret = deconfliction.load_secret(settings)
    except ConfigurationError:
        engine.dispose()
        raise
    sessions = make_session_factory(engine)
    deconfliction.attach_secret(sessions, secret)
    return Runtime(
        settings=settings,
        engine=engine,
        sessions=sessions,
        store=make_store(settings),
        signer=Signer.load(settings.signing_key_path),
    )


@dataclass
class InitReport:
    home: str
    done: list[str] = field(default_factory=list)
    admin_name: str | None = None
    admin_token: str | None = None

    @property
    def changed(self) -> bool:
        return bool(self.done)


def _refuse_a_new_key_for_signed_data(settings: Settings) -> None:
    """The signing key is missing: refuse to make another if the database holds checkpoints.

    Every checkpoint and capture seal already made names the lost key; with a new one, each of
    them would fail to verify and the custody log could never be checked again here.
    """
    engine = make_engine(settings.effective_database_url)
    try:
        if not inspect(engine).has_table(Checkpoint.__tablename__):
            return
        with engine.connect() as conn:
            signed = conn.execute(select(func.count(), func.max(Checkpoint.key_id))).one()
    finally:
        engine.dispose()
    count, key_id = signed
    if count:
        raise ConfigurationError(
            f"the signing key {settings.signing_key_path} is missing, but the database holds "
            f"{count} checkpoints signed with key {key_id}: a new key would make every seal and "
            f"checkpoint fail to verify. Restore {settings.signing_key_path.parent} from a "
            "backup (evidence backup copies it); for a new home, give another --home")


def init_home(
    settings: Settings, *, admin_name: str = "admin", unit: str | None = None
) -> InitReport:
    """Make whatever part of the home is missing; a complete home is left exactly as it is."""
    home = settings.home_path
    report = InitReport(home=str(home))
    if not home.exists():
        home.mkdir(parents=True, mode=0o700)
        report.done.append(f"created data home {home}")
    store = make_store(settings)
    if store.create():
        report.done.append(f"created blob store {settings.blob_path}" if settings.store_url is None
                           else f"blob store {settings.store_url} answers; created its local "
                           f"cache {settings.blob_cache_path}")
    if not settings.signing_key_path.exists():
        _refuse_a_new_key_for_signed_data(settings)
        signer = Signer.generate()
        signer.save(settings.signing_key_path, settings.public_key_path)
        report.done.append(
            f"generated Ed25519 signing key {settings.signing_key_path} (mode 0600), "
            f"key id {signer.key_id}"
        )
    else:
        signer = Signer.load(settings.signing_key_path)
        mode = settings.signing_key_path.stat().st_mode & 0o777
        if mode & 0o077:
            os.chmod(settings.signing_key_path, 0o600)
            report.done.append(f"tightened {settings.signing_key_path} from {oct(mode)} to 0600")
        if not settings.public_key_path.exists():
            settings.public_key_path.write_bytes(signer.verifier.public_pem())
            report.done.append(f"wrote public key {settings.public_key_path}")
    key_path = deconfliction.key_path(settings)
    if not key_path.exists():
        key_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(secrets.token_hex(32) + "\n")
        report.done.append(
            f"generated deconfliction key {key_path} (mode 0600); instances that share a "
            "database must share one secret: see EVIDENCE_DECONFLICTION_SECRET"
        )
    if not (settings.tsa_path / timestamping.TSA_KEY_FILENAME).exists():
        material = timestamping.generate_local_tsa(f"evidence-locker local TSA ({settings.origin})")
        timestamping.save_local_tsa(material, settings.tsa_path)
        report.done.append(
            f"created the built-in timestamp authority in {settings.tsa_path} (its times rest "
            "on this system's clock; set EVIDENCE_TSA_URLS to use external authorities)"
        )
    engine = make_engine(settings.effective_database_url)
    try:
        before, after = migrate.upgrade(engine)
        if before != after:
            report.done.append(f"migrated database to revision {after}")
        with session_scope(make_session_factory(engine)) as session:
            if users.first_admin(session) is None:
                admin = users.create_user(
                    session, None, name=admin_name, role=Role.ADMIN, unit=unit
                )
                report.admin_name = admin.name
                report.admin_token = users.issue_token(session, admin, admin, name="init")
                custody.cut_checkpoint(session, signer, origin=settings.origin)
                report.done.append(f"created admin user {admin.name!r}")
    finally:
        engine.dispose()
    return report
