"""Fixity checks of the blob store: every blob the database refers to is re-hashed, and each one
missing, altered or of another size than recorded is named with what held it; every capture's
seal is checked (signature, timestamp, files and shown facts against the signed manifest); the
check is recorded in the custody log; the whole store is for admins and auditors, a case for
its members. Through the service and the command line, on both backends, folder and bucket."""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from click.testing import CliRunner
from sqlalchemy import select, text, update

from evidence import (
    backup,
    bundle_verifier,
    bundles,
    captures,
    cases,
    custody,
    fixity,
    migrate,
    targets,
    users,
)
from evidence.blobstore import FolderStore, S3Store
from evidence.cli import _load_plugins, main_group
from evidence.errors import AccessDenied, PermissionDenied
from evidence.home import Runtime
from evidence.models import Artifact, Capture, Case, CustodyEntry, Role
from tests.factories import case_with_a_capture, make_sealed_capture
from tests.support.s3_server import S3Server


def _case(runtime: Runtime, reference: str, screenshot: bytes) -> None:
    """Investigator ines's case with one sealed capture (screenshot, DOM, manifest,
    signature, timestamp)."""
    case_with_a_capture(runtime, "ines", reference, url=f"https://t.me/{reference}", files=[
        ("screenshot", "screenshot-full.png", "image/png", screenshot),
        ("dom", "dom.html", "text/html", b"<html>crossing tonight</html>"),
    ])


@pytest.fixture
def world(runtime: Runtime) -> Runtime:
    """Two cases of ines's with a capture each (their DOMs are the same bytes: one blob, held
    twice), auditor aldo, investigator ivo (member of neither), and a kept bundle of OP-1."""
    with runtime.session() as s:
        users.create_user(s, None, name="ines", role=Role.INVESTIGATOR)
        users.create_user(s, None, name="ivo", role=Role.INVESTIGATOR)
        users.create_user(s, None, name="aldo", role=Role.AUDITOR)
    _case(runtime, "OP-1", b"\x89PNG first")
    _case(runtime, "OP-2", b"\x89PNG second")
    bundles.export_and_keep(runtime, "ines", reference="OP-1")
    return runtime


def _check(runtime: Runtime, actor: str, case: str | None = None) -> fixity.FixityReport:
    return fixity.check_store(runtime, actor, case_reference=case)


def _blob_of(runtime: Runtime, case: str, kind: str) -> str:
    with runtime.session() as s:
        return str(s.execute(
            select(Artifact.sha256).join(Case, Case.id == Artifact.case_id)
            .where(Case.reference == case, Artifact.kind == kind)).scalar_one())


def _overwrite(runtime: Runtime, sha256: str, data: bytes) -> None:
    path = Path(runtime.store.locate(sha256))
    os.chmod(path, 0o640)
    path.write_bytes(data)


def test_an_untouched_store_is_whole_and_the_check_is_recorded(world: Runtime) -> None:
    with world.session() as s:
        distinct = set(s.scalars(select(Artifact.sha256)))
    report = _check(world, "admin")
    assert report.ok, report.summary()
    # every artifact's blob once (the shared DOM too) and the kept bundle
    assert report.blobs == len(distinct) + 1
    assert report.bytes == sum(world.store.size(h) for h in distinct) + sum(
        world.store.size(h) for h in _bundles(world))
    assert report.summary().startswith(f"store whole: {report.blobs} blobs")
    with world.session() as s:
        entry = s.scalars(select(CustodyEntry).where(CustodyEntry.action == "store.checked")
                          ).one()
        doc = custody.describe(entry)
    assert doc["case"] is None and doc["actor"]["name"] == "admin"
    assert report.seals == 2  # one capture in each case
    assert doc["details"] == {"blobs": report.blobs, "bytes": report.bytes, "seals": 2,
                              "missing": 0, "altered": 0, "size": 0, "seal": 0, "problems": []}


