"""Which GatewayClasses, Gateways, listeners and HTTPRoutes the edge takes, and their
conditions: the status cases of the Gateway API conformance suite, on the pure core."""

import pytest
from edgeagent.gateway import conditions as c
from edgeagent.gateway import routing as gateway_routing
from edgeagent.gateway.attachment import attach, hostnames_on, index_of, intersect
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
    reference_grant,
)
from support_objects import service, tls_secret

from edgeagent import cli, model

OPTIONS = GatewayOptions()
SERVICES = [service("infra-backend-v1", {"http": 8080}, namespace=INFRA)]
NAMESPACES = [namespace(INFRA), namespace("gateway-conformance-web-backend")]


def run(*, classes=None, gateways=(), routes=(), secrets=(), grants=(), services=SERVICES):
    index = index_of(list(secrets), list(services), NAMESPACES, list(grants))
    classes = [gateway_class()] if classes is None else classes
    return attach(classes, list(gateways), list(routes), index, OPTIONS)


def reasons(conditions):
    return {each.type: (each.status, each.reason) for each in conditions}


def only_gateway(result):
    (state,) = result.gateways
    return state


def listener_named(state, name):
    return next(each for each in state.listeners if each.name == name)


def parent_reasons(result, route_name):
    route = next(r for r in result.routes if r.key[1] == route_name)
    return [reasons(p.conditions) for p in route.parents]


def test_the_served_class_is_accepted_and_other_controllers_classes_are_left_alone():
    result = run(
        classes=[
            gateway_class("edge", generation=3),
            gateway_class("other", controller="example.net/gateway"),
            gateway_class("second-edge-class"),
        ]
    )
    assert result.classes["edge"][0] == 3
    assert reasons(result.classes["edge"][1]) == {c.ACCEPTED: (True, c.ACCEPTED)}
    assert "other" not in result.classes
    assert reasons(result.classes["second-edge-class"][1]) == {c.ACCEPTED: (False, c.UNSUPPORTED)}


def test_a_class_of_our_name_naming_another_controller_is_not_ours():
    result = run(
        classes=[gateway_class("edge", controller="example.net/gateway")],
        gateways=[gateway("g", listener())],
    )
    assert result.classes == {}
    assert result.gateways == ()


def test_gateway_with_attached_routes():
    """GatewayWithAttachedRoutes: attachedRoutes per listener, and a route whose
    hostnames match no listener's is NoMatchingListenerHostname."""
    selector = {"matchLabels": {"kubernetes.io/metadata.name": INFRA}}
    http_only = [{"kind": "HTTPRoute"}]
    one = gateway("one", listener(allowed_from="Selector", selector=selector, kinds=http_only))
    two = gateway(
        "two",
        listener(
            hostname="foo.example.com", allowed_from="Selector", selector=selector, kinds=http_only
        ),
    )
    routes = [
        http_route("http-route-1", [parent("one")]),
        http_route("http-route-2", [parent("two")]),
        http_route("http-route-3", [parent("two")]),
        http_route("http-route-not-accepted", [parent("two")], hostnames=["not-accepted.test.com"]),
    ]
    result = run(gateways=[one, two], routes=routes)
    attached = {state.key[1]: state.attached_routes for state in result.gateways}
    assert attached == {"one": {"http": 1}, "two": {"http": 2}}
    for state in result.gateways:
        assert reasons(state.conditions)[c.PROGRAMMED] == (True, c.PROGRAMMED)
        assert reasons(listener_named(state, "http").conditions) == {
            c.ACCEPTED: (True, c.ACCEPTED),
            c.RESOLVED_REFS: (True, c.RESOLVED_REFS),
            c.PROGRAMMED: (True, c.PROGRAMMED),
            c.CONFLICTED: (False, c.NO_CONFLICTS),
        }
    assert parent_reasons(result, "http-route-not-accepted")[0][c.ACCEPTED] == (
        False,
        c.NO_MATCHING_LISTENER_HOSTNAME,
    )


