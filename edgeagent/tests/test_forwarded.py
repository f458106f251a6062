"""Issue 14, point 5: the client's address reaches the backends as nginx knows it, and a
load balancer in front names the client only from the addresses of --trusted-proxies, in
X-Forwarded-For or in a PROXY protocol header. Real nginx, an echo backend, clients on
loopback aliases (all of 127.0.0.0/8 is local on Linux)."""

import dataclasses
import http.client
import json
import socket

import pytest
from support_http import request
from support_nginx import render_site
from support_objects import endpoint_slice, ingress, path, rule, service

from edgeagent import grammar, model, render

HOST = "app.example.com"
BALANCER = "127.0.0.9"  # the trusted load balancer
STRANGER = "127.0.0.10"  # anyone else
CLIENT = "198.51.100.7"  # who the balancer says the client is
CLAIMED = "192.0.2.7"  # what a client claims to be


@pytest.fixture
def serve(tmp_path, nginx_runner, http_backends):
    """serve(**layout fields) -> the running nginx, proxying HOST to one echo backend."""

    def start(**layout_changes):
        backend = http_backends.start("web")
        inputs = model.Inputs(
            ingresses=[ingress("web", rule(HOST, path("/", "web")))],
            services=[service("web")],
            endpoint_slices=[endpoint_slice("web", [(backend.host, True)], backend.port)],
        )
        return nginx_runner.start(render_site(tmp_path, inputs, **layout_changes))

    return start


def seen(answer) -> tuple[str, str]:
    headers = answer.echo["headers"]
    return headers["x-real-ip"], headers["x-forwarded-for"]


def test_a_trusted_balancers_forwarded_for_names_the_client_and_is_appended(serve):
    port = serve(trusted_proxies=(f"{BALANCER}/32",)).site.ports.http
    answer = request(port, HOST, headers={"X-Forwarded-For": CLIENT}, source=BALANCER)
    assert seen(answer) == (CLIENT, f"{CLIENT}, {BALANCER}")
    # The balancer's own request, without the header: it is the client.
    assert seen(request(port, HOST, source=BALANCER)) == (BALANCER, BALANCER)


def test_anyone_elses_forwarded_for_is_dropped(serve):
    port = serve(trusted_proxies=(f"{BALANCER}/32",)).site.ports.http
    claimed = {"X-Forwarded-For": CLAIMED, "X-Real-IP": CLAIMED}
    assert seen(request(port, HOST, headers=claimed, source=STRANGER)) == (STRANGER, STRANGER)


def proxied_request(port: int, source: str, proxy_line: bytes | None) -> bytes:
    """A plain HTTP request on a raw socket from `source`, after `proxy_line` (a PROXY v1
    header); the answer's body, or b"" when nginx closed the connection without one."""
    with socket.create_connection(
        ("127.0.0.1", port), timeout=10, source_address=(source, 0)
    ) as sock:
        sock.sendall(
            (proxy_line or b"")
            + f"GET / HTTP/1.1\r\nHost: {HOST}\r\nX-Forwarded-For: {CLAIMED}\r\n".encode()
            + b"Connection: close\r\n\r\n"
        )
        answer = http.client.HTTPResponse(sock)
        try:
            answer.begin()
        except (http.client.RemoteDisconnected, ConnectionResetError):
            return b""
        return answer.read()


def test_proxy_protocol_names_the_client_from_a_trusted_balancer_only(serve):
    nginx = serve(trusted_proxies=(f"{BALANCER}/32",), proxy_protocol=True)
    port = nginx.site.ports.http
    header = f"PROXY TCP4 {CLIENT} 127.0.0.1 40000 {port}\r\n".encode()
    headers = json.loads(proxied_request(port, BALANCER, header))["headers"]
    # The client-sent X-Forwarded-For is the client's own claim: dropped.
    assert (headers["x-real-ip"], headers["x-forwarded-for"]) == (CLIENT, CLIENT)
    headers = json.loads(proxied_request(port, STRANGER, header))["headers"]
    assert (headers["x-real-ip"], headers["x-forwarded-for"]) == (STRANGER, STRANGER)
    # Without the header nginx serves nothing: the listener speaks PROXY protocol only.
    assert proxied_request(port, BALANCER, None) == b""


@pytest.mark.parametrize(
    "changes",
    [{"proxy_protocol": True}, {"trusted_proxies": ("10.0.0.0/8", "balancer.example")}],
)
def test_trusted_proxies_are_checked(tmp_path, changes):
    layout = render.Layout("127.0.0.1:80", "127.0.0.1:443", str(tmp_path), "/d.pem", "/d.pem")
    with pytest.raises(grammar.Invalid):
        render.check_layout(dataclasses.replace(layout, **changes))