def test_a_bundle_written_only_to_a_file_is_not_looked_for_in_the_store(
    world: Runtime, tmp_path: Path,
) -> None:
    """`evidence export --out` writes the bundle where the user said and keeps no copy: the
    store is whole without it (it was reported missing, and the backup refused to run)."""
    written = bundles.export_case(world, "ines", reference="OP-2", out=tmp_path / "op-2.zip")
    assert not world.store.exists(written.sha256)
    report = _check(world, "admin")
    assert report.ok, report.summary()
    with world.session() as s:
        kept: dict[str, bool] = dict(s.execute(text(
            "SELECT bundle_sha256, kept FROM exports")).all())
    assert {bool(v) for v in kept.values()} == {True, False}
    assert not kept[written.sha256]
    if world.engine.dialect.name == "sqlite":  # backups are of embedded homes
        made = backup.backup_home(world, "admin", tmp_path / "backup")
        assert made.blobs == report.blobs

    # Made before exports said whether they were kept: migration 0012 tells them apart by the
    # file their custody entry names (the API writes its bundles as bundle.zip).
    config = migrate.alembic_config(world.engine)
    with world.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0011")
    migrate.upgrade(world.engine)
    with world.session() as s:
        assert dict(s.execute(text("SELECT bundle_sha256, kept FROM exports")).all()) == kept


def _bundles(runtime: Runtime) -> list[str]:
    with runtime.session() as s:
        return [str(h) for h in s.scalars(text(
            "SELECT bundle_sha256 FROM exports WHERE bundle_sha256 IS NOT NULL"))]


def test_missing_altered_and_resized_blobs_are_named_with_what_held_them(
    world: Runtime,
) -> None:
    screenshot = _blob_of(world, "OP-1", "screenshot")
    dom = _blob_of(world, "OP-1", "dom")  # OP-2's capture holds the same bytes
    (bundle,) = _bundles(world)
    _overwrite(world, screenshot, b"\x89PNG edited")
    Path(world.store.locate(dom)).unlink()
    with world.engine.begin() as conn:
        conn.execute(text("UPDATE exports SET size = size + 1"))
    report = _check(world, "aldo")
    assert not report.ok
    by_hash = {p.sha256: p for p in report.problems}
    assert set(by_hash) == {screenshot, dom, bundle}
    assert by_hash[screenshot].problem == "altered"
    assert by_hash[screenshot].held_by[0].startswith("screenshot screenshot-full.png of capture")
    assert by_hash[screenshot].held_by[0].endswith("(case OP-1)")
    assert by_hash[dom].problem == "missing"
    assert [h.rsplit(" ", 1)[-1] for h in by_hash[dom].held_by] == ["OP-1)", "OP-2)"]
    assert by_hash[bundle].problem == "size"
    assert "the bundle of export" in by_hash[bundle].held_by[0]
    assert "NOT whole: 1 missing, 1 altered, 1 size" in report.summary()
    with world.session() as s:
        entry = s.scalars(select(CustodyEntry).where(CustodyEntry.action == "store.checked")
                          ).one()
        details = custody.describe(entry)["details"]
    assert (details["missing"], details["altered"], details["size"]) == (1, 1, 1)


def test_a_blob_that_cannot_be_read_is_named_missing(world: Runtime) -> None:
    screenshot = _blob_of(world, "OP-1", "screenshot")
    assert isinstance(world.store, FolderStore)
    path = Path(world.store.locate(screenshot))
    path.unlink()
    path.mkdir()  # a folder where the file was
    report = _check(world, "admin")
    (problem,) = report.problems
    assert (problem.sha256, problem.problem) == (screenshot, "missing")
    assert "cannot be read: Is a directory" in problem.detail


