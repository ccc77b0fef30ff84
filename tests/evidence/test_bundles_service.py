"""The export service without a browser: captures recorded through the real services."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
import unicodedata
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rdflib import Graph, Literal, URIRef
from sqlalchemy import select, text
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from evidence import bundle_verifier, bundles, cases, custody, users
from evidence.errors import LogBroken, StorageFull
from evidence.home import Runtime, init_home, open_runtime
from evidence.models import Case, CustodyEntry, Export, Role
from evidence.settings import Settings
from tests.conftest import Databases
from tests.factories import case_with_a_capture, drop_append_only

FACTS = ("On 3 November 2026 the suspect offered boat crossings to Lesbos for EUR 3,000 a"
         " person.\nالمشتبه به عرض رحلات بالقارب إلى ليسبوس مقابل ثلاثة آلاف يورو للشخص.")
INVESTIGATION = URIRef("https://ontology.caseontology.org/case/investigation/Investigation")
FOCUS = URIRef("https://ontology.caseontology.org/case/investigation/focus")
DESCRIPTION = URIRef("https://ontology.unifiedcyberontology.org/uco/core/description")
RDF_TYPE = URIRef("http://www.w3.org/1999/02/22-rdf-syntax-ns#type")


def _warc_of(url: str, *, gzip: bool = True) -> bytes:
    out = io.BytesIO()
    writer = WARCWriter(out, gzip=gzip)
    body = b"<html>elsewhere</html>"
    writer.write_record(writer.create_warc_record(
        url, "response", payload=io.BytesIO(body), length=len(body),
        http_headers=StatusAndHeaders("200 OK", [("Content-Type", "text/html")],
                                      protocol="HTTP/1.1")))
    return out.getvalue()


def _case_with_a_capture(runtime: Runtime, reference: str,
                         files: list[tuple[str, str, str, bytes]] | None = None,
                         **details: Any) -> None:
    """Prosecutor petra's case `reference` with one target and one sealed capture of it."""
    with runtime.session() as s:
        users.create_user(s, None, name="petra", role=Role.PROSECUTOR)
    case_with_a_capture(runtime, "petra", reference, files=files, **details)


