"""Per-minute rollups (percentiles, errors, idempotence, retention), the traffic page, the activity trail."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest
from sqlalchemy import insert, select

from app.analytics.rollup import percentile, purge_old, rollup_pending, rollup_range
from app.extensions import db
from app.models import RequestLog, RequestRollup, RequestUserRollup
from app.models.analytics import ALL

NOW = datetime(2026, 3, 2, 12, 30, 20)
MINUTE = datetime(2026, 3, 2, 12, 10)
GONE_A, GONE_B = 900_001, 900_002  # user ids with no user row (deleted accounts)


def _raw(at: datetime, route: str = "/servers/<int:server_id>", status: int = 200, ms: float = 10.0,
         user_id: int | None = None, method: str = "GET", size: int = 100) -> dict:
    return {"at": at, "method": method, "route": route, "status": status, "duration_ms": ms,
            "user_id": user_id, "client_addr": "127.0.0.1", "response_bytes": size}


def _insert(app, rows: list[dict]) -> None:
    with app.app_context():
        db.session.execute(insert(RequestLog), rows)
        db.session.commit()


def _rollups(app, span: int = 1) -> dict[tuple, tuple]:
    with app.app_context():
        rows = db.session.scalars(select(RequestRollup).where(RequestRollup.span_minutes == span)).all()
        return {(r.minute, r.method, r.route): (r.count, r.errors_4xx, r.errors_5xx, r.bytes,
                                               r.p50_ms, r.p95_ms, r.p99_ms, r.max_ms) for r in rows}


def _hundred(minute: datetime = MINUTE) -> list[dict]:
    """Durations 1..100 ms (shuffled in time within the minute), 3 × 404 and 2 × 500."""
    rows = []
    for n in range(1, 101):
        status = 404 if n in (5, 6, 7) else 500 if n in (50, 51) else 200
        rows.append(_raw(minute + timedelta(seconds=(n * 37) % 60, microseconds=n), status=status,
                         ms=float(n), user_id=GONE_A if n <= 60 else GONE_B))
    return rows


def test_percentiles_are_nearest_rank():
    ordered = [float(n) for n in range(1, 101)]
    assert (percentile(ordered, 0.5), percentile(ordered, 0.95), percentile(ordered, 0.99)) == (50, 95, 99)
    assert percentile([7.0], 0.99) == 7.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.0


def test_rollup_counts_errors_and_percentiles(app):
    _insert(app, _hundred() + [_raw(MINUTE + timedelta(seconds=3), route="/login", method="POST", ms=400.0,
                                    status=302)])
    with app.app_context():
        rollup_range(MINUTE, MINUTE + timedelta(minutes=1))
        minute_rows = select(RequestUserRollup).where(RequestUserRollup.span_minutes == 1)
        users = {r.user_id: (r.count, r.errors_4xx, r.errors_5xx) for r in db.session.scalars(minute_rows)}
    rollups = _rollups(app)
    expected = (100, 3, 2, 10_000, 50.0, 95.0, 99.0, 100.0)
    assert rollups[(MINUTE, "GET", "/servers/<int:server_id>")] == expected
    assert rollups[(MINUTE, "POST", "/login")] == (1, 0, 0, 100, 400.0, 400.0, 400.0, 400.0)
    # the whole-site row: 101 requests, its own percentiles (not an average of the routes')
    assert rollups[(MINUTE, ALL, ALL)] == (101, 3, 2, 10_100, 51.0, 96.0, 100.0, 400.0)
    assert users == {GONE_A: (60, 3, 2), GONE_B: (40, 0, 0)}


def test_rollup_is_idempotent_and_picks_up_late_rows(app):
    _insert(app, _hundred())
    with app.app_context():
        rollup_pending(NOW)
    first = _rollups(app)
    with app.app_context():
        rollup_pending(NOW)
        rollup_pending(NOW)
        assert db.session.query(RequestRollup).count() == 6  # two rows each per minute, hour and day
    assert _rollups(app) == first
    # a straggler for a minute already rolled up (written by a slow process) is counted next round
    _insert(app, [_raw(MINUTE + timedelta(seconds=59), ms=1000.0)])
    with app.app_context():
        rollup_pending(NOW)
    assert _rollups(app)[(MINUTE, ALL, ALL)][0] == 101
    assert _rollups(app)[(MINUTE, ALL, ALL)][7] == 1000.0


def test_hour_rows_sum_their_minutes_with_weighted_percentiles(app):
    """Minute one: 100 requests (p95 95 ms); minute two: 300 requests at 10 ms; the hour row merges them."""
    later = MINUTE + timedelta(minutes=1)
    _insert(app, _hundred() + [_raw(later + timedelta(seconds=n % 60), ms=10.0, status=404 if n < 4 else 200,
                                    user_id=GONE_B) for n in range(300)])
    with app.app_context():
        rollup_pending(NOW)
        users = {r.user_id: r.count for r in db.session.scalars(
            select(RequestUserRollup).where(RequestUserRollup.span_minutes == 60))}
    hour = MINUTE.replace(minute=0)
    count, e4, e5, size, p50, p95, p99, worst = _rollups(app, span=60)[(hour, ALL, ALL)]
    assert (count, e4, e5, size, worst) == (400, 7, 2, 40_000, 100.0)
    assert p95 == pytest.approx((95.0 * 100 + 10.0 * 300) / 400)
    assert p50 == pytest.approx((50.0 * 100 + 10.0 * 300) / 400)
    assert users == {GONE_A: 60, GONE_B: 340}
    assert set(_rollups(app, span=60)) == {(hour, ALL, ALL), (hour, "GET", "/servers/<int:server_id>")}
    day = _rollups(app, span=24 * 60)[(MINUTE.replace(hour=0, minute=0), ALL, ALL)]
    assert day[:5] == (400, 7, 2, 40_000, pytest.approx(p50)) and day[5] == pytest.approx(p95)


def test_only_finished_minutes_are_rolled_up(app):
    current = NOW.replace(second=0)
    _insert(app, [_raw(current + timedelta(seconds=5)), _raw(current - timedelta(seconds=30))])
    with app.app_context():
        rollup_pending(NOW)
    assert set(_rollups(app)) == {(current - timedelta(minutes=1), "GET", "/servers/<int:server_id>"),
                                  (current - timedelta(minutes=1), ALL, ALL)}
    # a minute that just ended is still settling: rows of its last seconds may be in flight
    with app.app_context():
        rollup_pending(current + timedelta(seconds=3))
    assert current - timedelta(minutes=1) in {key[0] for key in _rollups(app)}
    assert current not in {key[0] for key in _rollups(app)}


def test_a_backlog_with_gaps_is_rolled_up(app):
    _insert(app, [_raw(MINUTE - timedelta(days=2)), _raw(MINUTE - timedelta(hours=5)), _raw(MINUTE)])
    with app.app_context():
        rollup_pending(NOW)
    minutes = sorted({key[0] for key in _rollups(app)})
    assert minutes == [MINUTE - timedelta(days=2), MINUTE - timedelta(hours=5), MINUTE]


def test_retention_drops_old_raw_rows_and_older_rollups(app):
    _insert(app, [_raw(NOW - timedelta(days=10)), _raw(NOW - timedelta(days=3)),
                  _raw(NOW - timedelta(hours=1))])
    with app.app_context():
        rollup_pending(NOW)
        purge_old(NOW, raw_days=7, rollup_days=90)
        assert db.session.query(RequestLog).count() == 2
        # rollups outlive raw rows
        assert db.session.query(RequestRollup).filter_by(route=ALL, span_minutes=1).count() == 3
        purge_old(NOW + timedelta(days=85), raw_days=7, rollup_days=90)
        assert db.session.query(RequestRollup).filter_by(route=ALL, span_minutes=1).count() == 2
        assert db.session.query(RequestRollup).filter_by(route=ALL, span_minutes=60).count() == 2


# --- the traffic page -------------------------------------------------------------------------------


def _recent_traffic(app) -> datetime:
    """Two finished minutes of traffic just before now, rolled up; returns the later minute."""
    from app.timeutil import utcnow

    minute = utcnow().replace(second=0, microsecond=0) - timedelta(minutes=2)
    rows = _hundred(minute) + [_raw(minute + timedelta(minutes=1, seconds=1), route="/images/", ms=900.0,
                                    status=503, user_id=None)]
    _insert(app, rows)
    with app.app_context():
        rollup_range(minute, minute + timedelta(minutes=2))
    return minute


@pytest.mark.parametrize("range_key", ["1h", "24h", "7d"])
def test_traffic_page_without_javascript(app, client, auth, range_key):
    auth.as_role("admin")
    _recent_traffic(app)
    response = client.get(f"/logs/traffic?range={range_key}")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<strong>101</strong> requests" in html
    assert "1 server errors (5xx)" not in html and "3 server errors (5xx)" in html
    # three server-rendered charts with data drawn, no script needed
    assert html.count("<svg") == 3 and html.count("<polyline") >= 3
    assert "<script>" not in html and " style=" not in html and "onclick" not in html
    # slowest routes: the 900 ms route first; errors by route; the range picker is plain links
    slowest = html.split("Slowest routes")[1].split("Errors by route")[0]
    assert slowest.index("GET /images/") < slowest.index("GET /servers/&lt;int:server_id&gt;")
    assert re.search(r'href="/logs/traffic\?range=7d"', html)
    assert 'aria-current="page">' + range_key in html


def test_busiest_users_and_deleted_users(app, client, auth):
    admin = auth.as_role("admin")
    minute = _recent_traffic(app)
    _insert(app, [_raw(minute + timedelta(seconds=n % 60), user_id=admin.id) for n in range(70)])
    with app.app_context():
        rollup_range(minute, minute + timedelta(minutes=2))
    html = client.get("/logs/traffic").get_data(as_text=True)
    users = html.split("Busiest users")[1]
    cells = re.findall(r"<tr><td>(.*?)</td><td class=\"text-end\">(\d+)</td>", users)
    assert cells == [(admin.username, "70"),
                     (f'<span class="text-muted">#{GONE_A} (deleted)</span>', "60"),
                     (f'<span class="text-muted">#{GONE_B} (deleted)</span>', "40")]


def test_bad_range_says_so_and_shows_the_last_hour(app, client, auth):
    auth.as_role("admin")
    response = client.get("/logs/traffic?range=%3Cscript%3E1y")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Unknown range" in html and "choose 1h, 24h or 7d" in html
    assert "<script>1y" not in html
    assert 'aria-current="page">1h' in html


@pytest.mark.parametrize(("role", "expected"), [("regular", 403), ("qvp", 403), ("admin", 200)])
def test_traffic_page_permissions(app, client, auth, role, expected):
    auth.as_role(role)
    assert client.get("/logs/traffic").status_code == expected


def test_traffic_page_anonymous_goes_to_login(client):
    response = client.get("/logs/traffic")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_overflow_count_is_on_the_page(app, client, auth, monkeypatch):
    import app.analytics.buffer as buffer_module

    monkeypatch.setattr(buffer_module, "overflowed", 1234)
    auth.as_role("admin")
    assert '<span id="overflowed">1234</span>' in client.get("/logs/traffic").get_data(as_text=True)


def test_activity_trail_on_the_security_page_is_your_own(app, client, auth):
    me = auth.as_role("regular")
    from app.timeutil import utcnow

    now = utcnow()
    _insert(app, [
        _raw(now - timedelta(minutes=3), route="/login", method="POST", status=302, user_id=me.id),
        _raw(now - timedelta(minutes=2), route="/workspaces/open/<app>", status=302, user_id=me.id),
        _raw(now - timedelta(minutes=1), route="/admin/users", status=200, user_id=me.id + 1000),
    ])
    html = client.get("/account/").get_data(as_text=True)
    trail = html.split("Recent activity")[1]
    assert "Signed in" in trail and "Opened a workspace app" in trail
    assert trail.index("Opened a workspace app") < trail.index("Signed in")  # newest first
    assert "/admin/users" not in trail
