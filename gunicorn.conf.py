"""gunicorn settings for the web app: `gunicorn -c gunicorn.conf.py wsgi:app`.

It puts prometheus_client in multiprocess mode before any worker imports the app: every
worker writes its counters to files in PROMETHEUS_MULTIPROC_DIR (from the environment, else
`$SLIPWAY_DATA_DIR/prometheus`), and `/metrics`, whichever worker answers it, adds them up.
The directory is emptied here, once, when the master starts: values left by a previous run
(or by pids since reused) would otherwise be counted again. One directory per master: two
gunicorns must not share one.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from app.metrics.multiproc import MULTIPROC_ENV, enable_multiproc  # noqa: E402 - needs the path above

bind = os.environ.get("SLIPWAY_GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("SLIPWAY_GUNICORN_WORKERS", "2"))
threads = int(os.environ.get("SLIPWAY_GUNICORN_THREADS", "16"))  # flask-sock WebSockets need threads
# Idle keep-alive: longer than the edge keeps its idle upstream connections (15 s in
# docker/nginx/edge.conf.j2), so the edge never reuses one gunicorn is closing, and shorter than
# a load balancer's idle timeout (60 s on most), so gunicorn is not the side left with a dead one.
keepalive = int(os.environ.get("SLIPWAY_GUNICORN_KEEPALIVE", "30"))
# Load the app once in the master and fork the workers from it: the code and the imported
# libraries are shared between workers instead of loaded in each (see post_fork for the pools).
# A code change then needs a full restart, not a HUP.
preload_app = os.environ.get("SLIPWAY_GUNICORN_PRELOAD", "true").lower() in ("1", "true", "yes", "on")

_data_dir = Path(os.environ.get("SLIPWAY_DATA_DIR") or ROOT / "instance")
_metrics_dir = os.environ.get(MULTIPROC_ENV) or _data_dir / "prometheus"
try:
    enable_multiproc(_metrics_dir)
except OSError as exc:
    raise SystemExit(f"Slipway cannot start: the metrics directory {_metrics_dir} (PROMETHEUS_MULTIPROC_DIR, "
                     "default $SLIPWAY_DATA_DIR/prometheus) cannot be emptied or created: "
                     f"{exc.strerror}") from None


def when_ready(server: object) -> None:
    """Before the first fork: build in the master what every worker would otherwise build for itself."""
    wsgi = sys.modules.get("wsgi")
    if wsgi is not None:  # preloaded
        from app.preload import warm

        warm(wsgi.app)


def pre_fork(server: object, worker: object) -> None:
    """Move what the master loaded out of the collector's reach, so workers keep those pages shared."""
    import gc

    gc.freeze()


def post_fork(server: object, worker: object) -> None:
    """A worker must not reuse a database connection opened before the fork (the master opens none)."""
    wsgi = sys.modules.get("wsgi")
    if wsgi is not None:  # preloaded
        from app.extensions import db

        with wsgi.app.app_context():
            db.engine.dispose(close=False)


def child_exit(server: object, worker: object) -> None:
    """Drop a dead worker's live gauges (its counters stay, as Prometheus expects of counters)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[attr-defined]