def test_a_capture_that_no_longer_says_what_it_signed_is_named(world: Runtime) -> None:
    """Every blob still whole, yet the rows changed: one capture shows another final URL than
    the one it signed; the other's screenshot row points at an intact blob of another capture
    and its signature was replaced. The blob check alone cannot see either; the seals do."""
    with world.session() as s:
        first, second = (s.scalars(select(Capture.id).join(Case).where(Case.reference == ref))
                         .one() for ref in ("OP-1", "OP-2"))
    mine, theirs = _blob_of(world, "OP-2", "screenshot"), _blob_of(world, "OP-1", "screenshot")
    with world.session() as s:
        s.execute(update(Capture).where(Capture.id == first)
                  .values(final_url="https://example.org/harmless"))
        s.execute(update(Artifact).where(Artifact.capture_id == second,
                                         Artifact.kind == "screenshot")
                  .values(sha256=theirs, size=world.store.size(theirs)))
        s.execute(update(Capture).where(Capture.id == second).values(signature=b"\x00" * 64))
    report = _check(world, "aldo")
    assert report.counts() == {"missing": 0, "altered": 0, "size": 0, "seal": 4}
    assert sorted((p.held_by, p.detail) for p in report.problems) == sorted([
        ([f"capture {first} (case OP-1)"],
         "final_url is 'https://example.org/harmless' where the signed manifest says "
         "'https://t.me/OP-1'"),
        ([f"capture {second} (case OP-2)"],
         "the manifest's signature does not verify with this system's key"),
        ([f"capture {second} (case OP-2)"],
         "its signature file is not the signature kept with the capture"),
        ([f"capture {second} (case OP-2)"],
         "its files are not the ones the manifest lists: not listed: screenshot "
         f"screenshot-full.png ({theirs}); listed, not held: screenshot screenshot-full.png "
         f"({mine})"),
    ])


def test_capture_times_edited_in_the_database_are_named_and_not_exported(
    world: Runtime, tmp_path: Path,
) -> None:
    """The report, the index and the provenance graph of a bundle show when a capture was
    made: times moved in the database are found by the store check, and the export refuses
    to state them."""
    with world.session() as s:
        capture = s.scalars(select(Capture).join(Case).where(Case.reference == "OP-1")).one()
        signed = capture.started_at
        capture.started_at = datetime(2020, 1, 1, tzinfo=UTC)
        capture_id = capture.id
    report = _check(world, "admin")
    (problem,) = report.problems
    assert problem.problem == "seal" and problem.held_by == [f"capture {capture_id} (case OP-1)"]
    assert problem.detail == ("started_at is '2020-01-01T00:00:00.000000Z' where the signed "
                              f"manifest says '{signed.strftime('%Y-%m-%dT%H:%M:%S.%fZ')}'")
    with pytest.raises(bundles.ExportFailed, match="no longer agrees with its signed manifest"):
        bundles.export_case(world, "ines", reference="OP-1", out=tmp_path / "op-1.zip")
    assert not (tmp_path / "op-1.zip").exists()


def _titled_case(runtime: Runtime, reference: str, title: str | None,
                 unsigned: tuple[str, ...] = ()) -> None:
    with runtime.session() as s:
        ines = users.get_user(s, "ines")
        case = cases.create_case(s, ines, reference=reference, title="Crossing adverts")
        target, _ = targets.flag_target(s, ines, case, url=f"https://t.me/{reference}",
                                        reason="advert")
        make_sealed_capture(s, runtime, case, target, actor=ines, title=title,
                            unsigned=unsigned)


def _signed(runtime: Runtime, reference: str) -> dict[str, Any]:
    with runtime.session() as s:
        capture = s.scalars(select(Capture).join(Case).where(Case.reference == reference)).one()
    manifest: dict[str, Any] = json.loads(runtime.store.read_bytes(next(
        a.sha256 for a in _artifacts(runtime, capture.id) if a.kind == "manifest")))
    return manifest


def _artifacts(runtime: Runtime, capture_id: Any) -> list[Artifact]:
    with runtime.session() as s:
        return list(s.scalars(select(Artifact).where(Artifact.capture_id == capture_id)))


