"""The agent against the API emulator: a GRPCRoute created with the official client is
watched, attached and given its status (RBAC's grpcroutes and grpcroutes/status), and an
HTTPRoute created later on the same hostname loses it, as the GRPCRoute spec says."""

import kubernetes
import pytest
from agentlab import Edge, eventually
from edgeagent.resources import GATEWAY_GROUP
from support_gateway import gateway, gateway_class, http_route, listener, parent

NS = "default"
V1 = (GATEWAY_GROUP, "v1")


@pytest.fixture(scope="module")
def custom(tmp_path_factory):
    with Edge(tmp_path_factory.mktemp("edge")) as edge:
        edge.agent.wait_ready()
        api = kubernetes.client.CustomObjectsApi(edge.api.api_client())
        api.create_cluster_custom_object(*V1, "gatewayclasses", gateway_class())
        edge.apply_service("grpc-echo", addresses=["127.0.0.2"])
        api.create_namespaced_custom_object(
            *V1, NS, "gateways", gateway("edge", listener(), namespace=NS)
        )
        yield api


def conditions(parent_status):
    return {c["type"]: (c["status"], c["reason"]) for c in parent_status["conditions"]}


def route(kind, name, hostnames):
    body = http_route(
        name,
        [parent("edge", namespace=None)],
        rules=[{"backendRefs": [{"name": "grpc-echo", "port": 80}]}],
        hostnames=hostnames,
        namespace=NS,
    )
    body["kind"] = kind
    return body


def parents(custom, plural, name):
    status = custom.get_namespaced_custom_object(*V1, NS, plural, name).get("status") or {}
    return status.get("parents") or []


def test_a_grpcroute_gets_its_status_and_a_later_httproute_on_its_hostname_loses(custom):
    custom.create_namespaced_custom_object(
        *V1, NS, "grpcroutes", route("GRPCRoute", "calls", ["calls.example"])
    )
    eventually(lambda: parents(custom, "grpcroutes", "calls"))
    (grpc_parent,) = parents(custom, "grpcroutes", "calls")
    assert grpc_parent["controllerName"] == "edgeagent.io/gateway-controller"
    assert conditions(grpc_parent) == {
        "Accepted": ("True", "Accepted"),
        "ResolvedRefs": ("True", "ResolvedRefs"),
    }

    custom.create_namespaced_custom_object(
        *V1, NS, "httproutes", route("HTTPRoute", "pages", ["calls.example"])
    )
    eventually(lambda: parents(custom, "httproutes", "pages"))
    (http_parent,) = parents(custom, "httproutes", "pages")
    assert conditions(http_parent)["Accepted"] == ("False", "Conflicted")
    assert "GRPCRoute default/calls" in http_parent["conditions"][0]["message"]
    (grpc_parent,) = parents(custom, "grpcroutes", "calls")
    assert conditions(grpc_parent)["Accepted"] == ("True", "Accepted")
    listeners = custom.get_namespaced_custom_object(*V1, NS, "gateways", "edge")["status"][
        "listeners"
    ]
    (http,) = listeners
    assert http["attachedRoutes"] == 1
    kinds = [each["kind"] for each in http["supportedKinds"]]
    assert kinds == ["HTTPRoute", "GRPCRoute"]
