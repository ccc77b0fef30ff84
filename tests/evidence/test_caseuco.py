"""The CASE/UCO graph of a case with two captures and an account: rdflib parses it as JSON-LD
and SPARQL finds the investigation, both investigative actions with performer, instruments,
start and end, object and result, the files with their SHA-256 and size, and the exhibit numbers;
`graph_file_hashes` reads back exactly the files, also from rdflib's own re-serialisation;
Arabic text survives; the IRIs are stable and agree with case-utils' inherent-UUID scheme; and
`case_validate` (CASE 1.5.0, bundled, offline) finds the graph conformant.
"""

from __future__ import annotations

import copy
import hashlib
import json
import subprocess
import sys
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from case_utils.inherent_uuid import get_facet_uriref, hash_method_value_uuid
from case_utils.namespace import NS_UCO_OBSERVABLE
from rdflib import Graph, Literal, Namespace, URIRef
from rdflib.query import ResultRow

from evidence.canonical import canonical_json, parse_canonical
from evidence.caseuco import (
    KB_BASE,
    AccountInfo,
    CaptureInfo,
    FileInfo,
    InvestigationInfo,
    PerformerInfo,
    ReceivedInfo,
    build_case_graph,
    graph_file_hashes,
)
from evidence.errors import InvalidInput

# rdflib's own JSON-LD parser uses its deprecated ConjunctiveGraph internally.
pytestmark = pytest.mark.filterwarnings("ignore:ConjunctiveGraph is deprecated:DeprecationWarning")

PREFIXES = """
PREFIX case-investigation: <https://ontology.caseontology.org/case/investigation/>
PREFIX uco-action: <https://ontology.unifiedcyberontology.org/uco/action/>
PREFIX uco-core: <https://ontology.unifiedcyberontology.org/uco/core/>
PREFIX uco-identity: <https://ontology.unifiedcyberontology.org/uco/identity/>
PREFIX uco-observable: <https://ontology.unifiedcyberontology.org/uco/observable/>
PREFIX uco-tool: <https://ontology.unifiedcyberontology.org/uco/tool/>
PREFIX uco-types: <https://ontology.unifiedcyberontology.org/uco/types/>
"""

ARABIC_TITLE = "تحريض على العنف عبر الإنترنت"
ARABIC_HANDLE = "@مثال_حساب"
XSD_DATETIME = URIRef("http://www.w3.org/2001/XMLSchema#dateTime")
XSD_HEXBINARY = URIRef("http://www.w3.org/2001/XMLSchema#hexBinary")
START = datetime(2024, 3, 1, 9, 30, 15, 123456, tzinfo=UTC)


def make_file(path: str, kind: str, media_type: str, content: bytes) -> FileInfo:
    return FileInfo(path, kind, media_type, len(content), hashlib.sha256(content).hexdigest())


