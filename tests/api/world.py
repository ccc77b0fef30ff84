"""A case with one of everything, for tests that walk every route the app publishes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from evidence import (
    accounts,
    captures,
    cases,
    decisions,
    deconfliction,
    notes,
    received,
    requests,
    targets,
    users,
)
from evidence.models import Access, Export, Role, utcnow
from tests.api.conftest import Api, Caller
from tests.factories import AUTHORITY_FIELDS, make_capture, make_sealed_capture

REFERENCE = "OP/2026/7"  # a '/' in it: walks also prove such references route
OTHER_REFERENCE = "ELSEWHERE-1"  # another unit's case holding the same page (a hit)


def _legal_request(api: Api, session: Any, owner: Caller, case: Any,
                   capture: Callable[..., Any]) -> str:
    """A generated legal request (with its documents) on an X post of the case."""
    post, _job = targets.flag_target(session, owner.user, case, reason="advert",
                                     url="https://x.com/seller/status/1")
    capture(session, case, post)
    made = requests.generate(
        session, owner.user, case, store=api.runtime.store, settings=api.runtime.settings,
        kind="provider-preservation", platform="x",
        # The case records no offence; a preservation request must state one.
        fields={**AUTHORITY_FIELDS, "offence": "Migrant smuggling"},
        date_from=datetime(2026, 1, 1, tzinfo=UTC), date_to=datetime(2026, 2, 1, tzinfo=UTC))
    return str(made.request.id)


def build_world(api: Api, *, complete: bool = False) -> tuple[dict[str, str], Caller]:
    """A case with one of everything, made by its owner; returns ids to fill paths with.

    `complete` (needs a home made by `init_home`) seals every capture as the worker does, so
    the case can be exported, and adds a second member ("reader", the path value `user`) and a
    capture with text, so export, search and member routes reach real rows too.
    """

    def capture(session: Any, case: Any, target: Any, **kwargs: Any) -> Any:
        if complete:
            return make_sealed_capture(session, api.runtime, case, target, **kwargs)
        return make_capture(session, case, target, api.runtime.store, **kwargs)

    owner = api.user("owner")
    with api.runtime.session() as session:
        case = cases.create_case(session, owner.user, reference=REFERENCE, title="Hidden case")
        account, _ = accounts.link_account(session, owner.user, case, platform="facebook",
                                           platform_account_id="1000",
                                           profile_url="https://example.org/p")
        target, _job = targets.flag_target(session, owner.user, case, reason="advert",
                                           url="https://example.org/ad")
        first = capture(session, case, target)
        artifacts = captures.artifacts_of(session, first.id)
        case_note = notes.add_note(session, owner.user, case, body="case note")
        target_note = notes.add_note(session, owner.user, case, body="target note",
                                     target_id=target.id)
        # A kept bundle (its bytes need not be a real bundle for routing and access).
        bundle = api.runtime.store.put_bytes(b"PK\x05\x06" + b"\x00" * 18)
        export = Export(case_id=case.id, requested_by_id=owner.user.id,
                        bundle_sha256=bundle.sha256, size=bundle.size)
        session.add(export)
        session.flush()
        request_id = _legal_request(api, session, owner, case, capture)
        handed = received.register(session, owner.user, case, [b"seized,1\n"],
                                   store=api.runtime.store, filename="seized.csv",
                                   received_at=utcnow(), via="medium", source="a witness")
        # Another unit's case holding the same page: a deconfliction hit; and a decision.
        other_owner = users.create_user(session, None, name="elsewhere",
                                        role=Role.INVESTIGATOR, unit="Elsewhere Unit")
        other = cases.create_case(session, other_owner, reference=OTHER_REFERENCE,
                                  title="Elsewhere")
        targets.flag_target(session, other_owner, other, reason="advert",
                            url="https://example.org/ad")
        (hit, *_rest) = deconfliction.unresolved_hits(session, target)
        decision = decisions.propose(session, owner.user, case, target, kind="monitor",
                                     rationale="watch it")
        user = "owner"
        if complete:
            reader = users.create_user(session, None, name="reader", role=Role.INVESTIGATOR,
                                       unit="Border Unit")
            cases.add_member(session, owner.user, case, reader, Access.READ)
            page, _job = targets.flag_target(session, owner.user, case, reason="advert",
                                             url="https://www.facebook.com/seller/posts/9")
            capture(session, case, page, files=[
                ("screenshot", "screenshot-full.png", "image/png", b"\x89PNG\r\n\x1a\n shot"),
                ("text", "text.txt", "text/plain; charset=utf-8",
                 b"Crossing to Italy tonight, call the advert number")])
            user = "reader"
        return {"decision_id": str(decision.id), "hit_id": str(hit.id),
                "ref": quote(REFERENCE, safe=""), "target_id": str(target.id),
                "capture_id": str(first.id), "artifact_id": str(artifacts[0].id),
                "account_id": str(account.id), "note_id": str(case_note.note.id),
                "target_note_id": str(target_note.note.id), "user": user,
                "export_id": str(export.id), "request_id": request_id,
                "file_id": str(handed.row.id)}, owner
