"""The `evidence` command: the core's commands, plus those other packages register.

Commands parse their input, call one service in one transaction and print the result. An
expected failure prints one line and exits non-zero; it never shows a traceback.
"""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, TextIO, TypeVar

import click
from pydantic import ValidationError
from sqlalchemy.exc import DatabaseError, OperationalError
from sqlalchemy.orm import Session

from evidence import __version__, cases, custody, manifests, migrate, targets, users
from evidence.bundle_verifier import input_refusal
from evidence.db import make_engine, storage_full
from evidence.errors import AccessDenied, EvidenceError
from evidence.home import Runtime, init_home, open_runtime
from evidence.models import Access, Case, Target, User
from evidence.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])
ENTRY_POINT_GROUP = "evidence.commands"


@dataclass
class CliState:
    overrides: dict[str, Any] = field(default_factory=dict)
    actor_name: str | None = None
    _settings: Settings | None = None
    _runtime: Runtime | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            try:
                self._settings = Settings(**self.overrides)
            except ValidationError as exc:
                raise click.ClickException(f"bad setting: {exc.errors()[0]['msg']}") from exc
        return self._settings

    @property
    def runtime(self) -> Runtime:
        if self._runtime is None:
            self._runtime = open_runtime(self.settings)
        return self._runtime

    @contextmanager
    def acting(self) -> Iterator[tuple[Session, User]]:
        """One transaction, with the acting user resolved inside it."""
        with self.runtime.session() as session:
            name = self.actor_name or self.settings.user
            yield session, users.resolve_actor(session, name)

    def close(self) -> None:
        if self._runtime is not None:
            self._runtime.close()


