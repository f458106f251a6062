"""The conformance suite's Core status tests that test_gateway_attachment.py does not
hold, on the pure core: GatewayInvalidParametersRef, GatewayNameMaximumLength and the
status part of HTTPRouteMultipleGateways (its traffic: test_gateway_conformance_traffic.py)."""

from edgeagent.gateway import conditions as c
from edgeagent.gateway import status
from edgeagent.gateway.attachment import attach, index_of
from edgeagent.gateway.options import GatewayOptions
from edgeagent.resources import key_of
from support_gateway import INFRA, gateway, gateway_class, http_route, listener, namespace, parent
from support_objects import service

SERVICES = [
    service(name, {"http": 8080}, namespace=INFRA)
    for name in ("infra-backend-v1", "infra-backend-v2", "infra-backend-v3")
]


def run(gateways, routes=()):
    index = index_of([], SERVICES, [namespace(INFRA)], [])
    return attach([gateway_class()], list(gateways), list(routes), index, GatewayOptions())


def reasons(conditions):
    return {each.type: (each.status, each.reason) for each in conditions}


def test_gateway_invalid_parameters_ref():
    """GatewayInvalidParametersRef: the edge takes no parameters, so a Gateway naming
    any is not Accepted (InvalidParameters), programs nothing and takes no route."""
    named = gateway("gateway-invalid-parameters-ref", listener())
    named["spec"]["infrastructure"] = {
        "parametersRef": {"group": "invalid.io", "kind": "InvalidParameters", "name": "invalid"}
    }
    route = http_route("r", [parent("gateway-invalid-parameters-ref")])
    result = run([named], [route])
    (state,) = result.gateways
    found = reasons(state.conditions)
    assert found[c.ACCEPTED] == (False, c.INVALID_PARAMETERS)
    assert found[c.PROGRAMMED][0] is False
    assert not result.bindings
    (route_state,) = result.routes
    assert reasons(route_state.parents[0].conditions)[c.ACCEPTED] == (False, c.NO_MATCHING_PARENT)
    # Infrastructure without a parametersRef (labels, annotations) changes nothing.
    plain = gateway("plain", listener())
    plain["spec"]["infrastructure"] = {"labels": {"team": "edge"}}
    (state,) = run([plain]).gateways
    assert reasons(state.conditions)[c.ACCEPTED] == (True, c.ACCEPTED)


def test_gateway_name_maximum_length():
    """GatewayNameMaximumLength: a Gateway of a 253-character name (the API's longest) is
    reconciled: its conditions carry its generation, and routes attach to it."""
    prefix = "gateway-name-maximum-length-"
    name = prefix + "a" * (253 - len(prefix))
    longest = gateway(name, listener())
    longest["metadata"]["generation"] = 4
    route = http_route("r", [parent(name)])
    attachment = run([longest], [route])
    (state,) = attachment.gateways
    assert reasons(state.conditions)[c.ACCEPTED] == (True, c.ACCEPTED)
    assert state.attached_routes == {"http": 1}
    objects = {
        "gateway_classes": {key_of(gateway_class()): gateway_class()},
        "gateways": {key_of(longest): longest},
        "http_routes": {key_of(route): route},
    }
    changes = status.wanted(attachment, objects, [], "2026-01-01T00:00:00Z")
    (written,) = [new for kind, key, new in changes if kind == "gateways"]
    assert {each["type"] for each in written["conditions"]} >= {c.ACCEPTED, c.PROGRAMMED}
    assert {each["observedGeneration"] for each in written["conditions"]} == {4}


def test_httproute_multiple_gateways_status():
    """HTTPRouteMultipleGateways: a route naming two Gateways is accepted by each, and
    each Gateway's own route by it alone."""
    gateways = [gateway("same-namespace", listener()), gateway("all-namespaces", listener())]
    routes = [
        http_route(
            "multiple-gateways-shared-route", [parent("same-namespace"), parent("all-namespaces")]
        ),
        http_route("same-namespace-dedicated-route", [parent("same-namespace")]),
        http_route("all-namespaces-dedicated-route", [parent("all-namespaces")]),
    ]
    result = run(gateways, routes)
    attached = {state.key[1]: state.attached_routes for state in result.gateways}
    assert attached == {"same-namespace": {"http": 2}, "all-namespaces": {"http": 2}}
    for route in result.routes:
        for each in route.parents:
            assert reasons(each.conditions)[c.ACCEPTED] == (True, c.ACCEPTED)
    shared = next(r for r in result.routes if r.key[1] == "multiple-gateways-shared-route")
    assert len(shared.parents) == 2
