"""The conformance suite's Core HTTPRoute traffic tests that test_gateway_routing.py does
not hold, through a real nginx to real HTTP backends, in both modes:
HTTPRoutePartiallyInvalidViaInvalidReferenceGrant (with the 500 for the share of a
weighted rule that its unusable backendRefs take), HTTPRouteServiceTypes,
HTTPRouteMultipleGateways and HTTPRouteHTTPSListener as the suite writes it."""

import collections

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
    reference_grant,
)
from support_http import common_name, request
from support_nginx import echo_site
from support_objects import endpoint_slice, service, tls_secret

from edgeagent import cli, model

APP = "gateway-conformance-app-backend"
OLD = "2020-01-01T00:00:00Z"
NEW = "2021-01-01T00:00:00Z"
# (namespace, Service) -> its echo backend.
BACKENDS = {
    (INFRA, "infra-backend-v1"): "infra-v1",
    (INFRA, "infra-backend-v2"): "infra-v2",
    (INFRA, "infra-backend-v3"): "infra-v3",
    (APP, "app-backend-v1"): "app-v1",
    (APP, "app-backend-v2"): "app-v2",
}
# HTTPRouteServiceTypes: Services whose EndpointSlices are written by hand (no selector)
# and headless ones (clusterIP None), each on port 8080 named "first-port", to 3000.
SERVICE_TYPES = {
    "manual-endpointslices": ("manual", False),
    "headless": ("headless", True),
    "headless-manual-endpointslices": ("headless-manual", True),
}
# Requests per weighted case: the 500s' count is binomial; the bounds below are more
# than four standard deviations wide, so a fair draw fails them about once in 10^5.
DRAWS = 200


def prefix(value):
    return {"path": {"type": "PathPrefix", "value": value}}


def routed(matches, *backends):
    return {"matches": matches, "backendRefs": list(backends)}


def typed_service(name, headless):
    made = service(name, {"first-port": 8080}, namespace=INFRA)
    if headless:
        made["spec"]["clusterIP"] = "None"
    else:
        made["spec"]["selector"] = {"app": "infra-backend-v1"}
    return made


def https_listener(name, hostname=None):
    certificates = [{"group": "", "kind": "Secret", "name": "tls-validity-checks-certificate"}]
    return listener(name, 443, "HTTPS", hostname=hostname, certificates=certificates)


