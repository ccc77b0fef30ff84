"""Decisions: proposals superseding each other, four eyes, and the three takedown conditions."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from evidence import cases, decisions, deconfliction, targets
from evidence.blobstore import FolderStore
from evidence.errors import (
    CaptureMissing,
    DecisionNotPending,
    DeconflictionHold,
    FourEyesViolation,
    InvalidInput,
    PermissionDenied,
    PreservationMissing,
)
from evidence.models import (
    Capture,
    CaptureStatus,
    Case,
    CustodyEntry,
    DecisionState,
    JobState,
    LegalRequest,
    Role,
    Target,
    User,
)
from evidence.times import to_the_second
from tests.factories import make_capture, make_case, make_user


def _complete_capture(session: Session, case: Case, target: Target, tmp_path: Path) -> None:
    store = FolderStore(tmp_path / "blobs")
    store.create()
    capture = make_capture(session, case, target, store)
    session.get(Capture, capture.id).status = CaptureStatus.COMPLETE  # type: ignore[union-attr]
    session.flush()


def _preservation(session: Session, case: Case, actor: User, identifiers: list[object],
                  kind: str = "provider-preservation", status: str = "draft") -> LegalRequest:
    request = LegalRequest(case_id=case.id, kind=kind, platform="facebook",
                           identifiers=identifiers, created_by_id=actor.id, status=status)
    session.add(request)
    session.flush()
    return request


def _setup(session: Session) -> tuple[User, User, Case, Target]:
    investigator = make_user(session)
    supervisor = make_user(session, role=Role.SUPERVISOR)
    case = make_case(session, investigator)
    cases.add_member(session, investigator, case, supervisor, "read")
    target, _ = targets.flag_target(session, investigator, case, reason="advert",
                                    url="https://www.facebook.com/seller.two/posts/9")
    return investigator, supervisor, case, target


def test_a_newer_proposal_supersedes_and_history_is_kept(session: Session) -> None:
    investigator, supervisor, case, target = _setup(session)
    first = decisions.propose(session, investigator, case, target, kind="monitor",
                              rationale="watch it")
    second = decisions.propose(session, investigator, case, target, kind="preserve",
                               rationale="preserve it")
    assert first.state == DecisionState.SUPERSEDED and second.supersedes_id == first.id
    assert [d.id for d in decisions.history(session, target)] == [first.id, second.id]
    with pytest.raises(DecisionNotPending):
        decisions.approve(session, supervisor, case, target, first)
    decisions.approve(session, supervisor, case, target, second, note="ok")
    assert second.state == DecisionState.APPROVED and second.decided_by_id == supervisor.id
    actions = session.scalars(select(CustodyEntry.action).where(
        CustodyEntry.case_id == case.id).order_by(CustodyEntry.seq)).all()
    assert actions[-4:] == ["decision.proposed", "decision.superseded", "decision.proposed",
                            "decision.approved"]


def test_four_eyes_and_roles(session: Session) -> None:
    investigator, supervisor, case, target = _setup(session)
    decision = decisions.propose(session, investigator, case, target, kind="preserve",
                                 rationale="r")
    with pytest.raises(PermissionDenied, match="supervisor or admin"):
        decisions.approve(session, investigator, case, target, decision)
    boss = make_user(session, role=Role.SUPERVISOR)
    cases.add_member(session, investigator, case, boss, "write")
    mine = decisions.propose(session, boss, case, target, kind="monitor", rationale="r")
    with pytest.raises(FourEyesViolation, match="four eyes"):
        decisions.approve(session, boss, case, target, mine)
    with pytest.raises(FourEyesViolation):
        decisions.reject(session, boss, case, target, mine, reason="no")
    decisions.reject(session, supervisor, case, target, mine, reason="keep monitoring")
    assert mine.state == DecisionState.REJECTED and mine.decision_note == "keep monitoring"
    with pytest.raises(InvalidInput):
        decisions.propose(session, investigator, case, target, kind="monitor", rationale="r",
                          preservation_waiver="not a takedown")
    with pytest.raises(InvalidInput):
        decisions.propose(session, investigator, case, target, kind="delete", rationale="r")


def test_takedown_conditions_each_refused_then_met(session: Session, tmp_path: Path) -> None:
    investigator, supervisor, case, target = _setup(session)
    other_owner = make_user(session, unit="Harbour Unit")
    other = make_case(session, other_owner)
    targets.flag_target(session, other_owner, other, reason="r",
                        url="https://m.facebook.com/seller.two/posts/9")
    decision = decisions.propose(session, investigator, case, target, kind="takedown",
                                 rationale="remove it")
    with pytest.raises(CaptureMissing, match="no complete capture"):
        decisions.approve(session, supervisor, case, target, decision)
    _complete_capture(session, case, target, tmp_path)
    with pytest.raises(DeconflictionHold, match="Harbour Unit"):
        decisions.approve(session, supervisor, case, target, decision)
    for hit in deconfliction.unresolved_hits(session, target):
        deconfliction.agree(session, investigator, case, hit.id, note="spoke to them")
        deconfliction.agree(session, other_owner, other, hit.id, note="no objection")
    with pytest.raises(PreservationMissing, match="preservation request"):
        decisions.approve(session, supervisor, case, target, decision)
    # Refused, withdrawn or other kinds of requests, or ones naming other targets, do not count.
    _preservation(session, case, investigator, [{"kind": "url", "value": target.url}],
                  status="refused")
    _preservation(session, case, investigator, [str(target.id)], status="withdrawn")
    _preservation(session, case, investigator, [str(target.id)], kind="dsa-art9-order")
    _preservation(session, case, investigator, ["https://facebook.com/someone.else"])
    with pytest.raises(PreservationMissing):
        decisions.approve(session, supervisor, case, target, decision)
    _preservation(session, case, investigator,
                  [{"kind": "url", "value": "http://m.facebook.com/seller.two/posts/9/"}])
    decisions.approve(session, supervisor, case, target, decision)
    assert decision.state == DecisionState.APPROVED
    assert decision.takedown_approved_by_id == supervisor.id
    assert decision.deconfliction is not None
    assert decision.deconfliction["unresolved_hits"] == []


def test_a_waiver_stands_in_for_the_request(session: Session, tmp_path: Path) -> None:
    investigator, supervisor, case, target = _setup(session)
    _complete_capture(session, case, target, tmp_path)
    decision = decisions.propose(session, investigator, case, target, kind="takedown",
                                 rationale="r", preservation_waiver="Content is our own decoy")
    decisions.approve(session, supervisor, case, target, decision)
    assert decision.state == DecisionState.APPROVED


def test_preserve_then_takedown_is_approved_in_two_steps(
    session: Session, tmp_path: Path
) -> None:
    investigator, supervisor, case, target = _setup(session)
    decision = decisions.propose(session, investigator, case, target,
                                 kind="preserve-then-takedown", rationale="r")
    decisions.approve(session, supervisor, case, target, decision)
    assert decisions.stage(decision) == "preserve"
    with pytest.raises(CaptureMissing):
        decisions.approve(session, supervisor, case, target, decision)
    _complete_capture(session, case, target, tmp_path)
    with pytest.raises(PreservationMissing):
        decisions.approve(session, supervisor, case, target, decision)
    _preservation(session, case, investigator, [{"target_id": str(target.id)}],
                  kind="eu-epoc-pr", status="sent")
    decisions.approve(session, supervisor, case, target, decision)
    assert decisions.stage(decision) == "takedown"
    with pytest.raises(DecisionNotPending):
        decisions.approve(session, supervisor, case, target, decision)


def test_the_takedown_conditions_are_all_looked_up_at_once(
    session: Session, tmp_path: Path
) -> None:
    """What the target page's checklist shows: every condition, met or not, and the refusal
    an approval would meet first."""
    investigator, _supervisor, case, target = _setup(session)
    other_owner = make_user(session, unit="Harbour Unit")
    other = make_case(session, other_owner)
    targets.flag_target(session, other_owner, other, reason="r",
                        url="https://m.facebook.com/seller.two/posts/9")
    decision = decisions.propose(session, investigator, case, target, kind="takedown",
                                 rationale="remove it")
    none_met = decisions.takedown_conditions(session, case, target, decision)
    assert [type(e) for e in none_met.unmet] == [CaptureMissing, DeconflictionHold,
                                                 PreservationMissing]
    assert none_met.refusal is none_met.unmet[0]
    assert not none_met.complete_capture and none_met.preservation_requests == ()
    hits = deconfliction.unresolved_hits(session, target)
    assert none_met.unresolved_hits == len(hits) > 0
    assert len(none_met.calls) == 1 and none_met.calls[0].startswith("Harbour Unit (")
    assert none_met.calls[0] in none_met.unmet[1].message

    _complete_capture(session, case, target, tmp_path)
    request = _preservation(session, case, investigator, [str(target.id)])
    held = decisions.takedown_conditions(session, case, target, decision)
    assert held.complete_capture and held.preservation_requests == (request,)
    assert [type(e) for e in held.unmet] == [DeconflictionHold]
    assert isinstance(held.refusal, DeconflictionHold)

    for hit in hits:
        deconfliction.agree(session, investigator, case, hit.id, note="spoke to them")
        deconfliction.agree(session, other_owner, other, hit.id, note="no objection")
    met = decisions.takedown_conditions(session, case, target, decision)
    assert met.unmet == () and met.refusal is None and met.unresolved_hits == 0


def test_a_decision_no_longer_pending_says_what_became_of_it_and_what_next(
    session: Session,
) -> None:
    """Decided or superseded while a supervisor read it: each refusal says by whom and what to
    do now, never an advice that does not fit (a superseded one is to be read, not proposed)."""
    investigator, supervisor, case, target = _setup(session)
    boss = make_user(session, role=Role.SUPERVISOR, name="boss")
    cases.add_member(session, investigator, case, boss, "read")
    first = decisions.propose(session, investigator, case, target, kind="monitor",
                              rationale="watch")
    newer = decisions.propose(session, investigator, case, target, kind="preserve",
                              rationale="keep")
    for verb, done in (("approve", "approved"), ("reject", "rejected")):
        with pytest.raises(DecisionNotPending) as superseded:
            if verb == "approve":
                decisions.approve(session, supervisor, case, target, first)
            else:
                decisions.reject(session, supervisor, case, target, first, reason="r")
        message = superseded.value.message
        assert message == (
            f"this monitor decision has been superseded: a newer decision was proposed, a "
            f"preserve by {investigator.name} at {to_the_second(newer.proposed_at)}, awaiting "
            f"approval; read it before you decide, as this one can no longer be {done}")
        assert "propose" not in message.split("; ")[-1]

    decisions.reject(session, boss, case, target, newer, reason="not needed")
    with pytest.raises(DecisionNotPending, match=r"^this preserve decision was rejected by boss "
                       r"at .*, so it can no longer be approved; their reason is in the "
                       r"decision history; if a decision is still needed, it has to be "
                       r"proposed again$"):
        decisions.approve(session, supervisor, case, target, newer)
    with pytest.raises(DecisionNotPending, match=r"^this preserve decision was rejected "
                       r"already, by boss at .*; nothing is left to reject$"):
        decisions.reject(session, supervisor, case, target, newer, reason="no")
    # Superseded by a decision since rejected: it says so.
    with pytest.raises(DecisionNotPending, match=r"a preserve by .*, rejected since; read it"):
        decisions.approve(session, supervisor, case, target, first)

    both = decisions.propose(session, investigator, case, target,
                             kind="preserve-then-takedown", rationale="both",
                             preservation_waiver="preserved by phone")
    decisions.approve(session, boss, case, target, both)
    with pytest.raises(DecisionNotPending, match=r"^the preserve step of this "
                       r"preserve-then-takedown decision was approved by boss at .*, so it can "
                       r"no longer be rejected; to stop its takedown, a new decision \(preserve "
                       r"or monitor\) has to be proposed, which supersedes it$"):
        decisions.reject(session, supervisor, case, target, both, reason="no")


def test_a_missing_capture_is_refused_saying_what_makes_one(
    session: Session, tmp_path: Path,
) -> None:
    investigator, supervisor, case, target = _setup(session)
    decision = decisions.propose(session, investigator, case, target, kind="takedown",
                                 rationale="remove", preservation_waiver="decoy")
    # Flagging queued a capture.
    with pytest.raises(CaptureMissing, match=r"one is queued or under way; approve once it is "
                       r"complete$"):
        decisions.approve(session, supervisor, case, target, decision)
    for job in targets.jobs_of(session, target):
        job.state = JobState.FAILED
    session.flush()
    with pytest.raises(CaptureMissing, match=r"no capture of this target exists; capture it and "
                       r"approve once a capture is complete$"):
        decisions.approve(session, supervisor, case, target, decision)
    store = FolderStore(tmp_path / "blobs")
    store.create()
    make_capture(session, case, target, store)  # partial
    with pytest.raises(CaptureMissing, match=r"each is partial or failed\); capture it again"):
        decisions.approve(session, supervisor, case, target, decision)
    # A complete capture of an error answer kept what the server said, not the page.
    for status in (403, 404):
        answer = make_capture(session, case, target, store, http_status=status)
        session.get(Capture, answer.id).status = CaptureStatus.COMPLETE  # type: ignore[union-attr]
    session.flush()
    with pytest.raises(CaptureMissing, match=r"^takedown refused: no capture of this target "
                       r"holds the page: each complete one kept an error answer \(the latest: "
                       r"HTTP 404 Not Found\), not the page to take down; capture it again when "
                       r"it loads, and approve once that capture is complete$"):
        decisions.approve(session, supervisor, case, target, decision)
    assert not decisions.takedown_conditions(session, case, target, decision).complete_capture
    _complete_capture(session, case, target, tmp_path)  # the page, HTTP 200
    assert decisions.takedown_conditions(session, case, target, decision).complete_capture


def test_a_missing_preservation_says_what_the_approved_preserve_step_still_needs(
    session: Session, tmp_path: Path,
) -> None:
    investigator, supervisor, case, target = _setup(session)
    _complete_capture(session, case, target, tmp_path)
    plain = decisions.propose(session, investigator, case, target, kind="takedown",
                              rationale="remove")
    with pytest.raises(PreservationMissing, match="have one generated naming it, or have the "
                       "takedown proposed again with a preservation waiver"):
        decisions.approve(session, supervisor, case, target, plain)
    both = decisions.propose(session, investigator, case, target,
                             kind="preserve-then-takedown", rationale="both")
    decisions.approve(session, supervisor, case, target, both)
    with pytest.raises(PreservationMissing, match=r"^takedown refused: the preserve step is "
                       r"approved, but no preservation request \(coe-art29-preservation, "
                       r"eu-epoc-pr or provider-preservation\) names this target yet; have one "
                       r"generated naming it, then approve the takedown"):
        decisions.approve(session, supervisor, case, target, both)
