"""Playwright's error texts, as the capture records them: in words, on one line."""

from __future__ import annotations

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from capture.errors import describe


def test_a_waiters_timeout_loses_its_log_and_says_its_bound_in_seconds() -> None:
    # The text Playwright's Python side gives a wait that ran out (wait_for_load_state).
    waited = PlaywrightTimeout(
        "Timeout 30000ms exceeded.\n=========================== logs ===========================\n"
        '  "domcontentloaded" event fired\n'
        "============================================================")
    assert describe(waited) == "timed out after 30 seconds"
    driver = PlaywrightTimeout("Page.screenshot: Timeout 1500ms exceeded.\nCall log:\n  - taking")
    assert describe(driver) == "timed out after 1.5 seconds"


def test_network_errors_are_named_in_words_with_the_browsers_code() -> None:
    error = PlaywrightError("Page.goto: net::ERR_NAME_NOT_RESOLVED at https://exmaple.org/\n"
                            "Call log:\n  - navigating to \"https://exmaple.org/\"")
    assert describe(error) == ("the site's name did not resolve: no such domain, or its DNS "
                               "failed (net::ERR_NAME_NOT_RESOLVED)")
    unknown = PlaywrightError("Page.goto: net::ERR_QUIC_PROTOCOL_ERROR at https://example.org/")
    assert describe(unknown) == "the browser could not load it (net::ERR_QUIC_PROTOCOL_ERROR)"


def test_other_texts_keep_their_first_line_without_the_call_name() -> None:
    assert describe(PlaywrightError("Page.goto: Download is starting\nCall log:\n  - x")) == (
        "Download is starting")
    assert describe(PlaywrightError(
        "Page.evaluate: Target page, context or browser has been closed")) == (
        "the browser or its page was closed: it crashed, or the capture's time limit stopped it")
