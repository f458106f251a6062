"""The edge side by side with HAProxy and a hand-written minimal nginx, in one run:
`edge_vs_haproxy_rps_ratio`, `edge_vs_minimal_nginx_rps_ratio`,
`edge_vs_haproxy_tls_handshake_ratio`, `edge_p99_latency_ms_at_fixed_rate` and
`haproxy_p99_latency_ms_at_fixed_rate`.

The three proxies serve the same 1k hosts, route by the Host header to the same Services
(5 endpoints each, on the bench's backend nginx, with keep-alive connections to it) and
hold the same certificates: one per host (each Ingress has a `tls` section and a Secret of
its own, cluster.py) and the edge's default one. The load tools connect to 127.0.0.1 and
so send no host name in SNI: every side answers the handshake with its default
certificate, then routes the request by its Host header. Each proxy has one worker
(nginx's `worker_processes 1` of the edge's main config, HAProxy's `nbthread 1`), so that
on this 2-core machine the load tool and the backend have the other core alike.

- HAProxy (Debian's `haproxy`): one frontend on both ports, the backend picked from a map
  file of Host -> backend, as HAProxy-based ingress controllers do; `haproxy -c` checks
  the configuration before it starts.
- The minimal nginx: what someone writes by hand for the same hosts, one `server` per
  host with one `upstream` each, no maps, no logging, no Lua. Against it,
  `edge_vs_minimal_nginx_rps_ratio` shows what the rendered configuration costs.

Measured per side, the sides alternating `ROUNDS` times so that a change of the shared
machine's load hits all three alike: wrk requests/s over HTTP and over HTTPS with
keep-alive (throughput.py's wrk run); h2load at a fixed rate (`--rps`, 1,000 requests/s in
all) over HTTP and HTTPS with keep-alive, its per-request log giving the percentiles; and
new TLS handshakes per second: wrk over HTTPS with `Connection: close`, so that every
request is a new connection and a full handshake (wrk keeps no TLS session to resume).
"""

from __future__ import annotations

import os
import pathlib
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

import change
import cluster
import standalone_nginx
import throughput
from edge import BenchEdge
from suite import agentlab, support_http

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
ROUNDS = 2
# 10 keep-alive connections of 100 requests/s each: about a tenth of what each side serves
# at full speed here, so the latency is that of a proxy with headroom, not of a queue.
FIXED_RATE_CLIENTS = 10
FIXED_RATE_PER_CLIENT = 100
FIXED_RATE_SECONDS = 5
SIDES = ("edge", "haproxy", "minimal_nginx")

HAPROXY_CONFIG = """\
global
    nbthread 1
    maxconn 4096
    pidfile {root}/haproxy.pid
    ssl-default-bind-options ssl-min-ver TLSv1.2

defaults
    mode http
    timeout connect 5s
    timeout client 65s
    timeout server 60s

frontend edge
    bind 127.0.0.1:{http_port}
    bind 127.0.0.1:{https_port} ssl crt {pem} crt {certificates}
    use_backend %[req.hdr(host),lower,word(1,:),map({host_map})]
    default_backend not_found

backend not_found
    http-request return status 404
{backends}"""

MINIMAL_NGINX_HTTP = """\
    server_names_hash_max_size 4096;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:SSL:1m;
    ssl_certificate {certificate};
    ssl_certificate_key {key};
    proxy_http_version 1.1;
    proxy_set_header Connection "";

    server {{
        listen 127.0.0.1:{http_port} default_server;
        listen 127.0.0.1:{https_port} ssl default_server;
        return 404;
    }}
{servers}"""


def _backend_name(app: cluster.App) -> str:
    return f"{app.namespace}_{app.name}"


def _servers(backend_port: int) -> list[str]:
    return [
        f"{cluster.pod_address(n)}:{backend_port}" for n in range(cluster.ENDPOINTS_PER_SERVICE)
    ]


