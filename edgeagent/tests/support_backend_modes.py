"""One Service's backends published in either backend mode (docs/networking.md), so a
traffic test asserts the same routing in both.

- `endpoints`: the EndpointSlices name the pods, and the echo backends are the pods.
- `nodeport`: the Service is `type: NodePort`, its EndpointSlices name each pod's Node
  (`nodeName`) and a pod address nothing listens on (a request to a pod fails), and the
  echo backends stand in for the Nodes' NodePorts: a Node's InternalIP is a backend's
  loopback address, a Service port's `nodePort` the port that backend listens on. With
  `externalTrafficPolicy: Local` a Node forwards only to its own ready pods (kube-proxy),
  so the backend on a Node answers as that Node's pod would.

Pure: the objects only; the tests write them to the emulator or render them.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable

from edgeagent import model, nodeports

BACKEND_MODES = nodeports.BACKEND_MODES
ENDPOINTS, NODEPORT = nodeports.ENDPOINTS, nodeports.NODEPORT


def node_name(address: str) -> str:
    """The name of the Node whose InternalIP is `address`."""
    return "node-" + address.replace(".", "-")


def node(address: str, zone: str = "") -> dict:
    """A Ready, schedulable Node with this InternalIP (and zone label, if any)."""
    labels = {nodeports.ZONE_LABEL: zone} if zone else {}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": node_name(address), "labels": labels},
        "spec": {},
        "status": {
            "addresses": [{"type": "InternalIP", "address": address}],
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def pod_address(backend_address: str) -> str:
    """Where the pod of a backend on 127.0.0.N lives in the nodeport mode: 127.0.2.N,
    which nothing listens on, as a pod network the edge has no route to."""
    return "127.0.2." + backend_address.rsplit(".", 1)[1]


def through_nodes(
    service: dict,
    slices: list[dict],
    node_ports: dict[str, int],
    node_of: Callable[[str], str],
    local: bool,
) -> tuple[dict, list[dict]]:
    """The Service as `type: NodePort` (`node_ports`: port name -> nodePort) with its
    traffic policy, and copies of its slices whose endpoints (named by the address of the
    backend that stands in for them) live on the Node `node_of(address)` names, at the
    address `pod_address` gives."""
    published = copy.deepcopy(service)
    spec = published["spec"]
    spec["type"] = "NodePort"
    spec["externalTrafficPolicy"] = "Local" if local else "Cluster"
    for port in spec["ports"]:
        port["nodePort"] = node_ports[port["name"]]
    moved = copy.deepcopy(slices)
    for endpoint_slice in moved:
        for endpoint in endpoint_slice["endpoints"]:
            endpoint["nodeName"] = node_of(endpoint["addresses"][0])
            endpoint["addresses"] = [pod_address(a) for a in endpoint["addresses"]]
    return published, moved


def as_nodeport(inputs: model.Inputs) -> model.Inputs:
    """`inputs`, whose EndpointSlices name echo backends as pods, with every Service
    published by NodePort instead: each pod on a Node of its own whose InternalIP is the
    pod's backend address (zone label: the endpoint's zone), each Service port's nodePort
    the port its slices name (one per port: the pods of a Service listen on one port),
    `externalTrafficPolicy: Local`. Every request then reaches the same backend as in the
    endpoints mode, through the Node that holds it."""
    services, endpoint_slices = [], []
    nodes: dict[str, dict] = {}
    node_ports_in_use: dict[int, str] = {}
    for service in inputs.services:
        name = service["metadata"]["name"]
        slices = [
            s
            for s in inputs.endpoint_slices
            if s["metadata"]["labels"]["kubernetes.io/service-name"] == name
        ]
        node_ports: dict[str, int] = {}
        for endpoint_slice in slices:
            for port in endpoint_slice["ports"]:
                number = node_ports.setdefault(port["name"], port["port"])
                assert number == port["port"], f"{name}: pods of one port on two ports"
            for endpoint in endpoint_slice["endpoints"]:
                address = endpoint["addresses"][0]
                nodes.setdefault(address, node(address, endpoint.get("zone", "")))
        for number in node_ports.values():
            assert node_ports_in_use.setdefault(number, name) == name, f"nodePort {number} twice"
        published, moved = through_nodes(service, slices, node_ports, node_name, local=True)
        services.append(published)
        endpoint_slices.extend(moved)
    return dataclasses.replace(
        inputs,
        services=services,
        endpoint_slices=endpoint_slices,
        nodes=[*inputs.nodes, *nodes.values()],
    )
