"""The grouped navbar and /menu (its no-JavaScript form): each role sees exactly the areas it may open."""

from __future__ import annotations

import re

import pytest


def nav_hrefs(page: str) -> set[str]:
    """Every link inside the navbar."""
    nav = page[page.index("<nav class=\"navbar"):page.index("</nav>")]
    return set(re.findall(r'href="([^"#]*)', nav))


LOGS = {"/logs/", "/logs/live", "/logs/alerts"}
EVERY_AREA = {"/admin/approvals", "/admin/users", "/admin/audit", "/admin/security/", "/servers/",
              "/admin/workspaces/", "/images/", "/tasks/", "/admin/", "/workspaces/", "/account/"} | LOGS
NAV_BY_ROLE = {
    "admin": EVERY_AREA,
    "qvp": {"/admin/", "/servers/", "/images/", "/tasks/", "/workspaces/", "/account/"} | LOGS,
    "regular": {"/workspaces/", "/account/"},
}


@pytest.mark.parametrize("role", ["admin", "qvp", "regular"])
def test_navbar_and_menu_page_offer_exactly_what_the_role_may_open(client, auth, role):
    auth.as_role(role)
    page = client.get("/workspaces/").get_data(as_text=True)
    assert nav_hrefs(page) & EVERY_AREA == NAV_BY_ROLE[role]
    for area in NAV_BY_ROLE[role]:
        assert client.get(area).status_code == 200, area
    # Without JavaScript the toggles are links to /menu, which lists the same areas.
    assert re.search(r'class="navbar-toggler" href="/menu"', page)
    menu = client.get("/menu").get_data(as_text=True)
    main = menu[menu.index("<main"):]
    assert set(re.findall(r'href="([^"]*)"', main)) & EVERY_AREA == NAV_BY_ROLE[role]
    assert 'action="/logout"' in main


def test_navbar_groups_admin_areas_under_people_and_infrastructure(client, auth):
    auth.as_role("admin")
    page = client.get("/admin/").get_data(as_text=True)
    groups = re.findall(r'href="/menu#(\w+)"[^>]*data-bs-toggle="dropdown"[^>]*>([^<]+)<', page)
    assert [label for _, label in groups] == ["People", "Infrastructure", "Logs"]
    people = page[page.index("nav-group-people"):page.index("nav-group-infrastructure")]
    assert [h for h in re.findall(r'href="(/[^"#]*)"', people)] == [
        "/admin/approvals", "/admin/users", "/admin/audit", "/admin/security/"]


def test_anonymous_menu_redirects_to_login(client):
    response = client.get("/menu")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