def test_routes_attach_to_a_listener_with_unresolved_certificates():
    """GatewayWithAttachedRoutes, unresolved part: the listener counts the route but is
    not programmed, and the route's missing backend is ResolvedRefs False."""
    tls = listener("tls", 443, "HTTPS", certificates=[{"name": "does-not-exist"}])
    route = http_route(
        "http-route-4",
        [parent("unresolved", sectionName="tls")],
        rules=[{"backendRefs": [backend_ref("does-not-exist")]}],
    )
    state = only_gateway(run(gateways=[gateway("unresolved", tls)], routes=[route]))
    assert state.attached_routes == {"tls": 1}
    tls_state = reasons(listener_named(state, "tls").conditions)
    assert tls_state[c.RESOLVED_REFS] == (False, c.INVALID_CERTIFICATE_REF)
    assert tls_state[c.PROGRAMMED][0] is False
    result = run(gateways=[gateway("unresolved", tls)], routes=[route])
    assert parent_reasons(result, "http-route-4")[0][c.RESOLVED_REFS] == (
        False,
        c.BACKEND_NOT_FOUND,
    )


def test_gateway_invalid_route_kind():
    kinds = [{"group": "gateway.networking.k8s.io", "kind": "FooRoute"}]
    state = only_gateway(run(gateways=[gateway("g", listener(kinds=kinds))]))
    http = listener_named(state, "http")
    assert http.supported_kinds == ()
    assert reasons(http.conditions)[c.RESOLVED_REFS] == (False, c.INVALID_ROUTE_KINDS)
    mixed = [*kinds, {"kind": "HTTPRoute"}]
    state = only_gateway(run(gateways=[gateway("g", listener(kinds=mixed))]))
    assert listener_named(state, "http").supported_kinds == ("HTTPRoute",)
    assert reasons(listener_named(state, "http").conditions)[c.RESOLVED_REFS][0] is False


def test_gateway_invalid_listeners_unsupported_protocol_and_unexposed_port():
    state = only_gateway(
        run(
            gateways=[
                gateway(
                    "g",
                    listener("udp", 53, "UDP"),
                    listener("alt", 8080, "HTTP"),
                    listener("http"),
                )
            ]
        )
    )
    assert reasons(listener_named(state, "udp").conditions)[c.ACCEPTED] == (
        False,
        c.UNSUPPORTED_PROTOCOL,
    )
    alt = listener_named(state, "alt")
    assert reasons(alt.conditions)[c.ACCEPTED] == (False, c.PORT_UNAVAILABLE)
    assert "port 80 only" in next(x.message for x in alt.conditions if x.type == c.ACCEPTED)
    assert reasons(alt.conditions)[c.PROGRAMMED] == (False, c.INVALID)
    assert reasons(state.conditions)[c.ACCEPTED] == (True, c.LISTENERS_NOT_VALID)
    assert reasons(state.conditions)[c.PROGRAMMED] == (True, c.PROGRAMMED)


def test_a_gateway_without_a_valid_listener_is_neither_accepted_nor_programmed():
    state = only_gateway(run(gateways=[gateway("g", listener("alt", 8080))]))
    assert reasons(state.conditions) == {
        c.ACCEPTED: (False, c.LISTENERS_NOT_VALID),
        c.PROGRAMMED: (False, c.INVALID),
    }


def test_requested_addresses_are_refused():
    requested = gateway("g", listener())
    requested["spec"]["addresses"] = [{"type": "IPAddress", "value": "192.0.2.1"}]
    state = only_gateway(run(gateways=[requested]))
    assert reasons(state.conditions)[c.ACCEPTED] == (False, c.UNSUPPORTED_ADDRESS)


@pytest.mark.parametrize(
    ("grants", "expected"),
    [
        ([], (False, c.REF_NOT_PERMITTED)),
        (
            [reference_grant("certs", "Gateway", INFRA, "Secret", "wrong-name")],
            (False, c.REF_NOT_PERMITTED),
        ),
        (
            [reference_grant("certs", "Gateway", "elsewhere", "Secret")],
            (False, c.REF_NOT_PERMITTED),
        ),
        ([reference_grant("certs", "Gateway", INFRA, "Secret", "cert")], (True, c.RESOLVED_REFS)),
        ([reference_grant("certs", "Gateway", INFRA, "Secret")], (True, c.RESOLVED_REFS)),
    ],
    ids=["missing", "other-name", "other-namespace", "specific", "all-in-namespace"],
)
def test_gateway_secret_reference_grants(grants, expected):
    """GatewaySecretMissingReferenceGrant, ...InvalidReferenceGrant, ...ReferenceGrantSpecific,
    ...ReferenceGrantAllInNamespace."""
    https = listener("https", 443, "HTTPS", certificates=[{"name": "cert", "namespace": "certs"}])
    secret = tls_secret("cert", cli.self_signed("a.example", ("a.example",)), namespace="certs")
    state = only_gateway(run(gateways=[gateway("g", https)], secrets=[secret], grants=grants))
    assert reasons(listener_named(state, "https").conditions)[c.RESOLVED_REFS] == expected


