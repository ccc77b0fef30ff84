"""`evidence serve`: the API (and, in later issues, the UI and the capture worker)."""

from __future__ import annotations

import os
import subprocess
import sys

import click
import uvicorn

from api.app import create_app
from evidence.cli import state


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
    child: subprocess.Popen[bytes] | None = None
    if worker:
        # A child process, so a browser crash never takes the API down.
        env = {**os.environ, "EVIDENCE_HOME": str(settings.home_path)}
        if settings.database_url:
            env["EVIDENCE_DATABASE_URL"] = settings.database_url
        child = subprocess.Popen([sys.executable, "-m", "evidence", "worker"], env=env)
        click.echo(f"capture worker started (pid {child.pid})")
    click.echo(f"evidence-locker serving {settings.home_path} on http://{bind_host}:{bind_port}")
    try:
        uvicorn.run(app, host=bind_host, port=bind_port, log_level="info")
    finally:
        if child is not None:
            child.terminate()
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
