"""The command line of two lifecycles as an operator meets it, run as real `evidence` processes
on SQLite and on PostgreSQL: a watch changed, stopped and listed (`evidence watch change|stop|
list`), what closing and reopening a case say about its watches, and a user disabled and enabled
(`evidence user disable|enable`). What is checked is what the operator sees: the lines printed,
the exit code, a refusal as one line on stderr with nothing changed, and what the API and `--as`
then accept."""

from __future__ import annotations

import shlex
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select

from api.app import create_app
from evidence import jobs, targets
from evidence.home import open_runtime
from evidence.models import CaptureJob, utcnow
from tests.capture import test_worker
from tests.capture.test_worker import CASE, _settings, db
from tests.capture.worker_helpers import Home

# Never fetched: no worker runs in these tests, the first captures stay queued.
ADVERT = "http://127.0.0.1:9/advert"
SHOP = "http://127.0.0.1:9/shop"
# A data home made by `evidence init` with the case CASE, driven through the real command.
home = test_worker.home
LIST_HEADER = ("case           target                               every  next due             "
               "last capture         url")


def refused(home: Home, *args: str, code: int = 1) -> str:
    """Run a command that must be refused; the one line it says on stderr."""
    done = home.run(*args)
    assert done.returncode == code, (args, done.returncode, done.stdout, done.stderr)
    assert done.stdout == "", done.stdout
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    if code == 1:
        assert len(lines) == 1, done.stderr
    return lines[-1]


def watch(home: Home, url: str, every: str) -> str:
    """`evidence watch URL`; the new target's id."""
    said = home.ok("watch", url, "--case", CASE, "--every", every)
    assert said.startswith(f"watching {url} every {every} as target "), said
    return said.split(" as target ")[1].split(";")[0]


def listed(home: Home, *args: str) -> list[list[str]]:
    """`evidence watch list`'s rows, split into case, target, every, next due, last, url."""
    lines = home.ok("watch", "list", *args).splitlines()
    if lines == ["nothing is watched"]:
        return []
    assert lines[0] == LIST_HEADER, lines
    rows = []
    for line in lines[1:]:
        reference, target_id, every, *rest = line.split()
        # Each moment is DATE TIME UTC, or -- ; the URL is last.
        rows.append([reference, target_id, every, " ".join(rest[:-1]), rest[-1]])
    return rows


def due(home: Home, target_id: str, every: timedelta) -> str:
    """When the schedule queues the target's next re-capture, as the list prints it: its newest
    job's time plus the interval."""
    with db(home) as session:
        newest = session.scalars(
            select(CaptureJob.created_at).where(CaptureJob.target_id == uuid.UUID(target_id))
            .order_by(CaptureJob.created_at.desc())).first()
    assert newest is not None
    return f"{newest + every:%Y-%m-%d %H:%M} UTC"


# --- watch change, stop, list -------------------------------------------------------------------


def test_a_watch_is_listed_changed_and_stopped_as_each_command_says(home: Home) -> None:
    assert home.ok("watch", "list") == "nothing is watched\n"
    advert = watch(home, ADVERT, "6h")
    shop = watch(home, SHOP, "1d")
    assert listed(home) == [
        [CASE, advert, "6h", f"{due(home, advert, timedelta(hours=6))} --", ADVERT],
        [CASE, shop, "1d", f"{due(home, shop, timedelta(days=1))} --", SHOP],
    ]

    assert home.ok("watch", "change", ADVERT, "--case", CASE, "--every", "2 hours",
                   "--reason", "the seller posts twice a day") == f"watching {ADVERT} every 2h\n"
    # By its id as well as by its URL; the next re-capture follows the new interval.
    assert home.ok("watch", "change", advert, "--case", CASE, "--every", "90m",
                   "--reason", "posts more often") == f"watching {ADVERT} every 90m\n"
    assert listed(home, "--case", CASE)[0] == [
        CASE, advert, "90m", f"{due(home, advert, timedelta(minutes=90))} --", ADVERT]

    assert home.ok("watch", "stop", ADVERT, "--case", CASE,
                   "--reason", "taken down for good") == f"stopped watching {ADVERT}\n"
    assert [row[1] for row in listed(home)] == [shop]
    # A stopped watch can be started again, at an interval of one's choosing.
    assert home.ok("watch", "change", advert, "--case", CASE, "--every", "١٢h",
                   "--reason", "the advert is back") == f"watching {ADVERT} every 12h\n"
    assert [(row[1], row[2]) for row in listed(home)] == [(advert, "12h"), (shop, "1d")]


def test_stopping_a_watch_says_how_many_queued_recaptures_it_cancelled(home: Home) -> None:
    advert = watch(home, ADVERT, "1h")
    with db(home) as session:  # the first capture done, then the schedule queues the next
        first = session.scalars(select(CaptureJob.id)).one()
        assert jobs.claim_next(session, worker="w", job_id=first) is not None
        jobs.complete(session, job_id=first, worker="w")
    with db(home) as session:
        assert len(targets.schedule_due_watches(session, now=utcnow() + timedelta(hours=2))) == 1
    assert home.ok("watch", "stop", advert, "--case", CASE, "--reason", "operation ended") == (
        f"stopped watching {ADVERT}; 1 queued re-capture(s) cancelled\n")
    assert listed(home) == []


