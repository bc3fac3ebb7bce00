"""The logs explorer (filters, keyset pages newest first), an entry's detail, and the live page."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, render_template, request, url_for
from flask_login import current_user, login_required
from sqlalchemy import select

from app.extensions import db
from app.logs.query import keyset_page, load_entry_or_404, parse_filters, parse_id
from app.models import ENTRY_LEVELS, LogEntry, Server
from app.permissions import permission_required

bp = Blueprint("logs", __name__, url_prefix="/logs")

PAGE_SIZE = 50


def _explorer(template_live: bool) -> str:
    filters, problems = parse_filters(request.args)
    before, after = parse_id(request.args.get("before")), parse_id(request.args.get("after"))
    if template_live:
        before = after = None  # the live page always opens on the newest entries
    if problems:
        # A bad filter shows nothing rather than a wider view than was asked for.
        page = None
    else:
        page = keyset_page(filters, current_user, before=before, after=after, size=PAGE_SIZE)
    servers = db.session.execute(select(Server.id, Server.name).order_by(Server.name)).all()
    stream_url = None
    if template_live and page is not None:
        newest = page.entries[0].id if page.entries else _newest_id()
        # A path, not the ws:// URL url_for builds for WebSocket rules: the page's own scheme decides.
        parts = urlsplit(url_for("logs.stream", **filters.args, after=newest))
        stream_url = f"{parts.path}?{parts.query}"
    return render_template("logs/index.html", page=page, problems=problems, filters=filters,
                           levels=ENTRY_LEVELS, servers=servers, server_names=dict(servers),
                           live=template_live, stream_url=stream_url)


def _newest_id() -> int:
    """Where the stream starts on an empty page: after the newest entry of any kind (one query)."""
    return db.session.scalar(select(LogEntry.id).order_by(LogEntry.id.desc()).limit(1)) or 0


@bp.route("/")
@permission_required("view_logs")
def index() -> str:
    """Entries newest first, filtered by text, source, level, server, user, risk and time; keyset pages."""
    return _explorer(template_live=False)


@bp.route("/live")
@permission_required("view_logs")
def live() -> str:
    """The explorer's newest page, followed by the WebSocket stream (a plain page without JavaScript)."""
    return _explorer(template_live=True)


@bp.route("/entries/<int:entry_id>")
@login_required
def entry(entry_id: int) -> str:
    """One entry with all its fields; another user's entry answers 404."""
    item = load_entry_or_404(entry_id, current_user)
    server = db.session.get(Server, item.server_id) if item.server_id else None
    return render_template("logs/entry.html", entry=item, server=server)
