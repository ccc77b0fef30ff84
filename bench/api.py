"""HTTP API latency over a database holding 100,000 captures.

Fills a database (a SQLite file, and PostgreSQL when EVIDENCE_TEST_DATABASE_URL or --postgres
is given: a dedicated database, created and dropped) with 100,000 captures spread over 50 cases,
each with a search document of realistic advert-like text, then measures p50/p95 latency of

  - GET /api/cases                           (the case list)
  - GET /api/cases/{ref}/captures            (first page, and a deep page through a cursor)
  - GET /api/search?q=...                    (a common word, and a rare one)

through the real app in-process (Starlette's TestClient over httpx: routing, dependencies,
authentication, the custody entry every read appends and its commit, JSON; no network), as a
member of every case. Baselines measured in the same run: GET /api/health (the cost of a
request that does one trivial query) and each query's bare SQL time, printed as ratios.

Goal: p95 under 50 ms for lists, under 200 ms for search.

    .venv/bin/python bench/api.py [--captures 100000] [--cases 50] [--requests 200]
                                  [--postgres URL]
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
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, insert, select, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fastapi.testclient import TestClient

from api.app import create_app
from evidence import cases, migrate, search, users
from evidence.blobstore import FolderStore
from evidence.db import make_engine, make_session_factory, normalise_url, session_scope
from evidence.home import Runtime
from evidence.models import Capture, CaseMember, Role, SearchDocument, Target
from evidence.settings import Settings
from evidence.signing import Signer

BATCH = 5000
COMMON = "crossing"  # in about a third of the captures
RARE = "zanzibarique"  # in 20 captures
HOSTS = ["www.facebook.com", "x.com", "t.me", "www.tiktok.com", "www.instagram.com"]
COMMON_WORDS = ["boat", "tonight", "price", "euro", "call", "whatsapp", "trip", "safe", "driver",
                "border", "group", "seats", "leaving", "morning", "contact", "number", "italy",
                "greece", "lorry", "passport", "family", "children", "guaranteed", "fast",
                "cheap", "place", "meeting", "station"]


def _vocabulary(rng: random.Random, size: int = 3000) -> list[str]:
    syllables = ["ka", "ro", "mi", "ta", "le", "su", "na", "bo", "ri", "za", "fe", "lo", "da",
                 "ne", "vi", "sha", "kh", "ar", "om", "el"]
    words = {"".join(rng.choices(syllables, k=rng.randint(2, 4))) for _ in range(size * 2)}
    return sorted(words)[:size]


def _text(rng: random.Random, vocabulary: list[str], weights: list[float], n: int) -> str:
    words = rng.choices(COMMON_WORDS, k=12) + rng.choices(vocabulary, weights, k=48)
    if n % 3 == 0:
        words.insert(rng.randint(0, len(words)), COMMON)
    if n % 5000 == 17:
        words.insert(rng.randint(0, len(words)), RARE)
    rng.shuffle(words)
    return " ".join(words)


@dataclass
class World:
    token: str
    references: list[str]


def _fill(engine: Engine, captures: int, n_cases: int) -> World:
    """Users, cases and memberships through the services; targets, captures and search
    documents by bulk insert (the same rows the services write, minus artifacts)."""
    migrate.upgrade(engine)
    factory = make_session_factory(engine)
    with session_scope(factory) as s:
        member = users.create_user(s, None, name="member", role=Role.INVESTIGATOR, unit="Bench")
        token = users.issue_token(s, member, member, name="bench")
        made = [cases.create_case(s, member, reference=f"OP-2026-{i:03d}", title=f"Case {i}")
                for i in range(n_cases)]
        case_ids = [c.id for c in made]
        references = [c.reference for c in made]
        member_id = member.id
        assert s.scalar(select(CaseMember.case_id).limit(1)) is not None
    rng = random.Random(7)
    vocabulary = _vocabulary(rng)
    weights = [1 / (rank + 1) for rank in range(len(vocabulary))]  # Zipf-like
    start = datetime(2026, 1, 1, tzinfo=UTC)
    targets_per_case = 20
    target_rows: list[dict[str, Any]] = []
    for case_id in case_ids:
        for t in range(targets_per_case):
            target_rows.append({
                "id": uuid.uuid4(), "case_id": case_id, "kind": "url",
                "url": f"https://{HOSTS[t % len(HOSTS)]}/seller{t}/posts/{rng.randint(1, 10**9)}",
                "reason": "advert", "flagged_by_id": member_id, "flagged_at": start,
                "state": "active"})
    with engine.begin() as conn:
        conn.execute(insert(Target), target_rows)
    checked = 0
    for offset in range(0, captures, BATCH):
        capture_rows, doc_rows = [], []
        for n in range(offset, min(offset + BATCH, captures)):
            target = target_rows[n % len(target_rows)]
            at = start + timedelta(seconds=30 * n)
            capture_id = uuid.uuid4()
            title = f"Post {n}"
            capture_rows.append({
                "id": capture_id, "case_id": target["case_id"], "target_id": target["id"],
                "requested_url": target["url"], "final_url": target["url"], "http_status": 200,
                "title": title, "started_at": at, "finished_at": at + timedelta(seconds=20),
                "status": "complete", "manifest_sha256": f"{n:064x}",
                "steps": [{"name": "navigate", "ok": True}]})
            body = f"{title}\n{_text(rng, vocabulary, weights, n)}"
            terms = " ".join(body.lower().split())
            if checked < 50:  # the generated text is already what `normalise` makes of it
                assert search.normalise(body) == terms, body
                checked += 1
            doc_rows.append({"capture_id": capture_id, "case_id": target["case_id"],
                             "url": target["url"], "host": search.host_of(target["url"]),
                             "captured_at": at, "body": body, "terms": terms,
                             "indexed_at": at})
        with engine.begin() as conn:
            conn.execute(insert(Capture), capture_rows)
            # On SQLite the FTS5 table is kept in step by the migration's triggers.
            conn.execute(insert(SearchDocument), doc_rows)
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    return World(token=token, references=references)


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p95 = ordered[max(0, round(0.95 * len(ordered)) - 1)]
    return statistics.median(ordered), p95


def _timed(call: Callable[[], Any], n: int) -> list[float]:
    call()  # warm: first-use caches, prepared plans
    out = []
    for _ in range(n):
        start = time.perf_counter()
        call()
        out.append((time.perf_counter() - start) * 1000)
    return out


def _get(client: TestClient, headers: dict[str, str], url: str,
         params: dict[str, str] | None = None) -> Callable[[], Any]:
    def call() -> Any:
        response = client.get(url, headers=headers, params=params)
        if response.status_code != 200:
            raise SystemExit(f"{url}: {response.status_code} {response.text[:300]}")
        return response.json()
    return call


def _sql(engine: Engine, statement: str, **params: Any) -> Callable[[], Any]:
    def call() -> Any:
        with engine.connect() as conn:
            return conn.execute(text(statement), params).all()
    return call


def _run(label: str, url: str, home: Path, n_captures: int, n_cases: int, n: int) -> None:
    engine = make_engine(url)
    start = time.perf_counter()
    world = _fill(engine, n_captures, n_cases)
    filled = time.perf_counter() - start
    store = FolderStore(home / "blobs")
    store.create()
    runtime = Runtime(settings=Settings(home=home, database_url=url), engine=engine,
                      sessions=make_session_factory(engine), store=store,
                      signer=Signer.generate())
    client = TestClient(create_app(runtime))  # not entered: no checkpoint loop
    headers = {"Authorization": f"Bearer {world.token}"}
    ref = world.references[len(world.references) // 2]
    case_id = engine.connect().execute(
        text("SELECT id FROM cases WHERE reference = :r"), {"r": ref}).scalar_one()
    per_case = n_captures // n_cases
    # The cursor of a deep page: walk the case's captures once, 200 at a time.
    deep_cursor = None
    page_url = f"/api/cases/{ref}/captures"
    for _ in range(max(1, (per_case * 3 // 4) // 200)):
        params = {"limit": "200"} if deep_cursor is None else {"limit": "200",
                                                               "cursor": deep_cursor}
        nxt = client.get(page_url, headers=headers, params=params).json()["next"]
        if nxt is None:
            break
        deep_cursor = nxt.split("cursor=", 1)[1]
    from urllib.parse import unquote
    deep_cursor = unquote(deep_cursor or "")
    cid = case_id  # as the database stores it, for the bare SQL baseline
    rows: list[tuple[str, Callable[[], Any], Callable[[], Any] | None, float]] = [
        ("GET /api/health (baseline)", _get(client, headers, "/api/health"), None, 0),
        ("GET /api/cases", _get(client, headers, "/api/cases"),
         _sql(engine, "SELECT c.* FROM cases c JOIN case_members m ON m.case_id = c.id "
              "WHERE m.user_id = (SELECT id FROM users WHERE name = 'member') "
              "ORDER BY c.created_at, c.id LIMIT 51"), 50),
        ("GET captures, first page", _get(client, headers, page_url),
         _sql(engine, "SELECT * FROM captures WHERE case_id = :c "
              "ORDER BY started_at, id LIMIT 51", c=cid), 50),
        ("GET captures, deep page", _get(client, headers, page_url, {"cursor": deep_cursor}),
         None, 50),
        (f"GET search q={COMMON}", _get(client, headers, "/api/search", {"q": COMMON}),
         None, 200),
        (f"GET search q={RARE}", _get(client, headers, "/api/search", {"q": RARE}), None, 200),
    ]
    health = None
    print(f"\n{label}: {n_captures} captures in {n_cases} cases (filled in {filled:.0f} s), "
          f"{n} requests each, in-process (TestClient)")
    print(f"  {'request':34} {'p50 ms':>8} {'p95 ms':>8} {'x health':>9} {'SQL p50':>8} "
          f"{'goal':>6}")
    for name, call, sql, goal in rows:
        p50, p95 = _percentiles(_timed(call, n))
        if health is None:
            health = p95
        sql_p50 = f"{_percentiles(_timed(sql, n))[0]:8.2f}" if sql else f"{'-':>8}"
        verdict = "" if not goal else ("ok" if p95 < goal else f"MISSED (<{goal:.0f})")
        print(f"  {name:34} {p50:8.2f} {p95:8.2f} {p95 / health:8.1f}x {sql_p50} {verdict}")
    hits = client.get("/api/search", headers=headers, params={"q": RARE}).json()["items"]
    print(f"  (rare word: {len(hits)} hits on the first page; custody entries appended by the "
          "run: one per read)")
    client.close()
    runtime.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--captures", type=int, default=100_000)
    parser.add_argument("--cases", type=int, default=50)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--postgres", default=os.environ.get("EVIDENCE_TEST_DATABASE_URL"))
    parser.add_argument("--skip-sqlite", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_sqlite:
            _run("SQLite", f"sqlite:///{Path(tmp) / 'bench.db'}", Path(tmp) / "sqlite-home",
                 args.captures, args.cases, args.requests)
        if args.postgres:
            admin = create_engine(normalise_url(args.postgres), isolation_level="AUTOCOMMIT")
            name = f"evl_bench_{uuid.uuid4().hex[:8]}"
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            try:
                url = make_url(normalise_url(args.postgres)).set(database=name)
                _run("PostgreSQL", url.render_as_string(hide_password=False),
                     Path(tmp) / "pg-home", args.captures, args.cases, args.requests)
            finally:
                with admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                admin.dispose()
        else:
            print("PostgreSQL: skipped (pass --postgres URL or set EVIDENCE_TEST_DATABASE_URL)")


if __name__ == "__main__":
    main()
