"""The backend annotations (annotations/backend.py and its neighbours) through a real
nginx to real backends, in both modes: gRPC clients and servers (grpcio) for
backend-protocol GRPC and GRPCS."""

import socket
import ssl

import grpc
import pytest
import support_grpc
from support_http import request
from support_nginx import NginxRunner, render_site
from support_objects import endpoint_slice, ingress, path, rule, service, tls_secret

from edgeagent import cli, model

ANNOTATION = "nginx.ingress.kubernetes.io/"
GRPC_HOST = "grpc.example.com"
# gRPC backends listen on their own loopback addresses, apart from Backends' 127.0.0.x.
GRPC_ADDRESSES = {"greeter": "127.0.3.1", "greeter-tls": "127.0.3.2"}


class Site:
    def __init__(self, site, certificate: bytes) -> None:
        self.site = site
        self.certificate = certificate

    def grpc(self, host: str = GRPC_HOST) -> grpc.Channel:
        return support_grpc.channel(self.site.ports.https, host, self.certificate)


def grpc_objects(backends: dict, pair) -> model.Inputs:
    objects = model.Inputs()
    for name, backend in backends.items():
        objects.services.append(service(name, {"grpc": 50051}))
        objects.endpoint_slices.append(
            endpoint_slice(name, [(backend.host, True)], backend.port, port_name="grpc")
        )
    tls = [{"hosts": [GRPC_HOST], "secretName": "grpc-tls"}]
    objects.secrets.append(tls_secret("grpc-tls", pair))
    objects.ingresses.extend(
        [
            ingress(
                "greeter",
                rule(GRPC_HOST, path("/edge.Echo", "greeter", "grpc")),
                annotations={ANNOTATION + "backend-protocol": "GRPC"},
                tls=tls,
            ),
            ingress(
                "greeter-tls",
                rule("grpcs.example.com", path("/", "greeter-tls", "grpc")),
                annotations={ANNOTATION + "backend-protocol": "grpcs"},
                tls=[{"hosts": ["grpcs.example.com"], "secretName": "grpc-tls"}],
            ),
        ]
    )
    return objects


@pytest.fixture(scope="module", params=["static", "dynamic"])
def site(request, tmp_path_factory):
    runner = NginxRunner()
    names = ("grpc.example.com", "grpcs.example.com")
    pair = cli.self_signed(GRPC_HOST, names)
    backend_pair = cli.self_signed("greeter-tls")
    grpc_backends = {
        "greeter": support_grpc.start("greeter", GRPC_ADDRESSES["greeter"]),
        "greeter-tls": support_grpc.start(
            "greeter-tls", GRPC_ADDRESSES["greeter-tls"], backend_pair
        ),
    }
    try:
        rendered = render_site(
            tmp_path_factory.mktemp("backends"),
            grpc_objects(grpc_backends, pair),
            dynamic_mode=request.param == "dynamic",
        )
        assert rendered.model.problems == ()
        runner.start(rendered)
        yield Site(rendered, pair.certificate_pem)
    finally:
        runner.stop_all()
        for backend in grpc_backends.values():
            backend.server.stop(grace=None)


def test_grpc_backend_answers_a_grpc_client_over_the_https_listener(site):
    with site.grpc() as channel:
        answer = support_grpc.say(channel, "hello")
        assert (answer["backend"], answer["request"]) == ("greeter", "hello")
        # the forwarding headers, as for HTTP backends
        metadata = answer["metadata"]
        assert metadata["x-forwarded-proto"] == "https"
        assert metadata["x-forwarded-host"] == GRPC_HOST
        assert metadata["x-real-ip"] == "127.0.0.1"


def test_grpc_server_streaming_goes_through(site):
    with site.grpc() as channel:
        assert support_grpc.count(channel, 50) == list(range(50))


def test_grpcs_backend_gets_tls_from_nginx(site):
    with site.grpc("grpcs.example.com") as channel:
        answer = support_grpc.say(channel, "over tls")
        assert (answer["backend"], answer["request"]) == ("greeter-tls", "over tls")


def test_grpc_paths_are_routed_like_any_other(site):
    """Only the Ingress's path (the gRPC service's name) reaches the backend."""
    with site.grpc() as channel, pytest.raises(grpc.RpcError) as raised:
        channel.unary_unary("/other.Service/Say")(b"x", timeout=support_grpc.SECONDS)
    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED  # nginx's 404


@pytest.mark.parametrize(
    ("offered", "chosen"), [(["h2", "http/1.1"], "h2"), (["http/1.1"], "http/1.1")]
)
def test_https_listeners_offer_http2_and_keep_http1(site, offered, chosen):
    """As ingress-nginx's (use-http2): HTTP/2 is chosen when the client offers it (gRPC
    clients need it), HTTP/1.1 still when it does not."""
    context = ssl.create_default_context(cadata=site.certificate.decode())
    context.set_alpn_protocols(offered)
    address = ("127.0.0.1", site.site.ports.https)
    with (
        socket.create_connection(address, timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=GRPC_HOST) as connection,
    ):
        assert connection.selected_alpn_protocol() == chosen


def test_plain_http_redirects_grpc_hosts_with_tls(site):
    """Port 80 stays HTTP/1.x as in ingress-nginx (no h2c): a TLS host redirects."""
    answer = request(site.site.ports.http, GRPC_HOST, "/edge.Echo/Say", method="POST")
    assert (answer.status, answer.headers["location"]) == (
        308,
        f"https://{GRPC_HOST}/edge.Echo/Say",
    )
