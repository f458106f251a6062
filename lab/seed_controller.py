"""The stand-in in-cluster ingress controller of the seed topology (docs/seed-topology.md): what
ingress-nginx's DaemonSet did on each cluster node of the 2017 setup, small enough for the lab.

On port 80 (its hostPort) it routes by Host: each `--route HOST=ADDRESS:PORT` proxies to that
backend (lab/backend.py: web1, web2), any other Host gets 404. On port 10254 `/healthz`
answers 200 while it serves, as ingress-nginx's status port does: the directors' HTTP_GET
checks ask it. Standard library only: it runs on the bare cluster node image.

    python3 seed_controller.py --route web1=198.19.0.21:80 --route web2=198.19.0.22:80
"""

import argparse
import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

HTTP_PORT, HEALTH_PORT = 80, 10254
HEALTH_PATH = "/healthz"
BACKEND_TIMEOUT_SECONDS = 5


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
        host = (self.headers.get("Host") or "").split(":")[0]
        backend = self.routes.get(host)
        if backend is None:
            self.answer(404, f"404 no route for host {host or '(none)'}\n".encode())
            return
        connection = http.client.HTTPConnection(*backend, timeout=BACKEND_TIMEOUT_SECONDS)
        try:
            connection.request("GET", self.path, headers={"Host": host})
            reply = connection.getresponse()
            body = reply.read()
        except OSError as error:
            self.answer(502, f"502 backend {backend[0]}:{backend[1]}: {error}\n".encode())
            return
        finally:
            connection.close()
        self.answer(reply.status, body, reply.getheader("Content-Type", "text/plain"))


class HealthHandler(Handler):
    def do_GET(self):
        if self.path == HEALTH_PATH:
            self.answer(200, b"ok\n")
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
