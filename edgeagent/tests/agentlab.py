"""A whole edge on loopback for the daemon's integration and fault tests.

`Edge` starts, all in a temporary directory and on free loopback ports:

- the API emulator (kubeemu) in a thread, with a kubeconfig for the agent;
- real HTTP backends on 127.0.0.2-127.0.0.5, all on one port (an EndpointSlice gives one
  port for all its addresses), each answering with its name and what it received;
- a real nginx, from a main config shaped like the nginx role's (include of
  `<agent dir>/current/edge.conf`, `current -> bootstrap` at first);
- `edgeagent run` as a subprocess with short timeouts, reloading nginx with
  `nginx -s reload`.

Tests drive the cluster through the official client (`edge.networking`, `edge.core`,
and the object builders below) and look at traffic through nginx (`edge.get`,
`edge.get_tls`).
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from http.server import ThreadingHTTPServer
from typing import Any, TypeVar

import kubernetes
import support_objects as objects
from edgeagent.apply import ApplySettings
from edgeagent.cli import self_signed
from kubeemu.testing import EmulatorThread
from prometheus_client.parser import text_string_to_metric_families
from support_http import Response, _EchoHandler, free_port, free_ports, request

from edgeagent import model, render

T = TypeVar("T")
VENV_BIN = pathlib.Path(sys.executable).parent
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
VIP = "198.51.100.100"
CLASS = "edge"
BACKEND_ADDRESSES = ("127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5")

MAIN_CONF = """\
# The nginx role's nginx.conf, with a test's paths and ports, and its logs in files.
{modules}worker_processes 1;
worker_shutdown_timeout 10s;
pid {root}/nginx.pid;
error_log {root}/error.log warn;

events {{
    worker_connections 512;
}}

include {agent_dir}/current/stream.con[f];

