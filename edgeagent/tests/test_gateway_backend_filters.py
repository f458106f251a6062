"""Filters on one of several backendRefs, through a real nginx to real HTTP backends, in
both modes: the conformance suite's HTTPRouteRequestHeaderModifierBackendWeights as it
writes it, and HTTPRouteBackendRequestHeaderModifier's filters on one of several
backendRefs, beside the rule's own filters, an unusable backendRef and a header match.
The weighted choice picks the backendRef (drawn per request), then its filters apply."""

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
)
from support_http import request
from support_nginx import echo_site
from support_objects import endpoint_slice, service

from edgeagent import model

BACKENDS = ("infra-backend-v1", "infra-backend-v2")
# Requests per weighted case: each count is binomial; the bounds below are more than
# four standard deviations wide, so a fair draw fails them about once in 10^5.
DRAWS = 200


def request_headers(**values):
    changes = [{"name": name.replace("_", "-"), "value": v} for name, v in values.items()]
    return {"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": changes}}


def response_headers(**values):
    changes = [{"name": name.replace("_", "-"), "value": v} for name, v in values.items()]
    return {"type": "ResponseHeaderModifier", "responseHeaderModifier": {"add": changes}}


def objects(backends) -> model.Inputs:
    inputs = model.Inputs(
        gateway_classes=[gateway_class()],
        namespaces=[namespace(INFRA)],
        gateways=[gateway("same-namespace", listener())],
    )
    for name in BACKENDS:
        inputs.services.append(service(name, {"http": 8080}, namespace=INFRA))
        started = backends[name]
        inputs.endpoint_slices.append(
            endpoint_slice(name, [(started.host, True)], started.port, namespace=INFRA)
        )
    v1, v2 = backend_ref("infra-backend-v1"), backend_ref("infra-backend-v2")
    inputs.http_routes.extend(
        [
            # HTTPRouteRequestHeaderModifierBackendWeights, as the suite writes it.
            http_route(
                "request-header-modifier-backend-weights",
                [parent("same-namespace")],
                hostnames=["weights.example"],
                rules=[
                    {
                        "backendRefs": [
                            v1 | {"weight": 10, "filters": [request_headers(Backend=v1["name"])]},
                            v2 | {"weight": 10, "filters": [request_headers(Backend=v2["name"])]},
                        ]
                    }
                ],
            ),
            # One of several backendRefs filtered, after the rule's filters; an unusable
            # one's share answers 500; on a location's own target and on a header choice.
            http_route(
                "one-of-several",
                [parent("same-namespace")],
                hostnames=["several.example"],
                rules=[
                    {
                        "filters": [request_headers(X_Rule="all")],
                        "backendRefs": [
                            v1
                            | {
                                "weight": 3,
                                "filters": [
                                    request_headers(X_Backend="v1"),
                                    response_headers(X_Answered="v1"),
                                ],
                            },
                            v2 | {"weight": 1},
                        ],
                    },
                    {
                        "matches": [
                            {
                                "path": {"type": "PathPrefix", "value": "/"},
                                "headers": [{"name": "x-choice", "value": "yes"}],
                            }
                        ],
                        "backendRefs": [
                            v1 | {"weight": 1},
                            v2 | {"weight": 1, "filters": [request_headers(X_Backend="v2")]},
                            backend_ref("does-not-exist", weight=2),
                        ],
                    },
                ],
            ),
        ]
    )
    return inputs


@pytest.fixture(scope="module", params=["static", "dynamic"])
def site(request, tmp_path_factory):
    with echo_site(
        tmp_path_factory.mktemp("backend-filters"),
        BACKENDS,
        objects,
        request.param == "dynamic",
    ) as built:
        yield built


def answers(site, host, headers=None):
    return [request(site.ports.http, host, "/", headers=headers) for _ in range(DRAWS)]


def test_request_header_modifier_backend_weights(site):
    """Each request reaches the backendRef whose filter set its `Backend` header, and
    both are drawn, about half each."""
    seen = answers(site, "weights.example")
    for answer in seen:
        assert answer.status == 200
        assert answer.echo["headers"]["backend"] == answer.backend
    counts = collections.Counter(answer.backend for answer in seen)
    assert set(counts) == set(BACKENDS)
    assert 0.5 * DRAWS - 30 <= counts["infra-backend-v1"] <= 0.5 * DRAWS + 30


def test_the_filters_of_one_of_several_backend_refs_apply_to_its_requests_only(site):
    seen = answers(site, "several.example")
    counts = collections.Counter(answer.backend for answer in seen)
    assert set(counts) == set(BACKENDS)
    assert 0.75 * DRAWS - 26 <= counts["infra-backend-v1"] <= 0.75 * DRAWS + 26
    for answer in seen:
        headers = answer.echo["headers"]
        assert headers["x-rule"] == "all"  # the rule's, on every request
        if answer.backend == "infra-backend-v1":
            assert headers["x-backend"] == "v1"
            assert answer.headers["x-answered"] == "v1"
        else:
            assert "x-backend" not in headers
            assert "x-answered" not in answer.headers


def test_on_a_choice_beside_an_unusable_backend_ref(site):
    """1 to v1, 1 to v2 (filtered), 2 to a Service that does not exist: about half the
    requests get 500, the others their backendRef's filters."""
    seen = answers(site, "several.example", headers={"X-Choice": "yes"})
    counts = collections.Counter(a.backend if a.status == 200 else a.status for a in seen)
    assert set(counts) == {*BACKENDS, 500}
    assert 0.5 * DRAWS - 35 <= counts[500] <= 0.5 * DRAWS + 35
    for answer in seen:
        if answer.status != 200:
            continue
        headers = answer.echo["headers"]
        assert "x-rule" not in headers  # the other rule's filter
        assert headers.get("x-backend") == ("v2" if answer.backend == "infra-backend-v2" else None)