def objects(backends, certificate) -> model.Inputs:
    inputs = model.Inputs(
        gateway_classes=[gateway_class()], namespaces=[namespace(INFRA), namespace(APP)]
    )
    for (ns, name), started in BACKENDS.items():
        inputs.services.append(service(name, {"http": 8080}, namespace=ns))
        ready = [(backends[started].host, True)]
        inputs.endpoint_slices.append(
            endpoint_slice(name, ready, backends[started].port, namespace=ns, name=started)
        )
    for name, (started, headless) in SERVICE_TYPES.items():
        inputs.services.append(typed_service(name, headless))
        ready = [(backends[started].host, True)]
        port = backends[started].port
        inputs.endpoint_slices.extend(
            [
                endpoint_slice(name, ready, port, "first-port", INFRA, f"{name}-ip4"),
                # The suite's IPv6 slice, empty on a single-stack cluster.
                endpoint_slice(name, [], port, "first-port", INFRA, f"{name}-ip6", "IPv6"),
            ]
        )
    inputs.gateways.extend(
        [
            gateway("same-namespace", listener(hostname="*.same.example")),
            gateway("all-namespaces", listener(hostname="*.same.example", allowed_from="All")),
            gateway("gateway", listener(hostname="*.routes.example")),
            gateway(
                "same-namespace-with-https-listener",
                https_listener("https"),
                https_listener("https-with-hostname", "second-example.org"),
                https_listener("https-with-wildcard-hostname", "*.wildcard.org"),
            ),
        ]
    )
    inputs.secrets.append(tls_secret("tls-validity-checks-certificate", certificate, INFRA))
    inputs.reference_grants.append(
        reference_grant(APP, "HTTPRoute", INFRA, "Service", "app-backend-v1")
    )
    v1, ungranted = backend_ref("infra-backend-v1"), backend_ref("app-backend-v2", namespace=APP)
    inputs.http_routes.extend(
        [
            # HTTPRoutePartiallyInvalidViaInvalidReferenceGrant, as the suite writes it.
            http_route(
                "invalid-reference-grant",
                [parent("gateway")],
                hostnames=["partly.routes.example"],
                rules=[
                    routed([prefix("/v2")], ungranted),
                    {"backendRefs": [backend_ref("app-backend-v1", namespace=APP)]},
                ],
            ),
            # The spec's 500 for the share of a weighted rule that its unusable backendRefs
            # take: one not granted, one that does not exist; on a location's own target and
            # on a choice (a header match).
            http_route(
                "weighted-partly-invalid",
                [parent("gateway")],
                hostnames=["weights.routes.example"],
                rules=[
                    routed(
                        [prefix("/")],
                        backend_ref("infra-backend-v1", weight=70),
                        ungranted | {"weight": 30},
                    ),
                    routed(
                        [{**prefix("/"), "headers": [{"name": "x-half", "value": "yes"}]}],
                        backend_ref("infra-backend-v2", weight=1),
                        backend_ref("does-not-exist", weight=1),
                    ),
                    routed([prefix("/zero")], v1, ungranted | {"weight": 0}),
                ],
            ),
            # HTTPRouteServiceTypes.
            http_route(
                "service-types",
                [parent("gateway")],
                hostnames=["types.routes.example"],
                rules=[
                    routed([{"path": {"type": "Exact", "value": f"/{name}"}}], backend_ref(name))
                    for name in SERVICE_TYPES
                ],
            ),
            # HTTPRouteHTTPSListener, as the suite writes it.
            http_route(
                "httproute-https-test",
                [parent("same-namespace-with-https-listener")],
                hostnames=["example.org"],
            ),
            http_route(
                "httproute-https-test-no-hostname",
                [parent("same-namespace-with-https-listener", sectionName="https-with-hostname")],
                rules=[{"backendRefs": [backend_ref("infra-backend-v2")]}],
            ),
            # HTTPRouteMultipleGateways, as the suite writes it.
            http_route(
                "multiple-gateways-shared-route",
                [parent("same-namespace"), parent("all-namespaces")],
                rules=[routed([prefix("/shared")], v1)],
            ),
            http_route(
                "same-namespace-dedicated-route",
                [parent("same-namespace")],
                rules=[routed([prefix("/")], backend_ref("infra-backend-v2"))],
                created=OLD,
            ),
            http_route(
                "all-namespaces-dedicated-route",
                [parent("all-namespaces")],
                rules=[routed([prefix("/")], backend_ref("infra-backend-v3"))],
                created=NEW,
            ),
        ]
    )
    return inputs


@pytest.fixture(scope="module", params=["static", "dynamic"])
def site(request, tmp_path_factory):
    names = [*BACKENDS.values(), *(started for started, _ in SERVICE_TYPES.values())]
    certificate = cli.self_signed("example.org", ("example.org", "second-example.org"))
    with echo_site(
        tmp_path_factory.mktemp("conformance"),
        names,
        lambda started: objects(started, certificate),
        request.param == "dynamic",
    ) as built:
        yield built


def get(site, host, target="/", **options):
    return request(site.ports.http, host, target, **options)


def test_partially_invalid_via_invalid_reference_grant(site):
    assert get(site, "partly.routes.example", "/v2").status == 500
    assert get(site, "partly.routes.example", "/").backend == "app-v1"


def outcomes(site, target="/", headers=None):
    return collections.Counter(
        answer.backend if answer.status == 200 else answer.status
        for answer in (
            get(site, "weights.routes.example", target, headers=headers) for _ in range(DRAWS)
        )
    )


