"""Filters for playbooks/validate.yml (`edgeops.edge.edge_directors`, ...): the VRRP instances
and VIP groups of an inventory.

Plain data in, plain data out, so that the asserts stay in the playbook where an operator
reads them. (The IPv4 tests are in plugins/test.)
"""

import ipaddress
from collections import defaultdict


def edge_network(interface):
    """The subnet of "198.51.100.11/24": "198.51.100.0/24" (of an IPv6 one alike)."""
    return str(ipaddress.ip_interface(str(interface)).network)


def _family(vips) -> int:
    """An instance's IP version, its first VIP's: keepalived runs one family per instance
    (validate.yml refuses an instance whose VIPs mix them)."""
    return 6 if ":" in str(next(iter(vips), "")) else 4


def edge_node_ips(hosts, hostvars):
    """Node IP (from keepalived_node_address) -> the hosts that claim it."""
    owners = defaultdict(list)
    for host in hosts:
        owners[str(ipaddress.IPv4Interface(hostvars[host]["keepalived_node_address"]).ip)].append(
            host
        )
    return dict(sorted(owners.items()))


def _hosts_with(hosts, hostvars, flag, default):
    """The hosts whose boolean inventory variable `flag` (else default) is true."""
    return [host for host in hosts if hostvars[host].get(flag, default) in (True, "true", "True")]


def edge_directors(hosts, hostvars):
    """The hosts that run VRRP: all but LVS real servers of separate tiers (lvs_director false)."""
    return _hosts_with(hosts, hostvars, "lvs_director", True)


def edge_real_servers(hosts, hostvars):
    """The hosts that serve HTTP: all but directors of separate tiers (lvs_real_server false)."""
    return _hosts_with(hosts, hostvars, "lvs_real_server", True)


def edge_agent_trackers(hosts, hostvars, default):
    """The hosts whose keepalived tracks their edgeagent (keepalived_check_agent, else default):
    pure directors of separate tiers run no agent."""
    return _hosts_with(hosts, hostvars, "keepalived_check_agent", default)


def edge_vrrp_instances(hosts, hostvars):
    """One record per (host, vrrp instance): what validate.yml checks per instance and groups.

    Expects the per-host checks to have passed (address, priority and instances well formed).
    """
    records = []
    for host in hosts:
        variables = hostvars[host]
        overrides = variables.get("keepalived_priority_by_instance") or {}
        for instance in variables["keepalived_instances"]:
            family = _family(instance["virtual_ipaddresses"])
            # An IPv6 group's segment is the node's IPv6 subnet (keepalived_node_address6).
            address = str(
                variables["keepalived_node_address"]
                if family == 4
                else variables.get("keepalived_node_address6", "")
            )
            try:
                segment = edge_network(address)
            except ValueError:
                segment = "(no keepalived_node_address6)"
            records.append(
                {
                    "host": host,
                    "name": instance["name"],
                    "interface": instance["interface"],
                    "vrid": instance["virtual_router_id"],
                    "vips": sorted(str(vip) for vip in instance["virtual_ipaddresses"]),
                    "family": family,
                    "address": address,
                    "segment": segment,
                    "priority": overrides.get(
                        instance["name"], variables.get("keepalived_priority")
                    ),
                }
            )
    return records


def edge_vrrp_groups(records):
    """The VIP groups: instance records sharing a segment and a VRID, sorted.

    Each group: segment, vrid, the instance names and VIP lists its members declare (more than
    one of either means two different VIP groups collide on that VRID), hosts, and priorities
    (host -> priority).
    """
    groups = defaultdict(list)
    for record in records:
        groups[(record["segment"], record["vrid"])].append(record)
    return [
        {
            "segment": segment,
            "vrid": vrid,
            "names": sorted({member["name"] for member in members}),
            "vip_lists": sorted({tuple(member["vips"]) for member in members}),
            "hosts": sorted(member["host"] for member in members),
            "priorities": {member["host"]: member["priority"] for member in members},
        }
        for (segment, vrid), members in sorted(groups.items())
    ]


def edge_vip_owners(records):
    """VIP -> the distinct (segment, VRID) pairs that declare it, as "segment/VRID" strings."""
    owners = defaultdict(set)
    for record in records:
        for vip in record["vips"]:
            owners[vip].add(f"{record['segment']} VRID {record['vrid']}")
    return {vip: sorted(pairs) for vip, pairs in sorted(owners.items())}


class FilterModule:
    def filters(self):
        return {
            "edge_network": edge_network,
            "edge_node_ips": edge_node_ips,
            "edge_directors": edge_directors,
            "edge_real_servers": edge_real_servers,
            "edge_agent_trackers": edge_agent_trackers,
            "edge_vrrp_instances": edge_vrrp_instances,
            "edge_vrrp_groups": edge_vrrp_groups,
            "edge_vip_owners": edge_vip_owners,
        }
