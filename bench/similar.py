"""Similar-image search benchmark: query time over 1,000,000 stored pHashes.

Stores N random 64-bit hashes (plus near-duplicates planted around the query hashes, at every
distance 0-20) as image artifacts in a fresh SQLite database, and in PostgreSQL when
EVIDENCE_TEST_DATABASE_URL (or --postgres URL) is given, loading them in bulk (executemany on
SQLite, COPY on PostgreSQL; the database's triggers build the posting lists as rows arrive), then
for each distance asked:
  - times the search through the index (`evidence.search.matching_hashes`: posting lists of five
    13/12-bit bands, restricted to the caller's cases) and the full service call
    (`similar_images`: the same plus artifact, capture and case details, 50 results);
  - times a plain Python linear scan (`(a ^ b).bit_count() <= d`) over the same hashes, held in
    a list in memory, in the same run;
  - checks that the index and the scan found the same set. Goal: under 50 ms a query (p95).

    .venv/bin/python bench/similar.py [--hashes 1000000] [--queries 50] [--distances 4,10,16]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from evidence import cases, migrate, search, users
from evidence.db import make_engine, make_session_factory, normalise_url, session_scope
from evidence.models import CaseMember, Role, utcnow

BATCH = 20_000
CASES = 8


def _flip(value: int, bits: int, rng: random.Random) -> int:
    for b in rng.sample(range(64), bits):
        value ^= 1 << b
    return value


def _hashes(n: int, queries: int, rng: random.Random) -> tuple[list[int], list[int]]:
    bases = [rng.getrandbits(64) for _ in range(queries)]
    planted = [_flip(b, d, rng) for b in bases for d in range(21)]
    return [rng.getrandbits(64) for _ in range(n - len(planted))] + planted, bases


def _fill(url: str, values: list[int]) -> tuple[float, uuid.UUID]:
    engine = make_engine(url)
    migrate.upgrade(engine)
    factory = make_session_factory(engine)
    with session_scope(factory) as s:
        actor = users.create_user(s, None, name="bench", role=Role.INVESTIGATOR)
        case_ids = [cases.create_case(s, actor, reference=f"B-{i}", title="bench").id
                    for i in range(CASES)]
        actor_id = actor.id
    postgres = engine.dialect.name == "postgresql"
    now = utcnow()
    start = time.perf_counter()
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        # A bulk load: the rows go in without the per-row triggers, and the posting lists are
        # then built set-wise (`search.rebuild_posting_lists`, as migration 0006 does).
        if postgres:
            cur.execute("ALTER TABLE image_hashes DISABLE TRIGGER image_hashes_bands")
            triggers = []
        else:
            triggers = [sql for (sql,) in cur.execute(
                "SELECT sql FROM sqlite_master WHERE type = 'trigger' "
                "AND tbl_name = 'image_hashes'").fetchall()]
            for (name,) in cur.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' "
                                       "AND tbl_name = 'image_hashes'").fetchall():
                cur.execute(f"DROP TRIGGER {name}")
        raw.commit()
        for lo in range(0, len(values), BATCH):
            if not postgres:  # the engine's SQLite connections autocommit unless told
                cur.execute("BEGIN")
            artifacts: list[tuple[Any, ...]] = []
            hashes: list[tuple[Any, ...]] = []
            for n, value in enumerate(values[lo:lo + BATCH], start=lo):
                artifact_id = uuid.uuid4()
                case_id = case_ids[n % CASES]
                aid, cid = (artifact_id, case_id) if postgres else (artifact_id.hex, case_id.hex)
                when = now if postgres else now.replace(tzinfo=None).isoformat(" ")
                artifacts.append((aid, cid, "screenshot", "image/png", 1, "0" * 64,
                                  f"{value:016x}", when))
                hashes.append((aid, cid, value - (1 << 64) if value >= 1 << 63 else value))
            if postgres:
                with cur.copy("COPY artifacts (id, case_id, kind, media_type, size, sha256, "
                              "phash, created_at) FROM STDIN") as copy:
                    for row in artifacts:
                        copy.write_row(row)
                with cur.copy("COPY image_hashes (artifact_id, case_id, phash) FROM STDIN"
                              ) as copy:
                    for row in hashes:
                        copy.write_row(row)
            else:
                cur.executemany(
                    "INSERT INTO artifacts (id, case_id, kind, media_type, size, sha256, phash, "
                    "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", artifacts)
                cur.executemany(
                    "INSERT INTO image_hashes (artifact_id, case_id, phash) VALUES (?, ?, ?)",
                    hashes)
            raw.commit()
        loaded = time.perf_counter() - start
        if not postgres:
            cur.execute("BEGIN")
            for sql in triggers:
                cur.execute(sql)
        else:
            cur.execute("ALTER TABLE image_hashes ENABLE TRIGGER image_hashes_bands")
        raw.commit()
        with session_scope(factory) as s:
            search.rebuild_posting_lists(s)
        print(f"rows stored in {loaded:.1f} s, posting lists built in "
              f"{time.perf_counter() - start - loaded:.1f} s")
        if postgres:
            driver = raw.driver_connection
            assert driver is not None
            driver.autocommit = True
            cur.execute("VACUUM ANALYZE image_hashes")
            cur.execute("VACUUM ANALYZE image_hash_bands")
        else:
            cur.execute("ANALYZE")
            raw.commit()
    finally:
        raw.close()
    elapsed = time.perf_counter() - start
    engine.dispose()
    return elapsed, actor_id


def _ms(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1000, ordered[int(0.95 * (len(ordered) - 1))] * 1000


def _run(label: str, url: str, values: list[int], bases: list[int],
         distances: list[int]) -> bool:
    print(f"\n== {label}: {len(values):,} hashes")
    fill_seconds, actor_id = _fill(url, values)
    print(f"stored in {fill_seconds:.1f} s ({len(values) / fill_seconds:,.0f} rows/s, "
          "artifacts + image_hashes, then posting lists)")
    engine = make_engine(url)
    factory = make_session_factory(engine)
    ok = True
    with session_scope(factory) as s:
        actor = users.get_user(s, "bench")
        visible = select(CaseMember.case_id).where(CaseMember.user_id == actor_id)
        for q in bases[:3]:  # warm the caches
            search.matching_hashes(s, q, max(distances), case_ids=visible)
        for d in distances:
            index_t, service_t, scan_t, found, same = [], [], [], 0, True
            for q in bases:
                t0 = time.perf_counter()
                got = search.matching_hashes(s, q, d, case_ids=visible)
                index_t.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                search.similar_images(s, actor, phash=f"{q:016x}", distance=d, record=False)
                service_t.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                brute = [v for v in values if (v ^ q).bit_count() <= d]
                scan_t.append(time.perf_counter() - t0)
                mine = sorted(p & search.MASK64 for _, p, _ in got)
                if mine != sorted(brute):
                    ok = same = False
                    print(f"  MISMATCH at d={d} q={q:016x}: index {len(mine)}, scan {len(brute)}")
                found += len(brute)
            i_med, i_p95 = _ms(index_t)
            v_med, v_p95 = _ms(service_t)
            s_med, s_p95 = _ms(scan_t)
            probes = len(search.probe_keys(bases[0], d))
            print(f"d={d:2d}: index {i_med:6.1f} ms median {i_p95:6.1f} p95 | service "
                  f"{v_med:6.1f} / {v_p95:6.1f} | linear scan {s_med:6.1f} / {s_p95:6.1f} | "
                  f"scan/index {s_med / i_med:5.1f}x median {s_p95 / i_p95:5.1f}x p95 | "
                  f"{probes} lists | {found / len(bases):.1f} matches/query | same sets: "
                  f"{'yes' if same else 'NO'} | {'under' if i_p95 < 50 else 'OVER'} 50 ms p95")
    engine.dispose()
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hashes", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--distances", default="4,10,16")
    parser.add_argument("--postgres", default=os.environ.get("EVIDENCE_TEST_DATABASE_URL"))
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    values, bases = _hashes(args.hashes, args.queries, rng)
    distances = [int(d) for d in args.distances.split(",")]
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        ok &= _run("SQLite", f"sqlite:///{tmp}/bench.db", values, bases, distances)
    if args.postgres:
        admin_url = normalise_url(args.postgres)
        name = f"evl_bench_{uuid.uuid4().hex[:12]}"
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
            ok &= _run("PostgreSQL", url, values, bases, distances)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    print("\nindex and linear scan agree" if ok else "\nMISMATCH between index and scan")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