def test_the_share_of_unusable_backend_refs_answers_500(site):
    """70 to a usable Service, 30 to one not granted: about 30% of the requests get 500."""
    seen = outcomes(site)
    assert set(seen) == {"infra-v1", 500}
    assert 0.3 * DRAWS - 30 <= seen[500] <= 0.3 * DRAWS + 30


def test_the_share_of_a_choice_answers_500_too(site):
    """A match that needs more than the path (a choice of its location): 1 to a usable
    Service, 1 to one that does not exist: about half get 500."""
    seen = outcomes(site, headers={"X-Half": "yes"})
    assert set(seen) == {"infra-v2", 500}
    assert 0.5 * DRAWS - 35 <= seen[500] <= 0.5 * DRAWS + 35


def test_an_unusable_backend_ref_of_weight_zero_takes_no_share(site):
    assert outcomes(site, "/zero") == {"infra-v1": DRAWS}


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/manual-endpointslices", "manual"),
        ("/headless", "headless"),
        ("/headless-manual-endpointslices", "headless-manual"),
    ],
)
def test_service_types(site, target, expected):
    assert get(site, "types.routes.example", target).backend == expected


@pytest.mark.parametrize("host", ["a.same.example", "b.same.example"])
def test_multiple_gateways_share_a_route(site, host):
    """The shared route answers through both Gateways. Their listeners (one port, one
    hostname) merge on the edge's one set of addresses, so the two dedicated routes'
    `/` is one path: the older route wins it, the newer is reported."""
    assert get(site, host, "/shared").backend == "infra-v1"
    assert get(site, host, "/").backend == "infra-v2"
    (problem,) = [p for p in site.model.problems if p.name == "all-namespaces-dedicated-route"]
    assert problem.code == "conflict"


@pytest.mark.parametrize(
    ("host", "expected"),
    [("example.org", "infra-v1"), ("unknown-example.org", 404), ("second-example.org", "infra-v2")],
)
def test_https_listener(site, host, expected):
    """HTTPRouteHTTPSListener: a route of a hostname on the listener without one, a route
    without a hostname on the listener of one, a host neither serves (404)."""
    answer = request(site.ports.https, host, "/", tls=True)
    if expected == 404:
        assert answer.status == 404
    else:
        assert answer.backend == expected
        assert common_name(answer.certificate) == "example.org"


@pytest.mark.parametrize("host", ["example.org", "second-example.org"])
def test_hostnames_only_https_listeners_serve_are_not_answered_over_http(site, host):
    """The routes of HTTPS listeners only: over plain HTTP the host is the default
    server's, which no route of this site serves (404)."""
    assert get(site, host).status == 404


def test_a_hostname_of_unprogrammed_https_listeners_only_is_not_served():
    """GatewayWithAttachedRoutes' unresolved listener: its route is attached (and
    counted) but nothing serves it, over HTTPS or HTTP."""
    unresolved = listener("tls", 443, "HTTPS", certificates=[{"name": "does-not-exist"}])
    inputs = model.Inputs(
        gateway_classes=[gateway_class()],
        namespaces=[namespace(INFRA)],
        services=[service("infra-backend-v1", {"http": 8080}, namespace=INFRA)],
        gateways=[gateway("unresolved", unresolved, listener())],
        http_routes=[
            http_route(
                "tls-only", [parent("unresolved", sectionName="tls")], hostnames=["t.example"]
            ),
            http_route(
                "plain", [parent("unresolved", sectionName="http")], hostnames=["p.example"]
            ),
        ],
    )
    options = model.Options()
    built, attachment = gateway_routing.build(model.build(inputs, options), inputs, options)
    assert attachment.gateways[0].attached_routes == {"tls": 1, "http": 1}
    assert [(s.host, s.http, s.https) for s in built.servers] == [("p.example", True, False)]