def test_gateway_invalid_tls_configuration():
    """GatewayInvalidTLSConfiguration: a missing or malformed Secret, or a ref to another
    kind, is InvalidCertificateRef."""
    malformed = tls_secret(
        "malformed", cli.self_signed("a.example", ("a.example",)), namespace=INFRA
    )
    malformed["data"]["tls.crt"] = "bm90IGEgY2VydGlmaWNhdGU="
    for ref in (
        {"name": "nonexistent"},
        {"name": "malformed"},
        {"group": "wrong.group", "kind": "Secret", "name": "malformed"},
        {"kind": "WrongKind", "name": "malformed"},
    ):
        https = listener("https", 443, "HTTPS", certificates=[ref])
        state = only_gateway(run(gateways=[gateway("g", https)], secrets=[malformed]))
        conditions = reasons(listener_named(state, "https").conditions)
        assert conditions[c.RESOLVED_REFS] == (False, c.INVALID_CERTIFICATE_REF), ref
        assert conditions[c.PROGRAMMED] == (False, c.INVALID)


def test_listeners_on_one_port_with_one_hostname_conflict():
    state = only_gateway(
        run(
            gateways=[
                gateway(
                    "g",
                    listener("a", hostname="x.example.com"),
                    listener("b", hostname="x.example.com"),
                    listener("c"),
                )
            ]
        )
    )
    assert reasons(listener_named(state, "a").conditions)[c.CONFLICTED] == (
        True,
        c.HOSTNAME_CONFLICT,
    )
    assert reasons(listener_named(state, "a").conditions)[c.PROGRAMMED][0] is False
    assert reasons(listener_named(state, "c").conditions)[c.CONFLICTED] == (False, c.NO_CONFLICTS)


@pytest.mark.parametrize(
    ("ref", "reason"),
    [
        ({"sectionName": "nope"}, c.NO_MATCHING_PARENT),
        ({"port": 443}, c.NO_MATCHING_PARENT),
        ({"sectionName": "http", "port": 443}, c.NO_MATCHING_PARENT),
        ({"sectionName": "http", "port": 80}, c.ACCEPTED),
    ],
    ids=["section-name", "port", "section-name-not-matching-port", "both-match"],
)
def test_httproute_parent_ref_selects_listeners(ref, reason):
    """HTTPRouteInvalidParentRefNotMatchingSectionName, ...NotMatchingListenerPort,
    ...SectionNameNotMatchingPort."""
    result = run(
        gateways=[gateway("g", listener())], routes=[http_route("r", [parent("g", **ref)])]
    )
    assert parent_reasons(result, "r")[0][c.ACCEPTED][1] == reason
    assert only_gateway(result).attached_routes == {"http": int(reason == c.ACCEPTED)}


def test_httproute_invalid_cross_namespace_parent_ref():
    """A route in another namespace, listener allowedRoutes Same: NotAllowedByListeners."""
    route = http_route("r", [parent("g")], namespace="gateway-conformance-web-backend")
    result = run(gateways=[gateway("g", listener())], routes=[route])
    assert parent_reasons(result, "r")[0][c.ACCEPTED] == (False, c.NOT_ALLOWED_BY_LISTENERS)
    allowed = run(gateways=[gateway("g", listener(allowed_from="All"))], routes=[route])
    assert parent_reasons(allowed, "r")[0][c.ACCEPTED] == (True, c.ACCEPTED)


