"""Commands of the capture package: `evidence capture`, `evidence worker`, `evidence watch`."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import uuid
from datetime import datetime
from typing import NoReturn

import click
from click.core import ParameterSource
from sqlalchemy import select
from sqlalchemy.orm import Session

from capture.browser import DOWNLOADS_KIND, BrowserSession
from capture.pipeline import TEMP_KIND
from capture.service import (
    ABANDONED,
    LEASE_SECONDS,
    CaptureWorker,
    JobResult,
    capture_summary,
    timestamp_line,
)
from evidence import captures, cases, processes, targets
from evidence.captures import outcome_of
from evidence.cli import EvidenceGroup, acting_command, state
from evidence.errors import InvalidInput, NotFound, StorageFull
from evidence.models import Access, Capture, CaptureJob, Case, JobState, Target
from evidence.words import counted

POLL_SECONDS = 0.5
# What a worker stopped by a second signal leaves, said as it ends.
LEFT_TO_LEASE = "a capture under way is taken up again once its lease runs out"
HANDED_BACK = ("handed back to the queue, its attempt not counted: another worker may take it "
               "up at once")


class CaptureGroup(EvidenceGroup):
    """`evidence capture URL ...` captures, `evidence capture show ID` is a subcommand; so for
    `evidence watch URL ...` and `evidence watch stop ...`."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and not args[0].startswith("-") and args[0] not in self.commands:
            args = ["url", *args]
        return super().parse_args(ctx, args)


@click.group("capture", cls=CaptureGroup)
def capture() -> None:
    """Capture pages: evidence capture URL --case REF; evidence capture show ID."""


@capture.command("url", hidden=True)
@click.argument("url")
@click.option("--case", "case_reference", metavar="REF", required=True,
              help="The case the capture belongs to.")
@click.option("--reason", default="flagged from the command line", show_default=True)
@click.option("--no-wait", is_flag=True, help="Queue the capture and return at once.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--as", "as_user", metavar="NAME", help="Act as this user.")
def capture_url(url: str, case_reference: str, reason: str, no_wait: bool, as_json: bool,
                as_user: str | None) -> None:
    """Flag URL on a case and capture it, showing progress; prints id, status and hash.

    Ctrl-C (SIGINT) or SIGTERM stops it: nothing of a capture under way is recorded, its job is
    handed back to the queue, and the command exits 130 saying so. A second stops it at once.
    """
    # Heard from the start, so a stop never lands in the middle of a transaction.
    stop = None if no_wait else processes.StopRequest(at_once=LEFT_TO_LEASE)
    cli = state()
    if as_user:
        cli.actor_name = as_user
    with cli.acting() as (session, actor):
        case = cases.get_case(session, actor, case_reference)
        existing = targets.find_url_target(session, case, url)
        if existing is None:
            target, job = targets.flag_target(session, actor, case, url=url, reason=reason)
        else:
            # The same URL in the same case is the same target: capture it again and compare.
            target, job = existing, targets.request_capture(
                session, actor, case, existing, reason=reason)
        job_id = job.id
    if stop is None:
        _emit(as_json, {"target": str(target.id), "job": str(job_id), "state": "queued"},
              f"queued capture job {job_id} for {url}")
        return
    capture_id = _capture_now(job_id, stop, quiet=as_json)
    with cli.runtime.session() as session:
        row = session.get(Capture, capture_id)
        assert row is not None
        summary = capture_summary(row, captures.artifacts_of(session, row.id),
                                  cli.runtime.store.locate)
        stamp = timestamp_line(row)
    if as_json:
        click.echo(json.dumps(summary, indent=2, ensure_ascii=False))
    else:
        click.echo(f"capture {summary['id']}: {summary['status']}")
        click.echo(f"  manifest sha256 {summary['manifest_sha256']}")
        click.echo(f"  {stamp}")
        # Complete, but of an error answer: the reader must not take it for the page itself.
        said = outcome_of(summary["status"], summary["http_status"]).said
        if said:
            click.echo(f"  {said}")
        for step in summary["steps"]:
            if not step["ok"]:
                click.echo(f"  step {step['name']} failed: {step['error']}")
    if summary["status"] == "failed":
        sys.exit(1)


