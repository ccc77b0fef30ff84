"""`evidence serve`: the API, the web UI and a capture worker beside them; and
`evidence user`: who may use it (add, list, password, revoke-token, token, disable,
enable)."""

from __future__ import annotations

import os
import subprocess
import sys

import click
import uvicorn

from api.app import create_app
from evidence import processes, sessions, users
from evidence.cli import EvidenceGroup, acting_command, state
from evidence.models import Role


@click.command("serve")
@click.option("--host", default=None, help="Address to bind (default $EVIDENCE_HOST or 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default $EVIDENCE_PORT or 8000).")
@click.option("--worker/--no-worker", default=True, show_default=True,
              help="Also run a capture worker, as a child process.")
def serve(host: str | None, port: int | None, worker: bool) -> None:
    """Run the API over the data home, with a capture worker beside it."""
    cli = state()
    settings = cli.settings
    runtime = cli.runtime
    app = create_app(runtime)
    bind_host = host or settings.host
    bind_port = port if port is not None else settings.port
    # uvicorn shuts down gracefully on SIGTERM or SIGINT (systemd, docker, Ctrl-C), then raises
    # the signal again: `stop` hears it, the worker is stopped below and serve exits 0.
    stop = processes.StopRequest(
        at_once="the capture worker is stopped with it; a capture under way is taken up again "
        "once its lease runs out")
    child: subprocess.Popen[bytes] | None = None
    try:
        if worker:
            # A child process, so a browser crash never takes the API down.
            env = {**os.environ, "EVIDENCE_HOME": str(settings.home_path)}
            if settings.database_url:
                env["EVIDENCE_DATABASE_URL"] = settings.database_url
            child = processes.start_child(
                [sys.executable, "-m", "evidence", "worker", "--child"], env)
            click.echo(f"capture worker started (pid {child.pid})")
        if not stop.requested:
            click.echo(f"evidence-locker serving {settings.home_path} on "
                       f"http://{bind_host}:{bind_port}")
            uvicorn.run(app, host=bind_host, port=bind_port, log_level="info")
    finally:
        if child is not None:
            processes.stop_children([child])
    if stop.signal is not None:
        click.echo(f"evidence-locker stopped ({stop.signal.name})")


@click.group("user", cls=EvidenceGroup)
def user() -> None:
    """Users of the API and the UI, and their API tokens (admins only)."""


@acting_command(user, "add")
@click.argument("name")
@click.option("--role", required=True, type=click.Choice([r.value for r in Role]))
@click.option("--unit", default=None, help="The user's unit.")
@click.option("--display-name", default=None)
@click.option("--password", "with_password", is_flag=True,
              help="Ask for a password, so the user can also log in to the web UI.")
def user_add(name: str, role: str, unit: str | None, display_name: str | None,
             with_password: bool) -> None:
    """Add a user and print their API token, once (only its hash is kept)."""
    password = None
    if with_password:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    with state().acting() as (session, actor):
        made, token = users.add_user(session, actor, name=name, role=role, unit=unit,
                                     display_name=display_name, password=password)
        line = f"user {made.name} ({made.role}{', ' + made.unit if made.unit else ''}) added"
    click.echo(line)
    click.echo("API token (shown once, keep it safe):")
    click.echo(f"  {token}")


@acting_command(user, "password")
@click.argument("name")
def user_password(name: str) -> None:
    """Set or replace a user's password for the web UI (admins; anyone for themselves); the
    user's open web sessions end."""
    password = click.prompt("New password", hide_input=True, confirmation_prompt=True)
    with state().acting() as (session, actor):
        target = users.get_user(session, name)
        ended = sessions.set_password(session, actor, target, password)
    click.echo(f"password of {name} set" + (f"; {ended} open web session(s) ended" if ended
                                            else ""))


@acting_command(user, "list")
def user_list() -> None:
    """Every user, their role and unit, and how many live API tokens they hold."""
    with state().acting() as (session, actor):
        rows = [(u.name, u.role, u.unit or "--", "yes" if u.password_hash else "no",
                 "active" if u.is_active else "disabled", n)
                for u, n in users.list_users(session, actor)]
    for name, role, unit, password, active, tokens in rows:
        click.echo(f"{name:<20} {role:<13} {unit:<20} password:{password:<4} {active:<9} "
                   f"tokens:{tokens}")


@acting_command(user, "revoke-token")
@click.argument("name")
@click.option("--prefix", default=None, metavar="PREFIX",
              help="Revoke only the token that starts so (its first 8 characters); "
                   "default every live token of the user.")
def user_revoke_token(name: str, prefix: str | None) -> None:
    """Revoke a user's API tokens; requests with them then get 401."""
    with state().acting() as (session, actor):
        target = users.get_user(session, name)
        revoked = users.revoke_tokens(session, actor, target, prefix=prefix)
        prefixes = [r.prefix for r in revoked]
    click.echo(f"revoked {len(prefixes)} token(s) of {name}"
               + (f": {', '.join(p + '…' for p in prefixes)}" if prefixes else ""))


@acting_command(user, "token")
@click.argument("name")
@click.option("--label", default="cli", show_default=True,
              help="What the token is for, kept with it (its value is never kept).")
def user_token(name: str, label: str) -> None:
    """Give a user another API token and print it once (admins; anyone for themselves): to
    replace one that was revoked."""
    with state().acting() as (session, actor):
        target = users.get_user(session, name)
        token = users.new_token(session, actor, target, name=label)
    click.echo(f"new API token of {name} (shown once, keep it safe):")
    click.echo(f"  {token}")


@acting_command(user, "disable")
@click.argument("name")
@click.option("--reason", required=True, help="Why: left the unit, on long leave ...")
def user_disable(name: str, reason: str) -> None:
    """Disable a user (admins): their API tokens are revoked and web sessions end at once;
    what they did stays under their name and their case memberships wait for `enable`."""
    with state().acting() as (session, actor):
        target = users.managed_user(session, actor, name)
        revoked, ended = users.disable_user(session, actor, target, reason=reason)
    click.echo(f"user {name} disabled; {revoked} API token(s) revoked, {ended} open web "
               "session(s) ended")


@acting_command(user, "enable")
@click.argument("name")
@click.option("--reason", required=True)
def user_enable(name: str, reason: str) -> None:
    """Enable a disabled user again (admins): their password and case memberships work again;
    give them a new API token with `evidence user token NAME`."""
    with state().acting() as (session, actor):
        target = users.managed_user(session, actor, name)
        users.enable_user(session, actor, target, reason=reason)
    click.echo(f"user {name} enabled; revoked API tokens stay revoked (`evidence user token "
               f"{name}` gives a new one)")