def make_inputs() -> tuple[InvestigationInfo, list[CaptureInfo], list[AccountInfo]]:
    case = InvestigationInfo(
        id=uuid.uuid4(),
        reference="OP-2024-0042",
        title=ARABIC_TITLE,
        offence="Incitement to violence",
        jurisdiction="GB",
    )
    officer = PerformerInfo(id=uuid.uuid4(), name="DC Layla Haddad", unit="Online Harms Unit")
    account = AccountInfo(
        id=uuid.uuid4(),
        platform="X",
        platform_account_id="1459876543210",
        handle=ARABIC_HANDLE,
        profile_url="https://x.example/%D9%85%D8%AB%D8%A7%D9%84",
    )
    first_id, second_id = uuid.uuid4(), uuid.uuid4()
    first = CaptureInfo(
        id=first_id,
        requested_url="https://x.example/status/1",
        final_url="https://x.example/i/status/1",
        started_at=START,
        # A capture recorded in another offset comes out in UTC.
        finished_at=(START + timedelta(seconds=42)).astimezone(timezone(timedelta(hours=3))),
        tool_name="evidence-locker",
        tool_version="0.1.0",
        browser_version="126.0.6478.17",
        status="complete",
        performer=officer,
        exhibit_number="LH/1",
        manifest_sha256="ab" * 32,
        account_id=account.id,
        artifacts=(
            make_file(f"captures/{first_id}/screenshot.png", "screenshot", "image/png", b"png"),
            make_file(f"captures/{first_id}/page.mhtml", "mhtml", "multipart/related", b"mht"),
            make_file(f"captures/{first_id}/page.warc.gz", "warc", "application/warc", b"wa"),
        ),
    )
    second = CaptureInfo(
        id=second_id,
        requested_url="https://news.example/article?id=7",
        final_url="https://news.example/article?id=7",
        started_at=START + timedelta(days=1),
        finished_at=START + timedelta(days=1, seconds=30),
        tool_name="evidence-locker",
        tool_version="0.1.0",
        browser_version="126.0.6478.17",
        status="partial",
        performer=officer,
        exhibit_number="LH/2",
        manifest_sha256="cd" * 32,
        artifacts=(
            # Same bytes as a file of the first capture: one Hash node, two files.
            make_file(f"captures/{second_id}/screenshot.png", "screenshot", "image/png", b"png"),
            make_file(f"captures/{second_id}/page.pdf", "pdf", "application/pdf", b"%PDF"),
        ),
    )
    return case, [first, second], [account]


def make_received() -> list[ReceivedInfo]:
    """A platform's answer to a request and a witness's file, as an export numbers them."""
    registrar = PerformerInfo(id=uuid.uuid4(), name="Ines Liaison", unit="Border Unit")
    return [
        ReceivedInfo(id=uuid.uuid4(), number="RM-001",
                     file=make_file("received/RM-001-ip_log.csv", "received", "text/csv", b"ip"),
                     received_at=START + timedelta(days=3, microseconds=1), via="portal",
                     request_reference="REQ-2024-0007", platform_reference="LE-77123",
                     registered_by=registrar),
        ReceivedInfo(id=uuid.uuid4(), number="RM-002",
                     file=make_file("received/RM-002-statement.pdf", "received",
                                    "application/pdf", b"%PDF witness"),
                     received_at=START + timedelta(days=4), via="other: courier",
                     source="handed over by witness W-3"),
    ]


def expected_files(captures: list[CaptureInfo]) -> dict[str, tuple[str, int]]:
    return {f.path_in_bundle: (f.sha256, f.size) for c in captures for f in c.artifacts}


def parse(graph: dict[str, Any]) -> Graph:
    data = json.dumps(graph, ensure_ascii=False).encode("utf-8")
    return Graph().parse(data=data, format="json-ld")


def select(g: Graph, query: str) -> list[ResultRow]:
    rows = []
    for row in g.query(PREFIXES + query):
        assert isinstance(row, ResultRow)
        rows.append(row)
    return rows


