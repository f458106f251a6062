"""The nodeport backend mode on a real edge (issue 15): the emulator holds Nodes, Services
and EndpointSlices, the lab's backends stand in for the Nodes' NodePorts (web1-web3 on
127.0.0.2-4) and for a pod (web4 on 127.0.0.5), and real nginx serves, in the static and
the dynamic mode."""

import pytest
from agentlab import BACKEND_ADDRESSES, Edge, _create_or_replace, endpoint_slice, eventually, rule

from edgeagent import nodeports

NODES = {"node-a": BACKEND_ADDRESSES[0], "node-b": BACKEND_ADDRESSES[1]}
EXCLUDED_NODE = ("node-c", BACKEND_ADDRESSES[2])
POD = BACKEND_ADDRESSES[3]
REQUESTS = 12


def node_body(name, unschedulable=False, labels=None):
    return {
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"unschedulable": unschedulable},
    }


def node_status(address, ready):
    return {
        "status": {
            "addresses": [{"type": "InternalIP", "address": address}],
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        }
    }


def apply_node(edge, name, address, ready=True, **body):
    _create_or_replace(
        lambda: edge.core.create_node(node_body(name, **body)),
        lambda: edge.core.patch_node(name, node_body(name, **body)),
    )
    edge.core.patch_node_status(name, node_status(address, ready))


def apply_service(edge, name, node_port, annotations=None, **spec):
    port = {"name": "http", "port": 80, "targetPort": 8080}
    if node_port is not None:
        port["nodePort"] = node_port
    body = {
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": {"type": "NodePort" if node_port else "ClusterIP", "ports": [port], **spec},
    }
    _create_or_replace(
        lambda: edge.core.create_namespaced_service("default", body),
        lambda: edge.core.replace_namespaced_service(name, "default", body),
    )
    slice_ = endpoint_slice(name, edge.backend_port, [POD], [])
    slice_["endpoints"][0]["nodeName"] = "node-a"
    _create_or_replace(
        lambda: edge.discovery.create_namespaced_endpoint_slice("default", slice_),
        lambda: edge.discovery.replace_namespaced_endpoint_slice(name, "default", slice_),
    )


def served_by(edge, host="app.example.com"):
    return {edge.backend_of(host) for _ in range(REQUESTS)}


def reloads(edge):
    return edge.agent.metric("edgeagent_reloads_total", result="success")


@pytest.mark.parametrize("upstreams", ["static", "dynamic"])
def test_nodeports_follow_the_nodes_and_the_service(tmp_path, upstreams):
    with Edge(tmp_path, upstreams=upstreams, **{"backend-mode": nodeports.NODEPORT}) as edge:
        node_port = edge.backend_port
        apply_node(edge, "node-a", NODES["node-a"])
        apply_node(edge, "node-b", NODES["node-b"], unschedulable=True)
        apply_node(edge, *EXCLUDED_NODE, labels={nodeports.EXCLUDE_LABEL: ""})
        apply_service(edge, "app", node_port)
        apply_service(edge, "internal", None)
        edge.apply_ingress(
            "app", [rule("app.example.com", "app"), rule("internal.example.com", "internal")]
        )
        edge.agent.wait_ready()
        # Cordoned and excluded Nodes take nothing; the pod is not proxied to.
        eventually(lambda: served_by(edge) == {"web1"})
        apply_node(edge, "node-b", NODES["node-b"])
        eventually(lambda: served_by(edge) == {"web1", "web2"})
        apply_node(edge, "node-a", NODES["node-a"], ready=False)
        eventually(lambda: served_by(edge) == {"web2"})
        apply_node(edge, "node-a", NODES["node-a"])
        # Local: only the Node that holds the ready endpoint (nodeName node-a).
        apply_service(edge, "app", node_port, externalTrafficPolicy="Local")
        eventually(lambda: served_by(edge) == {"web1"})

        # A Service without a NodePort answers 503 and says why; the others serve.
        assert served_by(edge, "internal.example.com") == {503}
        eventually(
            lambda: [
                e.message
                for e in edge.core.list_namespaced_event("default").items
                if e.reason == "Backend"
                and e.involved_object.name == "internal"
                and "has no nodePort" in e.message
            ]
        )

        # The annotation takes one Service back to its pods; in the dynamic mode, the
        # upstream keeps its name, so the switch is a push.
        edge.settled()
        before = reloads(edge)
        annotations = {nodeports.BACKEND_MODE_ANNOTATION: nodeports.ENDPOINTS}
        apply_service(edge, "app", node_port, annotations)
        eventually(lambda: served_by(edge) == {"web4"})
        if upstreams == "dynamic":
            assert reloads(edge) == before, edge.agent.log_tail(8)
