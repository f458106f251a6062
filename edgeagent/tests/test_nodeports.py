"""The NodePort backend mode (issue 15): which Nodes and ports model.build proxies to, for
Ingresses and HTTPRoutes, and how the backend policy judges Node addresses."""

import pytest
import support_objects as objects
from agentlab import VIP
from edgeagent.backends import BackendPolicy
from edgeagent.gateway import routing
from support_gateway import INFRA, gateway, gateway_class, http_route, listener, namespace, parent

from edgeagent import controller, model, nodeports, resources

NODE_PORT = 30080
POD = "10.244.1.5"


def node(name, address, ready="True", unschedulable=False, labels=None, cidr="10.244.0.0/16"):
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"podCIDRs": [cidr], **({"unschedulable": True} if unschedulable else {})},
        "status": {
            "addresses": [
                {"type": "Hostname", "address": name},
                {"type": "InternalIP", "address": address},
            ],
            "conditions": [
                {"type": "MemoryPressure", "status": "False"},
                {"type": "Ready", "status": ready, "lastHeartbeatTime": "2026-12-06T20:00:00Z"},
            ],
        },
    }


NODES = [
    node("node-a", "192.0.2.11", labels={nodeports.ZONE_LABEL: "zone-a"}),
    node("node-b", "192.0.2.12"),
    node("node-c", "192.0.2.13", ready="False"),
    node("node-d", "192.0.2.14", unschedulable=True),
    node("node-e", "192.0.2.15", labels={nodeports.EXCLUDE_LABEL: ""}),
]


def service(name="app", node_port=NODE_PORT, annotations=None, **spec):
    obj = objects.service(name, {"http": 80})
    if node_port is not None:
        obj["spec"].update(type="NodePort")
        obj["spec"]["ports"][0]["nodePort"] = node_port
    obj["spec"].update(spec)
    if annotations:
        obj["metadata"]["annotations"] = annotations
    return obj


def endpoints_on(service_name, *node_names):
    """A slice with one ready pod per Node named, on that Node."""
    obj = objects.endpoint_slice(service_name, [(POD, True)] * len(node_names), 8080)
    for endpoint, name in zip(obj["endpoints"], node_names, strict=True):
        endpoint["nodeName"] = name
    return obj


def inputs(services, slices=None, nodes=NODES, **kinds):
    names = [s["metadata"]["name"] for s in services]
    if slices is None:
        slices = [endpoints_on(n, "node-a") for n in names]
    return model.Inputs(
        ingresses=[
            objects.ingress(
                "app", *(objects.rule(f"{n}.example.com", objects.path("/", n)) for n in names)
            )
        ],
        services=services,
        endpoint_slices=slices,
        nodes=list(nodes),
        **kinds,
    )


def options(mode="nodeport", **others):
    policy = BackendPolicy(vips=(VIP,))
    return model.Options(backend_mode=mode, backends=others.pop("backends", policy), **others)


def upstream_of(built, service_name="app"):
    return next((u for u in built.upstreams if u.service == service_name), None)


def test_the_nodeport_of_every_ready_schedulable_included_node():
    """Not Ready, cordoned and excluded Nodes take no traffic; the Node addresses are
    outside the pods' networks and still backends, in this mode."""
    built = model.build(inputs([service()]), options())
    assert upstream_of(built).endpoints == ("192.0.2.11:30080", "192.0.2.12:30080")
    assert not built.problems


def test_the_endpoints_mode_proxies_to_the_pods_and_never_to_the_nodes():
    built = model.build(inputs([service()]), options("endpoints"))
    assert upstream_of(built).endpoints == (f"{POD}:8080",)
    # A tenant's EndpointSlice that names a Node is still judged by the pod networks.
    slices = [objects.endpoint_slice("app", [("192.0.2.11", True)], 8080)]
    built = model.build(inputs([service()], slices), options("endpoints"))
    assert upstream_of(built) is None
    assert [p.kind for p in built.problems] == ["EndpointSlice"]


def test_external_traffic_policy_local_keeps_the_nodes_holding_a_ready_endpoint():
    local = service(externalTrafficPolicy="Local")
    for holding, expected in [
        (("node-b",), ("192.0.2.12:30080",)),
        (("node-a", "node-b", "node-d"), ("192.0.2.11:30080", "192.0.2.12:30080")),
    ]:
        built = model.build(inputs([local], [endpoints_on("app", *holding)]), options())
        assert upstream_of(built).endpoints == expected
    not_ready = endpoints_on("app", "node-a")
    not_ready["endpoints"][0]["conditions"] = {"ready": False}
    assert upstream_of(model.build(inputs([local], [not_ready]), options())) is None


def test_a_service_annotation_overrides_the_agents_mode_either_way():
    to_pods = service(annotations={nodeports.BACKEND_MODE_ANNOTATION: "endpoints"})
    to_nodes = service("api", annotations={nodeports.BACKEND_MODE_ANNOTATION: "nodeport"})
    for mode in nodeports.BACKEND_MODES:
        built = model.build(inputs([to_pods, to_nodes]), options(mode))
        assert upstream_of(built, "app").endpoints == (f"{POD}:8080",)
        assert upstream_of(built, "api").endpoints == ("192.0.2.11:30080", "192.0.2.12:30080")


