"""Tests for comparing two captures and recognising takedown pages (capture.changes)."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from PIL import Image, ImageDraw

from capture import changes
from capture.changes import (
    GONE_PHRASES,
    MAX_DIFF_LINES,
    TOMBSTONE_PHRASES,
    Comparison,
    GonePhrase,
    Snapshot,
    Verdict,
    compare,
    gone_reason,
    normalise_line,
    snapshot_from_artifacts,
    snapshot_of,
    tombstones,
)
from capture.phash import ImageHashes
from evidence.canonical import canonical_json
from evidence.captures import CaptureRecord, StoredArtifact
from evidence.platforms import platform_registry
from tests.support import images

POST_URL = "https://www.facebook.com/somepage/posts/123"
PLATFORM_URL = {
    "facebook": POST_URL,
    "instagram": "https://www.instagram.com/p/Cx1/",
    "x": "https://x.com/someone/status/1",
    "tiktok": "https://www.tiktok.com/@someone/video/7",
    "youtube": "https://www.youtube.com/watch?v=abcdefghijk",
    "telegram": "https://t.me/somechannel",
}
ZERO = "0" * 16


def snap(**overrides: Any) -> Snapshot:
    base: dict[str, Any] = {
        "http_status": 200,
        "final_url": POST_URL,
        "title": "Some Page | Facebook",
        "text": "Some Page\nA post about the march\n12 likes\n",
    }
    base.update(overrides)
    return Snapshot(**base)


def hexes(bits: int) -> str:
    """A hash with the lowest `bits` bits set: its distance from ZERO is `bits`."""
    return f"{(1 << bits) - 1:016x}"


def shot(phash_bits: int, dhash_bits: int) -> ImageHashes:
    return ImageHashes(phash=hexes(phash_bits), dhash=hexes(dhash_bits))


def picture(seed: int, size: tuple[int, int] = (400, 300)) -> Image.Image:
    return images.picture(seed, size, ellipses=20, largest=150)


hashes = images.hashes_of
encode = images.encode


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def assert_plain_json(value: object, where: str = "$") -> None:
    """Only the JSON types canonical JSON accepts: no floats, no tuples, no other objects."""
    if value is None or isinstance(value, bool | str):
        return
    if isinstance(value, int):
        return
    if isinstance(value, list):
        for index, item in enumerate(value):
            assert_plain_json(item, f"{where}[{index}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            assert isinstance(key, str), f"{where}: key {key!r}"
            assert_plain_json(item, f"{where}.{key}")
        return
    raise AssertionError(f"{where} is a {type(value).__name__}: {value!r}")


# -- comparing ----------------------------------------------------------------------------


def test_identical_captures_show_no_change() -> None:
    result = compare(snap(), snap())
    assert not result.changed
    assert result.summary == "no change"
    assert result.status is None and result.final_url is None and result.title is None
    assert not result.text.changed and result.text.diff == ()
    assert result.screenshot.verdict is Verdict.UNKNOWN
    assert result.media_added == result.media_removed == ()
    assert result.media_reencoded == ()
    assert result.gone_before is None and result.gone_now is None


def test_a_status_change_is_reported_from_and_to() -> None:
    result = compare(snap(), snap(http_status=500))
    assert result.changed
    assert result.status is not None
    assert result.to_json()["status"] == {"from": 200, "to": 500}
    assert "HTTP status 200 -> 500" in result.summary


def test_a_final_url_change_is_reported() -> None:
    login = "https://www.facebook.com/login/?next=somepage"
    result = compare(snap(), snap(final_url=login))
    assert result.changed
    assert result.to_json()["final_url"] == {"from": POST_URL, "to": login}
    assert "final URL changed" in result.summary


def test_a_title_change_is_reported_but_not_white_space() -> None:
    assert compare(snap(), snap(title="  Some   Page |\nFacebook ")).title is None
    result = compare(snap(), snap(title="Log in | Facebook"))
    assert result.changed
    assert result.to_json()["title"] == {"from": "Some Page | Facebook",
                                         "to": "Log in | Facebook"}
    assert "title changed" in result.summary


def test_text_changes_are_counted_and_diffed() -> None:
    before = "Header\nA post about the march\nPhoto by X\n12 likes\nFooter\n"
    after = "Header\nA post about the protest\nPhoto by X\n13 likes\nNew comment\nFooter\n"
    result = compare(snap(text=before), snap(text=after))
    assert result.changed
    text = result.text
    assert (text.changed, text.added, text.removed) == (True, 3, 2)
    assert text.diff[:2] == ("--- previous", "+++ current")
    assert "-A post about the march" in text.diff
    assert "+A post about the protest" in text.diff
    assert "+New comment" in text.diff
    assert not text.diff_truncated
    assert "text changed (+3/-2 lines)" in result.summary


def test_trailing_spaces_and_line_endings_are_not_text_changes() -> None:
    result = compare(snap(text="one\ntwo\n"), snap(text="one  \r\ntwo\t\r\n"))
    assert not result.text.changed and not result.changed


def test_a_removed_line_that_starts_with_dashes_still_counts() -> None:
    result = compare(snap(text="a\n-- signature\nb"), snap(text="a\nb"))
    assert (result.text.added, result.text.removed) == (0, 1)
    assert "--- signature" in result.text.diff


def test_the_diff_is_capped_and_long_lines_are_cut() -> None:
    before = "\n".join(f"line {i}" for i in range(500))
    after = "\n".join(f"changed {i} " + "x" * 1000 for i in range(500))
    text = compare(snap(text=before), snap(text=after)).text
    assert (text.added, text.removed) == (500, 500)
    assert len(text.diff) == MAX_DIFF_LINES
    assert text.diff_truncated
    assert max(len(line) for line in text.diff) <= changes.MAX_DIFF_LINE_CHARS + len(" [...]")


def test_huge_texts_are_counted_without_a_diff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(changes, "MAX_DIFFED_LINES", 10)
    before = "\n".join(["same"] + [f"old {i}" for i in range(30)] + ["end"])
    after = "\n".join(["same"] + [f"new {i}" for i in range(25)] + ["end"])
    text = compare(snap(text=before), snap(text=after)).text
    assert (text.changed, text.added, text.removed) == (True, 25, 30)
    assert text.diff == () and text.diff_truncated
    assert text.note is not None and "not diffed" in text.note


@pytest.mark.parametrize(("phash_bits", "dhash_bits", "verdict"), [
    (0, 0, Verdict.SAME),
    (3, 2, Verdict.SAME),
    (2, 4, Verdict.MINOR),
    (10, 10, Verdict.MINOR),
    (11, 3, Verdict.CHANGED),
    (2, 30, Verdict.CHANGED),
])
def test_screenshot_verdicts_follow_the_thresholds(
    phash_bits: int, dhash_bits: int, verdict: Verdict,
) -> None:
    before = snap(screenshot=ImageHashes(ZERO, ZERO), screenshot_kind="screenshot_viewport")
    after = snap(screenshot=shot(phash_bits, dhash_bits), screenshot_kind="screenshot_viewport")
    result = compare(before, after)
    assert result.screenshot.verdict is verdict
    assert result.screenshot.phash_distance == phash_bits
    assert result.screenshot.dhash_distance == dhash_bits
    assert result.changed is (verdict is Verdict.CHANGED)
    expected = (64 - max(phash_bits, dhash_bits)) * 1000 // 64
    assert result.screenshot.similarity_permille == expected
    screenshot = result.to_json()["screenshot"]
    assert isinstance(screenshot, dict) and screenshot["similarity_permille"] == expected


def test_a_slight_screenshot_difference_is_mentioned_but_is_no_change() -> None:
    result = compare(snap(screenshot=ImageHashes(ZERO, ZERO)), snap(screenshot=shot(5, 1)))
    assert not result.changed
    assert result.summary == "no change (screenshot differs slightly (pHash 5, dHash 1 of 64 bits))"


def test_screenshots_missing_or_of_different_kinds_are_not_compared() -> None:
    missing = compare(snap(screenshot=ImageHashes(ZERO, ZERO)), snap())
    assert missing.screenshot.verdict is Verdict.UNKNOWN
    assert missing.screenshot.note == "no hashed screenshot in the current capture"
    assert missing.screenshot.similarity_permille is None
    mixed = compare(snap(screenshot=ImageHashes(ZERO, ZERO), screenshot_kind="screenshot"),
                    snap(screenshot=shot(40, 40), screenshot_kind="screenshot_viewport"))
    assert mixed.screenshot.verdict is Verdict.UNKNOWN
    assert mixed.screenshot.phash_distance is None
    assert not mixed.changed


def test_real_screenshots_same_page_and_takedown_page() -> None:
    def page(lines: list[str]) -> bytes:
        image = Image.new("RGB", (1280, 800), "white")
        draw = ImageDraw.Draw(image)
        draw.rectangle([0, 0, 1280, 60], fill=(59, 89, 152))
        draw.rectangle([100, 100, 500, 400], fill=(200, 40, 40))
        for row, line in enumerate(lines):
            draw.text((560, 120 + 18 * row), line, fill="black")
        return encode(image)

    post = page([f"words of the post, line {i}" for i in range(20)])
    rerendered = page([f"words of the post, line {i}" for i in range(20)])
    notice = Image.new("RGB", (1280, 800), "white")
    ImageDraw.Draw(notice).rectangle([0, 0, 1280, 60], fill=(59, 89, 152))
    ImageDraw.Draw(notice).text((500, 380), "This content isn't available right now",
                                fill="black")
    same = compare(snap(screenshot=hashes(post)), snap(screenshot=hashes(rerendered)))
    assert same.screenshot.verdict is Verdict.SAME
    gone = compare(snap(screenshot=hashes(post)), snap(screenshot=hashes(encode(notice))))
    assert gone.screenshot.verdict is Verdict.CHANGED
    assert "screenshot changed" in gone.summary


def test_media_added_and_removed_by_sha256() -> None:
    before = snap(media={"a" * 64: "https://cdn/a.mp4", "b" * 64: "https://cdn/b.mp4"})
    after = snap(media={"b" * 64: "https://cdn/b.mp4", "c" * 64: "https://cdn/c.mp4"})
    result = compare(before, after)
    assert result.changed
    assert [(m.sha256, m.name) for m in result.media_added] == [("c" * 64, "https://cdn/c.mp4")]
    assert [(m.sha256, m.name) for m in result.media_removed] == [("a" * 64, "https://cdn/a.mp4")]
    assert result.media_unchanged == 1
    assert "1 media added" in result.summary and "1 media removed" in result.summary


def test_a_recompressed_image_is_re_encoded_not_removed_and_added() -> None:
    original = encode(picture(1), "JPEG", quality=92)
    recompressed = encode(picture(1).resize((300, 225)), "JPEG", quality=55)
    other = encode(picture(2), "JPEG", quality=92)
    before = snap(media={sha(original): "https://cdn/photo.jpg"},
                  media_hashes={sha(original): hashes(original)})
    after = snap(media={sha(recompressed): "https://cdn/photo_s.jpg", sha(other): "other.jpg"},
                 media_hashes={sha(recompressed): hashes(recompressed),
                               sha(other): hashes(other)})
    result = compare(before, after)
    assert result.media_removed == ()
    assert [m.sha256 for m in result.media_added] == [sha(other)]
    [match] = result.media_reencoded
    assert (match.before.sha256, match.after.sha256) == (sha(original), sha(recompressed))
    assert match.phash_distance is not None and match.phash_distance <= changes.MEDIA_PHASH_MAX
    assert "1 media re-encoded" in result.summary


def test_a_re_encoded_copy_alone_is_no_change() -> None:
    original = encode(picture(1))
    copy = encode(picture(1), "JPEG", quality=60)
    result = compare(snap(media={sha(original): "p.png"},
                          media_hashes={sha(original): hashes(original)}),
                     snap(media={sha(copy): "p.jpg"}, media_hashes={sha(copy): hashes(copy)}))
    assert not result.changed
    assert result.summary == "no change (1 media re-encoded)"


def test_a_different_image_is_removed_and_added() -> None:
    first, second = encode(picture(1)), encode(picture(2))
    result = compare(snap(media={sha(first): "1.png"}, media_hashes={sha(first): hashes(first)}),
                     snap(media={sha(second): "2.png"},
                          media_hashes={sha(second): hashes(second)}))
    assert result.changed
    assert [m.name for m in result.media_removed] == ["1.png"]
    assert [m.name for m in result.media_added] == ["2.png"]
    assert result.media_reencoded == ()


def test_a_picture_replaced_at_the_same_address_is_one_changed_file() -> None:
    first, second = encode(picture(1)), encode(picture(2))
    kept = "k" * 64
    result = compare(
        snap(media={sha(first): "https://cdn/main.png", kept: "https://cdn/logo.png"},
             media_hashes={sha(first): hashes(first)}),
        snap(media={sha(second): "https://cdn/main.png", kept: "https://cdn/logo.png"},
             media_hashes={sha(second): hashes(second)}))
    assert result.changed
    assert result.media_added == result.media_removed == ()
    assert result.media_reencoded == ()
    [replaced] = result.media_changed
    assert (replaced.before.sha256, replaced.after.sha256) == (sha(first), sha(second))
    assert replaced.before.name == replaced.after.name == "https://cdn/main.png"
    assert replaced.phash_distance is not None and replaced.phash_distance > 6
    assert result.media_unchanged == 1
    assert result.summary == "1 media changed"
    media: Any = result.to_json()["media"]
    [listed] = media["changed"]
    assert listed["before"] == {"sha256": sha(first), "name": "https://cdn/main.png"}
    assert listed["after"] == {"sha256": sha(second), "name": "https://cdn/main.png"}


def test_a_picture_re_encoded_at_the_same_address_is_no_change() -> None:
    original = encode(picture(1))
    copy = encode(picture(1), "JPEG", quality=60)
    result = compare(
        snap(media={sha(original): "https://cdn/main"},
             media_hashes={sha(original): hashes(original)}),
        snap(media={sha(copy): "https://cdn/main"}, media_hashes={sha(copy): hashes(copy)}))
    assert result.media_changed == () and len(result.media_reencoded) == 1
    assert result.summary == "no change (1 media re-encoded)"


def test_a_video_or_download_of_the_same_name_with_other_bytes_changed() -> None:
    result = compare(snap(media={"a" * 64: "https://cdn/v.mp4", "c" * 64: "report.pdf"}),
                     snap(media={"b" * 64: "https://cdn/v.mp4", "d" * 64: "report.pdf"}))
    assert [(m.before.sha256, m.after.sha256, m.phash_distance) for m in result.media_changed] \
        == [("a" * 64, "b" * 64, None), ("c" * 64, "d" * 64, None)]
    assert result.media_added == result.media_removed == ()
    assert result.summary == "2 media changed"


def test_a_name_two_files_share_is_not_paired_by_name() -> None:
    """Which of two files of one name became the new one is not known: gone and new."""
    result = compare(snap(media={"a" * 64: "download", "b" * 64: "download"}),
                     snap(media={"c" * 64: "download"}))
    assert result.media_changed == ()
    assert len(result.media_removed) == 2 and len(result.media_added) == 1
    unnamed = compare(snap(media={"a" * 64: ""}), snap(media={"c" * 64: ""}))
    assert unnamed.media_changed == () and len(unnamed.media_added) == 1


def test_flat_images_are_never_paired_by_looks() -> None:
    white = encode(Image.new("RGB", (50, 50), "white"))
    grey = encode(Image.new("RGB", (80, 80), (128, 128, 128)))
    result = compare(snap(media={sha(white): "w.png"}, media_hashes={sha(white): hashes(white)}),
                     snap(media={sha(grey): "g.png"}, media_hashes={sha(grey): hashes(grey)}))
    assert result.media_reencoded == ()
    assert len(result.media_removed) == len(result.media_added) == 1


def test_each_image_is_paired_at_most_once() -> None:
    original = encode(picture(1))
    copy_a = encode(picture(1), "JPEG", quality=90)
    copy_b = encode(picture(1), "JPEG", quality=50)
    result = compare(
        snap(media={sha(original): "p.png"}, media_hashes={sha(original): hashes(original)}),
        snap(media={sha(copy_a): "a.jpg", sha(copy_b): "b.jpg"},
             media_hashes={sha(copy_a): hashes(copy_a), sha(copy_b): hashes(copy_b)}))
    assert len(result.media_reencoded) == 1
    assert len(result.media_added) == 1 and result.media_removed == ()


def test_a_takedown_is_the_first_thing_the_summary_says() -> None:
    before = snap()
    after = snap(http_status=404, title="Page not found", text="Page not found")
    result = compare(before, after)
    assert result.changed
    assert (result.gone_before, result.gone_now) == (None, "HTTP 404")
    assert result.summary.startswith("content gone (HTTP 404); HTTP status 200 -> 404")
    back = compare(after, before)
    assert back.summary.startswith("content back (was: HTTP 404)")


def test_a_page_still_gone_is_no_change_but_says_so() -> None:
    gone = snap(http_status=410, text="")
    result = compare(gone, gone)
    assert not result.changed
    assert result.summary == "no change (still gone (HTTP 410))"


def test_a_platform_takedown_page_is_a_change_even_with_the_same_status() -> None:
    notice = ("This content isn't available right now\nWhen this happens, it's usually because"
              " the owner only shared it with a small group of people, changed who can see it "
              "or it's been deleted.\nGo to News Feed")
    result = compare(snap(), snap(text=notice, title="Facebook"))
    assert result.changed
    assert result.gone_now is not None
    assert result.summary.startswith("content gone (facebook: content unavailable page")


def test_new_tombstones_are_reported() -> None:
    url = PLATFORM_URL["x"]
    before = snap(final_url=url, text="Post\nsomeone: hello\nreply one\nreply two")
    after = snap(final_url=url, text="Post\nsomeone: hello\nThis Post was deleted by the Post "
                 "author. Learn more\nreply two")
    result = compare(before, after)
    assert result.tombstones_added == ("x: a post on the page was deleted by its author",)
    assert result.gone_now is None
    assert "x: a post on the page was deleted by its author" in result.summary


def every_field_changed() -> Comparison:
    photo = encode(picture(1))
    copy = encode(picture(1), "JPEG", quality=60)
    before = snap(screenshot=ImageHashes(ZERO, ZERO), screenshot_kind="screenshot_viewport",
                  media={sha(photo): "p.png", "a" * 64: "v.mp4", "c" * 64: "x.zip"},
                  media_hashes={sha(photo): hashes(photo)})
    after = snap(http_status=404, final_url="https://www.facebook.com/gone", title="Error",
                 text="Sorry, this content isn't available right now\nmore",
                 screenshot=shot(9, 13), screenshot_kind="screenshot_viewport",
                 media={sha(copy): "p.jpg", "b" * 64: "w.mp4", "d" * 64: "x.zip"},
                 media_hashes={sha(copy): hashes(copy)})
    return compare(before, after)


def test_the_json_holds_only_plain_values_and_is_canonical() -> None:
    result = every_field_changed()
    document = result.to_json()
    assert_plain_json(document)
    assert json.loads(canonical_json(document)) == document
    assert document["changed"] is True
    assert document["screenshot"] == {
        "verdict": "changed", "phash_distance": 9, "dhash_distance": 13,
        "similarity_permille": 796, "note": None,
        "thresholds": {"same_max": changes.SCREENSHOT_SAME_MAX,
                       "minor_max": changes.SCREENSHOT_MINOR_MAX}}
    assert document["gone"] == {"before": None, "now": "HTTP 404"}
    media = document["media"]
    assert isinstance(media, dict)
    assert media["added"] == [{"sha256": "b" * 64, "name": "w.mp4"}]
    assert media["removed"] == [{"sha256": "a" * 64, "name": "v.mp4"}]
    assert len(media["reencoded"]) == 1  # type: ignore[arg-type]
    assert media["changed"] == [{"before": {"sha256": "c" * 64, "name": "x.zip"},
                                 "after": {"sha256": "d" * 64, "name": "x.zip"},
                                 "phash_distance": None, "dhash_distance": None}]


def test_the_summary_is_one_line() -> None:
    summary = every_field_changed().summary
    assert "\n" not in summary
    assert summary.startswith("content gone (HTTP 404)")
    for part in ("HTTP status 200 -> 404", "final URL changed", "title changed",
                 "text changed", "screenshot changed", "1 media added", "1 media removed",
                 "1 media re-encoded", "1 media changed"):
        assert part in summary


# -- takedowns ----------------------------------------------------------------------------


@pytest.mark.parametrize("status", [404, 410, 451])
def test_gone_statuses(status: int) -> None:
    assert gone_reason(snap(http_status=status)) == f"HTTP {status}"


@pytest.mark.parametrize("status", [None, 200, 301, 403, 429, 500, 503])
def test_other_statuses_are_not_gone(status: int | None) -> None:
    assert gone_reason(snap(http_status=status)) is None


def example_line(entry: GonePhrase) -> str:
    if entry.platform == "telegram":
        return entry.phrase + "somechannel right away."
    return entry.phrase + "."


@pytest.mark.parametrize("entry", GONE_PHRASES, ids=lambda e: f"{e.platform}:{e.phrase}")
def test_each_takedown_phrase_is_recognised_on_its_platform(entry: GonePhrase) -> None:
    page = snap(final_url=PLATFORM_URL[entry.platform], title=entry.platform.title(),
                text=f"Menu\n{example_line(entry)}\nSome follow-up sentence.\nFooter")
    assert gone_reason(page) == f'{entry.platform}: {entry.what} ("{entry.phrase}")'


@pytest.mark.parametrize("entry", GONE_PHRASES, ids=lambda e: f"{e.platform}:{e.phrase}")
def test_no_takedown_phrase_counts_inside_a_longer_sentence(entry: GonePhrase) -> None:
    page = snap(final_url=PLATFORM_URL[entry.platform],
                text=f"Reporters wrote that {example_line(entry)} appeared for hours.\n"
                     f"{entry.phrase} for some readers, they said.")
    assert gone_reason(page) is None


@pytest.mark.parametrize("entry", GONE_PHRASES, ids=lambda e: f"{e.platform}:{e.phrase}")
def test_a_takedown_phrase_on_another_site_does_not_count(entry: GonePhrase) -> None:
    article = snap(final_url="https://news.example.org/2024/how-posts-vanish",
                   text=f"How posts vanish\n{example_line(entry)}\nThat is what readers saw.")
    assert gone_reason(article) is None


def test_every_platform_in_the_table_is_in_the_registry() -> None:
    registry = platform_registry()
    for entry in (*GONE_PHRASES, *TOMBSTONE_PHRASES):
        found = registry.platform_for_host(urlsplit(PLATFORM_URL[entry.platform]).hostname or "")
        assert found is not None and found.name == registry.get(entry.platform).name


@pytest.mark.parametrize(("url", "title", "text", "expected"), [
    (PLATFORM_URL["facebook"], "Facebook",
     "This content isn’t available right now\nWhen this happens, it’s usually because ...",
     "facebook: content unavailable page"),
    (PLATFORM_URL["facebook"], "Facebook", "  THIS   CONTENT\u00a0ISN'T AVAILABLE RIGHT NOW  ",
     "facebook: content unavailable page"),
    (PLATFORM_URL["facebook"], "Facebook",
     "Ce contenu n'est pas disponible pour le moment\nLorsque cela se produit ...",
     "facebook: content unavailable page"),
    (PLATFORM_URL["facebook"], "Facebook", "هذا المحتوى غير متوفر الآن\nعندما يحدث هذا",
     "facebook: content unavailable page"),
    ("https://m.facebook.com/somepage", "Facebook", "This page isn't available\nThe link ...",
     "facebook: page unavailable page"),
    (PLATFORM_URL["instagram"], "Instagram",
     "Sorry, this page isn't available.\nThe link you followed may be broken, or the page may "
     "have been removed. Go back to Instagram.", "instagram: page unavailable page"),
    (PLATFORM_URL["x"], "Page not found / X",
     "Hmm\u2026this page doesn\u2019t exist. Try searching for something else.\nSearch",
     "x: page does not exist"),
    ("https://twitter.com/someone", "Profile / X",
     "@someone\nThis account doesn\u2019t exist\nTry searching for another.",
     "x: account does not exist"),
    (PLATFORM_URL["x"], "X", "Account suspended\nX suspends accounts which violate the X Rules",
     "x: account suspended"),
    (PLATFORM_URL["tiktok"], "TikTok",
     "Couldn't find this account\nLooking for videos? Try browsing our trending creators",
     "tiktok: account not found"),
    (PLATFORM_URL["tiktok"], "TikTok", "For You\nVideo currently unavailable\nGet app",
     "tiktok: video unavailable"),
    (PLATFORM_URL["youtube"], " - YouTube",
     "Video unavailable\nThis video isn't available anymore\nGO TO HOME",
     "youtube: video unavailable"),
    ("https://youtu.be/abcdefghijk", "YouTube", "Vidéo non disponible",
     "youtube: video unavailable"),
    ("https://t.me/deleted_channel", "Telegram: Contact @deleted_channel",
     "@deleted_channel\nIf you have Telegram, you can contact @deleted_channel right away.",
     "telegram: no such user or channel"),
    # The title alone can carry the notice, with the platform's name after a separator.
    (PLATFORM_URL["instagram"], "Sorry, this page isn't available. • Instagram", "",
     "instagram: page unavailable page"),
    # Invisible marks and bidi isolates around the words are ignored.
    (PLATFORM_URL["x"], "X", "\u2068This account doesn\u2019t exist\u2069\u200b",
     "x: account does not exist"),
    # No final URL recorded: the phrase alone decides.
    (None, None, "Video unavailable", "youtube: video unavailable"),
])
def test_takedown_pages_as_captured(url: str | None, title: str | None, text: str,
                                    expected: str) -> None:
    reason = gone_reason(snap(final_url=url, title=title, text=text))
    assert reason is not None and reason.startswith(expected + " (")


@pytest.mark.parametrize(("url", "text"), [
    # Mentions of unavailability in ordinary sentences.
    (PLATFORM_URL["facebook"], "The venue is unavailable on Sunday, so the march moves to Monday."),
    (PLATFORM_URL["facebook"], "Tickets: unavailable\nThe content is still here."),
    (PLATFORM_URL["facebook"], "He said this content isn't available right now in his country."),
    (PLATFORM_URL["youtube"], "Full video unavailable in some regions, see the clip below.\n"
                              "Video unavailable soon? Watch it now."),
    (PLATFORM_URL["youtube"], "Private videos of the event were shared later."),
    (PLATFORM_URL["tiktok"], "The video is currently unavailable in your region."),
    (PLATFORM_URL["x"], "this account doesn't exist anymore according to reports"),
    (PLATFORM_URL["instagram"], "This page isn't available for sale."),
    # A live Telegram user is named by display name; a live channel is offered to join.
    ("https://t.me/durov", "Pavel Durov\n@durov\nIf you have Telegram, you can contact "
                           "Pavel Durov right away."),
    ("https://t.me/somechannel", "Some Channel\n12 345 subscribers\nIf you have Telegram, you "
                                 "can view and join Some Channel right away."),
])
def test_live_pages_are_not_gone(url: str, text: str) -> None:
    assert gone_reason(snap(final_url=url, text=text)) is None


def test_a_phrase_for_one_platform_does_not_count_on_another() -> None:
    # Instagram's wording on a Facebook page, Facebook's on X.
    assert gone_reason(snap(final_url=POST_URL, text="Couldn't find this account")) is None
    assert gone_reason(snap(final_url=PLATFORM_URL["x"],
                            text="This content isn't available right now")) is None


def test_tombstones_are_found_once_each_and_are_not_gone() -> None:
    page = snap(final_url=PLATFORM_URL["x"], text=(
        "Conversation\nThis Post was deleted by the Post author. Learn more\nreply\n"
        "This Post was deleted by the Post author. Learn more\n"
        "This Post is from a suspended account. Learn more"))
    assert tombstones(page) == ["x: a post on the page was deleted by its author",
                                "x: a post on the page is from a suspended account"]
    assert gone_reason(page) is None
    assert tombstones(snap(final_url=POST_URL, text="This Post is unavailable.")) == []


def test_normalise_line() -> None:
    assert normalise_line("  Hmm\u2026This\u00a0Page  DOESN\u2019T\texist ") == (
        "hmm...this page doesn't exist")
    assert normalise_line("\u200e\u2068@name\u2069") == "@name"


# -- snapshots from stored artifacts ------------------------------------------------------


def artifact(tmp_path: Path, kind: str, name: str, media_type: str,
             data: bytes) -> StoredArtifact:
    path = tmp_path / f"{kind}-{sha(data)[:12]}"
    path.write_bytes(data)
    return StoredArtifact(kind=kind, name=name, media_type=media_type, size=len(data),
                          sha256=sha(data), path=str(path))


def test_snapshot_from_artifacts_reads_text_and_hashes_images(tmp_path: Path) -> None:
    viewport, full = encode(picture(7)), encode(picture(8, (400, 2000)))
    photo, video = encode(picture(9), "JPEG", quality=80), b"\x00\x00\x00\x18ftypmp42 not really"
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"/>'
    stored = [
        artifact(tmp_path, "text", "text.txt", "text/plain; charset=utf-8",
                 "Caf\u00e9 post\nline two\n".encode()),
        artifact(tmp_path, "screenshot", "screenshot-full.png", "image/png", full),
        artifact(tmp_path, "screenshot_viewport", "screenshot-viewport.png", "image/png",
                 viewport),
        artifact(tmp_path, "media", "https://cdn/photo.jpg", "image/jpeg", photo),
        artifact(tmp_path, "media", "https://cdn/clip.mp4", "video/mp4", video),
        artifact(tmp_path, "media", "https://cdn/logo.svg", "image/svg+xml", svg),
        artifact(tmp_path, "dom", "dom.html", "text/html", b"<html></html>"),
    ]
    result = snapshot_from_artifacts(http_status=200, final_url=POST_URL, title="T",
                                     artifacts=stored)
    assert result.text == "Caf\u00e9 post\nline two\n"
    assert result.screenshot_kind == "screenshot_viewport"
    assert result.screenshot == hashes(viewport)
    assert result.media == {sha(photo): "https://cdn/photo.jpg", sha(video): "https://cdn/clip.mp4",
                            sha(svg): "https://cdn/logo.svg"}
    assert result.media_hashes == {sha(photo): hashes(photo)}


def test_snapshot_falls_back_to_the_full_page_screenshot(tmp_path: Path) -> None:
    full = encode(picture(8))
    result = snapshot_from_artifacts(
        http_status=None, final_url=None, title=None,
        artifacts=[artifact(tmp_path, "screenshot", "screenshot-full.png", "image/png", full)])
    assert (result.text, result.screenshot_kind) == ("", "screenshot")
    assert result.screenshot == hashes(full)


def test_snapshot_of_a_capture_record(tmp_path: Path) -> None:
    record = CaptureRecord(capture_id=uuid.uuid4(), requested_url=POST_URL, operator=None,
                           worker_host="test", started_at=datetime.now(UTC),
                           final_url=POST_URL, http_status=404, title="Not found")
    record.artifacts.append(artifact(tmp_path, "text", "text.txt", "text/plain", b"Not found"))
    result = snapshot_of(record)
    assert (result.http_status, result.final_url, result.title, result.text) == (
        404, POST_URL, "Not found", "Not found")
    assert gone_reason(result) == "HTTP 404"


def test_a_file_that_changed_between_captures_shows_as_one_changed_file(
    tmp_path: Path,
) -> None:
    """A watched address that serves a PDF price list: no page, no text, no screenshot; the
    only change to show is the file itself, the same file name with other bytes."""
    old_pdf, new_pdf = b"%PDF-1.4 price 4500", b"%PDF-1.4 price 3950"

    def of(data: bytes) -> Snapshot:
        return snapshot_from_artifacts(http_status=200, final_url=POST_URL, title=None,
                                       artifacts=[artifact(tmp_path, "download", "prices.pdf",
                                                           "application/pdf", data)])

    changed = compare(of(old_pdf), of(new_pdf))
    assert changed.changed and changed.summary == "1 media changed"
    assert [(m.before.sha256, m.after.sha256, m.after.name)
            for m in changed.media_changed] == [(sha(old_pdf), sha(new_pdf), "prices.pdf")]
    assert changed.media_added == changed.media_removed == ()
    assert compare(of(old_pdf), of(old_pdf)).media_added == ()
