"""The grouped navbar in headless Chromium: one line at 1024 and 1280 px, collapsed on a phone, no-JS too."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.builders import PASSWORD, make_user
from tests.livesrv import serve
from tests.logkit import add_alert
from tests.support import require_service

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
pytestmark = pytest.mark.integration

# Long on purpose: the user menu must not push the navbar onto a second line.
USERS = {"admin": "administrator-on-call-tonight", "qvp": "quality-vp-of-platforms"}
AREAS = {
    "admin": ["My workspace", "Dashboard", "Approvals", "Users", "Audit", "Security", "Servers",
              "Workspaces", "Images", "Tasks", "Explorer", "Live", "Alerts", "My security"],
    "qvp": ["My workspace", "Dashboard", "Servers", "Images", "Tasks", "Explorer", "Live", "Alerts",
            "My security"],
}
NOT_FOR_QVP = ["Approvals", "Users", "Audit", "Workspaces"]

# Tops of the navbar's first-level items, whether the collapse is shown, and the navbar's height.
LAYOUT_JS = """() => {
  const visible = (el) => el.getClientRects().length > 0;
  const items = [...document.querySelectorAll('nav.navbar .navbar-nav > .nav-item')].filter(visible);
  return {
    tops: items.map((el) => Math.round(el.getBoundingClientRect().top)),
    labels: items.map((el) => el.innerText.trim()),
    collapsed: !visible(document.getElementById('main-nav')),
    toggler: visible(document.querySelector('.navbar-toggler')),
    height: document.querySelector('nav.navbar').getBoundingClientRect().height,
  };
}"""


def _browser_available() -> bool:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False
    return Path(CHROMIUM).exists()


def _login(page, base_url: str, username: str) -> None:
    page.goto(f"{base_url}/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("[type=submit]")
    page.wait_for_url(f"{base_url}/admin/")


def _watch(page, problems: list[str]) -> None:
    # The browser's own favicon probe (404) is not the page's doing.
    page.on("console", lambda msg: msg.type == "error" and not msg.location.get("url", "").endswith(
        "/favicon.ico") and problems.append(f"{msg.text} {msg.location}"))
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on("response", lambda r: r.status >= 400 and not r.url.endswith("/favicon.ico")
            and problems.append(f"{r.status} {r.url}"))


@pytest.mark.parametrize("role", ["admin", "qvp"])
def test_navbar_one_line_when_wide_collapsed_on_a_phone(app, tmp_path, role):
    require_service("Chromium + playwright", _browser_available())
    from playwright.sync_api import sync_playwright

    with app.app_context():
        make_user(USERS[role], role=role)
    for i in range(12):  # the admin's Logs group carries an open-alerts badge, and still fits
        add_alert(app, group_value=f"g{i}")
    problems: list[str] = []
    with serve(app) as base_url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for width in (1280, 1024):
                page = browser.new_context(viewport={"width": width, "height": 700}).new_page()
                _watch(page, problems)
                _login(page, base_url, USERS[role])
                page.screenshot(path=str(tmp_path / f"nav-{role}-{width}.png"))
                layout = page.evaluate(LAYOUT_JS)
                assert not layout["collapsed"] and not layout["toggler"], layout
                assert len(set(layout["tops"])) == 1, layout  # every item on the same line
                assert layout["height"] < 70, layout
                groups = ["Infrastructure", "Logs"]
                groups = ["People", *groups] if role == "admin" else groups
                badge = " 12" if role == "admin" else ""
                assert layout["labels"][2:-1] == groups[:-1] + [f"Logs{badge}"], layout
                # Bootstrap's JS (served by the app) opens the group in place.
                page.click("text=Infrastructure")
                page.wait_for_selector(".nav-group-infrastructure .dropdown-menu.show")
                assert page.is_visible(".dropdown-menu.show >> text=Servers")
                page.screenshot(path=str(tmp_path / f"nav-{role}-{width}-open.png"))
                page.context.close()

            page = browser.new_context(viewport={"width": 390, "height": 844}).new_page()
            _watch(page, problems)
            _login(page, base_url, USERS[role])
            page.screenshot(path=str(tmp_path / f"nav-{role}-390.png"))
            layout = page.evaluate(LAYOUT_JS)
            assert layout["collapsed"] and layout["toggler"], layout
            assert layout["height"] < 70, layout
            page.click(".navbar-toggler")
            page.wait_for_selector("#main-nav.show")
            page.click("text=Infrastructure")
            page.wait_for_selector(".nav-group-infrastructure .dropdown-menu.show")
            assert page.is_visible(".dropdown-menu.show >> text=Tasks")
            page.screenshot(path=str(tmp_path / f"nav-{role}-390-open.png"))
            page.context.close()
        finally:
            browser.close()
    assert problems == []


@pytest.mark.parametrize("role", ["admin", "qvp"])
def test_without_javascript_the_toggles_lead_to_every_area(app, tmp_path, role):
    require_service("Chromium + playwright", _browser_available())
    from playwright.sync_api import sync_playwright

    with app.app_context():
        make_user(USERS[role], role=role)
    with serve(app) as base_url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for width, toggle in ((390, ".navbar-toggler"), (1280, "text=Infrastructure")):
                context = browser.new_context(viewport={"width": width, "height": 844},
                                              java_script_enabled=False)
                page = context.new_page()
                _login(page, base_url, USERS[role])
                page.click(toggle)
                page.wait_for_url(f"{base_url}/menu*")
                page.screenshot(path=str(tmp_path / f"menu-nojs-{role}-{width}.png"), full_page=True)
                main = page.locator("main")
                for label in AREAS[role]:
                    link = main.locator(f"a:text-is('{label}')")
                    assert link.count() == 1, label
                if role == "qvp":
                    for label in NOT_FOR_QVP:
                        assert main.locator(f"a:text-is('{label}')").count() == 0, label
                main.locator("a:text-is('Servers')").click()
                page.wait_for_url(f"{base_url}/servers/")
                context.close()
        finally:
            browser.close()
