"""The poller: every interval, probe every server's agent in a bounded thread pool.

Only one poller is active across all processes: it holds the `poller_leases` row named
"poller" (renewed each cycle); another process takes over once the lease has expired, or
at once when the holder shuts down cleanly. A round waits for all its probes, each bounded
by the agent timeouts, so rounds never overlap; a probe that overruns even that is left to
finish in its pool thread and its server is skipped until it does, so threads never pile
up. The interval is jittered so many workers do not beat in step. Between rounds the lease
holder looks each second for servers never polled (just registered, by the form, the API or
`flask register-local-server`) and polls at once, so a new server does not wait a whole
interval to be marked online.

In the same round each answering agent is asked for its events after the server's stored cursor
(`app.logs.agent_events`); the entries and the moved cursor are written in the round's one commit,
so a crash between fetch and commit fetches the same events again next round. A server turning
offline is written as a `server.offline` entry.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import timedelta

from flask import Flask
from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from app.agent_client import AgentClient, AgentError
from app.backends.swarm_client import SwarmConnection, connect, probe_swarm
from app.extensions import db
from app.logs.agent_events import EventBatch, batch_entries, fetch_events, offline_entry
from app.logs.store import add_entries
from app.metrics.heartbeat import beat
from app.models import PollerLease, Server
from app.models.workspace import Workspace
from app.security.crypto import SecretDecryptError
from app.services.servers import Outcome, apply_outcome, downsample, probe
from app.timeutil import utcnow

log = logging.getLogger(__name__)
LEASE_NAME = "poller"
RETENTION_EVERY_SECONDS = 600
NEW_SERVER_CHECK_SECONDS = 1.0  # how soon a just-registered server gets its first poll


def poll_swarm(conn: SwarmConnection, instance: str) -> tuple[Outcome, EventBatch | None]:
    """Probe one Swarm manager (nodes and workspace services); Swarms have no event buffer."""
    return probe_swarm(conn, instance), None


def poll_server(
    client: AgentClient, cursor: int, epoch: str, seconds: float,
) -> tuple[Outcome, EventBatch | None]:
    """Probe one agent, then (when it answered) fetch its events after `cursor`, all within `seconds`."""
    started = time.monotonic()
    outcome = probe(client)
    if outcome.kind != "ok":
        return outcome, None
    return outcome, fetch_events(client, cursor, epoch, seconds=seconds - (time.monotonic() - started))


@dataclass
class RoundReport:
    """What one round did: how many servers, outcomes by kind, wall time, status changes."""

    servers: int
    outcomes: dict[str, int]
    seconds: float
    changes: int


class Poller:
    """Polls every server each interval while it holds the lease."""

    def __init__(self, app: Flask, *, holder: str | None = None) -> None:
        self.app = app
        config = app.config
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.interval = float(config["POLL_INTERVAL_SECONDS"])
        self.lease = timedelta(seconds=float(config["POLL_LEASE_SECONDS"]))
        # A round lasts at most the read timeout + 1 s; a probe still running then counts as a timeout.
        self.bound = float(config["AGENT_READ_TIMEOUT"]) + 1
        self.pool = ThreadPoolExecutor(config["POLL_POOL_SIZE"], thread_name_prefix="slipway-poll")
        self._in_flight: dict[int, Future] = {}
        self._last_retention = 0.0
        self._last_sample: dict[int, float] = {}
        self.sample_seconds = float(config["METRICS_SAMPLE_SECONDS"])
        self.rounds = 0
        self._holding = False
        self.agent_errors: dict[str, int] = {}  # failed probes per server name, shown by /metrics

    # -- the lease ----------------------------------------------------------------------------

    def acquire_lease(self) -> bool:
        """Take or renew the poller lease; False while another live holder has it."""
        now = utcnow()
        won = db.session.execute(
            update(PollerLease)
            .where(PollerLease.name == LEASE_NAME,
                   or_(PollerLease.holder == self.holder, PollerLease.expires_at < now))
            .values(holder=self.holder, expires_at=now + self.lease)
        ).rowcount
        if not won and db.session.get(PollerLease, LEASE_NAME) is None:
            db.session.add(PollerLease(name=LEASE_NAME, holder=self.holder, expires_at=now + self.lease))
            try:
                db.session.commit()
            except IntegrityError:  # another process created it first
                db.session.rollback()
                return False
            return True
        db.session.commit()
        return bool(won)

    def release_lease(self) -> None:
        """Give the lease up at once (clean shutdown) so another process takes over."""
        db.session.execute(
            update(PollerLease).where(PollerLease.name == LEASE_NAME, PollerLease.holder == self.holder)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        db.session.commit()

    # -- rounds -------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Poll while holding the lease until `stop` is set; then release it."""
        while not stop.is_set():
            started = time.monotonic()
            try:
                with self.app.app_context():
                    self._holding = self.acquire_lease()
                    if self._holding:
                        self.poll_round()
                        self._maybe_apply_retention()
            except Exception:  # boundary: a database outage must not kill the poller
                log.exception("poll round failed")
            period = self.interval * random.uniform(0.9, 1.1)
            self._wait_for_next_round(stop, max(started + period, time.monotonic() + 0.05))
        try:
            with self.app.app_context():
                self.release_lease()
        except Exception:  # boundary: shutting down anyway
            log.exception("could not release the poller lease")
        self.pool.shutdown(wait=False, cancel_futures=True)

    def _wait_for_next_round(self, stop: threading.Event, until: float) -> None:
        """Sleep until `until` (monotonic) or `stop`; the lease holder wakes early for a new server."""
        while not stop.wait(max(min(until - time.monotonic(), NEW_SERVER_CHECK_SECONDS), 0)):
            if time.monotonic() >= until:
                return
            if self._holding and self.unpolled_servers():
                return

    def unpolled_servers(self) -> list[int]:
        """Ids of servers never polled yet whose first probe is not already running."""
        try:
            with self.app.app_context():
                ids = db.session.scalars(select(Server.id).where(Server.last_polled_at.is_(None))).all()
        except Exception:  # boundary: the round after the interval will log a database outage
            return []
        return [server_id for server_id in ids
                if server_id not in self._in_flight or self._in_flight[server_id].done()]

    def poll_round(self) -> RoundReport:
        """Probe every server concurrently, then record all outcomes in one transaction."""
        started = time.monotonic()
        config = self.app.config
        servers = db.session.scalars(select(Server).order_by(Server.id)).all()
        names = {server.id: server.name for server in servers}  # read now: rows expire at the commit
        futures: dict[int, Future] = {}
        outcomes: dict[int, Outcome] = {}
        batches: dict[int, EventBatch] = {}
        for server in servers:
            previous = self._in_flight.get(server.id)
            if previous is not None and not previous.done():
                continue  # last probe still running: skip rather than stack another thread
            if server.backend == "swarm":
                try:
                    conn = connect(server, timeout=config["AGENT_READ_TIMEOUT"])
                except (SecretDecryptError, AgentError) as exc:
                    outcomes[server.id] = Outcome("degraded", error=f"cannot connect: {exc}")
                    continue
                futures[server.id] = self._in_flight[server.id] = self.pool.submit(
                    poll_swarm, conn, config["INSTANCE_NAME"])
                continue
            try:
                client = AgentClient.for_server(server, retries=0)
            except SecretDecryptError:
                outcomes[server.id] = Outcome("degraded", error="stored token cannot be decrypted")
                continue
            futures[server.id] = self._in_flight[server.id] = self.pool.submit(
                poll_server, client, server.events_cursor, server.events_epoch, config["AGENT_READ_TIMEOUT"])
        db.session.rollback()  # end the read snapshot: probes take seconds and rows may change meanwhile
        done, _ = wait(futures.values(), timeout=self.bound)
        for server_id, future in futures.items():
            if future in done:
                outcomes[server_id], batch = future.result()
                if batch is not None:
                    batches[server_id] = batch
                self._in_flight.pop(server_id, None)
            else:
                outcomes[server_id] = Outcome("timeout", error=f"no answer within {self.bound:g} s")
        now, tick = utcnow(), time.monotonic()
        changes = 0
        # fresh rows: a server deleted or edited during the probes is skipped or updated, not clobbered
        fresh = db.session.scalars(
            select(Server).where(Server.id.in_(list(outcomes))).order_by(Server.id)).all()
        entries = self._event_entries(fresh, batches)
        for server in fresh:
            outcome = outcomes[server.id]
            sample = tick - self._last_sample.get(server.id, -1e9) >= self.sample_seconds
            if sample and outcome.kind == "ok":
                self._last_sample[server.id] = tick
            if apply_outcome(server, outcome, now, failures_offline=config["POLL_FAILURES_OFFLINE"],
                             successes_online=config["POLL_SUCCESSES_ONLINE"], sample=sample):
                changes += 1
                log.info("server %s is now %s (%s)", server.name, server.status, outcome.kind)
                if server.status == "offline":
                    entries.append(offline_entry(server, server.last_error))
        add_entries(entries)
        try:
            db.session.commit()
        except (IntegrityError, StaleDataError):  # a server deleted in the last instant
            db.session.rollback()
            log.warning("a server vanished while its poll was being recorded; this round's results dropped")
        counts: dict[str, int] = {}
        for outcome in outcomes.values():
            counts[outcome.kind] = counts.get(outcome.kind, 0) + 1
        self.rounds += 1
        seconds = time.monotonic() - started
        for server_id, outcome in outcomes.items():
            if outcome.kind != "ok" and server_id in names:
                self.agent_errors[names[server_id]] = self.agent_errors.get(names[server_id], 0) + 1
        beat("poller", self.holder, round_seconds=seconds, stats={"agent_errors": dict(self.agent_errors)})
        return RoundReport(len(servers), counts, seconds, changes)

    def _event_entries(self, servers: list[Server], batches: dict[int, EventBatch]) -> list[dict]:
        """The entries of each fetched batch whose cursor move still applies; moves those cursors.

        The cursor moves only from the value the fetch started at (a compare-and-set in this
        transaction), so a second poller that fetched the same events cannot store them twice.
        """
        moving = [server for server in servers if server.id in batches and batches[server.id].moved]
        if not moving:
            return []
        names = {server.id: {} for server in moving}
        rows = db.session.execute(select(Workspace.server_id, Workspace.container_name, Workspace.id,
                                         Workspace.username).where(Workspace.server_id.in_(list(names))))
        for server_id, container_name, workspace_id, username in rows:
            names[server_id][container_name] = (workspace_id, username)
        entries: list[dict] = []
        for server in moving:
            batch = batches[server.id]
            won = db.session.execute(
                update(Server).where(Server.id == server.id, Server.events_cursor == batch.start_cursor,
                                     Server.events_epoch == batch.start_epoch)
                .values(events_cursor=batch.cursor, events_epoch=batch.epoch)
                .execution_options(synchronize_session=False)
            ).rowcount
            if won:
                entries += batch_entries(server, batch, names[server.id])
            else:
                log.warning("events of server %s were stored by another poller; fetch dropped", server.name)
        return entries

    def _maybe_apply_retention(self) -> None:
        if time.monotonic() - self._last_retention < RETENTION_EVERY_SECONDS:
            return
        self._last_retention = time.monotonic()
        config = self.app.config
        while downsample(utcnow(), raw_hours=config["METRICS_RAW_HOURS"],
                         keep_days=config["METRICS_KEEP_DAYS"]):
            db.session.commit()
        db.session.commit()
