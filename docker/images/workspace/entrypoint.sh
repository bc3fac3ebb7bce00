#!/bin/bash
# The image's entrypoint: the gate in front of each app, then the command (by default slipway-start).
# Ports 8080 (vscode) and 8888 (jupyter) belong to the gate; the apps listen on 127.0.0.1:18080 and
# 127.0.0.1:18888 inside the container. The gate lets a request through only with the secret the
# edge adds (SLIPWAY_GATE_SECRET, new for every container); without one nothing starts (fail closed).
# Images built FROM this one inherit it: keep this ENTRYPOINT and the apps' loopback ports.
set -u
secret=${SLIPWAY_GATE_SECRET:-}
if [ ${#secret} -lt 16 ]; then
  echo "slipway-entrypoint: SLIPWAY_GATE_SECRET is missing or short; refusing to start unguarded" >&2
  exit 1
fi
slipway-gate 8080 18080 &
slipway-gate 8888 18888 &
# The apps and the user's shells do not need the secret in their environment.
unset SLIPWAY_GATE_SECRET secret
if [ $# -eq 0 ]; then set -- /usr/local/bin/slipway-start; fi
"$@" &
trap 'kill -TERM $(jobs -p) 2>/dev/null; wait' TERM INT
# Whichever ends first (a gate or the command) stops the container; the restart policy brings it back.
wait -n
status=$?
kill -TERM $(jobs -p) 2>/dev/null
wait
exit $status
