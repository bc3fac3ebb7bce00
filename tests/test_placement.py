"""Placement picks the least-loaded online server that has room."""

from __future__ import annotations

from app.extensions import db
from app.models import Workspace
from app.services.placement import pick_server
from app.timeutil import utcnow
from tests.builders import make_server

GIB = 1024**3


def reserve(server, username, cpu, memory_mb):
    """A workspace row reserving resources on `server`."""
    db.session.add(Workspace(username=username, server_id=server.id, container_name=f"slipway-ws-{username}",
                             image="img", cpu=cpu, memory_mb=memory_mb))
    db.session.commit()


def test_least_loaded_online_server_with_room(app):
    with app.app_context():
        assert pick_server(1, 512) is None
        busy = make_server("busy", status="online", memory_total=8 * GIB, cpu_cores=4, cpu_percent=10,
                           memory_percent=10)
        idle = make_server("idle", status="online", memory_total=8 * GIB, cpu_cores=4, cpu_percent=5,
                           memory_percent=5)
        make_server("down", status="offline", memory_total=64 * GIB, cpu_cores=32)
        make_server("hot", status="online", memory_total=64 * GIB, cpu_cores=32, cpu_percent=97)
        reserve(idle, "ada", 2, 6 * 1024)
        assert pick_server(1, 1024).name == "busy"  # idle has most of its memory reserved
        reserve(busy, "bob", 3.5, 1024)
        assert pick_server(1, 1024).name == "idle"  # busy has no CPU left for one more core
        assert pick_server(1, 4 * 1024) is None  # nobody has 4 GiB unreserved and a free core
        assert pick_server(0.5, 1024).name in {"busy", "idle"}
        assert busy.id != idle.id


def test_a_server_whose_first_poll_is_pending_is_tried_when_no_online_one_fits(app):
    with app.app_context():
        fresh = make_server("fresh", status="unknown")  # just registered: status "unknown", never polled
        assert (fresh.status, fresh.last_polled_at) == ("unknown", None)
        assert pick_server(1, 512).name == "fresh"
        online = make_server("online", status="online", memory_total=8 * GIB, cpu_cores=4)
        assert pick_server(1, 512).name == "online"  # a polled, online server comes first
        assert pick_server(8, 512).name == "fresh"  # ... while it has room
        online.status = "offline"
        db.session.commit()
        assert pick_server(1, 512).name == "fresh"
        fresh.last_polled_at = utcnow()  # polled once and still not online: no longer a candidate
        db.session.commit()
        assert pick_server(1, 512) is None
