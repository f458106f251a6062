"""TLS towards a gRPC backend (backend-protocol GRPCS with proxy-ssl-*, which nginx
writes as grpc_ssl_*) through a real nginx in both modes, to a real grpcio server that
requires a client certificate: verified and presented, or refused."""

import grpc
import pytest
import support_grpc
from edgeagent.grammar import CertPair
from support_nginx import NginxRunner, render_site
from support_objects import endpoint_slice, ingress, path, rule, service, tls_secret
from test_backend_tls import BACKEND_NAME, Authority, secret

from edgeagent import cli, model

ANNOTATION = "nginx.ingress.kubernetes.io/"
HOSTS = ("verified.grpc.example", "untrusted.grpc.example", "anonymous.grpc.example")


def grpcs(host: str, secret_name: str, **values: str) -> dict:
    written = {
        ANNOTATION + "backend-protocol": "GRPCS",
        ANNOTATION + "proxy-ssl-secret": secret_name,
        ANNOTATION + "proxy-ssl-name": BACKEND_NAME,
    }
    written |= {ANNOTATION + "proxy-ssl-" + key.replace("_", "-"): v for key, v in values.items()}
    return ingress(
        host.split(".")[0],
        rule(host, path("/", "greeter", "grpc")),
        annotations=written,
        tls=[{"hosts": [host], "secretName": "front"}],
    )


@pytest.fixture(scope="module")
def authorities():
    return Authority("backend CA"), Authority("edge client CA"), Authority("stranger CA")


@pytest.fixture(scope="module", params=["static", "dynamic"])
def site(request, tmp_path_factory, authorities):
    backend_ca, client_ca, stranger = authorities
    backend = support_grpc.start(
        "greeter",
        "127.0.0.1",
        CertPair(*backend_ca.issue(BACKEND_NAME, BACKEND_NAME)),
        client_ca.pem,
    )
    front = cli.self_signed("front", HOSTS)
    client = client_ca.issue("edge-client")
    objects = model.Inputs(
        services=[service("greeter", {"grpc": 50051})],
        endpoint_slices=[endpoint_slice("greeter", [("127.0.0.1", True)], backend.port, "grpc")],
        secrets=[
            tls_secret("front", front),
            secret("backend", backend_ca.pem, client),
            secret("stranger", stranger.pem, client),
            secret("ca-only", backend_ca.pem),
        ],
        ingresses=[
            grpcs(HOSTS[0], "backend", verify="on", server_name="on"),
            grpcs(HOSTS[1], "stranger", verify="on"),
            grpcs(HOSTS[2], "ca-only", verify="on"),
        ],
    )
    runner = NginxRunner()
    try:
        built = render_site(
            tmp_path_factory.mktemp("backend-tls-grpc"),
            objects,
            dynamic_mode=request.param == "dynamic",
        )
        assert built.model.problems == ()
        runner.start(built)
        yield built, front
    finally:
        runner.stop_all()
        backend.server.stop(grace=None)


def say(site, host: str) -> dict:
    built, front = site
    with support_grpc.channel(built.ports.https, host, front.certificate_pem) as channel:
        return support_grpc.say(channel, "hello")


def test_a_verified_grpc_backend_gets_the_client_certificate(site):
    assert say(site, HOSTS[0])["backend"] == "greeter"


@pytest.mark.parametrize("host", HOSTS[1:], ids=["untrusted", "without-client-certificate"])
def test_an_untrusted_backend_or_a_missing_client_certificate_fails(site, host):
    with pytest.raises(grpc.RpcError) as raised:
        say(site, host)
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE  # nginx's 502
