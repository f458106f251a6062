"""The NodePort backend mode (issue 15): a Service's NodePort on the Nodes' InternalIPs.

Pod IPs (the `endpoints` mode) reach the pods only where the edge has routes to the pod
network; on an overlay (flannel VXLAN, Calico IPIP/VXLAN, Cilium's tunnel) it has none,
and every request would time out (docs/networking.md). In the `nodeport` mode the edge
proxies to the Service's NodePort on every Node that may take external traffic, and
kube-proxy (or the CNI's replacement) forwards to the pods, whatever the CNI.

A Node takes traffic when its Ready condition is True, it is not cordoned
(`spec.unschedulable`) and it does not carry the label
`node.kubernetes.io/exclude-from-external-load-balancers` (what cloud load balancers
respect). With `externalTrafficPolicy: Local`, kube-proxy drops NodePort traffic on a Node
without a ready endpoint of the Service, so only the Nodes that EndpointSlices name
(`nodeName` of a ready endpoint) are used.

The mode is `--backend-mode` for all Services, and the Service annotation
`edgeagent.io/backend-mode` for one. Node addresses come from Node objects, which only the
cluster writes: they are backends in this mode alone, judged by the always-refused part of
the backend policy, never by the pod networks (backends.py). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from edgeagent import grammar
from edgeagent.grammar import Invalid

ENDPOINTS = "endpoints"
NODEPORT = "nodeport"
BACKEND_MODES = (ENDPOINTS, NODEPORT)
BACKEND_MODE_ANNOTATION = "edgeagent.io/backend-mode"
EXCLUDE_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"
ZONE_LABEL = "topology.kubernetes.io/zone"


@dataclass(frozen=True, order=True)
class NodeTarget:
    """A Node that may take external traffic, by its first InternalIP."""

    name: str
    address: str
    zone: str = ""


def eligible_nodes(nodes: Iterable[dict]) -> tuple[NodeTarget, ...]:
    """The Nodes that may take NodePort traffic, sorted by name; a Node without a valid
    InternalIP, not Ready, cordoned or excluded is left out."""
    found = []
    for node in nodes:
        target = _target(node)
        if target is not None:
            found.append(target)
    return tuple(sorted(found))


def _target(node: object) -> NodeTarget | None:
    if not isinstance(node, dict):
        return None
    metadata, spec, status = (_dict(node.get(k)) for k in ("metadata", "spec", "status"))
    labels = _dict(metadata.get("labels"))
    name = metadata.get("name")
    if not isinstance(name, str) or EXCLUDE_LABEL in labels or spec.get("unschedulable") is True:
        return None
    conditions = status.get("conditions")
    ready = any(
        isinstance(c, dict) and c.get("type") == "Ready" and c.get("status") == "True"
        for c in (conditions if isinstance(conditions, list) else ())
    )
    if not ready:
        return None
    addresses = status.get("addresses")
    for entry in addresses if isinstance(addresses, list) else ():
        if isinstance(entry, dict) and entry.get("type") == "InternalIP":
            address = entry.get("address")
            family = "IPv6" if ":" in str(address) else "IPv4"
            try:
                address = grammar.ip_address(address, "status.addresses", family)
            except Invalid:
                continue
            zone = labels.get(ZONE_LABEL)
            return NodeTarget(name, address, zone if isinstance(zone, str) else "")
    return None


def node_content(node: dict) -> dict:
    """What of a Node can alter the configuration: its labels, spec, addresses and whether
    it is Ready. Not the heartbeat times of its conditions, which change on their own."""
    metadata, status = _dict(node.get("metadata")), _dict(node.get("status"))
    conditions = status.get("conditions")
    ready = [
        c.get("status")
        for c in (conditions if isinstance(conditions, list) else ())
        if isinstance(c, dict) and c.get("type") == "Ready"
    ]
    return {
        "labels": metadata.get("labels"),
        "spec": node.get("spec"),
        "addresses": status.get("addresses"),
        "ready": ready,
    }


def backend_mode(service: dict, default: str) -> str:
    """The Service's mode: its annotation, else `default`; Invalid for a value that is
    neither mode."""
    annotations = _dict(_dict(service.get("metadata")).get("annotations"))
    value = annotations.get(BACKEND_MODE_ANNOTATION)
    if value is None:
        return default
    if value not in BACKEND_MODES:
        raise Invalid(
            f"annotation {BACKEND_MODE_ANNOTATION}: {grammar.show(str(value))} is not one of "
            f"{', '.join(BACKEND_MODES)}"
        )
    return value


def node_port(service: dict, port: int) -> int:
    """The NodePort of the Service's port `port`; Invalid (code "backend") if it has none."""
    spec = _dict(service.get("spec"))
    for entry in spec.get("ports") or ():
        if isinstance(entry, dict) and entry.get("port") == port:
            value = entry.get("nodePort")
            if value is None:
                break
            return grammar.port_number(value, "spec.ports[].nodePort")
    kind = spec.get("type") or "ClusterIP"
    raise Invalid(
        f"port {port} has no nodePort (type {grammar.show(str(kind))}), and its backend mode "
        f"is {NODEPORT}: make it a NodePort or LoadBalancer Service, or annotate it "
        f"{BACKEND_MODE_ANNOTATION}: {ENDPOINTS}",
        "backend",
    )


def local_traffic(service: dict) -> bool:
    """`externalTrafficPolicy: Local`: only Nodes with a ready endpoint forward."""
    return _dict(service.get("spec")).get("externalTrafficPolicy") == "Local"


def ready_node_names(endpoint_slices: Iterable[dict]) -> frozenset[str]:
    """The `nodeName` of every ready endpoint of the slices (readiness as
    `model.ready_endpoints` judges it; a slice it refuses is reported there)."""
    names = set()
    for endpoint_slice in endpoint_slices:
        endpoints = endpoint_slice.get("endpoints") if isinstance(endpoint_slice, dict) else None
        for endpoint in endpoints if isinstance(endpoints, list) else ():
            if isinstance(endpoint, dict) and is_ready(endpoint.get("conditions")):
                name = endpoint.get("nodeName")
                if isinstance(name, str):
                    names.add(name)
    return frozenset(names)


def is_ready(conditions: object) -> bool:
    """Ready: conditions.ready true or unset, and not terminating (a terminating endpoint
    gets no new request). The rule of `model.ready_endpoints`, which writes it inline (it
    runs for each of 50,000 endpoints per build) and refuses a malformed slice; here a
    malformed condition is only not ready, the slice being reported there."""
    if conditions is None:
        return True
    if not isinstance(conditions, dict):
        return False
    return conditions.get("ready") in (None, True) and conditions.get("terminating") in (
        None,
        False,
    )


def _dict(value: object) -> dict:
    return value if isinstance(value, dict) else {}


def targets(
    service: dict, port: int, endpoint_slices: list[dict], nodes: tuple[NodeTarget, ...]
) -> dict[tuple[str, int], NodeTarget]:
    """(Node address, NodePort) -> its Node, for the Service's port `port`: every
    eligible Node, or with `externalTrafficPolicy: Local` those holding a ready endpoint.
    Invalid (code "backend") when the port has no NodePort."""
    number = node_port(service, port)
    holding = ready_node_names(endpoint_slices) if local_traffic(service) else None
    return {
        (node.address, number): node for node in nodes if holding is None or node.name in holding
    }
