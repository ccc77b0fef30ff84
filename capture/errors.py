"""Capture failures in the project's own terms; Playwright's exceptions stop at this edge."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from evidence.errors import EvidenceError
from evidence.words import counted


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


# Chromium's network errors a capture meets, in words an investigator reads. The code follows
# in brackets, for the expert (and for the checks that look for it, such as `retryable`); a
# code not listed here is given as the browser's code alone.
NET_ERRORS: dict[str, str] = {
    "ERR_NAME_NOT_RESOLVED": "the site's name did not resolve: no such domain, or its DNS "
                             "failed",
    "ERR_NAME_RESOLUTION_FAILED": "the site's name could not be looked up: DNS failed",
    "ERR_CONNECTION_REFUSED": "the server refused the connection: nothing answers at that "
                              "address and port",
    "ERR_CONNECTION_RESET": "the connection was cut off before the page came",
    "ERR_CONNECTION_CLOSED": "the server closed the connection without answering",
    "ERR_CONNECTION_FAILED": "the connection to the server failed",
    "ERR_CONNECTION_TIMED_OUT": "the server could not be reached: connecting to it timed out",
    "ERR_TIMED_OUT": "the server took too long to answer",
    "ERR_ADDRESS_UNREACHABLE": "the server's address cannot be reached from this machine",
    "ERR_INTERNET_DISCONNECTED": "this machine is not connected to the internet",
    "ERR_NETWORK_CHANGED": "this machine's network changed while the page was loading",
    "ERR_PROXY_CONNECTION_FAILED": "the proxy could not be reached",
    "ERR_TUNNEL_CONNECTION_FAILED": "the proxy would not connect to the site",
    "ERR_EMPTY_RESPONSE": "the server closed the connection without sending anything",
    "ERR_INVALID_RESPONSE": "the server's answer was not valid HTTP",
    "ERR_HTTP2_PROTOCOL_ERROR": "the server broke off its answer with an HTTP/2 protocol error",
    "ERR_CONTENT_LENGTH_MISMATCH": "the server's answer broke off before its end",
    "ERR_INCOMPLETE_CHUNKED_ENCODING": "the server's answer broke off before its end",
    "ERR_SSL_PROTOCOL_ERROR": "a secure HTTPS connection to the server could not be set up",
    "ERR_SSL_VERSION_OR_CIPHER_MISMATCH": "the server's HTTPS connection uses a version or "
                                          "cipher the browser does not accept",
    "ERR_TOO_MANY_REDIRECTS": "the address redirects in a loop: the browser gave up after 20 "
                              "redirects",
    "ERR_UNSAFE_REDIRECT": "the address redirects somewhere the browser will not follow",
    "ERR_INVALID_REDIRECT": "the address redirects to something that is not an address",
    "ERR_UNSAFE_PORT": "the browser does not connect to that port, which is kept for "
                       "other services",
    "ERR_BLOCKED_BY_CLIENT": "the capture's address policy stopped the request",
    "ERR_ABORTED": "the browser stopped loading it: it was replaced or cancelled",
    "ERR_FILE_NO_SPACE": "this machine's disk is full",
}
_NET_ERROR = re.compile(r"net::(ERR_[A-Z0-9_]+)")
_TIMEOUT = re.compile(r"Timeout (\d+)ms exceeded")
# Playwright names the call it failed in ("Page.goto: ..."); the reader knows the step.
_CALL = re.compile(r"^[A-Z][A-Za-z]*\.[a-z][A-Za-z]*: ")
_PHRASES = (
    ("Target page, context or browser has been closed",
     "the browser or its page was closed: it crashed, or the capture's time limit stopped it"),
    ("Navigation failed because page crashed", "the browser's page crashed"),
)


def _bound(first_line: str) -> str | None:
    """The bound a Playwright timeout ran past, in seconds ("30 seconds", "1.5 seconds")."""
    found = _TIMEOUT.search(first_line)
    if found is None:
        return None
    seconds = round(int(found.group(1)) / 1000, 1)
    return (counted(int(seconds), "second") if seconds == int(seconds)
            else f"{seconds} seconds")


def describe(exc: BaseException) -> str:
    """Playwright's error in words an investigator reads, on one line: a network error named
    in words with its code after, a timeout by its bound, no call log (Playwright adds its
    log of the call after the first line, and a waiter's "=== logs ===" block)."""
    text = str(exc).strip()
    first = _CALL.sub("", text.splitlines()[0]) if text else type(exc).__name__
    code = _NET_ERROR.search(first)
    if code is not None:
        name = code.group(1)
        words = NET_ERRORS.get(name, "the browser could not load it")
        return f"{words} (net::{name})"
    bound = _bound(first)
    if bound is not None:
        return f"timed out after {bound}"
    for phrase, words in _PHRASES:
        if phrase in first:
            return words
    return first


@contextmanager
def map_playwright_errors(what: str, *, navigation: bool = False) -> Iterator[None]:
    """Translate Playwright's exceptions raised inside the block into CaptureError kinds,
    saying what went wrong in words (see `describe`)."""
    try:
        yield
    except PlaywrightTimeout as exc:
        if navigation:
            raise NavigationTimeout(
                f"{what}: {describe(exc)}: the server had not answered, so nothing of the page "
                "came to be kept") from exc
        raise StepTimeout(f"{what}: {describe(exc)}") from exc
    except PlaywrightError as exc:
        kind = NavigationFailed if navigation else CaptureError
        raise kind(f"{what}: {describe(exc)}") from exc
