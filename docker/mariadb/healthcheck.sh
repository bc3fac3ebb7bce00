#!/bin/sh
# The subset of the official image's healthcheck.sh the compose file uses (--connect, --innodb_initialized):
# the server answers a query over TCP.
exec mariadb-admin --protocol=tcp -h 127.0.0.1 -uroot -p"$MARIADB_ROOT_PASSWORD" ping >/dev/null 2>&1
