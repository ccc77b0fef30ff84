"""Custody log benchmark: appends per second and full verification of 100,000 entries.

Prints, for SQLite and (when EVIDENCE_TEST_DATABASE_URL or --postgres is given) PostgreSQL:
  - appends per second through the real service (one transaction per batch of appends),
  - the time `verify_log` (what `evidence custody verify` runs) takes over the whole log:
    database read, JSON, chains, every column against its entry, Merkle tree, checkpoint
    signatures; in as many ranges side by side as this process may use cores (the default),
    and in one; with the compiled checker (evidence/_custodycheck.c, the default where it is
    built; its ranges in threads) and with the Python checker alone (its ranges in processes;
    what a log the compiled one does not certify gets);
  - the same check alone, one process, with the rows already read;
  - the baseline: raw `hashlib.sha256` over the same entry bytes (already in memory), one
    core, measured in the same run,
  - the ratio of each to that baseline. Goal: within 3x of raw hashing;
  - for scale, a second baseline as `sha256sum` is to a file: read the entry bytes from the
    database (the driver's own cursor, nothing else selected) and hash each one;
  - the Python checker's floor: the rows it reads (every column it checks) through the
    driver's cursor, read and dropped in one process; on PostgreSQL also the floor under any
    verifier that reads the log from the server: the server's own share, the rows the default
    checker reads written to /dev/null by the server (COPY), on the same cores as the verifier;
  - the time to cut a checkpoint after 500 new entries, grown from the previous checkpoint's
    frontier, against hashing the whole tree (what a cut without a frontier does).

On PostgreSQL the log is measured as PostgreSQL keeps it: vacuumed, as autovacuum (on by
default) vacuums a table that only grows; the verify of the log as the fill left it, never
vacuumed (a server with autovacuum off, as some test servers run), is printed beside it.

    .venv/bin/python bench/custody.py [--entries 100000] [--postgres URL]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from evidence import cases, custody, migrate, users
from evidence.db import make_engine, make_session_factory, normalise_url, session_scope
from evidence.merkle import MerkleTree
from evidence.models import CustodyEntry, Role
from evidence.signing import Signer

BATCH = 500
CHECKPOINT_AFTER = 500  # entries between two checkpoints in the checkpoint measurement


def _fill(url: str, entries: int, signer: Signer) -> float:
    engine = make_engine(url)
    migrate.upgrade(engine)
    factory = make_session_factory(engine)
    with session_scope(factory) as s:
        actor = users.create_user(s, None, name="bench", role=Role.INVESTIGATOR)
        refs = [cases.create_case(s, actor, reference=f"B-{i}", title="bench").reference
                for i in range(20)]
    made = 0
    target = entries - 100
    start = time.perf_counter()
    while made < target:
        with session_scope(factory) as s:
            actor = users.get_user(s, "bench")
            open_cases = [cases.get_case(s, actor, ref) for ref in refs]
            for _ in range(min(BATCH, target - made)):
                case = open_cases[made % len(open_cases)]
                custody.append(s, actor, action="artifact.viewed", case=case,
                               object_type="artifact", object_id=uuid.uuid4(),
                               sha256=hashlib.sha256(str(made).encode()).hexdigest())
                made += 1
    elapsed = time.perf_counter() - start
    with session_scope(factory) as s:
        custody.cut_checkpoint(s, signer, origin="bench")
    engine.dispose()
    return made / elapsed


def _raw_hash_seconds(url: str) -> tuple[float, int, int]:
    """Baseline: read the same entry bytes, then SHA-256 each one once; best of three."""
    engine = make_engine(url)
    with engine.connect() as conn:
        blobs = [bytes(b) for b in conn.execute(
            select(CustodyEntry.entry).order_by(CustodyEntry.seq)).scalars()]
    engine.dispose()
    sha = hashlib.sha256
    runs = []
    for _ in range(3):
        start = time.perf_counter()
        for b in blobs:
            sha(b"\x00" + b).digest()
        runs.append(time.perf_counter() - start)
    return min(runs), len(blobs), sum(len(b) for b in blobs)


def _read_and_hash_seconds(url: str) -> float:
    """Second baseline: read the entry bytes through the driver's cursor and hash each, as
    `sha256sum` reads and hashes a file; best of three."""
    engine = make_engine(url)
    sha = hashlib.sha256

    def once() -> float:
        raw = engine.raw_connection()
        try:
            start = time.perf_counter()
            driver: Any = raw.driver_connection
            if engine.dialect.name == "postgresql":
                cursor = driver.cursor(name="bench_entries", binary=True)
            else:
                cursor = raw.cursor()
            cursor.execute("SELECT entry FROM custody_entries ORDER BY seq")
            while batch := cursor.fetchmany(custody.READ_BATCH):
                for (entry,) in batch:
                    sha(b"\x00" + entry).digest()
            cursor.close()
            return time.perf_counter() - start
        finally:
            raw.rollback()
            raw.close()

    try:
        return _best(3, once)
    finally:
        engine.dispose()


def _read_only_seconds(url: str) -> float:
    """The Python checker's floor: the rows it reads, read through the same cursor and
    dropped; best of three."""
    engine = make_engine(url)
    factory = make_session_factory(engine)

    def once() -> float:
        with session_scope(factory) as s:
            start = time.perf_counter()
            for _ in custody.read_rows(s):
                pass
            return time.perf_counter() - start

    try:
        return _best(3, once)
    finally:
        engine.dispose()


def _server_only_seconds(url: str) -> float | None:
    """PostgreSQL's share: the server makes the same rows (the stored columns the compiled
    checker reads, else those the Python checker reads), in seq order as verify has it read
    them, and writes them to /dev/null (None when this role may not have the server write
    files)."""
    engine = make_engine(url)
    rows = (custody._PG_STORED_ROWS if custody._custodycheck is not None
            else custody._rows_sql("postgresql"))
    sql = f"COPY ({rows} ORDER BY seq) TO '/dev/null' (FORMAT binary)"

    def once() -> float:
        with engine.connect() as conn, custody._unsorted(conn.connection.dbapi_connection):
            start = time.perf_counter()
            conn.exec_driver_sql(sql)
            return time.perf_counter() - start

    try:
        return _best(3, once)
    except DBAPIError as exc:
        print(f"  (server-side floor not measured: {exc.orig})")
        return None
    finally:
        engine.dispose()


def _vacuum(url: str) -> None:
    """What autovacuum does to the log as it grows (here at once, on a server that may run
    with it off): its pages marked all visible."""
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("VACUUM custody_entries")
    finally:
        engine.dispose()


def _best(runs: int, measure: Callable[[], float]) -> float:
    return min(measure() for _ in range(runs))


def _verify_seconds(url: str, signer: Signer, workers: int, *, compiled: bool = True) -> float:
    """`verify_log` end to end (read + check) in `workers` ranges; best of three. Without
    `compiled`, by the Python checker alone."""
    engine = make_engine(url)
    factory = make_session_factory(engine)
    built = custody._custodycheck

    def once() -> float:
        with session_scope(factory) as s:
            start = time.perf_counter()
            report = custody.verify_log(s, signer.verifier, workers=workers)
            elapsed = time.perf_counter() - start
        if not report.ok:
            raise SystemExit(f"benchmark log does not verify: {report.summary()}")
        if report.compiled != compiled:
            raise SystemExit(f"benchmark log was checked by the "
                             f"{'compiled' if report.compiled else 'Python'} checker")
        return elapsed

    if not compiled:
        custody._custodycheck = None
    try:
        return _best(3, once)
    finally:
        custody._custodycheck = built
        engine.dispose()


def _compute_seconds(url: str, signer: Signer) -> float:
    """The check alone, one process, the rows already in memory; best of three."""
    engine = make_engine(url)
    factory = make_session_factory(engine)
    with session_scope(factory) as s:
        rows = list(custody.read_rows(s))
        checkpoints = custody.read_checkpoints(s)
    engine.dispose()

    def once() -> float:
        start = time.perf_counter()
        report = custody.check_entries(rows, checkpoints, signer.verifier)
        elapsed = time.perf_counter() - start
        if not report.ok:
            raise SystemExit(f"benchmark log does not verify: {report.summary()}")
        return elapsed

    return _best(3, once)


def _checkpoint_seconds(url: str, signer: Signer, added: int) -> tuple[float, float]:
    """A checkpoint cut after `added` new entries, grown from the one before, against hashing
    the whole log's tree as a cut without a frontier does; best of three each."""
    engine = make_engine(url)
    factory = make_session_factory(engine)
    grown, whole = [], []
    try:
        for _ in range(3):
            with session_scope(factory) as s:
                actor = users.get_user(s, "bench")
                case = cases.get_case(s, actor, "B-0")
                for _ in range(added):
                    custody.append(s, actor, action="artifact.viewed", case=case)
            with session_scope(factory) as s:
                start = time.perf_counter()
                custody.cut_checkpoint(s, signer, origin="bench")
                grown.append(time.perf_counter() - start)
            with session_scope(factory) as s:
                start = time.perf_counter()
                MerkleTree(list(custody._leaf_hashes(s))).root()
                whole.append(time.perf_counter() - start)
    finally:
        engine.dispose()
    return min(grown), min(whole)


