"""Static routes to the pod network from the Nodes' podCIDRs (issue 15).

For a flat layer-2 cluster without BGP (flannel's host-gw, kube-router without BGP peers,
any CNI that routes pods by their Node's address): every Node's `spec.podCIDRs` via its
InternalIP, as each cluster node itself routes them. `edgeagent routes` keeps the edge
node's main routing table equal to that, from a watch of the Nodes. It runs as its own
unit with CAP_NET_ADMIN (edgeagent-routes.service), a capability the agent never has:
the process that parses Ingresses cannot change the node's routes.

A Node object is cluster input, so its podCIDRs become routes only when safe
(`desired_routes`, pure):
- the gateway, the Node's InternalIP of the CIDR's family, is on a network this edge
  node is attached to (a `proto kernel` link route): anything else needs a router (BGP);
- the CIDR is at least a /8 (IPv4) or /32 (IPv6), overlaps no network this node is
  attached to, no `--publish-status-address` VIP and no other Node's podCIDR (the Node
  first by name keeps it; both are reported), and lies inside `--backend-networks`
  when that is set (the operator's statement of where pods live).

The routes carry their own protocol number (`--route-protocol`, 201) and metric (1000): the
tool replaces and deletes only those, never the kernel's, DHCP's, keepalived's or FRR's,
and a route to the same CIDR from any of them wins. They stay when
the unit stops (a restart costs no blackhole); the role's uninstall flushes them.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import signal
import subprocess
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass

import kubernetes
import urllib3

from edgeagent import kube, logs
from edgeagent.backends import network, node_pod_networks
from edgeagent.cache import Cache
from edgeagent.informer import Informer, list_call
from edgeagent.metrics import Metrics
from edgeagent.resources import BY_NAME
from edgeagent.settings import AgentSettings

log = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
ROUTE_PROTOCOL = 201
"""Unassigned in iproute2's rt_protos (FRR uses 186-196, keepalived 18, DHCP 16)."""
ROUTE_METRIC = 1000
"""Higher than any routing daemon's: a route to the same CIDR learned by BGP (FRR's
metric 20) wins, and `ip route replace` never overwrites another tool's route."""
SHORTEST_PREFIX = {4: 8, 6: 32}
"""A podCIDR shorter than this would take over much of the Internet's address space."""
RESYNC_SECONDS = 60.0
"""Routes deleted by hand (or by another tool) come back within this: a minute, since the
Nodes' changes are applied as they come and a deleted route is an operator's mistake."""


@dataclass(frozen=True, order=True)
class Route:
    destination: str
    gateway: str


@dataclass(frozen=True)
class Refusal:
    node: str
    cidr: str
    reason: str


def desired_routes(
    nodes: Iterable[dict],
    attached: Iterable[Network],
    protected: Iterable[ipaddress.IPv4Address | ipaddress.IPv6Address],
    allowed: Iterable[Network] = (),
) -> tuple[tuple[Route, ...], tuple[Refusal, ...]]:
    """The routes to install for `nodes`, and every podCIDR refused with its reason.
    `attached`: the networks of this node's interfaces; `protected`: the VIPs;
    `allowed`: --backend-networks (empty: anywhere)."""
    attached, protected, allowed = tuple(attached), tuple(protected), tuple(allowed)
    routes: dict[Network, tuple[str, Route]] = {}
    refusals = []
    for name, cidrs, gateways in sorted(map(_node_facts, nodes), key=lambda facts: facts[0]):
        for cidr in cidrs:
            pods = ipaddress.ip_network(cidr)
            reason = _refusal(pods, gateways, attached, protected, allowed)
            clash = next((n for n in routes if n.overlaps(pods)), None)
            if reason is None and clash is not None:
                reason = f"overlaps Node {routes[clash][0]}'s podCIDR {clash}"
            if reason is not None:
                refusals.append(Refusal(name, cidr, reason))
                continue
            routes[pods] = (name, Route(str(pods), gateways[pods.version]))
    return tuple(sorted(route for _, route in routes.values())), tuple(refusals)


def _node_facts(node: dict) -> tuple[str, tuple[str, ...], dict[int, str]]:
    """Name, podCIDRs and the first InternalIP of each family."""
    metadata, status = (
        node.get(key) if isinstance(node.get(key), dict) else {} for key in ("metadata", "status")
    )
    gateways: dict[int, str] = {}
    addresses = status.get("addresses")
    for entry in addresses if isinstance(addresses, list) else ():
        if isinstance(entry, dict) and entry.get("type") == "InternalIP":
            try:
                address = ipaddress.ip_address(entry.get("address"))
            except ValueError:
                continue
            gateways.setdefault(address.version, str(address))
    return str(metadata.get("name", "")), node_pod_networks(node), gateways


def _refusal(
    network: Network,
    gateways: dict[int, str],
    attached: tuple[Network, ...],
    protected: tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...],
    allowed: tuple[Network, ...],
) -> str | None:
    """Why `network`, a Node's podCIDR, must not be routed; None when it may."""
    if network.prefixlen < SHORTEST_PREFIX[network.version]:
        return f"shorter than /{SHORTEST_PREFIX[network.version]}"
    gateway = gateways.get(network.version)
    if gateway is None:
        return f"the Node has no IPv{network.version} InternalIP"
    if not any(ipaddress.ip_address(gateway) in link for link in attached):
        return f"its InternalIP {gateway} is on no network of this edge node (use BGP)"
    if any(link.overlaps(network) for link in attached if link.version == network.version):
        return "overlaps a network this edge node is attached to"
    if any(address in network for address in protected):
        return "contains a VIP of this edge"
    same_family = [each for each in allowed if each.version == network.version]
    if allowed and not any(network.subnet_of(each) for each in same_family):
        return "outside --backend-networks"
    return None


