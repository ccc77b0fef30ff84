"""evidence/received.py: files a platform sends back, kept as evidence with their custody."""

from __future__ import annotations

import hashlib
import io
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from evidence import cases, custody, received, requests
from evidence.blobstore import FolderStore
from evidence.errors import AccessDenied, CaseClosed, InvalidInput
from evidence.home import Runtime
from evidence.models import Access, Case, CustodyEntry, ReceivedFile, Role, User
from evidence.settings import Settings
from tests.factories import AUTHORITY_FIELDS, make_sent_request, make_user

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SENT = T0 + timedelta(days=1)
GOT = T0 + timedelta(days=9)
NOW = T0 + timedelta(days=10)
CSV = b"account_id,ip,timestamp\n1234567890,203.0.113.7,2026-02-28T22:14:09Z\n"


@pytest.fixture
def world(session: Session, store: FolderStore, tmp_path: Path) -> Any:
    """A case with a request sent to X on SENT."""
    return make_sent_request(session, store, Settings(home=tmp_path), generated_at=T0,
                             sent_at=SENT)


def _register(session: Session, world: Any, store: FolderStore, data: bytes = CSV,
              **overrides: Any) -> received.Registered:
    values: dict[str, Any] = {
        "store": store, "filename": "subscriber_1234567890.csv", "received_at": GOT,
        "via": "portal", "request": world.request.reference_number,
        "platform_reference": "LE-2026-77123", "now": NOW}
    values.update(overrides)
    actor = values.pop("actor", world.actor)
    return received.register(session, actor, world.case, io.BytesIO(data), **values)


def _entries(session: Session, action: str) -> list[dict[str, Any]]:
    rows = session.scalars(select(CustodyEntry).where(CustodyEntry.action == action)
                           .order_by(CustodyEntry.seq))
    return [custody.describe(e) for e in rows]


def test_a_file_is_kept_with_its_hash_and_a_custody_entry(
        session: Session, store: FolderStore, world: Any) -> None:
    done = _register(session, world, store)
    row = done.row
    assert row.sha256 == hashlib.sha256(CSV).hexdigest() and row.size == len(CSV)
    assert store.read_bytes(row.sha256) == CSV
    assert row.media_type == "text/csv" and row.received_via == "portal"
    assert row.received_at == GOT and row.request_id == world.request.id
    [entry] = _entries(session, "material.received")
    assert entry["sha256"] == row.sha256
    assert entry["object"] == {"type": "received_file", "id": str(row.id)}
    details = entry["details"]
    assert details["filename"] == "subscriber_1234567890.csv"
    assert details["size"] == len(CSV)
    assert details["request"] == world.request.reference_number
    assert details["received_at"] == "2026-03-11T09:00:00+00:00"
    assert details["via"] == "portal" and details["platform_reference"] == "LE-2026-77123"
    # Registering marks nothing on the request unless asked.
    session.refresh(world.request)
    assert world.request.status == "sent"
    listed = received.list_received(session, world.actor, world.case)
    assert [r.id for r in listed] == [row.id]


def test_the_media_type_comes_from_the_bytes_before_the_name(
        session: Session, store: FolderStore, world: Any) -> None:
    done = _register(session, world, store, b"%PDF-1.7\n%fake\n", filename="records.csv",
                     declared_type="text/csv")
    assert done.row.media_type == "application/pdf"


def test_the_same_file_twice_for_one_request_is_refused_naming_the_first(
        session: Session, store: FolderStore, world: Any) -> None:
    first = _register(session, world, store)
    with pytest.raises(received.DuplicateMaterial) as refused:
        _register(session, world, store, filename="again.csv")
    assert refused.value.status_code == 409
    assert "subscriber_1234567890.csv" in refused.value.message
    assert str(first.row.id) in refused.value.message
    assert "on 2026-03-12 09:00:00 UTC" in refused.value.message  # read as the pages show times
    assert session.scalar(select(func.count()).select_from(ReceivedFile)) == 1
    assert len(_entries(session, "material.received")) == 1