def _run(label: str, url: str, entries: int) -> None:
    signer = Signer.generate()
    rate = _fill(url, entries, signer)
    raw, count, size = _raw_hash_seconds(url)
    read_and_hash = _read_and_hash_seconds(url)
    cores = custody._usable_cores()
    compiled = custody._custodycheck is not None
    unvacuumed = None
    if label == "PostgreSQL":
        unvacuumed = _verify_seconds(url, signer, cores, compiled=compiled)
        _vacuum(url)
    parallel = _verify_seconds(url, signer, cores, compiled=compiled)
    single = _verify_seconds(url, signer, 1, compiled=compiled)
    python = _verify_seconds(url, signer, cores, compiled=False) if compiled else parallel
    compute = _compute_seconds(url, signer)
    read_only = _read_only_seconds(url)
    server = _server_only_seconds(url) if label == "PostgreSQL" else None
    grown, whole = _checkpoint_seconds(url, signer, CHECKPOINT_AFTER)
    print(f"{label}: {count} entries, {size / 1e6:.1f} MB of canonical JSON")
    print(f"  appends:                    {rate:10.0f} per second")
    side = "threads" if compiled else "processes"
    print(f"  verify, {cores} {side} (*):      {parallel:10.3f} s   "
          f"{count / parallel:10.0f} entries/s   {parallel / raw:6.2f}x raw")
    if unvacuumed is not None:
        print(f"  verify, {cores} {side}, the log never vacuumed: {unvacuumed:.3f} s   "
              f"{unvacuumed / raw:.2f}x raw")
    print(f"  verify, 1 range:            {single:10.3f} s   "
          f"{count / single:10.0f} entries/s   {single / raw:6.2f}x raw")
    print(f"  verify, {cores} processes, Python checker alone: {python:.3f} s   "
          f"{python / raw:.2f}x raw" + ("" if compiled else
                                        "   (the compiled checker is not built: all above)"))
    print(f"  check only, Python (rows in memory):{compute:6.3f} s   "
          f"{count / compute:10.0f} entries/s   {compute / raw:6.2f}x raw")
    print(f"  raw sha256 baseline:        {raw:10.3f} s   {count / raw:10.0f} entries/s")
    print(f"  read + sha256 (sha256sum-like): {read_and_hash:6.3f} s   "
          f"{count / read_and_hash:10.0f} entries/s   verify, {cores} {side}, is "
          f"{parallel / read_and_hash:.2f}x this")
    print(f"  Python checker's floor, its rows read through the driver and dropped, 1 process: "
          f"{read_only:.3f} s   {read_only / raw:.2f}x raw")
    if server is not None:
        print(f"  floor, PostgreSQL's own work making those rows (COPY to /dev/null), on the same "
              f"cores: {server:.3f} s   {server / raw:.2f}x raw")
    print(f"  checkpoint after {CHECKPOINT_AFTER} entries: {grown * 1000:8.1f} ms grown from the "
          f"last one, {whole * 1000:.1f} ms hashing the whole tree ({whole / grown:.0f}x)")
    print(f"  (*) below {2 * custody.PARALLEL_MIN_CHUNK} entries the log is checked in one "
          "range")
    print(f"  goal: `evidence custody verify` within 3x of raw hashing: "
          f"{parallel / raw:.2f}x on {cores} cores")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--postgres", default=os.environ.get("EVIDENCE_TEST_DATABASE_URL"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        _run("SQLite", f"sqlite:///{Path(tmp) / 'bench.db'}", args.entries)
    if args.postgres:
        admin = create_engine(normalise_url(args.postgres), isolation_level="AUTOCOMMIT")
        name = f"evl_bench_{uuid.uuid4().hex[:8]}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            url = make_url(normalise_url(args.postgres)).set(database=name)
            _run("PostgreSQL", url.render_as_string(hide_password=False), args.entries)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    else:
        print("PostgreSQL: skipped (pass --postgres URL or set EVIDENCE_TEST_DATABASE_URL)")


if __name__ == "__main__":
    main()
