"""Search over captured evidence: the pages' text, and images that look alike.

Text. A capture's visible text (its "text" artifact, with the page title first), and after it
the words of the PDFs the page framed or embedded (its "pdf_text" artifacts, one per PDF, each
named by the PDF's hash), is indexed in the transaction that records the capture: the
capture is found by either, and the page's own text stays the artifact comparisons diff. Both
sides of a search go through one function, `normalise`, so the index and the query always agree
on what a word is:

- NFKD, then combining marks that only decorate a letter are dropped: Latin accents, Arabic
  harakat, shadda, sukun, superscript alef, Quranic marks, and the hamza above/below that NFKD
  splits off (so أ إ آ → ا, ؤ → و, ئ → ي); Arabic presentation forms become plain letters.
- Arabic and Persian letter variants are folded: ٱ → ا, ة → ه, ى and Persian ی → ي, Persian
  ک → ك, ۀ → ه; tatweel, zero-width (non-)joiners and direction marks are removed (so
  "می‌روم" and "میروم" are the same word); Arabic-Indic and Persian digits become 0-9 (phone
  numbers in adverts are written both ways).
- Case is folded (`str.casefold`); anything that is not a letter, digit or mark separates
  words. Ge'ez (Tigrinya) syllables are letters and need nothing more.
- Arabizi is Latin and is not folded into Arabic: "7arga" and "harga" are different words
  (a digit-for-letter rule would also rewrite phone numbers); search `7arga OR harga`.

The normalised text (`terms`) is what the backends index: SQLite through an FTS5 table
(unicode61 only splits it into words), PostgreSQL through a GIN index over
`to_tsvector('simple', terms)` (no stemming, no stop words). A user's query is never handed to
either engine as syntax: it is parsed here into words, "quoted phrases", a trailing `*` for a
prefix and `OR` between alternatives, and each word is written back quoted. Results are ordered
newest capture first on both backends (their relevance scores differ), and snippets are cut
here from the stored text, so both backends answer alike. Trigram matching was not used: it
finds substrings of handles, but triples the index and matches across Arabic word forms badly;
a handle split at `_` or `.` is still found by its parts as a phrase.

Images. Every image artifact with a pHash is indexed with its 64 bits cut into five bands
(bits 0-12, 13-25, 26-38, 39-51: 13 bits; 52-63: 12 bits). A search within Hamming distance d is
exact (never misses a match) by the generalised pigeonhole principle: if each band i differed in
more than r_i bits, the hashes would differ in at least sum(r_i + 1) bits, so choosing radii
with sum(r_i + 1) > d guarantees that some band is within its radius (r_i = -1 leaves a band
out). The d + 1 units are spread evenly, the 13-bit bands first (d=4 → 0,0,0,0,0; d=10 →
2,1,1,1,1; d=16 → 3,3,2,2,2), which keeps both the band values probed (1,019 at d=16) and the
hashes they list (~134,000 of 1,000,000 random ones) small.

The index is a table of posting lists, `image_hash_bands`: one row per band value listing every
distinct pHash that has it (16 hex digits and a space each), maintained by triggers on
`image_hashes` (migration 0006), so it is exact whoever writes the rows. A search fetches the
rows of every band value within its band's radius in one query (one B-tree probe each; the rows
are the posting lists, nothing else is read), decodes the listed hashes in bulk, keeps those
within d by a popcount of the XOR, and only then looks the few matching hashes up in
`image_hashes` (by its `phash` index) for their artifacts, restricted to the caller's cases.
Checking a listed hash this way costs well under a microsecond, where fetching an index row per
candidate and popcounting it in SQL (a Python function on SQLite) cost several: with four 16-bit
bands and one indexed column each, distance 16 probed 4,608 values and checked ~70,000 rows one
by one, slower than a linear scan. Narrower bands would probe fewer values but list many more
hashes per value (and rewrite longer lists on every insert); wider ones probe far more values.
"""

from __future__ import annotations

import base64
import binascii
import logging
import sys
import unicodedata
import uuid
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache, lru_cache
from itertools import combinations
from typing import Any
from urllib.parse import urlsplit

