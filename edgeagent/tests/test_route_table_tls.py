"""TLS hosts in the route table's pure core: an Ingress with `tls:` and no annotation that
renders a directive is a table host, its rules carry what its server would add (HTTPS,
the ssl-redirect but for HTTP-01 challenges), a host with a server-level TLS setting stays
rendered, and the certificate of a table host comes and goes in the dynamic state without
a new generation. The same in a real nginx: test_route_table_tls_nginx.py."""

import base64
import dataclasses
import itertools

import pytest
from edgeagent.gateway import routing as gateway_routing
from edgeagent.route_table import Route
from support_objects import endpoint_slice, ingress, path, rule, service, tls_secret
from test_route_table import LAYOUT, OPTIONS, PREFIX, built

from edgeagent import annotations, cli, dynamic, model, render, route_table

PAIR = cli.self_signed("a.example.com", ("a.example.com",))
SECRET = tls_secret("a-tls", PAIR)
ACME = "/.well-known/acme-challenge/token-1"


def secure(*paths: dict, hosts=("a.example.com",), extra: dict | None = None, **kwargs) -> dict:
    """An Ingress of a.example.com whose `tls:` names `hosts`."""
    return ingress(
        "a",
        rule("a.example.com", *(paths or (path("/", "web"),))),
        tls=[{"hosts": list(hosts), "secretName": "a-tls"}],
        annotations={PREFIX + key: value for key, value in (extra or {}).items()},
        **kwargs,
    )


def server_of(built_model: model.Model, host: str = "a.example.com") -> model.Server:
    return next(server for server in built_model.servers if server.host == host)


def test_a_tls_host_without_annotations_is_a_table_host():
    result = built(secure(), secrets=[SECRET])
    assert route_table.table_hosts(result) == {"a.example.com"}
    rendered = render.render(result, LAYOUT)
    assert "server a.example.com" not in rendered.blocks
    assert "server_name a.example.com" not in rendered.files["edge.conf"].decode()


def test_its_rules_answer_https_and_redirect_plain_http_but_an_http01_challenge():
    """cert-manager's solver Ingress names the challenge's path on the same host: served
    over plain HTTP, as ingress-nginx's no-tls-redirect-locations."""
    solver = ingress("solver", rule("a.example.com", path(ACME, "api", kind="Exact")))
    result = built(secure(), solver, secrets=[SECRET])
    web = next(u.name for u in result.upstreams if u.service == "web")
    api = next(u.name for u in result.upstreams if u.service == "api")
    assert [
        (r.match, r.path, r.backend, r.tls, r.redirect)
        for r in route_table.routes(server_of(result))
    ] == [
        ("exact", ACME, api, True, False),
        ("prefix", "/", web, True, True),
    ]
    lines = dynamic.encode(dynamic.state_of(result), 7, full=True).decode().splitlines()
    assert f"route a.example.com exact {ACME} +{api} prefix / >{web}" in lines
    assert "host a.example.com default_a-tls" in lines


def test_ssl_redirect_false_serves_plain_http_too():
    result = built(secure(extra={"ssl-redirect": "false"}), secrets=[SECRET])
    assert route_table.table_hosts(result) == {"a.example.com"}
    assert [(r.tls, r.redirect) for r in route_table.routes(server_of(result))] == [(True, False)]


def test_a_host_its_tls_section_does_not_name_is_no_tls_host():
    result = built(secure(hosts=("b.example.com",)), secrets=[SECRET])
    assert not server_of(result).https
    assert [(r.tls, r.redirect) for r in route_table.routes(server_of(result))] == [(False, False)]


def test_a_tls_host_without_its_secret_is_a_table_host_served_the_default_certificate():
    """No `host` record: the default server's handshake keeps its default certificate."""
    result = built(secure())
    assert route_table.table_hosts(result) == {"a.example.com"}
    assert dynamic.state_of(result).hosts == {}


