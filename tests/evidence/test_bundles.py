"""Evidence bundles end to end: real captures of local pages, exported and checked offline.

The untouched bundle passes `evidence verify`, the standalone `verify.py` it carries (run with
the project's packages blocked), the Library of Congress `bagit` validator, the `wacz` validator
and rdflib. Then every kind of tampering is tried, one at a time, both as a clumsy forger would
(the bag manifests still tell) and as a careful one who rewrites the bag manifests too (the
signed capture manifests, the custody proofs or the CASE graph must tell): each one fails and is
named.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from capture.browser import BrowserSession
from capture.service import CaptureWorker
from evidence import bundle_verifier, bundles, cases, custody, targets, users
from evidence.bagit import validate_bag
from evidence.errors import AccessDenied, BlobCorrupted, InvalidInput, NotFound, PermissionDenied
from evidence.home import Runtime, init_home, open_runtime
from evidence.models import Artifact, Capture, CustodyEntry, Export, Role
from evidence.settings import Settings
from evidence.signing import Signer
from tests.conftest import Databases
from tests.factories import export_as_of_revision
from tests.support import pages_server as pages

pytestmark = [pytest.mark.browser, pytest.mark.slow]

VENV_BIN = Path(sys.executable).parent
PROVISION = "§ 96 Abs. 2 AufenthG"
FACTS = "Boat crossings to Lesbos offered for EUR 3,000.\nعبور بالقارب إلى ليسبوس"


@dataclass
class World:
    runtime: Runtime
    root: Path
    bundle: Path  # case OP-HARBOUR, two exhibits
    other: Path  # case OP-OTHER, one exhibit
    case_id: uuid.UUID
    targets: list[uuid.UUID]
    old_checkpoint: dict[str, object]


def _capture(runtime: Runtime, worker: CaptureWorker, actor_name: str, reference: str,
             url: str) -> uuid.UUID:
    with runtime.session() as s:
        actor = users.get_user(s, actor_name)
        case = cases.get_case(s, actor, reference)
        target, _ = targets.flag_target(s, actor, case, url=url, reason="smuggling advert")
        target_id = target.id
    result = worker.run_once()
    assert result is not None and result.status in ("complete", "partial"), result
    return target_id


@pytest.fixture(scope="module")
def world(databases: Databases, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("bundles")
    settings = Settings(home=root / "home", database_url=databases.new_url(),
                        capture_allow="127.0.0.1", max_scroll_steps=2)
    init_home(settings)
    runtime = open_runtime(settings)
    with runtime.session() as s:
        ines = users.create_user(s, None, name="ines", role=Role.INVESTIGATOR, unit="Border Unit")
        petra = users.create_user(s, None, name="petra", role=Role.PROSECUTOR, unit="Prosecution")
        users.create_user(s, None, name="otto", role=Role.PROSECUTOR, unit="Elsewhere")
        case = cases.create_case(s, ines, reference="OP-HARBOUR", title="Crossing adverts",
                                 offence="migrant smuggling", jurisdiction="DE",
                                 offence_provision=PROVISION, max_penalty_years=10,
                                 facts=FACTS)
        cases.add_member(s, ines, case, petra, access="read")
        other = cases.create_case(s, ines, reference="OP-OTHER", title="Fake papers")
        cases.add_member(s, ines, other, petra, access="read")
        case_id = case.id
    with runtime.session() as s:
        old = custody.checkpoint_document(
            custody.cut_checkpoint(s, runtime.signer, origin=settings.origin))
    with pages.PagesServer() as server, BrowserSession(settings) as browser:
        worker = CaptureWorker(runtime, browser)
        ids = [
            _capture(runtime, worker, "ines", "OP-HARBOUR", server.url("/lazy?count=2")),
            _capture(runtime, worker, "ines", "OP-HARBOUR", server.url("/rtl")),
        ]
        _capture(runtime, worker, "ines", "OP-OTHER", server.url("/simple.html"))
    bundle = bundles.export_case(runtime, "petra", reference="OP-HARBOUR",
                                 out=root / "harbour.zip").path
    other_bundle = bundles.export_case(runtime, "petra", reference="OP-OTHER",
                                       out=root / "other.zip").path
    yield World(runtime, root, bundle, other_bundle, case_id, ids, old)
    runtime.close()


# --- reading and rewriting bundles ------------------------------------------------------------


def _members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {info.filename: zf.read(info) for info in zf.infolist() if not info.is_dir()}


def _stored(path: Path) -> set[str]:
    with zipfile.ZipFile(path) as zf:
        return {i.filename for i in zf.infolist() if i.compress_type == zipfile.ZIP_STORED}


def _top(members: dict[str, bytes]) -> str:
    return next(iter(members)).split("/", 1)[0]


def _write(path: Path, members: dict[str, bytes], stored: set[str] | None = None) -> Path:
    """A forger's ZIP: what was stored stays stored (a WACZ must be, to be checked in place)."""
    stored = stored if stored is not None else {n for n in members if n.endswith(".wacz")}
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            kind = zipfile.ZIP_STORED if name in stored else zipfile.ZIP_DEFLATED
            zf.writestr(name, data, compress_type=kind)
    return path