import orjson
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    and_,
    any_,
    bindparam,
    cast,
    delete,
    false,
    func,
    literal_column,
    or_,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, BIT
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

from evidence import custody, users
from evidence.blobstore import BlobStore
from evidence.db import storage_full
from evidence.errors import EvidenceError, InvalidInput, NotFound, StorageFull
from evidence.models import (
    Artifact,
    Capture,
    Case,
    CaseMember,
    ImageHash,
    ImageHashBand,
    Role,
    SearchDocument,
    User,
)
from evidence.pagination import MAX_CURSOR_LENGTH, check_limit

log = logging.getLogger("evidence.search")

MAX_QUERY_CHARS = 500
MAX_QUERY_WORDS = 16
MIN_PREFIX_CHARS = 2
# The text kept and indexed per capture. PostgreSQL refuses a tsvector over 1 MB; 200 KB of
# normalised words stays well under that whatever the words are.
MAX_BODY_CHARS = 200_000
MAX_TERMS_BYTES = 200_000
SNIPPET_CONTEXT = 80
DEFAULT_DISTANCE = 10
MAX_DISTANCE = 16
# (first bit, width) of each band of the 64-bit pHash; migration 0006 holds a frozen copy.
BANDS: tuple[tuple[int, int], ...] = ((0, 13), (13, 13), (26, 13), (39, 13), (52, 12))
BAND_KEY_STRIDE = 8192  # a posting list's key is band number * 8192 + band value
# Serialises writers of the image index on PostgreSQL (see `_lock_image_index`).
IMAGE_INDEX_LOCK_KEY = 0x45564C494D47  # "EVLIMG"
MASK64 = (1 << 64) - 1

# --- normalisation ------------------------------------------------------------------------------

_FOLD = {
    "\u0671": "\u0627",  # alef wasla → alef
    "\u0629": "\u0647",  # ta marbuta → ha
    "\u0649": "\u064a",  # alef maqsura → ya
    "\u06cc": "\u064a",  # Persian yeh → Arabic ya
    "\u06a9": "\u0643",  # Persian keheh → Arabic kaf
    "\u06c0": "\u0647",  # heh with yeh above → ha (before NFKD would make it Kurdish ە)
    **{chr(0x0660 + i): str(i) for i in range(10)},  # Arabic-Indic digits
    **{chr(0x06F0 + i): str(i) for i in range(10)},  # Persian digits
}
# Invisible characters that sit inside words: removed, so they never split one.
_JOINERS = frozenset("\u0640\u00ad\u200b\u200c\u200d\u200e\u200f\u2060\ufeff"
                     "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_DECORATIONS = (
    (0x0300, 0x036F),  # Latin/Greek/Cyrillic combining accents
    (0x0610, 0x061A),  # Arabic honorific and small marks
    (0x064B, 0x065F),  # Arabic harakat, shadda, sukun, hamza above/below
    (0x0670, 0x0670),  # superscript alef
    (0x06D6, 0x06ED),  # Quranic annotation marks
    (0x135D, 0x135F),  # Ethiopic combining marks
    (0x1AB0, 0x1AFF), (0x1DC0, 0x1DFF), (0x20D0, 0x20FF), (0xFE20, 0xFE2F),
)


def _decoration(ch: str) -> bool:
    code = ord(ch)
    return any(lo <= code <= hi for lo, hi in _DECORATIONS)


@lru_cache(maxsize=65536)
def _fold(ch: str) -> str:
    """What one character becomes: word characters, " " for a separator, "" to vanish."""
    if ch in _JOINERS:
        return ""
    ch = _FOLD.get(ch, ch)
    out = []
    for part in unicodedata.normalize("NFKD", ch):
        if _decoration(part):
            continue
        part = _FOLD.get(part, part)
        for c in part.casefold():
            category = unicodedata.category(c)
            out.append(c if category[0] in "LNM" or category == "Co" else " ")
    return "".join(out)


