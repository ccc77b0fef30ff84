"""Received material in evidence bundles: listed, carried, covered by the bag and the custody
slice, checked by the verifier (and the verify.py each bundle carries), shown in the report."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import zipfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from evidence import bundle_verifier, bundles, cases, caseuco, received, requests, users
from evidence.home import Runtime
from evidence.models import Access, Role, utcnow
from tests.factories import (
    AUTHORITY_FIELDS,
    case_with_a_capture,
    export_as_of_revision,
    two_answered_targets,
)

IPS = b"ip,at\n203.0.113.7,2026-02-28T22:14:09Z\n198.51.100.4,2026-03-01T06:02:51Z\n"
SUBSCRIBER = b'{"account_id": "1234567890", "email": "s@example.org"}\n'
SHOTS = "/tmp/ui-received"


@pytest.fixture
def bundle(runtime: Runtime, tmp_path: Path) -> dict[str, Any]:
    """Case OP-R: one sealed capture of an X post, a request to X sent, two files it answered
    with and one handed over by a witness (under a hostile name); exported by petra."""
    with runtime.session() as s:
        ines = users.create_user(s, None, name="ines", role=Role.LIAISON, unit="Border Unit")
        users.create_user(s, None, name="petra", role=Role.PROSECUTOR)
        users.create_user(s, None, name="sam", role=Role.SUPERVISOR)
    case_with_a_capture(runtime, "ines", "OP-R", url="https://x.com/smuggler_ar/status/1789",
                        offence="Migrant smuggling")
    sent = utcnow().replace(microsecond=0) - timedelta(days=3)
    with runtime.session() as s:
        ines, petra, sam = (users.get_user(s, n) for n in ("ines", "petra", "sam"))
        case = cases.get_case(s, ines, "OP-R")
        cases.add_member(s, ines, case, petra, Access.READ)
        cases.add_member(s, ines, case, sam, Access.WRITE)
        made = requests.generate(s, ines, case, store=runtime.store, settings=runtime.settings,
                                 kind="provider-preservation", platform="x",
                                 fields=AUTHORITY_FIELDS, now=sent - timedelta(hours=1),
                                 date_from=sent - timedelta(days=90), date_to=sent)
        requests.change_status(s, sam, case, made.request.id, "approved", at=sent, now=sent)
        requests.change_status(s, ines, case, made.request.id, "sent", at=sent, now=sent)
        reference = made.request.reference_number
        for name, data in (("ip_log.csv", IPS), ("subscriber.json", SUBSCRIBER)):
            received.register(s, ines, case, [data], store=runtime.store, filename=name,
                              received_at=sent + timedelta(days=2), via="portal",
                              request=reference, platform_reference="LE-2026-77123")
        received.register(s, ines, case, [b"%PDF-1.4 witness statement"],
                          store=runtime.store, filename="../../etc/\u202efdp.exe",
                          received_at=sent, via="other", via_detail="courier",
                          source="handed over by witness W-3")
    out = bundles.export_case(runtime, "petra", reference="OP-R", out=tmp_path / "r.zip").path
    return {**_opened(out), "request": reference}


def _opened(path: Path) -> dict[str, Any]:
    """A bundle's members, its bag's folder and its bundle.json."""
    with zipfile.ZipFile(path) as zf:
        members = {i.filename: zf.read(i) for i in zf.infolist() if not i.is_dir()}
    top = next(iter(members)).split("/", 1)[0]
    return {"path": path, "members": members, "top": top,
            "index": json.loads(members[f"{top}/data/bundle.json"])}


def _older(monkeypatch: pytest.MonkeyPatch, runtime: Runtime, tmp_path: Path, revision: int,
           reference: str, **export: Any) -> dict[str, Any]:
    """The case exported again as the exporter of `revision` wrote it (`export_as_of_revision`),
    opened as the fixtures open theirs."""
    return _opened(export_as_of_revision(monkeypatch, revision, runtime, "petra",
                                         reference=reference,
                                         out=tmp_path / f"revision-{revision}.zip", **export))


def _write(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data, compress_type=zipfile.ZIP_STORED if name.endswith(
                ".wacz") else zipfile.ZIP_DEFLATED)
    return path


def _rebag(members: dict[str, bytes], top: str) -> None:
    """A careful forger: both bag manifests and the payload oxum rewritten after a change."""
    payload = sorted(n for n in members if n.startswith(f"{top}/data/"))
    members[f"{top}/manifest-sha256.txt"] = "".join(
        f"{hashlib.sha256(members[n]).hexdigest()}  {n[len(top) + 1:]}\n" for n in payload
    ).encode()
    oxum = f"{sum(len(members[n]) for n in payload)}.{len(payload)}"
    members[f"{top}/bag-info.txt"] = re.sub(rb"Payload-Oxum: [0-9.]+",
                                            f"Payload-Oxum: {oxum}".encode(),
                                            members[f"{top}/bag-info.txt"])
    members[f"{top}/tagmanifest-sha256.txt"] = "".join(
        f"{hashlib.sha256(members[f'{top}/{n}']).hexdigest()}  {n}\n"
        for n in ("bagit.txt", "bag-info.txt", "manifest-sha256.txt")).encode()


def _unsigned(members: dict[str, bytes], top: str) -> None:
    """As the exporter wrote a bundle before revision 3: no signature over the bag."""
    del members[f"{top}/{bundle_verifier.BAG_SIGNATURE}"]


def _reseal(members: dict[str, bytes], top: str, runtime: Runtime) -> None:
    """The rewritten tag manifest signed with the system key, as the exporter signs it."""
    digest = hashlib.sha256(members[f"{top}/tagmanifest-sha256.txt"]).hexdigest()
    members[f"{top}/{bundle_verifier.BAG_SIGNATURE}"] = bundles.bag_signature(
        runtime.signer, top, digest)


def _standalone(bundle: dict[str, Any], zip_path: Path, tmp_path: Path) -> Any:
    """The verify.py the bundle carries, run by the system's own Python, as the defence would."""
    script = tmp_path / "verify.py"
    script.write_bytes(bundle["members"][f"{bundle['top']}/data/verify.py"])
    return subprocess.run(["/usr/bin/python3", "-I", str(script), str(zip_path)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)


def test_the_bundle_carries_received_material_and_verifies(
        bundle: dict[str, Any], tmp_path: Path) -> None:
    report = bundle_verifier.verify_bundle(bundle["path"])
    assert report.ok, report.render()
    assert "3 received file(s)" in report.render()
    items = bundle["index"]["received"]
    assert [(i["number"], i["filename"], i["via"]) for i in items] == [
        ("RM-001", "../../etc/\u202efdp.exe", "other"),
        ("RM-002", "ip_log.csv", "portal"), ("RM-003", "subscriber.json", "portal")]
    # The name as received is kept in bundle.json; the file's path is one safe component.
    assert re.fullmatch(r"received/RM-001-[A-Za-z0-9._-]+", items[0]["path"]), items[0]["path"]
    assert items[0]["source"] == "handed over by witness W-3"
    members, top = bundle["members"], bundle["top"]
    for item, data in zip(items[1:], (IPS, SUBSCRIBER), strict=True):
        assert item["request"] == bundle["request"]
        assert item["platform_reference"] == "LE-2026-77123"
        assert item["sha256"] == hashlib.sha256(data).hexdigest() and item["size"] == len(data)
        assert members[f"{top}/data/{item['path']}"] == data
        assert f"{item['sha256']}  data/{item['path']}".encode() in (
            members[f"{top}/manifest-sha256.txt"])
    entries = [json.loads(line) for line in
               members[f"{top}/data/custody/entries.jsonl"].splitlines()]
    got = {e["object"]["id"]: e["sha256"] for e in entries if e["action"] == "material.received"}
    assert got == {i["id"]: i["sha256"] for i in items}
    standalone = _standalone(bundle, bundle["path"], tmp_path)
    assert standalone.returncode == 0, standalone.stdout + standalone.stderr
    assert "3 received file(s)" in standalone.stdout


def test_the_report_lists_the_received_material(bundle: dict[str, Any], tmp_path: Path) -> None:
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(bundle["members"][f"{bundle['top']}/data/report.pdf"])
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True,
                          text=True, check=True).stdout
    Path(SHOTS).mkdir(exist_ok=True)
    subprocess.run(["pdftoppm", "-png", "-r", "60", str(pdf), f"{SHOTS}/rep"], check=True)
    # Read in reading order (not laid out), so a hash wrapped in its cell joins up again.
    flat = re.sub(r"\s+", "", subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True,
                                             text=True, check=True).stdout)
    assert "Received material" in text and "ip_log.csv" in text
    for item in bundle["index"]["received"]:
        assert item["number"] in text and item["sha256"] in flat
    assert bundle["request"] in flat and "[U+202E]" in text  # the override shown, not obeyed


