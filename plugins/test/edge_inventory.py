"""Tests for playbooks/validate.yml: IP checks (`x is edgeops.edge.edge_ipv4`,
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


def edge_ipv6_interface(value):
    """A host's IPv6 address with its prefix length, e.g. "2001:db8:10::11/64", other than
    its subnet's all-zero (Subnet-Router anycast) address."""
    if "/" not in str(value):
        return False
    try:
        interface = ipaddress.IPv6Interface(str(value))
    except ValueError:
        return False
    return interface.network.prefixlen >= 127 or interface.ip != interface.network.network_address


def edge_ip_of_family(value, family):
    """One address of IP version `family` (4 or 6)."""
    try:
        return ipaddress.ip_address(str(value)).version == int(family)
    except ValueError:
        return False


def edge_ip_canonical(value):
    """One IP address written as `ip` and FRR print it (lowercase, zeros compressed), so that
    it compares with their output as a string."""
    try:
        return str(ipaddress.ip_address(str(value))) == str(value)
    except ValueError:
        return False


def edge_in_subnet_of(address, interface):
    """`address` lies in the subnet of `interface` ("198.51.100.11/24", "2001:db8::11/64"),
    of the same family."""
    try:
        network = ipaddress.ip_interface(str(interface)).network
        address = ipaddress.ip_address(str(address))
    except ValueError:
        return False
    return address.version == network.version and address in network


class TestModule:
    def tests(self):
        return {
            "edge_ipv4": edge_ipv4,
            "edge_ipv4_interface": edge_ipv4_interface,
            "edge_ipv4_network": edge_ipv4_network,
            "edge_in_subnet_of": edge_in_subnet_of,
            "edge_ipv6_interface": edge_ipv6_interface,
            "edge_ip_of_family": edge_ip_of_family,
            "edge_ip_canonical": edge_ip_canonical,
        }
