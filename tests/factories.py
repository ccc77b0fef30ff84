"""Plain factory functions: each makes one thing with sensible defaults, overridable."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, text
from sqlalchemy.orm import Session

from evidence import cases, targets, users
from evidence.models import Case, Role, User

_counter = itertools.count(1)


def make_user(session: Session, **overrides: Any) -> User:
    n = next(_counter)
    values: dict[str, Any] = {"name": f"user{n}", "role": Role.INVESTIGATOR, "unit": "Unit A"}
    values.update(overrides)
    return users.create_user(session, None, **values)


def make_case(session: Session, actor: User | None = None, **overrides: Any) -> Case:
    n = next(_counter)
    actor = actor or make_user(session)
    values: dict[str, Any] = {"reference": f"CASE-{n}", "title": f"Case {n}"}
    values.update(overrides)
    return cases.create_case(session, actor, **values)


def make_capture(
    session: Session,
    case: Case,
    target: Any,
    store: Any,
    *,
    files: list[tuple[str, str, str, bytes]] | None = None,
    comparison: dict[str, Any] | None = None,
    http_status: int = 200,
) -> Any:
    """A recorded capture of `target` whose artifacts' bytes are in `store`.

    `files` are (kind, name, media type, bytes); the default is a screenshot and a DOM.
    `http_status`: what the page answered.
    """
    import hashlib
    import uuid
    from datetime import timedelta

    from evidence import captures
    from evidence.manifests import SealedManifest
    from evidence.models import CaptureStatus, utcnow

    files = files or [
        ("screenshot", "screenshot.png", "image/png", b"\x89PNG\r\n\x1a\n fake screenshot"),
        ("dom", "dom.html", "text/html; charset=utf-8", b"<html><body>advert</body></html>"),
    ]
    started = utcnow()
    stored = []
    for kind, name, media_type, data in files:
        blob = store.put_bytes(data)
        stored.append(captures.StoredArtifact(kind, name, media_type, blob.size, blob.sha256,
                                              store.locate(blob.sha256)))
    record = captures.CaptureRecord(
        capture_id=uuid.uuid4(), requested_url=target.url or "https://example.org/",
        operator=None, worker_host="test-host", started_at=started,
        finished_at=started + timedelta(seconds=2), final_url=target.url, http_status=http_status,
        title="An advert", steps=[captures.StepOutcome("navigate", True, ms=120),
                                  captures.StepOutcome("pdf", False, error="timed out")],
        artifacts=stored, status=CaptureStatus.PARTIAL,
    )
    manifest = b'{"test":"manifest"}'
    sealed = SealedManifest(data=manifest, sha256=hashlib.sha256(manifest).hexdigest(),
                            signature=b"\x01" * 64, key_id="0" * 64, token=None,
                            timestamp_time=None, timestamp_authority=None, timestamp_note=None,
                            timestamp_error=None)
    return captures.record_capture(session, None, record=record, case=case, target=target,
                                   job_id=None, sealed=sealed, extra_artifacts=[], store=store,
                                   comparison=comparison)


def make_sealed_capture(
    session: Session,
    runtime: Any,
    case: Case,
    target: Any,
    *,
    files: list[tuple[str, str, str, bytes]] | None = None,
    actor: User | None = None,
    title: str | None = "An advert",
    unsigned: tuple[str, ...] = (),
) -> Any:
    """A capture recorded as the worker records one: its artifacts in the store, its manifest
    canonical, signed with the home's key and timestamped by its authority, and the manifest,
    signature and token stored beside the artifacts. `unsigned` names manifest fields left
    out, as older versions made manifests without them. Needs a home made by `init_home`."""
    import uuid
    from datetime import timedelta

    from evidence import captures, manifests
    from evidence.models import CaptureStatus, utcnow

    store = runtime.store
    files = files or [
        ("screenshot", "screenshot-full.png", "image/png", b"\x89PNG\r\n\x1a\n a screenshot"),
        ("dom", "dom.html", "text/html; charset=utf-8", b"<html><body>crossing</body></html>"),
        ("text", "text.txt", "text/plain; charset=utf-8", "عبور مضمون".encode()),
    ]
    stored = []
    for kind, name, media_type, data in files:
        blob = store.put_bytes(data)
        stored.append(captures.StoredArtifact(kind, name, media_type, blob.size, blob.sha256,
                                              store.locate(blob.sha256)))
    started = utcnow()
    record = captures.CaptureRecord(
        capture_id=uuid.uuid4(), requested_url=target.url or "https://example.org/",
        operator=None if actor is None else actor.name, worker_host="test-host",
        started_at=started, finished_at=started + timedelta(seconds=2), final_url=target.url,
        http_status=200, title=title, steps=[captures.StepOutcome("navigate", True)],
        artifacts=stored, status=CaptureStatus.COMPLETE,
    )
    manifest = captures.manifest_of(record, case=case, target_id=target.id)
    sealed = manifests.seal({k: v for k, v in manifest.items() if k not in unsigned},
                            runtime.signer, manifests.timestamp_authority(runtime.settings))
    extra = []
    for kind, name, media_type, data in (
        ("manifest", "manifest.json", "application/json", sealed.data),
        ("signature", "manifest.sig", "application/octet-stream", sealed.signature),
        ("timestamp", "manifest.tsr", "application/timestamp-reply", sealed.token or b""),
    ):
        if data:
            blob = store.put_bytes(data)
            extra.append(captures.StoredArtifact(kind, name, media_type, blob.size, blob.sha256,
                                                 store.locate(blob.sha256)))
    return captures.record_capture(session, actor, record=record, case=case, target=target,
                                   job_id=None, sealed=sealed, extra_artifacts=extra,
                                   store=store)


ARABIC_HANDLE = "مهرب_السفر"


def make_request_world(session: Session, store: Any, actor: User | None = None,
                       **case_overrides: Any) -> Any:
    """A case ready for legal requests: an X post (URL target), an X account with an Arabic
    handle (account target) and a Facebook post, each with a sealed (partial) capture."""
    from types import SimpleNamespace

    from evidence import accounts, targets

    actor = actor or make_user(session, role=Role.LIAISON)
    values: dict[str, Any] = {"offence": "Migrant smuggling", "jurisdiction": "DE"}
    values.update(case_overrides)
    case = make_case(session, actor, **values)
    x_post, _ = targets.flag_target(session, actor, case, reason="advert for crossings",
                                    url="https://x.com/smuggler_ar/status/1789")
    account, _ = accounts.link_account(session, actor, case, platform="x",
                                       platform_account_id="1234567890",
                                       handle=f"@{ARABIC_HANDLE}",
                                       profile_url="https://x.com/i/user/1234567890")
    x_account, _ = targets.flag_target(session, actor, case, reason="the advertiser",
                                       account=account)
    fb_post, _ = targets.flag_target(session, actor, case, reason="same advert on Facebook",
                                     url="https://www.facebook.com/some.seller/posts/123")
    captures = {t.id: make_capture(session, case, t, store) for t in (x_post, x_account, fb_post)}
    return SimpleNamespace(actor=actor, case=case, x_post=x_post, x_account=x_account,
                           fb_post=fb_post, account=account, captures=captures)


AUTHORITY_FIELDS = {
    "issuing.name": "Bundespolizeidirektion Pirna, Gemeinsames Zentrum",
    "issuing.role": "police",
    "issuing.country": "DE",
    "issuing.address": "Rottwerndorfer Str. 22, 01796 Pirna, Germany",
    "issuing.phone": "+49 3501 0000",
    "issuing.email": "liaison@example.police.de",
    "issuing.time_zone": "Europe/Berlin",
    "issuing.person": "KHK A. Beispiel",
    "issuing.position": "Liaison officer",
}
# What an EPOC-PR needs beyond the standing authority: a validating prosecutor, the offence.
EPOC_PR_FIELDS = {
    **AUTHORITY_FIELDS,
    "issuing.file_number": "BPOL-2026-114",
    "validating.name": "Staatsanwaltschaft Dresden",
    "validating.role": "prosecutor",
    "validating.country": "DE",
    "validating.address": "Lothringer Str. 1, 01069 Dresden",
    "validating.phone": "+49 351 0000",
    "validating.email": "sta@example.justiz.de",
    "validating.time_zone": "Europe/Berlin",
    "addressee_type": "designated establishment",
    "offence_provision": "§ 96 AufenthG",
    "facts": "Adverts offering crossings of the EU external border for payment.",
    "max_penalty_years": "10",
}


def make_sent_request(session: Session, store: Any, settings: Any, *, actor: User | None = None,
                      generated_at: Any = None, sent_at: Any = None,
                      **case_overrides: Any) -> Any:
    """`make_request_world` with a provider preservation request to X generated, approved by a
    supervisor of the case and sent (at `sent_at`, default now): `world.request`."""
    from datetime import UTC, datetime

    from evidence import requests
    from evidence.models import Access

    world = make_request_world(session, store, actor, **case_overrides)
    made = requests.generate(
        session, world.actor, world.case, store=store, settings=settings,
        kind="provider-preservation", platform="x", fields=AUTHORITY_FIELDS, now=generated_at,
        date_from=datetime(2025, 9, 1, tzinfo=UTC), date_to=datetime(2026, 3, 1, tzinfo=UTC))
    boss = make_user(session, role=Role.SUPERVISOR)
    cases.add_member(session, world.actor, world.case, boss, Access.WRITE)
    request_id = made.request.id
    requests.change_status(session, boss, world.case, request_id, "approved", at=sent_at,
                           now=sent_at)
    world.request = requests.change_status(session, world.actor, world.case, request_id, "sent",
                                           at=sent_at, now=sent_at)
    world.supervisor = boss
    return world


def make_text_capture(
    session: Session,
    case: Case,
    target: Any,
    store: Any,
    *,
    text: str | None = None,
    title: str | None = None,
    started_at: Any = None,
    images: list[str] | None = None,
    pdf_texts: list[str] | None = None,
) -> Any:
    """A recorded capture with visible text (a "text" artifact), the words of PDFs it loaded
    (`pdf_texts`, a "pdf_text" artifact each) and screenshots whose pHashes are `images` (16
    hex digits each); `started_at` sets when it was captured."""
    import hashlib
    import uuid
    from datetime import timedelta

    from evidence import captures
    from evidence.manifests import SealedManifest
    from evidence.models import CaptureStatus, utcnow

    started = started_at or utcnow()
    stored = []
    if text is not None:
        blob = store.put_bytes(text.encode("utf-8"))
        stored.append(captures.StoredArtifact("text", "text.txt", "text/plain; charset=utf-8",
                                              blob.size, blob.sha256, store.locate(blob.sha256)))
    for words in pdf_texts or []:
        blob = store.put_bytes(words.encode("utf-8"))
        pdf = hashlib.sha256(f"a PDF saying {words}".encode()).hexdigest()
        stored.append(captures.StoredArtifact("pdf_text", f"{pdf}.txt",
                                              "text/plain; charset=utf-8", blob.size,
                                              blob.sha256, store.locate(blob.sha256)))
    for n, phash in enumerate(images or []):
        blob = store.put_bytes(f"image {phash} {n} {uuid.uuid4()}".encode())
        stored.append(captures.StoredArtifact("screenshot", f"shot-{n}.png", "image/png",
                                              blob.size, blob.sha256, store.locate(blob.sha256),
                                              phash=phash, dhash=phash))
    record = captures.CaptureRecord(
        capture_id=uuid.uuid4(), requested_url=target.url or "https://example.org/",
        operator=None, worker_host="test-host", started_at=started,
        finished_at=started + timedelta(seconds=2), final_url=target.url, http_status=200,
        title=title, steps=[captures.StepOutcome("navigate", True, ms=120)],
        artifacts=stored, status=CaptureStatus.COMPLETE,
    )
    manifest = b'{"test":"manifest"}'
    sealed = SealedManifest(data=manifest, sha256=hashlib.sha256(manifest).hexdigest(),
                            signature=b"\x01" * 64, key_id="0" * 64, token=None,
                            timestamp_time=None, timestamp_authority=None, timestamp_note=None,
                            timestamp_error=None)
    return captures.record_capture(session, None, record=record, case=case, target=target,
                                   job_id=None, sealed=sealed, extra_artifacts=[], store=store)


def case_with_a_capture(runtime: Any, actor_name: str, reference: str, *,
                        url: str = "https://t.me/crossings",
                        files: list[tuple[str, str, str, bytes]] | None = None,
                        **details: Any) -> None:
    """The user's new case `reference`, with one target (`url`) and one sealed capture of it
    holding `files` (see `make_sealed_capture`), committed."""
    with runtime.session() as s:
        actor = users.get_user(s, actor_name)
        case = cases.create_case(s, actor, reference=reference, title="Crossing adverts",
                                 **details)
        target, _ = targets.flag_target(s, actor, case, url=url, reason="advert")
        make_sealed_capture(s, runtime, case, target, actor=actor, files=files)


def drop_append_only(conn: Connection, *tables: str) -> None:
    """Drop the triggers that make `tables` append-only, as an insider with database access
    would before editing the custody log (custody_entries, checkpoints)."""
    for table in tables:
        if conn.dialect.name == "sqlite":
            for verb in ("update", "delete"):
                conn.execute(text(f"DROP TRIGGER {table}_no_{verb}"))
        else:
            conn.execute(text(f"DROP TRIGGER {table}_append_only ON {table}"))


def started_export(runtime: Any, actor_name: str, reference: str, lease_owner: str) -> Any:
    """The id of an export as a process leaves it when it dies right after starting it: the
    export started (and recorded), its lease held by `lease_owner`, no bundle."""
    from evidence import bundles

    with runtime.session() as s:
        return bundles._plan(runtime, s, users.get_user(s, actor_name), reference, None,
                             lease_owner).export_id


def age_lease(runtime: Any, export_id: Any, seconds: float) -> Any:
    """Move an export's lease `seconds` into the past, as that much time passing would; returns
    when it now runs out."""
    from datetime import timedelta

    from evidence.models import Export

    with runtime.session() as s:
        row = s.get(Export, export_id)
        assert row is not None and row.lease_until is not None
        row.lease_until -= timedelta(seconds=seconds)
        return row.lease_until


def two_answered_targets(runtime: Any, reference: str, *, liaison: str,
                         supervisor: str) -> Any:
    """A new case `reference` of the `liaison` (the `supervisor` a writer of it): two X posts by
    different accounts, each sealed; a preservation request to X about each, approved and sent
    three days ago; the platform's answer to each (`first-subscriber.csv`,
    `second-subscriber.csv`) and a witness's file from elsewhere (`statement.txt`), committed.
    Returns the two targets and the requests' references (`refs["first"]`, ...)."""
    from datetime import timedelta
    from types import SimpleNamespace

    from evidence import received, requests
    from evidence.models import Access, utcnow

    sent = utcnow().replace(microsecond=0) - timedelta(days=3)
    refs: dict[str, str] = {}
    with runtime.session() as s:
        actor, boss = users.get_user(s, liaison), users.get_user(s, supervisor)
        case = cases.create_case(s, actor, reference=reference, title="Two advertisers",
                                 offence="Migrant smuggling")
        cases.add_member(s, actor, case, boss, Access.WRITE)
        first, _ = targets.flag_target(s, actor, case, reason="first advert",
                                       url="https://x.com/smuggler_ar/status/1789")
        second, _ = targets.flag_target(s, actor, case, reason="second advert",
                                        url="https://x.com/crossings_now/status/2024")
        for key, target in (("first", first), ("second", second)):
            make_sealed_capture(s, runtime, case, target, actor=actor)
            made = requests.generate(s, actor, case, store=runtime.store,
                                     settings=runtime.settings, kind="provider-preservation",
                                     platform="x", target_ids=[target.id],
                                     fields=AUTHORITY_FIELDS, now=sent - timedelta(hours=1),
                                     date_from=sent - timedelta(days=90), date_to=sent)
            requests.change_status(s, boss, case, made.request.id, "approved", at=sent, now=sent)
            requests.change_status(s, actor, case, made.request.id, "sent", at=sent, now=sent)
            refs[key] = made.request.reference_number or ""
            received.register(s, actor, case, [f"{key} subscriber\n".encode()],
                              store=runtime.store, filename=f"{key}-subscriber.csv",
                              received_at=sent + timedelta(days=1), via="portal",
                              request=refs[key])
        received.register(s, actor, case, [b"witness statement\n"], store=runtime.store,
                          filename="statement.txt", received_at=sent + timedelta(days=2),
                          via="medium", source="USB stick from witness W-3")
    return SimpleNamespace(first=first, second=second, refs=refs)


def export_as_of_revision(monkeypatch: pytest.MonkeyPatch, revision: int, runtime: Any,
                          user: str, **export: Any) -> Path:
    """The case exported as the exporter of an earlier bundle `revision` wrote it: bundle.json
    and the export's sealed export.started entry both say that revision (the test then takes
    out what the revision lacked). A bundle edited to claim an older revision than its entry
    records fails, so older bundles cannot be made by editing a current one."""
    from evidence import bundles

    monkeypatch.setattr(bundles, "BUNDLE_REVISION", revision)
    path: Path = bundles.export_case(runtime, user, **export).path
    return path
