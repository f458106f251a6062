"""HTTPRoutes served through a real nginx to real HTTP backends, in both modes: the
Gateway API conformance suite's Core HTTPRoute traffic tests, re-expressed, and
Ingress beside Gateway on one edge."""

import collections

import pytest
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
from support_objects import endpoint_slice, ingress, path, rule, service, tls_secret

from edgeagent import cli, model

WEB = "gateway-conformance-web-backend"
APP = "gateway-conformance-app-backend"
OLD = "2020-01-01T00:00:00Z"
NEW = "2021-01-01T00:00:00Z"
# (namespace, Service) -> its echo backends (a Service per backend, port 8080).
BACKENDS = {
    (INFRA, "infra-backend-v1"): ["infra-v1"],
    (INFRA, "infra-backend-v2"): ["infra-v2"],
    (INFRA, "infra-backend-v3"): ["infra-v3-a", "infra-v3-b"],
    (WEB, "web-backend"): ["web"],
    (APP, "app-backend-v1"): ["app-v1"],
    (INFRA, "ingress-web"): ["ingress-web"],
}


def exact(value):
    return {"path": {"type": "Exact", "value": value}}


def prefix(value):
    return {"path": {"type": "PathPrefix", "value": value}}


def routed(matches, *backends):
    return {"matches": matches, "backendRefs": list(backends)}


def header(**values):
    return {"headers": [{"name": name, "value": value} for name, value in values.items()]}


def query(**values):
    return {"queryParams": [{"name": name, "value": value} for name, value in values.items()]}


