"""static/js/live.js on /logs/live in headless Chromium: new entries appear as text, and after the
server drops the socket the page resumes after the last id it showed: no gap, no repeat."""

from __future__ import annotations

import time

import pytest

from tests.builders import PASSWORD, make_user
from tests.livesrv import serve
from tests.logkit import add_logs
from tests.page_helpers import CHROMIUM, CHROMIUM_ARGS, browser_available
from tests.support import require_service

pytestmark = pytest.mark.integration


def test_live_logs_page_shows_new_entries_and_resumes_after_forced_disconnects(app):
    require_service("Chromium + playwright", browser_available())
    from playwright.sync_api import sync_playwright

    app.config["LOG_STREAM_POLL_SECONDS"] = 0.05
    app.config["LOG_STREAM_MAX_SECONDS"] = 1  # the server drops every socket after a second
    with app.app_context():
        make_user("watcher", role="admin")
    before = add_logs(app, {"message": "already there", "source": "js"})
    problems: list[str] = []
    sockets: list[str] = []
    with serve(app) as base_url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context().new_page()
            page.on("console", lambda msg: msg.type == "error" and problems.append(msg.text))
            page.on("pageerror", lambda exc: problems.append(str(exc)))
            page.on("websocket", lambda ws: sockets.append(ws.url))
            page.goto(f"{base_url}/login")
            page.fill("input[name=username]", "watcher")
            page.fill("input[name=password]", PASSWORD)
            page.click("[type=submit]")
            page.goto(f"{base_url}/logs/live?source=js")
            page.wait_for_selector(".logs-live.live-connected", timeout=10000)
            assert page.locator("tr.log-entry").count() == 1

            hostile, = add_logs(app, {"message": "<script>window.pwned = 1</script><b>bold</b>",
                                      "source": "js"})
            add_logs(app, {"message": "other source", "source": "elsewhere"})
            row = page.locator(f'tr[data-entry-id="{hostile}"]')
            row.wait_for(timeout=10000)
            assert row.locator(".log-message").inner_text() == "<script>window.pwned = 1</script><b>bold</b>"
            assert row.locator("b").count() == 0 and page.evaluate("() => window.pwned") is None
            assert page.locator("tr.log-entry").first.get_attribute("data-entry-id") == str(hostile)

            # entries keep coming across several server-side disconnects
            written: list[int] = []
            for i in range(12):
                written += add_logs(app, {"message": f"tick {i}", "source": "js"})
                time.sleep(0.25)
            last_shown = "() => document.querySelector('.logs-live').getAttribute('data-last-id')"
            page.wait_for_function(f"{last_shown} === '{written[-1]}'", timeout=15000)
            shown = [int(i) for i in page.locator("tr.log-entry").evaluate_all(
                "rows => rows.map(r => r.getAttribute('data-entry-id'))")]
            assert shown == (before + [hostile] + written)[::-1]  # newest first, each exactly once
            assert page.locator("tr.log-skipped").count() == 0
            assert len(sockets) >= 3, sockets  # it really was dropped and reopened
            assert all("/logs/live/stream?" in url and "source=js" in url for url in sockets)
        finally:
            browser.close()
    # Ignored as in test_live_js.py: the browser's favicon probe, and the Werkzeug dev server writing
    # after a closed socket ("Invalid frame header"; gunicorn does not).
    ignored = ("404 (NOT FOUND)", "Invalid frame header")
    assert [p for p in problems if not any(text in p for text in ignored)] == [], problems
