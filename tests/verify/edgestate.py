"""What a deployed edge node should be doing, read from the files and tools on the node.

Pure: each function takes the text of a file or of a command's output and returns plain
data, so the suite compares what the roles wrote (keepalived.conf, the agent's edge.conf)
with what the kernel and the processes do (`ip address`, `ipvsadm -Ln`: read with the
collection's plugins/module_utils/ipvs.py), and the parsing is tested apart from any host
(playbooks/tests/test_verify_suite.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from drill import kaconf

# nginx's catch-all server name: the default server, not a served host.
DEFAULT_SERVER_NAME = "_"


@dataclass(frozen=True)
class VrrpGroup:
    """One vrrp_instance: the VIPs that move together and the interface they live on."""

    name: str
    interface: str
    vips: tuple[str, ...]


def vrrp_groups(keepalived_conf: str) -> dict[str, VrrpGroup]:
    """vrrp_instance name -> its group, from a keepalived.conf the keepalived role wrote."""
    groups = {}
    for block in kaconf.parse(keepalived_conf).blocks("vrrp_instance"):
        vips = tuple(
            address.keyword.split("/")[0]
            for addresses in block.blocks("virtual_ipaddress")
            for address in addresses.children
        )
        groups[block.args[0]] = VrrpGroup(block.args[0], block.value("interface") or "", vips)
    return groups


def _ipvs_service(args: list[str]) -> str:
    """keepalived's `virtual_server` arguments in ipvsadm -Ln's spelling."""
    if args[0] == "fwmark":
        return f"FWM {args[1]}"
    return f"TCP {args[0]}:{args[1]}"


def _ipvs_real_server(args: list[str]) -> str:
    # A fwmark service's real servers have no port; ipvsadm shows port 0.
    return f"{args[0]}:{args[1] if len(args) > 1 else 0}"


def virtual_servers(keepalived_conf: str) -> dict[str, set[str]]:
    """IPVS service ("TCP vip:port" or "FWM mark") -> its real servers ("address:port"), as
    keepalived loads them into the kernel, spelled as ipvs.weights reads `ipvsadm -Ln`; empty
    when the node runs no LVS. (The keepalived role gives IPVS IPv4 VIP groups only.)"""
    return {
        _ipvs_service(block.args): {
            _ipvs_real_server(real.args) for real in block.blocks("real_server")
        }
        for block in kaconf.parse(keepalived_conf).blocks("virtual_server")
    }


def holds(ip_address_show: str, vip: str) -> bool:
    """Whether `ip -4 -o address show dev <interface>` lists vip (any prefix length)."""
    return re.search(rf"\sinet {re.escape(vip)}/\d+\s", ip_address_show) is not None


def served_hosts(edge_conf: str) -> list[str]:
    """The host names the agent's edge.conf serves to clients, sorted: the `server_name`s of
    its server blocks that listen beyond loopback (not the status server), without the
    default server's catch-all, wildcards and regular expressions (no one name to ask)."""
    names = set()
    for block in re.finditer(r"^server \{\n(.*?)^\}", edge_conf, re.MULTILINE | re.DOTALL):
        listens = re.findall(r"^\s*listen\s+(\S+)", block.group(1), re.MULTILINE)
        if all(_loopback(address) for address in listens):
            continue
        for line in re.findall(r"^\s*server_name\s+([^;]+);", block.group(1), re.MULTILINE):
            names.update(line.split())
    return sorted(
        name for name in names if name != DEFAULT_SERVER_NAME and not re.search(r"[*~]", name)
    )


def _loopback(listen: str) -> bool:
    return listen.startswith(("127.", "[::1]", "localhost:"))


def sample(items: list[str], size: int) -> list[str]:
    """Up to size items spread evenly over the sorted list: the same sample on every run."""
    if len(items) <= size:
        return list(items)
    step = len(items) / size
    return [items[int(index * step)] for index in range(size)]


def route_request(route: dict) -> tuple[str, str] | None:
    """(Host, path) of one request an HTTPRoute serves: its first hostname that is not a
    wildcard, and its first rule's first path match ("/" when it names none); None when
    the route names no such hostname (its answer is the default server's to give)."""
    hosts = [h for h in route["spec"].get("hostnames") or () if not h.startswith("*")]
    if not hosts:
        return None
    rules = route["spec"].get("rules") or [{}]
    matches = rules[0].get("matches") or [{}]
    path = matches[0].get("path") or {}
    literal = path.get("type", "PathPrefix") in ("PathPrefix", "Exact")
    return hosts[0], (path.get("value", "/") if literal else "/")