def test_each_refused_watch_change_is_one_line_and_changes_nothing(home: Home) -> None:
    advert = watch(home, ADVERT, "6h")
    before = listed(home)
    change = ("watch", "change", ADVERT, "--case", CASE)
    assert refused(home, *change, "--every", "2h", code=2) == "Error: Missing option '--reason'."
    assert refused(home, "watch", "stop", ADVERT, "--case", CASE,
                   code=2) == "Error: Missing option '--reason'."
    assert refused(home, *change, "--every", "2h", "--reason", "  ") == (
        "Error: say why the watch is changed or stopped")
    assert refused(home, *change, "--every", "6h", "--reason", "again") == (
        f"Error: target {advert} is already watched every 6h")
    assert refused(home, *change, "--every", "6 hourly", "--reason", "x") == (
        "Error: duration '6 hourly' must look like 90s, 15m, 6h, 1d, or 90 seconds, "
        "15 minutes, 6 hours, 1 day")
    assert refused(home, *change, "--every", "12", "--reason", "x") == (
        "Error: duration '12' needs a unit: 12m for minutes or 12h for hours; accepted: 90s, "
        "15m, 6h, 1d, or 90 seconds, 15 minutes, 6 hours, 1 day")
    assert refused(home, *change, "--every", "30s", "--reason", "x") == (
        "Error: watch interval must be at least 60 seconds")
    assert refused(home, "watch", "change", f"{ADVERT}/other", "--case", CASE, "--every", "2h",
                   "--reason", "x") == f"Error: no target '{ADVERT}/other' in case '{CASE}'"
    unknown = str(uuid.uuid4())
    assert refused(home, "watch", "stop", unknown, "--case", CASE, "--reason", "x") == (
        f"Error: no target {unknown} in case '{CASE}'")
    assert refused(home, "watch", "stop", ADVERT, "--case", "OP-NONE", "--reason", "x") == (
        "Error: no case 'OP-NONE'")
    home.ok("user", "add", "rita", "--role", "investigator")
    home.ok("case", "add-member", CASE, "rita", "--access", "read")
    assert refused(home, "watch", "stop", ADVERT, "--case", CASE, "--reason", "x",
                   "--as", "rita") == f"Error: case '{CASE}' needs write access; you have read"
    assert listed(home) == before

    home.ok("watch", "stop", ADVERT, "--case", CASE, "--reason", "taken down")
    assert refused(home, "watch", "stop", ADVERT, "--case", CASE, "--reason", "again") == (
        f"Error: target {advert} is not watched")
    assert listed(home) == []


# --- case close and reopen ---------------------------------------------------------------------


def test_closing_stops_the_watches_and_reopening_prints_the_commands_that_restart_them(
    home: Home,
) -> None:
    advert = watch(home, ADVERT, "90m")
    shop = watch(home, SHOP, "1d")
    assert home.ok("case", "close", CASE, "--reason", "suspects charged") == (
        f"case {CASE} closed\n  2 watch(es) stopped, 2 capture(s) not yet started cancelled\n")
    assert listed(home) == [] and listed(home, "--case", CASE) == []
    assert refused(home, "watch", "change", advert, "--case", CASE, "--every", "1h",
                   "--reason", "x") == f"Error: case '{CASE}' is closed"

    said = home.ok("case", "reopen", CASE, "--reason", "a second seller").splitlines()
    assert said == [
        f"case {CASE} reopened",
        "  2 watch(es) stopped when the case closed stay stopped; to watch one again, run its "
        "command with your reason:",
        f"    {ADVERT} (was every 90m):",
        f"      evidence watch change {advert} --case {CASE} --every 90m --reason TEXT",
        f"    {SHOP} (was every 1d):",
        f"      evidence watch change {shop} --case {CASE} --every 1d --reason TEXT",
    ]
    assert listed(home) == []  # reopening restarted none

    # The printed command, as the operator copies it, with their reason for TEXT.
    command = shlex.split(said[3].replace("TEXT", "'the seller is active again'"))
    assert command[0] == "evidence"
    assert home.ok(*command[1:]) == f"watching {ADVERT} every 90m\n"
    assert [(row[1], row[2]) for row in listed(home)] == [(advert, "90m")]

    # Closed and reopened again: the restarted watch is stopped again, and is the only one named.
    home.ok("case", "close", CASE)
    again = home.ok("case", "reopen", CASE).splitlines()
    assert again[2:] == [f"    {ADVERT} (was every 90m):",
                         f"      evidence watch change {advert} --case {CASE} --every 90m "
                         "--reason TEXT"]


def test_a_case_without_watches_closes_and_reopens_in_one_line_each(home: Home) -> None:
    assert home.ok("case", "close", CASE) == f"case {CASE} closed\n"
    assert home.ok("case", "reopen", CASE) == f"case {CASE} reopened\n"
    assert refused(home, "case", "reopen", CASE) == f"Error: case '{CASE}' is already open"


