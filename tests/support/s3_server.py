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
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

import boto3

from evidence.home import Runtime, init_home, open_runtime
from evidence.settings import BLOB_CACHE_FOLDER, Settings
from tests.support.net import free_port

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_DEFAULT_REGION": "us-east-1"}


class S3Server:
    def __init__(self) -> None:
        self.port = free_port()
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

    @contextmanager
    def machines(self, root: Path, bucket: str, *names: str,
                 **settings: Any) -> Iterator[list[Runtime]]:
        """A data home per name under `root`, over one database and `bucket`, set up as a
        deployment sets up its machines: the first by `evidence init`, each other one with a
        copy of its keys and nothing else of its home. `settings` are every home's (database
        URL, store prefix as `store_url`, ...)."""
        shared = {"store_url": f"s3://{bucket}", "s3_endpoint_url": self.url, **settings}
        homes = [Settings(home=root / name, **shared) for name in names]
        init_home(homes[0])
        for home in homes[1:]:
            shutil.copytree(homes[0].home_path, home.home_path,
                            ignore=shutil.ignore_patterns(BLOB_CACHE_FOLDER))
        runtimes = [open_runtime(home) for home in homes]
        try:
            yield runtimes
        finally:
            for runtime in runtimes:
                runtime.close()
