"""Whether this node holds the VIPs: `edgeagent_vip_holder` and its changes, the signal of
the VIP-flap alert (issue 14).

keepalived moves the VIPs (the addresses of `--publish-status-address`) between the edge
nodes by adding them to an interface of the holder, and exports no metrics of its own. The
agent therefore reads the node's addresses from the kernel, an RTM_GETADDR dump on a
netlink socket (what `ip addr` shows: no program to run, and unlike a bind test not fooled
by `net.ipv4.ip_nonlocal_bind`), once a second from its main loop, and counts each change
of holding. Addresses on the loopback interface do not count: the VIPs are on `lo` of every
node with `keepalived_vip_on_lo` and on every LVS-DR real server, holder or not. In the BGP
mode (`edge_vip_mode: bgp`, docs/bgp.md) every healthy node holds the VIPs at once: it
announces each while edge-vip-announce keeps a host route for it to `lo` in the main table
(what FRR announces), read the same way from an RTM_GETROUTE dump; a withdrawn node has no
such route and holds nothing, though its local table still accepts the VIP. A flap
between two samples (under a second) is not seen; keepalived's own
advert interval makes a real flap last longer. Host names among the addresses are skipped.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import struct
from collections.abc import Callable, Iterable

from edgeagent.metrics import Metrics

log = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# linux/netlink.h, linux/rtnetlink.h, linux/if_addr.h
NLMSG_ERROR = 2
NLMSG_DONE = 3
RTM_NEWADDR = 20
RTM_GETADDR = 22
RTM_NEWROUTE = 24
RTM_GETROUTE = 26
RT_TABLE_MAIN = 254
RTN_UNICAST = 1
RTA_DST = 1
RTA_OIF = 4
RTA_TABLE = 15
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300
IFA_ADDRESS = 1
IFA_LOCAL = 2
_MESSAGE = struct.Struct("=LHHLL")  # nlmsghdr: length, type, flags, sequence, port id
_ADDRESS = struct.Struct("=BBBBL")  # ifaddrmsg: family, prefix length, flags, scope, index
_ROUTE = struct.Struct("=BBBBBBBBL")  # rtmsg: family, dst/src length, tos, table, protocol,
# scope, type, flags
_ATTRIBUTE = struct.Struct("=HH")  # rtattr: length, type
_HOST_ROUTE_LENGTHS = {socket.AF_INET: 32, socket.AF_INET6: 128}


def _aligned(length: int) -> int:
    return (length + 3) & ~3


def _attributes(data: bytes, position: int, end: int) -> dict[int, bytes]:
    """The rtattrs from `position` to `end`, by type."""
    found: dict[int, bytes] = {}
    while position + _ATTRIBUTE.size <= end:
        length, kind = _ATTRIBUTE.unpack_from(data, position)
        if length < _ATTRIBUTE.size:
            break
        found[kind] = data[position + _ATTRIBUTE.size : position + length]
        position += _aligned(length)
    return found


def _ip(raw: bytes | None) -> IPAddress | None:
    return ipaddress.ip_address(raw) if raw is not None and len(raw) in (4, 16) else None


def _address_of(data: bytes, start: int, end: int) -> IPAddress | None:
    """An RTM_NEWADDR's own address: IFA_LOCAL (on a point-to-point link IFA_ADDRESS is
    the peer's), else IFA_ADDRESS (IPv6 has only that)."""
    found = _attributes(data, start + _MESSAGE.size + _ADDRESS.size, end)
    return _ip(found.get(IFA_LOCAL, found.get(IFA_ADDRESS)))


