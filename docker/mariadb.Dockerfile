# A stand-in for the official mariadb image, for hosts that cannot pull it (the tests here): MariaDB
# from Debian's packages behind the same interface the compose file uses (MARIADB_ROOT_PASSWORD,
# MARIADB_DATABASE, MARIADB_USER, MARIADB_PASSWORD, data in /var/lib/mysql, port 3306, healthcheck.sh).
# With a registry in reach, use MARIADB_IMAGE=mariadb:11 instead.
#   docker build --build-arg BASE=slipway/debian-base:bookworm -f docker/mariadb.Dockerfile -t slipway/mariadb docker
ARG BASE=debian:bookworm-slim
FROM ${BASE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends mariadb-server \
 && rm -rf /var/lib/apt/lists/* /var/lib/mysql/* \
 && install -d -o mysql -g mysql /run/mysqld
COPY mariadb/entrypoint.sh /usr/local/bin/docker-entrypoint.sh
COPY mariadb/healthcheck.sh /usr/local/bin/healthcheck.sh
VOLUME /var/lib/mysql
EXPOSE 3306
USER mysql
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
CMD ["mariadbd"]
