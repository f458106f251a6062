"""Filters for the cluster nodes behind the VIPs (docs/seed-topology.md): which directors front
which nodes, how, and what a node then needs. playbooks/validate.yml checks the records,
playbooks/cluster_nodes.yml configures each node from them.

The directors' inventory is the one place of the facts: a cluster node learns its VIPs and
forwarding method from the directors whose keepalived_lvs_cluster_node_group holds it.
"""

import ipaddress

from ansible.errors import AnsibleFilterError

# The lvs role's default lvs_method, which keepalived_lvs_method defaults to.
_DEFAULT_METHOD = "DR"


def _method(variables):
    """A director's forwarding method: keepalived_lvs_method, else the lvs role's lvs_method."""
    return str(
        variables.get("keepalived_lvs_method") or variables.get("lvs_method") or _DEFAULT_METHOD
    )


def _ipv4_vips(variables):
    """A director's IPv4 VIPs (IPVS serves those only)."""
    return sorted(
        {
            str(vip)
            for instance in variables.get("keepalived_instances") or []
            for vip in instance.get("virtual_ipaddresses") or []
            if ":" not in str(vip)
        }
    )


def _subnet(interface):
    try:
        return ipaddress.IPv4Interface(str(interface)).network
    except ValueError:
        return None


def edge_cluster_fronts(hosts, hostvars, groups, check_defaults=None):
    """One record per director (of `hosts`) with a keepalived_lvs_cluster_node_group.

    check_defaults: the keepalived role's defaults of keepalived_lvs_cluster_check_port and
    keepalived_lvs_cluster_check_path, as {"port": ..., "path": ...}.
    """
    check_defaults = check_defaults or {}
    records = []
    for host in hosts:
        variables = hostvars[host]
        group = variables.get("keepalived_lvs_cluster_node_group") or ""
        if not group:
            continue
        subnet = _subnet(variables.get("keepalived_node_address", ""))
        records.append(
            {
                "director": host,
                "group": str(group),
                "group_exists": group in groups,
                "members": sorted(groups.get(group, [])),
                "method": _method(variables),
                "segment": str(subnet) if subnet else "(no keepalived_node_address)",
                "vips": _ipv4_vips(variables),
                "check_port": variables.get(
                    "keepalived_lvs_cluster_check_port", check_defaults.get("port")
                ),
                "check_path": variables.get(
                    "keepalived_lvs_cluster_check_path", check_defaults.get("path")
                ),
                "real_server": variables.get("lvs_real_server", True) in (True, "true", "True"),
                "fwmark": variables.get("lvs_fwmark", False) in (True, "true", "True"),
            }
        )
    return records


def edge_cluster_node_records(fronts, hostvars):
    """One record per cluster node named by `fronts` (edge_cluster_fronts): its address, the
    directors that front it, their methods, and those (DR) whose subnet it lies outside."""
    nodes = {}
    for front in fronts:
        for node in front["members"]:
            record = nodes.setdefault(
                node,
                {
                    "node": node,
                    "address": str(hostvars[node].get("keepalived_node_address", "")),
                    "directors": [],
                    "methods": [],
                    "dr_outside_subnet": [],
                },
            )
            record["directors"].append(front["director"])
            if front["method"] not in record["methods"]:
                record["methods"].append(front["method"])
            try:
                ip = ipaddress.IPv4Interface(record["address"]).ip
            except ValueError:
                continue
            if front["method"] == "DR" and ip not in ipaddress.ip_network(front["segment"]):
                record["dr_outside_subnet"].append(f"{front['director']} ({front['segment']})")
    return [nodes[node] for node in sorted(nodes)]


def _fronts_of(node, hostvars, groups):
    fronts = edge_cluster_fronts(groups.get("edge", []), hostvars, groups)
    return [front for front in fronts if node in front["members"]]


def edge_cluster_node_vips(node, hostvars, groups):
    """The VIPs a cluster node serves: those of every director that fronts it."""
    return sorted({vip for front in _fronts_of(node, hostvars, groups) for vip in front["vips"]})


def edge_cluster_node_method(node, hostvars, groups):
    """The forwarding method of the directors that front a cluster node (one, validate.yml
    refuses a mix)."""
    methods = sorted({front["method"] for front in _fronts_of(node, hostvars, groups)})
    if len(methods) != 1:
        raise AnsibleFilterError(
            f"{node}: the directors of group edge that name it in "
            "keepalived_lvs_cluster_node_group must use one forwarding method, "
            f"got {methods or 'no director'} (playbooks/validate.yml says which)"
        )
    return methods[0]


def edge_sysctl_conflicts(extra, needed):
    """The entries of lvs_extra_sysctls that undo a sysctl the node's LVS method needs, as
    "key=value (needs needed)"."""
    return [
        f"{key}={value} (needs {needed[key]})"
        for key, value in sorted((extra or {}).items())
        if key in needed and str(value) != str(needed[key])
    ]


class FilterModule:
    def filters(self):
        return {
            "edge_cluster_fronts": edge_cluster_fronts,
            "edge_cluster_node_records": edge_cluster_node_records,
            "edge_cluster_node_vips": edge_cluster_node_vips,
            "edge_cluster_node_method": edge_cluster_node_method,
            "edge_sysctl_conflicts": edge_sysctl_conflicts,
        }