def _rebag(members: dict[str, bytes]) -> None:
    """What a careful forger does after changing the payload: rewrite both bag manifests."""
    top = _top(members)
    payload = sorted(n for n in members if n.startswith(f"{top}/data/"))
    members[f"{top}/manifest-sha256.txt"] = "".join(
        f"{hashlib.sha256(members[n]).hexdigest()}  {n[len(top) + 1:]}\n" for n in payload
    ).encode()
    oxum = f"{sum(len(members[n]) for n in payload)}.{len(payload)}"
    info = re.sub(rb"Payload-Oxum: [0-9.]+", f"Payload-Oxum: {oxum}".encode(),
                  members[f"{top}/bag-info.txt"])
    members[f"{top}/bag-info.txt"] = info
    members[f"{top}/tagmanifest-sha256.txt"] = "".join(
        f"{hashlib.sha256(members[f'{top}/{n}']).hexdigest()}  {n}\n"
        for n in ("bagit.txt", "bag-info.txt", "manifest-sha256.txt")
    ).encode()


def _reseal(members: dict[str, bytes], signer: Signer) -> None:
    """Sign the rewritten tag manifest as the exporter does (or, with another key, a forger)."""
    top = _top(members)
    digest = hashlib.sha256(members[f"{top}/tagmanifest-sha256.txt"]).hexdigest()
    members[f"{top}/{bundle_verifier.BAG_SIGNATURE}"] = bundles.bag_signature(signer, top, digest)


def _flip(data: bytes, at: int | None = None) -> bytes:
    i = len(data) // 2 if at is None else at
    return data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1:]


def _index(members: dict[str, bytes]) -> dict[str, object]:
    loaded: dict[str, object] = json.loads(members[f"{_top(members)}/data/bundle.json"])
    return loaded


def _exhibit_files(members: dict[str, bytes], number: str = "EX-001") -> list[dict[str, str]]:
    exhibits = _index(members)["exhibits"]
    assert isinstance(exhibits, list)
    files: list[dict[str, str]] = next(e for e in exhibits if e["number"] == number)["files"]
    return files


def _verify(path: Path) -> bundle_verifier.VerificationReport:
    return bundle_verifier.verify_bundle(path)


# --- the untouched bundle ---------------------------------------------------------------------


