"""The status every agent computes for the Gateway API objects: the same on each, and
nothing to write once it is there."""

from edgeagent.gateway import conditions, status
from edgeagent.gateway import routing as gateway_routing
from edgeagent.gateway.attachment import attach, index_of
from edgeagent.gateway.options import GatewayOptions
from edgeagent.resources import key_of
from support_gateway import gateway, gateway_class, http_route, listener, namespace, parent
from support_objects import ingress, path, rule, service

from edgeagent import model

ADDRESSES = status.addresses_of(("198.51.100.100", "edge.example.net"))


def world():
    classes = [gateway_class()]
    gateways = [gateway("g", listener())]
    routes = [http_route("r", [parent("g")])]
    index = index_of(
        [],
        [service("infra-backend-v1", {"http": 8080}, namespace="gateway-conformance-infra")],
        [namespace("gateway-conformance-infra")],
        [],
    )
    attachment = attach(classes, gateways, routes, index, GatewayOptions())
    objects = {
        "gateway_classes": {key_of(o): o for o in classes},
        "gateways": {key_of(o): o for o in gateways},
        "http_routes": {key_of(o): o for o in routes},
    }
    return attachment, objects


def written(objects, changes):
    for kind, key, new in changes:
        objects[kind][key] = {**objects[kind][key], "status": new}


def test_addresses_are_ips_or_hostnames():
    assert ADDRESSES == [
        {"type": "IPAddress", "value": "198.51.100.100"},
        {"type": "Hostname", "value": "edge.example.net"},
    ]


def test_once_written_nothing_changes_and_times_stay():
    attachment, objects = world()
    first = status.wanted(attachment, objects, ADDRESSES, "2026-01-01T00:00:00Z")
    assert {kind for kind, _, _ in first} == {"gateway_classes", "gateways", "http_routes"}
    written(objects, first)
    # Another agent, later: the same status, nothing to write.
    assert status.wanted(attachment, objects, ADDRESSES, "2026-01-02T00:00:00Z") == []


def test_a_changed_condition_alone_takes_the_new_time():
    attachment, objects = world()
    written(objects, status.wanted(attachment, objects, ADDRESSES, "2026-01-01T00:00:00Z"))
    objects["http_routes"][("gateway-conformance-infra", "r")]["spec"]["rules"][0]["backendRefs"][
        0
    ]["name"] = "gone"
    index = index_of([], [], [namespace("gateway-conformance-infra")], [])
    changed = attach(
        [gateway_class()],
        [gateway("g", listener())],
        list(objects["http_routes"].values()),
        index,
        GatewayOptions(),
    )
    (change,) = [
        c
        for c in status.wanted(changed, objects, ADDRESSES, "2026-01-03T00:00:00Z")
        if c[0] == "http_routes"
    ]
    (ours,) = change[2]["parents"]
    times = {c["type"]: (c["status"], c["lastTransitionTime"]) for c in ours["conditions"]}
    assert times == {
        "Accepted": ("True", "2026-01-01T00:00:00Z"),
        "ResolvedRefs": ("False", "2026-01-03T00:00:00Z"),
    }


def test_other_controllers_parents_are_kept():
    attachment, objects = world()
    theirs = {"parentRef": {"name": "theirs"}, "controllerName": "example.net/gw", "conditions": []}
    route = objects["http_routes"][("gateway-conformance-infra", "r")]
    route["status"] = {"parents": [theirs]}
    (change,) = [
        c for c in status.wanted(attachment, objects, ADDRESSES, "t") if c[0] == "http_routes"
    ]
    parents = change[2]["parents"]
    assert parents[0] == theirs
    assert parents[1]["controllerName"] == GatewayOptions.controller_name


def test_a_route_that_loses_its_host_to_an_ingress_says_so():
    infra = "gateway-conformance-infra"
    inputs = model.Inputs(
        gateway_classes=[gateway_class()],
        gateways=[gateway("g", listener())],
        http_routes=[http_route("r", [parent("g")], hostnames=["both.example", "own.example"])],
        namespaces=[namespace(infra)],
        services=[service("infra-backend-v1", {"http": 8080}, namespace=infra)],
        ingresses=[
            ingress("i", rule("both.example", path("/", "infra-backend-v1", 8080)), namespace=infra)
        ],
    )
    options = model.Options()
    built, attachment = gateway_routing.build(model.build(inputs, options), inputs, options)
    assert [s.host for s in built.servers] == ["both.example", "own.example"]
    (route,) = attachment.routes
    (told,) = [c for c in route.parents[0].conditions if c.type == conditions.INGRESS_CONFLICT]
    assert (told.status, told.reason) == (True, conditions.INGRESS_WINS)
    assert "host both.example" in told.message
