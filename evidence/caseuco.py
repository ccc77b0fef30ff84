"""The CASE/UCO JSON-LD graph of an export bundle, and reading its file hashes back.

An export bundle carries this graph so that tools built on the CASE ontology can read the case:
the investigation (its title and summary of the facts as `uco-core:description`s, its offence
and statutory provision as `case-investigation:focus`, its jurisdiction as a tag), each capture
as an investigative action (performer, instruments, start and end time, object, result), a
provenance record with the exhibit number, the files with their SHA-256 and size, the URLs and
the accounts; and each file the unit received (a platform's answer to a legal request, or
material from another source) as an investigative action "received" at its received time, with
who registered it, a provenance record with its RM number naming the request or the source, and
the file itself, tagged "received". `build_case_graph` makes it from plain frozen dataclasses
(a service fills them from the database); `graph_file_hashes` reads the files back from the
parsed JSON alone, so the offline verifier can check the graph against the bundle's files
without an RDF library.

Vocabulary: CASE 1.5.0 / UCO 1.5.0, as bundled with case-utils 0.18 (`case_validate
--built-version case-1.5.0`), and shaped after the CASE-Examples "forensic_lifecycle"
illustration in its CASE 1.x form (namespaces under https://ontology.unifiedcyberontology.org/
and https://ontology.caseontology.org/). Where the ontology's shapes and older examples differ,
the shapes win:
- performer, instrument, object, result, startTime and endTime are properties of the action
  itself (`uco-action:performer`, `uco-action:startTime` ...); UCO 1.x has no
  ActionReferencesFacet, and `uco-core:startTime` belongs to investigations and relationships;
- every UCO node, facets and hashes included, has an IRI (the shapes refuse blank nodes), and
  `uco-types:hashMethod` is a plain string (UCO 1.4 deprecated the vocabulary datatype);
- the hash and `mimeType` sit on a `ContentDataFacet`; the `FileFacet` has the name, the path in
  the bundle and the size.

IRIs are `kb:` + class name + "-" + UUID, `kb:` being `KB_BASE` unless the caller gives another
base. Objects the system has a UUID for (case, capture, user, account) use it; the rest are
UUIDv5s, so the same input always gives the same graph: facets follow case-utils'
`inherent_uuid` scheme (uuid5 of the owner's UUID and the facet class IRI), hashes its
`urn:hash::sha256:<hex>` scheme, URLs are uuid5 of the URL in the RFC 4122 URL namespace, files
uuid5 of the capture's (or received file's) UUID and the path in the bundle.

Nothing here reads `os.environ`, touches the database or imports an RDF library; the graph holds
only str, int, bool, list and dict, so it can be written as canonical JSON.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any

from evidence.bundle_verifier import _graph_files
from evidence.errors import InvalidInput

# Not dereferenceable on purpose (RFC 2606 reserves .invalid); a deployment may pass its own.
KB_BASE = "https://evidence-locker.invalid/kb/"

CASE_VERSION = "1.5.0"

CONTEXT: dict[str, str] = {
    "case-investigation": "https://ontology.caseontology.org/case/investigation/",
    "uco-action": "https://ontology.unifiedcyberontology.org/uco/action/",
    "uco-core": "https://ontology.unifiedcyberontology.org/uco/core/",
    "uco-identity": "https://ontology.unifiedcyberontology.org/uco/identity/",
    "uco-observable": "https://ontology.unifiedcyberontology.org/uco/observable/",
    "uco-tool": "https://ontology.unifiedcyberontology.org/uco/tool/",
    "uco-types": "https://ontology.unifiedcyberontology.org/uco/types/",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
}

_OBSERVABLE = CONTEXT["uco-observable"]
_SHA256 = re.compile(r"[0-9a-f]{64}")

# CaptureStatus -> UCO ActionStatusTypeVocab; a partial capture finished but not every step
# succeeded, which the vocabulary's "Success" would overstate.
_ACTION_STATUS = {"complete": "Success", "partial": "Complete/Finish", "failed": "Fail"}


@dataclass(frozen=True)
class InvestigationInfo:
    id: uuid.UUID
    reference: str
    title: str
    offence: str | None = None
    offence_provision: str | None = None
    facts: str | None = None  # the summary of the facts
    jurisdiction: str | None = None


@dataclass(frozen=True)
class PerformerInfo:
    id: uuid.UUID
    name: str
    unit: str | None = None


@dataclass(frozen=True)
class FileInfo:
    path_in_bundle: str
    kind: str
    media_type: str
    size: int
    sha256: str


@dataclass(frozen=True)
class CaptureInfo:
    id: uuid.UUID
    requested_url: str
    started_at: datetime
    tool_name: str
    tool_version: str
    status: str
    final_url: str | None = None
    finished_at: datetime | None = None
    browser_name: str = "Chromium"
    browser_version: str | None = None
    performer: PerformerInfo | None = None
    exhibit_number: str | None = None
    manifest_sha256: str | None = None
    # The account whose page was captured, when the target was an account.
    account_id: uuid.UUID | None = None
    artifacts: tuple[FileInfo, ...] = ()


@dataclass(frozen=True)
class ReceivedInfo:
    """A file the unit received: from a platform answering `request`, or from `source`."""

    id: uuid.UUID
    number: str  # "RM-001", its exhibit number in the bundle
    file: FileInfo
    received_at: datetime
    via: str  # how it came: portal, email, ...
    request_reference: str | None = None
    platform_reference: str | None = None
    source: str | None = None
    registered_by: PerformerInfo | None = None


@dataclass(frozen=True)
class AccountInfo:
    id: uuid.UUID
    platform: str
    platform_account_id: str | None  # None: flagged by its handle, the id not known yet
    handle: str | None = None
    profile_url: str | None = None


def build_case_graph(
    investigation: InvestigationInfo,
    captures: Sequence[CaptureInfo],
    accounts: Sequence[AccountInfo] = (),
    *,
    received: Sequence[ReceivedInfo] = (),
    kb_base: str = KB_BASE,
) -> dict[str, Any]:
    """The JSON-LD document: an @context and a flat @graph in a stable order."""
    if not kb_base or kb_base[-1] not in "/#:":
        raise InvalidInput("the kb base IRI must end with '/', '#' or ':'")
    builder = _Builder()
    account_iris = {a.id: builder.account(a) for a in accounts}
    for capture in captures:
        builder.capture(capture, account_iris)
    for item in received:
        builder.received(item)

    inv = _iri("Investigation", investigation.id)
    # Both properties may repeat (CASE 1.5 gives them no maximum). The maximum penalty has no
    # CASE property and is only in bundle.json, which also names each of these values.
    descriptions = [investigation.title, *_present(investigation.facts)]
    focus = [*_present(investigation.offence), *_present(investigation.offence_provision)]
    node: dict[str, Any] = {
        "@id": inv,
        "@type": "case-investigation:Investigation",
        "uco-core:name": investigation.reference,
        "uco-core:description": _one_or_list(descriptions),
        "case-investigation:investigationForm": "case",
    }
    if focus:
        node["case-investigation:focus"] = _one_or_list(focus)
    if investigation.jurisdiction:
        # CASE 1.5 has no jurisdiction property; a tag keeps it machine-readable.
        node["uco-core:tag"] = f"jurisdiction:{investigation.jurisdiction}"
    node["uco-core:object"] = [_ref(n["@id"]) for n in builder.nodes]
    return {"@context": {"kb": kb_base, **CONTEXT}, "@graph": [node, *builder.nodes]}


class _Builder:
    """Collects the top-level nodes once each, in the order they are first met."""

    def __init__(self) -> None:
        self.nodes: list[dict[str, Any]] = []
        self._seen: set[str] = set()
        self._paths: set[str] = set()

    def _add(self, node: dict[str, Any]) -> str:
        iri: str = node["@id"]
        if iri not in self._seen:
            self._seen.add(iri)
            self.nodes.append(node)
        return iri

    def capture(self, capture: CaptureInfo, accounts: dict[uuid.UUID, str]) -> str:
        action_iri = _iri("InvestigativeAction", capture.id)
        requested = self.url(capture.requested_url)
        objects = [requested]
        if capture.account_id is not None:
            if capture.account_id not in accounts:
                raise InvalidInput(f"capture {capture.id} names an account not in the graph")
            objects.append(accounts[capture.account_id])

        files = [self.file(capture.id, f) for f in capture.artifacts]
        results = list(files)
        if capture.manifest_sha256 is not None:
            results.append(self.manifest(capture.id, capture.manifest_sha256))
        if capture.final_url and capture.final_url != capture.requested_url:
            final = self.url(capture.final_url)
            results.append(final)
            self._add(self.relationship(requested, final, "Redirects_To", capture.id))

        record: dict[str, Any] = {
            "@id": _iri("ProvenanceRecord", uuid.uuid5(capture.id, "ProvenanceRecord")),
            "@type": "case-investigation:ProvenanceRecord",
            "uco-core:description": f"Capture of {capture.requested_url}",
        }
        if capture.exhibit_number:
            record["case-investigation:exhibitNumber"] = capture.exhibit_number
        record["uco-core:object"] = [_ref(i) for i in results]
        record_iri = self._add(record)

        instruments = [self.tool(capture.tool_name, capture.tool_version)]
        if capture.browser_version:
            instruments.append(self.tool(capture.browser_name, capture.browser_version))
        action: dict[str, Any] = {
            "@id": action_iri,
            "@type": "case-investigation:InvestigativeAction",
            "uco-core:name": "captured",
            "uco-core:description": f"Web capture of {capture.requested_url}",
            "uco-action:actionStatus": _ACTION_STATUS.get(capture.status, "Unknown"),
            "uco-action:startTime": _datetime(capture.started_at),
        }
        if capture.finished_at is not None:
            action["uco-action:endTime"] = _datetime(capture.finished_at)
        if capture.performer is not None:
            action["uco-action:performer"] = _ref(self.person(capture.performer))
        action["uco-action:instrument"] = [_ref(i) for i in instruments]
        action["uco-action:object"] = [_ref(i) for i in objects]
        action["uco-action:result"] = [_ref(record_iri), *(_ref(i) for i in results)]
        return self._add(action)

    def received(self, info: ReceivedInfo) -> str:
        """The receipt as an action at the received time; its result the record and the file."""
        file_iri = self.file(info.id, replace(info.file, kind="received"))
        if info.request_reference is not None:
            origin = f"legal request {info.request_reference}"
            if info.platform_reference:
                origin += f" (platform reference {info.platform_reference})"
            said = f"Answer to {origin}"
        elif info.source and info.source.strip():
            said = f"Received from another source: {info.source}"
        else:
            raise InvalidInput(f"received file {info.number} names neither a request nor a source")
        record_iri = self._add({
            "@id": _iri("ProvenanceRecord", uuid.uuid5(info.id, "ProvenanceRecord")),
            "@type": "case-investigation:ProvenanceRecord",
            "uco-core:description": said,
            "case-investigation:exhibitNumber": info.number,
            "uco-core:object": [_ref(file_iri)],
        })
        action: dict[str, Any] = {
            "@id": _iri("InvestigativeAction", info.id),
            "@type": "case-investigation:InvestigativeAction",
            "uco-core:name": "received",
            "uco-core:description": f"{said}, received via {info.via}",
            "uco-action:startTime": _datetime(info.received_at),
        }
        if info.registered_by is not None:
            action["uco-action:performer"] = _ref(self.person(info.registered_by))
        action["uco-action:result"] = [_ref(record_iri), _ref(file_iri)]
        return self._add(action)

    def file(self, owner_id: uuid.UUID, info: FileInfo) -> str:
        if info.path_in_bundle in self._paths:
            raise InvalidInput(f"two files at {info.path_in_bundle!r} in one bundle")
        self._paths.add(info.path_in_bundle)
        if info.size < 0:
            raise InvalidInput(f"negative size for {info.path_in_bundle!r}")
        file_uuid = uuid.uuid5(owner_id, info.path_in_bundle)
        path = PurePosixPath(info.path_in_bundle)
        file_facet: dict[str, Any] = {
            "@id": _facet_iri(file_uuid, "FileFacet"),
            "@type": "uco-observable:FileFacet",
            "uco-observable:fileName": path.name,
            "uco-observable:filePath": info.path_in_bundle,
        }
        if path.suffix:
            file_facet["uco-observable:extension"] = path.suffix[1:]
        file_facet["uco-observable:sizeInBytes"] = info.size
        content = {
            "@id": _facet_iri(file_uuid, "ContentDataFacet"),
            "@type": "uco-observable:ContentDataFacet",
            "uco-observable:mimeType": info.media_type,
            "uco-observable:sizeInBytes": info.size,
            "uco-observable:hash": [_hash(info.sha256)],
        }
        return self._add(
            {
                "@id": _iri("File", file_uuid),
                "@type": "uco-observable:File",
                "uco-core:tag": info.kind,
                "uco-core:hasFacet": [file_facet, content],
            }
        )

    def manifest(self, capture_id: uuid.UUID, sha256: str) -> str:
        data_uuid = uuid.uuid5(capture_id, "manifest")
        return self._add(
            {
                "@id": _iri("ContentData", data_uuid),
                "@type": "uco-observable:ContentData",
                "uco-core:name": "capture manifest",
                "uco-core:description": "Canonical JSON manifest, signed and timestamped",
                "uco-core:hasFacet": [
                    {
                        "@id": _facet_iri(data_uuid, "ContentDataFacet"),
                        "@type": "uco-observable:ContentDataFacet",
                        "uco-observable:mimeType": "application/json",
                        "uco-observable:hash": [_hash(sha256)],
                    }
                ],
            }
        )

    def url(self, value: str) -> str:
        url_uuid = uuid.uuid5(uuid.NAMESPACE_URL, value)
        return self._add(
            {
                "@id": _iri("URL", url_uuid),
                "@type": "uco-observable:URL",
                "uco-core:hasFacet": [
                    {
                        "@id": _facet_iri(url_uuid, "URLFacet"),
                        "@type": "uco-observable:URLFacet",
                        "uco-observable:fullValue": value,
                    }
                ],
            }
        )

    def tool(self, name: str, version: str) -> str:
        tool_uuid = uuid.uuid5(uuid.NAMESPACE_URL, f"urn:evidence-locker:tool:{name}:{version}")
        return self._add(
            {
                "@id": _iri("Tool", tool_uuid),
                "@type": "uco-tool:Tool",
                "uco-core:name": name,
                "uco-tool:version": version,
            }
        )

    def organization(self, kind: str, name: str) -> str:
        org_uuid = uuid.uuid5(uuid.NAMESPACE_URL, f"urn:evidence-locker:{kind}:{name}")
        return self._add(
            {
                "@id": _iri("Organization", org_uuid),
                "@type": "uco-identity:Organization",
                "uco-core:name": name,
            }
        )

    def person(self, info: PerformerInfo) -> str:
        person = self._add(
            {
                "@id": _iri("Person", info.id),
                "@type": "uco-identity:Person",
                "uco-core:name": info.name,
            }
        )
        if info.unit:
            unit = self.organization("unit", info.unit)
            self._add(self.relationship(person, unit, "Member_Of", info.id, observable=False))
        return person

    def account(self, info: AccountInfo) -> str:
        account_iri = _iri("ApplicationAccount", info.id)
        issuer = self.organization("platform", info.platform)
        # Without the platform's id the handle is the identifier the case knows it by.
        identifier = info.platform_account_id or f"@{(info.handle or '').lstrip('@')}"
        facets: list[dict[str, Any]] = [
            {
                "@id": _facet_iri(info.id, "AccountFacet"),
                "@type": "uco-observable:AccountFacet",
                "uco-observable:accountIdentifier": identifier,
                "uco-observable:accountIssuer": _ref(issuer),
            }
        ]
        if info.handle:
            facets.append(
                {
                    "@id": _facet_iri(info.id, "DigitalAccountFacet"),
                    "@type": "uco-observable:DigitalAccountFacet",
                    "uco-observable:accountLogin": info.handle,
                }
            )
        self._add(
            {
                "@id": account_iri,
                "@type": "uco-observable:ApplicationAccount",
                "uco-core:name": f"{info.platform} account {identifier}",
                "uco-core:hasFacet": facets,
            }
        )
        if info.profile_url:
            profile = self.url(info.profile_url)
            self._add(self.relationship(account_iri, profile, "Related_To", info.id))
        return account_iri

    @staticmethod
    def relationship(
        source: str, target: str, kind: str, owner: uuid.UUID, *, observable: bool = True
    ) -> dict[str, Any]:
        rel_uuid = uuid.uuid5(owner, f"{kind} {source} {target}")
        rel_class = (
            "uco-observable:ObservableRelationship" if observable else "uco-core:Relationship"
        )
        return {
            "@id": _iri("Relationship", rel_uuid),
            "@type": rel_class,
            "uco-core:source": _ref(source),
            "uco-core:target": _ref(target),
            "uco-core:kindOfRelationship": kind,
            "uco-core:isDirectional": True,
        }


def _present(value: str | None) -> list[str]:
    return [value] if value and value.strip() else []


def _one_or_list(values: list[str]) -> str | list[str]:
    # One value stays a plain string, as graphs written before the facts were added have it.
    return values[0] if len(values) == 1 else values


def _iri(kind: str, value: uuid.UUID) -> str:
    return f"kb:{kind}-{value}"


def _ref(iri: str) -> dict[str, str]:
    return {"@id": iri}


def _facet_iri(owner: uuid.UUID, facet_class: str) -> str:
    return _iri(facet_class, uuid.uuid5(owner, _OBSERVABLE + facet_class))


def _hash(sha256: str) -> dict[str, Any]:
    value = sha256.lower()
    if not _SHA256.fullmatch(value):
        raise InvalidInput(f"not a SHA-256 hex digest: {sha256!r}")
    hash_uuid = uuid.uuid5(uuid.NAMESPACE_URL, f"urn:hash::sha256:{value}")
    return {
        "@id": _iri("Hash", hash_uuid),
        "@type": "uco-types:Hash",
        "uco-types:hashMethod": "SHA256",
        "uco-types:hashValue": {"@type": "xsd:hexBinary", "@value": value},
    }


def _datetime(moment: datetime) -> dict[str, str]:
    if moment.tzinfo is None:
        raise InvalidInput("naive datetime: evidence times must carry a time zone")
    text = moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return {"@type": "xsd:dateTime", "@value": text}


# --- reading the graph back, from JSON alone ---------------------------------------------------


def graph_file_hashes(graph: dict[str, Any]) -> dict[str, tuple[str, int]]:
    """Every file the graph describes: path in the bundle -> (SHA-256, size in bytes).

    Reads the graph this module writes, and the same graph re-serialised by a JSON-LD tool
    (nested or flattened nodes, prefixed or full IRIs, native or typed literals). Raises
    InvalidInput for a file without exactly one path, one size and one SHA-256, for sizes that
    disagree, and for two files at one path. The reading is the offline verifier's, so the
    bundle service and `verify.py` cannot disagree on what a graph says.
    """
    problems: list[str] = []
    files = _graph_files(graph, problems)
    if problems:
        # Worded for the verifier's report ("case graph: file node ..."); ours name files.
        raise InvalidInput(problems[0].removeprefix("case graph: ").replace("file node", "file", 1))
    return files
