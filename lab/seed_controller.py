"""The stand-in in-cluster ingress controller of the seed topology (docs/seed-topology.md): what
ingress-nginx's DaemonSet did on each cluster node of the 2017 setup, small enough for the lab.

On port 80 (its hostPort) it routes by Host: each `--route HOST=ADDRESS:PORT` proxies to that
backend (lab/backend.py: web1, web2), any other Host gets 404. On port 10254 `/healthz`
answers 200 while it serves, as ingress-nginx's status port does: the directors' HTTP_GET
checks ask it, and `/metrics` has ingress-nginx's request counters,
`nginx_ingress_controller_requests` and `nginx_ingress_controller_request_duration_seconds`
(its default buckets), with the labels the edge's agent gives its own (edgeagent's
request_counts.py): a cutover (playbooks/cutover.yml) compares the two tiers alike. A routed
Host is its own Ingress and Service in namespace "default"; another Host's 404 is not
counted, as neither ingress-nginx nor the edge counts a host no Ingress defines. Standard
library only: it runs on the bare cluster node image.

    python3 seed_controller.py --route web1=198.19.0.21:80 --route web2=198.19.0.22:80
"""

import argparse
import http.client
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

HTTP_PORT, HEALTH_PORT = 80, 10254
HEALTH_PATH = "/healthz"
BACKEND_TIMEOUT_SECONDS = 5
METRICS_PATH = "/metrics"
REQUESTS = "nginx_ingress_controller_requests"
DURATION = "nginx_ingress_controller_request_duration_seconds"
LABELS = ("status", "method", "host", "namespace", "ingress", "service")
# ingress-nginx's --time-buckets default (Prometheus' DefBuckets).
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Counters:
    """Requests and their durations by label set; one lock, the lab's load is small."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        # labels -> [count, duration sum, count per bucket (not cumulative), +Inf last]
        self.series: dict[tuple[str, ...], list] = {}

    def count(self, labels: tuple[str, ...], seconds: float) -> None:
        bucket = next((i for i, bound in enumerate(BUCKETS) if seconds <= bound), len(BUCKETS))
        with self.lock:
            entry = self.series.setdefault(labels, [0, 0.0, [0] * (len(BUCKETS) + 1)])
            entry[0] += 1
            entry[1] += seconds
            entry[2][bucket] += 1

    def exposition(self) -> str:
        with self.lock:
            series = {labels: (n, s, list(b)) for labels, (n, s, b) in self.series.items()}
        lines = [
            f"# HELP {REQUESTS} The total number of client requests",
            f"# TYPE {REQUESTS} counter",
        ]
        lines += [f"{REQUESTS}{{{_labels(k)}}} {n}" for k, (n, _, _) in sorted(series.items())]
        lines += [
            f"# HELP {DURATION} The request processing time in seconds",
            f"# TYPE {DURATION} histogram",
        ]
        for labels, (count, total, buckets) in sorted(series.items()):
            cumulative = 0
            for bound, added in zip((*BUCKETS, "+Inf"), buckets, strict=True):
                cumulative += added
                le = bound if bound == "+Inf" else format(bound, "g")  # "1", as ingress-nginx
                lines.append(f'{DURATION}_bucket{{{_labels(labels)},le="{le}"}} {cumulative}')
            lines.append(f"{DURATION}_sum{{{_labels(labels)}}} {total!r}")
            lines.append(f"{DURATION}_count{{{_labels(labels)}}} {count}")
        return "\n".join(lines) + "\n"


def _labels(values: tuple[str, ...]) -> str:
    def escaped(value: str) -> str:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

    pairs = zip(LABELS, values, strict=True)
    return ",".join(f'{name}="{escaped(value)}"' for name, value in pairs)


COUNTERS = Counters()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body in one send, as lab/backend.py's (two small writes meet Nagle and a
    # delayed ACK: 40 ms; docs/failover.md, "The lab's own latency").
    wbufsize = 1 << 16
    # Host -> backend (address, port): set once, before the server starts.
    routes: ClassVar[dict[str, tuple[str, int]]] = {}

    def answer(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        """Quiet: the lab's checks count the answers, not the log."""


class ControllerHandler(Handler):
    def do_GET(self):
        started = time.monotonic()
        host = (self.headers.get("Host") or "").split(":")[0]
        status = self.proxy(host)
        # As ingress-nginx (--metrics-per-undefined-host=false): a Host no route defines
        # is not counted.
        if host in self.routes:
            labels = (str(status), self.command, host, "default", host, host)
            COUNTERS.count(labels, time.monotonic() - started)

    def proxy(self, host: str) -> int:
        """Answer the request; its status."""
        backend = self.routes.get(host)
        if backend is None:
            self.answer(404, f"404 no route for host {host or '(none)'}\n".encode())
            return 404
        connection = http.client.HTTPConnection(*backend, timeout=BACKEND_TIMEOUT_SECONDS)
        try:
            connection.request("GET", self.path, headers={"Host": host})
            reply = connection.getresponse()
            body = reply.read()
        except OSError as error:
            self.answer(502, f"502 backend {backend[0]}:{backend[1]}: {error}\n".encode())
            return 502
        finally:
            connection.close()
        self.answer(reply.status, body, reply.getheader("Content-Type", "text/plain"))
        return reply.status


class HealthHandler(Handler):
    def do_GET(self):
        if self.path == HEALTH_PATH:
            self.answer(200, b"ok\n")
        elif self.path == METRICS_PATH:
            self.answer(200, COUNTERS.exposition().encode(), "text/plain; version=0.0.4")
        else:
            self.answer(404, b"404\n")


def parse_route(text: str) -> tuple[str, tuple[str, int]]:
    host, _, target = text.partition("=")
    address, _, port = target.rpartition(":")
    if not host or not address or not port.isdigit():
        raise argparse.ArgumentTypeError(f"--route wants HOST=ADDRESS:PORT, got {text!r}")
    return host, (address, int(port))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--route", type=parse_route, action="append", default=[])
    parser.add_argument("--address", default="0.0.0.0")
    parser.add_argument("--http-port", type=int, default=HTTP_PORT)
    parser.add_argument("--health-port", type=int, default=HEALTH_PORT)
    arguments = parser.parse_args()
    ControllerHandler.routes = dict(arguments.route)
    health = ThreadingHTTPServer((arguments.address, arguments.health_port), HealthHandler)
    threading.Thread(target=health.serve_forever, daemon=True).start()
    ThreadingHTTPServer((arguments.address, arguments.http_port), ControllerHandler).serve_forever()


if __name__ == "__main__":
    main()
