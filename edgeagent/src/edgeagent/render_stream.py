"""The stream side of TLS passthrough (--enable-ssl-passthrough), pure: stream.conf, and
what edge.conf changes for its HTTPS servers to sit behind it (called by render.py).

nginx's stream module holds the HTTPS address (`Layout.listen_https`) and reads the
ClientHello's name without terminating anything (`ssl_preread`). A passed-through host
(`model.Model.passthrough`) goes through a second stream server, on
`Layout.ssl_passthrough_backend_listen`, to its backend's endpoints: TCP, the TLS bytes as
the client sent them. Every other connection goes to the HTTPS servers of edge.conf, which
then listen on `Layout.ssl_passthrough_listen`. Both hops get a PROXY protocol header
naming the client, which the HTTPS servers trust from loopback only (realip), so that
allow lists, logs and X-Forwarded-For see the client's address; with `--proxy-protocol`
the stream server reads the balancer's header first (from `--trusted-proxies` only),
so the address passed on is still the client's. The second hop exists because nginx sends
a PROXY protocol header to every peer of a stream server or to none, and a backend
expects TLS.

`--trusted-proxies` without `--proxy-protocol` (balancers that name the client in
X-Forwarded-For) does not combine with it: the HTTPS servers would have to trust the
X-Forwarded-For of whoever reaches them through the stream module, that is anyone.
`--gateway-address` neither: its servers are told apart by the address a connection
came to, which the internal hop hides.

Debian has no stream Lua module, so the peers of passed-through backends are part of
stream.conf in both upstream modes: in the dynamic mode an endpoint change of such a
backend is a new generation and a reload (docs/dynamic.md).
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Callable
from typing import TYPE_CHECKING

import jinja2

from edgeagent import grammar, render_filters
from edgeagent.backends import network

if TYPE_CHECKING:  # render imports this module
    from edgeagent.model import Model
    from edgeagent.render import Layout

STREAM_FILE = "stream.conf"
TEMPLATE = "stream.conf.j2"
# The header that names the port: the one a client connected to, not the internal one.
PORT_VARIABLE = "$edgeagent_server_port"


def _address(listen: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(listen.rpartition(":")[0].strip("[]"))


def _port(listen: str) -> int:
    return int(listen.rpartition(":")[2])


def check_layout(layout: Layout) -> None:
    """`render.Layout`'s passthrough fields, and what does not combine with them."""
    for what in ("ssl_passthrough_listen", "ssl_passthrough_backend_listen"):
        listen = grammar.listen(getattr(layout, what), what)
        if listen.startswith("*") or not _address(listen).is_loopback:
            raise grammar.Invalid(f"{what} {listen} must be a loopback address")
    if layout.ssl_passthrough_listen == layout.ssl_passthrough_backend_listen:
        raise grammar.Invalid("ssl_passthrough_listen and ssl_passthrough_backend_listen are one")
    taken = {_port(listen) for listen in (layout.listen_http, layout.listen_https)}
    for what in ("ssl_passthrough_listen", "ssl_passthrough_backend_listen"):
        if _port(getattr(layout, what)) in taken | {_port(layout.status_listen)}:
            raise grammar.Invalid(
                f"{what} needs a port of its own, not the listeners' or the status server's"
            )
    if layout.trusted_proxies and not layout.proxy_protocol:
        raise grammar.Invalid(
            "enable-ssl-passthrough with trusted-proxies needs proxy-protocol: the "
            "balancers' X-Forwarded-For cannot reach the HTTPS servers through the stream "
            "module without trusting everyone's"
        )
    if layout.gateway_addresses:
        raise grammar.Invalid(
            "enable-ssl-passthrough does not combine with gateway-address: the stream "
            "module hides which address a connection came to"
        )


def hop_source(layout: Layout) -> str:
    """The network the stream module's connections to the HTTPS servers come from."""
    return "::1/128" if _address(layout.ssl_passthrough_listen).version == 6 else "127.0.0.0/8"


def https_listen(layout: Layout) -> str:
    """The listen address of every HTTPS server of edge.conf."""
    return f"{layout.ssl_passthrough_listen} proxy_protocol"


def realip_sources(layout: Layout) -> list[str]:
    """Whose PROXY protocol header names the client: the balancers and the stream module."""
    return [*(str(network(proxy)) for proxy in layout.trusted_proxies), hop_source(layout)]


def port_map(layout: Layout) -> tuple[int, int]:
    """(internal port, the HTTPS port clients connect to): edge.conf's $edgeagent_server_port."""
    return _port(layout.ssl_passthrough_listen), _port(layout.listen_https)


def with_public_port(headers: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    """Forwarded headers whose X-Forwarded-Port names the port the client connected to."""
    return tuple(
        (name, PORT_VARIABLE if value == "$server_port" else value) for name, value in headers
    )


def render_stream(
    environment: jinja2.Environment,
    model: Model,
    layout: Layout,
    enabled: bool,
    hash_sizes: Callable[[list[str]], tuple[int, int]],
) -> str:
    """stream.conf: empty of servers unless `enabled`; `hash_sizes(names)`: the bucket and
    maximum sizes of an nginx hash of those names (render.py's, as for server names)."""
    upstreams = {upstream.name: upstream for upstream in model.upstreams}
    # A backend without an endpoint (kept by the dynamic mode for its Lua balancer) has no
    # peer to write: its host's connections are closed.
    hosts = [
        each
        if each.upstream in upstreams and upstreams[each.upstream].endpoints
        else dataclasses.replace(each, upstream=None)
        for each in model.passthrough
    ]
    used = sorted({each.upstream for each in hosts if each.upstream is not None})
    bucket, size = hash_sizes([each.host for each in hosts])
    return environment.get_template(TEMPLATE).render(
        enabled=enabled,
        map_hash_bucket_size=bucket,
        map_hash_max_size=size,
        hosts=hosts,
        upstreams=[upstreams[name] for name in used],
        listen_https=layout.listen_https,
        listen_https_ipv6=layout.ipv6_listen(layout.listen_https),
        proxy_protocol=layout.proxy_protocol,
        trusted_proxies=[str(network(proxy)) for proxy in layout.trusted_proxies],
        https_listen=layout.ssl_passthrough_listen,
        backend_listen=layout.ssl_passthrough_backend_listen,
        hop_source=hop_source(layout),
    )


def filters_with_public_port(location_filters):
    """render.location_filters whose restated X-Forwarded-Port names the public port."""

    def directives(server, location, dynamic):
        found = location_filters(server, location, dynamic)
        if found is render_filters.NONE:
            return found
        return dataclasses.replace(
            found,
            headers=[_public_port(line) for line in found.headers],
            mirror_locations=[_public_port(text) for text in found.mirror_locations],
        )

    return directives


def _public_port(text: str) -> str:
    return text.replace("X-Forwarded-Port $server_port;", f"X-Forwarded-Port {PORT_VARIABLE};")
