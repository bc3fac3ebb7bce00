#!/usr/bin/env bash
# Build slipway/test-workspace:latest: a tiny image from Debian's busybox-static that serves a page
# naming each app (busybox httpd on 127.0.0.1:18080 vscode, 127.0.0.1:18888 jupyter) behind the same
# gate as the real image (gate/slipway-gate.c, compiled static here) on 8080 and 8888, as a non-root
# user. Takes a few seconds.
# Skips the build when an image made by this same script version exists; FORCE=1 (or --force) rebuilds.
set -euo pipefail
image=${TEST_IMAGE:-slipway/test-workspace:latest}
busybox=${BUSYBOX:-/bin/busybox}
[ -x "$busybox" ] || busybox=/usr/bin/busybox
here=$(cd "$(dirname "$0")" && pwd)
script_hash=$(cat "$0" "$here/gate/slipway-gate.c" | sha256sum | cut -c1-16)
if [ "${1:-}" != "--force" ] && [ "${FORCE:-0}" != 1 ]; then
  have=$(docker image inspect -f '{{ index .Config.Labels "slipway.build-hash" }}' "$image" 2>/dev/null || true)
  if [ "$have" = "$script_hash" ]; then echo "$image is up to date"; exit 0; fi
fi
if [[ "$(ldd "$busybox" 2>&1 || true)" != *"not a dynamic"* ]]; then
  echo "$busybox is not a static busybox (install busybox-static)" >&2; exit 1
fi

old_id=$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,etc,tmp,workspace,www/vscode,www/jupyter}
cp "$busybox" "$root/bin/busybox"
gcc -O2 -static -o "$root/bin/slipway-gate" "$here/gate/slipway-gate.c"
for applet in $("$busybox" --list); do
  [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nslipway:x:1000:1000:workspace:/workspace:/bin/sh\n' >"$root/etc/passwd"
printf 'root:x:0:\nslipway:x:1000:\n' >"$root/etc/group"
for app in vscode jupyter; do
  printf '<!doctype html><title>%s</title><h1>Slipway test workspace: %s</h1>\n' "$app" "$app" \
    >"$root/www/$app/index.html"
done
cat >"$root/start.sh" <<'SH'
#!/bin/sh
# Both "apps" as daemons on 127.0.0.1 only; the published ports 8080 and 8888 belong to the gate,
# which lets a request through only with the edge's secret (it refuses to start without one).
# The shell stays as the main process, exits cleanly on TERM and stops the container if a gate dies.
httpd -p 127.0.0.1:18080 -h /www/vscode
httpd -p 127.0.0.1:18888 -h /www/jupyter
slipway-gate 8080 18080 & vscode=$!
slipway-gate 8888 18888 & jupyter=$!
unset SLIPWAY_GATE_SECRET
trap 'kill $vscode $jupyter 2>/dev/null; exit 0' TERM INT
while kill -0 $vscode 2>/dev/null && kill -0 $jupyter 2>/dev/null; do sleep 1 & wait $!; done
echo "a gate exited; stopping" >&2
exit 1
SH
chmod 755 "$root/start.sh"
chmod 1777 "$root/tmp"

tar -C "$root" --numeric-owner --owner=0 --group=0 -c . \
  | docker import \
      --change 'USER 1000:1000' \
      --change 'WORKDIR /workspace' \
      --change 'ENV HOME=/workspace' \
      --change 'EXPOSE 8080 8888' \
      --change 'CMD ["/bin/sh", "/start.sh"]' \
      --change "LABEL slipway.build-hash=$script_hash slipway.image=test-workspace" \
      - "$image" >/dev/null
# The replaced image is left untagged: drop it unless a container still uses it.
if [ -n "$old_id" ] && [ "$(docker image inspect -f '{{.Id}}' "$image")" != "$old_id" ]; then
  docker image rm "$old_id" >/dev/null 2>&1 || true
fi
echo "built $image"
