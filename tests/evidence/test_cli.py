"""The `evidence` command as a person uses it: init, cases, custody verify, and clear errors."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import text

from evidence import custody, db
from evidence.cli import _load_plugins, main_group
from evidence.db import make_engine
from tests.factories import drop_append_only


@dataclass
class Home:
    path: Path
    env: dict[str, str]
    database_url: str

    def run(self, *args: str, user: str | None = None) -> Result:
        env = dict(self.env)
        if user:
            env["EVIDENCE_USER"] = user
        _load_plugins(main_group)
        return CliRunner().invoke(main_group, list(args), env=env, catch_exceptions=False)


@pytest.fixture
def home(tmp_path: Path, backend: str, database_url: str) -> Iterator[Home]:
    path = tmp_path / "home"
    env = {"EVIDENCE_HOME": str(path), "EVIDENCE_USER": ""}
    url = f"sqlite:///{path / 'evidence.db'}"
    if backend == "postgresql":
        env["EVIDENCE_DATABASE_URL"] = url = database_url
    yield Home(path, env, url)


def test_init_makes_a_home_once(home: Home) -> None:
    first = home.run("init", "--home", str(home.path))
    assert first.exit_code == 0, first.output
    assert "API token (shown once" in first.output
    token = first.output.split("keep it safe):")[1].split()[0]
    assert token.startswith("evl_")
    key = home.path / "keys" / "signing.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert (home.path / "blobs").is_dir()
    before = {p: p.stat().st_mtime_ns for p in home.path.rglob("*") if p.is_file()}
    second = home.run("init", "--home", str(home.path))
    assert second.exit_code == 0
    assert "already initialised; nothing changed" in second.output
    assert token not in second.output
    after = {p: p.stat().st_mtime_ns for p in home.path.rglob("*") if p.is_file()}
    assert set(after) >= {key}
    assert before[key] == after[key]


def test_init_will_not_replace_a_lost_signing_key_of_a_home_with_signed_data(home: Home) -> None:
    assert home.run("init", "--home", str(home.path)).exit_code == 0
    keys = home.path / "keys"
    (keys / "signing.key").unlink()
    again = CliRunner().invoke(main_group, ["init", "--home", str(home.path)], env=home.env)
    assert again.exit_code == 1
    assert "signing key" in again.output and "is missing, but the database holds 1 checkpoints"\
        in again.output
    assert "Restore" in again.output and "Traceback" not in again.output
    assert not (keys / "signing.key").exists()


def test_a_database_file_that_is_no_database_is_one_line_not_a_traceback(home: Home) -> None:
    assert home.run("init", "--home", str(home.path)).exit_code == 0
    (home.path / "evidence.db").write_bytes(b"garbage, not SQLite\n" * 100)
    env = {**home.env, "EVIDENCE_DATABASE_URL": f"sqlite:///{home.path / 'evidence.db'}"}
    result = CliRunner().invoke(main_group, ["case", "list"], env=env)
    assert result.exit_code == 1
    assert "database unusable: file is not a database" in result.output
    assert "Traceback" not in result.output


def test_a_database_server_that_never_answers_fails_in_seconds_not_never(
        home: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    # A host that takes the connection and says nothing (a hung server, a firewall that
    # swallows packets): libpq would wait for ever without a connect timeout.
    assert home.run("init", "--home", str(home.path)).exit_code == 0
    monkeypatch.setattr(db, "PG_CONNECT_TIMEOUT_S", 1)
    with closing(socket.create_server(("127.0.0.1", 0))) as silent:
        port = silent.getsockname()[1]
        env = {**home.env, "EVIDENCE_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{port}/x"}
        results: list[Result] = []
        command = threading.Thread(target=lambda: results.append(
            CliRunner().invoke(main_group, ["case", "list"], env=env)), daemon=True)
        command.start()
        command.join(60)  # 1 s asked for; a minute only keeps a regression from hanging CI
    assert results, "the command still waits for a server that never answers"
    assert results[0].exit_code == 1
    assert "database unavailable: connection timeout expired" in results[0].output
    assert "Traceback" not in results[0].output


def test_commands_refuse_a_missing_home(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main_group, ["case", "list"], env={"EVIDENCE_HOME": str(tmp_path / "nowhere")}
    )
    assert result.exit_code == 1
    assert "run `evidence init" in result.output
    assert "Traceback" not in result.output


def test_case_lifecycle_from_the_command_line(home: Home) -> None:
    assert home.run("init").exit_code == 0
    created = home.run("case", "create", "OP-7", "--title", "Boat crossings",
                       "--offence", "smuggling of migrants", "--jurisdiction", "gr")
    assert created.exit_code == 0, created.output
    assert "case OP-7 created" in created.output

    duplicate = home.run("case", "create", "OP-7", "--title", "again")
    assert duplicate.exit_code == 1
    assert duplicate.output.strip() == "Error: case 'OP-7' already exists"

    unknown = home.run("case", "show", "NOPE-1")
    assert unknown.exit_code == 1
    assert unknown.output.strip() == "Error: no case 'NOPE-1'"

    listed = home.run("case", "list")
    assert "OP-7" in listed.output and "GR" in listed.output and "Boat crossings" in listed.output

    shown = home.run("case", "show", "OP-7")
    assert shown.exit_code == 0
    history = shown.output.split("custody history:")[1]
    assert [line.split()[4] for line in history.strip().splitlines()] == [
        "admin", "admin", "admin"]
    assert "case.created" in history and "case.member_added" in history
    assert "case.viewed" in history

    closed = home.run("case", "close", "OP-7", "--reason", "charged")
    assert closed.exit_code == 0
    again = home.run("case", "close", "OP-7")
    assert again.exit_code == 1 and "already closed" in again.output


def test_a_case_holds_its_offence_details_from_create_to_update(
        home: Home, tmp_path: Path) -> None:
    assert home.run("init").exit_code == 0
    facts = tmp_path / "facts.txt"
    facts.write_text("Adverts offer crossings for payment.\nThe same phone recurs.\n", "utf-8")
    created = home.run("case", "create", "OP-8", "--title", "Boats", "--offence", "smuggling",
                       "--provision", "§ 96 AufenthG", "--max-penalty-years", "10",
                       "--facts-file", str(facts))
    assert created.exit_code == 0, created.output
    shown = home.run("case", "show", "OP-8").output.split("custody history:")[0]
    assert "offence_provision: § 96 AufenthG" in shown
    assert "max_penalty_years: 10\n" in shown
    # Multi-line facts stay under their label.
    assert "facts:             Adverts offer crossings for payment.\n" in shown
    assert "\n                   The same phone recurs." in shown

    updated = home.run("case", "update", "OP-8", "--facts", "Only adverts.",
                       "--max-penalty-years", "5", "--provision", "§ 96 AufenthG")
    assert updated.exit_code == 0, updated.output
    assert updated.output.strip() == "case OP-8 updated: facts, max_penalty_years"
    assert home.run("case", "update", "OP-8", "--title", "Boats").output.strip() == (
        "case OP-8: nothing changed")
    cleared = home.run("case", "update", "OP-8", "--max-penalty-years", "")
    assert cleared.exit_code == 0, cleared.output
    shown_json = json.loads(home.run("case", "show", "OP-8", "--json").output)
    assert shown_json["facts"] == "Only adverts." and shown_json["max_penalty_years"] is None
    assert shown_json["offence_provision"] == "§ 96 AufenthG"
    assert [e["action"] for e in shown_json["custody"]].count("case.updated") == 2
    contact = home.run("case", "update", "OP-8", "--contact", "Duty desk +49 30 5555")
    assert contact.output.strip() == "case OP-8 updated: contact", contact.output
    assert "contact:           Duty desk +49 30 5555\n" in home.run("case", "show", "OP-8").output

    for args, message in [
        (("--max-penalty-years", "life"), "Error: maximum penalty 'life' is not a number"),
        (("--max-penalty-years", "0"), "more than 0 and at most 100 years"),
        (("--facts", "x", "--facts-file", str(facts)), "--facts or --facts-file, not both"),
        ((), "nothing to change"),
    ]:
        refused = home.run("case", "update", "OP-8", *args)
        assert refused.exit_code != 0 and message in refused.output, refused.output
        assert "Traceback" not in refused.output
    bad = home.run("case", "create", "OP-9", "--title", "t", "--max-penalty-years", "101")
    assert bad.exit_code == 1 and "at most 100 years" in bad.output
    assert home.run("case", "show", "OP-9").exit_code == 1  # nothing was made


def test_actions_are_recorded_under_the_acting_user(home: Home) -> None:
    assert home.run("init").exit_code == 0
    engine = make_engine(home.database_url)
    try:
        from evidence import users
        from evidence.db import make_session_factory, session_scope
        from evidence.models import Role

        with session_scope(make_session_factory(engine)) as s:
            users.create_user(s, None, name="nadia", role=Role.INVESTIGATOR, unit="Unit B")
    finally:
        engine.dispose()
    made = home.run("--as", "nadia", "case", "create", "N-1", "--title", "Fake papers")
    assert made.exit_code == 0, made.output
    mine = home.run("case", "list", user="nadia")
    assert "N-1" in mine.output
    theirs = home.run("case", "list")  # the admin is not a member: deny by default
    assert "N-1" not in theirs.output
    hidden = home.run("case", "show", "N-1")
    assert hidden.exit_code == 1 and "no case 'N-1'" in hidden.output
    shown = home.run("case", "show", "N-1", "--as", "nadia", "--json")
    assert '"name": "nadia"' in shown.output
    ghost = home.run("--as", "ghost", "case", "list")
    assert ghost.exit_code == 1 and "no user 'ghost'" in ghost.output


def test_custody_verify_passes_then_names_the_tampered_entry(
    home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert home.run("init").exit_code == 0
    assert home.run("case", "create", "T-1", "--title", "t").exit_code == 0
    assert home.run("case", "show", "T-1").exit_code == 0
    assert home.run("case", "show", "T-1").exit_code == 0
    sealed = home.run("custody", "checkpoint")
    assert sealed.exit_code == 0 and "entries, root" in sealed.output
    ok = home.run("custody", "verify")
    assert ok.exit_code == 0, ok.output
    assert ok.output.startswith("custody log verified:")
    assert len(ok.output.strip().splitlines()) == 1
    assert home.run("custody", "verify", "--case", "T-1").exit_code == 0
    # A long verify says how far it got, on stderr; none of that in the JSON.
    monkeypatch.setattr(custody, "PROGRESS_EVERY_SECONDS", 0)
    entries = int(ok.output.split()[3])
    shown = home.run("custody", "verify")
    assert shown.stdout.startswith("custody log verified:")
    assert shown.stderr.splitlines()[-1] == f"read {entries} of {entries} custody entries"
    assert home.run("custody", "verify", "--json").stderr == ""

    _edit_case_title_in_the_log(home)
    broken = home.run("custody", "verify")
    assert broken.exit_code == 1
    assert "custody log BROKEN" in broken.output
    assert "entry seq 3" in broken.output


def _edit_case_title_in_the_log(home: Home) -> None:
    """As an attacker with the database would: drop the guard, then change case T-1's title
    from "t" to "x" in entry seq 3, its creation (after the admin and its token)."""
    engine = make_engine(home.database_url)
    try:
        with engine.begin() as conn:
            drop_append_only(conn, "custody_entries")
            entry = bytes(conn.execute(
                text("SELECT entry FROM custody_entries WHERE seq = 3")).scalar_one())
            assert b'"title":"t"' in entry
            conn.execute(text("UPDATE custody_entries SET entry = :e WHERE seq = 3"),
                         {"e": entry.replace(b'"title":"t"', b'"title":"x"')})
    finally:
        engine.dispose()


def test_custody_checkpoint_refuses_to_sign_a_tampered_entry(home: Home) -> None:
    assert home.run("init").exit_code == 0  # signs the admin's entries
    assert home.run("case", "create", "T-1", "--title", "t").exit_code == 0
    engine = make_engine(home.database_url)
    try:
        with engine.connect() as conn:
            signed = conn.execute(text("SELECT count(*) FROM checkpoints")).scalar_one()
        # seq 3, the case's creation, is not yet signed.
        _edit_case_title_in_the_log(home)
        refused = home.run("custody", "checkpoint")
        assert refused.exit_code == 1
        assert refused.stderr.splitlines() == [
            "Error: checkpoint refused, nothing signed: the custody log is broken at entry seq "
            "3: entry bytes do not match its recorded hash (altered) (1 more problems). Run "
            "`evidence custody verify` and have the log examined."]
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM checkpoints")).scalar_one() == signed
    finally:
        engine.dispose()


def test_a_log_cut_back_or_wiped_is_found_by_a_kept_checkpoint_and_by_the_cases(
    home: Home, tmp_path: Path,
) -> None:
    """Someone with the database deletes the newest entries and the checkpoints that covered
    them (what is left verifies as a shorter log), or every entry and checkpoint. A checkpoint
    kept outside the system shows the first; the cases left without entries the second."""
    assert home.run("init").exit_code == 0
    assert home.run("case", "create", "T-1", "--title", "t").exit_code == 0
    assert home.run("case", "create", "T-2", "--title", "two").exit_code == 0
    kept_json = home.run("custody", "checkpoint", "--json")
    assert kept_json.exit_code == 0, kept_json.output
    kept = tmp_path / "kept.json"
    kept.write_text(kept_json.stdout)
    size = json.loads(kept_json.stdout)["tree_size"]
    held = home.run("custody", "verify", "--against-checkpoint", str(kept))
    assert held.exit_code == 0, held.output
    engine = make_engine(home.database_url)
    try:
        with engine.begin() as conn:
            drop_append_only(conn, "custody_entries")
            drop_append_only(conn, "checkpoints")
            # From T-2's creation on, and every checkpoint over those entries: what is left is
            # a whole, shorter log.
            first = conn.execute(text(
                "SELECT min(seq) FROM custody_entries WHERE case_id = "
                "(SELECT id FROM cases WHERE reference = 'T-2')")).scalar_one()
            conn.execute(text("DELETE FROM custody_entries WHERE seq >= :s"), {"s": first})
            conn.execute(text("DELETE FROM checkpoints WHERE tree_size >= :s"), {"s": first})
    finally:
        engine.dispose()
    cut = home.run("custody", "verify", "--against-checkpoint", str(kept))
    assert cut.exit_code == 1
    assert f"of the {size} entries the kept checkpoint covers" in cut.output
    assert "case 'T-2' is in the database but has no entry in the log" in cut.output
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM custody_entries"))
        conn.execute(text("DELETE FROM checkpoints"))
    engine.dispose()
    wiped = home.run("custody", "verify")
    assert wiped.exit_code == 1 and "custody log BROKEN" in wiped.output
    assert "case 'T-1' is in the database but has no entry in the log" in wiped.output
    bad = tmp_path / "bad.json"
    bad.write_text('{"tree_size": 3}')
    refused = home.run("custody", "verify", "--against-checkpoint", str(bad))
    assert refused.exit_code == 1 and "not a checkpoint as" in refused.output


def test_custody_verify_checks_each_checkpoints_timestamp(home: Home) -> None:
    """The local authority timestamps every checkpoint; a token moved onto another checkpoint,
    or one the system does not trust, is named although every signature still holds."""
    assert home.run("init").exit_code == 0
    assert home.run("case", "create", "T-1", "--title", "t").exit_code == 0
    assert home.run("custody", "checkpoint").exit_code == 0
    assert home.run("case", "show", "T-1").exit_code == 0
    assert home.run("custody", "checkpoint").exit_code == 0
    ok = home.run("custody", "verify", "--json")
    assert ok.exit_code == 0, ok.output
    report = json.loads(ok.output)
    assert report["checker"] == "compiled"  # the entries were certified by the compiled code
    # init's first checkpoint is cut without a timestamp; the two cut here have one each.
    assert (report["checkpoints"], report["timestamped"]) == (3, 2)
    assert "3 signed checkpoints (2 timestamped, latest covers" in report["summary"]
    engine = make_engine(home.database_url)
    try:
        with engine.begin() as conn:
            drop_append_only(conn, "checkpoints")
            # The third checkpoint's token, a real one of the trusted authority, on the second.
            conn.execute(text("UPDATE checkpoints SET timestamp_token = (SELECT timestamp_token "
                              "FROM checkpoints WHERE id = 3) WHERE id = 2"))
    finally:
        engine.dispose()
    broken = home.run("custody", "verify")
    assert broken.exit_code == 1
    assert broken.output.startswith("custody log BROKEN: checkpoint 2 (size ")
    assert "its timestamp does not hold" in broken.output
    # The home's authority is the one trusted: moved away, no token can be vouched for.
    (home.path / "tsa" / "tsa-ca-cert.pem").rename(home.path / "elsewhere.pem")
    untrusted = home.run("custody", "verify", "--json")
    assert untrusted.exit_code == 1
    assert json.loads(untrusted.output)["timestamped"] == 0


def test_serve_is_registered_by_the_api_package(home: Home) -> None:
    result = home.run("--help")
    assert "serve" in result.output and "case" in result.output and "custody" in result.output
    assert os.environ.get("EVIDENCE_HOME") != str(home.path)


def test_received_material_from_the_command_line(home: Home, tmp_path: Path) -> None:
    assert home.run("init").exit_code == 0
    assert home.run("case", "create", "OP-7", "--title", "Boat crossings").exit_code == 0
    ips, subscriber = tmp_path / "ip_log.csv", tmp_path / "subscriber.json"
    ips.write_bytes(b"ip,at\n203.0.113.7,2026-02-28T22:14:09Z\n")
    subscriber.write_bytes(b'{"id": "1234567890"}')
    common = ["--received-at", "2026-03-01T10:00", "--via", "medium"]
    added = home.run("material", "add", "OP-7", str(ips), str(subscriber), "--source",
                     "USB stick from the Hellenic Police", *common)
    assert added.exit_code == 0, added.output
    for path in (ips, subscriber):
        data = path.read_bytes()
        assert f"{hashlib.sha256(data).hexdigest()}  {len(data):>12}  {path.name}" in added.output

    listed = home.run("material", "list", "OP-7")
    assert listed.exit_code == 0
    lines = listed.output.strip().splitlines()
    assert [line.split()[:2] for line in lines] == [
        [hashlib.sha256(p.read_bytes()).hexdigest(), str(p.stat().st_size)]
        for p in (ips, subscriber)]
    assert "2026-03-01T10:00:00+00:00" in lines[0] and "Hellenic Police" in lines[0]
    as_json = json.loads(home.run("material", "list", "OP-7", "--json").output)
    assert [i["filename"] for i in as_json] == ["ip_log.csv", "subscriber.json"]

    again = home.run("material", "add", "OP-7", str(ips), "--source",
                     "USB stick from the Hellenic Police", *common)
    assert again.exit_code == 1
    assert "already registered" in again.output and "'ip_log.csv'" in again.output
    no_source = home.run("material", "add", "OP-7", str(ips), *common)
    assert no_source.exit_code == 1 and "needs its source" in no_source.output
    unknown = home.run("material", "add", "OP-7", str(ips), "--request", "OP-7-EPOC-9", *common)
    assert unknown.exit_code == 1 and unknown.output.strip() == "Error: no request OP-7-EPOC-9"
    assert len(json.loads(home.run("material", "list", "OP-7", "--json").output)) == 2


@contextmanager
def _special_files(tmp_path: Path, every_kind: bool) -> Iterator[list[tuple[Path, str]]]:
    """A named pipe nobody writes to; with `every_kind`, also a socket and a device that never
    ends. Each with how a refusal names it."""
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    if not every_kind:
        yield [(fifo, "a named pipe (FIFO)")]
        return
    # A socket's path must be short (about 100 bytes): pytest's folders are too long.
    with tempfile.TemporaryDirectory() as short, socket.socket(socket.AF_UNIX) as listening:
        sock = Path(short) / "s.json"
        listening.bind(str(sock))
        yield [(fifo, "a named pipe (FIFO)"), (sock, "a socket"),
               (Path("/dev/zero"), "a character device")]


# Each takes its path through the same types (`InputPath`, `InputFile` for stdin's sake): every
# kind of special file for one of each, a pipe for the others.
@pytest.mark.parametrize(("command", "every_kind"), [
    (("verify", "{path}"), True),
    (("verify", "{file}", "--key", "{path}"), False),
    (("verify", "{file}", "--trust-tsa", "{path}"), False),
    (("verify", "{file}", "--against-checkpoint", "{path}", "--consistency-proof", "{file}"),
     False),
    (("verify", "{file}", "--against-checkpoint", "{file}", "--consistency-proof", "{path}"),
     False),
    (("custody", "verify", "--against-checkpoint", "{path}"), False),
    (("case", "create", "OP-1", "--title", "t", "--facts-file", "{path}"), True),
    (("case", "update", "OP-1", "--facts-file", "{path}"), False),
    (("request", "new", "--case", "OP-1", "--kind", "provider-preservation", "--platform", "x",
      "--fields", "{path}", "--out", "{out}"), False),
    (("material", "add", "OP-1", "{file}", "{path}", "--source", "a witness", "--received-at",
      "2026-03-01T10:00", "--via", "medium"), True),
], ids=lambda value: value if isinstance(value, bool) else " ".join(
    c for c in value if not c.startswith("{")))
def test_commands_refuse_to_read_a_pipe_a_socket_or_a_device(
    tmp_path: Path, command: tuple[str, ...], every_kind: bool,
) -> None:
    """Reading a named pipe waits for a writer that never comes; /dev/zero never ends. Each is
    refused in one line, before anything is read or any home opened."""
    file = tmp_path / "file.json"
    file.write_text("{}")
    env = {**os.environ, "EVIDENCE_HOME": str(tmp_path / "home")}
    with _special_files(tmp_path, every_kind) as special:
        for path, kind in special:
            args = [a.format(path=path, file=file, out=tmp_path / "out.pdf") for a in command]
            result = subprocess.run([sys.executable, "-m", "evidence", *args], env=env,
                                    text=True, capture_output=True, timeout=60)
            # `evidence verify` exits as verify.py does: 2, nothing was checked.
            assert result.returncode == (2 if args[0] == "verify" else 1), result.stderr
            wanted = "regular file or folder" if args[:2] == ["verify", str(path)] \
                else "regular file"
            assert result.stderr == f"Error: {path}: is {kind}, not a {wanted}; not read\n"
            assert result.stdout == ""
    assert not (tmp_path / "home").exists()


def test_facts_can_still_come_from_stdin(home: Home) -> None:
    assert home.run("init").exit_code == 0
    made = CliRunner().invoke(main_group, ["case", "create", "OP-1", "--title", "t",
                                           "--facts-file", "-"],
                              input="what happened\n", env=home.env, catch_exceptions=False)
    assert made.exit_code == 0, made.output
    shown = home.run("case", "show", "OP-1", "--json")
    assert json.loads(shown.stdout)["facts"] == "what happened"


def test_verify_refuses_a_key_that_cannot_be_the_unit_s_before_checking(tmp_path: Path) -> None:
    """`evidence verify --key` given the unit's private key: one line saying so, no report of a
    bundle whose every signature fails. Needs no home or database."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = tmp_path / "signing.key"
    key.write_bytes(ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))  # fmt: skip
    bundle = tmp_path / "bundle.zip"
    bundle.write_bytes(b"not read")
    _load_plugins(main_group)
    result = CliRunner().invoke(main_group, ["verify", str(bundle), "--key", str(key)])
    assert result.exit_code == 2  # as verify.py: nothing was checked
    assert result.stdout == ""
    assert result.stderr == (f"Error: --key {key}: is a private key, not a public key: give the "
                             "unit's public key, the file that begins -----BEGIN PUBLIC "
                             "KEY-----; nothing was checked\n")


