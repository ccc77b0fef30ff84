"""Search over captured text and similar images, on both backends: Unicode matching, filters,
visibility, hostile queries, and multi-index hashing checked against a brute-force scan."""

from __future__ import annotations

import contextlib
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic import command
from sqlalchemy import func, insert, select, text, update
from sqlalchemy.orm import Session

from evidence import cases, migrate, search, targets
from evidence.blobstore import FolderStore
from evidence.db import make_engine, make_session_factory, session_scope
from evidence.errors import InvalidInput, NotFound
from evidence.models import (
    Artifact,
    Case,
    CustodyEntry,
    ImageHash,
    ImageHashBand,
    Role,
    SearchDocument,
    User,
    utcnow,
)
from tests.factories import make_case, make_text_capture, make_user


def _capture(session: Session, actor: User, case: Case, store: FolderStore, text: str, *,
             url: str = "https://www.facebook.com/groups/1/posts/2", **kwargs: Any) -> Any:
    target, _job = targets.flag_target(session, actor, case, reason="advert", url=url)
    return make_text_capture(session, case, target, store, text=text, **kwargs)


def _found(session: Session, actor: User, query: str, **kwargs: Any) -> set[Any]:
    return {h.capture_id for h in search.search_text(session, actor, query, **kwargs).items}


# --- normalisation (no database) ----------------------------------------------------------------

def test_arabic_variants_fold_to_one_form() -> None:
    assert search.normalise("أَحْمَد") == search.normalise("احمد") == "احمد"
    assert search.normalise("إلى") == search.normalise("الي") == search.normalise("آلى")
    assert search.normalise("رحلــــة") == search.normalise("رحله")  # tatweel, ta marbuta
    assert search.normalise("مُهَرِّب") == "مهرب"  # harakat and shadda
    assert search.normalise("مسؤول") == "مسوول" and search.normalise("رئيس") == "رييس"
    assert search.normalise("٠٧٧١٢٣") == search.normalise("۰۷۷۱۲۳") == "077123"


def test_persian_letters_and_joiners() -> None:
    assert search.normalise("کشتی") == search.normalise("كشتي")  # keheh/kaf, Farsi yeh/ya
    assert search.normalise("می\u200cروم") == search.normalise("میروم")  # ZWNJ never splits


def test_latin_tigrinya_and_separators() -> None:
    assert search.normalise("Ça COÛTE 2000€!") == "ca coute 2000"
    assert search.normalise("ጉዕዞ፡ናብ፡ኢጣልያ።") == "ጉዕዞ ናብ ኢጣልያ"  # Ethiopic wordspace
    assert search.normalise("7arga l'Italia") == "7arga l italia"
    assert search.normalise("\x00\u202e") == ""


@pytest.mark.parametrize("raw", ['"', '""', "AND", "OR", "NOT", "NEAR(a b)", "a:b", "^a", "*",
                                 '"a b', "(a", "a AND OR b", "'; DROP TABLE x;--", "c*",
                                 "\x00a", "\ud800"])
def test_hostile_queries_parse_into_quoted_words_or_refuse(raw: str) -> None:
    try:
        parsed = search.parse_query(raw)
    except InvalidInput:
        return
    for term in parsed.terms:
        for word in term.words:
            assert word and all(c not in word for c in "\"'():*^ ")


def test_long_or_wordy_queries_are_refused() -> None:
    with pytest.raises(InvalidInput):
        search.parse_query("a" * 10_000)
    with pytest.raises(InvalidInput):
        search.parse_query(" ".join(["w"] * 17))
    with pytest.raises(InvalidInput, match="no words"):
        search.parse_query("!!! ...")


# --- text search --------------------------------------------------------------------------------

