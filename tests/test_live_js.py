"""static/js/live.js in headless Chromium: a task page follows its stream under the real CSP."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from app.extensions import db
from app.models import Task, TaskEvent
from app.services import task_queue
from app.timeutil import utcnow
from tests.builders import PASSWORD, make_user
from tests.fakes import noop_handler  # noqa: F401  - registers the fake_noop kind
from tests.livesrv import serve
from tests.page_helpers import CHROMIUM, CHROMIUM_ARGS, browser_available
from tests.support import require_service

pytestmark = pytest.mark.integration


def test_task_page_appends_streamed_events_and_moves_the_progress_bar(app):
    require_service("Chromium + playwright", browser_available())
    from playwright.sync_api import sync_playwright

    app.config["STREAM_POLL_SECONDS"] = 0.1
    with app.app_context():
        make_user("watcher")
        task = task_queue.enqueue("fake_noop", target="x", requested_by="watcher")
        db.session.commit()
        task_id = task.id
    problems: list[str] = []
    with serve(app) as base_url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context().new_page()
            page.on("console", lambda msg: msg.type == "error" and problems.append(msg.text))
            page.on("response", lambda r: r.status >= 400 and not r.url.endswith("/favicon.ico")
                    and problems.append(f"{r.status} {r.url}"))
            page.on("pageerror", lambda exc: problems.append(str(exc)))
            page.goto(f"{base_url}/login")
            page.fill("input[name=username]", "watcher")
            page.fill("input[name=password]", PASSWORD)
            page.click("[type=submit]")
            page.goto(f"{base_url}/tasks/{task_id}")
            page.wait_for_selector(".task-live.live-connected", timeout=10000)
            assert page.locator("[data-live=events] li").count() == 1
            assert page.locator("[data-live=attempts]").inner_text() == "0 of 3"
            assert page.locator("[data-live=actions] button").all_inner_texts() == ["Cancel"]
            with app.app_context():
                db.session.add(TaskEvent(task_id=task_id, message="pulling layers", progress=60))
                db.session.execute(update(Task).where(Task.id == task_id)
                                   .values(state="running", progress=60, attempts=1, started_at=utcnow()))
                db.session.commit()
            page.wait_for_function("() => document.querySelector('[data-live=progress]').value === 60",
                                   timeout=10000)
            assert page.locator("[data-live=events] li").last.inner_text().endswith("pulling layers")
            assert page.locator("[data-live=state]").inner_text() == "running"
            assert page.locator("[data-live=attempts]").inner_text() == "1 of 3"
            assert page.locator("[data-live=started]").inner_text().endswith(" UTC")
            # the Cancel button now on the page came through the stream: its form (and CSRF token) works
            page.click("[data-live=actions] button")
            page.wait_for_selector("text=Cancel requested.", timeout=10000)
            page.wait_for_selector(".task-live.live-connected", timeout=10000)
            assert page.locator("[data-live=actions] button").count() == 0  # asked once is enough
            with app.app_context():
                db.session.execute(update(Task).where(Task.id == task_id).values(
                    state="succeeded", progress=100, finished_at=utcnow(), active_lock=None,
                    result={"image": "slipway/workspace:latest"}))
                db.session.commit()
            page.wait_for_function("() => document.querySelector('[data-live=state]').textContent "
                                   "=== 'succeeded'",
                                   timeout=10000)
            page.wait_for_selector(".task-live:not(.live-connected)", timeout=10000)
            # the whole panel follows, not only the state: attempts, finish time, result, buttons
            assert page.locator("[data-live=attempts]").inner_text() == "1 of 3"
            assert page.locator("[data-live=finished]").inner_text().endswith(" UTC")
            assert "slipway/workspace:latest" in page.locator("[data-live=result]").inner_text()
            assert page.locator("[data-live=actions] button").count() == 0
            page.reload()
            # full state without the stream: queued, the streamed line, the cancel request
            assert page.locator("[data-live=events] li").count() == 3
        finally:
            browser.close()
    # No CSP violation and no script error. Ignored: the browser's own favicon probe (404), and
    # "Invalid frame header" when a finished stream closes: under the Werkzeug dev server flask-sock
    # writes an HTTP response after the closed socket (gunicorn, which serves production, does not).
    ignored = ("404 (NOT FOUND)", "/favicon.ico", "Invalid frame header")
    assert [p for p in problems if not any(text in p for text in ignored)] == [], problems
