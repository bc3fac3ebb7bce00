#!/usr/bin/env bash
# Run the suite: first on MariaDB (the URL given), then the app tests again on SQLite.
# Usage: scripts/test.sh DATABASE_URL [pytest args...]
set -uo pipefail
url=$1; shift
py=.venv/bin/python

run_pytest() {
  "$py" -m pytest "$@"
  local rc=$?
  if [ $rc -eq 5 ]; then echo "pytest collected no tests"; return 0; fi
  return $rc
}

.venv/bin/ruff check . || exit 1
if [ -n "$url" ]; then
  echo "== full suite on MariaDB"
  TEST_DATABASE_URL=$url run_pytest "$@" || exit 1
  echo "== app tests on SQLite"
  TEST_DATABASE_URL= run_pytest -m "not integration" --ignore=tests/agent "$@" || exit 1
else
  run_pytest "$@" || exit 1
fi