def test_sparql_finds_the_investigation_actions_files_and_exhibits() -> None:
    case, captures, accounts = make_inputs()
    g = parse(build_case_graph(case, captures, accounts))

    (inv,) = select(
        g,
        """SELECT ?inv ?ref ?title ?focus WHERE {
             ?inv a case-investigation:Investigation ; uco-core:name ?ref ;
                  uco-core:description ?title ; case-investigation:focus ?focus .
           }""",
    )
    assert inv.inv == URIRef(f"{KB_BASE}Investigation-{case.id}")
    assert (str(inv.ref), str(inv.title), str(inv.focus)) == (
        case.reference,
        case.title,
        case.offence,
    )

    rows = select(
        g,
        """SELECT ?action ?performer ?start ?end ?url ?exhibit
                  (GROUP_CONCAT(DISTINCT ?tool; separator="|") AS ?tools) WHERE {
             ?inv a case-investigation:Investigation ; uco-core:object ?action .
             ?action a case-investigation:InvestigativeAction ;
                     uco-action:performer/uco-core:name ?performer ;
                     uco-action:startTime ?start ; uco-action:endTime ?end ;
                     uco-action:object/uco-core:hasFacet/uco-observable:fullValue ?url ;
                     uco-action:result ?record .
             ?action uco-action:instrument ?instrument .
             ?instrument a uco-tool:Tool ; uco-core:name ?name ; uco-tool:version ?version .
             BIND(CONCAT(?name, " ", ?version) AS ?tool)
             ?record a case-investigation:ProvenanceRecord ;
                     case-investigation:exhibitNumber ?exhibit .
           } GROUP BY ?action ?performer ?start ?end ?url ?exhibit""",
    )
    found = {str(r.action): r for r in rows}
    assert len(rows) == len(found) == 2
    for capture in captures:
        row = found[f"{KB_BASE}InvestigativeAction-{capture.id}"]
        assert capture.performer is not None and capture.finished_at is not None
        assert str(row.performer) == capture.performer.name
        assert isinstance(row.start, Literal) and row.start.datatype == XSD_DATETIME
        assert isinstance(row.end, Literal) and row.end.datatype == XSD_DATETIME
        assert row.start.toPython() == capture.started_at
        assert row.end.toPython() == capture.finished_at
        assert str(row.url) == capture.requested_url
        assert str(row.exhibit) == capture.exhibit_number
        assert set(str(row.tools).split("|")) == {
            "evidence-locker 0.1.0",
            f"Chromium {capture.browser_version}",
        }

    files = select(
        g,
        """SELECT ?action ?path ?size ?sha WHERE {
             ?action a case-investigation:InvestigativeAction ; uco-action:result ?file .
             ?record case-investigation:exhibitNumber ?exhibit ; uco-core:object ?file .
             ?file a uco-observable:File ; uco-core:hasFacet ?ff, ?cf .
             ?ff a uco-observable:FileFacet ; uco-observable:filePath ?path ;
                 uco-observable:sizeInBytes ?size .
             ?cf a uco-observable:ContentDataFacet ; uco-observable:hash ?hash .
             ?hash a uco-types:Hash ; uco-types:hashMethod "SHA256" ; uco-types:hashValue ?sha .
           }""",
    )
    assert all(isinstance(r.sha, Literal) and r.sha.datatype == XSD_HEXBINARY for r in files)
    assert {str(r.path): (str(r.sha), int(r.size)) for r in files} == expected_files(captures)
    by_action = {(str(r.action), str(r.path)) for r in files}
    assert by_action == {
        (f"{KB_BASE}InvestigativeAction-{c.id}", f.path_in_bundle)
        for c in captures
        for f in c.artifacts
    }

    exhibits = select(g, "SELECT ?n WHERE { ?r case-investigation:exhibitNumber ?n }")
    assert sorted(str(r.n) for r in exhibits) == ["LH/1", "LH/2"]

    (account,) = select(
        g,
        """SELECT ?id ?login ?issuer ?profile ?captured WHERE {
             ?account a uco-observable:ApplicationAccount ; uco-core:hasFacet ?af, ?df .
             ?af uco-observable:accountIdentifier ?id ;
                 uco-observable:accountIssuer/uco-core:name ?issuer .
             ?df uco-observable:accountLogin ?login .
             ?rel uco-core:source ?account ; uco-core:target ?url .
             ?url uco-core:hasFacet/uco-observable:fullValue ?profile .
             ?captured uco-action:object ?account .
           }""",
    )
    assert (str(account.id), str(account.login), str(account.issuer)) == (
        accounts[0].platform_account_id,
        accounts[0].handle,
        accounts[0].platform,
    )
    assert str(account.profile) == accounts[0].profile_url
    assert str(account.captured) == f"{KB_BASE}InvestigativeAction-{captures[0].id}"


def test_graph_file_hashes_returns_exactly_the_files() -> None:
    case, captures, accounts = make_inputs()
    graph = build_case_graph(case, captures, accounts)
    expected = expected_files(captures)

    assert graph_file_hashes(graph) == expected
    assert graph_file_hashes(json.loads(json.dumps(graph))) == expected
    # The same graph as rdflib writes it (its own nesting and literal forms) reads the same.
    reserialised = parse(graph).serialize(format="json-ld", context=graph["@context"])
    assert graph_file_hashes(json.loads(reserialised)) == expected
    assert graph_file_hashes(build_case_graph(case, [], accounts)) == {}