# I/O: iproute2, which every Debian node has. --------------------------------------------


def _ip(*arguments: str) -> str:
    return subprocess.run(
        ["ip", *arguments], capture_output=True, text=True, check=True, timeout=30
    ).stdout


def attached_networks() -> tuple[Network, ...]:
    """The networks of this node's interfaces: the kernel's own routes of the main table."""
    found = []
    for family in ("-4", "-6"):
        for entry in json.loads(_ip("-json", family, "route", "show", "proto", "kernel") or "[]"):
            try:
                found.append(ipaddress.ip_network(entry.get("dst", "")))
            except ValueError:
                continue  # "default" or a name
    return tuple(found)


def installed_routes(protocol: int) -> tuple[Route, ...]:
    """The routes of the main table that carry `protocol`: those this tool made."""
    routes = []
    for family in ("-4", "-6"):
        shown = _ip("-json", family, "route", "show", "table", "main", "proto", str(protocol))
        for entry in json.loads(shown or "[]"):
            if "gateway" in entry:
                destination = str(ipaddress.ip_network(entry["dst"], strict=False))
                routes.append(Route(destination, entry["gateway"]))
    return tuple(sorted(routes))


def reconcile(desired: Iterable[Route], protocol: int) -> tuple[int, int]:
    """Make the main table's routes of `protocol` exactly `desired`: (replaced, deleted)."""
    desired = set(desired)
    current = set(installed_routes(protocol))
    mark = ("proto", str(protocol), "metric", str(ROUTE_METRIC))
    for route in sorted(desired - current):
        _ip("route", "replace", route.destination, "via", route.gateway, *mark)
    stale = {route.destination for route in current} - {r.destination for r in desired}
    for destination in sorted(stale):
        _ip("route", "delete", destination, *mark)
    return len(desired - current), len(stale)


def sync(nodes: Iterable[dict], settings: AgentSettings, protocol: int) -> bool:
    """One round: judge, report, reconcile. False when the kernel refused a change."""
    protected = tuple(ipaddress.ip_address(vip) for vip in settings.status.addresses)
    allowed = tuple(map(network, settings.serving.backend_networks))
    try:
        routes, refusals = desired_routes(nodes, attached_networks(), protected, allowed)
        for refusal in refusals:
            log.warning(
                "podCIDR not routed",
                extra={"node": refusal.node, "cidr": refusal.cidr, "reason": refusal.reason},
            )
        replaced, deleted = reconcile(routes, protocol)
    except (OSError, ValueError, subprocess.SubprocessError) as error:
        log.error("cannot change the routes", extra={"error": str(error)})
        return False
    if replaced or deleted:
        log.info(
            "pod routes changed",
            extra={"routes": len(routes), "replaced": replaced, "deleted": deleted},
        )
    return True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--once", action="store_true", help="list the Nodes, reconcile the routes once, exit"
    )
    parser.add_argument(
        "--route-protocol",
        type=int,
        choices=range(5, 256),
        default=ROUTE_PROTOCOL,
        metavar="N",
        help="the routes' protocol number: only routes with it are changed (default: %(default)s)",
    )
    parser.add_argument(
        "--resync",
        type=float,
        default=RESYNC_SECONDS,
        metavar="SECONDS",
        help="reconcile at least this often, so that a deleted route comes back "
        "(default: %(default)s)",
    )


def main(args: argparse.Namespace, settings: AgentSettings) -> int:
    logs.setup(settings.daemon.log_level)
    try:
        client = kube.api_client(settings.api, watches=1)
    except (OSError, ValueError, kubernetes.config.ConfigException) as error:
        print(f"edgeagent: error: no usable credentials: {error}", file=sys.stderr)
        return 2
    if args.once:
        try:
            listed = list_call(BY_NAME["nodes"], client)(
                _preload_content=False, _request_timeout=settings.watch.request_timeout
            )
        except (kubernetes.client.ApiException, urllib3.exceptions.HTTPError) as error:
            print(f"edgeagent: error: cannot list the Nodes: {error}", file=sys.stderr)
            return 2
        return 0 if sync(json.loads(listed.data)["items"], settings, args.route_protocol) else 1
    return _watch(client, settings, args.route_protocol, args.resync)


def _watch(
    client: kubernetes.client.ApiClient, settings: AgentSettings, protocol: int, resync: float
) -> int:
    """Reconcile on every change of the Nodes, and every `resync` seconds."""
    stop = threading.Event()
    cache = Cache()
    informer = Informer(BY_NAME["nodes"], client, cache, settings.watch, Metrics(), stop)

    def shutdown(*_: object) -> None:
        stop.set()
        cache.wake()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    informer.start()
    seen = 0
    while not stop.is_set():
        cache.wait(lambda seen=seen: stop.is_set() or cache.version != seen, resync)
        if stop.is_set():
            break
        if informer.resource_version is None:
            continue  # not listed yet: an empty cache would delete every route
        seen, nodes = cache.snapshot_kind("nodes")
        sync(nodes.values(), settings, protocol)
    informer.interrupt()
    return 0
