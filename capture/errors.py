"""Capture failures in the project's own terms; Playwright's exceptions stop at this edge."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from evidence.errors import EvidenceError


class CaptureError(EvidenceError):
    """A capture, or one of its steps, could not be done."""

    status_code = 502


class BrowserUnavailable(CaptureError):
    """No usable Chromium: not installed, or it would not start."""

    status_code = 503


class NavigationTimeout(CaptureError):
    """The page did not load within the navigation bound."""

    status_code = 504


class NavigationFailed(CaptureError):
    """The page could not be loaded at all (DNS, refused connection, TLS, blocked address)."""


class StepTimeout(CaptureError):
    """A capture step ran past its time bound."""

    status_code = 504


class TooLarge(CaptureError):
    """An artifact or the whole capture exceeds its size bound."""

    status_code = 413


def _short(exc: BaseException) -> str:
    # Playwright messages carry a call log after the first line; the first line says it.
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


@contextmanager
def map_playwright_errors(what: str, *, navigation: bool = False) -> Iterator[None]:
    """Translate Playwright's exceptions raised inside the block into CaptureError kinds."""
    try:
        yield
    except PlaywrightTimeout as exc:
        kind = NavigationTimeout if navigation else StepTimeout
        raise kind(f"{what}: timed out ({_short(exc)})") from exc
    except PlaywrightError as exc:
        kind2 = NavigationFailed if navigation else CaptureError
        raise kind2(f"{what}: {_short(exc)}") from exc