def test_the_page_title_is_signed_as_captured_and_an_edited_one_is_named_and_not_exported(
    world: Runtime, tmp_path: Path,
) -> None:
    """The title is signed as the page had it, markup and controls and all, cut past the bound
    with the cut said; the bundle's check shows it escaped; a title edited in the database is
    found by the store check and refused by the export."""
    hostile = "<b>Crossings</b> & \x1b[2J\u202eboats " + "ي" * 3000
    _titled_case(world, "OP-T", hostile)
    signed = _signed(world, "OP-T")
    assert signed["title"] == hostile[:captures.MAX_SIGNED_TITLE_CHARS]
    assert signed["title_truncated"] is True
    assert _check(world, "admin").ok

    written = bundles.export_case(world, "ines", reference="OP-T", out=tmp_path / "op-t.zip")
    report = bundle_verifier.verify_bundle(written.path)
    assert report.ok, report.render()
    shown = report.render()
    assert "title '<b>Crossings</b> & \\x1b[2J\\u202eboats ييي" in shown
    assert f"(the first 200 of {captures.MAX_SIGNED_TITLE_CHARS} characters) (cut when " \
        "signed)" in shown
    assert "\x1b" not in shown and "\u202e" not in shown

    with world.session() as s:
        capture = s.scalars(select(Capture).join(Case).where(Case.reference == "OP-T")).one()
        capture.title = "A harmless page"
    problems = _check(world, "admin").problems
    assert {p.problem for p in problems} == {"seal"}
    cut, title = (p.detail for p in problems)
    assert cut == "title_truncated is False where the signed manifest says True"
    assert title.startswith("title is 'A harmless page' where the signed manifest says "
                            "'<b>Crossings</b>")
    with pytest.raises(bundles.ExportFailed, match="no longer agrees with its signed manifest"):
        bundles.export_case(world, "ines", reference="OP-T", out=tmp_path / "again.zip")


def test_a_manifest_made_before_the_title_was_signed_still_holds(
    world: Runtime, tmp_path: Path,
) -> None:
    _titled_case(world, "OP-OLD", "An advert", unsigned=("title", "title_truncated"))
    assert "title" not in _signed(world, "OP-OLD")
    assert _check(world, "admin").ok
    written = bundles.export_case(world, "ines", reference="OP-OLD",
                                  out=tmp_path / "op-old.zip")
    report = bundle_verifier.verify_bundle(written.path)
    assert report.ok, report.render()
    assert ", title " not in report.render()


def test_a_case_is_checked_by_its_members_and_the_store_by_admins_and_auditors(
    world: Runtime,
) -> None:
    _overwrite(world, _blob_of(world, "OP-2", "screenshot"), b"\x89PNG edited")
    mine = _check(world, "ines", "OP-1")
    assert mine.ok and mine.case_reference == "OP-1"
    assert mine.summary().startswith("case OP-1's blobs whole")
    theirs = _check(world, "aldo", "OP-2")
    assert [p.problem for p in theirs.problems] == ["altered"]
    with pytest.raises(PermissionDenied, match="admin or an auditor"):
        _check(world, "ines")
    with pytest.raises(AccessDenied):
        _check(world, "ivo", "OP-1")
    with world.session() as s:
        recorded = [custody.describe(e) for e in s.scalars(
            select(CustodyEntry).where(CustodyEntry.action == "store.checked")
            .order_by(CustodyEntry.seq))]
    assert [(d["case"]["ref"], d["details"]["altered"]) for d in recorded] == [
        ("OP-1", 0), ("OP-2", 1)]


