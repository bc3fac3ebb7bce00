"""JupyterHub for the side-by-side bench: DockerSpawner, configurable-http-proxy, everything on loopback.

Read by `jupyterhub -f`; bench/peers/hub.py passes the run's values in PEERS_* variables.
- The hub and the proxy (public and API ports) listen on 127.0.0.1 only.
- Containers stay on Docker's default bridge with their port published on 127.0.0.1 (use_internal_ip
  off), so the proxy reaches them over loopback, as Slipway's edge reaches its workspaces; the hub's API
  reaches the containers through a unix socket in a bind-mounted folder (hub_forward.py), never a
  bridge address.
- DummyAuthenticator (no login is measured); one service token with the admin role drives spawns and
  stops through the REST API and opens the servers (`access:servers`).
- The same CPU and memory limits as Slipway's real-image plan; containers kept on stop (as Slipway's
  stop keeps them) and removed by the bench afterwards.
"""

import os

c = get_config()  # noqa: F821 - provided by JupyterHub when it loads this file

env = os.environ
hub_port = int(env["PEERS_HUB_PORT"])
c.JupyterHub.bind_url = f"http://127.0.0.1:{env['PEERS_PROXY_PORT']}"
c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{hub_port}"
c.JupyterHub.authenticator_class = "dummy"
c.JupyterHub.db_url = f"sqlite:///{env['PEERS_RUN_DIR']}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = f"{env['PEERS_RUN_DIR']}/jupyterhub_cookie_secret"
c.JupyterHub.pid_file = f"{env['PEERS_RUN_DIR']}/jupyterhub.pid"
c.JupyterHub.services = [{"name": "bench", "api_token": env["PEERS_TOKEN"]}]
c.JupyterHub.load_roles = [{"name": "admin", "services": ["bench"]}]
c.JupyterHub.cleanup_servers = True
c.JupyterHub.active_server_limit = 0
c.JupyterHub.concurrent_spawn_limit = 0

c.ConfigurableHTTPProxy.command = [env["PEERS_CHP"]]
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{env['PEERS_PROXY_API_PORT']}"
c.ConfigurableHTTPProxy.auth_token = env["PEERS_PROXY_TOKEN"]
c.ConfigurableHTTPProxy.pid_file = f"{env['PEERS_RUN_DIR']}/jupyterhub-proxy.pid"

c.JupyterHub.spawner_class = "docker"
c.DockerSpawner.image = env["PEERS_IMAGE"]
c.DockerSpawner.cmd = ["jupyterhub-singleuser"]
c.DockerSpawner.use_internal_ip = False
c.DockerSpawner.host_ip = "127.0.0.1"
c.DockerSpawner.name_template = f"{env['PEERS_NAME_PREFIX']}-{{username}}"
c.DockerSpawner.remove = False
c.DockerSpawner.volumes = {env["PEERS_SOCKET_DIR"]: {"bind": "/run/slipway-hub", "mode": "ro"}}
c.DockerSpawner.extra_create_kwargs = {"labels": {"slipway.bench.peers": env["PEERS_NAME_PREFIX"]}}
c.DockerSpawner.cpu_limit = float(env.get("PEERS_CPU", "2"))
c.DockerSpawner.mem_limit = env.get("PEERS_MEMORY", "1G")
c.Spawner.default_url = "/lab"
c.Spawner.start_timeout = 300  # generous: ten at once on a loaded 2-CPU machine took 100 s
c.Spawner.http_timeout = 300