def test_untouched_bundle_verifies_and_holds_what_the_issue_lists(world: World) -> None:
    report = _verify(world.bundle)
    assert report.ok, report.render()
    members = _members(world.bundle)
    top = _top(members)
    names = {n[len(top) + 1:] for n in members}
    for tag in ("bagit.txt", "bag-info.txt", "manifest-sha256.txt", "tagmanifest-sha256.txt"):
        assert tag in names
    for part in ("data/bundle.json", "data/report.pdf", "data/case.jsonld", "data/verify.py",
                 "data/README.txt", "data/keys/signing-key.pem", "data/keys/tsa/local-tsa-ca.pem",
                 "data/custody/entries.jsonl", "data/custody/proofs.json",
                 "data/custody/checkpoint.json", "data/custody/checkpoint.tsr"):
        assert part in names, part
    for number in ("EX-001", "EX-002"):
        for part in ("manifest.json", "manifest.sig", "manifest.tsr", "archive.wacz"):
            assert f"data/exhibits/{number}/{part}" in names
    kinds = {f["kind"] for f in _exhibit_files(members)}
    assert {"screenshot", "dom", "mhtml", "pdf", "warc", "text", "metadata"} <= kinds
    assert not any("%" in n for n in names)
    info = members[f"{top}/bag-info.txt"].decode()
    for label in ("Source-Organization: Prosecution", "Contact-Name: petra",
                  "External-Identifier:", "Bagging-Date:", "Payload-Oxum:"):
        assert label in info
    # Images are stored as they are, not deflated again.
    with zipfile.ZipFile(world.bundle) as zf:
        png = next(i for i in zf.infolist() if i.filename.endswith(".png"))
        assert png.compress_type == zipfile.ZIP_STORED
    # The bundle proves its own request: export.started is in its custody file.
    lines = members[f"{top}/data/custody/entries.jsonl"].decode().splitlines()
    assert json.loads(lines[-1])["action"] == "export.started"
    assert [json.loads(x)["case_seq"] for x in lines] == list(range(1, len(lines) + 1))


def test_the_exporter_writes_no_byte_outside_or_between_its_entries(world: World) -> None:
    """What verify.py and the service's bag reader fail (bytes outside or between the entries)
    the exporter never writes, though it streams: each entry's sizes follow its data in a data
    descriptor, which the check steps over."""
    size = world.bundle.stat().st_size
    with world.bundle.open("rb") as handle, zipfile.ZipFile(handle) as zf:
        infos = zf.infolist()
        assert all(i.flag_bits & 0x08 for i in infos if not i.is_dir())  # data descriptors
        assert bundle_verifier.outside_archive(handle, size, infos, zf.start_dir) == []
    assert validate_bag(world.bundle) == []


def test_export_is_recorded_with_the_bundle_hash(world: World) -> None:
    digest = hashlib.sha256(world.bundle.read_bytes()).hexdigest()
    with world.runtime.session() as s:
        export = s.scalars(select(Export).where(Export.bundle_sha256 == digest)).one()
        done = s.scalars(select(CustodyEntry).where(
            CustodyEntry.action == "export.completed", CustodyEntry.object_id == str(export.id)
        )).one()
        assert done.sha256 == digest
        assert export.size == world.bundle.stat().st_size
        assert export.case_id == world.case_id