class EvidenceGroup(click.Group):
    """Turns the project's expected errors into one line on stderr and a non-zero exit."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except EvidenceError as exc:
            raise click.ClickException(exc.message) from exc
        except OperationalError as exc:
            settings = getattr(ctx.obj, "_settings", None)
            full = None if settings is None else storage_full(exc, settings.effective_database_url)
            if full is not None:
                raise click.ClickException(full.message) from exc
            raise click.ClickException(f"database unavailable: {exc.orig}") from exc
        except DatabaseError as exc:  # a file that is no database, a damaged one
            raise click.ClickException(f"database unusable: {exc.orig}") from exc


class RootGroup(EvidenceGroup):
    """The core's commands, plus those other packages register; a plugin is imported only when
    its command runs (or help lists it), so `evidence verify` does not start by loading the
    browser driver and the web framework."""

    def _plugins(self) -> dict[str, Any]:
        return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self._plugins()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = self.commands.get(cmd_name)
        if command is not None:
            return command
        point = self._plugins().get(cmd_name)
        if point is None:
            return None
        try:
            command = point.load()
        except Exception as exc:  # a broken plugin must not take the core commands down
            click.echo(f"warning: command {cmd_name!r} unavailable: {exc}", err=True)
            return None
        assert isinstance(command, click.Command)
        self.add_command(command, cmd_name)
        return command


class NothingChecked(click.ClickException):
    """`evidence verify` could not check the bundle at all (it cannot be read, or an option's
    file is not what the option takes): status 2, as verify.py's, apart from 1 for a bundle
    that was checked and is not verified."""

    exit_code = 2


def _refuse_special(value: Any, *, folder_ok: bool,
                    refusal_error: type[click.ClickException] = click.ClickException) -> None:
    if isinstance(value, str | Path) and str(value) != "-":
        refusal = input_refusal(str(value), folder_ok=folder_ok)
        if refusal is not None:
            raise refusal_error(f"{value}: {refusal}")


class InputPath(click.Path):
    """A path the command reads. A named pipe, device or socket is refused in one line instead:
    reading it would wait for a writer that never comes, or never end."""

    refusal_error: type[click.ClickException] = click.ClickException

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Any:
        converted = super().convert(value, param, ctx)
        _refuse_special(value, folder_ok=self.dir_okay, refusal_error=self.refusal_error)
        return converted


class VerifyInput(InputPath):
    """A path `evidence verify` reads: refused with status 2, nothing having been checked."""

    refusal_error = NothingChecked


class InputFile(click.File):
    """`InputPath`, opened for the command; `-` is stdin, read as given."""

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Any:
        _refuse_special(value, folder_ok=False)  # before the open, which would block on a pipe
        return super().convert(value, param, ctx)


def _set_home(ctx: click.Context, _param: click.Parameter, value: Path | None) -> None:
    if value is not None:
        ctx.ensure_object(CliState).overrides["home"] = value


def _set_actor(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value:
        ctx.ensure_object(CliState).actor_name = value


home_option = click.option(
    "--home", type=click.Path(path_type=Path, file_okay=False), expose_value=False,
    callback=_set_home, is_eager=True,
    help="Data home (default $EVIDENCE_HOME or ./evidence-data).",
)
actor_option = click.option(
    "--as", "as_user", metavar="NAME", expose_value=False, callback=_set_actor,
    help="Act as this user (default $EVIDENCE_USER, else the first admin).",
)


def acting_command(group: click.Group, *args: Any, **kwargs: Any) -> Callable[[F], F]:
    """A subcommand that records its actions under a user; takes --as and --home itself too."""

    def decorate(fn: F) -> F:
        command: F = group.command(*args, **kwargs)(actor_option(home_option(fn)))
        return command

    return decorate


_TARGETS_FLAG = "evidence.targets"


def targets_option(fn: F) -> F:
    """`--targets ID [ID ...]` (commas work too). A click option takes one value, so the ids
    are the command's trailing arguments, accepted only after `--targets`; the command gets
    them parsed as `target_ids: list[uuid.UUID]`."""

    def parse(ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> Any:
        flagged = ctx.meta.get(_TARGETS_FLAG, False)
        ids = _uuids(values, "target")
        if values and not flagged:
            raise click.UsageError(f"unexpected argument {values[0]!r}: target ids go after "
                                   "--targets")
        if flagged and not ids:
            raise click.UsageError("--targets needs at least one target id")
        return ids

    fn = click.argument("target_ids", nargs=-1, callback=parse, expose_value=True,
                        metavar="[--targets ID...]")(fn)
    def remember(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
        ctx.meta[_TARGETS_FLAG] = value

    decorated: F = click.option(
        "--targets", is_flag=True, is_eager=True, expose_value=False, callback=remember,
        help="Only these targets: their ids follow (ID ID ... or ID,ID,...).",
    )(fn)
    return decorated


def state() -> CliState:
    return click.get_current_context().ensure_object(CliState)


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False, default=str))


@click.group(cls=RootGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="evidence")
@home_option
@actor_option
@click.pass_context
def main_group(ctx: click.Context) -> None:
    """evidence-locker: preserve online evidence and run the cases built on it."""
    ctx.ensure_object(CliState)
    ctx.call_on_close(ctx.obj.close)


@main_group.command("init")
@home_option
@click.option("--admin", "admin_name", default="admin", show_default=True,
              help="Name of the first admin user.")
@click.option("--unit", default=None, help="The admin's unit.")
def init_command(admin_name: str, unit: str | None) -> None:
    """Create the data home: database, blob store, signing key and a first admin."""
    report = init_home(state().settings, admin_name=admin_name, unit=unit)
    if not report.changed:
        click.echo(f"{report.home} is already initialised; nothing changed.")
        return
    for line in report.done:
        click.echo(f"  {line}")
    if report.admin_token:
        click.echo("")
        click.echo(f"Admin {report.admin_name!r} API token (shown once, keep it safe):")
        click.echo(f"  {report.admin_token}")
        click.echo(f"For the web UI, set a password: evidence user password {report.admin_name}")
    click.echo(f"Data home ready at {report.home}")


@main_group.group("db", cls=EvidenceGroup)
def db_group() -> None:
    """Database schema."""


@db_group.command("upgrade")
@home_option
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Run the Alembic migrations up to REVISION."""
    engine = make_engine(state().settings.effective_database_url)
    try:
        before, after = migrate.upgrade(engine, revision)
    finally:
        engine.dispose()
    if before == after:
        click.echo(f"database already at {after}; nothing changed.")
    else:
        click.echo(f"database migrated from {before or 'empty'} to {after}")


@db_group.command("current")
@home_option
def db_current() -> None:
    """Show the schema revision of the database and of the code."""
    engine = make_engine(state().settings.effective_database_url)
    try:
        current = migrate.current_revision(engine)
    finally:
        engine.dispose()
    click.echo(f"database: {current or 'empty'}; code: {migrate.head_revision()}")


@main_group.group("case", cls=EvidenceGroup)
def case_group() -> None:
    """Cases: create, update, list, show, close."""


