"""Plain HTTPRoutes in the route table end to end: the API emulator, `edgeagent run
--upstreams dynamic`, a real nginx with the Lua module, and real backends. An HTTPRoute
created with the official client is added, changed and removed without a reload; a route
that gains a filter moves to a server block of its own (one reload) and back to the table
(one more), with no failed request.
"""

from __future__ import annotations

from collections.abc import Iterator

import kubernetes
import pytest
from agentlab import BACKEND_ADDRESSES, Edge, eventually
from edgeagent.resources import GATEWAY_GROUP
from support_gateway import gateway, gateway_class, http_route, listener, parent
from test_dynamic_traffic import Traffic, reloads
from test_gateway_route_table import HEADER_FILTER, prefix
from test_route_table_traffic import edge_conf

NS = "default"
V1 = (GATEWAY_GROUP, "v1")


@pytest.fixture(scope="module")
def edge(tmp_path_factory) -> Iterator[Edge]:
    options = {"upstreams": "dynamic", "dynamic-verify-interval": 0.5}
    with Edge(tmp_path_factory.mktemp("gateway-routes"), **options) as started:
        started.agent.wait_ready()
        for n, name in enumerate(("one", "two", "three")):
            started.apply_service(name, addresses=[BACKEND_ADDRESSES[n]])
        started.custom = kubernetes.client.CustomObjectsApi(started.api.api_client())
        started.custom.create_cluster_custom_object(*V1, "gatewayclasses", gateway_class())
        body = gateway("edge", listener(), namespace=NS)
        started.custom.create_namespaced_custom_object(*V1, NS, "gateways", body)
        apply_route(started, "first", "first.example.com", [rule("one")])
        eventually(lambda: started.backend_of("first.example.com") == "web1", timeout=30)
        started.settled()
        yield started


def rule(service: str, path: str = "/", filters: list[dict] | None = None) -> dict:
    entry = {"matches": [prefix(path)], "backendRefs": [{"name": service, "port": 80}]}
    if filters:
        entry["filters"] = filters
    return entry


def apply_route(edge: Edge, name: str, hostname: str, rules: list[dict]) -> None:
    body = http_route(name, [parent("edge", namespace=None)], rules, [hostname], namespace=NS)
    try:
        current = edge.custom.get_namespaced_custom_object(*V1, NS, "httproutes", name)
    except kubernetes.client.ApiException as error:
        if error.status != 404:
            raise
        edge.custom.create_namespaced_custom_object(*V1, NS, "httproutes", body)
        return
    body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
    edge.custom.replace_namespaced_custom_object(*V1, NS, "httproutes", name, body)


def test_a_plain_route_is_added_changed_and_removed_without_a_reload(edge):
    before, master = reloads(edge), edge.nginx.master_pid()
    apply_route(edge, "plain", "plain.example.com", [rule("two")])
    eventually(lambda: edge.backend_of("plain.example.com") == "web2", timeout=30)
    apply_route(edge, "plain", "plain.example.com", [rule("three"), rule("one", "/v1")])
    eventually(lambda: edge.backend_of("plain.example.com") == "web3", timeout=30)
    assert edge.backend_of("plain.example.com", "/v1/x") == "web1"
    assert edge.backend_of("plain.example.com", "/v1x") == "web3"
    edge.custom.delete_namespaced_custom_object(*V1, NS, "httproutes", "plain")
    eventually(lambda: edge.backend_of("plain.example.com") == 404, timeout=30)
    assert edge.backend_of("first.example.com") == "web1"
    assert reloads(edge) == before, edge.agent.log_tail(8)
    assert edge.nginx.master_pid() == master
    assert "plain.example.com" not in edge_conf(edge)


def test_a_route_gaining_a_filter_moves_to_a_server_block_and_back(edge):
    apply_route(edge, "moving", "moving.example.com", [rule("two")])
    eventually(lambda: edge.backend_of("moving.example.com") == "web2", timeout=30)
    before = reloads(edge)
    with Traffic(edge, "moving.example.com") as traffic:
        eventually(lambda: traffic.recent() == {"web2"})
        apply_route(edge, "moving", "moving.example.com", [rule("two", filters=[HEADER_FILTER])])
        eventually(lambda: "server_name moving.example.com;" in edge_conf(edge), timeout=60)
        eventually(lambda: reloads(edge) == before + 1)
        eventually(lambda: edge.get("moving.example.com").echo["headers"].get("x-filtered"))
        count = len(traffic.answers)
        eventually(lambda: len(traffic.answers) > count + 20)
        apply_route(edge, "moving", "moving.example.com", [rule("two")])
        eventually(lambda: "moving.example.com" not in edge_conf(edge), timeout=60)
        eventually(lambda: reloads(edge) == before + 2)
        count = len(traffic.answers)
        eventually(lambda: len(traffic.answers) > count + 20)
    assert traffic.failures() == {}, traffic.failures()
    assert "x-filtered" not in edge.get("moving.example.com").echo["headers"]