def _announced_of(data: bytes, start: int, end: int, loopback: int) -> IPAddress | None:
    """An RTM_NEWROUTE's destination if it is a main-table host route out of loopback (the
    BGP mode's announced VIP), else None."""
    family, dst_length, _, _, table, _, _, kind, _ = _ROUTE.unpack_from(data, start + _MESSAGE.size)
    found = _attributes(data, start + _MESSAGE.size + _ROUTE.size, end)
    if RTA_TABLE in found and len(found[RTA_TABLE]) == 4:
        table = struct.unpack("=L", found[RTA_TABLE])[0]
    oif = struct.unpack("=L", found[RTA_OIF])[0] if len(found.get(RTA_OIF, b"")) == 4 else None
    if (
        table != RT_TABLE_MAIN
        or kind != RTN_UNICAST
        or dst_length != _HOST_ROUTE_LENGTHS.get(family)
        or oif != loopback
    ):
        return None
    return _ip(found.get(RTA_DST))


def _dump(request_type: int, header: bytes, reply_type: int, read: Callable) -> set[IPAddress]:
    """The non-None results of `read(data, start, end)` over the replies of one netlink dump
    (`header`: the request's family header after nlmsghdr)."""
    request = _MESSAGE.pack(
        _MESSAGE.size + len(header), request_type, NLM_F_REQUEST | NLM_F_DUMP, 1, 0
    )
    found: set[IPAddress] = set()
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as sock:
        sock.settimeout(5)
        sock.sendall(request + header)
        while True:
            data = sock.recv(1 << 16)
            position = 0
            while position + _MESSAGE.size <= len(data):
                length, kind, _, _, _ = _MESSAGE.unpack_from(data, position)
                if kind == NLMSG_DONE:
                    return found
                if kind == NLMSG_ERROR or length < _MESSAGE.size:
                    raise OSError("netlink refused the dump")
                if kind == reply_type:
                    result = read(data, position, position + length)
                    if result is not None:
                        found.add(result)
                position += _aligned(length)


def held_addresses() -> frozenset[IPAddress]:
    """The addresses of every interface of this node's network namespace but loopback, and
    the destinations of its main-table host routes out of loopback (the BGP mode's
    announced VIPs)."""
    loopback = socket.if_nametoindex("lo")

    def own_address(data: bytes, start: int, end: int) -> IPAddress | None:
        index = _ADDRESS.unpack_from(data, start + _MESSAGE.size)[4]
        return _address_of(data, start, end) if index != loopback else None

    def announced(data: bytes, start: int, end: int) -> IPAddress | None:
        return _announced_of(data, start, end, loopback)

    addresses = _dump(
        RTM_GETADDR, _ADDRESS.pack(socket.AF_UNSPEC, 0, 0, 0, 0), RTM_NEWADDR, own_address
    )
    routes = _dump(
        RTM_GETROUTE, _ROUTE.pack(socket.AF_UNSPEC, 0, 0, 0, 0, 0, 0, 0, 0), RTM_NEWROUTE, announced
    )
    return frozenset(addresses | routes)


class VipHolder:
    """Samples which VIPs this node holds into `edgeagent_vip_holder{address}` (1 or 0)
    and counts each change in `edgeagent_vip_holder_changes_total{address}`."""

    def __init__(
        self,
        addresses: Iterable[str],
        metrics: Metrics,
        read: Callable[[], frozenset[IPAddress]] = held_addresses,
    ) -> None:
        self._vips: dict[str, IPAddress] = {}
        for text in addresses:
            try:
                self._vips[text] = ipaddress.ip_address(text)
            except ValueError:
                continue  # a host name: not an address keepalived moves
        self._metrics = metrics
        self._read = read
        self._held: dict[str, bool] = {}
        self._failing = False
        for text in self._vips:
            metrics.vip_holder_changes.labels(text)  # 0 from the start: increase() sees the first

    def sample(self) -> None:
        if not self._vips:
            return
        try:
            local = self._read()
        except OSError as error:
            if not self._failing:  # once, not every second
                log.warning("cannot read this node's addresses", extra={"error": str(error)})
            self._failing = True
            return
        self._failing = False
        for text, address in self._vips.items():
            held = address in local
            if self._held.get(text, held) != held:
                self._metrics.vip_holder_changes.labels(text).inc()
            self._held[text] = held
            self._metrics.vip_holder.labels(text).set(int(held))
