"""Filters for the VIP modes' checks in playbooks/validate.yml (edge_vip_mode: vrrp, the
default, or bgp: docs/bgp.md):
`hosts | edgeops.edge.edge_vip_mode_hosts(hostvars, 'bgp')` keeps the hosts of one mode;
`hosts | edgeops.edge.edge_vips_in_both_modes(hostvars)` names every VIP that VRRP nodes hold
and BGP nodes announce at once."""

DEFAULT_MODE = "vrrp"


def _mode(variables) -> str:
    return str(variables.get("edge_vip_mode", DEFAULT_MODE))


def edge_vip_mode_hosts(hosts, hostvars, mode):
    """The hosts whose edge_vip_mode (default vrrp) is `mode`, in the order given."""
    return [host for host in hosts if _mode(hostvars[host]) == mode]


def edge_vips_in_both_modes(hosts, hostvars):
    """ "VIP: BGP on a, b; VRRP on c" for each VIP in frr_vips of a bgp-mode host and in
    keepalived_instances of a vrrp-mode host: the routers would send its flows to the BGP
    nodes while a VRRP node answers ARP for it. Sorted by VIP; empty when none."""
    announced, held = {}, {}
    for host in hosts:
        variables = hostvars[host]
        if _mode(variables) == "bgp":
            for vip in variables.get("frr_vips") or []:
                announced.setdefault(str(vip), []).append(host)
        elif _mode(variables) == DEFAULT_MODE:
            for instance in variables.get("keepalived_instances") or []:
                for vip in instance.get("virtual_ipaddresses") or []:
                    held.setdefault(str(vip), []).append(host)
    return [
        f"{vip}: BGP on {', '.join(announced[vip])}; VRRP on {', '.join(held[vip])}"
        for vip in sorted(announced.keys() & held.keys())
    ]


class FilterModule:
    def filters(self):
        return {
            "edge_vip_mode_hosts": edge_vip_mode_hosts,
            "edge_vips_in_both_modes": edge_vips_in_both_modes,
        }
