"""Backends only where pods live (issue 14): what model.build proxies to, and a real edge."""

import kubernetes
import pytest
import support_objects as objects
from agentlab import VIP, Edge, eventually, rule
from edgeagent.backends import BackendPolicy

from edgeagent import model

ADDRESSES = ["10.244.1.5", "127.0.0.1", "169.254.169.254", VIP, "192.0.2.7", "fe80::1"]


def inputs(nodes=()):
    return model.Inputs(
        ingresses=[
            objects.ingress("app", objects.rule("app.example.com", objects.path("/", "app")))
        ],
        services=[objects.service("app")],
        endpoint_slices=[
            objects.endpoint_slice("app", [(a, True) for a in ADDRESSES if ":" not in a], 8080),
            objects.endpoint_slice(
                "app", [("fe80::1", True)], 8080, name="app-v6", address_type="IPv6"
            ),
        ],
        nodes=list(nodes),
    )


def node(name, *cidrs):
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name},
        "spec": {"podCIDRs": list(cidrs)},
    }


def endpoints(built):
    (upstream,) = built.upstreams
    return upstream.endpoints


def refused(built):
    return sorted(p.reason.split()[1] for p in built.problems if p.code == "backend")


def test_without_a_policy_every_address_is_proxied_to():
    assert len(endpoints(model.build(inputs(), model.Options()))) == len(ADDRESSES)


def test_loopback_link_local_unspecified_and_vips_are_always_refused():
    built = model.build(inputs(), model.Options(backends=BackendPolicy(vips=(VIP,))))
    assert endpoints(built) == ("10.244.1.5:8080", "192.0.2.7:8080")
    assert refused(built) == sorted(["127.0.0.1", "169.254.169.254", VIP, "fe80::1"])
    assert {p.kind for p in built.problems} == {"EndpointSlice"}


@pytest.mark.parametrize(
    ("networks", "nodes", "kept"),
    [
        ((), [node("a", "10.244.1.0/24"), node("b", "10.244.2.0/24")], ("10.244.1.5:8080",)),
        (("192.0.2.0/24",), [node("a", "10.244.1.0/24")], ("192.0.2.7:8080",)),
        ((), [node("a")], ("10.244.1.5:8080", "192.0.2.7:8080")),
    ],
    ids=["nodes-podcidrs", "explicit-wins", "no-podcidrs"],
)
def test_backend_networks_come_from_the_setting_else_the_nodes(networks, nodes, kept):
    options = model.Options(backends=BackendPolicy(networks=networks, vips=(VIP,)))
    assert endpoints(model.build(inputs(nodes), options)) == kept


def test_a_memo_does_not_outlive_a_change_of_the_nodes():
    options = model.Options(backends=BackendPolicy())
    memo = model.Memo()
    world = inputs()
    assert "192.0.2.7:8080" in endpoints(model.build(world, options, memo))
    narrowed = model.Inputs(**{**vars(world), "nodes": [node("a", "10.244.0.0/16")]})
    assert endpoints(model.build(narrowed, options, memo)) == ("10.244.1.5:8080",)


def test_a_real_edge_refuses_endpoints_outside_the_nodes_pod_networks(tmp_path):
    """The agent watches Nodes: once a Node declares its podCIDR, the lab's loopback
    backends (allowed in the lab) are outside the pods' networks and refused."""
    with Edge(tmp_path) as edge:
        edge.apply_service("app", addresses=["127.0.0.2", "169.254.169.254"])
        edge.apply_ingress("app", [rule("app.example.com", "app")])
        edge.agent.wait_ready()
        eventually(lambda: edge.backend_of("app.example.com") == "web1")
        for _ in range(4):  # the link-local endpoint never gets a request
            assert edge.backend_of("app.example.com") == "web1"
        eventually(
            lambda: [
                e.message
                for e in edge.core.list_namespaced_event("default").items
                if e.reason == "Backend" and "169.254.169.254 is link-local" in e.message
            ]
        )
        edge.core.create_node(
            kubernetes.client.V1Node(
                metadata={"name": "node-a"}, spec={"podCIDRs": ["10.244.0.0/24"]}
            )
        )
        eventually(lambda: edge.backend_of("app.example.com") == 503)