def test_verify_exits_as_verify_py_does_on_what_it_cannot_check(tmp_path: Path) -> None:
    """2 when nothing could be checked, 1 only for a bundle checked and not verified, the same
    from `evidence verify` and from the verify.py a defence expert runs; the help says which."""
    from evidence import bundle_verifier

    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not a ZIP at all")
    not_json = tmp_path / "old.json"
    not_json.write_text("{kept")
    a_list = tmp_path / "list.json"
    a_list.write_text("[]")
    env = {**os.environ, "EVIDENCE_HOME": str(tmp_path / "home")}
    for args in ([str(junk)], [str(tmp_path / "absent.zip")], [str(tmp_path)],
                 [str(junk), "--against-checkpoint", str(not_json)],
                 [str(junk), "--consistency-proof", str(a_list)]):  # fmt: skip
        ours = subprocess.run([sys.executable, "-m", "evidence", "verify", *args], env=env,
                              text=True, capture_output=True, timeout=60)
        theirs = subprocess.run([sys.executable, bundle_verifier.__file__, *args], text=True,
                                capture_output=True, timeout=60)
        assert (ours.returncode, theirs.returncode) == (2, 2), (args, ours.stderr, ours.stdout)
    for command in ([sys.executable, "-m", "evidence", "verify", "--help"],
                    [sys.executable, bundle_verifier.__file__, "--help"]):  # fmt: skip
        shown = " ".join(subprocess.run(command, env=env, text=True, capture_output=True,
                                        timeout=60).stdout.split())
        assert "Exit status: 0 when every check holds (VERIFIED); 1 when the bundle was " \
            "checked and is NOT VERIFIED" in shown  # fmt: skip
        assert "2 when nothing could be checked" in shown
    assert not (tmp_path / "home").exists()