def _words(text: str) -> list[tuple[str, int, int]]:
    """The normalised words of `text`, each with the span of `text` it came from."""
    words: list[tuple[str, int, int]] = []
    current: list[str] = []
    start = 0
    for i, ch in enumerate(text):
        folded = _fold(ch)
        for c in folded:
            if c == " ":
                if current:
                    words.append(("".join(current), start, i))
                    current = []
            else:
                if not current:
                    start = i
                current.append(c)
    if current:
        words.append(("".join(current), start, len(text)))
    return words


def normalise(text: str) -> str:
    """The words of `text` as the index and the query both see them, joined by spaces."""
    return " ".join(word for word, _, _ in _words(text))


# --- queries ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Term:
    """One word, or a phrase of adjacent words; `prefix` lets the last word be a prefix."""

    words: tuple[str, ...]
    prefix: bool = False


@dataclass(frozen=True)
class Query:
    """Alternatives (OR) of conjunctions (AND) of terms."""

    groups: tuple[tuple[Term, ...], ...]

    @property
    def terms(self) -> list[Term]:
        return [t for group in self.groups for t in group]

    def fts5(self) -> str:
        def term(t: Term) -> str:
            return '"' + " ".join(t.words) + '"' + ("*" if t.prefix else "")

        return " OR ".join("(" + " AND ".join(term(t) for t in g) + ")" for g in self.groups)

    def tsquery(self) -> str:
        def term(t: Term) -> str:
            words = [f"'{w}'" for w in t.words]
            if t.prefix:
                words[-1] += ":*"
            return "(" + " <-> ".join(words) + ")"

        return " | ".join("(" + " & ".join(term(t) for t in g) + ")" for g in self.groups)


def parse_query(raw: str) -> Query:
    """Words, "phrases", a trailing * for a prefix, OR between alternatives; nothing else is
    syntax. Refuses a query with no words in it, or too long to be a search."""
    if len(raw) > MAX_QUERY_CHARS:
        raise InvalidInput(f"a search is at most {MAX_QUERY_CHARS} characters")
    if "\x00" in raw:  # the query is recorded in the custody log, which holds no NUL
        raise InvalidInput("the search must not contain NUL characters")
    groups: list[list[Term]] = [[]]
    for n, segment in enumerate(raw.split('"')):
        if n % 2:  # inside quotes (an unclosed quote runs to the end)
            words = tuple(w for w, _, _ in _words(segment))
            if words:
                groups[-1].append(Term(words))
            continue
        for chunk in segment.split():
            if chunk == "OR":
                groups.append([])
                continue
            words = tuple(w for w, _, _ in _words(chunk))
            if words:
                prefix = chunk.endswith("*") and len(words[-1]) >= MIN_PREFIX_CHARS
                groups[-1].append(Term(words, prefix))
    kept = tuple(tuple(g) for g in groups if g)
    if not kept:
        raise InvalidInput("the search has no words in it")
    if sum(len(t.words) for g in kept for t in g) > MAX_QUERY_WORDS:
        raise InvalidInput(f"a search may have at most {MAX_QUERY_WORDS} words")
    return Query(kept)


# --- indexing -----------------------------------------------------------------------------------

def host_of(url: str) -> str | None:
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return None
    return None if not host else host.rstrip(".")[:255]


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def bands_of(value: int) -> list[int]:
    """The five band values (13, 13, 13, 13 and 12 bits) of an unsigned 64-bit hash, lowest
    bits first."""
    return [(value >> offset) & ((1 << bits) - 1) for offset, bits in BANDS]


def band_keys(value: int) -> list[int]:
    """The posting-list keys of an unsigned 64-bit hash, one per band."""
    return [n * BAND_KEY_STRIDE + band for n, band in enumerate(bands_of(value))]


def parse_phash(value: str) -> int:
    """A pHash written as 16 hex digits, as an unsigned 64-bit integer."""
    if len(value) != 16:
        raise InvalidInput(f"a pHash is 16 hex digits, not {value!r}")
    try:
        return int(value, 16)
    except ValueError as exc:
        raise InvalidInput(f"a pHash is 16 hex digits, not {value!r}") from exc