def test_arabic_persian_tigrinya_and_arabizi(session: Session, store: FolderStore) -> None:
    owner = make_user(session)
    case = make_case(session, owner)
    arabic = _capture(session, owner, case, store,
                      "رِحْلَة إِلَى أُورُوبَا مَعَ مُهَرِّب مَوْثُوق، الاتصال ٠٧٧١٢٣٤٥٦٧")
    persian = _capture(session, owner, case, store, "کشتی به یونان، قیمت مناسب")
    tigrinya = _capture(session, owner, case, store, "ጉዕዞ፡ናብ፡ኢጣልያ። ብዝሒ ሰባት")
    arabizi = _capture(session, owner, case, store, "7arga l'Italia ce soir, prix 2000")
    latin = _capture(session, owner, case, store, "Harga vers Lampedusa")

    assert _found(session, owner, "رحلة الى اوروبا") == {arabic.id}
    assert _found(session, owner, "مُهرّب") == {arabic.id}
    assert _found(session, owner, "إلى أوروبا") == {arabic.id}
    assert _found(session, owner, "0771234567") == {arabic.id}
    assert _found(session, owner, "كشتي") == {persian.id}  # Arabic kaf and ya
    assert _found(session, owner, "یونان") == {persian.id}
    assert _found(session, owner, "ኢጣልያ") == {tigrinya.id}
    assert _found(session, owner, "7arga") == {arabizi.id}
    assert _found(session, owner, "harga") == {latin.id}  # Arabizi is not folded
    assert _found(session, owner, "7arga OR harga") == {arabizi.id, latin.id}
    assert _found(session, owner, "ITALIA") == {arabizi.id}
    assert _found(session, owner, '"ce soir"') == {arabizi.id}
    assert _found(session, owner, '"soir ce"') == set()
    assert _found(session, owner, "lampe*") == {latin.id}
    assert _found(session, owner, "اورو*") == {arabic.id}
    assert _found(session, owner, "lampe") == set()
    assert _found(session, owner, "harga lampedusa vers") == {latin.id}
    assert _found(session, owner, "harga italia") == set()


def test_snippet_shows_the_captured_text_around_the_match(session: Session,
                                                           store: FolderStore) -> None:
    owner = make_user(session)
    case = make_case(session, owner)
    text = ("مقدمة طويلة " * 30) + "رِحْلَة إِلَى أُورُوبَا" + (" خاتمة" * 30)
    _capture(session, owner, case, store, text, title="إعلان")
    hit = search.search_text(session, owner, "اوروبا").items[0]
    assert "أُورُوبَا" in hit.snippet and hit.snippet.startswith("…")
    assert [hit.snippet[s:e] for s, e in hit.highlights] == ["أُورُوبَا"]
    titled = search.search_text(session, owner, "اعلان").items[0]
    assert [titled.snippet[s:e] for s, e in titled.highlights] == ["إعلان"]


def test_a_capture_is_found_by_the_words_of_the_pdfs_its_page_loaded(
        session: Session, store: FolderStore) -> None:
    """The page says little; the price list it framed says it all. Its words find the capture
    (and show in the snippet) beside the page's own, even after a page text that fills the
    room the index keeps per capture."""
    owner = make_user(session)
    case = make_case(session, owner)
    framed = _capture(session, owner, case, store, "Leaflet: ask in private",
                      pdf_texts=["Crossing to Lampedusa 2000 euros", "رحلة إلى أوروبا"])
    long_page = _capture(session, owner, case, store, "filler " * search.MAX_BODY_CHARS,
                         pdf_texts=["Zodiac departures every Tuesday"])
    plain = _capture(session, owner, case, store, "Crossing schedule")
    assert _found(session, owner, '"crossing to lampedusa"') == {framed.id}
    assert _found(session, owner, "اوروبا") == {framed.id}
    assert _found(session, owner, "leaflet private") == {framed.id}
    assert _found(session, owner, "crossing") == {framed.id, plain.id}
    assert _found(session, owner, "zodiac tuesday") == {long_page.id}
    hit = search.search_text(session, owner, "lampedusa").items[0]
    assert [hit.snippet[s:e] for s, e in hit.highlights] == ["Lampedusa"]


