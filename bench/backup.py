"""`evidence backup` against the copy a careful administrator would script by hand.

Makes an embedded data home holding one case whose artifacts are `--files` blobs of `--size`
random bytes each (the same home as bench/fixity.py), then times `backup.backup_home` (SQLite's
online backup, every referenced blob read through its hash and written with fsync, the keys,
a verify of the copy's custody log, its manifest) against the baseline: `sqlite3 .backup` of
the database, then `cp -a` of the blob folder and the keys, then `sync`, which checks nothing.
Best of three each, from the page cache, each into a new folder. Prints both and their ratio.

Goal: within 2x of the baseline: the backup is bound by copying and hashing, not bookkeeping.

    .venv/bin/python bench/backup.py [--files 400] [--size 1000000]
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.fixity import _fill  # the same home as the fixity benchmark
from evidence import backup


def _baseline(home: Path, dest: Path) -> float:
    start = time.perf_counter()
    dest.mkdir()
    source = sqlite3.connect(home / "evidence.db")
    target = sqlite3.connect(dest / "evidence.db")
    source.backup(target)
    target.close()
    source.close()
    for part in ("blobs", "keys", "tsa"):
        subprocess.run(["cp", "-a", str(home / part), str(dest / part)], check=True)
    subprocess.run(["sync"], check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=400)
    parser.add_argument("--size", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        runtime, _paths = _fill(root / "home", args.files, args.size)
        ours, theirs = [], []
        for run in range(3):
            theirs.append(_baseline(root / "home", root / f"plain-{run}"))
            start = time.perf_counter()
            report = backup.backup_home(runtime, "admin", root / f"backup-{run}")
            ours.append(time.perf_counter() - start)
            for made in (root / f"plain-{run}", root / f"backup-{run}"):
                shutil.rmtree(made)
        runtime.close()
    total = args.files * args.size
    best, base = min(ours), min(theirs)
    print(f"home: {args.files} blobs of {args.size} bytes ({total / 1e6:.0f} MB), "
          f"{report.entries} custody entries")
    print(f"  evidence backup:                        {best:.3f} s  "
          f"{total / best / 1e6:.0f} MB/s")
    print(f"  sqlite3 .backup + cp -a + sync (no check): {base:.3f} s  "
          f"{total / base / 1e6:.0f} MB/s")
    print(f"  ratio: {best / base:.2f}x (goal: within 2x)")


if __name__ == "__main__":
    main()
