"""/api/cases/{ref}/received: upload, list and download received material over HTTP."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import func, select

from evidence import cases
from evidence.models import Access, CustodyEntry, ReceivedFile, Role, utcnow
from tests.api.conftest import Api, Caller, api_over, build_runtime
from tests.factories import make_sent_request

CSV = b"account_id,ip,timestamp\n1234567890,203.0.113.7,2026-02-28T22:14:09Z\n"


def _setup(api: Api) -> tuple[Caller, str, Any]:
    owner = api.user("liaison", Role.LIAISON)
    with api.runtime.session() as session:
        world = make_sent_request(session, api.runtime.store, api.runtime.settings,
                                  actor=owner.user, reference="OP/2026/9")
    return owner, f"/api/cases/{quote(world.case.reference, safe='')}/received", world


def _form(world: Any, **overrides: str) -> dict[str, str]:
    values = {"received_at": utcnow().isoformat(), "via": "portal",
              "request": world.request.reference_number, "platform_reference": "LE-77123"}
    values.update(overrides)
    return {k: v for k, v in values.items() if v != ""}


def _upload(api: Api, caller: Caller | None, base: str, world: Any, name: str = "subscriber.csv",
            data: bytes = CSV, content_type: str = "text/csv", **form: str) -> Any:
    return api.post(caller, base, data=_form(world, **form),
                    files={"file": (name, data, content_type)})


def _count(api: Api) -> int:
    with api.runtime.session() as session:
        return session.scalar(select(func.count()).select_from(ReceivedFile)) or 0


def test_upload_list_and_download_with_custody(api: Api) -> None:
    owner, base, world = _setup(api)
    made = _upload(api, owner, base, world)
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["sha256"] == hashlib.sha256(CSV).hexdigest() and body["size"] == len(CSV)
    assert body["request"] == world.request.reference_number and body["via"] == "portal"
    assert body["filename"] == "subscriber.csv" and body["registered_by"] == "liaison"
    listed = api.get(owner, base).json()
    assert [f["id"] for f in listed] == [body["id"]]
    assert api.get(owner, base, params={"request": str(world.request.id)}).json() == listed
    got = api.get(owner, body["content"])
    assert got.status_code == 200 and got.content == CSV
    assert got.headers["content-type"] == "application/octet-stream"
    assert got.headers["content-disposition"] == 'attachment; filename="subscriber.csv"'
    assert got.headers["x-content-sha256"] == body["sha256"]
    with api.runtime.session() as session:
        actions = list(session.scalars(select(CustodyEntry.action).where(
            CustodyEntry.object_id == body["id"]).order_by(CustodyEntry.seq)))
    assert actions == ["material.received", "material.downloaded"]
    # Nothing is left of the upload in the home.
    assert not list(api.runtime.settings.home_path.glob(".export-upload-*"))


def test_the_same_file_again_is_409_naming_the_first(api: Api) -> None:
    owner, base, world = _setup(api)
    first = _upload(api, owner, base, world).json()
    again = _upload(api, owner, base, world, name="other-name.csv")
    assert again.status_code == 409
    assert again.json()["error"] == "DuplicateMaterial"
    assert first["id"] in again.json()["message"] and "subscriber.csv" in again.json()["message"]
    assert _count(api) == 1


def test_bad_forms_are_refused_and_keep_nothing(api: Api) -> None:
    owner, base, world = _setup(api)
    no_time = _upload(api, owner, base, world, received_at="yesterday")
    assert no_time.status_code == 422 and "not a date and time" in no_time.json()["message"]
    no_source = _upload(api, owner, base, world, request="")
    assert no_source.status_code == 422 and "source" in no_source.json()["message"]
    no_file = api.post(owner, base, data=_form(world), files={"other": ("a", b"x")})
    assert no_file.status_code == 422 and "exactly one file" in no_file.json()["message"]
    json_body = api.post(owner, base, json={"via": "portal"})
    assert json_body.status_code == 415
    assert _count(api) == 0


def test_readers_and_strangers(api: Api) -> None:
    owner, base, world = _setup(api)
    reader = api.user("reader", Role.INVESTIGATOR)
    with api.runtime.session() as session:
        case = cases.get_case(session, owner.user, world.case.reference)
        cases.add_member(session, owner.user, case, reader.user, Access.READ)
    stranger = api.user("stranger", Role.INVESTIGATOR)
    assert _upload(api, reader, base, world).status_code == 403
    assert _upload(api, stranger, base, world).status_code == 404
    assert _upload(api, None, base, world).status_code == 401
    body = _upload(api, owner, base, world).json()
    assert api.get(reader, body["content"]).content == CSV
    assert api.get(stranger, base).status_code == 404
    assert api.get(stranger, body["content"]).status_code == 404


@pytest.mark.parametrize(("name", "kept", "sent"), [
    ("../../etc/passwd", "../../etc/passwd", "etc_passwd"),
    ("invoice\u202egpj.exe", "invoice\u202egpj.exe", "invoice_gpj.exe"),
    ("a" * 5000 + ".csv", "a" * 255, "a" * 100),
])
def test_a_hostile_file_name_is_kept_and_never_a_path(api: Api, name: str, kept: str,
                                                      sent: str) -> None:
    owner, base, world = _setup(api)
    made = _upload(api, owner, base, world, name=name)
    assert made.status_code == 201, made.text
    assert made.json()["filename"] == kept
    got = api.get(owner, made.json()["content"])
    assert got.headers["content-disposition"] == f'attachment; filename="{sent}"'
    home = api.runtime.settings.home_path
    assert not (home.parent / "etc").exists() and not Path("/etc/passwd.csv").exists()


def test_a_nul_in_the_file_name_is_refused(api: Api) -> None:
    owner, base, world = _setup(api)
    # Written by hand: HTTP clients escape a NUL in a name, a hostile sender does not.
    parts = [f'--B\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in _form(world).items()]
    parts.append(b'--B\r\nContent-Disposition: form-data; name="file"; filename="a\x00b.csv"'
                 b"\r\nContent-Type: text/csv\r\n\r\n" + CSV + b"\r\n--B--\r\n")
    refused = api.client.post(base, content=b"".join(parts), headers={
        **owner.headers, "Content-Type": "multipart/form-data; boundary=B"})
    assert refused.status_code == 422 and "NUL" in refused.json()["message"]
    assert _count(api) == 0


def test_an_html_file_is_never_served_as_a_page(api: Api) -> None:
    owner, base, world = _setup(api)
    page = b"<html><script>alert(1)</script></html>"
    made = _upload(api, owner, base, world, name="x.html", data=page, content_type="text/html")
    assert made.json()["media_type"] == "text/html"
    got = api.get(owner, made.json()["content"])
    assert got.headers["content-type"] == "application/octet-stream"
    assert got.headers["content-disposition"].startswith("attachment;")
    assert got.headers["x-content-type-options"] == "nosniff"


@pytest.fixture
def small_api(tmp_path: Path, database_url: str) -> Iterator[Api]:
    with api_over(build_runtime(tmp_path / "home", database_url,
                                received_max_bytes=1000)) as made:
        yield made


def test_the_upload_is_bounded_by_the_setting(small_api: Api) -> None:
    api = small_api
    owner, base, world = _setup(api)
    fits = _upload(api, owner, base, world, data=b"x" * 1000)
    assert fits.status_code == 201, fits.text
    over = _upload(api, owner, base, world, data=b"y" * 1001)
    assert over.status_code == 413 and "EVIDENCE_RECEIVED_MAX_BYTES" in over.json()["message"]
    # A body past the bound and the form's overhead is refused before it is read.
    huge = _upload(api, owner, base, world, data=b"z" * 400_000)
    assert huge.status_code == 413 and huge.json()["error"] == "TooLarge"
    assert _count(api) == 1
    assert not list(api.runtime.settings.home_path.glob(".export-upload-*"))
    # Other routes keep their own small bound.
    assert api.client.post("/api/cases", content=b"{" + b" " * 3_000_000 + b"}", headers={
        **owner.headers, "Content-Type": "application/json"}).status_code == 413
