"""The agent against the API emulator: Gateway API objects created with the official
client are served by nginx, and their status is written once, as the spec says."""

import time

import kubernetes
import pytest
from agentlab import VIP, Edge, eventually
from edgeagent.resources import GATEWAY_GROUP
from support_gateway import gateway, gateway_class, http_route, listener, parent

NS = "default"
V1 = (GATEWAY_GROUP, "v1")


@pytest.fixture(scope="module")
def edge(tmp_path_factory):
    with Edge(tmp_path_factory.mktemp("edge")) as started:
        started.agent.wait_ready()
        yield started


@pytest.fixture(scope="module")
def custom(edge):
    """The client for the Gateway API kinds, with the served GatewayClass created."""
    api = kubernetes.client.CustomObjectsApi(edge.api.api_client())
    api.create_cluster_custom_object(*V1, "gatewayclasses", gateway_class())
    return api


def conditions(status):
    return {c["type"]: (c["status"], c["reason"]) for c in (status or {}).get("conditions", [])}


def test_a_route_is_served_and_every_status_is_written_once(edge, custom):
    edge.apply_service("gw-web", addresses=["127.0.0.2"])
    custom.create_namespaced_custom_object(
        *V1, NS, "gateways", gateway("edge", listener(), listener("alt", 8080), namespace=NS)
    )
    route = http_route(
        "web",
        [parent("edge", namespace=None)],
        rules=[{"backendRefs": [{"name": "gw-web", "port": 80}]}],
        hostnames=["gateway.example.com"],
        namespace=NS,
    )
    custom.create_namespaced_custom_object(*V1, NS, "httproutes", route)
    eventually(lambda: edge.backend_of("gateway.example.com") == "web1")

    def read(plural, name):
        if plural == "gatewayclasses":
            return custom.get_cluster_custom_object(*V1, plural, name)
        return custom.get_namespaced_custom_object(*V1, NS, plural, name)

    eventually(lambda: read("httproutes", "web").get("status"))
    assert conditions(read("gatewayclasses", "edge").get("status"))["Accepted"] == (
        "True",
        "Accepted",
    )
    gateway_status = read("gateways", "edge")["status"]
    assert gateway_status["addresses"] == [{"type": "IPAddress", "value": VIP}]
    assert conditions(gateway_status)["Programmed"] == ("True", "Programmed")
    listeners = {each["name"]: each for each in gateway_status["listeners"]}
    assert listeners["http"]["attachedRoutes"] == 1
    assert conditions(listeners["alt"])["Accepted"] == ("False", "PortUnavailable")
    (route_parent,) = read("httproutes", "web")["status"]["parents"]
    assert route_parent["controllerName"] == "edgeagent.io/gateway-controller"
    assert conditions(route_parent) == {
        "Accepted": ("True", "Accepted"),
        "ResolvedRefs": ("True", "ResolvedRefs"),
    }
    assert {c["observedGeneration"] for c in route_parent["conditions"]} == {1}

    # A new generation of the route: observedGeneration follows, nothing else moves.
    before = read("httproutes", "web")["status"]["parents"][0]["conditions"]
    custom.patch_namespaced_custom_object(
        *V1, NS, "httproutes", "web", {"spec": {"hostnames": ["gateway.example.com", "b.example"]}}
    )
    eventually(
        lambda: (
            read("httproutes", "web")["status"]["parents"][0]["conditions"][0]["observedGeneration"]
            == 2
        )
    )
    after = read("httproutes", "web")["status"]["parents"][0]["conditions"]
    assert [c["lastTransitionTime"] for c in after] == [c["lastTransitionTime"] for c in before]

    # Settled: the agent finds nothing more to write.
    settled = read("gateways", "edge")["metadata"]["resourceVersion"]
    time.sleep(1.5)
    assert read("gateways", "edge")["metadata"]["resourceVersion"] == settled


def test_generations_and_listener_changes_reach_the_status(custom):
    """GatewayObservedGenerationBump, GatewayClassObservedGenerationBump and
    GatewayModifyListeners: a new spec is answered with its generation, a listener
    added or removed appears in or leaves the status."""
    name = "bump"
    custom.create_cluster_custom_object(
        *V1, "gatewayclasses", {**gateway_class(name), "metadata": {"name": name}}
    )
    custom.create_namespaced_custom_object(
        *V1, NS, "gateways", gateway(name, listener(), namespace=NS, gateway_class_name="edge")
    )

    def gateway_status():
        return custom.get_namespaced_custom_object(*V1, NS, "gateways", name).get("status") or {}

    def generations(status):
        found = {c["observedGeneration"] for c in status.get("conditions", [])}
        for each in status.get("listeners", []):
            found |= {c["observedGeneration"] for c in each["conditions"]}
        return found

    eventually(lambda: generations(gateway_status()) == {1})
    custom.patch_namespaced_custom_object(
        *V1,
        NS,
        "gateways",
        name,
        {"spec": {"listeners": [listener(), listener("second", hostname="second.example")]}},
    )
    eventually(lambda: generations(gateway_status()) == {2})
    assert [each["name"] for each in gateway_status()["listeners"]] == ["http", "second"]
    custom.patch_namespaced_custom_object(
        *V1, NS, "gateways", name, {"spec": {"listeners": [listener("second")]}}
    )
    eventually(lambda: [each["name"] for each in gateway_status()["listeners"]] == ["second"])

    # The served class, a new generation of it: its Accepted follows.
    custom.patch_cluster_custom_object(
        *V1, "gatewayclasses", "edge", {"spec": {"description": "the edge"}}
    )

    def class_generations():
        status = custom.get_cluster_custom_object(*V1, "gatewayclasses", "edge").get("status")
        return {c["observedGeneration"] for c in (status or {}).get("conditions", [])}

    eventually(lambda: class_generations() == {2})
    # A second class naming our controller: not Accepted, and says why.
    bump = custom.get_cluster_custom_object(*V1, "gatewayclasses", name)
    eventually(
        lambda: (
            conditions(
                custom.get_cluster_custom_object(*V1, "gatewayclasses", name).get("status")
            ).get("Accepted")
            == ("False", "Unsupported")
        )
    )
    assert bump["metadata"]["generation"] == 1


def test_the_longest_name_and_a_parameters_ref_are_answered(custom):
    """GatewayNameMaximumLength and GatewayInvalidParametersRef against the emulator: a
    Gateway of a 253-character name gets its conditions at its generation; one naming a
    parametersRef is Accepted False, InvalidParameters."""
    prefix = "gateway-name-maximum-length-"
    longest = prefix + "a" * (253 - len(prefix))
    custom.create_namespaced_custom_object(
        *V1, NS, "gateways", gateway(longest, listener(), namespace=NS)
    )
    parameters = gateway("gateway-invalid-parameters-ref", listener(), namespace=NS)
    parameters["spec"]["infrastructure"] = {
        "parametersRef": {"group": "invalid.io", "kind": "InvalidParameters", "name": "invalid"}
    }
    custom.create_namespaced_custom_object(*V1, NS, "gateways", parameters)

    def status(name):
        return custom.get_namespaced_custom_object(*V1, NS, "gateways", name).get("status") or {}

    eventually(
        lambda: {c["observedGeneration"] for c in status(longest).get("conditions", [])} == {1}
    )
    assert conditions(status(longest))["Accepted"] == ("True", "Accepted")
    eventually(
        lambda: (
            conditions(status("gateway-invalid-parameters-ref")).get("Accepted")
            == ("False", "InvalidParameters")
        )
    )