@pytest.mark.parametrize("rebag", [False, True], ids=["bag-left", "bag-rewritten"])
def test_a_swapped_received_file_fails_and_is_named(
        bundle: dict[str, Any], tmp_path: Path, rebag: bool) -> None:
    members, top = dict(bundle["members"]), bundle["top"]
    item = bundle["index"]["received"][1]
    path = f"{top}/data/{item['path']}"
    members[path] = members[path].replace(b"203.0.113.7", b"203.0.113.8")
    if rebag:
        # The forger also rewrites the hash bundle.json gives: the custody entry still tells.
        index = json.loads(members[f"{top}/data/bundle.json"])
        index["received"][1]["sha256"] = hashlib.sha256(members[path]).hexdigest()
        members[f"{top}/data/bundle.json"] = json.dumps(index, indent=2).encode()
        _rebag(members, top)
    tampered = _write(tmp_path / "tampered.zip", members)
    report = bundle_verifier.verify_bundle(tampered)
    assert not report.ok
    named = [p for p in report.problems if item["path"] in p]
    assert named, report.problems
    if rebag:
        assert any("custody entry seq" in p for p in named), named
    standalone = _standalone(bundle, tampered, tmp_path)
    assert standalone.returncode != 0 and item["path"] in standalone.stdout


def test_a_file_slipped_into_received_fails(bundle: dict[str, Any], tmp_path: Path) -> None:
    members, top = dict(bundle["members"]), bundle["top"]
    members[f"{top}/data/received/RM-009-extra.csv"] = b"planted\n"
    _rebag(members, top)
    report = bundle_verifier.verify_bundle(_write(tmp_path / "planted.zip", members))
    assert not report.ok
    assert any("received/RM-009-extra.csv" in p for p in report.problems), report.problems