def test_a_warc_without_the_page_gives_no_wacz_and_says_why(
    runtime: Runtime, tmp_path: Path
) -> None:
    _case_with_a_capture(runtime, "OP-W", files=[
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


def _bundle_part(bundle: Path, name: str) -> bytes:
    with zipfile.ZipFile(bundle) as zf:
        return next(zf.read(n) for n in zf.namelist() if n.endswith(f"data/{name}"))


def _export(runtime: Runtime, tmp_path: Path, reference: str, **details: Any) -> Path:
    _case_with_a_capture(runtime, reference, **details)
    return bundles.export_case(runtime, "petra", reference=reference,
                               out=tmp_path / f"{reference}.zip").path


def _investigation(bundle: Path) -> tuple[set[str], set[str]]:
    """The focus and description values of the bundle's investigation node, read by rdflib."""
    graph = Graph().parse(data=_bundle_part(bundle, "case.jsonld"), format="json-ld")
    (node,) = graph.subjects(RDF_TYPE, INVESTIGATION)
    focus, descriptions = graph.objects(node, FOCUS), graph.objects(node, DESCRIPTION)
    return ({str(v) for v in focus if isinstance(v, Literal)},
            {str(v) for v in descriptions if isinstance(v, Literal)})


@pytest.mark.filterwarnings("ignore:ConjunctiveGraph is deprecated:DeprecationWarning")
def test_the_bundle_says_what_the_case_is_about(runtime: Runtime, tmp_path: Path) -> None:
    bundle = _export(runtime, tmp_path, "OP-LESBOS", offence="migrant smuggling",
                     offence_provision="§ 96 Abs. 2 AufenthG", max_penalty_years="10",
                     facts=FACTS, jurisdiction="DE")
    case = json.loads(_bundle_part(bundle, "bundle.json"))["case"]
    assert {k: case[k] for k in ("offence", "offence_provision", "max_penalty_years", "facts",
                                 "jurisdiction")} == {
        "offence": "migrant smuggling", "offence_provision": "§ 96 Abs. 2 AufenthG",
        "max_penalty_years": 10.0, "facts": FACTS, "jurisdiction": "DE"}
    # The CASE graph: offence and provision are the investigation's focus, the title and the
    # facts its descriptions; the maximum penalty has no CASE property and is only above.
    focus, descriptions = _investigation(bundle)
    assert focus == {"migrant smuggling", "§ 96 Abs. 2 AufenthG"}
    assert descriptions == {"Crossing adverts", FACTS}
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(_bundle_part(bundle, "report.pdf"))
    cover = subprocess.run(["pdftotext", "-enc", "UTF-8", "-l", "1", str(pdf), "-"],
                           capture_output=True, text=True, check=True).stdout
    flat = "".join(unicodedata.normalize("NFKC", cover).split())
    for expected in ("Offencemigrantsmuggling", "Statutoryprovision§96Abs.2AufenthG",
                     "Maximumpenalty10years", "JurisdictionDE", "boatcrossingstoLesbos",
                     "ليسبوس"):
        assert expected in flat, expected
    report = bundle_verifier.verify_bundle(bundle)
    assert report.ok, report.render()


@pytest.mark.filterwarnings("ignore:ConjunctiveGraph is deprecated:DeprecationWarning")
def test_a_case_without_offence_details_exports_nulls(runtime: Runtime, tmp_path: Path) -> None:
    bundle = _export(runtime, tmp_path, "OP-BARE")
    case = json.loads(_bundle_part(bundle, "bundle.json"))["case"]
    assert [case[k] for k in ("offence", "offence_provision", "max_penalty_years", "facts",
                              "jurisdiction")] == [None] * 5
    assert _investigation(bundle) == (set(), {"Crossing adverts"})
    report = bundle_verifier.verify_bundle(bundle)
    assert report.ok, report.render()


@pytest.mark.slow
def test_case_validate_accepts_the_graph_with_offence_details(
    runtime: Runtime, tmp_path: Path
) -> None:
    bundle = _export(runtime, tmp_path, "OP-VALID", offence="migrant smuggling",
                     offence_provision="§ 96 Abs. 2 AufenthG", max_penalty_years=10,
                     facts=FACTS, jurisdiction="DE")
    graph = tmp_path / "case.jsonld"
    graph.write_bytes(_bundle_part(bundle, "case.jsonld"))
    done = subprocess.run(
        [str(Path(sys.executable).parent / "case_validate"), "--built-version", "case-1.5.0",
         str(graph)], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Conforms: True" in done.stdout
    assert "NonExistentCDOConcept" not in done.stderr, done.stderr


def test_no_bundle_is_made_from_a_log_that_does_not_verify(
    runtime: Runtime, tmp_path: Path
) -> None:
    _case_with_a_capture(runtime, "OP-T")
    with runtime.session() as s:
        # The entry the report would list as the capture: what it says, and where it is.
        seq, action = s.execute(text(
            "SELECT seq, action FROM custody_entries WHERE object_type = 'capture'"
            " ORDER BY seq DESC LIMIT 1")).one()
    said: list[str] = []
    first = bundles.export_case(runtime, "petra", reference="OP-T", out=tmp_path / "a.zip",
                                progress=said.append)
    assert bundle_verifier.verify_bundle(first.path).ok
    assert said[0] == "checking the custody log before exporting from it"
    # An insider with database access drops the trigger and rewrites one lookup column: the
    # entry's bytes, its hash and every chain still hold.
    with runtime.engine.begin() as conn:
        drop_append_only(conn, "custody_entries")
        conn.execute(text("UPDATE custody_entries SET action = 'capture.viewed' WHERE seq = :s"),
                     {"s": seq})
    with pytest.raises(LogBroken) as refused:
        bundles.export_case(runtime, "petra", reference="OP-T", out=tmp_path / "b.zip")
    assert f"entry seq {seq}: column action disagrees with the entry (altered)" \
        in str(refused.value)
    assert "evidence custody verify" in str(refused.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.zip", "home"]  # nothing half-made
    with runtime.session() as s:
        started = s.execute(text(
            "SELECT count(*) FROM custody_entries WHERE action = 'export.started'")).scalar()
    assert started == 1 and action == "capture.recorded"


def test_recording_goes_on_while_an_export_verifies_the_log(
    runtime: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An export first verifies the whole log, seconds on a large one; a capture recorded
    meanwhile must not wait for it (on SQLite, nor fail after the busy timeout)."""
    _case_with_a_capture(runtime, "OP-V")
    real_verify = custody.verify_log
    recorded = threading.Event()

    def record() -> None:
        with runtime.session() as s:
            actor = users.get_user(s, "petra")
            custody.append(s, actor, action="case.viewed",
                           case=cases.get_case(s, actor, "OP-V"))
        recorded.set()

    def verify_while_recording(*args: Any, **kwargs: Any) -> custody.VerifyReport:
        report = real_verify(*args, **kwargs)
        writer = threading.Thread(target=record)
        writer.start()
        waited = recorded.wait(10)
        writer.join()
        assert waited, "recording waited on the export's verification"
        return report

    monkeypatch.setattr(custody, "verify_log", verify_while_recording)
    result = bundles.export_case(runtime, "petra", reference="OP-V", out=tmp_path / "b.zip")
    assert recorded.is_set()
    report = bundle_verifier.verify_bundle(result.path)
    assert report.ok, report.render()


def test_a_bundle_that_cannot_be_kept_is_not_recorded_complete(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The API keeps each bundle in the blob store for download; when the store is full the
    export fails, says why, and the exports list never shows a bundle nobody can download."""
    _case_with_a_capture(runtime, "OP-F")

    def full(_path: Path) -> None:
        raise StorageFull("blob store is full; nothing was stored")

    monkeypatch.setattr(runtime.store, "put_file", full)
    with pytest.raises(StorageFull, match="full"):
        bundles.export_and_keep(runtime, "petra", reference="OP-F")
    with runtime.session() as s:
        (export,) = s.scalars(select(Export))
        actions = [e.action for e in s.scalars(select(CustodyEntry).where(
            CustodyEntry.object_type == "export").order_by(CustodyEntry.seq))]
        case = s.get(Case, export.case_id)
        assert case is not None
        reasons = bundles.export_endings(s, case, [export])
    assert export.bundle_sha256 is None and export.lease_owner is None
    assert actions == ["export.started", "export.failed"]
    assert "full" in reasons[str(export.id)]["details"]["reason"]
    assert list(runtime.settings.home_path.glob(".export-*")) == []


# --- re-packed bundles ----------------------------------------------------------------------------
# People unzip a bundle to look inside and zip it again to pass it on: with Info-ZIP's zip, with a
# script, from inside the folder or from beside it. When every file's bytes are intact it must
# still verify, in the project and with the verify.py it carries run as the defence runs it
# (Debian's python3), and say that the ZIP is not the one exported.

SYSTEM_PYTHON = "/usr/bin/python3"
PAGE = "https://t.me/crossings"


@pytest.fixture(scope="module")
def exported(databases: Databases, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A bundle exported by the service, its capture holding a WARC (so a WACZ) and a PNG."""
    root = tmp_path_factory.mktemp("repack")
    settings = Settings(home=root / "home", database_url=databases.new_url())
    init_home(settings)
    runtime = open_runtime(settings)
    try:
        _case_with_a_capture(runtime, "OP-REZIP", files=[
            ("screenshot", "screenshot-full.png", "image/png", b"\x89PNG\r\n\x1a\n" + bytes(4096)),
            ("text", "text.txt", "text/plain; charset=utf-8", "عبور الليلة".encode()),
            # Uncompressed, so zip tools deflate the WACZ that holds it.
            ("warc", "traffic.warc", "application/warc", _warc_of(PAGE, gzip=False)),
        ])
        yield bundles.export_case(runtime, "petra", reference="OP-REZIP",
                                  out=root / "bundle.zip").path
    finally:
        runtime.close()


def _unzip(bundle: Path, into: Path) -> Path:
    """The bag folder, unpacked with Info-ZIP's unzip."""
    subprocess.run(["unzip", "-q", str(bundle), "-d", str(into)], check=True, timeout=120)
    (folder,) = into.iterdir()
    return folder


def _info_zip(cwd: Path, out: Path, *names: str) -> Path:
    subprocess.run(["zip", "-r", "-q", str(out), *names], cwd=cwd, check=True, timeout=120)
    return out


def _python_zip(root: Path, out: Path, *, with_folder: bool) -> Path:
    """As a script re-zips a folder: deflated, sorted, each folder an entry of its own."""
    base = root.parent if with_folder else root
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        if with_folder:
            zf.write(root, root.name)
        for path in sorted(root.rglob("*")):
            zf.write(path, path.relative_to(base).as_posix())
    return out


def _repack(method: str, bundle: Path, work: Path) -> Path:
    folder = _unzip(bundle, work / "unpacked")
    out = work / "repacked.zip"
    if method == "zip -r folder":
        return _info_zip(folder.parent, out, folder.name)
    if method == "zip -r contents":
        return _info_zip(folder, out, ".")
    return _python_zip(folder, out, with_folder=method == "zipfile folder")


def _defence_verify(bundle: Path, work: Path) -> tuple[int, dict[str, Any]]:
    """The verify.py inside `bundle`, run on the system's own Python and its cryptography."""
    with zipfile.ZipFile(bundle) as zf:
        (name,) = [n for n in zf.namelist() if n.endswith("data/verify.py")]
        script = work / "verify.py"
        script.write_bytes(zf.read(name))
    done = subprocess.run([SYSTEM_PYTHON, "-I", str(script), str(bundle), "--json", "--quiet"],
                          capture_output=True, text=True, cwd=work, timeout=300)
    assert done.returncode in (0, 1), done.stdout + done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return done.returncode, result


def _repacked_note(notes: list[str]) -> str | None:
    return next((n for n in notes if "re-packed" in n), None)


@pytest.mark.parametrize("method", ["zip -r folder", "zip -r contents", "zipfile folder",
                                    "zipfile contents"])
def test_a_rezipped_bundle_still_verifies_and_says_it_was_repacked(
    exported: Path, tmp_path: Path, method: str
) -> None:
    repacked = _repack(method, exported, tmp_path)
    with zipfile.ZipFile(repacked) as zf:
        infos = zf.infolist()
    assert any(i.is_dir() for i in infos)
    (wacz,) = [i for i in infos if i.filename.endswith("archive.wacz")]
    assert wacz.compress_type == zipfile.ZIP_DEFLATED  # so it is inflated to be checked
    assert (method.endswith("contents")) == any(i.filename == "bagit.txt" for i in infos)

    report = bundle_verifier.verify_bundle(repacked)
    assert report.ok, report.render()
    note = _repacked_note(report.notes)
    assert note is not None and "export.completed" in note, report.notes
    assert "checked from a temporary copy" in next(
        c.detail for c in report.checks if c.name == "EX-001 WACZ")
    code, defence = _defence_verify(repacked, tmp_path)
    assert code == 0 and defence["ok"], defence["problems"]
    assert _repacked_note(defence["notes"]) == note


def test_the_bundle_as_exported_is_not_called_repacked(exported: Path, tmp_path: Path) -> None:
    report = bundle_verifier.verify_bundle(exported)
    assert report.ok, report.render()
    assert _repacked_note(report.notes) is None
    code, defence = _defence_verify(exported, tmp_path)
    assert code == 0 and _repacked_note(defence["notes"]) is None


def _screenshot(folder: Path) -> Path:
    (path,) = folder.glob("data/exhibits/EX-001/files/*.png")
    return path


def _alter(folder: Path) -> str:
    path = _screenshot(folder)
    path.write_bytes(path.read_bytes() + b"\x00")
    return path.relative_to(folder / "data").as_posix()


def _add(folder: Path) -> str:
    (folder / "data" / "exhibits" / "EX-001" / "files" / "planted.txt").write_text("planted")
    return "exhibits/EX-001/files/planted.txt"


def _remove(folder: Path) -> str:
    path = _screenshot(folder)
    path.unlink()
    return path.relative_to(folder / "data").as_posix()


def _finder_junk(folder: Path) -> str:
    (folder / "data" / "exhibits" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    forks = folder.parent / "__MACOSX" / folder.name
    forks.mkdir(parents=True)
    (forks / "._bagit.txt").write_bytes(b"\x00\x05\x16\x07")
    return ".DS_Store"


CHANGES = {"altered": (_alter, "manifest-sha256.txt says"),
           "added": (_add, "not listed in manifest-sha256.txt"),
           "removed": (_remove, "missing from the bundle")}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_a_rezipped_bundle_with_changed_files_fails_and_names_them(
    exported: Path, tmp_path: Path, change: str
) -> None:
    folder = _unzip(exported, tmp_path / "unpacked")
    mutate, message = CHANGES[change]
    named = mutate(folder)
    tops = sorted(p.name for p in folder.parent.iterdir())
    repacked = _info_zip(folder.parent, tmp_path / "changed.zip", *tops)
    report = bundle_verifier.verify_bundle(repacked)
    assert not report.ok
    assert any(named in p and message in p for p in report.problems), report.problems
    code, defence = _defence_verify(repacked, tmp_path)
    assert code == 1 and defence["problems"] == report.problems


def test_a_bundle_unzipped_on_a_mac_and_rezipped_verifies_with_its_finder_files_named(
    exported: Path, tmp_path: Path
) -> None:
    folder = _unzip(exported, tmp_path / "unpacked")
    _finder_junk(folder)
    tops = sorted(p.name for p in folder.parent.iterdir())
    repacked = _info_zip(folder.parent, tmp_path / "mac.zip", *tops)
    for checked in (repacked, folder):
        report = bundle_verifier.verify_bundle(checked)
        assert report.ok, report.render()
        assert any(w.startswith("data/exhibits/.DS_Store: macOS Finder folder settings")
                   for w in report.warnings), report.warnings
    assert any(w.startswith(f"__MACOSX/{folder.name}/._bagit.txt: macOS resource forks")
               for w in bundle_verifier.verify_bundle(repacked).warnings)
    code, defence = _defence_verify(repacked, tmp_path)
    assert code == 0 and defence["warnings"] == bundle_verifier.verify_bundle(repacked).warnings


@pytest.mark.parametrize("name", ["{bag}/../../outside.txt", "/tmp/absolute.txt",
                                  "{bag}\\data\\backslash.txt", "../outside.txt"])
def test_a_rezipped_bundle_with_an_escaping_name_is_refused(
    exported: Path, tmp_path: Path, name: str
) -> None:
    repacked = _repack("zip -r folder", exported, tmp_path)
    with zipfile.ZipFile(repacked) as zf:
        bag = zf.namelist()[0].split("/")[0]
    entry = name.format(bag=bag)
    with zipfile.ZipFile(repacked, "a") as zf:
        zf.writestr(entry, b"escape")
    report = bundle_verifier.verify_bundle(repacked)
    assert not report.ok
    assert any(repr(entry) in p and "refused unread" in p for p in report.problems), \
        report.problems
    code, defence = _defence_verify(repacked, tmp_path)
    assert code == 1 and defence["problems"] == report.problems
    assert not (tmp_path / "outside.txt").exists() and not Path("/tmp/absolute.txt").exists()
