"""An API over a fresh migrated database on each backend, called in-process through httpx."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi.testclient import TestClient
from playwright.sync_api import BrowserContext, ConsoleMessage, Page, Route

from api.app import create_app
from capture.browser import BrowserSession
from evidence import users
from evidence.blobstore import FolderStore
from evidence.db import make_engine, make_session_factory
from evidence.home import Runtime
from evidence.models import Capture, CaptureStatus, Case, Role, Target, User, utcnow
from evidence.settings import Settings
from evidence.signing import Signer
from tests.factories import make_capture
from tests.support.net import free_port


@dataclass
class Caller:
    user: User
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class Clock:
    """The app's clock (`Runtime.clock`), moved on by a test instead of sleeping."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def use_clock(api: Api) -> Clock:
    """Give the app a clock of the test's, starting now (whole seconds)."""
    clock = Clock(utcnow().replace(microsecond=0))
    api.runtime.clock = clock
    return clock


@dataclass
class Api:
    client: TestClient
    runtime: Runtime

    def user(self, name: str, role: Role = Role.INVESTIGATOR, *, password: str | None = None,
             unit: str | None = "Border Unit") -> Caller:
        with self.runtime.session() as session:
            user = users.create_user(session, None, name=name, role=role, unit=unit,
                                     password=password)
            token = users.issue_token(session, user, user, name="test")
        return Caller(user, token)

    def get(self, caller: Caller | None, url: str, **kwargs: Any) -> Any:
        return self.client.get(url, headers=caller.headers if caller else {}, **kwargs)

    def post(self, caller: Caller | None, url: str, **kwargs: Any) -> Any:
        return self.client.post(url, headers=caller.headers if caller else {}, **kwargs)

    def patch(self, caller: Caller | None, url: str, **kwargs: Any) -> Any:
        return self.client.patch(url, headers=caller.headers if caller else {}, **kwargs)

    def put(self, caller: Caller | None, url: str, **kwargs: Any) -> Any:
        return self.client.put(url, headers=caller.headers if caller else {}, **kwargs)

    def delete(self, caller: Caller | None, url: str, **kwargs: Any) -> Any:
        return self.client.delete(url, headers=caller.headers if caller else {}, **kwargs)


def build_runtime(home: Path, database_url: str, **settings: Any) -> Runtime:
    engine = make_engine(database_url)
    store = FolderStore(home / "blobs")
    store.create()
    return Runtime(settings=Settings(home=home, database_url=database_url, **settings),
                   engine=engine, sessions=make_session_factory(engine), store=store,
                   signer=Signer.generate())