def test_material_from_another_source_needs_the_source(
        session: Session, store: FolderStore, world: Any) -> None:
    with pytest.raises(InvalidInput, match="source"):
        _register(session, world, store, request=None)
    done = _register(session, world, store, request=None,
                     source="handed over by the witness W-3 on a USB stick", via="medium")
    assert done.row.request_id is None and (done.row.source or "").startswith("handed over")
    [entry] = _entries(session, "material.received")
    assert entry["details"]["request"] is None
    assert entry["details"]["source"] == done.row.source


def test_the_same_file_from_one_source_is_refused_and_from_another_kept(
        session: Session, store: FolderStore, world: Any) -> None:
    witness = "handed over by the witness W-3 on a USB stick"
    first = _register(session, world, store, request=None, source=witness, via="medium")
    with pytest.raises(received.DuplicateMaterial) as refused:
        _register(session, world, store, request=None, source=witness, via="medium",
                  filename="again.csv")
    assert refused.value.status_code == 409
    assert (f"already registered for source {witness!r} as 'subscriber_1234567890.csv' on "
            f"2026-03-12 09:00:00 UTC (id {first.row.id})") in refused.value.message
    _register(session, world, store, request=None, source="sent by agency B", via="email")
    _register(session, world, store)  # and for the request
    assert session.scalar(select(func.count()).select_from(ReceivedFile)) == 3
    assert len(_entries(session, "material.received")) == 3


def test_a_source_as_long_as_allowed_in_any_script_is_kept_and_guarded(
        session: Session, store: FolderStore, world: Any) -> None:
    """2000 characters of 3 bytes each, that do not compress: more than a PostgreSQL B-tree
    entry holds, so the unique index holds the source's MD5 there (migration 0016)."""
    source = "".join(chr(0x4E00 + i * 7919 % 20000) for i in range(received.MAX_SOURCE))
    done = _register(session, world, store, request=None, source=source, via="medium")
    assert done.row.source == source
    with pytest.raises(received.DuplicateMaterial, match="already registered for source"):
        _register(session, world, store, request=None, source=source, via="medium")
    # One character apart is another source.
    _register(session, world, store, request=None, source=source[:-1] + "X", via="medium")
    assert session.scalar(select(func.count()).select_from(ReceivedFile)) == 2


def test_times_in_the_future_or_before_sending_are_refused(
        session: Session, store: FolderStore, world: Any) -> None:
    with pytest.raises(InvalidInput, match="future"):
        _register(session, world, store, received_at=NOW + timedelta(hours=1))
    with pytest.raises(InvalidInput, match=r"before request .* was sent"):
        _register(session, world, store, received_at=SENT - timedelta(minutes=1))
    with pytest.raises(InvalidInput, match="time zone"):
        _register(session, world, store, received_at=GOT.replace(tzinfo=None))
    with pytest.raises(InvalidInput, match="say how"):
        _register(session, world, store, via="other")
    with pytest.raises(InvalidInput, match="unknown way"):
        _register(session, world, store, via="pigeon")
    assert session.scalar(select(func.count()).select_from(ReceivedFile)) == 0


def test_a_time_before_sending_names_the_sending_time_as_people_read_times(
        session: Session, store: FolderStore, tmp_path: Path) -> None:
    sent = datetime(2026, 3, 3, 9, 0, 7, 123456, tzinfo=UTC)
    world = make_sent_request(session, store, Settings(home=tmp_path), generated_at=T0,
                              sent_at=sent)
    # 08:30 UTC given in the sender's own zone: before the request went out.
    early = datetime(2026, 3, 3, 10, 30, tzinfo=timezone(timedelta(hours=2)))
    with pytest.raises(InvalidInput) as refused:
        _register(session, world, store, received_at=early)
    assert refused.value.message == (
        f"the time of receipt is before request {world.request.reference_number} was sent "
        "(2026-03-03 09:00:07 UTC)")


def test_an_unsent_request_takes_no_material(session: Session, store: FolderStore,
                                              world: Any, tmp_path: Path) -> None:
    draft = requests.generate(
        session, world.actor, world.case, store=store, settings=Settings(home=tmp_path),
        kind="provider-preservation", platform="x", fields=AUTHORITY_FIELDS, now=T0,
        date_from=datetime(2025, 9, 1, tzinfo=UTC), date_to=datetime(2026, 3, 1, tzinfo=UTC))
    with pytest.raises(InvalidInput, match="has not been sent"):
        _register(session, world, store, request=draft.request.reference_number)


