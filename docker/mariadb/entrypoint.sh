#!/bin/sh
# First start of an empty data directory: create the system tables, the root password, one database
# and one user from MARIADB_* (as the official image does), then run the server in the foreground.
set -eu
datadir=/var/lib/mysql
if [ ! -d "$datadir/mysql" ]; then
  : "${MARIADB_ROOT_PASSWORD:?set MARIADB_ROOT_PASSWORD}" "${MARIADB_DATABASE:?}" "${MARIADB_USER:?}" \
    "${MARIADB_PASSWORD:?}"
  mariadb-install-db --datadir="$datadir" --skip-test-db --auth-root-authentication-method=normal >/dev/null
  sql=$(mktemp)
  # Values go in as SQL string literals: refuse a quote or backslash instead of escaping them.
  for value in "$MARIADB_ROOT_PASSWORD" "$MARIADB_DATABASE" "$MARIADB_USER" "$MARIADB_PASSWORD"; do
    case $value in *\'*|*\\*|*\`*) echo "MARIADB_* values must not contain quotes or backslashes" >&2; exit 1;; esac
  done
  cat >"$sql" <<SQL
ALTER USER 'root'@'localhost' IDENTIFIED BY '$MARIADB_ROOT_PASSWORD';
CREATE DATABASE \`$MARIADB_DATABASE\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE USER '$MARIADB_USER'@'%' IDENTIFIED BY '$MARIADB_PASSWORD';
GRANT ALL PRIVILEGES ON \`$MARIADB_DATABASE\`.* TO '$MARIADB_USER'@'%';
FLUSH PRIVILEGES;
SQL
  # A private server on a socket only, as the official image does, so ALTER USER sees the grant tables.
  socket=/run/mysqld/init.sock
  mariadbd --datadir="$datadir" --skip-networking --socket="$socket" &
  pid=$!
  tries=0
  until mariadb-admin --socket="$socket" -uroot ping >/dev/null 2>&1; do
    tries=$((tries + 1))
    [ "$tries" -le 60 ] || { echo "MariaDB did not start for its first set-up" >&2; exit 1; }
    sleep 0.5
  done
  mariadb --socket="$socket" -uroot <"$sql"
  rm -f "$sql"
  mariadb-admin --socket="$socket" -uroot -p"$MARIADB_ROOT_PASSWORD" shutdown
  wait "$pid" || true
fi
if [ "$1" = mariadbd ]; then
  shift
  exec mariadbd --datadir="$datadir" --bind-address=0.0.0.0 --port=3306 "$@"
fi
exec "$@"
