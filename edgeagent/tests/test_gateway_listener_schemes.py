"""HTTP listeners' routes apart from HTTPS listeners' (the spec attaches a route to
listeners, not to hostnames), through a real nginx to real HTTP backends, in both modes:
HTTPRouteRedirectPortAndScheme as the suite writes it (its routes of the HTTP listener
on 80 and of the HTTPS listener on 443 share every path, without hostnames), a hostname
that routes of both protocols serve, and an Ingress beside them, unchanged."""

import pytest
from edgeagent.gateway import routing as gateway_routing
from support_gateway import (
    INFRA,
    backend_ref,
    gateway,
    gateway_class,
    http_route,
    listener,
    namespace,
    parent,
)
from support_http import request
from support_nginx import echo_site
from support_objects import endpoint_slice, ingress, path, rule, service, tls_secret

from edgeagent import cli, model

CERTIFICATE = [{"group": "", "kind": "Secret", "name": "tls-validity-checks-certificate"}]
OLD = "2020-01-01T00:00:00Z"
NEW = "2021-01-01T00:00:00Z"


def redirected(value, **fields):
    return {
        "matches": [{"path": {"type": "PathPrefix", "value": value}}],
        "filters": [
            {"type": "RequestRedirect", "requestRedirect": {"hostname": "example.org", **fields}}
        ],
    }


def served_by(service_name, value="/"):
    return {
        "matches": [{"path": {"type": "PathPrefix", "value": value}}],
        "backendRefs": [backend_ref(service_name)],
    }


def objects(backends, certificate) -> model.Inputs:
    inputs = model.Inputs(gateway_classes=[gateway_class()], namespaces=[namespace(INFRA)])
    for name in ("infra-backend-v1", "infra-backend-v2", "ingress-backend"):
        inputs.services.append(service(name, {"http": 8080}, namespace=INFRA))
        started = backends[name]
        inputs.endpoint_slices.append(
            endpoint_slice(name, [(started.host, True)], started.port, namespace=INFRA)
        )
    inputs.secrets.append(tls_secret("tls-validity-checks-certificate", certificate, INFRA))
    inputs.gateways.extend(
        [
            gateway("same-namespace", listener()),
            gateway(
                "same-namespace-with-http-listener-on-8080", listener(port=8080)
            ),  # not programmed: one HTTP port per edge
            gateway(
                "same-namespace-with-https-listener",
                listener("https", 443, "HTTPS", certificates=CERTIFICATE),
                listener(
                    "https-with-hostname",
                    443,
                    "HTTPS",
                    hostname="second-example.org",
                    certificates=CERTIFICATE,
                ),
            ),
        ]
    )
    inputs.http_routes.extend(
        [
            # HTTPRouteRedirectPortAndScheme, as the suite writes it.
            http_route(
                "http-route-for-listener-on-port-80",
                [parent("same-namespace")],
                rules=[
                    redirected("/scheme-nil-and-port-nil"),
                    redirected("/scheme-nil-and-port-80", port=80),
                    redirected("/scheme-nil-and-port-8080", port=8080),
                    redirected("/scheme-https-and-port-nil", scheme="https"),
                    redirected("/scheme-https-and-port-443", scheme="https", port=443),
                    redirected("/scheme-https-and-port-8443", scheme="https", port=8443),
                ],
            ),
            http_route(
                "http-route-for-listener-on-port-8080",
                [parent("same-namespace-with-http-listener-on-8080")],
                rules=[
                    redirected("/scheme-nil-and-port-nil"),
                    redirected("/scheme-nil-and-port-80", port=80),
                    redirected("/scheme-https-and-port-nil", scheme="https"),
                ],
            ),
            http_route(
                "http-route-for-listener-on-port-443",
                [parent("same-namespace-with-https-listener")],
                rules=[
                    redirected("/scheme-nil-and-port-nil"),
                    redirected("/scheme-nil-and-port-443", port=443),
                    redirected("/scheme-nil-and-port-8443", port=8443),
                    redirected("/scheme-http-and-port-nil", scheme="http"),
                    redirected("/scheme-http-and-port-80", scheme="http", port=80),
                    redirected("/scheme-http-and-port-8080", scheme="http", port=8080),
                ],
            ),
            # One hostname, a route of each protocol's listeners, the newer one first by
            # path length (its `/` must not answer over the other scheme either).
            http_route(
                "both-over-http",
                [parent("same-namespace")],
                hostnames=["both.example"],
                rules=[served_by("infra-backend-v1")],
                created=OLD,
            ),
            http_route(
                "both-over-https",
                [parent("same-namespace-with-https-listener", sectionName="https")],
                hostnames=["both.example"],
                rules=[served_by("infra-backend-v2"), served_by("infra-backend-v2", "/tls")],
                created=NEW,
            ),
            # A route of listeners of both protocols answers over both.
            http_route(
                "everywhere",
                [
                    parent("same-namespace"),
                    parent("same-namespace-with-https-listener", sectionName="https"),
                ],
                hostnames=["both.example"],
                rules=[served_by("infra-backend-v1", "/everywhere")],
            ),
        ]
    )
    # An Ingress beside them, served as it always was.
    inputs.ingresses.append(
        ingress(
            "plain",
            rule("ingress.example", path("/", "ingress-backend", 8080)),
            rule(None, path("/ingress-only", "ingress-backend", 8080)),
            namespace=INFRA,
            tls=[{"hosts": ["ingress.example"]}],
        )
    )
    return inputs


@pytest.fixture(scope="module", params=["static", "dynamic"])
def site(request, tmp_path_factory):
    certificate = cli.self_signed("example.org", ("example.org", "second-example.org"))
    with echo_site(
        tmp_path_factory.mktemp("schemes"),
        ["infra-backend-v1", "infra-backend-v2", "ingress-backend"],
        lambda started: objects(started, certificate),
        request.param == "dynamic",
    ) as built:
        yield built