def image_row(artifact: Artifact) -> ImageHash | None:
    if artifact.phash is None:
        return None
    try:
        value = parse_phash(artifact.phash)
    except InvalidInput:
        log.warning("artifact %s has a malformed pHash %r; not indexed", artifact.id,
                    artifact.phash)
        return None
    return ImageHash(artifact_id=artifact.id, case_id=artifact.case_id,
                     capture_id=artifact.capture_id, phash=_signed(value))


def _document(capture: Capture, text_bytes: bytes | None,
              pdf_texts: list[bytes]) -> SearchDocument:
    visible = "" if text_bytes is None else text_bytes.decode("utf-8", errors="replace")
    body = visible if not capture.title else f"{capture.title}\n{visible}"
    pdfs = [t.decode("utf-8", errors="replace") for t in pdf_texts]
    # The page's text first, leaving the PDFs' words up to half the room they need.
    room = MAX_BODY_CHARS - min(sum(len(t) + 2 for t in pdfs), MAX_BODY_CHARS // 2)
    body = "\n\n".join([body[:room], *pdfs])[:MAX_BODY_CHARS]
    terms = normalise(body)
    if len(terms.encode("utf-8")) > MAX_TERMS_BYTES:
        cut = terms.encode("utf-8")[:MAX_TERMS_BYTES].decode("utf-8", errors="ignore")
        terms = cut.rsplit(" ", 1)[0]
    url = capture.requested_url
    return SearchDocument(capture_id=capture.id, case_id=capture.case_id, url=url,
                          host=host_of(url), captured_at=capture.started_at, body=body,
                          terms=terms)


def index_capture(session: Session, capture: Capture, *, store: BlobStore) -> None:
    """Index a recorded capture's text and image hashes, in the caller's transaction.

    Idempotent. A failure here is logged and leaves the capture recorded but unindexed (in a
    savepoint): evidence is never lost for the sake of its index; `evidence search reindex`
    indexes it later.
    """
    try:
        with session.begin_nested():
            _index(session, capture, store)
    except (SQLAlchemyError, EvidenceError, OSError) as exc:
        if isinstance(exc, StorageFull) or (isinstance(exc, OperationalError) and storage_full(
                exc, session.get_bind().engine.url) is not None):
            # The capture's own rows will not fit either: its recording fails, saying so,
            # rather than warn here of an index the capture will not have.
            raise
        # The driver's words, not the statement and its parameters (SQLAlchemy's whole text).
        said = exc.orig if isinstance(exc, DBAPIError) else exc
        log.warning("capture %s recorded but not indexed for search: %s", capture.id, said)


def _index(session: Session, capture: Capture, store: BlobStore) -> None:
    artifacts = list(session.scalars(select(Artifact).where(Artifact.capture_id == capture.id)))
    has_doc = session.scalar(select(SearchDocument.id).where(
        SearchDocument.capture_id == capture.id)) is not None
    text_artifact = next((a for a in artifacts if a.kind == "text"), None)
    pdf_texts = [a for a in artifacts if a.kind == "pdf_text"]
    if (text_artifact is not None or pdf_texts) and not has_doc:
        session.add(_document(
            capture, None if text_artifact is None else store.read_bytes(text_artifact.sha256),
            [store.read_bytes(a.sha256) for a in pdf_texts]))
    hashed = {a.id for a in artifacts if a.phash is not None}
    if hashed:
        done = set(session.scalars(select(ImageHash.artifact_id).where(
            ImageHash.artifact_id.in_(hashed))))
        rows = [image_row(a) for a in artifacts if a.id in hashed and a.id not in done]
        if any(rows):
            _lock_image_index(session)
        session.add_all(row for row in rows if row is not None)
    session.flush()


def reindex(session: Session, store: BlobStore, *, after: uuid.UUID | None = None,
            limit: int = 200) -> tuple[int, uuid.UUID | None]:
    """Index up to `limit` captures after `after` (by id) that the index lacks; returns how many
    captures were looked at and the last id, None when there are no more."""
    query = select(Capture).order_by(Capture.id).limit(limit)
    if after is not None:
        query = query.where(Capture.id > after)
    batch = list(session.scalars(query))
    for capture in batch:
        index_capture(session, capture, store=store)
    return len(batch), (batch[-1].id if len(batch) == limit else None)


def clear_index(session: Session) -> None:
    """Forget every indexed document and image hash (before rebuilding them all)."""
    session.execute(delete(SearchDocument))
    _lock_image_index(session)
    session.execute(delete(ImageHash))  # the triggers empty the posting lists


def rebuild_posting_lists(session: Session) -> None:
    """Rebuild every posting list from `image_hashes` in a few set-based statements (what
    migration 0006 does for existing rows): a repair tool, and the end of a bulk load that
    bypassed the triggers."""
    _lock_image_index(session)
    sqlite = session.get_bind().dialect.name == "sqlite"
    entry = "printf('%016x ', phash)" if sqlite else "lpad(to_hex(phash), 16, '0') || ' '"
    concat = f"group_concat({entry}, '')" if sqlite else f"string_agg({entry}, '')"
    session.execute(delete(ImageHashBand))
    for n, (offset, bits) in enumerate(BANDS):
        key = f"{n * BAND_KEY_STRIDE} + ((phash >> {offset}) & {(1 << bits) - 1})"
        session.execute(text(  # built from constants only
            f"INSERT INTO image_hash_bands (key, hashes) SELECT {key} AS k, {concat} "  # noqa: S608
            "FROM (SELECT DISTINCT phash FROM image_hashes) AS d GROUP BY k"))


# --- text search --------------------------------------------------------------------------------

@dataclass(frozen=True)
class TextHit:
    capture_id: uuid.UUID
    case_reference: str
    target_id: uuid.UUID  # the target the capture is of
    url: str
    host: str | None
    captured_at: datetime
    snippet: str
    highlights: list[tuple[int, int]]


@dataclass(frozen=True)
class TextResults:
    items: list[TextHit]
    next_cursor: str | None


def _visible_cases(actor: User) -> Any:
    return select(CaseMember.case_id).where(CaseMember.user_id == actor.id)


def _encode_cursor(moment: datetime, row_id: int) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([moment.isoformat(), row_id])).decode().rstrip(
        "=")


