# The Slipway agent: one per Docker host, next to the Docker Engine it drives.
# Docker Hub is not assumed: build FROM any Debian bookworm base you trust, e.g. the one
# docker/images/build-workspace-image.sh makes with debootstrap:
#   docker build --build-arg BASE=slipway/debian-base:bookworm -f docker/agent.Dockerfile -t slipway/agent .
# Run it with the Docker socket and the workspace root mounted at the SAME path as on the host
# (bind sources are host paths), publishing on a private address only, e.g.:
#   docker run -d --name slipway-agent --restart unless-stopped --network host --cap-add NET_ADMIN \
#     -v /var/run/docker.sock:/var/run/docker.sock -v /srv/slipway/workspaces:/srv/slipway/workspaces \
#     -e AGENT_TOKEN=... -e AGENT_BIND=10.0.0.5 -e AGENT_HOST_IP=10.0.0.5 -e AGENT_ALLOWED_IPS=10.0.0.2 \
#     -e AGENT_EDGE_IPS=10.0.0.2 slipway/agent
# NET_ADMIN and iptables: the agent keeps the DOCKER-USER rules admitting only the edge to the published
# ports (the image's iptables must use the same backend, nft or legacy, as the host's Docker).
# Access to the Docker socket is root-equivalent on the host: the agent's token is as precious as root.
ARG BASE=debian:bookworm-slim
FROM ${BASE}
# Extra CA certificates (docker/extra-ca/*.crt, none by default): pip may pass a proxy with its own CA.
COPY docker/extra-ca/ /usr/local/share/ca-certificates/
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-venv ca-certificates iptables \
 && update-ca-certificates >/dev/null \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /srv/slipway-agent
COPY agent/requirements.txt agent/requirements.txt
RUN python3 -m venv /srv/slipway-agent/venv \
 && PIP_CERT=/etc/ssl/certs/ca-certificates.crt /srv/slipway-agent/venv/bin/pip install --no-cache-dir \
      --disable-pip-version-check -r agent/requirements.txt
COPY agent agent
ENV PATH=/srv/slipway-agent/venv/bin:$PATH AGENT_BIND=0.0.0.0 AGENT_PORT=9100 \
    WORKDIR_DEPLOY=/srv/slipway/workspaces
EXPOSE 9100
CMD ["python", "-m", "agent"]
