#!/bin/bash
# Start code-server (127.0.0.1:18080) and JupyterLab (127.0.0.1:18888) without their own passwords:
# only the gate (slipway-entrypoint, on 8080 and 8888) reaches them, and it admits only requests
# carrying the edge's secret. Stop the container when either app exits.
set -u
cd "$HOME"
code-server --bind-addr 127.0.0.1:18080 --auth none --disable-telemetry --disable-update-check \
  --user-data-dir "$HOME/.local/share/code-server" "$HOME" &
# Without node on its PATH: JupyterLab runs `node yarn config` at import whenever it finds node (~0.25 s
# per start), to learn an npm registry it only needs for building extensions.
PATH=/opt/jupyter/bin:/usr/bin:/bin jupyter lab --ip=127.0.0.1 --port=18888 --no-browser --IdentityProvider.token='' \
  --ServerApp.allow_remote_access=True --ServerApp.root_dir="$HOME" \
  --ServerApp.base_url="${JUPYTER_BASE_URL:-/}" &
trap 'kill -TERM $(jobs -p) 2>/dev/null; wait' TERM INT
wait -n
status=$?
kill -TERM $(jobs -p) 2>/dev/null
exit $status
