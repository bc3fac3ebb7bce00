#!/usr/bin/env bash
# `make run`: migrate the embedded SQLite database, make sure a first admin exists, serve on :8000.
set -euo pipefail
export SLIPWAY_ENV=${SLIPWAY_ENV:-development}
export FLASK_APP=wsgi
# Two glibc malloc arenas per process, as in production (README, "Operations": memory).
export MALLOC_ARENA_MAX=${MALLOC_ARENA_MAX:-2}
flask=.venv/bin/flask
data_dir=${SLIPWAY_DATA_DIR:-instance}
mkdir -p "$data_dir"
secret_file="$data_dir/secret-key"
if [ -z "${SECRET_KEY:-}" ]; then
  [ -s "$secret_file" ] || (umask 077; .venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(48))' >"$secret_file")
  SECRET_KEY=$(cat "$secret_file")
  export SECRET_KEY
fi

key_file="$data_dir/secrets-key"
if [ -z "${SLIPWAY_SECRETS_KEY:-}" ]; then
  [ -s "$key_file" ] || (umask 077; .venv/bin/python -c 'import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())' >"$key_file")
  SLIPWAY_SECRETS_KEY=$(cat "$key_file")
  export SLIPWAY_SECRETS_KEY
fi

$flask db upgrade

admin_file="$data_dir/first-admin.txt"
if [ ! -s "$admin_file" ]; then
  password=$(.venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(18))')
  echo "$password" | $flask create-admin --username sysadmin --email sysadmin@example.com \
    --password-stdin --if-missing
  (umask 077; printf 'username: sysadmin\npassword: %s\n' "$password" >"$admin_file")
fi
echo
echo "Slipway is starting on http://127.0.0.1:${SLIPWAY_LISTEN_PORT:-8000}"
echo "First admin login (also saved in $admin_file):"
sed 's/^/  /' "$admin_file"

# With Docker: a local agent registered as the first server, the test image, and the edge
# nginx on 127.0.0.1:8080 (its own config under $data_dir/edge). Stopped when the app stops.
pids=()
if docker info >/dev/null 2>&1; then
  agent_token_file="$data_dir/agent-token"
  [ -s "$agent_token_file" ] || (umask 077; .venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(36))' >"$agent_token_file")
  agent_port=${SLIPWAY_AGENT_PORT:-9100}
  AGENT_TOKEN=$(cat "$agent_token_file") AGENT_PORT=$agent_port AGENT_BIND=127.0.0.1 AGENT_HOST_IP=127.0.0.1 \
    WORKDIR_DEPLOY="$(realpath -m "${SLIPWAY_WORKSPACE_ROOT:-$data_dir/workspaces}")" \
    .venv/bin/python -m agent >"$data_dir/agent.log" 2>&1 &
  pids+=($!)
  [ -x docker/images/build-test-image.sh ] && bash docker/images/build-test-image.sh || echo "test image not built"
  $flask register-local-server --agent-url "http://127.0.0.1:$agent_port" --token-file "$agent_token_file"
  # The real workspace image (VS Code + JupyterLab) builds in the background as a task (~8 min the
  # first time); new workspaces get the test image until it is ready, then the real one.
  $flask build-workspace-image --if-missing
  $flask edge >"$data_dir/edge.log" 2>&1 &
  pids+=($!)
  trap 'kill "${pids[@]}" 2>/dev/null; wait' EXIT
  echo "Local agent on 127.0.0.1:$agent_port; workspaces at http://{user}-vscode.${SLIPWAY_WORKSPACE_DOMAIN:-ws.localhost:8080}"
else
  echo "Docker is not available: workspaces cannot be provisioned in this run."
fi
echo
$flask dev-server
