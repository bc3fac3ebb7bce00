#!/usr/bin/env bash
# Build slipway/workspace:latest (code-server and JupyterLab behind the gate on 8080 and 8888, non-root,
# home = /workspace).
# The base comes from `debootstrap --variant=minbase bookworm` + `docker import` (slipway/debian-base:bookworm,
# ~30 s), since Docker Hub is out of reach; a production install may point SLIPWAY_BASE_IMAGE at any
# Debian bookworm image instead. The host's extra CA certificates (/usr/local/share/ca-certificates/*.crt)
# go into the image before pip and npm run. Skips when an image from the same inputs exists (FORCE=1 rebuilds,
# NO_CACHE=1 also ignores Docker's layer cache).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
image=${WORKSPACE_IMAGE:-slipway/workspace:latest}
base=${SLIPWAY_BASE_IMAGE:-slipway/debian-base:bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
node_wheel=${NODE_WHEEL_VERSION:-24.19.0}
code_server=${CODE_SERVER_VERSION:-4.139.1}
jupyterlab=${JUPYTERLAB_VERSION:-4.6.6}
[ "${1:-}" = --force ] && FORCE=1

inputs_hash=$( (cat "$0" "$here/workspace/Dockerfile" "$here/workspace/start.sh" "$here/workspace/entrypoint.sh" \
  "$here/gate/slipway-gate.c";
  echo "$base $node_wheel $code_server $jupyterlab"; cat /usr/local/share/ca-certificates/*.crt 2>/dev/null || true) \
  | sha256sum | cut -c1-16)
if [ "${FORCE:-0}" != 1 ]; then
  have=$(docker image inspect -f '{{ index .Config.Labels "slipway.build-hash" }}' "$image" 2>/dev/null || true)
  if [ "$have" = "$inputs_hash" ]; then echo "$image is up to date"; exit 0; fi
fi

if ! docker image inspect "$base" >/dev/null 2>&1; then
  if [ -n "${SLIPWAY_BASE_IMAGE:-}" ]; then
    echo "base image $base is not on this host (docker pull or load it first)" >&2; exit 1
  fi
  echo "making $base with debootstrap from $mirror"
  rootfs=$(mktemp -d)
  trap 'rm -rf "$rootfs"' EXIT
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >/tmp/slipway-debootstrap.log 2>&1 \
    || { tail -20 /tmp/slipway-debootstrap.log >&2; exit 1; }
  printf 'deb %s bookworm main\ndeb %s bookworm-updates main\n' "$mirror" "$mirror" >"$rootfs/etc/apt/sources.list"
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" --numeric-owner -c . | docker import --change 'CMD ["/bin/bash"]' - "$base" >/dev/null
  rm -rf "$rootfs"
  trap - EXIT
fi

old_id=$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)
context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
cp "$here/workspace/Dockerfile" "$here/workspace/start.sh" "$here/workspace/entrypoint.sh" \
  "$here/gate/slipway-gate.c" "$context/"
mkdir "$context/extra-ca"
for crt in /usr/local/share/ca-certificates/*.crt; do
  [ -e "$crt" ] && cp "$crt" "$context/extra-ca/"
done
echo "building $image (node wheel $node_wheel, code-server $code_server, jupyterlab $jupyterlab)"
log=${SLIPWAY_IMAGE_LOG:-/tmp/slipway-workspace-build.log}
cache_flag=()
[ "${NO_CACHE:-0}" = 1 ] && cache_flag=(--no-cache)
build() {
  DOCKER_BUILDKIT=0 docker build --rm --force-rm "${cache_flag[@]}" \
    --build-arg "BASE_IMAGE=$base" --build-arg "NODE_WHEEL_VERSION=$node_wheel" \
    --build-arg "CODE_SERVER_VERSION=$code_server" --build-arg "JUPYTERLAB_VERSION=$jupyterlab" \
    --label "slipway.build-hash=$inputs_hash" -t "$image" "$context" >"$log" 2>&1
}
# pip and npm fetch over the network: one retry (resuming from the layer cache) absorbs a transient failure.
if ! build && { echo "build failed once; retrying" >&2; tail -5 "$log" >&2; ! build; }; then
  tail -40 "$log" >&2
  echo "building $image failed; full log in $log" >&2
  exit 1
fi
# The replaced image is left untagged: drop it unless a container still uses it.
if [ -n "$old_id" ] && [ "$(docker image inspect -f '{{.Id}}' "$image")" != "$old_id" ]; then
  docker image rm "$old_id" >/dev/null 2>&1 || true
fi
echo "built $image (log in $log)"