def test_graph_file_hashes_refuses_a_file_it_cannot_pin_down() -> None:
    case, captures, accounts = make_inputs()
    graph = build_case_graph(case, captures, accounts)
    files = [n for n in graph["@graph"] if n["@type"] == "uco-observable:File"]

    no_hash = copy.deepcopy(graph)
    victim = next(n for n in no_hash["@graph"] if n["@id"] == files[0]["@id"])
    del victim["uco-core:hasFacet"][1]["uco-observable:hash"]
    with pytest.raises(InvalidInput, match="one SHA-256"):
        graph_file_hashes(no_hash)

    bad_size = copy.deepcopy(graph)
    victim = next(n for n in bad_size["@graph"] if n["@id"] == files[0]["@id"])
    victim["uco-core:hasFacet"][1]["uco-observable:sizeInBytes"] += 1
    with pytest.raises(InvalidInput, match="one size"):
        graph_file_hashes(bad_size)

    twice = copy.deepcopy(graph)
    clone = copy.deepcopy(files[0])
    clone["@id"] = f"kb:File-{uuid.uuid4()}"
    twice["@graph"].append(clone)
    with pytest.raises(InvalidInput, match="two files"):
        graph_file_hashes(twice)


def test_build_refuses_input_that_would_make_a_wrong_graph() -> None:
    case, captures, accounts = make_inputs()
    first = captures[0]
    same_path = replace(captures[1], artifacts=first.artifacts[:1])
    with pytest.raises(InvalidInput, match="two files"):
        build_case_graph(case, [first, same_path], accounts)
    bad_hash = replace(first.artifacts[0], sha256="not-a-digest")
    with pytest.raises(InvalidInput, match="SHA-256"):
        build_case_graph(case, [replace(first, artifacts=(bad_hash,))], accounts)
    with pytest.raises(InvalidInput, match="naive"):
        build_case_graph(case, [replace(first, started_at=datetime(2024, 1, 1))], accounts)
    with pytest.raises(InvalidInput, match="account"):
        build_case_graph(case, [first], [])


def test_arabic_text_survives_json_ld_and_canonical_json() -> None:
    case, captures, accounts = make_inputs()
    graph = build_case_graph(case, captures, accounts)

    assert parse_canonical(canonical_json(graph)) == graph
    g = parse(parse_canonical(canonical_json(graph)))
    titles = select(
        g, "SELECT ?t WHERE { ?i a case-investigation:Investigation ; uco-core:description ?t }"
    )
    logins = select(g, "SELECT ?l WHERE { ?f uco-observable:accountLogin ?l }")
    assert [str(r.t) for r in titles] == [ARABIC_TITLE]
    assert [str(r.l) for r in logins] == [ARABIC_HANDLE]


def test_iris_are_stable_and_follow_case_utils_inherent_uuids() -> None:
    case, captures, accounts = make_inputs()
    graph = build_case_graph(case, captures, accounts)
    assert build_case_graph(case, captures, accounts) == graph
    action = next(n for n in graph["@graph"] if n["@id"].endswith(str(captures[0].id)))
    # Written in UTC with "Z", whatever offset the input carried.
    assert action["uco-action:endTime"] == {
        "@type": "xsd:dateTime",
        "@value": "2024-03-01T09:30:57.123456Z",
    }

    kb = Namespace(KB_BASE)
    file_node = next(n for n in graph["@graph"] if n["@type"] == "uco-observable:File")
    file_iri = kb[file_node["@id"].removeprefix("kb:")]
    file_facet, content_facet = file_node["uco-core:hasFacet"]
    assert kb[file_facet["@id"].removeprefix("kb:")] == get_facet_uriref(
        file_iri, NS_UCO_OBSERVABLE.FileFacet, namespace=kb
    )
    assert kb[content_facet["@id"].removeprefix("kb:")] == get_facet_uriref(
        file_iri, NS_UCO_OBSERVABLE.ContentDataFacet, namespace=kb
    )
    (digest,) = content_facet["uco-observable:hash"]
    value = Literal(digest["uco-types:hashValue"]["@value"], datatype=XSD_HEXBINARY)
    assert digest["@id"] == f"kb:Hash-{hash_method_value_uuid(Literal('SHA256'), value)}"

    other = build_case_graph(case, captures, accounts, kb_base="urn:example:kb:")
    assert other["@context"]["kb"] == "urn:example:kb:"
    assert other["@graph"] == graph["@graph"]
    with pytest.raises(InvalidInput):
        build_case_graph(case, captures, accounts, kb_base="https://example.org/kb")