def test_only_members_find_a_case_s_captures(session: Session, store: FolderStore) -> None:
    owner = make_user(session)
    reader = make_user(session)
    stranger = make_user(session)
    auditor = make_user(session, role=Role.AUDITOR)
    case = make_case(session, owner)
    cases.add_member(session, owner, case, reader, "read")
    capture = _capture(session, owner, case, store, "sea crossing tonight")
    assert _found(session, owner, "crossing") == {capture.id}
    assert _found(session, reader, "crossing") == {capture.id}
    assert _found(session, stranger, "crossing") == set()
    assert _found(session, auditor, "crossing") == set()
    other = make_case(session, stranger)
    _capture(session, stranger, other, store, "sea crossing tomorrow")
    assert _found(session, owner, "crossing") == {capture.id}
    recorded = session.scalars(select(CustodyEntry).where(
        CustodyEntry.action == "search.text", CustodyEntry.actor_id == owner.id)).all()
    assert recorded and str(capture.id) in recorded[-1].entry.decode()


def test_case_platform_date_filters_and_paging(session: Session, store: FolderStore) -> None:
    owner = make_user(session)
    first, second = make_case(session, owner), make_case(session, owner)
    day = datetime(2026, 3, 1, 12, tzinfo=UTC)
    fb = _capture(session, owner, first, store, "boat seats", started_at=day)
    tg = _capture(session, owner, first, store, "boat seats", url="https://t.me/s/chan/5",
                  started_at=day + timedelta(days=1))
    later = _capture(session, owner, second, store, "boat seats", url="https://m.facebook.com/x",
                     started_at=day + timedelta(days=2))
    assert _found(session, owner, "boat", case=first) == {fb.id, tg.id}
    assert _found(session, owner, "boat", hosts=["facebook.com"]) == {fb.id, later.id}
    assert _found(session, owner, "boat", hosts=["t.me"]) == {tg.id}
    assert _found(session, owner, "boat", hosts=[]) == set()
    assert _found(session, owner, "boat", since=day + timedelta(hours=1)) == {tg.id, later.id}
    assert _found(session, owner, "boat", until=day + timedelta(days=1)) == {fb.id}
    page = search.search_text(session, owner, "boat", limit=2)
    assert [h.capture_id for h in page.items] == [later.id, tg.id] and page.next_cursor
    rest = search.search_text(session, owner, "boat", limit=2, cursor=page.next_cursor)
    assert [h.capture_id for h in rest.items] == [fb.id] and rest.next_cursor is None
    with pytest.raises(InvalidInput, match="cursor"):
        search.search_text(session, owner, "boat", cursor="garbage!")


@pytest.mark.parametrize("raw", ['"', "AND", "OR", "NEAR(boat", "boat*", '"boat', "b*",
                                 "boat OR", "OR OR boat", "-boat", "boat:seats", "{boat}"])
def test_hostile_queries_never_break_the_search(session: Session, store: FolderStore,
                                               raw: str) -> None:
    owner = make_user(session)
    case = make_case(session, owner)
    _capture(session, owner, case, store, "boat seats AND and or")
    with contextlib.suppress(InvalidInput):
        search.search_text(session, owner, raw)


def test_reindex_backfills_what_the_index_lacks(session: Session, store: FolderStore) -> None:
    owner = make_user(session)
    case = make_case(session, owner)
    capture = _capture(session, owner, case, store, "dinghy departure",
                       images=["ffff0000ffff0000"])
    search.clear_index(session)
    assert _found(session, owner, "dinghy") == set()
    looked, after = search.reindex(session, store)
    assert looked >= 1 and after is None
    assert _found(session, owner, "dinghy") == {capture.id}
    assert session.scalar(select(func.count()).select_from(ImageHash)) == 1
    search.reindex(session, store)  # idempotent
    assert session.scalar(select(func.count()).select_from(SearchDocument)) == 1


# --- similar images -----------------------------------------------------------------------------

def _flip(value: int, bits: int, rng: random.Random) -> int:
    for b in rng.sample(range(64), bits):
        value ^= 1 << b
    return value


def test_band_radii_satisfy_the_pigeonhole_bound() -> None:
    assert sum(bits for _, bits in search.BANDS) == 64
    assert [offset for offset, _ in search.BANDS] == [0, 13, 26, 39, 52]
    for d in range(search.MAX_DISTANCE + 1):
        radii = search.band_radii(d)
        assert sum(r + 1 for r in radii) > d and max(radii) - min(radii) <= 1
        assert all(-1 <= r < bits for r, (_, bits) in zip(radii, search.BANDS, strict=True))
    assert len(search.probe_keys(0x8F3A00FF00FF1234, 16)) == 1019
    value = 0xFEDC_BA98_7654_3210
    assert search.bands_of(value) == [(value >> o) & ((1 << b) - 1) for o, b in search.BANDS]
    assert sum(band << offset for band, (offset, _) in zip(
        search.bands_of(value), search.BANDS, strict=True)) == value


