# The Slipway web app, worker and edge (one image, three commands; see docker/compose.yml).
# BASE: any Debian bookworm image; the default is the official one a user would pull. Where no public
# registry is reachable, build FROM the debootstrap base docker/images/build-workspace-image.sh makes:
#   docker build --build-arg BASE=slipway/debian-base:bookworm -f docker/web.Dockerfile -t slipway/web .
# nginx and its Lua module are here because the edge service runs this image (`flask edge`): the workspace
# routes live in the edge's shared memory (docker/nginx/slipway_edge.lua).
ARG BASE=debian:bookworm-slim
FROM ${BASE}
# Extra CA certificates (docker/extra-ca/*.crt, none by default): pip may pass a proxy with its own CA.
COPY docker/extra-ca/ /usr/local/share/ca-certificates/
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-venv \
      ca-certificates nginx libnginx-mod-http-lua lua-resty-core lua-resty-lrucache \
 && update-ca-certificates >/dev/null \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 999 --create-home --home-dir /srv/slipway slipway \
 && install -d -o slipway -g slipway /srv/slipway/data /srv/slipway/uploads /srv/slipway/edge
WORKDIR /srv/slipway/app
COPY requirements.txt .
RUN python3 -m venv /srv/slipway/venv \
 && PIP_CERT=/etc/ssl/certs/ca-certificates.crt /srv/slipway/venv/bin/pip install --no-cache-dir \
      --disable-pip-version-check -r requirements.txt
COPY app app
COPY agent agent
COPY templates templates
COPY static static
COPY migrations migrations
COPY docker/nginx docker/nginx
COPY config.py wsgi.py gunicorn.conf.py ./
COPY docker/web-entrypoint.sh /usr/local/bin/slipway-entrypoint
USER slipway
ENV SLIPWAY_ENV=production PATH=/srv/slipway/venv/bin:$PATH FLASK_APP=wsgi \
    SLIPWAY_DATA_DIR=/srv/slipway/data SLIPWAY_UPLOAD_DIR=/srv/slipway/uploads SLIPWAY_EDGE_DIR=/srv/slipway/edge
# Two glibc malloc arenas per process instead of 8 per core: gunicorn's 16 threads otherwise each
# grow an arena of their own (README, "Operations": about 30 MB more for web + worker at 100 users).
ENV MALLOC_ARENA_MAX=2
EXPOSE 8000
ENTRYPOINT ["/usr/local/bin/slipway-entrypoint"]
# Web: gunicorn with threads (flask-sock WebSockets need them); gunicorn.conf.py puts the metrics in
# multiprocess mode, in $PROMETHEUS_MULTIPROC_DIR (default $SLIPWAY_DATA_DIR/prometheus), emptied at
# start: keep it in this container alone. Worker: `flask worker`. Edge: `flask edge`.
CMD ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
