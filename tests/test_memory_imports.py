"""What each process loads: heavy modules only where used, the web master's warm-up before fork."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from flask import Flask

from app.preload import warm

ROOT = Path(__file__).resolve().parents[1]
# Modules no web request or task of an install without directory login needs at start-up.
HEAVY = ("alembic", "flask_migrate", "mako", "pygments", "zxcvbn", "ldap3", "pyasn1")


def _modules_after(code: str, tmp_path: Path, **env: str) -> list[str]:
    """The HEAVY modules loaded by a fresh interpreter after running `code` (with the app importable)."""
    probe = f"import json, sys\n{code}\nprint(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    full_env = {**os.environ, "SLIPWAY_ENV": "testing", "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}",
                "SLIPWAY_DATA_DIR": str(tmp_path), **env}
    full_env.pop("SLIPWAY_LDAP_URL", None)
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=full_env, capture_output=True,
                            text=True, timeout=120, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_app_and_the_worker_load_no_migration_password_or_directory_library(tmp_path: Path) -> None:
    """`import wsgi` (what `flask worker` and gunicorn load) leaves Alembic, zxcvbn and ldap3 out."""
    code = "import wsgi\nfrom app.worker import load_kinds, start_worker\nload_kinds()"
    assert _modules_after(code, tmp_path) == []


def test_the_web_masters_warm_up_loads_zxcvbn_for_all_workers(tmp_path: Path) -> None:
    """gunicorn's master imports zxcvbn before forking, so the workers share one copy."""
    assert _modules_after("import wsgi\nfrom app.preload import warm\nwarm(wsgi.app)", tmp_path) == ["zxcvbn"]


def test_a_password_check_loads_zxcvbn_on_first_use(app: Flask) -> None:
    """Imported on first use, the strength check still refuses a weak password and passes a strong one."""
    from app.security.passwords import password_problem

    assert "too easy to guess" in (password_problem("password1234") or "")
    assert password_problem("vivid-Lantern-47-orbit-Quay") is None


def test_warm_up_compiles_every_template(app: Flask) -> None:
    """Every template of templates/ is compiled into the Jinja cache the workers inherit."""
    files = [p for p in (ROOT / "templates").rglob("*") if p.is_file()]
    assert warm(app) == len(files) > 50
    cached = {name for _loader, name in (key for key in app.jinja_env.cache or {})}
    assert {p.relative_to(ROOT / "templates").as_posix() for p in files} <= cached


def test_flask_db_loads_flask_migrate_when_run(app: Flask) -> None:
    """`flask db` still lists and runs Flask-Migrate's commands, through the lazy group."""
    runner = app.test_cli_runner()
    listed = runner.invoke(args=["db", "--help"])
    assert listed.exit_code == 0, listed.output
    assert "upgrade" in listed.output and "downgrade" in listed.output
    help_upgrade = runner.invoke(args=["db", "upgrade", "--help"])
    assert help_upgrade.exit_code == 0 and "--sql" in help_upgrade.output
    assert runner.invoke(args=["db", "nosuchcommand"]).exit_code != 0
    # The group's own option and callback (-d sets the directory the subcommands read).
    current = runner.invoke(args=["db", "-d", str(ROOT / "migrations"), "current"])
    assert current.exit_code == 0, current.output