@contextmanager
def served_app(runtime: Runtime) -> Iterator[str]:
    """The app on 127.0.0.1 in a uvicorn thread (no lifespan: no checkpoint loop wanted), for
    a real browser; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(runtime), host="127.0.0.1", port=port,
                                           lifespan="off", log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start within 30 s"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@contextmanager
def api_over(runtime: Runtime) -> Iterator[Api]:
    """The app over `runtime`, called in-process; the client and the runtime are closed after."""
    # Not entered as a context manager: the lifespan's checkpoint loop is not wanted here.
    client = TestClient(create_app(runtime))
    try:
        yield Api(client, runtime)
    finally:
        client.close()
        runtime.close()


@pytest.fixture
def api(tmp_path: Path, database_url: str) -> Iterator[Api]:
    with api_over(build_runtime(tmp_path / "home", database_url)) as made:
        yield made


# A Chromium walk's bounds. Playwright gives a click, fill, wait or navigation a timeout (30 s
# by default, set here so that nothing else moves it), but sends some calls with none at all:
# closing a page or a context, evaluate, set_viewport_size, new_page. Chromium can leave one of
# those unanswered for ever: a tab closed while its navigation commits (a form just sent) stays
# open, and page.close() waits on it (microsoft/playwright#42068, crbug 536385539). Such a call
# is bounded by `bounded`, which stops Chromium past its time.
WAIT_SECONDS = 30
CLOSE_SECONDS = 60
WALK_SECONDS = 300


@contextmanager
def bounded(browser: BrowserSession, what: str, seconds: float) -> Iterator[None]:
    """Past `seconds`, stop Chromium (every Playwright call waiting on it then ends) and fail
    the test saying what was stuck, instead of waiting for ever."""
    stopped = threading.Event()

    def stop() -> None:  # on the timer's thread, while the test's thread waits on Chromium
        stopped.set()
        browser.kill()

    timer = threading.Timer(seconds, stop)
    timer.daemon = True
    timer.start()
    try:
        yield
    except Exception as exc:
        if stopped.is_set():
            raise AssertionError(f"{what} ran past {seconds:.0f} s; Chromium was stopped") \
                from exc
        raise
    finally:
        timer.cancel()
    if stopped.is_set():  # a close that Chromium's end let return as if it had closed
        raise AssertionError(f"{what} ran past {seconds:.0f} s; Chromium was stopped")


@contextmanager
def walk_context(browser: BrowserSession, **options: Any) -> Iterator[BrowserContext]:
    """A fresh browser context whose every wait is bounded: its own waits at WAIT_SECONDS, the
    whole walk at WALK_SECONDS, and closing it at CLOSE_SECONDS."""
    context = browser.new_context(**options)
    context.set_default_timeout(WAIT_SECONDS * 1000)
    context.set_default_navigation_timeout(WAIT_SECONDS * 1000)
    try:
        with bounded(browser, "the Chromium walk", WALK_SECONDS):
            yield context
    finally:
        with bounded(browser, "closing the walk's browser context", CLOSE_SECONDS):
            context.close()


def close_tab(browser: BrowserSession, page: Page) -> None:
    """Close a second tab of a walk, bounded. Wait first for where any navigation it started
    (a form it sent) lands (`page.wait_for_url`): Chromium leaves a tab closed mid-commit open."""
    with bounded(browser, f"closing the tab at {page.url}", CLOSE_SECONDS):
        page.close()


@contextmanager
def walled_page(browser: BrowserSession, served: str, *,
                refused_status: int | tuple[int, ...] | None = None,
                **context_options: Any) -> Iterator[Page]:
    """A Chromium page that reaches nothing but the app at `served`, as on a unit's network,
    in a `walk_context`.

    After the walk it asserts that the page asked no other host for anything and that Chromium
    reported no fault: no script error, no blocked style sheet, no policy violation. The only
    console errors let through are the answers at `refused_status` (one or several) to forms the
    walk has refused on purpose (Chromium reports any 4xx).
    """
    elsewhere: list[str] = []
    problems: list[str] = []
    statuses = (() if refused_status is None else (refused_status,)
                if isinstance(refused_status, int) else refused_status)
    allowed = [f"status of {status}" for status in statuses]

    def block(route: Route) -> None:
        elsewhere.append(route.request.url)
        route.abort()

    def console(message: ConsoleMessage) -> None:
        if message.type == "error" and not any(a in message.text for a in allowed):
            problems.append(message.text)

    with walk_context(browser, viewport={"width": 1280, "height": 900},
                      **context_options) as context:
        page = context.new_page()
        page.route(lambda url: not url.startswith(served), block)
        page.on("console", console)
        page.on("pageerror", lambda error: problems.append(str(error)))
        yield page
    assert elsewhere == [], elsewhere
    assert problems == [], problems


def sign_in_on_page(page: Page, name: str, password: str) -> None:
    """Fill in and send the sign-in form the page shows."""
    page.fill("#name", name)
    page.fill("#password", password)
    page.click("button[type=submit]")


def complete_capture(api: Api, target_id: str) -> str:
    """A complete capture of the target, as the worker records one; returns its id."""
    with api.runtime.session() as session:
        target = session.get(Target, uuid.UUID(target_id))
        assert target is not None
        case = session.get(Case, target.case_id)
        assert case is not None
        capture = make_capture(session, case, target, api.runtime.store)
        row = session.get(Capture, capture.id)
        assert row is not None
        row.status = CaptureStatus.COMPLETE
        return str(capture.id)