def _ca_secret() -> dict:
    pem = cli.self_signed("ca.example.com", ("ca.example.com",)).certificate_pem
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "ca", "namespace": "default"},
        "data": {"ca.crt": base64.b64encode(pem).decode()},
    }


@pytest.mark.parametrize(
    "extra",
    [
        {"auth-tls-secret": "default/ca"},
        {"ssl-ciphers": "ECDHE-RSA-AES128-GCM-SHA256"},
        {"preserve-trailing-slash": "false"},
        {"force-ssl-redirect": "true"},
        {"proxy-read-timeout": "300"},
    ],
    ids=lambda extra: next(iter(extra)),
)
def test_a_tls_host_with_a_setting_of_its_own_keeps_its_server(extra):
    result = built(secure(extra=extra), secrets=[SECRET, _ca_secret()])
    assert route_table.table_hosts(result) == frozenset()
    assert "server a.example.com" in render.render(result, LAYOUT).blocks


def test_a_passed_through_host_keeps_its_server():
    options = dataclasses.replace(
        OPTIONS, annotations=annotations.Config(enable_ssl_passthrough=True)
    )
    inputs = model.Inputs(
        ingresses=[secure(extra={"ssl-passthrough": "true"})],
        services=[service("web")],
        endpoint_slices=[endpoint_slice("web", [("10.1.0.3", True)], 80)],
        secrets=[SECRET],
    )
    result = gateway_routing.build(model.build(inputs, options), inputs, options)[0]
    assert route_table.table_hosts(result) == frozenset()


def test_adding_rotating_and_removing_a_tls_host_renders_the_same_bytes():
    """No new generation, so no reload: the certificate and the rules travel in the state."""
    other = ingress("b", rule("b.example.com", path("/", "api")))
    rotated = tls_secret("a-tls", cli.self_signed("a.example.com", ("a.example.com",)))
    models = [
        built(other),
        built(other, secure(), secrets=[SECRET]),
        built(other, secure(), secrets=[rotated]),
        built(other, secure()),
    ]
    assert len({render.render(m, LAYOUT).generation for m in models}) == 1
    states = [dynamic.state_of(m) for m in models]
    added, rotation, lost = (dynamic.delta(a, b) for a, b in itertools.pairwise(states))
    assert set(added.routes) == {"a.example.com"} and added.hosts == {
        ("", "a.example.com"): "default_a-tls"
    }
    assert set(rotation.certificates) == {"default_a-tls"} and not rotation.routes
    assert lost.hosts == {("", "a.example.com"): ""}
    assert "host a.example.com" in dynamic.encode(lost, 9, full=False).decode().splitlines()
    removed = dynamic.delta(states[1], states[0])
    assert removed.routes == {"a.example.com": ()} and removed.hosts == {("", "a.example.com"): ""}


@pytest.mark.parametrize(
    "rules",
    [
        (Route("prefix", "/", "x_y_80", 404, tls=False, redirect=True),),
        (Route("exact", "/a", "x_y_80", 404, tls=True), Route("prefix", "/", "x_y_80", 404)),
    ],
    ids=["redirect-without-tls", "tls-for-some-rules"],
)
def test_tls_rules_that_no_host_has_are_refused_before_they_reach_nginx(rules):
    with pytest.raises(ValueError):
        dynamic.encode(dynamic.State({}, {}, {}, {"a.example.com": rules}), 7, full=True)


def test_the_route_location_pins_tls_hosts_beside_the_node_header():
    """--served-by-header: the route location's own add_header drops the default
    server's, so its HSTS (pinned for TLS table hosts) comes again."""
    layout = dataclasses.replace(LAYOUT, served_by_header=True)
    edge = render.render(built(secure(), secrets=[SECRET]), layout).files["edge.conf"].decode()
    location = edge.split("location = /_edgeagent-route")[1].split("}", 1)[0]
    assert "add_header X-Edge-Node $hostname always;" in location
    assert "add_header Strict-Transport-Security $edgeagent_hsts_unpinned always;" in location