def _postings(session: Session) -> dict[int, list[str]]:
    rows = session.execute(select(ImageHashBand.key, ImageHashBand.hashes)).all()
    return {key: sorted(hashes.split()) for key, hashes in rows}


def _expected_postings(session: Session) -> dict[int, list[str]]:
    expected: dict[int, set[str]] = {}
    for signed in set(session.scalars(select(ImageHash.phash))):
        value = signed & search.MASK64
        for key in search.band_keys(value):
            expected.setdefault(key, set()).add(f"{value:016x}")
    return {key: sorted(hashes) for key, hashes in expected.items()}


def test_posting_lists_follow_every_insert_delete_and_change(session: Session,
                                                             store: FolderStore) -> None:
    """The triggers keep the lists exact: duplicates listed once, a hash dropped only when no
    row has it, changes and bulk statements included."""
    owner = make_user(session)
    case = make_case(session, owner)
    hashes = ["8f3a00ff00ff1234", "8f3a00ff00ff1234", "0000000000000000", "ffffffffffffffff",
              "8000000000000000", "7fffffffffffffff", "8f3a00ff00ff1235"]
    capture = _capture(session, owner, case, store, "images", images=hashes)
    session.flush()
    assert _postings(session) == _expected_postings(session)
    assert all(len(v) == len(set(v)) for v in _postings(session).values())
    rows = list(session.scalars(select(ImageHash).where(ImageHash.capture_id == capture.id)
                                .order_by(ImageHash.phash)))
    duplicate = next(r for r in rows if r.phash == search._signed(0x8F3A00FF00FF1234))
    session.delete(duplicate)  # its twin still has the hash: it stays listed
    session.flush()
    assert _postings(session) == _expected_postings(session)
    assert search.matching_hashes(session, 0x8F3A00FF00FF1234, 0)
    zero = next(r for r in rows if r.phash == 0)
    zero.phash = search._signed(0x0000000000000F0F)  # a changed hash moves lists
    session.flush()
    assert _postings(session) == _expected_postings(session)
    assert [d for _, _, d in search.matching_hashes(session, 0, 8)] == [1, 8]
    session.execute(update(ImageHash).where(ImageHash.capture_id == capture.id)
                    .values(phash=search._signed(0x1234)))  # bulk: every row the same hash
    assert _postings(session) == _expected_postings(session)
    assert len(search.matching_hashes(session, 0x1234, 0)) == len(hashes) - 1
    search.clear_index(session)
    assert _postings(session) == {}


def test_migration_builds_the_lists_from_stored_hashes(database_url: str) -> None:
    """Upgrading from 0005's four band columns builds the posting lists from each row's pHash,
    and downgrading recomputes the band columns."""
    engine = make_engine(database_url)
    try:
        config = migrate.alembic_config(engine)
        # The case is made through today's models, so before the downgrade: the rows outlive it.
        factory = make_session_factory(engine)
        with session_scope(factory) as s:
            owner = make_user(s)
            case = make_case(s, owner)
            case_id = case.id
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, "0005")
        rng = random.Random(7)
        values = [rng.getrandbits(64) for _ in range(300)] + [0, search.MASK64, 1 << 63]
        values += values[:5]  # the same hash on several artifacts
        with engine.begin() as conn:
            for value in values:
                artifact_id = uuid.uuid4()
                conn.execute(insert(Artifact).values(
                    id=artifact_id, case_id=case_id, kind="screenshot", media_type="image/png",
                    size=1, sha256="0" * 64, phash=f"{value:016x}", created_at=utcnow()))
                bands = {f"band{i}": (value >> (16 * i)) & 0xFFFF for i in range(4)}
                conn.execute(text(
                    "INSERT INTO image_hashes (artifact_id, case_id, phash, band0, band1, band2, "
                    "band3) VALUES (:a, :c, :p, :band0, :band1, :band2, :band3)"),
                    {"a": artifact_id if engine.dialect.name == "postgresql" else artifact_id.hex,
                     "c": case_id if engine.dialect.name == "postgresql" else case_id.hex,
                     "p": search._signed(value), **bands})
        migrate.upgrade(engine)
        with session_scope(factory) as s:
            assert _postings(s) == _expected_postings(s)
            for base in values[:3]:
                got = sorted(d for _, _, d in search.matching_hashes(s, base, 16))
                assert got == sorted(search.hamming64(base, v) for v in values
                                     if search.hamming64(base, v) <= 16)
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, "0005")
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT phash, band0, band1, band2, band3 "
                                     "FROM image_hashes")).all()
        assert len(rows) == len(values)
        assert all([(p >> (16 * i)) & 0xFFFF for i in range(4)] == list(b) for p, *b in rows)
        migrate.upgrade(engine)
    finally:
        engine.dispose()