@pytest.mark.parametrize(
    ("ref", "grants", "reason"),
    [
        (backend_ref("infra-backend-v1"), [], c.RESOLVED_REFS),
        (
            backend_ref("web-backend", namespace="gateway-conformance-web-backend"),
            [],
            c.REF_NOT_PERMITTED,
        ),
        (
            backend_ref("web-backend", namespace="gateway-conformance-web-backend"),
            [
                reference_grant(
                    "gateway-conformance-web-backend", "HTTPRoute", INFRA, "Service", "web-backend"
                )
            ],
            c.RESOLVED_REFS,
        ),
        (backend_ref("nonexistent"), [], c.BACKEND_NOT_FOUND),
        (backend_ref("infra-backend-v1", port=9), [], c.BACKEND_NOT_FOUND),
        (backend_ref("x", group="unknownkind.example.com", kind="NonExistent"), [], c.INVALID_KIND),
    ],
    ids=[
        "same-namespace",
        "cross-namespace",
        "reference-grant",
        "nonexistent",
        "no-such-port",
        "unknown-kind",
    ],
)
def test_httproute_backend_refs_resolve(ref, grants, reason):
    """HTTPRouteInvalidCrossNamespaceBackendRef, HTTPRouteReferenceGrant,
    HTTPRouteInvalidNonExistentBackendRef, HTTPRouteInvalidBackendRefUnknownKind: the
    route stays Accepted and says why in ResolvedRefs."""
    services = [
        *SERVICES,
        service("web-backend", {"http": 8080}, namespace="gateway-conformance-web-backend"),
    ]
    route = http_route("r", [parent("g")], rules=[{"backendRefs": [ref]}])
    result = run(
        gateways=[gateway("g", listener())], routes=[route], grants=grants, services=services
    )
    (conditions,) = parent_reasons(result, "r")
    assert conditions[c.ACCEPTED] == (True, c.ACCEPTED)
    assert conditions[c.RESOLVED_REFS] == (reason == c.RESOLVED_REFS, reason)


def test_routes_for_other_gateways_get_no_status_from_us():
    foreign = gateway("theirs", listener(), gateway_class_name="other")
    route = http_route("r", [parent("theirs"), parent("missing")])
    result = run(gateways=[foreign], routes=[route])
    assert result.routes == ()
    assert result.gateways == ()


def test_an_unsupported_route_is_refused_with_the_field_named():
    prefix = {"type": "Prefix", "name": "version", "value": "o"}
    rules = [{"matches": [{"headers": [prefix]}], "backendRefs": []}]
    route = http_route("r", [parent("g")], rules=rules)
    result = run(gateways=[gateway("g", listener())], routes=[route])
    (state,) = result.routes
    (refused,) = state.parents[0].conditions
    assert (refused.type, refused.status, refused.reason) == (
        c.ACCEPTED,
        False,
        c.UNSUPPORTED_VALUE,
    )
    assert "spec.rules[0].matches[0].headers[0].type" in refused.message
    assert result.bindings == ()


@pytest.mark.parametrize(
    ("listener_host", "route_host", "expected"),
    [
        (None, "very.specific.com", "very.specific.com"),
        ("very.specific.com", "very.specific.com", "very.specific.com"),
        ("*.wildcard.io", "foo.bar.wildcard.io", "foo.bar.wildcard.io"),
        ("*.wildcard.io", "wildcard.io", None),
        ("foo.wildcard.io", "*.wildcard.io", "foo.wildcard.io"),
        ("*.anotherwildcard.io", "*.foo.anotherwildcard.io", "*.foo.anotherwildcard.io"),
        ("*.foo.anotherwildcard.io", "*.anotherwildcard.io", "*.foo.anotherwildcard.io"),
        ("very.specific.com", "non.matching.com", None),
    ],
)
def test_hostname_intersection(listener_host, route_host, expected):
    """HTTPRouteHostnameIntersection and HTTPRouteListenerHostnameMatching."""
    assert intersect(listener_host, route_host) == expected


def test_a_route_without_hostnames_takes_the_listener_s():
    result = run(
        gateways=[gateway("g", listener(hostname="*.example.com"))],
        routes=[http_route("r", [parent("g")])],
    )
    (binding,) = result.bindings
    assert binding.hostnames == ("*.example.com",)
    (state,) = result.gateways
    assert hostnames_on(state.listeners[0], ("a.example.com", "b.example.net")) == (
        "a.example.com",
    )


def test_names_that_would_reach_nginx_are_checked():
    """Every value that reaches nginx's configuration passes the grammar: a route or a
    certificate named outside it is refused, not rendered."""
    route = http_route("bad;name", [parent("g")])
    https = listener("https", 443, "HTTPS", certificates=[{"name": "x;y"}])
    result = run(gateways=[gateway("g", listener(), https)], routes=[route])
    (refused,) = result.routes[0].parents[0].conditions
    assert (refused.status, refused.reason) == (False, c.UNSUPPORTED_VALUE)
    assert "metadata.name" in refused.message
    https_state = reasons(listener_named(only_gateway(result), "https").conditions)
    assert https_state[c.RESOLVED_REFS] == (False, c.INVALID_CERTIFICATE_REF)


