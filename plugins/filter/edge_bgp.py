"""Filters for the frr role's checks (roles/frr/tasks/validate.yml):
`ranges | edgeops.edge.edge_overlapping_networks` names every pair of overlapping CIDRs."""

import ipaddress
import itertools


def edge_overlapping_networks(cidrs):
    """Each pair of the IPv4 networks in `cidrs` that share an address, as "A and B" strings
    in the order given (empty when none overlap). Invalid CIDRs are left to the caller's
    edge_ipv4_network check."""
    networks = []
    for cidr in cidrs:
        try:
            networks.append(ipaddress.IPv4Network(str(cidr)))
        except ValueError:
            continue
    return [
        f"{first} and {second}"
        for first, second in itertools.combinations(networks, 2)
        if first.overlaps(second)
    ]


class FilterModule:
    def filters(self):
        return {"edge_overlapping_networks": edge_overlapping_networks}
