"""RegularExpression header and query parameter matches (the spec's Implementation-specific
type) through a real nginx to real HTTP backends, in both modes, and the values refused."""

import pytest
from edgeagent.gateway import conditions as c
from edgeagent.gateway.attachment import attach, index_of
from edgeagent.gateway.options import GatewayOptions
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

BACKENDS = {"infra-backend-v1": "v1", "infra-backend-v2": "v2", "infra-backend-v3": "v3"}


def regex(name, value):
    return {"type": "RegularExpression", "name": name, "value": value}


def rules():
    v1, v2, v3 = (backend_ref(name) for name in BACKENDS)
    return [
        {"matches": [{"headers": [regex("x-version", "v[0-9]+")]}], "backendRefs": [v1]},
        # Exact and RegularExpression headers count alike in the precedence: two beat one.
        {
            "matches": [{"headers": [{"name": "x-version", "value": "v2"}, regex("x-b", "b.*")]}],
            "backendRefs": [v2],
        },
        {
            "matches": [{"queryParams": [regex("animal", "whale|dolphin")]}],
            "backendRefs": [v3],
        },
        {"matches": [{"path": {"type": "PathPrefix", "value": "/exact"}}], "backendRefs": [v3]},
    ]


def objects(backends) -> model.Inputs:
    inputs = model.Inputs(
        gateway_classes=[gateway_class()],
        namespaces=[namespace(INFRA)],
        gateways=[gateway("g", listener())],
        http_routes=[http_route("r", [parent("g")], rules(), hostnames=["regex.example"])],
    )
    for name, started in BACKENDS.items():
        inputs.services.append(service(name, {"http": 8080}, namespace=INFRA))
        ready = [(backends[started].host, True)]
        inputs.endpoint_slices.append(
            endpoint_slice(name, ready, backends[started].port, namespace=INFRA, name=started)
        )
    return inputs


@pytest.fixture(scope="module", params=["static", "dynamic"])
def site(request, tmp_path_factory):
    with echo_site(
        tmp_path_factory.mktemp("regex"), BACKENDS.values(), objects, request.param == "dynamic"
    ) as built:
        yield built


@pytest.mark.parametrize(
    ("target", "headers", "expected"),
    [
        ("/", {"X-Version": "v12"}, "v1"),
        ("/", {"X-Version": "v12x"}, 404),  # the whole value must match
        ("/", {"X-Version": "V12"}, 404),  # case-sensitive
        ("/", {"X-Version": "v2", "X-B": "bee"}, "v2"),
        ("/", {"X-Version": "v2"}, "v1"),
        ("/?animal=whale", {}, "v3"),
        ("/?animal=dolphin", {}, "v3"),
        ("/?animal=whales", {}, 404),
        ("/", {}, 404),
        ("/exact", {"X-Version": "v1"}, "v3"),  # a longer prefix first, as the spec says
    ],
)
def test_regular_expression_header_and_query_matches(site, target, headers, expected):
    answer = request(site.ports.http, "regex.example", target, headers=headers)
    if expected == 404:
        assert answer.status == 404
    else:
        assert answer.backend == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("(?=a)", "not a regular expression"),
        ("a)", "not a regular expression"),
        ('a"; return 200 "', "must be 1 to 1024"),
        ("a b", "must be 1 to 1024"),
        ("\\n", "must be 1 to 1024"),
        ("a;b", "must be 1 to 1024"),
        ("a" * 1025, "must be 1 to 1024"),
    ],
)
def test_a_regex_value_outside_the_grammar_refuses_the_route(value, message):
    route = http_route(
        "r", [parent("g")], [{"matches": [{"headers": [regex("x", value)]}], "backendRefs": []}]
    )
    index = index_of([], [], [namespace(INFRA)], [])
    result = attach([gateway_class()], [gateway("g", listener())], [route], index, GatewayOptions())
    (refused,) = result.routes[0].parents[0].conditions
    assert (refused.status, refused.reason) == (False, c.UNSUPPORTED_VALUE)
    assert "headers[0].value" in refused.message and message in refused.message
