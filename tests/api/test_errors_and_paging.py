"""Malformed input never reaches the database or makes a 500; lists page with `next` links."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.api.conftest import Api


def _error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert set(body) >= {"error", "message"} and body["message"]
    return body


def test_unknown_routes_and_methods_answer_json(api: Api) -> None:
    caller = api.user("nadia")
    missing = _error(api.get(caller, "/api/nothing-here"), 404)
    assert missing == {"error": "NotFound", "message": "no route GET /api/nothing-here"}
    _error(api.get(None, "/api/nothing-here"), 404)
    wrong = api.client.put("/api/cases", headers=caller.headers, json={})
    _error(wrong, 405)
    # Every method the address answers (RFC 9110, 15.5.6), not only the first route's.
    assert wrong.headers["allow"] == "GET, POST"
    member = api.client.options("/api/cases/C-1/members/someone", headers=caller.headers)
    assert _error(member, 405) and member.headers["allow"] == "DELETE"
    # The web pages say the same.
    page = api.client.delete("/login")
    assert page.status_code == 405 and page.headers["allow"] == "GET, POST"
    assert page.headers["content-type"].startswith("text/html")


@pytest.mark.parametrize(("raw", "content_type"), [
    (b"{not json", "application/json"),
    (b"", "application/json"),
    (b"[1, 2]", "application/json"),
    (b'"a string"', "application/json"),
    (b'{"reference": "C-1"}', "application/json"),
    (b'{"reference": "C-1", "title": "t", "extra": 1}', "application/json"),
    (b'{"reference": 7, "title": "t"}', "application/json"),
    (b'{"reference": "C-1", "title": "t\\u0000"}', "application/json"),
    (b'{"reference": "C-1", "title": "\\ud800"}', "application/json"),
    (b'{"reference": "C-1", "title": "' + b"x" * 501 + b'"}', "application/json"),
    (b'{"reference": "C-1", "title": "t", "jurisdiction": "Germany!"}', "application/json"),
    (b'{"reference": "../etc", "title": "t"}', "application/json"),
    (b"reference=C-1&title=t", "application/x-www-form-urlencoded"),
    (b"\xff\xfe\x00", "application/json"),
])
def test_malformed_case_bodies_are_422_json(api: Api, raw: bytes, content_type: str) -> None:
    caller = api.user("nadia")
    response = api.client.post("/api/cases", content=raw,
                               headers={**caller.headers, "Content-Type": content_type})
    body = _error(response, 422)
    assert body["error"] == "InvalidInput"
    assert api.get(caller, "/api/cases").json()["items"] == []


@pytest.mark.parametrize("raw", [
    b"--b\r\nContent-Disposition: form-data; name=\"image\"\r\n\rbroken",
    b"no boundary here at all",
])
def test_malformed_multipart_upload_is_422_json(api: Api, raw: bytes) -> None:
    caller = api.user("nadia")
    response = api.client.post("/api/images/similar", content=raw, headers={
        **caller.headers, "Content-Type": "multipart/form-data; boundary=b"})
    assert _error(response, 422)["error"] == "InvalidInput"


def test_bodies_past_their_bound_are_refused_as_they_arrive(api: Api) -> None:
    caller = api.user("nadia")
    big = b'{"reference": "C-1", "title": "' + b"x" * (3 * 1024 * 1024) + b'"}'
    declared = api.client.post("/api/cases", content=big, headers={
        **caller.headers, "Content-Type": "application/json"})
    assert declared.status_code == 413 and declared.json()["error"] == "TooLarge"

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams
        yield b'{"reference": "C-2", "title": "'
        for _ in range(48):
            yield b"y" * 65536
        yield b'"}'

    streamed = api.client.post("/api/cases", content=chunks(), headers={
        **caller.headers, "Content-Type": "application/json"})
    assert streamed.status_code == 413 and streamed.json()["error"] == "TooLarge"
    assert api.get(caller, "/api/cases").json()["items"] == []
    # The image upload has its own, larger bound: 3 MiB of non-image is read and judged...
    junk = api.client.post("/api/images/similar", headers=caller.headers,
                           files={"image": ("x.png", b"\x00" * (3 * 1024 * 1024), "image/png")})
    assert junk.status_code == 422 and "not an image" in junk.json()["message"]
    # ... and past 20 MiB it is refused before it is spooled.
    huge = api.client.post("/api/images/similar", headers=caller.headers,
                           files={"image": ("x.png", b"\x00" * (21 * 1024 * 1024), "image/png")})
    assert huge.status_code == 413 and huge.json()["error"] == "TooLarge"


def test_malformed_paths_queries_and_nested_bodies(api: Api) -> None:
    caller = api.user("nadia")
    assert api.post(caller, "/api/cases", json={"reference": "C-1", "title": "t"}
                    ).status_code == 201
    details = _error(api.get(caller, "/api/cases/C-1/targets/not-a-uuid"), 422)["details"]
    assert details[0]["loc"] == ["path", "target_id"]
    _error(api.get(caller, "/api/cases/C-1/captures?target=nope"), 422)
    for query in ("limit=0", "limit=201", "limit=abc", "cursor=%%%", "cursor=bm90IGpzb24",
                  "cursor=WyJ4Il0", "cursor=" + "A" * 600):
        _error(api.get(caller, f"/api/cases?{query}"), 422)
    _error(api.get(caller, "/api/cases/C%00X"), 404)
    _error(api.get(caller, "/api/cases/" + "x" * 400), 422)
    for body in ({"url": "https://example.org/", "reason": "r",
                  "watch_interval_seconds": 10**30},
                 {"url": "https://example.org/", "reason": "r", "watch_interval_seconds": 5},
                 {"url": "https://exa\u0000mple.org/", "reason": "r"},
                 {"url": "not a url", "reason": "r"},
                 {"reason": "r"},
                 {"url": "https://example.org/", "reason": ""},
                 {"account_id": "00000000-0000-0000-0000-000000000000", "url": None,
                  "reason": "r"}):
        answer = api.post(caller, "/api/cases/C-1/targets", json=body)
        assert answer.status_code in (404, 422), (body, answer.text)
        _error(answer, answer.status_code)
    _error(api.post(caller, "/api/cases/C-1/members", json={"user": "x", "access": "owner"}), 422)
    _error(api.delete(caller, "/api/cases/C-1/members/a%00b"), 404)
    _error(api.patch(caller, "/api/cases/C-1", json={"title": None}), 422)
    _error(api.patch(caller, "/api/cases/C-1", json={"status": "closed"}), 422)
    _error(api.post(caller, "/api/cases/C-1/notes", json={"body": "x" * 100_001}), 422)
    _error(api.post(caller, "/api/auth/login", json={"name": "", "password": "x"}), 422)


def test_lists_page_with_next_links(api: Api) -> None:
    caller = api.user("nadia")
    references = [f"P/{n}" for n in range(7)]
    for reference in references:
        assert api.post(caller, "/api/cases", json={"reference": reference, "title": "t"}
                        ).status_code == 201
    seen: list[str] = []
    url: str | None = "/api/cases?limit=3"
    pages = 0
    while url is not None:
        page = api.get(caller, url).json()
        assert len(page["items"]) <= 3
        seen += [c["reference"] for c in page["items"]]
        url = page["next"]
        pages += 1
    assert seen == references and pages == 3
    # References holding '/' are addressed with %2F, and their pages link back the same way.
    ref = "P%2F0"
    for n in range(5):
        assert api.post(caller, f"/api/cases/{ref}/targets",
                        json={"url": f"https://example.org/{n}", "reason": "r"}
                        ).status_code == 201
    first = api.get(caller, f"/api/cases/{ref}/targets?limit=2").json()
    assert first["next"].startswith("/api/cases/P%2F0/targets?limit=2&cursor=")
    urls = [t["url"] for t in first["items"]]
    second = api.get(caller, first["next"]).json()
    urls += [t["url"] for t in second["items"]]
    third = api.get(caller, second["next"]).json()
    urls += [t["url"] for t in third["items"]]
    assert third["next"] is None
    assert urls == [f"https://example.org/{n}" for n in range(5)]
    timeline = api.get(caller, f"/api/cases/{ref}/timeline?limit=4").json()
    assert [e["case_seq"] for e in timeline["items"]] == [1, 2, 3, 4]
    rest = api.get(caller, timeline["next"] + "&limit=200").json()
    assert rest["items"][0]["case_seq"] == 5


def test_api_answers_are_not_cached_sniffed_framed_or_named_to_other_sites(api: Api) -> None:
    caller = api.user("nadia")
    assert api.post(caller, "/api/cases", json={"reference": "C-1", "title": "t"}
                    ).status_code == 201
    answers = [api.get(caller, "/api/cases"), api.get(caller, "/api/cases/C-1"),
               api.get(caller, "/api/nothing-here"), api.get(None, "/api/cases"),
               api.get(caller, "/api/docs"), api.get(None, "/api/health")]
    for answer in answers:
        # Case data must not stay in a shared machine's or a proxy's cache, and a page of
        # another site opened from the Swagger page learns no address of ours.
        assert answer.headers["cache-control"] == "no-store", answer.request.url
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["referrer-policy"] == "no-referrer"
    # The pages keep their own policy.
    assert api.client.get("/login").headers["referrer-policy"] == "same-origin"
