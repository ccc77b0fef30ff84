"""The search routes: text search with filters and paging, similar images by artifact and by
upload, and nothing from cases the caller may not see."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest
from PIL import Image, ImageDraw

from api.routes import search as routes
from capture.phash import hash_bytes
from evidence import cases, targets
from evidence.models import ImageHash
from tests.api.conftest import Api, Caller
from tests.factories import make_text_capture


def _png(seed: int) -> bytes:
    image = Image.new("RGB", (128, 96), "white")
    draw = ImageDraw.Draw(image)
    for n in range(6):
        x = (seed * 37 + n * 19) % 100
        draw.rectangle([x, n * 15, x + 25, n * 15 + 12], fill=(n * 40, 0, 255 - n * 40))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def _world(api: Api) -> tuple[Caller, dict[str, str]]:
    owner = api.user("owner")
    phash = hash_bytes(_png(1)).hashes
    assert phash is not None
    with api.runtime.session() as session:
        case = cases.create_case(session, owner.user, reference="OP/1", title="Boats")
        fb, _ = targets.flag_target(session, owner.user, case, reason="advert",
                                    url="https://www.facebook.com/groups/9/posts/1")
        tg, _ = targets.flag_target(session, owner.user, case, reason="advert",
                                    url="https://t.me/s/crossings/7")
        one = make_text_capture(session, case, fb, api.runtime.store,
                                text="رِحْلَة إِلَى أُورُوبَا كل يوم", images=[phash.phash],
                                started_at=datetime(2026, 3, 1, tzinfo=UTC))
        two = make_text_capture(session, case, tg, api.runtime.store,
                                text="رحلة الى اوروبا بالقارب",
                                images=[f"{int(phash.phash, 16) ^ 0b1011:016x}"],
                                started_at=datetime(2026, 3, 5, tzinfo=UTC))
        artifact = session.query(ImageHash.artifact_id).filter(
            ImageHash.capture_id == one.id).scalar()
        return owner, {"one": str(one.id), "two": str(two.id), "artifact": str(artifact)}


def test_text_search_filters_and_pages(api: Api) -> None:
    owner, ids = _world(api)
    answer = api.get(owner, "/api/search", params={"q": "اوروبا"})
    assert answer.status_code == 200, answer.text
    items = answer.json()["items"]
    assert [i["capture_id"] for i in items] == [ids["two"], ids["one"]]
    assert items[1]["platform"] == "facebook" and items[0]["platform"] == "telegram"
    assert items[1]["case"] == "OP/1" and items[1]["capture"].startswith("/api/cases/OP%2F1/")
    s, e = items[1]["highlights"][0]
    assert items[1]["snippet"][s:e] == "أُورُوبَا"
    only_fb = api.get(owner, "/api/search", params={"q": "اوروبا", "platform": "facebook"})
    assert [i["capture_id"] for i in only_fb.json()["items"]] == [ids["one"]]
    dated = api.get(owner, "/api/search", params={"q": "اوروبا", "from": "2026-03-02T00:00:00"})
    assert [i["capture_id"] for i in dated.json()["items"]] == [ids["two"]]
    in_case = api.get(owner, "/api/search", params={"q": "رحلة", "case": "OP/1", "limit": 1})
    page = in_case.json()
    assert [i["capture_id"] for i in page["items"]] == [ids["two"]] and page["next"]
    rest = api.get(owner, page["next"]).json()
    assert [i["capture_id"] for i in rest["items"]] == [ids["one"]] and rest["next"] is None
    unknown = api.get(owner, "/api/search", params={"q": "x", "platform": "myspace"})
    assert unknown.status_code == 422


def test_hostile_text_queries_are_refused_or_answered_never_500(api: Api) -> None:
    owner, _ids = _world(api)
    for q, statuses in (('"', {422}), ("AND", {200}), ("NEAR(", {200}), ("a\x00b", {422}),
                        ("x" * 10_000, {422}), ("", {422}), ("*", {422}),
                        ('"unclosed phrase', {200}), ("OR OR", {422})):
        answer = api.get(owner, "/api/search", params={"q": q})
        assert answer.status_code in statuses, (q, answer.status_code, answer.text)
        assert "error" in answer.json() or "items" in answer.json()
    bad_cursor = api.get(owner, "/api/search", params={"q": "رحلة", "cursor": "nope"})
    assert bad_cursor.status_code == 422


def test_strangers_find_nothing_and_see_no_case(api: Api) -> None:
    _owner, ids = _world(api)
    stranger = api.user("stranger")
    answer = api.get(stranger, "/api/search", params={"q": "اوروبا"})
    assert answer.status_code == 200 and answer.json()["items"] == []
    hidden = api.get(stranger, "/api/search", params={"q": "اوروبا", "case": "OP/1"})
    assert hidden.status_code == 404 and hidden.json()["message"].startswith("no ")
    similar = api.get(stranger, "/api/images/similar", params={"artifact": ids["artifact"]})
    assert similar.status_code == 404 and "OP/1" not in similar.text
    upload = api.post(stranger, "/api/images/similar",
                      files={"image": ("ad.png", _png(1), "image/png")})
    assert upload.status_code == 200 and upload.json()["items"] == []


def test_similar_images_by_artifact_and_by_upload(api: Api) -> None:
    owner, ids = _world(api)
    by_artifact = api.get(owner, "/api/images/similar", params={"artifact": ids["artifact"]})
    assert by_artifact.status_code == 200, by_artifact.text
    assert [(i["capture_id"], i["distance"]) for i in by_artifact.json()["items"]] == [
        (ids["two"], 3)]
    near = api.get(owner, "/api/images/similar", params={"artifact": ids["artifact"],
                                                          "distance": 2})
    assert near.json()["items"] == []
    upload = api.post(owner, "/api/images/similar", params={"distance": 4},
                      files={"image": ("ad.png", _png(1), "image/png")})
    assert upload.status_code == 200, upload.text
    assert [(i["capture_id"], i["distance"]) for i in upload.json()["items"]] == [
        (ids["one"], 0), (ids["two"], 3)]
    not_image = api.post(owner, "/api/images/similar",
                         files={"image": ("x.png", b"<svg></svg>", "image/png")})
    assert not_image.status_code == 422 and not_image.json()["error"] == "InvalidInput"
    too_far = api.get(owner, "/api/images/similar", params={"artifact": ids["artifact"],
                                                             "distance": 17})
    assert too_far.status_code == 422
    missing = api.post(owner, "/api/images/similar")
    assert missing.status_code == 422


def test_uploads_over_the_bound_are_refused(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    owner, _ids = _world(api)
    monkeypatch.setattr(routes, "MAX_UPLOAD_BYTES", 1000)
    answer = api.post(owner, "/api/images/similar",
                      files={"image": ("big.png", _png(2) + b"\0" * 2000, "image/png")})
    assert answer.status_code == 413 and answer.json()["error"] == "InvalidInput"