def _decode_cursor(cursor: str) -> tuple[datetime, int]:
    bad = InvalidInput("cursor is not one this API handed out; start again without it")
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise bad
    try:
        raw = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        moment, row_id = raw
        when = datetime.fromisoformat(moment)
    except (binascii.Error, ValueError, TypeError, orjson.JSONDecodeError) as exc:
        raise bad from exc
    if when.tzinfo is None or not isinstance(row_id, int) or isinstance(row_id, bool) or not (
            0 <= row_id < 2**63):
        raise bad
    return when, row_id


def _host_filter(hosts: Sequence[str]) -> ColumnElement[bool]:
    clauses: list[ColumnElement[bool]] = []
    for host in hosts:
        host = host.lower().rstrip(".")
        escaped = host.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        clauses.append(SearchDocument.host == host)
        clauses.append(SearchDocument.host.like(f"%.{escaped}", escape="\\"))
    return or_(*clauses) if clauses else false()


def search_text(
    session: Session,
    actor: User,
    raw_query: str,
    *,
    case: Case | None = None,
    hosts: Sequence[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 50,
    cursor: str | None = None,
    record: bool = True,
) -> TextResults:
    """Captures whose text matches, newest first, from the cases the actor is a member of.

    `case` must already be one the actor may see (`cases.case_for`); `hosts` keeps captures of
    those hosts and their subdomains (the API maps a platform to its hosts). The search and what
    it returned are recorded in the custody log.
    """
    check_limit(limit)
    query = parse_query(raw_query)
    if not users.reads_evidence(actor.role):
        return TextResults([], None)
    doc = SearchDocument
    conditions: list[ColumnElement[bool]] = [doc.case_id.in_(_visible_cases(actor))]
    if session.get_bind().dialect.name == "postgresql":
        simple: ColumnElement[Any] = literal_column("'simple'::regconfig")
        conditions.append(func.to_tsvector(simple, doc.terms).op("@@")(
            func.to_tsquery(simple, query.tsquery())))
    else:
        conditions.append(doc.id.in_(
            select(literal_column("rowid")).select_from(text("search_fts"))
            .where(text("search_fts MATCH :fts_query").bindparams(fts_query=query.fts5()))))
    if case is not None:
        conditions.append(doc.case_id == case.id)
    if hosts is not None:
        conditions.append(_host_filter(hosts))
    if since is not None:
        conditions.append(doc.captured_at >= since)
    if until is not None:
        conditions.append(doc.captured_at < until)
    if cursor:
        moment, row_id = _decode_cursor(cursor)
        conditions.append(or_(doc.captured_at < moment,
                              and_(doc.captured_at == moment, doc.id < row_id)))
    # The page's ids first, from the indexes alone; only then the page's rows, whose text is
    # long: sorting every match with its text made a common word take a third of a second.
    ids = list(session.scalars(
        select(doc.id).where(*conditions)
        .order_by(doc.captured_at.desc(), doc.id.desc()).limit(limit + 1)
    ))
    loaded = {d.id: (d, reference, target_id) for d, reference, target_id in session.execute(
        select(doc, Case.reference, Capture.target_id).join(Case, Case.id == doc.case_id)
        .join(Capture, Capture.id == doc.capture_id).where(doc.id.in_(ids))
    ).all()}
    rows = [loaded[i] for i in ids if i in loaded]
    page = rows[:limit]
    hits = []
    for d, reference, target_id in page:
        snippet, marks = make_snippet(d.body, query)
        hits.append(TextHit(d.capture_id, reference, target_id, d.url, d.host, d.captured_at,
                            snippet, marks))
    next_cursor = None
    if len(rows) > limit:
        last = page[-1][0]
        next_cursor = _encode_cursor(last.captured_at, last.id)
    if record:
        custody.append(session, actor, action="search.text", details={
            "query": raw_query,
            "case": None if case is None else case.reference,
            "hosts": None if hosts is None else list(hosts),
            "from": None if since is None else since.isoformat(),
            "to": None if until is None else until.isoformat(),
            "captures": [str(h.capture_id) for h in hits],
        })
    return TextResults(hits, next_cursor)


def _matches(word: str, term_word: str, prefix: bool) -> bool:
    return word.startswith(term_word) if prefix else word == term_word


def make_snippet(body: str, query: Query, *, context: int = SNIPPET_CONTEXT) -> tuple[
        str, list[tuple[int, int]]]:
    """A window of `body` around the first match, and where the matched words are in it."""
    words = _words(body)
    found: tuple[int, int] | None = None
    for i in range(len(words)):
        for term in query.terms:
            n = len(term.words)
            if i + n > len(words):
                continue
            if all(_matches(words[i + k][0], w, term.prefix and k == n - 1)
                   for k, w in enumerate(term.words)):
                found = (words[i][1], words[i + n - 1][2])
                break
        if found:
            break
    if found is None:  # matched beyond what is kept, or only through a word split differently
        return body[: 2 * context].strip(), []
    start = max(0, found[0] - context)
    end = min(len(body), found[1] + context)
    # Do not cut a word in two at either end of the window.
    while start > 0 and not body[start - 1].isspace() and found[0] - start < context + 20:
        start -= 1
    while end < len(body) and not body[end].isspace() and end - found[1] < context + 20:
        end += 1
    window = body[start:end]
    lead = len(window) - len(window.lstrip())
    window = window.strip()
    offset = start + lead
    marks = []
    for term in query.terms:
        n = len(term.words)
        for i in range(len(words) - n + 1):
            s, e = words[i][1], words[i + n - 1][2]
            if s < offset or e > offset + len(window):
                continue
            if all(_matches(words[i + k][0], w, term.prefix and k == n - 1)
                   for k, w in enumerate(term.words)):
                marks.append((s - offset, e - offset))
    prefix = "…" if offset > 0 else ""
    suffix = "…" if offset + len(window) < len(body) else ""
    shift = len(prefix)
    return (prefix + window + suffix,
            sorted({(s + shift, e + shift) for s, e in marks}))


# --- similar images -----------------------------------------------------------------------------

@cache
def _masks(bits: int, radius: int) -> tuple[int, ...]:
    """Every `bits`-bit mask with at most `radius` bits set (none for a radius of -1)."""
    out = []
    for r in range(radius + 1):
        for chosen in combinations(range(bits), r):
            out.append(sum(1 << b for b in chosen))
    return tuple(out)


def band_radii(distance: int) -> list[int]:
    """Radii r_i (-1: band not probed) with sum(r_i + 1) = distance + 1, spread evenly, the
    13-bit bands taking any extra first: the fewest probes and listed hashes for that bound."""
    base, extra = divmod(distance + 1, len(BANDS))
    return [base + (1 if n < extra else 0) - 1 for n in range(len(BANDS))]


def probes(value: int, distance: int) -> list[list[int]]:
    """For each band, the band values within its radius of the query's band."""
    return [[band ^ m for m in _masks(bits, r)]
            for band, (_, bits), r in zip(bands_of(value), BANDS, band_radii(distance),
                                          strict=True)]


def probe_keys(value: int, distance: int) -> list[int]:
    """The posting-list keys to fetch for a search within `distance` of `value`, ascending."""
    return sorted(n * BAND_KEY_STRIDE + band
                  for n, values in enumerate(probes(value, distance)) for band in values)


def hamming64(a: int, b: int) -> int:
    return ((a ^ b) & MASK64).bit_count()


def _register_sqlite_hamming(session: Session) -> None:
    raw = session.connection().connection.driver_connection
    assert raw is not None
    raw.create_function("evl_hamming", 2, hamming64, deterministic=True)


def _lock_image_index(session: Session) -> None:
    """On PostgreSQL, hold (to the end of the transaction) the lock that serialises writers of
    `image_hashes`: the triggers update up to five posting lists a row, and two transactions
    taking them in different orders would deadlock; a delete racing an insert of the same hash
    could also drop it from its lists. SQLite transactions already hold the write lock."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                        {"key": IMAGE_INDEX_LOCK_KEY})


def _listed_within(listings: Iterable[str], value: int, distance: int) -> dict[int, int]:
    """{unsigned hash: distance} of the hashes in posting lists within `distance` of `value`."""
    packed = array("Q", bytes.fromhex("".join(listings)))  # fromhex skips the spaces
    if sys.byteorder == "little":
        packed.byteswap()  # the lists are written most significant digit first
    return {h: (h ^ value).bit_count() for h in packed if (h ^ value).bit_count() <= distance}


@dataclass(frozen=True)
class ImageHit:
    artifact_id: uuid.UUID
    capture_id: uuid.UUID | None
    case_reference: str
    kind: str
    phash: str
    distance: int
    url: str | None
    captured_at: datetime | None


@dataclass(frozen=True)
class ImageResults:
    phash: str
    distance: int
    items: list[ImageHit] = field(default_factory=list)
    more: bool = False


def check_distance(distance: int) -> int:
    if not 0 <= distance <= MAX_DISTANCE:
        raise InvalidInput(f"distance must be between 0 and {MAX_DISTANCE}")
    return distance


def matching_hashes(
    session: Session, value: int, distance: int, *, case_ids: Any = None,
    limit: int | None = None,
) -> list[tuple[uuid.UUID, int, int]]:
    """(artifact id, signed pHash, distance) of every indexed image within `distance` of the
    unsigned 64-bit `value`, nearest first; `case_ids` (a subquery or list) narrows them."""
    check_distance(distance)
    postgres = session.get_bind().dialect.name == "postgresql"
    keys = probe_keys(value, distance)
    bands = ImageHashBand.__table__
    if postgres:
        wanted: ColumnElement[bool] = bands.c.key == any_(bindparam("keys", keys,
                                                                   type_=ARRAY(Integer)))
    else:
        listed = func.json_each(bindparam("keys", orjson.dumps(keys).decode())
                                ).table_valued("value")
        wanted = bands.c.key.in_(select(listed.c.value))
    near = _listed_within(session.scalars(select(bands.c.hashes).where(wanted)), value,
                          distance)
    if not near:
        return []
    h = ImageHash
    signed = sorted(_signed(v) for v in near)
    if postgres:
        hashes: ColumnElement[bool] = h.phash == any_(bindparam("hashes", signed,
                                                                type_=ARRAY(BigInteger)))
        xor = h.phash.op("#")(bindparam("q", _signed(value), type_=BigInteger))
        dist: ColumnElement[int] = func.bit_count(cast(xor, BIT(64)))
    else:
        table = func.json_each(bindparam("hashes", orjson.dumps(signed).decode())
                               ).table_valued("value")
        hashes = h.phash.in_(select(table.c.value))
        _register_sqlite_hamming(session)
        dist = func.evl_hamming(h.phash, bindparam("q", _signed(value), type_=BigInteger))
    query = (select(h.artifact_id, h.phash, dist.label("distance"))
             .where(hashes)
             .order_by(dist, h.artifact_id))
    if case_ids is not None:
        query = query.where(h.case_id.in_(case_ids))
    if limit is not None:
        query = query.limit(limit)
    return [(a, p, int(d)) for a, p, d in session.execute(query).all()]


def visible_artifact(session: Session, actor: User, artifact_id: uuid.UUID) -> Artifact:
    """An artifact in a case the actor is a member of; any other is reported as not found."""
    artifact = None
    if actor.role != Role.AUDITOR:
        artifact = session.scalars(select(Artifact).where(
            Artifact.id == artifact_id, Artifact.case_id.in_(_visible_cases(actor)))).first()
    if artifact is None:
        raise NotFound(f"no artifact {artifact_id}")
    return artifact


def similar_images(
    session: Session,
    actor: User,
    *,
    phash: str | None = None,
    artifact_id: uuid.UUID | None = None,
    distance: int = DEFAULT_DISTANCE,
    limit: int = 50,
    record: bool = True,
) -> ImageResults:
    """Images in the actor's cases whose pHash is within `distance` of an artifact's (which the
    actor must be able to see; it is left out of the answer) or of a given pHash."""
    check_distance(distance)
    check_limit(limit)
    source: Artifact | None = None
    if artifact_id is not None:
        source = visible_artifact(session, actor, artifact_id)
        if source.phash is None:
            raise InvalidInput(f"artifact {artifact_id} is not an image with a pHash")
        phash = source.phash
    if phash is None:
        raise InvalidInput("give an artifact or an image")
    value = parse_phash(phash.lower())
    found: list[tuple[uuid.UUID, int, int]] = []
    if actor.role != Role.AUDITOR:
        found = [f for f in matching_hashes(session, value, distance,
                                            case_ids=_visible_cases(actor),
                                            limit=limit + 2)
                 if source is None or f[0] != source.id]
    more = len(found) > limit
    found = found[:limit]
    details = _image_details(session, [f[0] for f in found])
    hits = []
    for artifact_id_, signed, dist in found:
        artifact, reference, capture = details[artifact_id_]
        hits.append(ImageHit(artifact.id, artifact.capture_id, reference, artifact.kind,
                             f"{signed & MASK64:016x}", dist,
                             None if capture is None else capture.requested_url,
                             None if capture is None else capture.started_at))
    if record:
        custody.append(session, actor, action="search.images", details={
            "phash": f"{value:016x}",
            "artifact": None if source is None else str(source.id),
            "distance": distance,
            "artifacts": [str(h.artifact_id) for h in hits],
        })
    return ImageResults(f"{value:016x}", distance, hits, more)


def _image_details(session: Session, ids: Iterable[uuid.UUID]) -> dict[
        uuid.UUID, tuple[Artifact, str, Capture | None]]:
    ids = list(ids)
    if not ids:
        return {}
    rows = session.execute(
        select(Artifact, Case.reference, Capture)
        .join(Case, Case.id == Artifact.case_id)
        .outerjoin(Capture, Capture.id == Artifact.capture_id)
        .where(Artifact.id.in_(ids))
    ).all()
    return {a.id: (a, ref, c) for a, ref, c in rows}