def haproxy_config(
    apps: Sequence[cluster.App],
    backend_port: int,
    root: pathlib.Path,
    ports: tuple[int, int],
    pem: pathlib.Path,
) -> tuple[str, str]:
    """HAProxy's configuration and its Host map file (to be written to root/hosts.map);
    `pem` is the default certificate and key, root/certificates/ holds one PEM per host
    (HAProxy picks by SNI among them)."""
    backends = []
    for app in apps:
        lines = [f"backend {_backend_name(app)}", "    balance roundrobin"]
        lines += [f"    server pod{n} {s}" for n, s in enumerate(_servers(backend_port))]
        backends.append("\n" + "\n".join(lines) + "\n")
    config = HAPROXY_CONFIG.format(
        root=root,
        http_port=ports[0],
        https_port=ports[1],
        pem=pem,
        certificates=root / "certificates",
        host_map=root / "hosts.map",
        backends="".join(backends),
    )
    host_map = "".join(f"{app.host} {_backend_name(app)}\n" for app in apps)
    return config, host_map


def minimal_nginx_config(
    apps: Sequence[cluster.App],
    backend_port: int,
    root: pathlib.Path,
    ports: tuple[int, int],
    certificate: pathlib.Path,
    key: pathlib.Path,
) -> str:
    """The minimal nginx's configuration; `certificate` and `key` are the default ones,
    root/certificates/HOST.crt and HOST.key each host's."""
    servers = []
    for app in apps:
        members = "".join(f"        server {s};\n" for s in _servers(backend_port))
        servers.append(
            f"\n    upstream {_backend_name(app)} {{\n{members}        keepalive 16;\n    }}\n"
            f"    server {{\n"
            f"        listen 127.0.0.1:{ports[0]};\n"
            f"        listen 127.0.0.1:{ports[1]} ssl;\n"
            f"        server_name {app.host};\n"
            f"        ssl_certificate {root}/certificates/{app.host}.crt;\n"
            f"        ssl_certificate_key {root}/certificates/{app.host}.key;\n"
            f"        location / {{ proxy_pass http://{_backend_name(app)}; }}\n"
            f"    }}\n"
        )
    http = MINIMAL_NGINX_HTTP.format(
        http_port=ports[0],
        https_port=ports[1],
        certificate=certificate,
        key=key,
        servers="".join(servers),
    )
    return standalone_nginx.main_config(root, worker_connections=512, http=http)


def check_haproxy(config: pathlib.Path) -> None:
    """`haproxy -c`: a clear error with HAProxy's own message when the file is refused."""
    checked = subprocess.run(
        [HAPROXY, "-c", "-f", str(config)], capture_output=True, text=True, timeout=60
    )
    if checked.returncode != 0:
        raise ValueError(f"haproxy -c refused {config}:\n{checked.stdout}{checked.stderr}")


class Daemon:
    """A proxy started with its pid file in `root`; stopped gracefully, then waited for."""

    def __init__(self, root: pathlib.Path, pid_name: str, stop_signal: int) -> None:
        self.root = root
        self.pid_file = root / pid_name
        self.stop_signal = stop_signal
        self.http_port, self.https_port = support_http.free_ports(2)

    def stop(self) -> None:
        try:
            pid = int(self.pid_file.read_text())
            os.kill(pid, self.stop_signal)
        except (OSError, ValueError):
            return
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and pathlib.Path(f"/proc/{pid}").exists():
            time.sleep(0.05)