def test_fulfil_moves_a_sent_request_to_fulfilled_in_the_same_step(
        session: Session, store: FolderStore, world: Any) -> None:
    _register(session, world, store, fulfil=True)
    session.refresh(world.request)
    assert world.request.status == "fulfilled" and world.request.answered_at == GOT
    assert [e["action"] for e in _entries(session, "request.fulfilled")] == ["request.fulfilled"]
    with pytest.raises(InvalidInput, match="is fulfilled"):
        _register(session, world, store, b"more", filename="more.csv", fulfil=True)


def test_write_access_to_an_open_case_is_needed(
        session: Session, store: FolderStore, world: Any) -> None:
    reader = make_user(session, role=Role.LIAISON)
    cases.add_member(session, world.actor, world.case, reader, Access.READ)
    stranger = make_user(session, role=Role.LIAISON)
    with pytest.raises(AccessDenied, match="needs write access") as refused:
        _register(session, world, store, actor=reader)
    assert refused.value.status_code == 403
    with pytest.raises(AccessDenied) as hidden:
        _register(session, world, store, actor=stranger)
    assert hidden.value.status_code == 404
    # A reader may list and read; a stranger sees nothing.
    done = _register(session, world, store)
    assert [r.id for r in received.list_received(session, reader, world.case)] == [done.row.id]
    with pytest.raises(AccessDenied):
        received.list_received(session, stranger, world.case)
    cases.close_case(session, world.actor, world.case)
    with pytest.raises(CaseClosed):
        _register(session, world, store, b"late", filename="late.csv")


def test_reading_the_bytes_is_recorded_before_they_are_given(
        session: Session, store: FolderStore, world: Any) -> None:
    done = _register(session, world, store)
    row, reader = received.open_received(session, world.actor, world.case, done.row.id,
                                         store=store)
    with reader:
        assert reader.read() == CSV
    [entry] = _entries(session, "material.downloaded")
    assert entry["sha256"] == row.sha256 and entry["object"]["id"] == str(row.id)


def test_a_failed_store_write_leaves_no_row_and_no_entry(
        session: Session, tmp_path: Path, world: Any, store: FolderStore) -> None:
    # A real store that cannot write (its folder lies under a plain file: no user, root
    # included, can make it), and a real upload that breaks off half-way.
    (tmp_path / "not-a-folder").write_bytes(b"")
    broken = FolderStore(tmp_path / "not-a-folder" / "blobs")
    with pytest.raises(NotADirectoryError):
        _register(session, world, broken)

    def cut_off() -> Any:
        yield CSV
        raise ConnectionResetError("the upload broke off")

    with pytest.raises(ConnectionResetError):
        received.register(session, world.actor, world.case, cut_off(), store=store,
                          filename="cut.csv", received_at=GOT, via="portal",
                          request=world.request.reference_number, now=NOW)
    assert not store.exists(hashlib.sha256(CSV).hexdigest())
    assert list(store.incoming.iterdir()) == []
    assert session.scalar(select(func.count()).select_from(ReceivedFile)) == 0
    assert _entries(session, "material.received") == []


def test_a_hostile_name_is_kept_as_given_but_bounded(
        session: Session, store: FolderStore, world: Any) -> None:
    rtl = "invoice\u202egpj.exe"
    done = _register(session, world, store, filename=rtl)
    assert done.row.filename == rtl
    long = _register(session, world, store, b"x", filename="a" * 5000)
    assert long.row.filename == "a" * received.MAX_FILENAME
    with pytest.raises(InvalidInput, match="NUL"):
        _register(session, world, store, b"y", filename="a\x00b.csv")