def objects(backends, certificate) -> model.Inputs:
    inputs = model.Inputs(
        gateway_classes=[gateway_class()],
        namespaces=[namespace(INFRA), namespace(WEB), namespace(APP)],
    )
    for (ns, name), started in BACKENDS.items():
        inputs.services.append(service(name, {"http": 8080}, namespace=ns))
        for each in started:
            inputs.endpoint_slices.append(
                endpoint_slice(
                    name,
                    [(backends[each].host, True)],
                    backends[each].port,
                    namespace=ns,
                    name=each,
                )
            )
    inputs.secrets.append(tls_secret("tls-validity-checks-certificate", certificate, INFRA))
    inputs.gateways.extend(
        [
            gateway("same-namespace", listener()),
            gateway(
                "all-namespaces",
                listener(hostname="*.all.example", allowed_from="All"),
                listener(
                    "https",
                    443,
                    "HTTPS",
                    hostname="secure.example",
                    allowed_from="All",
                    certificates=[{"name": "tls-validity-checks-certificate"}],
                ),
            ),
        ]
    )
    inputs.reference_grants.append(
        reference_grant(WEB, "HTTPRoute", INFRA, "Service", "web-backend")
    )
    v1, v2 = backend_ref("infra-backend-v1"), backend_ref("infra-backend-v2")
    v3 = backend_ref("infra-backend-v3")
    inputs.http_routes.extend(
        [
            # HTTPRouteSimpleSameNamespace: no hostname, no match: everything on the listener.
            http_route("gateway-conformance-infra-test", [parent("same-namespace")]),
            # HTTPRouteExactPathMatching and HTTPRouteMatching (paths).
            http_route(
                "exact-matching",
                [parent("all-namespaces")],
                hostnames=["paths.all.example"],
                rules=[
                    routed([exact("/one")], v1),
                    routed([exact("/two")], v2),
                    routed([prefix("/v2")], v2),
                    routed([prefix("/")], v1),
                ],
            ),
            # HTTPRouteCrossNamespace under a ReferenceGrant;
            # HTTPRouteInvalidCrossNamespaceBackendRef without one.
            http_route(
                "cross-namespace",
                [parent("all-namespaces")],
                hostnames=["cross.all.example"],
                rules=[
                    routed([prefix("/granted")], backend_ref("web-backend", namespace=WEB)),
                    routed([prefix("/refused")], backend_ref("app-backend-v1", namespace=APP)),
                ],
            ),
            # HTTPRouteInvalidNonExistentBackendRef and HTTPRouteInvalidBackendRefUnknownKind: 500.
            http_route(
                "invalid-backends",
                [parent("all-namespaces")],
                hostnames=["invalid.all.example"],
                rules=[
                    routed([prefix("/missing")], backend_ref("does-not-exist")),
                    routed([prefix("/kind")], backend_ref("x", group="example.net", kind="Bucket")),
                    routed([prefix("/none")]),
                ],
            ),
            # HTTPRouteWeight: 70/30 over two Services; one of them has two endpoints.
            http_route(
                "weighted",
                [parent("all-namespaces")],
                hostnames=["weights.all.example"],
                rules=[
                    routed(
                        [prefix("/")],
                        backend_ref("infra-backend-v1", weight=70),
                        backend_ref("infra-backend-v3", weight=30),
                    )
                ],
            ),
            # HTTPRouteHTTPSListener.
            http_route("https", [parent("all-namespaces", sectionName="https")]),
            # HTTPRouteHostnameIntersection: a wildcard route on a wildcard listener.
            http_route(
                "wildcard",
                [parent("all-namespaces")],
                hostnames=["*.wild.all.example", "other.example"],
                rules=[routed([prefix("/")], backend_ref("infra-backend-v2"))],
            ),
            # HTTPRouteMatchingAcrossRoutes: the older route wins a path both claim.
            http_route(
                "older",
                [parent("all-namespaces")],
                hostnames=["both.all.example"],
                rules=[routed([prefix("/shared")], v1)],
                created=OLD,
            ),
            http_route(
                "newer",
                [parent("all-namespaces")],
                hostnames=["both.all.example"],
                rules=[routed([prefix("/shared")], v2), routed([exact("/own")], v2)],
                created=NEW,
            ),
            # HTTPRouteMatchingAcrossRoutes, as the suite writes it.
            http_route(
                "matching-part1",
                [parent("same-namespace")],
                hostnames=["example.com", "example.net"],
                rules=[routed([prefix("/"), header(version="one")], v1)],
            ),
            http_route(
                "matching-part2",
                [parent("same-namespace")],
                hostnames=["example.com"],
                rules=[routed([prefix("/v2"), header(version="two")], v2)],
            ),
            # HTTPRoutePathMatchOrder.
            http_route(
                "path-matching-order",
                [parent("same-namespace")],
                hostnames=["order.example"],
                rules=[
                    routed([exact("/match")], v1),
                    routed([exact("/match/exact")], v2),
                    routed([exact("/match/exact/one")], v3),
                    routed([prefix("/match/")], v3),
                    routed([prefix("/match/prefix/")], v1),
                    routed([prefix("/match/prefix/one")], v2),
                ],
            ),
            # HTTPRouteMethodMatching and HTTPRouteQueryParamMatching, with their precedence:
            # a method match before none, more parameters before fewer.
            http_route(
                "methods-and-parameters",
                [parent("same-namespace")],
                hostnames=["match.example"],
                rules=[
                    routed([{"method": "POST"}], v1),
                    routed([{"method": "GET", "headers": [{"name": "x-a", "value": "1"}]}], v3),
                    routed([{"method": "GET"}], v2),
                    routed([query(animal="whale")], v1),
                    routed([query(animal="dolphin")], v2),
                    routed([query(animal="dolphin", color="blue")], v3),
                ],
            ),
            # Ingress and Gateway on one host: the Ingress wins the host.
            http_route(
                "beside-ingress",
                [parent("all-namespaces")],
                hostnames=["ingress.all.example"],
                rules=[routed([prefix("/")], v2)],
            ),
        ]
    )
    inputs.ingresses.append(
        ingress(
            "web",
            rule("ingress.all.example", path("/", "ingress-web", 8080)),
            namespace=INFRA,
        )
    )
    return inputs


@pytest.fixture(scope="module", params=["static", "dynamic"])
def site(request, tmp_path_factory):
    certificate = cli.self_signed("secure.example", ("secure.example",))
    with echo_site(
        tmp_path_factory.mktemp("gateway"),
        [each for names in BACKENDS.values() for each in names],
        lambda started: objects(started, certificate),
        request.param == "dynamic",
    ) as built:
        yield built


def get(site, host, target="/", **options):
    return request(site.ports.http, host, target, **options)


def test_a_route_without_hostname_or_match_serves_every_path(site):
    for target in ("/", "/anything/at/all"):
        assert get(site, "any.example", target).backend == "infra-v1"


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/one", "infra-v1"),
        ("/two", "infra-v2"),
        ("/two/", "infra-v1"),  # Exact /two does not match /two/
        ("/v2", "infra-v2"),
        ("/v2/example", "infra-v2"),
        ("/v2example", "infra-v1"),  # a prefix matches whole path elements
        ("/", "infra-v1"),
    ],
)
def test_exact_and_prefix_paths(site, target, expected):
    assert get(site, "paths.all.example", target).backend == expected


