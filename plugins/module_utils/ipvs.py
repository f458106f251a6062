"""The one reader of `ipvsadm -Ln` (or `-Ln --exact`) text: the cutover's weight check
(plugins/filter/edge_cutover.py), the verify suite (tests/verify/edgestate.py) and the VM
lab's tests (molecule/lvs/vmlab.py) all read IPVS tables through it.

Pure and standard library only: text in, plain data out. Services and real servers are
spelled as ipvsadm prints them: services "TCP 198.51.100.102:80", "TCP [2001:db8::102]:443",
"FWM 52", "FWM 52 IPv6"; real servers "198.51.100.21:80", "[2001:db8::21]:80" (port 0
behind a fwmark service).
"""

import ipaddress
from typing import NamedTuple

PROTOCOLS = ("TCP", "UDP", "SCTP", "FWM")


class RealServer(NamedTuple):
    """One real server row: its weight and its active and inactive connections."""

    weight: int
    active: int
    inactive: int


def table(ipvsadm_ln):
    """{service: {real server: RealServer}}; the header lines are skipped."""
    services, service = {}, None
    for line in str(ipvsadm_ln).splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[0] in PROTOCOLS:
            # An IPv6 fwmark service says so after its mark: "FWM 52 IPv6 wlc".
            ipv6_mark = fields[0] == "FWM" and fields[2] == "IPv6"
            service = " ".join(fields[:3] if ipv6_mark else fields[:2])
            services[service] = {}
        elif (
            service
            and len(fields) >= 6
            and fields[0] == "->"
            and all(value.isdigit() for value in fields[3:6])
        ):
            services[service][fields[1]] = RealServer(*(int(value) for value in fields[3:6]))
    return services


def weights(ipvsadm_ln):
    """{service: {real server: weight}}."""
    return {
        service: {server: row.weight for server, row in rows.items()}
        for service, rows in table(ipvsadm_ln).items()
    }


def address(real_server):
    """A real server "198.51.100.21:80" or "[2001:db8::21]:80" -> its address, canonical."""
    return str(ipaddress.ip_address(real_server.rsplit(":", 1)[0].strip("[]")))