def _wait_for_a_lock_waiter(runtime: Runtime) -> None:
    """Return once another session of this database waits on a lock (PostgreSQL): the other
    registration, blocked on the row this one inserted and has not committed."""
    deadline = time.monotonic() + 60
    with runtime.engine.connect() as conn:
        while conn.scalar(text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock'")) == 0:
            assert time.monotonic() < deadline, "the other registration never waited"
            time.sleep(0.02)
            conn.rollback()  # a fresh snapshot of pg_stat_activity each time


@pytest.mark.parametrize("tied_to", ["request", "source"])
def test_two_registrations_of_one_file_at_once_keep_one_and_refuse_the_other(
        runtime: Runtime, tied_to: str) -> None:
    """The same file registered for the same request (or from the same source) from two
    sessions at once. On PostgreSQL both look for an earlier registration before either commits,
    so the later one is refused by the unique constraint or index (the race path); on SQLite
    transactions take the write lock as they begin, so the later one waits and finds the first.
    Either way: one row, one custody entry, the blob whole, the log verifying, and the refusal a
    409 that names the file and the request or source."""
    postgres = runtime.engine.dialect.name == "postgresql"
    with runtime.session() as s:
        world = make_sent_request(s, runtime.store, runtime.settings, generated_at=T0,
                                  sent_at=SENT)
        actor_id, case_id = world.actor.id, world.case.id
        reference = world.request.reference_number
        entries_before = s.scalar(select(func.count()).select_from(CustodyEntry)) or 0
    source = "USB stick from witness W-3"
    tie = {"request": reference} if tied_to == "request" else {"source": source}
    whose = f"request {reference}" if tied_to == "request" else f"source {source!r}"
    start = threading.Barrier(2)
    outcomes: dict[str, uuid.UUID | BaseException] = {}

    def register(name: str) -> None:
        with runtime.sessions() as s:
            try:
                start.wait(timeout=30)  # before the first query: on SQLite it takes the lock
                actor, case = s.get(User, actor_id), s.get(Case, case_id)
                assert actor is not None and case is not None
                done = received.register(s, actor, case, [CSV], store=runtime.store,
                                         filename=f"{name}.csv", received_at=GOT, via="portal",
                                         now=NOW, **tie)
                if postgres:  # commit only once the other is past its look for an earlier one
                    _wait_for_a_lock_waiter(runtime)
                s.commit()
                outcomes[name] = done.row.id
            except BaseException as exc:  # what the test reads: no thread dies unseen
                s.rollback()
                outcomes[name] = exc

    threads = [threading.Thread(target=register, args=(name,)) for name in ("first", "second")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)

    kept = {name: o for name, o in outcomes.items() if isinstance(o, uuid.UUID)}
    refused = {name: o for name, o in outcomes.items() if not isinstance(o, uuid.UUID)}
    assert len(kept) == 1 and len(refused) == 1, outcomes
    [(winner, row_id)], [error] = kept.items(), refused.values()
    assert isinstance(error, received.DuplicateMaterial), repr(error)
    assert error.status_code == 409
    sha256 = hashlib.sha256(CSV).hexdigest()
    assert f"this file (SHA-256 {sha256}) was" in error.message
    if postgres:
        assert error.message.endswith(f"registered for {whose} a moment ago, by another "
                                      "registration")
    else:
        assert f"registered for {whose} as '{winner}.csv'" in error.message
        assert str(row_id) in error.message

    with runtime.session() as s:
        [row] = s.scalars(select(ReceivedFile)).all()
        assert (row.id, row.filename, row.sha256) == (row_id, f"{winner}.csv", sha256)
        [entry] = [custody.describe(e) for e in s.scalars(
            select(CustodyEntry).where(CustodyEntry.action == "material.received"))]
        assert entry["object"]["id"] == str(row_id) and entry["sha256"] == sha256
        # Nothing of the refused registration: one entry more than before, the log whole.
        assert s.scalar(select(func.count()).select_from(CustodyEntry)) == entries_before + 1
        verified = custody.verify_log(s, runtime.verifier, workers=1)
        assert verified.ok, verified.problems
    assert runtime.store.read_bytes(sha256) == CSV
    assert isinstance(runtime.store, FolderStore)  # what init_home makes: nothing left half-put
    assert list(runtime.store.incoming.iterdir()) == []
