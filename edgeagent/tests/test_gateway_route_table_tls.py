"""An HTTPRoute's HTTPS wildcard of any depth (the Gateway API's `*.example.com`) in the
dynamic mode: its certificate is served to every name under it, two labels deep too,
whether the route table or a rendered server answers it, and after a rotation pushed
without a reload; an SNI name in capitals with a trailing dot too, as nginx reads it. Its
`host` record names it as the table does (`**.example.com`), apart from an Ingress's
one-label `*.example.com` (lua/edgeagent_certificates.lua)."""

import dataclasses

import pytest
from cryptography import x509
from edgeagent.control import Control
from edgeagent.gateway import routing as gateway_routing
from support_gateway import INFRA, backend_ref, gateway, gateway_class, http_route, listener
from support_gateway import parent as gateway_parent
from support_http import Backends
from support_http import request as fetch
from support_nginx import NginxRunner, render_site
from support_objects import endpoint_slice, service, tls_secret

from edgeagent import cli, dynamic, model, route_table

WILDCARD = "*.example.com"
PAIR = cli.self_signed("wildcard", (WILDCARD,))
ROTATED = cli.self_signed("wildcard-rotated", (WILDCARD,))
HEADER_FILTER = {
    "type": "RequestHeaderModifier",
    "requestHeaderModifier": {"set": [{"name": "x-filtered", "value": "yes"}]},
}


def inputs_of(backend, pair: model.CertPair, filtered: bool) -> model.Inputs:
    """A Gateway of the edge's addresses with HTTP and HTTPS listeners of WILDCARD and an
    HTTPRoute of it: plain (a table host) or with a filter (a rendered server)."""
    routed = {"backendRefs": [backend_ref("web")]}
    if filtered:
        routed["filters"] = [HEADER_FILTER]
    https = listener("https", 443, "HTTPS", hostname=WILDCARD, certificates=[{"name": "w-tls"}])
    return model.Inputs(
        gateway_classes=[gateway_class()],
        gateways=[gateway("edge", listener("http", 80, "HTTP", hostname=WILDCARD), https)],
        http_routes=[http_route("web", [gateway_parent("edge")], [routed], [WILDCARD])],
        services=[service("web", {"http": 8080}, namespace=INFRA)],
        endpoint_slices=[
            endpoint_slice("web", [(backend.host, True)], backend.port, namespace=INFRA)
        ],
        secrets=[tls_secret("w-tls", pair, namespace=INFRA)],
    )


def state_of(backend, pair: model.CertPair, filtered: bool) -> dynamic.State:
    options = model.Options(dynamic=True, upstreams_without_endpoints=True)
    inputs = inputs_of(backend, pair, filtered)
    return dynamic.state_of(gateway_routing.build(model.build(inputs, options), inputs, options)[0])


def test_the_host_record_names_a_wildcard_of_any_depth_as_the_table_does():
    backend = dataclasses.make_dataclass("B", ["host", "port"])("10.0.0.1", 8080)
    state = state_of(backend, PAIR, filtered=False)
    assert set(state.routes) == {"**.example.com"}
    assert set(state.hosts) == {("", "**.example.com")}
    lines = dynamic.encode(state, 1, full=True).decode().splitlines()
    assert "host **.example.com gateway-conformance-infra_w-tls" in lines


@pytest.fixture(scope="module", params=[False, True], ids=["table", "rendered"])
def edge(request, tmp_path_factory):
    filtered = request.param
    backends, runner = Backends(), NginxRunner()
    try:
        backend = backends.start("web")
        directory = tmp_path_factory.mktemp("wildcard")
        site = render_site(directory, inputs_of(backend, PAIR, filtered), dynamic_mode=True)
        assert (route_table.table_hosts(site.model) == {WILDCARD}) != filtered
        nginx = runner.start(site)
        control = Control(str(directory / "dynamic"), f"127.0.0.1:{site.ports.status}")
        control.push(dynamic.state_of(site.model), full=True)
        yield site, nginx, control, backend, filtered
    finally:
        runner.stop_all()
        backends.stop_all()


def certificate(pair: model.CertPair) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pair.certificate_pem)


@pytest.mark.parametrize(
    "name", ["a.example.com", "a.b.example.com", "a.b.c.example.com", "A.b.example.com."]
)
def test_every_name_under_the_wildcard_is_served_its_certificate(edge, name):
    site = edge[0]
    answer = fetch(site.ports.https, name, "/", tls=True)
    assert (answer.status, answer.backend) == (200, "web")
    assert answer.certificate == certificate(PAIR)


def test_a_rotation_reaches_every_depth_without_a_reload(edge):
    site, nginx, control, backend, filtered = edge
    pids = nginx.pids()
    old = state_of(backend, PAIR, filtered)
    control.push(dynamic.delta(old, state_of(backend, ROTATED, filtered)), full=False)
    try:
        for name in ("a.example.com", "a.b.example.com"):
            answer = fetch(site.ports.https, name, "/", tls=True)
            assert answer.certificate == certificate(ROTATED), name
    finally:
        control.push(dynamic.delta(state_of(backend, ROTATED, filtered), old), full=False)
    assert nginx.pids() == pids
