"""The export service without a browser: captures recorded through the real services."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from evidence import bundle_verifier, bundles, cases, targets, users
from evidence.home import Runtime, init_home, open_runtime
from evidence.models import Role
from evidence.settings import Settings
from tests.factories import make_sealed_capture


@pytest.fixture
def runtime(tmp_path: Path, database_url: str) -> Iterator[Runtime]:
    settings = Settings(home=tmp_path / "home", database_url=database_url)
    init_home(settings)
    rt = open_runtime(settings)
    yield rt
    rt.close()


def _warc_of(url: str) -> bytes:
    out = io.BytesIO()
    writer = WARCWriter(out, gzip=True)
    body = b"<html>elsewhere</html>"
    writer.write_record(writer.create_warc_record(
        url, "response", payload=io.BytesIO(body), length=len(body),
        http_headers=StatusAndHeaders("200 OK", [("Content-Type", "text/html")],
                                      protocol="HTTP/1.1")))
    return out.getvalue()


def test_a_warc_without_the_page_gives_no_wacz_and_says_why(
    runtime: Runtime, tmp_path: Path
) -> None:
    with runtime.session() as s:
        petra = users.create_user(s, None, name="petra", role=Role.PROSECUTOR)
        case = cases.create_case(s, petra, reference="OP-W", title="WARC")
        target, _ = targets.flag_target(s, petra, case, url="https://t.me/crossings",
                                        reason="advert")
        make_sealed_capture(s, runtime, case, target, actor=petra, files=[
            ("text", "text.txt", "text/plain; charset=utf-8", b"crossing tonight"),
            ("warc", "traffic.warc.gz", "application/warc",
             _warc_of("https://example.org/not-the-page")),
        ])
    said: list[str] = []
    result = bundles.export_case(runtime, "petra", reference="OP-W", out=tmp_path / "b.zip",
                                 progress=said.append)
    with zipfile.ZipFile(result.path) as zf:
        index = json.loads(next(zf.read(n) for n in zf.namelist()
                                if n.endswith("data/bundle.json")))
    (exhibit,) = index["exhibits"]
    assert exhibit["wacz"] is None
    assert "no WACZ could be built" in exhibit["wacz_note"]
    assert any("no WACZ could be built" in line for line in said)
    report = bundle_verifier.verify_bundle(result.path)
    assert report.ok, report.render()
    assert "no WACZ could be built" in report.render()
