#!/usr/bin/env bash
# `make security`: ruff's security rules (S), pip-audit over the pinned requirements, and
# Schemathesis fuzzing the live API (gunicorn on a scratch SQLite database) from its own
# /api/v1/openapi.json with an API key: no 5xx, answers match the schema. Bounded in examples and time.
# pip-audit needs the PyPI vulnerability data over the network: when it cannot reach it, this says so
# loudly and goes on (SLIPWAY_AUDIT_REQUIRED=true turns that into a failure).
set -uo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python
status=0

echo "== ruff security rules (S; the ignores are justified in pyproject.toml)"
.venv/bin/ruff check . || status=1  # pyproject.toml selects S; its ignores are justified there

echo "== pip-audit over requirements.txt and requirements-dev.txt"
audit=$(timeout 180 .venv/bin/pip-audit --no-deps --disable-pip --progress-spinner off \
        -r requirements.txt -r requirements-dev.txt 2>&1)
audit_rc=$?
pinned=$(grep -chE '^[A-Za-z0-9_.-]+(\[[^]]*\])?==' requirements.txt requirements-dev.txt | awk '{s+=$1} END {print s}')
unchecked=$(grep -c "could not be audited" <<<"$audit")
if [ "$unchecked" -gt 0 ]; then
  echo "$audit" | grep -v "could not be audited"
  echo "!! pip-audit: NOT CHECKED: $unchecked of $pinned pinned packages could not be looked up (the PyPI"
  echo "!! vulnerability data is not reachable from here). Nothing is known about their vulnerabilities."
  if [ "${SLIPWAY_AUDIT_REQUIRED:-false}" = "true" ]; then status=1; fi
elif [ $audit_rc -ne 0 ]; then
  echo "$audit"; status=1
else
  echo "$audit" | tail -3
fi

echo "== Schemathesis against the live API"
work=$(mktemp -d /tmp/slipway-fuzz.XXXXXX)
port=$($py -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export SLIPWAY_ENV=testing SLIPWAY_DATA_DIR=$work DATABASE_URL=sqlite:///$work/fuzz.db \
       SLIPWAY_RATELIMIT_ENABLED=false SLIPWAY_GUNICORN_BIND=127.0.0.1:$port SLIPWAY_GUNICORN_WORKERS=1 \
       SLIPWAY_GUNICORN_THREADS=4
$py -m flask --app wsgi db upgrade >"$work/setup.log" 2>&1 || { cat "$work/setup.log"; exit 1; }
echo "a long fuzzing password" | $py -m flask --app wsgi create-admin --username fuzzer \
  --email fuzzer@example.com --password-stdin >>"$work/setup.log" 2>&1 || { cat "$work/setup.log"; exit 1; }
key=$($py -m flask --app wsgi create-api-key --username fuzzer --scope write 2>>"$work/setup.log")
$py -m gunicorn -c gunicorn.conf.py wsgi:app >"$work/gunicorn.log" 2>&1 &
web=$!
for _ in $(seq 1 120); do
  curl -fsS -o /dev/null "http://127.0.0.1:$port/health" && break; sleep 0.5
done
fuzz() {  # fuzz(key, schemathesis filter args...): the checks, bounded in examples and time
  local key=$1; shift
  PYTHONPATH=. SCHEMATHESIS_HOOKS=scripts.fuzz_hooks timeout 300 .venv/bin/schemathesis --no-color run \
    "http://127.0.0.1:$port/api/v1/openapi.json" -H "Authorization: Bearer $key" \
    --checks not_a_server_error,response_schema_conformance --max-examples "${FUZZ_MAX_EXAMPLES:-20}" \
    --max-time "${FUZZ_MAX_SECONDS:-30}" --request-timeout 10 --workers 1 --seed 1 "$@"
}
logs_key=$($py -m flask --app wsgi create-api-key --username fuzzer --scope logs:write 2>>"$work/setup.log")
# each operation with the key scoped for it: the write key for the rest, logs:write for shipping logs
fuzz "$key" --exclude-path /logs || status=1
fuzz "$logs_key" --include-path /logs || status=1
[ $status -eq 0 ] || tail -40 "$work/gunicorn.log"
kill "$web"; wait "$web" 2>/dev/null
rm -rf "$work"
exit $status