def over_http(site, host, target):
    return request(site.ports.http, host, target)


def over_https(site, host, target):
    return request(site.ports.https, host, target, tls=True)


@pytest.mark.parametrize(
    ("target", "location"),
    [
        ("/scheme-nil-and-port-nil", "http://example.org/scheme-nil-and-port-nil"),
        ("/scheme-nil-and-port-80", "http://example.org/scheme-nil-and-port-80"),
        ("/scheme-nil-and-port-8080", "http://example.org:8080/scheme-nil-and-port-8080"),
        ("/scheme-https-and-port-nil", "https://example.org/scheme-https-and-port-nil"),
        ("/scheme-https-and-port-443", "https://example.org/scheme-https-and-port-443"),
        ("/scheme-https-and-port-8443", "https://example.org:8443/scheme-https-and-port-8443"),
        ("/scheme-http-and-port-nil", None),  # the HTTPS listener's only
    ],
)
def test_redirect_port_and_scheme_over_the_http_listener(site, target, location):
    """The suite sends these to the Gateway's address (no hostname of ours)."""
    answer = over_http(site, "192.0.2.10", target)
    if location is None:
        assert answer.status == 404
    else:
        assert (answer.status, answer.headers["location"]) == (302, location)


@pytest.mark.parametrize(
    ("target", "location"),
    [
        ("/scheme-nil-and-port-nil", "https://example.org/scheme-nil-and-port-nil"),
        ("/scheme-nil-and-port-443", "https://example.org/scheme-nil-and-port-443"),
        ("/scheme-nil-and-port-8443", "https://example.org:8443/scheme-nil-and-port-8443"),
        ("/scheme-http-and-port-nil", "http://example.org/scheme-http-and-port-nil"),
        ("/scheme-http-and-port-80", "http://example.org/scheme-http-and-port-80"),
        ("/scheme-http-and-port-8080", "http://example.org:8080/scheme-http-and-port-8080"),
        ("/scheme-https-and-port-nil", None),  # the HTTP listener's only
    ],
)
@pytest.mark.parametrize("host", ["example.org", "second-example.org"])
def test_redirect_port_and_scheme_over_the_https_listener(site, host, target, location):
    answer = over_https(site, host, target)
    if location is None:
        assert answer.status == 404
    else:
        assert (answer.status, answer.headers["location"]) == (302, location)


def test_only_the_listener_on_8080_and_its_route_are_refused(site):
    """One HTTP port per edge: the Gateway on 8080 is not Accepted, its route not served
    (the requests above); the routes on 80 and 443 share their paths without conflict."""
    assert {(p.kind, p.name) for p in site.model.problems} == {
        ("Gateway", "same-namespace-with-http-listener-on-8080"),
        ("HTTPRoute", "http-route-for-listener-on-port-8080"),
    }


@pytest.mark.parametrize(
    ("target", "plain", "secure"),
    [
        ("/", "infra-backend-v1", "infra-backend-v2"),
        ("/tls", "infra-backend-v1", "infra-backend-v2"),  # not `/tls` of HTTPS over HTTP
        ("/everywhere", "infra-backend-v1", "infra-backend-v1"),
    ],
)
def test_one_hostname_routes_of_each_protocol(site, target, plain, secure):
    assert over_http(site, "both.example", target).backend == plain
    assert over_https(site, "both.example", target).backend == secure


def test_an_ingress_beside_them_is_served_as_before(site):
    """Its TLS host answers over HTTPS, and redirects there over HTTP (ssl-redirect); its
    path without a host answers over both, as the default server's."""
    assert over_https(site, "ingress.example", "/").backend == "ingress-backend"
    redirect = over_http(site, "ingress.example", "/")
    assert (redirect.status, redirect.headers["location"]) == (308, "https://ingress.example/")
    assert over_http(site, "192.0.2.10", "/ingress-only").backend == "ingress-backend"
    assert over_https(site, "192.0.2.10", "/ingress-only").backend == "ingress-backend"


def test_a_route_of_both_protocols_loses_only_the_scheme_an_older_route_took():
    """The older route of the HTTPS listener takes `/x` over HTTPS; the newer route of both
    listeners keeps it over HTTP, and is told about HTTPS."""
    certificate = cli.self_signed("example.org", ("example.org",))
    started = {
        name: type("Started", (), {"host": "10.1.0.1", "port": 8080})
        for name in ("infra-backend-v1", "infra-backend-v2", "ingress-backend")
    }
    inputs = objects(started, certificate)
    inputs.http_routes[:] = [
        http_route(
            "older-over-https",
            [parent("same-namespace-with-https-listener", sectionName="https")],
            rules=[served_by("infra-backend-v2", "/x")],
            created=OLD,
        ),
        http_route(
            "newer-over-both",
            [
                parent("same-namespace"),
                parent("same-namespace-with-https-listener", sectionName="https"),
            ],
            rules=[served_by("infra-backend-v1", "/x")],
            created=NEW,
        ),
    ]
    options = model.Options()
    built, _ = gateway_routing.build(model.build(inputs, options), inputs, options)
    (told,) = [p for p in built.problems if p.kind == "HTTPRoute"]
    assert (told.name, told.code) == ("newer-over-both", "conflict")
    assert "PathPrefix /x on (any host) over HTTPS" in told.reason
    (location,) = [loc for loc in built.default_server.locations if loc.path == "/x"]
    assert [choice.conditions for choice in location.choices] == [(("$scheme", "https"),)]
    assert location.upstream is not None and "infra-backend-v1" in location.upstream