def start_haproxy(root: pathlib.Path, edge: BenchEdge) -> Daemon:
    daemon = Daemon(root, "haproxy.pid", signal.SIGUSR1)  # SIGUSR1: HAProxy's soft stop
    root.mkdir(parents=True)
    pem = root / "default.pem"
    pem.write_bytes(edge.nginx.certificate.read_bytes() + edge.nginx.key.read_bytes())
    (root / "certificates").mkdir()
    for app, pair in edge.certificates.items():
        (root / "certificates" / f"{app.host}.pem").write_bytes(pair.certificate_pem + pair.key_pem)
    config, host_map = haproxy_config(
        edge.apps, edge.backend.port, root, (daemon.http_port, daemon.https_port), pem
    )
    (root / "hosts.map").write_text(host_map)
    config_path = root / "haproxy.cfg"
    config_path.write_text(config)
    check_haproxy(config_path)
    subprocess.run([HAPROXY, "-D", "-f", str(config_path)], check=True, timeout=60)
    return daemon


def start_minimal_nginx(root: pathlib.Path, edge: BenchEdge) -> Daemon:
    daemon = Daemon(root, "nginx.pid", signal.SIGQUIT)
    (root / "temp").mkdir(parents=True)
    (root / "certificates").mkdir()
    for app, pair in edge.certificates.items():
        (root / "certificates" / f"{app.host}.crt").write_bytes(pair.certificate_pem)
        (root / "certificates" / f"{app.host}.key").write_bytes(pair.key_pem)
    config = root / "nginx.conf"
    config.write_text(
        minimal_nginx_config(
            edge.apps,
            edge.backend.port,
            root,
            (daemon.http_port, daemon.https_port),
            edge.nginx.certificate,
            edge.nginx.key,
        )
    )
    subprocess.run([agentlab.NGINX, "-c", str(config)], check=True, timeout=60)
    return daemon


def h2load_latencies_ms(log: str) -> list[float]:
    """Milliseconds per request from h2load's --log-file (start in µs since the epoch,
    HTTP status, µs until the end of the response; tab-separated); every status a 2xx."""
    latencies = []
    for number, line in enumerate(log.splitlines(), 1):
        fields = line.split("\t")
        if len(fields) < 3 or not fields[1].isdigit() or not fields[2].isdigit():
            raise ValueError(f"h2load log line {number} is not start<TAB>status<TAB>µs: {line!r}")
        if not 200 <= int(fields[1]) < 300:
            raise ValueError(f"h2load log line {number}: status {fields[1]}")
        latencies.append(int(fields[2]) / 1000)
    if not latencies:
        raise ValueError("h2load logged no request")
    return latencies


def fixed_rate(url: str, host: str) -> dict[str, Any]:
    """Latency percentiles of h2load at FIXED_RATE_CLIENTS times FIXED_RATE_PER_CLIENT
    requests/s over HTTP/1.1 keep-alive connections."""
    binary = shutil.which("h2load")
    assert binary, "h2load is missing: run `make setup` (lab/host-packages.sh installs it)"
    with tempfile.NamedTemporaryFile("r", suffix=".h2load.log") as log:
        command = [
            binary,
            "--h1",
            f"--clients={FIXED_RATE_CLIENTS}",
            f"--rps={FIXED_RATE_PER_CLIENT}",
            f"--duration={FIXED_RATE_SECONDS}",
            f"--header=:authority: {host}",  # h2load turns it into Host
            f"--log-file={log.name}",
            url,
        ]
        subprocess.run(command, capture_output=True, check=True, timeout=FIXED_RATE_SECONDS + 60)
        latencies = h2load_latencies_ms(log.read())
    return {
        "p50_ms": round(change.percentile(latencies, 0.50), 2),
        "p99_ms": round(change.percentile(latencies, 0.99), 2),
        "requests": len(latencies),
        "requests_per_second": round(len(latencies) / FIXED_RATE_SECONDS),
    }