def test_a_bundle_from_before_received_material_still_verifies(
        bundle: dict[str, Any], runtime: Runtime, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    as_made = _older(monkeypatch, runtime, tmp_path, 0, "OP-R")
    members, top = dict(as_made["members"]), as_made["top"]
    index = json.loads(members[f"{top}/data/bundle.json"])
    del index["received"], index["revision"]  # as the exporter wrote it before, graph and all
    members[f"{top}/data/bundle.json"] = json.dumps(index, indent=2).encode()
    members[f"{top}/data/case.jsonld"] = json.dumps(_without_received_files(
        _graph_of(members, top), {i["path"] for i in as_made["index"]["received"]})).encode()
    for name in [n for n in members if n.startswith(f"{top}/data/received/")]:
        del members[name]
    _unsigned(members, top)
    _rebag(members, top)
    older = _write(tmp_path / "older.zip", members)
    report = bundle_verifier.verify_bundle(older)
    assert report.ok, report.render()
    assert "received" not in " ".join(c.name for c in report.checks)


def _graph_of(members: dict[str, bytes], top: str) -> dict[str, Any]:
    graph: dict[str, Any] = json.loads(members[f"{top}/data/case.jsonld"])
    return graph


def _without_received_files(graph: dict[str, Any], paths: set[str]) -> dict[str, Any]:
    """The graph with the File nodes of `paths` taken out."""
    def described(node: dict[str, Any]) -> bool:
        return any(f.get("uco-observable:filePath") in paths
                   for f in node.get("uco-core:hasFacet", []))
    return {**graph, "@graph": [n for n in graph["@graph"] if not described(n)]}


def test_the_case_graph_describes_the_received_material(bundle: dict[str, Any]) -> None:
    graph = _graph_of(bundle["members"], bundle["top"])
    files = caseuco.graph_file_hashes(graph)
    for item in bundle["index"]["received"]:
        assert files[item["path"]] == (item["sha256"], item["size"])
    nodes = {n["@id"]: n for n in graph["@graph"]}
    records = {n["case-investigation:exhibitNumber"]: n for n in nodes.values()
               if n["@type"] == "case-investigation:ProvenanceRecord"
               and n["case-investigation:exhibitNumber"].startswith("RM-")}
    assert sorted(records) == ["RM-001", "RM-002", "RM-003"]
    assert records["RM-001"]["uco-core:description"] == (
        "Received from another source: handed over by witness W-3")
    assert records["RM-002"]["uco-core:description"] == (
        f"Answer to legal request {bundle['request']} (platform reference LE-2026-77123)")
    actions = [n for n in nodes.values() if n.get("uco-core:name") == "received"]
    by_record = {a["uco-action:result"][0]["@id"]: a for a in actions}
    for item in bundle["index"]["received"]:
        record = records[item["number"]]
        action = by_record[record["@id"]]
        assert datetime.fromisoformat(action["uco-action:startTime"]["@value"]) == (
            datetime.fromisoformat(item["received_at"]))
        assert nodes[action["uco-action:performer"]["@id"]]["uco-core:name"] == "ines"
        file_node = nodes[record["uco-core:object"][0]["@id"]]
        assert file_node["uco-core:tag"] == "received"


def test_a_received_file_the_case_graph_leaves_out_fails(
        bundle: dict[str, Any], tmp_path: Path) -> None:
    members, top = dict(bundle["members"]), bundle["top"]
    item = bundle["index"]["received"][2]
    graph = _without_received_files(_graph_of(members, top), {item["path"]})
    members[f"{top}/data/case.jsonld"] = json.dumps(graph).encode()
    _rebag(members, top)
    report = bundle_verifier.verify_bundle(_write(tmp_path / "unlisted.zip", members))
    assert not report.ok
    assert f"{item['path']}: a received file the case graph does not describe" in (
        report.problems), report.problems


def _without_every_received_node(bundle: dict[str, Any], *,
                                  revision: bool) -> dict[str, bytes]:
    """The bundle's members with no received file left in its graph, and bundle.json's
    revision kept or taken out (as the exporter wrote it before the graph described received
    material), the bag rewritten."""
    members, top = dict(bundle["members"]), bundle["top"]
    paths = {i["path"] for i in bundle["index"]["received"]}
    members[f"{top}/data/case.jsonld"] = json.dumps(
        _without_received_files(_graph_of(members, top), paths)).encode()
    if not revision:
        index = json.loads(members[f"{top}/data/bundle.json"])
        del index["revision"]
        members[f"{top}/data/bundle.json"] = json.dumps(index, indent=2).encode()
        _unsigned(members, top)
    _rebag(members, top)
    return members


def test_a_bundle_whose_graph_predates_received_material_still_verifies(
        bundle: dict[str, Any], runtime: Runtime, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    as_made = _older(monkeypatch, runtime, tmp_path, 0, "OP-R")
    older = _write(tmp_path / "older-graph.zip",
                   _without_every_received_node(as_made, revision=False))
    report = bundle_verifier.verify_bundle(older)
    assert report.ok, report.render()
    assert "3 received file(s)" in report.render()
    assert any("describes none of the 3 received file(s)" in n for n in report.notes)
    standalone = _standalone(bundle, older, tmp_path)
    assert standalone.returncode == 0, standalone.stdout + standalone.stderr


def test_a_bundle_that_says_its_graph_describes_received_material_fails_without_it(
        bundle: dict[str, Any], tmp_path: Path) -> None:
    """bundle.json's revision 1 says the graph describes every received file: one whose
    nodes were all taken out is not taken for a bundle from before; each file is named."""
    assert bundle["index"]["version"] == 1 and bundle["index"]["revision"] == 3
    stripped = _write(tmp_path / "stripped-graph.zip",
                      _without_every_received_node(bundle, revision=True))
    report = bundle_verifier.verify_bundle(stripped)
    assert not report.ok
    for item in bundle["index"]["received"]:
        assert f"{item['path']}: a received file the case graph does not describe" in (
            report.problems), report.problems
    assert not any("describes none" in n for n in report.notes), report.notes
    standalone = _standalone(bundle, stripped, tmp_path)
    assert standalone.returncode == 1, standalone.stdout + standalone.stderr
    assert "a received file the case graph does not describe" in standalone.stdout


@pytest.mark.parametrize("revision", ["1", -1])
def test_a_malformed_revision_fails(
        bundle: dict[str, Any], runtime: Runtime, tmp_path: Path, revision: Any) -> None:
    """(A revision later than the verifier knows: see the tests of bundles made to pass as a
    newer revision, and of one its export records as newer.)"""
    members, top = dict(bundle["members"]), bundle["top"]
    index = json.loads(members[f"{top}/data/bundle.json"])
    index["revision"] = revision
    members[f"{top}/data/bundle.json"] = json.dumps(index, indent=2).encode()
    _rebag(members, top)
    _reseal(members, top, runtime)
    report = bundle_verifier.verify_bundle(_write(tmp_path / "revised.zip", members))
    assert not report.ok
    assert f"bundle.json: revision {revision!r} is not a whole number of 0 or more" in (
        report.problems), report.problems


# --- a bundle of chosen targets: the answers about them, and what was left out ----------------


@pytest.fixture
def two_targets(runtime: Runtime, tmp_path: Path) -> dict[str, Any]:
    """Case OP-T (`two_answered_targets`): two targets, a request and its answer about each, a
    witness's file from elsewhere; exported by petra for the first target only."""
    with runtime.session() as s:
        users.create_user(s, None, name="ines", role=Role.LIAISON, unit="Border Unit")
        petra = users.create_user(s, None, name="petra", role=Role.PROSECUTOR)
        users.create_user(s, None, name="sam", role=Role.SUPERVISOR)
    world = two_answered_targets(runtime, "OP-T", liaison="ines", supervisor="sam")
    with runtime.session() as s:
        ines = users.get_user(s, "ines")
        cases.add_member(s, ines, cases.get_case(s, ines, "OP-T"), petra, Access.READ)
    result = bundles.export_case(runtime, "petra", reference="OP-T", out=tmp_path / "t.zip",
                                 target_ids=[world.first.id])
    with zipfile.ZipFile(result.path) as zf:
        members = {i.filename: zf.read(i) for i in zf.infolist() if not i.is_dir()}
    top = next(iter(members)).split("/", 1)[0]
    return {"path": result.path, "result": result, "members": members, "top": top,
            "refs": world.refs, "first": world.first, "second": world.second,
            "index": json.loads(members[f"{top}/data/bundle.json"])}


def test_a_bundle_of_one_target_carries_the_answer_about_it_and_says_what_it_left_out(
        two_targets: dict[str, Any], tmp_path: Path) -> None:
    b = two_targets
    members, top, index = b["members"], b["top"], b["index"]
    assert index["targets"] == [str(b["first"].id)]
    assert [(i["number"], i["filename"], i["request"]) for i in index["received"]] == [
        ("RM-001", "first-subscriber.csv", b["refs"]["first"])]
    assert members[f"{top}/data/{index['received'][0]['path']}"] == b"first subscriber\n"
    assert sorted(n for n in members if n.startswith(f"{top}/data/received/")) == [
        f"{top}/data/{index['received'][0]['path']}"]
    # Numbered as in the case, so RM-002 is RM-002 in every bundle of it.
    assert [(i["number"], i["filename"], i["reason"]) for i in index["received_left_out"]] == [
        ("RM-002", "second-subscriber.csv", "other-request"),
        ("RM-003", "statement.txt", "no-request")]
    assert b["refs"]["second"] in index["received_left_out"][0]["why"]
    assert (b["result"].received, b["result"].received_left_out) == (1, 2)
    readme = members[f"{top}/data/README.txt"].decode()
    flat = " ".join(readme.split())
    assert "chosen target(s), not the whole case" in flat
    assert ("It leaves out 2 received file(s) of the case: 1 answering requests that concern "
            "none of the chosen targets, and 1 from other sources") in flat
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(members[f"{top}/data/report.pdf"])
    Path(SHOTS).mkdir(exist_ok=True)
    subprocess.run(["pdftoppm", "-png", "-r", "60", str(pdf), f"{SHOTS}/targets"], check=True)
    text = " ".join(subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True,
                                   text=True, check=True).stdout.split())
    assert "1 file(s); 2 of the case's left out" in text
    assert "1 chosen target(s) of the case, not the whole case" in text
    assert "Left out of this bundle" in text and "second-subscriber.csv" in text
    assert "material from another source, not tied to any target" in text

    report = bundle_verifier.verify_bundle(b["path"])
    assert report.ok, report.render()
    rendered = report.render()
    assert "1 received file(s)" in rendered
    assert "2 received file(s) of the case left out (1 answering other requests, 1 from " \
           "other sources)" in rendered
    assert any("leaves out 2 received file(s)" in n and "RM-002" in n for n in report.notes)
    standalone = _standalone(b, b["path"], tmp_path)
    assert standalone.returncode == 0, standalone.stdout + standalone.stderr
    assert "left out" in standalone.stdout


def test_a_tampered_received_file_in_a_bundle_of_one_target_fails_and_is_named(
        two_targets: dict[str, Any], tmp_path: Path) -> None:
    b = two_targets
    members, top = dict(b["members"]), b["top"]
    item = b["index"]["received"][0]
    path = f"{top}/data/{item['path']}"
    members[path] = b"forged subscriber\n"
    index = json.loads(members[f"{top}/data/bundle.json"])
    index["received"][0]["sha256"] = hashlib.sha256(members[path]).hexdigest()
    index["received"][0]["size"] = len(members[path])
    members[f"{top}/data/bundle.json"] = json.dumps(index, indent=2).encode()
    _rebag(members, top)
    tampered = _write(tmp_path / "tampered.zip", members)
    report = bundle_verifier.verify_bundle(tampered)
    assert not report.ok
    assert any(item["path"] in p and "custody entry seq" in p for p in report.problems), (
        report.problems)
    standalone = _standalone(b, tampered, tmp_path)
    assert standalone.returncode == 1 and item["path"] in standalone.stdout


def test_received_material_dropped_from_the_left_out_list_fails(
        two_targets: dict[str, Any], tmp_path: Path) -> None:
    """A bundle that hides what it left out (the list cut, the bag rewritten) is caught by its
    own custody entries, which record every received file."""
    b = two_targets
    members, top = dict(b["members"]), b["top"]
    index = json.loads(members[f"{top}/data/bundle.json"])
    hidden = index["received_left_out"].pop()
    members[f"{top}/data/bundle.json"] = json.dumps(index, indent=2).encode()
    _rebag(members, top)
    report = bundle_verifier.verify_bundle(_write(tmp_path / "hidden.zip", members))
    assert not report.ok
    problems = " ".join(report.problems)
    assert f"received file {hidden['id']} is neither in this bundle nor listed as left out" in (
        problems), report.problems
    assert f"received file {hidden['id']} is missing from received_left_out" in problems


def test_a_whole_case_bundle_carries_every_received_file_and_leaves_nothing_out(
        bundle: dict[str, Any]) -> None:
    assert bundle["index"]["targets"] is None and bundle["index"]["received_left_out"] == []
    report = bundle_verifier.verify_bundle(bundle["path"])
    assert report.ok, report.render()
    assert "the whole case was exported: all of its received material is carried" in (
        report.render())


def test_a_bundle_made_to_pass_as_an_older_revision_fails(
        bundle: dict[str, Any], tmp_path: Path) -> None:
    """A forger who strips the bag signature and says revision 2 (which signs no bag) is
    caught by the revision the sealed export.started entry records."""
    members, top = dict(bundle["members"]), bundle["top"]
    index = json.loads(members[f"{top}/data/bundle.json"])
    index["revision"] = 2
    members[f"{top}/data/bundle.json"] = json.dumps(index, indent=2).encode()
    _unsigned(members, top)
    _rebag(members, top)
    report = bundle_verifier.verify_bundle(_write(tmp_path / "downgraded.zip", members))
    assert not report.ok
    assert any(p.startswith("bundle.json: revision is 2 but custody entry seq ")
               and "records revision 3" in p for p in report.problems), report.problems


def test_a_bundle_made_to_pass_as_a_newer_revision_fails(
        bundle: dict[str, Any], runtime: Runtime, tmp_path: Path) -> None:
    """Said higher than its export.started entry records, a bundle would only be noted as newer
    than the verifier knows; even re-signed (the bag signature holds), it fails."""
    newer = bundle_verifier.BUNDLE_REVISION + 1
    members, top = dict(bundle["members"]), bundle["top"]
    index = json.loads(members[f"{top}/data/bundle.json"])
    index["revision"] = newer
    members[f"{top}/data/bundle.json"] = json.dumps(index, indent=2).encode()
    _rebag(members, top)
    _reseal(members, top, runtime)
    report = bundle_verifier.verify_bundle(_write(tmp_path / "upgraded.zip", members))
    assert not report.ok
    [problem] = report.problems
    assert problem.startswith(f"bundle.json: revision is {newer} but custody entry seq "), problem
    assert problem.endswith(f"(export.started) records revision {newer - 1}: the bundle was made "
                            "to pass as a newer one, whose additions a verifier that does not "
                            "know them leaves unchecked"), problem
    assert [c.name for c in report.checks if not c.ok] == ["custody export record"]


def test_a_bundle_its_export_records_as_newer_than_the_verifier_knows_is_checked_for_what_it_knows(
        bundle: dict[str, Any], runtime: Runtime, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """bundle.json and the sealed export.started entry agree on a revision this verifier does not
    know: a note says what later revisions added went unchecked, and the rest verifies."""
    newer = bundle_verifier.BUNDLE_REVISION + 1
    b = _opened(export_as_of_revision(monkeypatch, newer, runtime, "petra", reference="OP-R",
                                      out=tmp_path / "newer.zip"))
    assert b["index"]["revision"] == newer
    report = bundle_verifier.verify_bundle(b["path"])
    assert report.ok, report.render()
    assert f"bundle.json says revision {newer} of format version 1; this verifier knows " \
        f"revisions up to {newer - 1}" in " ".join(report.notes)  # fmt: skip
    assert "The bag as a whole is signed" in " ".join(report.notes)  # what it knows is checked


def test_a_revision_1_bundle_without_the_left_out_list_still_verifies(
        two_targets: dict[str, Any], runtime: Runtime, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Bundles written before revision 2 name no targets and list nothing left out."""
    b = _older(monkeypatch, runtime, tmp_path, 1, "OP-T", target_ids=[two_targets["first"].id])
    members, top = dict(b["members"]), b["top"]
    index = json.loads(members[f"{top}/data/bundle.json"])
    del index["targets"], index["received_left_out"]
    index["revision"] = 1
    members[f"{top}/data/bundle.json"] = json.dumps(index, indent=2).encode()
    _unsigned(members, top)
    _rebag(members, top)
    report = bundle_verifier.verify_bundle(_write(tmp_path / "rev1.zip", members))
    assert report.ok, report.render()
    assert "left out" not in report.render()
