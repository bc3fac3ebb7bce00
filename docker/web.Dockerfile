# The Slipway web app and worker (same image, different command).
# Docker Hub is not assumed: build FROM any Debian bookworm base you trust, e.g. the one
# `docker/images/` makes with debootstrap:  docker build --build-arg BASE=slipway/debian-base:bookworm \
#   -f docker/web.Dockerfile -t slipway/web .
ARG BASE=debian:bookworm-slim
FROM ${BASE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --create-home --home-dir /srv/slipway slipway
WORKDIR /srv/slipway/app
COPY requirements.txt .
RUN python3 -m venv /srv/slipway/venv && /srv/slipway/venv/bin/pip install --no-cache-dir -r requirements.txt
COPY app app
COPY agent agent
COPY templates templates
COPY static static
COPY migrations migrations
COPY config.py wsgi.py gunicorn.conf.py ./
USER slipway
ENV SLIPWAY_ENV=production PATH=/srv/slipway/venv/bin:$PATH
EXPOSE 8000
# Web: gunicorn with threads (flask-sock WebSockets need them); gunicorn.conf.py puts the metrics in
# multiprocess mode, in $PROMETHEUS_MULTIPROC_DIR (default $SLIPWAY_DATA_DIR/prometheus), emptied at
# start: keep it on a volume of this container alone. Worker: `flask --app wsgi worker`.
CMD ["gunicorn", "-c", "gunicorn.conf.py", "--bind", "0.0.0.0:8000", "--workers", "2", "--threads", "16", "wsgi:app"]
