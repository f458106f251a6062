"""The lab's backend app: plays one of the 2017 setup's apps (web1, web2).

Every request gets `<app> <version> <hostname>` as text, so a client sees which app, which
version and which container (or, on a cluster node, which pod: `--name`) answered.
`GET /headers` answers the request as JSON instead (method, path, client address, headers):
the checks use it to see what nginx forwarded (Host, X-Forwarded-For, X-Real-IP, ...).
Two more paths serve the annotated Ingresses of lab/manifests/annotated.yaml:
`GET /auth` is an external auth service (`auth-url`): 200 with `X-Lab-User` when the request
carries `Authorization: Bearer <AUTH_TOKEN>`, else 401; `GET /slow` answers after
SLOW_SECONDS, longer than the `proxy-read-timeout` that Ingress sets.
Standard library only: it runs on the bare node image.
"""

import argparse
import json
import socket
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HEADERS_PATH, AUTH_PATH, SLOW_PATH = "/headers", "/auth", "/slow"
AUTH_TOKEN, AUTH_USER = "lab-token", "lab"
SLOW_SECONDS = 3


class BackendHandler(BaseHTTPRequestHandler):
    # HTTP/1.1 keeps nginx's upstream connections and a drill's keep-alive clients open.
    protocol_version = "HTTP/1.1"
    # A buffered wfile: the headers and the body leave in one send when the request is done
    # (handle_one_request flushes). Unbuffered (the default), end_headers() sent the headers
    # and write() the body as a second small segment, which Nagle held until nginx ACKed the
    # first; on nginx's keep-alive upstream connections that ACK is a delayed one, so 40 ms
    # went into most responses (docs/failover.md, "The lab's own latency").
    wbufsize = 1 << 16
    server_version = "lab-backend"
    identity = ""  # "<app> <version> <hostname>", set by main()

    def log_message(self, format: str, *args: object) -> None:
        """No access log: a drill sends 50 requests a second; nginx logs them on the edge."""

    def answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)  # drain a request body so the connection stays usable
        path = self.path.split("?", 1)[0]
        if path == AUTH_PATH:
            self.answer_auth()
            return
        if path == SLOW_PATH:
            time.sleep(SLOW_SECONDS)
        if path == HEADERS_PATH:
            app, version, hostname = self.identity.split(" ")
            body = json.dumps(
                {
                    "app": app,
                    "version": version,
                    "hostname": hostname,
                    "method": self.command,
                    "path": self.path,
                    "client": self.client_address[0],
                    "headers": dict(self.headers.items()),
                },
                indent=2,
            )
            content_type = "application/json"
        else:
            body = self.identity
            content_type = "text/plain; charset=utf-8"
        payload = (body + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("X-Served-By", self.identity)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def answer_auth(self) -> None:
        allowed = self.headers.get("Authorization") == f"Bearer {AUTH_TOKEN}"
        self.send_response(200 if allowed else 401)
        if allowed:
            self.send_header("X-Lab-User", AUTH_USER)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--app", required=True, help="app name, e.g. web1")
    parser.add_argument("--version", default="v1", help="app version shown in every answer")
    parser.add_argument("--port", type=int, default=80)
    # A cluster node (lab/cluster_node.py) runs several pods, each on its own pod IP.
    parser.add_argument("--address", default="0.0.0.0", help="listen address (default: all)")
    parser.add_argument("--name", default=socket.gethostname(), help="default: the hostname")
    args = parser.parse_args()
    BackendHandler.identity = f"{args.app} {args.version} {args.name}"
    server = ThreadingHTTPServer((args.address, args.port), BackendHandler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
