"""Real HTTP on loopback for tests: echo backends, and a client that sets Host and SNI.

An echo backend is a threaded `http.server` on its own loopback address (127.0.0.0/8 is
all loopback on Linux) that answers every method with JSON: its name, and the method,
target, HTTP version, headers and body it received. Tests assert on what the backend saw.
"""

import contextlib
import http.client
import json
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from edgeagent.cli import self_signed


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """`count` distinct free ports: every probe stays bound until all are chosen, so the
    kernel cannot hand the same port out twice (two listens on one port fail `nginx -t`)."""
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind((host, 0))
        return [probe.getsockname()[1] for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def free_port(host: str = "127.0.0.1") -> int:
    return free_ports(1, host)[0]


class _EchoHandler(BaseHTTPRequestHandler):
    # HTTP/1.1 so nginx's upstream keep-alive is exercised, as against a real backend.
    protocol_version = "HTTP/1.1"

    def _echo(self) -> None:
        if self.headers.get("Upgrade", "").lower() == "websocket":
            self._tunnel()
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        # Asked for: an answer this many seconds late (the proxy's timeouts).
        time.sleep(float(self.headers.get("X-Echo-Delay") or 0))
        seen = {
            "backend": self.server.backend_name,
            "method": self.command,
            "target": self.path,
            "version": self.request_version,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body.decode("latin-1"),
        }
        # Backends.start's servers keep a record; those made elsewhere with this handler
        # (agentlab, an IPv6 one) need none.
        record = getattr(self.server, "seen", None)
        if record is not None:
            record.append(seen)
        payload = json.dumps(seen).encode()
        # Asked for: an answer of this status (error pages replacing a backend's answer).
        self.send_response(int(self.headers.get("X-Echo-Status") or 200))
        # Asked for: a response header of that many bytes (proxy buffer sizes).
        padding = int(self.headers.get("X-Echo-Padding") or 0)
        if padding:
            self.send_header("X-Padding", "x" * padding)
        # Asked for, as the Gateway API conformance suite's echo server does: response
        # headers "Name:value" (comma-separated), for the response header filters.
        for pair in filter(None, (self.headers.get("X-Echo-Set-Header") or "").split(",")):
            name, _, value = pair.partition(":")
            self.send_header(name.strip(), value.strip())
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        # An HTTP/1.0 request without keep-alive: this server closes the connection after
        # the answer, and says so as HTTP/1.1 requires. Without it nginx kept the connection
        # for the next request, which then met a closed socket: a 502 when its body was not
        # buffered and could not be sent again (test_routing, once in a clean-clone run).
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _tunnel(self) -> None:
        """Accept an upgrade, then answer each line with "<name>: <line>" until EOF: what
        a WebSocket tunnel through nginx must carry, without a WebSocket library."""
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.end_headers()
        self.wfile.flush()
        for line in self.rfile:
            self.wfile.write(f"{self.server.backend_name}: ".encode() + line)
            self.wfile.flush()
        self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _echo

    def log_message(self, format: str, *args) -> None:
        """Quiet: pytest output stays readable."""


class _EchoServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.seen: list[dict] = []
        """Every request answered, as echoed (a mirror's requests get no answer read)."""

    def handle_error(self, request, client_address) -> None:
        """Quiet: nginx hangs up on purpose when an answer's headers are too large."""


@dataclass
class Backend:
    name: str
    host: str
    port: int
    server: ThreadingHTTPServer = field(repr=False)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _server_context(name: str) -> ssl.SSLContext:
    pair = self_signed(name)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as directory:
        pem = Path(directory) / "pair.pem"
        pem.write_bytes(pair.certificate_pem + pair.key_pem)
        context.load_cert_chain(pem)
    return context


class Backends:
    """Starts echo backends on 127.0.0.2, .3, ... and stops them all at the end."""

    def __init__(self) -> None:
        self.started: list[Backend] = []

    def start(self, name: str, tls: bool = False, port: int = 0) -> Backend:
        """`tls`: the backend speaks HTTPS only, with a fresh self-signed certificate;
        `port`: this one, else a free one no backend started here has (the kernel may
        give one port on two addresses; in the nodeport mode a port names a Service)."""
        host = f"127.0.0.{len(self.started) + 2}"
        server = _EchoServer((host, port), _EchoHandler)
        in_use, held = {backend.port for backend in self.started}, []
        while not port and server.server_address[1] in in_use:
            held.append(server)  # kept open so the kernel hands out another port
            server = _EchoServer((host, 0), _EchoHandler)
        for duplicate in held:
            duplicate.server_close()
        server.backend_name = name
        if tls:
            server.socket = _server_context(name).wrap_socket(server.socket, server_side=True)
        # A short poll interval: stop() waits for it, for each of a suite's 50 backends.
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True, name=name).start()
        backend = Backend(name, host, server.server_address[1], server)
        self.started.append(backend)
        return backend

    def start_on_one_port(self, names: list[str], attempts: int = 5) -> list[Backend]:
        """Backends on one port, each on its own address: the pods of one Service, which
        listen on the same port (and in the nodeport mode stand in for one nodePort)."""
        for _ in range(attempts):
            group = [self.start(names[0])]
            try:
                for name in names[1:]:
                    group.append(self.start(name, port=group[0].port))
                return group
            except OSError:  # the port is taken on another address: try another port
                for backend in group:
                    backend.stop()
                del self.started[-len(group) :]
        raise OSError(f"no port free on {len(names)} addresses in {attempts} attempts")

    def stop_all(self) -> None:
        for backend in self.started:
            backend.stop()
        self.started.clear()


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    certificate: x509.Certificate | None = None
    header_lines: tuple[tuple[str, str], ...] = ()
    """Every header as received, in order (`headers` keeps the last of each name)."""

    def all_headers(self, name: str) -> list[str]:
        return [value for each, value in self.header_lines if each.lower() == name.lower()]

    @property
    def echo(self) -> dict:
        """What the backend saw (only for answers of an echo backend)."""
        return json.loads(self.body)

    @property
    def backend(self) -> str | None:
        if self.headers.get("content-type") != "application/json":
            return None
        return self.echo["backend"]


