"""What changed between two captures of the same page, and whether its content is gone.

The watch worker re-captures a page and must show an investigator what is different from the
last capture: the HTTP status, where the page ended up, its title, its visible text (line counts
and a short unified diff), how different the screenshot looks (Hamming distances between
perceptual hashes, see `capture.phash`) and which media appeared, disappeared or changed in
place (the same address, or a download of the same name, with other bytes). `gone_reason`
says when a capture shows the content was taken down: an HTTP 404/410/451, or a platform's own
"content unavailable" page recognised by its wording.

Everything here is a pure function of two `Snapshot`s, so the same rules serve the worker, the
CLI and the tests. `Comparison.to_json` holds only JSON integers, strings, booleans, lists,
objects and nulls, because it is stored inside canonical JSON, which refuses floats.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlsplit

from capture.phash import ImageHashes, hamming, hash_file
from evidence.canonical import JsonValue
from evidence.captures import CaptureRecord, StoredArtifact
from evidence.platforms import platform_registry

# Screenshot verdicts compare the larger of the pHash and dHash distances (64 bits each).
# Re-rendering the same page gives 0-2; a changed counter or an edited line of text stays well
# under 10; a different page (a takedown notice instead of the post) is usually above 15.
# Perceptual hashes see layout and images, not words: the text diff is what shows a reworded
# post.
SCREENSHOT_SAME_MAX = 3
SCREENSHOT_MINOR_MAX = 10

# A recompressed or resized copy of the same picture is within 0-2 bits on both hashes; two
# different photos are typically 20-35 apart. Both hashes must agree before a removed and an
# added image are paired as one picture re-encoded, whether at the same address or another.
MEDIA_PHASH_MAX = 6
MEDIA_DHASH_MAX = 10
# A nearly flat image (a placeholder, a blank tile) has almost no dHash bits set, and all such
# images hash alike; never pair those by looks.
_MEDIA_MIN_BITS = 4

MAX_DIFF_LINES = 200
MAX_DIFF_LINE_CHARS = 400
# difflib's matcher slows down sharply on long texts with many scattered edits; past this many
# differing lines the counts are taken from the lines' multisets and no diff is written.
MAX_DIFFED_LINES = 10_000

GONE_STATUSES = frozenset({404, 410, 451})
# Compared as media: the images and video a page loaded (named by the address each came
# from), and the files it (or the address itself, a PDF or a ZIP) had the browser download
# (named by file name). A file of the same name with other bytes changed in place.
MEDIA_KINDS = frozenset({"media", "download"})


class Verdict(StrEnum):
    SAME = "same"
    MINOR = "minor"
    CHANGED = "changed"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Snapshot:
    """What one capture showed, as far as a comparison needs it."""

    http_status: int | None
    final_url: str | None
    title: str | None
    text: str = ""
    screenshot: ImageHashes | None = None
    # Which screenshot was hashed ("screenshot_viewport" or "screenshot"): only like is
    # compared with like, since a full-page image grows with every lazy-loaded comment.
    screenshot_kind: str | None = None
    media: Mapping[str, str] = field(default_factory=dict)
    media_hashes: Mapping[str, ImageHashes] = field(default_factory=dict)


@dataclass(frozen=True)
class FieldChange:
    before: int | str | None
    after: int | str | None

    def to_json(self) -> dict[str, JsonValue]:
        return {"from": self.before, "to": self.after}


@dataclass(frozen=True)
class TextChange:
    changed: bool
    added: int = 0
    removed: int = 0
    diff: tuple[str, ...] = ()
    diff_truncated: bool = False
    note: str | None = None

    def to_json(self) -> dict[str, JsonValue]:
        return {"changed": self.changed, "added": self.added, "removed": self.removed,
                "diff": list(self.diff), "diff_truncated": self.diff_truncated,
                "note": self.note}


@dataclass(frozen=True)
class ScreenshotChange:
    verdict: Verdict
    phash_distance: int | None = None
    dhash_distance: int | None = None
    note: str | None = None

    @property
    def similarity_permille(self) -> int | None:
        """How alike the screenshots look, 1000 = identical hashes, from the worse distance."""
        if self.phash_distance is None or self.dhash_distance is None:
            return None
        return (64 - max(self.phash_distance, self.dhash_distance)) * 1000 // 64

    def to_json(self) -> dict[str, JsonValue]:
        return {"verdict": self.verdict.value, "phash_distance": self.phash_distance,
                "dhash_distance": self.dhash_distance,
                "similarity_permille": self.similarity_permille, "note": self.note,
                "thresholds": {"same_max": SCREENSHOT_SAME_MAX,
                               "minor_max": SCREENSHOT_MINOR_MAX}}


@dataclass(frozen=True)
class MediaRef:
    sha256: str
    name: str

    def to_json(self) -> dict[str, JsonValue]:
        return {"sha256": self.sha256, "name": self.name}


@dataclass(frozen=True)
class MediaMatch:
    """A file gone and one new taken as one: a picture re-encoded (the two look the same), or a
    file changed in place (the same name, other content). The distances are None unless both
    are images that could be hashed."""

    before: MediaRef
    after: MediaRef
    phash_distance: int | None
    dhash_distance: int | None

    def to_json(self) -> dict[str, JsonValue]:
        return {"before": self.before.to_json(), "after": self.after.to_json(),
                "phash_distance": self.phash_distance, "dhash_distance": self.dhash_distance}


@dataclass(frozen=True)
class Comparison:
    status: FieldChange | None
    final_url: FieldChange | None
    title: FieldChange | None
    text: TextChange
    screenshot: ScreenshotChange
    media_added: tuple[MediaRef, ...]
    media_removed: tuple[MediaRef, ...]
    media_reencoded: tuple[MediaMatch, ...]
    media_changed: tuple[MediaMatch, ...]
    media_unchanged: int
    gone_before: str | None
    gone_now: str | None
    tombstones_added: tuple[str, ...]
    changed: bool
    summary: str

    def to_json(self) -> dict[str, JsonValue]:
        return {
            "changed": self.changed,
            "summary": self.summary,
            "status": None if self.status is None else self.status.to_json(),
            "final_url": None if self.final_url is None else self.final_url.to_json(),
            "title": None if self.title is None else self.title.to_json(),
            "text": self.text.to_json(),
            "screenshot": self.screenshot.to_json(),
            "media": {
                "added": [m.to_json() for m in self.media_added],
                "removed": [m.to_json() for m in self.media_removed],
                "reencoded": [m.to_json() for m in self.media_reencoded],
                "changed": [m.to_json() for m in self.media_changed],
                "unchanged": self.media_unchanged,
                "thresholds": {"phash_max": MEDIA_PHASH_MAX, "dhash_max": MEDIA_DHASH_MAX},
            },
            "gone": {"before": self.gone_before, "now": self.gone_now},
            "tombstones_added": list(self.tombstones_added),
        }


# -- comparing ----------------------------------------------------------------------------


def compare(previous: Snapshot, current: Snapshot) -> Comparison:
    """Everything that differs between two captures of a page, and a line saying so."""
    status = (None if previous.http_status == current.http_status
              else FieldChange(previous.http_status, current.http_status))
    final_url = (None if previous.final_url == current.final_url
                 else FieldChange(previous.final_url, current.final_url))
    title = (None if _squash(previous.title or "") == _squash(current.title or "")
             else FieldChange(previous.title, current.title))
    text = compare_text(previous.text, current.text)
    screenshot = compare_screenshots(previous, current)
    media = compare_media(previous, current)
    gone_before, gone_now = gone_reason(previous), gone_reason(current)
    before_tombstones = set(tombstones(previous))
    tombstones_added = tuple(t for t in tombstones(current) if t not in before_tombstones)
    changed = bool(status or final_url or title or text.changed or media.added
                   or media.removed or media.changed
                   or screenshot.verdict is Verdict.CHANGED or gone_before != gone_now)
    summary = _summary(status=status, final_url=final_url, title=title, text=text,
                       screenshot=screenshot, media=media, gone_before=gone_before,
                       gone_now=gone_now, tombstones_added=tombstones_added, changed=changed)
    return Comparison(status=status, final_url=final_url, title=title, text=text,
                      screenshot=screenshot, media_added=media.added,
                      media_removed=media.removed, media_reencoded=media.reencoded,
                      media_changed=media.changed, media_unchanged=media.unchanged,
                      gone_before=gone_before, gone_now=gone_now,
                      tombstones_added=tombstones_added, changed=changed, summary=summary)


def compare_text(previous: str, current: str) -> TextChange:
    """Line counts and a capped unified diff of two visible texts."""
    before, after = _lines(previous), _lines(current)
    if before == after:
        return TextChange(changed=False)
    head = 0
    while head < min(len(before), len(after)) and before[head] == after[head]:
        head += 1
    tail = 0
    while (tail < min(len(before), len(after)) - head
           and before[-1 - tail] == after[-1 - tail]):
        tail += 1
    if max(len(before), len(after)) - head - tail > MAX_DIFFED_LINES:
        gone_lines = Counter(before) - Counter(after)
        new_lines = Counter(after) - Counter(before)
        return TextChange(changed=True, added=new_lines.total(), removed=gone_lines.total(),
                          diff_truncated=True,
                          note=f"over {MAX_DIFFED_LINES} differing lines: counted, not diffed")
    added = removed = 0
    shown: list[str] = []
    truncated = False
    for index, line in enumerate(difflib.unified_diff(before, after, "previous", "current",
                                                      lineterm="")):
        # The first two lines are the ---/+++ headers; a removed line that itself starts with
        # "--" must still count, so headers are skipped by position, not by prefix.
        if index >= 2:
            if line.startswith("+"):
                added += 1
            elif line.startswith("-"):
                removed += 1
        if len(shown) < MAX_DIFF_LINES:
            shown.append(line if len(line) <= MAX_DIFF_LINE_CHARS
                         else line[:MAX_DIFF_LINE_CHARS] + " [...]")
        else:
            truncated = True
    return TextChange(changed=True, added=added, removed=removed, diff=tuple(shown),
                      diff_truncated=truncated)


def compare_screenshots(previous: Snapshot, current: Snapshot) -> ScreenshotChange:
    """Perceptual distance between the two screenshots and what it amounts to."""
    if previous.screenshot is None or current.screenshot is None:
        missing = "previous" if previous.screenshot is None else "current"
        return ScreenshotChange(Verdict.UNKNOWN, note=f"no hashed screenshot in the {missing} "
                                "capture")
    if (previous.screenshot_kind and current.screenshot_kind
            and previous.screenshot_kind != current.screenshot_kind):
        return ScreenshotChange(Verdict.UNKNOWN, note=f"not comparable: a "
                                f"{previous.screenshot_kind} against a {current.screenshot_kind}")
    p = hamming(previous.screenshot.phash, current.screenshot.phash)
    d = hamming(previous.screenshot.dhash, current.screenshot.dhash)
    worst = max(p, d)
    if worst <= SCREENSHOT_SAME_MAX:
        verdict = Verdict.SAME
    elif worst <= SCREENSHOT_MINOR_MAX:
        verdict = Verdict.MINOR
    else:
        verdict = Verdict.CHANGED
    return ScreenshotChange(verdict, p, d)


@dataclass(frozen=True)
class MediaChanges:
    """How the media of two captures differ, each file counted once."""

    added: tuple[MediaRef, ...]
    removed: tuple[MediaRef, ...]
    reencoded: tuple[MediaMatch, ...]
    changed: tuple[MediaMatch, ...]
    unchanged: int


def compare_media(previous: Snapshot, current: Snapshot) -> MediaChanges:
    """Media kept byte for byte, changed in place, re-encoded, added and removed.

    A file gone and one new of the same name (the address an image or video was loaded from, a
    download's file name) are one file whose bytes changed: re-encoded when both are pictures
    that look the same, changed otherwise. The files left are paired by looks alone (a picture
    re-encoded and moved to another address); the rest were added or removed. A name that more
    than one file on either side had (or no name) is not paired by name: which of them became
    which is not known.
    """
    kept = previous.media.keys() & current.media.keys()
    gone = [MediaRef(sha, previous.media[sha]) for sha in previous.media if sha not in kept]
    new = [MediaRef(sha, current.media[sha]) for sha in current.media if sha not in kept]
    gone_names = Counter(m.name for m in gone)
    new_by_name = {m.name: m for m in new}
    new_names = Counter(m.name for m in new)
    reencoded: list[MediaMatch] = []
    changed: list[MediaMatch] = []
    for old in gone:
        if not old.name or gone_names[old.name] != 1 or new_names[old.name] != 1:
            continue
        fresh = new_by_name[old.name]
        distances = _distances(previous.media_hashes.get(old.sha256),
                               current.media_hashes.get(fresh.sha256))
        match = MediaMatch(old, fresh, *distances)
        (reencoded if _look_alike(*distances) else changed).append(match)
    paired_old = {m.before.sha256 for m in reencoded + changed}
    paired_new = {m.after.sha256 for m in reencoded + changed}
    candidates: list[tuple[int, int, int, MediaRef, MediaRef]] = []
    for old in gone:
        if old.sha256 in paired_old:
            continue
        for fresh in new:
            if fresh.sha256 in paired_new:
                continue
            p, d = _distances(previous.media_hashes.get(old.sha256),
                              current.media_hashes.get(fresh.sha256))
            if p is not None and d is not None and _look_alike(p, d):
                candidates.append((p + d, p, d, old, fresh))
    # Closest pairs first, ties broken by hash so the result does not depend on dict order.
    candidates.sort(key=lambda c: (c[0], c[3].sha256, c[4].sha256))
    for _, p, d, old, fresh in candidates:
        if old.sha256 in paired_old or fresh.sha256 in paired_new:
            continue
        paired_old.add(old.sha256)
        paired_new.add(fresh.sha256)
        reencoded.append(MediaMatch(old, fresh, p, d))

    def order(refs: Iterable[MediaRef]) -> tuple[MediaRef, ...]:
        return tuple(sorted(refs, key=lambda m: (m.name, m.sha256)))

    def pairs(matches: Iterable[MediaMatch]) -> tuple[MediaMatch, ...]:
        return tuple(sorted(matches, key=lambda m: (m.before.name, m.before.sha256)))

    return MediaChanges(added=order(m for m in new if m.sha256 not in paired_new),
                        removed=order(m for m in gone if m.sha256 not in paired_old),
                        reencoded=pairs(reencoded), changed=pairs(changed),
                        unchanged=len(kept))


def _distances(before: ImageHashes | None,
               after: ImageHashes | None) -> tuple[int | None, int | None]:
    """The pHash and dHash distances of two pictures, None when either cannot be paired."""
    old, new = _pairable(before), _pairable(after)
    if old is None or new is None:
        return None, None
    return hamming(old.phash, new.phash), hamming(old.dhash, new.dhash)


def _look_alike(phash_distance: int | None, dhash_distance: int | None) -> bool:
    return (phash_distance is not None and dhash_distance is not None
            and phash_distance <= MEDIA_PHASH_MAX and dhash_distance <= MEDIA_DHASH_MAX)


def _pairable(hashes: ImageHashes | None) -> ImageHashes | None:
    if hashes is None:
        return None
    bits = int(hashes.dhash, 16).bit_count()
    return hashes if _MEDIA_MIN_BITS <= bits <= 64 - _MEDIA_MIN_BITS else None


def _lines(text: str) -> list[str]:
    return [line.rstrip() for line in unicodedata.normalize("NFC", text).splitlines()]


def _squash(text: str) -> str:
    return " ".join(text.split())


def _summary(*, status: FieldChange | None, final_url: FieldChange | None,
             title: FieldChange | None, text: TextChange, screenshot: ScreenshotChange,
             media: MediaChanges, gone_before: str | None, gone_now: str | None,
             tombstones_added: Sequence[str], changed: bool) -> str:
    parts: list[str] = []
    if gone_now and not gone_before:
        parts.append(f"content gone ({gone_now})")
    elif gone_before and not gone_now:
        parts.append(f"content back (was: {gone_before})")
    elif gone_before and gone_now:
        parts.append(f"still gone ({gone_now})" if gone_before == gone_now
                     else f"still gone ({gone_now}; was: {gone_before})")
    if status:
        parts.append(f"HTTP status {status.before} -> {status.after}")
    if final_url:
        parts.append("final URL changed")
    if title:
        parts.append("title changed")
    if text.changed:
        parts.append(f"text changed (+{text.added}/-{text.removed} lines)")
    if screenshot.verdict in (Verdict.CHANGED, Verdict.MINOR):
        word = "changed" if screenshot.verdict is Verdict.CHANGED else "differs slightly"
        parts.append(f"screenshot {word} (pHash {screenshot.phash_distance}, "
                     f"dHash {screenshot.dhash_distance} of 64 bits)")
    if media.changed:
        parts.append(f"{len(media.changed)} media changed")
    if media.added:
        parts.append(f"{len(media.added)} media added")
    if media.removed:
        parts.append(f"{len(media.removed)} media removed")
    if media.reencoded:
        parts.append(f"{len(media.reencoded)} media re-encoded")
    parts.extend(tombstones_added)
    if not changed:
        return "no change" + (f" ({'; '.join(parts)})" if parts else "")
    return "; ".join(parts)


# -- takedowns ----------------------------------------------------------------------------


@dataclass(frozen=True)
class GonePhrase:
    """Wording that, alone on a line of the page or as its title, marks a takedown page.

    `follows` is what may come right after the phrase on that line: by default the end of the
    line, sentence punctuation or a title separator, so "This page isn't available for C#."
    or "the video is currently unavailable in your region" in an article do not count.
    """

    platform: str
    what: str
    phrase: str
    follows: str = r"$|[.!?؟:]|\s[|•·–—-]\s"


# Wording seen on the platforms' pages (quoted in public scrapers and link checkers that test
# against them). Only phrases that name the page's own state are listed; generic words such as
# "unavailable" or "removed" are not, since live pages say them too.
GONE_PHRASES: tuple[GonePhrase, ...] = (
    GonePhrase("facebook", "content unavailable page", "This content isn't available right now"),
    GonePhrase("facebook", "content unavailable page",
               "Sorry, this content isn't available right now"),
    GonePhrase("facebook", "content unavailable page",
               "This content isn't available at the moment"),
    GonePhrase("facebook", "page unavailable page", "This page isn't available"),
    GonePhrase("facebook", "content unavailable page",
               "Ce contenu n’est pas disponible pour le moment"),
    GonePhrase("facebook", "page unavailable page", "Cette page n’est pas disponible"),
    GonePhrase("facebook", "content unavailable page", "هذا المحتوى غير متوفر الآن"),
    GonePhrase("instagram", "page unavailable page", "Sorry, this page isn't available"),
    GonePhrase("instagram", "profile unavailable page", "Profile isn't available"),
    GonePhrase("x", "page does not exist", "Hmm...this page doesn't exist"),
    GonePhrase("x", "account does not exist", "This account doesn't exist"),
    GonePhrase("x", "account suspended", "Account suspended"),
    GonePhrase("tiktok", "account not found", "Couldn't find this account"),
    GonePhrase("tiktok", "account not found", "Impossible de trouver ce compte"),
    GonePhrase("tiktok", "video unavailable", "Video currently unavailable"),
    GonePhrase("youtube", "video unavailable", "Video unavailable"),
    GonePhrase("youtube", "video unavailable", "Vidéo non disponible"),
    GonePhrase("youtube", "video removed", "This video isn't available anymore"),
    GonePhrase("youtube", "video removed", "This video has been removed by the uploader"),
    GonePhrase("youtube", "private video", "Private video"),
    # t.me answers 200 for any username; one that does not exist (or was deleted) gets only
    # the generic invitation naming the bare @username, where a live user is named by display
    # name and a live channel is offered to "view and join".
    GonePhrase("telegram", "no such user or channel", "If you have Telegram, you can contact @",
               follows=r"[a-z0-9_]{1,64} right away\.?$"),
)

# Markers X puts in place of one post inside a page that is otherwise live (a deleted reply,
# a quoted post from a suspended account). They show that something on the page was removed,
# not that the watched page is gone, so they are reported separately.
TOMBSTONE_PHRASES: tuple[GonePhrase, ...] = (
    GonePhrase("x", "a post on the page was deleted by its author",
               "This Post was deleted by the Post author"),
    GonePhrase("x", "a post on the page is from a suspended account",
               "This Post is from a suspended account"),
    GonePhrase("x", "a post on the page is from an account that no longer exists",
               "This Post is from an account that no longer exists"),
    GonePhrase("x", "a post on the page is unavailable", "This Post is unavailable"),
    GonePhrase("x", "a post on the page is unavailable", "This Tweet is unavailable"),
)

# Apostrophes and quotation marks a platform may use for the same word ("isn’t", "isn't").
_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "ʼ": "'", "′": "'", "`": "'", "´": "'"})


def normalise_line(text: str) -> str:
    """A line as phrases are matched: compatibility forms folded (… to ...), invisible marks
    dropped, apostrophes straightened, case folded, white space collapsed."""
    folded = unicodedata.normalize("NFKC", text)
    # X wraps names in bidi isolates and pages sprinkle zero-width marks; neither is visible.
    visible = "".join(ch for ch in folded if unicodedata.category(ch) != "Cf")
    return " ".join(visible.translate(_APOSTROPHES).casefold().split())


def _compile(entries: Iterable[GonePhrase]) -> tuple[tuple[GonePhrase, re.Pattern[str]], ...]:
    return tuple((entry, re.compile(f"^{re.escape(normalise_line(entry.phrase))}"
                                    f"(?:{entry.follows})"))
                 for entry in entries)


_GONE = _compile(GONE_PHRASES)
_TOMBSTONES = _compile(TOMBSTONE_PHRASES)


def gone_reason(snapshot: Snapshot) -> str | None:
    """Why this capture shows the content was taken down, or None when it does not."""
    if snapshot.http_status in GONE_STATUSES:
        return f"HTTP {snapshot.http_status}"
    found = _first_match(_GONE, snapshot)
    if found is None:
        return None
    return f'{found.platform}: {found.what} ("{found.phrase}")'


def tombstones(snapshot: Snapshot) -> list[str]:
    """The removal markers the page shows in place of individual posts, once each."""
    seen: list[str] = []
    for entry, pattern in _TOMBSTONES:
        if not _applies(entry, snapshot.final_url):
            continue
        label = f"{entry.platform}: {entry.what}"
        if label not in seen and any(pattern.match(line) for line in _page_lines(snapshot)):
            seen.append(label)
    return seen


def _first_match(table: Sequence[tuple[GonePhrase, re.Pattern[str]]],
                 snapshot: Snapshot) -> GonePhrase | None:
    active = [(entry, pattern) for entry, pattern in table
              if _applies(entry, snapshot.final_url)]
    if not active:
        return None
    for line in _page_lines(snapshot):
        for entry, pattern in active:
            if pattern.match(line):
                return entry
    return None


def _page_lines(snapshot: Snapshot) -> Iterable[str]:
    for raw in [snapshot.title or "", *snapshot.text.splitlines()]:
        line = normalise_line(raw)
        if line:
            yield line


def _applies(entry: GonePhrase, final_url: str | None) -> bool:
    # A platform's takedown wording only counts on that platform: a news article quoting
    # "This content isn't available right now" on a line of its own is not a takedown.
    # With no final URL recorded there is nothing to check against, so every phrase applies.
    if not final_url:
        return True
    # Which hosts are the platform's comes from the platform registry, the one list of them.
    registry = platform_registry()
    found = registry.platform_for_host((urlsplit(final_url).hostname or "").rstrip(".").lower())
    return found is not None and found.name == registry.get(entry.platform).name


# -- building snapshots from captures -----------------------------------------------------


def snapshot_from_artifacts(
    *,
    http_status: int | None,
    final_url: str | None,
    title: str | None,
    artifacts: Iterable[StoredArtifact],
    fetch: Callable[[StoredArtifact], Path] | None = None,
) -> Snapshot:
    """A snapshot from a capture's stored artifacts: its text, screenshot and media files.

    `fetch` gives a local file with an artifact's bytes (the blob store's `fetch`, which copies
    an object down from S3); without it, each artifact's `path` is that file.

    Downloaded files count as media (`MEDIA_KINDS`). The viewport screenshot is hashed when
    there is one: it has the same size in every
    capture, where the full-page one changes height with the page and is squeezed into
    32x32 pixels before hashing. Media that are not images, or cannot be hashed, are still
    compared by SHA-256.
    """
    local = fetch or (lambda artifact: Path(artifact.path))
    stored = list(artifacts)
    text = ""
    text_artifact = next((a for a in stored if a.kind == "text"), None)
    if text_artifact is not None:
        text = local(text_artifact).read_bytes().decode("utf-8", errors="replace")
    screenshot: ImageHashes | None = None
    screenshot_kind: str | None = None
    for kind in ("screenshot_viewport", "screenshot"):
        shot = next((a for a in stored if a.kind == kind), None)
        if shot is not None:
            screenshot, screenshot_kind = _hashes(shot, local), kind
            break
    media: dict[str, str] = {}
    media_hashes: dict[str, ImageHashes] = {}
    for artifact in stored:
        if artifact.kind not in MEDIA_KINDS:
            continue
        media.setdefault(artifact.sha256, artifact.name)
        if artifact.media_type.startswith("image/") and artifact.sha256 not in media_hashes:
            hashes = _hashes(artifact, local)
            if hashes is not None:
                media_hashes[artifact.sha256] = hashes
    return Snapshot(http_status=http_status, final_url=final_url, title=title, text=text,
                    screenshot=screenshot, screenshot_kind=screenshot_kind, media=media,
                    media_hashes=media_hashes)


def _hashes(artifact: StoredArtifact,
            local: Callable[[StoredArtifact], Path]) -> ImageHashes | None:
    """The hashes the capture stored with the artifact; computed only when it has none."""
    if artifact.phash and artifact.dhash:
        return ImageHashes(phash=artifact.phash, dhash=artifact.dhash)
    return hash_file(local(artifact)).hashes


def snapshot_of(record: CaptureRecord,
                fetch: Callable[[StoredArtifact], Path] | None = None) -> Snapshot:
    """A snapshot of a capture that has just run, from its record and stored artifacts."""
    return snapshot_from_artifacts(http_status=record.http_status, final_url=record.final_url,
                                   title=record.title, artifacts=record.artifacts, fetch=fetch)
