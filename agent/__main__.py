"""`python -m agent`: serve the agent with gunicorn (one process, a pool of threads)."""

from __future__ import annotations

import logging
import sys

from agent.config import AgentConfig


def main() -> int:
    """Validate the environment, make the workspace root, and serve until stopped."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = AgentConfig.from_env()
    problems = config.problems()
    if problems:
        for problem in problems:
            print(f"agent: {problem}", file=sys.stderr)
        return 2
    config.workdir_deploy.mkdir(parents=True, exist_ok=True)

    from gunicorn.app.base import BaseApplication

    from agent.app import create_app, start_event_watchers

    app = create_app(config)

    def post_worker_init(worker: object) -> None:
        # In the worker, not the master: threads do not survive the fork, and a restarted worker
        # must start a new epoch (its buffer is empty again).
        start_event_watchers(app)

    class AgentServer(BaseApplication):
        """Gunicorn embedded: one worker (the replay cache is per process) with `threads` threads."""

        def load_config(self) -> None:
            """Fixed settings from AgentConfig."""
            host = config.bind
            settings = {
                "bind": f"[{host}]:{config.port}" if ":" in host else f"{host}:{config.port}",
                "workers": 1,
                "worker_class": "gthread",
                "threads": config.threads,
                "timeout": 0,
                "graceful_timeout": 10,
                "accesslog": "-",
                "errorlog": "-",
                "loglevel": "info",
                "post_worker_init": post_worker_init,
            }
            for key, value in settings.items():
                self.cfg.set(key, value)

        def load(self):  # noqa: ANN202 - gunicorn's hook
            """The WSGI app."""
            return app

    AgentServer().run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
