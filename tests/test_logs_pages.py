"""The logs explorer and entry pages: role fence, keyset pages, filters (hostile ones too), escaping."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest
from sqlalchemy import event

from app.extensions import db
from tests.builders import make_server, make_user
from tests.logkit import add_logs
from tests.support import StatementCounter


def shown_ids(page: str) -> list[int]:
    """The entry ids listed on an explorer page, in page order."""
    return [int(i) for i in re.findall(r'data-entry-id="(\d+)"', page)]


def link(page: str, rel: str) -> str:
    """The href of the Newer/Older pager link."""
    return re.search(rf'rel="{rel}" href="([^"]+)"', page).group(1).replace("&amp;", "&")


def test_admin_sees_every_entry_qvp_image_work_and_their_own(app, client, auth):
    qvp = auth.as_role("qvp")
    ids = add_logs(app,
                   {"category": "build.failed", "username": "someone", "message": "build broke"},
                   {"category": "image.pushed", "message": "pushed"},
                   {"category": "task.build.failed", "message": "build task failed"},
                   {"category": "auth.login_failed", "username": "someone", "message": "secret-ish"},
                   {"category": "auth.login", "username": qvp.username, "message": "my login"},
                   {"category": "task.provision.failed", "message": "provision failed"})
    page = client.get("/logs/").get_data(as_text=True)
    assert sorted(shown_ids(page)) == [ids[0], ids[1], ids[2], ids[4]]
    assert client.get(f"/logs/entries/{ids[0]}").status_code == 200
    assert client.get(f"/logs/entries/{ids[3]}").status_code == 404
    assert client.get(f"/logs/entries/{ids[5]}").status_code == 404
    # the export obeys the same fence
    exported = client.get("/logs/export.ndjson").get_data(as_text=True)
    assert "secret-ish" not in exported and "my login" in exported

    auth.logout()
    auth.as_role("admin")
    admin_sees = shown_ids(client.get("/logs/").get_data(as_text=True))
    assert set(ids) <= set(admin_sees)  # and the audit feed's entries of these logins


def test_regular_user_has_no_logs_area_and_reads_only_their_own_entries(app, client, auth):
    me = auth.as_role("regular")
    mine, theirs, missing = *add_logs(app, {"category": "container.oom", "username": me.username},
                                      {"category": "container.oom", "username": "other"}), 10**9
    for url in ("/logs/", "/logs/live", "/logs/alerts", "/logs/export.csv", "/logs/export.ndjson"):
        assert client.get(url).status_code == 403, url
    assert client.get(f"/logs/entries/{mine}").status_code == 200
    assert client.get(f"/logs/entries/{theirs}").status_code == 404
    assert client.get(f"/logs/entries/{missing}").status_code == 404


def test_regular_user_reads_the_events_of_their_workspace_without_a_username(app, client, auth):
    from tests.builders import make_workspace

    me = auth.as_role("regular")
    with app.app_context():
        from app.models import User

        owner = db.session.get(User, me.id)
        workspace_id = make_workspace(owner, make_server()).id
    mine, = add_logs(app, {"category": "container.die", "workspace_id": workspace_id})
    other, = add_logs(app, {"category": "container.die", "workspace_id": workspace_id + 1})
    assert client.get(f"/logs/entries/{mine}").status_code == 200
    assert client.get(f"/logs/entries/{other}").status_code == 404


def test_keyset_pages_walk_every_entry_once_with_a_constant_query_count(app, client, auth):
    auth.as_role("admin")
    ids = add_logs(app, *({"message": f"m{i}", "source": "walk"} for i in range(120)))
    add_logs(app, {"message": "other source", "source": "elsewhere"})
    first = client.get("/logs/?source=walk").get_data(as_text=True)
    assert shown_ids(first) == ids[::-1][:50]
    assert 'rel="prev"' not in first
    with app.app_context():
        engine = db.engine
    with StatementCounter(engine) as one:
        client.get("/logs/?source=walk")
    seen = shown_ids(first)
    url = link(first, "next")
    pages = 1
    while url:
        assert "OFFSET" not in url and "page=" not in url
        with StatementCounter(engine) as counter:
            html = client.get(url).get_data(as_text=True)
        assert counter.count == one.count, url
        seen += shown_ids(html)
        pages += 1
        url = link(html, "next") if 'rel="next"' in html else ""
        assert pages < 10
    assert seen == ids[::-1] and pages == 3
    # and back: "Newer" from the last page shows the page before it
    newer = client.get(link(html, "prev")).get_data(as_text=True)
    assert shown_ids(newer) == ids[::-1][50:100]


@pytest.mark.parametrize("args", [
    "server=abc", "server=-1", "server=99999999999999999999999", "min_risk=101", "min_risk=1e3",
    "level=panic", "since=yesterday", "until=2024-13-45", "since=2024-02-01&until=2024-01-01",
    "q=" + "x" * 500, "user=" + "u" * 100, "since=" + "9" * 5000, "server=%00", "min_risk=٣",
    "since=0001-01-01", "until=9999-12-31", "q=%00", "source=a%0Ab", "user=%1B[31m",
    "since=2024-01-01T10:00:00%2B99:00", "until=2024-01-01T25:00",
])
def test_hostile_filters_get_a_clear_message_not_a_500(app, client, auth, args):
    auth.as_role("admin")
    add_logs(app, {"message": "an entry"})
    response = client.get(f"/logs/?{args}")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "logs-filter-problem" in page and shown_ids(page) == []
    for export in ("/logs/export.csv", "/logs/export.ndjson"):
        refused = client.get(f"{export}?{args}")
        assert refused.status_code == 400 and "Bad filter" in refused.get_data(as_text=True)
    assert client.get(f"/logs/?before=abc&after=-3&{args}").status_code == 200


def test_filters_narrow_by_text_literally_level_server_user_risk_and_time(app, client, auth):
    auth.as_role("admin")
    with app.app_context():
        server_id = make_server("edge1").id
    now = datetime(2025, 6, 1, 12, 0)
    ids = add_logs(app,
                   {"message": "disk 100% full", "level": "error", "server_id": server_id, "ts": now},
                   {"message": "disk 100 full", "level": "warning", "ts": now - timedelta(days=2)},
                   {"message": "user_x logged in", "username": "user_x", "ts": now},
                   {"message": "userAx logged in", "username": "userAx", "ts": now})

    def ids_for(query: str) -> list[int]:
        return sorted(shown_ids(client.get(f"/logs/?{query}").get_data(as_text=True)))

    assert ids_for("q=100%25") == [ids[0]]  # % is a letter, not a wildcard
    assert ids_for("q=user_x") == [ids[2]]  # so is _
    assert ids_for("level=warning") == [ids[0], ids[1]]  # "warning or worse"
    assert ids_for("level=error") == [ids[0]]
    assert ids_for(f"server={server_id}") == [ids[0]]
    assert ids_for("user=userAx") == [ids[3]]
    assert ids_for("since=2025-06-01") == [ids[0], ids[2], ids[3]]
    assert ids_for("until=2025-05-30") == [ids[1]]  # a date alone means through that day
    assert ids_for("since=2025-05-30T11:00&until=2025-05-30T13:00") == [ids[1]]
    with app.app_context():
        from sqlalchemy import update

        from app.models import LogEntry

        db.session.execute(update(LogEntry).where(LogEntry.id == ids[3]).values(risk_score=80))
        db.session.commit()
    assert ids_for("min_risk=50") == [ids[3]]
    page = client.get(f"/logs/?server={server_id}").get_data(as_text=True)
    assert ">edge1</td>" in page and f'<option value="{server_id}" selected>' in page


def test_messages_and_fields_are_text_everywhere(app, client, auth):
    auth.as_role("admin")
    entry_id, = add_logs(app, {"message": "<script>alert(1)</script>", "category": "<b>cat</b>",
                               "fields": {"<img src=x>": "<svg onload=alert(2)>", "n": [1, "<i>"]}})
    for url in ("/logs/", "/logs/live", f"/logs/entries/{entry_id}"):
        page = client.get(url).get_data(as_text=True)
        assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page, url
        assert "<b>cat</b>" not in page
    detail = client.get(f"/logs/entries/{entry_id}").get_data(as_text=True)
    assert "&lt;img src=x&gt;" in detail and "&lt;svg onload=alert(2)&gt;" in detail and "<svg" not in detail
    hostile = client.get("/logs/?q=%3Cscript%3Ealert(3)%3C/script%3E").get_data(as_text=True)
    assert "<script>alert(3)" not in hostile


def test_live_page_without_javascript_is_the_explorer_newest_first(app, client, auth):
    auth.as_role("qvp")
    ids = add_logs(app, *({"category": "build.step", "message": f"b{i}"} for i in range(3)))
    page = client.get("/logs/live?q=b").get_data(as_text=True)
    assert shown_ids(page) == ids[::-1]
    stream = re.search(r'data-log-stream-url="([^"]+)"', page).group(1).replace("&amp;", "&")
    assert stream.startswith("/logs/live/stream?") and f"after={ids[-1]}" in stream and "q=b" in stream
    assert 'src="/static/js/live.js"' in page and "<script>" not in page and " style=" not in page


def test_unknown_user_entry_and_empty_store(app, client, auth):
    auth.as_role("admin")
    with app.app_context():
        make_user("nobody-logs")
    add_logs(app)  # nothing: only clears the login's audit entry
    page = client.get("/logs/")
    assert page.status_code == 200 and "No entries match." in page.get_data(as_text=True)
    assert client.get("/logs/entries/0").status_code == 404


@pytest.mark.parametrize("args", ["q=%25_%5C", "q=%27%20OR%201%3D1%20--", "source=%FF",
                                  "user=%F0%9F%92%A5", "q=%5C%25", "before=99999999999999999999",
                                  "after=abc"])
def test_odd_but_valid_values_are_matched_literally(app, client, auth, args):
    auth.as_role("admin")
    add_logs(app, {"message": "plain entry"})
    response = client.get(f"/logs/?{args}")
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and "logs-filter-problem" not in page
    expected = 1 if args.startswith(("before", "after")) else 0
    assert len(shown_ids(page)) == expected
    assert client.get(f"/logs/export.csv?{args}").status_code == 200


def test_text_search_scans_a_bounded_window_per_page_and_offers_to_go_on(app, client, auth, monkeypatch):
    monkeypatch.setattr("app.logs.query.SEARCH_WINDOW", 10)
    auth.as_role("admin")
    ids = add_logs(app, {"message": "the needle, oldest"},
                   *({"message": f"hay {i}"} for i in range(24)), {"message": "a needle, newest"})
    first = client.get("/logs/?q=needle").get_data(as_text=True)
    assert shown_ids(first) == [ids[-1]]  # the newest 10 entries hold one match
    assert f"among the 10 entries #{ids[-10]} to #{ids[-1]}" in first
    with app.app_context():
        engine = db.engine
    with StatementCounter(engine) as one:
        client.get("/logs/?q=needle")
    seen, url, pages = shown_ids(first), link(first, "next"), 1
    while url:
        assert f"before={ids[-10 * pages]}" in url
        with StatementCounter(engine) as counter:
            html = client.get(url).get_data(as_text=True)
        assert counter.count <= one.count, url  # no statement per entry scanned or page walked
        seen += shown_ids(html)
        pages += 1
        url = link(html, "next") if 'rel="next"' in html else ""
        assert pages < 10
    assert seen == [ids[-1], ids[0]] and pages == 3
    assert "logs-search-window" in html and "Search older entries" not in html  # nothing is older


def test_a_small_time_window_is_read_through_the_ts_index_same_result(app, client, auth, monkeypatch):
    auth.as_role("admin")
    start = datetime(2026, 1, 1)
    ids = add_logs(app, *({"message": f"m{i}", "ts": start + timedelta(hours=i)} for i in range(10)))
    with app.app_context():
        engine = db.engine
    statements: list[str] = []

    def keep(_conn, _cursor, statement, *_args):
        statements.append(statement)

    url = "/logs/?since=2026-01-01T02:00&until=2026-01-01T06:00"
    event.listen(engine, "before_cursor_execute", keep)
    try:
        small = shown_ids(client.get(url).get_data(as_text=True))
        forced = [s for s in statements if "ix_log_entries_ts" in s]
        monkeypatch.setattr("app.logs.query.TIME_INDEX_CAP", 3)  # now the window is "large"
        statements.clear()
        large = shown_ids(client.get(url).get_data(as_text=True))
        unforced = [s for s in statements if "ix_log_entries_ts" in s]
    finally:
        event.remove(engine, "before_cursor_execute", keep)
    assert small == large == ids[2:6][::-1]
    assert unforced == []
    assert len(forced) == (1 if engine.dialect.name == "mysql" else 0)  # the hint is MariaDB's