def test_cross_namespace_backends_need_a_reference_grant(site):
    assert get(site, "cross.all.example", "/granted").backend == "web"
    assert get(site, "cross.all.example", "/refused").status == 500


@pytest.mark.parametrize("target", ["/missing", "/kind", "/none"])
def test_invalid_backend_refs_answer_500(site, target):
    assert get(site, "invalid.all.example", target).status == 500


def test_weights_share_requests_between_services(site):
    seen = collections.Counter(get(site, "weights.all.example").backend for _ in range(100))
    assert set(seen) == {"infra-v1", "infra-v3-a", "infra-v3-b"}
    # Smooth weighted round robin is exact over a whole cycle: 70 to v1, 15 to each of v3's.
    assert seen["infra-v1"] == 70
    assert seen["infra-v3-a"] == seen["infra-v3-b"] == 15


def test_https_listener_serves_its_certificate(site):
    answer = request(site.ports.https, "secure.example", "/", tls=True)
    assert answer.backend == "infra-v1"
    assert common_name(answer.certificate) == "secure.example"


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("a.wild.all.example", "infra-v2"),
        ("a.b.wild.all.example", "infra-v2"),  # a wildcard takes one label or more
        # Outside the listener's *.all.example: not this route's; the hostless route of
        # the other Gateway serves it on the default server.
        ("other.example", "infra-v1"),
    ],
)
def test_wildcard_hostnames_intersect(site, host, expected):
    assert get(site, host).backend == expected


def test_the_oldest_route_wins_a_shared_path(site):
    assert get(site, "both.all.example", "/shared").backend == "infra-v1"
    assert get(site, "both.all.example", "/own").backend == "infra-v2"


def test_an_ingress_wins_a_host_both_apis_serve_and_the_route_is_told(site):
    assert get(site, "ingress.all.example").backend == "ingress-web"
    (problem,) = [p for p in site.model.problems if p.name == "beside-ingress"]
    assert problem.kind == "HTTPRoute" and problem.code == "conflict"
    assert "Ingress" in problem.reason


V3 = {"infra-v3-a", "infra-v3-b"}


@pytest.mark.parametrize(
    ("host", "target", "headers", "expected"),
    [
        ("example.com", "/", {}, {"infra-v1"}),
        ("example.com", "/example", {}, {"infra-v1"}),
        ("example.net", "/example", {}, {"infra-v1"}),
        ("example.com", "/example", {"Version": "one"}, {"infra-v1"}),
        ("example.com", "/v2", {}, {"infra-v2"}),
        ("example.net", "/v2", {}, {"infra-v1"}),
        ("example.com", "/v2/example", {}, {"infra-v2"}),
        ("example.com", "/", {"Version": "two"}, {"infra-v2"}),
    ],
)
def test_matching_across_routes(site, host, target, headers, expected):
    assert get(site, host, target, headers=headers).backend in expected


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/match/exact/one", V3),
        ("/match/exact", {"infra-v2"}),
        ("/match", {"infra-v1"}),
        ("/match/prefix/one/any", {"infra-v2"}),
        ("/match/prefix/any", {"infra-v1"}),
        ("/match/any", V3),
    ],
)
def test_path_match_order(site, target, expected):
    assert get(site, "order.example", target).backend in expected


@pytest.mark.parametrize(
    ("method", "target", "headers", "expected"),
    [
        ("POST", "/", {}, {"infra-v1"}),
        ("GET", "/", {}, {"infra-v2"}),
        ("GET", "/", {"X-A": "1"}, V3),
        ("HEAD", "/?animal=whale", {}, None),  # no body: the status tells
        ("DELETE", "/?animal=whale", {}, {"infra-v1"}),
        ("DELETE", "/?animal=dolphin", {}, {"infra-v2"}),
        ("DELETE", "/?animal=dolphin&color=blue", {}, V3),
        ("DELETE", "/?color=blue&animal=dolphin", {}, V3),
        ("DELETE", "/?animal=shark", {}, 404),
        ("DELETE", "/", {}, 404),
    ],
)
def test_method_and_query_parameter_matches(site, method, target, headers, expected):
    answer = get(site, "match.example", target, method=method, headers=headers)
    if expected is None:
        assert answer.status == 200
    elif expected == 404:
        assert answer.status == 404
    else:
        assert answer.backend in expected
