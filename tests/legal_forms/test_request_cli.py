"""`evidence request ...` end to end in a temporary data home: new, route, status, due, extend."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from evidence import cases, users
from evidence.cli import _load_plugins, main_group
from evidence.home import open_runtime
from evidence.models import Access, Role
from evidence.settings import Settings
from tests.factories import AUTHORITY_FIELDS, make_request_world

REFERENCE = "OP-2026-31"
AUTHORITY_ENV = {f"EVIDENCE_AUTHORITY_{k.split('.', 1)[1].upper()}": v
                 for k, v in AUTHORITY_FIELDS.items()}
PERIOD = ("--from", "2025-09-01", "--to", "2026-03-01")


@dataclass
class Home:
    path: Path
    env: dict[str, str]

    def run(self, *args: str, **extra_env: str) -> Result:
        _load_plugins(main_group)
        return CliRunner().invoke(main_group, list(args), env={**self.env, **extra_env},
                                  catch_exceptions=False)

    def json(self, *args: str) -> Any:
        result = self.run(*args, "--json")
        assert result.exit_code == 0, result.output
        return json.loads(result.output)


@pytest.fixture
def home(tmp_path: Path, backend: str, database_url: str) -> Iterator[Home]:
    path = tmp_path / "home"
    env = {"EVIDENCE_HOME": str(path), "EVIDENCE_USER": "", **AUTHORITY_ENV}
    if backend == "postgresql":
        env["EVIDENCE_DATABASE_URL"] = database_url
    made = Home(path, env)
    assert made.run("init", "--home", str(path)).exit_code == 0
    settings = Settings(home=path, database_url=env.get("EVIDENCE_DATABASE_URL"))
    runtime = open_runtime(settings)
    try:
        with runtime.session() as session:
            admin = users.first_admin(session)
            assert admin is not None
            make_request_world(session, runtime.store, actor=admin, reference=REFERENCE)
    finally:
        runtime.close()
    yield made


def _add_supervisor(home: Home, name: str) -> None:
    """A supervisor with write access to the case, to act as with `--as`."""
    runtime = open_runtime(Settings(home=home.path,
                                    database_url=home.env.get("EVIDENCE_DATABASE_URL")))
    try:
        with runtime.session() as session:
            admin = users.first_admin(session)
            assert admin is not None
            supervisor = users.create_user(session, admin, name=name, role=Role.SUPERVISOR)
            case = cases.get_case(session, admin, REFERENCE)
            cases.add_member(session, admin, case, supervisor, Access.WRITE)
    finally:
        runtime.close()


def _pdftotext(path: Path) -> str:
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True,
                          text=True, check=True).stdout


def test_new_writes_the_pdf_and_its_json(home: Home, tmp_path: Path) -> None:
    out = tmp_path / "out" / "preserve-x.pdf"
    fields = tmp_path / "fields.json"
    fields.write_text(json.dumps({"issuing.file_number": "from the file"}), "utf-8")
    info = home.json("request", "new", "--case", REFERENCE, "--kind", "provider-preservation",
                     "--platform", "x", *PERIOD, "--fields", str(fields),
                     "--field", "issuing.file_number=BPOL-2026-114", "--out", str(out))
    assert info["reference"] == f"{REFERENCE}-PRES-1" and info["status"] == "draft"
    json_path = out.with_suffix(".json")
    assert info["pdf"] == str(out) and info["json"] == str(json_path)
    assert hashlib.sha256(out.read_bytes()).hexdigest() == info["pdf_sha256"]
    assert hashlib.sha256(json_path.read_bytes()).hexdigest() == info["json_sha256"]
    assert json.loads(json_path.read_text("utf-8"))["reference"] == info["reference"]
    assert info["date_from"] == "2025-09-01T00:00:00+00:00"
    assert info["date_to"] == "2026-03-01T23:59:59+00:00"
    again = home.run("request", "new", "--case", REFERENCE, "--kind", "provider-preservation",
                     "--platform", "x", *PERIOD, "--out", str(out))
    assert again.exit_code != 0 and "never overwritten" in again.output
    if shutil.which("pdftotext"):
        text = _pdftotext(out)
        assert "https://x.com/smuggler_ar/status/1789" in "".join(text.split())
        assert "Bundespolizeidirektion Pirna" in text  # from EVIDENCE_AUTHORITY_NAME
        assert "UTC" in text


def test_missing_fields_are_all_listed_and_the_exit_is_non_zero(home: Home,
                                                                 tmp_path: Path) -> None:
    out = tmp_path / "epoc.pdf"
    result = home.run("request", "new", "--case", REFERENCE, "--kind", "eu-epoc-pr",
                      "--platform", "x", "--out", str(out), EVIDENCE_AUTHORITY_NAME="",
                      EVIDENCE_AUTHORITY_EMAIL="")
    assert result.exit_code != 0
    for expected in ("issuing authority: name is not set (this request's issuing.name, or "
                     "the unit's standing details in the settings)", "issuing authority: email",
                     "Give a field with --field NAME=VALUE", "EVIDENCE_AUTHORITY_*",
                     "Summary of the facts",
                     "Applicable statutory provision", "Designated establishment",
                     "File number of the issuing authority"):
        assert expected in result.output, expected
    assert "Traceback" not in result.output
    assert not out.exists() and not out.with_suffix(".json").exists()


def test_route_takes_platforms_and_country_from_the_case(home: Home) -> None:
    result = home.run("request", "route", "--case", REFERENCE)
    assert result.exit_code == 0, result.output
    assert "x (issuing country DE):" in result.output
    assert "facebook (issuing country DE):" in result.output
    assert "eu-epoc-pr" in result.output
    only = home.json("request", "route", "--platform", "x", "--issuing-country", "DK")
    assert "eu-epoc-pr" not in {s["kind"] for s in only}


def test_lifecycle_due_extend_and_stats(home: Home, tmp_path: Path) -> None:
    out = tmp_path / "x.pdf"
    made = home.json("request", "new", "--case", REFERENCE, "--kind", "provider-preservation",
                     "--platform", "x", *PERIOD, "--out", str(out))
    ident = made["id"]
    early = home.run("request", "extend", ident, "--out", str(tmp_path / "too-early.pdf"))
    assert early.exit_code != 0 and "only a sent preservation" in early.output
    skipped = home.run("request", "status", ident, "sent")
    assert skipped.exit_code != 0 and "cannot become sent" in skipped.output
    # The admin drafted it, so another approves it (four eyes).
    own = home.run("request", "status", ident, "approved")
    assert own.exit_code != 0 and "Traceback" not in own.output
    assert "four eyes: you drafted request" in own.output
    _add_supervisor(home, "boss")
    assert home.run("request", "status", ident, "approved", "--as", "boss").exit_code == 0
    sent = home.run("request", "status", made["reference"], "sent", "--reference", "X-77")
    assert sent.exit_code == 0 and "is now sent" in sent.output
    due = home.json("request", "due", "--within", "100d")
    assert [d["deadline"] for d in due] == ["ask for an extension before", "preservation ends"]
    assert "evidence request extend" in due[0]["action"]
    assert "nothing due within 14d" in home.run("request", "due").output

    ext = tmp_path / "renewal.pdf"
    extension = home.json("request", "extend", ident, "--out", str(ext))
    assert extension["previous_request_id"] == ident and ext.exists()
    if shutil.which("pdftotext"):
        assert made["reference"] in _pdftotext(ext)

    listed = home.json("request", "list", "--case", REFERENCE)
    assert [r["reference"] for r in listed] == [made["reference"], extension["reference"]]
    shown = home.json("request", "show", ident)
    assert shown["platform_reference"] == "X-77" and shown["status"] == "sent"
    assert "no-longer-held" in home.run("request", "refusals").output
    refused = home.run("request", "status", ident, "refused", "--refusal", "not-stored,other",
                       "--answer", "gone")
    assert refused.exit_code == 0, refused.output
    stats = home.json("request", "stats")
    assert stats[0]["platform"] == "x" and stats[0]["total"] == 2

    # A wrong draft is withdrawn, saying why; without the reason it is refused in one line.
    wrong = home.json("request", "new", "--case", REFERENCE, "--kind", "provider-preservation",
                      "--platform", "x", *PERIOD, "--out", str(tmp_path / "wrong.pdf"))
    bare = home.run("request", "status", wrong["id"], "withdrawn")
    assert bare.exit_code != 0 and "needs the reason" in bare.output
    assert "Traceback" not in bare.output
    withdrawn = home.json("request", "status", wrong["id"], "withdrawn",
                          "--reason", "Drafted for the wrong account.")
    assert withdrawn["status"] == "withdrawn" and withdrawn["due_at"] is None
    assert withdrawn["withdrawn"]["reason"] == "Drafted for the wrong account."


def test_a_renewal_sent_late_says_so_on_the_command_line(home: Home, tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from evidence import requests

    _add_supervisor(home, "boss")
    runtime = open_runtime(Settings(home=home.path,
                                    database_url=home.env.get("EVIDENCE_DATABASE_URL")))
    start = datetime.now(UTC) - timedelta(days=100)
    try:
        with runtime.session() as session:
            admin = users.first_admin(session)
            boss = users.get_user(session, "boss")
            assert admin is not None
            case = cases.get_case(session, admin, REFERENCE)
            first = requests.generate(
                session, admin, case, store=runtime.store, settings=runtime.settings,
                kind="provider-preservation", platform="x", fields=AUTHORITY_FIELDS,
                date_from=datetime(2025, 9, 1, tzinfo=UTC),
                date_to=datetime(2026, 3, 1, tzinfo=UTC), now=start).request
            requests.change_status(session, boss, case, first.id, "approved", at=start)
            requests.change_status(session, admin, case, first.id, "sent", at=start)
            ends = requests.period_end(session, first)
            assert ends is not None
            renewal = requests.extend(session, admin, first.id, store=runtime.store,
                                      now=ends - timedelta(days=2)).request
            requests.change_status(session, boss, case, renewal.id, "approved",
                                   at=ends - timedelta(days=1))
            ident = str(renewal.id)
    finally:
        runtime.close()
    when = ends.strftime("%Y-%m-%d %H:%M UTC")
    sent = home.run("request", "status", ident, "sent")
    assert sent.exit_code == 0, sent.output
    assert "is now sent" in sent.output
    assert "recorded as sent late: sent " in sent.output
    assert f"after the preservation it extends ended on {when}" in sent.output
    shown = home.run("request", "show", ident)
    assert "sent late: sent " in shown.output and f"ended on {when}" in shown.output
    due = home.run("request", "due", "--within", "200d")
    assert "not a continuation: sent " in due.output and f"ended on {when}" in due.output


def test_python_m_evidence_runs_the_same_command(home: Home, tmp_path: Path) -> None:
    out = tmp_path / "sub.pdf"
    env = {**os.environ, **home.env}
    done = subprocess.run(
        [sys.executable, "-m", "evidence", "request", "new", "--case", REFERENCE, "--kind",
         "provider-preservation", "--platform", "facebook", *PERIOD, "--out", str(out)],
        capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"{REFERENCE}-PRES-1" in done.stdout and out.exists()