# --- user disable and enable -------------------------------------------------------------------


def add_user(home: Home, name: str, role: str) -> str:
    """`evidence user add`; the API token it prints once."""
    said = home.ok("user", "add", name, "--role", role).splitlines()
    assert said[1] == "API token (shown once, keep it safe):", said
    return said[2].strip()


@contextmanager
def api(home: Home) -> Iterator[TestClient]:
    """The API over the home, as `evidence serve` builds it."""
    runtime = open_runtime(_settings(home))
    client = TestClient(create_app(runtime))
    try:
        yield client
    finally:
        client.close()
        runtime.close()


def cases_with(client: TestClient, token: str) -> int:
    answer = client.get("/api/cases", headers={"Authorization": f"Bearer {token}"})
    return answer.status_code


def test_a_disabled_user_is_refused_everywhere_until_enabled_again(home: Home) -> None:
    token = add_user(home, "alice", "investigator")
    home.ok("case", "add-member", CASE, "alice", "--access", "write")
    with api(home) as client:
        assert cases_with(client, token) == 200

    assert home.ok("user", "disable", "alice", "--reason", "left the unit") == (
        "user alice disabled; 1 API token(s) revoked, 0 open web session(s) ended\n")
    with api(home) as client:
        assert cases_with(client, token) == 401
    assert refused(home, "case", "list", "--as", "alice") == "Error: user 'alice' is disabled"
    assert refused(home, "--as", "alice", "watch", ADVERT, "--case", CASE, "--every", "1h") == (
        "Error: user 'alice' is disabled")
    assert listed(home) == []
    [row] = [line.split() for line in home.ok("user", "list").splitlines()
             if line.startswith("alice ")]
    assert row[4:] == ["disabled", "tokens:0"]

    assert home.ok("user", "enable", "alice", "--reason", "back from secondment") == (
        "user alice enabled; revoked API tokens stay revoked (`evidence user token alice` "
        "gives a new one)\n")
    # Her membership waited for her: she sees the case and can watch in it again.
    assert home.ok("case", "list", "--as", "alice").split()[0] == CASE
    home.ok("--as", "alice", "watch", ADVERT, "--case", CASE, "--every", "1h")
    new = home.ok("user", "token", "alice").splitlines()[1].strip()
    with api(home) as client:
        assert cases_with(client, token) == 401
        assert cases_with(client, new) == 200


def test_each_refused_disable_or_enable_is_one_line_and_changes_nothing(home: Home) -> None:
    add_user(home, "alice", "investigator")
    add_user(home, "carol", "supervisor")
    states = home.ok("user", "list")
    assert refused(home, "user", "disable", "alice", code=2) == (
        "Error: Missing option '--reason'.")
    assert refused(home, "user", "disable", "alice", "--reason", " ") == (
        "Error: say why the user is disabled")
    assert refused(home, "user", "disable", "nobody", "--reason", "x") == (
        "Error: no user 'nobody'")
    # The only admin, who made the home, hears first that no admin would be left (that
    # "another admin can" would be untrue): the service's own last-admin refusal.
    assert refused(home, "user", "disable", "admin", "--reason", "x") == (
        "Error: 'admin' is the last active admin; make another admin first, who can then "
        "disable you")
    assert refused(home, "user", "disable", "alice", "--reason", "x", "--as", "carol") == (
        "Error: only an admin may manage users; 'carol' is supervisor")
    assert refused(home, "user", "enable", "alice", "--reason", "x") == (
        "Error: 'alice' is not disabled")
    assert home.ok("user", "list") == states

    home.ok("user", "disable", "alice", "--reason", "left the unit")
    assert refused(home, "user", "disable", "alice", "--reason", "again") == (
        "Error: 'alice' is already disabled")
    assert refused(home, "user", "enable", "alice", code=2) == "Error: Missing option '--reason'."
    assert refused(home, "user", "enable", "alice", "--reason", "") == (
        "Error: say why the user is enabled")
    assert refused(home, "user", "enable", "alice", "--reason", "x", "--as", "carol") == (
        "Error: only an admin may manage users; 'carol' is supervisor")
    assert refused(home, "user", "enable", "nobody", "--reason", "x") == (
        "Error: no user 'nobody'")
    # With another admin, disabling oneself is refused as such: the other may do it.
    add_user(home, "bob", "admin")
    assert refused(home, "user", "disable", "admin", "--reason", "x") == (
        "Error: you cannot disable yourself; another admin can")
    # Another admin may disable the first one; then the first can act no more, and bob is the
    # last active admin.
    home.ok("user", "disable", "admin", "--reason", "retired", "--as", "bob")
    assert refused(home, "user", "list", "--as", "admin") == "Error: user 'admin' is disabled"
    assert refused(home, "user", "disable", "bob", "--reason", "x", "--as", "bob") == (
        "Error: 'bob' is the last active admin; make another admin first, who can then "
        "disable you")
