#!/usr/bin/env bash
# Start the services the tests (and `make run`) use, if they are not already running.
# Usage: scripts/services.sh [run|test|swarm-restore]
# Everything listens on loopback only.
set -euo pipefail
mode=${1:-test}
logdir=${SLIPWAY_SERVICE_LOGS:-/tmp/slipway-services}
mkdir -p "$logdir"

wait_for() {  # wait_for DESCRIPTION SECONDS COMMAND...
  local what=$1 seconds=$2; shift 2
  for _ in $(seq 1 "$((seconds * 5))"); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  echo "$what did not come up in ${seconds}s; see $logdir" >&2
  return 1
}

start_docker() {
  if docker info >/dev/null 2>&1; then return 0; fi
  if [ -S /var/run/docker.sock ] && ! pgrep -x dockerd >/dev/null; then rm -f /var/run/docker.sock; fi
  if ! pgrep -x dockerd >/dev/null; then
    nohup dockerd >"$logdir/dockerd.log" 2>&1 &
  fi
  wait_for "Docker Engine" 60 docker info
}

start_mariadb() {
  if ! mysqladmin ping >/dev/null 2>&1; then
    if command -v service >/dev/null && [ -x /etc/init.d/mariadb ]; then
      service mariadb start >"$logdir/mariadb.log" 2>&1 || true
    fi
    if ! mysqladmin ping >/dev/null 2>&1; then
      mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
      nohup mysqld_safe --bind-address=127.0.0.1 >"$logdir/mariadb.log" 2>&1 &
    fi
    wait_for "MariaDB" 60 mysqladmin ping
  fi
  mysql -uroot <<'SQL'
CREATE DATABASE IF NOT EXISTS slipway_test CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE USER IF NOT EXISTS 'slipway'@'127.0.0.1' IDENTIFIED BY 'slipway-test-password';
CREATE USER IF NOT EXISTS 'slipway'@'localhost' IDENTIFIED BY 'slipway-test-password';
GRANT ALL PRIVILEGES ON `slipway\_test%`.* TO 'slipway'@'127.0.0.1';
GRANT ALL PRIVILEGES ON `slipway\_test%`.* TO 'slipway'@'localhost';
FLUSH PRIVILEGES;
SQL
}

start_redis() {
  if redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; then return 0; fi
  redis-server --bind 127.0.0.1 --port 6379 --daemonize yes --save '' \
    --logfile "$logdir/redis.log"
  wait_for "Redis" 20 redis-cli -h 127.0.0.1 -p 6379 ping
}

# Debian's docker-registry on 127.0.0.1:5000 with htpasswd (bcrypt) auth: slipway / registry-test-password.
start_registry() {
  local dir=$logdir/registry user=slipway password=registry-test-password
  local url=http://127.0.0.1:5000/v2/
  if curl -sf -o /dev/null -u "$user:$password" "$url"; then return 0; fi
  mkdir -p "$dir/data"
  if [ ! -s "$dir/htpasswd" ]; then
    local py=python3
    if .venv/bin/python -c "import bcrypt" 2>/dev/null; then py=.venv/bin/python; fi
    "$py" -W ignore - "$user" "$password" >"$dir/htpasswd" <<'PY'
import sys
try:
    import bcrypt
    hashed = bcrypt.hashpw(sys.argv[2].encode(), bcrypt.gensalt()).decode()
except ImportError:
    import crypt
    hashed = crypt.crypt(sys.argv[2], crypt.mksalt(crypt.METHOD_BLOWFISH))
print(f"{sys.argv[1]}:{hashed}")
PY
  fi
  cat >"$dir/config.yml" <<YAML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:5000
auth:
  htpasswd:
    realm: slipway-test-registry
    path: $dir/htpasswd
YAML
  # A packaged registry service on :5000 with another config would shadow ours.
  if command -v systemctl >/dev/null && systemctl is-active --quiet docker-registry 2>/dev/null; then
    systemctl stop docker-registry || true
  fi
  nohup docker-registry serve "$dir/config.yml" >"$logdir/registry.log" 2>&1 &
  wait_for "docker-registry" 30 curl -sf -o /dev/null -u "$user:$password" "$url"
}

# A single-node Swarm on loopback for the Swarm backend's tests. When this script created it, it
# says so in $logdir/swarm-created, and `services.sh swarm-restore` (run after `make test`) leaves it.
start_swarm() {
  local state
  state=$(docker info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null || echo unknown)
  if [ "$state" = inactive ]; then
    docker swarm init --advertise-addr 127.0.0.1 >/dev/null
    echo "created $(date -u +%FT%TZ)" >"$logdir/swarm-created"
  fi
}

restore_swarm() {
  if [ -f "$logdir/swarm-created" ]; then
    docker swarm leave --force >/dev/null && rm -f "$logdir/swarm-created"
  fi
}

if [ "$mode" = swarm-restore ]; then restore_swarm; exit 0; fi

if command -v dockerd >/dev/null; then start_docker; elif [ "$mode" = test ]; then
  echo "dockerd is not installed" >&2; exit 1
fi
if [ "$mode" = test ]; then
  start_swarm
  start_mariadb
  start_redis
  start_registry
fi
