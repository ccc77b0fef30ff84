"""Exports whose process dies: seen by their lapsed lease, recorded as interrupted, their
temporary files removed, and never shown as running forever."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.app import create_app
from evidence import bundles, custody, export_leases, users
from evidence.bundles import ExportFailed
from evidence.home import Runtime
from evidence.models import CustodyEntry, Export, Role
from tests.factories import age_lease, case_with_a_capture, started_export

# A process exporting case OP-K that stalls while writing the bundle, as one writing gigabytes
# does, after saying so on stdout; the test then kills it.
_STALLING_EXPORT = textwrap.dedent("""
    import sys, time
    from evidence import bundles
    from evidence.home import open_runtime
    from evidence.settings import Settings

    def stall(self):
        print("writing", flush=True)
        time.sleep(600)

    bundles._BundleWriter.write = stall
    runtime = open_runtime(Settings(home=sys.argv[1], database_url=sys.argv[2]))
    bundles.export_and_keep(runtime, "petra", reference="OP-K")
""")


def _petra_with_a_case(runtime: Runtime, reference: str) -> dict[str, str]:
    with runtime.session() as s:
        petra = users.create_user(s, None, name="petra", role=Role.PROSECUTOR)
        token = users.issue_token(s, petra, petra, name="test")
    case_with_a_capture(runtime, "petra", reference)
    return {"Authorization": f"Bearer {token}"}


def _export_entries(runtime: Runtime) -> list[dict[str, object]]:
    with runtime.session() as s:
        rows = s.scalars(select(CustodyEntry).where(CustodyEntry.object_type == "export")
                         .order_by(CustodyEntry.seq))
        return [custody.describe(r) for r in rows]


def _only_export(runtime: Runtime) -> Export:
    with runtime.session() as s:
        (export,) = s.scalars(select(Export))
        s.expunge(export)
        return export


def test_an_export_whose_process_was_killed_is_recorded_as_interrupted(
    runtime: Runtime, database_url: str
) -> None:
    petra = _petra_with_a_case(runtime, "OP-K")
    home = runtime.settings.home_path
    child = subprocess.Popen([sys.executable, "-c", _STALLING_EXPORT, str(home), database_url],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline() == "writing\n"
        client = TestClient(create_app(runtime))
        listed = client.get("/api/cases/OP-K/exports", headers=petra).json()["items"]
        assert [(e["status"], e["note"]) for e in listed] == [("running", None)]
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    export = _only_export(runtime)
    assert export.lease_until is not None and export.lease_owner is not None
    lapsed = export.lease_until + timedelta(seconds=1)

    # Until its lease runs out, a silent export may still be writing: nothing is recorded.
    with runtime.session() as s:
        assert export_leases.end_interrupted_exports(s) == []
    assert export_leases.status(export, {}, now=lapsed)[0] == "interrupted"
    assert [e["action"] for e in _export_entries(runtime)] == ["export.started"]

    with runtime.session() as s:
        assert export_leases.end_interrupted_exports(s, now=lapsed) == [export.id]
    with runtime.session() as s:
        assert export_leases.end_interrupted_exports(s, now=lapsed) == []  # recorded once
    started, failed = _export_entries(runtime)
    assert started["action"] == "export.started"
    assert failed["action"] == "export.failed" and failed["actor"] is None
    reason = failed["details"]["reason"]  # type: ignore[index]
    assert reason.startswith("interrupted: the process writing the bundle (")
    assert export.lease_owner in reason
    assert failed["details"]["abandoned_by"] == export.lease_owner  # type: ignore[index]

    listed = TestClient(create_app(runtime)).get("/api/cases/OP-K/exports",
                                                 headers=petra).json()["items"]
    assert [(e["status"], e["note"], e["bundle_sha256"]) for e in listed] == [
        ("failed", reason, None)]
    with runtime.session() as s:
        assert custody.verify_log(s, runtime.verifier, workers=1).ok

    # The killed export's temporary folder in the home, with its partial bundle, goes once
    # nothing has touched it for a while.
    (leftover,) = home.glob(".export-*")
    assert list(leftover.rglob("*.partial"))
    assert export_leases.clean_leftovers(home) == 0  # just touched: it could be alive
    assert export_leases.clean_leftovers(home, older_than_seconds=0) == 1
    assert not leftover.exists()


def test_an_export_declared_interrupted_while_it_wrote_keeps_no_bundle(
    runtime: Runtime, tmp_path: Path
) -> None:
    """A process that stalled past its lease and then finishes records nothing more: the log
    already says its export was interrupted, and the bundle it wrote is removed."""
    _petra_with_a_case(runtime, "OP-S")

    def declared_dead(message: str) -> None:
        if message.startswith("exporting"):
            later = _only_export(runtime).lease_until
            assert later is not None
            with runtime.session() as s:
                export_leases.end_interrupted_exports(s, now=later + timedelta(seconds=1))

    (tmp_path / "out").mkdir()
    out = tmp_path / "out" / "bundle.zip"
    with pytest.raises(ExportFailed, match="recorded as interrupted while its bundle was "
                                           "written"):
        bundles.export_case(runtime, "petra", reference="OP-S", out=out,
                            progress=declared_dead)
    assert list(out.parent.iterdir()) == []  # neither the bundle nor its partial file
    assert [e["action"] for e in _export_entries(runtime)] == ["export.started", "export.failed"]
    export = _only_export(runtime)
    assert (export.bundle_sha256, export.lease_owner) == (None, None)


def test_a_finished_export_gives_its_lease_back_and_a_running_one_keeps_renewing(
    runtime: Runtime, tmp_path: Path
) -> None:
    _petra_with_a_case(runtime, "OP-R")
    result = bundles.export_case(runtime, "petra", reference="OP-R", out=tmp_path / "b.zip")
    export = _only_export(runtime)
    assert (export.lease_owner, export.lease_until) == (None, None)
    assert export_leases.status(export, {})[0] == "complete"

    with runtime.session() as s:
        row = s.get(Export, result.export_id)
        assert row is not None
        export_leases.take(row, "host:1:tag", lease_seconds=1)
        first = row.lease_until
    assert first is not None
    with export_leases.LeaseKeeper(runtime.session, result.export_id, "host:1:tag",
                                   every=0.05, lease_seconds=60) as keeper:
        entered = _only_export(runtime).lease_until  # renewed at once on entering
        assert entered is not None and entered >= first + timedelta(seconds=50)
        deadline = time.monotonic() + 10
        while _only_export(runtime).lease_until == entered and time.monotonic() < deadline:
            time.sleep(0.05)
        renewed = _only_export(runtime).lease_until  # and again while the bundle is written
        assert renewed is not None and renewed > entered
    assert not keeper.lost


def test_the_server_records_interrupted_exports_when_it_starts(runtime: Runtime) -> None:
    _petra_with_a_case(runtime, "OP-T")
    export_id = started_export(runtime, "petra", "OP-T", "gone:1:feedbeef")
    age_lease(runtime, export_id, 3600)  # the process died long ago
    with TestClient(create_app(runtime)):  # runs the app's start-up, as `evidence serve` does
        deadline = time.monotonic() + 30
        while len(_export_entries(runtime)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert [e["action"] for e in _export_entries(runtime)] == ["export.started", "export.failed"]
    assert _only_export(runtime).lease_owner is None


def test_two_servers_sweeping_at_once_record_an_interruption_once(runtime: Runtime) -> None:
    """Several API servers share one database (the scale path); each sweeps on its own tick."""
    _petra_with_a_case(runtime, "OP-2")
    export_id = started_export(runtime, "petra", "OP-2", "gone:2:cafebabe")
    age_lease(runtime, export_id, 3600)
    start = threading.Barrier(4)
    ended: list[list[object]] = []

    def sweep() -> None:
        start.wait()
        with runtime.session() as s:
            ended.append(list(export_leases.end_interrupted_exports(s)))

    sweepers = [threading.Thread(target=sweep) for _ in range(4)]
    for t in sweepers:
        t.start()
    for t in sweepers:
        t.join()
    assert sorted(ended, key=len) == [[], [], [], [export_id]]
    assert [e["action"] for e in _export_entries(runtime)] == ["export.started", "export.failed"]
    with runtime.session() as s:
        assert custody.verify_log(s, runtime.verifier, workers=1).ok


def test_an_export_clears_what_killed_exports_left_beside_its_destination(
    runtime: Runtime, tmp_path: Path
) -> None:
    """`evidence export --out DIR/op.zip`, killed, leaves its hidden partial bundle and work
    folder in DIR (the user's folder: nothing else knows of them). The next export there
    removes those an hour untouched, and leaves alone what could be alive or is not ours."""
    _petra_with_a_case(runtime, "OP-C")
    usb = tmp_path / "usb"
    usb.mkdir()
    dead_partial = usb / ".op.zip.k3x9.partial"
    dead_partial.write_bytes(b"PK half a bundle")
    dead_work = usb / ".export-q1w2"
    (dead_work / "exhibits").mkdir(parents=True)
    (dead_work / "exhibits" / "screenshot.png").write_bytes(b"\x89PNG")
    alive_partial = usb / ".op.zip.z8y7.partial"
    alive_partial.write_bytes(b"PK being written")
    other = usb / ".other.zip.a1b2.partial"
    other.write_bytes(b"PK another bundle's")
    hour_ago = time.time() - 2 * export_leases.LEFTOVER_AGE_SECONDS
    for path in (dead_partial, dead_work, dead_work / "exhibits",
                 dead_work / "exhibits" / "screenshot.png", other):
        os.utime(path, (hour_ago, hour_ago))
    said: list[str] = []
    bundles.export_case(runtime, "petra", reference="OP-C", out=usb / "op.zip",
                        progress=said.append)
    assert (usb / "op.zip").is_file()
    assert not dead_partial.exists() and not dead_work.exists()
    assert alive_partial.exists() and other.exists()
    assert any("removed 2 leftover(s) of earlier exports" in m for m in said)


def test_an_export_from_before_leases_that_never_ended_is_recorded_once(
    runtime: Runtime,
) -> None:
    """An export started by a version that kept no leases (before migration 0011) and never
    ended showed as interrupted with nothing in the log to say so; the sweep records it."""
    _petra_with_a_case(runtime, "OP-OLD")
    old = started_export(runtime, "petra", "OP-OLD", "old-version")
    bundles.export_case(runtime, "petra", reference="OP-OLD", out=runtime.settings.home_path
                        / "kept.zip")
    with runtime.session() as s:  # as the old version left it: no lease, an hour ago
        row = s.get(Export, old)
        assert row is not None
        row.lease_owner = row.lease_until = None
        row.created_at -= timedelta(hours=1)
    with runtime.session() as s:
        assert export_leases.end_interrupted_exports(s) == [old]
    with runtime.session() as s:
        assert export_leases.end_interrupted_exports(s) == []  # once; the finished one never
    entries = _export_entries(runtime)
    assert [e["action"] for e in entries] == [
        "export.started", "export.started", "export.completed", "export.failed"]
    failed = entries[-1]
    assert failed["object"]["id"] == str(old)  # type: ignore[index]
    assert "started before this system kept export leases" in str(failed["details"])
    with runtime.session() as s:
        assert custody.verify_log(s, runtime.verifier, workers=1).ok