def _capture_now(job_id: uuid.UUID, stop: processes.StopRequest, *, quiet: bool) -> uuid.UUID:
    """Carry out the job in this process through all its attempts, showing progress.

    If a running worker took the job first, this waits for that worker instead; either way it
    returns when the job is done or has failed for good. Stopped, it says what became of the
    job in one line and exits 130.
    """
    runtime = state().runtime
    _sweep_left_folders()
    if not quiet:
        click.echo("capturing…", err=True)
    shown: tuple[str, int, str | None] | None = None
    with BrowserSession(runtime.settings) as browser:
        worker = CaptureWorker(runtime, browser)
        _stop_with(worker, stop)
        while True:
            result = worker.run_once(job_id=job_id)
            if result is not None and result.status == ABANDONED:
                _stopped(stop, f"nothing of the capture was recorded; job {job_id} "
                         f"{_fate(result)}")
            if not quiet and result is not None and result.job_id in worker.unrecorded:
                click.echo(f"  capture failed: {result.error}", err=True)
            _record_or_wait(worker, POLL_SECONDS, stop=stop)
            with runtime.session() as session:
                job = session.get(CaptureJob, job_id)
                assert job is not None
                now = (job.state, job.attempts, job.error)
                run_after = job.run_after
                latest = session.scalars(
                    select(Capture).where(Capture.job_id == job_id)
                    .order_by(Capture.started_at.desc()).limit(1)).first()
            if job.state in (JobState.DONE, JobState.FAILED, JobState.CANCELLED):
                if latest is not None:
                    return latest.id
                raise InvalidInput(f"capture failed: {job.error}")
            if stop.requested:
                _stopped(stop, _left_as(job, worker))
            if not quiet and now != shown:
                shown = now
                if job.state == JobState.QUEUED and job.error:
                    click.echo(f"  attempt {job.attempts} of {job.max_attempts} failed: "
                               f"{job.error}; next try at {run_after:%H:%M:%S} UTC", err=True)
                else:
                    click.echo(f"  job {job_id} is {job.state}…", err=True)
            stop.wait(POLL_SECONDS)


def _stop_with(worker: CaptureWorker, stop: processes.StopRequest) -> None:
    """Stop `worker` when `stop` is requested (at once, if it was already), saying why to the
    custody log of a job it hands back."""
    def hook() -> None:
        worker.stop(f"worker stopped ({_signal_name(stop)})")

    stop.on_request.append(hook)
    if stop.requested:
        hook()


def _signal_name(stop: processes.StopRequest) -> str:
    return "a signal" if stop.signal is None else stop.signal.name


def _fate(result: JobResult) -> str:
    """What became of a job its stopped worker abandoned."""
    return HANDED_BACK if result.handed_back else str(result.error)


def _left_as(job: CaptureJob, worker: CaptureWorker) -> str:
    """What a stop leaves of a job no capture of this process is under way for."""
    if job.id in worker.unrecorded:
        return (f"job {job.id} failed, which could not be recorded (the database has no room); "
                "a worker takes it up again once its lease runs out")
    if job.state == JobState.QUEUED and job.error:
        return (f"job {job.id} stays queued after attempt {job.attempts} failed ({job.error}), "
                "for a worker (or this command run again) to try again")
    if job.state == JobState.QUEUED:
        return (f"nothing was recorded; job {job.id} stays queued, for a worker (or this "
                "command run again) to carry out")
    return (f"nothing was recorded by this command; job {job.id} is being captured by worker "
            f"{job.lease_owner}")


def _stopped(stop: processes.StopRequest, what: str) -> NoReturn:
    """End a command the user stopped: one line, and the status a shell gives a process a
    signal ended (130 for Ctrl-C)."""
    click.echo(f"stopped ({_signal_name(stop)}): {what}", err=True)
    raise click.exceptions.Exit(128 + (stop.signal or signal.SIGINT))


def _sweep_left_folders() -> None:
    """Remove the temporary folders of captures whose process ended at once (a second signal,
    killed): nothing else removes them."""
    removed = processes.sweep_owned_folders((TEMP_KIND, DOWNLOADS_KIND))
    if removed:
        click.echo(f"removed {counted(removed, 'temporary folder')} a stopped capture left",
                   err=True)


