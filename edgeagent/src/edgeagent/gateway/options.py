"""What the edge serves of the Gateway API: the operator's part, read by `attachment`."""

from __future__ import annotations

from dataclasses import dataclass

SHARED, DEDICATED = "shared", "dedicated"
ADDRESS_MODES = (SHARED, DEDICATED)
"""`GatewayOptions.address_mode`."""


@dataclass(frozen=True)
class GatewayOptions:
    gateway_class: str = "edge"
    """The GatewayClass served (`--gateway-class`); "edge" as `--ingress-class`, so that
    the two APIs of one edge are named alike."""
    controller_name: str = "edgeagent.io/gateway-controller"
    """The `spec.controllerName` the served class must carry (`--gateway-controller-name`):
    a class of that name that names another controller belongs to that controller."""
    http_port: int = 80
    """The listener port that the edge carries to nginx's HTTP listen address: the port
    the VIP and LVS expose. A listener on any other port is not programmed."""
    https_port: int = 443
    """The same for nginx's HTTPS listen address."""
    addresses: tuple[str, ...] = ()
    """The addresses Gateway listeners bind (`--gateway-address`), each on nginx's HTTP
    and HTTPS ports; empty: every address nginx listens on. A Gateway's `spec.addresses`
    must name some of them."""
    address_mode: str = SHARED
    """`--gateway-address-mode`: "shared", every Gateway's listeners on every address of
    `addresses` (listeners of several Gateways on one port and hostname merge), as before
    the mode existed; "dedicated", each Gateway its own address of them (gateway.addressing),
    so Gateways never merge by accident."""
