"""Tests for playbooks/validate.yml: IPv4 checks (`x is edgeops.edge.edge_ipv4`,
`select("edgeops.edge.edge_ipv4")`).

ansible.builtin has no IP tests, and ansible.utils' need the netaddr library; Python's
ipaddress module does all that validate.yml needs.
"""

import ipaddress


def edge_ipv4(value):
    """One IPv4 address, e.g. "198.51.100.100"."""
    try:
        ipaddress.IPv4Address(str(value))
    except ValueError:
        return False
    return True


def edge_ipv4_interface(value):
    """A host's IPv4 address with its prefix length, e.g. "198.51.100.11/24", other than the
    network or broadcast address of its subnet."""
    if "/" not in str(value):
        return False
    try:
        interface = ipaddress.IPv4Interface(str(value))
    except ValueError:
        return False
    network = interface.network
    return network.prefixlen >= 31 or interface.ip not in (
        network.network_address,
        network.broadcast_address,
    )


def edge_ipv4_network(value):
    """An IPv4 address or network in CIDR form, e.g. "10.0.0.0/8"."""
    try:
        ipaddress.IPv4Network(str(value))
    except ValueError:
        return False
    return True


def edge_in_subnet_of(address, interface):
    """`address` lies in the subnet of `interface` ("198.51.100.11/24")."""
    return ipaddress.IPv4Address(str(address)) in ipaddress.IPv4Interface(str(interface)).network


class TestModule:
    def tests(self):
        return {
            "edge_ipv4": edge_ipv4,
            "edge_ipv4_interface": edge_ipv4_interface,
            "edge_ipv4_network": edge_ipv4_network,
            "edge_in_subnet_of": edge_in_subnet_of,
        }