def _record_or_wait(worker: CaptureWorker, poll: float, *,
                    stop: processes.StopRequest | None = None,
                    limit: float | None = None) -> None:
    """Record the failures the full database refused, waiting for room: as long as that takes,
    or until a stop is requested, or for `limit` seconds, then raising StorageFull.

    Every command that runs captures waits (`evidence worker`, with --once too, and `evidence
    capture`): one that exited at once would leave its job `running`, its failure unsaid, until
    its lease ran out and a worker took the job up again as if this one had died. But a run
    from cron must end: --once gives up after a while, saying so.
    """
    said = False
    give_up = None if limit is None else time.monotonic() + limit
    while True:
        try:
            recorded = worker.record_failures()
        except StorageFull as exc:
            if not said:
                click.echo(_waiting_for_room(exc, worker), err=True)
                said = True
            pause = poll if give_up is None else min(poll, give_up - time.monotonic())
            if give_up is not None and pause <= 0:
                raise StorageFull(_gave_up_on_room(exc, worker, limit or 0)) from exc
            if stop is None:
                time.sleep(pause)
            elif stop.wait(pause):
                return  # the failures stay unrecorded: their jobs go to their leases
            continue
        for job_id in recorded:
            click.echo(f"job {job_id}: marked failed, now that the database has room", err=True)
        return


def _gave_up_on_room(exc: StorageFull, worker: CaptureWorker, waited: float) -> str:
    named = ", ".join(str(job_id) for job_id in worker.unrecorded)
    return (f"no room after waiting {counted(round(waited), 'second')}: {exc.message}. Job "
            f"{named} failed, which could not be recorded; a worker takes the job up again "
            "once its lease runs out")


def _waiting_for_room(exc: StorageFull, worker: CaptureWorker) -> str:
    line = f"waiting for room: {exc.message}"
    if worker.unrecorded:
        named = ", ".join(str(job_id) for job_id in worker.unrecorded)
        line += (f". Job {named} failed and is marked failed as soon as there is room; "
                 "stopped before then, a worker takes the job up again once its lease runs out")
    return line


def _emit(as_json: bool, value: dict[str, object], text: str) -> None:
    click.echo(json.dumps(value) if as_json else text)


@acting_command(capture, "show")
@click.argument("capture_id")
@click.option("--json", "as_json", is_flag=True)
def capture_show(capture_id: str, as_json: bool) -> None:
    """A capture: its steps, artifacts and comparison with the previous one."""
    try:
        ident = uuid.UUID(capture_id)
    except ValueError as exc:
        raise InvalidInput(f"{capture_id!r} is not a capture id") from exc
    cli = state()
    with cli.acting() as (session, actor):
        row = session.get(Capture, ident)
        if row is None:
            raise NotFound(f"no capture {capture_id}")
        case = session.get(Case, row.case_id)
        assert case is not None
        cases.require_access(session, actor, case, Access.READ)
        summary = capture_summary(row, captures.artifacts_of(session, row.id),
                                  cli.runtime.store.locate)
        summary["comparison"] = row.comparison
        stamp = timestamp_line(row)
    if as_json:
        click.echo(json.dumps(summary, indent=2, ensure_ascii=False))
        return
    click.echo(f"capture {summary['id']}  {summary['status']}  HTTP {summary['http_status']}")
    click.echo(f"  {summary['url']} -> {summary['final_url']}")
    click.echo(f"  {summary['started_at']} .. {summary['finished_at']}")
    click.echo(f"  manifest sha256 {summary['manifest_sha256']}")
    click.echo(f"  {stamp}")
    for step in summary["steps"]:
        mark = "ok  " if step["ok"] else "FAIL"
        click.echo(f"  {mark} {step['name']}{': ' + step['error'] if step['error'] else ''}")
    for art in summary["artifacts"]:
        click.echo(f"  {art['kind']:<20} {art['size']:>10}  {art['sha256']}")
    comparison = summary.get("comparison")
    if comparison:
        click.echo(f"  compared with the previous capture: {comparison.get('summary')}")
        for line in (comparison.get("text") or {}).get("diff") or []:
            click.echo(f"    {line}")


ROOM_WAIT_SECONDS = 300.0


