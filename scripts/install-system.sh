#!/usr/bin/env bash
# Install the Debian packages Slipway and its tests use, only those still missing.
# Usage: scripts/install-system.sh [run|test]
set -euo pipefail
mode=${1:-test}
packages=(python3-venv docker.io nginx busybox-static gcc libc6-dev)  # gcc: the workspace gate in the test image
packages+=(libnginx-mod-http-lua lua-resty-core lua-resty-lrucache)  # the edge's in-memory route table (docker/nginx/slipway_edge.lua)
if [ "$mode" = test ]; then
  packages+=(mariadb-server redis-server docker-registry chromium chromium-driver debootstrap curl wrk prometheus
             iproute2 iptables  # ip netns + DOCKER-USER: the firewall test
             slapd ldap-utils  # the directory-login tests start a private slapd (tests/ldapkit.py)
             docker-compose)  # make test-compose: the production bundle
fi
missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "Missing Debian packages: ${missing[*]} (run as root, or install them)" >&2
    exit 1
  fi
  echo "Installing: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
