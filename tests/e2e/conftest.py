"""Browser tests: a live server on 127.0.0.1 (random port) and Playwright driving Debian's Chromium.

Fixtures:
- ``live_server``: the app on a fresh migrated SQLite copy, served by a werkzeug thread; ``live_server.url``,
  ``live_server.app`` (use ``with live_server.app.app_context():`` to seed data before browsing).
- ``live_world``: the standard two-bank ``World`` seeded into the live server's database.
- ``browser``: one Chromium per session; ``page`` / ``phone_page``: a fresh context per test at desktop
  (1280x800) or phone (375x740) size, recording console errors and failed requests in ``page.problems``.
- ``sign_in(page, username)``: signs in through the form.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from crm.extensions import db
from tests.conftest import make_app
from tests.factories import TEST_PASSWORD, World

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run", "--disable-quic", "--disable-dev-shm-usage"]


def _require_browser():
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI") == "true":
            pytest.fail("Chromium is missing at /usr/bin/chromium (CI must install it)")
        pytest.skip("Chromium not installed")


class LiveServer:
    def __init__(self, app):
        self.app = app
        self._server = make_server("127.0.0.1", 0, app, threaded=True)
        self.port = self._server.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._server.shutdown()
        self._thread.join(timeout=10)


@pytest.fixture
def live_server(db_url):
    app = make_app(db_url, WTF_CSRF_ENABLED=True)
    server = LiveServer(app).start()
    try:
        yield server
    finally:
        server.stop()
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def live_world(live_server):
    with live_server.app.app_context():
        w = World.build()
        db.session.commit()
        ids = {k: getattr(v, "id", None) for k, v in vars(w).items()}
        names = {k: getattr(v, "username", None) for k, v in vars(w).items()}
    return type("LiveWorld", (), {"ids": ids, "usernames": names})


@pytest.fixture(scope="session")
def browser():
    _require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)
        yield b
        b.close()


def _aborted_favicon(req) -> bool:
    """A navigation that starts before the favicon arrives aborts it; that is not a failure of the page."""
    path = req.url.split("?", 1)[0]
    return path.endswith(("/favicon.ico", "/static/favicon.svg")) and "ERR_ABORTED" in str(req.failure)


def _new_page(browser, request, width, height, mobile=False):
    context = browser.new_context(viewport={"width": width, "height": height}, locale="zh-CN",
                                  is_mobile=mobile, has_touch=mobile, accept_downloads=True)
    page = context.new_page()
    page.problems = []
    page.on("console", lambda msg: msg.type == "error" and page.problems.append(f"console: {msg.text}"))
    page.on("pageerror", lambda exc: page.problems.append(f"pageerror: {exc}"))
    page.on("requestfailed", lambda req: _aborted_favicon(req) or page.problems.append(f"failed: {req.url} {req.failure}"))
    page.on("response", lambda resp: resp.status >= 400 and page.problems.append(f"http {resp.status}: {resp.url}"))
    page.set_default_timeout(20_000)
    return context, page


@pytest.fixture
def page(browser, request):
    context, p = _new_page(browser, request, 1280, 800)
    yield p
    context.close()


@pytest.fixture
def phone_page(browser, request):
    context, p = _new_page(browser, request, 375, 740, mobile=True)
    yield p
    context.close()


def sign_in(page, base_url, username, password=TEST_PASSWORD):
    """Sign in through the real form and wait for the home page."""
    page.goto(f"{base_url}/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("form[action$='/login'] button[type=submit]")
    page.wait_for_url(f"{base_url}/")


def sign_out(page, base_url):
    """Sign out through the account menu (works collapsed on phones too), waiting out each animation."""
    toggler = page.locator(".navbar-toggler")
    if toggler.is_visible():
        toggler.click()
        page.wait_for_selector("#mainnav.show", state="visible")
        page.wait_for_function("!document.querySelector('#mainnav').classList.contains('collapsing')")
    account = page.locator("[data-testid=account-menu]")
    account.scroll_into_view_if_needed()
    account.click()
    logout = page.locator("[data-testid=logout]")
    logout.wait_for(state="visible")
    logout.click()
    page.wait_for_url(f"{base_url}/login")


def screenshot(page, name):
    """Save a screenshot under test-artifacts/ (the README uses some of them)."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
