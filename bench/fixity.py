"""Fixity check of the blob store against `sha256sum` over the same files.

Makes a data home (SQLite) holding one case whose artifacts are `--files` blobs of `--size`
random bytes each (some of them held twice, as a DOM shared by two captures is), then times
`evidence store check` as the service runs it (the database query, re-hashing every blob as it
streams, the custody entry) against `sha256sum` reading and hashing the same blob files, best
of three each, both from the page cache. Prints both and their ratio.

Goal: the check is within 1.5x of `sha256sum`: it is bound by hashing, not by its bookkeeping.

    .venv/bin/python bench/fixity.py [--files 400] [--size 1000000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from evidence import cases, fixity, users
from evidence.home import Runtime, init_home, open_runtime
from evidence.models import Artifact, Role
from evidence.settings import Settings


def _fill(home: Path, files: int, size: int) -> tuple[Runtime, list[str]]:
    settings = Settings(home=home)
    init_home(settings)
    runtime = open_runtime(settings)
    paths = []
    with runtime.session() as s:
        ines = users.create_user(s, None, name="ines", role=Role.INVESTIGATOR)
        case = cases.create_case(s, ines, reference="BENCH", title="fixity")
        for i in range(files):
            blob = runtime.store.put_bytes(os.urandom(size))
            paths.append(runtime.store.locate(blob.sha256))
            for _ in range(1 if i % 10 else 2):  # every tenth blob held twice
                s.add(Artifact(case_id=case.id, kind="dom", name=f"dom-{i}.html",
                               media_type="text/html", size=blob.size, sha256=blob.sha256))
    return runtime, paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=400)
    parser.add_argument("--size", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        runtime, paths = _fill(Path(tmp) / "home", args.files, args.size)
        checks, sums = [], []
        for _ in range(3):
            start = time.perf_counter()
            subprocess.run(["sha256sum", *paths], check=True, stdout=subprocess.DEVNULL)
            sums.append(time.perf_counter() - start)
            start = time.perf_counter()
            report = fixity.check_store(runtime, "admin")
            checks.append(time.perf_counter() - start)
            if not report.ok:
                raise SystemExit(f"benchmark store is not whole: {report.summary()}")
        runtime.close()
    total = args.files * args.size
    check, summed = min(checks), min(sums)
    print(f"{args.files} blobs of {args.size} bytes ({total / 1e6:.0f} MB), held by "
          f"{args.files + (args.files + 9) // 10} artifacts")
    print(f"  evidence store check: {check:8.3f} s   {total / check / 1e6:8.0f} MB/s")
    print(f"  sha256sum (baseline): {summed:8.3f} s   {total / summed / 1e6:8.0f} MB/s")
    print(f"  goal: within 1.5x of sha256sum: {check / summed:.2f}x")


if __name__ == "__main__":
    main()
