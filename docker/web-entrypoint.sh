#!/bin/sh
# Entrypoint of the web image. With SLIPWAY_MIGRATE_ON_START=true (the compose file sets it on `web`
# only, so two processes never migrate at once) it first applies the migrations, retrying while the
# database starts, and registers the local agent as server "local" when SLIPWAY_LOCAL_AGENT_URL and
# AGENT_TOKEN are set (both steps are idempotent). Then it runs the command.
set -eu
if [ "${SLIPWAY_MIGRATE_ON_START:-false}" = true ]; then
  tries=0
  until flask db upgrade; do
    tries=$((tries + 1))
    if [ "$tries" -ge "${SLIPWAY_MIGRATE_TRIES:-30}" ]; then
      echo "slipway: migrations failed $tries times; giving up" >&2
      exit 1
    fi
    echo "slipway: migrations failed (database not ready?); retrying in 2 s" >&2
    sleep 2
  done
  if [ -n "${SLIPWAY_LOCAL_AGENT_URL:-}" ] && [ -n "${AGENT_TOKEN:-}" ]; then
    token_file=$(mktemp)
    printf '%s' "$AGENT_TOKEN" >"$token_file"
    flask register-local-server --agent-url "$SLIPWAY_LOCAL_AGENT_URL" --token-file "$token_file" \
      || { rm -f "$token_file"; exit 1; }
    rm -f "$token_file"
  fi
fi
exec "$@"
