"""An S3-compatible service for tests: moto's server, in its own process on 127.0.0.1.

Its own process, so that what it holds (it keeps objects in memory) never counts towards the
memory the code under test is measured for, and it is reached over real HTTP by the same
boto3 client the `S3Store` uses in production. Dummy credentials are set for that client.

    with S3Server() as server:
        bucket = server.new_bucket()
        store = S3Store(bucket, "", cache, endpoint_url=server.url)
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from types import TracebackType
from typing import Any

import boto3

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_DEFAULT_REGION": "us-east-1"}


class S3Server:
    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> S3Server:
        for name, value in CREDENTIALS.items():
            os.environ.setdefault(name, value)
        moto = Path(sys.executable).parent / "moto_server"
        self._process = subprocess.Popen([str(moto), "-H", "127.0.0.1", "-p", str(self.port)],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto_server did not start on port {self.port}") from None
                time.sleep(0.1)

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)

    def client(self) -> Any:
        return boto3.client("s3", endpoint_url=self.url)

    def new_bucket(self) -> str:
        name = f"evidence-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name
