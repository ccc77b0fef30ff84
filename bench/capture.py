"""Capture benchmark: the full evidence pipeline against a bare Playwright script, and hashing.

Part 1, capture. A fixed set of local pages (tests.support.pages_server.PagesServer on
127.0.0.1: a simple page, a redirect chain, an RTL page, the lazy-images page, a 2 MB /big page
and the two legacy-charset pages) is captured N times (--rounds) each by

  - the FULL pipeline: `CapturePipeline.run` over a `BrowserSession` and a `FolderStore` in a
    temporary home (navigate, settle, scroll, screenshots, DOM, MHTML, PDF, text, TLS, WARC,
    media, metadata; every artifact hashed, fsynced and stored), timed around the whole call;
  - the BASELINE: a bare Playwright script on a second browser launched from the same executable
    with the same LAUNCH_FLAGS, doing only new context (same viewport), new page,
    goto(url, wait_until="load"), full-page screenshot to a file, close context.

The two are interleaved (their order alternates every round) so machine noise hits both alike;
one untimed warm-up of each per page comes first. Printed per page: median seconds of each, the
ratio full/bare, and the overall median of the per-page ratios. Goal: full within 2x of bare.
`StepOutcome` carries no timings and the pipeline is not modified, so the full pipeline is
timed as a whole; the breakdown lists its steps and notes and the time it spends beyond bare.

Part 2, hashing. Files of random bytes (20 files, --hash-mb in total, default 400 MB, all in
the page cache) are stored through `FolderStore.put_file` (hash + copy + fsync + rename), hashed
alone with the blob store's streaming hash (`hashlib.sha256` over 1 MiB chunks), and hashed by
`sha256sum` in a subprocess (the baseline); best of 3 each. Printed: MB/s (10^6 bytes) and the
time ratio of each against sha256sum. Goal: hashing within 1.2x of sha256sum.

    .venv/bin/python bench/capture.py [--rounds 5] [--hash-mb 400]

It prints; it does not pass or fail.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import Browser

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from capture.browser import LAUNCH_FLAGS, BrowserSession, find_chromium
from capture.pipeline import CapturePipeline
from evidence.blobstore import CHUNK, FolderStore, _chunks
from evidence.captures import CaptureRecord
from evidence.settings import Settings
from tests.support.pages_server import (
    ARABIC_1256_PATH,
    BIG_PATH,
    LATIN_8859_1_PATH,
    LAZY_PATH,
    REDIRECT_CHAIN,
    RTL_PATH,
    SIMPLE_PATH,
    PagesServer,
)

BIG_SIZE = 2_000_000
PAGES: tuple[tuple[str, str], ...] = (
    ("simple", SIMPLE_PATH),
    ("redirect chain", REDIRECT_CHAIN[0]),
    ("rtl", RTL_PATH),
    ("lazy images", LAZY_PATH),
    ("big 2 MB", f"{BIG_PATH}?size={BIG_SIZE}"),
    ("windows-1256", ARABIC_1256_PATH),
    ("iso-8859-1", LATIN_8859_1_PATH),
)
HASH_FILES = 20
CAPTURE_GOAL = 2.0
HASH_GOAL = 1.2


@dataclass
class PageTimes:
    full: list[float] = field(default_factory=list)
    bare: list[float] = field(default_factory=list)
    last: CaptureRecord | None = None
    problems: list[str] = field(default_factory=list)


# --- part 1: capture -----------------------------------------------------------------------


def _time_full(pipeline: CapturePipeline, url: str, times: PageTimes) -> float:
    start = time.perf_counter()
    record = pipeline.run(url, operator="bench")
    elapsed = time.perf_counter() - start
    times.last = record
    if record.status != "complete":
        failed = "; ".join(f"{s.name}: {s.error}" for s in record.steps if not s.ok)
        times.problems.append(f"{record.status}: {record.error or failed}")
    return elapsed


def _time_bare(browser: Browser, url: str, shot: Path, settings: Settings) -> float:
    start = time.perf_counter()
    context = browser.new_context(
        viewport={"width": settings.viewport_width, "height": settings.viewport_height})
    page = context.new_page()
    page.goto(url, wait_until="load")
    page.screenshot(path=shot, full_page=True)
    context.close()
    return time.perf_counter() - start


def _run_captures(rounds: int, work: Path) -> dict[str, PageTimes]:
    settings = Settings(home=work / "home", capture_allow="127.0.0.1")
    store = FolderStore(settings.blob_path)
    store.create()
    shot = work / "bare-screenshot.png"
    results = {name: PageTimes() for name, _ in PAGES}
    with PagesServer() as pages, BrowserSession(settings) as session:
        executable = find_chromium(settings)
        bare_browser = session.browser.browser_type.launch(
            executable_path=None if executable is None else str(executable),
            args=LAUNCH_FLAGS, headless=True)
        try:
            pipeline = CapturePipeline(session, store, settings)
            print(f"capture: {session.version} at {executable or 'Playwright default'}, "
                  f"{len(PAGES)} pages x {rounds} rounds, full and bare interleaved")
            for _name, path in PAGES:  # warm-up, untimed
                _time_full(pipeline, pages.url(path), PageTimes())
                _time_bare(bare_browser, pages.url(path), shot, settings)
            for n in range(rounds):
                for name, path in PAGES:
                    url = pages.url(path)
                    times = results[name]
                    if n % 2 == 0:
                        times.full.append(_time_full(pipeline, url, times))
                        times.bare.append(_time_bare(bare_browser, url, shot, settings))
                    else:
                        times.bare.append(_time_bare(bare_browser, url, shot, settings))
                        times.full.append(_time_full(pipeline, url, times))
                pages.clear_requests()
        finally:
            bare_browser.close()
    return results


def _report_captures(results: dict[str, PageTimes]) -> None:
    print(f"\n{'page':<16}{'full s':>9}{'bare s':>9}{'full/bare':>11}{'full-bare s':>13}")
    ratios = []
    for name, times in results.items():
        full, bare = statistics.median(times.full), statistics.median(times.bare)
        ratios.append(full / bare)
        print(f"{name:<16}{full:>9.3f}{bare:>9.3f}{full / bare:>10.2f}x{full - bare:>13.3f}")
    print(f"overall median ratio full/bare: {statistics.median(ratios):.2f}x "
          f"(goal: within {CAPTURE_GOAL:g}x)")
    print("\nfull pipeline breakdown, ms per step of the last run (the rest is the browser "
          "context: HAR recording, DevTools session, closing):")
    for name, times in results.items():
        record = times.last
        if record is None:
            continue
        steps = " ".join(f"{s.name}={s.ms}" for s in record.steps)
        outside = statistics.median(times.full) * 1000 - sum(s.ms or 0 for s in record.steps)
        print(f"  {name:<15}{steps}  outside steps~{outside:.0f}")
    for name, times in results.items():
        record = times.last
        if record is None:
            continue
        notes = "; ".join(f"{s.name}: {s.note}" for s in record.steps
                          if s.note and s.name != "tls")
        size = sum(a.size for a in record.artifacts)
        print(f"  {name:<15}{statistics.median(times.full):6.3f} s  {len(record.artifacts):2d} "
              f"artifacts {size / 1e6:4.1f} MB  {notes}")
        for problem in sorted(set(times.problems)):
            print(f"    not complete: {problem}")


# --- part 2: hashing -----------------------------------------------------------------------


def _make_files(folder: Path, total_mb: int) -> list[Path]:
    folder.mkdir()
    each = total_mb * 1_000_000 // HASH_FILES
    files = []
    for n in range(HASH_FILES):
        path = folder / f"file-{n:02d}.bin"
        path.write_bytes(os.urandom(each))
        files.append(path)
    return files


def _best_of_3(fn: Callable[[], dict[str, str]]) -> tuple[float, dict[str, str]]:
    best, digests = float("inf"), {}
    for _ in range(3):
        start = time.perf_counter()
        digests = fn()
        best = min(best, time.perf_counter() - start)
    return best, digests


def _stream_hash(files: list[Path]) -> dict[str, str]:
    digests = {}
    for path in files:
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            for chunk in _chunks(fh):
                digest.update(chunk)
        digests[path.name] = digest.hexdigest()
    return digests


def _sha256sum(files: list[Path]) -> dict[str, str]:
    out = subprocess.run(["sha256sum", *map(str, files)], check=True, capture_output=True,
                         text=True).stdout
    digests = {}
    for line in out.splitlines():
        hexdigest, name = line.split(maxsplit=1)
        digests[Path(name.lstrip("*")).name] = hexdigest
    return digests


def _put_files(files: list[Path], stores: Path) -> dict[str, str]:
    shutil.rmtree(stores, ignore_errors=True)  # a fresh store each time: every put creates
    store = FolderStore(stores)
    store.create()
    digests = {}
    for path in files:
        stored = store.put_file(path)
        if not stored.created:
            raise SystemExit(f"{path.name} was already stored; the benchmark needs fresh puts")
        digests[path.name] = stored.sha256
    return digests


def _run_hashing(total_mb: int, work: Path) -> None:
    files = _make_files(work / "hash-input", total_mb)
    size = sum(p.stat().st_size for p in files)
    _stream_hash(files)  # into the page cache
    base, expected = _best_of_3(lambda: _sha256sum(files))
    hashed, got_hash = _best_of_3(lambda: _stream_hash(files))
    stored, got_put = _best_of_3(lambda: _put_files(files, work / "store"))
    shutil.rmtree(work / "store", ignore_errors=True)
    for label, got in (("streaming hash", got_hash), ("put_file", got_put)):
        if got != expected:
            raise SystemExit(f"{label} digests differ from sha256sum's")
    print(f"\nhashing: {len(files)} files, {size / 1e6:.0f} MB in the page cache, "
          f"chunk {CHUNK // 1024} KiB, best of 3")
    print(f"  {'sha256sum (baseline)':<34}{size / 1e6 / base:9.0f} MB/s  {base:7.3f} s")
    print(f"  {'streaming hash (1 MiB chunks)':<34}{size / 1e6 / hashed:9.0f} MB/s  "
          f"{hashed:7.3f} s  {hashed / base:5.2f}x sha256sum (goal: within {HASH_GOAL:g}x)")
    print(f"  {'FolderStore.put_file (+copy,fsync)':<34}{size / 1e6 / stored:9.0f} MB/s  "
          f"{stored:7.3f} s  {stored / base:5.2f}x sha256sum")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--hash-mb", type=int, default=400)
    args = parser.parse_args()
    if args.rounds < 1 or args.hash_mb < 1:
        parser.error("--rounds and --hash-mb must be at least 1")
    with tempfile.TemporaryDirectory(prefix="evidence-bench-") as tmp:
        work = Path(tmp)
        _report_captures(_run_captures(args.rounds, work))
        _run_hashing(args.hash_mb, work)


if __name__ == "__main__":
    main()
