"""Which endpoint addresses nginx may proxy to (issue 14, "backends only where pods live").

An EndpointSlice is written by whoever may write EndpointSlices in a namespace, not only by
the cluster: a tenant can point a Service at any address, and the edge would proxy there
from inside the DMZ. `BackendPolicy` refuses, whatever else is set, the addresses that are
never a pod's: loopback (the edge's own status server, the agent's health and control
endpoints), link-local (cloud metadata services), the unspecified addresses, and the
VIPs (a loop through the edge itself). With backend networks (`--backend-networks`, or by
default the Nodes' `spec.podCIDRs` when they have any), an endpoint outside them is refused
too. Refused endpoints are left out of their upstream and reported on their EndpointSlice
(`model.backend_policy` and `model.refused_endpoint`, used for Ingresses and HTTPRoutes
alike). Pure: no I/O.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from edgeagent.grammar import Invalid, show

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

LOOPBACK = ("127.0.0.0/8", "::1/128")
ALWAYS_REFUSED = (
    ("link-local", ("169.254.0.0/16", "fe80::/10")),
    ("unspecified", ("0.0.0.0/32", "::/128")),
)


def network(text: str) -> Network:
    """A CIDR or a single address, as a network; ValueError if neither."""
    return ipaddress.ip_network(text.strip(), strict=False)


def check_networks(value: tuple[str, ...], what: str) -> None:
    """A settings check: every item a CIDR or an address."""
    for text in value:
        try:
            network(text)
        except ValueError:
            raise Invalid(f"{what}: {show(text)} is not a CIDR") from None


def pod_networks(nodes: Iterable[dict]) -> tuple[str, ...]:
    """The Nodes' `spec.podCIDRs` (or the older `spec.podCIDR`), sorted, without bad values."""
    return tuple(sorted({cidr for node in nodes for cidr in node_pod_networks(node)}))


def node_pod_networks(node: object) -> tuple[str, ...]:
    """One Node's `spec.podCIDRs` (or the older `spec.podCIDR`), without bad values."""
    spec = node.get("spec") if isinstance(node, dict) else None
    if not isinstance(spec, dict):
        return ()
    cidrs = spec.get("podCIDRs") or ([spec["podCIDR"]] if spec.get("podCIDR") else [])
    found = []
    for cidr in cidrs if isinstance(cidrs, list) else ():
        try:
            found.append(str(network(str(cidr))))
        except ValueError:
            continue
    return tuple(found)


@dataclass(frozen=True)
class BackendPolicy:
    networks: tuple[str, ...] = ()
    """Where pods live; empty: anywhere not refused."""
    vips: tuple[str, ...] = ()
    refuse_loopback: bool = True

    def refusal(self, address: str) -> str | None:
        """Why `address` may not be a backend, or None."""
        return _refusal(self, address, True)

    def node_refusal(self, address: str) -> str | None:
        """Why a Node's InternalIP may not be a backend (the NodePort mode, nodeports.py),
        or None: what is never a backend is refused, but the backend networks do not
        apply, since only the cluster writes Node objects."""
        return _refusal(self, address, False)

    @functools.cached_property
    def _refused(self) -> tuple[tuple[str, tuple[Network, ...]], ...]:
        refused = [(what, tuple(map(network, cidrs))) for what, cidrs in ALWAYS_REFUSED]
        if self.refuse_loopback:
            refused.append(("loopback", tuple(map(network, LOOPBACK))))
        if self.vips:
            refused.append(("a VIP of the edge", tuple(map(network, self.vips))))
        return tuple(refused)

    @functools.cached_property
    def _networks(self) -> tuple[Network, ...]:
        return tuple(map(network, self.networks))


@functools.lru_cache(maxsize=65536)
def _refusal(policy: BackendPolicy, address: str, networks_apply: bool) -> str | None:
    """Cached: it runs for each endpoint of each sync (50,000 at 10k Services)."""
    ip = ipaddress.ip_address(address)
    for what, networks in policy._refused:
        if any(ip in net for net in networks):
            return f"{address} is {what}"
    if networks_apply and policy._networks and not any(ip in net for net in policy._networks):
        return f"{address} is outside the backend networks ({', '.join(policy.networks)})"
    return None