def _measurements(host: str) -> dict[str, Callable[[Daemon | BenchEdge], Any]]:
    def ports(side: Daemon | BenchEdge) -> tuple[int, int]:
        if isinstance(side, BenchEdge):
            return side.nginx.http_port, side.nginx.https_port
        return side.http_port, side.https_port

    def http(side: Daemon | BenchEdge) -> str:
        return f"http://127.0.0.1:{ports(side)[0]}/"

    def https(side: Daemon | BenchEdge) -> str:
        return f"https://127.0.0.1:{ports(side)[1]}/"

    return {
        "http_rps": lambda side: throughput.wrk(http(side), host),
        "https_rps": lambda side: throughput.wrk(https(side), host),
        "tls_handshakes_per_second": lambda side: throughput.wrk(
            https(side), host, ("Connection: close",)
        ),
        "http_fixed_rate": lambda side: fixed_rate(http(side), host),
        "https_fixed_rate": lambda side: fixed_rate(https(side), host),
    }


def _summary(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Means over the rounds; the fixed-rate percentiles as the worst round's."""
    summary: dict[str, Any] = {"rounds": rounds}
    for name in ("http_rps", "https_rps", "tls_handshakes_per_second"):
        summary[name] = round(statistics.fmean(r[name] for r in rounds))
    for name in ("http_fixed_rate", "https_fixed_rate"):
        for percentile in ("p50_ms", "p99_ms"):
            summary[f"{name}_{percentile}"] = max(r[name][percentile] for r in rounds)
    return summary


def side_by_side(edge: BenchEdge, scratch: pathlib.Path) -> dict[str, Any]:
    """Every measurement on the three sides, alternating; the edge's agent has synced."""
    host = edge.apps[-1].host
    haproxy = start_haproxy(scratch / "haproxy", edge)
    minimal = start_minimal_nginx(scratch / "minimal-nginx", edge)
    try:
        sides: dict[str, Daemon | BenchEdge] = {
            "edge": edge,
            "haproxy": haproxy,
            "minimal_nginx": minimal,
        }
        measurements = _measurements(host)
        rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in SIDES}
        for _ in range(ROUNDS):
            for name in SIDES:
                rounds[name].append({})
            for measurement, measure in measurements.items():
                for name, side in sides.items():
                    rounds[name][-1][measurement] = measure(side)
    finally:
        haproxy.stop()
        minimal.stop()
    result = {name: _summary(rounds[name]) for name in SIDES}
    edge_side, peer, minimal_side = result["edge"], result["haproxy"], result["minimal_nginx"]

    def ratio(side: dict[str, Any], name: str) -> float:
        return round(edge_side[name] / side[name], 3)

    result["ratios"] = {
        f"{name}_vs_{other}": ratio(side, name)
        for other, side in (("haproxy", peer), ("minimal_nginx", minimal_side))
        for name in ("http_rps", "https_rps", "tls_handshakes_per_second")
    }
    result["tool"] = (
        f"wrk -t{throughput.THREADS} -c{throughput.CONNECTIONS} -d{throughput.SECONDS}s; "
        f"h2load --h1 --clients={FIXED_RATE_CLIENTS} --rps={FIXED_RATE_PER_CLIENT} "
        f"--duration={FIXED_RATE_SECONDS}; {ROUNDS} rounds, sides alternating"
    )
    return result


def figures(result: dict[str, Any]) -> dict[str, float]:
    """The keys of `make bench` from side_by_side's result: each throughput ratio is the
    lower of HTTP's and HTTPS's, each p99 the higher, so a goal met is met for both."""
    ratios = result["ratios"]
    return {
        "edge_vs_haproxy_rps_ratio": min(
            ratios["http_rps_vs_haproxy"], ratios["https_rps_vs_haproxy"]
        ),
        "edge_vs_minimal_nginx_rps_ratio": min(
            ratios["http_rps_vs_minimal_nginx"], ratios["https_rps_vs_minimal_nginx"]
        ),
        "edge_vs_haproxy_tls_handshake_ratio": ratios["tls_handshakes_per_second_vs_haproxy"],
        **{
            f"{side}_p99_latency_ms_at_fixed_rate": max(
                result[side]["http_fixed_rate_p99_ms"], result[side]["https_fixed_rate_p99_ms"]
            )
            for side in ("edge", "haproxy")
        },
    }