class _TLSConnection(http.client.HTTPConnection):
    """HTTPS to an address with any SNI name (or none: ""), certificate not verified:
    the tests look at which certificate nginx chose instead."""

    def __init__(self, address: str, port: int, sni: str | None, source: tuple | None) -> None:
        super().__init__(address, port, timeout=10, source_address=source)
        self.sni = sni or None

    def connect(self) -> None:
        super().connect()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        self.sock = context.wrap_socket(self.sock, server_hostname=self.sni)


def request(
    port: int,
    host: str | None,
    target: str = "/",
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    tls: bool = False,
    sni: str | None = None,
    address: str = "127.0.0.1",
    source: str | None = None,
) -> Response:
    """One request on a fresh connection. `host` None sends no Host header (HTTP/1.1
    requires one, so nginx answers 400); with `tls`, `sni` defaults to `host`. `source`:
    the client's address (any of 127.0.0.0/8 on Linux; default: the kernel's choice)."""
    bind = (source, 0) if source else None
    if tls:
        connection = _TLSConnection(address, port, sni if sni is not None else host, bind)
    else:
        connection = http.client.HTTPConnection(address, port, timeout=10, source_address=bind)
    try:
        connection.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        if host is not None:
            connection.putheader("Host", host)
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        if body is not None:
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        certificate = None
        if tls:  # now: an answer with "Connection: close" (a reload) closes the socket
            der = connection.sock.getpeercert(binary_form=True)
            certificate = x509.load_der_x509_certificate(der)
        answer = connection.getresponse()
        data = answer.read()
        return Response(
            answer.status,
            {k.lower(): v for k, v in answer.getheaders()},
            data,
            certificate,
            tuple(answer.getheaders()),
        )
    finally:
        connection.close()


def common_name(certificate: x509.Certificate) -> str:
    return certificate.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)[0].value


@contextlib.contextmanager
def websocket_tunnel(
    port: int, host: str, target: str = "/chat"
) -> Iterator[tuple[socket.socket, object]]:
    """A WebSocket upgrade through nginx on loopback `port` to the echo backend of `host`:
    the socket to write lines to and a reader of the lines the backend echoes back."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as tunnel:
        tunnel.sendall(
            f"GET {target} HTTP/1.1\r\nHost: {host}\r\n".encode()
            + b"Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
        )
        stream = tunnel.makefile("rb")
        assert stream.readline().startswith(b"HTTP/1.1 101")
        while stream.readline() not in (b"\r\n", b""):
            pass
        yield tunnel, stream