http {{
    default_type application/octet-stream;
    server_tokens off;
    access_log off;
    client_body_temp_path {root}/temp/body;
    proxy_temp_path {root}/temp/proxy;
    fastcgi_temp_path {root}/temp/fastcgi;
    uwsgi_temp_path {root}/temp/uwsgi;
    scgi_temp_path {root}/temp/scgi;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:SSL:1m;
    keepalive_timeout 65s;

    include {agent_dir}/current/edge.conf;
}}
"""

# What /etc/nginx/modules-enabled/ loads on an edge node in the dynamic mode.
LUA_MODULES = """\
load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
"""

# What it loads on every edge node: the stream module of TLS passthrough (an agent's
# stream.conf has stream servers only with --enable-ssl-passthrough).
STREAM_MODULE = "load_module /usr/lib/nginx/modules/ngx_stream_module.so;\n"

BOOTSTRAP = """\
server {{
    listen 127.0.0.1:{http} default_server;
    listen 127.0.0.1:{https} ssl default_server;
    ssl_certificate {certificate};
    ssl_certificate_key {key};
    location = /healthz {{ return 200 "ok\\n"; }}
    location / {{ return 404; }}
}}
"""


def in_network_namespace(script: str, *args: str, timeout: float = 60) -> Any:
    """Run a Python `script` in a network namespace of its own (a loopback and whatever
    it makes there, never the machine's) with the tests' import path; its standard
    output, read as JSON."""
    result = subprocess.run(
        ["unshare", "--net", "--", sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def eventually(
    check: Callable[[], T], timeout: float = 10.0, interval: float = 0.05, stable: int = 3
) -> T:
    """A truthy result of `check` that held `stable` times in a row, retried (through
    AssertionError too) until timeout. Several in a row, because for a few milliseconds
    after a reload the old nginx worker may still take a connection."""
    deadline = time.monotonic() + timeout
    streak = 0
    while True:
        try:
            result = check()
            if result:
                streak += 1
                if streak >= stable:
                    return result
            else:
                streak = 0
            failure: Exception = AssertionError(f"{check} stayed {result!r}")
        except (AssertionError, OSError, http.client.HTTPException) as error:
            failure, streak = error, 0
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {failure}") from failure
        time.sleep(interval)


def same_port_backends(names: list[str], hosts: tuple[str, ...]) -> list[ThreadingHTTPServer]:
    """Echo backends (support_http's) on one port, one loopback address each: an
    EndpointSlice gives one port for all of its addresses."""
    port = free_port(hosts[0])
    servers = []
    for name, host in zip(names, hosts, strict=True):
        server = ThreadingHTTPServer((host, port), _EchoHandler)
        server.daemon_threads = True
        server.backend_name = name
        # A short poll interval: shutdown() waits for it, four times per test edge.
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
    return servers


class Nginx:
    """A real nginx master on loopback ports, configured like an edge node."""

    def __init__(self, root: pathlib.Path, lua: bool = False) -> None:
        self.root = root
        self.lua = lua
        self.agent_dir = root / "edgeagent"
        self.main_conf = root / "nginx.conf"
        self.http_port, self.https_port, self.status_port = free_ports(3)
        self.certificate = root / "tls" / "default.crt"
        self.key = root / "tls" / "default.key"

    @property
    def reload_command(self) -> str:
        # SIGHUP to the master, as a systemd ExecReload should do: `nginx -s reload` would
        # parse the whole configuration once more only to find the pid file.
        return f"/bin/kill -s HUP {self.master_pid()}"

    def start(self) -> Nginx:
        (self.root / "temp").mkdir(parents=True)
        self.certificate.parent.mkdir()
        pair = self_signed("edge-default")
        self.certificate.write_bytes(pair.certificate_pem)
        self.key.write_bytes(pair.key_pem)
        self.key.chmod(0o600)
        bootstrap = self.agent_dir / "bootstrap"
        bootstrap.mkdir(parents=True)
        (bootstrap / "edge.conf").write_text(
            BOOTSTRAP.format(
                http=self.http_port,
                https=self.https_port,
                certificate=self.certificate,
                key=self.key,
            )
        )
        (self.agent_dir / "current").symlink_to("bootstrap")
        self.main_conf.write_text(
            MAIN_CONF.format(
                root=self.root,
                agent_dir=self.agent_dir,
                modules=STREAM_MODULE + (LUA_MODULES if self.lua else ""),
            )
        )
        subprocess.run([NGINX, "-c", str(self.main_conf)], check=True, timeout=30)
        return self

    def apply_settings(self, **overrides: Any) -> ApplySettings:
        """The agent's apply settings for this nginx."""
        return ApplySettings(
            **{
                "nginx_dir": str(self.agent_dir),
                "main_conf": str(self.main_conf),
                "nginx_binary": NGINX,
                "reload_command": tuple(self.reload_command.split()),
                "status_listen": f"127.0.0.1:{self.status_port}",
                "confirm_timeout": 60.0,
                **overrides,
            }
        )

    def master_pid(self) -> int:
        return int((self.root / "nginx.pid").read_text())

    def stop(self) -> None:
        try:
            os.kill(self.master_pid(), signal.SIGQUIT)
        except (OSError, ValueError):
            return
        deadline = time.monotonic() + 10
        while (self.root / "nginx.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.05)


def replace_with_garbage(path: pathlib.Path) -> None:
    """A new file, not new bytes in the old one: it may be a link to a live generation's."""
    path.unlink()
    path.write_bytes(b"not a certificate\n")


def render_generation(
    nginx: Nginx,
    address: str,
    hosts: int = 3,
    tls_pairs: dict[str, Any] | None = None,
    long_host: bool = False,
) -> render.Rendered:
    """What the agent would render for `hosts` hosts served by one endpoint at `address`;
    `tls_pairs` (Secret name -> CertPair) adds a TLS Secret per name, one host each;
    `long_host` makes the last host 200 characters long."""
    names = [f"h{n}.example.com" for n in range(hosts)]
    if long_host:
        names[-1] = ".".join(["a" * 60, "b" * 60, "c" * 60, "example.com"])
    tls = [
        {"hosts": [names[n % hosts]], "secretName": name} for n, name in enumerate(tls_pairs or {})
    ]
    objects = ingress("app", [rule(host, "app") for host in names], tls=tls)
    objects["metadata"]["namespace"] = "default"
    service = {
        "metadata": {"name": "app", "namespace": "default"},
        "spec": {"ports": [{"name": "http", "port": 80}]},
    }
    endpoints = endpoint_slice("app", 8080, [address], [])
    endpoints["metadata"]["namespace"] = "default"
    secrets = [
        {
            "metadata": {"name": name, "namespace": "default"},
            "type": "kubernetes.io/tls",
            "data": {
                "tls.crt": base64.b64encode(pair.certificate_pem).decode(),
                "tls.key": base64.b64encode(pair.key_pem).decode(),
            },
        }
        for name, pair in (tls_pairs or {}).items()
    ]
    built = model.build(
        model.Inputs(
            ingresses=[objects], services=[service], endpoint_slices=[endpoints], secrets=secrets
        ),
        model.Options(ingress_class=CLASS),
    )
    assert not built.problems, built.problems
    return render.render(built, agent_layout(nginx))


def agent_layout(nginx: Nginx) -> render.Layout:
    """The layout the agent of `nginx` renders with (static upstreams)."""
    return render.Layout(
        listen_http=f"127.0.0.1:{nginx.http_port}",
        listen_https=f"127.0.0.1:{nginx.https_port}",
        output_dir=f"{nginx.agent_dir}/gen-{render.GENERATION_PLACEHOLDER}",
        default_certificate=str(nginx.certificate),
        default_key=str(nginx.key),
        status_listen=f"127.0.0.1:{nginx.status_port}",
    )


GENERATION_LINE = re.compile(rb"# edgeagent generation ([0-9a-f]+);")


def assert_complete(agent_dir: pathlib.Path, main_conf: pathlib.Path) -> None:
    """`current` is a whole generation, and nginx accepts the live configuration."""
    target = agent_dir / os.readlink(agent_dir / "current")
    edge_conf = (target / "edge.conf").read_bytes()
    if target.name != "bootstrap":
        match = GENERATION_LINE.match(edge_conf)
        assert match and target.name == f"gen-{match[1].decode()}"
        assert edge_conf.rstrip().endswith(b"}")
        for path in re.findall(rb"ssl_certificate\s+(\S+);", edge_conf):
            assert pathlib.Path(path.decode()).read_bytes().startswith(b"-----BEGIN")
    result = subprocess.run(
        [NGINX, "-t", "-q", "-e", "stderr", "-c", str(main_conf)], capture_output=True, timeout=30
    )
    assert result.returncode == 0, result.stderr


class AgentProcess:
    """`edgeagent run` as a child process, with its log kept in a file."""

    def __init__(
        self,
        command: list[str],
        log_path: pathlib.Path,
        health_port: int,
        env: dict[str, str] | None = None,
    ) -> None:
        self.command = command
        self.log_path = log_path
        self.health_port = health_port
        self.env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> AgentProcess:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(self.command, stdout=log, stderr=log, env=self.env)
        log.close()
        return self

    def _get(self, path: str) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.health_port, timeout=2)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def healthz(self) -> tuple[int, dict[str, Any]]:
        status, body = self._get("/healthz")
        return status, json.loads(body)

    def readyz(self) -> tuple[int, dict[str, Any]]:
        status, body = self._get("/readyz")
        return status, json.loads(body)

    def wait_ready(self, timeout: float = 90.0) -> dict[str, Any]:
        """Until nginx serves what the agent applied from the cluster's state."""

        def ready() -> dict[str, Any] | None:
            assert self.process is not None and self.process.poll() is None, self.log_tail()
            status, body = self.readyz()
            return body if status == 200 and body["synced"] else None

        try:
            return eventually(ready, timeout)
        except AssertionError as error:
            # What the agent said of itself, and its log: a rare failure here (once in a
            # full suite on an idle machine, 2026-12-06) left nothing else to read.
            raise AssertionError(
                f"{error}; /readyz: {self.readyz()}; log: {self.log_tail()}"
            ) from error

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Samples by (name, sorted labels)."""
        status, body = self._get("/metrics")
        assert status == 200
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(body.decode())
            for sample in family.samples
        }

    def metric(self, name: str, **labels: str) -> float:
        return self.metrics().get((name, tuple(sorted(labels.items()))), 0.0)

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def log_records(self) -> list[dict[str, Any]]:
        records = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
        return records

    def kill(self, signum: int = signal.SIGKILL) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signum)
            self.process.wait(10)

    def stop(self) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        return self.process.returncode


class Edge:
    """The emulator, backends, nginx and the agent, started together and torn down together."""

    def __init__(
        self, root: pathlib.Path, env: dict[str, str] | None = None, **agent_options: Any
    ) -> None:
        self.root = root
        self.env = env
        self.api = EmulatorThread(bookmark_interval=1.0).start()
        self.kubeconfig = self.api.write_kubeconfig(root / "kubeconfig")
        client = self.api.api_client()
        self.networking = kubernetes.client.NetworkingV1Api(client)
        self.core = kubernetes.client.CoreV1Api(client)
        self.discovery = kubernetes.client.DiscoveryV1Api(client)
        names = [f"web{n}" for n in range(1, len(BACKEND_ADDRESSES) + 1)]
        self.backends = same_port_backends(names, BACKEND_ADDRESSES)
        self.backend_port = self.backends[0].server_address[1]
        self.dynamic = agent_options.get("upstreams") == "dynamic"
        self.nginx = Nginx(root / "nginx", lua=self.dynamic).start()
        self.agent_options = agent_options
        self.health_port = free_port()
        self.extra_nginx: list[Nginx] = []
        self.extra_agents: list[AgentProcess] = []
        self.agent = self.new_agent().start()

    def agent_command(self, nginx: Nginx, health_port: int, **overrides: Any) -> list[str]:
        options = {
            "kubeconfig": self.kubeconfig,
            "nginx-dir": nginx.agent_dir,
            "nginx-main-conf": nginx.main_conf,
            "nginx-binary": NGINX,
            "reload-command": nginx.reload_command,
            "listen-http": f"127.0.0.1:{nginx.http_port}",
            "listen-https": f"127.0.0.1:{nginx.https_port}",
            "status-listen": f"127.0.0.1:{nginx.status_port}",
            "health-listen": f"127.0.0.1:{health_port}",
            "default-certificate": nginx.certificate,
            "default-key": nginx.key,
            "ingress-class": CLASS,
            "publish-status-address": VIP,
            "sync-quiet-period": 0.05,
            "sync-max-delay": 0.5,
            "min-reload-interval": 0.1,
            "watch-timeout": 30,
            "watch-idle-timeout": 5,
            "request-timeout": 5,
            # The backends of this lab listen on loopback, which an edge refuses.
            "allow-loopback-backends": True,
            "confirm-timeout": 60,
            **self.agent_options,
            **overrides,
        }
        command = [str(VENV_BIN / "edgeagent"), "run"]
        for name, value in options.items():
            if value is True:
                command.append(f"--{name}")
            elif value is not None and value is not False:
                command += [f"--{name}", str(value)]
        return command

    def new_agent(self, **overrides: Any) -> AgentProcess:
        """The agent of this edge's nginx (again, after a kill)."""
        command = self.agent_command(self.nginx, self.health_port, **overrides)
        return AgentProcess(command, self.root / "agent.log", self.health_port, self.env)

    def another_edge_node(self, name: str) -> tuple[Nginx, AgentProcess]:
        """A second nginx and agent, watching the same API with the same settings."""
        nginx = Nginx(self.root / name, lua=self.dynamic).start()
        self.extra_nginx.append(nginx)
        health_port = free_port()
        command = self.agent_command(nginx, health_port)
        agent = AgentProcess(command, self.root / f"{name}.log", health_port, self.env)
        self.extra_agents.append(agent)
        return nginx, agent.start()

    def close(self) -> None:
        for agent in [self.agent, *self.extra_agents]:
            agent.stop()
        for nginx in [self.nginx, *self.extra_nginx]:
            nginx.stop()
        for backend in self.backends:
            backend.shutdown()
            backend.server_close()
        self.api.close()

    def __enter__(self) -> Edge:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # Traffic through nginx

    def get(self, host: str, target: str = "/") -> Response:
        return request(self.nginx.http_port, host, target)

    def get_tls(self, host: str, target: str = "/") -> Response:
        return request(self.nginx.https_port, host, target, tls=True)

    def backend_of(self, host: str, target: str = "/", tls: bool = False) -> str | int:
        """The name of the backend that answered, or the HTTP status if none did."""
        answer = self.get_tls(host, target) if tls else self.get(host, target)
        return answer.backend if answer.status == 200 and answer.backend else answer.status

    def settled(self) -> None:
        """Wait until the agent has finished reporting the generation `current` points at
        (traffic can switch a moment before the agent's confirmation and metrics)."""

        def reported() -> bool:
            live = os.readlink(self.nginx.agent_dir / "current").removeprefix("gen-")
            return self.agent.healthz()[1]["generation"] == live

        eventually(reported)

    # Objects, through the official client

    def apply_ingress(
        self,
        name: str,
        rules: list[dict],
        namespace: str = "default",
        tls: list[dict] | None = None,
        **spec: Any,
    ) -> Any:
        body = ingress(name, rules, tls=tls, **spec)
        return _create_or_replace(
            lambda: self.networking.create_namespaced_ingress(namespace, body),
            lambda: self.networking.replace_namespaced_ingress(name, namespace, body),
        )

    def apply_service(
        self,
        name: str,
        namespace: str = "default",
        ports: list[dict] | None = None,
        addresses: list[str] | None = None,
        not_ready: list[str] | None = None,
    ) -> None:
        """A Service and its one EndpointSlice (named after it) with these backends."""
        service = {
            "metadata": {"name": name},
            "spec": {"ports": ports or [{"name": "http", "port": 80, "targetPort": 8080}]},
        }
        _create_or_replace(
            lambda: self.core.create_namespaced_service(namespace, service),
            lambda: self.core.replace_namespaced_service(name, namespace, service),
        )
        slice_ = endpoint_slice(
            name,
            self.backend_port,
            addresses or [],
            not_ready or [],
            port_name=(ports or [{"name": "http"}])[0].get("name", ""),
        )
        _create_or_replace(
            lambda: self.discovery.create_namespaced_endpoint_slice(namespace, slice_),
            lambda: self.discovery.replace_namespaced_endpoint_slice(name, namespace, slice_),
        )

    def apply_tls_secret(
        self,
        name: str,
        hosts: tuple[str, ...],
        namespace: str = "default",
        data: dict[str, str] | None = None,
    ) -> bytes:
        """A kubernetes.io/tls Secret for `hosts`; returns the certificate PEM."""
        pair = self_signed(hosts[0], hosts)
        secret = {
            "metadata": {"name": name},
            "type": "kubernetes.io/tls",
            "stringData": data
            or {"tls.crt": pair.certificate_pem.decode(), "tls.key": pair.key_pem.decode()},
        }
        _create_or_replace(
            lambda: self.core.create_namespaced_secret(namespace, secret),
            lambda: self.core.replace_namespaced_secret(name, namespace, secret),
        )
        return pair.certificate_pem


def _create_or_replace(create: Callable[[], T], replace: Callable[[], T]) -> T:
    try:
        return create()
    except kubernetes.client.ApiException as error:
        if error.status != 409:
            raise
        return replace()


def rule(
    host: str | None, service: str, path: str = "/", path_type: str = "Prefix", port: int | str = 80
) -> dict[str, Any]:
    return objects.rule(host or None, objects.path(path, service, port, path_type))


def _without_namespace(obj: dict[str, Any]) -> dict[str, Any]:
    """An object to create through the API, which names its namespace in the request."""
    del obj["metadata"]["namespace"]
    return obj


def ingress(
    name: str,
    rules: list[dict],
    tls: list[dict] | None = None,
    ingress_class: str | None = CLASS,
    annotations: dict[str, str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    body = objects.ingress(
        name, *rules, ingress_class=ingress_class, annotations=annotations, tls=tls
    )
    body["spec"].update(spec)
    return _without_namespace(body)


def endpoint_slice(
    service: str, port: int, ready: list[str], not_ready: list[str], port_name: str = "http"
) -> dict[str, Any]:
    endpoints = [(a, True) for a in ready] + [(a, False) for a in not_ready]
    return _without_namespace(
        objects.endpoint_slice(service, endpoints, port, port_name, name=service)
    )