def test_similar_images_are_exactly_the_brute_force_answer(session: Session,
                                                           store: FolderStore) -> None:
    rng = random.Random(20261122)
    owner = make_user(session)
    case = make_case(session, owner)
    bases = [rng.getrandbits(64) for _ in range(6)] + [0xFFFF_FFFF_FFFF_FFFF, 1 << 63]
    stored = [rng.getrandbits(64) for _ in range(120)]
    for base in bases:
        stored += [_flip(base, bits, rng) for bits in range(0, 21) for _ in range(2)]
    hexes = [f"{v:016x}" for v in stored]
    for start in range(0, len(hexes), 100):
        _capture(session, owner, case, store, "images", images=hexes[start:start + 100])
    for base in [*bases, _flip(bases[0], 3, rng), rng.getrandbits(64)]:
        for d in range(0, search.MAX_DISTANCE + 1):
            got = search.matching_hashes(session, base, d)
            brute = sorted(search.hamming64(base, v) for v in stored
                           if search.hamming64(base, v) <= d)
            assert sorted(dist for _, _, dist in got) == brute, (hex(base), d)
            assert all(search.hamming64(base, p & search.MASK64) == dist for _, p, dist in got)


def test_similar_images_across_visible_cases_only(session: Session, store: FolderStore) -> None:
    owner = make_user(session)
    stranger = make_user(session)
    auditor = make_user(session, role=Role.AUDITOR)
    mine, other = make_case(session, owner), make_case(session, owner)
    hidden = make_case(session, stranger)
    a = _capture(session, owner, mine, store, "ad", images=["8f3a00ff00ff1234"])
    b = _capture(session, owner, other, store, "ad", images=["8f3a00ff00ff1235"])
    _capture(session, stranger, hidden, store, "ad", images=["8f3a00ff00ff1237"])
    _capture(session, owner, other, store, "ad", images=["70c5ff00ff00edcb"])  # far away
    source = search.visible_artifact(session, owner, _artifact_of(session, a.id))
    found = search.similar_images(session, owner, artifact_id=source.id)
    assert [(h.capture_id, h.distance, h.case_reference) for h in found.items] == [
        (b.id, 1, other.reference)]
    by_hash = search.similar_images(session, owner, phash="8f3a00ff00ff1234", distance=0)
    assert [h.capture_id for h in by_hash.items] == [a.id]
    assert search.similar_images(session, stranger, phash="8f3a00ff00ff1234").items[0].distance == 2
    assert search.similar_images(session, auditor, phash="8f3a00ff00ff1234").items == []
    with pytest.raises(NotFound):
        search.similar_images(session, stranger, artifact_id=source.id)
    with pytest.raises(InvalidInput):
        search.similar_images(session, owner, phash="8f3a00ff00ff1234", distance=17)
    with pytest.raises(InvalidInput):
        search.similar_images(session, owner, phash="not-hex-at-all!!")


def _artifact_of(session: Session, capture_id: Any) -> Any:
    return session.scalars(select(ImageHash.artifact_id).where(
        ImageHash.capture_id == capture_id)).one()
