# A stand-in for the official redis image, for hosts that cannot pull it (the tests here): Debian's
# redis-server, data in /data, port 6379, `redis-server` and `redis-cli` on the PATH as in the official
# image. With a registry in reach, use REDIS_IMAGE=redis:7 instead.
#   docker build --build-arg BASE=slipway/debian-base:bookworm -f docker/redis.Dockerfile -t slipway/redis docker
ARG BASE=debian:bookworm-slim
FROM ${BASE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server \
 && rm -rf /var/lib/apt/lists/* \
 && install -d -o redis -g redis /data
WORKDIR /data
VOLUME /data
EXPOSE 6379
USER redis
CMD ["redis-server", "--protected-mode", "no"]
