"""Alert webhooks: signed JSON POSTs retried by the runner until a local receiver answers 2xx."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select

from app.extensions import db
from app.logs.evaluate import evaluate_pending
from app.logs.store import add_entries
from app.models import Alert, AlertRule, Task
from app.worker.runner import Runner

SECRET = "webhook-secret-for-tests"


class Receiver:
    """A local HTTP receiver answering the statuses in `answers`, then 200."""

    def __init__(self, answers: list[int]) -> None:
        self.answers = list(answers)
        self.requests: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers), body))
                status = receiver.answers.pop(0) if receiver.answers else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver_factory():
    made: list[Receiver] = []

    def make(answers: list[int]) -> Receiver:
        made.append(Receiver(answers))
        return made[-1]

    yield make
    for receiver in made:
        receiver.close()


def raise_alert(app, webhook_url=None):
    """A rule, one matching entry, evaluated: returns the new alert's id."""
    with app.app_context():
        db.session.add(AlertRule(name="oom", category="container.oom", risk_score=70, severity="high",
                                 webhook_url=webhook_url))
        add_entries([{"source": "agent", "category": "container.oom", "message": "killed"}])
        db.session.commit()
    evaluate_pending(app, settle_seconds=0)
    with app.app_context():
        return db.session.scalar(select(Alert.id))


def run_tasks(app, seconds=15.0):
    """Run the runner until no task is queued or running (bounded in time)."""
    runner = Runner(app, worker_id="hook-runner", concurrency=1)
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            runner.run_once()
            time.sleep(0.05)
            with app.app_context():
                busy = db.session.scalar(select(Task.id).where(Task.state.in_(("queued", "running"))))
            if busy is None:
                break
    finally:
        runner.shutdown(grace_seconds=2)


def test_webhook_retried_until_the_receiver_answers(app, receiver_factory):
    receiver = receiver_factory([503, 500])
    app.config.update(ALERT_WEBHOOK_URL=receiver.url, ALERT_WEBHOOK_SECRET=SECRET, TASK_RETRY_BASE_SECONDS=0)
    alert_id = raise_alert(app)
    with app.app_context():
        assert db.session.get(Alert, alert_id).webhook_status == "pending"
    run_tasks(app)
    assert len(receiver.requests) == 3
    headers, body = receiver.requests[-1]
    expected = "sha256=" + hmac.new(SECRET.encode(), headers["X-Slipway-Timestamp"].encode() + b"." + body,
                                    hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-Slipway-Signature"], expected)
    document = json.loads(body)
    assert (document["alert_id"], document["rule"], document["severity"]) == (alert_id, "oom", "high")
    with app.app_context():
        alert = db.session.get(Alert, alert_id)
        assert (alert.webhook_status, alert.webhook_attempts) == ("delivered", 3)
        assert alert.webhook_last_error == ""
        assert db.session.scalar(select(Task.state).where(Task.kind == "alert_webhook")) == "succeeded"


def test_rule_webhook_4xx_fails_without_retry(app, receiver_factory):
    receiver = receiver_factory([404])
    app.config.update(ALERT_WEBHOOK_SECRET=SECRET, TASK_RETRY_BASE_SECONDS=0)
    alert_id = raise_alert(app, webhook_url=receiver.url)
    run_tasks(app)
    assert len(receiver.requests) == 1
    with app.app_context():
        alert = db.session.get(Alert, alert_id)
        assert (alert.webhook_status, alert.webhook_attempts) == ("failed", 1)
        assert "404" in alert.webhook_last_error


def test_webhook_to_a_refused_address_is_not_sent(app):
    app.config.update(ALERT_WEBHOOK_URL="http://169.254.169.254/latest", ALERT_WEBHOOK_SECRET=SECRET)
    alert_id = raise_alert(app)
    run_tasks(app)
    with app.app_context():
        alert = db.session.get(Alert, alert_id)
        assert alert.webhook_status == "failed"
        assert "refused" in alert.webhook_last_error


def test_no_webhook_configured_queues_nothing(app):
    raise_alert(app)
    with app.app_context():
        assert db.session.scalar(select(Task.id)) is None
        assert db.session.scalar(select(Alert.webhook_status)) == ""


def test_global_webhook_needs_a_secret_and_an_http_url(tmp_path):
    from app.settings_checks import validate
    from config import TestingConfig

    env = {"SLIPWAY_DATA_DIR": str(tmp_path), "SLIPWAY_ALERT_WEBHOOK_URL": "http://127.0.0.1:9/hook"}
    problems = validate(TestingConfig.load(env)[0])
    assert any("SLIPWAY_ALERT_WEBHOOK_SECRET" in problem for problem in problems)
    env.update(SLIPWAY_ALERT_WEBHOOK_SECRET=SECRET)
    assert validate(TestingConfig.load(env)[0]) == []
    env.update(SLIPWAY_ALERT_WEBHOOK_URL="file:///etc/passwd")
    assert any("SLIPWAY_ALERT_WEBHOOK_URL" in problem for problem in validate(TestingConfig.load(env)[0]))
