"""Browser tests: Debian's Chromium driven by Playwright (from PyPI; never `playwright install`),
against a live server of the platform (uvicorn, `make run`'s server) on the test database.

Every test here is marked `browser`, and skipped with its reason where Chromium or Playwright is
missing (`make test` on a machine without them); CI (`.ci/run`) installs Chromium, so there they
run (its services pass fails on any skip). A failing test leaves a screenshot and the page's HTML
in var/browser-failures/ (BROWSER_FAILURES_DIR). With DOCS_SCREENSHOTS=<folder> the flows that
show the admin also save the screenshots the docs use.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.helpers import asgi_server

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
FAILURES = Path(os.environ.get("BROWSER_FAILURES_DIR", ROOT / "var" / "browser-failures"))
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}
IN_PAGE_SCHEMES = {"data", "blob", "about"}


def _missing() -> str | None:
    if importlib.util.find_spec("playwright") is None:
        return "needs Playwright: pip install -r requirements/dev.txt"
    if not os.access(CHROMIUM, os.X_OK):
        return f"needs Chromium at {CHROMIUM}: apt-get install chromium (CI's .ci/run installs it)"
    return None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "browser: drives a real Chromium (skipped, with the reason, without one)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    reason = _missing()
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.browser)
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Any:
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(autouse=True)
def _fast_password_hashing() -> None:
    """Not here: the live server checks passwords with the settings' hashers, so accounts that
    sign in are hashed with those (the root conftest's MD5 would not verify there)."""


@pytest.fixture(scope="package")
def _async_unsafe_allowed() -> Iterator[None]:
    """Playwright's sync API keeps an asyncio loop running in this thread while it is open, and
    Django then refuses ORM calls ("async context"). The tests' own ORM calls are plain sync
    code, so that check is off while the browser tests run, and only then."""
    saved = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    yield
    if saved is None:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = saved


@pytest.fixture(scope="package")
def live_url(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[str]:
    """`make run`'s server on the test database, for all the browser tests: in-process tasks (no
    broker), the development key and DEBUG (static files served by WhiteNoise's finders)."""
    with asgi_server(
        tmp_path_factory.mktemp("live"),
        CELERY_BROKER_URL="",
        SECRET_KEY="",
        DEBUG="true",
        DEV_KEY_WARNED="1",
    ) as base:
        yield base


@pytest.fixture(scope="package")
def chromium(_async_unsafe_allowed) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@dataclass
class Traffic:
    """Every request the pages made, and those that failed."""

    requests: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def outside(self) -> list[str]:
        """Requests that would have left the machine."""
        return [
            url
            for url in self.requests
            if urlsplit(url).scheme not in IN_PAGE_SCHEMES and urlsplit(url).hostname not in LOCAL_HOSTS
        ]


@pytest.fixture
def traffic() -> Traffic:
    return Traffic()


@pytest.fixture
def page(request, chromium, live_url, django_db_reset_sequences, traffic, monkeypatch) -> Iterator[Any]:
    """A fresh browser context (no cookies) on the live server. On failure: a screenshot and the
    HTML under FAILURES. Every test also checks that nothing was asked of another machine.

    The database is emptied after each test with its sequences reset: the content types Django
    makes again then get the ids they had, which the live server keeps cached from test to test
    (with new ids, the admin's history entry of a later test's save named a content type that no
    longer existed, and the save failed on its foreign key)."""
    from config import realtime

    # Live updates sent by this process's services (the tests' own set-up) would need an event
    # loop of their own, and nobody here listens: they are off, as during a broadcast pause.
    monkeypatch.setattr(realtime, "_paused_until", float("inf"))
    context = chromium.new_context(base_url=live_url, viewport={"width": 1280, "height": 860})
    context.set_default_timeout(15_000)
    context.on("request", lambda r: traffic.requests.append(r.url))
    context.on("requestfailed", lambda r: traffic.failed.append(f"{r.url}: {r.failure}"))
    tab = context.new_page()
    try:
        yield tab
    finally:
        reports = (getattr(request.node, f"report_{when}", None) for when in ("setup", "call"))
        if any(report is not None and report.failed for report in reports):
            FAILURES.mkdir(parents=True, exist_ok=True)
            name = re.sub(r"[^\w.-]+", "_", request.node.name)
            with contextlib.suppress(Exception):
                tab.screenshot(path=str(FAILURES / f"{name}.png"), full_page=True)
                (FAILURES / f"{name}.html").write_text(tab.content())
        context.close()
    assert traffic.outside() == [], "requests that left the machine"


@pytest.fixture
def sign_in(live_url) -> Callable[[Any, str, str], None]:
    def sign_in(tab: Any, email: str, password: str) -> None:
        tab.goto("/admin/login/?next=/admin/")
        tab.fill("#id_username", email)
        tab.fill("#id_password", password)
        tab.click("input[type=submit]")
        tab.wait_for_load_state()

    return sign_in


@pytest.fixture
def docs_screenshot() -> Callable[[Any, str], None]:
    """Saves the page as docs/<name>.png when DOCS_SCREENSHOTS names a folder (docs/, by hand)."""

    def save(tab: Any, name: str, selector: str | None = None) -> None:
        folder = os.environ.get("DOCS_SCREENSHOTS")
        if not folder:
            return
        Path(folder).mkdir(parents=True, exist_ok=True)
        target = tab.locator(selector) if selector else tab
        target.screenshot(path=str(Path(folder) / f"{name}.png"))

    return save


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"condition not met within {timeout} s")