def test_sparql_finds_received_files_with_their_request_or_source_and_time() -> None:
    case, captures, accounts = make_inputs()
    got = make_received()
    graph = build_case_graph(case, captures, accounts, received=got)
    assert graph_file_hashes(graph) == {
        **expected_files(captures),
        **{r.file.path_in_bundle: (r.file.sha256, r.file.size) for r in got}}
    rows = select(parse(graph), """
        SELECT ?number ?said ?start ?who ?path WHERE {
            ?action a case-investigation:InvestigativeAction ; uco-core:name "received" ;
                    uco-action:startTime ?start ; uco-action:result ?record, ?file .
            OPTIONAL { ?action uco-action:performer/uco-core:name ?who }
            ?record a case-investigation:ProvenanceRecord ;
                    case-investigation:exhibitNumber ?number ; uco-core:description ?said ;
                    uco-core:object ?file .
            ?file a uco-observable:File ; uco-core:tag "received" ;
                  uco-core:hasFacet/uco-observable:filePath ?path .
        } ORDER BY ?number""")
    assert [(str(r.number), str(r.said), datetime.fromisoformat(str(r.start)),
             r.who and str(r.who), str(r.path))
            for r in rows] == [
        ("RM-001", "Answer to legal request REQ-2024-0007 (platform reference LE-77123)",
         got[0].received_at, "Ines Liaison", "received/RM-001-ip_log.csv"),
        ("RM-002", "Received from another source: handed over by witness W-3",
         got[1].received_at, None, "received/RM-002-statement.pdf"),
    ]
    with pytest.raises(InvalidInput, match="neither a request nor a source"):
        build_case_graph(case, captures, accounts,
                         received=[replace(got[1], source=" ")])


@pytest.mark.slow
def test_case_validate_finds_the_graph_conformant(tmp_path: Path) -> None:
    case, captures, accounts = make_inputs()
    path = tmp_path / "case.jsonld"
    path.write_text(
        json.dumps(build_case_graph(case, captures, accounts, received=make_received()),
                   ensure_ascii=False),
        encoding="utf-8",
    )
    # The console script installed beside this interpreter; the ontology is pinned so a newer
    # case-utils cannot change the verdict unnoticed.
    validate = Path(sys.executable).parent / "case_validate"
    done = subprocess.run(
        [str(validate), "--built-version", "case-1.5.0", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Conforms: True" in done.stdout
    # Misspelt CASE/UCO terms are only warned about; they must not be there either.
    assert "NonExistentCDOConcept" not in done.stderr, done.stderr


def test_an_account_flagged_by_its_handle_is_identified_by_it() -> None:
    """Without the platform's id (not learnt yet) the handle is the account's identifier."""
    case, captures, accounts = make_inputs()
    by_handle = replace(accounts[0], platform_account_id=None, handle="@fast.trips")
    graph = build_case_graph(case, captures, [by_handle])
    [account] = [n for n in graph["@graph"]
                 if n.get("@type") == "uco-observable:ApplicationAccount"]
    assert account["uco-core:name"] == "X account @fast.trips"
    [facet] = [f for f in account["uco-core:hasFacet"]
               if f["@type"] == "uco-observable:AccountFacet"]
    assert facet["uco-observable:accountIdentifier"] == "@fast.trips"
