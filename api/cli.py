"""`evidence serve`: the API (and, in later issues, the UI and the capture worker)."""

from __future__ import annotations

import click
import uvicorn

from api.app import create_app
from evidence.cli import state


@click.command("serve")
@click.option("--host", default=None, help="Address to bind (default $EVIDENCE_HOST or 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default $EVIDENCE_PORT or 8000).")
def serve(host: str | None, port: int | None) -> None:
    """Run the API over the data home."""
    cli = state()
    settings = cli.settings
    runtime = cli.runtime
    app = create_app(runtime)
    bind_host = host or settings.host
    bind_port = port if port is not None else settings.port
    click.echo(f"evidence-locker serving {settings.home_path} on http://{bind_host}:{bind_port}")
    uvicorn.run(app, host=bind_host, port=bind_port, log_level="info")
