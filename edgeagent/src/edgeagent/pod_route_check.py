"""Whether this node has a route to the pod network (`edgeagent doctor`, issue 15).

The endpoints backend mode proxies to pod IPs. On a cluster with an overlay (flannel VXLAN,
Calico IPIP/VXLAN, Cilium's tunnel) the edge has no route to them unless it learns one by
BGP (roles/frr) or is given static ones; a backend check that fails then fails for want of a
route, not because the pods or a firewall refuse. For each Node's `spec.podCIDRs`, the
kernel's main table is asked (`ip -json route show match`, netlink through iproute2) for the
most specific route that covers the CIDR's first address; the default route does not count.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from edgeagent import backends, nodeports

NO_ROUTE_ADVICE = (
    "use the nodeport backend mode, learn the routes by BGP (the frr role) or route the Nodes' "
    "podCIDRs (edgeagent_pod_routes) (docs/networking.md)"
)
# Kernel route types that carry no packet to a pod.
DEAD_ROUTE_TYPES = frozenset({"unreachable", "blackhole", "prohibit", "throw"})


@dataclass(frozen=True)
class Route:
    destination: str
    """The route's prefix, e.g. 198.18.1.0/26."""
    path: str
    """How it leaves, e.g. "via 198.51.100.21 dev eth0 proto bgp"."""


def node_pod_cidrs(nodes: Iterable[dict]) -> list[tuple[str, str]]:
    """(Node name, CIDR) for each of the Nodes' pod CIDRs, sorted."""
    return sorted(
        {
            (str(((node.get("metadata") or {}).get("name")) or "?"), cidr)
            for node in nodes
            if isinstance(node, dict)
            for cidr in backends.node_pod_networks(node)
        }
    )


def first_address(cidr: str) -> str:
    """The address looked up for a CIDR: its first host (the address itself for a /32)."""
    network = ipaddress.ip_network(cidr)
    return str(network.network_address + (1 if network.num_addresses > 1 else 0))


def covering_route(routes: list[dict]) -> Route | None:
    """The most specific route of `ip -json route show match ADDRESS` that delivers packets,
    the default route aside."""
    usable = []
    for route in routes:
        destination = route.get("dst", "default")
        if destination == "default" or route.get("type") in DEAD_ROUTE_TYPES:
            continue
        network = ipaddress.ip_network(destination)
        usable.append((network.prefixlen, str(network), route))
    if not usable:
        return None
    _, destination, route = max(usable, key=lambda found: found[0])
    path = [f"via {route['gateway']}"] if route.get("gateway") else []
    path += [f"dev {route['dev']}"] if route.get("dev") else []
    path += [f"proto {route['protocol']}"] if route.get("protocol") else []
    return Route(destination, " ".join(path) or "local")


def lookup(address: str) -> Route | None:
    """The route this node's main table has for `address` (iproute2 asks the kernel)."""
    family = "-6" if ipaddress.ip_address(address).version == 6 else "-4"
    output = subprocess.run(
        ["ip", family, "-json", "route", "show", "match", address],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    return covering_route(json.loads(output or "[]"))


def assess(
    nodes: Iterable[dict],
    backend_mode: str,
    route_for: Callable[[str], Route | None] = lookup,
) -> tuple[bool, str]:
    """(ok, detail) for the doctor's `pod routes` check. Missing routes fail it only in the
    endpoints mode: the nodeport mode never sends to a pod IP."""
    cidrs = node_pod_cidrs(nodes)
    if not cidrs:
        return True, "no Node names spec.podCIDRs (the CNI allocates pod addresses itself)"
    routed, missing = [], []
    for node, cidr in cidrs:
        try:
            route = route_for(first_address(cidr))
        except (OSError, ValueError, subprocess.SubprocessError) as error:
            return False, f"cannot look up the route to {cidr} ({node}): {error}"
        if route is None:
            missing.append(f"{cidr} ({node})")
        else:
            routed.append(f"{cidr} ({node}) by {route.destination} {route.path}")
    if not missing:
        return True, (
            f"routed: {'; '.join(routed)}. A failing backend check is then the pods, the "
            "CNI's policy or a firewall, not routing"
        )
    detail = f"no route to the pod network {', '.join(missing)}"
    if routed:
        detail += f" (routed: {'; '.join(routed)})"
    if backend_mode == nodeports.NODEPORT:
        return True, f"{detail}; not needed in the nodeport backend mode"
    return False, f"{detail}: {NO_ROUTE_ADVICE}"
