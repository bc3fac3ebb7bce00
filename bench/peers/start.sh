#!/bin/bash
# The peer image's entrypoint: the hub API forwarder (loopback 127.0.0.1:<hub port> → the bind-mounted
# unix socket), then jupyterhub-singleuser as the container's main process (DockerSpawner's command).
set -eu
api=${JUPYTERHUB_API_URL#http://}
hostport=${api%%/*}
/opt/jupyter/bin/python /usr/local/bin/hub-forward tcp-to-unix "${hostport%:*}" "${hostport##*:}" \
  /run/slipway-hub/hub.sock &
# Without node on its PATH, as slipway-start runs JupyterLab (it would run `node yarn config` at import).
export PATH=/opt/jupyter/bin:/usr/bin:/bin
exec "$@"