def test_malformed_objects_are_read_as_absent_fields():
    broken = gateway("g", listener())
    broken["spec"]["listeners"] = [{"name": 7, "port": "eighty"}, "junk"]
    route = http_route("r", [parent("g"), "junk"], rules="not a list")
    result = run(gateways=[broken], routes=[route, {"metadata": "junk"}])
    (state,) = result.gateways
    assert reasons(state.conditions)[c.ACCEPTED] == (False, c.LISTENERS_NOT_VALID)
    (route_state,) = result.routes
    assert route_state.route is None


def test_listeners_of_several_gateways_on_one_port_merge_unless_their_certificates_differ():
    """One nginx serves every Gateway: listeners on one port merge, but one server can
    present one certificate. The oldest Gateway's HTTPS listener keeps a hostname; a
    newer one's with other certificates is Conflicted and not programmed, one with the
    same certificates merges."""
    pair = cli.self_signed("secure.example", ("secure.example",))
    secrets = [tls_secret(name, pair, namespace=INFRA) for name in ("first", "second")]

    def https_gateway(name, secret, created):
        https = listener(
            "https", 443, "HTTPS", hostname="secure.example", certificates=[{"name": secret}]
        )
        made = gateway(name, https, listener())
        made["metadata"]["creationTimestamp"] = created
        return made

    result = run(
        gateways=[
            https_gateway("newer", "second", "2021-01-01T00:00:00Z"),
            https_gateway("same-certificate", "first", "2022-01-01T00:00:00Z"),
            https_gateway("older", "first", "2020-01-01T00:00:00Z"),
        ],
        secrets=secrets,
    )
    states = {state.key[1]: state for state in result.gateways}
    assert list(states) == ["newer", "older", "same-certificate"]  # written in key order
    for name in ("older", "same-certificate"):
        conditions = reasons(listener_named(states[name], "https").conditions)
        assert conditions[c.CONFLICTED] == (False, c.NO_CONFLICTS), name
        assert conditions[c.PROGRAMMED] == (True, c.PROGRAMMED), name
    https = listener_named(states["newer"], "https")
    conditions = reasons(https.conditions)
    assert conditions[c.CONFLICTED] == (True, c.HOSTNAME_CONFLICT)
    assert conditions[c.PROGRAMMED] == (False, c.INVALID)
    (conflicted,) = [x for x in https.conditions if x.type == c.CONFLICTED]
    assert "Gateway gateway-conformance-infra/older" in conflicted.message
    # The HTTP listeners of all three merge on port 80.
    for state in states.values():
        assert reasons(listener_named(state, "http").conditions)[c.PROGRAMMED] == (
            True,
            c.PROGRAMMED,
        )


def test_a_hostname_two_gateways_serve_keeps_the_older_gateways_certificate():
    """Whatever the routes' ages: the certificate follows the listener that holds it."""
    pair = cli.self_signed("secure.example", ("secure.example",))
    inputs = model.Inputs(
        gateway_classes=[gateway_class()],
        namespaces=NAMESPACES,
        services=SERVICES,
        secrets=[tls_secret(name, pair, namespace=INFRA) for name in ("first", "second")],
    )
    for name, secret, created in (("older", "first", "2020"), ("newer", "second", "2021")):
        https = listener(
            "https", 443, "HTTPS", hostname="secure.example", certificates=[{"name": secret}]
        )
        made = gateway(name, https)
        made["metadata"]["creationTimestamp"] = f"{created}-01-01T00:00:00Z"
        inputs.gateways.append(made)
        # The newer Gateway's route is the older route.
        route_created = "2019-01-01T00:00:00Z" if name == "newer" else "2022-01-01T00:00:00Z"
        inputs.http_routes.append(http_route(name, [parent(name)], created=route_created))
    options = model.Options()
    built, _ = gateway_routing.build(model.build(inputs, options), inputs, options)
    (server,) = built.servers
    assert (server.host, server.certificate) == ("secure.example", (INFRA, "first"))