def test_the_system_goes_on_recording_while_the_store_is_checked(
    world: Runtime, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Hashing a large store takes hours: no transaction is held open meanwhile (on SQLite one
    would hold the write lock), so captures and views are recorded as the check runs."""
    monkeypatch.setattr(fixity, "PROGRESS_EVERY_SECONDS", 0)
    monkeypatch.setattr(fixity, "BATCH", 2)  # several batches, each read in its own transaction
    said: list[str] = []

    def meanwhile(message: str) -> None:
        said.append(message)
        with world.session() as s:  # another user's work, committed while the check runs
            cases.view_case(s, users.get_user(s, "ines"), "OP-2")

    report = fixity.check_store(world, "admin", progress=meanwhile)
    assert report.ok and report.blobs > 2
    assert len(said) == report.blobs + report.seals
    assert said[report.blobs - 1] == f"checked {report.blobs} blobs, {report.bytes} bytes"
    assert said[-1] == f"checked {report.seals} capture seals"
    with world.session() as s:
        actions = [e.action for e in s.scalars(select(CustodyEntry).order_by(CustodyEntry.seq))]
    assert actions[-1] == "store.checked"
    assert actions[-1 - len(said):-1] == ["case.viewed"] * len(said)


def test_the_command_line_names_each_problem_and_exits_non_zero(world: Runtime) -> None:
    env = {"EVIDENCE_HOME": str(world.settings.home_path),
           "EVIDENCE_DATABASE_URL": world.settings.database_url, "EVIDENCE_USER": "admin"}
    _load_plugins(main_group)
    runner = CliRunner()
    whole = runner.invoke(main_group, ["store", "check"], env=env, catch_exceptions=False)
    assert whole.exit_code == 0, whole.output
    assert whole.output.startswith("store whole:")
    screenshot = _blob_of(world, "OP-2", "screenshot")
    _overwrite(world, screenshot, b"\x89PNG edited")
    broken = runner.invoke(main_group, ["store", "check", "--json"], env=env,
                           catch_exceptions=False)
    assert broken.exit_code == 1
    out = json.loads(broken.output)
    assert out["ok"] is False and out["seals"] == 2
    assert [(p["sha256"], p["problem"]) for p in out["problems"]] == [(screenshot, "altered")]
    refused = runner.invoke(main_group, ["store", "check"], env={**env, "EVIDENCE_USER": "ivo"})
    assert refused.exit_code != 0
    assert "admin or an auditor" in refused.output


def test_a_store_in_a_bucket_is_exported_from_and_checked_the_same_way(
    tmp_path: Path, database_url: str, s3_server: S3Server,
) -> None:
    """Blobs in an S3 bucket: a machine that wrote none of them exports the case (the report's
    thumbnail comes down from the bucket, verified), the bundle checks out offline, and the
    fixity check re-reads the bucket and names an object someone replaced there."""
    bucket = s3_server.new_bucket()
    with s3_server.machines(tmp_path, bucket, "writer", "reader",
                            database_url=database_url) as (writer, reader):
        with writer.session() as s:
            users.create_user(s, None, name="ines", role=Role.INVESTIGATOR)
        _case(writer, "OP-S3", b"\x89PNG in a bucket")
        result = bundles.export_and_keep(reader, "ines", reference="OP-S3")
        with reader.session() as s:
            ines = users.get_user(s, "ines")
            _, export, stream = bundles.open_bundle(s, ines, "OP-S3", result.export_id,
                                                    reader.store)
            with stream:
                kept = tmp_path / "kept.zip"
                kept.write_bytes(stream.read())
        report = bundle_verifier.verify_bundle(kept)
        assert report.ok, report.render()
        assert hashlib.sha256(kept.read_bytes()).hexdigest() == export.bundle_sha256
        assert _check(reader, "admin").ok
        screenshot = _blob_of(reader, "OP-S3", "screenshot")
        assert isinstance(reader.store, S3Store)
        s3_server.client().put_object(Bucket=bucket, Key=reader.store._key(screenshot),
                                      Body=b"\x89PNG replaced")
        found = _check(reader, "admin")
        assert [(p.sha256, p.problem) for p in found.problems] == [(screenshot, "altered")]