@click.command("worker")
@click.option("--once", is_flag=True, help="Work until no job is runnable, then exit.")
@click.option("--concurrency", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Worker processes to run, each with its own browser.")
@click.option("--poll", type=float, default=2.0, show_default=True,
              help="Seconds between looks at the queue when it is empty.")
@click.option("--lease", type=click.FloatRange(1, 3600), default=LEASE_SECONDS,
              show_default=True,
              help="Seconds a claimed job stays this worker's without a renewal; after that "
              "another worker may take it over.")
@click.option("--room-wait", type=click.FloatRange(0, 86400), default=ROOM_WAIT_SECONDS,
              show_default=True,
              help="With --once: seconds to wait for room on a full disk to record a failure, "
              "before exiting with an error (the job is then taken up again once its lease "
              "runs out). A worker without --once waits as long as it takes.")
# Started by `serve` or `worker --concurrency N`, which stop it and kill it after a grace: a
# second signal, which may be the parent's SIGTERM after one that reached both, is ignored.
@click.option("--child", is_flag=True, hidden=True)
@click.pass_context
def worker(ctx: click.Context, once: bool, concurrency: int, poll: float, lease: float,
           room_wait: float, child: bool) -> None:
    """Run capture workers over the data home's job queue.

    SIGTERM or SIGINT stops a worker: it claims no other job, abandons a capture under way
    (nothing of it is recorded; the job goes back to the queue at once, the attempt not
    counted), closes its browser and exits 0. A second signal stops it at once (the job is then
    taken up again once its lease runs out).
    """
    if not once and ctx.get_parameter_source("room_wait") == ParameterSource.COMMANDLINE:
        raise click.UsageError("--room-wait applies to --once: a worker without it waits for "
                               "room as long as it takes")
    if concurrency > 1:
        _run_many(concurrency, once=once, poll=poll, lease=lease, room_wait=room_wait)
        return
    runtime = state().runtime
    # Heard from now on, though the browser takes seconds to start.
    stop = processes.StopRequest(at_once=None if child else LEFT_TO_LEASE)
    removed = runtime.store.clean_incoming()
    if removed:
        click.echo(f"removed {removed} unfinished blob write(s) a killed process left",
                   err=True)
    _sweep_left_folders()
    with BrowserSession(runtime.settings) as browser:
        w = CaptureWorker(runtime, browser, lease_seconds=lease)
        _stop_with(w, stop)
        click.echo(f"worker {w.worker_id} ({browser.version}) started", err=True)
        if not _work(w, stop, once=once, poll=poll, room_wait=room_wait):
            return
    assert stop.signal is not None
    click.echo(f"worker {w.worker_id} stopped ({stop.signal.name})", err=True)


def _work(w: CaptureWorker, stop: processes.StopRequest, *, once: bool, poll: float,
          room_wait: float) -> bool:
    """Carry out jobs until the queue is done (with `once`) or a stop is requested (True)."""
    runtime = w.runtime
    waiting = False
    while not stop.requested:
        _record_or_wait(w, poll, stop=stop, limit=room_wait if once else None)
        if stop.requested:
            break
        try:
            with runtime.session() as session:
                targets.schedule_due_watches(session)
            result = w.run_once()
        except StorageFull as exc:
            # Nothing was claimed: a one-shot run stops, saying why, and loses nothing; a
            # running worker works on the queue once there is room again.
            if once:
                raise
            if not waiting:
                click.echo(_waiting_for_room(exc, w), err=True)
            waiting = True
            stop.wait(poll)
            continue
        waiting = False
        if result is None:
            if once and not stop.requested:
                return False
            stop.wait(poll)
            continue
        if result.status == ABANDONED:
            click.echo(f"job {result.job_id}: abandoned, nothing of it recorded; "
                       f"{_fate(result)}", err=True)
            continue
        unrecorded = ("; the database is full: the job is marked failed once it has room"
                      if result.job_id in w.unrecorded else "")
        click.echo(f"job {result.job_id}: {result.status}"
                   f"{' (' + result.error + ')' if result.error else ''}{unrecorded}",
                   err=True)
    return True


@click.group("watch", cls=CaptureGroup)
def watch() -> None:
    """Watch pages: evidence watch URL --case REF --every 6h; change, stop and list watches."""


INTERVAL_HELP = (f"How often to re-capture: {targets.INTERVAL_FORMS} "
                 "(at least a minute, at most a year).")


@watch.command("url", hidden=True)
@click.argument("url")
@click.option("--case", "case_reference", metavar="REF", required=True)
@click.option("--every", "every", required=True, metavar="DURATION",
              help=INTERVAL_HELP)
@click.option("--reason", default="watched from the command line", show_default=True)
@click.option("--as", "as_user", metavar="NAME", help="Act as this user.")
def watch_url(url: str, case_reference: str, every: str, reason: str,
              as_user: str | None) -> None:
    """Flag URL and re-capture it on a schedule; a running worker carries the captures out."""
    seconds = targets.parse_interval(every)
    cli = state()
    if as_user:
        cli.actor_name = as_user
    with cli.acting() as (session, actor):
        case = cases.get_case(session, actor, case_reference)
        target, job = targets.flag(session, actor, case, url=url, reason=reason,
                                   watch_interval_seconds=seconds)
    click.echo(f"watching {url} every {targets.format_interval(seconds)} as target "
               f"{target.id}; first capture queued as job {job.id} (run `evidence worker` or "
               "`evidence serve` to carry it out)")


def _watched_target(session: Session, case: Case, which: str) -> Target:
    """The case's target by its id, or by its URL."""
    try:
        return targets.get_target(session, case, uuid.UUID(which))
    except ValueError:
        pass
    found = targets.find_url_target(session, case, which)
    if found is None:
        raise NotFound(f"no target {which!r} in case {case.reference!r}")
    return found


def _change_watch(which: str, case_reference: str, every: str | None, reason: str) -> None:
    seconds = None if every is None else targets.parse_interval(every)
    with state().acting() as (session, actor):
        case = cases.get_case(session, actor, case_reference)
        target = _watched_target(session, case, which)
        cancelled = targets.change_watch(session, actor, case, target, every_seconds=seconds,
                                         reason=reason)
        label = target.url or str(target.id)
    if seconds is None:
        click.echo(f"stopped watching {label}"
                   + (f"; {len(cancelled)} queued re-capture(s) cancelled" if cancelled else ""))
    else:
        click.echo(f"watching {label} every {targets.format_interval(seconds)}")


@acting_command(watch, "stop")
@click.argument("which", metavar="URL-OR-TARGET-ID")
@click.option("--case", "case_reference", metavar="REF", required=True)
@click.option("--reason", required=True, help="Why: taken down for good, operation ended ...")
def watch_stop(which: str, case_reference: str, reason: str) -> None:
    """Stop re-capturing a watched target; re-captures queued and not started are cancelled."""
    _change_watch(which, case_reference, None, reason)


@acting_command(watch, "change")
@click.argument("which", metavar="URL-OR-TARGET-ID")
@click.option("--case", "case_reference", metavar="REF", required=True)
@click.option("--every", "every", required=True, metavar="DURATION",
              help=INTERVAL_HELP)
@click.option("--reason", required=True)
def watch_change(which: str, case_reference: str, every: str, reason: str) -> None:
    """Re-capture a flagged target at another interval (or watch an unwatched one again)."""
    _change_watch(which, case_reference, every, reason)


def _moment(at: datetime | None) -> str:
    return "--" if at is None else f"{at:%Y-%m-%d %H:%M} UTC"


@acting_command(watch, "list")
@click.option("--case", "case_reference", metavar="REF", default=None,
              help="Only this case's watches (default: every case you are a member of).")
def watch_list(case_reference: str | None) -> None:
    """What is watched: the interval, when the next re-capture is due, the last capture."""
    with state().acting() as (session, actor):
        case = None if case_reference is None else cases.get_case(session, actor,
                                                                   case_reference)
        rows = [(w.case_reference, str(w.target.id),
                 targets.format_interval(w.target.watch_interval_seconds or 0),
                 _moment(w.next_due_at) if w.case_open else "case closed",
                 _moment(w.last_captured_at), w.target.url or "--")
                for w in targets.watched_targets(session, actor, case)]
    if not rows:
        click.echo("nothing is watched")
        return
    click.echo(f"{'case':<14} {'target':<36} {'every':<6} {'next due':<20} "
               f"{'last capture':<20} url")
    for reference, target_id, every, due, last, url in rows:
        click.echo(f"{reference:<14} {target_id:<36} {every:<6} {due:<20} {last:<20} {url}")


def _run_many(count: int, *, once: bool, poll: float, lease: float, room_wait: float) -> None:
    """One process per worker: a browser that crashes takes only its own process down."""
    settings = state().settings
    env = {**os.environ, "EVIDENCE_HOME": str(settings.home_path)}
    if settings.database_url:
        env["EVIDENCE_DATABASE_URL"] = settings.database_url
    args = [sys.executable, "-m", "evidence", "worker", "--child", "--poll", str(poll),
            "--lease", str(lease)]
    if once:
        args += ["--once", "--room-wait", str(room_wait)]
    # A second signal ends this process at once; each worker is then sent SIGTERM, its own
    # second signal if it was stopping already.
    stop = processes.StopRequest(at_once=f"the workers stop with it; {LEFT_TO_LEASE}")
    children = [processes.start_child(args, env) for _ in range(count)]
    codes = processes.wait_children(children, stop)
    if codes is None:
        processes.stop_children(children)
        assert stop.signal is not None
        click.echo(f"{counted(count, 'worker')} stopped ({stop.signal.name})", err=True)
        return
    failed = [c for c in codes if c != 0]
    if failed:
        raise click.ClickException(f"{len(failed)} of {count} workers exited with an error")