def test_a_bad_mode_annotation_is_reported_and_the_agents_mode_serves():
    bad = service(annotations={nodeports.BACKEND_MODE_ANNOTATION: "pods"})
    built = model.build(inputs([bad]), options("nodeport"))
    assert upstream_of(built).endpoints == ("192.0.2.11:30080", "192.0.2.12:30080")
    (problem,) = built.problems
    assert (problem.kind, problem.name, problem.code) == ("Service", "app", "invalid")
    assert "not one of endpoints, nodeport" in problem.reason


def test_a_service_without_a_nodeport_is_refused_and_the_others_serve():
    built = model.build(inputs([service("internal", node_port=None), service()]), options())
    assert upstream_of(built, "internal") is None
    assert upstream_of(built).endpoints == ("192.0.2.11:30080", "192.0.2.12:30080")
    (problem,) = built.problems
    assert (problem.kind, problem.name, problem.code) == ("Service", "internal", "backend")
    assert "port 80 has no nodePort (type 'ClusterIP')" in problem.reason
    internal = next(s for s in built.servers if s.host == "internal.example.com")
    assert {loc.status for loc in internal.locations} == {model.STATUS_NO_ENDPOINT}


@pytest.mark.parametrize(
    ("address", "why"),
    [(VIP, "a VIP of the edge"), ("127.0.0.1", "loopback"), ("169.254.0.9", "link-local")],
)
def test_node_addresses_are_still_refused_where_no_backend_may_be(address, why):
    nodes = [node("node-a", "192.0.2.11"), node("node-x", address)]
    built = model.build(inputs([service()], nodes=nodes), options())
    assert upstream_of(built).endpoints == ("192.0.2.11:30080",)
    (problem,) = built.problems
    assert (problem.kind, problem.name, problem.code) == ("Node", "node-x", "backend")
    assert why in problem.reason


def test_zone_weights_weigh_the_nodes_by_their_zone_label():
    weighted = service(annotations={model.ZONE_WEIGHTS_ANNOTATION: "zone-a=3"})
    built = model.build(inputs([weighted]), options())
    assert upstream_of(built).weighted == (("192.0.2.11:30080", 3), ("192.0.2.12:30080", 1))


def test_a_memo_does_not_outlive_a_change_of_the_nodes():
    memo = model.Memo()
    world = inputs([service()])
    assert len(upstream_of(model.build(world, options(), memo)).endpoints) == 2
    cordoned = [node("node-a", "192.0.2.11", unschedulable=True), *NODES[1:]]
    changed = model.Inputs(**{**vars(world), "nodes": cordoned})
    assert upstream_of(model.build(changed, options(), memo)).endpoints == ("192.0.2.12:30080",)


def test_a_memo_gives_what_a_fresh_build_gives_as_nodes_and_modes_change():
    pods = service("pods", annotations={nodeports.BACKEND_MODE_ANNOTATION: "endpoints"})
    memo = model.Memo()
    changes = [
        NODES,
        [node("node-a", "192.0.2.11", ready="False"), *NODES[1:]],
        [*NODES, node("node-f", "192.0.2.16")],
        NODES[1:],
    ]
    same = inputs([service(), pods])  # the same objects each time, as the watch cache's
    for nodes in changes:
        world = model.Inputs(**{**vars(same), "nodes": nodes})
        assert model.build(world, options(), memo) == model.build(world, options())


def test_http_routes_use_the_same_nodes_and_ports():
    route = http_route("web", [parent("edge")], hostnames=["web.example.com"])
    route["spec"]["rules"][0]["backendRefs"] = [{"name": "app", "port": 80}]
    app = service()
    app["metadata"]["namespace"] = INFRA
    slices = [endpoints_on("app", "node-a")]
    slices[0]["metadata"]["namespace"] = INFRA
    world = model.Inputs(
        gateway_classes=[gateway_class()],
        namespaces=[namespace(INFRA)],
        gateways=[gateway("edge", listener())],
        http_routes=[route],
        services=[app],
        endpoint_slices=slices,
        nodes=NODES,
    )
    built, _ = routing.build(model.build(world, options()), world, options())
    (upstream,) = built.upstreams
    assert upstream.endpoints == ("192.0.2.11:30080", "192.0.2.12:30080")
    built, _ = routing.build(model.build(world, options("endpoints")), world, options("endpoints"))
    assert built.upstreams[0].endpoints == (f"{POD}:8080",)


def test_a_node_heartbeat_costs_no_sync_but_readiness_and_cordon_do():
    """The controller's relevance filter reads `Resource.content`: kubelet rewrites the
    conditions' heartbeat times on its own, which can change nothing."""
    relevant = controller.Controller.relevant.__get__(_FilterOnly())
    before = node("node-a", "192.0.2.11")
    heartbeat = node("node-a", "192.0.2.11")
    heartbeat["status"]["conditions"][1]["lastHeartbeatTime"] = "2026-12-06T20:05:00Z"
    heartbeat["metadata"]["resourceVersion"] = "2"
    assert not relevant("nodes", before, heartbeat)
    assert relevant("nodes", before, node("node-a", "192.0.2.11", ready="False"))
    assert relevant("nodes", before, node("node-a", "192.0.2.11", unschedulable=True))
    assert relevant("nodes", before, node("node-a", "192.0.2.99"))
    assert relevant("nodes", before, node("node-a", "192.0.2.11", cidr="10.245.0.0/16"))
    assert relevant("nodes", None, before)
    assert resources.BY_NAME["nodes"].content is nodeports.node_content


class _FilterOnly:
    """What `Controller.relevant` reads of its controller for a kind without references."""

    _references = controller.References()
