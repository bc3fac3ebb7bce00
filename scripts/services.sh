#!/usr/bin/env bash
# Start the services the tests (and `make run`) use, if they are not already running.
# Usage: scripts/services.sh [run|test]
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

if command -v dockerd >/dev/null; then start_docker; elif [ "$mode" = test ]; then
  echo "dockerd is not installed" >&2; exit 1
fi
if [ "$mode" = test ]; then
  start_mariadb
  start_redis
fi