def case_detail_options(fn: F) -> F:
    """The options `case create` and `case update` share: what the case says of its offence."""
    options = [
        click.option("--offence", default=None),
        click.option("--jurisdiction", default=None, metavar="CC", help="ISO 3166 country code."),
        click.option("--handling-code", default=None),
        click.option("--facts", default=None, metavar="TEXT",
                     help="Summary of the facts, as legal requests state them."),
        click.option("--facts-file", type=InputFile("r", encoding="utf-8"), default=None,
                     metavar="FILE", help="The summary of the facts from a file (- for stdin)."),
        click.option("--provision", default=None, metavar="TEXT",
                     help='The statutory provision, e.g. "§ 96 AufenthG".'),
        click.option("--max-penalty-years", default=None, metavar="N",
                     help="Maximum custodial penalty in years (0 < N <= 100)."),
        click.option("--contact", default=None, metavar="TEXT",
                     help="Whom another unit should call when deconfliction finds this case "
                     "(default: whoever opened it)."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _case_details(offence: str | None, jurisdiction: str | None, handling_code: str | None,
                  facts: str | None, facts_file: TextIO | None, provision: str | None,
                  max_penalty_years: str | None, contact: str | None) -> dict[str, str]:
    """The options given, by the case's field names; an empty value clears a field."""
    if facts is not None and facts_file is not None:
        raise click.UsageError("give the facts with --facts or --facts-file, not both")
    if facts_file is not None:
        facts = facts_file.read()
    given = {"offence": offence, "jurisdiction": jurisdiction, "handling_code": handling_code,
             "facts": facts, "offence_provision": provision,
             "max_penalty_years": max_penalty_years, "contact": contact}
    return {name: value for name, value in given.items() if value is not None}


@acting_command(case_group, "create")
@click.argument("reference")
@click.option("--title", required=True)
@case_detail_options
def case_create(
    reference: str, title: str, offence: str | None, jurisdiction: str | None,
    handling_code: str | None, facts: str | None, facts_file: TextIO | None,
    provision: str | None, max_penalty_years: str | None, contact: str | None,
) -> None:
    """Open a case; you become its manager."""
    details = _case_details(offence, jurisdiction, handling_code, facts, facts_file, provision,
                            max_penalty_years, contact)
    with state().acting() as (session, actor):
        case = cases.create_case(
            session, actor, reference=reference, title=title, offence=details.get("offence"),
            jurisdiction=details.get("jurisdiction"), handling_code=details.get("handling_code"),
            facts=details.get("facts"), offence_provision=details.get("offence_provision"),
            max_penalty_years=details.get("max_penalty_years"), contact=details.get("contact"),
        )
    click.echo(f"case {case.reference} created (id {case.id})")


@acting_command(case_group, "update")
@click.argument("reference")
@click.option("--title", default=None)
@case_detail_options
def case_update(
    reference: str, title: str | None, offence: str | None, jurisdiction: str | None,
    handling_code: str | None, facts: str | None, facts_file: TextIO | None,
    provision: str | None, max_penalty_years: str | None, contact: str | None,
) -> None:
    """Change what the case says (managers); only the options given change, "" clears one."""
    changes: dict[str, str | float | None] = {
        **_case_details(offence, jurisdiction, handling_code, facts, facts_file, provision,
                        max_penalty_years, contact)}
    if title is not None:
        changes["title"] = title
    if not changes:
        raise click.UsageError("nothing to change: give at least one option")
    with state().acting() as (session, actor):
        case = cases.case_for(session, actor, reference)
        before = {name: getattr(case, name) for name in changes}
        cases.update_case(session, actor, case, changes)
        changed = sorted(name for name in changes if getattr(case, name) != before[name])
    click.echo(f"case {reference} updated: {', '.join(changed)}" if changed
               else f"case {reference}: nothing changed")


@acting_command(case_group, "list")
@click.option("--json", "as_json", is_flag=True)
def case_list(as_json: bool) -> None:
    """The cases you are a member of."""
    with state().acting() as (session, actor):
        found = cases.list_cases(session, actor)
        rows = [
            {"reference": c.reference, "title": c.title, "status": c.status,
             "jurisdiction": c.jurisdiction, "created_at": c.created_at.isoformat()}
            for c in found
        ]
    if as_json:
        _echo_json(rows)
        return
    if not rows:
        click.echo("no cases")
        return
    for r in rows:
        click.echo(f"{r['reference']:<20} {r['status']:<7} {r['jurisdiction'] or '--':<5} "
                   f"{str(r['created_at'])[:19]}  {r['title']}")


@acting_command(case_group, "show")
@click.argument("reference")
@click.option("--json", "as_json", is_flag=True)
def case_show(reference: str, as_json: bool) -> None:
    """A case and its custody history."""
    with state().acting() as (session, actor):
        case, history = cases.view_case(session, actor, reference)
        entries = [custody.describe(e) for e in history]
        info = {
            "reference": case.reference, "id": str(case.id), "title": case.title,
            "offence": case.offence, "offence_provision": case.offence_provision,
            "max_penalty_years": case.max_penalty_years, "facts": case.facts,
            "jurisdiction": case.jurisdiction, "status": case.status,
            "owning_unit": case.owning_unit, "contact": case.contact,
            "created_at": case.created_at.isoformat(),
        }
    if as_json:
        _echo_json({**info, "custody": entries})
        return
    for key, value in info.items():
        if value is None:
            value = "--"
        elif key == "max_penalty_years":
            value = f"{value:g}"
        # Multi-line facts stay indented under their label.
        text = str(value).replace("\n", "\n" + " " * 19)
        click.echo(f"{key + ':':<19}{text}")
    click.echo("\ncustody history:")
    for e in entries:
        who = e["actor"]["name"] if e.get("actor") else "system"
        obj = e.get("object") or {}
        what = f" {obj.get('type')} {obj.get('id')}" if obj else ""
        click.echo(f"  #{e['case_seq']:<4} seq {e['seq']:<6} {e['at']}  {who:<12} "
                   f"{e['action']}{what}")


def _change_status(reference: str, reason: str | None, close: bool) -> None:
    with state().acting() as (session, actor):
        case = cases.get_case(session, actor, reference)
        (cases.close_case if close else cases.reopen_case)(session, actor, case, reason=reason)
        said = custody.describe(custody.entries_for_object(session, case, "case", case.id)[-1])
        left = [] if close else [(t.url or f"target {t.id}", str(t.id),
                                  _interval_before_close(session, case, t))
                                 for t in targets.watches_stopped_by_close(session, case)]
    click.echo(f"case {reference} {'closed' if close else 'reopened'}")
    details = said["details"]
    if close and (details["watches_stopped"] or details["jobs_cancelled"]):
        click.echo(f"  {len(details['watches_stopped'])} watch(es) stopped, "
                   f"{len(details['jobs_cancelled'])} capture(s) not yet started cancelled")
    elif left:
        click.echo(f"  {len(left)} watch(es) stopped when the case closed stay stopped; to watch "
                   "one again, run its command with your reason:")
        for label, target_id, every in left:
            click.echo(f"    {label} (was every {every}):")
            click.echo(f"      evidence watch change {target_id} --case {reference} "
                       f"--every {every} --reason TEXT")


def _interval_before_close(session: Session, case: Case, target: Target) -> str:
    """How often the target was watched until the case's closing stopped it."""
    stops = [c for c in targets.watch_history(session, case, target) if c.action == "stopped"]
    seconds = stops[-1].old_interval_seconds if stops else None
    return "DURATION" if seconds is None else targets.format_interval(seconds)


@acting_command(case_group, "close")
@click.argument("reference")
@click.option("--reason", default=None)
def case_close(reference: str, reason: str | None) -> None:
    """Close a case: it then refuses new targets and captures."""
    _change_status(reference, reason, close=True)


@acting_command(case_group, "reopen")
@click.argument("reference")
@click.option("--reason", default=None)
def case_reopen(reference: str, reason: str | None) -> None:
    """Reopen a closed case."""
    _change_status(reference, reason, close=False)


@acting_command(case_group, "add-member")
@click.argument("reference")
@click.argument("user_name", metavar="USER")
@click.option("--access", type=click.Choice(["read", "write", "manage"]), default="read",
              show_default=True)
def case_add_member(reference: str, user_name: str, access: str) -> None:
    """Give a user access to a case."""
    with state().acting() as (session, actor):
        case = cases.get_case(session, actor, reference)
        member = users.get_user(session, user_name)
        cases.add_member(session, actor, case, member, access)
    click.echo(f"{user_name} has {access} access to case {reference}")


@main_group.group("custody", cls=EvidenceGroup)
def custody_group() -> None:
    """The tamper-evident custody log."""


@custody_group.command("verify")
@home_option
@click.option("--case", "case_reference", default=None, metavar="REF",
              help="Check one case's chain and its inclusion in the latest checkpoint.")
@click.option("--against-checkpoint", "kept", default=None, metavar="FILE",
              type=InputPath(exists=True, dir_okay=False, path_type=Path),
              help="A checkpoint kept outside the system (custody checkpoint --json): the log "
                   "must still hold every entry it covered, unchanged.")
@click.option("--json", "as_json", is_flag=True)
def custody_verify(case_reference: str | None, kept: Path | None, as_json: bool) -> None:
    """Recompute every hash, chain, Merkle root, checkpoint signature and timestamp."""
    runtime = state().runtime
    against = None if kept is None else _json_file(kept)
    with runtime.read_session() as session:  # on SQLite, recording goes on meanwhile
        report = custody.verify_log(
            session, runtime.verifier, case_reference=case_reference,
            tsa_trust=manifests.trusted_roots(runtime.settings), against=against,
            progress=None if as_json else (lambda msg: click.echo(msg, err=True)))
    if as_json:
        _echo_json({
            "ok": report.ok, "summary": report.summary(), "entries": report.entries,
            "cases": report.cases, "checkpoints": report.checkpoints, "sealed": report.sealed,
            "timestamped": report.timestamped,
            "checker": "compiled" if report.compiled else "python",
            "problems": [{"seq": p.seq, "message": p.message} for p in report.problems],
        })
    else:
        click.echo(report.summary())
        first = report.first_problem
        for problem in (p for p in report.problems if p is not first):
            where = f"seq {problem.seq}: " if problem.seq is not None else ""
            click.echo(f"  also: {where}{problem.message}", err=True)
    if not report.ok:
        sys.exit(1)


@main_group.group("store", cls=EvidenceGroup)
def store_group() -> None:
    """The blob store that holds every captured file, request document and bundle."""


@acting_command(store_group, "check")
@click.option("--case", "case_reference", default=None, metavar="REF",
              help="Check one case's blobs (its members may); without it, every blob (admins "
                   "and auditors).")
@click.option("--json", "as_json", is_flag=True)
def store_check(case_reference: str | None, as_json: bool) -> None:
    """Re-hash every blob the database refers to and check every capture's seal: name each
    blob missing or altered, and each capture that no longer says what it signed. The check is
    recorded in the custody log."""
    from evidence import fixity

    cli = state()
    progress = None if as_json else (lambda msg: click.echo(msg, err=True))
    report = fixity.check_store(cli.runtime, cli.actor_name or cli.settings.user,
                                case_reference=case_reference, progress=progress)
    if as_json:
        _echo_json({
            "ok": report.ok, "summary": report.summary(), "blobs": report.blobs,
            "bytes": report.bytes, "seals": report.seals,
            "problems": [{"sha256": p.sha256, "problem": p.problem, "detail": p.detail,
                          "held_by": p.held_by} for p in report.problems],
        })
    else:
        click.echo(report.summary())
        for problem in report.problems[1:]:
            click.echo(f"  also: {problem.line()}", err=True)
    if not report.ok:
        sys.exit(1)


@main_group.group("material", cls=EvidenceGroup)
def material_group() -> None:
    """Received material: files a platform sent in answer to a legal request, or that came
    from another source (a witness, another agency), kept as evidence of the case."""


PROGRESS_STEP = 64 * 1024 * 1024  # a line on stderr per this many bytes of a large file


def _progress_of(path: Path) -> Callable[[int], None]:
    total = path.stat().st_size
    said = 0

    def progress(done: int) -> None:
        nonlocal said
        if total > PROGRESS_STEP and (done - said >= PROGRESS_STEP or done == total):
            said = done
            click.echo(f"{path.name}: {done // 2**20} of {total // 2**20} MiB", err=True)

    return progress


@acting_command(material_group, "add")
@click.argument("reference", metavar="CASE")
@click.argument("files", nargs=-1, required=True, metavar="FILE...",
                type=InputPath(exists=True, dir_okay=False, path_type=Path))
@click.option("--request", "request_ref", default=None, metavar="REF",
              help="The legal request it answers (reference number or id).")
@click.option("--source", default=None, metavar="TEXT",
              help="Where it came from, for material not answering a request.")
@click.option("--received-at", "received_at", required=True, metavar="ISO",
              help="When the unit received it (ISO 8601; UTC unless an offset is given).")
@click.option("--via", type=click.Choice(["portal", "email", "medium", "other"]), required=True,
              help="Downloaded from the platform's portal, by e-mail, on a physical medium, "
                   "or other (say how with --via-detail).")
@click.option("--via-detail", default=None, metavar="TEXT")
@click.option("--platform-reference", default=None, metavar="X",
              help="The platform's reference for its answer.")
@click.option("--fulfil", is_flag=True,
              help="Also record the request (sent or acknowledged) as fulfilled, at --received-at.")
def material_add(reference: str, files: tuple[Path, ...], request_ref: str | None,
                 source: str | None, received_at: str, via: str, via_detail: str | None,
                 platform_reference: str | None, fulfil: bool) -> None:
    """Keep each FILE as received material of CASE: its bytes in the store, its SHA-256 and a
    material.received entry in the custody log. Each file is one step: one refused (the same
    file again, say) stops the command, and the files before it stay kept."""
    from evidence import received

    cli = state()
    when = received.parse_moment(received_at)
    for number, path in enumerate(files, 1):
        with cli.acting() as (session, actor), path.open("rb") as stream:
            case = cases.case_for(session, actor, reference, need=Access.WRITE)
            done = received.register(
                session, actor, case, stream, store=cli.runtime.store, filename=path.name,
                received_at=when, via=via, request=request_ref, source=source,
                via_detail=via_detail, platform_reference=platform_reference,
                fulfil=fulfil and number == len(files), progress=_progress_of(path))
        click.echo(f"{done.row.sha256}  {done.row.size:>12}  {path.name}  (id {done.row.id})")
    if fulfil and request_ref:
        click.echo(f"request {request_ref} recorded as fulfilled")


@acting_command(material_group, "list")
@click.argument("reference", metavar="CASE")
@click.option("--request", "request_ref", default=None, metavar="REF",
              help="Only what answers this request.")
@click.option("--json", "as_json", is_flag=True)
def material_list(reference: str, request_ref: str | None, as_json: bool) -> None:
    """The case's received material with its SHA-256 and size, in the order received."""
    from evidence import received, requests

    with state().acting() as (session, actor):
        case = cases.case_for(session, actor, reference)
        request_id = None
        if request_ref:
            row, owner = requests.request_for(session, actor, request_ref)
            if owner.id != case.id:
                raise AccessDenied(f"no request {request_ref} in case {case.reference!r}")
            request_id = row.id
        items = received.described(
            session, received.list_received(session, actor, case, request_id=request_id))
    if as_json:
        _echo_json(items)
        return
    if not items:
        click.echo(f"case {case.reference} holds no received material")
    for i in items:
        origin = f"request {i['request']}" if i["request"] else f"source: {i['source']}"
        click.echo(f"{i['sha256']}  {i['size']:>12}  {i['received_at']}  {i['via']:<6}  "
                   f"{i['filename']!r}  ({origin})")


@acting_command(main_group, "backup")
@click.argument("dest", metavar="DEST", type=click.Path(path_type=Path, file_okay=False))
@click.option("--json", "as_json", is_flag=True)
def backup_command(dest: Path, as_json: bool) -> None:
    """Copy the whole home to DEST, a new folder, while the system runs (admins): one consistent
    snapshot of the database, every blob it refers to re-hashed, the keys. The copy's custody
    log is verified before DEST gets its name; the copy is a data home of its own."""
    from evidence import backup

    cli = state()
    progress = None if as_json else (lambda msg: click.echo(msg, err=True))
    report = backup.backup_home(cli.runtime, cli.actor_name or cli.settings.user, dest,
                                progress=progress)
    if as_json:
        _echo_json({"ok": True, "destination": report.destination, "entries": report.entries,
                    "tree_size": report.tree_size, "root_hash": report.root_hash,
                    "blobs": report.blobs, "bytes": report.bytes,
                    "manifest_sha256": report.manifest_sha256})
    else:
        click.echo(report.summary())


@custody_group.command("checkpoint")
@home_option
@click.option("--json", "as_json", is_flag=True,
              help="Print the checkpoint as JSON: keep it to check later bundles against it.")
def custody_checkpoint(as_json: bool) -> None:
    """Sign the log as it stands now."""
    runtime = state().runtime
    with runtime.session() as session:
        cp = custody.cut_checkpoint(session, runtime.signer, origin=runtime.settings.origin,
                                    timestamp=manifests.timestamper(runtime.settings))
        document = custody.checkpoint_document(cp)
    if as_json:
        _echo_json(document)
    else:
        click.echo(f"checkpoint: {document['tree_size']} entries, root {document['root_hash']}")


@custody_group.command("consistency")
@home_option
@click.option("--from", "old_size", type=click.IntRange(min=1), required=True, metavar="N",
              help="Size of the older checkpoint (the one you kept).")
@click.option("--to", "new_size", type=click.IntRange(min=1), default=None, metavar="M",
              help="Size of the newer checkpoint (default: the latest).")
def custody_consistency(old_size: int, new_size: int | None) -> None:
    """Print a proof that the log of size N is a prefix of the log of size M (RFC 9162)."""
    runtime = state().runtime
    with runtime.session() as session:
        if new_size is None:
            latest = custody.latest_checkpoint(session)
            if latest is None:
                raise click.ClickException("no checkpoint yet; run `evidence custody checkpoint`")
            new_size = latest.tree_size
        proof = custody.consistency_proof(session, old_size, new_size)
    _echo_json({"old_size": old_size, "new_size": new_size, "path": [h.hex() for h in proof]})


@acting_command(main_group, "export")
@click.argument("reference", metavar="REF")
@click.option("--out", "out", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="The bundle file to write (a ZIP); never overwritten.")
@targets_option
@click.option("--json", "as_json", is_flag=True)
def export_command(reference: str, out: Path, target_ids: list[uuid.UUID],
                   as_json: bool) -> None:
    """Write a case's evidence bundle, verifiable offline by anyone."""
    from evidence import bundles

    cli = state()
    progress = None if as_json else (lambda msg: click.echo(msg, err=True))
    result = bundles.export_case(
        cli.runtime, cli.actor_name or cli.settings.user, reference=reference, out=out,
        target_ids=target_ids or None, progress=progress,
    )
    summary = {"export_id": str(result.export_id), "path": str(result.path),
               "sha256": result.sha256, "size": result.size, "exhibits": result.exhibits,
               "received": result.received, "received_left_out": result.received_left_out,
               "custody_entries": result.entries, "checkpoint_size": result.checkpoint_size}
    if as_json:
        _echo_json(summary)
    else:
        left = (f" ({result.received_left_out} of the case's left out: not about these targets)"
                if result.received_left_out else "")
        click.echo(f"bundle {result.path}: {result.exhibits} exhibits, {result.received} "
                   f"received files{left}, {result.entries} custody entries, {result.size} "
                   f"bytes\nsha256 {result.sha256}")


def _uuids(values: tuple[str, ...], what: str) -> list[uuid.UUID]:
    out = []
    for value in values:
        for part in value.split(","):
            if not part.strip():
                continue
            try:
                out.append(uuid.UUID(part.strip()))
            except ValueError as exc:
                raise click.ClickException(f"{part.strip()!r} is not a {what} id") from exc
    return out


VERIFY_EXIT_STATUS = (
    "Exit status: 0 when every check holds (VERIFIED); 1 when the bundle was checked and is NOT "
    "VERIFIED (the report names each problem, and any check it could not run); 2 when nothing "
    "could be checked: the bundle is missing, unreadable or not a bundle, or an option's file "
    "is not what the option takes. verify.py, shipped in every bundle, exits the same way."
)


@main_group.command("verify", epilog=VERIFY_EXIT_STATUS)
@click.argument("bundle", type=VerifyInput(path_type=Path, exists=True))
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
@click.option("--against-checkpoint", "old_checkpoint", metavar="OLD.json",
              type=VerifyInput(path_type=Path, dir_okay=False, exists=True),
              help="A checkpoint kept earlier: prove the bundle's log extends it unchanged.")
@click.option("--consistency-proof", "proof_file", metavar="FILE",
              type=VerifyInput(path_type=Path, dir_okay=False, exists=True),
              help="The proof from `evidence custody consistency` for --against-checkpoint.")
@click.option("--key", "key_file", metavar="PEM",
              type=VerifyInput(path_type=Path, dir_okay=False, exists=True),
              help="Pin the signing key instead of trusting the one in the bundle.")
@click.option("--trust-tsa", "tsa_files", metavar="PEM", multiple=True,
              type=VerifyInput(path_type=Path, dir_okay=False, exists=True),
              help="Also trust this timestamp authority certificate.")
def verify_command(bundle: Path, as_json: bool, old_checkpoint: Path | None,
                   proof_file: Path | None, key_file: Path | None,
                   tsa_files: tuple[Path, ...]) -> None:
    """Check a bundle offline: no database, no data home, no network."""
    from evidence import bundle_verifier

    try:
        key_pem = None if key_file is None else key_file.read_bytes()
        tsa_pems = [p.read_bytes() for p in tsa_files]
        against = None if old_checkpoint is None else _json_file(old_checkpoint)
        consistency = None if proof_file is None else _json_file(proof_file)
    except OSError as exc:
        raise NothingChecked(f"{exc.filename}: cannot be read ({exc.strerror or exc}); nothing "
                             "was checked") from exc
    except click.ClickException as exc:
        raise NothingChecked(f"{exc.message}; nothing was checked") from exc
    for option, path, doc in (("--against-checkpoint", old_checkpoint, against),
                              ("--consistency-proof", proof_file, consistency)):  # fmt: skip
        if doc is not None and not isinstance(doc, dict):
            raise NothingChecked(f"{option} {path}: not a JSON object; nothing was checked")
    if key_pem is not None and (problem := bundle_verifier.key_problem(key_pem)):
        raise NothingChecked(f"--key {key_file}: {problem}; nothing was checked")
    report = bundle_verifier.verify_bundle(
        bundle,
        key_pem=key_pem,
        trusted_tsa_pems=tsa_pems,
        against_checkpoint=against,
        consistency_proof=consistency,
        progress=None if as_json else (lambda msg: click.echo(msg, err=True)),
    )
    if as_json:
        _echo_json(report.to_json())
    else:
        click.echo(report.render())
    if report.unreadable:
        sys.exit(2)
    if not report.ok:
        sys.exit(1)


def _json_file(path: Path) -> Any:
    try:
        return json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise click.ClickException(f"{path} is not a readable JSON file: {exc}") from exc


@main_group.group("search", cls=EvidenceGroup)
def search_group() -> None:
    """Search captured text across your cases; keep the search index complete."""


@search_group.command("reindex")
@home_option
@click.option("--rebuild", is_flag=True,
              help="Forget the whole index first and build it again (after the text "
                   "normalisation changed).")
def search_reindex(rebuild: bool) -> None:
    """Index captures the search index lacks (those recorded before migration 0005)."""
    from evidence import search

    runtime = state().runtime
    if rebuild:
        with runtime.session() as session:
            search.clear_index(session)
    seen, after = 0, None
    while True:
        with runtime.session() as session:
            count, after = search.reindex(session, runtime.store, after=after)
        seen += count
        if after is None:
            break
    click.echo(f"{seen} captures looked at; the search index is complete.")


@acting_command(search_group, "text")
@click.argument("query")
@click.option("--case", "case_reference", default=None, metavar="REF", help="Only this case.")
@click.option("--host", "hosts", multiple=True, metavar="HOST",
              help="Only captures of this host or its subdomains (repeatable).")
@click.option("--limit", type=click.IntRange(1, 200), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def search_text(query: str, case_reference: str | None, hosts: tuple[str, ...], limit: int,
                as_json: bool) -> None:
    """Captures whose text matches QUERY, newest first, in the cases you are a member of."""
    from evidence import search

    with state().acting() as (session, actor):
        case = None if case_reference is None else cases.case_for(session, actor, case_reference)
        results = search.search_text(session, actor, query, case=case,
                                     hosts=list(hosts) or None, limit=limit)
    if as_json:
        _echo_json([{"capture_id": str(h.capture_id), "case": h.case_reference, "url": h.url,
                     "host": h.host, "captured_at": h.captured_at.isoformat(),
                     "snippet": h.snippet, "highlights": h.highlights}
                    for h in results.items])
        return
    if not results.items:
        click.echo("no captures match.")
    for h in results.items:
        click.echo(f"{h.captured_at:%Y-%m-%d %H:%M}Z  {h.case_reference}  {h.capture_id}  {h.url}")
        click.echo(f"    {' '.join(h.snippet.split())}")


def _load_plugins(group: click.Group) -> None:
    """Import every plugin command now, for callers that look in `group.commands` directly."""
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        group.get_command(ctx, name)


def main() -> None:
    main_group(prog_name="evidence")