def test_cli_verify_needs_no_home_and_prints_a_clear_report(world: World, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVIDENCE_")}
    env["EVIDENCE_HOME"] = str(tmp_path / "no-such-home")
    ok = subprocess.run([sys.executable, "-m", "evidence", "verify", str(world.bundle)],
                        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "EX-001" in ok.stdout and "EX-002" in ok.stdout
    members = _members(world.bundle)
    path = next(f["path"] for f in _exhibit_files(members) if f["kind"] == "screenshot")
    members[f"{_top(members)}/data/{path}"] = _flip(members[f"{_top(members)}/data/{path}"])
    bad = _write(tmp_path / "bad.zip", members)
    failed = subprocess.run(
        [sys.executable, "-m", "evidence", "verify", "--json", str(bad)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )
    assert failed.returncode == 1
    result = json.loads(failed.stdout)
    assert result["ok"] is False and any(path in p for p in result["problems"])
    assert not (tmp_path / "no-such-home").exists()


def test_standalone_verifier_runs_without_this_project(world: World, tmp_path: Path) -> None:
    members = _members(world.bundle)
    script = tmp_path / "verify.py"
    script.write_bytes(members[f"{_top(members)}/data/verify.py"])
    assert script.read_bytes() == bundles.verifier_source()
    blocked = ["evidence", "capture", "api", "legal_forms", "asn1crypto", "orjson", "warcio",
               "bagit", "sqlalchemy", "rdflib", "wacz", "cdxj_indexer"]
    runner = (
        "import runpy, sys\n"
        f"for name in {blocked!r}: sys.modules[name] = None\n"
        f"sys.argv = ['verify.py', {str(world.bundle)!r}]\n"
        f"runpy.run_path({str(script)!r}, run_name='__main__')\n"
    )
    result = subprocess.run([sys.executable, "-I", "-c", runner], capture_output=True, text=True,
                            cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert world.runtime.signer.key_id in result.stdout


def test_the_verifier_runs_on_the_systems_own_python(world: World, tmp_path: Path) -> None:
    """The defence's plain machine: Debian's python3 and its packaged, older cryptography
    (`./dev test` installs python3-cryptography where it is missing)."""
    system = "/usr/bin/python3"
    version = subprocess.run([system, "-I", "-c", "import cryptography; "
                              "print(cryptography.__version__)"],
                             capture_output=True, text=True, timeout=60)
    assert version.returncode == 0, "no python3-cryptography: run ./dev test to install it"
    members = _members(world.bundle)
    script = tmp_path / "verify.py"
    script.write_bytes(members[f"{_top(members)}/data/verify.py"])
    result = subprocess.run([system, "-I", str(script), str(world.bundle)],
                            capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, (version.stdout, result.stdout, result.stderr)
    assert "VERIFIED" in result.stdout


def test_standard_tools_accept_the_bag_the_wacz_and_the_graph(
    world: World, tmp_path: Path
) -> None:
    import bagit
    from rdflib import Graph

    with zipfile.ZipFile(world.bundle) as zf:
        zf.extractall(tmp_path)
    (bag_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    bagit.Bag(str(bag_dir)).validate()
    for wacz_file in sorted(bag_dir.glob("data/exhibits/*/archive.wacz")):
        result = subprocess.run([str(VENV_BIN / "wacz"), "validate", "-f", str(wacz_file)],
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
    graph = Graph().parse(bag_dir / "data" / "case.jsonld", format="json-ld")
    assert len(graph) > 50


def test_report_lists_every_exhibit(world: World, tmp_path: Path) -> None:
    members = _members(world.bundle)
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(members[f"{_top(members)}/data/report.pdf"])
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True,
                          text=True, check=True).stdout
    exhibits = _index(members)["exhibits"]
    assert isinstance(exhibits, list)
    flat = re.sub(r"\s+", "", text)
    for exhibit in exhibits:
        assert exhibit["number"] in text
        assert exhibit["manifest_sha256"] in flat
    assert "OP-HARBOUR" in text and "capture.recorded" in text


def test_a_bundle_from_before_the_offence_details_still_verifies(
    world: World, tmp_path: Path
) -> None:
    members = _members(world.bundle)
    top = _top(members)
    index = json.loads(members[f"{top}/data/bundle.json"])
    assert {k: index["case"][k] for k in ("offence_provision", "max_penalty_years", "facts")} \
        == {"offence_provision": PROVISION, "max_penalty_years": 10.0, "facts": FACTS}
    # As the exporter wrote it before: no such keys, one focus and one description.
    for key in ("offence_provision", "max_penalty_years", "facts"):
        del index["case"][key]
    members[f"{top}/data/bundle.json"] = json.dumps(index, indent=2).encode()
    graph = json.loads(members[f"{top}/data/case.jsonld"])
    investigation = graph["@graph"][0]
    assert investigation["case-investigation:focus"] == ["migrant smuggling", PROVISION]
    assert investigation["uco-core:description"] == ["Crossing adverts", FACTS]
    investigation["case-investigation:focus"] = "migrant smuggling"
    investigation["uco-core:description"] = "Crossing adverts"
    members[f"{top}/data/case.jsonld"] = json.dumps(graph, indent=2).encode()
    _rebag(members)
    _reseal(members, world.runtime.signer)
    report = _verify(_write(tmp_path / "before.zip", members))
    assert report.ok, report.render()


# --- the bag as a whole is signed (revision 3) ----------------------------------------------------


def test_the_bundle_signs_its_bag_as_its_last_entry(world: World) -> None:
    with zipfile.ZipFile(world.bundle) as zf:
        names = zf.namelist()
    top = names[0].split("/", 1)[0]
    assert names[-2:] == [f"{top}/tagmanifest-sha256.txt",
                          f"{top}/{bundle_verifier.BAG_SIGNATURE}"]
    members = _members(world.bundle)
    assert _index(members)["revision"] == 3
    doc = json.loads(members[f"{top}/{bundle_verifier.BAG_SIGNATURE}"])
    assert doc["key_id"] == world.runtime.signer.key_id and doc["bag"] == top
    assert doc["tagmanifest_sha256"] == hashlib.sha256(
        members[f"{top}/tagmanifest-sha256.txt"]).hexdigest()
    report = bundle_verifier.verify_bundle(world.bundle,
                                           key_pem=world.runtime.verifier.public_pem())
    assert report.ok, report.render()
    # The service's bag reader checks the signature by the verifier's rule.
    assert validate_bag(world.bundle, signed_by=world.runtime.verifier.public_key) == []
    assert world.runtime.signer.key_id in next(
        c.detail for c in report.checks if c.name == "bag signature")
    assert any("The bag as a whole is signed" in n for n in report.notes), report.notes
    assert not any("re-packed" in n for n in report.notes), report.notes


@pytest.mark.parametrize("name", ["report.pdf", "README.txt", "verify.py"])
def test_a_file_no_other_signature_covers_changed_with_the_bag_rewritten_fails(
    world: World, tmp_path: Path, name: str
) -> None:
    members = _members(world.bundle)
    top = _top(members)
    members[f"{top}/data/{name}"] = _flip(members[f"{top}/data/{name}"])
    _rebag(members)
    report = _verify(_write(tmp_path / "forged.zip", members))
    assert not report.ok
    assert any(p.startswith(f"{bundle_verifier.BAG_SIGNATURE}: signs a tag manifest")
               for p in report.problems), report.problems
    assert next(c for c in report.checks if c.name == "bag").ok  # the manifests agree


def test_a_bundle_without_its_bag_signature_or_signed_by_another_key_fails(
    world: World, tmp_path: Path
) -> None:
    members = _members(world.bundle)
    top = _top(members)
    del members[f"{top}/{bundle_verifier.BAG_SIGNATURE}"]
    report = _verify(_write(tmp_path / "unsigned.zip", members))
    assert not report.ok
    assert f"{bundle_verifier.BAG_SIGNATURE}: missing, which revision 3 requires: nothing " \
        "then seals the bag as a whole (removed?)" in report.problems, report.problems

    members = _members(world.bundle)
    members[f"{top}/data/report.pdf"] = _flip(members[f"{top}/data/report.pdf"])
    _rebag(members)
    mallory = Signer.generate()
    _reseal(members, mallory)
    report = bundle_verifier.verify_bundle(_write(tmp_path / "resigned.zip", members),
                                           key_pem=world.runtime.verifier.public_pem())
    assert not report.ok
    assert any(p.startswith(f"{bundle_verifier.BAG_SIGNATURE}: signed by key "
                            f"'{mallory.key_id}'") for p in report.problems), report.problems


def test_a_revision_2_bundle_verifies_with_its_bag_unsigned_noted(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the exporter wrote it before revision 3: no bag signature."""
    members = _members(export_as_of_revision(monkeypatch, 2, world.runtime, "petra",
                                             reference="OP-HARBOUR", out=tmp_path / "2.zip"))
    top = _top(members)
    assert _index(members)["revision"] == 2
    del members[f"{top}/{bundle_verifier.BAG_SIGNATURE}"]
    _rebag(members)
    report = _verify(_write(tmp_path / "rev2.zip", members))
    assert report.ok, report.render()
    assert any("The bag as a whole is not signed (revision 2" in n for n in report.notes)


# --- tampering ----------------------------------------------------------------------------------

Mutation = Callable[[dict[str, bytes], World], str]  # mutates, returns what the report must name


def _artifact_flip(kind: str) -> Mutation:
    def mutate(members: dict[str, bytes], _world: World) -> str:
        path = next(f["path"] for f in _exhibit_files(members) if f["kind"] == kind)
        name = f"{_top(members)}/data/{path}"
        members[name] = _flip(members[name])
        return path

    return mutate


def _exhibit_part(part: str, at: int | None = None) -> Mutation:
    def mutate(members: dict[str, bytes], _world: World) -> str:
        name = f"{_top(members)}/data/exhibits/EX-001/{part}"
        members[name] = _flip(members[name], at)
        return f"exhibits/EX-001/{part}"

    return mutate


def _custody_entry(members: dict[str, bytes], _world: World) -> str:
    name = f"{_top(members)}/data/custody/entries.jsonl"
    lines = members[name].split(b"\n")
    entry = json.loads(lines[2])
    lines[2] = lines[2].replace(b'"action":"', b'"action":"X', 1)
    members[name] = b"\n".join(lines)
    return f"seq {entry['seq']}"


def _reorder_entries(members: dict[str, bytes], _world: World) -> str:
    name = f"{_top(members)}/data/custody/entries.jsonl"
    lines = members[name].split(b"\n")
    lines[1], lines[2] = lines[2], lines[1]
    members[name] = b"\n".join(lines)
    return "seq"


def _checkpoint(members: dict[str, bytes], _world: World) -> str:
    name = f"{_top(members)}/data/custody/checkpoint.json"
    doc = json.loads(members[name])
    root = doc["root_hash"]
    doc["root_hash"] = ("0" if root[0] != "0" else "1") + root[1:]
    members[name] = json.dumps(doc).encode()
    return "checkpoint"


def _delete_artifact(members: dict[str, bytes], _world: World) -> str:
    path = next(f["path"] for f in _exhibit_files(members) if f["kind"] == "text")
    del members[f"{_top(members)}/data/{path}"]
    return path


def _add_file(members: dict[str, bytes], _world: World) -> str:
    path = "exhibits/EX-001/files/planted.png"
    members[f"{_top(members)}/data/{path}"] = b"\x89PNG planted"
    return path


def _swap_from_other_bundle(members: dict[str, bytes], world: World) -> str:
    other = _members(world.other)
    theirs = next(f["path"] for f in _exhibit_files(other) if f["kind"] == "screenshot")
    ours = next(f["path"] for f in _exhibit_files(members) if f["kind"] == "screenshot")
    members[f"{_top(members)}/data/{ours}"] = other[f"{_top(other)}/data/{theirs}"]
    return ours


def _case_graph(members: dict[str, bytes], _world: World) -> str:
    name = f"{_top(members)}/data/case.jsonld"
    text = members[name].decode()
    digest = re.search(r'"[0-9a-f]{64}"', text)
    assert digest is not None
    members[name] = (text[:digest.start() + 1] + ("0" if text[digest.start() + 1] != "0" else "1")
                     + text[digest.start() + 2:]).encode()
    return "case graph"


def _swap_exhibit_numbers(members: dict[str, bytes], _world: World) -> str:
    """EX-001 and EX-002 trade numbers in bundle.json: the report's numbering no longer
    matches the one the export recorded."""
    name = f"{_top(members)}/data/bundle.json"
    index = json.loads(members[name])
    first, second = index["exhibits"][:2]
    first["number"], second["number"] = second["number"], first["number"]
    index["exhibits"] = [second, first]
    members[name] = json.dumps(index, indent=2).encode()
    return "export.started"


def _drop_exhibit(members: dict[str, bytes], _world: World) -> str:
    """EX-002 is taken out whole: its folder, its index entry and its CASE graph nodes."""
    top = _top(members)
    name = f"{top}/data/bundle.json"
    index = json.loads(members[name])
    index["exhibits"] = [e for e in index["exhibits"] if e["number"] != "EX-002"]
    members[name] = json.dumps(index, indent=2).encode()
    for member in [m for m in members if m.startswith(f"{top}/data/exhibits/EX-002/")]:
        del members[member]
    graph_name = f"{top}/data/case.jsonld"
    graph = json.loads(members[graph_name])
    graph["@graph"] = [n for n in graph["@graph"] if "exhibits/EX-002/" not in json.dumps(n)]
    members[graph_name] = json.dumps(graph, indent=2).encode()
    return "exhibit EX-002"


MUTATIONS: dict[str, Mutation] = {
    **{f"artifact-{kind}": _artifact_flip(kind)
       for kind in ("screenshot", "dom", "mhtml", "pdf", "warc", "text", "metadata")},
    "manifest": _exhibit_part("manifest.json"),
    "signature": _exhibit_part("manifest.sig", 10),
    "timestamp-token": _exhibit_part("manifest.tsr"),
    "wacz": _exhibit_part("archive.wacz"),
    "custody-entry": _custody_entry,
    "reordered-entries": _reorder_entries,
    "checkpoint": _checkpoint,
    "deleted-file": _delete_artifact,
    "added-file": _add_file,
    "swapped-in-other-bundles-file": _swap_from_other_bundle,
    "case-graph": _case_graph,
    "swapped-exhibit-numbers": _swap_exhibit_numbers,
    "dropped-exhibit": _drop_exhibit,
}


@pytest.mark.parametrize("rebag", [False, True], ids=["bag-left", "bag-rewritten"])
@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_every_tampering_fails_and_is_named(
    world: World, tmp_path: Path, mutation: str, rebag: bool
) -> None:
    members = _members(world.bundle)
    named = MUTATIONS[mutation](members, world)
    if rebag:
        _rebag(members)
    report = _verify(_write(tmp_path / "tampered.zip", members))
    assert not report.ok, f"{mutation} went unnoticed"
    assert any(named in problem for problem in report.problems), report.problems


# --- refusals and failures ------------------------------------------------------------------------


def test_who_may_export(world: World, tmp_path: Path) -> None:
    with pytest.raises(PermissionDenied, match="prosecutor"):
        with world.runtime.session() as s:
            ines = users.get_user(s, "ines")
            petra_reader = users.create_user(s, None, name=f"r{uuid.uuid4().hex[:6]}",
                                             role=Role.INVESTIGATOR)
            case = cases.get_case(s, ines, "OP-HARBOUR")
            cases.add_member(s, ines, case, petra_reader, access="write")
            reader_name = petra_reader.name
        bundles.export_case(world.runtime, reader_name, reference="OP-HARBOUR",
                            out=tmp_path / "a.zip")
    with pytest.raises(AccessDenied, match="no case"):
        bundles.export_case(world.runtime, "otto", reference="OP-HARBOUR", out=tmp_path / "b.zip")
    with pytest.raises(NotFound, match="no target"):
        bundles.export_case(world.runtime, "petra", reference="OP-HARBOUR",
                            out=tmp_path / "c.zip", target_ids=[uuid.uuid4()])
    existing = tmp_path / "exists.zip"
    existing.write_bytes(b"keep me")
    with pytest.raises(InvalidInput, match="never overwrites"):
        bundles.export_case(world.runtime, "petra", reference="OP-HARBOUR", out=existing)
    assert existing.read_bytes() == b"keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exists.zip"]


def test_export_of_some_targets_holds_only_theirs(world: World, tmp_path: Path) -> None:
    result = bundles.export_case(world.runtime, "petra", reference="OP-HARBOUR",
                                 out=tmp_path / "one.zip", target_ids=[world.targets[1]])
    assert result.exhibits == 1
    members = _members(result.path)
    exhibits = _index(members)["exhibits"]
    assert isinstance(exhibits, list) and len(exhibits) == 1
    assert exhibits[0]["target_id"] == str(world.targets[1])
    assert _verify(result.path).ok


def test_corrupted_blob_stops_the_export_and_leaves_nothing(world: World, tmp_path: Path) -> None:
    with world.runtime.session() as s:
        capture = s.scalars(select(Capture).where(Capture.target_id == world.targets[0])).one()
        manifest = json.loads(world.runtime.store.read_bytes(next(
            a.sha256 for a in s.scalars(select(Artifact).where(
                Artifact.capture_id == capture.id, Artifact.kind == "manifest"))
        )))
    text_sha = next(a["sha256"] for a in manifest["artifacts"] if a["kind"] == "text")
    blob = Path(world.runtime.store.locate(text_sha))
    saved = blob.read_bytes()
    blob.chmod(0o644)
    blob.write_bytes(_flip(saved))
    try:
        with pytest.raises(BlobCorrupted):
            bundles.export_case(world.runtime, "petra", reference="OP-HARBOUR",
                                out=tmp_path / "broken.zip")
    finally:
        blob.write_bytes(saved)
    assert list(tmp_path.iterdir()) == []
    with world.runtime.session() as s:
        failed = s.scalars(select(CustodyEntry).where(CustodyEntry.action == "export.failed")
                           .order_by(CustodyEntry.seq.desc())).first()
        assert failed is not None and text_sha in json.loads(failed.entry)["details"]["reason"]


def test_against_an_older_checkpoint(world: World, tmp_path: Path) -> None:
    old = tmp_path / "old.json"
    old.write_text(json.dumps(world.old_checkpoint))
    members = _members(world.bundle)
    new = json.loads(members[f"{_top(members)}/data/custody/checkpoint.json"])
    with world.runtime.session() as s:
        path = custody.consistency_proof(s, int(str(world.old_checkpoint["tree_size"])),
                                         new["tree_size"])
    proof = {"old_size": world.old_checkpoint["tree_size"], "new_size": new["tree_size"],
             "path": [h.hex() for h in path]}
    good = bundle_verifier.verify_bundle(world.bundle, against_checkpoint=world.old_checkpoint,
                                         consistency_proof=proof)
    assert good.ok, good.render()
    forged = dict(world.old_checkpoint)
    root = str(forged["root_hash"])
    forged["root_hash"] = ("0" if root[0] != "0" else "1") + root[1:]
    bad = bundle_verifier.verify_bundle(world.bundle, against_checkpoint=forged,
                                        consistency_proof=proof)
    assert not bad.ok
    # And through the CLI, with the proof the CLI prints.
    env = {**os.environ, "EVIDENCE_HOME": str(world.runtime.settings.home_path),
           "EVIDENCE_DATABASE_URL": str(world.runtime.engine.url.render_as_string(False))}
    printed = subprocess.run(
        [sys.executable, "-m", "evidence", "custody", "consistency", "--from",
         str(world.old_checkpoint["tree_size"]), "--to", str(new["tree_size"])],
        capture_output=True, text=True, env=env, timeout=120, check=True,
    ).stdout
    (tmp_path / "proof.json").write_text(printed)
    result = subprocess.run(
        [sys.executable, "-m", "evidence", "verify", str(world.bundle), "--against-checkpoint",
         str(old), "--consistency-proof", str(tmp_path / "proof.json")],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_cli_export_writes_a_bundle_and_refuses_bad_ids(world: World, tmp_path: Path) -> None:
    env = {**os.environ, "EVIDENCE_HOME": str(world.runtime.settings.home_path),
           "EVIDENCE_DATABASE_URL": str(world.runtime.engine.url.render_as_string(False))}
    out = tmp_path / "cli.zip"
    done = subprocess.run(
        [sys.executable, "-m", "evidence", "export", "OP-HARBOUR", "--as", "petra", "--out",
         str(out), "--targets", str(world.targets[0]), str(world.targets[1]), "--json"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["exhibits"] == 2
    assert summary["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    bad = subprocess.run(
        [sys.executable, "-m", "evidence", "export", "OP-HARBOUR", "--as", "petra", "--out",
         str(tmp_path / "x.zip"), "--targets", "not-a-uuid"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert bad.returncode != 0 and "not a target id" in bad.stderr
    assert "Traceback" not in bad.stderr
    stray = subprocess.run(
        [sys.executable, "-m", "evidence", "export", "OP-HARBOUR", str(world.targets[0]),
         "--as", "petra", "--out", str(tmp_path / "y.zip")],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert stray.returncode == 2 and "target ids go after --targets" in stray.stderr
    assert not (tmp_path / "x.zip").exists()


def test_the_command_readme_gives_verifies_the_bundle_it_sits_in(
    world: World, tmp_path: Path
) -> None:
    """README.txt tells the expert what to type inside data/. An expert who unpacked two bundles
    into the same folder must still get this bundle checked, named as the bundle it is."""
    with zipfile.ZipFile(world.bundle) as zf:
        zf.extractall(tmp_path)
        top = _top(_members(world.bundle))
    (tmp_path / "another-bundle").mkdir()
    (tmp_path / "another-bundle" / "bagit.txt").write_text("BagIt-Version: 1.0\n")
    data = tmp_path / top / "data"
    readme = (data / "README.txt").read_text()
    line = next(x for x in readme.splitlines() if "(from inside data/" in x)
    command = line.split("(from inside data/")[0].split()
    assert command[:2] == ["python3", "verify.py"], line
    result = subprocess.run([sys.executable, *command[1:], "--quiet"], capture_output=True,
                            text=True, cwd=data, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[0] == f"Evidence bundle {top}"
