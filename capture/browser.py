"""One Chromium per worker, driven by Playwright, reused across jobs; a fresh context per job.

Debian's chromium is used through `executable_path` (EVIDENCE_CHROMIUM overrides); Playwright's
own browser is the fallback where one is installed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import threading
import uuid
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, BrowserContext, CDPSession, Playwright, sync_playwright

from capture.errors import BrowserUnavailable, map_playwright_errors
from evidence import processes
from evidence.settings import Settings

LAUNCH_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-features=DnsOverHttps",
]
DEBIAN_CHROMIUM = Path("/usr/bin/chromium")
CLOSE_GRACE_SECONDS = 10.0
DOWNLOADS_KIND = "downloads"  # the kind of the browser's `processes.OwnedFolder`


def find_chromium(settings: Settings) -> Path | None:
    """The browser to launch, or None to let Playwright use its own installed build."""
    if settings.chromium is not None:
        if not settings.chromium.is_file():
            raise BrowserUnavailable(f"EVIDENCE_CHROMIUM={settings.chromium} does not exist")
        return settings.chromium
    if DEBIAN_CHROMIUM.is_file():
        return DEBIAN_CHROMIUM
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    return Path(found) if found else None


class BrowserSession:
    """Starts Playwright and Chromium once; `new_context` gives each job a clean profile."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None
        # A switch Chromium ignores, on this browser's command line alone: `kill` finds the
        # process by it (Playwright does not say which process it started).
        self._mark = f"--evidence-locker-browser={uuid.uuid4().hex}"
        # Where the browser writes the files pages download, while they download: a capture
        # watches each one's size there (`download_size`), to stop one past its bound.
        self._downloads: processes.OwnedFolder | None = None
        self._stopped = False  # by `stop_for_good`: no other browser is started

    def start(self) -> BrowserSession:
        executable = find_chromium(self.settings)
        self._downloads = processes.OwnedFolder(DOWNLOADS_KIND)
        self._playwright = sync_playwright().start()
        try:
            with map_playwright_errors("starting Chromium"):
                self._browser = self._playwright.chromium.launch(
                    executable_path=None if executable is None else str(executable),
                    args=[*LAUNCH_FLAGS, self._mark],
                    headless=True,
                    downloads_path=self._downloads.path,
                )
        except Exception as exc:
            self._playwright.stop()
            self._playwright = None
            self._remove_downloads()
            where = executable or "Playwright's own browser"
            raise BrowserUnavailable(
                f"could not start Chromium ({where}): {exc}; install Debian's chromium "
                "or set EVIDENCE_CHROMIUM"
            ) from exc
        return self

    @property
    def browser(self) -> Browser:
        if self._browser is None or not self._browser.is_connected():
            raise BrowserUnavailable("the browser is not running")
        return self._browser

    @property
    def downloads_dir(self) -> Path:
        """The folder the browser downloads into (files named by the browser, not the page)."""
        if self._downloads is None:
            raise BrowserUnavailable("the browser is not running")
        return self._downloads.path

    def follow_downloads(self, session: CDPSession, context_id: str) -> None:
        """Have the browser tell `session` of every download in the context `context_id`:
        `Browser.downloadWillBegin` (its guid, address and suggested name) and
        `Browser.downloadProgress` (bytes received, then completed or canceled).

        Chromium sends these only to a session that set the context's download behaviour, so
        this sets the one Playwright set for a context that accepts downloads (saved into this
        session's folder, each file named by its download's guid), which changes nothing of how
        the browser downloads."""
        session.send("Browser.setDownloadBehavior", {
            "behavior": "allowAndName", "browserContextId": context_id,
            "downloadPath": str(self.downloads_dir), "eventsEnabled": True})

    def download_size(self, guid: str) -> int:
        """How many bytes the download `guid` has on disk as it stands: Chromium writes it into
        the downloads folder as `<guid>.crdownload` and renames it `<guid>` once complete (0
        once it is gone, or when the names are not found)."""
        size = 0
        if self._downloads is None:
            return size
        for name in (f"{guid}.crdownload", guid):
            with contextlib.suppress(OSError):  # not (or no longer) there
                size = max(size, (self._downloads.path / name).stat().st_size)
        return size

    @property
    def version(self) -> str:
        return f"Chromium {self.browser.version}"

    def new_context(self, **options: Any) -> BrowserContext:
        with map_playwright_errors("opening a browser context"):
            return self.browser.new_context(**options)

    def kill(self) -> bool:
        """Stop this session's Chromium at once, from any thread: for a page that keeps it busy
        past every limit (a script that never yields, a dialog loop), which no call through
        Playwright can interrupt. Every call waiting on the browser then fails; the next
        `ensure_running` starts another. True if a process was found and killed."""
        mark = self._mark.encode()
        killed = False
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                arguments = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if mark in arguments:
                try:
                    os.kill(int(entry.name), signal.SIGKILL)
                    killed = True
                except ProcessLookupError:
                    pass
        return killed

    def stop_for_good(self) -> None:
        """Kill the browser and start no other (`ensure_running` refuses): for a worker that
        stops; from a signal handler too (it takes no lock)."""
        self._stopped = True
        self.kill()

    def ensure_running(self) -> None:
        """Start the browser again if it is gone (killed by `kill`, crashed)."""
        if self._stopped:
            raise BrowserUnavailable("the browser was stopped: the worker is stopping")
        if self._browser is not None and self._browser.is_connected():
            return
        with contextlib.suppress(Exception):  # a dead browser's driver may refuse to close it
            self.close()
        self.start()

    def close(self) -> None:
        # A browser that does not close in time (busy with a page, its driver gone) is stopped
        # so that closing it cannot hold its worker for ever.
        stopper = threading.Timer(CLOSE_GRACE_SECONDS, self.kill)
        stopper.daemon = True
        stopper.start()
        try:
            if self._browser is not None and self._browser.is_connected():
                self._browser.close()
        finally:
            stopper.cancel()
            self._browser = None
            if self._playwright is not None:
                self._playwright.stop()
                self._playwright = None
            self._remove_downloads()

    def _remove_downloads(self) -> None:
        if self._downloads is not None:
            self._downloads.remove()
            self._downloads = None

    def __enter__(self) -> BrowserSession:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
